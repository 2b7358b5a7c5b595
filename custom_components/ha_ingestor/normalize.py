"""Turn a Home Assistant state change into one InfluxDB line, per schema preset.

`create_encoder` builds the preset the options choose: `core_compatible` writes what
Home Assistant's own influxdb integration writes, so that its users keep their
measurements, fields and queries; `rich` adds the registries' context and gives every
field one type forever. docs/schema.md describes both, with real lines.

An encoder runs in the event loop for every state change. What depends only on the
entity and on the attributes its measurement is chosen by (measurement, tags, the
attributes left out) is built once per entity and kept; states, attribute keys and
texts are read once, not at every change. Home Assistant keeps an entity's attributes
object when a change leaves the attributes as they were: the fields rendered from it
are kept too, so such a change (most of a real house's) costs no attribute work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import datetime as dt
import math
import re
from typing import Any, Final, Protocol

from homeassistant.components.lock.const import LockState
from homeassistant.components.sun.const import STATE_ABOVE_HORIZON, STATE_BELOW_HORIZON
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
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
from homeassistant.helpers.json import json_dumps
from homeassistant.util.read_only_dict import ReadOnlyDict

from .const import (
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
from .registry_cache import EntityMetadata, RegistryCache


class Encoder(Protocol):
    """A schema preset: turns a state change into its line."""

    non_finite_dropped: int
    """Fields left out because they were NaN or infinite, since creation."""

    def __call__(
        self, new_state: State, old_state: State | None, time_us: int
    ) -> str | None:
        """Return the line of `new_state` at `time_us` (µs since the epoch), or None."""


def create_encoder(options: Mapping[str, Any], registry: RegistryCache) -> Encoder:
    """Build the encoder of the preset the options choose (core_compatible by default)."""
    preset = options.get(CONF_PRESET, PRESET_CORE_COMPATIBLE)
    if preset == PRESET_CORE_COMPATIBLE:
        return _CoreCompatibleEncoder(options)
    if preset == PRESET_RICH:
        return _RichEncoder(options, registry)
    raise ValueError(f"Unknown schema preset {preset!r}")


def timestamp_us(timestamp: float) -> int:
    """Microseconds since the epoch, exactly as `datetime.fromtimestamp` rounds them.

    Rounding `timestamp * 1e6` instead would be off by 1 µs for about one event in
    eight, so the same event would not have the same time as in Home Assistant.
    """
    fraction, seconds = math.modf(timestamp)
    return int(seconds) * 1_000_000 + round(fraction * 1_000_000)


# States written as their `state` text alone, without value or attributes.
_STATE_ONLY: Final = frozenset((STATE_UNKNOWN, STATE_UNAVAILABLE))

# helpers.state.state_as_number's words, as the floats both presets write for them (it
# also maps `unknown` to 0, which is never written as a value). A dict lookup, where
# calling state_as_number would raise and catch a ValueError for every other text.
_STATE_NUMBERS: Final[Mapping[str, float]] = dict.fromkeys(
    (STATE_ON, LockState.LOCKED, STATE_ABOVE_HORIZON, STATE_OPEN, STATE_HOME), 1.0
) | dict.fromkeys(
    (STATE_OFF, LockState.UNLOCKED, STATE_BELOW_HORIZON, STATE_CLOSED, STATE_NOT_HOME),
    0.0,
)

_MEASUREMENT_RULES: Final = frozenset(
    (
        MEASUREMENT_UNIT,
        MEASUREMENT_DOMAIN_DEVICE_CLASS,
        MEASUREMENT_DEVICE_CLASS,
        MEASUREMENT_ENTITY_ID,
    )
)

# InfluxDB 1.x refuses a tag key `time` (and drops a field `time` without a word).
_TIME: Final = "time"

# Line protocol escapes in string field values.
_STRING_FIELD_ESCAPES: Final = str.maketrans({"\\": "\\\\", '"': '\\"'})

# InfluxDB 1.x skips these at the start of a line; a line that then starts with `#`
# is a comment.
_LINE_START_BLANKS: Final = "\t\x00"

# A backslash InfluxDB 1.x reads as escaping what follows it in a name: the delimiter
# after a name, or an escaped comma, space, `=` or double quote in it. It then refuses
# the line, drops the backslash, or stores a measurement that no query finds.
_ESCAPING_BACKSLASH: Final = re.compile(r'\\(?=[ ,="]|\Z)')

# Texts, states and attribute keys an encoder has read, kept so that the next change
# does not read them again; past this many, the memory is emptied and filled anew.
_READ_CACHE_SIZE: Final = 10_000


def _remember[K, V](
    cache: dict[K, V], key: K, value: V, limit: int = _READ_CACHE_SIZE
) -> V:
    """Keep what was read of `key` in `cache`, within `limit` entries."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def _single_line(text: str) -> str:
    """Replace line breaks by spaces, as core does: line protocol has no escape for them.

    Every character str.splitlines splits at is unprintable, so a printable text (the
    usual case) is returned as it is, without building a list.
    """
    return text if text.isprintable() else " ".join(text.splitlines())


def _state_number(text: str) -> float | None:
    """Return the state as a number: its float, or a word's such as `on`; None if none."""
    if (number := _STATE_NUMBERS.get(text)) is not None:
        return number
    try:
        return float(text)
    except ValueError:
        return None


def _string_field(text: str) -> str:
    """Return a text as the inside of a string field value."""
    text = _single_line(text)
    # Most texts hold neither: two scans, and no copy.
    if "\\" in text or '"' in text:
        return text.translate(_STRING_FIELD_ESCAPES)
    return text


def _kept_attributes(attributes: Mapping[str, Any]) -> ReadOnlyDict[str, Any] | None:
    """Return the attributes if their fields may be kept for as long as the object lives.

    Home Assistant's states hold a ReadOnlyDict, which nobody changes; any other mapping
    (a state built by hand with another one) may change in place under the same id.
    """
    return attributes if type(attributes) is ReadOnlyDict else None


class _PresetEncoder:
    """The options both presets read."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.non_finite_dropped = 0
        self._rule: str = options.get(CONF_MEASUREMENT_RULE, MEASUREMENT_UNIT)
        if self._rule not in _MEASUREMENT_RULES:
            raise ValueError(f"Unknown measurement rule {self._rule!r}")
        self._override: str = options.get(CONF_MEASUREMENT_OVERRIDE) or ""
        self._ignored = frozenset(options.get(CONF_IGNORE_ATTRIBUTES, ()))
        self._ignored_by_domain = {
            domain: self._ignored.union(names)
            for domain, names in options.get(
                CONF_IGNORE_ATTRIBUTES_BY_DOMAIN, {}
            ).items()
        }
        self._global_tags: Mapping[str, str] = options.get(CONF_GLOBAL_TAGS, {})

    def _ignored_in(self, domain: str) -> frozenset[str]:
        return self._ignored_by_domain.get(domain, self._ignored)


# ---------------------------------------------------------------------------------------
# The `core_compatible` preset reproduces Home Assistant's own influxdb integration
# (2026.10: homeassistant/components/influxdb/__init__.py, _generate_event_to_json)
# followed by the influxdb client it writes with (influxdb 5.3.2,
# line_protocol.make_line), byte for byte, so that InfluxDB stores the same names,
# types and values and existing queries keep working. The options are core's:
# measurement_attr, override_measurement, tags, ignore_attributes and
# component_config_domain's ignore_attributes. docs/schema.md lists the rules and the
# few places where it deliberately differs.

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
# test_normalize checks that it stays equal.
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
_CORE_RENAMED_KEYS: Final = frozenset(("state", "value", _TIME))

# Key sequences whose layout an encoder keeps per set of attributes left out; past
# this many, the memory is emptied and filled anew.
_LAYOUT_CACHE_SIZE: Final = 1_000

# Where an attribute's fields go: the position of its attribute in the layout's
# `read`, then the key of its float field and of its text field (`key_str`) where
# they come next in the sorted field set, else None. Both fields of a key are nearly
# always next to each other: one slot holds both. Another key may sort between them
# (`effect`, `effect_list`, `effect_str`): each then gets a slot of its own.
type _CoreSlot = tuple[int, str | None, str | None]

# An entity's attribute fields, rendered: those sorted before core's `state` field,
# those between `state` and `value`, and those after `value`, each preceded by a comma.
type _CoreAttributeFields = tuple[str, str, str]

# Layouts by attribute key sequence (None: the general way), for one set of attributes
# left out.
type _CoreLayouts = dict[tuple[str, ...], _CoreLayout | None]


@dataclass(slots=True)
class _CoreSeries:
    """How an entity's lines start, while the measurement's attribute keeps its value."""

    source: object
    """The value of the attribute the measurement was read from, None if none."""
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

    read: tuple[str, ...]
    """The attribute keys written as fields, in the order they are read."""
    before_state: tuple[_CoreSlot, ...]
    before_value: tuple[_CoreSlot, ...]
    after_value: tuple[_CoreSlot, ...]


def _core_layout(keys: tuple[str, ...], skipped: frozenset[str]) -> _CoreLayout | None:
    """Return the layout of attribute keys, None where core's fields could collide."""
    read = tuple(key for key in keys if key not in skipped)
    written = frozenset(read)
    if (
        not all(isinstance(key, str) and key.isidentifier() for key in read)
        or not written.isdisjoint(_CORE_RENAMED_KEYS)
        or any(f"{key}_str" in written for key in read)
    ):
        return None
    fields = sorted(
        (field_key, index, is_text)
        for index, key in enumerate(read)
        for field_key, is_text in ((key, False), (f"{key}_str", True))
    )
    # Before core's `state` field, between `state` and `value`, after `value`.
    segments: tuple[list[_CoreSlot], ...] = ([], [], [])
    for field_key, index, is_text in fields:
        segment = segments[(field_key > "state") + (field_key > "value")]
        if not is_text:
            segment.append((index, field_key, None))
        elif segment and segment[-1][0] == index:  # right after its float field
            segment[-1] = (index, segment[-1][1], field_key)
        else:
            segment.append((index, None, field_key))
    before_state, before_value, after_value = map(tuple, segments)
    return _CoreLayout(read, before_state, before_value, after_value)


def _core_name(name: str) -> str:
    # Attribute keys are nearly always identifiers, which need no escape: no copy.
    return name if name.isidentifier() else name.translate(_CORE_NAME_ESCAPES)


def _core_measurement(value: object) -> str | None:
    """Return the escaped measurement core writes for a value, if InfluxDB keeps it.

    None where core's line would be a comment, refused, stored under another
    measurement, or stored where no query finds it.
    """
    # Core single-lines a text; the client turns anything else into text.
    text = _single_line(value) if isinstance(value, str) else str(value)
    name = _core_name(text)
    start = name.lstrip(_LINE_START_BLANKS)
    if not start or start[0] == "#" or _ESCAPING_BACKSLASH.search(text):
        return None
    return name


def _has_core_digit_tail(text: str) -> bool:
    r"""Return whether core's RE_DIGIT_TAIL, `^[^\.]*\d+\.?\d+[^\.]*$`, matches a text.

    It does when the text has no dot and two digits in a row, or one dot with a digit
    on each side. The pattern itself backtracks for a time quadratic in the text's
    length (a tenth of a second for the text of a 3,000 character list of floats):
    too long for the event loop. test_normalize checks that both agree.
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
    string = _single_line(text)
    if not _has_core_digit_tail(string):
        return None, string
    return float(_CORE_NOT_DECIMAL.sub("", string)), string


def _core_reading(value: object) -> _CoreReading:
    """Core's reading of an attribute value that is not a text."""
    # float() refuses these for sure: no exception to raise and catch.
    if type(value) in _NEVER_FLOATS:
        return _core_text(str(value))
    try:
        return float(value), None  # type: ignore[arg-type]
    except ValueError, TypeError:
        return _core_text(str(value))
    except OverflowError:
        # An int beyond float's range, which core does not catch (its writer thread
        # stops); it is the infinity core leaves out.
        return math.inf, None


class _CoreCompatibleEncoder(_PresetEncoder):
    """Home Assistant's influxdb integration's lines, with its options."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        # An override InfluxDB could not keep is treated as none.
        self._override_measurement = (
            _core_measurement(self._override) if self._override else None
        )
        self._measurement_attribute = (
            None
            if self._override_measurement is not None
            else _CORE_MEASUREMENT_ATTRIBUTES[self._rule]
        )
        # Core's tags replace its own of the same name. Empty ones the client leaves
        # out; those InfluxDB would refuse with the point are left out here.
        self._core_tags = {
            key: text
            for key, value in self._global_tags.items()
            if key != _TIME
            and not key.endswith("\\")
            and not (text := _single_line(value)).endswith("\\")
        }
        self._texts: dict[str, _CoreReading] = {}
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
        attributes = new_state.attributes
        attribute = self._measurement_attribute
        source = None if attribute is None else attributes.get(attribute)
        series = self._series.get(new_state.entity_id)
        if (
            series is None
            # The type too: 5 and 5.0 are equal but give measurements "5" and "5.0".
            or type(source) is not type(series.source)
            or (source is not series.source and source != series.source)
        ):
            series = self._new_series(new_state, source)
        if text in _STATE_ONLY:
            return f'{series.prefix} state="{text}" {time_us}'
        attribute_fields = self._attribute_fields(attributes, series)
        if attribute_fields is None:
            field_set = self._field_set(self._fields(new_state, series.skipped))
        else:
            field_set = self._laid_out_field_set(text, attribute_fields)
        if field_set:
            return f"{series.prefix} {field_set} {time_us}"
        return None

    def _attribute_fields(
        self, attributes: Mapping[str, Any], series: _CoreSeries
    ) -> _CoreAttributeFields | None:
        """Render the attributes' fields by their layout; None if they have none.

        Counts the NaN and infinite values left out, also of fields rendered before.
        """
        if attributes is series.attributes:
            self.non_finite_dropped += series.attribute_non_finite
            return series.attribute_fields
        keys = tuple(attributes)
        try:
            layout = series.layouts[keys]
        except KeyError:
            layout = _remember(
                series.layouts,
                keys,
                _core_layout(keys, series.skipped),
                _LAYOUT_CACHE_SIZE,
            )
        if layout is None:
            return None
        texts = self._texts
        readings = [
            # Texts are the most common attributes: no call for them.
            (texts.get(value) or self._read_text(value))
            if type(value) is str
            else _core_reading(value)
            for value in map(attributes.__getitem__, layout.read)
        ]
        dropped_before = self.non_finite_dropped
        attribute_fields = (
            self._rendered_fields(layout.before_state, readings),
            self._rendered_fields(layout.before_value, readings),
            self._rendered_fields(layout.after_value, readings),
        )
        if (kept := _kept_attributes(attributes)) is not None:
            series.attributes = kept
            series.attribute_fields = attribute_fields
            series.attribute_non_finite = self.non_finite_dropped - dropped_before
        return attribute_fields

    def _rendered_fields(
        self, slots: tuple[_CoreSlot, ...], readings: list[_CoreReading]
    ) -> str:
        """Write these slots' fields as the client does, each preceded by a comma."""
        rendered = ""
        for index, number_key, text_key in slots:
            number, string = readings[index]
            if number is not None and number_key is not None:
                if math.isfinite(number):
                    rendered += f",{number_key}={number!r}"
                else:
                    self.non_finite_dropped += 1
            if string is not None and text_key is not None:
                if "\\" in string or '"' in string:
                    string = string.translate(_STRING_FIELD_ESCAPES)
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
        self.non_finite_dropped += non_finite
        # Every part starts with a comma: the first one is not written.
        return f"{before_state}{state}{before_value}{value}{after_value}"[1:]

    def _read_state(self, text: str) -> _CoreStateFields:
        """Render a state's own fields, and remember them: most states recur."""
        number = _state_number(text)
        state = value = ""
        non_finite = 0
        # A word such as `on` is both.
        if number is None or text in _STATE_NUMBERS:
            state = f',state="{_string_field(text)}"'
        if number is not None:
            if math.isfinite(number):
                value = f",value={number!r}"
            else:
                non_finite = 1
        return _remember(self._state_fields, text, (state, value, non_finite))

    def _reading(self, value: object) -> _CoreReading:
        """Core's reading of an attribute value."""
        if type(value) is str:
            return self._texts.get(value) or self._read_text(value)
        return _core_reading(value)

    def _new_series(self, state: State, source: object) -> _CoreSeries:
        measurement, measured_attribute = self._measurement(state, source)
        tags = {"domain": state.domain, "entity_id": state.object_id} | self._core_tags
        # Sorted by key, as the client writes them; it leaves out empty ones.
        tag_set = [
            f"{_core_name(key)}={_core_name(value)}"
            for key, value in sorted(tags.items())
            if key and value
        ]
        skipped = self._ignored_in(state.domain)
        if measured_attribute is not None:
            skipped = skipped | {measured_attribute}
        series = _CoreSeries(
            source,
            ",".join((measurement, *tag_set)),
            skipped,
            self._layouts.setdefault(skipped, {}),
        )
        self._series[state.entity_id] = series
        return series

    def _measurement(self, state: State, source: object) -> tuple[str, str | None]:
        """Core's escaped measurement, and the attribute it leaves out of the fields.

        Where InfluxDB could not keep the measurement, the point is written as if the
        attribute it was read from were missing.
        """
        if self._override_measurement is not None:
            return self._override_measurement, None
        if self._rule == MEASUREMENT_DOMAIN_DEVICE_CLASS:
            if source is not None and (
                name := _core_measurement(f"{state.domain}__{source}")
            ):
                return name, ATTR_DEVICE_CLASS
            return _core_name(state.domain), None
        if (
            self._rule != MEASUREMENT_ENTITY_ID
            and source not in (None, "")
            and (name := _core_measurement(source))
        ):
            measured = self._rule == MEASUREMENT_UNIT
            return name, ATTR_UNIT_OF_MEASUREMENT if measured else None
        return _core_name(_single_line(state.entity_id)), None

    def _fields(self, state: State, skipped: frozenset[str]) -> dict[str, float | str]:
        """Build the fields of core's event_to_json, in its order of assignment.

        For attributes without a layout, whose fields core may rename or overwrite.
        """
        text = state.state
        fields: dict[str, float | str] = {}
        number = _state_number(text)
        # A word such as `on` is both.
        if number is None or text in _STATE_NUMBERS:
            fields["state"] = _single_line(text)
        if number is not None:
            fields["value"] = number

        for key, value in state.attributes.items():
            if key in skipped:
                continue
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
                self.non_finite_dropped += 1

        # InfluxDB 1.x silently drops a field named `time`; core renames it.
        if _TIME in fields:
            field = "time_"
            while field in fields:
                field += "_"
            fields[field] = fields.pop(_TIME)
        return fields

    def _read_text(self, text: str) -> _CoreReading:
        """Read a text attribute as core does, and remember it: most texts recur."""
        reading: _CoreReading
        try:
            reading = float(text), None
        except ValueError:
            reading = _core_text(text)
        return _remember(self._texts, text, reading)

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
                    value = value.translate(_STRING_FIELD_ESCAPES)
                rendered.append(f'{_core_name(key)}="{value}"')
            # A state of NaN or infinity stays in core's `value`: the 2.x client leaves
            # it out, while the 1.x client writes it and InfluxDB refuses the batch.
            elif math.isfinite(value):
                rendered.append(f"{_core_name(key)}={value!r}")
            else:
                self.non_finite_dropped += 1
        return ",".join(rendered)


# ---------------------------------------------------------------------------------------
# The `rich` preset: the entity's registry context as tags, the change itself
# (previous state, how long it lasted, its context) as fields, and every attribute as a
# field whose key tells its type, so that no field ever changes type.

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
_RICH_RESERVED: Final = frozenset((*_RICH_STATE_FIELDS, *_RICH_TAGS, _TIME))

# Attribute values rich writes as floats, and as ISO 8601 texts (datetimes are dates).
_RICH_NUMBERS: Final = (int, float)
_RICH_DATES_AND_TIMES: Final = (dt.date, dt.time)

# A state's text escaped as a string field value (for `state` and `previous_state`),
# its `value` field preceded by a comma or empty if not written, and 1 if the value is
# NaN or infinite (left out), else 0.
type _RichStateFields = tuple[str, str, int]


@dataclass(slots=True)
class _RichSeries:
    """How an entity's lines start, while its registry entry, unit and class hold."""

    metadata: EntityMetadata
    unit: object
    """The unit of measurement attribute's value."""
    device_class: object
    """The device class attribute's value."""
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
    text = _single_line(text)
    if "\\" in text:
        text = _ESCAPING_BACKSLASH.sub("/", text)
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


def _json_text(value: object) -> str:
    """Return lists, dicts and other objects as Home Assistant shows them, else str()."""
    try:
        return json_dumps(value)
    except TypeError:
        return str(value)


class _RichEncoder(_PresetEncoder):
    """Registry context as tags, typed fields that never change type."""

    def __init__(self, options: Mapping[str, Any], registry: RegistryCache) -> None:
        super().__init__(options)
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
            if (name := _rich_name(key)) != _TIME
        }
        # Attribute key -> escaped keys of its float and text fields; None: not written.
        self._field_keys: dict[object, tuple[str, str] | None] = {}
        self._state_fields: dict[str, _RichStateFields] = {}
        # One entry per entity ever written: as many as Home Assistant has entities.
        self._series: dict[str, _RichSeries] = {}

    def __call__(
        self, new_state: State, old_state: State | None, time_us: int
    ) -> str | None:
        """Return the rich line of a state change."""
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
        ):
            series = self._new_series(new_state, metadata, unit, device_class)

        text = new_state.state
        state_fields = self._state_fields
        try:
            escaped, value, non_finite = state_fields[text]
        except KeyError:
            escaped, value, non_finite = self._read_state(text)
        if text in _STATE_ONLY:
            return f'{series.prefix} state="{escaped}" {time_us}'
        self.non_finite_dropped += non_finite
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
        line += f',context_id="{_string_field(context.id)}"'
        if context.parent_id is not None:
            line += f',context_parent_id="{_string_field(context.parent_id)}"'
        if context.user_id is not None:
            line += f',context_user_id="{_string_field(context.user_id)}"'
        return f"{line}{self._attribute_fields(attributes, series)} {time_us}"

    def _attribute_fields(
        self, attributes: Mapping[str, Any], series: _RichSeries
    ) -> str:
        """Render the attributes' fields, each preceded by a comma.

        Counts the NaN and infinite values left out, also of fields rendered before.
        """
        if attributes is series.attributes:
            self.non_finite_dropped += series.attribute_non_finite
            return series.attribute_fields
        skipped = series.skipped
        field_keys = self._field_keys
        rendered = ""
        non_finite = 0
        for key, value in attributes.items():
            if key in skipped:
                continue
            try:
                keys = field_keys[key]
            except KeyError:
                keys = self._new_field_keys(key)
            if keys is None:
                continue
            number_key, text_key = keys
            # Texts are the most common attributes: no call for them.
            typed = value if type(value) is str else _rich_value(value)
            if typed is None:
                continue
            if isinstance(typed, str):
                rendered += f',{text_key}="{_string_field(typed)}"'
            elif math.isfinite(typed):
                rendered += f",{number_key}={typed!r}"
            else:
                non_finite += 1
        self.non_finite_dropped += non_finite
        if (kept := _kept_attributes(attributes)) is not None:
            series.attributes = kept
            series.attribute_fields = rendered
            series.attribute_non_finite = non_finite
        return rendered

    def _read_state(self, text: str) -> _RichStateFields:
        """Render a state's text and value field, and remember them: most recur."""
        value = ""
        non_finite = 0
        if (number := _state_number(text)) is not None:
            if math.isfinite(number):
                value = f",value={number!r}"
            else:
                non_finite = 1
        return _remember(
            self._state_fields, text, (_string_field(text), value, non_finite)
        )

    def _new_field_keys(self, key: object) -> tuple[str, str] | None:
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
            number_name = key
            if key in _RICH_RESERVED or key.endswith(("_", "_str", "\\")):
                number_name += "_"
            if not _ESCAPING_BACKSLASH.search(number_name):
                keys = (
                    number_name.translate(_RICH_NAME_ESCAPES),
                    f"{key}_str".translate(_RICH_NAME_ESCAPES),
                )
        return _remember(self._field_keys, key, keys)

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
        } | self._rich_tags
        # Line protocol has no empty tag values: a tag without a value is left out.
        tag_set = [
            f"{key}={value}" for key, value in sorted(tags.items()) if key and value
        ]
        measurement = self._measurement(state, text_unit, entity_device_class)
        series = _RichSeries(
            metadata,
            unit,
            device_class,
            ",".join((measurement, *tag_set)),
            # They are tags.
            self._ignored_in(state.domain)
            | {ATTR_UNIT_OF_MEASUREMENT, ATTR_DEVICE_CLASS},
        )
        self._series[state.entity_id] = series
        return series

    def _measurement(
        self, state: State, unit: str | None, device_class: str | None
    ) -> str:
        """Return the escaped measurement: the rule's, else the domain."""
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
        return (chosen and _rich_measurement(chosen)) or _rich_name(state.domain)
