"""scripts/bench, small: every mode and the outage scenarios run and report correctly.

One session of a few thousand state changes (every mode but the peers', one repeat, a
12 s outage run, a restart run and a down-burst per exporter, and a down-burst for mode
l) runs once for the module against the benchmark's own InfluxDB, which the tests then
query themselves; a second, smaller one runs modes l and c with the recorder off and on.
The peers' modes (s, t) need their code, which is not on PyPI and cannot be installed on
a fresh machine: no test here runs them (test_bench_postgres.py tests their harness).
Nothing here asserts on speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
import gc
import json
import math
import os
from pathlib import Path
import re
import shutil
import sqlite3
import subprocess
import sys
import time

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import DEFAULT_BATCH_SIZE, DOMAIN
from custom_components.ha_ingestor.pipeline.batcher import MEMORY_CAP_BATCHES
from scripts.bench_ha.__main__ import options_from, parse_args
from scripts.bench_ha.chart import write_chart
from scripts.bench_ha.child import exporter_account
from scripts.bench_ha.ha_config import (
    ALL_MODES,
    EXPORTER_DOMAINS,
    EXPORTER_MODES,
    INGESTOR_OPTIONS,
    MODE_NAMES,
    MODES,
    REPO,
    Mode,
    write_config_dir,
)
from scripts.bench_ha.influxdb import (
    InfluxConnection,
    InfluxServer,
    PointCounter,
    running_influxdb,
)
from scripts.bench_ha.orchestrate import (
    MEMORY_REFERENCE,
    BenchOptions,
    BenchResults,
    Servers,
    interleaved,
    run_benchmark,
    variant_key,
)
from scripts.bench_ha.peers import PEERS
from scripts.bench_ha.probes import (
    Collection,
    GcProbe,
    LoopLagProbe,
    YoungCensus,
    gc_seconds_between,
    gc_share_of_lateness,
    percentile,
)
from scripts.bench_ha.pyspy import summarize_profile
from scripts.bench_ha.report import (
    STATED_OVERHEAD_MIB,
    Session,
    peer_target_table,
    render,
)
from scripts.bench_ha.results import METRICS, RunResult
from scripts.bench_ha.workload import make_entities

from .conftest import setup_entry, v2_entry_data, wait_until
from .influxdb_v1_server import sockets_allowed
from .influxdb_v2_server import InfluxDBv2TestServer

# The session below takes about three minutes on two busy cores.
pytestmark = pytest.mark.timeout(900)

EVENTS = 2000
# Every mode whose code this repository has or installs.
CI_MODES = tuple(mode for mode in ALL_MODES if mode not in PEERS)
CI_EXPORTERS = [mode for mode in CI_MODES if mode in EXPORTER_MODES]
OPTIONS = BenchOptions(
    events=EVENTS, repeats=1, modes=CI_MODES, outage=True, outage_seconds=12.0
)
RECORDER_OPTIONS = BenchOptions(
    events=300,
    repeats=1,
    modes=("l", "c"),
    recorder=(False, True),
    outage=True,
    outage_seconds=6.0,
)
# Metrics a mode without an exporter has nothing to report for.
EXPORTER_ONLY = {"persisted_per_s", "stored_pct"}
RATIO = r"\d+\.\d\dx"
GZIP_NOTE = re.compile(
    rf"^gzip on \(g\) vs off \(c\): CPU / state change {RATIO},"
    rf" points persisted /s {RATIO}, loop lag p99 {RATIO}$",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class BenchSession:
    """A finished small benchmark, with its InfluxDB still running."""

    server: InfluxServer
    results: BenchResults
    report: str
    chart: Path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchSession]:
    """Run the small benchmark once for the module."""
    workdir = tmp_path_factory.mktemp("bench")
    with sockets_allowed(), running_influxdb(workdir / "influxdb") as server:
        results = run_benchmark(Servers(influx=server), workdir, OPTIONS)
        chart = workdir / "performance.png"
        write_chart(chart, results.runs, OPTIONS.modes)
        session = Session("scripts/bench --test", "now", "this", "these", "0 0 0")
        report = render(results, OPTIONS, session, chart)
        yield BenchSession(server, results, report, chart)


@dataclass(frozen=True, slots=True)
class RecorderSession:
    """A finished small benchmark with the recorder off and on, and its run folders."""

    workdir: Path
    results: BenchResults
    report: str


@pytest.fixture(scope="module")
def recorder_bench(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RecorderSession]:
    """Run modes l and c with the recorder off and on, once for the module."""
    workdir = tmp_path_factory.mktemp("bench_recorder")
    with sockets_allowed(), running_influxdb(workdir / "influxdb") as server:
        results = run_benchmark(Servers(influx=server), workdir, RECORDER_OPTIONS)
        session = Session("scripts/bench --test", "now", "this", "these", "0 0 0")
        report = render(results, RECORDER_OPTIONS, session, None)
        yield RecorderSession(workdir, results, report)


def runs_of(bench: BenchSession, scenario: str) -> list[RunResult]:
    """The session's runs of one scenario."""
    return [run for run in bench.results.runs if run.scenario == scenario]


def table_after(report: str, heading: str) -> dict[str, dict[str, str]]:
    """The rows of the first table after `heading`: first cell -> column -> cell."""
    rows: list[list[str]] = []
    for line in report[report.index(heading) :].splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    header, _rule, *body = rows
    return {row[0]: dict(zip(header, row, strict=True)) for row in body}


def points_in_influxdb(server: InfluxServer, run: RunResult) -> int:
    """Count the run's points by reading every one of them back, not by count()."""
    series = server.connection.query(
        f"SELECT * FROM /.*/ WHERE time >= {run.since_ns}", run.database
    )
    return sum(len(s["values"]) for s in series)


def stored_seqs(server: InfluxServer, run: RunResult) -> list[int] | None:
    """The `seq` attribute of every stored point, if the schema writes attributes."""
    series = server.connection.query(
        f'SELECT "seq" FROM /.*/ WHERE time >= {run.since_ns}', run.database
    )
    if not series:
        return None
    return sorted(int(value[1]) for s in series for value in s["values"])


def test_every_mode_reports_every_metric(bench: BenchSession) -> None:
    """One burst run per mode, each with all of its metrics, finite and plausible."""
    bursts = runs_of(bench, "burst")
    assert sorted(run.mode for run in bursts) == sorted(CI_MODES)
    assert not any(run.recorder for run in bursts)
    for run in bursts:
        assert run.events == EVENTS
        for metric in METRICS:
            value = getattr(run, metric.key)
            if run.mode not in EXPORTER_MODES and metric.key in EXPORTER_ONLY:
                assert value is None, (run.mode, metric.key)
                continue
            assert value is not None, (run.mode, metric.key)
            assert math.isfinite(value), (run.mode, metric.key)
            assert value >= 0, (run.mode, metric.key)
        assert run.fired_per_s > 0
        assert run.loop_cpu_us_per_event > 0
        # The loop thread is one of the process's threads (timer granularity aside).
        assert run.loop_cpu_us_per_event <= run.cpu_us_per_event * 1.05 + 1
        assert run.peak_rss_mib >= run.rss_before_mib > 0
        assert run.lag_seconds >= 1.0


@pytest.mark.usefixtures("socket_enabled")
def test_stored_counts_are_what_influxdb_holds(bench: BenchSession) -> None:
    """What each exporter reports as stored is in InfluxDB, one point per event."""
    for run in bench.results.runs:
        # A restart run's second Home Assistant writes states of its own after it
        # (test_restart_runs_report_what_was_kept reads what the first one fired).
        if run.mode not in EXPORTER_MODES or run.scenario == "restart":
            continue
        assert run.stored is not None
        # The built-in integration drops what it cannot write: 0 after a down-burst.
        assert 0 <= run.stored <= run.events, run
        if run.scenario == "burst":
            assert run.stored > 0, run
        held = points_in_influxdb(bench.server, run)
        if run.scenario == "burst":
            assert held == run.stored, run
        else:
            # HA Ingestor writes what it still holds when Home Assistant stops.
            assert held >= run.stored, run
        if (seqs := stored_seqs(bench.server, run)) is not None:
            assert len(set(seqs)) == len(seqs) == held, run
            assert all(0 <= seq < run.events for seq in seqs), run


def test_outage_runs_report_what_was_lost(bench: BenchSession) -> None:
    """The outage and down-burst scenarios ran for every exporter and are consistent."""
    outages = runs_of(bench, "outage")
    assert sorted(run.mode for run in outages) == sorted(CI_EXPORTERS)
    for run in outages:
        # ~100/s for 12 s, InfluxDB down for the middle 4 s.
        assert 1000 <= run.events <= 1200, run
        assert run.fired_in_outage is not None
        assert 250 <= run.fired_in_outage <= 550, run
        assert run.stored_in_outage is not None
        assert 0 <= run.stored_in_outage <= run.fired_in_outage, run
        assert run.stored, run
    down_bursts = runs_of(bench, "down_burst")
    assert sorted(run.mode for run in down_bursts) == sorted(
        [*CI_EXPORTERS, MEMORY_REFERENCE]
    )
    assert all(run.events == EVENTS for run in down_bursts)


@pytest.mark.usefixtures("socket_enabled")
def test_restart_runs_report_what_was_kept(bench: BenchSession) -> None:
    """Home Assistant stopped while the database is down: HA Ingestor keeps it all.

    ~100/s for 2 s, the database killed after 1 s; what the first Home Assistant fired
    is counted after the second one started and the database came back.
    """
    restarts = {run.mode: run for run in runs_of(bench, "restart")}
    assert sorted(restarts) == sorted(CI_EXPORTERS)
    for mode, run in restarts.items():
        assert 150 <= run.events <= 220, run
        assert run.fired_in_outage is not None
        assert 50 <= run.fired_in_outage <= 150, run
        assert run.stored is not None
        assert run.stored_in_outage is not None
        assert 0 <= run.stored_in_outage <= run.fired_in_outage, run
        assert run.setup_after_restart, run
        if mode in INGESTOR_OPTIONS:
            assert run.stored == run.events, run
            assert run.stored_in_outage == run.fired_in_outage, run
            assert run.setup_after_restart == "loaded", run
            # Each state change the first Home Assistant fired, once.
            assert stored_seqs(bench.server, run) == list(range(run.events)), run
    rows = table_after(bench.report, "## Restart: Home Assistant stopped")
    assert set(rows) == {f"({mode}) {MODE_NAMES[mode]}" for mode in CI_EXPORTERS}


def test_recorder_variant(recorder_bench: RecorderSession) -> None:
    """Each mode runs with the recorder off and on; on, it records into SQLite.

    The report gives each variant its own tables.
    """
    runs = recorder_bench.results.runs
    for scenario in ("burst", "down_burst"):
        assert sorted(
            (run.mode, run.recorder) for run in runs if run.scenario == scenario
        ) == [("c", False), ("c", True), ("l", False), ("l", True)]
    # The outage and restart scenarios keep everything with the recorder on too.
    for scenario in ("outage", "restart"):
        kept = [run for run in runs if run.scenario == scenario]
        assert sorted(run.recorder for run in kept) == [False, True]
        for run in kept:
            assert run.fired_in_outage, run
            assert run.stored == run.events, run
            assert run.stored_in_outage == run.fired_in_outage, run
    for run in runs:
        if run.scenario not in ("burst", "down_burst"):
            continue
        config = (
            recorder_bench.workdir
            / f"{run.scenario}_{variant_key(run.mode, run.recorder).replace('+', '_')}_0"
            / "config"
        )
        database = config / "home-assistant_v2.db"
        assert database.exists() == run.recorder, run
        if run.recorder:
            with contextlib.closing(sqlite3.connect(database)) as connection:
                (states,) = connection.execute("SELECT count(*) FROM states").fetchone()
            # The entities' first states and every state change of the burst.
            assert states >= run.events, run
        if run.mode == "c":
            assert run.stored == run.events, run
    report = recorder_bench.report
    for variant in ("recorder off", "recorder on (SQLite, defaults)"):
        rows = table_after(report, f"repeats, {variant}")
        assert set(rows["CPU µs / state change"]) >= {"(l) HA + empty listener"}
        rows = table_after(report, f"with the database down: memory, {variant}")
        assert set(rows) == {
            "(l) HA + empty listener",
            "(c) HA Ingestor core_compatible",
        }
        assert (
            f"## Ratios to HA alone (a), the built-in integration (b) and HA Ingestor (c), {variant}"
            in report
        )


def test_down_burst_knows_the_buffer_cap(bench: BenchSession) -> None:
    """HA Ingestor's down-bursts know their buffer cap; mode l's stores nothing."""
    down_bursts = {run.mode: run for run in runs_of(bench, "down_burst")}
    reference = down_bursts[MEMORY_REFERENCE]
    assert reference.stored is None
    assert reference.buffer_cap_mib is None
    assert reference.peak_rss_mib >= reference.rss_before_mib > 0
    for mode in INGESTOR_OPTIONS:
        run = down_bursts[mode]
        assert run.batch_size == DEFAULT_BATCH_SIZE, run
        assert run.buffer_cap_lines == DEFAULT_BATCH_SIZE * MEMORY_CAP_BATCHES, run
        # Measurement, tags, the state and its attributes, `seq` and the time.
        assert run.mean_line_bytes is not None
        assert 100 < run.mean_line_bytes < 1000, run


def test_report_and_chart(bench: BenchSession) -> None:
    """The report has every mode, metric and scenario; the chart is a PNG."""
    report = bench.report
    assert "scripts/bench --test" in report
    for mode in CI_MODES:
        assert f"({mode}) {MODE_NAMES[mode]}" in report
    for metric in METRICS:
        assert f"| {metric.label} |" in report
    assert "## Targets (issue 7), recorder off" in report
    assert "## Targets against every peer (issue 20), recorder off" in report
    assert "## Outage:" in report
    assert GZIP_NOTE.search(report), report
    cap_lines = DEFAULT_BATCH_SIZE * MEMORY_CAP_BATCHES
    assert (
        f"HA Ingestor holds at most {cap_lines:,} lines in memory"
        f" ({MEMORY_CAP_BATCHES} batches of {DEFAULT_BATCH_SIZE:,}); the rest waits"
        " in the spool. Stated bound: growth over (l) ≤ buffer cap +"
        f" {STATED_OVERHEAD_MIB} MiB fixed overhead"
    ) in report
    rows = table_after(report, "with the database down: memory")
    down_bursts = {run.mode: run for run in runs_of(bench, "down_burst")}
    reference = down_bursts[MEMORY_REFERENCE]
    assert (
        rows[f"({MEMORY_REFERENCE}) {MODE_NAMES[MEMORY_REFERENCE]}"]["buffer cap MiB"]
        == "-"
    )
    for mode in INGESTOR_OPTIONS:
        row = rows[f"({mode}) {MODE_NAMES[mode]}"]
        assert re.fullmatch(r"-?[\d,]+", row["growth over (l) MiB"]), row
        assert re.fullmatch(r"[\d,]+\.\d", row["buffer cap MiB"]), row
        run = down_bursts[mode]
        assert run.buffer_cap_mib is not None
        within = run.peak_rss_mib - reference.peak_rss_mib <= (
            run.buffer_cap_mib + STATED_OVERHEAD_MIB
        )
        assert row["within cap + overhead"] == ("yes" if within else "**no**"), row
    data = bench.chart.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


@pytest.mark.usefixtures("socket_enabled")
def test_point_counter_counts_points_whatever_the_schema(bench: BenchSession) -> None:
    """Points of different shapes count once each; `seq` is used once it is everywhere."""
    connection = bench.server.connection
    connection.create_database("counter_check")
    lines = (
        b"W,entity_id=a value=1,seq=1 1000\n"
        b"W,entity_id=b value=2,seq=2 1000\n"  # same time, another series
        b"W,entity_id=a value=3 2000\n"  # no seq: counted by its other field
        b'x,entity_id=c state="on" 3000'
    )
    status, body = connection.request(
        "POST", "/write", {"db": "counter_check", "precision": "ns"}, body=lines
    )
    assert status == 204, body
    counter = PointCounter(connection, "counter_check")
    assert counter.count() == 4
    assert counter.count(since_ns=2000) == 2
    assert counter.count(since_ns=1000, until_ns=2000) == 2


def test_command_line_writes_report_and_chart(tmp_path: Path) -> None:
    """scripts/bench's Python entry point, end to end, with the smallest run."""
    out, chart = tmp_path / "performance.md", tmp_path / "performance.png"
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.bench_ha",
            *("--modes", "a", "--events", "500", "--repeats", "1", "--census"),
            *("--out", str(out), "--chart", str(chart)),
        ],
        cwd=REPO,
        env={**os.environ, "HA_BENCH_ARTIFACTS": str(tmp_path / "artifacts")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert "(a) HA alone" in out.read_text()
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "artifacts" / "results.json").exists()
    # The census run is reported on its own, not in the tables.
    assert "- mode a: " in (tmp_path / "artifacts" / "census.txt").read_text()
    runs = json.loads((tmp_path / "artifacts" / "results.json").read_text())
    assert [run["mode"] for run in runs] == ["a"]


def test_mode_g_is_mode_c_with_gzip(tmp_path: Path) -> None:
    """Mode g's entry is mode c's plus gzip; --option adds to every HA Ingestor mode."""
    options = options_from(
        parse_args(["--modes", "a,l,c,g", "--option", "batch_size=5000"])
    )
    assert options.modes == ("a", "l", "c", "g")
    assert "g" in EXPORTER_MODES
    assert EXPORTER_DOMAINS["g"] == "ha_ingestor"
    assert options.recorder == (False,)
    assert options_from(parse_args(["--recorder", "both"])).recorder == (False, True)
    entry_options = {}
    for mode in INGESTOR_OPTIONS:
        config_dir = tmp_path / mode
        write_config_dir(
            config_dir,
            mode,
            InfluxConnection("http://127.0.0.1:8086"),
            "bench",
            http_port=8123,
            ingestor_options=dict(options.ingestor_options),
        )
        stored = json.loads(
            (config_dir / ".storage" / "core.config_entries").read_text()
        )
        entry_options[mode] = stored["data"]["entries"][0]["options"]
    assert entry_options["g"] == {**entry_options["c"], "gzip": True}
    assert entry_options["c"] == {"preset": "core_compatible", "batch_size": 5000}
    assert entry_options["d"] == {"preset": "rich", "batch_size": 5000}


def test_bash_entry_point_is_executable() -> None:
    """scripts/bench exists, is executable and is valid bash."""
    script = REPO / "scripts" / "bench"
    assert script.stat().st_mode & 0o111
    bash = shutil.which("bash")
    assert bash is not None
    subprocess.run([bash, "-n", str(script)], check=True)


def test_modes_alternate_between_repeats() -> None:
    """No mode always runs first."""
    assert interleaved(MODES, 0) == ["a", "b", "c", "d"]
    assert interleaved(MODES, 1) == ["b", "c", "d", "a"]
    assert interleaved(MODES, 4) == ["a", "b", "c", "d"]


def test_workload_shares() -> None:
    """500 entities: 70% numeric with unit and device class, 20% on/off, 10% text."""
    entities = make_entities(500)
    numeric = [e for e in entities if "unit_of_measurement" in e.attributes]
    on_off = [e for e in entities if e.entity_id.startswith("binary_sensor.")]
    assert (len(numeric), len(on_off), len(entities)) == (350, 100, 500)
    assert all("device_class" in e.attributes for e in numeric)
    assert len({e.entity_id for e in entities}) == 500


def test_own_cpu_below_the_empty_listeners_is_not_a_target_met() -> None:
    """An own CPU that comes out negative was not measured: the report says so.

    With the recorder on, what the recorder's work varies between runs can be larger
    than an exporter's own CPU; a negative figure must not count as a target met.
    """

    def burst(mode: str, cpu_us: float) -> RunResult:
        return RunResult(
            mode=mode, scenario="burst", repeat=0, recorder=True, database="",
            since_ns=0, events=1, fire_seconds=1.0, fired_per_s=1.0,
            cpu_us_per_event=cpu_us, loop_cpu_us_per_event=cpu_us, lag_p99_ms=1.0,
            lag_max_ms=1.0, lag_seconds=1.0, gc_pause_ms=0.0, gc_pause_firing_ms=0.0,
            gc_full_collections=0,
            gc_middle_collections=0, gc_middle_pause_median_ms=0.0,
            lag_p99_gc_pct=0.0, peak_rss_mib=1.0, rss_before_mib=1.0,
        )  # fmt: skip

    modes: tuple[Mode, ...] = ("l", "c", "s")

    def own_cpu_row(c_cpu_us: float) -> list[str]:
        results = BenchResults(
            [burst("l", 400.0), burst("c", c_cpu_us), burst("s", 420.0)]
        )
        (row,) = (
            line for line in peer_target_table(results, modes) if "own CPU" in line
        )
        return [cell.strip() for cell in row.strip("|").split("|")]

    # (s) costs 20 µs over (l): the bound is a quarter of it.
    assert own_cpu_row(404.0)[1:] == ["≤ 5.00", "4.00", "yes", "0.80x the bound"]
    assert own_cpu_row(406.0)[1:] == ["≤ 5.00", "6.00", "**no**", "1.20x the bound"]
    assert own_cpu_row(395.0)[1:] == [
        "≤ 5.00",
        "-5.00",
        "**unknown**",
        "not measured: below (l)'s, the noise is larger",
    ]


def test_percentile() -> None:
    """Nearest rank: p99 of 1..100 is 99, of nothing is 0."""
    assert percentile([float(n) for n in range(100, 0, -1)], 0.99) == 99.0
    assert percentile([], 0.99) == 0.0


def test_gc_probe_times_collections_by_generation() -> None:
    """Each collection is kept with its generation; stats count those ended by then."""
    probe = GcProbe()
    probe.start()
    try:
        gc.collect(1)
        gc.collect(1)
        between = time.monotonic()
        gc.collect(2)
    finally:
        probe.stop()
    before = probe.stats(until=between)
    after = probe.stats(until=time.monotonic())
    assert before.middle_collections >= 2
    assert before.middle_pause_median_ms > 0
    assert before.full_collections == 0
    assert after.full_collections == 1
    assert after.pause_ms > before.pause_ms > 0
    assert all(c.ended >= c.began for c in probe.collections)


def test_gc_seconds_between_counts_only_the_overlap() -> None:
    """A collection counts for the part of it inside the span, none outside."""
    collections = [
        Collection(2, 0.5, 1.5),  # half inside: 0.5 s
        Collection(1, 2.0, 2.25),  # wholly inside
        Collection(2, 3.5, 4.0),  # after the span
    ]
    assert gc_seconds_between(collections, 1.0, 3.0) == 0.75
    assert gc_seconds_between(collections, 5.0, 6.0) == 0.0


def test_gc_share_of_lateness() -> None:
    """Only ticks late by the threshold count; a collection counts where it overlaps."""
    ticks = [(0.0, 0.001), (0.010, 0.019), (0.029, 0.033)]
    collections = [
        Collection(0, 0.0, 0.001),  # overlaps only a tick under the threshold
        Collection(1, 0.012, 0.016),  # inside the second tick: 4 ms of its 9
        Collection(1, 0.032, 0.040),  # 1 ms of the third tick's 4
    ]
    share = gc_share_of_lateness(ticks, collections, at_least=0.0035)
    assert share == pytest.approx(5 / 13)
    assert gc_share_of_lateness(ticks, [], at_least=0.0035) == 0.0
    assert gc_share_of_lateness(ticks, collections, at_least=1.0) == 0.0


class _Marker:
    """An object only the census test makes."""


def test_young_census_counts_what_a_middle_collection_walks() -> None:
    """At each middle collection, the young objects by type; mean per collection."""
    census = YoungCensus()
    gc.disable()  # no collection but the test's own
    try:
        gc.collect()
        census.start()
        markers = [_Marker() for _ in range(100)]
        gc.collect(0)  # a young collection: not counted
        gc.collect(1)  # the markers are young: counted
        gc.collect(1)  # they have moved to the oldest generation: not counted
        counts = census.stop(most_common=10_000)
    finally:
        gc.enable()
    assert census.collections == 2
    assert counts["_Marker"] == len(markers) / 2


def test_loop_lag_probe_tells_which_lateness_was_gc() -> None:
    """A stall the loop spends in a collection counts as GC; any other stall does not."""

    async def stall_once() -> tuple[Collection, LoopLagProbe]:
        probe = LoopLagProbe()
        probe.start()
        await asyncio.sleep(0.025)
        began = time.monotonic()
        time.sleep(0.05)  # noqa: ASYNC251 - holds the loop, as a long collection would
        stall = Collection(2, began, time.monotonic())
        await asyncio.sleep(0.025)
        return stall, probe

    stall, probe = asyncio.run(stall_once())
    in_gc = probe.stop([stall])
    assert in_gc.max_ms >= 40
    assert in_gc.p99_gc_share > 0.8
    assert probe.stop([]).p99_gc_share == 0.0
    # p99 over the ticks due before the stall only; max still over every tick.
    before_stall = probe.stop([stall], until=stall.began - 0.015)
    assert before_stall.max_ms >= 40
    assert before_stall.p99_ms < 40


def test_profile_summary(tmp_path: Path) -> None:
    """py-spy's collapsed stacks become shares of the loop thread's samples."""
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "thread (1): MainThread;run (a.py:1);listen (b.py:5);encode (c.py:9) 6\n"
        "thread (1): MainThread;run (a.py:1);listen (b.py:7) 2\n"
        "thread (1): MainThread;run (a.py:2) 2\n"
        "thread (2): writer;write (d.py:3) 30\n"
    )
    summary = summarize_profile(raw)
    assert summary.samples == 10
    assert summary.samples_by_thread == {"writer": 30, "MainThread": 10}
    assert dict(summary.cumulative)["listen (b.py)"] == pytest.approx(0.8)
    assert dict(summary.self_time)["encode (c.py)"] == pytest.approx(0.6)


async def test_a_run_storing_no_first_state_says_what_ha_ingestor_counted(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """The error of a run whose first states are not stored has HA Ingestor's count."""
    entry = MockConfigEntry(domain=DOMAIN, data=v2_entry_data(influxdb_v2))
    await setup_entry(hass, entry, {})
    await influxdb_v2.stop()
    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    health = entry.runtime_data.pipeline.batcher.health
    await wait_until(lambda: health.failing, "the write failed")
    account = exporter_account(hass, "c")
    assert "'points_written': 0," in account, account
    assert "}, 1 waiting, " in account, account  # sensor.power's point
    assert "InfluxUnreachableError" in account, account
    assert await hass.config_entries.async_unload(entry.entry_id)
    # The built-in integration keeps no such count.
    assert exporter_account(hass, "b") == ""
