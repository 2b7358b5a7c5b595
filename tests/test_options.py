"""Options flow and filters, applied by reload, against a real InfluxDB 1.x."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITY_GLOBS,
    CONF_FLUSH_INTERVAL,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_SKIP_UNAVAILABLE,
)

from .influxdb_v1_server import InfluxDBv1Server

OPTIONS: dict[str, Any] = {
    CONF_SKIP_UNAVAILABLE: False,
    CONF_BATCH_SIZE: 1000,
    CONF_FLUSH_INTERVAL: 60.0,  # the longest allowed: no timed flush during a test
}


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The entry, loaded with no filters and no timed flush."""
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(config_entry, options=OPTIONS)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    return config_entry


async def _save_options(
    hass: HomeAssistant, entry: MockConfigEntry, options: dict[str, Any]
) -> dict[str, Any]:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], options
    )
    await hass.async_block_till_done()
    return dict(result)


def _entity_ids(influxdb: InfluxDBv1Server, database: str) -> set[str]:
    return {
        f"{row['domain']}.{row['entity_id']}"
        for row in influxdb.rows(
            'SELECT * FROM /.*/ GROUP BY "domain", "entity_id"', database
        )
    }


@pytest.mark.parametrize(
    ("options", "errors"),
    [
        ({CONF_INCLUDE_DOMAINS: ["Sensor"]}, {CONF_INCLUDE_DOMAINS: "invalid_domain"}),
        (
            {CONF_EXCLUDE_DOMAINS: ["light", "a b"]},
            {CONF_EXCLUDE_DOMAINS: "invalid_domain"},
        ),
        (
            {CONF_EXCLUDE_ENTITY_GLOBS: ["*temperature"]},
            {CONF_EXCLUDE_ENTITY_GLOBS: "invalid_glob"},
        ),
    ],
)
async def test_invalid_options_are_refused(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    options: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Each malformed list is named on its field and nothing is saved."""
    result = await _save_options(hass, loaded_entry, OPTIONS | options)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert dict(loaded_entry.options) == OPTIONS


@pytest.mark.parametrize("batch_size", [99, 100_001])
async def test_out_of_range_batch_size_is_refused(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, batch_size: int
) -> None:
    """The number fields keep their ranges."""
    with pytest.raises(InvalidData, match="batch_size"):
        await _save_options(hass, loaded_entry, OPTIONS | {CONF_BATCH_SIZE: batch_size})
    assert dict(loaded_entry.options) == OPTIONS


async def test_filters_apply_after_reload_and_nothing_in_flight_is_lost(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """Points buffered before saving are written; afterwards the filters hold."""
    hass.states.async_set("light.kitchen", "on")
    hass.states.async_set(
        "sensor.outside_temperature", "4", {"unit_of_measurement": "°C"}
    )
    await hass.async_block_till_done()

    result = await _save_options(
        hass,
        loaded_entry,
        OPTIONS
        | {
            CONF_EXCLUDE_DOMAINS: ["light"],
            CONF_EXCLUDE_ENTITY_GLOBS: ["sensor.*_linkquality"],
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.state is ConfigEntryState.LOADED
    # Written when the entry reloaded, though no timed flush was due.
    assert _entity_ids(influxdb, database) == {
        "light.kitchen",
        "sensor.outside_temperature",
    }

    hass.states.async_set("light.kitchen", "off")
    hass.states.async_set("sensor.zigbee_linkquality", "80")
    hass.states.async_set(
        "sensor.outside_temperature", "5", {"unit_of_measurement": "°C"}
    )
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    rows = influxdb.rows('SELECT * FROM /.*/ GROUP BY "entity_id"', database)
    assert sorted((r["entity_id"], r.get("value") or r.get("state")) for r in rows) == [
        ("kitchen", "on"),
        ("outside_temperature", 4.0),
        ("outside_temperature", 5.0),
    ]


async def test_include_and_skip_unavailable(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """Only included entities are written, and unknown/unavailable can be skipped."""
    await _save_options(
        hass,
        loaded_entry,
        OPTIONS
        | {
            CONF_INCLUDE_DOMAINS: ["sensor"],
            CONF_INCLUDE_ENTITIES: ["switch.pump"],
            CONF_SKIP_UNAVAILABLE: True,
        },
    )
    hass.states.async_set("sensor.a", "1")
    hass.states.async_set("sensor.a", "unavailable")
    hass.states.async_set("sensor.b", "unknown")
    hass.states.async_set("switch.pump", "on")
    hass.states.async_set("switch.other", "on")
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    assert _entity_ids(influxdb, database) == {"sensor.a", "switch.pump"}
    assert len(influxdb.rows("SELECT * FROM /.*/", database)) == 2
