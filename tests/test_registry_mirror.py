"""The registry mirror against real registries and real SQLite files: start, live, stop.

The expected content of the file is worked out here from the registries' own entries,
independently of the mirror's code, and compared with what another connection reads
from the file. The helpers are shared with the other tests/test_registry_mirror_*.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
from datetime import UTC, datetime
import fcntl
import os
from pathlib import Path
import sqlite3
import struct
import time
from typing import Any

import attr
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    issue_registry as ir,
    label_registry as lr,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import DOMAIN
from custom_components.ha_ingestor.registry_mirror import RegistryMirror
from custom_components.ha_ingestor.registry_mirror_schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    device_rows,
)

ENTRY_ID = "mirror_entry"
ISSUE_ID = f"mirror_unavailable_{ENTRY_ID}"

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


def _with_suffix(path: Path, suffix: str) -> Path:
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


# The same three fixtures are in each tests/test_registry_mirror_*.py that uses them.
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


async def test_start_mirrors_every_registry(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A first start writes every entry of the five registries, with their labels."""
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    assert (mirror.healthy, mirror.last_sync, mirror.rows) == (False, None, {})
    await mirror.async_start()
    try:
        await assert_mirrored(hass, mirror)
        assert mirror.last_error is None
        assert mirror.last_sync is not None
        content = await read_content(path)
        # The populated values really are there, not only equal to an oracle.
        assert {row["level"] for row in content["floors"].values()} == {0, 2}
        devices = {row["name"]: row for row in content["devices"].values()}
        assert devices["Hub"]["entry_type"] == "service"
        assert devices["Thermostat"]["via_device_id"] == devices["Hub"]["device_id"]
        channel = devices["Channel 2"]
        assert channel["parent_device_id"] == devices["Thermostat"]["device_id"]
        assert channel["manufacturer"] is None
        rssi = content["entities"]["sensor.hub_rssi"]
        assert (rssi["entity_category"], rssi["disabled_by"], rssi["hidden_by"]) == (
            "diagnostic",
            "integration",
            "integration",
        )
        assert content["entities"]["light.garden_lamp"]["area_id"] == "garden"
        assert set(content["device_labels"]) == {
            (devices["Thermostat"]["device_id"], "critical"),
            (devices["Thermostat"]["device_id"], "energy"),
            (channel["device_id"], "energy"),
        }
        assert await query(path, "PRAGMA journal_mode") == [("wal",)]
        assert await query(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
        assert await query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert issue(hass) is None
    finally:
        await mirror.async_stop()


async def test_a_composite_device_id_has_no_row(
    hass: HomeAssistant, config_entry_id: str
) -> None:
    """A device shared by two entries was split in 2026.8; its id has no row.

    The registry makes a composite up for that id from the parts, which have rows.
    """
    registry = dr.async_get(hass)
    part = registry.async_get_or_create(
        config_entry_id=config_entry_id, identifiers={("demo", "part")}, name="Part"
    )
    # A part as the split leaves it, referring to the id the shared device had.
    registry._devices[part.id] = attr.evolve(part, composite_device_id="shared")
    assert registry.async_get("shared") is not None
    assert list(device_rows(hass, ["shared", part.id])) == [part.id]
    assert list(device_rows(hass, None)) == [part.id]


async def test_live_changes_to_every_registry(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror
) -> None:
    """Creations, updates and removals in each registry reach the file as they happen."""
    await assert_mirrored(hass, mirror)
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)

    floor_registry = fr.async_get(hass)
    label_registry = lr.async_get(hass)
    area_registry = ar.async_get(hass)
    device_registry = dr.async_get(hass)
    entity_registry = er.async_get(hass)

    floor_registry.async_update("ground_floor", name="Ground", level=-1)
    label_registry.async_update("critical", color="orange")
    area_registry.async_update("kitchen", name="Cooking", labels={"critical"})
    hub = device_registry.async_get_device_by_identifier(
        ("demo", "hub"), config_entry_id
    )
    assert hub is not None
    device_registry.async_update_device(hub.id, sw_version="2.0", area_id="garden")
    entity_registry.async_update_entity(
        "sensor.kitchen_temperature", unit_of_measurement="K", labels={"energy"}
    )
    await assert_mirrored(hass, mirror)

    # Renamed: the row moves to the new entity id, with its labels.
    entity_registry.async_update_entity(
        "light.garden_lamp", new_entity_id="light.terrace_lamp"
    )
    await assert_mirrored(hass, mirror)
    content = await read_content(mirror.path)
    assert "light.garden_lamp" not in content["entities"]
    assert ("light.terrace_lamp", "critical") in content["entity_labels"]

    # Removals that Home Assistant cascades to other registries: a removed label
    # leaves entities, devices and areas; a removed floor leaves its areas; a removed
    # device takes its child device and its entities along.
    label_registry.async_delete("critical")
    floor_registry.async_delete("ground_floor")
    area_registry.async_delete("garden")
    thermostat = device_registry.async_get_device_by_identifier(
        ("demo", "thermostat"), config_entry_id
    )
    assert thermostat is not None
    device_registry.async_remove_device(thermostat.id)
    await assert_mirrored(hass, mirror)
    content = await read_content(mirror.path)
    assert "critical" not in {label for _, label in content["entity_labels"]}
    assert content["areas"]["kitchen"]["floor_id"] is None
    assert [row["name"] for row in content["devices"].values()] == ["Hub"]
    assert "sensor.kitchen_temperature" not in content["entities"]

    for entity_id in list(entity_registry.entities):
        entity_registry.async_remove(entity_id)
    device_registry.async_remove_device(hub.id)
    for area in list(area_registry.async_list_areas()):
        area_registry.async_delete(area.id)
    for floor in list(floor_registry.async_list_floors()):
        floor_registry.async_delete(floor.floor_id)
    for label in list(label_registry.async_list_labels()):
        label_registry.async_delete(label.label_id)
    await assert_mirrored(hass, mirror)
    assert set(mirror.rows.values()) == {0}


async def test_changes_made_while_stopped_are_reconciled_at_start(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """Entries created, changed or removed while the mirror was off: fixed at start."""
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    await assert_mirrored(hass, mirror)
    await mirror.async_stop()
    before = await read_content(path)

    entity_registry = er.async_get(hass)
    entity_registry.async_remove("sensor.hub_rssi")
    entity_registry.async_update_entity("light.garden_lamp", labels={"energy"})
    lr.async_get(hass).async_delete("critical")
    ar.async_get(hass).async_create("Cellar", floor_id="attic")
    fr.async_get(hass).async_update("attic", name="Loft")
    await hass.async_block_till_done()
    # Stopped means stopped: nothing of this reached the file.
    assert await read_content(path) == before

    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        # async_start returns with the file resynced, without waiting for anything.
        assert await read_content(path) == expected_content(hass)
        await assert_mirrored(hass, mirror)
        content = await read_content(path)
        assert "sensor.hub_rssi" not in content["entities"]
        assert "critical" not in content["labels"]
        assert content["floors"]["attic"]["name"] == "Loft"
        assert content["entity_labels"] == {
            ("light.garden_lamp", "energy"): {
                "entity_id": "light.garden_lamp",
                "label_id": "energy",
            }
        }
    finally:
        await mirror.async_stop()


async def test_stop_writes_pending_changes_and_is_idempotent(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """Changes fired just before stopping are in the file once async_stop returns."""
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    populate(hass, config_entry_id)  # no waiting: the changes are still pending
    await mirror.async_stop()
    assert await read_content(path) == expected_content(hass)
    await mirror.async_stop()
    # No longer listening.
    lr.async_get(hass).async_create("After stop")
    await settle(hass)
    assert "after_stop" not in (await read_content(path))["labels"]


async def test_final_write_stops_the_mirror(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """When Home Assistant stops, pending changes are written and the file closed."""
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    populate(hass, config_entry_id)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()
    # Closed: the write-ahead log was checkpointed and removed.
    assert not _with_suffix(path, "-wal").exists()
    assert await read_content(path) == expected_content(hass)
    await mirror.async_stop()  # the unload that may follow


async def test_resync_of_5000_entities_is_fast(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A house of 500 devices and 5,000 entities is mirrored in one quick transaction."""
    device_registry = dr.async_get(hass)
    entity_registry = er.async_get(hass)
    label_registry = lr.async_get(hass)
    labels = [label_registry.async_create(f"Label {i}").label_id for i in range(20)]
    for d in range(500):
        device = device_registry.async_get_or_create(
            config_entry_id=config_entry_id,
            identifiers={("demo", f"device-{d}")},
            name=f"Device {d}",
            manufacturer="Acme",
        )
        for e in range(10):
            entity = entity_registry.async_get_or_create(
                "sensor",
                "demo",
                f"sensor-{d}-{e}",
                suggested_object_id=f"sensor_{d}_{e}",
                device_id=device.id,
                unit_of_measurement="°C",
            )
            if e % 3 == 0:
                entity_registry.async_update_entity(
                    entity.entity_id, labels={labels[(d + e) % 20]}
                )
    await hass.async_block_till_done()

    mirror = RegistryMirror(hass, ENTRY_ID, path)
    started = time.perf_counter()
    await mirror.async_start()
    first = time.perf_counter() - started
    try:
        assert mirror.rows["entities"] == 5_000
        await assert_mirrored(hass, mirror)
    finally:
        await mirror.async_stop()

    # Unchanged since: the resync compares, and writes no page into the log.
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    started = time.perf_counter()
    await mirror.async_start()
    again = time.perf_counter() - started
    try:
        assert mirror.rows["entity_labels"] == 2_000
        assert _with_suffix(path, "-wal").stat().st_size == 0
    finally:
        await mirror.async_stop()
    # Generous bounds for slow CI machines; measured ~0.1 s on a laptop.
    assert first < 5, first
    assert again < 5, again
