"""scripts/bench --backfill: how fast HA Ingestor backfills, and what the house feels.

One run, against one local InfluxDB 1.x and one recorder database (SQLite, a file):

1. A real Home Assistant with its recorder gives the house's 500 entities (workload.py)
   their first states and stops (backfill_child.py, `prepare`).
2. The history is written into the recorder's own tables, as its recorder would have
   written it: STATE_CHANGES state changes over DAYS days, each entity in turn, with
   its attributes (stored once per distinct set, as the recorder does, a few sets per
   entity), a context id each, and the link to the state before (`old_state_id`).
3. Home Assistant starts again with the recorder and HA Ingestor (`core_compatible`,
   default options) while the house changes ~20 states a second. The event loop's lag
   p99 is sampled in windows that alternate: the house idle, and the house while a
   backfill runs at the default pace. Then the pace is set to its maximum and the
   whole history is backfilled: points per second, and the longest a read held the
   recorder's database.
4. Unless --no-fidelity: tests/pipeline/test_backfill.py's comparison runs with
   100,000 state changes (as the suite does), each backfilled point read
   back from InfluxDB against what the live encoder makes of the same change.

The figures go to their own section of docs/performance.md (between BEGIN and END,
which the main benchmark's report keeps as it is).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
import datetime as dt
import json
import os
from pathlib import Path
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Final

from homeassistant.components.http import config as http_config
from homeassistant.components.recorder.db_schema import StateAttributes
from homeassistant.helpers.json import json_bytes, save_json

from .ha_config import _CORE_YAML, REPO, _http_store, _ingestor_entries
from .influxdb import InfluxConnection, running_influxdb
from .orchestrate import log
from .protocol import PREFIX
from .servers import free_port
from .workload import make_entities

# Raw results (git-ignored), as the main benchmark keeps them.
ARTIFACTS: Final = Path(
    os.environ.get("HA_BENCH_ARTIFACTS", REPO / "artifacts" / "bench")
)
BEGIN: Final = "<!-- backfill: written by scripts/bench --backfill -->"
END: Final = "<!-- /backfill -->"
STATE_CHANGES: Final = 1_000_000
DAYS: Final = 30
ENTITIES: Final = 500
ATTRIBUTE_SETS: Final = 4  # per entity: its battery level changes now and then
FIDELITY_CHANGES: Final = 100_000
CHILD_TIMEOUT: Final = 3600.0
# The targets of issue 16.
TARGET_POINTS_PER_S: Final = 20_000
TARGET_LAG_RATIO: Final = 2.0


@dataclass(frozen=True, slots=True)
class Filled:
    """What was written into the recorder."""

    state_changes: int
    attribute_sets: int
    seconds: float
    database_mib: float


def _recorder_yaml(db_path: Path) -> str:
    return (
        "\nrecorder:\n"
        f"  db_url: sqlite:///{db_path}\n"
        "  commit_interval: 5\n"
        # The nightly purge must not take the history while the benchmark runs.
        "  purge_keep_days: 3650\n"
    )


def write_config_dir(config_dir: Path, db_path: Path) -> None:
    """configuration.yaml with the recorder, and HTTP: a house without HA Ingestor."""
    storage = config_dir / ".storage"
    storage.mkdir(parents=True)
    (config_dir / "configuration.yaml").write_text(_CORE_YAML + _recorder_yaml(db_path))
    save_json(str(storage / http_config.STORAGE_KEY), _http_store(free_port()))


def add_ingestor(config_dir: Path, influx: InfluxConnection) -> None:
    """Install HA Ingestor with an entry of default options (as its flow makes it)."""
    (config_dir / "custom_components").mkdir()
    (config_dir / "custom_components" / "ha_ingestor").symlink_to(
        REPO / "custom_components" / "ha_ingestor"
    )
    save_json(
        str(config_dir / ".storage" / "core.config_entries"),
        _ingestor_entries(influx, "bench_backfill", {}),
    )


def run_child(phase: str, config_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run backfill_child for `phase`; return its result."""
    spec = {
        "phase": phase,
        "config_dir": str(config_dir),
        "entities": ENTITIES,
        "windows": args.windows,
        "window_seconds": args.window_seconds,
        "database": "bench_backfill",
    }
    log(f"backfill: Home Assistant, {phase}")
    with (config_dir.parent / f"{phase}.log").open("w") as stderr:
        answer = subprocess.run(
            [sys.executable, "-m", "scripts.bench_ha.backfill_child", json.dumps(spec)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    for line in answer.stdout.splitlines():
        if line.startswith(PREFIX):
            message: dict[str, Any] = json.loads(line.removeprefix(PREFIX))
            if "error" in message:
                msg = f"{phase} failed: {message['error']} (see {config_dir})"
                raise RuntimeError(msg)
            result: dict[str, Any] = message["result"]
            return result
    msg = f"{phase} said nothing (see {config_dir.parent}/{phase}.log)"
    raise RuntimeError(msg)


def _ulid_bytes(timestamp: float, counter: int) -> bytes:
    """Make a ULID of that time: 48 bits of milliseconds, 80 bits unique per row."""
    return int(timestamp * 1000).to_bytes(6, "big") + counter.to_bytes(10, "big")


def fill_recorder(db_path: Path, state_changes: int, end: float) -> Filled:
    """Write `state_changes` over the DAYS days before `end` into the recorder's tables."""
    started = time.monotonic()
    entities = make_entities(ENTITIES)
    connection = sqlite3.connect(db_path)
    try:
        metadata = dict(
            connection.execute("SELECT entity_id, metadata_id FROM states_meta")
        )
        missing = [e.entity_id for e in entities if e.entity_id not in metadata]
        if missing:
            msg = f"the recorder does not know {missing[:3]}..."
            raise RuntimeError(msg)
        attribute_ids: dict[tuple[int, int], int] = {}
        for number, entity in enumerate(entities):
            for variant in range(ATTRIBUTE_SETS):
                shared = json_bytes({**entity.attributes, "battery": 100 - variant})
                cursor = connection.execute(
                    "INSERT INTO state_attributes (hash, shared_attrs) VALUES (?, ?)",
                    (StateAttributes.hash_shared_attrs_bytes(shared), shared.decode()),
                )
                assert cursor.lastrowid is not None  # noqa: S101
                attribute_ids[number, variant] = cursor.lastrowid
        (first_id,) = connection.execute(
            "SELECT coalesce(max(state_id), 0) + 1 FROM states"
        ).fetchone()
        start = end - DAYS * 86400
        step = (end - start) / state_changes
        last_ids: dict[int, int] = {}

        def rows() -> Any:
            for index in range(state_changes):
                number = index % ENTITIES
                entity = entities[number]
                rounds = index // ENTITIES
                when = start + index * step
                state_id = first_id + index
                variant = (rounds // 50) % ATTRIBUTE_SETS
                yield (
                    state_id,
                    entity.states[rounds % len(entity.states)],
                    when,
                    last_ids.get(number),
                    attribute_ids[number, variant],
                    _ulid_bytes(when, state_id),
                    metadata[entity.entity_id],
                )
                last_ids[number] = state_id

        connection.executemany(
            "INSERT INTO states (state_id, state, last_updated_ts, old_state_id,"
            " attributes_id, origin_idx, context_id_bin, metadata_id)"
            " VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            rows(),
        )
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        connection.execute(
            "INSERT INTO recorder_runs (start, end, closed_incorrect, created)"
            " VALUES (?, ?, 0, ?)",
            (
                dt.datetime.fromtimestamp(start - 1, dt.UTC).strftime(fmt),
                dt.datetime.fromtimestamp(end, dt.UTC).strftime(fmt),
                dt.datetime.fromtimestamp(start - 1, dt.UTC).strftime(fmt),
            ),
        )
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return Filled(
        state_changes,
        ENTITIES * ATTRIBUTE_SETS,
        time.monotonic() - started,
        db_path.stat().st_size / 2**20,
    )


def run_fidelity(changes: int) -> tuple[bool, float, str]:
    """Run the suite's comparison of backfilled and live points, with `changes`."""
    log(f"backfill: the point-by-point comparison with {changes:,} state changes")
    started = time.monotonic()
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            # 100,000 state changes take longer than the suite's limit per test.
            f"--timeout={int(CHILD_TIMEOUT)}",
            "tests/pipeline/test_backfill.py::test_backfilled_points_are_the_live_points",
        ],
        cwd=REPO,
        env={**os.environ, "HA_INGESTOR_BACKFILL_CHANGES": str(changes)},
        capture_output=True,
        text=True,
        check=False,
    )
    last = (answer.stdout.strip().splitlines() or ["no output"])[-1]
    return answer.returncode == 0, time.monotonic() - started, last


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def format_section(
    result: dict[str, Any],
    filled: Filled,
    fidelity: tuple[int, bool, float, str] | None,
    live_stored: int,
    argv: Sequence[str],
) -> str:
    """Write the report's section, between BEGIN and END."""
    windows = result["windows"]
    idle = [w["p99_ms"] for w in windows if w["kind"] == "idle"]
    busy = [w["p99_ms"] for w in windows if w["kind"] == "backfill"]
    idle_p99, busy_p99 = statistics.median(idle), statistics.median(busy)
    ratio = busy_p99 / idle_p99 if idle_p99 else float("inf")
    fastest = result["max"]
    per_s = fastest["written"] / fastest["seconds"]
    revision = os.environ.get("HA_BENCH_REVISION", "")
    lines = [
        BEGIN,
        "## Backfill from the recorder (issue 16)",
        "",
        f"Made by `{' '.join(['scripts/bench', *argv])}` on"
        f" {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Machine: {os.cpu_count()}"
        f" cores. Software: Python {platform.python_version()}, Home Assistant"
        f" {result['ha_version']}, its recorder on SQLite"
        + (f", HA Ingestor at {revision}" if revision else "")
        + ".",
        "",
        f"The recorder holds {filled.state_changes:,} state changes of {ENTITIES}"
        f" entities over {DAYS} days ({filled.database_mib:,.0f} MiB); HA Ingestor"
        " writes with the `core_compatible` preset to a local InfluxDB 1.x, while the"
        f" house changes {20} states a second, live, all along.",
        "",
        "| target | wanted | this run | met |",
        "|---|---|---|---|",
        f"| points backfilled /s, pace at its maximum ({result['max_pace']:,}/s) |"
        f" ≥ {TARGET_POINTS_PER_S:,} | {per_s:,.0f} | {_met(per_s >= TARGET_POINTS_PER_S)} |",
        f"| loop lag p99 backfilling at the default pace ({result['default_pace']:,}/s)"
        f" vs the house idle | ≤ {TARGET_LAG_RATIO:.0f}x | {ratio:.2f}x"
        f" ({busy_p99:.2f} vs {idle_p99:.2f} ms) | {_met(ratio <= TARGET_LAG_RATIO)} |",
        "",
        f"The windows, in the order they ran ({len(windows)} of"
        f" {result['window_seconds']:.0f} s, alternating; the target compares the"
        " medians):",
        "",
        "| window | house | loop lag p99 ms | loop lag max ms | GC pauses ms |"
        " points backfilled |",
        "|---|---|---:|---:|---:|---:|",
        *(
            f"| {i + 1} | {'idle' if w['kind'] == 'idle' else 'backfilling'} |"
            f" {w['p99_ms']:.2f} | {w['max_ms']:.1f} | {w['gc_pause_ms']:.0f} |"
            f" {w['points']:,} |"
            for i, w in enumerate(windows)
        ),
        "",
        "The whole history at the pace's maximum:",
        "",
        "| state changes read | points written | seconds | points /s |"
        " loop lag p99 / max ms | of the lag at p99, GC | GC pauses ms (full) |"
        " longest read of the recorder's database |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {fastest['read']:,} | {fastest['written']:,} | {fastest['seconds']:.1f} |"
        f" {per_s:,.0f} | {fastest['lag_p99_ms']:.1f} / {fastest['lag_max_ms']:.0f} |"
        f" {fastest['lag_p99_gc_share'] * 100:.0f}% |"
        f" {fastest['gc_pause_ms']:,.0f} ({fastest['gc_full_collections']}) |"
        f" {fastest['longest_read_ms']:.0f} ms |",
        "",
        f"Refused: {fastest['refused']}; dropped: {fastest['dropped']}. At the default"
        f" pace a read held the recorder's database {result['longest_read_default_ms']:.0f}"
        f" ms at most. Live state changes fired during the run: {result['live_fired']:,};"
        f" stored: {live_stored:,}.",
        "",
    ]
    if fidelity is not None:
        changes, ok, seconds, summary = fidelity
        lines += [
            f"Point by point: `tests/pipeline/test_backfill.py` with {changes:,} state"
            f" changes of {ENTITIES} entities over {DAYS} days (as the suite does),"
            " recorded by Home Assistant's own recorder, backfilled with both presets,"
            " every point read back from InfluxDB and compared with the point the live"
            f" encoder makes of the same change: {'passed' if ok else '**failed**'}"
            f" in {seconds:.0f} s (`{summary}`).",
            "",
        ]
    lines += [
        "How it is measured: the history is written into the recorder's tables by the"
        " benchmark (the recorder itself records ~2,000 state changes a second here:"
        " a million would take most of an hour), as the recorder writes them: one row"
        " per state change with its time, context id and the link to the state before,"
        " each distinct set of attributes once. Loop lag: a timer due every 10 ms"
        " records how late it runs (probes.py); each window starts a backfill with the"
        " action `ha_ingestor.backfill` and cancels it at its end. Points /s: points"
        " written by the backfill over the time from the action to its end (every"
        " point is in the pipeline: written, or in the spool). Longest read: the"
        " longest query of one chunk, as the backfill measures it in the recorder's"
        " executor.",
        END,
    ]
    return "\n".join(lines) + "\n"


def read_section(path: Path) -> str | None:
    """Return the section in `path`, if it has one."""
    if not path.exists():
        return None
    text = path.read_text()
    if BEGIN not in text or END not in text:
        return None
    return text[text.index(BEGIN) : text.index(END) + len(END)] + "\n"


def write_section(path: Path, section: str) -> None:
    """Put `section` into `path`: in place of the old one, else at the end."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        before = text[: text.index(BEGIN)]
        after = text[text.index(END) + len(END) :].lstrip("\n")
        text = before + section + (("\n" + after) if after else "")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse scripts/bench --backfill's own options."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench --backfill", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--state-changes", type=int, default=STATE_CHANGES)
    parser.add_argument("--windows", type=int, default=3, help="idle/backfill pairs")
    parser.add_argument("--window-seconds", type=float, default=20.0)
    parser.add_argument(
        "--fidelity-changes",
        type=int,
        default=FIDELITY_CHANGES,
        help="state changes of the point-by-point comparison (0: skip it)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    """Run the backfill benchmark; write its section of the report."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ha-bench-backfill-"))
    try:
        with running_influxdb(workdir / "influxdb") as server:
            influx = server.connection
            influx.create_database("bench_backfill")
            config_dir = workdir / "config"
            db_path = workdir / "recorder.db"
            write_config_dir(config_dir, db_path)
            run_child("prepare", config_dir, args)
            log(
                f"backfill: writing {args.state_changes:,} state changes into the recorder"
            )
            filled = fill_recorder(db_path, args.state_changes, time.time() - 60)
            log(f"backfill: {filled}")
            # Installed now: everything the recorder holds is older than its start.
            add_ingestor(config_dir, influx)
            result = run_child("measure", config_dir, args)
            result["window_seconds"] = args.window_seconds
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "backfill.json").write_text(json.dumps(result, indent=1))
            since = int(result["first_received"] * 1e9)
            live = influx.query(
                # The house's entities only (core_compatible: their object ids).
                f"SELECT count(*) FROM /.*/ WHERE time >= {since}"  # noqa: S608 - a number
                " AND entity_id =~ /^bench_/",
                "bench_backfill",
            )
            live_stored = sum(
                max(int(v or 0) for v in series["values"][0][1:]) for series in live
            )
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        log(str(err))
        log(f"the run's files are kept in {workdir}")
        return 1
    fidelity = None
    if args.fidelity_changes:
        ok, seconds, summary = run_fidelity(args.fidelity_changes)
        fidelity = (args.fidelity_changes, ok, seconds, summary)
    section = format_section(
        result, filled, fidelity, live_stored, ["--backfill", *argv]
    )
    write_section(args.out, section)
    sys.stdout.write(section)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0
