"""The benchmark's PostgreSQL with TimescaleDB: a plain postgres on 127.0.0.1, rows counted.

The peers (Scribe and LTSS) write to it. The server gets a data directory of its own made
with initdb, a free port, password authentication, and TimescaleDB preloaded; each run
gets a fresh database. As InfluxServer, it can be killed by PID and started again on the
same port and data (PostgreSQL then recovers from its write-ahead log).

Queries go through `psql`, the server's own client, in a process of its own: a run counts
rows from inside the Home Assistant process it measures, which must not hold a database
driver only the benchmark uses.

PostgreSQL refuses to run as root: where the benchmark is root (the test root, CI), the
server runs as the `postgres` user the Debian package creates.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Final, Self

from .servers import ServerQueryError, free_port, start_server

ADMIN_USER: Final = "bench"
ADMIN_PASSWORD: Final = "bench-password"  # noqa: S105 - a throwaway local server
# How long a killed server's processes may take to be gone.
KILL_TIMEOUT: Final = 10.0
# The user the Debian package runs PostgreSQL as, and the one this runs it as when root.
SERVER_USER: Final = "postgres"
_BIN_GLOB: Final = "/usr/lib/postgresql/*/bin/postgres"


class PostgresQueryError(ServerQueryError):
    """PostgreSQL answered a statement with an error, or could not be reached."""


def bin_dir() -> Path:
    """Return the newest installed PostgreSQL's directory of programs (Debian's layout)."""
    servers = sorted(
        Path("/").glob(_BIN_GLOB.removeprefix("/")),
        key=lambda path: int(path.parents[1].name),
    )
    if not servers:
        msg = (
            "no PostgreSQL server found (/usr/lib/postgresql/*/bin/postgres): apt-get"
            " install postgresql-18 postgresql-18-timescaledb (scripts/_python.sh does)"
        )
        raise RuntimeError(msg)
    return servers[-1].parent


def version() -> str:
    """Return the installed server's version, e.g. 18.6 ("postgres (PostgreSQL) 18.6 ...")."""
    answer = subprocess.run(
        [bin_dir() / "postgres", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    return answer.stdout.split()[2]


@dataclass(frozen=True, slots=True)
class PostgresConnection:
    """Where the server is and who to be there; plain data, so a child process gets it."""

    port: int
    username: str = ADMIN_USER
    password: str = ADMIN_PASSWORD
    host: str = "127.0.0.1"

    def url(self, database: str, username: str = "", password: str = "") -> str:
        """Return the postgresql:// URL a user puts in an integration's YAML."""
        user = username or self.username
        secret = password or self.password
        return f"postgresql://{user}:{secret}@{self.host}:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[list[str]]:
        """Run one statement with psql; return its rows as lists of text."""
        try:
            answer = subprocess.run(
                [
                    bin_dir() / "psql",
                    *("-X", "-A", "-t", "-q", "-F", "\t"),
                    *("-v", "ON_ERROR_STOP=1"),
                    *("-h", self.host, "-p", str(self.port)),
                    *("-U", self.username, "-d", database, "-c", statement),
                ],
                env={
                    **os.environ,
                    "PGPASSWORD": self.password,
                    "PGCONNECT_TIMEOUT": "5",
                },
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise PostgresQueryError(f"{statement!r} timed out") from err
        if answer.returncode != 0:
            msg = f"{statement!r} failed on {self.host}:{self.port}: {answer.stderr.strip()}"
            raise PostgresQueryError(msg)
        return [line.split("\t") for line in answer.stdout.splitlines() if line]

    def create_database(self, name: str, setup: tuple[str, ...] = ()) -> None:
        """Create a fresh database; run `setup` in it ({database} is its name)."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}"')
        self.sql(f'CREATE DATABASE "{name}"')
        for statement in setup:
            self.sql(statement.format(database=name), name)


def since_sql(column: str, since_ns: int, until_ns: int | None = None) -> str:
    """Return a WHERE condition on a timestamptz column, exact to the microsecond."""
    condition = f"{column} >= {_timestamp(since_ns)}"
    if until_ns is not None:
        condition += f" AND {column} < {_timestamp(until_ns)}"
    return condition


def _timestamp(ns: int) -> str:
    return f"(timestamptz 'epoch' + {ns // 1000} * interval '1 microsecond')"


class RowCounter:
    """Counts the rows a run stored in one table of its database: one per state change."""

    def __init__(
        self, connection: PostgresConnection, database: str, table: str
    ) -> None:
        """Count in `table` of `database`, whose `time` column is the state's time."""
        self._connection = connection
        self._database = database
        self._table = table

    def count(self, since_ns: int = 0, until_ns: int | None = None) -> int:
        """Rows with since_ns <= time (< until_ns)."""
        rows = self._connection.sql(
            f"SELECT count(*) FROM {self._table}"  # noqa: S608 - numbers and a constant
            f" WHERE {since_sql('time', since_ns, until_ns)}",
            self._database,
        )
        return int(rows[0][0])


class PostgresServer:
    """postgres with TimescaleDB, its data in a directory of its own, on a free port."""

    def __init__(self) -> None:
        """Make the data directory with initdb; `start` runs the server."""
        self._run_as = _server_user()
        self.directory = Path(tempfile.mkdtemp(prefix="ha-bench-postgres-"))
        self._data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.port = free_port()
        self.connection = PostgresConnection(self.port)
        self._process: subprocess.Popen[bytes] | None = None
        password_file = self.directory / "password"
        password_file.write_text(ADMIN_PASSWORD + "\n")
        if self._run_as is not None:
            os.chown(self.directory, self._run_as.pw_uid, self._run_as.pw_gid)
            os.chown(password_file, self._run_as.pw_uid, self._run_as.pw_gid)
        answer = subprocess.run(
            [
                bin_dir() / "initdb",
                *("-D", str(self._data), "-U", ADMIN_USER),
                *(f"--pwfile={password_file}", "--auth=scram-sha-256"),
                *("-E", "UTF8", "--no-locale", "--no-sync"),
            ],
            capture_output=True,
            text=True,
            check=False,
            **self._as_server_user(),
        )
        password_file.unlink()
        if answer.returncode != 0:
            shutil.rmtree(self.directory, ignore_errors=True)
            msg = f"initdb failed: {answer.stderr.strip()}"
            raise RuntimeError(msg)

    def _as_server_user(self) -> dict[str, Any]:
        """Popen arguments that run a program as the server's user, in its directory."""
        if self._run_as is None:
            return {"cwd": self.directory}
        return {
            "cwd": self.directory,
            "user": self._run_as.pw_uid,
            "group": self._run_as.pw_gid,
            "extra_groups": [],
        }

    @property
    def pid(self) -> int | None:
        """The running postmaster's process id."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start postgres (again: same port, same data) and wait until it answers."""
        self._process = start_server(
            [
                bin_dir() / "postgres",
                *("-D", str(self._data)),
                *("-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}"),
                *("-c", f"unix_socket_directories={self.directory}"),
                *("-c", "shared_preload_libraries=timescaledb"),
                *("-c", "timescaledb.telemetry_level=off"),
            ],
            self.log,
            lambda: self.connection.sql("SELECT 1"),
            # Its own process group: the postmaster and its backends die together.
            start_new_session=True,
            **self._as_server_user(),
        )

    def kill(self) -> None:
        """Kill postgres by its PID at once (SIGKILL to its process group), as a crash would.

        Its backends go with it; the server starts again only once they are gone.
        """
        if self._process is None:
            return
        pid = self._process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self._process.wait()
        self._process = None
        deadline = time.monotonic() + KILL_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop postgres cleanly (fast shutdown), or kill it."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=30)
            self._process = None
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the server; remove its data."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _server_user() -> pwd.struct_passwd | None:
    """Return the user to run the server as when this is root (None: this user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError as err:
        msg = f"PostgreSQL does not run as root, and there is no {SERVER_USER} user"
        raise RuntimeError(msg) from err


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Run a PostgresServer, stopped and removed on the way out."""
    with PostgresServer() as server:
        yield server
