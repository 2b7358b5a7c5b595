"""The rich preset: registry context as tags, the change itself, fields of one type.

Checked rule by rule, for its promise that a field never changes type, and against a
real InfluxDB 1.x: docs/schema.md's lines, and lines of arbitrary state changes written
and read back, where what InfluxDB stores must be what the doc's rules (written out
plainly below, apart from the encoder's code) say.
"""

from __future__ import annotations

from collections.abc import Mapping
import datetime as dt
import enum
import math
from pathlib import Path
import re
from typing import Any

from homeassistant.core import Context, State
from homeassistant.helpers.entity_values import EntityValues
from homeassistant.helpers.json import json_dumps
from hypothesis import HealthCheck, given, settings, strategies as st
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
    PRECISION_SECONDS,
    PRESET_RICH,
)
from custom_components.ha_ingestor.line_protocol import create_encoder, rich
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import UNREGISTERED, EntityMetadata

from ..influxdb_v1_server import InfluxDBv1Server
from .helpers import (
    CHANGED,
    CONTEXT,
    POWER,
    RICH,
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
    scenarios,
    write_and_read,
    written_lines,
)
from .strategies import ATTRIBUTES, ENTITY_IDS, METADATA, OPTIONS, STATE_TEXTS

# ---------------------------------------------------------------------------------------
# The lines docs/schema.md shows.

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
            "next_change": UTC_MORNING,
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


@pytest.mark.parametrize("example", RICH_EXAMPLES, ids=lambda e: e.entity_id)
def test_documented_lines(example: Example) -> None:
    """The lines are exactly the ones docs/schema.md shows."""
    assert example.encode() == example.line


def test_documented_lines_are_in_the_docs() -> None:
    """docs/schema.md shows these very lines, so it cannot drift from the code."""
    text = (Path(__file__).parents[2] / "docs" / "schema.md").read_text("utf-8")
    for example in RICH_EXAMPLES:
        assert example.line in text


def test_documented_lines_are_accepted(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """Real InfluxDB takes the documented lines and stores their measurements."""
    lines = [example.line for example in RICH_EXAMPLES]
    status, body = influxdb.request(
        "POST", "/write", {"db": database, "precision": "u"}, "\n".join(lines).encode()
    )
    assert status == 204, body
    (series,) = influxdb.query("SHOW MEASUREMENTS", database)
    assert sorted(name for (name,) in series["values"]) == sorted(
        {parse_influx_line(line)[0] for line in lines}
    )


# ---------------------------------------------------------------------------------------
# Rich's rules, one by one.


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
        if key not in rich._RICH_STATE_FIELDS
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
            POWER,
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
            POWER,
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
            POWER,
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
    stats = PipelineStats()
    encoder = create_encoder(RICH, FixedRegistry(), stats)
    line = encoder(State("sensor.a", state, context=CONTEXT), None, TIME_US)
    assert line is not None
    assert parse_influx_line(line)[2] == fields | {"context_id": CONTEXT.id}
    assert stats.non_finite_values_skipped == dropped


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


def _context_of(fields: Fields) -> Fields:
    """The fields of a line that tell its context."""
    return {key: value for key, value in fields.items() if key.startswith("context_")}


def _expected_context_fields(context: Context) -> Fields:
    """The context fields docs/schema.md promises: its ids, each on one line."""
    fields: Fields = {"context_id": " ".join(context.id.splitlines())}
    if context.parent_id is not None:
        fields["context_parent_id"] = " ".join(context.parent_id.splitlines())
    if context.user_id is not None:
        fields["context_user_id"] = " ".join(context.user_id.splitlines())
    return fields


def test_rich_context_shared_by_changes_is_rendered_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One service call changes several entities in one context: its fields once.

    Each line still holds them, as a new encoder would write it.
    """
    context = Context(
        id="01JDA7Q3ZK8V5N2W4X6Y8B0C1E",
        parent_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1F",
        user_id="5f4dcc3b5aa765d61d8327deb882cf99",
    )
    states = [
        State("light.kitchen", "on", context=context),
        State("light.hall", "on", {"brightness": 255}, context=context),
        State("light.kitchen", "on", {"brightness": 128}, context=context),
    ]
    expected = [encode(RICH, state) for state in states]
    render = rich._context_fields
    rendered: list[Context] = []

    def counted(context: Context) -> str:
        rendered.append(context)
        return render(context)

    monkeypatch.setattr(rich, "_context_fields", counted)
    encoder = create_encoder(RICH, FixedRegistry(), PipelineStats())
    lines = [encoder(state, None, TIME_US) for state in states]
    assert rendered == [context]
    assert rendered[0] is context
    assert lines == expected
    for line in lines:
        assert line is not None
        assert _context_of(parse_influx_line(line)[2]) == {
            "context_id": "01JDA7Q3ZK8V5N2W4X6Y8B0C1E",
            "context_parent_id": "01JDA7Q3ZK8V5N2W4X6Y8B0C1F",
            "context_user_id": "5f4dcc3b5aa765d61d8327deb882cf99",
        }


def test_rich_each_new_context_gives_its_own_fields() -> None:
    """A new context object gives its fields, never those of the one before.

    Also one equal to the one before (Context compares ids alone) with another parent
    or user, and a context seen before the last one.
    """
    first = Context(id="01JDA7Q3ZK8V5N2W4X6Y8B0C1A", parent_id="p1", user_id="u1")
    contexts = [
        first,
        Context(id="01JDA7Q3ZK8V5N2W4X6Y8B0C1B"),
        Context(id="01JDA7Q3ZK8V5N2W4X6Y8B0C1B", user_id="u2"),
        Context(id="01JDA7Q3ZK8V5N2W4X6Y8B0C1B", parent_id="p3"),
        Context(id="01JDA7Q3ZK8V5N2W4X6Y8B0C1C", parent_id="p4", user_id="u4"),
        first,
    ]
    encoder = create_encoder(RICH, FixedRegistry(), PipelineStats())
    for number, context in enumerate(contexts):
        line = encoder(State("sensor.a", str(number), context=context), None, TIME_US)
        assert line is not None
        assert _context_of(parse_influx_line(line)[2]) == (
            _expected_context_fields(context)
        ), number


def test_rich_context_between_states_alone() -> None:
    """Unknown and unavailable have no context fields, and leave the next change's."""
    context = Context(id="01JDA7Q3ZK8V5N2W4X6Y8B0C1A", user_id="u1")
    encoder = create_encoder(RICH, FixedRegistry(), PipelineStats())
    for text in ("1", "unavailable", "2"):
        line = encoder(State("sensor.a", text, context=context), None, TIME_US)
        assert line is not None
        fields = _context_of(parse_influx_line(line)[2])
        if text == "unavailable":
            assert fields == {}
        else:
            assert fields == {"context_id": context.id, "context_user_id": "u1"}


# Context ids anyone can set (a service call's, an automation's): texts that need
# escaping in a string field, line breaks, and ones that need none.
AWKWARD_IDS = [
    'say "hi"',
    '"',
    "C:\\temp\\",
    "\\",
    '\\"',
    "two\nlines",
    "\r\n",
    "a b,c=d",
    "température",
    "01JDA7Q3ZK8V5N2W4X6Y8B0C1D",
]


@pytest.mark.parametrize("text", AWKWARD_IDS)
def test_rich_context_ids_that_need_escaping(text: str) -> None:
    """Each id is its string field: escaped, and on one line."""
    contexts = [
        Context(id=text),
        Context(id=f"{text}1", parent_id=text),
        Context(id=f"{text}2", user_id=text),
        Context(id=text, parent_id=f"p{text}", user_id=f"{text}u"),
    ]
    for context in contexts:
        line = encode(RICH, State("sensor.a", "1", context=context))
        assert line is not None
        assert _context_of(parse_influx_line(line)[2]) == (
            _expected_context_fields(context)
        )


def test_rich_context_ids_that_need_no_escape_are_written_as_they_are() -> None:
    """Home Assistant's own ids (ULIDs, hex user ids) are not copied or escaped."""
    ulid = "01JDA7Q3ZK8V5N2W4X6Y8B0C1D"
    assert rich._context_id(ulid) is ulid
    assert rich._context_id('a"b\\c\nd') == 'a\\"b\\\\c d'


def test_rich_awkward_context_ids_read_back(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """Real InfluxDB takes the escaped ids and stores each id as its field's value."""
    contexts = [
        Context(id=text, parent_id=f"p{text}", user_id=f"{text}u")
        for text in AWKWARD_IDS
    ]
    encoder = create_encoder(RICH, FixedRegistry(), PipelineStats())
    lines = []
    for offset, context in enumerate(contexts):
        line = encoder(State("sensor.a", "1", context=context), None, TIME_US + offset)
        assert line is not None
        lines.append(line)
    status, body = influxdb.request(
        "POST", "/write", {"db": database, "precision": "u"}, "\n".join(lines).encode()
    )
    assert status == 204, body
    rows = influxdb.rows(
        "SELECT context_id, context_parent_id, context_user_id FROM sensor", database
    )
    assert [
        {key: value for key, value in row.items() if key.startswith("context_")}
        for row in rows
    ] == [_expected_context_fields(context) for context in contexts]


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
        ({"heat"}, {"a_str": '["heat"]'}),
        # Home Assistant's JSON takes sets, not frozensets: its str().
        (frozenset({2}), {"a_str": "frozenset({2})"}),
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
    stats = PipelineStats()
    encoder = create_encoder(RICH, FixedRegistry(), stats)
    line = encoder(State("sensor.a", "1", {"a": value, "b": 1}), None, TIME_US)
    assert line is not None
    assert attribute_fields(parse_influx_line(line)[2]) == {"b": 1.0}
    assert stats.non_finite_values_skipped == 1


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


def test_rich_series_follow_the_registry_and_attributes() -> None:
    """New registry metadata or a new unit gives the entity's new tags at once."""
    registry = FixedRegistry({"sensor.a": _THERMOMETER})
    encoder = create_encoder(RICH, registry, PipelineStats())

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
    encoder = create_encoder(
        RICH | options, FixedRegistry({entity_id: metadata}), PipelineStats()
    )
    types: dict[str, type] = {}
    old_state = None
    for text, attributes in changes:
        state = State(entity_id, text, attributes)
        line = encoder(state, old_state, TIME_US)
        assert line is not None
        for key, value in parse_influx_line(line)[2].items():
            assert types.setdefault(key, type(value)) is type(value), key
        old_state = state


# ---------------------------------------------------------------------------------------
# Arbitrary state changes, into a real InfluxDB 1.x and back: docs/schema.md's rules for
# the rich preset, plainly.

_STATE_FIELDS = (
    "state",
    "value",
    "previous_state",
    "duration_in_state_s",
    "context_id",
    "context_parent_id",
    "context_user_id",
)


_TAGS = ("area", "device", "device_class", "domain", "entity_id", "floor", "labels")


_RESERVED = {*_STATE_FIELDS, *_TAGS, "unit", "time"}


_WORD_NUMBERS = {
    **dict.fromkeys(("on", "locked", "above_horizon", "open", "home"), 1.0),
    **dict.fromkeys(("off", "unlocked", "below_horizon", "closed", "not_home"), 0.0),
}


# A backslash InfluxDB would read as an escape: before a comma, space, `=` or double
# quote, or last.
_ESCAPING_BACKSLASH = re.compile(r'\\(?=[ ,="]|\Z)')


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _name(text: str) -> str:
    """A name as stored: one line, escaping backslashes made slashes."""
    return _ESCAPING_BACKSLASH.sub("/", _one_line(text))


def _measurement(text: str | None) -> str | None:
    """A measurement as stored, or None where the text cannot be one."""
    if not text or not (name := _name(text)) or name[0] in "#\t\x00":
        return None
    return name


def _number(text: str) -> float | None:
    if text in _WORD_NUMBERS:
        return _WORD_NUMBERS[text]
    try:
        return float(text)
    except ValueError:
        return None


def _attribute_field(key: object, value: object) -> tuple[str, float | str] | None:
    """The field an attribute is stored as, or None."""
    # Text keys only, not empty, without line breaks.
    if not isinstance(key, str) or key.splitlines() != [key]:
        return None
    number_key = key
    if key in _RESERVED or key.endswith(("_", "_str", "\\")):
        number_key += "_"
    if _ESCAPING_BACKSLASH.search(number_key):
        return None
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
        return (number_key, number) if math.isfinite(number) else None
    if isinstance(value, str):
        text = str.__str__(value)
    elif isinstance(value, dt.date | dt.time):
        text = value.isoformat()
    else:
        try:
            text = json_dumps(value)
        except TypeError:
            text = str(value)
    return f"{key}_str", _one_line(text)


def _tag_text(value: object) -> str:
    """A tag attribute's value as text: what its field would hold."""
    field = _attribute_field("x", value)
    if field is None:
        return ""
    return field[1] if isinstance(field[1], str) else repr(field[1])


def _entity_setting[T](
    by_key: Mapping[str, T], by_domain: Mapping[str, T], state: State
) -> T | None:
    """A setting by entity id, pattern or domain, as EntityValues resolves it."""
    kinds: dict[str, dict[str, Any]] = {"domain": dict(by_domain), "entity": {}}
    patterns: dict[str, Any] = {}
    for key, value in by_key.items():
        if any(wildcard in key for wildcard in "*?["):
            patterns[key] = value
        else:
            kinds["entity" if "." in key else "domain"][key] = value
    resolved: dict[str, Any] = EntityValues(
        {k: {"v": v} for k, v in kinds["entity"].items()},
        {k: {"v": v} for k, v in kinds["domain"].items()},
        {k: {"v": v} for k, v in patterns.items()},
    ).get(state.entity_id)
    setting: T | None = resolved.get("v")
    return setting


def documented_point(
    options: Mapping[str, Any],
    metadata: EntityMetadata,
    state: State,
    old_state: State | None,
) -> tuple[str, dict[str, str], Fields]:
    """The point docs/schema.md says the rich preset writes for a state change."""
    attributes = state.attributes
    unit = attributes.get("unit_of_measurement")
    unit = unit if isinstance(unit, str) else None
    device_class = attributes.get("device_class")
    device_class = metadata.device_class or (
        device_class if isinstance(device_class, str) else None
    )
    tags = {
        "area": metadata.area,
        "device": metadata.device,
        "device_class": device_class,
        "domain": state.domain,
        "entity_id": state.entity_id,
        "floor": metadata.floor,
        "labels": ",".join(metadata.labels),
        "unit": unit,
    }
    tag_attributes = options.get(CONF_TAG_ATTRIBUTES, [])
    # An attribute's tag replaces the preset's of the same name; a global tag both.
    for key in tag_attributes:
        if key in attributes and _name(key) != "time":
            tags[key] = _tag_text(attributes[key])
    tags |= dict(options.get(CONF_GLOBAL_TAGS, {}))
    stored_tags = {
        _name(key): _name(value)
        for key, value in tags.items()
        if value and _name(key) and _name(value) and _name(key) != "time"
    }

    chosen = {
        MEASUREMENT_ENTITY_ID: state.entity_id,
        MEASUREMENT_DEVICE_CLASS: device_class,
        MEASUREMENT_DOMAIN_DEVICE_CLASS: device_class
        and f"{state.domain}__{device_class}",
    }.get(options.get(CONF_MEASUREMENT_RULE, ""), unit)
    # An entity's own override, by entity id, else the last pattern, else the domain.
    own = _entity_setting(options.get(CONF_MEASUREMENT_OVERRIDES, {}), {}, state)
    measurement = (
        _measurement(own)
        or _measurement(options.get(CONF_MEASUREMENT_OVERRIDE))
        or _measurement(chosen)
        or _measurement(options.get(CONF_DEFAULT_MEASUREMENT))
        or state.domain
    )

    fields: Fields = {"state": _one_line(state.state)}
    if state.state in ("unknown", "unavailable"):
        return measurement, stored_tags, fields
    if (number := _number(state.state)) is not None and math.isfinite(number):
        fields["value"] = number
    if old_state is not None and old_state.state != state.state:
        fields["previous_state"] = _one_line(old_state.state)
        fields["duration_in_state_s"] = (
            state.last_changed - old_state.last_changed
        ).total_seconds()
    context = state.context
    for key, text in (
        ("context_id", context.id),
        ("context_parent_id", context.parent_id),
        ("context_user_id", context.user_id),
    ):
        if text is not None:
            fields[key] = text
    ignored = {
        "unit_of_measurement",
        "device_class",
        *tag_attributes,
        *options.get(CONF_IGNORE_ATTRIBUTES, ()),
        *(
            _entity_setting(
                options.get(CONF_IGNORE_ATTRIBUTES_BY_ENTITY, {}),
                options.get(CONF_IGNORE_ATTRIBUTES_BY_DOMAIN, {}),
                state,
            )
            or ()
        ),
    }
    for key, value in attributes.items():
        if key not in ignored and (field := _attribute_field(key, value)):
            assert field[0] not in fields, field
            fields[field[0]] = field[1]
    return measurement, stored_tags, fields


@settings(
    max_examples=60,
    deadline=None,
    # The same examples on every run, so that CI is repeatable.
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(PRESET_RICH))
def test_lines_read_back_as_documented(
    influxdb: InfluxDBv1Server, socket_enabled: None, scenario: Scenario
) -> None:
    """InfluxDB accepts every line and stores what the schema says."""

    def expected(
        options: Mapping[str, Any],
        metadata: EntityMetadata,
        state: State,
        old_state: State | None,
        time_us: int,
    ) -> Point:
        return (*documented_point(options, metadata, state, old_state), time_us)

    databases = databases_for(written_lines(scenario, expected))
    # Its fields never change type: one database holds every point.
    assert len(databases) <= 1
    for held in databases:
        write_and_read(influxdb, held)


def test_rich_core_options() -> None:
    """Core's options the takeover maps apply to rich points too."""
    options = {
        CONF_DEFAULT_MEASUREMENT: "misc",
        CONF_TAG_ATTRIBUTES: ["room", "level"],
        CONF_MEASUREMENT_OVERRIDES: {"sensor.*_power": "power"},
        CONF_IGNORE_ATTRIBUTES_BY_ENTITY: {"sensor.oven_power": ["icon"]},
        CONF_TIMESTAMP_PRECISION: PRECISION_SECONDS,
    }
    attributes = {"room": "Hall", "level": 2, "icon": "i"}
    oven = rich_point(State("sensor.oven_power", "1", attributes), options)
    assert oven[0] == "power"
    assert oven[1]["room"] == "Hall"
    assert oven[1]["level"] == "2.0"
    assert attribute_fields(oven[2]) == {}
    assert oven[3] == TIME_US - TIME_US % 1_000_000
    other = rich_point(State("sensor.other", "1", attributes), options)
    assert other[0] == "misc"
    assert attribute_fields(other[2]) == {"icon_str": "i"}
