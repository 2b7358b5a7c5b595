"""The mirror file: its schema, whose files it takes, readers, and the documented queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
import os
from pathlib import Path
import re
import sqlite3
import subprocess
import sys
import textwrap

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, label_registry as lr
import pytest

from custom_components.ha_ingestor.mirror.mirror import RegistryMirror
from custom_components.ha_ingestor.mirror.path_check import (
    MIRROR_PATH_IS_DIRECTORY,
    MIRROR_PATH_NEWER_VERSION,
    MIRROR_PATH_NOT_SQLITE,
    MIRROR_PATH_NOT_WRITABLE,
    MIRROR_PATH_OTHER_DATABASE,
    validate_mirror_path,
)
from custom_components.ha_ingestor.mirror.schema import (
    SCHEMA_VERSION,
    TABLE_NAMES,
    TABLES,
)

from .test_registry_mirror import (
    ENTRY_ID,
    add_config_entry,
    assert_mirrored,
    immutable,
    issue,
    mirror_path,
    populate,
    query,
    read_content,
    running_mirror,
    settle,
)

REPOSITORY = Path(__file__).parent.parent


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


def _sqlite(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


async def _validate(path: Path) -> str | None:
    return await asyncio.to_thread(validate_mirror_path, str(path))


async def test_schema_has_the_columns_the_code_writes(
    mirror: RegistryMirror, path: Path
) -> None:
    """Each table's columns, in order, are those the code writes; link tables cascade."""
    for table in TABLES:
        columns = await query(
            path, f"SELECT name FROM pragma_table_info('{table.name}')"
        )
        assert tuple(name for (name,) in columns) == table.columns
        if table.labels is not None:
            foreign_keys = await query(
                path,
                'SELECT "table", "from", on_delete'
                f" FROM pragma_foreign_key_list('{table.labels}')",
            )
            assert foreign_keys == [(table.name, table.key, "CASCADE")]
    assert set(mirror.rows) == set(TABLE_NAMES)
    # Foreign keys are enforced on the mirror's own connection.
    assert mirror._file is not None
    assert await mirror._file._connection.db.execute_fetchall(
        "PRAGMA foreign_keys"
    ) == [(1,)]


async def test_validate_accepts_new_empty_and_own_files(
    hass: HomeAssistant, path: Path
) -> None:
    """A new path, an empty file, an SQLite file without tables, or a mirror: taken."""
    folder = path.parent
    new = folder / "new.db"
    assert await _validate(new) is None
    # Nothing is left behind by the check.
    assert os.listdir(folder) == []

    empty = folder / "empty.db"
    empty.touch()
    assert await _validate(empty) is None

    no_tables = folder / "no_tables.db"
    await asyncio.to_thread(_sqlite, no_tables, "PRAGMA user_version = 7")
    assert await _validate(no_tables) is None

    mirror_file = folder / "mirror.db"
    async with running_mirror(hass, mirror_file):
        # While in use, too: readers and the check never block the writer.
        assert await _validate(mirror_file) is None
    assert await _validate(mirror_file) is None
    assert sorted(os.listdir(folder)) == ["empty.db", "mirror.db", "no_tables.db"]


async def test_validate_refuses_what_cannot_be_used(path: Path) -> None:
    """Folders, places nothing can be written, and other programs' files: refused."""
    folder = path.parent
    assert await _validate(folder) == MIRROR_PATH_IS_DIRECTORY
    assert await _validate(folder / "missing" / "registry.db") == (
        MIRROR_PATH_NOT_WRITABLE
    )

    locked_folder = folder / "read-only"
    locked_folder.mkdir()
    with immutable(locked_folder):
        assert await _validate(locked_folder / "registry.db") == (
            MIRROR_PATH_NOT_WRITABLE
        )

    read_only = folder / "read-only.db"
    read_only.touch()
    with immutable(read_only):
        assert await _validate(read_only) == MIRROR_PATH_NOT_WRITABLE

    text = folder / "configuration.yaml"
    text.write_text("homeassistant:\n")
    assert await _validate(text) == MIRROR_PATH_NOT_SQLITE
    assert text.read_text() == "homeassistant:\n"

    fake = folder / "fake.db"
    fake.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    assert await _validate(fake) == MIRROR_PATH_NOT_SQLITE

    fifo = folder / "fifo"
    os.mkfifo(fifo)
    assert await _validate(fifo) == MIRROR_PATH_NOT_SQLITE

    recorder = folder / "home-assistant_v2.db"
    await asyncio.to_thread(
        _sqlite, recorder, "CREATE TABLE states (state_id INTEGER PRIMARY KEY)"
    )
    assert await _validate(recorder) == MIRROR_PATH_OTHER_DATABASE

    with pytest.raises(ValueError, match="absolute"):
        validate_mirror_path("registry.db")


async def test_validate_refuses_a_newer_mirror(hass: HomeAssistant, path: Path) -> None:
    """A mirror of a newer schema than this code knows is refused."""
    async with running_mirror(hass, path):
        pass
    await asyncio.to_thread(
        _sqlite, path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}"
    )
    assert await _validate(path) == MIRROR_PATH_NEWER_VERSION


async def test_validate_does_not_wait_for_other_programs(
    hass: HomeAssistant, path: Path
) -> None:
    """A lock held by another program does not hold the check up."""
    async with running_mirror(hass, path):
        pass
    locker = await asyncio.to_thread(
        sqlite3.connect, path, isolation_level=None, check_same_thread=False
    )
    try:
        await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
        assert await _validate(path) is None
    finally:
        await asyncio.to_thread(locker.close)


async def test_mirror_refuses_a_newer_schema(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A file from a newer version of the integration is reported, and not written."""
    async with running_mirror(hass, path):
        pass
    await asyncio.to_thread(
        _sqlite, path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}"
    )
    before = await asyncio.to_thread(path.read_bytes)
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        assert not mirror.healthy
        assert mirror.last_error is not None
        assert "newer" in mirror.last_error
        assert issue(hass) is not None
        assert await asyncio.to_thread(path.read_bytes) == before
    finally:
        await mirror.async_stop()


async def test_empty_sqlite_file_is_taken(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """An SQLite file without tables gets the schema, whatever its user_version."""
    await asyncio.to_thread(_sqlite, path, "PRAGMA user_version = 7")
    populate(hass, config_entry_id)
    async with running_mirror(hass, path) as mirror:
        await assert_mirrored(hass, mirror)
        assert await query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_reader_in_a_transaction_keeps_its_snapshot(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """A read-only connection in a transaction neither blocks writes nor sees them."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    reader = await asyncio.to_thread(
        sqlite3.connect,
        f"{path.as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )

    def labels() -> list[str]:
        return [row[0] for row in reader.execute("SELECT name FROM labels ORDER BY 1")]

    try:
        await asyncio.to_thread(reader.execute, "BEGIN")
        before = await asyncio.to_thread(labels)
        lr.async_get(hass).async_create("New label")
        await settle(hass)
        assert mirror.healthy
        assert "New label" in {
            row["name"] for row in (await read_content(path))["labels"].values()
        }
        assert await asyncio.to_thread(labels) == before
        await asyncio.to_thread(reader.execute, "COMMIT")
        assert await asyncio.to_thread(labels) == sorted([*before, "New label"])
    finally:
        await asyncio.to_thread(reader.close)


# Runs in a process of its own: reads the file until it sees the last generation,
# each time in one read transaction, and checks that a snapshot never mixes two.
_READER = textwrap.dedent(
    """
    import json, sqlite3, sys, time

    path, last = sys.argv[1], sys.argv[2]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    seen, snapshots, deadline = set(), 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        db.execute("BEGIN")
        names = {row[0] for row in db.execute(
            "SELECT name FROM entities WHERE platform = 'generations'")}
        labels = {row[0] for row in db.execute(
            "SELECT DISTINCT l.label_id FROM entity_labels l"
            " JOIN entities e USING (entity_id) WHERE e.platform = 'generations'")}
        db.execute("COMMIT")
        if len(names) != 1 or len(labels) != 1:
            print(json.dumps({"mixed": sorted(map(str, names | labels))}))
            sys.exit(1)
        (name,) = names
        if not snapshots:
            print("ready", flush=True)
        snapshots += 1
        seen.add(name)
        if name == last:
            break
    print(json.dumps({"snapshots": snapshots, "generations": len(seen)}))
    """
)


async def test_reader_process_sees_only_whole_changes(
    hass: HomeAssistant, mirror: RegistryMirror, path: Path
) -> None:
    """Another process reading all the while never sees half of a change."""
    entity_registry = er.async_get(hass)
    label_registry = lr.async_get(hass)
    for parity in ("even", "odd"):
        label_registry.async_create(parity)
    entity_ids = [
        entity_registry.async_get_or_create(
            "sensor", "generations", f"sensor-{i}", suggested_object_id=f"g_{i}"
        ).entity_id
        for i in range(200)
    ]

    def generation(number: int) -> None:
        # All 200 in one go, as one registry change can ripple through many entries.
        for entity_id in entity_ids:
            entity_registry.async_update_entity(
                entity_id,
                name=f"generation {number}",
                labels={"even" if number % 2 == 0 else "odd"},
            )

    generation(0)
    await assert_mirrored(hass, mirror)
    reader = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-c", _READER, str(path), "generation 30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert await asyncio.to_thread(reader.stdout.readline) == "ready\n"
        for number in range(1, 31):
            generation(number)
            await asyncio.sleep(0.02)
        await assert_mirrored(hass, mirror)
        out, err = await asyncio.to_thread(reader.communicate, timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            await asyncio.to_thread(reader.wait)
    assert reader.returncode == 0, (out, err)
    result = json.loads(out)
    # It really read while the changes were written, more than once.
    assert result["generations"] > 1
    assert result["snapshots"] >= result["generations"]


def _documented_queries() -> list[str]:
    text = (REPOSITORY / "docs" / "registry.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)


async def test_documented_queries_answer_what_they_promise(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """The example queries of docs/registry.md, run against a mirrored home."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    temperatures, device_entities = _documented_queries()

    # The kitchen temperature sensor is on the thermostat, which is in the kitchen,
    # on the ground floor: the area comes from the device.
    assert await query(path, temperatures) == [
        ("kitchen_temperature", "Kitchen", "Ground floor")
    ]
    assert await query(path, device_entities) == [
        ("sensor.kitchen_temperature", "Temperature", None, None)
    ]
    er.async_get(hass).async_update_entity(
        "sensor.kitchen_temperature", labels={"critical", "energy"}
    )
    await settle(hass)
    ((entity_id, name, disabled_by, labels),) = await query(path, device_entities)
    assert (entity_id, name, disabled_by) == (
        "sensor.kitchen_temperature",
        "Temperature",
        None,
    )
    assert sorted(labels.split(", ")) == ["Critical", "Energy"]


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
