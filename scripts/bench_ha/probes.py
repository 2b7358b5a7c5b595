"""What a run measures about its own process: CPU, event-loop lag, memory."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
import gc
import math
from pathlib import Path
import resource
import time
from typing import Final

LAG_INTERVAL: Final = 0.010
_OLDEST_GENERATION: Final = len(gc.get_threshold()) - 1
_MIDDLE_GENERATION: Final = 1
_PROC_STATUS: Final = Path("/proc/self/status")


def process_cpu_seconds() -> float:
    """User plus system CPU of the whole process, every thread included.

    CLOCK_PROCESS_CPUTIME_ID: nanoseconds, where os.times counts 10 ms ticks.
    """
    return time.process_time()


def thread_cpu_seconds() -> float:
    """CPU of the calling thread (call it in the event loop for the loop's share)."""
    return time.thread_time()


def _status_kib(key: str) -> int | None:
    try:
        lines = _PROC_STATUS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    """Make the peak RSS start again from the current RSS (Linux clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """Return the highest RSS since the process started or since reset_peak_rss."""
    if (kib := _status_kib("VmHWM")) is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def rss_mib() -> float:
    """Return the RSS of the process now."""
    return (_status_kib("VmRSS") or 0) / 1024


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile (0 when there are no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Collection:
    """One garbage collection: its generation, and when it began and ended.

    Times are time.monotonic, the clock of asyncio's loop.time.
    """

    generation: int
    began: float
    ended: float


@dataclass(frozen=True, slots=True)
class GcStats:
    """The garbage collector's pauses, in any thread (each holds the GIL)."""

    pause_ms: float
    full_collections: int
    # The middle generation's collections free what lived through a young one: in a
    # burst, the Events Home Assistant makes when something listens, once their entity
    # has changed again. Each stops the event loop for milliseconds.
    middle_collections: int
    middle_pause_median_ms: float


class GcProbe:
    """Times every collection through gc.callbacks.

    Full (oldest-generation) collections walk the whole heap of Home Assistant: on
    this machine each takes ~0.2 s, during which the event loop stands still.
    """

    def __init__(self) -> None:
        """Nothing is timed until start."""
        self._began = 0.0
        self.collections: list[Collection] = []

    def start(self) -> None:
        """Start timing collections."""
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.monotonic()
            return
        self.collections.append(
            Collection(info["generation"], self._began, time.monotonic())
        )

    def stats(self, until: float) -> GcStats:
        """Return the pauses of the collections that ended by `until` (monotonic)."""
        collections = [c for c in self.collections if c.ended <= until]
        middle_ms = [
            (c.ended - c.began) * 1000
            for c in collections
            if c.generation == _MIDDLE_GENERATION
        ]
        return GcStats(
            pause_ms=sum(c.ended - c.began for c in collections) * 1000,
            full_collections=sum(
                c.generation == _OLDEST_GENERATION for c in collections
            ),
            middle_collections=len(middle_ms),
            middle_pause_median_ms=percentile(middle_ms, 0.5),
        )

    def stop(self) -> None:
        """Stop timing collections."""
        gc.callbacks.remove(self._callback)


def gc_share_of_lateness(
    ticks: Sequence[tuple[float, float]],
    collections: Sequence[Collection],
    at_least: float,
) -> float:
    """Return the share of the lateness of ticks late by `at_least` s or more spent in GC.

    A tick is (due, ran); what a collection overlaps of the span between is its part.
    0 when no tick is that late.
    """
    late = [(due, ran) for due, ran in ticks if ran - due >= at_least]
    lateness = sum(ran - due for due, ran in late)
    if lateness <= 0:
        return 0.0
    in_gc = sum(gc_seconds_between(collections, due, ran) for due, ran in late)
    return in_gc / lateness


def gc_seconds_between(
    collections: Sequence[Collection], start: float, end: float
) -> float:
    """Return how much of the span from `start` to `end` collections overlapped."""
    return sum(max(0.0, min(c.ended, end) - max(c.began, start)) for c in collections)


class YoungCensus:
    """Counts, by type, the objects in the young generations at each middle collection.

    They are what a middle-generation collection walks, so they set its pause. Listing
    them costs milliseconds per collection: only for a run that is not measured.
    """

    def __init__(self) -> None:
        """Nothing is counted until start."""
        self.collections = 0
        self._objects: Counter[str] = Counter()

    def start(self) -> None:
        """Count at every middle-generation collection from now on."""
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase != "start" or info["generation"] != _MIDDLE_GENERATION:
            return
        self.collections += 1
        for generation in range(_MIDDLE_GENERATION + 1):
            self._objects.update(
                type(o).__qualname__ for o in gc.get_objects(generation)
            )

    def stop(self, most_common: int = 12) -> dict[str, float]:
        """Stop counting; return the mean count per collection of the commonest types."""
        gc.callbacks.remove(self._callback)
        if not self.collections:
            return {}
        return {
            name: count / self.collections
            for name, count in self._objects.most_common(most_common)
        }


@dataclass(frozen=True, slots=True)
class LagStats:
    """How late a 10 ms timer ran, in milliseconds."""

    p99_ms: float
    max_ms: float
    samples: int
    # Of the lateness of the ticks at p99 or later, the share garbage collection made.
    p99_gc_share: float


class LoopLagProbe:
    """A timer due every 10 ms that records how late the event loop runs it.

    Anything that holds the loop (a callback, a chunk of work, or another thread that
    holds the GIL) delays it; that delay is what every other integration feels.
    """

    def __init__(self, interval: float = LAG_INTERVAL) -> None:
        """Sample every `interval` seconds once started."""
        self._interval = interval
        # (due, ran) of every tick, in loop time.
        self._ticks: list[tuple[float, float]] = []
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Start sampling; call in the event loop."""
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self._interval
        self._handle = loop.call_at(self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self._ticks.append((self._due, now))
        # The next one is due an interval after this one ran: a long stall counts
        # once, not as a backlog of late timers.
        self._due = now + self._interval
        self._handle = loop.call_at(self._due, self._tick, loop)

    def stop(
        self, collections: Sequence[Collection], until: float | None = None
    ) -> LagStats:
        """Stop sampling; summarize, with the part `collections` had in the lag.

        p99 (and GC's part in it) is over the ticks due by `until` (loop time), if
        given; max is over every tick.
        """
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        ticks = [t for t in self._ticks if until is None or t[0] <= until]
        lateness = [ran - due for due, ran in ticks]
        p99 = percentile(lateness, 0.99)
        return LagStats(
            p99_ms=p99 * 1000,
            max_ms=max((ran - due for due, ran in self._ticks), default=0.0) * 1000,
            samples=len(lateness),
            p99_gc_share=gc_share_of_lateness(ticks, collections, p99),
        )
