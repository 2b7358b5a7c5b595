"""Turn a Home Assistant state into one InfluxDB line, per schema preset.

A preset is an `Encoder`; `ENCODERS` names them. The schemas, with real lines, are in
docs/schema.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import math
import re
from types import MappingProxyType
from typing import Any, Final

from homeassistant.components.lock.const import LockState
from homeassistant.components.sun.const import STATE_ABOVE_HORIZON, STATE_BELOW_HORIZON
from homeassistant.const import (
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_CLOSED,
    STATE_HOME,
    STATE_NOT_HOME,
    STATE_OFF,
    STATE_ON,
    STATE_OPEN,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import State

type Encoder = Callable[[State, int], str | None]
"""(state, time in microseconds since the epoch) -> its line, or None: not written."""

PRESET_BASIC: Final = "basic"
PRESET_CORE_COMPATIBLE: Final = "core_compatible"

# Line protocol escapes for measurements, and for string field values.
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_STRING_FIELD_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def timestamp_us(timestamp: float) -> int:
    """Microseconds since the epoch, exactly as `datetime.fromtimestamp` rounds them.

    Rounding `timestamp * 1e6` instead would be off by 1 µs for about one event in
    eight, so the same event would not have the same time as in Home Assistant.
    """
    fraction, seconds = math.modf(timestamp)
    return int(seconds) * 1_000_000 + round(fraction * 1_000_000)


def state_to_line(state: State, time_us: int) -> str:
    """Encode a state as `measurement,domain=..,entity_id=.. value=..|state=".." time`.

    The `basic` preset. The measurement is the unit of measurement, else the domain. A
    state that parses as a finite number is written as the float field `value`,
    anything else as the string field `state`: each field keeps one type forever.
    """
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    measurement = (
        unit.translate(_MEASUREMENT_ESCAPES)
        if isinstance(unit, str) and unit
        else state.domain
    )
    try:
        value = float(state.state)
    except ValueError:
        value = math.nan
    if math.isfinite(value):
        field = f"value={value!r}"
    else:
        field = f'state="{state.state.translate(_STRING_FIELD_ESCAPES)}"'
    # Domain and object id are slugs ([a-z0-9_]), which line protocol takes unescaped.
    return (
        f"{measurement},domain={state.domain},entity_id={state.object_id} "
        f"{field} {time_us}"
    )


# The `core_compatible` preset reproduces Home Assistant's own influxdb integration
# (2026.10: homeassistant/components/influxdb/__init__.py, _generate_event_to_json,
# with its default settings) followed by the influxdb client it writes with (influxdb
# 5.3.2, line_protocol.make_line), byte for byte, so that InfluxDB stores the same names,
# types and values and existing queries keep working. docs/schema.md lists the rules
# and the few places where it deliberately differs.

# States core's event_to_json returns None for.
_CORE_SKIPPED_STATES: Final = frozenset((STATE_UNKNOWN, STATE_UNAVAILABLE, ""))

# helpers.state.state_as_number's words, as the floats core writes for them (it also
# maps `unknown` to 0, but never writes that state). A dict lookup, where calling
# state_as_number would raise and catch a second ValueError for every text state.
_CORE_STATE_NUMBERS: Final[Mapping[str, float]] = dict.fromkeys(
    (STATE_ON, LockState.LOCKED, STATE_ABOVE_HORIZON, STATE_OPEN, STATE_HOME), 1.0
) | dict.fromkeys(
    (STATE_OFF, LockState.UNLOCKED, STATE_BELOW_HORIZON, STATE_CLOSED, STATE_NOT_HOME),
    0.0,
)

# Core's const.RE_DIGIT_TAIL and RE_DECIMAL: a text attribute such as "Version 2.3"
# also gets a float field of its digits. Copied rather than imported from core's
# influxdb package, which a custom integration must not depend on; test_normalize
# checks that they stay equal.
_CORE_DIGIT_TAIL: Final = re.compile(r"^[^\.]*\d+\.?\d+[^\.]*$")
_CORE_NOT_DECIMAL: Final = re.compile(r"[^\d.]+")

# The client's _escape_tag, for the measurement, tag values and field keys. Exactly its
# escapes and no others: InfluxDB 1.x keeps some backslashes in names (`\\` stays two),
# so only the same bytes give the same stored names. A line break becomes the two
# characters `\n`, which InfluxDB stores as they are.
_CORE_NAME_ESCAPES: Final = str.maketrans(
    {"\\": "\\\\", " ": "\\ ", ",": "\\,", "=": "\\=", "\n": "\\n"}
)

# InfluxDB 1.x skips these at the start of a line; a line that then starts with `#`
# is a comment.
_LINE_START_BLANKS: Final = "\t\x00"


def _core_single_line(text: str) -> str:
    """Core's _single_line: line breaks become spaces (line protocol has no escape).

    Every character str.splitlines splits at is unprintable, so a printable text (the
    usual case) is returned as it is, without building a list.
    """
    return text if text.isprintable() else " ".join(text.splitlines())


def _core_name(name: str) -> str:
    # Attribute keys are nearly always identifiers, which need no escape: no copy.
    return name if name.isidentifier() else name.translate(_CORE_NAME_ESCAPES)


def _core_unit_measurement(unit: Any) -> str | None:
    """Return the escaped measurement core writes for a unit, if InfluxDB can store it.

    None where core's line would be a comment, refused, or read with a wrong measurement.
    """
    # Core single-lines a text unit; the client turns anything else into text.
    name = _core_name(_core_single_line(unit) if isinstance(unit, str) else str(unit))
    start = name.lstrip(_LINE_START_BLANKS)
    # A trailing backslash would escape the comma after it: InfluxDB then reads the
    # tags as part of the measurement.
    if not start or start[0] == "#" or name[-1] == "\\":
        return None
    return name


def state_to_core_line(state: State, time_us: int) -> str | None:
    """Encode a state as Home Assistant's influxdb integration writes it by default.

    The measurement is the unit of measurement, else the entity id; the tags are
    `domain` and `entity_id` (the object id); every attribute is a field; the state is
    the float field `value` when it is a number, the string field `state` when it is
    not, and both for on/off and the other words state_as_number knows.
    """
    if state.state in _CORE_SKIPPED_STATES:
        return None
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    measurement = None if unit in (None, "") else _core_unit_measurement(unit)
    # Core leaves the unit out of the fields when it is the measurement.
    fields = _core_fields(state, skip_unit=measurement is not None)
    if measurement is None:
        measurement = _core_name(_core_single_line(state.entity_id))
    if not (field_set := _core_field_set(fields)):
        return None
    # Valid entity ids are slugs, but `$` in their pattern lets the object id end in a
    # line break, which the client escapes; the domain cannot.
    return (
        f"{measurement},domain={state.domain},"
        f"entity_id={_core_name(state.object_id)} {field_set} {time_us}"
    )


def _core_fields(state: State, *, skip_unit: bool) -> dict[str, float | str]:
    """Build the fields of core's event_to_json, in its order of assignment."""
    text = state.state
    fields: dict[str, float | str]
    try:
        fields = {"value": float(text)}
    except ValueError:
        fields = {"state": _core_single_line(text)}
        if (number := _CORE_STATE_NUMBERS.get(text)) is not None:
            fields["value"] = number

    for key, value in state.attributes.items():
        if skip_unit and key == ATTR_UNIT_OF_MEASUREMENT:
            continue
        field = f"{key}_" if key in fields else key
        try:
            number = float(value)
        except ValueError, TypeError:
            string = _core_single_line(str(value))
            fields[f"{field}_str"] = string
            if _CORE_DIGIT_TAIL.match(string) is None:
                continue
            number = float(_CORE_NOT_DECIMAL.sub("", string))
        except OverflowError:
            # An int beyond float's range, which core does not catch (its writer
            # thread stops); it is the infinity core drops below.
            number = math.inf
        # Core assigns, then deletes NaN and infinity (which InfluxDB cannot store): an
        # earlier field of that name is gone too.
        if math.isfinite(number):
            fields[field] = number
        else:
            fields.pop(field, None)

    # InfluxDB 1.x silently drops a field named `time`; core renames it.
    if "time" in fields:
        field = "time_"
        while field in fields:
            field += "_"
        fields[field] = fields.pop("time")
    return fields


def _core_field_set(fields: dict[str, float | str]) -> str:
    """Write the fields as the client does, sorted by key; empty if none is left.

    The same order gives the same stored names: InfluxDB strips blanks from the start
    of the first field key only.
    """
    rendered = []
    for key in sorted(fields):
        value = fields[key]
        # The client leaves out empty keys. A key ending in a backslash escapes its
        # `=`, which InfluxDB refuses.
        if not key or key[-1] == "\\":
            continue
        if isinstance(value, str):
            # Most texts hold neither: two scans, and no copy.
            if "\\" in value or '"' in value:
                value = value.translate(_STRING_FIELD_ESCAPES)
            rendered.append(f'{_core_name(key)}="{value}"')
        # A state of NaN or infinity stays in core's `value`: the 2.x client leaves it
        # out, while the 1.x client writes it and InfluxDB refuses the whole batch.
        elif math.isfinite(value):
            rendered.append(f"{_core_name(key)}={value!r}")
    return ",".join(rendered)


ENCODERS: Final[Mapping[str, Encoder]] = MappingProxyType(
    {PRESET_BASIC: state_to_line, PRESET_CORE_COMPATIBLE: state_to_core_line}
)
