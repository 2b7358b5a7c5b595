"""The mirror's file format: TABLES, migration 1, opening files, the documented queries."""

from __future__ import annotations

import asyncio
from pathlib import Path
import re
import sqlite3

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from syrupy.assertion import SnapshotAssertion

from custom_components.ha_ingestor.mirror import tables
from custom_components.ha_ingestor.mirror.mirror import RegistryMirror
from custom_components.ha_ingestor.mirror.tables import (
    APPLICATION_ID,
    FILE_VERSION,
    TABLE_NAMES,
    TABLES,
    MirrorError,
    prepare,
)
from custom_components.ha_ingestor.storage.sqlite import SqliteConnection

from .conftest import (
    ENTRY_ID,
    REPOSITORY,
    assert_mirrored,
    issue,
    populate,
    query,
    run_sql,
    running_mirror,
    settle,
)

# Each column definition TABLES uses, as PRAGMA table_info reports it: the declared
# type, NOT NULL and the position in the primary key. A definition not listed here
# (a DEFAULT, UNIQUE or CHECK) fails the test until it is listed and checked.
_TABLE_INFO = {
    "TEXT PRIMARY KEY NOT NULL": ("TEXT", 1, 1),
    "TEXT NOT NULL": ("TEXT", 1, 0),
    "TEXT": ("TEXT", 0, 0),
    "INTEGER NOT NULL": ("INTEGER", 1, 0),
    "INTEGER": ("INTEGER", 0, 0),
}


async def test_schema_has_the_columns_the_code_writes(
    mirror: RegistryMirror, path: Path
) -> None:
    """Each table's columns, in order, are those the code writes; link tables cascade.

    And the file is a mirror in write-ahead-log mode, of the current version.
    """
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
    assert await query(path, "PRAGMA journal_mode") == [("wal",)]
    assert await query(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert await query(path, "PRAGMA user_version") == [(FILE_VERSION,)]


async def test_mirror_refuses_a_newer_file_version(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A file from a newer version of the integration is reported, and not written."""
    async with running_mirror(hass, path):
        pass
    await asyncio.to_thread(run_sql, path, f"PRAGMA user_version = {FILE_VERSION + 1}")
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
    await asyncio.to_thread(run_sql, path, "PRAGMA user_version = 7")
    populate(hass, config_entry_id)
    async with running_mirror(hass, path) as mirror:
        await assert_mirrored(hass, mirror)
        assert await query(path, "PRAGMA user_version") == [(FILE_VERSION,)]


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


async def test_entity_overview_shows_what_home_assistant_shows(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """entity_overview's rules, as docs/registry.md states them.

    The user's name and device class over the integration's, the device's name by
    the user over its own, and the entity's own area over its device's, with that
    area's floor.
    """
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    overview = (
        "SELECT entity_id, name, device_class, unit_of_measurement, device_name,"
        " area_id, area_name, floor_id, floor_name FROM entity_overview"
        " ORDER BY entity_id"
    )
    lamp = ("light.garden_lamp", "Garden lamp", "lamp", None, None)
    garden = ("garden", "Garden", None, None)
    assert await query(path, overview) == [
        (*lamp, *garden),
        ("sensor.hub_rssi", "Signal", None, None, "Hub", None, None, None, None),
        (
            "sensor.kitchen_temperature",
            "Temperature",
            "temperature",
            "°C",
            "Kitchen thermostat",
            "kitchen",
            "Kitchen",
            "ground_floor",
            "Ground floor",
        ),
    ]
    er.async_get(hass).async_update_entity(
        "sensor.kitchen_temperature",
        name="Oven probe",
        device_class="battery",
        area_id="garden",
    )
    await settle(hass)
    assert (await query(path, overview))[2] == (
        "sensor.kitchen_temperature",
        "Oven probe",
        "battery",
        "°C",
        "Kitchen thermostat",
        *garden,
    )


def test_migration_1_is_frozen(snapshot: SnapshotAssertion) -> None:
    """What version 1 creates is fixed: a change to TABLES must not change it silently.

    Migration 1 is generated from TABLES. Before a version 2 changes a table, version
    1 must be written out as these statements, and this snapshot stays as it is.
    """
    assert tables._MIGRATIONS[0] == snapshot


async def test_a_new_file_has_exactly_the_columns_of_tables(path: Path) -> None:
    """Created by migration 1: each table's columns, in order, typed and constrained.

    The rows the code writes follow TABLES; this is what holds them. Link tables have
    the entry's key and a label id as their primary key, and reference the entry's
    row with ON DELETE CASCADE; registry tables reference nothing.
    """
    connection = await SqliteConnection.open(path, prepare, MirrorError)
    await connection.close()

    # The file holds what migration 1's statements create, in their order.
    assert [
        sql
        for (sql,) in await query(
            path, "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid"
        )
    ] == list(tables._MIGRATIONS[0])
    assert {
        name
        for (name,) in await query(
            path, "SELECT name FROM sqlite_schema WHERE type = 'table'"
        )
    } == set(TABLE_NAMES)

    for table in TABLES:
        unknown = {sql for _, sql in table.definition} - set(_TABLE_INFO)
        assert not unknown, f"{table.name}: add {unknown} to _TABLE_INFO"
        assert await query(path, f"PRAGMA table_info('{table.name}')") == [
            (cid, name, *_TABLE_INFO[sql][:2], None, _TABLE_INFO[sql][2])
            for cid, (name, sql) in enumerate(table.definition)
        ]
        assert await query(path, f"PRAGMA foreign_key_list('{table.name}')") == []
        if table.labels is None:
            continue
        assert await query(path, f"PRAGMA table_info('{table.labels}')") == [
            (0, table.key, "TEXT", 1, None, 1),
            (1, "label_id", "TEXT", 1, None, 2),
        ]
        # id, seq, table, from, to (None: the primary key), on update, on delete, match
        assert await query(path, f"PRAGMA foreign_key_list('{table.labels}')") == [
            (0, 0, table.name, table.key, None, "NO ACTION", "CASCADE", "NONE")
        ]
        assert await query(
            path, f"SELECT wr FROM pragma_table_list WHERE name = '{table.labels}'"
        ) == [(1,)]  # WITHOUT ROWID


async def test_removing_a_row_removes_its_label_links(path: Path) -> None:
    """The link tables' foreign keys hold on the mirror's connection, and cascade."""
    connection = await SqliteConnection.open(path, prepare, MirrorError)
    try:
        db = connection.db
        for table in TABLES:
            if table.labels is None:
                continue
            # The least a row holds: a value in each NOT NULL column, the key 'x'.
            row = [
                (0 if sql.startswith("INTEGER") else "x") if "NOT NULL" in sql else None
                for _, sql in table.definition
            ]
            columns = ", ".join(table.columns)
            marks = ", ".join("?" * len(row))
            await db.execute(
                f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", row
            )
            await db.execute(f"INSERT INTO {table.labels} VALUES ('x', 'energy')")
            # A link to a row that does not exist is refused.
            with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
                await db.execute(f"INSERT INTO {table.labels} VALUES ('y', 'energy')")
            await db.execute(f"DELETE FROM {table.name} WHERE {table.key} = 'x'")
            assert await db.execute_fetchall(f"SELECT * FROM {table.labels}") == []
    finally:
        await connection.close()
