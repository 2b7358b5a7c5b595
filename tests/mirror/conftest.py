"""Shared by the mirror's tests: the registries' expected content, files, fixtures.

The expected content of a file is worked out here from the registries' own entries,
independently of the mirror's code, and compared with what another connection reads
from the file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
from datetime import UTC, datetime, timedelta
import fcntl
import os
from pathlib import Path
import sqlite3
import struct
from typing import Any

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    issue_registry as ir,
    label_registry as lr,
)
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.ha_ingestor.const import DOMAIN
from custom_components.ha_ingestor.mirror.mirror import RegistryMirror

ENTRY_ID = "mirror_entry"
ISSUE_ID = f"mirror_unavailable_{ENTRY_ID}"
REPOSITORY = Path(__file__).parents[2]


type Content = dict[str, dict[Any, dict[str, Any]]]


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _links(owners: dict[str, set[str]], owner_column: str) -> dict[Any, dict[str, Any]]:
    return {
        (owner, label): {owner_column: owner, "label_id": label}
        for owner, labels in owners.items()
        for label in labels
    }


def expected_content(hass: HomeAssistant) -> Content:
    """What the file must hold: every registry entry, read from the registries."""
    floors = fr.async_get(hass).async_list_floors()
    labels = lr.async_get(hass).async_list_labels()
    areas = list(ar.async_get(hass).async_list_areas())
    device_registry = dr.async_get(hass)
    devices: list[dr.AnyDeviceEntry] = [
        *device_registry.devices,
        *device_registry.child_devices,
    ]
    entities = list(er.async_get(hass).entities.values())
    return {
        "floors": {
            floor.floor_id: {
                "floor_id": floor.floor_id,
                "name": floor.name,
                "level": floor.level,
                "icon": floor.icon,
                "created_at": _time(floor.created_at),
                "modified_at": _time(floor.modified_at),
            }
            for floor in floors
        },
        "labels": {
            label.label_id: {
                "label_id": label.label_id,
                "name": label.name,
                "description": label.description,
                "color": label.color,
                "icon": label.icon,
                "created_at": _time(label.created_at),
                "modified_at": _time(label.modified_at),
            }
            for label in labels
        },
        "areas": {
            area.id: {
                "area_id": area.id,
                "name": area.name,
                "floor_id": area.floor_id,
                "icon": area.icon,
                "picture": area.picture,
                "temperature_entity_id": area.temperature_entity_id,
                "humidity_entity_id": area.humidity_entity_id,
                "created_at": _time(area.created_at),
                "modified_at": _time(area.modified_at),
            }
            for area in areas
        },
        "devices": {device.id: _expected_device(device) for device in devices},
        "entities": {
            entity.entity_id: {
                "entity_id": entity.entity_id,
                "id": entity.id,
                "domain": entity.domain,
                "object_id": entity.entity_id.split(".", 1)[1],
                "platform": entity.platform,
                "unique_id": entity.unique_id,
                "device_id": entity.device_id,
                "area_id": entity.area_id,
                "name": entity.name,
                "original_name": entity.original_name,
                "has_entity_name": 1 if entity.has_entity_name else 0,
                "device_class": entity.device_class,
                "original_device_class": entity.original_device_class,
                "unit_of_measurement": entity.unit_of_measurement,
                "entity_category": entity.entity_category,
                "disabled_by": entity.disabled_by,
                "hidden_by": entity.hidden_by,
                "config_entry_id": entity.config_entry_id,
                "config_subentry_id": entity.config_subentry_id,
                "created_at": _time(entity.created_at),
                "modified_at": _time(entity.modified_at),
            }
            for entity in entities
        },
        "area_labels": _links({area.id: area.labels for area in areas}, "area_id"),
        "device_labels": _links(
            {device.id: device.labels for device in devices}, "device_id"
        ),
        "entity_labels": _links(
            {entity.entity_id: entity.labels for entity in entities}, "entity_id"
        ),
    }


def _expected_device(device: dr.AnyDeviceEntry) -> dict[str, Any]:
    row: dict[str, Any] = {
        "device_id": device.id,
        "parent_device_id": None,
        "name": device.name,
        "name_by_user": device.name_by_user,
        "manufacturer": None,
        "model": None,
        "model_id": None,
        "serial_number": None,
        "sw_version": None,
        "hw_version": None,
        "via_device_id": None,
        "entry_type": None,
        "area_id": device.area_id,
        "disabled_by": device.disabled_by,
        "config_entry_id": device.config_entry_id,
        "config_subentry_id": device.config_subentry_id,
        "created_at": _time(device.created_at),
        "modified_at": _time(device.modified_at),
    }
    if isinstance(device, dr.ChildDeviceEntry):
        row["parent_device_id"] = device.parent_device_id
    else:
        row |= {
            "manufacturer": device.manufacturer,
            "model": device.model,
            "model_id": device.model_id,
            "serial_number": device.serial_number,
            "sw_version": device.sw_version,
            "hw_version": device.hw_version,
            "via_device_id": device.via_device_id,
            "entry_type": device.entry_type,
        }
    return row


_KEYS = {
    "floors": ("floor_id",),
    "labels": ("label_id",),
    "areas": ("area_id",),
    "devices": ("device_id",),
    "entities": ("entity_id",),
    "area_labels": ("area_id", "label_id"),
    "device_labels": ("device_id", "label_id"),
    "entity_labels": ("entity_id", "label_id"),
}


def read_content_blocking(path: Path) -> Content:
    """Read every table of the file through a read-only connection of its own."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        content: Content = {}
        for table, key in _KEYS.items():
            rows = [dict(row) for row in connection.execute(f"SELECT * FROM {table}")]
            content[table] = {
                row[key[0]] if len(key) == 1 else tuple(row[k] for k in key): row
                for row in rows
            }
        return content
    finally:
        connection.close()


async def read_content(path: Path) -> Content:
    """Read every table of the file, in a thread, as another program would."""
    return await asyncio.to_thread(read_content_blocking, path)


async def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Run `sql` on a read-write connection of its own, in a thread."""

    def run() -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(path)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    return await asyncio.to_thread(run)


def run_sql(path: Path, *statements: str) -> None:
    """Run `statements` on a connection of its own and commit, as another program would."""
    connection = sqlite3.connect(path)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


async def settle(hass: HomeAssistant) -> None:
    """Wait until the mirror has written every change made so far."""
    await hass.async_block_till_done(wait_background_tasks=True)


async def assert_mirrored(hass: HomeAssistant, mirror: RegistryMirror) -> None:
    """Wait for the mirror, then check the file holds exactly the registries."""
    await settle(hass)
    assert mirror.healthy, mirror.last_error
    expected = expected_content(hass)
    assert await read_content(mirror.path) == expected
    assert mirror.rows == {table: len(rows) for table, rows in expected.items()}


async def retry_now(hass: HomeAssistant, seconds: float = 31) -> None:
    """Let `seconds` pass (past the 30 s the docs give), and the mirror act on them."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await settle(hass)


def issue(hass: HomeAssistant) -> ir.IssueEntry | None:
    """The mirror's repair issue, if it is raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID)


# FS_IOC_GETFLAGS / FS_IOC_SETFLAGS and FS_IMMUTABLE_FL from <linux/fs.h>; the kernel
# reads and writes an int there, whatever size the request numbers encode.
_GET_FLAGS = 0x80086601
_SET_FLAGS = 0x40086602
_IMMUTABLE = 0x10


def _set_immutable(path: Path, immutable: bool) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        flags = bytearray(struct.pack("i", 0))
        fcntl.ioctl(descriptor, _GET_FLAGS, flags)
        (value,) = struct.unpack("i", flags)
        value = value | _IMMUTABLE if immutable else value & ~_IMMUTABLE
        fcntl.ioctl(descriptor, _SET_FLAGS, bytearray(struct.pack("i", value)))
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """Make files or folders immutable: nobody, root included, may write to them.

    Unlike permission bits this also stops root (the tests run as root in CI) and
    writes through files that are already open, as a file system that went
    read-only would. It needs the CAP_LINUX_IMMUTABLE capability and a file system
    with the flag (ext4, xfs, btrfs, tmpfs).
    """
    done: list[Path] = []
    try:
        for path in paths:
            try:
                _set_immutable(path, True)
            except OSError as err:
                pytest.fail(
                    f"cannot make {path} immutable ({err}): this test needs root (or "
                    "CAP_LINUX_IMMUTABLE) and a file system with the immutable flag"
                )
            done.append(path)
        yield
    finally:
        for path in done:
            _set_immutable(path, False)


def with_suffix(path: Path, suffix: str) -> Path:
    """One of the files SQLite keeps beside the database: `suffix` is -wal or -shm."""
    return path.with_name(path.name + suffix)


def add_config_entry(hass: HomeAssistant) -> str:
    """Add a config entry that devices and entities can belong to; return its id."""
    entry = MockConfigEntry(domain="demo", title="Demo")
    entry.add_to_hass(hass)
    return entry.entry_id


@contextlib.asynccontextmanager
async def running_mirror(
    hass: HomeAssistant, path: Path
) -> AsyncIterator[RegistryMirror]:
    """A started mirror at `path`, stopped on leaving."""
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        yield mirror
    finally:
        await mirror.async_stop()


def mirror_path(tmp_path: Path) -> Path:
    """A path for a mirror in a folder of its own.

    Not in tmp_path itself: that is also the test's Home Assistant config folder.
    """
    folder = tmp_path / "mirror"
    folder.mkdir()
    return folder / "registry.db"


@pytest.fixture
def config_entry_id(hass: HomeAssistant) -> str:
    """A config entry that devices and entities can belong to."""
    return add_config_entry(hass)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's mirror lives."""
    return mirror_path(tmp_path)


@pytest.fixture
async def mirror(hass: HomeAssistant, path: Path) -> AsyncIterator[RegistryMirror]:
    """A started mirror at `path`, stopped after the test."""
    async with running_mirror(hass, path) as mirror:
        yield mirror


def populate(hass: HomeAssistant, config_entry_id: str) -> None:
    """Fill every registry, using each field the mirror writes at least once."""
    floor_registry = fr.async_get(hass)
    label_registry = lr.async_get(hass)
    area_registry = ar.async_get(hass)
    device_registry = dr.async_get(hass)
    entity_registry = er.async_get(hass)

    ground = floor_registry.async_create("Ground floor", level=0, icon="mdi:home")
    floor_registry.async_create("Attic", level=2)
    critical = label_registry.async_create(
        "Critical", color="red", icon="mdi:alert", description="Watch these"
    )
    energy = label_registry.async_create("Energy")
    kitchen = area_registry.async_create(
        "Kitchen", floor_id=ground.floor_id, labels={energy.label_id}, icon="mdi:pot"
    )
    area_registry.async_create("Garden", picture="/local/garden.jpg")

    hub = device_registry.async_get_or_create(
        config_entry_id=config_entry_id,
        identifiers={("demo", "hub")},
        name="Hub",
        manufacturer="Acme",
        model="H1",
        model_id="h1-eu",
        serial_number="123",
        sw_version="1.2.3",
        hw_version="rev B",
        entry_type=dr.DeviceEntryType.SERVICE,
    )
    thermostat = device_registry.async_get_or_create(
        config_entry_id=config_entry_id,
        identifiers={("demo", "thermostat")},
        name="Thermostat",
        manufacturer="Acme",
        via_device_id=hub.id,
    )
    device_registry.async_update_device(
        thermostat.id,
        area_id=kitchen.id,
        name_by_user="Kitchen thermostat",
        labels={critical.label_id, energy.label_id},
    )
    channel = device_registry.async_get_or_create_child(
        config_entry_id=config_entry_id,
        identifiers={("demo", "thermostat-channel-2")},
        name="Channel 2",
        parent_device_id=thermostat.id,
    )
    device_registry.async_update_child_device(channel.id, labels={energy.label_id})

    entity_registry.async_get_or_create(
        "sensor",
        "demo",
        "kitchen-temperature",
        suggested_object_id="kitchen_temperature",
        config_entry=hass.config_entries.async_get_entry(config_entry_id),
        device_id=thermostat.id,
        original_name="Temperature",
        has_entity_name=True,
        original_device_class="temperature",
        unit_of_measurement="°C",
    )
    entity_registry.async_get_or_create(
        "sensor",
        "demo",
        "hub-rssi",
        suggested_object_id="hub_rssi",
        device_id=hub.id,
        original_name="Signal",
        entity_category=EntityCategory.DIAGNOSTIC,
        disabled_by=er.RegistryEntryDisabler.INTEGRATION,
        hidden_by=er.RegistryEntryHider.INTEGRATION,
    )
    lamp = entity_registry.async_get_or_create(
        "light", "demo", "garden-lamp", suggested_object_id="garden_lamp"
    )
    entity_registry.async_update_entity(
        lamp.entity_id,
        name="Garden lamp",
        area_id="garden",
        labels={critical.label_id},
        device_class="lamp",
    )
