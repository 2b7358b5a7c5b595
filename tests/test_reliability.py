"""The data-loss contract, proved on real processes killed at chosen moments (issue 19).

Each test has a house of its own (tests/house.py): influxd and Home Assistant as
processes, HA Ingestor set up through its config flow over the REST API. The counter is
set to 1, 2, 3... through the REST API while Home Assistant is killed with SIGKILL or
stopped; then Home Assistant starts again, InfluxDB comes back, and what InfluxDB holds
is compared with what was fired: every change up to the last flush interval before the
kill stored exactly once at its own time, no point twice, and no new point for an
entity whose state is the same after the restart as the last one written before it.
A burst comes from a script instead (its changes read from the websocket API), and
two tests reach influxd through a relay that keeps its answers: a write InfluxDB
stored whose answer never came.

docs/reliability.md lists what each test proves. Each scenario logs what it measured
(`--log-cli-level=INFO` shows it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
import datetime as dt
import logging
import os
import re
import time
from typing import Any

import pytest

from custom_components.ha_ingestor.const import DEFAULT_FLUSH_INTERVAL

from .e2e.home_assistant import REPO, wait_for
from .house import (
    BURST_COUNTER,
    CONSTANT,
    COUNTER,
    HUGE,
    NON_FINITE,
    REST_HOSTILE,
    UNTOUCHED,
    CounterFiring,
    Fired,
    House,
    StateWatcher,
)

_LOGGER = logging.getLogger(__name__)

INTERVAL = DEFAULT_FLUSH_INTERVAL
# Measured from the kill back to the oldest change lost, a busy two-core machine adds
# the flush loop's own step (one spool transaction) and the event loop's lag.
MARGIN = 0.5
# Entities whose state is the same after a restart as the last one written before it:
# Home Assistant sets the input_numbers to their initial value at every start, the test
# sets the REST one again as its device would. The points each must have, in all.
UNCHANGED = {CONSTANT: 2, NON_FINITE: 2, REST_HOSTILE: 1}
# A device that reports "a", then "b" while a write hangs (the silent outage).
REPORTED = "sensor.reliability_reported"
FAILING = "Writing to InfluxDB failed"
# The burst: 2,000 to 3,000 changes/s from a script, for several seconds.
BURST = 20_000
# A burst of the padded sensor: 6,000 points of 4 kB, and as many of the counter.
PADDED_BURST = 6_000


# --- Home Assistant's in-process harness: not used here -------------------------------


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No in-process Home Assistant (tests/conftest.py would start one)."""


def _house(
    directory: pytest.TempPathFactory,
    *,
    huge: bool = False,
    padded: bool = False,
    relay: bool = False,
) -> Iterator[House]:
    house = House(directory.mktemp("house"), huge=huge, padded=padded, relay=relay)
    try:
        house.start()
        yield house
    finally:
        house.close()


@pytest.fixture
def house(
    tmp_path_factory: pytest.TempPathFactory, socket_enabled: None
) -> Iterator[House]:
    """Run influxd and Home Assistant, with HA Ingestor's entry loaded, for one test."""
    yield from _house(tmp_path_factory)


@pytest.fixture
def huge_house(
    tmp_path_factory: pytest.TempPathFactory, socket_enabled: None
) -> Iterator[House]:
    """The same, with a counter whose attributes are ints of ±2**70."""
    yield from _house(tmp_path_factory, huge=True)


@pytest.fixture
def padded_house(
    tmp_path_factory: pytest.TempPathFactory, socket_enabled: None
) -> Iterator[House]:
    """The same, with a sensor of 4 kB attributes that follows the burst counter."""
    yield from _house(tmp_path_factory, padded=True)


@pytest.fixture
def relay_house(
    tmp_path_factory: pytest.TempPathFactory, socket_enabled: None
) -> Iterator[House]:
    """The same, HA Ingestor reaching influxd through a relay that can keep answers."""
    yield from _house(tmp_path_factory, relay=True)


# --- One stop or kill, and what InfluxDB holds after it -------------------------------


@dataclass(slots=True)
class Trial:
    """The counter's changes around one stop or kill."""

    initial: Fired
    """Its state when the entry was set up, before the test fired anything."""
    before: CounterFiring
    """Changes fired before the stop or kill."""
    stopped_at: float
    """When Home Assistant was killed, or asked to stop (s since the epoch)."""
    restarted: Fired
    """Its state as Home Assistant set it at the restart."""
    after: list[Fired]
    """Changes fired after the restart."""


def begin(house: House) -> tuple[Fired, CounterFiring]:
    """The counter's state, and a firing from 1 (to start with `with`).

    The entities of UNCHANGED get their last state before the stop: the input_numbers
    their initial value again, after another one.
    """
    house.post_rest_hostile()
    house.set_input_number(CONSTANT, 41)
    house.set_input_number(CONSTANT, 42)
    house.set_input_number(NON_FINITE, 2)
    house.set_input_number(NON_FINITE, 1)
    return house.counter_now(), CounterFiring(house, 1)


def restart(
    house: House, *, influxdb_down: bool, reported: str | None = None
) -> tuple[Fired, list[Fired]]:
    """Start Home Assistant (while InfluxDB is down, if it is), then InfluxDB.

    Returns the counter's state as Home Assistant set it at the start, and the changes
    fired after it: 20 before InfluxDB is back, 20 after.
    """
    house.start_home_assistant()
    restarted = house.counter_now()
    # Devices reporting their unchanged state once Home Assistant is back.
    house.post_rest_hostile()
    if reported is not None:
        house.post_state(REPORTED, reported)
    after = [house.set_counter(1_000_000 + i) for i in range(20)]
    if influxdb_down:
        house.influxdb.start()
    after += [house.set_counter(2_000_000 + i) for i in range(20)]
    return restarted, after


def check(house: House, trial: Trial, *, bound: float | None) -> None:
    """Assert the contract on what InfluxDB holds once nothing waits; log the figures.

    `bound`: the most seconds before the kill a lost change may have been fired;
    None for a stop, which loses nothing.
    """
    house.wait_until_nothing_waits()
    stored = house.counter_points()
    stored_set = set(stored)
    before = trial.before.fired

    # The state Home Assistant set at the restart is a change if it differs from the
    # last one made durable before the stop; the same, it must not be written again.
    last_durable = max(
        (p for p in stored if p.time_us < trial.restarted.time_us),
        key=lambda p: p.time_us,
    )
    restart_is_a_change = trial.restarted.value != last_durable.value
    assert (trial.restarted in stored_set) == restart_is_a_change, (
        f"the state set at the restart, {trial.restarted}, was "
        f"{'not ' if restart_is_a_change else ''}written (the last durable before "
        f"the stop: {last_durable})"
    )

    expected = {*before, *trial.after, trial.restarted}
    # The change whose request got no answer may be stored, once, at a time unknown.
    unconfirmed = [p for p in stored if p.value == trial.before.unconfirmed]
    assert len(unconfirmed) <= 1
    unexpected = stored_set - expected - {trial.initial, *unconfirmed}
    assert not unexpected, f"stored but not fired, or stored twice: {unexpected}"
    assert set(trial.after) <= stored_set, "changes fired after the restart lost"

    lost = sorted(set(before) - stored_set, key=lambda p: p.time_us)
    oldest_lost = trial.stopped_at - lost[0].time_us / 1e6 if lost else 0.0
    if bound is None:
        assert not lost, f"a stop lost {len(lost)} changes: {lost[:5]}..."
    else:
        assert oldest_lost <= bound + MARGIN, (
            f"{len(lost)} changes lost, the oldest fired {oldest_lost:.2f} s "
            f"before the kill"
        )

    _check_unchanged_and_gaps(house, trial.stopped_at, bound)

    fired_values = {p.value for p in (*before, *trial.after)}
    twice = sum(
        n > 1
        for value, n in Counter(p.value for p in stored_set - {trial.restarted}).items()
        if value in fired_values
    )
    assert twice == 0
    _LOGGER.info(
        "%s: fired %d before the %s and %d after; stored %d; lost %d (the oldest "
        "fired %.2f s before the kill); stored twice %d; the state set at the "
        "restart %s",
        os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
        len(before),
        "stop" if bound is None else "kill",
        len(trial.after),
        len(stored),
        len(lost),
        oldest_lost,
        twice,
        "differed, written" if restart_is_a_change else "was the same, not written",
    )


def _check_unchanged_and_gaps(
    house: House, stopped_at: float, bound: float | None
) -> None:
    """No unchanged entity written again, no point dropped, no gap beyond a kill's.

    An entity never written before the stop has its state at the restart written
    once, at the time Home Assistant set it. The gaps are what the start found
    missing, for a repair issue to write from the recorder: after a stop none (the
    states set while Home Assistant starts are no gap); after a kill, what the
    recorder committed after the last change made durable, which `bound` (and the
    margin) limits.
    """
    for entity_id, points in UNCHANGED.items():
        assert house.point_count(entity_id) == points, f"{entity_id} written again"
    assert house.counter_points(UNTOUCHED) == [house.counter_now(UNTOUCHED)], (
        "the state of an entity never written, as Home Assistant set it at the restart"
    )
    diagnostics = house.diagnostics()
    assert diagnostics["stats"]["points_dropped"] == 0
    gaps = diagnostics["history_backfill"]["gaps"]
    if bound is None:
        assert gaps == [], f"a stop left a gap: {gaps}"
    for gap in gaps:
        since = stopped_at - dt.datetime.fromisoformat(gap["start"]).timestamp()
        assert since <= (bound or 0) + MARGIN, (
            f"a gap from {since:.2f} s before the kill: {gap}"
        )


def check_burst(
    house: House, watched: list[Fired], stopped_at: float, restarted: Fired
) -> None:
    """Assert the contract on BURST_COUNTER once nothing waits; log the figures.

    Its points before the kill must be 1, 2, 3... up to the last made durable, each
    once, at the time Home Assistant gave it (`watched`: the changes the websocket
    API sent before the kill); the oldest change lost, fired an interval at most
    before the kill. After the restart: the state Home Assistant set, if it differs.
    """
    house.wait_until_nothing_waits()
    stored = house.counter_points(BURST_COUNTER)
    killed_us = stopped_at * 1e6
    before = [p for p in stored if p.time_us < killed_us]
    values = [p.value for p in before]
    assert values == list(range(1, len(values) + 1)), "a change missing or twice"
    assert [p.value for p in watched] == list(range(1, len(watched) + 1))
    watched_at = {p.value: p.time_us for p in watched}
    moved = [p for p in before if watched_at.get(p.value, p.time_us) != p.time_us]
    assert not moved, f"stored at another time than Home Assistant's: {moved[:5]}"
    assert len(watched) > len(before) / 2  # most of what is stored was compared

    lost = [p for p in watched if p.value > len(before)]
    # Had the websocket API not sent the first change lost before the kill, it was
    # fired after the last one stored.
    oldest_lost = stopped_at - (lost[0] if lost else before[-1]).time_us / 1e6
    assert oldest_lost <= INTERVAL + MARGIN, (
        f"{len(lost)} changes lost, the oldest fired {oldest_lost:.2f} s before the "
        "kill"
    )
    last = before[-1]
    assert [p for p in stored if p.time_us >= killed_us] == (
        [restarted] if restarted.value != last.value else []
    )
    _check_unchanged_and_gaps(house, stopped_at, INTERVAL)
    rate = len(watched) / ((watched[-1].time_us - watched[0].time_us) / 1e6)
    _LOGGER.info(
        "%s: %d changes/s; %d seen before the kill; stored %d, each once at its "
        "time; lost at least %d (the oldest fired %.2f s before the kill, at "
        "most); the state set at the restart: %s",
        os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
        rate,
        len(watched),
        len(before),
        len(lost),
        oldest_lost,
        restarted.value,
    )


def _counter_lines(request: bytes) -> list[bytes]:
    """The counter's lines in a write request as sent (line protocol, not gzipped)."""
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /write"), head[:80]
    return [
        line for line in body.splitlines() if line.startswith(f"{COUNTER},".encode())
    ]


def _value(line: bytes) -> int:
    """The counter's value in one of its lines."""
    match = re.search(rb"[ ,]value=([-+.\de]+)[ ,]", line)
    assert match is not None, line
    return int(float(match[1]))


def _integration_errors(house: House) -> list[str]:
    """Error lines of HA Ingestor in Home Assistant's log since it started."""
    return [
        line
        for line in house.log().splitlines()
        if " ERROR " in line and "[custom_components.ha_ingestor" in line
    ]


def _sleep_until(moment: float) -> None:
    """Sleep until time.monotonic() is `moment`: a chosen moment, not a wait."""
    time.sleep(max(0.0, moment - time.monotonic()))


def _wait_for_log(house: House, text: str) -> None:
    wait_for(lambda: text in house.log(), f"{text!r} in Home Assistant's log", 60)


def _wait_for_a_spill(house: House) -> None:
    """Wait until the spool holds more than now: memory was just spilled."""
    spooled = house.diagnostics()["spool"]["points"]
    wait_for(
        lambda: house.diagnostics()["spool"]["points"] > spooled,
        "a spill to the spool",
        60,
        interval=0.05,
    )


# --- The scenarios --------------------------------------------------------------------


def test_sigkill_during_steady_writing(house: House) -> None:
    """SIGKILL while InfluxDB takes every batch: one flush interval lost at most."""
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(300)
        stopped_at = house.kill_home_assistant()
    restarted, after = restart(house, influxdb_down=False)

    trial = Trial(initial, firing, stopped_at, restarted, after)
    check(house, trial, bound=INTERVAL)


def test_sigkill_mid_burst(house: House) -> None:
    """SIGKILL in the middle of a burst from a script (2,000 to 3,000 changes/s).

    Killed a quarter into a burst of 20,000 changes: batches go out as they fill,
    and the kill loses the last interval at most, as in steady writing.
    """
    begin(house)
    with StateWatcher(house, BURST_COUNTER) as watcher:
        house.start_burst(BURST)
        watcher.wait_for_changes(BURST // 4)
        stopped_at = house.kill_home_assistant()
    watched = [p for p in watcher.fired if p.time_us < stopped_at * 1e6]
    assert watched[-1].value < BURST // 2, "killed near the end of the burst"
    house.start_home_assistant()
    restarted = house.counter_now(BURST_COUNTER)
    house.post_rest_hostile()

    check_burst(house, watched, stopped_at, restarted)


def test_sigkill_while_spooling(house: House) -> None:
    """SIGKILL while InfluxDB is down and memory goes to the spool: the spool survives.

    Killed late in a flush interval, just before the next spill.
    """
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(100)
        house.influxdb.kill()
        _wait_for_log(house, FAILING)
        _wait_for_a_spill(house)
        _wait_for_a_spill(house)
        _sleep_until(time.monotonic() + 0.8 * INTERVAL)
        stopped_at = house.kill_home_assistant()
    restarted, after = restart(house, influxdb_down=True)

    trial = Trial(initial, firing, stopped_at, restarted, after)
    check(house, trial, bound=INTERVAL)


def test_sigkill_once_the_full_spool_dropped_points(padded_house: House) -> None:
    """SIGKILL after the spool, at its size limit, dropped its oldest points for room.

    The points dropped are counted, with their times, in the very transactions that
    delete them: killed after the last of those, with nothing else saved since, Home
    Assistant starts again knowing every one, and the repair issue is raised.
    """
    house = padded_house
    house.set_delivery_options({"spool_max_mb": 16})
    house.influxdb.kill()
    house.set_counter(1)
    _wait_for_log(house, FAILING)
    # Each change: a point of the counter and one of 4 kB of the padded sensor, 24 MB
    # in all for a spool of 16 MB.
    house.start_burst(PADDED_BURST)
    wait_for(
        lambda: house.counter_now(BURST_COUNTER).value == PADDED_BURST,
        "the burst's end",
        120,
    )

    def settled() -> dict[str, Any] | None:
        """The diagnostics once memory is spooled and nothing changed for a second."""
        before = house.diagnostics()
        time.sleep(1.0)
        after = house.diagnostics()
        figures = [
            (d["stats"]["points_dropped_spool_full"], d["spool"]["points"])
            for d in (before, after)
        ]
        spool = after["spool"]
        quiet = (
            figures[0] == figures[1] and spool["in_memory"] == spool["in_flight"] == 0
        )
        return after if quiet and figures[1][0] > 0 else None

    settled_dropped = wait_for(settled, "the spool settled", 120)["stats"][
        "points_dropped_spool_full"
    ]
    # One change more: its spill must drop points too. Killed as soon as it did,
    # before anything else is saved.
    house.api("POST", "/api/services/counter/increment", {"entity_id": BURST_COUNTER})

    def dropped_more() -> dict[str, Any] | None:
        diagnostics = house.diagnostics()
        stats = diagnostics["stats"]
        return (
            diagnostics
            if stats["points_dropped_spool_full"] > settled_dropped
            else None
        )

    diagnostics = wait_for(dropped_more, "the last spill's drops", 30, interval=0.02)
    house.kill_home_assistant()
    dropped = diagnostics["stats"]["points_dropped_spool_full"]
    span = diagnostics["history_backfill"]["dropped_unacknowledged"]

    saved = house.saved_stats()
    _LOGGER.info(
        "%d points dropped for room, %d waiting; saved: %d dropped, from %s to %s",
        dropped,
        diagnostics["spool"]["points"],
        saved["points_dropped_spool_full"],
        saved["dropped_from"],
        saved["dropped_until"],
    )
    # At least: a change of another entity may have been spilled, dropping more,
    # between the diagnostics and the kill.
    assert saved["points_dropped_spool_full"] >= dropped
    saved_from, saved_until = (
        dt.datetime.fromisoformat(saved[name])
        for name in ("dropped_from", "dropped_until")
    )
    assert saved_from <= dt.datetime.fromisoformat(span["start"])
    assert saved_until >= dt.datetime.fromisoformat(span["end"])

    house.start_home_assistant()
    restarted = house.diagnostics()["stats"]["points_dropped_spool_full"]
    assert restarted >= saved["points_dropped_spool_full"]
    issues = house.websocket({"type": "repairs/list_issues"})["issues"]
    assert f"points_dropped_{house.entry_id}" in {
        issue["issue_id"] for issue in issues if issue["domain"] == "ha_ingestor"
    }


def test_sigkill_8_s_into_a_silent_outage(house: House) -> None:
    """A write that hangs until its 10 s timeout keeps nothing from the spool.

    InfluxDB is replaced by a server that never answers; 8 s later the write is still
    waiting, and Home Assistant is killed. A device reported "a" as the write began
    and "b" while it hung: reporting "b" again after the restart writes nothing.
    """
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(100)
        house.silence_influxdb()
        silent_from = time.monotonic()
        house.post_state(REPORTED, "a")
        _sleep_until(silent_from + 1.3 * INTERVAL)
        house.post_state(REPORTED, "b")
        _sleep_until(silent_from + 8)
        assert FAILING not in house.log(), "the write did not hang"
        assert house.diagnostics()["spool"]["points"] > 0
        stopped_at = house.kill_home_assistant()
    house.end_silence()
    restarted, after = restart(house, influxdb_down=True, reported="b")

    trial = Trial(initial, firing, stopped_at, restarted, after)
    check(house, trial, bound=INTERVAL)
    assert house.point_count(REPORTED) == 2, '"b" written again after the restart'


def test_sigkill_2_5_s_into_a_silent_outage(house: House) -> None:
    """Killed once the first write that hangs has been copied: an interval at most."""
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(100)
        house.silence_influxdb()
        _sleep_until(time.monotonic() + 2.5 * INTERVAL)
        assert FAILING not in house.log(), "the write did not hang"
        stopped_at = house.kill_home_assistant()
    house.end_silence()
    restarted, after = restart(house, influxdb_down=True)

    check(house, Trial(initial, firing, stopped_at, restarted, after), bound=INTERVAL)


@pytest.mark.parametrize(
    "into_the_write",
    [
        # Just before the tick that copies the batch whose write hangs: the worst
        # moment, with what came in the half interval before the write began lost too.
        pytest.param(0.45 * INTERVAL, id="before_its_copy"),
        # Just before a full interval: where the batch used to be copied.
        pytest.param(0.9 * INTERVAL, id="an_interval_in"),
    ],
)
def test_sigkill_as_the_first_write_hangs(house: House, into_the_write: float) -> None:
    """A silent outage's first write hangs: killed `into_the_write` seconds into it.

    The write began at a tick, with the points of the half interval before it; the
    next tick, half an interval later, copies them to the spool with what came since.
    A kill at any moment loses the last interval at most.
    """
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(100)
        silent = house.silence_influxdb()
        wait_for(lambda: silent.requests_at or None, "a write began to hang", 10, 0.001)
        _sleep_until(silent.requests_at[0] + into_the_write)
        assert FAILING not in house.log(), "the write did not hang"
        stopped_at = house.kill_home_assistant()
    house.end_silence()
    restarted, after = restart(house, influxdb_down=True)

    check(house, Trial(initial, firing, stopped_at, restarted, after), bound=INTERVAL)


def test_sigkill_as_influxdb_stored_a_write_not_answered_yet(
    relay_house: House,
) -> None:
    """SIGKILL in the middle of a write: InfluxDB has stored the batch, not answered.

    Home Assistant never learns that the batch was written, nor saves its last
    states: after the restart no change is stored twice, and what memory held is
    lost, an interval at most.
    """
    house = relay_house
    relay = house.relay
    assert relay is not None
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(100)
        relay.hold_answers()
        wait_for(lambda: relay.held > 0, "a write stored, its answer held", 30, 0.01)
        stopped_at = house.kill_home_assistant()
    (request,) = relay.held_requests
    in_flight = {_value(line) for line in _counter_lines(request)}
    assert in_flight, "the write held no change of the counter"
    assert in_flight <= {p.value for p in house.counter_points()}, "not stored"
    relay.pass_answers()
    restarted, after = restart(house, influxdb_down=False)

    trial = Trial(initial, firing, stopped_at, restarted, after)
    check(house, trial, bound=INTERVAL)


def test_sigkill_once_a_write_not_answered_was_copied(relay_house: House) -> None:
    """The same unanswered write, an interval later: its batch is in the spool too.

    Killed an interval (and the margin) after InfluxDB answered: the batch must be
    copied by then. After the restart the copy is written again, which InfluxDB stores once (the
    same series and time): no change is stored twice, and an interval is lost at
    most.
    """
    house = relay_house
    relay = house.relay
    assert relay is not None
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(100)
        relay.hold_answers()
        wait_for(lambda: relay.held > 0, "a write stored, its answer held", 30, 0.01)
        held_at = time.monotonic()
        _sleep_until(held_at + INTERVAL + MARGIN)
        stopped_at = house.kill_home_assistant()
    (request,) = relay.held_requests
    lines = _counter_lines(request)
    assert lines, "the write held no change of the counter"
    spooled = set(house.spool_lines())
    assert {line.decode() for line in lines} <= spooled, "the batch was not copied"
    relay.pass_answers()
    restarted, after = restart(house, influxdb_down=False)

    trial = Trial(initial, firing, stopped_at, restarted, after)
    check(house, trial, bound=INTERVAL)


def test_graceful_stop_with_influxdb_down(house: House) -> None:
    """A stop during an outage puts memory in the spool: nothing lost, nothing twice."""
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(100)
        house.influxdb.kill()
        _wait_for_log(house, FAILING)
        firing.wait_for_changes(len(firing.fired) + 100)
        stopped_at = time.time()
        house.stop_home_assistant()
    restarted, after = restart(house, influxdb_down=True)

    trial = Trial(initial, firing, stopped_at, restarted, after)
    check(house, trial, bound=None)


def test_graceful_stop_with_influxdb_up(house: House) -> None:
    """A stop writes what is in memory; the counter restored at the start is not."""
    initial, firing = begin(house)
    with firing:
        firing.wait_for_changes(300)
        stopped_at = time.time()
        house.stop_home_assistant()
    restarted, after = restart(house, influxdb_down=False)

    trial = Trial(initial, firing, stopped_at, restarted, after)
    check(house, trial, bound=None)


def test_unloading_with_hostile_attributes_always_succeeds(huge_house: House) -> None:
    """Disable, enable and reload the entry: each unload succeeds, whatever the data.

    The states hold ints of ±2**70, NaN and infinity, and what the REST API carries.
    No restart is needed, and no point is written twice, not even across a stop and
    start.
    """
    house = huge_house
    house.post_rest_hostile()
    house.set_input_number(NON_FINITE, 2)
    house.set_input_number(NON_FINITE, 1)
    # 2**70 + 1, then 2**70 again: its initial value, which it has after a start.
    house.api("POST", "/api/services/counter/increment", {"entity_id": HUGE})
    house.api("POST", "/api/services/counter/reset", {"entity_id": HUGE})
    house.wait_until_nothing_waits()
    wait_for(lambda: house.point_count(HUGE) == 2, "2**70 + 1 and 2**70 written", 30)

    entry = {"type": "config_entries/disable", "entry_id": house.entry_id}
    for _ in range(2):
        assert house.websocket(entry | {"disabled_by": "user"}) == {
            "require_restart": False
        }
        assert house.entry_state() == "not_loaded"
        assert house.websocket(entry | {"disabled_by": None}) == {
            "require_restart": False
        }
        house.wait_until_loaded()
    reload = f"/api/config/config_entries/entry/{house.entry_id}/reload"
    assert house.api("POST", reload) == {"require_restart": False}
    house.wait_until_loaded()
    assert not _integration_errors(house)

    house.stop_home_assistant()
    house.start_home_assistant()
    house.post_rest_hostile()
    house.wait_until_nothing_waits()
    assert {e: house.point_count(e) for e in (HUGE, NON_FINITE, REST_HOSTILE)} == {
        HUGE: 2,
        NON_FINITE: 2,
        REST_HOSTILE: 1,
    }
    assert house.diagnostics()["stats"]["non_finite_values_skipped"] > 0


def test_the_contract_names_tests_that_exist() -> None:
    """Each test docs/reliability.md names is a test function of the module it names.

    In a row, `::name` is a test of the module named last before it.
    """
    named = 0
    for row in (REPO / "docs" / "reliability.md").read_text("utf-8").splitlines():
        module = ""
        for ref in re.findall(r"`((?:tests/[\w/]+\.py)?(?:::\w+)?)`", row):
            path, _, name = ref.partition("::")
            module = path or module
            if name:
                source = (REPO / module).read_text("utf-8")
                assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), ref
                named += 1
    assert named >= 45
