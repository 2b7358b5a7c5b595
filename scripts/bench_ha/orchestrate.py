"""The parent side: run each mode, interleaved, in fresh Home Assistant processes.

One InfluxDB serves every run (a fresh database each). The parent drives the outage
scenarios itself: it owns the influxd process, kills it by PID and restarts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
import json
from pathlib import Path
import subprocess
import sys
import threading
import time
from typing import Any, Final

from .ha_config import INGESTOR_OPTIONS, MODES, REPO, Mode
from .influxdb import InfluxServer, free_port
from .protocol import PREFIX, RunSpec
from .pyspy import start_profiler, stop_profiler
from .results import RunResult, Scenario

EXPORTER_MODES: Final[tuple[Mode, ...]] = ("b", *INGESTOR_OPTIONS)
# Home Assistant's own memory growth under a down-burst, for the exporters' to be
# compared with: same Home Assistant, same listener cost, no exporter.
MEMORY_REFERENCE: Final[Mode] = "l"
# A run that takes longer than this is stuck (an outage run takes ~5 minutes).
CHILD_TIMEOUT: Final = 1800.0
# How long InfluxDB stays down after a down-burst is fired.
DOWN_AFTER_BURST: Final = 5.0


class BenchError(RuntimeError):
    """A run failed; the message names its logs."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What to run (the command line of scripts/bench)."""

    events: int = 100_000
    entities: int = 500
    repeats: int = 3
    modes: tuple[Mode, ...] = MODES
    outage: bool = False
    outage_seconds: float = 180.0
    rate: float = 100.0
    profile_dir: Path | None = None
    # One more burst per mode with a YoungCensus (not in the tables).
    census: bool = False
    # HA Ingestor's config-entry options on top of each mode's (scripts/bench --option).
    ingestor_options: tuple[tuple[str, Any], ...] = ()


@dataclass(slots=True)
class BenchResults:
    """Every run's result, and facts about the session that made them."""

    runs: list[RunResult] = field(default_factory=list)
    ha_version: str = ""
    # The profiled runs (not in `runs`): their py-spy output and their own result.
    profiles: dict[str, tuple[Path, RunResult]] = field(default_factory=dict)
    # The census runs (not in `runs`), by mode.
    censuses: dict[str, RunResult] = field(default_factory=dict)


def log(message: str) -> None:
    """Progress, on stderr (stdout is left for the caller)."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


class Child:
    """A child process running one RunSpec, and the line protocol to talk to it."""

    def __init__(self, spec: RunSpec, run_dir: Path) -> None:
        """Start `python -m scripts.bench_ha.child` for `spec`."""
        self.run_dir = run_dir
        with (run_dir / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "scripts.bench_ha.child", spec.to_argument()],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        # A stuck run is killed: its stdout then ends, and the run fails with its logs.
        self._watchdog = threading.Timer(CHILD_TIMEOUT, self._process.kill)
        self._watchdog.daemon = True
        self._watchdog.start()

    @property
    def pid(self) -> int:
        """The child's process id (for the profiler)."""
        return self._process.pid

    def messages(self) -> Iterator[dict[str, Any]]:
        """Yield the child's protocol lines, in order, until it exits."""
        assert self._process.stdout is not None  # noqa: S101 - stdout=PIPE
        for line in self._process.stdout:
            if line.startswith(PREFIX):
                message: dict[str, Any] = json.loads(line.removeprefix(PREFIX))
                if "error" in message:
                    raise self.failure(message["error"])
                yield message

    def send(self, message: dict[str, Any]) -> None:
        """Write one line to the child's stdin."""
        assert self._process.stdin is not None  # noqa: S101 - stdin=PIPE
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def next_message(
        self, messages: Iterator[dict[str, Any]], key: str
    ) -> dict[str, Any]:
        """Return the child's next message that has `key`."""
        for message in messages:
            if key in message:
                return message
        raise self.failure(f"exited before sending {key!r}")

    def finish(self) -> None:
        """Wait for the child to stop Home Assistant and exit."""
        try:
            self._process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the child if it still runs (after a failure); stop the watchdog."""
        self._watchdog.cancel()
        self._watchdog.join()
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def failure(self, what: str) -> BenchError:
        """Make an error naming the run's logs and ending with their last lines."""
        tail = []
        for name in ("stderr.log", "config/home-assistant.log"):
            path = self.run_dir / name
            if path.exists():
                tail += path.read_text(errors="replace").splitlines()[-15:]
        return BenchError(f"run in {self.run_dir} failed: {what}\n" + "\n".join(tail))


type Driver = Callable[[Child, Iterator[dict[str, Any]]], None]


def drive_burst(child: Child, _messages: Iterator[dict[str, Any]]) -> None:
    """Nothing to do but say go."""
    child.send({"go": True})


class OutageDriver:
    """Kill InfluxDB for the middle third of a paced run, then restart it."""

    def __init__(self, server: InfluxServer, seconds: float) -> None:
        """Drive outages of `server` in runs lasting `seconds`."""
        self._server = server
        self._seconds = seconds

    def __call__(self, child: Child, _messages: Iterator[dict[str, Any]]) -> None:
        """Say go, kill InfluxDB, restart it, and tell the child when it was down."""
        child.send({"go": True})
        time.sleep(self._seconds / 3)
        killed_ns = time.time_ns()
        self._server.kill()
        log(f"  InfluxDB killed; restarting it in {self._seconds / 3:.0f} s")
        time.sleep(self._seconds / 3)
        restarted_ns = time.time_ns()
        self._server.start()
        child.send({"outage_ns": [killed_ns, restarted_ns]})


class DownBurstDriver:
    """Kill InfluxDB, let the child fire a burst, then restart InfluxDB."""

    def __init__(self, server: InfluxServer) -> None:
        """Drive `server`."""
        self._server = server

    def __call__(self, child: Child, messages: Iterator[dict[str, Any]]) -> None:
        """Kill InfluxDB, say go, restart InfluxDB once the burst is fired."""
        self._server.kill()
        child.send({"go": True})
        child.next_message(messages, "fired")
        # Long enough for every exporter to try, fail and hold on to its points.
        time.sleep(DOWN_AFTER_BURST)
        restarted_ns = time.time_ns()
        self._server.start()
        child.send({"restarted_ns": restarted_ns})


class Runner:
    """Runs children one after the other against one InfluxDB."""

    def __init__(
        self, server: InfluxServer, workdir: Path, options: BenchOptions
    ) -> None:
        """Run with `options`, keeping each run's files under `workdir`."""
        self._server = server
        self._workdir = workdir
        self._options = options
        self.results = BenchResults()

    def run(
        self,
        mode: Mode,
        scenario: Scenario,
        repeat: int,
        driver: Driver,
        profile: Path | None = None,
        *,
        young_census: bool = False,
    ) -> RunResult:
        """One child from start to exit; its result.

        A profiled or census run's result is kept apart: the profiler and the census
        slow the process down.
        """
        name = f"{scenario}_{mode}_{repeat}"
        run_dir = self._workdir / name
        run_dir.mkdir()
        connection = self._server.connection
        spec = RunSpec(
            mode=mode,
            scenario=scenario,
            repeat=repeat,
            events=self._options.events,
            entities=self._options.entities,
            influx_url=connection.url,
            influx_username=connection.username,
            influx_password=connection.password,
            database=f"bench_{name}",
            config_dir=str(run_dir / "config"),
            http_port=free_port(),
            rate=self._options.rate,
            outage_seconds=self._options.outage_seconds,
            ingestor_options=dict(self._options.ingestor_options),
            young_census=young_census,
        )
        child = Child(spec, run_dir)
        try:
            result = self._drive(child, driver, profile)
        finally:
            child.kill()
        if profile is not None:
            self.results.profiles[mode] = (profile, result)
        elif young_census:
            self.results.censuses[mode] = result
        else:
            self.results.runs.append(result)
        log(f"{name}: {describe(result)}")
        return result

    def _drive(self, child: Child, driver: Driver, profile: Path | None) -> RunResult:
        messages = child.messages()
        self.results.ha_version = child.next_message(messages, "ready")["ha_version"]
        profiler = start_profiler(child.pid, profile) if profile else None
        try:
            driver(child, messages)
            result = child.next_message(messages, "result")["result"]
        finally:
            if profiler is not None:
                stop_profiler(profiler)
        child.finish()
        return RunResult.from_json(result)


def describe(result: RunResult) -> str:
    """One line about a run, for the progress log."""
    text = (
        f"{result.fired_per_s:,.0f} fired/s, {result.cpu_us_per_event:.1f} µs CPU"
        f" per state change ({result.loop_cpu_us_per_event:.1f} in the loop),"
        f" lag p99 {result.lag_p99_ms:.1f} ms, peak RSS {result.peak_rss_mib:.0f} MiB"
    )
    if result.stored is not None:
        text += (
            f", {result.persisted_per_s or 0:,.0f} persisted/s,"
            f" {result.stored}/{result.events} stored"
        )
    if result.fired_in_outage is not None:
        text += f", {result.stored_in_outage}/{result.fired_in_outage} of the outage's"
    return text


def interleaved(modes: tuple[Mode, ...], repeat: int) -> list[Mode]:
    """Order the modes of one repeat: rotated, so no mode always runs first."""
    shift = repeat % len(modes)
    return [*modes[shift:], *modes[:shift]]


def run_benchmark(
    server: InfluxServer, workdir: Path, options: BenchOptions
) -> BenchResults:
    """Every run `options` asks for, against `server`; their results."""
    runner = Runner(server, workdir, options)
    for repeat in range(options.repeats):
        for mode in interleaved(options.modes, repeat):
            runner.run(mode, "burst", repeat, drive_burst)
    exporters = [mode for mode in options.modes if mode in EXPORTER_MODES]
    if options.outage:
        for mode in exporters:
            runner.run(mode, "outage", 0, OutageDriver(server, options.outage_seconds))
        for mode in options.modes:
            if mode in EXPORTER_MODES or mode == MEMORY_REFERENCE:
                runner.run(mode, "down_burst", 0, DownBurstDriver(server))
    if options.profile_dir is not None:
        options.profile_dir.mkdir(parents=True, exist_ok=True)
        for mode in exporters:
            profile = options.profile_dir / f"profile-{mode}.txt"
            runner.run(mode, "burst", options.repeats, drive_burst, profile)
    if options.census:
        for mode in options.modes:
            runner.run(mode, "burst", options.repeats, drive_burst, young_census=True)
    return runner.results
