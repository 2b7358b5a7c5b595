"""State to line, per preset: the lines docs/schema.md shows, real InfluxDB 1.x takes.

The core_compatible preset is checked against rules worked out by hand from Home
Assistant's influxdb integration, against that integration's own converter, and
against a real InfluxDB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
import datetime as dt
import importlib
import math
from pathlib import Path
import sys
from types import ModuleType
from typing import Any
import uuid

from homeassistant import const as ha_const
from homeassistant.components.lock.const import LockState
from homeassistant.components.sun.const import STATE_ABOVE_HORIZON, STATE_BELOW_HORIZON
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNKNOWN
from homeassistant.core import Event, EventStateChangedData, State
from homeassistant.helpers.state import state_as_number
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.ha_ingestor import normalize
from custom_components.ha_ingestor.normalize import (
    ENCODERS,
    state_to_core_line,
    state_to_line,
    timestamp_us,
)

from .influxdb_v1_server import InfluxDBv1Server

TIME_US = 1732262400123456

# (entity id, state, attributes) -> the line docs/schema.md shows for it.
DOCUMENTED_LINES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "sensor.living_room",
        "21",
        {"unit_of_measurement": "°C"},
        "°C,domain=sensor,entity_id=living_room value=21.0 1732262400123456",
    ),
    (
        "sensor.pv_power",
        "1234.5",
        {"unit_of_measurement": "W"},
        "W,domain=sensor,entity_id=pv_power value=1234.5 1732262400123456",
    ),
    (
        "sensor.water",
        "0.25",
        {"unit_of_measurement": "m³ per h, est"},
        r"m³\ per\ h\,\ est,domain=sensor,entity_id=water value=0.25 1732262400123456",
    ),
    (
        "binary_sensor.front_door",
        "on",
        {},
        'binary_sensor,domain=binary_sensor,entity_id=front_door state="on" 1732262400123456',
    ),
    (
        "climate.hall",
        'say "eco"',
        {},
        r'climate,domain=climate,entity_id=hall state="say \"eco\"" 1732262400123456',
    ),
    (
        "sensor.path",
        "C:\\temp",
        {},
        r'sensor,domain=sensor,entity_id=path state="C:\\temp" 1732262400123456',
    ),
    (
        "sensor.broken",
        "nan",
        {"unit_of_measurement": "°C"},
        '°C,domain=sensor,entity_id=broken state="nan" 1732262400123456',
    ),
    (
        "sensor.big",
        "1e300",
        {"unit_of_measurement": "B"},
        "B,domain=sensor,entity_id=big value=1e+300 1732262400123456",
    ),
]


@pytest.mark.parametrize(
    ("entity_id", "state", "attributes", "line"),
    DOCUMENTED_LINES,
    ids=[case[0] for case in DOCUMENTED_LINES],
)
def test_documented_lines(
    entity_id: str, state: str, attributes: dict[str, Any], line: str
) -> None:
    """The lines are exactly the ones docs/schema.md shows."""
    assert state_to_line(State(entity_id, state, attributes), TIME_US) == line


def test_documented_lines_are_in_the_docs() -> None:
    """docs/schema.md shows these very lines, so it cannot drift from the code."""
    text = (Path(__file__).parents[1] / "docs" / "schema.md").read_text("utf-8")
    for *_, line in DOCUMENTED_LINES:
        assert line in text


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


def test_documented_lines_read_back(influxdb: InfluxDBv1Server, database: str) -> None:
    """Real InfluxDB accepts every line and gives back the same values."""
    lines = [
        state_to_line(State(entity_id, state, attributes), TIME_US + offset)
        for offset, (entity_id, state, attributes, _) in enumerate(DOCUMENTED_LINES)
    ]
    status, body = influxdb.request(
        "POST", "/write", {"db": database, "precision": "u"}, "\n".join(lines).encode()
    )
    assert status == 204, body
    rows = {
        row["entity_id"]: row
        for row in influxdb.rows('SELECT * FROM /.*/ GROUP BY "entity_id"', database)
    }
    assert rows["living_room"]["measurement"] == "°C"
    assert rows["living_room"]["value"] == 21.0
    assert rows["water"]["measurement"] == "m³ per h, est"
    assert rows["front_door"]["state"] == "on"
    assert rows["hall"]["state"] == 'say "eco"'
    assert rows["path"]["state"] == "C:\\temp"
    assert rows["broken"]["state"] == "nan"
    assert rows["big"]["value"] == 1e300
    assert [rows[e.split(".")[1]]["time"] for e, *_ in DOCUMENTED_LINES] == [
        TIME_US + offset for offset in range(len(DOCUMENTED_LINES))
    ]


# ---------------------------------------------------------------------------------------
# The core_compatible preset: what Home Assistant's influxdb integration writes.

_UTC_MORNING = dt.datetime(2024, 11, 22, 8, 0, tzinfo=dt.UTC)

# (entity id, state, attributes) -> the line docs/schema.md shows for it.
CORE_DOCUMENTED_LINES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "sensor.living_room",
        "21.5",
        {
            "unit_of_measurement": "°C",
            "device_class": "temperature",
            "friendly_name": "Living room",
        },
        "°C,domain=sensor,entity_id=living_room "
        'device_class_str="temperature",friendly_name_str="Living room",value=21.5 '
        "1732262400123456",
    ),
    (
        "binary_sensor.front_door",
        "on",
        {"device_class": "door", "friendly_name": "Front door"},
        "binary_sensor.front_door,domain=binary_sensor,entity_id=front_door "
        'device_class_str="door",friendly_name_str="Front door",state="on",value=1.0 '
        "1732262400123456",
    ),
    (
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
    (
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
    (
        "sensor.last_boot",
        "2024-11-22T08:00:00+00:00",
        {"device_class": "timestamp", "last_reset": _UTC_MORNING},
        "sensor.last_boot,domain=sensor,entity_id=last_boot "
        'device_class_str="timestamp",last_reset=2.024112208e+17,'
        'last_reset_str="2024-11-22 08:00:00+00:00",'
        'state="2024-11-22T08:00:00+00:00" 1732262400123456',
    ),
    (
        "sensor.collide",
        "12",
        {"value": "high", "state": 3, "time": "12:30"},
        "sensor.collide,domain=sensor,entity_id=collide "
        'state=3.0,time_=1230.0,time_str="12:30",value=12.0,value__str="high" '
        "1732262400123456",
    ),
    (
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
    (
        "sensor.power",
        "nan",
        {"unit_of_measurement": "W", "friendly_name": "Power"},
        'W,domain=sensor,entity_id=power friendly_name_str="Power" 1732262400123456',
    ),
]

type Fields = dict[str, float | str]
# What core's rules give for a state: None (not written), or measurement and fields;
# the tags are always the entity id's domain and object id.
type Expected = tuple[str, Fields] | None

# (case id, entity id, state, attributes, expected), each derived by hand from
# core's _generate_event_to_json, helpers.state.state_as_number and the client's
# make_line, as docs/schema.md explains them.
CORE_CASES: list[tuple[str, str, str, dict[str, Any], Expected]] = [
    ("unknown", "sensor.a", "unknown", {"unit_of_measurement": "W"}, None),
    ("unavailable", "sensor.b", "unavailable", {}, None),
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
]


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


def parse_line(line: str) -> tuple[str, dict[str, str], Fields, int]:
    """Split a line as InfluxDB does: measurement, tags, typed fields, time.

    Names are unescaped exactly as the client escapes them, so they must come back as
    the unescaped names core gives; the fields must be in the client's (sorted) order.
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
            end = min(p for p in (line.find(",", i), line.find(" ", i)) if p > 0)
            fields[key] = number = float(line[i + 1 : end])
            assert math.isfinite(number), line
            i = end
    assert list(fields) == sorted(fields), line
    return measurement, tags, fields, int(line[i + 1 :])


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
    line = state_to_core_line(State(entity_id, state, attributes), TIME_US)
    if expected is None:
        assert line is None
        return
    assert line is not None
    measurement, fields = expected
    assert parse_line(line) == (measurement, _tags(entity_id), fields, TIME_US)


@pytest.mark.parametrize(
    ("entity_id", "state", "attributes", "line"),
    CORE_DOCUMENTED_LINES,
    ids=[case[0] for case in CORE_DOCUMENTED_LINES],
)
def test_core_documented_lines(
    entity_id: str, state: str, attributes: dict[str, Any], line: str
) -> None:
    """The lines are exactly the ones docs/schema.md shows."""
    assert state_to_core_line(State(entity_id, state, attributes), TIME_US) == line


def test_core_documented_lines_are_in_the_docs() -> None:
    """docs/schema.md shows these very lines, so it cannot drift from the code."""
    text = (Path(__file__).parents[1] / "docs" / "schema.md").read_text("utf-8")
    for *_, line in CORE_DOCUMENTED_LINES:
        assert line in text


def test_presets() -> None:
    """Each preset name gives its encoder."""
    assert dict(ENCODERS) == {
        "basic": state_to_line,
        "core_compatible": state_to_core_line,
    }


def _stored_name(name: str) -> str:
    r"""Return the name InfluxDB 1.x stores for a name the client escaped.

    It keeps the client's escapes of a backslash and of a line break (`\\`, `\n`) as
    they are; core's points get the very same names.
    """
    return name.replace("\\", "\\\\").replace("\n", "\\n")


def test_core_lines_read_back(influxdb: InfluxDBv1Server, database: str) -> None:
    """Real InfluxDB takes every line and stores the expected names, values, types."""
    lines, points = [], []
    for offset, (_, entity_id, state, attributes, expected) in enumerate(CORE_CASES):
        line = state_to_core_line(State(entity_id, state, attributes), TIME_US + offset)
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
        name = _stored_name(measurement)
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        (row,) = influxdb.rows(f'SELECT * FROM "{quoted}"', database)
        assert row["entity_id"] == _stored_name(object_id)
        stored = {_stored_name(key): value for key, value in fields.items()}
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

type Converter = Callable[[Event[EventStateChangedData]], dict[str, Any] | None]


@pytest.fixture(scope="module")
def core_influxdb() -> Iterator[ModuleType]:
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
def core_converters(core_influxdb: ModuleType) -> tuple[Converter, Converter]:
    """Core's event_to_json with default settings, and with the entity id as measurement.

    The second gives what the first would with no unit, for the units InfluxDB cannot
    store a point under (docs/schema.md).
    """
    generate = core_influxdb._generate_event_to_json
    return (
        generate(_CORE_DEFAULT_OPTIONS),
        generate(_CORE_DEFAULT_OPTIONS | {"measurement_attr": "entity_id"}),
    )


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
    """The digit-tail patterns and state words are core's own."""
    assert normalize._CORE_DIGIT_TAIL.pattern == core_influxdb.RE_DIGIT_TAIL.pattern
    assert normalize._CORE_NOT_DECIMAL.pattern == core_influxdb.RE_DECIMAL.pattern
    numbers = {}
    for word in _WORDS:
        with contextlib.suppress(ValueError):
            numbers[word] = float(state_as_number(State("sensor.x", word)))
    del numbers[STATE_UNKNOWN]  # never written
    assert numbers == normalize._CORE_STATE_NUMBERS


def _core_expected(
    converters: tuple[Converter, Converter], state: State
) -> tuple[str, dict[str, str], Fields] | None:
    """What core's real converter gives, with the differences docs/schema.md lists."""
    default, by_entity_id = converters
    event = Event(
        EVENT_STATE_CHANGED,
        EventStateChangedData(
            entity_id=state.entity_id, old_state=None, new_state=state
        ),
    )
    if (point := default(event)) is None:
        return None
    measurement = str(point["measurement"])
    start = measurement.lstrip("\t\x00")
    if not start or start[0] == "#" or measurement[-1] == "\\":
        point = by_entity_id(event)
        assert point is not None
        measurement = point["measurement"]
    fields = {
        key: value
        for key, value in point["fields"].items()
        # The client leaves out empty keys; the rest are the differences.
        if key and key[-1] != "\\" and (isinstance(value, str) or math.isfinite(value))
    }
    return (measurement, point["tags"], fields) if fields else None


_TEXTS = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    [
        *("°C", "W", "m³ per h, est", "Version 2.3", "Firmware 10", "12:30", "v2.4.1"),
        *("192.168.1.1", "nan", "-inf", "1e999", " 5 ", "1_000", "١٢", "9" * 400),
        *("a\nb", "\r\n", "x\\", "#x", "\t#x", "\x00#", "\t", " ", ",", "=", '"'),
        "\u2028",
    ]
)
_ATTRIBUTE_VALUES = (
    st.none()
    | st.booleans()
    # Beyond float's range core's converter raises (a case in CORE_CASES).
    | st.integers(-(2**1000), 2**1000)
    | st.floats()
    | _TEXTS
    | st.lists(st.integers(0, 99), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(0, 99), max_size=2)
    | st.datetimes(timezones=st.just(dt.UTC))
)
_ATTRIBUTE_KEYS = st.sampled_from(
    [
        *("unit_of_measurement", "friendly_name", "value", "value_", "state"),
        *("state_", "time", "time_", "x", "x_", "x_str", "k\\", ""),
    ]
) | _TEXTS.filter(
    # InfluxDB strips these from the start of the first field key only, so two keys
    # could become one (core's too); no real attribute key starts with them.
    lambda key: not key.startswith(("\t", "\x00"))
)
# Entity id, state and attributes; the test makes the State (which draws a random
# context id, something a strategy must not do).
_STATES = st.tuples(
    st.builds(
        "{}.{}{}".format,
        st.sampled_from(["sensor", "binary_sensor", "lock", "sun", "climate", "a1"]),
        # Object ids are slugs: no `_` at either end or twice in a row; `$` in Home
        # Assistant's pattern also lets them end in a line feed.
        st.lists(st.text("az09", min_size=1, max_size=3), min_size=1, max_size=3).map(
            "_".join
        ),
        st.sampled_from(["", "\n"]),
    ),
    st.sampled_from(_WORDS) | _TEXTS | st.floats().map(repr) | st.integers().map(str),
    st.dictionaries(_ATTRIBUTE_KEYS, _ATTRIBUTE_VALUES, max_size=6),
)


@settings(
    max_examples=1500,
    deadline=None,
    # The harness's function-scoped fixtures are not used by the examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parts=_STATES)
def test_core_converter_agrees(
    core_converters: tuple[Converter, Converter], parts: tuple[str, str, dict[str, Any]]
) -> None:
    """Over many states, our line is core's point: measurement, tags, typed fields."""
    state = State(*parts)
    expected = _core_expected(core_converters, state)
    line = state_to_core_line(state, TIME_US)
    if expected is None:
        assert line is None
    else:
        assert line is not None
        assert parse_line(line) == (*expected, TIME_US)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parts=_STATES)
def test_core_lines_are_accepted(
    influxdb: InfluxDBv1Server,
    socket_enabled: None,
    parts: tuple[str, str, dict[str, Any]],
) -> None:
    """Real InfluxDB takes every line we make and stores one point of those types."""
    if (line := state_to_core_line(State(*parts), TIME_US)) is None:
        return
    # A database of its own: a field may change type between examples (as core's do).
    database = f"test_{uuid.uuid4().hex[:12]}"
    influxdb.query(f'CREATE DATABASE "{database}"')
    try:
        status, body = influxdb.request(
            "POST", "/write", {"db": database, "precision": "u"}, line.encode()
        )
        assert status == 204, body
        assert [
            row["time"] for row in influxdb.rows("SELECT * FROM /.*/", database)
        ] == [TIME_US]
        (series,) = influxdb.query("SHOW FIELD KEYS", database)
        types = dict(series["values"])
        # Names InfluxDB stores as written (see _stored_name for the others).
        fields = {
            key: "string" if isinstance(value, str) else "float"
            for key, value in parse_line(line)[2].items()
            if "\\" not in key and "\n" not in key
        }
        assert {key: types[key] for key in fields} == fields
    finally:
        influxdb.query(f'DROP DATABASE "{database}"')
