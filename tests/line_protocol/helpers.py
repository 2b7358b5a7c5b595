"""What the encoder tests share: a registry without Home Assistant, lines read back.

Lines are read back two ways: as the client that core writes with escapes them
(`parse_line`), and as InfluxDB 1.x stores them (`parse_influx_line`). `Scenario`,
`written_lines` and `write_and_read` write an encoder's lines to a real InfluxDB 1.x
and check that it stores exactly the points docs/schema.md says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import datetime as dt
import math
from typing import Any
import uuid

from homeassistant.core import Context, State
from hypothesis import strategies as st

from custom_components.ha_ingestor.const import (
    CONF_PRESET,
    PRESET_CORE_COMPATIBLE,
    PRESET_RICH,
)
from custom_components.ha_ingestor.line_protocol import create_encoder
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import (
    UNREGISTERED,
    EntityMetadata,
    RegistryCache,
)

from ..influxdb_v1_server import InfluxDBv1Server
from .strategies import ATTRIBUTES, ENTITY_IDS, METADATA, OPTIONS, STATE_TEXTS

TIME_US = 1732262400123456
# When the documented states changed, and their context.
CHANGED = dt.datetime(2024, 11, 22, 8, 0, tzinfo=dt.UTC)
CONTEXT = Context(id="01JDA7Q3ZK8V5N2W4X6Y8B0C1D")
UTC_MORNING = dt.datetime(2024, 11, 22, 8, 0, tzinfo=dt.UTC)

CORE: dict[str, Any] = {CONF_PRESET: PRESET_CORE_COMPATIBLE}
RICH: dict[str, Any] = {CONF_PRESET: PRESET_RICH}

# An entity whose registry entry gives it the device class `power`, nothing else.
POWER = EntityMetadata("power", None, None, None, None, frozenset(), ())

type Fields = dict[str, float | str]
# Measurement, tags, fields and time of a point, as InfluxDB stores them.
type Point = tuple[str, dict[str, str], Fields, int]


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
    return create_encoder(options, registry, PipelineStats())(state, old_state, TIME_US)


class Unreadable:
    """An integration's object whose every reading fails: text, number, dict."""

    def __str__(self) -> str:
        """Fail, as its repr does."""
        raise RuntimeError("no text")

    __repr__ = __str__

    def __float__(self) -> float:
        """Fail."""
        raise RuntimeError("no number")

    def as_dict(self) -> dict[str, Any]:
        """Fail, where Home Assistant's JSON encoder asks for it."""
        raise RuntimeError("no dict")


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


def read_string(line: str, start: int) -> tuple[str, int]:
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
    # A space ends the measurement of a line without tags (global tags that replace
    # the preset's with empty values leave none).
    measurement, i = _read_name(line, 0, ", ")
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
            fields[key], i = read_string(line, i + 1)
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
            fields[key], i = read_string(line, i + 1)
        else:
            fields[key], i = _read_number(line, i + 1)
    return measurement, tags, fields, int(line[i + 1 :])


def stored_name(name: str) -> str:
    r"""Return the name InfluxDB 1.x stores for a name the client escaped.

    It keeps the client's escapes of a backslash and of a line break (`\\`, `\n`) as
    they are; core's points get the very same names.
    """
    return name.replace("\\", "\\\\").replace("\n", "\\n")


# ---------------------------------------------------------------------------------------
# Arbitrary state changes written to a real InfluxDB 1.x and read back.


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


def scenarios(preset: str) -> st.SearchStrategy[Scenario]:
    """State changes of three entities under `preset` with any options."""
    return st.builds(
        Scenario,
        preset=st.just(preset),
        options=OPTIONS,
        entity_ids=st.lists(ENTITY_IDS, min_size=3, max_size=3, unique=True),
        metadata=st.lists(METADATA, min_size=3, max_size=3),
        changes=st.lists(
            st.tuples(st.integers(0, 2), STATE_TEXTS, ATTRIBUTES),
            min_size=1,
            max_size=12,
        ),
    )


# The point InfluxDB must store for a state change: from the options, the entity's
# metadata, the new and the previous state and the time; None where no line is written.
type ExpectedPoint = Callable[
    [Mapping[str, Any], EntityMetadata, State, State | None, int], Point | None
]


def written_lines(
    scenario: Scenario, expected: ExpectedPoint
) -> list[tuple[str, Point]]:
    """Encode a scenario's changes; return each line with the point it must give.

    Where `expected` says no point, the encoder must write no line.
    """
    options = scenario.options | {CONF_PRESET: scenario.preset}
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
        point = expected(options, scenario.metadata[index], state, old_state, time)
        if point is None:
            assert line is None
            continue
        assert line is not None
        written.append((line, point))
    return written


def databases_for(
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


def write_and_read(
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
