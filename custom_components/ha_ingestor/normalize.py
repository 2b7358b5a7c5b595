"""Turn a Home Assistant state into one InfluxDB line (the schema is in docs/schema.md)."""

from __future__ import annotations

import math

from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import State

# Line protocol escapes for measurements, and for string field values.
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_STRING_FIELD_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def timestamp_us(timestamp: float) -> int:
    """Microseconds since the epoch: the precision Home Assistant's clock has."""
    return round(timestamp * 1_000_000)


def state_to_line(state: State, time_us: int) -> str:
    """Encode a state as `measurement,domain=..,entity_id=.. value=..|state=".." time`.

    The measurement is the unit of measurement, else the domain. A state that parses as
    a finite number is written as the float field `value`, anything else as the string
    field `state`: each field keeps one type forever.
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
