"""What the benchmark asks of a database server it runs, whichever the kind.

influxdb.py (InfluxDB 1.x, for the built-in integration and HA Ingestor) and postgres.py
(PostgreSQL with TimescaleDB, for the peers) each run their server as a plain process
that the outage scenarios kill by PID and start again, and each count what a run stored.
The tests run their real servers (influxd among them) with the same helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
import socket
import subprocess
import time
from typing import Any, Protocol

# How long a server may take to answer once started (a busy machine's first start).
START_TIMEOUT = 60.0


class ServerQueryError(RuntimeError):
    """A server answered a query with an error, or could not be reached."""


def free_port(besides: Collection[int] = ()) -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now, none of `besides`.

    The kernel may give the same free port twice in a row: a server given two ports
    picked one after the other, or two servers started after both were picked,
    must say which ports are taken already.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in besides:
            return port


def start_server(
    argv: list[str | Path],
    log_path: Path,
    probe: Callable[[], object],
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start a server process, its output in `log_path`; return once `probe` passes.

    `probe` raises OSError (URLError, ConnectionError) or ServerQueryError while the
    server does not answer yet. `popen`: more of subprocess.Popen's arguments.
    """
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, **popen
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            probe()
        except OSError, ServerQueryError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                # The log's end says why, as the server wrote it.
                tail = "\n".join(
                    log_path.read_text(errors="replace").splitlines()[-10:]
                )
                msg = f"{Path(argv[0]).name} did not start ({log_path}):\n{tail}"
                raise RuntimeError(msg) from None
            time.sleep(0.05)
        else:
            return process


class Server(Protocol):
    """A database server the benchmark started and may kill and start again."""

    def start(self) -> None:
        """Start the server (again: same port, same data) and wait until it answers."""

    def kill(self) -> None:
        """Kill the server by its PID at once, as a crash or power cut would."""


class StoredCounter(Protocol):
    """Counts what one run stored: points or rows, one per state change."""

    def count(self, since_ns: int = 0, until_ns: int | None = None) -> int:
        """Return what is stored with since_ns <= time (< until_ns)."""
        ...
