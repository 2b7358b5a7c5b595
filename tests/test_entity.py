"""The entry's device: one service device named after the database and the server."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from yarl import URL

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL, DOMAIN

from .conftest import setup_entry, v2_entry_data, wait_until
from .influxdb_v1_server import InfluxDBv1Server
from .influxdb_v2_server import InfluxDBv2TestServer

FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.05}


def _device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    assert device is not None
    return device


async def test_device_of_an_influxdb_1_entry(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """Named as the entry; the version the server says; 1.x has no web UI to link."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    device = _device(hass, config_entry)
    assert device.name == config_entry.title  # "<database> on 127.0.0.1:<port>"
    assert device.entry_type is dr.DeviceEntryType.SERVICE
    assert (device.manufacturer, device.model) == ("InfluxData", "InfluxDB 1.x")
    assert (device.sw_version or "").startswith("1.")
    assert device.configuration_url is None
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_device_of_an_influxdb_2_entry(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """2.x serves its UI at the API's address: the device links to it."""
    entry = MockConfigEntry(
        domain=DOMAIN, data=v2_entry_data(influxdb_v2), options=FAST_FLUSH
    )
    await setup_entry(hass, entry, FAST_FLUSH)
    device = _device(hass, entry)
    assert (
        device.name == f"ha on {URL(influxdb_v2.url).host}:{URL(influxdb_v2.url).port}"
    )
    assert device.model == "InfluxDB 2.x"
    assert device.sw_version == influxdb_v2.version
    assert device.configuration_url == influxdb_v2.url
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("socket_enabled")
async def test_the_version_is_read_again_when_writing_works_again(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A server upgraded during an outage shows its new version once it is back."""
    entry = MockConfigEntry(
        domain=DOMAIN, data=v2_entry_data(influxdb_v2), options=FAST_FLUSH
    )
    await setup_entry(hass, entry, FAST_FLUSH)
    await influxdb_v2.stop()
    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    pipeline = entry.runtime_data.pipeline
    await wait_until(lambda: pipeline.batcher.health.failing, "writing fails")
    influxdb_v2.version = "v2.8.0"
    await influxdb_v2.start()
    await hass.services.async_call(DOMAIN, "flush", blocking=True)
    await wait_until(
        lambda: _device(hass, entry).sw_version == "v2.8.0", "the new version"
    )
    assert pipeline.server is not None
    assert pipeline.server.version == "v2.8.0"
    assert await hass.config_entries.async_unload(entry.entry_id)
