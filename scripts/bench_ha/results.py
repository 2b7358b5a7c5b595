"""What one run reports, and how runs of a mode are summed up."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
import statistics
from typing import Any, Final, Literal

type Scenario = Literal["burst", "outage", "down_burst", "restart"]


@dataclass(slots=True)
class RunResult:
    """One Home Assistant process: one mode, one scenario, one repeat.

    CPU covers the whole measured window: from the first state change fired until the
    last point is counted in InfluxDB (modes with an exporter) or until the last state
    change is fired (Home Assistant alone); in a burst with the recorder on, until the
    recorder has also committed every state change fired.
    """

    mode: str
    scenario: Scenario
    repeat: int
    # The recorder variant (Home Assistant's recorder on, SQLite, its defaults).
    recorder: bool
    database: str
    # Points of this run have a time >= since_ns (the entities' first states are older).
    since_ns: int
    events: int
    fire_seconds: float
    fired_per_s: float
    cpu_us_per_event: float
    loop_cpu_us_per_event: float
    lag_p99_ms: float
    lag_max_ms: float
    # The span p99 is taken over. In a burst it is the same for every mode, however
    # long its window: over a shorter span each garbage-collector pause weighs more in
    # p99, over a longer one (an exporter still writing) less.
    lag_seconds: float
    # Garbage-collector pauses in the CPU window, any thread, and how many were full.
    gc_pause_ms: float
    # Of those, the part while the burst was being fired: a full collection then
    # holds the firing itself up (with the recorder on, ~0.4 s each).
    gc_pause_firing_ms: float
    gc_full_collections: int
    # Collections of the middle generation in the CPU window, and their median pause.
    gc_middle_collections: int
    gc_middle_pause_median_ms: float
    # Of the lateness of the loop-lag ticks at p99 or later, the % spent in GC.
    lag_p99_gc_pct: float
    # Peak RSS during the measured window (the peak is reset when it starts), and RSS
    # when it started.
    peak_rss_mib: float
    rss_before_mib: float
    stored: int | None = None
    persist_seconds: float | None = None
    persisted_per_s: float | None = None
    # Outage and restart scenarios: the state changes fired while the database was down,
    # and how many of them are stored (restart: once Home Assistant, stopped while the
    # database was down, has started again and the database is back).
    fired_in_outage: int | None = None
    stored_in_outage: int | None = None
    # Restart scenario: what became of the exporter in the Home Assistant started while
    # the database was still down (its set-up, as Home Assistant tells it).
    setup_after_restart: str | None = None
    # Outage and down-burst: from InfluxDB's restart until the last point was counted.
    caught_up_seconds: float | None = None
    # Down-burst, HA Ingestor: the most lines its memory buffer holds (beyond them,
    # points go to the spool), the batch size it is a multiple of, and the mean size
    # in bytes (UTF-8) of the lines its encoder makes of this workload's states.
    buffer_cap_lines: int | None = None
    batch_size: int | None = None
    mean_line_bytes: float | None = None
    # A census run (scripts/bench --census): the commonest types in the young
    # generations at a middle-generation collection, and their mean count.
    young_objects: dict[str, float] | None = None

    @property
    def buffer_cap_mib(self) -> float | None:
        """The memory buffer's cap in MiB of this workload's lines."""
        if self.buffer_cap_lines is None or self.mean_line_bytes is None:
            return None
        return self.buffer_cap_lines * self.mean_line_bytes / 2**20

    @property
    def stored_pct(self) -> float | None:
        """Share of the fired state changes that are stored in InfluxDB."""
        if self.stored is None or not self.events:
            return None
        return 100.0 * self.stored / self.events

    @property
    def stored_in_outage_pct(self) -> float | None:
        """Share of the state changes fired during the outage that are stored."""
        if self.stored_in_outage is None or not self.fired_in_outage:
            return None
        return 100.0 * self.stored_in_outage / self.fired_in_outage

    def to_json(self) -> dict[str, Any]:
        """Plain data, for the child's result line."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        """Read a child's result line back."""
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True, slots=True)
class Metric:
    """A reported figure: its RunResult attribute, label and whether more is better."""

    key: str
    label: str
    higher_is_better: bool
    digits: int


METRICS: Final = (
    Metric("fired_per_s", "state changes fired /s", True, 0),
    Metric("persisted_per_s", "persisted /s (points or rows)", True, 0),
    Metric("cpu_us_per_event", "CPU µs / state change", False, 1),
    Metric("loop_cpu_us_per_event", "of which event-loop thread µs", False, 1),
    Metric("lag_p99_ms", "loop lag p99 ms", False, 2),
    Metric("lag_max_ms", "loop lag max ms", False, 1),
    Metric("gc_pause_ms", "GC pauses ms (total)", False, 0),
    Metric("gc_pause_firing_ms", "of which while firing ms", False, 0),
    Metric("gc_full_collections", "full GC collections", False, 0),
    Metric("gc_middle_collections", "middle-generation GC collections", False, 0),
    Metric(
        "gc_middle_pause_median_ms", "middle-generation GC pause ms (median)", False, 2
    ),
    Metric("lag_p99_gc_pct", "% of lag at or over p99 spent in GC", False, 0),
    Metric("peak_rss_mib", "peak RSS MiB", False, 0),
    Metric("stored_pct", "% stored", True, 2),
)


@dataclass(frozen=True, slots=True)
class Summary:
    """Min and median of one metric over the repeats of one mode."""

    minimum: float
    median: float


def metric_values(runs: list[RunResult], key: str) -> list[float]:
    """Return the values of `key` over `runs`, leaving out runs that have none."""
    values = (getattr(run, key) for run in runs)
    return [float(value) for value in values if value is not None]


def summarize(runs: list[RunResult], key: str) -> Summary | None:
    """Min and median of `key` over `runs`; None if no run has it."""
    if not (values := metric_values(runs, key)):
        return None
    return Summary(min(values), statistics.median(values))
