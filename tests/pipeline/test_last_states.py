"""A restart writes no duplicate point for an entity whose state did not change."""

from __future__ import annotations

import threading
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant, State
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.pipeline import last_states as last_states_module
from custom_components.ha_ingestor.pipeline.last_states import LastStates

from ..conftest import restarted
from ..influxdb_v1_server import InfluxDBv1Server


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


async def test_fingerprints_are_computed_off_the_event_loop(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """Saving digests every written state in the executor, not in the event loop."""
    last_states = LastStates(hass, "entry")
    await last_states.async_load()
    for i in range(100):
        last_states.written(State(f"sensor.s{i}", str(i), {"unit": "W"}))
    threads: list[threading.Thread] = []
    digest = last_states_module._fingerprints

    def recording(states: dict[str, State]) -> dict[str, str]:
        threads.append(threading.current_thread())
        return digest(states)

    with patch.object(last_states_module, "_fingerprints", recording):
        await last_states.async_save()
    assert threads
    assert threads[0] is not threading.main_thread()
    await hass.async_block_till_done()
    saved = hass_storage["ha_ingestor.entry.last_states"]["data"]
    assert len(saved) == 100

    # The next start skips exactly those states.
    again = LastStates(hass, "entry")
    await again.async_load()
    assert again.unchanged_since_restart(State("sensor.s7", "7", {"unit": "W"}))
    assert not again.unchanged_since_restart(State("sensor.s8", "9", {"unit": "W"}))
