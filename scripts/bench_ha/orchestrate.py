"""The parent side: run each mode, interleaved, in fresh Home Assistant processes.

One InfluxDB serves the built-in integration's and HA Ingestor's runs, one PostgreSQL
the peers' (a fresh database each run). The parent drives the outage scenarios itself:
it owns the server processes, kills them by PID and restarts them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
import json
from pathlib import Path
import re
import subprocess
import sys
import threading
import time
from typing import Any, Final

from .ha_config import EXPORTER_DOMAINS, EXPORTER_MODES, MODES, REPO, Mode
from .influxdb import InfluxServer
from .measure import wait_stored
from .peers import PEERS
from .postgres import PostgresServer
from .protocol import PREFIX, RunSpec
from .pyspy import start_profiler, stop_profiler
from .results import RunResult, Scenario
from .scenarios import RESTART_SHARE
from .servers import Server, free_port

# Home Assistant's own memory growth under a down-burst, for the exporters' to be
# compared with: same Home Assistant, same listener cost, no exporter.
MEMORY_REFERENCE: Final[Mode] = "l"
# A run that takes longer than this is stuck (an outage run takes ~5 minutes).
CHILD_TIMEOUT: Final = 1800.0
# How long the database stays down after a down-burst is fired.
DOWN_AFTER_BURST: Final = 5.0
# How long Home Assistant may take to stop: HA's own stop stages time out after up to
# 100 + 60 + 30 s (an exporter that never returns from its stop listener waits them out).
STOP_TIMEOUT: Final = 300.0


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
    # The recorder variants to run every mode in (scripts/bench --recorder).
    recorder: tuple[bool, ...] = (False,)


@dataclass(frozen=True, slots=True)
class Servers:
    """The servers the runs write to (None where no mode needs it), and the peers' code."""

    influx: InfluxServer | None = None
    postgres: PostgresServer | None = None
    # The checked component folder of each peer mode (peers.peer_folders).
    peer_folders: dict[str, Path] = field(default_factory=dict)

    def of(self, mode: str) -> Server | None:
        """Return the server `mode` writes to."""
        if mode in PEERS:
            return self.postgres
        return self.influx if mode in EXPORTER_MODES else None


@dataclass(slots=True)
class BenchResults:
    """Every run's result, and facts about the session that made them."""

    runs: list[RunResult] = field(default_factory=list)
    ha_version: str = ""
    # The profiled runs (not in `runs`): their py-spy output and their own result.
    profiles: dict[str, tuple[Path, RunResult]] = field(default_factory=dict)
    # The census runs (not in `runs`), by mode.
    censuses: dict[str, RunResult] = field(default_factory=dict)
    # By exporter mode: the warnings and errors about it in its burst runs' logs.
    findings: dict[str, Counter[str]] = field(default_factory=dict)

    def variant(self, recorder: bool) -> BenchResults:
        """Return the runs with the recorder on, or off."""
        return BenchResults(
            runs=[run for run in self.runs if run.recorder == recorder],
            ha_version=self.ha_version,
        )


# "2026-12-03 07:20:00.123 WARNING (MainThread) [logger.name] message"
_LOG_LINE: Final = re.compile(
    r"^\S+ \S+ (?:WARNING|ERROR|CRITICAL) \([^)]*\) \[(?P<logger>[^\]]+)\] (?P<message>.*)$"
)


def log_findings(log: Path, domain: str) -> Counter[str]:
    """Count the warnings and errors in a Home Assistant log that are about `domain`.

    About it: from its own logger (a custom component's or a built-in's), or naming it.
    Numbers are replaced by N, so that one message with varying counts is one finding.
    """
    findings: Counter[str] = Counter()
    if not log.exists():
        return findings
    own = (f"custom_components.{domain}", f"homeassistant.components.{domain}")
    for line in log.read_text(errors="replace").splitlines():
        if (match := _LOG_LINE.match(line)) is None:
            continue
        logger, message = match["logger"], match["message"]
        if logger.startswith(own) or domain in message:
            findings[re.sub(r"\d+", "N", message)[:300]] += 1
    return findings


def log(message: str) -> None:
    """Progress, on stderr (stdout is left for the caller)."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


class Child:
    """A child process running one RunSpec, and the line protocol to talk to it."""

    def __init__(self, spec: RunSpec, run_dir: Path) -> None:
        """Start `python -m scripts.bench_ha.child` for `spec`."""
        self.run_dir = run_dir
        # The child imports the benchmark from a folder that holds only it: with the
        # repository on sys.path, its custom_components/ would shadow the config dir's,
        # where Home Assistant looks for the integrations under test, as at a user's.
        import_root = run_dir / "import-root"
        if not import_root.exists():
            import_root.mkdir()
            (import_root / "scripts").symlink_to(REPO / "scripts")
        # Appended to: the restart scenario runs two children in one folder.
        with (run_dir / "stderr.log").open("ab") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "scripts.bench_ha.child", spec.to_argument()],
                cwd=import_root,
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

    def finish(self, timeout: float = 120.0) -> None:
        """Wait for the child to stop Home Assistant and exit."""
        try:
            self._process.wait(timeout=timeout)
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
    """Kill the database for the middle third of a paced run, then restart it."""

    def __init__(self, server: Server, seconds: float) -> None:
        """Drive outages of `server` in runs lasting `seconds`."""
        self._server = server
        self._seconds = seconds

    def __call__(self, child: Child, _messages: Iterator[dict[str, Any]]) -> None:
        """Say go, kill the database, restart it, and tell the child when it was down."""
        child.send({"go": True})
        time.sleep(self._seconds / 3)
        killed_ns = time.time_ns()
        self._server.kill()
        log(f"  database killed; restarting it in {self._seconds / 3:.0f} s")
        time.sleep(self._seconds / 3)
        restarted_ns = time.time_ns()
        self._server.start()
        child.send({"outage_ns": [killed_ns, restarted_ns]})


class DownBurstDriver:
    """Kill the database, let the child fire a burst, then restart the database.

    Without a server (mode l, no exporter) only the timing is the same.
    """

    def __init__(self, server: Server | None) -> None:
        """Drive `server`."""
        self._server = server

    def __call__(self, child: Child, messages: Iterator[dict[str, Any]]) -> None:
        """Kill the database, say go, restart it once the burst is fired."""
        if self._server is not None:
            self._server.kill()
        child.send({"go": True})
        child.next_message(messages, "fired")
        # Long enough for every exporter to try, fail and hold on to its points.
        time.sleep(DOWN_AFTER_BURST)
        restarted_ns = time.time_ns()
        if self._server is not None:
            self._server.start()
        child.send({"restarted_ns": restarted_ns})


class RestartDriver:
    """Kill the database halfway through a paced run, and tell the child when."""

    def __init__(self, server: Server, seconds: float) -> None:
        """Drive `server` in runs that fire for `seconds`."""
        self._server = server
        self._seconds = seconds
        self.killed_ns = 0

    def __call__(self, child: Child, _messages: Iterator[dict[str, Any]]) -> None:
        """Say go, kill the database halfway, tell the child when."""
        child.send({"go": True})
        time.sleep(self._seconds / 2)
        self.killed_ns = time.time_ns()
        self._server.kill()
        log("  database killed; Home Assistant stops while it is down")
        child.send({"killed_ns": self.killed_ns})


class Runner:
    """Runs children one after the other against the session's servers."""

    def __init__(self, servers: Servers, workdir: Path, options: BenchOptions) -> None:
        """Run with `options`, keeping each run's files under `workdir`."""
        self._servers = servers
        self._workdir = workdir
        self._options = options
        self.results = BenchResults()

    def _spec(
        self,
        mode: Mode,
        recorder: bool,
        scenario: Scenario,
        repeat: int,
        *,
        young_census: bool = False,
    ) -> tuple[RunSpec, Path]:
        """Return the spec of one run, and the folder for its files."""
        name = f"{scenario}_{variant_key(mode, recorder).replace('+', '_')}_{repeat}"
        run_dir = self._workdir / name
        run_dir.mkdir()
        influx = self._servers.influx
        postgres = self._servers.postgres
        spec = RunSpec(
            mode=mode,
            scenario=scenario,
            repeat=repeat,
            events=self._options.events,
            entities=self._options.entities,
            influx_url=influx.connection.url if influx else "",
            influx_username=influx.connection.username if influx else "",
            influx_password=influx.connection.password if influx else "",
            database=f"bench_{name}",
            config_dir=str(run_dir / "config"),
            http_port=free_port(),
            rate=self._options.rate,
            outage_seconds=self._options.outage_seconds,
            ingestor_options=dict(self._options.ingestor_options),
            young_census=young_census,
            recorder=recorder,
            postgres_port=postgres.port if postgres else 0,
            peer_folder=str(self._servers.peer_folders.get(mode, "")),
        )
        return spec, run_dir

    def run(
        self,
        mode: Mode,
        recorder: bool,
        scenario: Scenario,
        repeat: int,
        driver: Driver,
        *,
        profile: Path | None = None,
        young_census: bool = False,
    ) -> RunResult:
        """One child from start to exit; its result.

        A profiled or census run's result is kept apart: the profiler and the census
        slow the process down.
        """
        spec, run_dir = self._spec(
            mode, recorder, scenario, repeat, young_census=young_census
        )
        child = Child(spec, run_dir)
        try:
            result = self._drive(child, driver, profile)
        finally:
            child.kill()
        key = variant_key(mode, recorder)
        if profile is not None:
            self.results.profiles[key] = (profile, result)
        elif young_census:
            self.results.censuses[key] = result
        else:
            self.results.runs.append(result)
            if scenario == "burst" and mode in EXPORTER_DOMAINS:
                self.results.findings.setdefault(mode, Counter()).update(
                    log_findings(
                        run_dir / "config" / "home-assistant.log",
                        EXPORTER_DOMAINS[mode],
                    )
                )
        log(f"{run_dir.name}: {describe(result)}")
        return result

    def run_restart(self, mode: Mode, recorder: bool) -> RunResult:
        """Run the restart scenario: what the exporter keeps.

        Home Assistant is stopped gracefully while the database is down, then started
        again, and the database brought back.
        """
        server = self._servers.of(mode)
        assert server is not None  # noqa: S101 - only exporters are run here
        spec, run_dir = self._spec(mode, recorder, "restart", 0)
        seconds = self._options.outage_seconds * RESTART_SHARE
        driver = RestartDriver(server, seconds)
        first = Child(spec, run_dir)
        try:
            result = self._drive(first, driver, None, stop_timeout=STOP_TIMEOUT)
        finally:
            first.kill()
        # Everything the first Home Assistant fired is older than this; what the second
        # one writes of its own is newer.
        until_ns = time.time_ns()
        second = Child(replace(spec, resume=True), run_dir)
        try:
            messages = second.messages()
            result.setup_after_restart = second.next_message(messages, "ready")["setup"]
            server.start()
            restarted_at = time.monotonic()
            counter = spec.counter()
            assert counter is not None  # noqa: S101 - an exporter's spec
            stored = wait_stored(
                counter, result.since_ns, result.events, max(10.0, seconds), until_ns
            )
            result.stored = stored.count
            result.caught_up_seconds = stored.reached_at - restarted_at
            result.stored_in_outage = counter.count(driver.killed_ns, until_ns)
            second.send({"stop": True})
            second.finish(STOP_TIMEOUT)
        finally:
            second.kill()
        self.results.runs.append(result)
        log(
            f"{run_dir.name}: {describe(result)}, set-up after the restart: "
            f"{result.setup_after_restart}"
        )
        return result

    def _drive(
        self,
        child: Child,
        driver: Driver,
        profile: Path | None,
        stop_timeout: float = 120.0,
    ) -> RunResult:
        messages = child.messages()
        self.results.ha_version = child.next_message(messages, "ready")["ha_version"]
        profiler = start_profiler(child.pid, profile) if profile else None
        try:
            driver(child, messages)
            result = child.next_message(messages, "result")["result"]
        finally:
            if profiler is not None:
                stop_profiler(profiler)
        child.finish(stop_timeout)
        return RunResult.from_json(result)


def variant_key(mode: str, recorder: bool) -> str:
    """Name a mode's variant: the mode, with +recorder when the recorder is on."""
    return f"{mode}+recorder" if recorder else mode


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


def interleaved[T](items: Sequence[T], repeat: int) -> list[T]:
    """Order the runs of one repeat: rotated, so no mode always runs first."""
    shift = repeat % len(items)
    return [*items[shift:], *items[:shift]]


def _run_outages(
    runner: Runner, servers: Servers, options: BenchOptions, recorder: bool
) -> None:
    """Run the outage, restart and down-burst scenarios of one recorder variant."""
    exporters = [mode for mode in options.modes if mode in EXPORTER_MODES]
    for mode in exporters:
        server = servers.of(mode)
        assert server is not None  # noqa: S101 - an exporter's
        driver = OutageDriver(server, options.outage_seconds)
        runner.run(mode, recorder, "outage", 0, driver)
    for mode in exporters:
        runner.run_restart(mode, recorder)
    for mode in options.modes:
        if mode in EXPORTER_MODES or mode == MEMORY_REFERENCE:
            runner.run(
                mode, recorder, "down_burst", 0, DownBurstDriver(servers.of(mode))
            )


def run_benchmark(
    servers: Servers, workdir: Path, options: BenchOptions
) -> BenchResults:
    """Every run `options` asks for, against `servers`; their results."""
    runner = Runner(servers, workdir, options)
    variants = [
        (mode, recorder) for recorder in options.recorder for mode in options.modes
    ]
    for repeat in range(options.repeats):
        for mode, recorder in interleaved(variants, repeat):
            runner.run(mode, recorder, "burst", repeat, drive_burst)
    if options.outage:
        for recorder in options.recorder:
            _run_outages(runner, servers, options, recorder)
    if options.profile_dir is not None:
        options.profile_dir.mkdir(parents=True, exist_ok=True)
        for mode, recorder in variants:
            if mode in EXPORTER_MODES:
                name = variant_key(mode, recorder).replace("+", "-")
                profile = options.profile_dir / f"profile-{name}.txt"
                runner.run(
                    mode,
                    recorder,
                    "burst",
                    options.repeats,
                    drive_burst,
                    profile=profile,
                )
    if options.census:
        for mode, recorder in variants:
            runner.run(
                mode,
                recorder,
                "burst",
                options.repeats,
                drive_burst,
                young_census=True,
            )
    return runner.results
