"""The rich preset's lines, for arbitrary states, into a real InfluxDB 1.x and back.

Every line the encoder makes must be accepted, and what InfluxDB then stores must be
what docs/schema.md says: measurement, tags, field keys, field types, values and
timestamp, by the doc's rules, written out plainly below. (core_compatible's round trip
is in tests/line_protocol/test_core_compatible.py.)
"""

from __future__ import annotations

from collections.abc import Mapping
import datetime as dt
import math
import re
from typing import Any

from homeassistant.core import State
from homeassistant.helpers.json import json_dumps
from hypothesis import HealthCheck, given, settings

from custom_components.ha_ingestor.const import (
    CONF_GLOBAL_TAGS,
    CONF_IGNORE_ATTRIBUTES,
    CONF_IGNORE_ATTRIBUTES_BY_DOMAIN,
    CONF_MEASUREMENT_OVERRIDE,
    CONF_MEASUREMENT_RULE,
    MEASUREMENT_DEVICE_CLASS,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID,
    PRESET_RICH,
)
from custom_components.ha_ingestor.registry.cache import EntityMetadata

from .influxdb_v1_server import InfluxDBv1Server
from .line_protocol.helpers import (
    Fields,
    Point,
    Scenario,
    databases_for,
    scenarios,
    write_and_read,
    written_lines,
)

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
        return (*rich_point(options, metadata, state, old_state), time_us)

    databases = databases_for(written_lines(scenario, expected))
    # Its fields never change type: one database holds every point.
    assert len(databases) <= 1
    for held in databases:
        write_and_read(influxdb, held)
