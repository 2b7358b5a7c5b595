"""Options flow and filters, applied by reload, against a real InfluxDB 1.x."""

from __future__ import annotations

from collections.abc import Mapping
import datetime as dt
from typing import Any
from unittest.mock import patch

from homeassistant.components.recorder.core import Recorder
from homeassistant.config_entries import ConfigEntryState, ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import (
    area_registry as ar,
    entity_registry as er,
    label_registry as lr,
)
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import RecorderInstanceContextManager

from custom_components.ha_ingestor.const import (
    CONF_BACKFILL_PACE,
    CONF_BATCH_SIZE,
    CONF_DEFAULT_MEASUREMENT,
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_DEVICE_CLASSES,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITY_GLOBS,
    CONF_EXCLUDE_LABELS,
    CONF_FLUSH_INTERVAL,
    CONF_GLOBAL_TAGS,
    CONF_GZIP,
    CONF_HEARTBEAT_MINUTES,
    CONF_HISTORY_BACKFILL,
    CONF_IGNORE_ATTRIBUTES,
    CONF_IGNORE_ATTRIBUTES_BY_DOMAIN,
    CONF_IGNORE_ATTRIBUTES_BY_ENTITY,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_DEVICE_CLASSES,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_ENTITY_GLOBS,
    CONF_INCLUDE_LABELS,
    CONF_MEASUREMENT_OVERRIDE,
    CONF_MEASUREMENT_OVERRIDES,
    CONF_MEASUREMENT_RULE,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    CONF_PRESET,
    CONF_SKIP_UNAVAILABLE,
    CONF_SPOOL_MAX_MB,
    CONF_TAG_ATTRIBUTES,
    CONF_TIMESTAMP_PRECISION,
    DEFAULT_MIRROR_FILE,
    MEASUREMENT_ENTITY_ID,
    MEASUREMENT_UNIT,
    PRECISION_SECONDS,
    PRESET_CORE_COMPATIBLE,
    PRESET_RICH,
)

from .conftest import (
    damaged_recorder_database,
    record_past_states,
    save_options,
    wait_until,
)
from .influxdb_v1_server import InfluxDBv1Server

# No timed flush during a test: points are written when the entry unloads.
OPTIONS: dict[str, Any] = {CONF_FLUSH_INTERVAL: 60.0}


@pytest.fixture
async def mock_recorder_before_hass(
    async_test_recorder: RecorderInstanceContextManager,
) -> None:
    """Let a test set up the recorder (recorder_mock) before Home Assistant."""


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The entry, loaded with no filters and no timed flush."""
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(config_entry, options=OPTIONS)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    return config_entry


def _entity_ids(influxdb: InfluxDBv1Server, database: str) -> set[str]:
    return {
        f"{row['domain']}.{row['entity_id']}"
        for row in influxdb.rows(
            'SELECT * FROM /.*/ GROUP BY "domain", "entity_id"', database
        )
    }


async def test_the_defaults_the_readme_gives(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """Saved unchanged, a new entry's options are the README's defaults."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    result = await save_options(hass, config_entry, {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # The README's tables, in their order; nothing filtered, tagged or ignored.
    assert {
        key: config_entry.options[key]
        for key in (
            CONF_SKIP_UNAVAILABLE,
            CONF_PRESET,
            CONF_MEASUREMENT_RULE,
            CONF_TIMESTAMP_PRECISION,
            CONF_BATCH_SIZE,
            CONF_FLUSH_INTERVAL,
            CONF_GZIP,
            CONF_SPOOL_MAX_MB,
            CONF_HEARTBEAT_MINUTES,
            CONF_MIRROR_ENABLED,
            CONF_BACKFILL_PACE,
        )
    } == {
        CONF_SKIP_UNAVAILABLE: False,
        CONF_PRESET: PRESET_CORE_COMPATIBLE,
        CONF_MEASUREMENT_RULE: MEASUREMENT_UNIT,
        CONF_TIMESTAMP_PRECISION: "us",
        CONF_BATCH_SIZE: 1_000,
        CONF_FLUSH_INTERVAL: 1,
        CONF_GZIP: False,
        CONF_SPOOL_MAX_MB: 1_024,
        CONF_HEARTBEAT_MINUTES: 0,
        CONF_MIRROR_ENABLED: False,
        CONF_BACKFILL_PACE: 1_000,
    }
    assert not any(
        config_entry.options.get(key)
        for key in (
            CONF_INCLUDE_DOMAINS,
            CONF_EXCLUDE_DOMAINS,
            CONF_GLOBAL_TAGS,
            CONF_MEASUREMENT_OVERRIDES,
            CONF_IGNORE_ATTRIBUTES_BY_DOMAIN,
            CONF_IGNORE_ATTRIBUTES_BY_ENTITY,
        )
    )


async def test_every_option_is_saved_and_shown_again(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """All three forms: text options are stored parsed and shown as typed."""
    area = ar.async_get(hass).async_create("Kitchen")
    label = lr.async_get(hass).async_create("Energy")
    changes: dict[str, Any] = {
        CONF_INCLUDE_DOMAINS: ["sensor"],
        CONF_INCLUDE_ENTITIES: ["switch.pump"],
        CONF_INCLUDE_ENTITY_GLOBS: ["binary_sensor.*_door"],
        CONF_INCLUDE_DEVICE_CLASSES: ["temperature"],
        CONF_INCLUDE_AREAS: [area.id],
        CONF_INCLUDE_LABELS: [label.label_id],
        CONF_EXCLUDE_DOMAINS: ["light"],
        CONF_EXCLUDE_ENTITY_GLOBS: ["sensor.*_linkquality"],
        CONF_EXCLUDE_DEVICE_CLASSES: ["battery"],
        CONF_EXCLUDE_AREAS: [area.id],
        CONF_EXCLUDE_LABELS: [label.label_id],
        CONF_SKIP_UNAVAILABLE: True,
        CONF_PRESET: PRESET_RICH,
        CONF_MEASUREMENT_RULE: MEASUREMENT_ENTITY_ID,
        CONF_MEASUREMENT_OVERRIDE: "home",
        CONF_GLOBAL_TAGS: "site=home\n\n  floor_plan = v2 ",
        CONF_IGNORE_ATTRIBUTES: ["friendly_name"],
        CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: "light: effect_list, color_mode\n\nclimate:x",
        CONF_IGNORE_ATTRIBUTES_BY_ENTITY: "sensor.*_power: icon\n*_linkquality:a,b\nsensor.y:",
        CONF_MEASUREMENT_OVERRIDES: "sensor: sensors\nsensor.*_power: power\nsensor.x:",
        CONF_DEFAULT_MEASUREMENT: "misc",
        CONF_TAG_ATTRIBUTES: ["room"],
        CONF_TIMESTAMP_PRECISION: PRECISION_SECONDS,
        CONF_BATCH_SIZE: 5000,
        CONF_FLUSH_INTERVAL: 2.5,
        CONF_GZIP: True,
        CONF_SPOOL_MAX_MB: 64,
        CONF_HEARTBEAT_MINUTES: 15,
        CONF_BACKFILL_PACE: 2500,
    }
    result = await save_options(hass, loaded_entry, changes)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    parsed = {
        CONF_GLOBAL_TAGS: {"site": "home", "floor_plan": "v2"},
        CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: {
            "light": ["effect_list", "color_mode"],
            "climate": ["x"],
        },
        CONF_IGNORE_ATTRIBUTES_BY_ENTITY: {
            "sensor.*_power": ["icon"],
            "*_linkquality": ["a", "b"],
            "sensor.y": [],
        },
        CONF_MEASUREMENT_OVERRIDES: {
            "sensor": "sensors",
            "sensor.*_power": "power",
            "sensor.x": "",
        },
    }
    mirror_off = {
        CONF_MIRROR_ENABLED: False,
        CONF_MIRROR_PATH: hass.config.path(DEFAULT_MIRROR_FILE),
    }
    assert dict(loaded_entry.options) == changes | parsed | mirror_off
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.runtime_data.pipeline.spool.max_bytes == 64 << 20

    # Opening the options again shows every value as it was typed (tags as text).
    form = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    form = await hass.config_entries.options.async_configure(
        form["flow_id"],
        {k: v for k, v in changes.items() if "clude" in k}
        | {CONF_SKIP_UNAVAILABLE: True},
    )
    schema = form["data_schema"]
    assert schema is not None
    shown = {
        key.schema: key.description["suggested_value"]
        for key in schema.schema
        if key.description
    }
    assert shown[CONF_GLOBAL_TAGS] == "site=home\nfloor_plan=v2"
    assert shown[CONF_IGNORE_ATTRIBUTES_BY_DOMAIN] == (
        "light: effect_list, color_mode\nclimate: x"
    )
    assert shown[CONF_IGNORE_ATTRIBUTES_BY_ENTITY] == (
        "sensor.*_power: icon\n*_linkquality: a, b\nsensor.y: "
    )
    assert shown[CONF_MEASUREMENT_OVERRIDES] == (
        "sensor: sensors\nsensor.*_power: power\nsensor.x: "
    )
    assert shown[CONF_TIMESTAMP_PRECISION] == PRECISION_SECONDS
    assert shown[CONF_PRESET] == PRESET_RICH


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({CONF_INCLUDE_DOMAINS: ["Sensor"]}, {CONF_INCLUDE_DOMAINS: "invalid_domain"}),
        (
            {CONF_EXCLUDE_DOMAINS: ["light", "a b"]},
            {CONF_EXCLUDE_DOMAINS: "invalid_domain"},
        ),
        (
            {CONF_EXCLUDE_ENTITY_GLOBS: ["*_temperature", "sensor"]},
            {CONF_EXCLUDE_ENTITY_GLOBS: "invalid_glob"},
        ),
        (
            {CONF_EXCLUDE_ENTITY_GLOBS: ["a b*"]},
            {CONF_EXCLUDE_ENTITY_GLOBS: "invalid_glob"},
        ),
        (
            {CONF_INCLUDE_ENTITY_GLOBS: ["sensor.Temp*"]},
            {CONF_INCLUDE_ENTITY_GLOBS: "invalid_glob"},
        ),
        (
            {CONF_INCLUDE_DEVICE_CLASSES: ["Temperature"]},
            {CONF_INCLUDE_DEVICE_CLASSES: "invalid_device_class"},
        ),
        (
            {CONF_EXCLUDE_DEVICE_CLASSES: ["power factor"]},
            {CONF_EXCLUDE_DEVICE_CLASSES: "invalid_device_class"},
        ),
        ({CONF_GLOBAL_TAGS: "site"}, {CONF_GLOBAL_TAGS: "invalid_global_tags"}),
        ({CONF_GLOBAL_TAGS: "site="}, {CONF_GLOBAL_TAGS: "invalid_global_tags"}),
        ({CONF_GLOBAL_TAGS: "=home"}, {CONF_GLOBAL_TAGS: "invalid_global_tags"}),
        ({CONF_GLOBAL_TAGS: "_site=home"}, {CONF_GLOBAL_TAGS: "invalid_global_tags"}),
        (
            {CONF_GLOBAL_TAGS: "site=a\nsite=b"},
            {CONF_GLOBAL_TAGS: "invalid_global_tags"},
        ),
        ({CONF_GLOBAL_TAGS: "area=x"}, {CONF_GLOBAL_TAGS: "reserved_global_tag"}),
        (
            {CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: "light effect_list"},
            {CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: "invalid_ignore_attributes_by_domain"},
        ),
        (
            {CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: "Light: effect_list"},
            {CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: "invalid_ignore_attributes_by_domain"},
        ),
        (
            {CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: "light: ,"},
            {CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: "invalid_ignore_attributes_by_domain"},
        ),
        (
            {CONF_MEASUREMENT_OVERRIDE: "   "},
            {CONF_MEASUREMENT_OVERRIDE: "invalid_measurement"},
        ),
        (
            {CONF_MEASUREMENT_OVERRIDE: "two\nlines"},
            {CONF_MEASUREMENT_OVERRIDE: "invalid_measurement"},
        ),
        (
            {CONF_DEFAULT_MEASUREMENT: " "},
            {CONF_DEFAULT_MEASUREMENT: "invalid_measurement"},
        ),
        (
            {CONF_MEASUREMENT_OVERRIDES: "sensor.*: a\nsensor.*: b"},
            {CONF_MEASUREMENT_OVERRIDES: "invalid_measurement_overrides"},
        ),
        (
            {CONF_MEASUREMENT_OVERRIDES: "Sensor.X: a"},
            {CONF_MEASUREMENT_OVERRIDES: "invalid_measurement_overrides"},
        ),
        (
            {CONF_MEASUREMENT_OVERRIDES: "sensor power"},
            {CONF_MEASUREMENT_OVERRIDES: "invalid_measurement_overrides"},
        ),
        (
            {CONF_IGNORE_ATTRIBUTES_BY_ENTITY: "sensor: icon"},
            {CONF_IGNORE_ATTRIBUTES_BY_ENTITY: "invalid_ignore_attributes_by_entity"},
        ),
        (
            {CONF_IGNORE_ATTRIBUTES_BY_ENTITY: "sensor.x icon"},
            {CONF_IGNORE_ATTRIBUTES_BY_ENTITY: "invalid_ignore_attributes_by_entity"},
        ),
        (
            {CONF_IGNORE_ATTRIBUTES_BY_ENTITY: "sensor.x: a\nsensor.x: b"},
            {CONF_IGNORE_ATTRIBUTES_BY_ENTITY: "invalid_ignore_attributes_by_entity"},
        ),
    ],
)
async def test_invalid_options_are_refused(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Each malformed value is named on its field and nothing is saved."""
    result = await save_options(hass, loaded_entry, changes)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert dict(loaded_entry.options) == OPTIONS


async def test_registry_mirror_option(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The mirror's file is checked as in the config flow, then saved."""
    result = await save_options(
        hass,
        loaded_entry,
        {CONF_MIRROR_ENABLED: True, CONF_MIRROR_PATH: hass.config.path()},
    )
    assert result["errors"] == {CONF_MIRROR_PATH: "mirror_path_is_directory"}
    result = await save_options(
        hass,
        loaded_entry,
        {CONF_MIRROR_ENABLED: True, CONF_MIRROR_PATH: "mirror.sqlite"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options[CONF_MIRROR_ENABLED] is True
    assert loaded_entry.options[CONF_MIRROR_PATH] == hass.config.path("mirror.sqlite")


async def test_gzip_is_off_until_chosen_and_then_kept(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The delivery form stores compression off by default; once on, it shows it on."""
    stored = []
    for changes in ({}, {CONF_GZIP: True}, {}):
        result = await save_options(hass, loaded_entry, changes)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        stored.append(loaded_entry.options[CONF_GZIP])
    # The last save changed nothing: the form offered the stored value.
    assert stored == [False, True, True]
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_a_corrected_form_goes_on(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """After an error, fixing the field is enough to save."""
    result = await save_options(hass, loaded_entry, {CONF_GLOBAL_TAGS: "site"})
    assert result["errors"] == {CONF_GLOBAL_TAGS: "invalid_global_tags"}
    result = await save_options(hass, loaded_entry, {CONF_GLOBAL_TAGS: "site=home"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options[CONF_GLOBAL_TAGS] == {"site": "home"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (CONF_BATCH_SIZE, 99),
        (CONF_BATCH_SIZE, 100_001),
        (CONF_FLUSH_INTERVAL, 0.05),
        (CONF_FLUSH_INTERVAL, 61),
        (CONF_SPOOL_MAX_MB, 8),
        (CONF_SPOOL_MAX_MB, 1_048_577),
        (CONF_BACKFILL_PACE, 99),
        (CONF_BACKFILL_PACE, 100_001),
        (CONF_HEARTBEAT_MINUTES, -1),
        (CONF_HEARTBEAT_MINUTES, 1441),
    ],
)
async def test_out_of_range_numbers_are_refused(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, key: str, value: float
) -> None:
    """The number fields keep their ranges."""
    with pytest.raises(InvalidData, match=key):
        await save_options(hass, loaded_entry, {key: value})
    assert dict(loaded_entry.options) == OPTIONS


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (CONF_BATCH_SIZE, 100),
        (CONF_BATCH_SIZE, 100_000),
        (CONF_FLUSH_INTERVAL, 0.1),
        (CONF_FLUSH_INTERVAL, 60),
        (CONF_SPOOL_MAX_MB, 16),
        (CONF_SPOOL_MAX_MB, 1_048_576),
        (CONF_BACKFILL_PACE, 100),
        (CONF_BACKFILL_PACE, 100_000),
        (CONF_HEARTBEAT_MINUTES, 0),
        (CONF_HEARTBEAT_MINUTES, 1440),
    ],
)
async def test_the_ends_of_each_range_are_saved(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, key: str, value: float
) -> None:
    """The ranges the README gives, both ends included."""
    result = await save_options(hass, loaded_entry, {key: value})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options[key] == value
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_filters_apply_after_reload_and_nothing_in_flight_is_lost(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """Points buffered before saving are kept; afterwards the filters hold."""
    hass.states.async_set("light.kitchen", "on")
    hass.states.async_set(
        "sensor.outside_temperature", "4", {"unit_of_measurement": "°C"}
    )
    await hass.async_block_till_done()

    result = await save_options(
        hass,
        loaded_entry,
        {
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
        ("kitchen", 1.0),  # `on` is also written as the number 1, as core does
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
    await save_options(
        hass,
        loaded_entry,
        {
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


async def test_device_class_area_and_label_filters_follow_the_registries(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """Areas and labels come from the registries, and a change there applies at once."""
    kitchen = ar.async_get(hass).async_create("Kitchen")
    cellar = ar.async_get(hass).async_create("Cellar")
    noisy = lr.async_get(hass).async_create("Noisy")
    entities = er.async_get(hass)
    in_kitchen = entities.async_get_or_create(
        "sensor", "test", "kitchen_power", suggested_object_id="kitchen_power"
    )
    entities.async_update_entity(in_kitchen.entity_id, area_id=kitchen.id)
    in_cellar = entities.async_get_or_create(
        "sensor", "test", "cellar_power", suggested_object_id="cellar_power"
    )
    entities.async_update_entity(in_cellar.entity_id, area_id=cellar.id)
    await save_options(
        hass,
        loaded_entry,
        {
            CONF_INCLUDE_AREAS: [kitchen.id],
            CONF_INCLUDE_DEVICE_CLASSES: ["temperature"],
            CONF_EXCLUDE_LABELS: [noisy.label_id],
            CONF_EXCLUDE_DEVICE_CLASSES: ["battery"],
        },
    )
    power = {"unit_of_measurement": "W"}
    hass.states.async_set(in_kitchen.entity_id, "1", power)
    hass.states.async_set(in_cellar.entity_id, "1", power)
    hass.states.async_set("sensor.hall", "20", {"device_class": "temperature"})
    hass.states.async_set("sensor.kitchen_battery", "20", {"device_class": "battery"})
    await hass.async_block_till_done()
    # A label added now keeps the kitchen's sensor out from its next change on.
    entities.async_update_entity(in_kitchen.entity_id, labels={noisy.label_id})
    await hass.async_block_till_done()
    hass.states.async_set(in_kitchen.entity_id, "2", power)
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)

    rows = influxdb.rows('SELECT * FROM /.*/ GROUP BY "entity_id"', database)
    assert sorted((r["entity_id"], r["value"]) for r in rows) == [
        ("hall", 20.0),
        ("kitchen_power", 1.0),
    ]


async def test_schema_options_shape_the_points(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """Global tags on every point; ignored attributes nowhere; one measurement."""
    await save_options(
        hass,
        loaded_entry,
        {
            CONF_PRESET: PRESET_CORE_COMPATIBLE,
            CONF_MEASUREMENT_OVERRIDE: "home",
            CONF_GLOBAL_TAGS: "site=cabin",
            CONF_IGNORE_ATTRIBUTES: ["friendly_name"],
            CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: "light: brightness",
        },
    )
    hass.states.async_set(
        "light.desk", "on", {"brightness": 80, "friendly_name": "Desk", "mode": "x"}
    )
    hass.states.async_set(
        "sensor.desk", "3", {"brightness": 80, "friendly_name": "Desk"}
    )
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)

    rows = influxdb.rows('SELECT * FROM /.*/ GROUP BY "site", "entity_id"', database)
    assert {r["measurement"] for r in rows} == {"home"}
    assert {r["site"] for r in rows} == {"cabin"}
    light, sensor = sorted(rows, key=lambda row: row["domain"])
    assert light.get("friendly_name_str") is None
    assert light.get("brightness") is None
    assert light["mode_str"] == "x"
    assert sensor["brightness"] == 80.0
    assert sensor.get("friendly_name_str") is None


async def test_heartbeat_rewrites_current_states(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """Every included entity's state is written again every N minutes."""
    hass.states.async_set("sensor.still", "7")
    hass.states.async_set("light.excluded", "on")
    await save_options(
        hass,
        loaded_entry,
        {CONF_HEARTBEAT_MINUTES: 5, CONF_EXCLUDE_DOMAINS: ["light"]},
    )
    start = dt_util.utcnow()
    # Each run schedules the next one interval after itself.
    for after in (dt.timedelta(minutes=5, seconds=1), dt.timedelta(minutes=11)):
        async_fire_time_changed(hass, start + after)
        await hass.async_block_till_done()
    # Jumping the clock also times out a write in flight, whose points then wait in
    # the spool: after a reload (a fresh backoff), a flush replays them.
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await loaded_entry.runtime_data.pipeline.batcher.flush()
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)

    rows = influxdb.rows('SELECT * FROM /.*/ GROUP BY "entity_id"', database)
    # The change itself (written before the reload), then two heartbeats.
    assert [(r["entity_id"], r["value"]) for r in rows].count(("still", 7.0)) == 3
    assert {r["entity_id"] for r in rows} == {"still", "excluded"}


async def _forms_up_to_the_history(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    answers: Mapping[str, dict[str, Any]] | None = None,
) -> ConfigFlowResult:
    """Open the options; answer each form before the history's (`answers` by step)."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    while result["type"] is FlowResultType.FORM and result["step_id"] not in {
        "history",
        "backfill_pace",
    }:
        schema = result["data_schema"]
        assert schema is not None
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], schema((answers or {}).get(result["step_id"], {}))
        )
    return result


@pytest.mark.usefixtures("quiet_sqlalchemy")
async def test_a_recorder_that_cannot_be_read_keeps_what_the_forms_were_given(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Counting the history fails (SQLite's "database disk image is malformed").

    No history is offered and the options are saved. The error ended the flow at its
    last form ("Unknown error"): every form's answers were lost.
    """
    await record_past_states(hass, "sensor.power", 30, days=2)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)

    with patch(
        "custom_components.ha_ingestor.pipeline.backfill.read_entity_counts",
        damaged_recorder_database,
    ):
        result = await _forms_up_to_the_history(
            hass, config_entry, {"init": {CONF_EXCLUDE_DOMAINS: ["light"]}}
        )
    assert result["step_id"] == "backfill_pace"
    assert "could not be read to count its history" in caplog.text
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_BACKFILL_PACE: 2000}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert config_entry.options[CONF_EXCLUDE_DOMAINS] == ["light"]
    assert config_entry.options[CONF_BACKFILL_PACE] == 2000
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("quiet_sqlalchemy")
async def test_history_form_counts_with_the_new_filters_and_starts_a_backfill(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Before the entry started: what its filters (as just chosen) would write."""
    await record_past_states(hass, "sensor.power", 300, days=2)
    await record_past_states(hass, "light.kitchen", 100, days=2)
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, options={CONF_FLUSH_INTERVAL: 0.05}
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    shown: list[Mapping[str, str] | None] = []
    result = await _forms_up_to_the_history(
        hass, config_entry, {"init": {CONF_EXCLUDE_DOMAINS: ["light"]}}
    )
    assert result["step_id"] == "history"
    shown.append(result["description_placeholders"])
    assert shown == [{"days": "2", "count": "300"}]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_HISTORY_BACKFILL: True, CONF_BACKFILL_PACE: 5000}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.LOADED
    # Taken by the entry, not kept.
    assert CONF_HISTORY_BACKFILL not in config_entry.options
    assert config_entry.options[CONF_BACKFILL_PACE] == 5000
    backfill = config_entry.runtime_data.backfill
    await wait_until(
        lambda: (
            (progress := backfill.progress()) is not None and progress.status == "done"
        ),
        "the backfill",
    )
    progress = backfill.progress()
    assert progress is not None
    assert progress.written == 300
    # Once the history before the entry is written: the pace only.
    result = await _forms_up_to_the_history(hass, config_entry)
    assert result["step_id"] == "backfill_pace"
    assert await hass.config_entries.async_unload(config_entry.entry_id)
