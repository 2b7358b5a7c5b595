"""Setting up and unloading an entry against a real InfluxDB 1.x."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_URL
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import CONF_DATABASE

from .influxdb_v1_server import InfluxDBv1Server, free_port


async def test_setup_and_unload(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """A reachable server: the entry loads, knows the server's version, and unloads."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.LOADED
    assert config_entry.runtime_data.server.version.startswith("1.")
    assert config_entry.runtime_data.server.build == "OSS"

    assert await hass.config_entries.async_unload(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.NOT_LOADED


@pytest.mark.parametrize(
    ("data", "state", "reason"),
    [
        (
            {CONF_URL: "http://127.0.0.1:{free}"},
            ConfigEntryState.SETUP_RETRY,
            "Could not reach",
        ),
        (
            {CONF_DATABASE: "missing"},
            ConfigEntryState.SETUP_RETRY,
            "database does not exist",
        ),
        (
            {CONF_PASSWORD: "wrong"},
            ConfigEntryState.SETUP_ERROR,
            "rejected the credentials",
        ),
    ],
)
async def test_setup_failures(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    data: dict[str, str],
    state: ConfigEntryState,
    reason: str,
) -> None:
    """Unreachable or missing database: retry later. Wrong password: ask the user."""
    changes = {key: value.format(free=free_port()) for key, value in data.items()}
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, data={**config_entry.data, **changes}
    )
    assert not await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is state
    assert reason in (config_entry.reason or "")
