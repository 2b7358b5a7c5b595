"""The `rich` preset: registry context as tags, the change itself, typed fields.

The entity's registry context (area, floor, device, labels, device class, unit) goes
into tags, the change itself (previous state, how long it lasted, its context) into
fields, and every attribute into a field whose key tells its type, so that no field
ever changes type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import datetime as dt
import math
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_CLASS, ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import Context, State
from homeassistant.helpers.json import json_dumps
from homeassistant.util.read_only_dict import ReadOnlyDict

from ..const import (
    MEASUREMENT_DEVICE_CLASS,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID,
    NO_VALUE_STATES,
)
from ..registry.cache import EntityMetadata, RegistryCache
from ..utf8 import utf8_text
from .encoder import (
    PresetEncoder,
    SkippedValues,
    TextFields,
    kept_attributes,
    object_text,
    remember,
    state_number,
)
from .escaping import ESCAPING_BACKSLASH, TIME_KEY, single_line, string_field

# Fields the preset writes itself, and its tags: an attribute's float field never takes
# these names (its text field cannot, ending in `_str`).
_RICH_STATE_FIELDS: Final = (
    "state",
    "value",
    "previous_state",
    "duration_in_state_s",
    "context_id",
    "context_parent_id",
    "context_user_id",
)
_RICH_TAGS: Final = (
    "area",
    "device",
    "device_class",
    "domain",
    "entity_id",
    "floor",
    "labels",
    "unit",
)
_RICH_RESERVED: Final = frozenset((*_RICH_STATE_FIELDS, *_RICH_TAGS, TIME_KEY))

# Attribute values rich writes as floats, and as ISO 8601 texts (datetimes are dates).
_RICH_NUMBERS: Final = (int, float)
_RICH_DATES_AND_TIMES: Final = (dt.date, dt.time)

# A state's text escaped as a string field value (for `state` and `previous_state`),
# its `value` field preceded by a comma or empty if not written, and 1 if the value is
# NaN or infinite (left out), else 0.
type _RichStateFields = tuple[str, str, int]

# An attribute's escaped float and text field keys, and the fields rendered so far for
# the texts it held (TextFields).
type _RichFieldKeys = tuple[str, str, dict[str, str]]


@dataclass(slots=True)
class _RichSeries:
    """How an entity's lines start, while its registry entry, unit and class hold."""

    metadata: EntityMetadata
    unit: object
    """The unit of measurement attribute's value."""
    device_class: object
    """The device class attribute's value."""
    tag_texts: tuple[str | None, ...]
    """The tag attributes' texts (None: the state has no such attribute)."""
    prefix: str
    """The escaped measurement and tags."""
    skipped: frozenset[str]
    """Attributes not written as fields."""
    attributes: ReadOnlyDict[str, Any] | None = None
    """The attributes `attribute_fields` were rendered from: kept, so that no other
    object can take its id."""
    attribute_fields: str = ""
    """Each preceded by a comma."""
    attribute_non_finite: int = 0
    """The NaN and infinite values they left out."""


# Escapes in names (measurement, tag keys and values, field keys). A backslash is
# written as it is: InfluxDB 1.x keeps it, where `\\` would be stored as two.
_RICH_NAME_ESCAPES: Final = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})


def _rich_name(text: str) -> str:
    """Return a name escaped so that InfluxDB stores it as docs/schema.md says.

    Line breaks become spaces; a backslash InfluxDB would read as an escape (before a
    comma, space, `=` or double quote, or at the end) becomes a slash.
    """
    text = single_line(text)
    if "\\" in text:
        text = ESCAPING_BACKSLASH.sub("/", text)
    return text.translate(_RICH_NAME_ESCAPES)


def _rich_measurement(text: str) -> str | None:
    """Return the escaped measurement for a text, None if it cannot be one.

    InfluxDB drops tabs and NULs at the start of a line, and takes one starting with
    `#` for a comment.
    """
    name = _rich_name(text)
    if not name or name[0] in "#\t\x00":
        return None
    return name


def _rich_value(value: object) -> float | str | None:
    """Return an attribute value as rich writes it: a float, a text, or None (no field).

    One rule per type, so that a field never changes type: numbers and booleans are
    floats, everything else text.
    """
    # The most common types first, without walking their base classes.
    if type(value) is str or type(value) is float:
        return value
    if isinstance(value, _RICH_NUMBERS):  # booleans too: 1.0 and 0.0
        try:
            return float(value)
        except OverflowError:  # an int beyond float's range
            return math.inf
    if isinstance(value, str):
        return str.__str__(value)  # the text itself, also of a str subclass or enum
    if isinstance(value, _RICH_DATES_AND_TIMES):
        return value.isoformat()
    return None if value is None else _json_text(value)


def _context_fields(context: Context) -> str:
    """Render a context's fields, each preceded by a comma."""
    fields = f',context_id="{_context_id(context.id)}"'
    if context.parent_id is not None:
        fields += f',context_parent_id="{_context_id(context.parent_id)}"'
    if context.user_id is not None:
        fields += f',context_user_id="{_context_id(context.user_id)}"'
    return fields


def _context_id(text: str) -> str:
    # Home Assistant's ids are ULIDs and hex: letters and digits need no escape.
    return text if text.isalnum() else string_field(text)


def _json_text(value: object) -> str:
    """Return lists, dicts and other objects as Home Assistant shows them, else str()."""
    try:
        return json_dumps(value)
    except Exception:  # noqa: BLE001 - TypeError, or an object's own as_dict failing
        return object_text(value)


class RichEncoder(PresetEncoder):
    """Registry context as tags, typed fields that never change type."""

    def __init__(
        self,
        options: Mapping[str, Any],
        registry: RegistryCache,
        skipped: SkippedValues,
    ) -> None:
        """Encode with the options' rules and `registry`'s metadata."""
        super().__init__(options, skipped)
        self._registry = registry
        # An override that cannot be a measurement is treated as none.
        self._override_measurement = (
            _rich_measurement(self._override) if self._override else None
        )
        # They replace the preset's tags of the same name; an empty one, or `time`
        # (which InfluxDB refuses), is left out.
        self._rich_tags = {
            name: _rich_name(value)
            for key, value in self._global_tags.items()
            if (name := _rich_name(key)) != TIME_KEY
        }
        self._default = (
            _rich_measurement(self._default_measurement)
            if self._default_measurement
            else None
        )
        # Attribute key -> escaped keys of its float and text fields, and the text
        # fields rendered so far for them; None: not written.
        self._field_keys: dict[object, _RichFieldKeys | None] = {}
        self._text_fields = TextFields()
        self._state_fields: dict[str, _RichStateFields] = {}
        # One entry per entity ever written: as many as Home Assistant has entities.
        self._series: dict[str, _RichSeries] = {}
        # The last context's fields: one service call often changes several entities.
        self._context: Context | None = None
        self._context_fields = ""

    def __call__(
        self, new_state: State, old_state: State | None, time_us: int
    ) -> str | None:
        """Return the rich line of a state change."""
        if self._precision_us > 1:
            time_us -= time_us % self._precision_us
        attributes = new_state.attributes
        unit = attributes.get(ATTR_UNIT_OF_MEASUREMENT)
        device_class = attributes.get(ATTR_DEVICE_CLASS)
        metadata = self._registry.get(new_state.entity_id)
        series = self._series.get(new_state.entity_id)
        if (
            series is None
            # The registry cache keeps unchanged metadata the same object.
            or (metadata is not series.metadata and metadata != series.metadata)
            or unit != series.unit
            or device_class != series.device_class
            or (
                self._tag_attributes
                and attributes is not series.attributes
                and self._tag_texts(attributes) != series.tag_texts
            )
        ):
            series = self._new_series(new_state, metadata, unit, device_class)

        text = new_state.state
        state_fields = self._state_fields
        try:
            escaped, value, non_finite = state_fields[text]
        except KeyError:
            escaped, value, non_finite = self._read_state(text)
        if text in NO_VALUE_STATES:
            return f'{series.prefix} state="{escaped}" {time_us}'
        if non_finite:
            self._skipped.non_finite_values_skipped += non_finite
        line = f'{series.prefix} state="{escaped}"{value}'
        # Only a change of state ends the previous one; an attribute change does not.
        if old_state is not None and (previous := old_state.state) != text:
            try:
                previous_escaped = state_fields[previous][0]
            except KeyError:
                previous_escaped = self._read_state(previous)[0]
            lasted = new_state.last_changed_timestamp - old_state.last_changed_timestamp
            line += (
                f',previous_state="{previous_escaped}",duration_in_state_s={lasted!r}'
            )
        context = new_state.context
        if context is not self._context:
            self._context = context
            self._context_fields = _context_fields(context)
        line += self._context_fields
        return f"{line}{self._attribute_fields(attributes, series)} {time_us}"

    def _attribute_fields(
        self, attributes: Mapping[str, Any], series: _RichSeries
    ) -> str:
        """Render the attributes' fields, each preceded by a comma.

        Counts the NaN and infinite values left out, also of fields rendered before.
        """
        if attributes is series.attributes:
            if series.attribute_non_finite:
                self._skipped.non_finite_values_skipped += series.attribute_non_finite
            return series.attribute_fields
        skipped = series.skipped
        field_keys = self._field_keys
        counted = self._skipped
        counted_before = counted.non_finite_values_skipped
        rendered = ""
        for key, value in attributes.items():
            if key in skipped:
                continue
            try:
                keys = field_keys[key]
            except KeyError:
                keys = self._new_field_keys(key)
            if keys is None:
                continue
            number_key, text_key, fields_by_text = keys
            # Texts are the most common attributes, and most recur: their fields are
            # rendered once.
            if type(value) is not str:
                rendered += self._typed_fields(number_key, text_key, value)
            elif (fields := fields_by_text.get(value)) is not None:
                rendered += fields
            else:
                rendered += self._text_fields.keep(
                    fields_by_text,
                    value,
                    self._typed_fields(number_key, text_key, value),
                )
        if (kept := kept_attributes(attributes)) is not None:
            series.attributes = kept
            series.attribute_fields = rendered
            series.attribute_non_finite = (
                counted.non_finite_values_skipped - counted_before
            )
        return rendered

    def _typed_fields(self, number_key: str, text_key: str, value: object) -> str:
        """Render the field of an attribute value, if it has one.

        Counts a NaN or infinity, which it leaves out.
        """
        typed = _rich_value(value)
        if typed is None:
            return ""
        if isinstance(typed, str):
            return f',{text_key}="{string_field(typed)}"'
        if math.isfinite(typed):
            return f",{number_key}={typed!r}"
        self._skipped.non_finite_values_skipped += 1
        return ""

    def _read_state(self, text: str) -> _RichStateFields:
        """Render a state's text and value field, and remember them: most recur."""
        value = ""
        non_finite = 0
        if (number := state_number(text)) is not None:
            if math.isfinite(number):
                value = f",value={number!r}"
            else:
                non_finite = 1
        return remember(
            self._state_fields, text, (string_field(text), value, non_finite)
        )

    def _tag_text(self, value: object) -> str:
        """Return a tag attribute's value as its field would hold it, as text."""
        typed = value if type(value) is str else _rich_value(value)
        if typed is None or isinstance(typed, str):
            return typed or ""
        return repr(typed) if math.isfinite(typed) else ""

    def _new_field_keys(self, key: object) -> _RichFieldKeys | None:
        """Return the escaped float and text field keys of an attribute key.

        A text field's key is the attribute key and `_str`. A float field's key is the
        attribute key, with `_` appended where it ends in `_str` (it could be a text
        field's key), is one of the preset's names, or ends in `_` (so that no other
        key gets the same one) or a backslash (which would escape the `=` after it).
        So no two attributes share a field. Keys that InfluxDB cannot store as they are
        (empty, with a line break or an escaping backslash) are not written.
        """
        keys = None
        if isinstance(key, str) and key.splitlines() == [key]:
            name = utf8_text(key)
            number_name = name
            if name in _RICH_RESERVED or name.endswith(("_", "_str", "\\")):
                number_name += "_"
            if not ESCAPING_BACKSLASH.search(number_name):
                number_key = number_name.translate(_RICH_NAME_ESCAPES)
                text_key = f"{name}_str".translate(_RICH_NAME_ESCAPES)
                keys = (
                    number_key,
                    text_key,
                    self._text_fields.for_field_keys(text_key),
                )
        return remember(self._field_keys, key, keys)

    def _new_series(
        self,
        state: State,
        metadata: EntityMetadata,
        unit: object,
        device_class: object,
    ) -> _RichSeries:
        # The registry's device class is the user's choice; entities without a
        # registry entry only have the attribute.
        entity_device_class = metadata.device_class or (
            device_class if isinstance(device_class, str) else None
        )
        text_unit = unit if isinstance(unit, str) else None
        tags = {
            name: _rich_name(value)
            for name, value in (
                ("area", metadata.area),
                ("device", metadata.device),
                ("device_class", entity_device_class),
                ("domain", state.domain),
                ("entity_id", state.entity_id),
                ("floor", metadata.floor),
                ("labels", ",".join(metadata.labels)),
                ("unit", text_unit),
            )
            if value
        }
        tag_texts = self._tag_texts(state.attributes) if self._tag_attributes else ()
        for key, text in zip(self._tag_attributes, tag_texts, strict=True):
            if text is not None and (name := _rich_name(key)) != TIME_KEY:
                tags[name] = _rich_name(text)
        tags |= self._rich_tags
        # Line protocol has no empty tag values: a tag without a value is left out.
        tag_set = [
            f"{key}={value}" for key, value in sorted(tags.items()) if key and value
        ]
        measurement = self._measurement(state, text_unit, entity_device_class)
        series = _RichSeries(
            metadata,
            unit,
            device_class,
            tag_texts,
            ",".join((measurement, *tag_set)),
            # They are tags.
            self._ignored_for(state.entity_id, state.domain).union(self._tag_attributes)
            | {ATTR_UNIT_OF_MEASUREMENT, ATTR_DEVICE_CLASS},
        )
        self._series[state.entity_id] = series
        return series

    def _measurement(
        self, state: State, unit: str | None, device_class: str | None
    ) -> str:
        """Return the escaped measurement: the rule's, else the default, else the domain."""
        if (own := self._override_for(state.entity_id, state.domain)) and (
            name := _rich_measurement(own)
        ):
            return name
        if self._override_measurement is not None:
            return self._override_measurement
        chosen: str | None
        if self._rule == MEASUREMENT_ENTITY_ID:
            chosen = state.entity_id
        elif self._rule == MEASUREMENT_DOMAIN_DEVICE_CLASS:
            chosen = device_class and f"{state.domain}__{device_class}"
        elif self._rule == MEASUREMENT_DEVICE_CLASS:
            chosen = device_class
        else:
            chosen = unit
        return (
            (chosen and _rich_measurement(chosen))
            or self._default
            or _rich_name(state.domain)
        )
