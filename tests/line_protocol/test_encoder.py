"""What both presets share: create_encoder, timestamps, state numbers, what they keep.

The tests of one preset's rules are in test_core_compatible.py and test_rich.py; these
hold for both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from typing import Any

from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import State
from homeassistant.helpers.state import state_as_number
from homeassistant.util.read_only_dict import ReadOnlyDict
from hypothesis import given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.const import (
    CONF_GLOBAL_TAGS,
    CONF_MEASUREMENT_RULE,
    CONF_PRESET,
    MEASUREMENT_DEVICE_CLASS,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_UNIT,
    PRESET_CORE_COMPATIBLE,
    PRESET_RICH,
)
from custom_components.ha_ingestor.line_protocol import (
    create_encoder,
    encoder as encoder_module,
)
from custom_components.ha_ingestor.line_protocol.encoder import (
    TextFields,
    kept_attributes,
    remember,
    timestamp_us,
)
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import UNREGISTERED, EntityMetadata

from .helpers import (
    CORE,
    POWER,
    RICH,
    TIME_US,
    FixedRegistry,
    Unreadable,
    encode,
    parse_influx_line,
)
from .strategies import (
    ATTRIBUTES,
    LAID_OUT_ATTRIBUTES,
    METADATA,
    OPTIONS,
    STATE_TEXTS,
    TEXTS_WITH_SURROGATES,
    WORDS,
)


def test_presets() -> None:
    """The preset option chooses the encoder; core_compatible is the default."""
    state = State("sensor.a", "1", {"unit_of_measurement": "W"})
    core_line = "W,domain=sensor,entity_id=a value=1.0 1732262400123456"
    assert encode({}, state) == encode(CORE, state) == core_line
    assert encode(RICH, state, metadata=UNREGISTERED) != core_line


@pytest.mark.parametrize(
    "options",
    [
        {CONF_PRESET: "basic"},
        {CONF_PRESET: PRESET_RICH, CONF_MEASUREMENT_RULE: "friendly_name"},
    ],
)
def test_unknown_options_are_refused(options: dict[str, Any]) -> None:
    """A preset or measurement rule the integration does not know is an error."""
    with pytest.raises(ValueError, match="Unknown"):
        create_encoder(options, FixedRegistry(), PipelineStats())


@given(st.floats(min_value=0, max_value=4e9))
def test_timestamp_equals_home_assistants_datetime(timestamp: float) -> None:
    """Microseconds round exactly as Home Assistant's `time_fired` datetime does."""
    fired = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert timestamp_us(timestamp) == (fired - epoch) // dt.timedelta(microseconds=1)


def test_timestamp_keeps_microseconds() -> None:
    """Float seconds become exact integer microseconds, rounding not truncating."""
    assert timestamp_us(1732262400.123456) == TIME_US
    assert timestamp_us(0.0000019999) == 2


def test_state_numbers_are_cores() -> None:
    """The state words written as numbers are those of core's state_as_number."""
    numbers = {}
    for word in WORDS:
        with contextlib.suppress(ValueError):
            numbers[word] = float(state_as_number(State("sensor.x", word)))
    del numbers[STATE_UNKNOWN]  # never written as a value
    assert numbers == encoder_module.STATE_NUMBERS


@pytest.mark.parametrize("options", [CORE, RICH, RICH | {CONF_GLOBAL_TAGS: {"a": "b"}}])
@pytest.mark.parametrize("state", ["unknown", "unavailable"])
def test_unknown_and_unavailable_are_the_state_alone(
    options: dict[str, Any], state: str
) -> None:
    """Both presets write unknown and unavailable as the `state` field alone."""
    attributes = {"unit_of_measurement": "W", "friendly_name": "A", "b": 1}
    old = State("sensor.a", "1", attributes)
    line = encode(options, State("sensor.a", state, attributes), old, POWER)
    assert line is not None
    assert parse_influx_line(line)[0] == "W"
    assert parse_influx_line(line)[2] == {"state": state}


def test_remember_keeps_within_its_limit() -> None:
    """A full memory is emptied before it takes the next entry, which it returns."""
    cache: dict[str, int] = {}
    assert remember(cache, "a", 1, limit=2) == 1
    assert remember(cache, "b", 2, limit=2) == 2
    assert cache == {"a": 1, "b": 2}
    assert remember(cache, "c", 3, limit=2) == 3
    assert cache == {"c": 3}


def test_only_read_only_attributes_are_kept() -> None:
    """Home Assistant's ReadOnlyDict is kept by identity; any other mapping is not."""
    read_only = ReadOnlyDict({"a": 1})
    assert kept_attributes(read_only) is read_only
    assert kept_attributes(State("sensor.a", "1", {"a": 1}).attributes) is not None
    assert kept_attributes({"a": 1}) is None


@settings(max_examples=300, deadline=None)
@given(
    options=OPTIONS,
    preset=st.sampled_from([PRESET_CORE_COMPATIBLE, PRESET_RICH]),
    changes=st.lists(
        st.tuples(
            st.sampled_from(["sensor.a", "light.b"]),
            STATE_TEXTS,
            ATTRIBUTES | LAID_OUT_ATTRIBUTES,
        ),
        min_size=2,
        max_size=5,
    ),
    metadata=st.lists(METADATA, min_size=2, max_size=2),
)
def test_what_encoders_remember_changes_nothing(
    options: dict[str, Any],
    preset: str,
    changes: list[tuple[str, str, dict[str, Any]]],
    metadata: list[EntityMetadata],
) -> None:
    """An encoder that has seen other changes writes and counts what a new one would.

    Each change comes twice, the second time with a copy of its attributes for both
    entities: the fields of its texts then come from what the encoder rendered before.
    """
    registry = FixedRegistry({"sensor.a": metadata[0], "light.b": metadata[1]})
    options = options | {CONF_PRESET: preset}
    stats = PipelineStats()
    encoder = create_encoder(options, registry, stats)
    for entity_id, text, attributes in changes:
        for state in (
            State(entity_id, text, attributes),
            State("sensor.a", text, dict(attributes)),
            State("light.b", text, dict(attributes)),
        ):
            new_stats = PipelineStats()
            line = create_encoder(options, registry, new_stats)(state, None, TIME_US)
            counted_before = stats.non_finite_values_skipped
            assert encoder(state, None, TIME_US) == line
            assert (
                stats.non_finite_values_skipped - counted_before
                == new_stats.non_finite_values_skipped
            )


def test_text_fields_keep_within_their_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the limit, the fields of every field key's texts are emptied at once."""
    monkeypatch.setattr(encoder_module, "TEXT_FIELDS_CACHE_SIZE", 2)
    text_fields = TextFields()
    by_a, by_b = text_fields.for_field_keys("a"), text_fields.for_field_keys("b")
    assert text_fields.for_field_keys("a") is by_a
    assert text_fields.keep(by_a, "x", ',a="x"') == ',a="x"'
    text_fields.keep(by_b, "y", ',b="y"')
    assert (by_a, by_b) == ({"x": ',a="x"'}, {"y": ',b="y"'})
    assert text_fields.keep(by_b, "z", ',b="z"') == ',b="z"'
    assert (by_a, by_b) == ({}, {"z": ',b="z"'})


def test_text_fields_forget_field_keys_nobody_holds() -> None:
    """Field keys whose dict no layout holds any more are forgotten, with their texts.

    Attribute keys an integration makes up as it goes (one per hour of a forecast)
    would otherwise each keep a dict for as long as the encoder lives.
    """
    text_fields = TextFields()
    held = text_fields.for_field_keys("a")
    text_fields.keep(held, "x", ',a="x"')
    for hour in range(1_000):
        text_fields.keep(text_fields.for_field_keys(f"h{hour}"), "x", ',h="x"')
    assert len(text_fields._by_field_keys) == 1
    assert text_fields.for_field_keys("a") is held
    assert held == {"x": ',a="x"'}
    assert text_fields.for_field_keys("h0") == {}


@settings(max_examples=300, deadline=None)
@given(
    options=OPTIONS,
    preset=st.sampled_from([PRESET_CORE_COMPATIBLE, PRESET_RICH]),
    changes=st.lists(
        st.tuples(
            st.sampled_from(["sensor.a", "light.b"]),
            STATE_TEXTS,
            st.none() | ATTRIBUTES | LAID_OUT_ATTRIBUTES,
        ),
        min_size=2,
        max_size=6,
    ),
)
def test_kept_attributes_change_nothing(
    options: dict[str, Any],
    preset: str,
    changes: list[tuple[str, str, dict[str, Any] | None]],
) -> None:
    """A change that keeps its entity's attributes object writes what a new encoder would.

    Home Assistant hands on the previous state's attributes object when they are equal
    (None in `changes`); the encoder then writes the fields it rendered from it before,
    and counts their NaN and infinities again.
    """
    registry = FixedRegistry()
    options = options | {CONF_PRESET: preset}
    stats = PipelineStats()
    encoder = create_encoder(options, registry, stats)
    dropped = 0
    states: dict[str, State] = {}
    for entity_id, text, attributes in changes:
        old_state = states.get(entity_id)
        if attributes is None and old_state is not None:
            state = State(entity_id, text, old_state.attributes)
        else:
            state = State(entity_id, text, attributes)
        new_stats = PipelineStats()
        line = create_encoder(options, registry, new_stats)(state, old_state, TIME_US)
        assert encoder(state, old_state, TIME_US) == line
        dropped += new_stats.non_finite_values_skipped
        assert stats.non_finite_values_skipped == dropped
        states[entity_id] = state


class _CountedNumber:
    """An attribute value that counts how often it is read."""

    def __init__(self) -> None:
        self.reads = 0

    def __float__(self) -> float:
        self.reads += 1
        return 1.5

    def __str__(self) -> str:
        self.reads += 1
        return "1.5"


@pytest.mark.parametrize("options", [CORE, RICH])
def test_kept_attributes_are_read_once(options: dict[str, Any]) -> None:
    """A change that keeps its entity's attributes object does not read them again."""
    value = _CountedNumber()
    encoder = create_encoder(options, FixedRegistry(), PipelineStats())
    first = State("sensor.a", "1", {"b": value})
    second = State("sensor.a", "2", first.attributes)
    assert first.attributes is second.attributes
    encoder(first, None, TIME_US)
    line = encoder(second, first, TIME_US)
    assert value.reads == 1
    assert line == create_encoder(options, FixedRegistry(), PipelineStats())(
        second, first, TIME_US
    )


@pytest.mark.parametrize("options", [CORE, RICH])
def test_attributes_changed_in_place_are_read_again(options: dict[str, Any]) -> None:
    """Only Home Assistant's read-only attributes are known unchanged by their identity.

    A state given another mapping (Home Assistant's own always hold a ReadOnlyDict) may
    see it changed in place between two changes.
    """
    attributes = {"b": 1}
    state = State("sensor.a", "1")
    state.attributes = attributes  # type: ignore[assignment]
    encoder = create_encoder(options, FixedRegistry(), PipelineStats())
    first = encoder(state, None, TIME_US)
    attributes["b"] = 2
    second = encoder(state, None, TIME_US)
    assert first != second
    assert second == create_encoder(options, FixedRegistry(), PipelineStats())(
        state, None, TIME_US
    )


@settings(max_examples=300, deadline=None)
@given(
    preset=st.sampled_from([CORE, RICH]),
    options=OPTIONS,
    text=TEXTS_WITH_SURROGATES.filter(bool),
    attributes=ATTRIBUTES,
)
def test_every_line_is_utf8(
    preset: dict[str, Any],
    options: dict[str, Any],
    text: str,
    attributes: dict[str, Any],
) -> None:
    """Surrogates anywhere a text enters a line: none is left in it.

    In the state, attribute keys and values (also inside lists and as the measurement's
    unit) and registry names. A line UTF-8 cannot carry would cost its whole batch.
    """
    state = State(
        "sensor.a",
        text,
        attributes
        | {"unit_of_measurement": text, "friendly_name": text, text: [text, {text: 1}]},
    )
    metadata = EntityMetadata(text, "area", text, text, text, frozenset(), (text,))
    line = encode(preset | options, state, State("sensor.a", text), metadata)
    if line is not None:
        assert not any("\ud800" <= char <= "\udfff" for char in line)
        parse_influx_line(line)


@pytest.mark.parametrize("options", [CORE, RICH])
def test_surrogates_are_written_as_utf8_carries_them(options: dict[str, Any]) -> None:
    """A pair of halves becomes its character, a lone half U+FFFD: the rest is kept."""
    text = "a\ud83d\ude00b\udcff"
    state = State(
        "sensor.a", text, {"unit_of_measurement": "W\ud800", "note\udcff": text}
    )
    line = encode(options, state)
    assert line is not None
    measurement, _, fields, _ = parse_influx_line(line)
    assert measurement == "W\ufffd"
    assert fields["state"] == fields["note\ufffd_str"] == "a\U0001f600b\ufffd"


@pytest.mark.parametrize("options", [CORE, RICH])
@pytest.mark.parametrize(
    "rule",
    [MEASUREMENT_DOMAIN_DEVICE_CLASS, MEASUREMENT_DEVICE_CLASS, MEASUREMENT_UNIT],
)
def test_a_measurement_read_from_an_object_that_cannot_be_read(
    options: dict[str, Any], rule: str
) -> None:
    """Its device class or unit: the state is written all the same.

    core_compatible's `domain__device_class` raised in the listener: it was lost.
    """
    state = State(
        "sensor.a",
        "5",
        {"unit_of_measurement": Unreadable(), "device_class": Unreadable()},
    )
    line = encode(options | {CONF_MEASUREMENT_RULE: rule}, state)
    assert line is not None
    assert parse_influx_line(line)[2]["value"] == 5.0


@pytest.mark.parametrize("options", [CORE, RICH])
def test_an_object_that_cannot_be_read_keeps_its_state_written(
    options: dict[str, Any],
) -> None:
    """The object is written as Python names any object; the state and the rest as ever."""
    state = State(
        "sensor.a", "5", {"unit_of_measurement": "W", "reading": Unreadable(), "b": 2}
    )
    line = encode(options, state)
    assert line is not None
    fields = parse_influx_line(line)[2]
    assert fields["value"] == 5.0
    assert fields["b"] == 2.0
    assert re.fullmatch(
        r"<\S+\.Unreadable object at 0x[0-9a-f]+>", str(fields["reading_str"])
    )
