"""A house for the reliability tests: Home Assistant and influxd as real processes.

Home Assistant runs as `hass` runs it (tests/e2e/home_assistant.py: `python -m
homeassistant` from the project's venv, a fresh config dir with the demo home), with
the entities of PACKAGE added. HA Ingestor is set up through its real config flow over
Home Assistant's REST API, against a real influxd (tests/influxdb_v1_server.py). Both
can be killed with SIGKILL and started again on the same config and data, and influxd
can be replaced by a server on its port that never answers. A house with a relay
reaches influxd through it, which can keep influxd's answers: a write stored, its
answer never sent.

What the REST API can carry: its JSON parser (orjson) reads an int beyond 64 bits as
a float and refuses NaN and Infinity, and JSON keys are texts. The house gets the rest
from Home Assistant itself: an input_number whose bounds are NaN and infinity, and
(HUGE_PACKAGE) a counter whose attributes are ints of ±2**70.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import concurrent.futures
from dataclasses import dataclass, field
import datetime as dt
import json
from pathlib import Path
import selectors
import socket
import threading
import time
from typing import Any, Self

import aiohttp

from .e2e.home_assistant import DATABASE, DOMAIN, HomeAssistantProcess, wait_for
from .influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server, free_port
from .spool_file import read_spool, saved_stats

# A cold machine compiles Home Assistant's bytecode on the first start.
START_TIMEOUT = 240
# How long the integration may take to write or replay what waits, once it can.
CATCH_UP_TIMEOUT = 90

# Numbered state changes: the tests set it to 1, 2, 3...
COUNTER = "counter.reliability"
# Incremented by BURST_SCRIPT: 100 changes back to back, then a 1 ms pause, and so on.
BURST_COUNTER = "counter.reliability_burst"
BURST_SCRIPT = "script.reliability_burst"
# Set by Home Assistant at every start, before HA Ingestor's entry; never changed by
# the tests: not written until the first restart, then once (an entity never written).
UNTOUCHED = "counter.reliability_untouched"
# Set by Home Assistant to the same state at every start; never changed by the tests.
CONSTANT = "input_number.reliability_constant"
# The same, with NaN and infinity in its attributes (its bounds).
NON_FINITE = "input_number.reliability_non_finite"
# Attributes of ints of 2**70 and -2**70 (HUGE_PACKAGE).
HUGE = "counter.reliability_huge"
# Set through the REST API, as a device reporting its state does, with the hostile
# values JSON can carry.
REST_HOSTILE = "sensor.reliability_rest_hostile"
REST_HOSTILE_ATTRIBUTES: dict[str, Any] = {
    "largest_int": 2**64 - 1,
    "smallest_int": -(2**63),
    "beyond_64_bits": 2**70,  # arrives as a float
    "nested": {"a": [1, {"b": [2, [3, {"c": None, "d": [[], {}]}]]}]},
    "text": 'line\nbreak "quoted" \\ back, comma=equals ☃',
    "flags": [True, False, None],
    'key with spaces, commas=and "quotes"': 1.5,
    "": "empty key",
}

PACKAGE = """\
# The reliability tests' own entities (tests/house.py).
counter:
  reliability:
    name: Reliability counter
    initial: 0
    # restore: true (the default): Home Assistant sets it again at every start to the
    # value it last saved (at a stop; at a start, after a kill).
  reliability_burst:
    name: Reliability burst
    initial: 0
  reliability_untouched:
    name: Reliability untouched
    initial: 7
script:
  # A burst of state changes from inside Home Assistant, as an automation storm
  # makes: the counter above incremented `chunks` times 100. A script's steps run
  # back to back and nothing else runs meanwhile, HA Ingestor included: a 1 ms
  # pause after each 100 lets the rest of Home Assistant run.
  reliability_burst:
    mode: single
    sequence:
      - repeat:
          count: "{{ chunks }}"
          sequence:
            - repeat:
                count: 100
                sequence:
                  - action: counter.increment
                    target:
                      entity_id: counter.reliability_burst
            - delay:
                milliseconds: 1
input_number:
  reliability_constant:
    name: Reliability constant
    min: 0
    max: 100
    initial: 42
  reliability_non_finite:
    name: Reliability non-finite
    min: .nan
    max: .inf
    initial: 1
    mode: box
"""
# Home Assistant cannot save the states it restores while an attribute is an int
# beyond 64 bits (nor show it through the REST API): only for the test about them.
HUGE_PACKAGE = """\
counter:
  reliability_huge:
    name: Reliability huge
    initial: 1180591620717411303424
    minimum: -1180591620717411303424
    maximum: 2361183241434822606848
    restore: false
"""

# A sensor of 4 kB attributes that follows BURST_COUNTER: a burst of it overflows a
# small spool within seconds (only for the test about that).
PADDED_PACKAGE = """\
template:
  - sensor:
      - name: Reliability padded
        unique_id: reliability_padded
        state: "{{ states('counter.reliability_burst') }}"
        attributes:
          padding: "{{ 'x' * 4000 }}"
"""

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True, order=True)
class Fired:
    """A state of the counter: its value and its time (µs since the epoch)."""

    value: int
    time_us: int


def iso_to_us(text: str) -> int:
    """A state's ISO 8601 time (last_updated) as µs since the epoch, exactly."""
    return (dt.datetime.fromisoformat(text) - EPOCH) // dt.timedelta(microseconds=1)


class House:
    """influxd and a Home Assistant with HA Ingestor set up, in `directory`."""

    def __init__(
        self,
        directory: Path,
        *,
        huge: bool = False,
        padded: bool = False,
        relay: bool = False,
    ) -> None:
        """Prepare both; `start` runs them and adds the entry."""
        (directory / "influxdb").mkdir(parents=True)
        self.influxdb = InfluxDBv1Server(directory / "influxdb")
        self.relay = Relay(self.influxdb.port) if relay else None
        self.ha = HomeAssistantProcess(
            directory / "config",
            free_port(besides=[self.influxdb.port, self.influxdb.rpc_port]),
        )
        local = self.ha.config_dir / "local"
        (local / "reliability.yaml").write_text(PACKAGE)
        if huge:
            (local / "reliability_huge.yaml").write_text(HUGE_PACKAGE)
        if padded:
            (local / "reliability_padded.yaml").write_text(PADDED_PACKAGE)
        self.entry_id = ""
        self._silent: SilentServer | None = None

    # --- Processes --------------------------------------------------------------------

    def start(self) -> None:
        """Start influxd and Home Assistant; add the entry through the config flow."""
        self.influxdb.start()
        self.influxdb.query(f'CREATE DATABASE "{DATABASE}"')
        self.ha.start(START_TIMEOUT)
        if self.relay is not None:  # on a port of its own, once Home Assistant has its
            self.relay.start()
        self.ha.create_owner()
        self.ha.wait_until_running(START_TIMEOUT)
        # The owner's access token lasts 30 minutes; a slow run may take longer.
        self.ha.access_token = self.websocket(
            {
                "type": "auth/long_lived_access_token",
                "client_name": "reliability tests",
                "lifespan": 1,
            }
        )
        self.entry_id = self._add_entry()
        self.wait_until_loaded()
        self._wait_until_saved({})

    def close(self) -> None:
        """Stop everything this house started, whatever state it is in."""
        try:
            self.ha.kill()
        finally:
            self.end_silence()
            if self.relay is not None:
                self.relay.close()
            self.influxdb.kill()

    def start_home_assistant(self) -> None:
        """Start Home Assistant again on the same config dir; wait for the entry."""
        self.ha.start(START_TIMEOUT)
        self.ha.wait_until_running(START_TIMEOUT)
        self.wait_until_loaded()

    def kill_home_assistant(self) -> float:
        """SIGKILL Home Assistant now; returns the moment (s since the epoch)."""
        killed_at = time.time()
        self.ha.kill()
        return killed_at

    def stop_home_assistant(self) -> None:
        """Stop Home Assistant as SIGTERM does (Ctrl-C, docker stop, systemd)."""
        code = self.ha.stop()
        if code != 0:
            msg = f"Home Assistant did not stop by itself: exit code {code}"
            raise RuntimeError(msg)

    def silence_influxdb(self) -> SilentServer:
        """Replace influxd by a server on its port that reads requests, never answers.

        Each request waits for the integration's timeout, as with a hung server or a
        dead link.
        """
        self.influxdb.kill()
        self._silent = SilentServer(self.influxdb.port)
        return self._silent

    def end_silence(self) -> None:
        """Close the silent server, if any: connections are refused again."""
        if self._silent is not None:
            self._silent.close()
            self._silent = None

    def log(self) -> str:
        """Home Assistant's log since it last started."""
        return self.ha.log.read_text("utf-8", errors="replace")

    # --- Home Assistant's APIs --------------------------------------------------------

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One authenticated REST request; its JSON answer, which must be a 2xx."""
        status, answer = self.ha.request(method, path, body, auth=True)
        if not 200 <= status < 300:
            msg = f"{method} {path}: HTTP {status} {answer}"
            raise RuntimeError(msg)
        return answer

    def websocket(self, command: dict[str, Any]) -> Any:
        """Send one command over Home Assistant's websocket API; return its result.

        In a thread of its own with its own event loop, apart from the test's.
        """

        async def call() -> Any:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"{self.ha.url}/api/websocket") as ws,
            ):
                await ws.receive_json()  # auth_required
                await ws.send_json(
                    {"type": "auth", "access_token": self.ha.access_token}
                )
                if (answer := await ws.receive_json())["type"] != "auth_ok":
                    raise RuntimeError(f"websocket auth failed: {answer}")
                await ws.send_json({"id": 1, **command})
                answer = await ws.receive_json()
            if not answer.get("success"):
                raise RuntimeError(f"websocket {command['type']}: {answer}")
            return answer["result"]

        return _run_apart(call)

    def _add_entry(self) -> str:
        """Add HA Ingestor as a person would, through the config flow's REST API."""
        flow = self.api(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": DOMAIN, "show_advanced_options": False},
        )
        path = f"/api/config/config_entries/flow/{flow['flow_id']}"
        if flow["type"] != "menu":
            raise RuntimeError(f"the config flow shows no menu: {flow}")
        self.api("POST", path, {"next_step_id": "influxdb_v1"})
        mirror = self.api(
            "POST",
            path,
            {
                "url": (self.relay or self.influxdb).url,
                "database": DATABASE,
                "username": ADMIN_USER,
                "password": ADMIN_PASSWORD,
                "verify_ssl": True,
            },
        )
        if mirror.get("step_id") != "registry_mirror":
            raise RuntimeError(f"the connection form did not pass: {mirror}")
        created = self.api("POST", path, {"registry_mirror": False})
        if created.get("step_id") == "history":
            # No backfill of what the recorder holds: the tests compare InfluxDB
            # with what they fired themselves.
            created = self.api("POST", path, {"history_backfill": False})
        if created["type"] != "create_entry":
            raise RuntimeError(f"no entry created: {created}")
        return str(created["result"]["entry_id"])

    def set_delivery_options(self, delivery: dict[str, Any]) -> None:
        """Change the options form "delivery" as a person would; the entry reloads."""
        flow = self.api(
            "POST",
            "/api/config/config_entries/options/flow",
            {"handler": self.entry_id},
        )
        path = f"/api/config/config_entries/options/flow/{flow['flow_id']}"
        for step, answer in (
            ("init", {}),
            ("schema", {}),
            ("delivery", delivery),
            ("registry_mirror", {"registry_mirror": False}),
        ):
            if (flow["type"], flow.get("step_id")) != ("form", step):
                raise RuntimeError(f"the options flow skipped {step}: {flow}")
            flow = self.api("POST", path, answer)
        # The history again (no backfill), or only the pace of backfills.
        answer = {"history_backfill": False} if flow["step_id"] == "history" else {}
        flow = self.api("POST", path, answer)
        if flow["type"] != "create_entry":
            raise RuntimeError(f"the options were not saved: {flow}")
        self.wait_until_loaded()
        self._wait_until_saved(delivery)

    def _wait_until_saved(self, options: dict[str, Any]) -> None:
        """Wait until Home Assistant has written the entry, with `options`, to disk.

        It writes config entries a second after a change, later when its loop is
        busy: a test that kills it sooner would start it again without the entry
        (or its new options), which tests nothing of HA Ingestor's.
        """
        path = self.ha.config_dir / ".storage" / "core.config_entries"

        def saved() -> bool:
            try:
                entries = json.loads(path.read_text())["data"]["entries"]
            except OSError, ValueError:  # not written yet
                return False
            return any(
                entry["entry_id"] == self.entry_id
                and entry["options"].items() >= options.items()
                for entry in entries
            )

        wait_for(saved, "the entry written to disk", 30)

    def entry_state(self) -> str:
        """The entry's state as the UI lists it: loaded, not_loaded, setup_retry..."""
        (entry,) = [
            entry
            for entry in self.ha.config_entries(DOMAIN)
            if entry["entry_id"] == self.entry_id
        ]
        return str(entry["state"])

    def wait_until_loaded(self) -> None:
        """Wait until the entry is loaded."""
        wait_for(
            lambda: self.entry_state() == "loaded", "HA Ingestor's entry loaded", 60
        )

    def diagnostics(self) -> dict[str, Any]:
        """The entry's diagnostics download: its counters, spool and memory, live."""
        answer = self.api("GET", f"/api/diagnostics/config_entry/{self.entry_id}")
        data: dict[str, Any] = answer["data"]
        return data

    def points_waiting(self) -> int:
        """Points in the spool, in memory and on their way, not yet written."""
        spool = self.diagnostics()["spool"]
        return int(spool["points"]) + int(spool["in_memory"]) + int(spool["in_flight"])

    def wait_until_nothing_waits(self) -> None:
        """Wait until the integration has written everything that waited."""
        wait_for(
            lambda: self.points_waiting() == 0,
            "nothing waiting to be written",
            CATCH_UP_TIMEOUT,
            interval=0.5,
        )

    def set_counter(self, value: int) -> Fired:
        """Set the counter through the REST API; the change's value and time."""
        changed = self.api(
            "POST",
            "/api/services/counter/set_value",
            {"entity_id": COUNTER, "value": value},
        )
        (state,) = [s for s in changed if s["entity_id"] == COUNTER]
        return Fired(int(state["state"]), iso_to_us(state["last_updated"]))

    def counter_now(self, entity_id: str = COUNTER) -> Fired:
        """A counter's current value, and when it was set."""
        state = self.api("GET", f"/api/states/{entity_id}")
        return Fired(int(state["state"]), iso_to_us(state["last_updated"]))

    def start_burst(self, changes: int) -> None:
        """Have Home Assistant's script increment BURST_COUNTER `changes` times."""
        self.api(
            "POST",
            "/api/services/script/turn_on",
            {"entity_id": BURST_SCRIPT, "variables": {"chunks": changes // 100}},
        )

    def set_input_number(self, entity_id: str, value: float) -> None:
        """Set an input_number through the REST API."""
        self.api(
            "POST",
            "/api/services/input_number/set_value",
            {"entity_id": entity_id, "value": value},
        )

    def post_state(
        self, entity_id: str, state: str, attributes: dict[str, Any] | None = None
    ) -> None:
        """Set an entity's state through the REST API, as a device reporting it does."""
        self.api(
            "POST",
            f"/api/states/{entity_id}",
            {"state": state, "attributes": attributes or {}},
        )

    def post_rest_hostile(self) -> None:
        """Set the REST hostile entity, as a device reporting its state does."""
        self.post_state(REST_HOSTILE, "1", REST_HOSTILE_ATTRIBUTES)

    def spool_lines(self) -> list[str]:
        """The lines in HA Ingestor's spool file; only while Home Assistant is down."""
        return [line for (line,) in self._read_spool("SELECT line FROM points")]

    def saved_stats(self) -> dict[str, Any]:
        """The counters saved in the spool file; only while Home Assistant is down."""
        return saved_stats(self._spool_path())

    def _read_spool(self, query: str) -> list[Any]:
        return read_spool(self._spool_path(), query)

    def _spool_path(self) -> Path:
        if self.ha.pid is not None:
            msg = "the spool is read only while Home Assistant is down"
            raise RuntimeError(msg)
        return self.ha.config_dir / ".storage" / f"{DOMAIN}.{self.entry_id}.spool"

    # --- What InfluxDB holds ----------------------------------------------------------

    def counter_points(self, entity_id: str = COUNTER) -> list[Fired]:
        """Every point of a counter in InfluxDB, in time order."""
        return [
            Fired(int(row["value"]), int(row["time"]))
            for row in self.influxdb.rows(
                f'SELECT "value" FROM "{entity_id}" ORDER BY time', DATABASE
            )
        ]

    def point_count(self, entity_id: str) -> int:
        """How many points InfluxDB holds of `entity_id` (no unit: its own series)."""
        return len(self.influxdb.rows(f'SELECT * FROM "{entity_id}"', DATABASE))


@dataclass(slots=True)
class CounterFiring:
    """Sets the counter to `first`, `first` + 1... in a thread, until stopped or gone.

    `fired` holds the changes Home Assistant confirmed; `unconfirmed` the value whose
    request got no answer (Home Assistant was killed meanwhile): it may or may not
    have been set.
    """

    house: House
    first: int
    pause: float = 0.01
    fired: list[Fired] = field(default_factory=list)
    unconfirmed: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        """Start firing."""
        self._thread = threading.Thread(target=self._fire, name="counter firing")
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        """Stop firing (at once if Home Assistant is gone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def next_value(self) -> int:
        """The first value not fired yet."""
        return self.first + len(self.fired) + (self.unconfirmed is not None)

    def wait_for_changes(self, count: int, timeout: float = 60) -> None:
        """Wait until `count` changes have been confirmed."""
        wait_for(lambda: len(self.fired) >= count, f"{count} changes fired", timeout)

    def _fire(self) -> None:
        value = self.first
        while not self._stop.is_set():
            self.unconfirmed = value
            try:
                fired = self.house.set_counter(value)
            except OSError, RuntimeError:
                return  # Home Assistant is stopping or gone
            self.fired.append(fired)
            self.unconfirmed = None
            value += 1
            self._stop.wait(self.pause)


class StateWatcher:
    """One entity's state changes, as Home Assistant's websocket API sends them.

    A subscription to its state_changed events, in a thread with an event loop of its
    own, from `with` until the block ends or Home Assistant is gone: `fired` holds
    each change's value and time (last_updated), in the order they came.
    """

    def __init__(self, house: House, entity_id: str) -> None:
        """Watch `entity_id` in `house`'s Home Assistant."""
        self.fired: list[Fired] = []
        self._house = house
        self._entity_id = entity_id
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._watch()), name="state watcher"
        )

    def __enter__(self) -> Self:
        """Subscribe; return once Home Assistant has confirmed it."""
        self._thread.start()
        if not self._subscribed.wait(30):
            self._stop.set()
            self._thread.join()
            msg = "Home Assistant did not confirm the subscription to state changes"
            raise RuntimeError(msg)
        return self

    def __exit__(self, *_: object) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join()

    def wait_for_changes(self, count: int, timeout: float = 60) -> None:
        """Wait until `count` changes have come."""
        wait_for(
            lambda: len(self.fired) >= count,
            f"{count} changes of {self._entity_id}",
            timeout,
            interval=0.01,
        )

    async def _watch(self) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"{self._house.ha.url}/api/websocket", max_msg_size=0
            ) as ws,
        ):
            await ws.receive_json()  # auth_required
            await ws.send_json(
                {"type": "auth", "access_token": self._house.ha.access_token}
            )
            if (await ws.receive_json())["type"] != "auth_ok":
                return
            await ws.send_json(
                {"id": 1, "type": "subscribe_events", "event_type": "state_changed"}
            )
            if not (await ws.receive_json()).get("success"):
                return
            self._subscribed.set()
            while not self._stop.is_set():
                try:
                    message = await ws.receive(timeout=0.2)
                except TimeoutError:
                    continue
                if message.type is not aiohttp.WSMsgType.TEXT:
                    return  # Home Assistant is gone
                answer = json.loads(message.data)
                for event in answer if isinstance(answer, list) else [answer]:
                    self._note(event)

    def _note(self, event: dict[str, Any]) -> None:
        if event.get("type") != "event":
            return
        new_state = event["event"]["data"]["new_state"]
        if new_state is not None and new_state["entity_id"] == self._entity_id:
            self.fired.append(
                Fired(int(new_state["state"]), iso_to_us(new_state["last_updated"]))
            )


class SilentServer:
    """A server that reads every request and answers none; in a thread.

    It notes when each request began to arrive, so a test can time a kill from the
    moment a write began to hang. A request is never answered, so a connection
    carries one request only.
    """

    def __init__(self, port: int) -> None:
        """Listen on 127.0.0.1:`port` at once."""
        self.requests_at: list[float] = []
        """The monotonic time each request's first bytes came, in order."""
        self._listener = socket.create_server(("127.0.0.1", port))
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            started: set[socket.socket] = set()
            while not self._closing.is_set():
                for key, _ in selector.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        connection, _ = sock.accept()
                        selector.register(connection, selectors.EVENT_READ)
                    elif not sock.recv(65536):  # the client gave up
                        selector.unregister(sock)
                        started.discard(sock)
                        sock.close()
                    elif sock not in started:
                        started.add(sock)
                        self.requests_at.append(time.monotonic())
            for key in list(selector.get_map().values()):
                assert isinstance(key.fileobj, socket.socket)
                key.fileobj.close()

    def close(self) -> None:
        """Close every connection and the port: connections are refused again."""
        self._closing.set()
        self._thread.join(10)


class Relay:
    """A TCP relay to influxd that can keep influxd's answers from Home Assistant.

    While it holds them, what influxd sends back is dropped, not forwarded: a write
    InfluxDB stored whose answer never comes, as when the link or Home Assistant
    dies in the middle of a write. Runs in a thread with an event loop of its own.
    """

    def __init__(self, upstream_port: int) -> None:
        """Relay connections to influxd's `upstream_port`, once started."""
        self._upstream_port = upstream_port
        self._holding = False
        self._held_requests: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="relay", daemon=True
        )
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Where it listens, once started."""
        assert self._server is not None, "the relay is not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    @property
    def held(self) -> int:
        """How many requests' answers were dropped since `hold_answers`."""
        return len(self._held_requests)

    @property
    def held_requests(self) -> list[bytes]:
        """The requests whose answers were dropped since `hold_answers`, as sent."""
        return list(self._held_requests)

    def start(self) -> None:
        """Listen on a port of its own (`url`)."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", 0), self._loop
        ).result(10)

    def hold_answers(self) -> None:
        """Drop what influxd sends back from now on."""
        self._loop.call_soon_threadsafe(self._hold, True)

    def pass_answers(self) -> None:
        """Forward influxd's answers again.

        A connection whose answer was dropped is out of step: for after Home
        Assistant, which held it, was killed.
        """
        self._loop.call_soon_threadsafe(self._hold, False)

    def _hold(self, holding: bool) -> None:
        self._holding = holding
        self._held_requests = []

    def close(self) -> None:
        """Stop relaying; end the thread."""
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._upstream_port
            )
        except OSError:
            writer.close()
            return
        # What Home Assistant sent since influxd last answered on this connection.
        request = bytearray()

        async def requests() -> None:
            try:
                while data := await reader.read(1 << 16):
                    request.extend(data)
                    upstream_writer.write(data)
                    await upstream_writer.drain()
            except OSError:
                pass
            finally:
                upstream_writer.close()

        async def answers() -> None:
            try:
                while data := await upstream_reader.read(1 << 16):
                    if self._holding:
                        if request:  # else the rest of an answer begun before
                            self._held_requests.append(bytes(request))
                    else:
                        writer.write(data)
                        await writer.drain()
                    request.clear()
            except OSError:
                pass
            finally:
                writer.close()

        await asyncio.gather(requests(), answers())


def _run_apart[T](call: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine in a new thread with an event loop of its own; its result."""
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        return executor.submit(lambda: asyncio.run(call())).result(timeout=60)
