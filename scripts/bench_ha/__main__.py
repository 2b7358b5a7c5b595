"""scripts/bench: run the benchmark, write docs/performance.md and its chart.

Examples (scripts/bench passes its arguments here):

- `scripts/bench`: 100,000 state changes, 3 repeats, modes a, b, c, d
- `scripts/bench --outage`: and the outage and down-burst scenarios
- `scripts/bench --events 5000 --repeats 1 --profile`: quick, with py-spy profiles
- `scripts/bench --modes l,b,c --repeats 1 --census`: what the GC's young generations
  hold at each middle-generation collection
- `scripts/bench --refused-points`: requests and time to write a batch with refused
  points to InfluxDB 3, natively and through its 2.x and 1.x APIs (refused_points.py)
- `scripts/bench --backfill`: points per second backfilled from a recorder of a
  million state changes, and the event loop's lag while it runs (backfill.py); its
  section of docs/performance.md is kept when the rest is written anew
- `scripts/bench --modes l,b,c,d,s,t --recorder both --outage --peers-dir PEERS`: against
  the peers Scribe (s) and LTSS (t), with the recorder off and on (peers.py says what
  PEERS holds)

Raw results (and profiles, and the census) go to artifacts/bench/, or to
$HA_BENCH_ARTIFACTS.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import contextlib
import datetime as dt
import json
import os
from pathlib import Path
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any, Final, cast

from . import backfill, refused_points
from .chart import write_chart
from .ha_config import ALL_MODES, EXPORTER_MODES, INGESTOR_OPTIONS, MODES, REPO, Mode
from .influxdb import running_influxdb
from .orchestrate import (
    BenchError,
    BenchOptions,
    BenchResults,
    Servers,
    describe,
    log,
    run_benchmark,
)
from .peers import ENVIRONMENT, PEERS, PeerError, peer_folders, peers_dir_from
from .postgres import running_postgres, version as postgres_version
from .pyspy import format_summary, summarize_profile
from .report import Session, write_report

# Raw results and profiles (git-ignored). The tests point it elsewhere, so that their
# small runs do not overwrite a real session's.
ARTIFACTS: Final = Path(
    os.environ.get("HA_BENCH_ARTIFACTS", REPO / "artifacts" / "bench")
)


def _modes(text: str) -> tuple[Mode, ...]:
    modes = tuple(mode.strip() for mode in text.split(",") if mode.strip())
    if not modes or any(mode not in ALL_MODES for mode in modes):
        msg = f"modes are a comma-separated subset of {','.join(ALL_MODES)}"
        raise argparse.ArgumentTypeError(msg)
    return cast(tuple[Mode, ...], modes)


def _option(text: str) -> tuple[str, Any]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        msg = "an option is KEY=VALUE"
        raise argparse.ArgumentTypeError(msg)
    try:
        # Numbers, true/false and lists as JSON; anything else is text.
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


RECORDER_CHOICES: Final[dict[str, tuple[bool, ...]]] = {
    "off": (False,),
    "on": (True,),
    "both": (False, True),
}


def _positive(text: str) -> int:
    if (value := int(text)) < 1:
        msg = "must be at least 1"
        raise argparse.ArgumentTypeError(msg)
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="HA Ingestor against Home Assistant's built-in influxdb "
        "integration and its peers: (a) HA alone, (b) built-in, (c) HA Ingestor "
        "core_compatible, (d) HA Ingestor rich, (s) Scribe, (t) LTSS.",
    )
    parser.add_argument(
        "--events",
        type=_positive,
        default=100_000,
        help="state changes per run (default 100000)",
    )
    parser.add_argument(
        "--entities",
        type=_positive,
        default=500,
        help="entities they are spread over (default 500)",
    )
    parser.add_argument(
        "--repeats",
        type=_positive,
        default=3,
        help="runs per mode, interleaved (default 3)",
    )
    parser.add_argument(
        "--modes",
        type=_modes,
        default=MODES,
        help="comma-separated, in this order (default a,b,c,d); l adds Home Assistant"
        " with an empty state_changed listener, the floor for any exporter (and, with"
        " --outage, the reference for the down-burst's memory); g adds HA Ingestor"
        " core_compatible with gzip-compressed writes; s and t add the peers Scribe"
        " and LTSS, writing to a PostgreSQL with TimescaleDB (see --peers-dir)",
    )
    parser.add_argument(
        "--recorder",
        choices=tuple(RECORDER_CHOICES),
        default="off",
        help="run every mode without Home Assistant's recorder (off, the default), with"
        " it (on: SQLite, its defaults), or both, side by side",
    )
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=None,
        help="modes s and t: a directory holding scribe/ and ltss/, each that peer's"
        " repository exported at the pinned release (git archive COMMIT); default"
        f" ${ENVIRONMENT}. "
        + "; ".join(
            f"{peer.domain}/: {peer.repository} {peer.release}, commit {peer.commit}"
            for peer in PEERS.values()
        ),
    )
    parser.add_argument(
        "--outage",
        action="store_true",
        help="also run the outage and down-burst scenarios",
    )
    parser.add_argument(
        "--outage-seconds",
        type=float,
        default=180.0,
        help="length of an outage run; the database is down for its middle third; the"
        " restart run fires for a third of it (default 180)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs" / "performance.md",
        help="the report (default docs/performance.md)",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=REPO / "docs" / "performance.png",
        help="the chart (default docs/performance.png)",
    )
    parser.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an HA Ingestor config-entry option for every HA Ingestor mode"
        f" ({', '.join(INGESTOR_OPTIONS)}), on top of the mode's own (repeatable),"
        " e.g. --option batch_size=5000",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one more run per exporter under py-spy; profiles in artifacts/bench/",
    )
    parser.add_argument(
        "--census",
        action="store_true",
        help="one more run per mode that counts, by type, the objects in the young"
        " GC generations at each middle-generation collection; in artifacts/bench/",
    )
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> BenchOptions:
    """BenchOptions from the parsed command line."""
    return BenchOptions(
        events=args.events,
        entities=args.entities,
        repeats=args.repeats,
        modes=args.modes,
        outage=args.outage,
        outage_seconds=args.outage_seconds,
        profile_dir=ARTIFACTS if args.profile else None,
        census=args.census,
        ingestor_options=tuple(args.option),
        recorder=RECORDER_CHOICES[args.recorder],
    )


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    models = [
        line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")
    ]
    return models[0] if models else "unknown CPU"


def _influxd_version() -> str:
    influxd = shutil.which("influxd")
    if influxd is None:
        return "unknown"
    answer = subprocess.run(
        [influxd, "version"], capture_output=True, text=True, check=False
    )
    return answer.stdout.strip().removeprefix("InfluxDB ").split(" ")[0]


def session_facts(
    argv: Sequence[str],
    load_before: str,
    results: BenchResults,
    modes: tuple[Mode, ...],
) -> Session:
    """Gather what the report says about the session."""
    revision = os.environ.get("HA_BENCH_REVISION", "")
    software = [
        f"Python {platform.python_version()}",
        f"Home Assistant {results.ha_version}",
    ]
    if any(mode in EXPORTER_MODES and mode not in PEERS for mode in modes):
        software.append(f"InfluxDB {_influxd_version()}")
    if peers := [PEERS[mode] for mode in modes if mode in PEERS]:
        software.append(f"PostgreSQL {postgres_version()} with TimescaleDB")
        software += [
            f"{peer.name} {peer.release} ({peer.commit[:7]})" for peer in peers
        ]
    if revision:
        software.append(f"HA Ingestor at {revision}")
    # scripts/bench took --peers-dir out of the arguments (HA_BENCH_PEERS).
    command = shlex.join(["scripts/bench", *argv])
    if peers and ENVIRONMENT in os.environ:
        command += " --peers-dir PEERS"
    return Session(
        command=command,
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{os.cpu_count()} cores, {_cpu_model()}",
        software=", ".join(software),
        load=f"{load_before} at the start, {_load()} at the end",
    )


def write_profiles(results: BenchResults) -> None:
    """Write summaries of the profiled runs next to their raw stacks, and on stdout."""
    for mode, (raw, run) in sorted(results.profiles.items()):
        if not raw.exists():
            log(
                f"py-spy wrote no profile for mode {mode}: see {raw.with_suffix('.log')}"
            )
            continue
        title = (
            f"mode {mode}, event-loop thread: {describe(run)};"
            f" GC pauses {run.gc_pause_ms:.0f} ms ({run.gc_full_collections} full)"
        )
        text = format_summary(title, summarize_profile(raw))
        raw.with_name(f"{raw.stem}-summary.txt").write_text(text)
        sys.stdout.write(text + "\n")


def format_census(results: BenchResults) -> str:
    """Say what the young generations held at a middle collection, mode by mode."""
    lines = [
        "Objects in the young generations at a middle-generation collection"
        " (mean per collection, commonest types):"
    ]
    for mode, run in sorted(results.censuses.items()):
        objects = run.young_objects or {}
        counts = ", ".join(f"{name} {count:,.0f}" for name, count in objects.items())
        lines.append(f"- mode {mode}: {counts}")
    return "\n".join(lines) + "\n"


def _exit_on_sigterm(_signal: int, _frame: object) -> None:
    # Unwinds like Ctrl-C: the servers and the running child are stopped on the way out.
    sys.exit(128 + signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; write the report, the chart and the raw results."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--refused-points"]:
        return refused_points.main(argv[1:])
    if argv[:1] == ["--backfill"]:
        return backfill.main(argv[1:])
    args = parse_args(argv)
    options = options_from(args)
    load_before = _load()
    try:
        folders = peer_folders(peers_dir_from(args.peers_dir), options.modes)
    except PeerError as err:
        log(str(err))
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="ha-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            servers = Servers(
                influx=stack.enter_context(running_influxdb(workdir / "influxdb"))
                if any(m in EXPORTER_MODES and m not in PEERS for m in options.modes)
                else None,
                postgres=stack.enter_context(running_postgres()) if folders else None,
                peer_folders=folders,
            )
            results = run_benchmark(servers, workdir, options)
    except BenchError as err:
        log(str(err))
        log(f"the runs' files are kept in {workdir}")
        return 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "results.json").write_text(
        json.dumps([run.to_json() for run in results.runs], indent=1)
    )
    write_chart(args.chart, results.runs, options.modes, options.recorder)
    # The backfill's section (scripts/bench --backfill) stays as it was.
    backfill_section = backfill.read_section(args.out)
    write_report(
        args.out,
        results,
        options,
        session_facts(argv, load_before, results, options.modes),
        args.chart,
    )
    if backfill_section is not None:
        backfill.write_section(args.out, backfill_section)
    write_profiles(results)
    if results.censuses:
        census = format_census(results)
        (ARTIFACTS / "census.txt").write_text(census)
        sys.stdout.write(census)
    shutil.rmtree(workdir, ignore_errors=True)
    log(
        f"wrote {args.out} and {args.chart}; raw results in {ARTIFACTS / 'results.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
