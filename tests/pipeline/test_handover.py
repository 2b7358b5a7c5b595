"""State changes fired while the pipeline starts, stops or reloads are handed over."""

from __future__ import annotations

import asyncio

from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL

from ..influxdb_v1_server import InfluxDBv1Server


def _listeners(hass: HomeAssistant) -> int:
    return hass.bus.async_listeners().get(EVENT_STATE_CHANGED, 0)


async def test_changes_fired_during_setup_are_written(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Setup awaits the spool and the server; what fires meanwhile is kept.

    Changes fired before the integration's setup began are not its to keep; from
    then on there is no gap: InfluxDB holds an unbroken run up to the last change.
    """
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, options={CONF_FLUSH_INTERVAL: 60.0}
    )
    setup = hass.async_create_task(
        hass.config_entries.async_setup(config_entry.entry_id)
    )
    fired = 0
    while not setup.done():
        hass.states.async_set("sensor.counter", str(fired))
        fired += 1
        await asyncio.sleep(0)
    assert setup.result()
    fired_during_setup = fired
    for _ in range(10):
        hass.states.async_set("sensor.counter", str(fired))
        fired += 1
    assert await hass.config_entries.async_unload(config_entry.entry_id)

    values = sorted(
        row["value"]
        for row in influxdb.rows('SELECT * FROM "sensor.counter"', database)
    )
    first = int(values[0])
    assert values == [float(i) for i in range(first, fired)]
    assert first < fired_during_setup


async def test_unload_for_good_stops_recording(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """After an unload with no setup following, the recorder lets go at once."""
    before = _listeners(hass)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    assert _listeners(hass) == before + 1
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    # The recorder of the unload listens until the next state change shows that no
    # setup follows.
    hass.states.async_set("sensor.after", "1")
    await hass.async_block_till_done()
    assert _listeners(hass) == before
