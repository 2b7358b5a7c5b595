"""The PNG next to docs/performance.md: CPU, persisted rate and loop lag by mode."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import matplotlib as mpl

mpl.use("Agg")  # no display: only files are written
import matplotlib.pyplot as plt
from matplotlib.ticker import StrMethodFormatter

from .ha_config import Mode
from .results import RunResult, summarize

# Names short enough to sit side by side under the bars.
_LABELS: Final[dict[Mode, str]] = {
    "a": "(a) HA alone",
    "l": "(l) HA + empty\nlistener",
    "b": "(b) built-in\ninfluxdb",
    # Three lines: "HA Ingestor core_compatible" on two overlaps its neighbours'.
    "c": "(c) HA\nIngestor\ncore_compatible",
    "d": "(d) HA\nIngestor\nrich",
    "g": "(g) HA\nIngestor\ncore_compatible\n+ gzip",
    "s": "(s) Scribe",
    "t": "(t) LTSS",
}
_LOOP_COLOUR = "#1f5f99"
_OTHER_COLOUR = "#8fb8de"
_RATE_COLOUR = "#3a923a"
_LAG_COLOUR = "#c0612b"


def _burst(runs: list[RunResult], mode: Mode) -> list[RunResult]:
    return [r for r in runs if r.mode == mode and r.scenario == "burst"]


def _median(runs: list[RunResult], key: str) -> float:
    summary = summarize(runs, key)
    return summary.median if summary is not None else 0.0


def _minimum(runs: list[RunResult], key: str) -> float:
    summary = summarize(runs, key)
    return summary.minimum if summary is not None else 0.0


def write_chart(
    path: Path,
    runs: list[RunResult],
    modes: tuple[Mode, ...],
    recorder: tuple[bool, ...] = (False,),
) -> None:
    """Draw three panels per recorder variant: CPU, persisted /s, loop lag p99.

    CPU µs per state change is split into the loop thread's and the rest.
    """
    labels = [_LABELS[m] for m in modes]
    positions = range(len(modes))
    figure, rows = plt.subplots(
        len(recorder), 3, figsize=(18, 4.8 * len(recorder)), squeeze=False
    )
    for (cpu_axes, rate_axes, lag_axes), variant in zip(rows, recorder, strict=True):
        title = " (recorder on)" if variant else " (recorder off)"
        by_mode = [[r for r in _burst(runs, m) if r.recorder == variant] for m in modes]
        loop_cpu = [_median(r, "loop_cpu_us_per_event") for r in by_mode]
        total_cpu = [_median(r, "cpu_us_per_event") for r in by_mode]
        other_cpu = [
            max(total - loop, 0.0)
            for total, loop in zip(total_cpu, loop_cpu, strict=True)
        ]
        cpu_axes.bar(positions, loop_cpu, color=_LOOP_COLOUR, label="event-loop thread")
        cpu_axes.bar(
            positions,
            other_cpu,
            bottom=loop_cpu,
            color=_OTHER_COLOUR,
            label="other threads",
        )
        cpu_axes.scatter(
            positions,
            [_minimum(r, "cpu_us_per_event") for r in by_mode],
            marker="_",
            s=400,
            color="black",
            label="min over repeats",
            zorder=3,
        )
        cpu_axes.set_title("CPU per state change (median; lower is better)" + title)
        cpu_axes.set_ylabel("µs of process CPU")
        cpu_axes.legend()

        persisted = [_median(r, "persisted_per_s") for r in by_mode]
        rate_axes.bar(positions, persisted, color=_RATE_COLOUR)
        rate_axes.set_title("Persisted per second (median; higher is better)" + title)
        rate_axes.set_ylabel("points or rows / s until the last is stored")
        rate_axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))

        lag_axes.bar(
            positions, [_median(r, "lag_p99_ms") for r in by_mode], color=_LAG_COLOUR
        )
        lag_axes.set_title("Event-loop lag p99 (median; lower is better)" + title)
        lag_axes.set_ylabel("ms")

        for axes in (cpu_axes, rate_axes, lag_axes):
            axes.set_xticks(list(positions), labels, fontsize=8)
            axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
