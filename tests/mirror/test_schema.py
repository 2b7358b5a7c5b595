"""The mirror's file format: TABLES, opening files, the documented queries."""

from __future__ import annotations

import asyncio
from pathlib import Path
import re

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.ha_ingestor.mirror.mirror import RegistryMirror
from custom_components.ha_ingestor.mirror.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    TABLE_NAMES,
    TABLES,
)

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
    assert await query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_mirror_refuses_a_newer_schema(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A file from a newer version of the integration is reported, and not written."""
    async with running_mirror(hass, path):
        pass
    await asyncio.to_thread(
        run_sql, path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}"
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
    await asyncio.to_thread(run_sql, path, "PRAGMA user_version = 7")
    populate(hass, config_entry_id)
    async with running_mirror(hass, path) as mirror:
        await assert_mirrored(hass, mirror)
        assert await query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


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
