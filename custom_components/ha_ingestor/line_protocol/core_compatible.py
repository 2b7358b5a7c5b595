"""The `core_compatible` preset: the lines Home Assistant's own influxdb integration writes.

It reproduces core's integration (2026.10: homeassistant/components/influxdb/__init__.py,
_generate_event_to_json) followed by the influxdb client it writes with (influxdb 5.3.2,
line_protocol.make_line), byte for byte, so that InfluxDB stores the same names, types
and values and existing queries keep working. The options are core's: measurement_attr,
override_measurement, default_measurement, tags, tags_attributes, ignore_attributes,
component_config, component_config_domain and component_config_glob (their
override_measurement and ignore_attributes), and precision. docs/schema.md lists the
rules and the few places where it deliberately differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import math
import re
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_CLASS, ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import State
from homeassistant.util.read_only_dict import ReadOnlyDict

from ..const import (
    MEASUREMENT_DEVICE_CLASS,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID,
    MEASUREMENT_UNIT,
    NO_VALUE_STATES,
)
from ..utf8 import utf8_text
from .encoder import (
    STATE_NUMBERS,
    PresetEncoder,
    SkippedValues,
    TextFields,
    kept_attributes,
    object_text,
    remember,
    state_number,
)
from .escaping import (
    ESCAPING_BACKSLASH,
    LINE_START_BLANKS,
    STRING_FIELD_ESCAPES,
    TIME_KEY,
    single_line,
    string_field,
)

# The attribute each of core's measurement_attr values reads the measurement from.
_CORE_MEASUREMENT_ATTRIBUTES: Final[Mapping[str, str | None]] = {
    MEASUREMENT_UNIT: ATTR_UNIT_OF_MEASUREMENT,
    MEASUREMENT_DOMAIN_DEVICE_CLASS: ATTR_DEVICE_CLASS,
    MEASUREMENT_DEVICE_CLASS: ATTR_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID: None,
}

# Core's const.RE_DECIMAL: a text attribute such as "Version 2.3" also gets a float
# field of its digits (when _has_core_digit_tail). Copied rather than imported from
# core's influxdb package, which a custom integration must not depend on;
# tests/line_protocol/test_core_compatible.py checks that it stays equal.
_CORE_NOT_DECIMAL: Final = re.compile(r"[^\d.]+")
_TWO_DIGITS: Final = re.compile(r"\d\d")

# The client's _escape_tag, for the measurement, tag keys and values and field keys.
# Exactly its escapes and no others: InfluxDB 1.x keeps some backslashes in names (`\\`
# stays two), so only the same bytes give the same stored names. A line break becomes
# the two characters `\n`, which InfluxDB stores as they are.
_CORE_NAME_ESCAPES: Final = str.maketrans(
    {"\\": "\\\\", " ": "\\ ", ",": "\\,", "=": "\\=", "\n": "\\n"}
)

# Types of attribute values (not their subclasses, which may convert) that float()
# refuses.
_NEVER_FLOATS: Final = frozenset((list, tuple, dict, type(None)))

# What core writes for an attribute: its float field, or None; and its text field
# (`key_str`), or None.
type _CoreReading = tuple[float | None, str | None]

# A state's own fields as core writes them, each preceded by a comma, empty if not
# written: `state`, `value`; and 1 if the value is NaN or infinite (left out), else 0.
type _CoreStateFields = tuple[str, str, int]

# Attribute keys whose fields core renames: its own fields of the state, and `time`.
_CORE_RENAMED_KEYS: Final = frozenset(("state", "value", TIME_KEY))

# Key sequences whose layout an encoder keeps per set of attributes left out; past
# this many, the memory is emptied and filled anew.
_LAYOUT_CACHE_SIZE: Final = 1_000

# Where an attribute's fields go: its key, then the key of its float field and of its
# text field (`key_str`) where they come next in the sorted field set, else None, and
# the fields rendered so far for the texts of those field keys (TextFields). Both
# fields of a key are nearly always next to each other: one slot holds both. Another
# key may sort between them (`effect`, `effect_list`, `effect_str`): each then gets a
# slot of its own.
type _CoreSlot = tuple[str, str | None, str | None, dict[str, str]]

# An entity's attribute fields, rendered: those sorted before core's `state` field,
# those between `state` and `value`, and those after `value`, each preceded by a comma.
type _CoreAttributeFields = tuple[str, str, str]

# Layouts by attribute key sequence (None: the general way), for one set of attributes
# left out.
type _CoreLayouts = dict[tuple[str, ...], _CoreLayout | None]


@dataclass(slots=True)
class _CoreSeries:
    """How an entity's lines start, while the measurement's attribute keeps its value.

    (And the tag attributes theirs.)
    """

    attribute: str | None
    """The attribute the measurement is read from, None if none."""
    source: object
    """Its value, None if none."""
    tag_texts: tuple[str | None, ...]
    """The tag attributes' texts (None: the state has no such attribute)."""
    prefix: str
    """The escaped measurement and tags."""
    skipped: frozenset[str]
    """Attributes not written as fields."""
    layouts: _CoreLayouts
    """Shared by the series that leave out the same attributes."""
    attributes: ReadOnlyDict[str, Any] | None = None
    """The attributes `attribute_fields` were rendered from: kept, so that no other
    object can take its id."""
    attribute_fields: _CoreAttributeFields = ("", "", "")
    attribute_non_finite: int = 0
    """The NaN and infinite values they left out."""


@dataclass(frozen=True, slots=True)
class _CoreLayout:
    """Where the fields of one sequence of attribute keys go, in the client's order.

    Only for keys whose fields cannot collide: identifiers (no escape, none empty),
    none of them `state`, `value` or `time`, and no `x` beside an `x_str`. Then core
    neither renames nor overwrites a field, and every field has its place in the sorted
    field set whatever the values: only whether it is written depends on them.
    """

    before_state: tuple[_CoreSlot, ...]
    before_value: tuple[_CoreSlot, ...]
    after_value: tuple[_CoreSlot, ...]


def _core_layout(
    keys: tuple[str, ...], skipped: frozenset[str], text_fields: TextFields
) -> _CoreLayout | None:
    """Return the layout of attribute keys, None where core's fields could collide."""
    read = [key for key in keys if key not in skipped]
    written = frozenset(read)
    if (
        not all(isinstance(key, str) and key.isidentifier() for key in read)
        or not written.isdisjoint(_CORE_RENAMED_KEYS)
        or any(f"{key}_str" in written for key in read)
    ):
        return None
    fields = sorted(
        (field_key, key, is_text)
        for key in read
        for field_key, is_text in ((key, False), (f"{key}_str", True))
    )
    # Before core's `state` field, between `state` and `value`, after `value`: each
    # attribute key, and its float and text field keys.
    segments: tuple[list[tuple[str, str | None, str | None]], ...] = ([], [], [])
    for field_key, key, is_text in fields:
        segment = segments[(field_key > "state") + (field_key > "value")]
        if not is_text:
            segment.append((key, field_key, None))
        elif segment and segment[-1][0] == key:  # right after its float field
            segment[-1] = (key, segment[-1][1], field_key)
        else:
            segment.append((key, None, field_key))
    before_state, before_value, after_value = (
        tuple((*slot, text_fields.for_field_keys(slot[1:])) for slot in segment)
        for segment in segments
    )
    return _CoreLayout(before_state, before_value, after_value)


def _core_tag_kept(key: str, text: str) -> bool:
    """Whether InfluxDB takes a point with this tag (the text made one line).

    It refuses a tag key `time`, and a key or value ending in a backslash, which
    escapes the delimiter after it.
    """
    return key != TIME_KEY and not key.endswith("\\") and not text.endswith("\\")


def _core_name(name: str) -> str:
    # Attribute keys are nearly always identifiers, which need no escape: no copy.
    if name.isidentifier():
        return name
    return utf8_text(name).translate(_CORE_NAME_ESCAPES)


def _core_measurement(value: object) -> str | None:
    """Return the escaped measurement core writes for a value, if InfluxDB keeps it.

    None where core's line would be a comment, refused, stored under another
    measurement, or stored where no query finds it.
    """
    # Core single-lines a text; the client turns anything else into text.
    text = single_line(value) if isinstance(value, str) else object_text(value)
    name = _core_name(text)
    start = name.lstrip(LINE_START_BLANKS)
    if not start or start[0] == "#" or ESCAPING_BACKSLASH.search(text):
        return None
    return name


def core_measurement_kept(text: str) -> bool:
    """Whether InfluxDB keeps core's points under this measurement, findable.

    Where not, this preset writes them as if the measurement were not set.
    """
    return _core_measurement(text) is not None


def core_tag_kept(key: str, value: str) -> bool:
    """Whether InfluxDB takes core's points with this tag; this preset leaves it out."""
    return _core_tag_kept(key, single_line(value))


def _has_core_digit_tail(text: str) -> bool:
    r"""Return whether core's RE_DIGIT_TAIL, `^[^\.]*\d+\.?\d+[^\.]*$`, matches a text.

    It does when the text has no dot and two digits in a row, or one dot with a digit
    on each side. The pattern itself backtracks for a time quadratic in the text's
    length (a tenth of a second for the text of a 3,000 character list of floats):
    too long for the event loop. tests/line_protocol/test_core_compatible.py checks
    that both agree.
    """
    match text.count("."):
        case 0:
            return _TWO_DIGITS.search(text) is not None
        case 1:
            before, _, after = text.partition(".")
            return before[-1:].isdecimal() and after[:1].isdecimal()
    return False


def _core_text(text: str) -> _CoreReading:
    """Core's reading of a text float() refuses: the text, and maybe its digits."""
    string = single_line(text)
    if not _has_core_digit_tail(string):
        return None, string
    return float(_CORE_NOT_DECIMAL.sub("", string)), string


def _core_reading(value: object) -> _CoreReading:
    """Core's reading of an attribute value that is not a text."""
    # float() refuses these for sure: no exception to raise and catch.
    if type(value) in _NEVER_FLOATS:
        return _core_text(object_text(value))
    try:
        return float(value), None  # type: ignore[arg-type]
    except OverflowError:
        # An int beyond float's range, which core does not catch (its writer thread
        # stops); it is the infinity core leaves out.
        return math.inf, None
    except Exception:  # noqa: BLE001 - ValueError, TypeError, or an object's own
        return _core_text(object_text(value))


class CoreCompatibleEncoder(PresetEncoder):
    """Home Assistant's influxdb integration's lines, with its options."""

    def __init__(self, options: Mapping[str, Any], skipped: SkippedValues) -> None:
        """Encode with the options' rules; count left-out values in `skipped`."""
        super().__init__(options, skipped)
        # An override InfluxDB could not keep is treated as none.
        self._override_measurement = (
            _core_measurement(self._override) if self._override else None
        )
        # Core's tags replace its own of the same name. Empty ones the client leaves
        # out; those InfluxDB would refuse with the point are left out here.
        self._core_tags = {
            key: text
            for key, value in self._global_tags.items()
            if _core_tag_kept(key, text := single_line(value))
        }
        self._default = (
            _core_measurement(self._default_measurement)
            if self._default_measurement
            else None
        )
        self._texts: dict[str, _CoreReading] = {}
        self._text_fields = TextFields()
        self._state_fields: dict[str, _CoreStateFields] = {}
        # One entry per entity ever written: as many as Home Assistant has entities.
        self._series: dict[str, _CoreSeries] = {}
        # By the attributes left out: one per domain and measurement attribute at most.
        self._layouts: dict[frozenset[str], _CoreLayouts] = {}

    def __call__(
        self, new_state: State, old_state: State | None, time_us: int
    ) -> str | None:
        """Return the line core would write for `new_state`, or None."""
        text = new_state.state
        if not text:  # core writes nothing for the empty state
            return None
        if self._precision_us > 1:
            time_us -= time_us % self._precision_us
        attributes = new_state.attributes
        series = self._series.get(new_state.entity_id)
        if series is None or (
            # The same attributes object as the fields were last rendered from has
            # the same measurement and tags.
            attributes is not series.attributes
            and self._series_changed(series, attributes)
        ):
            series = self._new_series(new_state)
        if text in NO_VALUE_STATES:
            return f'{series.prefix} state="{text}" {time_us}'
        attribute_fields = self._attribute_fields(attributes, series)
        if attribute_fields is None:
            field_set = self._field_set(self._fields(new_state, series.skipped))
        else:
            field_set = self._laid_out_field_set(text, attribute_fields)
        if field_set:
            return f"{series.prefix} {field_set} {time_us}"
        return None

    def _series_changed(
        self, series: _CoreSeries, attributes: Mapping[str, Any]
    ) -> bool:
        """Whether the attributes give the entity another measurement or other tags."""
        if (attribute := series.attribute) is not None:
            source = attributes.get(attribute)
            # The type too: 5 and 5.0 are equal but give measurements "5" and "5.0".
            if type(source) is not type(series.source) or (
                source is not series.source and source != series.source
            ):
                return True
        return bool(self._tag_attributes) and (
            self._tag_texts(attributes) != series.tag_texts
        )

    def _attribute_fields(
        self, attributes: Mapping[str, Any], series: _CoreSeries
    ) -> _CoreAttributeFields | None:
        """Render the attributes' fields by their layout; None if they have none.

        Counts the NaN and infinite values left out, also of fields rendered before.
        """
        if attributes is series.attributes:
            if series.attribute_non_finite:
                self._skipped.non_finite_values_skipped += series.attribute_non_finite
            return series.attribute_fields
        keys = tuple(attributes)
        try:
            layout = series.layouts[keys]
        except KeyError:
            layout = remember(
                series.layouts,
                keys,
                _core_layout(keys, series.skipped, self._text_fields),
                _LAYOUT_CACHE_SIZE,
            )
        if layout is None:
            return None
        skipped = self._skipped
        skipped_before = skipped.non_finite_values_skipped
        attribute_fields = (
            self._rendered_fields(layout.before_state, attributes),
            self._rendered_fields(layout.before_value, attributes),
            self._rendered_fields(layout.after_value, attributes),
        )
        if (kept := kept_attributes(attributes)) is not None:
            series.attributes = kept
            series.attribute_fields = attribute_fields
            series.attribute_non_finite = (
                skipped.non_finite_values_skipped - skipped_before
            )
        return attribute_fields

    def _rendered_fields(
        self, slots: tuple[_CoreSlot, ...], attributes: Mapping[str, Any]
    ) -> str:
        """Write these slots' fields as the client does, each preceded by a comma."""
        rendered = ""
        for key, number_key, text_key, fields_by_text in slots:
            value = attributes[key]
            # Texts are the most common attributes, and most recur: their fields
            # are rendered once.
            if type(value) is not str:
                rendered += self._slot_fields(
                    number_key, text_key, _core_reading(value)
                )
            elif (fields := fields_by_text.get(value)) is not None:
                rendered += fields
            else:
                reading = self._reading(value)
                fields = self._slot_fields(number_key, text_key, reading)
                # A NaN or infinity is counted at every change.
                if reading[0] is None or math.isfinite(reading[0]):
                    self._text_fields.keep(fields_by_text, value, fields)
                rendered += fields
        return rendered

    def _slot_fields(
        self, number_key: str | None, text_key: str | None, reading: _CoreReading
    ) -> str:
        """Write a slot's fields of core's reading of its value."""
        number, string = reading
        rendered = ""
        if number is not None and number_key is not None:
            if math.isfinite(number):
                rendered = f",{number_key}={number!r}"
            else:
                self._skipped.non_finite_values_skipped += 1
        if string is not None and text_key is not None:
            if "\\" in string or '"' in string:
                string = string.translate(STRING_FIELD_ESCAPES)
            rendered += f',{text_key}="{string}"'
        return rendered

    def _laid_out_field_set(
        self, text: str, attribute_fields: _CoreAttributeFields
    ) -> str:
        """Return what _field_set would of the state and its rendered attribute fields.

        A NaN or infinite state stays in core's `value` for the client to leave out:
        it is counted.
        """
        before_state, before_value, after_value = attribute_fields
        try:
            state, value, non_finite = self._state_fields[text]
        except KeyError:
            state, value, non_finite = self._read_state(text)
        if non_finite:
            self._skipped.non_finite_values_skipped += non_finite
        # Every part starts with a comma: the first one is not written.
        return f"{before_state}{state}{before_value}{value}{after_value}"[1:]

    def _read_state(self, text: str) -> _CoreStateFields:
        """Render a state's own fields, and remember them: most states recur."""
        number = state_number(text)
        state = value = ""
        non_finite = 0
        # A word such as `on` is both.
        if number is None or text in STATE_NUMBERS:
            state = f',state="{string_field(text)}"'
        if number is not None:
            if math.isfinite(number):
                value = f",value={number!r}"
            else:
                non_finite = 1
        return remember(self._state_fields, text, (state, value, non_finite))

    def _reading(self, value: object) -> _CoreReading:
        """Core's reading of an attribute value."""
        if type(value) is str:
            return self._texts.get(value) or self._read_text(value)
        return _core_reading(value)

    def _tag_text(self, value: object) -> str:
        """Return the client's text of a tag value: core makes a text one line.

        None is an empty text (no tag), where a field would hold "None".
        """
        if isinstance(value, str):
            return single_line(value)
        if value is None:
            return ""
        if isinstance(value, bytes):  # the client decodes them
            return value.decode("utf-8", "replace")
        return object_text(value)

    def _new_series(self, state: State) -> _CoreSeries:
        attributes = state.attributes
        entity_id, domain = state.entity_id, state.domain
        override = self._override_measurement
        if own := self._override_for(entity_id, domain):
            # An entity's own override InfluxDB could not keep is treated as none.
            override = _core_measurement(own) or override
        attribute = (
            None if override is not None else _CORE_MEASUREMENT_ATTRIBUTES[self._rule]
        )
        source = None if attribute is None else attributes.get(attribute)
        measurement, measured_attribute = self._measurement(state, source, override)
        tag_texts = self._tag_texts(attributes) if self._tag_attributes else ()
        tags = {
            "domain": domain,
            "entity_id": state.object_id,
            # Those InfluxDB would refuse the point for are left out.
            **{
                key: text
                for key, text in zip(self._tag_attributes, tag_texts, strict=True)
                if text is not None and _core_tag_kept(key, text)
            },
            **self._core_tags,
        }
        # Sorted by key, as the client writes them; it leaves out empty ones.
        tag_set = [
            f"{_core_name(key)}={_core_name(value)}"
            for key, value in sorted(tags.items())
            if key and value
        ]
        # Tag attributes are never fields.
        skipped = self._ignored_for(entity_id, domain).union(self._tag_attributes)
        if measured_attribute is not None:
            skipped = skipped | {measured_attribute}
        series = _CoreSeries(
            attribute,
            source,
            tag_texts,
            ",".join((measurement, *tag_set)),
            skipped,
            self._layouts.setdefault(skipped, {}),
        )
        self._series[entity_id] = series
        return series

    def _measurement(
        self, state: State, source: object, override: str | None
    ) -> tuple[str, str | None]:
        """Core's escaped measurement, and the attribute it leaves out of the fields.

        Where InfluxDB could not keep the measurement, the point is written as if the
        attribute it was read from were missing.
        """
        if override is not None:
            return override, None
        if self._rule == MEASUREMENT_DOMAIN_DEVICE_CLASS:
            if source is not None and (
                name := _core_measurement(f"{state.domain}__{object_text(source)}")
            ):
                return name, ATTR_DEVICE_CLASS
            return _core_name(state.domain), None
        if self._rule != MEASUREMENT_ENTITY_ID:
            if source not in (None, "") and (name := _core_measurement(source)):
                measured = self._rule == MEASUREMENT_UNIT
                return name, ATTR_UNIT_OF_MEASUREMENT if measured else None
            # Core's default_measurement is for where the attribute gives none.
            if self._default is not None:
                return self._default, None
        return _core_name(single_line(state.entity_id)), None

    def _fields(self, state: State, skipped: frozenset[str]) -> dict[str, float | str]:
        """Build the fields of core's event_to_json, in its order of assignment.

        For attributes without a layout, whose fields core may rename or overwrite.
        """
        text = state.state
        fields: dict[str, float | str] = {}
        number = state_number(text)
        # A word such as `on` is both.
        if number is None or text in STATE_NUMBERS:
            fields["state"] = single_line(text)
        if number is not None:
            fields["value"] = number

        for attribute, value in state.attributes.items():
            if attribute in skipped:
                continue
            # The client names a field by its key's text; core's own sort of text
            # and other keys together fails first, and its writer stops.
            key = attribute if isinstance(attribute, str) else object_text(attribute)
            field = f"{key}_" if key in fields else key
            number, string = self._reading(value)
            if string is not None:
                fields[f"{field}_str"] = string
            if number is None:
                continue
            # Core assigns, then deletes NaN and infinity (which InfluxDB cannot
            # store): an earlier field of that name is gone too.
            if math.isfinite(number):
                fields[field] = number
            else:
                fields.pop(field, None)
                self._skipped.non_finite_values_skipped += 1

        # InfluxDB 1.x silently drops a field named `time`; core renames it.
        if TIME_KEY in fields:
            field = "time_"
            while field in fields:
                field += "_"
            fields[field] = fields.pop(TIME_KEY)
        return fields

    def _read_text(self, text: str) -> _CoreReading:
        """Read a text attribute as core does, and remember it: most texts recur."""
        reading: _CoreReading
        try:
            reading = float(text), None
        except ValueError:
            reading = _core_text(text)
        return remember(self._texts, text, reading)

    def _field_set(self, fields: dict[str, float | str]) -> str:
        """Write the fields as the client does, sorted by key; empty if none is left.

        The same order gives the same stored names: InfluxDB strips blanks from the
        start of the first field key only.
        """
        rendered = []
        for key in sorted(fields):
            value = fields[key]
            # The client leaves out empty keys. A key ending in a backslash escapes
            # its `=`, which InfluxDB refuses.
            if not key or key[-1] == "\\":
                continue
            if isinstance(value, str):
                if "\\" in value or '"' in value:
                    value = value.translate(STRING_FIELD_ESCAPES)
                rendered.append(f'{_core_name(key)}="{value}"')
            # A state of NaN or infinity stays in core's `value`: the 2.x client leaves
            # it out, while the 1.x client writes it and InfluxDB refuses the batch.
            elif math.isfinite(value):
                rendered.append(f"{_core_name(key)}={value!r}")
            else:
                self._skipped.non_finite_values_skipped += 1
        return ",".join(rendered)
