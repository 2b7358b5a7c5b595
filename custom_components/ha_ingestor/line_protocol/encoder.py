"""What both schema presets share: the encoder's interface, its options, its memory.

An encoder runs in the event loop for every state change. What depends only on the
entity and on the attributes its measurement is chosen by (measurement, tags, the
attributes left out) is built once per entity and kept; states, attribute keys and
texts are read once, not at every change, and a text attribute's fields are rendered
once for its key. Home Assistant keeps an entity's attributes object when a change
leaves the attributes as they were: the fields rendered from it are kept too, so
such a change (most of a real house's) costs no attribute work.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any, Final, Protocol
import weakref

from homeassistant.components.lock.const import LockState
from homeassistant.components.sun.const import STATE_ABOVE_HORIZON, STATE_BELOW_HORIZON
from homeassistant.const import (
    STATE_CLOSED,
    STATE_HOME,
    STATE_NOT_HOME,
    STATE_OFF,
    STATE_ON,
    STATE_OPEN,
)
from homeassistant.core import State
from homeassistant.util.read_only_dict import ReadOnlyDict

from ..const import (
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
    MEASUREMENT_UNIT,
    PRECISION_MICROSECONDS,
    PRECISION_US,
)
from .entity_settings import EntitySettings


class Encoder(Protocol):
    """A schema preset: turns a state change into its line."""

    def __call__(
        self, new_state: State, old_state: State | None, time_us: int
    ) -> str | None:
        """Return the line of `new_state` at `time_us` (µs since the epoch), or None."""


class SkippedValues(Protocol):
    """Where an encoder counts the values it leaves out (the pipeline's stats)."""

    non_finite_values_skipped: int
    """NaN and infinite values, which InfluxDB cannot store."""


def timestamp_us(timestamp: float) -> int:
    """Microseconds since the epoch, exactly as `datetime.fromtimestamp` rounds them.

    Rounding `timestamp * 1e6` instead would be off by 1 µs for about one event in
    eight, so the same event would not have the same time as in Home Assistant.
    """
    fraction, seconds = math.modf(timestamp)
    return int(seconds) * 1_000_000 + round(fraction * 1_000_000)


# helpers.state.state_as_number's words, as the floats both presets write for them (it
# also maps `unknown` to 0, which is never written as a value). A dict lookup, where
# calling state_as_number would raise and catch a ValueError for every other text.
STATE_NUMBERS: Final[Mapping[str, float]] = dict.fromkeys(
    (STATE_ON, LockState.LOCKED, STATE_ABOVE_HORIZON, STATE_OPEN, STATE_HOME), 1.0
) | dict.fromkeys(
    (STATE_OFF, LockState.UNLOCKED, STATE_BELOW_HORIZON, STATE_CLOSED, STATE_NOT_HOME),
    0.0,
)

MEASUREMENT_RULES: Final = frozenset(
    (
        MEASUREMENT_UNIT,
        MEASUREMENT_DOMAIN_DEVICE_CLASS,
        MEASUREMENT_DEVICE_CLASS,
        MEASUREMENT_ENTITY_ID,
    )
)

# Texts, states and attribute keys an encoder has read, kept so that the next change
# does not read them again; past this many, the memory is emptied and filled anew.
READ_CACHE_SIZE: Final = 10_000


def remember[K, V](
    cache: dict[K, V], key: K, value: V, limit: int = READ_CACHE_SIZE
) -> V:
    """Keep what was read of `key` in `cache`, within `limit` entries."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


# Fields rendered for attribute texts that an encoder keeps, in all: about as many as
# a large house's entities have text attributes. Past this many, all are emptied.
TEXT_FIELDS_CACHE_SIZE: Final = 20_000


class _FieldsByText(dict[str, str]):
    """The fields rendered for texts under one set of field keys."""

    # Only a dict of its own kind can be referred to weakly.
    __slots__ = ("__weakref__",)


class TextFields:
    """Fields rendered for attribute texts, by their field keys: most texts recur.

    Each set of field keys has a dict of its own, which the encoder keeps where it
    renders those fields (in a layout, or with an attribute key's field keys), so that
    a text costs one lookup. Those places are bounded caches: a dict none of them holds
    any more is forgotten here too, with its texts.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._by_field_keys: weakref.WeakValueDictionary[object, _FieldsByText] = (
            weakref.WeakValueDictionary()
        )
        self._kept = 0

    def for_field_keys(self, field_keys: object) -> dict[str, str]:
        """Return the fields rendered so far for texts under these field keys."""
        if (fields_by_text := self._by_field_keys.get(field_keys)) is None:
            fields_by_text = self._by_field_keys[field_keys] = _FieldsByText()
        return fields_by_text

    def keep(self, fields_by_text: dict[str, str], text: str, fields: str) -> str:
        """Keep the fields rendered for `text`, within TEXT_FIELDS_CACHE_SIZE in all."""
        if self._kept >= TEXT_FIELDS_CACHE_SIZE:
            for kept in self._by_field_keys.values():
                kept.clear()
            self._kept = 0
        fields_by_text[text] = fields
        self._kept += 1
        return fields


def object_text(value: object) -> str:
    """Return str(value); for an object whose own text fails, the one `object` gives.

    Integrations put objects of their own into attributes; one whose `__str__` raises
    must not cost the state change its point (nor the others their fingerprints).
    """
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - an integration's object can fail in any way
        return object.__repr__(value)


def state_number(text: str) -> float | None:
    """Return the state as a number: its float, or a word's such as `on`; None if none."""
    if (number := STATE_NUMBERS.get(text)) is not None:
        return number
    try:
        return float(text)
    except ValueError:
        return None


def kept_attributes(attributes: Mapping[str, Any]) -> ReadOnlyDict[str, Any] | None:
    """Return the attributes if their fields may be kept for as long as the object lives.

    Home Assistant's states hold a ReadOnlyDict, which nobody changes; any other mapping
    (a state built by hand with another one) may change in place under the same id.
    """
    return attributes if type(attributes) is ReadOnlyDict else None


class PresetEncoder:
    """The options both presets read, and where they count skipped values."""

    def __init__(self, options: Mapping[str, Any], skipped: SkippedValues) -> None:
        """Read the options; count left-out values in `skipped`."""
        self._skipped = skipped
        self._rule: str = options.get(CONF_MEASUREMENT_RULE, MEASUREMENT_UNIT)
        if self._rule not in MEASUREMENT_RULES:
            raise ValueError(f"Unknown measurement rule {self._rule!r}")
        self._override: str = options.get(CONF_MEASUREMENT_OVERRIDE) or ""
        # Per domain, entity id or pattern; an empty one is no override.
        self._overrides: EntitySettings[str] = EntitySettings(
            options.get(CONF_MEASUREMENT_OVERRIDES, {})
        )
        self._default_measurement: str = options.get(CONF_DEFAULT_MEASUREMENT) or ""
        self._ignored = frozenset(options.get(CONF_IGNORE_ATTRIBUTES, ()))
        # Per domain, entity id or pattern: the most specific one applies, with the
        # attributes ignored everywhere.
        self._ignored_by_entity: EntitySettings[list[str]] = EntitySettings(
            options.get(CONF_IGNORE_ATTRIBUTES_BY_ENTITY, {}),
            options.get(CONF_IGNORE_ATTRIBUTES_BY_DOMAIN, {}),
        )
        self._global_tags: Mapping[str, str] = options.get(CONF_GLOBAL_TAGS, {})
        # Attributes written as tags, not fields; each once.
        self._tag_attributes: tuple[str, ...] = tuple(
            dict.fromkeys(options.get(CONF_TAG_ATTRIBUTES, ()))
        )
        precision = options.get(CONF_TIMESTAMP_PRECISION, PRECISION_MICROSECONDS)
        if precision not in PRECISION_US:
            raise ValueError(f"Unknown timestamp precision {precision!r}")
        # Timestamps are cut to a multiple of this many microseconds.
        self._precision_us: int = PRECISION_US[precision]

    def _ignored_for(self, entity_id: str, domain: str) -> frozenset[str]:
        """Return the attributes an entity's points leave out."""
        names = self._ignored_by_entity.get(entity_id, domain)
        return self._ignored if names is None else self._ignored.union(names)

    def _override_for(self, entity_id: str, domain: str) -> str:
        """Return the entity's own measurement override, empty if none."""
        return self._overrides.get(entity_id, domain) or ""

    def _tag_texts(self, attributes: Mapping[str, Any]) -> tuple[str | None, ...]:
        """Return the tag attributes' texts; None where the state has no such attribute.

        An attribute the state has replaces a tag of the same name, even where its
        text is empty and so writes no tag.
        """
        return tuple(
            self._tag_text(attributes[key]) if key in attributes else None
            for key in self._tag_attributes
        )

    def _tag_text(self, value: object) -> str:
        """Return the text of a tag attribute's value, as the preset writes it."""
        raise NotImplementedError
