"""How registry entries become the mirror's rows, in the column order of TABLES."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import attr
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, label_registry as lr

from custom_components.ha_ingestor.mirror.rows import READERS, device_rows
from custom_components.ha_ingestor.mirror.tables import LABELS, TABLES

from .conftest import (
    assert_mirrored,
    expected_content,
    populate,
    read_content,
    running_mirror,
)


async def test_every_populated_field_reaches_the_file(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """The values populate sets are in the file as written, not only equal to an oracle."""
    populate(hass, config_entry_id)
    async with running_mirror(hass, path) as mirror:
        await assert_mirrored(hass, mirror)
        content = await read_content(path)
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


async def test_rows_hold_the_columns_of_tables_in_order(
    hass: HomeAssistant, config_entry_id: str
) -> None:
    """Each reader's rows are TABLES' columns in order, valued as the registries say."""
    populate(hass, config_entry_id)
    expected = expected_content(hass)
    assert set(READERS) == set(TABLES)
    for table in TABLES:
        rows = READERS[table](hass, None)
        assert {
            key: dict(zip(table.columns, item.row, strict=True))
            for key, item in rows.items()
        } == expected[table.name]
        links = {(key, label) for key, item in rows.items() for label in item.labels}
        assert links == (set() if table.labels is None else set(expected[table.labels]))


async def test_rows_of_given_keys(hass: HomeAssistant, config_entry_id: str) -> None:
    """Asked for some keys, a reader returns the rows of those that exist."""
    populate(hass, config_entry_id)
    for table in TABLES:
        every = READERS[table](hass, None)
        assert every, f"populate leaves {table.name} empty"
        for key in every:  # child devices too
            assert READERS[table](hass, [key, "missing"]) == {key: every[key]}
        assert READERS[table](hass, ["missing"]) == {}
        assert READERS[table](hass, []) == {}


async def test_times_are_fixed_width_utc(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Microseconds even at a whole second, and UTC: the text sorts like the time."""
    await hass.config.async_set_time_zone("Pacific/Auckland")
    freezer.move_to(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    label = lr.async_get(hass).async_create("Energy")
    freezer.move_to(datetime(2026, 3, 1, 12, 0, 0, 500, tzinfo=UTC))
    lr.async_get(hass).async_update(label.label_id, color="green")
    row = READERS[LABELS](hass, [label.label_id])[label.label_id].row
    assert row[-2:] == (
        "2026-03-01T12:00:00.000000+00:00",
        "2026-03-01T12:00:00.000500+00:00",
    )


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
