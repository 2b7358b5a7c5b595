"""The batcher when writes fail: outages, 503s and rejected points."""

from __future__ import annotations

import asyncio

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL, DOMAIN

from .conftest import v2_entry_data, wait_until
from .influxdb_v1_server import InfluxDBv1Server
from .influxdb_v2_server import InfluxDBv2TestServer


async def _setup_v2(
    hass: HomeAssistant, server: InfluxDBv2TestServer
) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=v2_entry_data(server),
        options={CONF_FLUSH_INTERVAL: 0.05},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    return entry


async def test_outage_keeps_points_until_the_server_is_back(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While the server is down, points wait in memory; none lost, logged once."""
    entry = await _setup_v2(hass, influxdb_v2)
    batcher = entry.runtime_data.ingestor.batcher
    await influxdb_v2.stop()
    for i in range(300):
        hass.states.async_set("sensor.outage", str(i), {"unit_of_measurement": "W"})
    await wait_until(
        lambda: "Writing to InfluxDB failed" in caplog.text, "failure logged"
    )
    await asyncio.sleep(0.3)  # several failed flushes
    assert batcher.pending == 300
    assert caplog.text.count("Writing to InfluxDB failed") == 1

    await influxdb_v2.start()
    await wait_until(lambda: len(influxdb_v2.points("ha")) == 300, "300 points")
    assert "Writing to InfluxDB works again" in caplog.text
    values = [point.fields["value"] for point in influxdb_v2.points("ha")]
    assert values == [float(i) for i in range(300)]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_server_busy_is_retried(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """503 answers are temporary: the same points are written once it recovers."""
    entry = await _setup_v2(hass, influxdb_v2)
    influxdb_v2.fail_next_writes(3, status=503)
    for i in range(50):
        hass.states.async_set("sensor.busy", str(i), {"unit_of_measurement": "W"})
    await wait_until(lambda: len(influxdb_v2.points("ha")) == 50, "50 points")
    assert [r.status for r in influxdb_v2.requests if r.path == "/api/v2/write"][
        1:4
    ] == [503, 503, 503]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_rejected_batch_does_not_stop_later_ones(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real field type conflict is logged with the server's message; writing goes on."""
    # Another program already wrote `value` as a string into the "W" measurement.
    influxdb.request("POST", "/write", {"db": database}, b'W,entity_id=x value="text"')
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, options={CONF_FLUSH_INTERVAL: 0.05}
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)

    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    await wait_until(lambda: "field type conflict" in caplog.text, "conflict logged")
    hass.states.async_set("sensor.temperature", "21", {"unit_of_measurement": "°C"})
    await wait_until(
        lambda: bool(influxdb.query('SELECT * FROM "°C"', database)), "°C written"
    )
    assert config_entry.runtime_data.ingestor.batcher.pending == 0
    assert await hass.config_entries.async_unload(config_entry.entry_id)
