"""InfluxDB 1.x as the benchmark and the tests run it: a plain influxd on 127.0.0.1.

Authentication is on, as in most real installations, so the exporters pay for it as
they would at home. The server can be killed and restarted on the same port and data,
which the outage scenarios need; with `https`, it serves a self-signed certificate.
PointCounter counts what a benchmark run stored.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
import datetime as dt
from http import HTTPStatus
import ipaddress
import json
from pathlib import Path
import shutil
import ssl
import subprocess
from typing import Any, Self
import urllib.error
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .servers import ServerQueryError, free_port, start_server

ADMIN_USER = "bench"
ADMIN_PASSWORD = "bench-password"  # noqa: S105 - a throwaway local server


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
        # An http(s) URL of our own making.
        request = urllib.request.Request(url, body, method=method)  # noqa: S310
        # An https server here has a self-signed certificate, on purpose.
        context = (
            ssl._create_unverified_context()  # noqa: S323, SLF001
            if self.url.startswith("https:")
            else None
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=30, context=context
            ) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except (urllib.error.URLError, OSError) as err:
            raise InfluxQueryError(f"{self.url} unreachable: {err}") from err

    def query(
        self,
        q: str,
        database: str | None = None,
        *,
        auth: bool = True,
        epoch: str = "ns",
    ) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; return its series, times in `epoch` units."""
        params = {"q": q, "epoch": epoch}
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

    def __init__(
        self,
        directory: Path,
        *,
        https: bool = False,
        username: str = ADMIN_USER,
        password: str = ADMIN_PASSWORD,
    ) -> None:
        """Prepare the configuration; `start` runs the server."""
        self.directory = directory
        self.port = free_port()
        # Its RPC service (backups), which it binds too.
        self.rpc_port = free_port(besides=[self.port])
        self.connection = InfluxConnection(
            f"{'https' if https else 'http'}://127.0.0.1:{self.port}",
            username,
            password,
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._admin_created = False
        tls = ""
        if https:
            cert, key = write_self_signed_certificate(directory)
            tls = (
                f'  https-enabled = true\n  https-certificate = "{cert}"\n'
                f'  https-private-key = "{key}"\n'
            )
        self._config = directory / "influxdb.conf"
        self._config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{directory}/meta"\n'
            f'[data]\n  dir = "{directory}/data"\n  wal-dir = "{directory}/wal"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  auth-enabled = true\n  log-enabled = false\n" + tls
        )

    @property
    def pid(self) -> int | None:
        """The running influxd's process id."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start influxd (again: same port, same data) and wait until it answers."""
        influxd = shutil.which("influxd")
        if influxd is None:
            msg = "influxd (InfluxDB 1.x) is not installed; scripts/test installs it"
            raise RuntimeError(msg)
        self._process = start_server(
            [influxd, "run", "-config", str(self._config)],
            self.directory / "influxd.log",
            self._ping,
        )
        if not self._admin_created:
            # With no user yet, the first admin may be created without credentials.
            connection = self.connection
            connection.query(
                f"CREATE USER {connection.username} WITH PASSWORD"
                f" '{connection.password}' WITH ALL PRIVILEGES",
                auth=False,
            )
            self._admin_created = True

    def _ping(self) -> None:
        """Raise InfluxQueryError unless influxd answers that it is ready."""
        status, body = self.connection.request("GET", "/ping", {}, auth=False)
        if status != HTTPStatus.NO_CONTENT:
            raise InfluxQueryError(f"ping: HTTP {status} {body}")

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


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 that no client trusts by default.

    It is its own authority: a client given it as its CA file trusts the server.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
