"""A real InfluxDB 1.x server (Debian's influxd) run by the tests on 127.0.0.1.

The influxd wrapper is the benchmark's (scripts/bench_ha/influxdb.py), with the tests'
admin and InfluxQL times in microseconds; the tests' other real servers start with the
same helpers (scripts/bench_ha/servers.py).
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from pathlib import Path
from typing import Any

import pytest_socket

from scripts.bench_ha.influxdb import InfluxServer
from scripts.bench_ha.servers import free_port, start_server

__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USER",
    "InfluxDBv1Server",
    "free_port",
    "sockets_allowed",
    "start_server",
]

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-password"


@contextlib.contextmanager
def sockets_allowed() -> Iterator[None]:
    """Let fixture code outside a test body talk to its own server on 127.0.0.1."""
    pytest_socket.enable_socket()
    try:
        yield
    finally:
        pytest_socket.socket_allow_hosts(["127.0.0.1"])
        pytest_socket.disable_socket(allow_unix_socket=True)


class InfluxDBv1Server(InfluxServer):
    """influxd with authentication on, the tests' admin, and data in `directory`."""

    def __init__(self, directory: Path, *, https: bool = False) -> None:
        """Prepare a server in `directory`; `start` runs it."""
        super().__init__(
            directory, https=https, username=ADMIN_USER, password=ADMIN_PASSWORD
        )

    @property
    def url(self) -> str:
        """Where it answers: http(s)://127.0.0.1:port."""
        return self.connection.url

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        auth: bool = True,
    ) -> tuple[int, str]:
        """Send one request with the admin's credentials; return status and body."""
        return self.connection.request(method, path, params or {}, body, auth=auth)

    def query(
        self, q: str, database: str | None = None, *, auth: bool = True
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; return the statement's series (times in µs), raising on errors."""
        return self.connection.query(q, database, auth=auth, epoch="u")

    def rows(self, q: str, database: str) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as dicts, measurement name included."""
        return [
            {
                "measurement": s["name"],
                **s.get("tags", {}),
                **dict(zip(s["columns"], v, strict=True)),
            }
            for s in self.query(q, database)
            for v in s["values"]
        ]
