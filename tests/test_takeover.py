"""Taking over from the built-in influxdb integration (takeover.py and the config flow).

The built-in entry is set up through that integration's own config flow (or its YAML
import) against the real influxd (or the 2.x stand-in), with its options in
configuration.yaml; then HA Ingestor's flow takes over from it. test_takeover_points.py
compares what both write.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryDisabler,
    ConfigEntryState,
)
from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant, valid_entity_id
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.entity_values import EntityValues
from homeassistant.setup import async_setup_component
from hypothesis import given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    API_V1,
    API_V2,
    CONF_API_VERSION,
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_DEFAULT_MEASUREMENT,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_ENTITY_GLOBS,
    CONF_GLOBAL_TAGS,
    CONF_IGNORE_ATTRIBUTES,
    CONF_IGNORE_ATTRIBUTES_BY_DOMAIN,
    CONF_IGNORE_ATTRIBUTES_BY_ENTITY,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_ENTITY_GLOBS,
    CONF_MEASUREMENT_OVERRIDE,
    CONF_MEASUREMENT_OVERRIDES,
    CONF_MEASUREMENT_RULE,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    CONF_ORGANIZATION,
    CONF_PRESET,
    CONF_RETENTION_POLICY,
    CONF_SKIP_UNAVAILABLE,
    CONF_SSL_CA_CERT,
    CONF_TAG_ATTRIBUTES,
    CONF_TIMESTAMP_PRECISION,
    DEFAULT_MIRROR_FILE,
    DOMAIN,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    PRECISION_MICROSECONDS,
    PRECISION_MILLISECONDS,
    PRECISION_SECONDS,
    PRESET_CORE_COMPATIBLE,
)
from custom_components.ha_ingestor.line_protocol.entity_settings import EntitySettings
from custom_components.ha_ingestor.takeover import (
    ISSUE_DOUBLE_WRITING,
    YAML_OPTIONS_SCHEMA,
    connection_data,
    map_options,
)

from .builtin_influxdb import (
    BUILTIN,
    async_setup_builtin_v1,
    prompt_builtin_writes,
    write_configuration,
)
from .conftest import V2_TOKEN, save_options, v1_entry_data
from .influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server
from .influxdb_v2_server import InfluxDBv2TestServer
from .repair_issues import STRINGS

pytestmark = pytest.mark.usefixtures("socket_enabled")

_TAKEOVER_STRINGS = STRINGS["config"]["step"]["takeover_confirm"]


@pytest.fixture
def installed_builtin() -> ModuleType:
    """The built-in integration's module as installed, with its client libraries."""
    return importlib.import_module("homeassistant.components.influxdb")


_DIFFERENCES = STRINGS["selector"]["takeover_difference"]["options"]


async def _takeover_page(hass: HomeAssistant) -> Any:
    """Start HA Ingestor's flow and choose the takeover: its next page."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "user"}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == [
        "takeover",
        "influxdb_v3",
        "influxdb_v2",
        "influxdb_v1",
    ]
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "takeover"}
    )


def _state(entry: ConfigEntry) -> ConfigEntryState:
    """An entry's state now (which mypy would take for the one asserted before)."""
    return entry.state


def _last_page_text(result: Any) -> str:
    """The last page's description as the user reads it."""
    assert result["step_id"] == "takeover_confirm"
    return str(_TAKEOVER_STRINGS["description"]).format(
        **result["description_placeholders"]
    )


# ---------------------------------------------------------------------------------------
# The connection and the options, mapped.


@pytest.mark.parametrize(
    ("builtin", "expected"),
    [
        (
            # What the built-in config flow stores for http://db.local:8086.
            {
                "api_version": "1",
                "host": "db.local",
                "port": 8086,
                "username": "ha",
                "password": "pw",
                "database": "home",
                "ssl": False,
                "path": "/",
                "verify_ssl": False,
            },
            {
                CONF_API_VERSION: API_V1,
                CONF_URL: "http://db.local:8086",
                CONF_DATABASE: "home",
                CONF_RETENTION_POLICY: "",
                CONF_USERNAME: "ha",
                CONF_PASSWORD: "pw",
                CONF_VERIFY_SSL: False,
            },
        ),
        (
            # What its YAML import stores: missing values as None; a path without
            # its slash; a CA file, checked.
            {
                "api_version": "1",
                "host": "influx.example.org",
                "port": None,
                "username": None,
                "password": None,
                "database": "ha",
                "ssl": True,
                "path": "influx",
                "verify_ssl": True,
                "ssl_ca_cert": "/ssl/ca.pem",
            },
            {
                CONF_API_VERSION: API_V1,
                CONF_URL: "https://influx.example.org:8086/influx",
                CONF_DATABASE: "ha",
                CONF_RETENTION_POLICY: "",
                CONF_USERNAME: "",
                CONF_PASSWORD: "",
                CONF_VERIFY_SSL: True,
                CONF_SSL_CA_CERT: "/ssl/ca.pem",
            },
        ),
        (
            # Certificates not checked: the 1.x client ignores the file.
            {
                "api_version": "1",
                "host": "::1",
                "port": 8086,
                "database": "ha",
                "ssl": True,
                "path": None,
                "verify_ssl": False,
                "ssl_ca_cert": "/ssl/ca.pem",
            },
            {
                CONF_API_VERSION: API_V1,
                CONF_URL: "https://[::1]:8086",
                CONF_DATABASE: "ha",
                CONF_RETENTION_POLICY: "",
                CONF_USERNAME: "",
                CONF_PASSWORD: "",
                CONF_VERIFY_SSL: False,
            },
        ),
        (
            {
                "api_version": "2",
                "url": "https://eu-central-1-1.aws.cloud2.influxdata.com/",
                "token": "t",
                "organization": "family",
                "bucket": "Home Assistant",
                "verify_ssl": True,
                "ssl_ca_cert": "/config/.storage/influxdb/influxdb.pem",
            },
            {
                CONF_API_VERSION: API_V2,
                CONF_URL: "https://eu-central-1-1.aws.cloud2.influxdata.com/",
                CONF_TOKEN: "t",
                CONF_ORGANIZATION: "family",
                CONF_BUCKET: "Home Assistant",
                CONF_VERIFY_SSL: True,
                CONF_SSL_CA_CERT: "/config/.storage/influxdb/influxdb.pem",
            },
        ),
        (
            # YAML's host is put into the URL as it is: an IPv6 address bracketed.
            {
                "api_version": "1",
                "host": "[fd00::5]",
                "port": 8087,
                "database": "ha",
                "ssl": False,
                "path": None,
                "verify_ssl": True,
            },
            {
                CONF_API_VERSION: API_V1,
                CONF_URL: "http://[fd00::5]:8087",
                CONF_DATABASE: "ha",
                CONF_RETENTION_POLICY: "",
                CONF_USERNAME: "",
                CONF_PASSWORD: "",
                CONF_VERIFY_SSL: True,
            },
        ),
    ],
    ids=["1.x from its flow", "1.x from YAML", "1.x unchecked", "2.x", "1.x IPv6 YAML"],
)
def test_connection_data(builtin: dict[str, Any], expected: dict[str, Any]) -> None:
    """The server, database or bucket and credentials the built-in clients use."""
    assert connection_data(builtin) == expected


def test_yaml_options_are_validated_as_the_builtin_does(
    installed_builtin: ModuleType,
) -> None:
    """The same values and defaults as the built-in integration's own schema."""
    examples: list[dict[str, Any]] = [
        {},
        {
            "include": {"domains": "sensor", "entity_globs": "*_power"},
            "exclude": {"entities": "Sensor.Noise"},
            "tags": {"site": 5},
            "tags_attributes": "friendly_name",
            "measurement_attr": "entity_id",
            "override_measurement": "home",
            "default_measurement": 7,
            "ignore_attributes": ["icon"],
            "component_config": {"Sensor.A": {"ignore_attributes": "x"}},
            "component_config_glob": {"*": {"override_measurement": "all"}},
            "component_config_domain": {"light": {}},
            "precision": "ms",
            "max_retries": 3,
            "host": "db.local",
            "database": "ha",
        },
    ]
    for yaml in examples:
        core = installed_builtin.CONFIG_SCHEMA({BUILTIN: yaml})[BUILTIN]
        assert YAML_OPTIONS_SCHEMA(yaml) == core
    invalid: dict[str, Any]
    for invalid in (
        {"measurement_attr": "device_class"},
        {"precision": "h"},
        {"max_retries": -1},
        {"component_config": {"not an entity": {}}},
        {"unknown_option": 1},
    ):
        with pytest.raises(Exception, match=r"."):
            installed_builtin.CONFIG_SCHEMA({BUILTIN: invalid})
        with pytest.raises(Exception, match=r"."):
            YAML_OPTIONS_SCHEMA(invalid)


_ENTITY_IDS = ["sensor.a", "sensor.a_power", "sensor.b", "light.a", "light.b_power"]
_SETTINGS_KEYS = st.sampled_from(
    [*_ENTITY_IDS, "sensor", "light", "sensor.*", "*_power", "*", "sensor.a", "x.y"]
)
_SETTINGS = st.dictionaries(
    _SETTINGS_KEYS,
    st.fixed_dictionaries(
        {},
        optional={
            "override_measurement": st.sampled_from(["", "m1", "m2"]),
            "ignore_attributes": st.lists(st.sampled_from(["i", "j"]), max_size=2),
        },
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(by_id=_SETTINGS, by_domain=_SETTINGS, by_pattern=_SETTINGS)
def test_settings_per_entity_resolve_as_the_builtin_does(
    by_id: dict[str, Any], by_domain: dict[str, Any], by_pattern: dict[str, Any]
) -> None:
    """Every entity gets the same override and ignored attributes as in the built-in.

    Whatever is set by entity id, domain and pattern, including patterns without a
    wildcard, which can only match the entity id they spell.
    """
    yaml = YAML_OPTIONS_SCHEMA(
        {
            "component_config": {k: v for k, v in by_id.items() if valid_entity_id(k)},
            "component_config_domain": by_domain,
            "component_config_glob": by_pattern,
        }
    )
    options, _ = map_options(yaml)
    builtin = EntityValues(
        yaml["component_config"],
        yaml["component_config_domain"],
        yaml["component_config_glob"],
    )
    overrides = EntitySettings(options[CONF_MEASUREMENT_OVERRIDES])
    ignored = EntitySettings(
        options[CONF_IGNORE_ATTRIBUTES_BY_ENTITY],
        options[CONF_IGNORE_ATTRIBUTES_BY_DOMAIN],
    )
    for entity_id in _ENTITY_IDS:
        domain = entity_id.split(".")[0]
        expected = builtin.get(entity_id)
        assert overrides.get(entity_id, domain) == expected.get("override_measurement")
        # (A domain's empty list is taken as none: the same attributes.)
        assert set(ignored.get(entity_id, domain) or ()) == set(
            expected.get("ignore_attributes") or ()
        )


# ---------------------------------------------------------------------------------------
# The config flow, from a built-in entry set up for real.


async def test_takeover_is_offered_first_only_where_a_builtin_entry_exists(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """No built-in entry: the usual menu. One: the takeover first, until done."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "user"}
    )
    assert result["menu_options"] == ["influxdb_v3", "influxdb_v2", "influxdb_v1"]
    hass.config_entries.flow.async_abort(result["flow_id"])
    builtin = await async_setup_builtin_v1(hass, influxdb, database)
    result = await _takeover_page(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"disable_builtin": False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    # Taken over (the built-in entry kept): not offered again.
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "user"}
    )
    assert result["menu_options"] == ["influxdb_v3", "influxdb_v2", "influxdb_v1"]
    hass.config_entries.flow.async_abort(result["flow_id"])
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_unload(builtin.entry_id)


_YAML: dict[str, Any] = {
    "include": {"domains": ["sensor", "light"], "entities": ["switch.pump"]},
    "exclude": {
        "entity_globs": ["sensor.*_linkquality"],
        "entities": ["sensor.noise"],
    },
    "tags": {"site": "home"},
    "tags_attributes": ["friendly_name"],
    "measurement_attr": "domain__device_class",
    "default_measurement": "misc",
    "ignore_attributes": ["icon"],
    "component_config": {"sensor.kettle_power": {"override_measurement": "kettle"}},
    "component_config_domain": {"light": {"ignore_attributes": ["effect_list"]}},
    "component_config_glob": {
        "sensor.*_power": {
            "override_measurement": "power",
            "ignore_attributes": ["state_class"],
        }
    },
    "precision": "ms",
    "max_retries": 2,
}


async def test_takeover_of_a_1x_entry(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Its connection and every option carried over; it is disabled after.

    The options forms show them, and saving them unchanged keeps them.
    """
    assert await async_setup_component(hass, "repairs", {})
    with prompt_builtin_writes():
        builtin = await async_setup_builtin_v1(hass, influxdb, database, _YAML)
        result = await _takeover_page(hass)
        assert result["type"] is FlowResultType.FORM
        text = _last_page_text(result)
        assert f"to {database} on 127.0.0.1:{influxdb.port} what" in text
        assert "within 70 seconds (max_retries: 2)" in text
        assert result["description_placeholders"]["differences"] == ""
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"disable_builtin": True}
        )
        await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.title == f"{database} on 127.0.0.1:{influxdb.port}"
    assert dict(entry.data) == {
        CONF_API_VERSION: API_V1,
        CONF_URL: influxdb.url,
        CONF_DATABASE: database,
        CONF_RETENTION_POLICY: "",
        CONF_USERNAME: ADMIN_USER,
        CONF_PASSWORD: ADMIN_PASSWORD,
        CONF_VERIFY_SSL: False,
    }
    assert dict(entry.options) == {
        CONF_PRESET: PRESET_CORE_COMPATIBLE,
        CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS,
        CONF_MEASUREMENT_OVERRIDE: "",
        CONF_DEFAULT_MEASUREMENT: "misc",
        CONF_MEASUREMENT_OVERRIDES: {
            "sensor.*_power": "power",
            "sensor.kettle_power": "kettle",
        },
        CONF_GLOBAL_TAGS: {"site": "home"},
        CONF_TAG_ATTRIBUTES: ["friendly_name"],
        CONF_IGNORE_ATTRIBUTES: ["icon"],
        CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: {"light": ["effect_list"]},
        # The kettle's own settings include the pattern's, as in the built-in.
        CONF_IGNORE_ATTRIBUTES_BY_ENTITY: {
            "sensor.*_power": ["state_class"],
            "sensor.kettle_power": ["state_class"],
        },
        CONF_TIMESTAMP_PRECISION: PRECISION_MILLISECONDS,
        CONF_INCLUDE_DOMAINS: ["sensor", "light"],
        CONF_INCLUDE_ENTITIES: ["switch.pump"],
        CONF_INCLUDE_ENTITY_GLOBS: [],
        CONF_EXCLUDE_DOMAINS: [],
        CONF_EXCLUDE_ENTITIES: ["sensor.noise"],
        CONF_EXCLUDE_ENTITY_GLOBS: ["sensor.*_linkquality"],
        CONF_SKIP_UNAVAILABLE: True,
        CONF_MIRROR_ENABLED: False,
        CONF_MIRROR_PATH: hass.config.path(DEFAULT_MIRROR_FILE),
    }
    assert entry.state is ConfigEntryState.LOADED
    assert builtin.disabled_by is ConfigEntryDisabler.USER
    assert builtin.state is ConfigEntryState.NOT_LOADED
    assert (
        ir.async_get(hass).async_get_issue(
            DOMAIN, f"{ISSUE_DOUBLE_WRITING}_{entry.entry_id}"
        )
        is None
    )

    # HA Ingestor writes what the built-in would have.
    hass.states.async_set(
        "sensor.kettle_power",
        "1500",
        {"unit_of_measurement": "W", "friendly_name": "Kettle", "state_class": "m"},
        timestamp=1_700_000_000.123_456,
    )
    await hass.services.async_call(DOMAIN, "flush", {}, blocking=True)
    assert influxdb.rows("SELECT * FROM kettle", database) == [
        {
            "measurement": "kettle",
            "time": 1_700_000_000_123_000,
            "domain": "sensor",
            "entity_id": "kettle_power",
            "friendly_name": "Kettle",
            "site": "home",
            "unit_of_measurement_str": "W",
            "value": 1500,
        }
    ]

    options = dict(entry.options)
    result = await save_options(hass, entry, {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # Each option as it was; the delivery form adds its defaults.
    assert {key: entry.options[key] for key in options} == options
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_declined_the_repair_issue_disables_it_later(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Kept: a repair issue says both write every point; its fix disables it.

    Enabled again, the issue is back; HA Ingestor unloaded, it is gone.
    """
    assert await async_setup_component(hass, "repairs", {})
    builtin = await async_setup_builtin_v1(hass, influxdb, database)
    result = await _takeover_page(hass)
    assert _TAKEOVER_STRINGS["data"]["disable_builtin"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"disable_builtin": False}
    )
    await hass.async_block_till_done()
    entry = result["result"]
    assert _state(builtin) is ConfigEntryState.LOADED
    issue_id = f"{ISSUE_DOUBLE_WRITING}_{entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders == {
        "title": entry.title,
        "builtin": builtin.title,
    }

    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, data={"issue_id": issue_id})
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"] == issue.translation_placeholders
    result = await manager.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert builtin.disabled_by is ConfigEntryDisabler.USER
    assert builtin.state is ConfigEntryState.NOT_LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None

    await hass.config_entries.async_set_disabled_by(builtin.entry_id, None)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert await hass.config_entries.async_unload(builtin.entry_id)


async def test_a_copied_connection_that_fails_is_shown_in_its_form(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Tested like any setup: the error on its field, the rest filled in."""
    builtin = await async_setup_builtin_v1(
        hass, influxdb, database, {"tags": {"a": "b"}}
    )
    hass.config_entries.async_update_entry(
        builtin, data={**builtin.data, CONF_PASSWORD: "wrong"}
    )
    result = await _takeover_page(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "influxdb_v1"
    assert result["errors"] == {CONF_PASSWORD: "invalid_auth"}
    schema = result["data_schema"]
    assert schema is not None
    shown = {
        key.schema: key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }
    assert shown[CONF_URL] == influxdb.url
    assert shown[CONF_DATABASE] == database
    assert shown[CONF_USERNAME] == ADMIN_USER
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {**shown, CONF_PASSWORD: ADMIN_PASSWORD},
    )
    assert result["step_id"] == "takeover_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"disable_builtin": True}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].options[CONF_GLOBAL_TAGS] == {"a": "b"}
    assert builtin.disabled_by is ConfigEntryDisabler.USER
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_takeover_of_a_2x_entry(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """URL, token, organization and bucket; the 2.x client's names are named."""
    write_configuration(hass, {})
    result = await hass.config_entries.flow.async_init(
        BUILTIN, context={"source": "user"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "configure_v2"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "url": influxdb_v2.url,
            "verify_ssl": False,
            "organization": "home",
            "bucket": "ha",
            "token": V2_TOKEN,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    builtin = result["result"]
    result = await _takeover_page(hass)
    assert result["step_id"] == "takeover_confirm"
    assert result["description_placeholders"]["differences"] == (
        f"\n- {_DIFFERENCES['v2_client']}"
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"disable_builtin": True}
    )
    await hass.async_block_till_done()
    entry = result["result"]
    assert dict(entry.data) == {
        CONF_API_VERSION: API_V2,
        CONF_URL: influxdb_v2.url,
        CONF_TOKEN: V2_TOKEN,
        CONF_ORGANIZATION: "home",
        CONF_BUCKET: "ha",
        CONF_VERIFY_SSL: False,
    }
    assert builtin.disabled_by is ConfigEntryDisabler.USER
    hass.states.async_set("sensor.x", "1", {"unit_of_measurement": "W"})
    await hass.services.async_call(DOMAIN, "flush", {}, blocking=True)
    assert [(p.measurement, p.tags, p.fields) for p in influxdb_v2.points("ha")] == [
        ("W", {"domain": "sensor", "entity_id": "x"}, {"value": 1.0})
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_takeover_keeps_the_ca_certificate(
    hass: HomeAssistant, influxdb_https: InfluxDBv1Server
) -> None:
    """An entry imported from YAML, checking the server with a CA file: kept."""
    influxdb_https.query('CREATE DATABASE "tls"')
    certificate = str(influxdb_https.directory / "cert.pem")
    yaml = {
        "host": "127.0.0.1",
        "port": influxdb_https.port,
        "ssl": True,
        "verify_ssl": True,
        "ssl_ca_cert": certificate,
        "database": "tls",
        "username": ADMIN_USER,
        "password": ADMIN_PASSWORD,
    }
    write_configuration(hass, yaml)
    assert await async_setup_component(hass, BUILTIN, {BUILTIN: yaml})
    await hass.async_block_till_done()
    (builtin,) = hass.config_entries.async_entries(BUILTIN)
    assert builtin.state is ConfigEntryState.LOADED
    result = await _takeover_page(hass)
    assert result["step_id"] == "takeover_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"disable_builtin": True}
    )
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.data[CONF_URL] == influxdb_https.url
    assert entry.data[CONF_SSL_CA_CERT] == certificate
    hass.states.async_set("sensor.x", "1", {"unit_of_measurement": "W"})
    await hass.services.async_call(DOMAIN, "flush", {}, blocking=True)
    assert [row["value"] for row in influxdb_https.rows("SELECT * FROM W", "tls")] == [
        1
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_invalid_yaml_aborts(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Options the built-in integration cannot set up with either: nothing is made."""
    builtin = await async_setup_builtin_v1(hass, influxdb, database)
    write_configuration(hass, {"measurement_attr": "device_class"})
    result = await _takeover_page(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "yaml_invalid"
    assert "measurement_attr" in result["description_placeholders"]["error"]
    await hass.async_add_executor_job(
        Path(hass.config.path("configuration.yaml")).write_text, "influxdb: [", "utf-8"
    )
    result = await _takeover_page(hass)
    assert result["reason"] == "yaml_invalid"
    await hass.async_add_executor_job(
        Path(hass.config.path("configuration.yaml")).unlink
    )
    result = await _takeover_page(hass)
    assert result["reason"] == "yaml_invalid"
    assert "configuration.yaml" in result["description_placeholders"]["error"]
    assert not hass.config_entries.async_entries(DOMAIN)
    assert await hass.config_entries.async_unload(builtin.entry_id)


async def test_the_menu_outdated_by_a_change_meanwhile_aborts(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Offered, then made moot before it is chosen: the flow says why, nothing made.

    Another flow added an entry for the same database, or the built-in entry went.
    """
    builtin = await async_setup_builtin_v1(hass, influxdb, database)
    menu = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    assert "takeover" in menu["menu_options"]
    added = MockConfigEntry(
        domain=DOMAIN,
        unique_id=f"{influxdb.url}/{database}",
        data=v1_entry_data(influxdb, database),
    )
    added.add_to_hass(hass)
    result = await hass.config_entries.flow.async_configure(
        menu["flow_id"], {"next_step_id": "takeover"}
    )
    assert (result["type"], result["reason"]) == (
        FlowResultType.ABORT,
        "already_configured",
    )

    assert await hass.config_entries.async_remove(added.entry_id)
    menu = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    assert "takeover" in menu["menu_options"]
    assert await hass.config_entries.async_remove(builtin.entry_id)
    result = await hass.config_entries.flow.async_configure(
        menu["flow_id"], {"next_step_id": "takeover"}
    )
    assert (result["type"], result["reason"]) == (
        FlowResultType.ABORT,
        "builtin_missing",
    )
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_a_copied_url_that_is_no_url_is_shown_on_its_field(
    hass: HomeAssistant,
) -> None:
    """The built-in entry's URL lacks its scheme: the 2.x form, the error on the URL."""
    write_configuration(hass, {})
    MockConfigEntry(
        domain=BUILTIN,
        data={
            "api_version": "2",
            "url": "influxdb.local:8086",
            "token": V2_TOKEN,
            "organization": "home",
            "bucket": "ha",
            "verify_ssl": True,
        },
    ).add_to_hass(hass)
    result = await _takeover_page(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "influxdb_v2"
    assert result["errors"] == {CONF_URL: "invalid_url"}


@pytest.mark.parametrize("host", ["influx db.local", "influxdb.local:8086"])
async def test_a_copied_host_that_makes_no_url_is_shown_on_its_field(
    hass: HomeAssistant, host: str
) -> None:
    """A 1.x host from YAML that no URL can hold: the 1.x form, the error on the URL.

    Building the URL raised ValueError: the takeover failed with "Unknown error".
    """
    write_configuration(hass, {})
    MockConfigEntry(
        domain=BUILTIN,
        data={"api_version": "1", "host": host, "port": 8086, "database": "ha"},
    ).add_to_hass(hass)
    result = await _takeover_page(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "influxdb_v1"
    assert result["errors"] == {CONF_URL: "invalid_url"}


@pytest.mark.parametrize(
    ("yaml", "differences"),
    [
        (
            {"tags": {"time": "now", "k\\": "v", "site": "a\\", "ok": "yes"}},
            [
                ("tag_refused", {"tag": "`time`"}),
                ("tag_refused", {"tag": "`k\\`"}),
                ("tag_refused", {"tag": "`site`"}),
            ],
        ),
        (
            {"tags_attributes": ["time", "x\\", "friendly_name"]},
            [
                ("tag_attribute_refused", {"attribute": "`time`"}),
                ("tag_attribute_refused", {"attribute": "`x\\`"}),
            ],
        ),
        (
            {
                "override_measurement": "#home",
                "default_measurement": "a\\ b",
                "component_config_glob": {
                    "sensor.*": {"override_measurement": "x\\"},
                    "light.*": {"override_measurement": "lights"},
                },
            },
            [
                (
                    "measurement_refused",
                    {"measurement": "`#home`", "option": "`override_measurement`"},
                ),
                (
                    "measurement_refused",
                    {"measurement": "`a\\ b`", "option": "`default_measurement`"},
                ),
                (
                    "measurement_refused",
                    {
                        "measurement": "`x\\`",
                        "option": "`override_measurement (sensor.*)`",
                    },
                ),
            ],
        ),
        (
            # The built-in 1.x client refuses it: the entry does not set up.
            {"precision": "us", "tags": {"site": "home"}},
            [("precision_refused", {"precision": "`us`"})],
        ),
    ],
    ids=["tags", "tag attributes", "measurements", "precision"],
)
async def test_last_page_names_what_cannot_be_the_same(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    yaml: dict[str, Any],
    differences: list[tuple[str, dict[str, str]]],
) -> None:
    """Options whose points InfluxDB refused are listed, each with what is done."""
    builtin = await async_setup_builtin_v1(
        hass,
        influxdb,
        database,
        yaml,
        state=(
            ConfigEntryState.SETUP_ERROR
            if "precision" in yaml
            else ConfigEntryState.LOADED
        ),
    )
    result = await _takeover_page(hass)
    expected = "".join(
        f"\n- {_DIFFERENCES[kind].format(**values)}" for kind, values in differences
    )
    assert result["description_placeholders"]["differences"] == expected
    assert expected in _last_page_text(result)
    hass.config_entries.flow.async_abort(result["flow_id"])
    assert await hass.config_entries.async_unload(builtin.entry_id)


async def test_no_state_change_falls_between_the_two(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Changes fired all through the switch: each in InfluxDB, from one or the other.

    The built-in entry is disabled once HA Ingestor records; a change both wrote is
    the same point, stored once.
    """
    with prompt_builtin_writes():
        builtin = await async_setup_builtin_v1(hass, influxdb, database)
        fired = 0
        switched = asyncio.Event()

        async def fire() -> None:
            nonlocal fired
            while not switched.is_set():
                hass.states.async_set(
                    "sensor.switch_power", str(fired), {"unit_of_measurement": "W"}
                )
                fired += 1
                await asyncio.sleep(0.002)

        firing = hass.async_create_background_task(fire(), "fire through the switch")
        await asyncio.sleep(0.1)
        result = await _takeover_page(hass)
        before = fired
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"disable_builtin": True}
        )
        during = fired - before
        await asyncio.sleep(0.1)
        switched.set()
        await firing
        await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert builtin.state is ConfigEntryState.NOT_LOADED
    assert during > 0
    await hass.services.async_call(DOMAIN, "flush", {}, blocking=True)
    rows = influxdb.rows('SELECT "value" FROM "W"', database)
    assert sorted(row["value"] for row in rows) == [float(i) for i in range(fired)]


@pytest.mark.parametrize(
    ("precision", "expected"),
    [
        (None, PRECISION_MICROSECONDS),
        ("ns", PRECISION_MICROSECONDS),
        ("us", PRECISION_MICROSECONDS),
        ("ms", PRECISION_MILLISECONDS),
        ("s", PRECISION_SECONDS),
    ],
)
async def test_each_precision_is_taken_over(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    precision: str | None,
    expected: str,
) -> None:
    """`ns` and `us` are microseconds, all Home Assistant's clock has.

    (The built-in 1.x client refuses both: its entry does not set up.)
    """
    builtin = await async_setup_builtin_v1(
        hass,
        influxdb,
        database,
        {} if precision is None else {"precision": precision},
        state=(
            ConfigEntryState.SETUP_ERROR
            if precision in {"ns", "us"}
            else ConfigEntryState.LOADED
        ),
    )
    result = await _takeover_page(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"disable_builtin": True}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].options[CONF_TIMESTAMP_PRECISION] == expected
    assert builtin.disabled_by is ConfigEntryDisabler.USER


@pytest.mark.freeze_time(tick=True)
async def test_yaml_query_sensors_keep_working_once_it_is_disabled(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    freezer: FrozenDateTimeFactory,
) -> None:
    """`sensor: - platform: influxdb` is no part of the built-in entry."""
    builtin = await async_setup_builtin_v1(hass, influxdb, database)
    influxdb.request("POST", "/write", {"db": database}, b"kettle value=1500")
    query = {
        "name": "Kettle",
        "database": database,
        "measurement": "kettle",
        "field": "value",
        "group_function": "last",
        "where": "time > now() - 1h",
    }
    sensor = {
        "platform": BUILTIN,
        "host": "127.0.0.1",
        "port": influxdb.port,
        "username": ADMIN_USER,
        "password": ADMIN_PASSWORD,
        "queries": [query],
    }
    assert await async_setup_component(hass, "sensor", {"sensor": [sensor]})
    await hass.async_block_till_done()

    def kettle() -> float:
        state = hass.states.get("sensor.kettle")
        assert state is not None
        return float(state.state)

    assert kettle() == 1500

    result = await _takeover_page(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"disable_builtin": True}
    )
    await hass.async_block_till_done()
    assert builtin.disabled_by is ConfigEntryDisabler.USER
    influxdb.request("POST", "/write", {"db": database}, b"kettle value=1600")
    # Past the minute between two of its queries.
    freezer.tick(timedelta(minutes=2))
    await async_setup_component(hass, "homeassistant", {})
    await hass.services.async_call(
        "homeassistant",
        "update_entity",
        {"entity_id": "sensor.kettle"},
        blocking=True,
    )
    assert kettle() == 1600


async def test_an_already_disabled_builtin_entry_is_left_alone(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Taken over from a disabled entry: no question, no repair issue."""
    builtin = await async_setup_builtin_v1(hass, influxdb, database)
    await hass.config_entries.async_set_disabled_by(
        builtin.entry_id, ConfigEntryDisabler.USER
    )
    result = await _takeover_page(hass)
    assert result["step_id"] == "takeover_confirm"
    schema = result["data_schema"]
    assert schema is not None
    assert not schema.schema
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert builtin.disabled_by is ConfigEntryDisabler.USER
    assert not [
        issue
        for (domain, _), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)
