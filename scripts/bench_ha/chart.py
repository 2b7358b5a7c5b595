"""The PNG next to docs/performance.md: CPU per state change and persisted rate by mode."""

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
    "c": "(c) HA Ingestor\ncore_compatible",
    "d": "(d) HA Ingestor\nrich",
    "g": "(g) HA Ingestor\ncore_compatible\n+ gzip",
}
_LOOP_COLOUR = "#1f5f99"
_OTHER_COLOUR = "#8fb8de"
_RATE_COLOUR = "#3a923a"


def _burst(runs: list[RunResult], mode: Mode) -> list[RunResult]:
    return [r for r in runs if r.mode == mode and r.scenario == "burst"]


def _median(runs: list[RunResult], key: str) -> float:
    summary = summarize(runs, key)
    return summary.median if summary is not None else 0.0


def _minimum(runs: list[RunResult], key: str) -> float:
    summary = summarize(runs, key)
    return summary.minimum if summary is not None else 0.0


def write_chart(path: Path, runs: list[RunResult], modes: tuple[Mode, ...]) -> None:
    """Two panels: CPU µs per state change (loop thread and the rest), points/s."""
    labels = [_LABELS[m] for m in modes]
    by_mode = [_burst(runs, m) for m in modes]
    positions = range(len(modes))
    figure, (cpu_axes, rate_axes) = plt.subplots(1, 2, figsize=(12, 4.8))

    loop_cpu = [_median(r, "loop_cpu_us_per_event") for r in by_mode]
    total_cpu = [_median(r, "cpu_us_per_event") for r in by_mode]
    other_cpu = [
        max(total - loop, 0.0) for total, loop in zip(total_cpu, loop_cpu, strict=True)
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
    cpu_axes.set_title("CPU per state change (median; lower is better)")
    cpu_axes.set_ylabel("µs of process CPU")
    cpu_axes.legend()

    persisted = [_median(r, "persisted_per_s") for r in by_mode]
    rate_axes.bar(positions, persisted, color=_RATE_COLOUR)
    rate_axes.set_title("Points persisted per second (median; higher is better)")
    rate_axes.set_ylabel("points / s until the last is in InfluxDB")
    rate_axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))

    for axes in (cpu_axes, rate_axes):
        axes.set_xticks(list(positions), labels, fontsize=8)
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
