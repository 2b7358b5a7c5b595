"""The benchmark's InfluxDB 1.x: a plain influxd on 127.0.0.1, and how points are counted.

Authentication is on, as in the tests and in most real installations, so the exporters
pay for it as they would at home. The server can be killed and restarted on the same
port and data, which the outage mode needs.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
from http import HTTPStatus
import json
from pathlib import Path
import shutil
import socket
import subprocess
import time
from typing import Any, Self
import urllib.error
import urllib.parse
import urllib.request

from .servers import ServerQueryError

ADMIN_USER = "bench"
ADMIN_PASSWORD = "bench-password"  # noqa: S105 - a throwaway local server
START_TIMEOUT = 60.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class InfluxQueryError(ServerQueryError):
    """InfluxDB answered a query with an error, or could not be reached."""


@dataclass(frozen=True, slots=True)
class InfluxConnection:
    """Where the server is and who to be there; plain data, so a child process gets it."""

    url: str
    username: str = ADMIN_USER
    password: str = ADMIN_PASSWORD

    @property
    def host(self) -> str:
        """The host name, as the built-in integration's YAML wants it."""
        return urllib.parse.urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """The port, as the built-in integration's YAML wants it."""
        return urllib.parse.urlsplit(self.url).port or 8086

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: bytes | None = None,
        *,
        auth: bool = True,
    ) -> tuple[int, str]:
        """Send one request; return the status and body, raising only if unreachable."""
        query = dict(params)
        if auth:
            query |= {"u": self.username, "p": self.password}
        url = f"{self.url}{path}?{urllib.parse.urlencode(query)}"
        # An http URL of our own making.
        request = urllib.request.Request(url, body, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except (urllib.error.URLError, OSError) as err:
            raise InfluxQueryError(f"{self.url} unreachable: {err}") from err

    def query(
        self, q: str, database: str | None = None, *, auth: bool = True
    ) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; return its series."""
        params = {"q": q, "epoch": "ns"}
        if database is not None:
            params["db"] = database
        status, body = self.request("POST", "/query", params, auth=auth)
        result = json.loads(body)["results"][0] if status == HTTPStatus.OK else {}
        if status != HTTPStatus.OK or "error" in result:
            raise InfluxQueryError(f"InfluxQL {q!r} failed: HTTP {status} {body}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def create_database(self, name: str) -> None:
        """Create a database (a no-op if it exists)."""
        self.query(f'CREATE DATABASE "{name}"')


class PointCounter:
    """Counts the points in a database whatever schema wrote them.

    A point is one series and timestamp. Every schema measured here gives each point of
    a measurement at least one field that all its points share (the unique attribute
    `seq` where attributes are written, else `value` or `state`), so the largest field
    count of a measurement is its number of points. Once `seq` turns out to be on every
    point, only it is counted: a much cheaper query for InfluxDB, which shares the
    machine with the process being measured.
    """

    def __init__(self, connection: InfluxConnection, database: str) -> None:
        """Count in `database`."""
        self._connection = connection
        self._database = database
        self._seq_everywhere = False

    def count(self, since_ns: int = 0, until_ns: int | None = None) -> int:
        """Points with since_ns <= time (< until_ns)."""
        where = f"time >= {since_ns}"
        if until_ns is not None:
            where += f" AND time < {until_ns}"
        if self._seq_everywhere:
            series = self._connection.query(
                f'SELECT count("seq") FROM /.*/ WHERE {where}',  # noqa: S608 - numbers
                self._database,
            )
            return sum(int(s["values"][0][1]) for s in series)
        series = self._connection.query(
            f"SELECT count(*) FROM /.*/ WHERE {where}",  # noqa: S608 - numbers
            self._database,
        )
        total = 0
        seq_everywhere = bool(series)
        for s in series:
            counts = dict(zip(s["columns"][1:], s["values"][0][1:], strict=True))
            points = max(int(c or 0) for c in counts.values())
            seq_everywhere &= counts.get("count_seq") == points
            total += points
        self._seq_everywhere = seq_everywhere
        return total


class InfluxServer:
    """influxd with its data in `directory`, on a free port, authentication on."""

    def __init__(self, directory: Path) -> None:
        """Prepare the configuration; `start` runs the server."""
        self.directory = directory
        self.port = free_port()
        self.connection = InfluxConnection(f"http://127.0.0.1:{self.port}")
        self._process: subprocess.Popen[bytes] | None = None
        self._admin_created = False
        self._config = directory / "influxdb.conf"
        self._config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{directory}/meta"\n'
            f'[data]\n  dir = "{directory}/data"\n  wal-dir = "{directory}/wal"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  auth-enabled = true\n  log-enabled = false\n"
        )

    @property
    def pid(self) -> int | None:
        """The running influxd's process id."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start influxd (again: same port, same data) and wait until it answers."""
        influxd = shutil.which("influxd")
        if influxd is None:
            msg = "influxd (InfluxDB 1.x) is not on PATH: apt-get install influxdb"
            raise RuntimeError(msg)
        with (self.directory / "influxd.log").open("ab") as log:
            self._process = subprocess.Popen(
                [influxd, "run", "-config", str(self._config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._wait_until_up()
        if not self._admin_created:
            # With no user yet, the first admin may be created without credentials.
            self.connection.query(
                f"CREATE USER {ADMIN_USER} WITH PASSWORD '{ADMIN_PASSWORD}' "
                "WITH ALL PRIVILEGES",
                auth=False,
            )
            self._admin_created = True

    def _wait_until_up(self) -> None:
        assert self._process is not None  # noqa: S101 - called right after Popen
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(InfluxQueryError):
                status, _ = self.connection.request("GET", "/ping", {}, auth=False)
                if status == HTTPStatus.NO_CONTENT:
                    return
            if self._process.poll() is not None or time.monotonic() > deadline:
                msg = f"influxd did not start: see {self.directory}/influxd.log"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def kill(self) -> None:
        """Kill influxd by its PID at once, as a crash or power cut would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        """Stop influxd cleanly."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the server."""
        self.stop()


@contextlib.contextmanager
def running_influxdb(directory: Path) -> Iterator[InfluxServer]:
    """Run an InfluxServer in `directory`, stopped on the way out."""
    directory.mkdir(parents=True, exist_ok=True)
    with InfluxServer(directory) as server:
        yield server
