"""A restart writes no duplicate point for an entity whose state did not change."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import restarted
from .influxdb_v1_server import InfluxDBv1Server


async def test_unchanged_states_are_not_written_again_after_a_restart(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Same state and attributes: skipped. A new value or attribute: written."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    hass.states.async_set("sensor.same", "1", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.value", "1", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.attribute", "1", {"unit_of_measurement": "W"})
    await hass.async_stop()

    async with restarted(hass, config_entry) as second:
        # What entities do when Home Assistant starts: set their state again.
        second.states.async_set("sensor.same", "1", {"unit_of_measurement": "W"})
        second.states.async_set("sensor.value", "2", {"unit_of_measurement": "W"})
        second.states.async_set(
            "sensor.attribute", "1", {"unit_of_measurement": "W", "mode": "eco"}
        )
        second.states.async_set("sensor.new", "1", {"unit_of_measurement": "W"})
        # A later change to the same value is a real change: written.
        second.states.async_set(
            "sensor.same", "1", {"unit_of_measurement": "W", "x": 1}
        )

    rows = influxdb.rows('SELECT * FROM "W" GROUP BY "entity_id"', database)
    assert sorted((r["entity_id"], r["value"]) for r in rows) == [
        ("attribute", 1.0),
        ("attribute", 1.0),
        ("new", 1.0),
        ("same", 1.0),
        ("same", 1.0),
        ("value", 1.0),
        ("value", 2.0),
    ]
