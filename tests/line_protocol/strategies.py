"""Hypothesis strategies for state changes and options, shared by both presets' tests.

They hold values InfluxDB cannot take, names that need escaping and keys that collide
with the presets' own fields, next to the ones a real house has.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from homeassistant import const as ha_const
from homeassistant.components.lock.const import LockState
from homeassistant.components.sun.const import STATE_ABOVE_HORIZON, STATE_BELOW_HORIZON
from hypothesis import strategies as st

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
    MEASUREMENT_DEVICE_CLASS,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID,
    MEASUREMENT_UNIT,
)
from custom_components.ha_ingestor.registry.cache import EntityMetadata

# Every state word Home Assistant defines, so that a new one state_as_number knows
# cannot go unnoticed.
WORDS = sorted(
    {
        value
        for name, value in vars(ha_const).items()
        if name.startswith("STATE_") and isinstance(value, str)
    }
    | {str(word) for word in LockState}
    | {STATE_ABOVE_HORIZON, STATE_BELOW_HORIZON}
)

SHORT_TEXTS = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    [
        *("°C", "W", "m³ per h, est", "Version 2.3", "Firmware 10", "12:30", "v2.4.1"),
        *("192.168.1.1", "nan", "-inf", "1e999", " 5 ", "1_000", "١٢", '\\"', '\\"'),
        *("a\nb", "\r\n", "x\\", "#x", "\t#x", "\x00#", "\t", " ", ",", "=", '"'),
        *("\u2028", "a\\ b", "a\\,b", "a\\=b", "\\", "time", "_str", "x_str"),
    ]
)
# Texts with surrogate code points, which a str can hold and UTF-8 cannot carry: halves
# of a pair, alone or together, as `surrogateescape` and JSON's escapes leave them. Not
# in TEXTS: core's client cannot encode them, so there is no point of core's to compare.
TEXTS_WITH_SURROGATES = st.lists(
    st.integers(0xD800, 0xDFFF).map(chr) | st.characters(), max_size=8
).map("".join)
# Digits beyond float's range. Not inside lists: with dots around them, core's own
# pattern would take minutes over them.
TEXTS = SHORT_TEXTS | st.just("9" * 400)


def _containers(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists, tuples and dicts of `items`."""
    return (
        st.lists(items, max_size=3)
        | st.tuples(items, items)
        | st.dictionaries(st.text(max_size=3), items, max_size=3)
    )


ATTRIBUTE_VALUES = (
    st.none()
    | st.booleans()
    # Beyond float's range core's converter raises (a case in test_core_compatible's
    # CORE_CASES).
    | st.integers(-(2**1000), 2**1000)
    | st.floats()
    | TEXTS
    | _containers(
        st.recursive(
            # Beyond 64 bits, orjson gives up (docs/schema.md).
            st.none()
            | st.booleans()
            | st.integers(-(2**70), 2**70)
            | st.floats()
            | SHORT_TEXTS,
            _containers,
            max_leaves=6,
        )
    )
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
    | st.times()
)
ATTRIBUTE_KEYS = st.sampled_from(
    [
        *("unit_of_measurement", "device_class", "friendly_name", "value", "value_"),
        *("state", "state_", "time", "time_", "x", "x_", "x_str", "x_str_", "k\\"),
        *("", "area", "previous_state", "context_id", "a\nb", "a b", "a\\ b"),
    ]
) | TEXTS.filter(
    # InfluxDB strips these from the start of the first field key only, so two keys
    # could become one (core's too); no real attribute key starts with them.
    lambda key: not key.startswith(("\t", "\x00"))
)
ATTRIBUTES = st.dictionaries(ATTRIBUTE_KEYS, ATTRIBUTE_VALUES, max_size=6)
ENTITY_IDS = st.builds(
    "{}.{}{}".format,
    st.sampled_from(["sensor", "binary_sensor", "lock", "sun", "climate", "a1"]),
    # Object ids are slugs: no `_` at either end or twice in a row; `$` in Home
    # Assistant's pattern also lets them end in a line feed.
    st.lists(st.text("az09", min_size=1, max_size=3), min_size=1, max_size=3).map(
        "_".join
    ),
    st.sampled_from(["", "\n"]),
)
STATE_TEXTS = (
    st.sampled_from(WORDS) | TEXTS | st.floats().map(repr) | st.integers().map(str)
)
# Entity id, state and attributes; tests make the State (which draws a random context
# id, something a strategy must not do).
STATES = st.tuples(ENTITY_IDS, STATE_TEXTS, ATTRIBUTES)
_DOMAINS = st.sampled_from(["sensor", "binary_sensor", "lock", "climate"])
_MEASUREMENTS = st.sampled_from(["", "home", "a b,c=d", "#x", "x\\"]) | TEXTS
# Keys of settings per domain, entity id or pattern (as the built-in integration's
# component_config_domain, component_config and component_config_glob have them),
# some of which ENTITY_IDS draws.
_SETTINGS_KEYS = st.sampled_from(
    [
        *("sensor", "lock", "climate", "sensor.a", "lock.a", "climate.z", "a1.a"),
        *("sensor.*", "*", "*.a*", "[sl]*", "sensor.a?", "*_*", "*\n"),
    ]
)


@st.composite
def _entity_settings(draw: st.DrawFn) -> dict[str, Any]:
    """Measurement overrides and ignored attributes by domain, entity id or pattern.

    Drawn as one list, as the built-in integration holds both in one dict per key:
    its patterns are in the same order for both.
    """
    settings = draw(
        st.lists(
            st.tuples(
                _SETTINGS_KEYS,
                st.none() | _MEASUREMENTS,
                st.none() | st.lists(ATTRIBUTE_KEYS, min_size=1, max_size=3),
            ),
            max_size=4,
            unique_by=lambda setting: setting[0],
        )
    )
    options: dict[str, Any] = {}
    overrides = {key: text for key, text, _ in settings if text is not None}
    ignored = {key: names for key, _, names in settings if names is not None}
    if overrides:
        options[CONF_MEASUREMENT_OVERRIDES] = overrides
    if ignored:
        options[CONF_IGNORE_ATTRIBUTES_BY_ENTITY] = ignored
    return options


# Both presets' options, with values InfluxDB cannot take among them.
_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        CONF_MEASUREMENT_RULE: st.sampled_from(
            [
                MEASUREMENT_UNIT,
                MEASUREMENT_DOMAIN_DEVICE_CLASS,
                MEASUREMENT_DEVICE_CLASS,
                MEASUREMENT_ENTITY_ID,
            ]
        ),
        CONF_MEASUREMENT_OVERRIDE: st.sampled_from(["", "home", "a b,c=d"]) | TEXTS,
        CONF_GLOBAL_TAGS: st.dictionaries(
            st.sampled_from(["site", "domain", "entity_id", "area", "time"]) | TEXTS,
            st.sampled_from(["main", "", "a b,c=d"]) | TEXTS,
            max_size=3,
        ),
        CONF_IGNORE_ATTRIBUTES: st.lists(ATTRIBUTE_KEYS, max_size=3),
        CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: st.dictionaries(
            _DOMAINS, st.lists(ATTRIBUTE_KEYS, min_size=1, max_size=3), max_size=2
        ),
        CONF_DEFAULT_MEASUREMENT: _MEASUREMENTS,
        CONF_TAG_ATTRIBUTES: st.lists(
            st.sampled_from(["unit_of_measurement", "domain", "entity_id", "x"])
            | ATTRIBUTE_KEYS,
            max_size=3,
        ),
    },
)
OPTIONS = st.builds(dict.__or__, _OPTIONS, _entity_settings())

NAMES = st.none() | TEXTS
METADATA = st.builds(
    EntityMetadata,
    device_class=st.none() | st.sampled_from(["temperature", "power"]) | TEXTS,
    area_id=st.none() | st.just("area"),
    area=NAMES,
    floor=NAMES,
    device=NAMES,
    label_ids=st.just(frozenset()),
    labels=st.lists(TEXTS, max_size=3).map(lambda labels: tuple(sorted(labels))),
)

# Identifier keys, whose core fields have a place of their own in the sorted field set:
# around core's `state` and `value`, and keys whose fields interleave (`effect`,
# `effect_list`, `effect_str`); with a few that collide (`x`, `x_str`).
LAID_OUT_KEYS = st.sampled_from(
    [
        *("a", "aZ", "a2", "effect", "effect_list", "color_temp", "color_temp_kelvin"),
        *("stat", "state_class", "statf", "vale", "valuf", "value_x", "friendly_name"),
        *("unit_of_measurement", "device_class", "x", "x_str", "_", "température"),
    ]
)
LAID_OUT_ATTRIBUTES = st.dictionaries(LAID_OUT_KEYS, ATTRIBUTE_VALUES, max_size=6)
