"""The connectivity sensor, with a real influxd killed and started again."""

from __future__ import annotations

from homeassistant.const import STATE_OFF, STATE_ON, EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL, DOMAIN

from .conftest import setup_entry, setup_unreachable_platform, wait_until
from .influxdb_v1_server import InfluxDBv1Server

FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.05}


def _connectivity(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        "binary_sensor", DOMAIN, f"{entry.entry_id}_connectivity"
    )
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


@pytest.mark.usefixtures("revive")
async def test_connectivity_goes_off_and_on_with_influxd(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """Off as soon as a write fails, on as soon as one works: not on the next tick."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    registered = er.async_get(hass).async_get(
        er.async_get(hass).async_get_entity_id(
            "binary_sensor", DOMAIN, f"{config_entry.entry_id}_connectivity"
        )
        or ""
    )
    assert registered is not None
    assert registered.entity_category is EntityCategory.DIAGNOSTIC
    assert registered.translation_key == "connectivity"
    assert registered.original_device_class == "connectivity"
    assert registered.has_entity_name
    assert _connectivity(hass, config_entry) == STATE_ON

    await hass.async_add_executor_job(influxdb.kill)
    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    await wait_until(
        lambda: _connectivity(hass, config_entry) == STATE_OFF, "connectivity off"
    )

    await hass.async_add_executor_job(influxdb.start)
    await wait_until(
        lambda: _connectivity(hass, config_entry) == STATE_ON, "connectivity on"
    )
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_server_down_at_start_is_off_until_it_answers(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """Off while the server never answered; its version is learnt once it does."""
    await hass.async_add_executor_job(influxdb.kill)
    await setup_entry(hass, config_entry, FAST_FLUSH)
    assert config_entry.runtime_data.pipeline.server is None
    assert _connectivity(hass, config_entry) == STATE_OFF
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, config_entry.entry_id), config_entry.entry_id
    )
    assert device is not None
    assert device.sw_version is None

    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    await wait_until(
        lambda: config_entry.runtime_data.pipeline.batcher.health.failing, "writes fail"
    )
    await hass.async_add_executor_job(influxdb.start)
    await wait_until(
        lambda: _connectivity(hass, config_entry) == STATE_ON, "connectivity on"
    )
    await wait_until(
        lambda: config_entry.runtime_data.pipeline.server is not None,
        "the server's version",
    )
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, config_entry.entry_id), config_entry.entry_id
    )
    assert device is not None
    assert (device.sw_version or "").startswith("1.")
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.freeze_time("2026-12-03 12:00:00+00:00")
@pytest.mark.usefixtures("socket_enabled")
async def test_binary_sensor_entities_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion
) -> None:
    """The connectivity sensor as registered and as first shown: off, not connected."""
    entry = await setup_unreachable_platform(hass, Platform.BINARY_SENSOR)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)
