"""State change to line, per preset: docs/schema.md's lines, core's rules, rich's rules.

The core_compatible preset is checked against rules worked out by hand from Home
Assistant's influxdb integration, against that integration's own converter with every
option, and against a real InfluxDB. The rich preset is checked rule by rule, and for
its promise that a field never changes type. tests/test_schema_roundtrip.py writes both
presets' lines to a real InfluxDB and reads them back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import contextlib
from dataclasses import dataclass, field
import datetime as dt
import enum
import importlib
import math
from pathlib import Path
import re
import sys
import time
from types import ModuleType
from typing import Any

from homeassistant import const as ha_const
from homeassistant.components.lock.const import LockState
from homeassistant.components.sun.const import STATE_ABOVE_HORIZON, STATE_BELOW_HORIZON
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNKNOWN
from homeassistant.core import Context, Event, EventStateChangedData, State
from homeassistant.helpers.state import state_as_number
from hypothesis import HealthCheck, assume, given, settings, strategies as st
import pytest

from custom_components.ha_ingestor import normalize
from custom_components.ha_ingestor.const import (
    CONF_GLOBAL_TAGS,
    CONF_IGNORE_ATTRIBUTES,
    CONF_IGNORE_ATTRIBUTES_BY_DOMAIN,
    CONF_MEASUREMENT_OVERRIDE,
    CONF_MEASUREMENT_RULE,
    CONF_PRESET,
    MEASUREMENT_DEVICE_CLASS,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID,
    MEASUREMENT_UNIT,
    PRESET_CORE_COMPATIBLE,
    PRESET_RICH,
)
from custom_components.ha_ingestor.normalize import create_encoder, timestamp_us
from custom_components.ha_ingestor.registry_cache import (
    UNREGISTERED,
    EntityMetadata,
    RegistryCache,
)

from .influxdb_v1_server import InfluxDBv1Server

TIME_US = 1732262400123456
# When the documented states changed, and their context.
CHANGED = dt.datetime(2024, 11, 22, 8, 0, tzinfo=dt.UTC)
CONTEXT = Context(id="01JDA7Q3ZK8V5N2W4X6Y8B0C1D")

CORE: dict[str, Any] = {CONF_PRESET: PRESET_CORE_COMPATIBLE}
RICH: dict[str, Any] = {CONF_PRESET: PRESET_RICH}

type Fields = dict[str, float | str]


class FixedRegistry(RegistryCache):
    """Registry metadata the test gives, for encoders run without Home Assistant."""

    def __init__(self, metadata: Mapping[str, EntityMetadata] | None = None) -> None:
        """Answer from `metadata`: there are no registries to read or follow."""
        self._fixed = dict(metadata or {})

    def get(self, entity_id: str) -> EntityMetadata:
        """Return the given metadata, or that of an unregistered entity."""
        return self._fixed.get(entity_id, UNREGISTERED)


def encode(
    options: Mapping[str, Any],
    state: State,
    old_state: State | None = None,
    metadata: EntityMetadata | None = None,
) -> str | None:
    """The line a new encoder makes of one state change."""
    registry = FixedRegistry(None if metadata is None else {state.entity_id: metadata})
    return create_encoder(options, registry)(state, old_state, TIME_US)


def test_presets() -> None:
    """The preset option chooses the encoder; core_compatible is the default."""
    state = State("sensor.a", "1", {"unit_of_measurement": "W"})
    core_line = "W,domain=sensor,entity_id=a value=1.0 1732262400123456"
    assert encode({}, state) == encode(CORE, state) == core_line
    assert encode(RICH, state, metadata=UNREGISTERED) != core_line


@pytest.mark.parametrize(
    "options",
    [
        {CONF_PRESET: "basic"},
        {CONF_PRESET: PRESET_RICH, CONF_MEASUREMENT_RULE: "friendly_name"},
    ],
)
def test_unknown_options_are_refused(options: dict[str, Any]) -> None:
    """A preset or measurement rule the integration does not know is an error."""
    with pytest.raises(ValueError, match="Unknown"):
        create_encoder(options, FixedRegistry())


@given(st.floats(min_value=0, max_value=4e9))
def test_timestamp_equals_home_assistants_datetime(timestamp: float) -> None:
    """Microseconds round exactly as Home Assistant's `time_fired` datetime does."""
    fired = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert timestamp_us(timestamp) == (fired - epoch) // dt.timedelta(microseconds=1)


def test_timestamp_keeps_microseconds() -> None:
    """Float seconds become exact integer microseconds, rounding not truncating."""
    assert timestamp_us(1732262400.123456) == TIME_US
    assert timestamp_us(0.0000019999) == 2


# ---------------------------------------------------------------------------------------
# Reading lines back, as the client that core writes with escapes them, and as InfluxDB
# 1.x reads them.

# The client's escapes in names, undone.
_NAME_UNESCAPES = {"\\": "\\", " ": " ", ",": ",", "=": "=", "n": "\n"}


def _read_name(line: str, start: int, stops: str) -> tuple[str, int]:
    """Read an escaped name up to one of `stops`; return it and where it ends."""
    chars, i = [], start
    while line[i] not in stops:
        if line[i] == "\\":
            chars.append(_NAME_UNESCAPES[line[i + 1]])
            i += 2
        else:
            chars.append(line[i])
            i += 1
    return "".join(chars), i


def _read_string(line: str, start: int) -> tuple[str, int]:
    """Read a quoted string field value starting at its `"`; return it and its end."""
    assert line[start] == '"'
    chars, i = [], start + 1
    while line[i] != '"':
        if line[i] == "\\":
            assert line[i + 1] in '\\"', line
            i += 1
        chars.append(line[i])
        i += 1
    return "".join(chars), i + 1


def _read_number(line: str, start: int) -> tuple[float, int]:
    """Read a float field value; return it and where it ends."""
    end = min(p for p in (line.find(",", start), line.find(" ", start)) if p > 0)
    number = float(line[start:end])
    assert math.isfinite(number), line
    return number, end


def parse_line(line: str) -> tuple[str, dict[str, str], Fields, int]:
    """Split a line of core's as its client wrote it: measurement, tags, fields, time.

    Names are unescaped exactly as the client escapes them, so they must come back as
    the unescaped names core gives; tags and fields must be in the client's (sorted)
    order.
    """
    assert "\n" not in line
    measurement, i = _read_name(line, 0, ",")
    tags: dict[str, str] = {}
    while line[i] == ",":
        key, i = _read_name(line, i + 1, "=")
        tags[key], i = _read_name(line, i + 1, ", ")
    fields: Fields = {}
    # From the space before the first field, then from each comma.
    while line[i] != " " or not fields:
        key, i = _read_name(line, i + 1, "=")
        assert key not in fields
        if line[i + 1] == '"':
            fields[key], i = _read_string(line, i + 1)
        else:
            fields[key], i = _read_number(line, i + 1)
    assert list(tags) == sorted(tags), line
    assert list(fields) == sorted(fields), line
    return measurement, tags, fields, int(line[i + 1 :])


def _read_influx_name(line: str, start: int, stops: str) -> tuple[str, int]:
    r"""Read a name as InfluxDB 1.x does; return it and where it ends.

    A stop ends the name unless a backslash comes right before it; InfluxDB then
    takes `\,`, `\ ` and `\=` for the character and keeps every other backslash.
    """
    end = start
    while line[end] not in stops or line[end - 1] == "\\":
        end += 1
    name = line[start:end]
    for char in ", =":
        name = name.replace(f"\\{char}", char)
    return name, end


def parse_influx_line(line: str) -> tuple[str, dict[str, str], Fields, int]:
    """Split a line as InfluxDB 1.x stores it: measurement, tags, fields, time."""
    assert "\n" not in line
    measurement, i = _read_influx_name(line, 0, ", ")
    tags: dict[str, str] = {}
    while line[i] == ",":
        key, i = _read_influx_name(line, i + 1, "=")
        assert key not in tags
        tags[key], i = _read_influx_name(line, i + 1, ", ")
    fields: Fields = {}
    while line[i] != " " or not fields:
        key, i = _read_influx_name(line, i + 1, "=")
        assert key not in fields, line
        if line[i + 1] == '"':
            fields[key], i = _read_string(line, i + 1)
        else:
            fields[key], i = _read_number(line, i + 1)
    return measurement, tags, fields, int(line[i + 1 :])


# ---------------------------------------------------------------------------------------
# The lines docs/schema.md shows.


@dataclass(frozen=True)
class Example:
    """A state change docs/schema.md shows, and the line it gives."""

    options: dict[str, Any]
    entity_id: str
    state: str
    attributes: dict[str, Any]
    line: str
    # The previous state and how many seconds it lasted.
    previous: tuple[str, float] | None = None
    metadata: EntityMetadata = UNREGISTERED
    context: Context = field(default_factory=lambda: CONTEXT)

    def encode(self) -> str | None:
        """Encode the example's state change."""
        state = State(
            self.entity_id,
            self.state,
            self.attributes,
            last_changed=CHANGED,
            context=self.context,
        )
        old_state = None
        if self.previous is not None:
            old_text, lasted = self.previous
            old_state = State(
                self.entity_id,
                old_text,
                self.attributes,
                last_changed=CHANGED - dt.timedelta(seconds=lasted),
            )
        return encode(self.options, state, old_state, self.metadata)


# ---------------------------------------------------------------------------------------
# The core_compatible preset: what Home Assistant's influxdb integration writes.

_UTC_MORNING = dt.datetime(2024, 11, 22, 8, 0, tzinfo=dt.UTC)
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
        {"device_class": "timestamp", "last_reset": _UTC_MORNING},
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
            "when": _UTC_MORNING,
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


def test_core_counts_what_it_leaves_out() -> None:
    """Each NaN or infinite value left out, of the state or an attribute, is counted."""
    encoder = create_encoder(CORE, FixedRegistry())
    line = encoder(
        State("sensor.a", "nan", {"b": math.inf, "c": "-inf", "d": 10**400, "e": 1}),
        None,
        TIME_US,
    )
    assert line == "sensor.a,domain=sensor,entity_id=a e=1.0 1732262400123456"
    assert encoder.non_finite_dropped == 4
    assert encoder(State("sensor.a", "inf"), None, TIME_US) is None
    assert encoder.non_finite_dropped == 5


def test_core_series_follow_the_measurement_attribute() -> None:
    """A changed unit changes the measurement, also between equal numbers."""
    encoder = create_encoder(CORE, FixedRegistry())
    measurements = []
    for unit in ("W", "kW", 5, 5.0, None, "W"):
        line = encoder(State("sensor.a", "1", {"unit_of_measurement": unit}), None, 0)
        assert line is not None
        measurements.append(parse_line(line)[0])
    assert measurements == ["W", "kW", "5", "5.0", "sensor.a", "W"]


def stored_name(name: str) -> str:
    r"""Return the name InfluxDB 1.x stores for a name the client escaped.

    It keeps the client's escapes of a backslash and of a line break (`\\`, `\n`) as
    they are; core's points get the very same names.
    """
    return name.replace("\\", "\\\\").replace("\n", "\\n")


def test_core_lines_read_back(influxdb: InfluxDBv1Server, database: str) -> None:
    """Real InfluxDB takes every line and stores the expected names, values, types."""
    lines, points = [], []
    for offset, (_, entity_id, state, attributes, expected) in enumerate(CORE_CASES):
        line = create_encoder(CORE, FixedRegistry())(
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

# What core's influxdb package imports from the client libraries, which it needs only
# for writing and which are not installed (they are that integration's requirements).
_CORE_CLIENT_MODULES = {
    "influxdb": ("InfluxDBClient", "exceptions"),
    "influxdb_client": ("InfluxDBClient",),
    "influxdb_client.client": (),
    "influxdb_client.client.write_api": ("ASYNCHRONOUS", "SYNCHRONOUS"),
    "influxdb_client.rest": ("ApiException",),
}

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


@contextlib.contextmanager
def installed_core_influxdb() -> Iterator[ModuleType]:
    """Home Assistant's influxdb integration as installed: its real code."""
    package = "homeassistant.components.influxdb"
    with pytest.MonkeyPatch.context() as patch:
        for name, attributes in _CORE_CLIENT_MODULES.items():
            module = ModuleType(name)
            for attribute in attributes:
                setattr(module, attribute, object)
            patch.setitem(sys.modules, name, module)
        yield importlib.import_module(package)
        # No later import may get the package built on stand-ins.
        for name in [n for n in sys.modules if f"{n}.".startswith(f"{package}.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def core_influxdb() -> Iterator[ModuleType]:
    """Home Assistant's influxdb integration as installed: its real code."""
    with installed_core_influxdb() as module:
        yield module


# Every state word Home Assistant defines, so that a new one state_as_number knows
# cannot go unnoticed.
_WORDS = sorted(
    {
        value
        for name, value in vars(ha_const).items()
        if name.startswith("STATE_") and isinstance(value, str)
    }
    | {str(word) for word in LockState}
    | {STATE_ABOVE_HORIZON, STATE_BELOW_HORIZON}
)


def test_core_constants_are_cores(core_influxdb: ModuleType) -> None:
    """The digit pattern and state words are core's own."""
    assert normalize._CORE_NOT_DECIMAL.pattern == core_influxdb.RE_DECIMAL.pattern
    numbers = {}
    for word in _WORDS:
        with contextlib.suppress(ValueError):
            numbers[word] = float(state_as_number(State("sensor.x", word)))
    del numbers[STATE_UNKNOWN]  # never written as a value
    assert numbers == normalize._STATE_NUMBERS


# Our measurement rule, by core's name for it (docs/schema.md); the others are the same.
_CORE_RULE_NAMES = {MEASUREMENT_DOMAIN_DEVICE_CLASS: "domain__device_class"}


def _core_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Core's configuration for our options: docs/schema.md's table."""
    rule = options.get(CONF_MEASUREMENT_RULE, MEASUREMENT_UNIT)
    return _CORE_DEFAULT_OPTIONS | {
        "measurement_attr": _CORE_RULE_NAMES.get(rule, rule),
        "override_measurement": options.get(CONF_MEASUREMENT_OVERRIDE) or None,
        "tags": dict(options.get(CONF_GLOBAL_TAGS, {})),
        "ignore_attributes": list(options.get(CONF_IGNORE_ATTRIBUTES, [])),
        "component_config_domain": {
            domain: {"ignore_attributes": names}
            for domain, names in options.get(
                CONF_IGNORE_ATTRIBUTES_BY_DOMAIN, {}
            ).items()
        },
    }


# A backslash InfluxDB reads as an escape in a name (docs/schema.md).
_ESCAPING_BACKSLASH = re.compile(r'\\(?=[ ,="]|\Z)')


def _kept(measurement: object) -> bool:
    """Whether InfluxDB keeps a point of core's under this measurement, findable."""
    name = str(measurement)
    start = name.lstrip("\t\x00")
    return bool(start) and start[0] != "#" and not _ESCAPING_BACKSLASH.search(name)


def _core_point(
    core_influxdb: ModuleType, options: Mapping[str, Any], state: State
) -> tuple[str, dict[str, str], Fields] | None:
    """Core's point for a state, with the differences docs/schema.md lists."""
    config = _core_options(options)
    # Global tags that InfluxDB would refuse the point for are left out.
    config["tags"] = {
        key: value
        for key, value in config["tags"].items()
        if key != "time"
        and not key.endswith("\\")
        and not core_influxdb._single_line(value).endswith("\\")
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

    if (point := convert()) is None:
        return None
    if config["override_measurement"] and not _kept(point["measurement"]):
        # An override InfluxDB cannot keep is treated as none.
        config["override_measurement"] = None
        point = convert()
        assert point is not None
    if not _kept(point["measurement"]):
        # As if the attribute the measurement was read from were missing.
        by_domain = (
            config["measurement_attr"]
            == _CORE_RULE_NAMES[MEASUREMENT_DOMAIN_DEVICE_CLASS]
        )
        config["override_measurement"] = state.domain if by_domain else state.entity_id
        point = convert()
        assert point is not None
    # The client leaves out empty keys and values; the rest are the differences.
    tags = {key: value for key, value in point["tags"].items() if key and value}
    fields = {
        key: value
        for key, value in point["fields"].items()
        if key and key[-1] != "\\" and (isinstance(value, str) or math.isfinite(value))
    }
    return str(point["measurement"]), tags, fields


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


_SHORT_TEXTS = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    [
        *("°C", "W", "m³ per h, est", "Version 2.3", "Firmware 10", "12:30", "v2.4.1"),
        *("192.168.1.1", "nan", "-inf", "1e999", " 5 ", "1_000", "١٢", '\\"', '\\"'),
        *("a\nb", "\r\n", "x\\", "#x", "\t#x", "\x00#", "\t", " ", ",", "=", '"'),
        *("\u2028", "a\\ b", "a\\,b", "a\\=b", "\\", "time", "_str", "x_str"),
    ]
)
# Digits beyond float's range. Not inside lists: with dots around them, core's own
# pattern would take minutes over them.
_TEXTS = _SHORT_TEXTS | st.just("9" * 400)


def _containers(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists, tuples and dicts of `items`."""
    return (
        st.lists(items, max_size=3)
        | st.tuples(items, items)
        | st.dictionaries(st.text(max_size=3), items, max_size=3)
    )


ATTRIBUTE_VALUES = (
    st.none()
    | st.booleans()
    # Beyond float's range core's converter raises (a case in CORE_CASES).
    | st.integers(-(2**1000), 2**1000)
    | st.floats()
    | _TEXTS
    | _containers(
        st.recursive(
            # Beyond 64 bits, orjson gives up (docs/schema.md).
            st.none()
            | st.booleans()
            | st.integers(-(2**70), 2**70)
            | st.floats()
            | _SHORT_TEXTS,
            _containers,
            max_leaves=6,
        )
    )
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
    | st.times()
)
ATTRIBUTE_KEYS = st.sampled_from(
    [
        *("unit_of_measurement", "device_class", "friendly_name", "value", "value_"),
        *("state", "state_", "time", "time_", "x", "x_", "x_str", "x_str_", "k\\"),
        *("", "area", "previous_state", "context_id", "a\nb", "a b", "a\\ b"),
    ]
) | _TEXTS.filter(
    # InfluxDB strips these from the start of the first field key only, so two keys
    # could become one (core's too); no real attribute key starts with them.
    lambda key: not key.startswith(("\t", "\x00"))
)
ATTRIBUTES = st.dictionaries(ATTRIBUTE_KEYS, ATTRIBUTE_VALUES, max_size=6)
ENTITY_IDS = st.builds(
    "{}.{}{}".format,
    st.sampled_from(["sensor", "binary_sensor", "lock", "sun", "climate", "a1"]),
    # Object ids are slugs: no `_` at either end or twice in a row; `$` in Home
    # Assistant's pattern also lets them end in a line feed.
    st.lists(st.text("az09", min_size=1, max_size=3), min_size=1, max_size=3).map(
        "_".join
    ),
    st.sampled_from(["", "\n"]),
)
STATE_TEXTS = (
    st.sampled_from(_WORDS) | _TEXTS | st.floats().map(repr) | st.integers().map(str)
)
# Entity id, state and attributes; tests make the State (which draws a random context
# id, something a strategy must not do).
STATES = st.tuples(ENTITY_IDS, STATE_TEXTS, ATTRIBUTES)
_DOMAINS = st.sampled_from(["sensor", "binary_sensor", "lock", "climate"])
# Both presets' options, with values InfluxDB cannot take among them.
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        CONF_MEASUREMENT_RULE: st.sampled_from(
            [
                MEASUREMENT_UNIT,
                MEASUREMENT_DOMAIN_DEVICE_CLASS,
                MEASUREMENT_DEVICE_CLASS,
                MEASUREMENT_ENTITY_ID,
            ]
        ),
        CONF_MEASUREMENT_OVERRIDE: st.sampled_from(["", "home", "a b,c=d"]) | _TEXTS,
        CONF_GLOBAL_TAGS: st.dictionaries(
            st.sampled_from(["site", "domain", "entity_id", "area", "time"]) | _TEXTS,
            st.sampled_from(["main", "", "a b,c=d"]) | _TEXTS,
            max_size=3,
        ),
        CONF_IGNORE_ATTRIBUTES: st.lists(ATTRIBUTE_KEYS, max_size=3),
        CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: st.dictionaries(
            _DOMAINS, st.lists(ATTRIBUTE_KEYS, min_size=1, max_size=3), max_size=2
        ),
    },
)


@settings(
    max_examples=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_TEXTS | st.text("0123456789.٣x \n", max_size=12))
def test_digit_tail_is_cores(core_influxdb: ModuleType, text: str) -> None:
    """Texts get a float of their digits exactly where core's pattern says so."""
    core_says = core_influxdb.RE_DIGIT_TAIL.match(text) is not None
    assert normalize._has_core_digit_tail(text) is core_says


def test_long_texts_are_read_at_once() -> None:
    """A long text with dots, such as a list of floats, costs no backtracking.

    Core's pattern would take about a minute on it, in Home Assistant's event loop.
    """
    encoder = create_encoder(CORE, FixedRegistry())
    state = State("weather.home", "sunny", {"forecast": [1.5, 2.5] * 15_000})
    started = time.perf_counter()
    assert encoder(state, None, TIME_US) is not None
    assert time.perf_counter() - started < 1


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


# ---------------------------------------------------------------------------------------
# The rich preset.

_THERMOMETER = EntityMetadata(
    device_class="temperature",
    area_id="living_room",
    area="Living room",
    floor="Ground floor",
    device="Living room thermometer",
    label_ids=frozenset({"climate", "heating"}),
    labels=("Climate", "Heating"),
)
_LIVING_ROOM_TEMPERATURE = {
    "unit_of_measurement": "°C",
    "device_class": "temperature",
    "state_class": "measurement",
    "friendly_name": "Living room temperature",
}

RICH_EXAMPLES: list[Example] = [
    Example(
        RICH,
        "sensor.living_room_temperature",
        "21.5",
        _LIVING_ROOM_TEMPERATURE,
        r"°C,area=Living\ room,device=Living\ room\ thermometer,"
        "device_class=temperature,domain=sensor,"
        r"entity_id=sensor.living_room_temperature,floor=Ground\ floor,"
        r'labels=Climate\,Heating,unit=°C state="21.5",value=21.5,'
        'previous_state="21.0",duration_in_state_s=300.0,'
        'context_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1D",'
        'state_class_str="measurement",friendly_name_str="Living room '
        'temperature" 1732262400123456',
        previous=("21.0", 300.0),
        metadata=_THERMOMETER,
    ),
    Example(
        RICH,
        "binary_sensor.front_door",
        "on",
        {"device_class": "door", "friendly_name": "Front door"},
        "binary_sensor,device_class=door,domain=binary_sensor,"
        'entity_id=binary_sensor.front_door state="on",value=1.0,'
        'previous_state="off",duration_in_state_s=3600.0,'
        'context_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1E",'
        'context_parent_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1F",'
        'context_user_id="5f4dcc3b5aa765d61d8327deb882cf99",'
        'friendly_name_str="Front door" 1732262400123456',
        previous=("off", 3600.0),
        context=Context(
            id="01JDA7Q3ZK8V5N2W4X6Y8B0C1E",
            parent_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1F",
            user_id="5f4dcc3b5aa765d61d8327deb882cf99",
        ),
    ),
    Example(
        RICH,
        "climate.hall",
        "heat",
        {
            "current_temperature": 20.5,
            "hvac_modes": ["off", "heat"],
            "preset_mode": None,
            "boost": False,
            "next_change": _UTC_MORNING,
            "friendly_name": "Hall",
        },
        'climate,domain=climate,entity_id=climate.hall state="heat",'
        'context_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1D",current_temperature=20.5,'
        r'hvac_modes_str="[\"off\",\"heat\"]",boost=0.0,'
        'next_change_str="2024-11-22T08:00:00+00:00",'
        'friendly_name_str="Hall" 1732262400123456',
    ),
    Example(
        RICH,
        "sensor.collide",
        "12",
        {"value": 3, "state": "high", "x": "text", "x_str": 5, "time": "12:30"},
        'sensor,domain=sensor,entity_id=sensor.collide state="12",value=12.0,'
        'context_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1D",value_=3.0,state_str="high",'
        'x_str="text",x_str_=5.0,time_str="12:30" 1732262400123456',
    ),
    Example(
        RICH,
        "sensor.power",
        "unavailable",
        {"unit_of_measurement": "W", "friendly_name": "Power"},
        'W,domain=sensor,entity_id=sensor.power,unit=W state="unavailable" '
        "1732262400123456",
        previous=("230", 60.0),
    ),
    Example(
        RICH,
        "sensor.power",
        "nan",
        {"unit_of_measurement": "W", "friendly_name": "Power"},
        'W,domain=sensor,entity_id=sensor.power,unit=W state="nan",'
        'context_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1D",friendly_name_str="Power" '
        "1732262400123456",
    ),
    Example(
        RICH
        | {
            CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS,
            CONF_GLOBAL_TAGS: {"site": "main"},
            CONF_IGNORE_ATTRIBUTES: ["friendly_name", "state_class"],
        },
        "sensor.living_room_temperature",
        "21.5",
        _LIVING_ROOM_TEMPERATURE,
        r"sensor__temperature,area=Living\ room,device=Living\ room\ "
        "thermometer,device_class=temperature,domain=sensor,"
        r"entity_id=sensor.living_room_temperature,floor=Ground\ floor,"
        r'labels=Climate\,Heating,site=main,unit=°C state="21.5",value=21.5,'
        'context_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1D" 1732262400123456',
        metadata=_THERMOMETER,
    ),
]


@pytest.mark.parametrize(
    "example",
    CORE_EXAMPLES + RICH_EXAMPLES,
    ids=[
        f"{e.options[CONF_PRESET]} {e.entity_id}" for e in CORE_EXAMPLES + RICH_EXAMPLES
    ],
)
def test_documented_lines(example: Example) -> None:
    """The lines are exactly the ones docs/schema.md shows."""
    assert example.encode() == example.line


def test_documented_lines_are_in_the_docs() -> None:
    """docs/schema.md shows these very lines, so it cannot drift from the code."""
    text = (Path(__file__).parents[1] / "docs" / "schema.md").read_text("utf-8")
    for example in CORE_EXAMPLES + RICH_EXAMPLES:
        assert example.line in text


def test_documented_lines_are_accepted(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """Real InfluxDB takes the documented lines and stores their measurements."""
    lines = [example.line for example in CORE_EXAMPLES + RICH_EXAMPLES]
    status, body = influxdb.request(
        "POST", "/write", {"db": database, "precision": "u"}, "\n".join(lines).encode()
    )
    assert status == 204, body
    (series,) = influxdb.query("SHOW MEASUREMENTS", database)
    assert sorted(name for (name,) in series["values"]) == sorted(
        {parse_influx_line(line)[0] for line in lines}
    )


def rich_point(
    state: State,
    options: Mapping[str, Any] | None = None,
    old_state: State | None = None,
    metadata: EntityMetadata = UNREGISTERED,
) -> tuple[str, dict[str, str], Fields, int]:
    """The rich point of a state change, as InfluxDB reads it."""
    line = encode(RICH | dict(options or {}), state, old_state, metadata)
    assert line is not None
    return parse_influx_line(line)


def attribute_fields(fields: Fields) -> Fields:
    """The fields made of attributes: all but the ones of the state itself."""
    return {
        key: value
        for key, value in fields.items()
        if key not in normalize._RICH_STATE_FIELDS
    }


@pytest.mark.parametrize(
    ("attributes", "metadata", "tags"),
    [
        (
            {"unit_of_measurement": "°C", "device_class": "temperature"},
            _THERMOMETER,
            {
                "area": "Living room",
                "device": "Living room thermometer",
                "device_class": "temperature",
                "domain": "sensor",
                "entity_id": "sensor.a",
                "floor": "Ground floor",
                "labels": "Climate,Heating",
                "unit": "°C",
            },
        ),
        ({}, UNREGISTERED, {"domain": "sensor", "entity_id": "sensor.a"}),
        (
            # The registry's device class is the user's choice.
            {"device_class": "temperature"},
            EntityMetadata("humidity", None, None, None, None, frozenset(), ()),
            {"device_class": "humidity", "domain": "sensor", "entity_id": "sensor.a"},
        ),
        (
            # Tags without a value are left out; names InfluxDB cannot keep as they
            # are change as docs/schema.md says.
            {"unit_of_measurement": "", "device_class": 5},
            EntityMetadata(
                None,
                "x",
                "",
                "Up\nstairs",
                'Say "hi", C:\\',
                frozenset({"a", "b", "c"}),
                ("a,b", "c d\\", "e=f"),
            ),
            {
                "device": 'Say "hi", C:/',
                "domain": "sensor",
                "entity_id": "sensor.a",
                "floor": "Up stairs",
                "labels": "a,b,c d/,e=f",
            },
        ),
    ],
    ids=["registered", "unregistered", "registry device class", "awkward names"],
)
def test_rich_tags(
    attributes: dict[str, Any], metadata: EntityMetadata, tags: dict[str, str]
) -> None:
    """The tags come from the registries, the unit and the device class."""
    point = rich_point(State("sensor.a", "1", attributes), metadata=metadata)
    assert point[1] == tags


def test_rich_global_tags() -> None:
    """Global tags are added, replace the preset's, and are left out where unusable."""
    options = {
        CONF_GLOBAL_TAGS: {
            "site": "main",
            "domain": "house",
            "time": "now",
            "empty": "",
            "a\nb": "c\\",
        }
    }
    point = rich_point(State("sensor.a", "1"), options)
    assert point[1] == {
        "a b": "c/",
        "domain": "house",
        "entity_id": "sensor.a",
        "site": "main",
    }


_POWER = EntityMetadata("power", None, None, None, None, frozenset(), ())


@pytest.mark.parametrize(
    ("options", "attributes", "metadata", "measurement"),
    [
        ({}, {"unit_of_measurement": "°C"}, UNREGISTERED, "°C"),
        ({}, {}, UNREGISTERED, "sensor"),
        ({}, {"unit_of_measurement": 5}, UNREGISTERED, "sensor"),
        ({}, {"unit_of_measurement": "#x"}, UNREGISTERED, "sensor"),
        ({}, {"unit_of_measurement": "\tkW"}, UNREGISTERED, "sensor"),
        ({}, {"unit_of_measurement": "m³ per h, est"}, UNREGISTERED, "m³ per h, est"),
        ({}, {"unit_of_measurement": "a\\ b\\"}, UNREGISTERED, "a/ b/"),
        (
            {CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS},
            {"unit_of_measurement": "W", "device_class": "temperature"},
            UNREGISTERED,
            "sensor__temperature",
        ),
        (
            {CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS},
            {"device_class": "temperature"},
            _POWER,
            "sensor__power",
        ),
        (
            {CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS},
            {"unit_of_measurement": "W"},
            UNREGISTERED,
            "sensor",
        ),
        (
            {CONF_MEASUREMENT_RULE: MEASUREMENT_DEVICE_CLASS},
            {"unit_of_measurement": "W"},
            _POWER,
            "power",
        ),
        (
            {CONF_MEASUREMENT_RULE: MEASUREMENT_DEVICE_CLASS},
            {"unit_of_measurement": "W"},
            UNREGISTERED,
            "sensor",
        ),
        (
            {CONF_MEASUREMENT_RULE: MEASUREMENT_ENTITY_ID},
            {"unit_of_measurement": "W"},
            _POWER,
            "sensor.a",
        ),
        (
            {CONF_MEASUREMENT_OVERRIDE: "home", CONF_MEASUREMENT_RULE: "entity_id"},
            {"unit_of_measurement": "W"},
            UNREGISTERED,
            "home",
        ),
        (
            # An override that cannot be a measurement is treated as none.
            {CONF_MEASUREMENT_OVERRIDE: "#home"},
            {"unit_of_measurement": "W"},
            UNREGISTERED,
            "W",
        ),
    ],
)
def test_rich_measurement(
    options: dict[str, Any],
    attributes: dict[str, Any],
    metadata: EntityMetadata,
    measurement: str,
) -> None:
    """The measurement rule and override choose the measurement; the domain is last."""
    point = rich_point(State("sensor.a", "1", attributes), options, metadata=metadata)
    assert point[0] == measurement


@pytest.mark.parametrize(
    ("state", "fields", "dropped"),
    [
        ("21.5", {"state": "21.5", "value": 21.5}, 0),
        (" 1_000 ", {"state": " 1_000 ", "value": 1000.0}, 0),
        ("on", {"state": "on", "value": 1.0}, 0),
        ("closed", {"state": "closed", "value": 0.0}, 0),
        ("heat", {"state": "heat"}, 0),
        ('say "hi"\nC:\\', {"state": 'say "hi" C:\\'}, 0),
        ("", {"state": ""}, 0),
        ("nan", {"state": "nan"}, 1),
        ("-1e999", {"state": "-1e999"}, 1),
    ],
)
def test_rich_state(state: str, fields: Fields, dropped: int) -> None:
    """The state is always its text, and its number when it has one."""
    encoder = create_encoder(RICH, FixedRegistry())
    line = encoder(State("sensor.a", state, context=CONTEXT), None, TIME_US)
    assert line is not None
    assert parse_influx_line(line)[2] == fields | {"context_id": CONTEXT.id}
    assert encoder.non_finite_dropped == dropped


def test_rich_previous_state() -> None:
    """A change of state tells the previous state and how long it lasted."""
    old = State("sensor.a", "20", last_changed=CHANGED - dt.timedelta(seconds=90.5))
    new = State("sensor.a", "21", last_changed=CHANGED)
    fields = rich_point(new, old_state=old)[2]
    assert fields["previous_state"] == "20"
    assert fields["duration_in_state_s"] == 90.5
    # Only attributes changed: the state has not ended.
    same = State("sensor.a", "20", {"a": 1}, last_changed=old.last_changed)
    assert "previous_state" not in rich_point(same, old_state=old)[2]
    assert "duration_in_state_s" not in rich_point(same, old_state=old)[2]
    assert "previous_state" not in rich_point(new)[2]


def test_rich_context() -> None:
    """The context's ids are fields; those it does not have are left out."""
    context = Context(id="c", parent_id="p", user_id="u")
    fields = rich_point(State("sensor.a", "1", context=context))[2]
    assert fields["context_id"] == "c"
    assert fields["context_parent_id"] == "p"
    assert fields["context_user_id"] == "u"
    fields = rich_point(State("sensor.a", "1", context=Context(id="c")))[2]
    assert "context_parent_id" not in fields
    assert "context_user_id" not in fields


# Older integrations' enums, whose str() is their name: their text is their value.
class _Mode(str, enum.Enum):  # noqa: UP042
    HEAT = "heat"


class _Thing:
    def __str__(self) -> str:
        return "thing"


@pytest.mark.parametrize(
    ("value", "fields"),
    [
        (True, {"a": 1.0}),
        (False, {"a": 0.0}),
        (3, {"a": 3.0}),
        (2.5, {"a": 2.5}),
        (5e-324, {"a": 5e-324}),
        ("text", {"a_str": "text"}),
        ("4.5", {"a_str": "4.5"}),
        ("two\nlines", {"a_str": "two lines"}),
        (_Mode.HEAT, {"a_str": "heat"}),
        (None, {}),
        ([1, "x", None, math.nan], {"a_str": '[1,"x",null,null]'}),
        ((1, 2), {"a_str": "[1,2]"}),
        ({"b": [1.5, True]}, {"a_str": '{"b":[1.5,true]}'}),
        ({1: "x"}, {"a_str": '{"1":"x"}'}),
        (
            dt.datetime(2024, 11, 22, 8, 0, 1, 5, tzinfo=dt.UTC),
            {"a_str": "2024-11-22T08:00:01.000005+00:00"},
        ),
        (dt.date(2024, 11, 22), {"a_str": "2024-11-22"}),
        (dt.time(8, 30), {"a_str": "08:30:00"}),
        (_Thing(), {"a_str": "thing"}),
        ([10**30], {"a_str": "[1000000000000000000000000000000]"}),
    ],
)
def test_rich_attribute_types(value: object, fields: Fields) -> None:
    """Each kind of value has one rule: a float field or a text field, never both."""
    point = rich_point(State("sensor.x", "1", {"a": value}))
    assert attribute_fields(point[2]) == fields


@pytest.mark.parametrize("value", [math.nan, -math.inf, 10**400])
def test_rich_counts_what_it_leaves_out(value: object) -> None:
    """NaN and infinity are never written: the field is left out, and counted."""
    encoder = create_encoder(RICH, FixedRegistry())
    line = encoder(State("sensor.a", "1", {"a": value, "b": 1}), None, TIME_US)
    assert line is not None
    assert attribute_fields(parse_influx_line(line)[2]) == {"b": 1.0}
    assert encoder.non_finite_dropped == 1


@pytest.mark.parametrize(
    ("attributes", "fields"),
    [
        (
            {"x": 1, "x_str": 2, "y": "t", "y_str": "u"},
            {"x": 1.0, "x_str_": 2.0, "y_str": "t", "y_str_str": "u"},
        ),
        (
            {"value": 1, "state": "s", "time": 2, "area": 3, "context_id": "c"},
            {
                "value_": 1.0,
                "state_str": "s",
                "time_": 2.0,
                "area_": 3.0,
                "context_id_str": "c",
            },
        ),
        ({"x_": 1, "x": 2, "x__": 3}, {"x__": 1.0, "x": 2.0, "x___": 3.0}),
        (
            {"k\\": 1, "k\\ x": 2, "k\\x": 3, "j\\": "t", 'q\\"': 4, "l\\=": "u"},
            {"k\\_": 1.0, "k\\x": 3.0, "j\\_str": "t"},
        ),
        ({"a\nb": 1, "": 2, 5: 3, "a b,c=d": 4}, {"a b,c=d": 4.0}),
    ],
    ids=["text keys", "the preset's names", "underscores", "backslashes", "unusable"],
)
def test_rich_field_keys(attributes: dict[Any, Any], fields: Fields) -> None:
    """No two attributes share a field, and no field key has two types."""
    point = rich_point(State("sensor.x", "1", attributes))
    assert attribute_fields(point[2]) == fields


def test_rich_attributes_left_out() -> None:
    """Unit and device class are tags; ignored attributes are not written."""
    options = {
        CONF_IGNORE_ATTRIBUTES: ["icon"],
        CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: {"sensor": ["level"]},
    }
    attributes = {
        "unit_of_measurement": "W",
        "device_class": "power",
        "icon": "i",
        "level": 1,
        "other": 2,
    }
    sensor = rich_point(State("sensor.a", "1", attributes), options)
    assert attribute_fields(sensor[2]) == {"other": 2.0}
    light = rich_point(State("light.a", "on", attributes), options)
    assert attribute_fields(light[2]) == {"level": 1.0, "other": 2.0}


@pytest.mark.parametrize("options", [CORE, RICH, RICH | {CONF_GLOBAL_TAGS: {"a": "b"}}])
@pytest.mark.parametrize("state", ["unknown", "unavailable"])
def test_unknown_and_unavailable_are_the_state_alone(
    options: dict[str, Any], state: str
) -> None:
    """Both presets write unknown and unavailable as the `state` field alone."""
    attributes = {"unit_of_measurement": "W", "friendly_name": "A", "b": 1}
    old = State("sensor.a", "1", attributes)
    line = encode(options, State("sensor.a", state, attributes), old, _POWER)
    assert line is not None
    assert parse_influx_line(line)[0] == "W"
    assert parse_influx_line(line)[2] == {"state": state}


def test_rich_series_follow_the_registry_and_attributes() -> None:
    """New registry metadata or a new unit gives the entity's new tags at once."""
    registry = FixedRegistry({"sensor.a": _THERMOMETER})
    encoder = create_encoder(RICH, registry)

    def tags(unit: str) -> dict[str, str]:
        line = encoder(State("sensor.a", "1", {"unit_of_measurement": unit}), None, 0)
        assert line is not None
        return parse_influx_line(line)[1]

    assert tags("°C")["area"] == "Living room"
    registry._fixed["sensor.a"] = EntityMetadata(
        "temperature", "hall", "Hall", None, None, frozenset(), ()
    )
    assert tags("°C")["area"] == "Hall"
    assert tags("°F")["unit"] == "°F"


NAMES = st.none() | _TEXTS
METADATA = st.builds(
    EntityMetadata,
    device_class=st.none() | st.sampled_from(["temperature", "power"]) | _TEXTS,
    area_id=st.none() | st.just("area"),
    area=NAMES,
    floor=NAMES,
    device=NAMES,
    label_ids=st.just(frozenset()),
    labels=st.lists(_TEXTS, max_size=3).map(lambda labels: tuple(sorted(labels))),
)


@settings(max_examples=500, deadline=None)
@given(
    options=OPTIONS,
    entity_id=ENTITY_IDS,
    changes=st.lists(st.tuples(STATE_TEXTS, ATTRIBUTES), min_size=2, max_size=4),
    metadata=METADATA,
)
def test_rich_field_types_never_change(
    options: dict[str, Any],
    entity_id: str,
    changes: list[tuple[str, dict[str, Any]]],
    metadata: EntityMetadata,
) -> None:
    """Whatever an entity's states and attributes, a field key keeps one type."""
    encoder = create_encoder(RICH | options, FixedRegistry({entity_id: metadata}))
    types: dict[str, type] = {}
    old_state = None
    for text, attributes in changes:
        state = State(entity_id, text, attributes)
        line = encoder(state, old_state, TIME_US)
        assert line is not None
        for key, value in parse_influx_line(line)[2].items():
            assert types.setdefault(key, type(value)) is type(value), key
        old_state = state


@settings(max_examples=300, deadline=None)
@given(
    options=OPTIONS,
    preset=st.sampled_from([PRESET_CORE_COMPATIBLE, PRESET_RICH]),
    changes=st.lists(
        st.tuples(st.sampled_from(["sensor.a", "light.b"]), STATE_TEXTS, ATTRIBUTES),
        min_size=2,
        max_size=5,
    ),
    metadata=st.lists(METADATA, min_size=2, max_size=2),
)
def test_what_encoders_remember_changes_nothing(
    options: dict[str, Any],
    preset: str,
    changes: list[tuple[str, str, dict[str, Any]]],
    metadata: list[EntityMetadata],
) -> None:
    """An encoder that has seen other changes writes what a new one would."""
    registry = FixedRegistry({"sensor.a": metadata[0], "light.b": metadata[1]})
    options = options | {CONF_PRESET: preset}
    encoder = create_encoder(options, registry)
    for entity_id, text, attributes in changes:
        state = State(entity_id, text, attributes)
        assert encoder(state, None, TIME_US) == create_encoder(options, registry)(
            state, None, TIME_US
        )


# Identifier keys, whose core fields have a place of their own in the sorted field set:
# around core's `state` and `value`, and keys whose fields interleave (`effect`,
# `effect_list`, `effect_str`); with a few that collide (`x`, `x_str`).
LAID_OUT_KEYS = st.sampled_from(
    [
        *("a", "aZ", "a2", "effect", "effect_list", "color_temp", "color_temp_kelvin"),
        *("stat", "state_class", "statf", "vale", "valuf", "value_x", "friendly_name"),
        *("unit_of_measurement", "device_class", "x", "x_str", "_", "température"),
    ]
)
LAID_OUT_ATTRIBUTES = st.dictionaries(LAID_OUT_KEYS, ATTRIBUTE_VALUES, max_size=6)


@settings(max_examples=1000, deadline=None)
@given(options=OPTIONS, text=STATE_TEXTS, attributes=LAID_OUT_ATTRIBUTES)
def test_core_layouts_write_what_the_general_rules_do(
    options: dict[str, Any], text: str, attributes: dict[str, Any]
) -> None:
    """Attributes laid out once per key sequence get the general rules' very bytes."""
    assume(text and text not in ("unknown", "unavailable"))
    encoder = create_encoder(CORE | options, FixedRegistry())
    state = State("sensor.a", text, attributes)
    line = encoder(state, None, TIME_US)
    laid_out_dropped = encoder.non_finite_dropped
    series = encoder._series["sensor.a"]  # type: ignore[attr-defined]
    encoder.non_finite_dropped = 0
    field_set = encoder._field_set(encoder._fields(state, series.skipped))  # type: ignore[attr-defined]
    assert line == (f"{series.prefix} {field_set} {TIME_US}" if field_set else None)
    assert encoder.non_finite_dropped == laid_out_dropped


@settings(max_examples=300, deadline=None)
@given(
    options=OPTIONS,
    preset=st.sampled_from([PRESET_CORE_COMPATIBLE, PRESET_RICH]),
    changes=st.lists(
        st.tuples(
            st.sampled_from(["sensor.a", "light.b"]),
            STATE_TEXTS,
            st.none() | ATTRIBUTES | LAID_OUT_ATTRIBUTES,
        ),
        min_size=2,
        max_size=6,
    ),
)
def test_kept_attributes_change_nothing(
    options: dict[str, Any],
    preset: str,
    changes: list[tuple[str, str, dict[str, Any] | None]],
) -> None:
    """A change that keeps its entity's attributes object writes what a new encoder would.

    Home Assistant hands on the previous state's attributes object when they are equal
    (None in `changes`); the encoder then writes the fields it rendered from it before,
    and counts their NaN and infinities again.
    """
    registry = FixedRegistry()
    options = options | {CONF_PRESET: preset}
    encoder = create_encoder(options, registry)
    dropped = 0
    states: dict[str, State] = {}
    for entity_id, text, attributes in changes:
        old_state = states.get(entity_id)
        if attributes is None and old_state is not None:
            state = State(entity_id, text, old_state.attributes)
        else:
            state = State(entity_id, text, attributes)
        new_encoder = create_encoder(options, registry)
        line = new_encoder(state, old_state, TIME_US)
        assert encoder(state, old_state, TIME_US) == line
        dropped += new_encoder.non_finite_dropped
        assert encoder.non_finite_dropped == dropped
        states[entity_id] = state


class _CountedNumber:
    """An attribute value that counts how often it is read."""

    def __init__(self) -> None:
        self.reads = 0

    def __float__(self) -> float:
        self.reads += 1
        return 1.5

    def __str__(self) -> str:
        self.reads += 1
        return "1.5"


@pytest.mark.parametrize("options", [CORE, RICH])
def test_kept_attributes_are_read_once(options: dict[str, Any]) -> None:
    """A change that keeps its entity's attributes object does not read them again."""
    value = _CountedNumber()
    encoder = create_encoder(options, FixedRegistry())
    first = State("sensor.a", "1", {"b": value})
    second = State("sensor.a", "2", first.attributes)
    assert first.attributes is second.attributes
    encoder(first, None, TIME_US)
    line = encoder(second, first, TIME_US)
    assert value.reads == 1
    assert line == create_encoder(options, FixedRegistry())(second, first, TIME_US)


@pytest.mark.parametrize("options", [CORE, RICH])
def test_attributes_changed_in_place_are_read_again(options: dict[str, Any]) -> None:
    """Only Home Assistant's read-only attributes are known unchanged by their identity.

    A state given another mapping (Home Assistant's own always hold a ReadOnlyDict) may
    see it changed in place between two changes.
    """
    attributes = {"b": 1}
    state = State("sensor.a", "1")
    state.attributes = attributes  # type: ignore[assignment]
    encoder = create_encoder(options, FixedRegistry())
    first = encoder(state, None, TIME_US)
    attributes["b"] = 2
    second = encoder(state, None, TIME_US)
    assert first != second
    assert second == create_encoder(options, FixedRegistry())(state, None, TIME_US)
