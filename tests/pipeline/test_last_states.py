"""A restart writes no duplicate point for an entity whose state did not change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
import copy
import datetime as dt
import math
import re
import threading
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, State
from hypothesis import given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.line_protocol.encoder import timestamp_us
from custom_components.ha_ingestor.pipeline import last_states as last_states_module
from custom_components.ha_ingestor.pipeline.last_states import LastStates, fingerprint
from custom_components.ha_ingestor.storage.spool import Spool

from ..conftest import restarted
from ..influxdb_v1_server import InfluxDBv1Server
from ..line_protocol.helpers import Unreadable


async def test_unchanged_states_are_not_written_again_after_a_restart(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Same state and attributes: skipped. A new value or attribute: written."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    hass.states.async_set("sensor.same", "1", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.value", "1", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.attribute", "1", {"unit_of_measurement": "W"})
    await hass.async_stop()

    async with restarted(hass, config_entry) as second:
        # What entities do when Home Assistant starts: set their state again.
        second.states.async_set("sensor.same", "1", {"unit_of_measurement": "W"})
        second.states.async_set("sensor.value", "2", {"unit_of_measurement": "W"})
        second.states.async_set(
            "sensor.attribute", "1", {"unit_of_measurement": "W", "mode": "eco"}
        )
        second.states.async_set("sensor.new", "1", {"unit_of_measurement": "W"})
        # A later change to the same value is a real change: written.
        second.states.async_set(
            "sensor.same", "1", {"unit_of_measurement": "W", "x": 1}
        )

    rows = influxdb.rows('SELECT * FROM "W" GROUP BY "entity_id"', database)
    assert sorted((r["entity_id"], r["value"]) for r in rows) == [
        ("attribute", 1.0),
        ("attribute", 1.0),
        ("new", 1.0),
        ("same", 1.0),
        ("same", 1.0),
        ("value", 1.0),
        ("value", 2.0),
    ]


async def test_states_set_before_the_entry_are_compared_after_a_restart(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """At a start, most entities are set up before this entry, unseen by any listener.

    Their states are compared with the last written all the same: one restored to an
    older value after a crash is written, at the time it was set; an unchanged one is
    not. An entity never written before (new since the stop) is written as it starts.
    """
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    hass.states.async_set("sensor.same", "1", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.restored", "5", {"unit_of_measurement": "W"})
    await hass.async_stop()

    def set_up_first(second: HomeAssistant) -> None:
        second.states.async_set("sensor.same", "1", {"unit_of_measurement": "W"})
        second.states.async_set("sensor.restored", "4", {"unit_of_measurement": "W"})
        second.states.async_set("sensor.new", "1", {"unit_of_measurement": "W"})

    async with restarted(hass, config_entry, set_up_first) as second:
        restored = second.states.get("sensor.restored")
        new = second.states.get("sensor.new")
        assert restored is not None
        assert new is not None

    rows = influxdb.rows('SELECT * FROM "W" GROUP BY "entity_id"', database)
    assert sorted((r["entity_id"], r["value"]) for r in rows) == [
        ("new", 1.0),
        ("restored", 4.0),
        ("restored", 5.0),
        ("same", 1.0),
    ]
    times = {(r["entity_id"], r["value"]): r["time"] for r in rows}
    assert times["restored", 4.0] == timestamp_us(restored.last_updated_timestamp)
    assert times["new", 1.0] == timestamp_us(new.last_updated_timestamp)


async def test_states_set_while_the_entry_did_not_listen_are_written_once(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """An entity never written is written if its state was set while the entry was out.

    Between an unload and the next setup (the entry disabled a while, or Home
    Assistant restarting) no listener sees state changes: one of an entity written
    before is compared with its last state, one of an entity never written (new, or
    unchanged while the entry ran) is written then, once. A state set before the
    entry's first setup, unchanged since, is not this entry's to keep: it is not
    written at that setup, nor at a later one while Home Assistant runs.
    """
    hass.states.async_set("sensor.before_setup", "1", {"unit_of_measurement": "W"})
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    hass.states.async_set("sensor.written", "1", {"unit_of_measurement": "W"})
    assert await hass.config_entries.async_unload(config_entry.entry_id)

    hass.states.async_set("sensor.written", "2", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.new", "1", {"unit_of_measurement": "W"})
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    # A setup with nothing set meanwhile writes nothing again.
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    assert await hass.config_entries.async_unload(config_entry.entry_id)

    new = hass.states.get("sensor.new")
    assert new is not None
    rows = influxdb.rows('SELECT * FROM "W" GROUP BY "entity_id"', database)
    assert sorted((r["entity_id"], r["value"]) for r in rows) == [
        ("new", 1.0),
        ("written", 1.0),
        ("written", 2.0),
    ]
    (new_row,) = [r for r in rows if r["entity_id"] == "new"]
    assert new_row["time"] == timestamp_us(new.last_updated_timestamp)


async def test_fingerprints_are_computed_off_the_event_loop(
    hass: HomeAssistant, spool: Spool
) -> None:
    """Digesting states runs in the executor; one per entity, its last state."""
    last_states = LastStates(hass, "entry", spool)
    await last_states.async_load()
    threads: list[threading.Thread] = []
    digest = last_states_module.fingerprints

    def recording(states: list[State]) -> dict[str, str]:
        threads.append(threading.current_thread())
        return digest(states)

    states = [State(f"sensor.s{i % 10}", str(i), {"unit": "W"}) for i in range(100)]
    with patch.object(last_states_module, "fingerprints", recording):
        saved = await last_states.async_fingerprints(states)
    assert threads
    assert threads[0] is not threading.main_thread()
    assert saved == {
        f"sensor.s{i}": fingerprint(State(f"sensor.s{i}", str(90 + i), {"unit": "W"}))
        for i in range(10)
    }

    # Saved in the spool, they are what the next start compares with.
    await spool.save_state(saved)
    again = LastStates(hass, "entry", spool)
    await again.async_load()
    assert again.unchanged_since_restart(State("sensor.s7", "97", {"unit": "W"}))
    assert not again.unchanged_since_restart(State("sensor.s8", "9", {"unit": "W"}))
    # Only an entity's first state after a start is compared.
    assert not again.unchanged_since_restart(State("sensor.s7", "97", {"unit": "W"}))


async def test_lines_of_the_past_name_no_last_state(
    hass: HomeAssistant, spool: Spool
) -> None:
    """A backfill's lines come without a state: never an entity's last state."""
    last_states = LastStates(hass, "entry", spool)
    await last_states.async_load()
    live = State("sensor.power", "230", {"unit": "W"})
    assert await last_states.async_fingerprints([None, live, None]) == {
        "sensor.power": fingerprint(live)
    }
    # Lines of the past alone: nothing to digest, no job for the executor.
    with patch.object(last_states_module, "fingerprints") as digest:
        assert await last_states.async_fingerprints([None, None]) == {}
    digest.assert_not_called()


async def test_states_saved_before_0_2_are_taken_over_once(
    hass: HomeAssistant, spool: Spool, hass_storage: dict[str, Any]
) -> None:
    """The `.storage` file of an older version: read into the spool, then removed."""
    state = State("sensor.old", "5", {"unit": "W"})
    key = "ha_ingestor.entry.last_states"
    hass_storage[key] = {
        "version": 1,
        "minor_version": 1,
        "key": key,
        "data": {"sensor.old": fingerprint(state), "sensor.both": "stale"},
    }
    newer = State("sensor.both", "1")
    await spool.save_state({"sensor.both": fingerprint(newer)})
    last_states = LastStates(hass, "entry", spool)
    await last_states.async_load()
    await hass.async_block_till_done()
    assert key not in hass_storage
    assert await spool.last_states() == {
        "sensor.old": fingerprint(state),
        "sensor.both": fingerprint(newer),  # the spool's own is newer
    }
    assert last_states.unchanged_since_restart(state)
    assert last_states.unchanged_since_restart(newer)


class _Reading:
    """An object as integrations put into attributes: it says what it holds."""

    def __init__(self, value: object) -> None:
        self.value = value

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value}


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**130), max_value=2**130)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary(max_size=8)
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
)
HOSTILE = st.recursive(
    _SCALARS | st.builds(_Reading, _SCALARS),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(
            st.text(max_size=5) | st.integers() | st.booleans() | st.none(),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(attributes=st.dictionaries(st.text(max_size=8), HOSTILE, max_size=5))
def test_any_attribute_value_has_a_fingerprint(attributes: dict[str, Any]) -> None:
    """Any value an attribute can hold digests, and a copy of it digests the same.

    Huge and negative ints, NaN, nested containers, non-text keys, bytes, dates and
    objects with `as_dict`.
    """
    state = State("sensor.hostile", "1", attributes)
    digest = fingerprint(state)
    assert re.fullmatch(r"[0-9a-f]{24}", digest)
    assert fingerprint(State("sensor.hostile", "1", copy.deepcopy(attributes))) == (
        digest
    )
    reordered = dict(reversed(list(attributes.items())))
    assert fingerprint(State("sensor.hostile", "1", reordered)) == digest


class _FailingMapping(Mapping[str, Any]):
    """A mapping an integration made, which fails as it is read."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("unreadable")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("unreadable")

    def __len__(self) -> int:
        return 1


def _nested(depth: int) -> list[Any]:
    deep: list[Any] = []
    for _ in range(depth):
        deep = [deep]
    return deep


@pytest.mark.parametrize(
    "value", [_nested(5_000), _FailingMapping()], ids=["nested_too_deep", "failing"]
)
def test_a_state_that_cannot_be_walked_is_never_taken_for_unchanged(
    value: object,
) -> None:
    """Deeper than Python's recursion limit, or failing: a digest, never one twice.

    Missing a change at a restart would lose it; writing it again costs one point.
    """
    state = State("sensor.odd", "1", {"odd": value})
    digests = {fingerprint(state), fingerprint(state)}
    assert len(digests) == 2
    assert all(re.fullmatch(r"[0-9a-f]{24}", digest) for digest in digests)


HOSTILE_EXAMPLES: dict[str, dict[Any, Any]] = {
    "sensor.huge": {"unit_of_measurement": "W", "counter": 2**70},
    "sensor.negative": {"unit_of_measurement": "W", "counter": -(2**65)},
    "sensor.nan": {"unit_of_measurement": "W", "ratio": math.nan, "inf": math.inf},
    "sensor.nested": {"unit_of_measurement": "W", "deep": {"a": [1, {"b": (2, 3)}]}},
    "sensor.keys": {
        "unit_of_measurement": "W",
        "map": {1: "one", None: "none"},
        7: 7,  # a key of its own that is no text
    },
    "sensor.bytes": {"unit_of_measurement": "W", "raw": b"\x00\xff"},
    "sensor.when": {
        "unit_of_measurement": "W",
        "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    },
    "sensor.object": {"unit_of_measurement": "W", "reading": _Reading(5)},
    "sensor.text": {"unit_of_measurement": "W", "note": 'line\nbreak "quoted" \\ ☃'},
    # Code points UTF-8 cannot carry, in a key and a value: a pair, and a lone half.
    "sensor.surrogates": {"unit_of_measurement": "W", "k\udcff": "a\ud83d\ude00\ud800"},
    "sensor.unreadable": {"unit_of_measurement": "W", "reading": Unreadable()},
}


async def test_hostile_attributes_are_written_once_across_a_restart(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Every hostile value of the property test, through a whole stop and start.

    Unloading works whatever the data; after the restart, the same states are not
    written again: no point twice.
    """
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    for entity_id, attributes in HOSTILE_EXAMPLES.items():
        hass.states.async_set(entity_id, "1", attributes)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.NOT_LOADED
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_stop()

    async with restarted(hass, config_entry) as second:
        for entity_id, attributes in HOSTILE_EXAMPLES.items():
            second.states.async_set(entity_id, "1", attributes)
        await second.async_block_till_done()

    rows = influxdb.rows('SELECT * FROM "W" GROUP BY "entity_id"', database)
    written = Counter(row["entity_id"] for row in rows)
    assert written == Counter(
        {entity_id.split(".")[1]: 1 for entity_id in HOSTILE_EXAMPLES}
    )
