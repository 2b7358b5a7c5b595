"""The listener: every state change becomes exactly one point in a real InfluxDB."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import threading
from typing import Any, cast

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import (
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    CONF_EXCLUDE_DOMAINS,
    CONF_FLUSH_INTERVAL,
    CONF_HEARTBEAT_MINUTES,
    DOMAIN,
)
from custom_components.ha_ingestor.line_protocol import create_encoder
from custom_components.ha_ingestor.pipeline import listener as listener_module
from custom_components.ha_ingestor.pipeline.batcher import Batcher
from custom_components.ha_ingestor.pipeline.filters import StateFilter
from custom_components.ha_ingestor.pipeline.last_states import LastStates
from custom_components.ha_ingestor.pipeline.listener import StateChangeListener
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import RegistryCache
from custom_components.ha_ingestor.storage.spool import Spool

from ..conftest import setup_entry, v2_entry_data, wait_until
from ..influxdb_v1_server import InfluxDBv1Server
from ..influxdb_v2_server import InfluxDBv2TestServer

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Expected = set[tuple[str, str, str, str | None, float | None, int]]

TEXT_STATES = ['mode "eco"', "a, b=c d", "back\\slash", "ünïcödé ☃", "on", "nan"]


def _set_states(hass: HomeAssistant, count: int) -> None:
    """Numeric sensors with units, on/off binary sensors and text, `count` changes."""
    for i in range(count):
        match i % 4:
            case 0:
                hass.states.async_set(
                    f"sensor.temperature_{i % 7}",
                    str(20 + i / 1000),
                    {"unit_of_measurement": "°C", "device_class": "temperature"},
                )
            case 1:
                hass.states.async_set(
                    f"sensor.power_{i % 5}", str(i), {"unit_of_measurement": "W"}
                )
            case 2:
                hass.states.async_set(
                    f"binary_sensor.door_{i % 3}", "on" if i % 8 == 2 else "off"
                )
            case _:
                hass.states.async_set(
                    f"select.mode_{i % 3}", f"{TEXT_STATES[i % len(TEXT_STATES)]} {i}"
                )


def _record_expected(hass: HomeAssistant) -> Expected:
    """Listen like the integration does and note the point each change must become.

    The default preset, core_compatible: the unit as measurement, else the entity id;
    a number as `value`; on/off as `state` and 1/0 as `value`; other text as `state`.
    The integration's own entities are not written.
    """
    expected: Expected = set()
    entities = er.async_get(hass)

    @callback
    def _record(event: Event[EventStateChangedData]) -> None:
        registered = entities.async_get(event.data["entity_id"])
        if registered is not None and registered.platform == DOMAIN:
            return
        state = event.data["new_state"]
        assert state is not None
        text: str | None = state.state
        value: float | None = {"on": 1.0, "off": 0.0}.get(state.state)
        with contextlib.suppress(ValueError):
            text, value = None, float(state.state)
        expected.add(
            (
                state.attributes.get("unit_of_measurement", state.entity_id),
                state.domain,
                state.object_id,
                text,
                value,
                (event.time_fired - EPOCH) // dt.timedelta(microseconds=1),
            )
        )

    hass.bus.async_listen(EVENT_STATE_CHANGED, _record)
    return expected


def _stored(influxdb: InfluxDBv1Server, database: str) -> Expected:
    return {
        (
            row["measurement"],
            row["domain"],
            row["entity_id"],
            row.get("state"),
            row.get("value"),
            row["time"],
        )
        for row in influxdb.rows(
            'SELECT * FROM /.*/ GROUP BY "domain", "entity_id"', database
        )
    }


def _point_count(influxdb: InfluxDBv1Server, database: str) -> int:
    """Points in the database: each measurement's largest field count, summed."""
    return sum(
        max(v for v in series["values"][0][1:] if v is not None)
        for series in influxdb.query("SELECT count(*) FROM /.*/", database)
    )


async def test_5000_state_changes_arrive_exactly(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Every change becomes one point: measurement, tags, typed field, event time."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    expected = _record_expected(hass)

    _set_states(hass, 5000)
    assert len(expected) == 5000
    await wait_until(
        lambda: _point_count(influxdb, database) >= 5000,
        "5000 points in InfluxDB",
        seconds=60,
    )

    assert _stored(influxdb, database) == expected
    fields = {
        (key, kind)
        for series in influxdb.query("SHOW FIELD KEYS", database)
        for key, kind in series["values"]
    }
    # One type per field, whatever the state.
    assert fields == {
        ("value", "float"),
        ("state", "string"),
        ("device_class_str", "string"),
    }
    # Batches, not one request per point: 5000 points in a handful of writes.
    stats = config_entry.runtime_data.pipeline.stats
    # InfluxDB may answer a moment after it stored the last batch.
    await wait_until(lambda: stats.points_written == 5000, "5000 points counted")
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def _setup_without_timed_flush(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    influxdb: InfluxDBv1Server,
    database: str,
) -> Expected:
    """Set up an entry that would not write on its own during the test."""
    options: dict[str, Any] = {CONF_BATCH_SIZE: 100_000, CONF_FLUSH_INTERVAL: 3600.0}
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(config_entry, options=options)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    expected = _record_expected(hass)
    _set_states(hass, 300)
    await hass.async_block_till_done()
    assert influxdb.query("SELECT count(*) FROM /.*/", database) == []
    return expected


async def test_unload_writes_what_is_in_memory(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Points still buffered when the entry unloads are written, none lost."""
    expected = await _setup_without_timed_flush(hass, config_entry, influxdb, database)

    assert await hass.config_entries.async_unload(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.NOT_LOADED
    assert _stored(influxdb, database) == expected


async def test_home_assistant_stop_writes_what_is_in_memory(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Stopping Home Assistant writes the buffered points in the final-write stage."""
    expected = await _setup_without_timed_flush(hass, config_entry, influxdb, database)

    await hass.async_stop()
    assert _stored(influxdb, database) == expected


async def test_v2_state_changes_arrive_exactly(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """The same points, through /api/v2/write with a token, org and bucket."""
    entry = MockConfigEntry(domain=DOMAIN, data=v2_entry_data(influxdb_v2))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    expected = _record_expected(hass)
    _set_states(hass, 2000)
    assert await hass.config_entries.async_unload(entry.entry_id)

    stored = {
        (
            point.measurement,
            point.tags["domain"],
            point.tags["entity_id"],
            point.fields.get("state"),
            point.fields.get("value"),
            point.time_ns // 1000,
        )
        for point in influxdb_v2.points("ha")
    }
    assert len(influxdb_v2.points("ha")) == 2000
    assert stored == expected


class _RecordingBatcher:
    """Takes lines as the batcher's `add` does, and keeps them for the test."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.states: list[State] = []

    def add(self, line: str, state: State) -> None:
        self.lines.append(line)
        self.states.append(state)


def _listener_excluding_lights(
    hass: HomeAssistant, spool: Spool
) -> tuple[StateChangeListener, _RecordingBatcher, PipelineStats]:
    """A listener that excludes the light domain, enqueueing into a recording batcher."""
    registry = RegistryCache(hass)
    options = {CONF_EXCLUDE_DOMAINS: ["light"]}
    stats = PipelineStats()
    batcher = _RecordingBatcher()
    listener = StateChangeListener(
        StateFilter(options, registry),
        LastStates(hass, "entry", spool),
        create_encoder(options, registry, stats),
        cast(Batcher, batcher),
        stats,
    )
    return listener, batcher, stats


async def test_the_hot_path_counts_everything_and_enqueues_what_is_written(
    hass: HomeAssistant, spool: Spool
) -> None:
    """Every state change is counted; only included ones with a line are enqueued.

    A removed entity (no new state), an excluded domain and the empty state (core
    writes nothing for it) count as received and add nothing.
    """
    listener, batcher, stats = _listener_excluding_lights(hass, spool)
    unsubscribe = hass.bus.async_listen(
        EVENT_STATE_CHANGED, listener.async_state_changed
    )
    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    hass.states.async_set("light.kitchen", "on")
    hass.states.async_set("sensor.empty", "")
    hass.states.async_remove("sensor.power")
    await hass.async_block_till_done()
    unsubscribe()

    assert stats.state_changes_received == 4
    assert len(batcher.lines) == 1
    assert batcher.lines[0].startswith("W,domain=sensor,entity_id=power value=5.0 ")
    # Each line goes with the state it was made of: its fingerprint is saved with it.
    assert [state.entity_id for state in batcher.states] == ["sensor.power"]


async def test_heartbeat_enqueues_every_included_state_at_its_time(
    hass: HomeAssistant, spool: Spool
) -> None:
    """The heartbeat writes current states with the heartbeat's own timestamp."""
    listener, batcher, stats = _listener_excluding_lights(hass, spool)
    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.temperature", "21", {"unit_of_measurement": "°C"})
    hass.states.async_set("light.kitchen", "on")
    now = dt.datetime(2026, 12, 3, 12, 0, 0, 250_000, tzinfo=dt.UTC)
    listener.async_heartbeat(hass, now)
    assert sorted(line.split(" ")[0] for line in batcher.lines) == [
        "W,domain=sensor,entity_id=power",
        "°C,domain=sensor,entity_id=temperature",
    ]
    assert {line.rpartition(" ")[2] for line in batcher.lines} == {
        str(int(now.timestamp()) * 1_000_000 + 250_000)
    }
    # A heartbeat is no state change.
    assert stats.state_changes_received == 0


async def test_a_heartbeat_of_more_states_than_memory_holds_writes_them_all(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A big house with small batches: 2,500 states at once, memory holds 2,000.

    The heartbeat enqueues them in one step of the event loop (in the loop, never in
    a thread beside it); the spool takes what memory does not at its next turn, and
    every one is written at the heartbeat's time.
    """
    threads: list[int] = []
    heartbeat = StateChangeListener.async_heartbeat

    @callback
    def _heartbeat(
        listener: StateChangeListener, hass: HomeAssistant, now: dt.datetime
    ) -> None:
        threads.append(threading.get_ident())
        heartbeat(listener, hass, now)

    monkeypatch.setattr(StateChangeListener, "async_heartbeat", _heartbeat)
    for i in range(2_500):
        hass.states.async_set(f"sensor.power_{i}", "5", {"unit_of_measurement": "W"})
    await setup_entry(
        hass, config_entry, {CONF_BATCH_SIZE: 100, CONF_HEARTBEAT_MINUTES: 1}
    )
    pipeline = config_entry.runtime_data.pipeline
    # Never written before: the states set before the start are not written.
    assert pipeline.batcher.pending == 0
    beat = dt_util.utcnow() + dt.timedelta(minutes=1, seconds=1)
    async_fire_time_changed(hass, beat)
    await hass.async_block_till_done()
    assert threads == [hass.loop_thread_id]

    await wait_until(
        lambda: len(_stored(influxdb, database)) == 2_500, "2,500 points", seconds=60
    )
    points = _stored(influxdb, database)
    # One point per entity, all at the heartbeat's own time.
    assert {entity_id for _, _, entity_id, _, _, _ in points} == {
        f"power_{i}" for i in range(2_500)
    }
    assert len({written_at for *_, written_at in points}) == 1
    assert pipeline.stats.points_dropped_memory_full == 0
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_enqueued_state_changes_events_are_held_for_a_turn_of_time_or_count(
    hass: HomeAssistant, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Events whose lines are enqueued are held in turns, then let go.

    A turn ends after 0.5 s or EVENT_HOLD_COUNT Events (3 here), and the turn before
    is let go. Held, a burst's Events outlive the garbage collector's young
    generations (see pipeline/listener.py). One that is not enqueued is not held.
    """
    clock = 1000.0
    monkeypatch.setattr(listener_module, "monotonic", lambda: clock)
    monkeypatch.setattr(listener_module, "EVENT_HOLD_COUNT", 3)
    listener, batcher, stats = _listener_excluding_lights(hass, spool)

    def change(entity_id: str, at: float) -> Event[EventStateChangedData]:
        nonlocal clock
        clock = at
        event = Event[EventStateChangedData](
            EVENT_STATE_CHANGED,
            {
                "entity_id": entity_id,
                "old_state": State(entity_id, "1"),
                "new_state": State(entity_id, "2"),
            },
        )
        listener.async_state_changed(event)
        return event

    def held(event: Event[EventStateChangedData]) -> bool:
        # The test keeps its Events in variables and tuples, never in a list: a
        # list that refers to one is the listener's.
        return any(isinstance(referrer, list) for referrer in gc.get_referrers(event))

    first = change("sensor.a", 1000.0)
    second = change("sensor.b", 1000.4)
    excluded = change("light.kitchen", 1000.45)
    third = change("sensor.c", 1000.6)
    assert (held(first), held(second), held(third)) == (True, True, True)
    assert not held(excluded)
    fourth = change("sensor.d", 1001.1)
    assert (held(first), held(second)) == (False, False)
    assert (held(third), held(fourth)) == (True, True)

    # Within the time of one turn: three Events end it, the fourth starts the next.
    burst = tuple(change(f"sensor.burst_{n}", 1001.2) for n in range(4))
    assert (held(third), held(fourth)) == (False, True)
    more = tuple(change(f"sensor.burst_{n}", 1001.3) for n in range(4, 7))
    assert [held(fourth), *map(held, burst), *map(held, more)] == [
        *(False, False, False),  # the turn of fourth, burst_0 and burst_1: let go
        *(True, True, True, True, True),
    ]
    assert len(batcher.lines) == 4 + 7
    assert stats.state_changes_received == 5 + 7  # the excluded one too
