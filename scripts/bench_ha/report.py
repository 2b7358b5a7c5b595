"""docs/performance.md: the tables of one session, its command and the machine.

With --recorder both, every table is given twice, recorder off and on; ratios are only
ever taken between runs of the same variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .ha_config import ALL_MODES, EXPORTER_MODES, MODE_NAMES, Mode
from .orchestrate import DOWN_AFTER_BURST, MEMORY_REFERENCE, BenchOptions, BenchResults
from .peers import PEERS
from .results import METRICS, RunResult, Summary, summarize
from .scenarios import RESTART_SHARE

# What HA Ingestor may hold in memory beyond its buffer cap during a down-burst, the
# fixed overhead the issue asks to state: SQLite's page cache, aiosqlite's queue and
# freed memory Python's allocator keeps.
STATED_OVERHEAD_MIB: Final = 32
# Gzip on (g) against the same mode with it off (c): the figures compared.
GZIP_MODES: Final[tuple[Mode, Mode]] = ("g", "c")
GZIP_METRICS: Final = (
    ("cpu_us_per_event", "CPU / state change"),
    ("persisted_per_s", "points persisted /s"),
    ("lag_p99_ms", "loop lag p99"),
)


@dataclass(frozen=True, slots=True)
class Session:
    """Facts about the session that made the results."""

    command: str
    started: str
    machine: str
    software: str
    load: str


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's targets: a ratio of medians from the same session."""

    description: str
    metric: str
    mode: Mode
    reference: Mode
    limit: float
    at_most: bool


TARGETS: Final = (
    Target(
        "CPU per state change, core_compatible vs HA alone",
        "cpu_us_per_event",
        "c",
        "a",
        2.0,
        True,
    ),
    Target(
        "CPU per state change, rich vs HA alone",
        "cpu_us_per_event",
        "d",
        "a",
        2.5,
        True,
    ),
    Target(
        "points persisted /s, core_compatible vs built-in",
        "persisted_per_s",
        "c",
        "b",
        3.0,
        False,
    ),
    Target(
        "points persisted /s, rich vs built-in", "persisted_per_s", "d", "b", 3.0, False
    ),
    Target(
        "loop lag p99, core_compatible vs built-in", "lag_p99_ms", "c", "b", 1.0, True
    ),
    Target("loop lag p99, rich vs built-in", "lag_p99_ms", "d", "b", 1.0, True),
)


def _label(mode: str) -> str:
    return f"({mode}) {MODE_NAMES.get(mode, mode)}"


def _runs(results: BenchResults, scenario: str, mode: str) -> list[RunResult]:
    return [r for r in results.runs if r.scenario == scenario and r.mode == mode]


def _number(value: float | None, digits: int, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _median(results: BenchResults, metric: str, mode: str) -> float | None:
    """Median of `metric` over the burst runs of `mode`; None if none has it."""
    summary = summarize(_runs(results, "burst", mode), metric)
    return None if summary is None else summary.median


def ratio(
    results: BenchResults, metric: str, mode: str, reference: str
) -> float | None:
    """Median of `metric` in `mode` over its median in `reference` (burst runs)."""
    value = _median(results, metric, mode)
    base = _median(results, metric, reference)
    if value is None or not base:
        return None
    return value / base


def burst_table(results: BenchResults, modes: tuple[Mode, ...]) -> list[str]:
    """Every metric per mode, as min / median over the repeats."""

    def cell(summary: Summary | None, digits: int) -> str:
        if summary is None:
            return "-"
        return f"{_number(summary.minimum, digits)} / {_number(summary.median, digits)}"

    rows = [
        [metric.label]
        + [
            cell(summarize(_runs(results, "burst", m), metric.key), metric.digits)
            for m in modes
        ]
        for metric in METRICS
    ]
    return _table(["min / median", *[_label(m) for m in modes]], rows)


# Figures every mode is given as a multiple of the built-in integration's (b) and of
# HA Ingestor's (c), whichever of them ran.
_COMPARED: Final = (
    ("cpu_us_per_event", "CPU / state change"),
    ("loop_cpu_us_per_event", "loop-thread CPU"),
    ("persisted_per_s", "persisted /s"),
    ("lag_p99_ms", "loop lag p99"),
    ("lag_max_ms", "loop lag max"),
    ("peak_rss_mib", "peak RSS"),
)
_REFERENCES: Final[tuple[Mode, ...]] = ("b", "c")


def ratio_table(results: BenchResults, modes: tuple[Mode, ...]) -> list[str]:
    """Each mode's medians as multiples of HA alone's, the built-in's and HA Ingestor's."""
    keys = [
        ("cpu_us_per_event", "a", "CPU / state change vs (a)"),
        ("cpu_us_per_event", "l", "CPU / state change vs (l)"),
        ("loop_cpu_us_per_event", "a", "loop-thread CPU vs (a)"),
        ("fired_per_s", "a", "state changes fired /s vs (a)"),
        ("peak_rss_mib", "a", "peak RSS vs (a)"),
    ]
    keys += [
        (key, reference, f"{label} vs ({reference})")
        for reference in _REFERENCES
        for key, label in _COMPARED
    ]
    rows = []
    for key, reference, label in keys:
        if reference not in modes:
            continue
        rows.append(
            [label]
            + [_number(ratio(results, key, m, reference), 2, "x") for m in modes]
        )
    if "l" in modes:
        own = {m: own_cpu(results, m) if m in EXPORTER_MODES else None for m in modes}
        rows.append(
            ["exporter's own CPU µs / state change (over (l))"]
            + [_number(own[m], 1) for m in modes]
        )
        rows.extend(
            [f"exporter's own CPU vs ({reference})"]
            + [
                _number(None if (value := own[m]) is None else value / base, 2, "x")
                for m in modes
            ]
            for reference in _REFERENCES
            if (base := own.get(reference)) is not None and base > 0
        )
    return _table(["ratio of medians", *[_label(m) for m in modes]], rows)


def gzip_note(results: BenchResults, modes: tuple[Mode, ...]) -> str:
    """Compare gzip on (g) with off (c) in ratios of medians, when both ran."""
    gzip_on, gzip_off = GZIP_MODES
    if gzip_on not in modes or gzip_off not in modes:
        return ""
    figures = ", ".join(
        f"{label} {_number(ratio(results, key, gzip_on, gzip_off), 2, 'x')}"
        for key, label in GZIP_METRICS
    )
    return f"gzip on ({gzip_on}) vs off ({gzip_off}): {figures}"


def own_cpu(results: BenchResults, mode: str) -> float | None:
    """Return what a mode's own code costs on top of what any listener costs (l)."""
    value = _median(results, "cpu_us_per_event", mode)
    floor = _median(results, "cpu_us_per_event", "l")
    if value is None or floor is None:
        return None
    return value - floor


def target_table(results: BenchResults) -> list[str]:
    """Tabulate the issue's targets, met or not, in this session."""
    rows = []
    for target in TARGETS:
        value = ratio(results, target.metric, target.mode, target.reference)
        if value is None:
            continue
        met = value <= target.limit if target.at_most else value >= target.limit
        wanted = f"{'≤' if target.at_most else '≥'} {target.limit:g}x"
        rows.append(
            [target.description, wanted, f"{value:.2f}x", "yes" if met else "**no**"]
        )
    for run in _scenario_runs(results, "outage"):
        if run.mode in PEERS:
            continue
        pct = run.stored_pct
        rows.append(
            [
                f"outage: stored, {_label(run.mode)}",
                "100%" if run.mode != "b" else "(reference)",
                _number(pct, 2) + "%",
                "-"
                if run.mode == "b"
                else ("yes" if run.stored == run.events else "**no**"),
            ]
        )
    return _table(["target", "wanted", "this run", "met"], rows) if rows else []


# Issue 20: HA Ingestor against every peer (the built-in integration, Scribe, LTSS).
PEER_MODES: Final[tuple[Mode, ...]] = ("b", "s", "t")
TARGET_MODES: Final[tuple[Mode, ...]] = ("c", "d")
OWN_CPU_SHARE: Final = 0.25
PERSISTED_MULTIPLE: Final = 2.0


def _peer_target_row(
    description: str, wanted: float | None, value: float | None, *, at_most: bool
) -> list[str] | None:
    """Make a target row: the bound, the value, met or not, and value / bound."""
    if wanted is None or value is None or wanted <= 0:
        return None
    met = value <= wanted if at_most else value >= wanted
    return [
        description,
        f"{'≤' if at_most else '≥'} {wanted:,.2f}",
        f"{value:,.2f}",
        "yes" if met else "**no**",
        f"{value / wanted:.2f}x the bound",
    ]


def peer_target_table(results: BenchResults, modes: tuple[Mode, ...]) -> list[str]:
    """Issue 20's targets for each HA Ingestor mode, against the peers that ran."""
    peers = [m for m in PEER_MODES if m in modes]
    rows = []
    for mode in (m for m in TARGET_MODES if m in modes):
        label = _label(mode)
        lags = {
            m: _median(results, "lag_p99_ms", m) for m in [*peers, "l"] if m in modes
        }
        known = {m: v for m, v in lags.items() if v is not None}
        if known:
            lowest = min(known, key=lambda m: known[m])
            row = _peer_target_row(
                f"{label}: loop lag p99 ms, no higher than any peer's or (l)'s"
                f" (lowest: ({lowest}))",
                known[lowest],
                _median(results, "lag_p99_ms", mode),
                at_most=True,
            )
            rows += [row] if row else []
        own = {m: own_cpu(results, m) for m in peers}
        own_known = {m: v for m, v in own.items() if v is not None and v > 0}
        if own_known:
            cheapest = min(own_known, key=lambda m: own_known[m])
            description = (
                f"{label}: own CPU µs / state change over (l), at most"
                f" {OWN_CPU_SHARE:g} of the cheapest peer's (({cheapest}))"
            )
            value = own_cpu(results, mode)
            row = _peer_target_row(
                description, own_known[cheapest] * OWN_CPU_SHARE, value, at_most=True
            )
            if row and value is not None and value <= 0:
                # Below (l)'s own: what varies between runs is larger than what the
                # exporter costs, which this run could not measure.
                row[3:] = [
                    "**unknown**",
                    "not measured: below (l)'s, the noise is larger",
                ]
            rows += [row] if row else []
        rates = {m: _median(results, "persisted_per_s", m) for m in peers}
        rates_known = {m: v for m, v in rates.items() if v is not None}
        if rates_known:
            fastest = max(rates_known, key=lambda m: rates_known[m])
            row = _peer_target_row(
                f"{label}: persisted /s, at least {PERSISTED_MULTIPLE:g}x the fastest"
                f" peer's (({fastest}))",
                rates_known[fastest] * PERSISTED_MULTIPLE,
                _median(results, "persisted_per_s", mode),
                at_most=False,
            )
            rows += [row] if row else []
        for scenario in ("outage", "restart"):
            for run in _runs(results, scenario, mode):
                stored = run.stored_pct
                rows.append(
                    [
                        f"{label}: {scenario} scenario, % stored",
                        "100%",
                        _number(stored, 2, "%"),
                        "yes" if run.stored == run.events else "**no**",
                        f"{run.events - (run.stored or 0):,} missing",
                    ]
                )
    header = ["target", "bound", "this run", "met", "by how much"]
    return _table(header, rows) if rows else []


def _floor_note(results: BenchResults) -> str:
    """Say what mode l showed: the share of any exporter's cost it cannot avoid."""
    if (floor := ratio(results, "cpu_us_per_event", "l", "a")) is None:
        return ""
    return (
        f"Home Assistant with an empty `state_changed` listener, mode (l), costs"
        f" {floor:.2f}x the CPU of Home Assistant alone in this session: every"
        " exporter that listens on the event bus starts from there. Most of it is"
        " garbage collection (see GC pauses below) of the `Event` objects Home"
        " Assistant creates only when something listens."
    )


def _lag_note(results: BenchResults) -> str:
    """Say how much of the worst lag was garbage collection, mode by mode."""
    gc_shares = {
        mode: share
        for mode in ("c", "d", "g", "b", "l")
        if (share := _median(results, "lag_p99_gc_pct", mode))
    }
    if not gc_shares:
        return ""
    shares = ", ".join(
        f"{_number(share, 0, '%')} in ({m})" for m, share in gc_shares.items()
    )
    pauses = ", ".join(
        f"{_number(_median(results, 'gc_middle_pause_median_ms', m), 1, ' ms')}"
        f" in ({m})"
        for m in gc_shares
    )
    return (
        f"Loop lag: of the lateness of the ticks at p99 and over, garbage collection"
        f" made {shares} (medians over the repeats). The middle-generation"
        f" collections that free Home Assistant's `Event` objects pause the loop"
        f" {pauses} (median pause). See GC pauses in"
        " [How it is measured](#how-it-is-measured) for why the built-in's and"
        " HA Ingestor's are short."
    )


def _scenario_runs(results: BenchResults, scenario: str) -> list[RunResult]:
    return sorted(
        (r for r in results.runs if r.scenario == scenario),
        key=lambda r: ALL_MODES.index(r.mode),
    )


def outage_table(results: BenchResults) -> list[str]:
    """% stored per exporter when its database is killed for the middle third."""
    rows = [
        [
            _label(r.mode),
            f"{r.events:,}",
            f"{r.stored or 0:,}",
            _number(r.stored_pct, 2) + "%",
            f"{r.fired_in_outage or 0:,}",
            f"{r.stored_in_outage or 0:,} ({_number(r.stored_in_outage_pct, 1)}%)",
            _number(r.caught_up_seconds, 1, " s"),
        ]
        for r in _scenario_runs(results, "outage")
    ]
    header = [
        "exporter",
        "fired",
        "stored",
        "% stored",
        "fired while down",
        "of those stored",
        "last point stored after the restart",
    ]
    return _table(header, rows)


def restart_table(results: BenchResults) -> list[str]:
    """Tabulate what each exporter keeps when Home Assistant stops in an outage."""
    rows = [
        [
            _label(r.mode),
            f"{r.events:,}",
            f"{r.fired_in_outage or 0:,}",
            r.setup_after_restart or "-",
            f"{r.stored or 0:,} ({_number(r.stored_pct, 1)}%)",
            f"{r.stored_in_outage or 0:,} ({_number(r.stored_in_outage_pct, 1)}%)",
            _number(r.caught_up_seconds, 1, " s"),
        ]
        for r in _scenario_runs(results, "restart")
    ]
    header = [
        "exporter",
        "fired",
        "fired while down, before the stop",
        "exporter after the restart, database down",
        "stored in all",
        "of those fired while down, stored",
        "last point stored after the database is back",
    ]
    return _table(header, rows)


def findings_section(
    findings: Mapping[str, Mapping[str, int]], modes: tuple[Mode, ...]
) -> list[str]:
    """List the warnings and errors each exporter's burst runs left in the log."""
    lines = []
    for mode in (m for m in modes if m in findings):
        lines += ["", f"{_label(mode)}:", ""]
        if not findings[mode]:
            lines.append("- nothing at warning level or above")
        lines += [
            f"- {count:,}x `{message}`"
            for message, count in sorted(findings[mode].items(), key=lambda f: -f[1])
        ]
    return lines


def down_burst_table(results: BenchResults) -> list[str]:
    """Memory during a burst while the database is down, and what is stored afterwards.

    HA Ingestor's growth over Home Assistant's own (mode l) is held against its buffer
    cap plus the stated fixed overhead.
    """
    runs = _scenario_runs(results, "down_burst")
    reference = next((r for r in runs if r.mode == MEMORY_REFERENCE), None)
    rows = []
    for r in runs:
        growth_over_reference = (
            None
            if reference is None or r is reference
            else r.peak_rss_mib - reference.peak_rss_mib
        )
        rows.append(
            [
                _label(r.mode),
                f"{r.events:,}",
                _number(r.rss_before_mib, 0),
                _number(r.peak_rss_mib, 0),
                _number(r.peak_rss_mib - r.rss_before_mib, 0),
                _number(growth_over_reference, 0),
                _number(r.buffer_cap_mib, 1),
                _within_bound(growth_over_reference, r.buffer_cap_mib),
                _number(r.stored_pct, 2, "%"),
                _number(r.caught_up_seconds, 1, " s"),
            ]
        )
    header = [
        "exporter",
        "state changes",
        "RSS before MiB",
        "peak RSS MiB",
        "growth MiB",
        f"growth over ({MEMORY_REFERENCE}) MiB",
        "buffer cap MiB",
        "within cap + overhead",
        "% stored once the database is back",
        "last point stored after the restart",
    ]
    return _table(header, rows)


def _within_bound(growth: float | None, buffer_cap_mib: float | None) -> str:
    """Whether a growth is within the buffer cap plus the stated overhead."""
    if growth is None or buffer_cap_mib is None:
        return "-"
    return "yes" if growth <= buffer_cap_mib + STATED_OVERHEAD_MIB else "**no**"


def _down_burst_intro(results: BenchResults) -> str:
    """Say how the down-burst is driven, and the memory bound HA Ingestor is held to."""
    runs = _scenario_runs(results, "down_burst")
    intro = (
        "The database is killed before the burst and restarted"
        f" {DOWN_AFTER_BURST:g} s after its last state change. RSS of the whole Home"
        " Assistant process; the peak covers the burst, the time the database stays"
        " down, and the catch-up after it returns."
    )
    if any(r.mode == MEMORY_REFERENCE for r in runs):
        intro += (
            f" ({MEMORY_REFERENCE}) fires the same burst without an exporter: Home"
            " Assistant's own growth."
        )
    caps = sorted(
        {
            (r.buffer_cap_lines, r.batch_size)
            for r in runs
            if r.buffer_cap_lines is not None and r.batch_size is not None
        }
    )
    if caps:
        held = " or ".join(
            f"{lines:,} lines in memory ({lines // batch} batches of {batch:,})"
            for lines, batch in caps
        )
        intro += (
            f"\n\nHA Ingestor holds at most {held}; the rest waits in the spool."
            f" Stated bound: growth over ({MEMORY_REFERENCE}) ≤ buffer cap +"
            f" {STATED_OVERHEAD_MIB} MiB fixed overhead (SQLite page cache, aiosqlite's"
            " queue, Python's allocator keeping freed arenas)."
        )
    return intro


def _section(title: str, lines: list[str], intro: str = "") -> list[str]:
    return ["", f"## {title}", "", *([intro, ""] if intro else []), *lines]


def _variant_title(recorder: bool) -> str:
    return "recorder on (SQLite, defaults)" if recorder else "recorder off"


def _variant_sections(
    results: BenchResults, options: BenchOptions, recorder: bool
) -> list[str]:
    """Every table of one recorder variant."""
    variant = _variant_title(recorder)
    modes = tuple(m for m in options.modes if _runs(results, "burst", m))
    lines: list[str] = []
    if peer_rows := peer_target_table(results, modes):
        lines += _section(
            f"Targets against every peer (issue 20), {variant}",
            peer_rows,
            "Medians over the repeats; the bound is taken from the peers of this"
            " session and variant.",
        )
    if target_rows := target_table(results):
        intro = "\n\n".join(n for n in (_floor_note(results), _lag_note(results)) if n)
        lines += _section(f"Targets (issue 7), {variant}", target_rows, intro)
    lines += _section(
        f"Ratios to HA alone (a), the built-in integration (b) and HA Ingestor (c),"
        f" {variant}",
        ratio_table(results, modes),
    )
    if note := gzip_note(results, modes):
        lines += ["", note]
    lines += _section(
        f"Burst: {options.events:,} state changes, {options.entities} entities, "
        f"{options.repeats} repeats, {variant}",
        burst_table(results, modes),
        "Each cell is min / median over the repeats.",
    )
    if _scenario_runs(results, "outage"):
        lines += _section(
            f"Outage: ~{options.rate:g} state changes/s for {options.outage_seconds:g} s,"
            f" the database killed for the middle {options.outage_seconds / 3:g} s,"
            f" {variant}",
            outage_table(results),
            "The exporter's database is killed by PID (SIGKILL) and restarted on the"
            " same data; every exporter runs with its default settings.",
        )
    if _scenario_runs(results, "restart"):
        seconds = options.outage_seconds * RESTART_SHARE
        lines += _section(
            f"Restart: Home Assistant stopped while the database is down, {variant}",
            restart_table(results),
            f"~{options.rate:g} state changes/s for {seconds:g} s; the database is"
            f" killed after {seconds / 2:g} s; Home Assistant is then stopped"
            " gracefully, started again with the database still down, and the"
            " database restarted; the stored rows or points of the first run are"
            " counted once nothing more arrives.",
        )
    if _scenario_runs(results, "down_burst"):
        lines += _section(
            f"Burst of {options.events:,} state changes with the database down:"
            f" memory, {variant}",
            down_burst_table(results),
            _down_burst_intro(results),
        )
    return lines


def render(
    results: BenchResults,
    options: BenchOptions,
    session: Session,
    chart: Path | None,
) -> str:
    """Render the whole of docs/performance.md."""
    lines = [
        "# Performance: HA Ingestor, Home Assistant's built-in InfluxDB integration"
        " and the peers",
        "",
        f"Made by `{session.command}` on {session.started}.",
        f"Machine: {session.machine}. Software: {session.software}.",
        f"Load average (1, 5, 15 min) {session.load}.",
        "",
        "Other work may share these cores (the load averages say how much), and",
        "absolute figures move by up to 1.7x within minutes on this machine, so the",
        "figures to compare are the ratios between modes of the same session, whose",
        "runs were interleaved. See [How it is measured](#how-it-is-measured).",
    ]
    if chart is not None:
        lines += [
            "",
            f"![CPU per state change, persisted per second, loop lag]({chart.name})",
        ]
    for recorder in options.recorder:
        lines += _variant_sections(results.variant(recorder), options, recorder)
    if results.findings:
        lines += _section(
            "What the log shows a new user",
            findings_section(results.findings, options.modes),
            "Warnings and errors in home-assistant.log that name the exporter, from"
            " its set-up and burst runs (numbers in a message replaced by N), with how"
            " many times each appeared over those runs.",
        )
    lines += _section("How it is measured", METHOD.splitlines())
    return "\n".join(lines) + "\n"


METHOD: Final = """\
- One command, `scripts/bench`, runs everything in one session on one machine against
  one local InfluxDB 1.x (a plain `influxd`, authentication on) and, for the peers, one
  local PostgreSQL 18 with TimescaleDB (a plain `postgres` on its own `initdb` data
  directory, password authentication, TimescaleDB preloaded), a fresh database per run.
- Each run is a fresh Python process that starts a real Home Assistant with
  `homeassistant.bootstrap` on a fresh config dir with a real `configuration.yaml`
  (no `default_config`), exactly as the `hass` command does, with pip disabled; the
  integrations under test are loaded from the config dir's `custom_components/`, as at
  a user's. Modes: (a) nothing else; (b) the built-in `influxdb` integration,
  set up through its YAML import (`influxdb:` with host, port, database, username,
  password; default settings); (c) and (d) HA Ingestor from a config entry with the
  option `preset` = `core_compatible` or `rich`; (g), on request, is (c) with the
  option `gzip` on (each write request gzip-compressed); (s) Scribe and (t) LTSS, the
  peers, at their newest release (commit pinned in `scripts/bench_ha/peers.py`, the
  code checked file by file against it), set up as their READMEs tell a new user: YAML
  with only `db_url`, every other setting at its default; Scribe's README has the
  user create a `scribe` user and the `timescaledb` extension in the new database,
  LTSS's has it connect as the superuser (it creates the extension itself). Their
  declared requirements are pinned in `requirements_test.txt`.
- Recorder variant (`--recorder on` or `both`): the same, with `recorder:` in
  `configuration.yaml` (SQLite in the config dir, its defaults). In a burst, every
  mode's window then also waits until the recorder has committed what was fired
  (`async_block_till_done`), so that each includes all of the recorder's work.
- The house: 500 entities, 70% numeric sensors (unit, device class, state class,
  friendly name), 20% on/off binary sensors, 10% text sensors. The entities' first
  states are created, and stored, before anything is measured. Then the state changes
  are fired with `hass.states.async_set` in the event loop, 100 at a time with a
  yield to the loop in between. Each carries the attribute `seq`, unique per event,
  so every one is a real state change and every stored point is traced to it. (So
  attributes change with every state change: the worst case for an exporter that
  reuses work per set of attributes; in a real house most changes keep them.)
- Modes run interleaved (the order rotates each repeat); `gc.collect()` runs before
  the clock starts.
- Fired /s: state changes divided by the time to fire them all. Persisted /s: points
  (InfluxDB) or rows (PostgreSQL: Scribe's `states_raw`, LTSS's `ltss`) stored divided
  by the time from the first state change until the database's count (`SELECT
  count(...)`, polled every 0.25 s from a separate thread; PostgreSQL's through `psql`)
  reaches the last value it reaches (every one, or no growth for 10 s).
- CPU per state change: process CPU time (`time.process_time`, every thread) over the
  same window, less the counting thread's own, divided by the state changes; the
  event-loop thread's share is `time.thread_time` in the loop. For (a) and (l) the
  window ends when the last state change is fired.
- Loop lag: a timer due every 10 ms records how late it runs; p99 and max. In a burst
  p99 is over exactly 150 µs per state change (3 s for 20,000, 15 s for 100,000) from
  the first one, the same span for every mode: most of the lag is garbage-collector
  pauses, so over a shorter span each pause would weigh more, and over a longer one
  (an exporter that takes a minute to write, as LTSS does) less. Max is over the
  whole window, until the last point or row is stored. Each tick's lateness is split
  into the part garbage collections overlapped and the rest, for the ticks at p99
  and over.
- GC pauses: every collection in the CPU window, timed through `gc.callbacks`, and
  the part of them while the burst was being fired (a pause then holds the firing
  up); full collections walk Home Assistant's whole heap (~0.2 s each here, ~0.4 s
  with the recorder's backlog). Home Assistant creates an `Event` per state change
  only when something listens to `state_changed`, and each `Event` forms a reference
  cycle with its `Context` that the entity's current state keeps alive: mode (l), an
  empty listener, shows that cost, which every exporter pays. An entity's `Event`
  becomes garbage when the entity changes again, 500 state changes later here: it
  has lived through a young collection, so a middle-generation one frees it, a pause
  of milliseconds that stops the loop. The built-in integration's listener puts
  every `Event` in a queue that its thread empties at its own pace, seconds behind in
  a burst: its `Event` objects outlive the middle generation too, and full
  collections free them instead, which makes its middle-generation pauses short and
  its full ones longer (see lag max). HA Ingestor's listener encodes the line at
  once and then holds the `Event` for the rest of a turn (half a second or 5,000
  state changes) and the turn after, to the same effect (`pipeline/listener.py`).
- Peak RSS: `VmHWM`, reset (`/proc/self/clear_refs`) when the window starts.
- Outage: state changes paced at ~100/s; the benchmark kills the exporter's database
  by PID (`influxd`; `postgres` and its backends, SIGKILL to its process group) a third
  of the way in and restarts it at two thirds on the same data; stored points are
  counted once the exporter has written all of them or stops writing (no growth for
  half the run's length, which outlasts HA Ingestor's backoff).
- Restart: state changes paced at ~100/s; the database is killed halfway; Home
  Assistant is then stopped gracefully (`hass.async_stop`, up to 300 s) with the
  database still down, started again in a new process on the same config dir (the
  database still down: the table says what became of the exporter), and the database
  is restarted; what the first process fired is counted once all of it is stored or
  nothing more arrives for the length of the firing.
- What the log shows a new user: the warning and error lines of each exporter's burst
  runs' `home-assistant.log` (`logger: default: warning`) that come from its logger or
  name it, Home Assistant's blocking-call detection included.
- Down-burst memory: growth over (l) is a run's peak RSS less that of (l), which fires
  the same burst with InfluxDB down the same way and no exporter. With the recorder on,
  every window, (l)'s too, lasts until the recorder has committed the whole burst, so
  that its memory counts in every mode alike. Buffer cap MiB: HA
  Ingestor's cap in lines (`MEMORY_CAP_BATCHES` times the `batch_size` option) times the
  mean size in bytes (UTF-8) of the lines the integration's own encoder
  (`create_encoder`, given the run's entry options) makes, after the run, of each
  entity's last state change of the burst (the entities take turns, so these are the
  burst's mix); each line's Python string header (~50 bytes) is left to the overhead.
- Every run's raw result is in `artifacts/bench/results.json`; `--profile` adds one
  more run per exporter under py-spy (not in the tables), summarized there."""


def write_report(
    path: Path,
    results: BenchResults,
    options: BenchOptions,
    session: Session,
    chart: Path | None,
) -> None:
    """Write docs/performance.md."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, options, session, chart))
