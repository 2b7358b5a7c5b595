"""What the benchmark asks of a database server it runs, whichever the kind.

influxdb.py (InfluxDB 1.x, for the built-in integration and HA Ingestor) and postgres.py
(PostgreSQL with TimescaleDB, for the peers) each run their server as a plain process
that the outage scenarios kill by PID and start again, and each count what a run stored.
"""

from __future__ import annotations

from typing import Protocol


class ServerQueryError(RuntimeError):
    """A server answered a query with an error, or could not be reached."""


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
