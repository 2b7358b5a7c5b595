"""The measured window of a run, and waiting for what it fires to be stored."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import time
from typing import Final

from .probes import (
    GcProbe,
    LoopLagProbe,
    YoungCensus,
    gc_seconds_between,
    peak_rss_mib,
    process_cpu_seconds,
    reset_peak_rss,
    rss_mib,
    thread_cpu_seconds,
)
from .protocol import RunSpec
from .results import RunResult
from .servers import ServerQueryError, StoredCounter

POLL_INTERVAL: Final = 0.25
WAIT_LIMIT: Final = 900.0


@dataclass(frozen=True, slots=True)
class StoredCount:
    """The outcome of waiting for points or rows to arrive in the database."""

    count: int
    # When the final count was first seen (time.monotonic, comparable across processes).
    reached_at: float
    # CPU the polling thread used: not the exporter's, so taken off the process's.
    poll_cpu: float
    # Whether the database answered a count at all (a refused one is no progress).
    answered: bool


def wait_stored(
    counter: StoredCounter,
    since_ns: int,
    expected: int,
    quiet: float,
    until_ns: int | None = None,
) -> StoredCount:
    """Poll until `expected` are stored or the count stands still `quiet` s.

    Runs in a worker thread (or the parent). A refused query (database down) counts as
    no progress.
    """
    cpu_before = thread_cpu_seconds()
    count, reached_at = -1, time.monotonic()
    deadline = reached_at + WAIT_LIMIT
    while True:
        try:
            now_count = counter.count(since_ns, until_ns)
        except ServerQueryError:
            now_count = count
        now = time.monotonic()
        if now_count > count:
            count, reached_at = now_count, now
        if count >= expected or now - reached_at >= quiet or now >= deadline:
            return StoredCount(
                max(count, 0),
                reached_at,
                thread_cpu_seconds() - cpu_before,
                answered=count >= 0,
            )
        time.sleep(POLL_INTERVAL)


async def wait_stored_async(
    counter: StoredCounter, since_ns: int, expected: int, quiet: float
) -> StoredCount:
    """wait_stored in a worker thread, leaving the event loop free."""
    return await asyncio.get_running_loop().run_in_executor(
        None, wait_stored, counter, since_ns, expected, quiet
    )


class Window:
    """The measured window: CPU, GC, loop lag and memory between start and stop."""

    def __init__(self, *, young_census: bool = False) -> None:
        """Nothing is measured until start; `young_census` adds a YoungCensus."""
        self._lag = LoopLagProbe()
        self._gc = GcProbe()
        self._census = YoungCensus() if young_census else None
        self.since_ns = 0
        self.started_at = 0.0
        self._cpu = 0.0
        self._loop_cpu = 0.0
        self.rss_before_mib = 0.0

    def start(self) -> None:
        """Start measuring; call in the event loop thread."""
        reset_peak_rss()
        self.rss_before_mib = rss_mib()
        self.since_ns = time.time_ns()
        self.started_at = time.monotonic()
        self._cpu = process_cpu_seconds()
        self._loop_cpu = thread_cpu_seconds()
        self._gc.start()
        self._lag.start()
        if self._census is not None:
            self._census.start()

    def seconds_after(self, wall_ns: int, monotonic: float) -> float:
        """Return the seconds from a wall-clock moment to a monotonic one."""
        return monotonic - self.started_at - (wall_ns - self.since_ns) / 1e9

    async def stop(
        self,
        spec: RunSpec,
        events: int,
        fired_at: float,
        poll_cpu: float,
        lag_span: float = 0.0,
    ) -> RunResult:
        """Stop measuring; call in the event loop thread.

        CPU, GC and memory stop now; loop lag goes on until `lag_span` seconds after
        the start, if that is later. With a `lag_span`, p99 is taken over exactly that
        span from the start, the same for every mode however long its window; the max
        is over the whole window.
        """
        cpu = process_cpu_seconds() - self._cpu - poll_cpu
        loop_cpu = thread_cpu_seconds() - self._loop_cpu
        gc_stats = self._gc.stats(until=time.monotonic())
        young_objects = None if self._census is None else self._census.stop()
        peak_rss = peak_rss_mib()
        if (remaining := self.started_at + lag_span - time.monotonic()) > 0:
            await asyncio.sleep(remaining)
        self._gc.stop()
        lag = self._lag.stop(
            self._gc.collections,
            until=self.started_at + lag_span if lag_span else None,
        )
        fire_seconds = fired_at - self.started_at
        return RunResult(
            mode=spec.mode,
            scenario=spec.scenario,
            repeat=spec.repeat,
            recorder=spec.recorder,
            database=spec.database,
            since_ns=self.since_ns,
            events=events,
            fire_seconds=fire_seconds,
            fired_per_s=events / fire_seconds,
            cpu_us_per_event=cpu * 1e6 / events,
            loop_cpu_us_per_event=loop_cpu * 1e6 / events,
            lag_p99_ms=lag.p99_ms,
            lag_max_ms=lag.max_ms,
            lag_seconds=lag_span or time.monotonic() - self.started_at,
            gc_pause_ms=gc_stats.pause_ms,
            gc_pause_firing_ms=gc_seconds_between(
                self._gc.collections, self.started_at, fired_at
            )
            * 1000,
            gc_full_collections=gc_stats.full_collections,
            gc_middle_collections=gc_stats.middle_collections,
            gc_middle_pause_median_ms=gc_stats.middle_pause_median_ms,
            lag_p99_gc_pct=lag.p99_gc_share * 100,
            peak_rss_mib=peak_rss,
            rss_before_mib=self.rss_before_mib,
            young_objects=young_objects,
        )


def burst_lag_span(events: int) -> float:
    """Return the span loop lag is sampled over in a burst, the same for every mode.

    Long enough for the built-in integration to write the burst at ~7,000 points/s.
    """
    return max(1.0, events * 150e-6)


def record_stored(result: RunResult, stored: StoredCount, started_at: float) -> None:
    """Add what reached the database, and how fast, to `result`."""
    result.stored = stored.count
    result.persisted_per_s = 0.0
    if stored.count:
        result.persist_seconds = stored.reached_at - started_at
        result.persisted_per_s = stored.count / result.persist_seconds
