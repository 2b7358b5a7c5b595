"""The core_compatible preset: what Home Assistant's own influxdb integration writes.

Checked against rules worked out by hand from Home Assistant's influxdb integration,
against that integration's own converter (the `core_influxdb` fixture) with every
option, and against a real InfluxDB 1.x: docs/schema.md's lines, and lines of arbitrary
state changes written and read back.
"""

from __future__ import annotations

from collections.abc import Mapping
import graphlib
import itertools
import math
from pathlib import Path
import re
from types import ModuleType
from typing import Any
from unittest.mock import Mock, patch

from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, State
from homeassistant.helpers.entity_values import EntityValues
from hypothesis import HealthCheck, assume, given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.const import (
    CONF_DEFAULT_MEASUREMENT,
    CONF_GLOBAL_TAGS,
    CONF_IGNORE_ATTRIBUTES,
    CONF_IGNORE_ATTRIBUTES_BY_DOMAIN,
    CONF_IGNORE_ATTRIBUTES_BY_ENTITY,
    CONF_MEASUREMENT_OVERRIDE,
    CONF_MEASUREMENT_OVERRIDES,
    CONF_MEASUREMENT_RULE,
    CONF_TAG_ATTRIBUTES,
    CONF_TIMESTAMP_PRECISION,
    MEASUREMENT_DEVICE_CLASS,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID,
    MEASUREMENT_UNIT,
    PRECISION_MICROSECONDS,
    PRECISION_MILLISECONDS,
    PRECISION_SECONDS,
    PRESET_CORE_COMPATIBLE,
)
from custom_components.ha_ingestor.line_protocol import core_compatible, create_encoder
from custom_components.ha_ingestor.line_protocol.entity_settings import key_kind
from custom_components.ha_ingestor.pipeline.stats import PipelineStats

from ..influxdb_v1_server import InfluxDBv1Server
from .helpers import (
    CORE,
    TIME_US,
    UTC_MORNING,
    Example,
    Fields,
    FixedRegistry,
    Point,
    Scenario,
    databases_for,
    encode,
    parse_influx_line,
    parse_line,
    scenarios,
    stored_name,
    write_and_read,
    written_lines,
)
from .strategies import LAID_OUT_ATTRIBUTES, OPTIONS, STATE_TEXTS, STATES, TEXTS

# ---------------------------------------------------------------------------------------
# The lines docs/schema.md shows.

_LIVING_ROOM = {
    "unit_of_measurement": "°C",
    "device_class": "temperature",
    "friendly_name": "Living room",
}


CORE_EXAMPLES: list[Example] = [
    Example(
        CORE,
        "sensor.living_room",
        "21.5",
        _LIVING_ROOM,
        "°C,domain=sensor,entity_id=living_room "
        'device_class_str="temperature",friendly_name_str="Living room",value=21.5 '
        "1732262400123456",
    ),
    Example(
        CORE,
        "binary_sensor.front_door",
        "on",
        {"device_class": "door", "friendly_name": "Front door"},
        "binary_sensor.front_door,domain=binary_sensor,entity_id=front_door "
        'device_class_str="door",friendly_name_str="Front door",state="on",value=1.0 '
        "1732262400123456",
    ),
    Example(
        CORE,
        "climate.hall",
        "heat",
        {
            "current_temperature": 20.5,
            "hvac_modes": ["off", "heat"],
            "preset_mode": None,
            "friendly_name": "Hall",
        },
        "climate.hall,domain=climate,entity_id=hall "
        'current_temperature=20.5,friendly_name_str="Hall",'
        'hvac_modes_str="[\'off\', \'heat\']",preset_mode_str="None",state="heat" '
        "1732262400123456",
    ),
    Example(
        CORE,
        "update.router",
        "on",
        {
            "installed_version": "Version 2.3",
            "latest_version": "v2.4.1",
            "auto_update": False,
        },
        "update.router,domain=update,entity_id=router "
        'auto_update=0.0,installed_version=2.3,installed_version_str="Version 2.3",'
        'latest_version_str="v2.4.1",state="on",value=1.0 1732262400123456',
    ),
    Example(
        CORE,
        "sensor.last_boot",
        "2024-11-22T08:00:00+00:00",
        {"device_class": "timestamp", "last_reset": UTC_MORNING},
        "sensor.last_boot,domain=sensor,entity_id=last_boot "
        'device_class_str="timestamp",last_reset=2.024112208e+17,'
        'last_reset_str="2024-11-22 08:00:00+00:00",'
        'state="2024-11-22T08:00:00+00:00" 1732262400123456',
    ),
    Example(
        CORE,
        "sensor.collide",
        "12",
        {"value": "high", "state": 3, "time": "12:30"},
        "sensor.collide,domain=sensor,entity_id=collide "
        'state=3.0,time_=1230.0,time_str="12:30",value=12.0,value__str="high" '
        "1732262400123456",
    ),
    Example(
        CORE,
        "sensor.water",
        "0.25",
        {
            "unit_of_measurement": "m³ per h, est",
            "note": 'say "hi" C:\\temp\nnow',
            "a b,c=d": 1,
        },
        r"m³\ per\ h\,\ est,domain=sensor,entity_id=water "
        r'a\ b\,c\=d=1.0,note_str="say \"hi\" C:\\temp now",value=0.25 '
        "1732262400123456",
    ),
    Example(
        CORE,
        "sensor.power",
        "nan",
        {"unit_of_measurement": "W", "friendly_name": "Power"},
        'W,domain=sensor,entity_id=power friendly_name_str="Power" 1732262400123456',
    ),
    Example(
        CORE,
        "sensor.power",
        "unavailable",
        {"unit_of_measurement": "W", "friendly_name": "Power"},
        'W,domain=sensor,entity_id=power state="unavailable" 1732262400123456',
    ),
    Example(
        CORE | {CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS},
        "sensor.living_room",
        "21.5",
        _LIVING_ROOM,
        "sensor__temperature,domain=sensor,entity_id=living_room "
        'friendly_name_str="Living room",unit_of_measurement_str="°C",value=21.5 '
        "1732262400123456",
    ),
    Example(
        CORE
        | {
            CONF_MEASUREMENT_OVERRIDE: "home",
            CONF_GLOBAL_TAGS: {"site": "main", "building": "A 1"},
            CONF_IGNORE_ATTRIBUTES: ["friendly_name"],
            CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: {"sensor": ["device_class"]},
        },
        "sensor.living_room",
        "21.5",
        _LIVING_ROOM,
        r"home,building=A\ 1,domain=sensor,entity_id=living_room,site=main "
        'unit_of_measurement_str="°C",value=21.5 1732262400123456',
    ),
]


@pytest.mark.parametrize("example", CORE_EXAMPLES, ids=lambda e: e.entity_id)
def test_documented_lines(example: Example) -> None:
    """The lines are exactly the ones docs/schema.md shows."""
    assert example.encode() == example.line


def test_documented_lines_are_in_the_docs() -> None:
    """docs/schema.md shows these very lines, so it cannot drift from the code."""
    text = (Path(__file__).parents[2] / "docs" / "schema.md").read_text("utf-8")
    for example in CORE_EXAMPLES:
        assert example.line in text


def test_documented_lines_are_accepted(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """Real InfluxDB takes the documented lines and stores their measurements."""
    lines = [example.line for example in CORE_EXAMPLES]
    status, body = influxdb.request(
        "POST", "/write", {"db": database, "precision": "u"}, "\n".join(lines).encode()
    )
    assert status == 204, body
    (series,) = influxdb.query("SHOW MEASUREMENTS", database)
    assert sorted(name for (name,) in series["values"]) == sorted(
        {parse_influx_line(line)[0] for line in lines}
    )


# ---------------------------------------------------------------------------------------
# Core's rules, worked out by hand.

# What core's rules give for a state: None (not written), or measurement and fields;
# the tags are always the entity id's domain and object id.
type Expected = tuple[str, Fields] | None


# (case id, entity id, state, attributes, expected), each derived by hand from
# core's _generate_event_to_json, helpers.state.state_as_number and the client's
# make_line, as docs/schema.md explains them.
CORE_CASES: list[tuple[str, str, str, dict[str, Any], Expected]] = [
    # Where core writes nothing, the state alone (docs/schema.md).
    (
        "unknown",
        "sensor.a",
        "unknown",
        {"unit_of_measurement": "W", "friendly_name": "A"},
        ("W", {"state": "unknown"}),
    ),
    (
        "unavailable",
        "sensor.b",
        "unavailable",
        {},
        ("sensor.b", {"state": "unavailable"}),
    ),
    ("empty state", "sensor.c", "", {}, None),
    (
        "number",
        "sensor.d",
        "21",
        {"unit_of_measurement": "kWh"},
        ("kWh", {"value": 21.0}),
    ),
    ("float() accepts", "sensor.e", " 1_000 ", {}, ("sensor.e", {"value": 1000.0})),
    ("arabic digits", "sensor.f", "١٢", {}, ("sensor.f", {"value": 12.0})),
    ("on", "light.g", "on", {}, ("light.g", {"state": "on", "value": 1.0})),
    ("off", "switch.h", "off", {}, ("switch.h", {"state": "off", "value": 0.0})),
    ("open", "cover.i", "open", {}, ("cover.i", {"state": "open", "value": 1.0})),
    ("closed", "cover.j", "closed", {}, ("cover.j", {"state": "closed", "value": 0.0})),
    ("locked", "lock.k", "locked", {}, ("lock.k", {"state": "locked", "value": 1.0})),
    (
        "unlocked",
        "lock.l",
        "unlocked",
        {},
        ("lock.l", {"state": "unlocked", "value": 0.0}),
    ),
    ("home", "person.m", "home", {}, ("person.m", {"state": "home", "value": 1.0})),
    (
        "not_home",
        "person.n",
        "not_home",
        {},
        ("person.n", {"state": "not_home", "value": 0.0}),
    ),
    (
        "above_horizon",
        "sun.o",
        "above_horizon",
        {},
        ("sun.o", {"state": "above_horizon", "value": 1.0}),
    ),
    ("a word", "climate.p", "heat", {}, ("climate.p", {"state": "heat"})),
    # The digit tail applies to attributes, never to the state.
    (
        "text with digits",
        "update.q",
        "Version 2.3",
        {},
        ("update.q", {"state": "Version 2.3"}),
    ),
    (
        "multi-line state",
        "sensor.r",
        "Avenida 50\n28002 Madrid\r\nEspaña\n",
        {},
        ("sensor.r", {"state": "Avenida 50 28002 Madrid España"}),
    ),
    (
        "attribute types",
        "sensor.s",
        "1",
        {
            "on": True,
            "off": False,
            "count": 3,
            "ratio": 2.5,
            "numeric_text": "4.5",
            "nothing": None,
            "pair": [1, 2],
            "tagged": ["a", 22],
            "mapping": {"a": 1},
            "when": UTC_MORNING,
        },
        (
            "sensor.s",
            {
                "value": 1.0,
                "on": 1.0,
                "off": 0.0,
                "count": 3.0,
                "ratio": 2.5,
                "numeric_text": 4.5,
                "nothing_str": "None",
                "pair_str": "[1, 2]",
                "tagged_str": "['a', 22]",
                "tagged": 22.0,
                "mapping_str": "{'a': 1}",
                "when_str": "2024-11-22 08:00:00+00:00",
                "when": 202411220800000000.0,
            },
        ),
    ),
    (
        "digit tails",
        "sensor.t",
        "1",
        {
            "version": "Version 2.3",
            "firmware": "Firmware 10",
            "clock": "12:30",
            "address": "192.168.1.1",
            "semver": "v2.4.1",
            "one_digit": "v2",
            "huge": "v" + "9" * 400,
        },
        (
            "sensor.t",
            {
                "value": 1.0,
                "version_str": "Version 2.3",
                "version": 2.3,
                "firmware_str": "Firmware 10",
                "firmware": 10.0,
                "clock_str": "12:30",
                "clock": 1230.0,
                "address_str": "192.168.1.1",
                "semver_str": "v2.4.1",
                "one_digit_str": "v2",
                # Its digits are beyond float: infinity, dropped; the text stays.
                "huge_str": "v" + "9" * 400,
            },
        ),
    ),
    (
        "NaN and infinity attributes",
        "sensor.u",
        "1",
        {"a": math.nan, "b": math.inf, "c": "nan", "d": "-Infinity", "e": 1e308},
        ("sensor.u", {"value": 1.0, "e": 1e308}),
    ),
    (
        "multi-line attribute",
        "sensor.v",
        "1",
        {"note": "two\nlines\u2028here"},
        ("sensor.v", {"value": 1.0, "note_str": "two lines here"}),
    ),
    (
        "collisions with value and state",
        "sensor.w",
        "7",
        {"value": "high", "state": 3},
        ("sensor.w", {"value": 7.0, "value__str": "high", "state": 3.0}),
    ),
    (
        "collisions with a text state",
        "sensor.x",
        "heat",
        {"state": "x", "value": 3},
        ("sensor.x", {"state": "heat", "state__str": "x", "value": 3.0}),
    ),
    (
        "collisions between attributes",
        "sensor.y",
        "1",
        {"a": "abc", "a_str": 5, "b_str": 5, "b": "xyz"},
        ("sensor.y", {"value": 1.0, "a_str": "abc", "a_str_": 5.0, "b_str": "xyz"}),
    ),
    (
        # NaN replaces the earlier `value_`, then core drops it.
        "NaN attribute after a collision",
        "sensor.ao",
        "1",
        {"value_": 1, "value": math.nan},
        ("sensor.ao", {"value": 1.0}),
    ),
    (
        "time is renamed",
        "sensor.z",
        "1",
        {"time_": 1, "time": 2},
        ("sensor.z", {"value": 1.0, "time_": 1.0, "time__": 2.0}),
    ),
    (
        "unit is the measurement",
        "sensor.aa",
        "1",
        {"unit_of_measurement": "kW h", "friendly_name": "A"},
        ("kW h", {"value": 1.0, "friendly_name_str": "A"}),
    ),
    (
        "multi-line unit",
        "sensor.ab",
        "1",
        {"unit_of_measurement": "m\n3"},
        ("m 3", {"value": 1.0}),
    ),
    (
        "unit that is no text",
        "sensor.ac",
        "1",
        {"unit_of_measurement": 5},
        ("5", {"value": 1.0}),
    ),
    (
        "empty unit",
        "sensor.ad",
        "1",
        {"unit_of_measurement": ""},
        ("sensor.ad", {"value": 1.0, "unit_of_measurement_str": ""}),
    ),
    (
        "unit None",
        "sensor.ae",
        "1",
        {"unit_of_measurement": None},
        ("sensor.ae", {"value": 1.0, "unit_of_measurement_str": "None"}),
    ),
    (
        "escapes",
        "sensor.af",
        'say "x" C:\\',
        {"unit_of_measurement": "a,b c=d", "k,e y=": 'q"\\'},
        ("a,b c=d", {"state": 'say "x" C:\\', "k,e y=_str": 'q"\\'}),
    ),
    ("empty attribute key", "sensor.ag", "1", {"": 5}, ("sensor.ag", {"value": 1.0})),
    (
        "object id ending in a line break",
        "sensor.ah\n",
        "1",
        {},
        ("sensor.ah", {"value": 1.0}),
    ),
    # Where core's own write fails or is lost, see docs/schema.md.
    ("NaN state", "sensor.ai", "nan", {"unit_of_measurement": "V"}, None),
    (
        "infinite state with attributes",
        "sensor.aj",
        "-inf",
        {"unit_of_measurement": "A", "friendly_name": "J"},
        ("A", {"friendly_name_str": "J"}),
    ),
    (
        "int beyond float",
        "sensor.ak",
        "1",
        {"big": 10**400, "small": 1},
        ("sensor.ak", {"value": 1.0, "small": 1.0}),
    ),
    (
        "key ending in a backslash",
        "sensor.al",
        "1",
        {"k\\": 5, "j\\": "text"},
        ("sensor.al", {"value": 1.0, "j\\_str": "text"}),
    ),
    (
        "unit ending in a backslash",
        "sensor.am",
        "1",
        {"unit_of_measurement": "kW\\"},
        ("sensor.am", {"value": 1.0, "unit_of_measurement_str": "kW\\"}),
    ),
    (
        "unit starting with #",
        "sensor.an",
        "1",
        {"unit_of_measurement": "#"},
        ("sensor.an", {"value": 1.0, "unit_of_measurement_str": "#"}),
    ),
    (
        "unit with a backslash before a space",
        "sensor.ap",
        "1",
        {"unit_of_measurement": "a\\ b"},
        ("sensor.ap", {"value": 1.0, "unit_of_measurement_str": "a\\ b"}),
    ),
]


# (case id, options, entity id, state, attributes, measurement, tags, fields), derived
# by hand from core's _generate_event_to_json with the options core calls
# measurement_attr, override_measurement, tags, ignore_attributes and
# component_config_domain, as docs/schema.md explains them.
CORE_OPTION_CASES: list[
    tuple[str, dict[str, Any], str, str, dict[str, Any], str, dict[str, str], Fields]
] = [
    (
        "domain and device class",
        {CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS},
        "sensor.a",
        "1",
        {"unit_of_measurement": "W", "device_class": "power"},
        "sensor__power",
        {"domain": "sensor", "entity_id": "a"},
        {"value": 1.0, "unit_of_measurement_str": "W"},
    ),
    (
        "domain without device class",
        {CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS},
        "light.b",
        "on",
        {"friendly_name": "B"},
        "light",
        {"domain": "light", "entity_id": "b"},
        {"state": "on", "value": 1.0, "friendly_name_str": "B"},
    ),
    (
        "domain and an empty device class",
        {CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS},
        "sensor.c",
        "1",
        {"device_class": ""},
        "sensor__",
        {"domain": "sensor", "entity_id": "c"},
        {"value": 1.0},
    ),
    (
        "device class",
        {CONF_MEASUREMENT_RULE: MEASUREMENT_DEVICE_CLASS},
        "sensor.d",
        "1",
        {"unit_of_measurement": "W", "device_class": "power"},
        "power",
        {"domain": "sensor", "entity_id": "d"},
        {"value": 1.0, "unit_of_measurement_str": "W", "device_class_str": "power"},
    ),
    (
        "no device class",
        {CONF_MEASUREMENT_RULE: MEASUREMENT_DEVICE_CLASS},
        "sensor.e",
        "1",
        {"unit_of_measurement": "W"},
        "sensor.e",
        {"domain": "sensor", "entity_id": "e"},
        {"value": 1.0, "unit_of_measurement_str": "W"},
    ),
    (
        "entity id",
        {CONF_MEASUREMENT_RULE: MEASUREMENT_ENTITY_ID},
        "sensor.f",
        "1",
        {"unit_of_measurement": "W"},
        "sensor.f",
        {"domain": "sensor", "entity_id": "f"},
        {"value": 1.0, "unit_of_measurement_str": "W"},
    ),
    (
        "override",
        {CONF_MEASUREMENT_OVERRIDE: "home"},
        "sensor.g",
        "1",
        {"unit_of_measurement": "W"},
        "home",
        {"domain": "sensor", "entity_id": "g"},
        {"value": 1.0, "unit_of_measurement_str": "W"},
    ),
    (
        "override InfluxDB cannot keep",
        {CONF_MEASUREMENT_OVERRIDE: "#home"},
        "sensor.h",
        "1",
        {"unit_of_measurement": "W"},
        "W",
        {"domain": "sensor", "entity_id": "h"},
        {"value": 1.0},
    ),
    (
        "device class InfluxDB cannot keep",
        {CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS},
        "sensor.i",
        "1",
        {"device_class": "x\\"},
        "sensor",
        {"domain": "sensor", "entity_id": "i"},
        {"value": 1.0, "device_class_str": "x\\"},
    ),
    (
        "global tags",
        {CONF_GLOBAL_TAGS: {"site": "main", "a b": "c,d=e", "multi": "x\ny"}},
        "sensor.j",
        "1",
        {},
        "sensor.j",
        {
            "a b": "c,d=e",
            "domain": "sensor",
            "entity_id": "j",
            "multi": "x y",
            "site": "main",
        },
        {"value": 1.0},
    ),
    (
        # The client leaves out the empty one.
        "global tags replace core's",
        {CONF_GLOBAL_TAGS: {"domain": "house", "entity_id": ""}},
        "sensor.k",
        "1",
        {},
        "sensor.k",
        {"domain": "house"},
        {"value": 1.0},
    ),
    (
        "global tags InfluxDB refuses",
        {CONF_GLOBAL_TAGS: {"time": "now", "k\\": "v", "v": "w\\", "ok": "yes"}},
        "sensor.l",
        "1",
        {},
        "sensor.l",
        {"domain": "sensor", "entity_id": "l", "ok": "yes"},
        {"value": 1.0},
    ),
    (
        # The unit still chooses the measurement.
        "ignored attributes",
        {
            CONF_IGNORE_ATTRIBUTES: ["friendly_name", "unit_of_measurement"],
            CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: {"sensor": ["icon"], "light": ["level"]},
        },
        "sensor.m",
        "1",
        {"unit_of_measurement": "W", "friendly_name": "M", "icon": "i", "level": 5},
        "W",
        {"domain": "sensor", "entity_id": "m"},
        {"value": 1.0, "level": 5.0},
    ),
    (
        "attributes ignored in another domain",
        {
            CONF_IGNORE_ATTRIBUTES: ["friendly_name", "unit_of_measurement"],
            CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: {"sensor": ["icon"], "light": ["level"]},
        },
        "light.n",
        "on",
        {"friendly_name": "N", "icon": "i", "level": 5},
        "light.n",
        {"domain": "light", "entity_id": "n"},
        {"state": "on", "value": 1.0, "icon_str": "i"},
    ),
    (
        "default measurement",
        {CONF_DEFAULT_MEASUREMENT: "misc"},
        "sensor.o",
        "1",
        {"friendly_name": "O"},
        "misc",
        {"domain": "sensor", "entity_id": "o"},
        {"value": 1.0, "friendly_name_str": "O"},
    ),
    (
        # The entity id is never missing.
        "default measurement, measured by entity id",
        {
            CONF_DEFAULT_MEASUREMENT: "misc",
            CONF_MEASUREMENT_RULE: MEASUREMENT_ENTITY_ID,
        },
        "sensor.p",
        "1",
        {},
        "sensor.p",
        {"domain": "sensor", "entity_id": "p"},
        {"value": 1.0},
    ),
    (
        # Nor the domain.
        "default measurement, measured by domain",
        {
            CONF_DEFAULT_MEASUREMENT: "misc",
            CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS,
        },
        "light.q",
        "on",
        {},
        "light",
        {"domain": "light", "entity_id": "q"},
        {"state": "on", "value": 1.0},
    ),
    (
        # A tag of None (or empty) is none.
        "tag attributes",
        {
            CONF_TAG_ATTRIBUTES: [
                "friendly_name",
                "room",
                "floor",
                "unit_of_measurement",
            ]
        },
        "sensor.r",
        "1",
        {"unit_of_measurement": "W", "friendly_name": "R r", "room": None, "floor": 2},
        "W",
        {
            "domain": "sensor",
            "entity_id": "r",
            "friendly_name": "R r",
            "floor": "2",
            "unit_of_measurement": "W",
        },
        {"value": 1.0},
    ),
    (
        # Those InfluxDB would refuse the point for are left out, and are no fields.
        "tag attributes replacing core's, and refused",
        {CONF_TAG_ATTRIBUTES: ["domain", "entity_id", "time", "k"]},
        "sensor.s",
        "1",
        {"domain": "kitchen", "entity_id": "", "time": "noon", "k": "v\\", "l": 1},
        "sensor.s",
        {"domain": "kitchen"},
        {"value": 1.0, "l": 1.0},
    ),
    (
        "measurement and ignored attributes by pattern",
        {
            CONF_MEASUREMENT_OVERRIDES: {
                "sensor": "sensors",
                "sensor.*_power": "power",
            },
            CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: {"sensor": ["friendly_name"]},
            CONF_IGNORE_ATTRIBUTES_BY_ENTITY: {"sensor.*_power": ["icon"]},
        },
        "sensor.oven_power",
        "1",
        {"unit_of_measurement": "W", "friendly_name": "Oven", "icon": "i"},
        "power",
        {"domain": "sensor", "entity_id": "oven_power"},
        {"value": 1.0, "friendly_name_str": "Oven", "unit_of_measurement_str": "W"},
    ),
    (
        "measurement and ignored attributes by domain",
        {
            CONF_MEASUREMENT_OVERRIDES: {
                "sensor": "sensors",
                "sensor.*_power": "power",
            },
            CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: {"sensor": ["friendly_name"]},
            CONF_IGNORE_ATTRIBUTES_BY_ENTITY: {"sensor.*_power": ["icon"]},
        },
        "sensor.t",
        "1",
        {"unit_of_measurement": "W", "friendly_name": "T", "icon": "i"},
        "sensors",
        {"domain": "sensor", "entity_id": "t"},
        {"value": 1.0, "icon_str": "i", "unit_of_measurement_str": "W"},
    ),
    (
        # An entity's own empty override is none: the rule's measurement.
        "measurement by entity id, empty",
        {
            CONF_MEASUREMENT_OVERRIDE: "",
            CONF_MEASUREMENT_OVERRIDES: {"sensor.*": "power", "sensor.kettle": ""},
            CONF_IGNORE_ATTRIBUTES_BY_ENTITY: {"sensor.*": ["icon"], "sensor.u*": []},
        },
        "sensor.kettle",
        "1",
        {"unit_of_measurement": "W", "icon": "i"},
        "W",
        {"domain": "sensor", "entity_id": "kettle"},
        {"value": 1.0},
    ),
    (
        # The last pattern wins.
        "measurement by the last pattern",
        {
            CONF_MEASUREMENT_OVERRIDES: {"sensor.*": "first", "*_u*": "last"},
            CONF_IGNORE_ATTRIBUTES_BY_ENTITY: {"sensor.*": ["icon"], "*_u*": []},
        },
        "sensor.v_u",
        "1",
        {"icon": "i"},
        "last",
        {"domain": "sensor", "entity_id": "v_u"},
        {"value": 1.0, "icon_str": "i"},
    ),
]


def _tags(entity_id: str) -> dict[str, str]:
    domain, object_id = entity_id.split(".", 1)
    return {"domain": domain, "entity_id": object_id}


@pytest.mark.parametrize(
    ("entity_id", "state", "attributes", "expected"),
    [case[1:] for case in CORE_CASES],
    ids=[case[0] for case in CORE_CASES],
)
def test_core_rules(
    entity_id: str, state: str, attributes: dict[str, Any], expected: Expected
) -> None:
    """Each of core's rules gives the point worked out by hand from core's code."""
    line = encode(CORE, State(entity_id, state, attributes))
    if expected is None:
        assert line is None
        return
    assert line is not None
    measurement, fields = expected
    assert parse_line(line) == (measurement, _tags(entity_id), fields, TIME_US)


@pytest.mark.parametrize(
    ("options", "change", "point"),
    [(case[1], case[2:5], case[5:]) for case in CORE_OPTION_CASES],
    ids=[case[0] for case in CORE_OPTION_CASES],
)
def test_core_options(
    options: dict[str, Any],
    change: tuple[str, str, dict[str, Any]],
    point: tuple[str, dict[str, str], Fields],
) -> None:
    """Each option has the effect of core's own option."""
    line = encode(CORE | options, State(*change))
    assert line is not None
    assert parse_line(line) == (*point, TIME_US)


@pytest.mark.parametrize(
    ("precision", "time_us"),
    [
        (PRECISION_MICROSECONDS, 1732262400123456),
        (PRECISION_MILLISECONDS, 1732262400123000),
        (PRECISION_SECONDS, 1732262400000000),
    ],
)
def test_core_timestamp_precision(precision: str, time_us: int) -> None:
    """Core's precision cuts timestamps to whole milliseconds or seconds."""
    line = encode(CORE | {CONF_TIMESTAMP_PRECISION: precision}, State("sensor.a", "1"))
    assert line == f"sensor.a,domain=sensor,entity_id=a value=1.0 {time_us}"
    line = encode(
        CORE | {CONF_TIMESTAMP_PRECISION: precision}, State("sensor.a", "unknown")
    )
    assert line == f'sensor.a,domain=sensor,entity_id=a state="unknown" {time_us}'


def test_core_series_follow_the_tag_attributes() -> None:
    """A changed tag attribute changes the tags, also between equal numbers."""
    encoder = create_encoder(
        CORE | {CONF_TAG_ATTRIBUTES: ["room"]}, FixedRegistry(), PipelineStats()
    )
    rooms = []
    for room in ("hall", "kitchen", 5, 5.0, True, None, "hall"):
        line = encoder(State("sensor.a", "1", {"room": room}), None, 0)
        assert line is not None
        rooms.append(parse_line(line)[1].get("room"))
    assert rooms == ["hall", "kitchen", "5", "5.0", "True", None, "hall"]


def test_core_counts_what_it_leaves_out() -> None:
    """Each NaN or infinite value left out, of the state or an attribute, is counted."""
    stats = PipelineStats()
    encoder = create_encoder(CORE, FixedRegistry(), stats)
    line = encoder(
        State("sensor.a", "nan", {"b": math.inf, "c": "-inf", "d": 10**400, "e": 1}),
        None,
        TIME_US,
    )
    assert line == "sensor.a,domain=sensor,entity_id=a e=1.0 1732262400123456"
    assert stats.non_finite_values_skipped == 4
    assert encoder(State("sensor.a", "inf"), None, TIME_US) is None
    assert stats.non_finite_values_skipped == 5


def test_core_names_fields_of_keys_that_are_not_text_by_their_text() -> None:
    """As the client would: core's sort of text and other keys fails before it does."""
    attributes: dict[Any, Any] = {1: "Monday", None: 2, (3, 4): 5, b"k": "v", "b": 6}
    line = encode(CORE, State("sensor.a", "7", attributes))
    assert line is not None
    assert parse_influx_line(line)[2] == {
        "(3, 4)": 5.0,
        "1_str": "Monday",
        "None": 2.0,
        "b": 6.0,
        "b'k'_str": "v",
        "value": 7.0,
    }


def test_core_text_fields_follow_their_slot() -> None:
    """A text's fields rendered for one layout are not those of a split slot.

    `effect` has both fields next to each other alone, and apart beside
    `effect_list`; so do `a` and `a2`.
    """
    encoder = create_encoder(CORE, FixedRegistry(), PipelineStats())
    for attributes in (
        {"effect": "v2.3", "a": "v2.3"},
        {"effect": "v2.3", "effect_list": "v2.3", "a": "v2.3", "a2": "v2.3"},
        {"effect": "v2.3", "a": "v2.3"},
    ):
        state = State("light.a", "on", attributes)
        assert encoder(state, None, TIME_US) == encode(CORE, state)


def test_core_series_follow_the_measurement_attribute() -> None:
    """A changed unit changes the measurement, also between equal numbers."""
    encoder = create_encoder(CORE, FixedRegistry(), PipelineStats())
    measurements = []
    for unit in ("W", "kW", 5, 5.0, None, "W"):
        line = encoder(State("sensor.a", "1", {"unit_of_measurement": unit}), None, 0)
        assert line is not None
        measurements.append(parse_line(line)[0])
    assert measurements == ["W", "kW", "5", "5.0", "sensor.a", "W"]


def test_core_lines_read_back(influxdb: InfluxDBv1Server, database: str) -> None:
    """Real InfluxDB takes every line and stores the expected names, values, types."""
    lines, points = [], []
    for offset, (_, entity_id, state, attributes, expected) in enumerate(CORE_CASES):
        line = create_encoder(CORE, FixedRegistry(), PipelineStats())(
            State(entity_id, state, attributes), None, TIME_US + offset
        )
        if expected is not None:
            assert line is not None
            lines.append(line)
            points.append((_tags(entity_id)["entity_id"], *expected))
    status, body = influxdb.request(
        "POST", "/write", {"db": database, "precision": "u"}, "\n".join(lines).encode()
    )
    assert status == 204, body
    types = {
        (series["name"], key): kind
        for series in influxdb.query("SHOW FIELD KEYS", database)
        for key, kind in series["values"]
    }
    not_fields = {"measurement", "time", "domain", "entity_id"}
    for object_id, measurement, fields in points:
        # One measurement at a time: across measurements InfluxQL gives a field one
        # type, and `state` is a float in one of them (as core writes it).
        name = stored_name(measurement)
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        (row,) = influxdb.rows(f'SELECT * FROM "{quoted}"', database)
        assert row["entity_id"] == stored_name(object_id)
        stored = {stored_name(key): value for key, value in fields.items()}
        assert {
            key: value
            for key, value in row.items()
            if value is not None and key not in not_fields
        } == stored, object_id
        assert {key: types[name, key] for key in stored} == {
            key: "string" if isinstance(value, str) else "float"
            for key, value in stored.items()
        }, object_id


# ---------------------------------------------------------------------------------------
# Core's own converter as the oracle.

# The options core's async_setup_entry builds when configuration.yaml has no influxdb:
# section: its defaults.
_CORE_DEFAULT_OPTIONS: dict[str, Any] = {
    "measurement_attr": "unit_of_measurement",
    "default_measurement": None,
    "override_measurement": None,
    "include": {"entity_globs": [], "entities": [], "domains": []},
    "exclude": {"entity_globs": [], "entities": [], "domains": []},
    "tags": {},
    "tags_attributes": [],
    "ignore_attributes": [],
    "component_config": {},
    "component_config_domain": {},
    "component_config_glob": {},
}


def test_core_constants_are_cores(core_influxdb: ModuleType) -> None:
    """The digit pattern is core's own (test_encoder checks the state words)."""
    assert core_compatible._CORE_NOT_DECIMAL.pattern == core_influxdb.RE_DECIMAL.pattern


# Our measurement rule, by core's name for it (docs/schema.md); the others are the same.
_CORE_RULE_NAMES = {MEASUREMENT_DOMAIN_DEVICE_CLASS: "domain__device_class"}

# Where core keeps a setting by the kind of its key.
_CORE_SETTINGS_BY_KIND = {
    "domain": "component_config_domain",
    "entity": "component_config",
    "pattern": "component_config_glob",
}


def _one_order(*orders: list[str]) -> list[str]:
    """One order of keys that keeps each given order (core has one dict for both)."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for order in orders:
        for key in order[:1]:
            sorter.add(key)
        for before, after in itertools.pairwise(order):
            sorter.add(after, before)
    return list(sorter.static_order())


def _core_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Core's configuration for our options: docs/schema.md's table."""
    rule = options.get(CONF_MEASUREMENT_RULE, MEASUREMENT_UNIT)
    config = _CORE_DEFAULT_OPTIONS | {
        "measurement_attr": _CORE_RULE_NAMES.get(rule, rule),
        "override_measurement": options.get(CONF_MEASUREMENT_OVERRIDE) or None,
        "default_measurement": options.get(CONF_DEFAULT_MEASUREMENT) or None,
        "tags": dict(options.get(CONF_GLOBAL_TAGS, {})),
        "tags_attributes": list(options.get(CONF_TAG_ATTRIBUTES, [])),
        "ignore_attributes": list(options.get(CONF_IGNORE_ATTRIBUTES, [])),
        "component_config": {},
        "component_config_domain": {
            domain: {"ignore_attributes": names}
            for domain, names in options.get(
                CONF_IGNORE_ATTRIBUTES_BY_DOMAIN, {}
            ).items()
        },
        "component_config_glob": {},
    }
    overrides = options.get(CONF_MEASUREMENT_OVERRIDES, {})
    ignored = options.get(CONF_IGNORE_ATTRIBUTES_BY_ENTITY, {})
    for key in _one_order(list(overrides), list(ignored)):
        settings = config[_CORE_SETTINGS_BY_KIND[key_kind(key)]].setdefault(key, {})
        if key in overrides:
            settings["override_measurement"] = overrides[key]
        if key in ignored:
            settings["ignore_attributes"] = ignored[key]
    return config


# A backslash InfluxDB reads as an escape in a name (docs/schema.md).
_ESCAPING_BACKSLASH = re.compile(r'\\(?=[ ,="]|\Z)')


def _kept(measurement: object) -> bool:
    """Whether InfluxDB keeps a point of core's under this measurement, findable."""
    name = str(measurement)
    start = name.lstrip("\t\x00")
    return bool(start) and start[0] != "#" and not _ESCAPING_BACKSLASH.search(name)


def _tag_kept(key: str, value: object) -> bool:
    """Whether InfluxDB takes core's point with this tag (docs/schema.md)."""
    text = _client_text(value)
    return key != "time" and not key.endswith("\\") and not text.endswith("\\")


def _client_text(value: object) -> str:
    """The text of a tag value, as the client core writes with makes it."""
    return "" if value is None else str(value)


def _core_point(
    core_influxdb: ModuleType, options: Mapping[str, Any], state: State
) -> tuple[str, dict[str, str], Fields] | None:
    """Core's point for a state, with the differences docs/schema.md lists."""
    config = _core_options(options)
    # Global tags that InfluxDB would refuse the point for are left out.
    config["tags"] = {
        key: value
        for key, value in config["tags"].items()
        if _tag_kept(key, core_influxdb._single_line(value))
    }
    event = Event(
        EVENT_STATE_CHANGED,
        EventStateChangedData(
            entity_id=state.entity_id, old_state=None, new_state=state
        ),
    )

    def convert() -> dict[str, Any] | None:
        point: dict[str, Any] | None = core_influxdb._generate_event_to_json(config)(
            event
        )
        return point

    # Measurements InfluxDB cannot keep are treated as none: the entity's own
    # override, the override for everything, the default.
    own = EntityValues(
        config["component_config"],
        config["component_config_domain"],
        config["component_config_glob"],
    ).get(state.entity_id)
    if (text := own.get("override_measurement")) and not _kept(_one_line(text)):
        config["component_config"] = config["component_config"] | {
            state.entity_id: own | {"override_measurement": None}
        }
    for key in ("override_measurement", "default_measurement"):
        if (text := config[key]) and not _kept(_one_line(text)):
            config[key] = None
    if (point := convert()) is None:
        return None
    if not _kept(point["measurement"]):
        # As if the attribute the measurement was read from were missing.
        by_domain = (
            config["measurement_attr"]
            == _CORE_RULE_NAMES[MEASUREMENT_DOMAIN_DEVICE_CLASS]
        )
        config["override_measurement"] = (
            state.domain
            if by_domain
            else config["default_measurement"] or state.entity_id
        )
        point = convert()
        assert point is not None
    # Tag attributes InfluxDB would refuse the point for are left out: as if not tags.
    refused = {
        key
        for key in config["tags_attributes"]
        if key in state.attributes
        and not _tag_kept(
            key,
            core_influxdb._single_line(value)
            if isinstance(value := state.attributes[key], str)
            else value,
        )
    }
    tag_point: dict[str, Any] | None = point
    if refused:
        config["tags_attributes"] = [
            key for key in config["tags_attributes"] if key not in refused
        ]
        tag_point = convert()
    assert tag_point is not None
    # The client leaves out empty keys and values; the rest are the differences.
    tags = {
        key: text
        for key, value in tag_point["tags"].items()
        if key and (text := _client_text(value))
    }
    fields = {
        key: value
        for key, value in point["fields"].items()
        if key and key[-1] != "\\" and (isinstance(value, str) or math.isfinite(value))
    }
    return str(point["measurement"]), tags, fields


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def core_expected(
    core_influxdb: ModuleType, options: Mapping[str, Any], state: State
) -> tuple[str, dict[str, str], Fields] | None:
    """What core's real converter gives, with the differences docs/schema.md lists."""
    if state.state in ("unknown", "unavailable"):
        # Core writes nothing; this preset the state alone, where core would write a
        # text state.
        point = _core_point(
            core_influxdb, options, State(state.entity_id, "text", state.attributes)
        )
        assert point is not None
        return point[0], point[1], {"state": state.state}
    if (point := _core_point(core_influxdb, options, state)) is None or not point[2]:
        return None
    return point


@settings(
    max_examples=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=TEXTS | st.text("0123456789.٣x \n", max_size=12))
def test_digit_tail_is_cores(core_influxdb: ModuleType, text: str) -> None:
    """Texts get a float of their digits exactly where core's pattern says so."""
    core_says = core_influxdb.RE_DIGIT_TAIL.match(text) is not None
    assert core_compatible._has_core_digit_tail(text) is core_says


def test_long_texts_are_read_at_once() -> None:
    """A long text with dots, such as a list of floats, is read without core's pattern.

    Core's pattern backtracks for about a minute on it, in Home Assistant's event
    loop; the encoder counts its dots instead, and gives core's answer.
    """
    encoder = create_encoder(CORE, FixedRegistry(), PipelineStats())
    state = State("weather.home", "sunny", {"forecast": [1.5, 2.5] * 15_000})
    no_pattern = Mock(side_effect=AssertionError("no pattern for this text"))
    with (
        patch.object(core_compatible, "_TWO_DIGITS", Mock(search=no_pattern)),
        patch.object(core_compatible, "_CORE_NOT_DECIMAL", Mock(sub=no_pattern)),
    ):
        line = encoder(state, None, TIME_US)
    no_pattern.assert_not_called()
    assert line is not None
    # More than one dot: no digit tail, so the list is written as its text only.
    assert ' forecast_str="[1.5, 2.5, 1.5' in line
    assert "forecast=" not in line


@settings(
    max_examples=1500,
    deadline=None,
    # The harness's function-scoped fixtures are not used by the examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(options=OPTIONS, parts=STATES)
def test_core_converter_agrees(
    core_influxdb: ModuleType,
    options: dict[str, Any],
    parts: tuple[str, str, dict[str, Any]],
) -> None:
    """With any options, our line is core's point: measurement, tags, typed fields."""
    state = State(*parts)
    expected = core_expected(core_influxdb, options, state)
    line = encode(CORE | options, state)
    if expected is None:
        assert line is None
    else:
        assert line is not None
        assert parse_line(line) == (*expected, TIME_US)


@settings(max_examples=1000, deadline=None)
@given(options=OPTIONS, text=STATE_TEXTS, attributes=LAID_OUT_ATTRIBUTES)
def test_core_layouts_write_what_the_general_rules_do(
    options: dict[str, Any], text: str, attributes: dict[str, Any]
) -> None:
    """Attributes laid out once per key sequence get the general rules' very bytes."""
    assume(text and text not in ("unknown", "unavailable"))
    stats = PipelineStats()
    encoder = create_encoder(CORE | options, FixedRegistry(), stats)
    state = State("sensor.a", text, attributes)
    line = encoder(state, None, TIME_US)
    laid_out_dropped = stats.non_finite_values_skipped
    series = encoder._series["sensor.a"]  # type: ignore[attr-defined]
    stats.non_finite_values_skipped = 0
    field_set = encoder._field_set(encoder._fields(state, series.skipped))  # type: ignore[attr-defined]
    assert line == (f"{series.prefix} {field_set} {TIME_US}" if field_set else None)
    assert stats.non_finite_values_skipped == laid_out_dropped


# ---------------------------------------------------------------------------------------
# Arbitrary state changes, into a real InfluxDB 1.x and back.


def _stored_core_point(point: tuple[str, dict[str, str], Fields], time: int) -> Point:
    """Core's point as InfluxDB 1.x stores it (docs/schema.md)."""
    measurement, tags, fields = point
    return (
        # InfluxDB drops tabs and NULs at the start of a line.
        stored_name(measurement).lstrip("\t\x00"),
        {stored_name(key): stored_name(value) for key, value in tags.items()},
        # In field keys, InfluxDB also takes `\"` for `"`.
        {stored_name(key).replace('\\"', '"'): value for key, value in fields.items()},
        time,
    )


@settings(
    max_examples=60,
    deadline=None,
    # The same examples on every run, so that CI is repeatable.
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(PRESET_CORE_COMPATIBLE))
def test_lines_read_back_as_documented(
    influxdb: InfluxDBv1Server,
    socket_enabled: None,
    core_influxdb: ModuleType,
    scenario: Scenario,
) -> None:
    """InfluxDB accepts every line and stores core's point for it.

    Core's point comes from its own converter, with the differences docs/schema.md
    lists. A field core writes with two types goes to a database of its own.
    """

    def expected(
        options: Mapping[str, Any],
        metadata: object,
        state: State,
        old_state: object,
        time_us: int,
    ) -> Point | None:
        point = core_expected(core_influxdb, options, state)
        return None if point is None else _stored_core_point(point, time_us)

    for held in databases_for(written_lines(scenario, expected)):
        write_and_read(influxdb, held)
