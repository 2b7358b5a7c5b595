"""After a takeover, HA Ingestor writes the very points the built-in integration wrote.

One Home Assistant runs both: the built-in influxdb integration, set up through its own
config flow with its options in configuration.yaml, writing through its own thread and
client library into one database of the real influxd; and HA Ingestor, set up by the
takeover flow from it (the built-in entry kept), then pointed at a second database.
The same state changes reach both; the two databases must hold the same points:
measurements, tags, fields with their types, timestamps. Hypothesis draws the
options, among those the takeover maps exactly, and the state changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.const import CONF_DATABASE, DOMAIN

from .builtin_influxdb import (
    BuiltinWriter,
    async_setup_builtin_v1,
    prompt_builtin_writes,
    write_configuration,
)
from .conftest import save_options
from .influxdb_v1_server import InfluxDBv1Server

# ---------------------------------------------------------------------------------------
# A small house: each entity's states, and attributes whose field keys keep one type
# even when every point goes into one measurement.

_HOUSE: dict[str, tuple[list[str], list[dict[str, Any]]]] = {
    "sensor.living_temperature": (
        ["21.5", "22", "unavailable", "unknown", ""],
        [
            {
                "unit_of_measurement": "°C",
                "device_class": "temperature",
                "state_class": "measurement",
                "friendly_name": "Living temperature",
            },
            {"unit_of_measurement": "°C", "friendly_name": "Living, room = warm"},
        ],
    ),
    "sensor.kettle_power": (
        ["1500", "0", "unavailable"],
        [
            {
                "unit_of_measurement": "W",
                "device_class": "power",
                "friendly_name": "Kettle power",
                "icon": "mdi:kettle",
            },
            {"unit_of_measurement": "kW", "device_class": "power"},
        ],
    ),
    "sensor.router_firmware": (
        ["Version 2.3", "v2", "12:30"],
        [{"friendly_name": "Router firmware", "installed_version": "Version 2.3"}],
    ),
    "binary_sensor.front_door": (
        ["on", "off"],
        [{"device_class": "door", "friendly_name": "Front door"}, {}],
    ),
    "light.hall": (
        ["on", "off", "unavailable"],
        [
            {
                "brightness": 128,
                "color_mode": "hs",
                "supported_color_modes": ["hs"],
                "friendly_name": "Hall",
            },
            {"brightness": 255.0, "effect_list": ["rainbow"], "friendly_name": "Hall"},
        ],
    ),
    "climate.hall": (
        ["heat", "off"],
        [
            {
                "current_temperature": 20.5,
                "hvac_modes": ["off", "heat"],
                "preset_mode": None,
                "friendly_name": "Hall",
            }
        ],
    ),
    "switch.pump": (["on", "off"], [{"friendly_name": "Pump"}]),
    "lock.front": (["locked", "unlocked"], [{"friendly_name": "Front lock"}]),
    "person.anna": (
        ["home", "not_home", "Work"],
        [{"friendly_name": "Anna", "source": "device_tracker.phone"}],
    ),
    "update.router": (
        ["on", "off"],
        [
            {
                "installed_version": "Version 2.3",
                "latest_version": "v2.4.1",
                "friendly_name": "Router",
            }
        ],
    ),
}
_ENTITY_IDS = list(_HOUSE)
_DOMAINS = sorted({entity_id.split(".")[0] for entity_id in _HOUSE})
_ATTRIBUTES = sorted(
    {
        key
        for _, variants in _HOUSE.values()
        for attributes in variants
        for key in attributes
    }
)
_PATTERNS = ["sensor.*_power", "*_hall", "light.*", "*.front*", "sensor.living_*", "*"]


def _subset(items: list[str], max_size: int = 3) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(items), max_size=max_size, unique=True)


_FILTER = st.fixed_dictionaries(
    {},
    optional={
        "domains": _subset(_DOMAINS),
        "entities": _subset(_ENTITY_IDS),
        "entity_globs": _subset(_PATTERNS, 2),
    },
)
_MEASUREMENTS = st.sampled_from(["home", "all states", "m,1=2", ""])
_SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "override_measurement": _MEASUREMENTS,
        "ignore_attributes": _subset(_ATTRIBUTES),
    },
)
# The built-in integration's options, as its `influxdb:` section holds them: any
# combination of every option the takeover maps exactly.
_YAML_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        # Most often: everything written.
        "include": st.one_of(st.just({}), _FILTER),
        "exclude": st.one_of(st.just({}), _FILTER),
        "tags": st.dictionaries(
            st.sampled_from(["site", "building", "room"]),
            st.sampled_from(["home", "A 1", "x,y=z"]),
            max_size=2,
        ),
        "tags_attributes": _subset(_ATTRIBUTES, 2),
        "measurement_attr": st.sampled_from(
            ["unit_of_measurement", "domain__device_class", "entity_id"]
        ),
        "override_measurement": _MEASUREMENTS,
        "default_measurement": _MEASUREMENTS,
        "ignore_attributes": _subset(_ATTRIBUTES),
        "component_config": st.dictionaries(
            st.sampled_from(_ENTITY_IDS), _SETTINGS, max_size=2
        ),
        "component_config_domain": st.dictionaries(
            st.sampled_from(_DOMAINS), _SETTINGS, max_size=2
        ),
        "component_config_glob": st.dictionaries(
            st.sampled_from([*_PATTERNS, "sensor.kettle_power"]), _SETTINGS, max_size=2
        ),
        # (The built-in InfluxDB 1.x client refuses ns and us: test_takeover.py.)
        "precision": st.sampled_from(["ms", "s"]),
        "max_retries": st.integers(0, 3),
    },
)


@dataclass(frozen=True)
class _Change:
    """A state change: which entity, its state and attributes, and when (µs)."""

    entity_id: str
    state: str
    attributes: dict[str, Any]
    after_us: int
    """After the previous change."""


@st.composite
def _changes(draw: st.DrawFn) -> list[_Change]:
    """Changes of the house's entities, some within one millisecond or second."""
    changes = []
    for _ in range(draw(st.integers(1, 14))):
        entity_id = draw(st.sampled_from(_ENTITY_IDS))
        states, variants = _HOUSE[entity_id]
        changes.append(
            _Change(
                entity_id,
                draw(st.sampled_from(states)),
                draw(st.sampled_from(variants)),
                draw(st.sampled_from([1, 999, 250_000, 1_000_001])),
            )
        )
    return changes


# ---------------------------------------------------------------------------------------
# Both databases, read back.

# When the changes happen: a whole second (µs since the epoch).
_START_US = 1_900_000_000_000_000

# Measurement, tags, fields (key, value, type in InfluxDB), time in µs.
type _Tags = tuple[tuple[str, str], ...]
type _Fields = tuple[tuple[str, object, str], ...]
type _Point = tuple[str, _Tags, _Fields, int]


def _points(influxdb: InfluxDBv1Server, database: str) -> list[_Point]:
    """Every point of the database, sorted."""
    # With each field's type: InfluxQL reads a float 21.0 back as 21.
    types: dict[tuple[str, str], str] = {
        (series["name"], key): kind
        for series in influxdb.query("SHOW FIELD KEYS", database)
        for key, kind in series["values"]
    }
    points = []
    for series in influxdb.query("SELECT * FROM /.*/ GROUP BY *", database):
        measurement = series["name"]
        # A series lacks a tag its measurement has elsewhere: InfluxQL gives "".
        tags = tuple(sorted((k, v) for k, v in series.get("tags", {}).items() if v))
        for row in series["values"]:
            values = dict(zip(series["columns"], row, strict=True))
            time = values.pop("time")
            fields = tuple(
                sorted(
                    (key, value, types[measurement, key])
                    for key, value in values.items()
                    if value is not None
                )
            )
            points.append((measurement, tags, fields, time))
    return sorted(points)


@pytest.fixture
def no_platforms() -> Iterator[None]:
    """HA Ingestor without its entities: the built-in integration would write them."""
    with patch("custom_components.ha_ingestor.PLATFORMS", []):
        yield


@dataclass(frozen=True)
class _Databases:
    """Where each writes: the built-in integration, and HA Ingestor."""

    builtin: str
    ingestor: str


@pytest.fixture
async def databases(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> AsyncIterator[_Databases]:
    """The test's database for the built-in integration, a second for HA Ingestor.

    The built-in entry (set up by the first example) is unloaded after the test: its
    writer thread ends.
    """
    second = f"{database}_ha_ingestor"
    influxdb.query(f'CREATE DATABASE "{second}"')
    yield _Databases(database, second)
    for entry in hass.config_entries.async_entries("influxdb"):
        assert await hass.config_entries.async_unload(entry.entry_id)
    influxdb.query(f'DROP DATABASE "{second}"')


async def _take_over(hass: HomeAssistant, database: str) -> ConfigEntry:
    """Take over, keeping the built-in entry; then write into `database`."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "user"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "takeover"}
    )
    assert result["step_id"] == "takeover_confirm", result
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"disable_builtin": False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry: ConfigEntry = result["result"]
    # The options forms keep every option as it is.
    options = dict(entry.options)
    saved = await save_options(hass, entry, {})
    assert saved["type"] is FlowResultType.CREATE_ENTRY, saved.get("errors")
    assert {key: entry.options[key] for key in options} == options
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_DATABASE: database}
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    return entry


@pytest.mark.usefixtures("no_platforms")
@settings(
    # About a fifth of a second each.
    max_examples=100,
    deadline=None,
    # The same examples on every run, so that CI is repeatable.
    derandomize=True,
    # The harness's Home Assistant and databases serve every example, each in its own
    # time window.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(yaml=_YAML_OPTIONS, changes=_changes())
async def test_both_write_the_same_points(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    databases: _Databases,
    yaml: dict[str, Any],
    changes: list[_Change],
) -> None:
    """Whatever the built-in options, HA Ingestor writes its points, point for point."""
    with prompt_builtin_writes():
        if not (builtins := hass.config_entries.async_entries("influxdb")):
            builtins = [
                await async_setup_builtin_v1(hass, influxdb, databases.builtin, yaml)
            ]
        builtin = builtins[0]
        write_configuration(hass, yaml)
        assert await hass.config_entries.async_reload(builtin.entry_id)
        writer = BuiltinWriter(builtin)
        try:
            # Every entity starts anew: the last example's states are from the future
            # (2030), which a reload of the new entry would take for states set while
            # it did not listen.
            for entity_id in _ENTITY_IDS:
                hass.states.async_remove(entity_id)
            entry = await _take_over(hass, databases.ingestor)
            time_us = _START_US
            for change in changes:
                time_us += change.after_us
                hass.states.async_set(
                    change.entity_id,
                    change.state,
                    change.attributes,
                    timestamp=time_us / 1e6,
                )
            await hass.async_block_till_done()
            await hass.services.async_call(
                DOMAIN, "flush", {"config_entry_id": entry.entry_id}, blocking=True
            )
            await hass.async_add_executor_job(writer.wait_written)
            assert _points(influxdb, databases.ingestor) == _points(
                influxdb, databases.builtin
            )
        finally:
            for ingestor in hass.config_entries.async_entries(DOMAIN):
                assert await hass.config_entries.async_remove(ingestor.entry_id)
            # The next example starts with empty databases (and field types).
            for database in (databases.builtin, databases.ingestor):
                influxdb.query(f'DROP DATABASE "{database}"')
                influxdb.query(f'CREATE DATABASE "{database}"')
