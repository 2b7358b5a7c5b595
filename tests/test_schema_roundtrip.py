"""Both presets' lines, for arbitrary states, into a real InfluxDB 1.x and back.

Every line an encoder makes must be accepted, and what InfluxDB then stores must be
what docs/schema.md says: measurement, tags, field keys, field types, values and
timestamp. For core_compatible the schema is core's own converter (with the differences
the doc lists); for rich it is the doc's rules, written out plainly below.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
import datetime as dt
import math
import re
from types import ModuleType
from typing import Any
import uuid

from homeassistant.core import State
from homeassistant.helpers.json import json_dumps
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

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
    PRESET_CORE_COMPATIBLE,
    PRESET_RICH,
)
from custom_components.ha_ingestor.line_protocol import create_encoder
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import EntityMetadata

from .influxdb_v1_server import InfluxDBv1Server
from .test_normalize import (
    ATTRIBUTES,
    CHANGED,
    ENTITY_IDS,
    METADATA,
    OPTIONS,
    STATE_TEXTS,
    TIME_US,
    FixedRegistry,
    core_expected,
    installed_core_influxdb,
    stored_name,
)

type Fields = dict[str, float | str]
# Measurement, tags, fields and time of a point, as InfluxDB stores them.
type Point = tuple[str, dict[str, str], Fields, int]


@pytest.fixture(scope="module")
def core_influxdb() -> Iterator[ModuleType]:
    """Home Assistant's influxdb integration as installed: its real code."""
    with installed_core_influxdb() as module:
        yield module


# ---------------------------------------------------------------------------------------
# docs/schema.md's rules for the rich preset, plainly.

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


def rich_point(
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
    } | dict(options.get(CONF_GLOBAL_TAGS, {}))
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
    measurement = (
        _measurement(options.get(CONF_MEASUREMENT_OVERRIDE))
        or _measurement(chosen)
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
        *options.get(CONF_IGNORE_ATTRIBUTES, ()),
        *options.get(CONF_IGNORE_ATTRIBUTES_BY_DOMAIN, {}).get(state.domain, ()),
    }
    for key, value in attributes.items():
        if key not in ignored and (field := _attribute_field(key, value)):
            assert field[0] not in fields, field
            fields[field[0]] = field[1]
    return measurement, stored_tags, fields


# ---------------------------------------------------------------------------------------
# Writing and reading back.


def _databases_for(
    written: list[tuple[str, Point]],
) -> list[list[tuple[str, Point]]]:
    """Share lines among as few databases as keep each field key to one type.

    core_compatible writes a field with two types where core does (docs/schema.md):
    InfluxDB would refuse the second point in the same measurement, and a query of
    several measurements gives a field key one type.
    """
    databases: list[tuple[dict[str, type], list[tuple[str, Point]]]] = []
    for line, point in written:
        types = {key: type(value) for key, value in point[2].items()}
        database = next(
            (
                database
                for database in databases
                if all(
                    database[0].get(key, kind) is kind for key, kind in types.items()
                )
            ),
            None,
        )
        if database is None:
            database = ({}, [])
            databases.append(database)
        database[0].update(types)
        database[1].append((line, point))
    return [held for _, held in databases]


def _write_and_read(
    influxdb: InfluxDBv1Server, written: list[tuple[str, Point]]
) -> None:
    """Write the lines to a new database; InfluxDB must store exactly their points."""
    lines = [line for line, _ in written]
    expected = [point for _, point in written]
    database = f"test_{uuid.uuid4().hex[:12]}"
    influxdb.query(f'CREATE DATABASE "{database}"')
    try:
        status, body = influxdb.request(
            "POST",
            "/write",
            {"db": database, "precision": "u"},
            "\n".join(lines).encode(),
        )
        assert status == 204, body
        stored = {}
        for series in influxdb.query("SELECT * FROM /.*/ GROUP BY *", database):
            # A series lacks a tag its measurement has elsewhere: InfluxQL gives "".
            tags = {k: v for k, v in series.get("tags", {}).items() if v}
            for row in series["values"]:
                values = dict(zip(series["columns"], row, strict=True))
                time = values.pop("time")
                # Whole floats come as JSON integers (`59923565411499140`).
                fields = {
                    key: v if isinstance(v, str) else float(v)
                    for key, v in values.items()
                    if v is not None
                }
                stored[time] = (series["name"], tags, fields, time)
        assert stored == {point[3]: point for point in expected}
        types = {
            (series["name"], key): kind
            for series in influxdb.query("SHOW FIELD KEYS", database)
            for key, kind in series["values"]
        }
        for measurement, _, fields, _ in expected:
            for key, value in fields.items():
                kind = "string" if isinstance(value, str) else "float"
                assert types[measurement, key] == kind, (measurement, key)
    finally:
        influxdb.query(f'DROP DATABASE "{database}"')


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


@dataclass(frozen=True)
class Scenario:
    """State changes of a few entities, under one preset and its options."""

    preset: str
    options: dict[str, Any]
    entity_ids: list[str]
    metadata: list[EntityMetadata]
    """Each entity's registry metadata."""
    changes: list[tuple[int, str, dict[str, Any]]]
    """Which entity, its new state and attributes."""


SCENARIOS = st.builds(
    Scenario,
    preset=st.sampled_from([PRESET_CORE_COMPATIBLE, PRESET_RICH]),
    options=OPTIONS,
    entity_ids=st.lists(ENTITY_IDS, min_size=3, max_size=3, unique=True),
    metadata=st.lists(METADATA, min_size=3, max_size=3),
    changes=st.lists(
        st.tuples(st.integers(0, 2), STATE_TEXTS, ATTRIBUTES), min_size=1, max_size=12
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    # The same examples on every run, so that CI is repeatable.
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=SCENARIOS)
def test_lines_read_back_as_documented(
    influxdb: InfluxDBv1Server,
    socket_enabled: None,
    core_influxdb: ModuleType,
    scenario: Scenario,
) -> None:
    """InfluxDB accepts every line and stores what the schema says."""
    preset = scenario.preset
    options = scenario.options | {CONF_PRESET: preset}
    encoder = create_encoder(
        options,
        FixedRegistry(dict(zip(scenario.entity_ids, scenario.metadata, strict=True))),
        PipelineStats(),
    )
    written: list[tuple[str, Point]] = []
    previous: dict[str, State] = {}
    for offset, (index, text, attributes) in enumerate(scenario.changes):
        entity_id = scenario.entity_ids[index]
        state = State(
            entity_id,
            text,
            attributes,
            last_changed=CHANGED + dt.timedelta(seconds=offset * 1.5),
        )
        old_state = previous.get(entity_id)
        time = TIME_US + offset
        line = encoder(state, old_state, time)
        previous[entity_id] = state
        if preset == PRESET_RICH:
            measurement, tags, fields = rich_point(
                options, scenario.metadata[index], state, old_state
            )
            expected: Point | None = (measurement, tags, fields, time)
        elif core_point := core_expected(core_influxdb, options, state):
            expected = _stored_core_point(core_point, time)
        else:
            expected = None
        if expected is None:
            assert line is None
            continue
        assert line is not None
        written.append((line, expected))
    databases = _databases_for(written)
    if preset == PRESET_RICH:
        # Its fields never change type: one database holds every point.
        assert len(databases) <= 1
    for held in databases:
        _write_and_read(influxdb, held)
