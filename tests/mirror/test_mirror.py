"""The registry mirror's lifecycle: start, live changes, stop, faults, retry, repair issue.

Each fault is real: the file is really deleted, really made unwritable (the immutable
flag, which stops root too, and writes through already open files), really locked by
another connection. Home Assistant goes on, a repair issue names the file and the
error, and the mirror is exact again once the file can be written.

Last, any sequence of registry changes and restarts that Hypothesis draws leaves the
file equal to the registries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
from dataclasses import dataclass
import json
from pathlib import Path
import sqlite3
import threading
import time
from typing import NoReturn

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import CoreState, Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import (
    area_registry as ar,
    category_registry as cr,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    issue_registry as ir,
    label_registry as lr,
)
from homeassistant.helpers.typing import UNDEFINED
from hypothesis import given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import async_test_home_assistant

from custom_components.ha_ingestor.mirror.mirror import RegistryMirror
from custom_components.ha_ingestor.mirror.rows import READERS
from custom_components.ha_ingestor.mirror.tables import LABELS

from .conftest import (
    ENTRY_ID,
    REPOSITORY,
    add_config_entry,
    assert_mirrored,
    expected_content,
    immutable,
    issue,
    mirror_path,
    populate,
    read_content,
    retry_now,
    settle,
    with_suffix,
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
        assert issue(hass) is None
    finally:
        await mirror.async_stop()


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


async def test_names_utf8_cannot_carry_are_mirrored_as_it_can(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror
) -> None:
    """A device named by what it reports, with bytes decoded by `surrogateescape`.

    SQLite takes UTF-8 only: the name failed every transaction, and the mirror's
    task with it, while `healthy` stayed true. A pair of halves becomes its
    character, a lone half U+FFFD; later changes are mirrored as ever.
    """
    devices = dr.async_get(hass)
    odd = devices.async_get_or_create(
        config_entry_id=config_entry_id,
        identifiers={("demo", "odd")},
        name="Sensor \udcff\ud83d\ude00",
    )
    await settle(hass)
    fine = devices.async_get_or_create(
        config_entry_id=config_entry_id, identifiers={("demo", "fine")}, name="Fine"
    )
    await settle(hass)
    assert mirror.healthy, mirror.last_error
    content = await read_content(mirror.path)
    assert content["devices"][odd.id]["name"] == "Sensor \ufffd\U0001f600"
    assert content["devices"][fine.id]["name"] == "Fine"
    # Unchanged, the row is not written again: the next transaction compares it.
    devices.async_update_device(fine.id, name_by_user="Mine")
    await settle(hass)
    assert (await read_content(mirror.path))["devices"][fine.id]["name_by_user"] == (
        "Mine"
    )
    # Nor can Home Assistant's own registry file hold the name (orjson refuses it).
    devices.async_remove_device(odd.id)


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
    assert not with_suffix(path, "-wal").exists()
    assert await read_content(path) == expected_content(hass)
    await mirror.async_stop()  # the unload that may follow


# ---------------------------------------------------------------------------------------
# Faults, retries and the repair issue.


def _files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")]


async def assert_failing(
    hass: HomeAssistant, mirror: RegistryMirror, error: str
) -> None:
    """The mirror is down with `error`, and a repair issue says so."""
    assert not mirror.healthy
    assert mirror.last_error is not None
    assert error in mirror.last_error
    raised = issue(hass)
    assert raised is not None
    assert raised.translation_key == "mirror_unavailable"
    assert raised.translation_placeholders == {
        "path": str(mirror.path),
        "error": mirror.last_error,
    }


async def test_deleted_folder_raises_an_issue_until_it_is_back(
    hass: HomeAssistant, config_entry_id: str, tmp_path: Path
) -> None:
    """A file that cannot be created: an issue, and a full resync once it can."""
    path = mirror_path(tmp_path)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        for file in _files(path):
            file.unlink()
        path.parent.rmdir()
        populate(hass, config_entry_id)
        await settle(hass)
        await assert_failing(hass, mirror, "unable to open database file")

        path.parent.mkdir()
        await retry_now(hass)
        await assert_mirrored(hass, mirror)
        assert issue(hass) is None
    finally:
        await mirror.async_stop()


async def test_file_made_read_only_while_running(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """Writes refused through the open file: an issue, then a resync when allowed."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    # The database and its log: commits go to the log.
    with immutable(path, path.with_name(path.name + "-wal")):
        er.async_get(hass).async_update_entity("light.garden_lamp", name="Lamp")
        await settle(hass)
        await assert_failing(hass, mirror, "")
        failed_with = mirror.last_error
        # Retries fail as long as the file stays read-only; changes go on meanwhile.
        lr.async_get(hass).async_create("While read-only")
        await retry_now(hass)
        await assert_failing(hass, mirror, "")
    assert failed_with is not None
    assert "disk I/O error" in failed_with or "readonly" in failed_with

    await retry_now(hass)
    await assert_mirrored(hass, mirror)
    assert issue(hass) is None
    content = await read_content(path)
    assert content["entities"]["light.garden_lamp"]["name"] == "Lamp"
    assert "while_read_only" in content["labels"]


async def test_read_only_at_start_does_not_stop_the_start(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A folder nothing can be created in: async_start returns, the issue is raised.

    The mirror tries again 30 seconds later, not before.
    """
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    with immutable(path.parent):
        await mirror.async_start()
        try:
            await assert_failing(hass, mirror, "unable to open database file")
            assert not await asyncio.to_thread(path.exists)
        except BaseException:
            await mirror.async_stop()
            raise
    try:
        await retry_now(hass, seconds=29)
        await assert_failing(hass, mirror, "unable to open database file")
        await retry_now(hass)
        await assert_mirrored(hass, mirror)
        assert issue(hass) is None
    finally:
        await mirror.async_stop()


async def test_existing_file_made_read_only_while_stopped(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """An existing mirror that cannot be opened for writing is reported, not used."""
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    await mirror.async_stop()
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    try:
        with immutable(path):
            await mirror.async_start()
            await assert_failing(hass, mirror, "readonly")
        await retry_now(hass)
        await assert_mirrored(hass, mirror)
    finally:
        await mirror.async_stop()


@contextlib.contextmanager
def _state_change_counter(hass: HomeAssistant) -> Iterator[list[Event]]:
    seen: list[Event] = []

    @callback
    def count(event: Event) -> None:
        seen.append(event)

    unsubscribe = hass.bus.async_listen("state_changed", count)
    try:
        yield seen
    finally:
        unsubscribe()


async def test_locked_by_another_program(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """Another connection holding the write lock: Home Assistant does not wait for it."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    locker = await asyncio.to_thread(
        sqlite3.connect, path, isolation_level=None, check_same_thread=False
    )
    try:
        await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
        er.async_get(hass).async_update_entity("light.garden_lamp", name="Locked")
        await asyncio.sleep(0.1)
        # The mirror waits for the lock in its own thread, and the event loop runs
        # on: state changes are handled at once (the ingestion path).
        waiting = mirror._task
        assert waiting is not None
        assert not waiting.done()
        with _state_change_counter(hass) as seen:
            started = time.perf_counter()
            for i in range(100):
                hass.states.async_set("sensor.busy", str(i))
            await hass.async_block_till_done()
            assert len(seen) == 100
            assert time.perf_counter() - started < 0.5
        assert not waiting.done()

        await settle(hass)
        await assert_failing(hass, mirror, "database is locked")
        # Still locked at the retry: still failing, one issue.
        await retry_now(hass)
        await assert_failing(hass, mirror, "database is locked")
    finally:
        await asyncio.to_thread(locker.execute, "ROLLBACK")
        await asyncio.to_thread(locker.close)

    await retry_now(hass)
    await assert_mirrored(hass, mirror)
    assert issue(hass) is None
    assert (await read_content(path))["entities"]["light.garden_lamp"]["name"] == (
        "Locked"
    )


async def test_corrupt_file_until_deleted(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A damaged file is reported, left alone, and replaced once the user deletes it."""
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    await mirror.async_stop()
    # Overwrite page 1 after the header: sqlite_schema's root page.
    with path.open("r+b") as file:
        file.seek(100)
        file.write(b"\xa5" * 3_000)
    damaged = await asyncio.to_thread(path.read_bytes)

    mirror = RegistryMirror(hass, ENTRY_ID, path)
    try:
        await mirror.async_start()
        await assert_failing(hass, mirror, "malformed")
        await retry_now(hass)
        await assert_failing(hass, mirror, "malformed")
        assert await asyncio.to_thread(path.read_bytes) == damaged

        await asyncio.to_thread(path.unlink)
        await retry_now(hass)
        await assert_mirrored(hass, mirror)
        assert issue(hass) is None
    finally:
        await mirror.async_stop()


async def test_another_programs_file_is_never_written(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A file that is not a mirror, found at start or swapped in later, stays as it is."""
    content = b"homeassistant:\n  name: Home\n" * 100
    await asyncio.to_thread(path.write_bytes, content)
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        await assert_failing(hass, mirror, "file is not a database")
        assert await asyncio.to_thread(path.read_bytes) == content
        assert sorted(file.name for file in path.parent.iterdir()) == [path.name]

        await asyncio.to_thread(path.unlink)
        await retry_now(hass)
        await assert_mirrored(hass, mirror)

        # Replaced while running by another program's database.
        other = path.with_name("other.db")
        connection = sqlite3.connect(other)
        connection.execute("CREATE TABLE states (state_id INTEGER PRIMARY KEY)")
        connection.close()
        other.replace(path)
        lr.async_get(hass).async_create("After swap")
        await settle(hass)
        await assert_failing(hass, mirror, "another program's SQLite database")
        assert await asyncio.to_thread(_tables, path) == ["states"]
    finally:
        await mirror.async_stop()
    assert expected_content(hass)["labels"]["after_swap"]


def _tables(path: Path) -> list[str]:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("SELECT name FROM sqlite_schema")]
    finally:
        connection.close()


async def test_an_unexpected_fault_is_shown_and_retried(
    hass: HomeAssistant,
    config_entry_id: str,
    mirror: RegistryMirror,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault that is not the file's (here a registry read that raises) is no end.

    It ended the mirror's task unseen, with `healthy` still true; now the repair issue
    names it, and the next retry mirrors every change made meanwhile.
    """
    label_rows = READERS[LABELS]

    def failing(hass: HomeAssistant, keys: object) -> NoReturn:
        raise RuntimeError("a registry entry that cannot be read")

    monkeypatch.setitem(READERS, LABELS, failing)
    lr.async_get(hass).async_create("During the fault")
    await settle(hass)
    await assert_failing(hass, mirror, "a registry entry that cannot be read")
    monkeypatch.setitem(READERS, LABELS, label_rows)
    await retry_now(hass)
    await assert_mirrored(hass, mirror)
    assert issue(hass) is None


async def test_stop_while_failing_closes_everything(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """Stopping a failing mirror removes its issue and leaves no thread or timer."""
    await asyncio.to_thread(path.write_bytes, b"not a database, not empty")
    threads = threading.active_count()
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    assert issue(hass) is not None
    populate(hass, config_entry_id)
    await mirror.async_stop()
    assert issue(hass) is None
    assert threading.active_count() == threads


def test_repair_issue_is_translated() -> None:
    """strings.json and en.json carry the issue, with the placeholders it is given."""
    for file in ("strings.json", "translations/en.json"):
        strings = json.loads(
            (REPOSITORY / "custom_components" / "ha_ingestor" / file).read_text()
        )
        issue_strings = strings["issues"]["mirror_unavailable"]
        assert issue_strings["title"]
        assert "{path}" in issue_strings["description"]
        assert "{error}" in issue_strings["description"]


# ---------------------------------------------------------------------------------------
# Random sequences of registry changes: after each one, the file equals the registries.
#
# Hypothesis draws create, update and remove operations across the five registries
# (child devices, renamed entities, labels, floors and Home Assistant's own cascades
# included), and restarts of the mirror with changes made while it was stopped.
# Entries are picked by position among those that exist, so that most operations do
# something; one that Home Assistant refuses (a name in use, say) changes nothing,
# which the check after it covers too.


_NAMES = st.sampled_from(["Alpha", "Beta", "Gamma", "Delta"])
_OPTIONAL_NAMES = st.none() | _NAMES
_PICK = st.integers(0, 7)  # an existing entry, by position (modulo how many exist)
_LABEL_PICKS = st.frozensets(_PICK, max_size=3)


@dataclass(frozen=True)
class CreateFloor:
    """Create a floor."""

    name: str
    level: int | None


@dataclass(frozen=True)
class UpdateFloor:
    """Rename a floor or change its level."""

    floor: int
    name: str | None
    level: int | None


@dataclass(frozen=True)
class CreateLabel:
    """Create a label."""

    name: str
    color: str | None


@dataclass(frozen=True)
class UpdateLabel:
    """Rename a label or change its color and description."""

    label: int
    name: str | None
    color: str | None
    description: str | None


@dataclass(frozen=True)
class CreateArea:
    """Create an area, maybe on a floor, maybe with labels."""

    name: str
    floor: int | None
    labels: frozenset[int]


@dataclass(frozen=True)
class UpdateArea:
    """Change an area's name, floor and labels."""

    area: int
    name: str | None
    floor: int | None
    labels: frozenset[int]


@dataclass(frozen=True)
class CreateDevice:
    """Create a device (or restore a removed one), maybe as a child of another."""

    key: int
    parent: int | None
    via: int | None
    model: str | None


@dataclass(frozen=True)
class UpdateDevice:
    """Change what a user can change on a device."""

    device: int
    name_by_user: str | None
    area: int | None
    labels: frozenset[int]
    disabled: bool


@dataclass(frozen=True)
class CreateEntity:
    """Create an entity (or restore a removed one), maybe on a device."""

    key: int
    domain: str
    device: int | None
    original_name: str | None


@dataclass(frozen=True)
class UpdateEntity:
    """Change what a user can change on an entity, maybe its entity id."""

    entity: int
    name: str | None
    area: int | None
    labels: frozenset[int]
    hidden: bool
    rename: bool


@dataclass(frozen=True)
class Remove:
    """Remove an entry of one registry."""

    registry: str
    entry: int


type Change = (
    CreateFloor
    | UpdateFloor
    | CreateLabel
    | UpdateLabel
    | CreateArea
    | UpdateArea
    | CreateDevice
    | UpdateDevice
    | CreateEntity
    | UpdateEntity
    | Remove
)


@dataclass(frozen=True)
class Burst:
    """Make these changes one after the other, without waiting for the mirror."""

    changes: list[Change]


@dataclass(frozen=True)
class Restart:
    """Stop the mirror, make these changes, start it again."""

    changes: list[Change]


_CHANGES: st.SearchStrategy[Change] = st.one_of(
    st.builds(CreateFloor, _NAMES, st.none() | st.integers(-1, 3)),
    st.builds(UpdateFloor, _PICK, _OPTIONAL_NAMES, st.none() | st.integers(-1, 3)),
    st.builds(CreateLabel, _NAMES, st.sampled_from([None, "red", "blue"])),
    st.builds(
        UpdateLabel,
        _PICK,
        _OPTIONAL_NAMES,
        st.sampled_from([None, "green"]),
        st.sampled_from([None, "", "Watch"]),
    ),
    st.builds(CreateArea, _NAMES, st.none() | _PICK, _LABEL_PICKS),
    st.builds(UpdateArea, _PICK, _OPTIONAL_NAMES, st.none() | _PICK, _LABEL_PICKS),
    st.builds(
        CreateDevice,
        st.integers(0, 5),
        st.none() | _PICK,
        st.none() | _PICK,
        st.sampled_from([None, "M1"]),
    ),
    st.builds(
        UpdateDevice,
        _PICK,
        _OPTIONAL_NAMES,
        st.none() | _PICK,
        _LABEL_PICKS,
        st.booleans(),
    ),
    st.builds(
        CreateEntity,
        st.integers(0, 7),
        st.sampled_from(["sensor", "light"]),
        st.none() | _PICK,
        _OPTIONAL_NAMES,
    ),
    st.builds(
        UpdateEntity,
        _PICK,
        _OPTIONAL_NAMES,
        st.none() | _PICK,
        _LABEL_PICKS,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        Remove,
        st.sampled_from(["floor", "label", "area", "device", "entity"]),
        _PICK,
    ),
)


_STEPS = st.lists(
    st.one_of(
        st.builds(Burst, st.lists(_CHANGES, min_size=1, max_size=4)),
        st.builds(Restart, st.lists(_CHANGES, max_size=4)),
    ),
    min_size=1,
    max_size=12,
)


def _pick[T](entries: list[T], position: int | None) -> T | None:
    if position is None or not entries:
        return None
    return entries[position % len(entries)]


class _Registries:
    """The five registries, and their entries in a stable order to pick from."""

    def __init__(self, hass: HomeAssistant, config_entry_id: str) -> None:
        self.hass = hass
        self.config_entry_id = config_entry_id
        self.floors = fr.async_get(hass)
        self.labels = lr.async_get(hass)
        self.areas = ar.async_get(hass)
        self.devices = dr.async_get(hass)
        self.entities = er.async_get(hass)

    def floor_ids(self) -> list[str]:
        return sorted(floor.floor_id for floor in self.floors.async_list_floors())

    def label_ids(self, picks: frozenset[int]) -> set[str]:
        labels = sorted(label.label_id for label in self.labels.async_list_labels())
        return {label for pick in picks if (label := _pick(labels, pick)) is not None}

    def area_ids(self) -> list[str]:
        return sorted(area.id for area in self.areas.async_list_areas())

    def all_devices(self) -> list[dr.AnyDeviceEntry]:
        devices: list[dr.AnyDeviceEntry] = [
            *self.devices.devices,
            *self.devices.child_devices,
        ]
        return sorted(devices, key=lambda device: device.id)

    def main_devices(self) -> list[dr.DeviceEntry]:
        return sorted(self.devices.devices, key=lambda device: device.id)

    def entity_ids(self) -> list[str]:
        return sorted(self.entities.entities)

    def apply(self, change: Change) -> None:
        """Make `change`; one that Home Assistant refuses changes nothing."""
        with contextlib.suppress(ValueError, HomeAssistantError):
            self._apply(change)

    def _apply(self, change: Change) -> None:  # noqa: PLR0912
        match change:
            case CreateFloor(name, level):
                self.floors.async_create(name, level=level)
            case UpdateFloor(floor, name, level):
                if (floor_id := _pick(self.floor_ids(), floor)) is not None:
                    self.floors.async_update(
                        floor_id,
                        name=name or "Floor",
                        level=UNDEFINED if level is None else level,
                    )
            case CreateLabel(name, color):
                self.labels.async_create(name, color=color)
            case UpdateLabel(label, name, color, description):
                for label_id in self.label_ids(frozenset({label})):
                    self.labels.async_update(
                        label_id,
                        name=name or "Label",
                        color=color,
                        description=description,
                    )
            case CreateArea(name, floor, labels):
                self.areas.async_create(
                    name,
                    floor_id=_pick(self.floor_ids(), floor),
                    labels=self.label_ids(labels),
                )
            case UpdateArea(area, name, floor, labels):
                if (area_id := _pick(self.area_ids(), area)) is not None:
                    self.areas.async_update(
                        area_id,
                        name=name or "Area",
                        floor_id=_pick(self.floor_ids(), floor),
                        labels=self.label_ids(labels),
                    )
            case CreateDevice(key, parent, via, model):
                self._create_device(key, parent, via, model)
            case UpdateDevice():
                self._update_device(change)
            case CreateEntity(key, domain, device, original_name):
                owner = _pick(self.all_devices(), device)
                self.entities.async_get_or_create(
                    domain,
                    "demo",
                    f"entity-{key}",
                    config_entry=self.hass.config_entries.async_get_entry(
                        self.config_entry_id
                    ),
                    device_id=None if owner is None else owner.id,
                    original_name=original_name,
                    has_entity_name=owner is not None,
                )
            case UpdateEntity():
                self._update_entity(change)
            case Remove(registry, entry):
                self._remove(registry, entry)

    def _create_device(
        self, key: int, parent: int | None, via: int | None, model: str | None
    ) -> None:
        if (parent_device := _pick(self.main_devices(), parent)) is not None:
            self.devices.async_get_or_create_child(
                config_entry_id=self.config_entry_id,
                identifiers={("demo", f"device-{key}")},
                name=f"Part {key}",
                parent_device_id=parent_device.id,
            )
            return
        via_device = _pick(self.main_devices(), via)
        self.devices.async_get_or_create(
            config_entry_id=self.config_entry_id,
            identifiers={("demo", f"device-{key}")},
            name=f"Device {key}",
            manufacturer="Acme",
            model=model,
            via_device_id=None if via_device is None else via_device.id,
        )

    def _update_device(self, change: UpdateDevice) -> None:
        device = _pick(self.all_devices(), change.device)
        if device is None:
            return
        disabled_by = dr.DeviceEntryDisabler.USER if change.disabled else None
        area_id = _pick(self.area_ids(), change.area)
        labels = self.label_ids(change.labels)
        if isinstance(device, dr.ChildDeviceEntry):
            self.devices.async_update_child_device(
                device.id,
                name_by_user=change.name_by_user,
                area_id=area_id,
                labels=labels,
                disabled_by=disabled_by,
            )
        else:
            self.devices.async_update_device(
                device.id,
                name_by_user=change.name_by_user,
                area_id=area_id,
                labels=labels,
                disabled_by=disabled_by,
            )

    def _update_entity(self, change: UpdateEntity) -> None:
        entity_id = _pick(self.entity_ids(), change.entity)
        if entity_id is None:
            return
        self.entities.async_update_entity(
            entity_id,
            name=change.name,
            area_id=_pick(self.area_ids(), change.area),
            labels=self.label_ids(change.labels),
            hidden_by=er.RegistryEntryHider.USER if change.hidden else None,
            new_entity_id=f"{entity_id}_renamed" if change.rename else entity_id,
        )

    def _remove(self, registry: str, entry: int) -> None:
        match registry:
            case "floor":
                if (floor_id := _pick(self.floor_ids(), entry)) is not None:
                    self.floors.async_delete(floor_id)
            case "label":
                for label_id in self.label_ids(frozenset({entry})):
                    self.labels.async_delete(label_id)
            case "area":
                if (area_id := _pick(self.area_ids(), entry)) is not None:
                    self.areas.async_delete(area_id)
            case "device":
                if (device := _pick(self.all_devices(), entry)) is not None:
                    self.devices.async_remove_device(device.id)
            case "entity":
                if (entity_id := _pick(self.entity_ids(), entry)) is not None:
                    self.entities.async_remove(entity_id)


async def _assert_exact(hass: HomeAssistant, mirror: RegistryMirror) -> None:
    await settle(hass)
    assert mirror.healthy, mirror.last_error
    assert await read_content(mirror.path) == expected_content(hass)


async def _run(hass: HomeAssistant, path: Path, steps: list[Burst | Restart]) -> None:
    config_entry_id = add_config_entry(hass)
    # A furnished home to start from: every kind of entry, labels on all of them.
    populate(hass, config_entry_id)
    registries = _Registries(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        for step in steps:
            if isinstance(step, Restart):
                await mirror.async_stop()
                for change in step.changes:
                    registries.apply(change)
                await hass.async_block_till_done()
                mirror = RegistryMirror(hass, ENTRY_ID, path)
                await mirror.async_start()
                # Reconciled by the start itself.
                assert await read_content(path) == expected_content(hass)
            else:
                for change in step.changes:
                    registries.apply(change)
            await _assert_exact(hass, mirror)
    finally:
        await mirror.async_stop()


@contextlib.asynccontextmanager
async def _fresh_home_assistant() -> AsyncIterator[HomeAssistant]:
    """A Home Assistant of its own, with empty registries that are never saved.

    One per example: registries keep removed devices and entities to restore them,
    and Hypothesis seeds the random numbers their ids come from, so a shared one would
    carry entries from one example into the next. The harness's own loading is not
    used because it shares the stored device registry between instances.
    """
    async with async_test_home_assistant(
        load_registries=False, initial_state=CoreState.not_running
    ) as hass:
        try:
            # Loaded before running, as at a real start: the device registry then
            # cancels its delayed cleanup when Home Assistant stops.
            dr.async_setup(hass)
            for load in (ar, cr, dr, er, fr, ir, lr):
                await load.async_load(hass, load_empty=True)
            hass.set_state(CoreState.running)
            yield hass
        finally:
            await hass.async_stop(force=True)


@settings(max_examples=50, deadline=None)
@given(steps=_STEPS)
async def test_file_equals_registries_after_every_step(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Burst | Restart]
) -> None:
    """Any sequence of changes and restarts leaves the file equal to the registries."""
    async with _fresh_home_assistant() as hass:
        await _run(hass, tmp_path_factory.mktemp("mirror") / "registry.db", steps)
