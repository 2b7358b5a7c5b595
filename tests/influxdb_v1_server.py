"""A real InfluxDB 1.x server (Debian's influxd) run by the tests on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
import datetime as dt
import ipaddress
import json
from pathlib import Path
import shutil
import socket
import ssl
import subprocess
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest_socket

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


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    argv: list[str], log_path: Path, probe: Callable[[], object]
) -> subprocess.Popen[bytes]:
    """Start a server process, its output in `log_path`; return once `probe` passes.

    `probe` raises URLError or ConnectionError while the server does not answer yet.
    """
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            probe()
        except urllib.error.URLError, ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                msg = f"{Path(argv[0]).name} did not start: see {log_path}"
                raise RuntimeError(msg) from None
            time.sleep(0.05)
        else:
            return process


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


class InfluxDBv1Server:
    """influxd with authentication on, an admin user, and data in a temporary folder."""

    def __init__(self, directory: Path, *, https: bool = False) -> None:
        """Prepare a server in `directory`; `start` runs it."""
        self.directory = directory
        self.port = free_port()
        self.https = https
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
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
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{directory}/meta"\n'
            f'[data]\n  dir = "{directory}/data"\n  wal-dir = "{directory}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  auth-enabled = true\n  log-enabled = false\n" + tls
        )

    @property
    def pid(self) -> int | None:
        """The running influxd's process id."""
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start influxd (again, on the same port and data) and wait until it answers."""
        influxd = shutil.which("influxd")
        if influxd is None:
            msg = "influxd (InfluxDB 1.x) is not installed; scripts/test installs it"
            raise RuntimeError(msg)
        self._process = start_server(
            [influxd, "run", "-config", str(self._config)],
            self.directory / "influxd.log",
            lambda: self.request("GET", "/ping", auth=False),
        )
        if self._admin_created:
            return
        # With no user yet, the first admin may be created without credentials.
        self._admin_created = True
        self.query(
            f"CREATE USER {ADMIN_USER} WITH PASSWORD '{ADMIN_PASSWORD}' "
            "WITH ALL PRIVILEGES",
            auth=False,
        )

    def kill(self) -> None:
        """Kill influxd at once, as a crash or power loss would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

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
        query = dict(params or {})
        if auth:
            query |= {"u": ADMIN_USER, "p": ADMIN_PASSWORD}
        url = f"{self.url}{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, data=body, method=method)
        # The https server's certificate is self-signed on purpose.
        context = ssl._create_unverified_context() if self.https else None  # noqa: S323
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def query(
        self, q: str, database: str | None = None, *, auth: bool = True
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; return the statement's series, raising on any error."""
        params = {"q": q, "epoch": "u"}
        if database:
            params["db"] = database
        status, body = self.request("POST", "/query", params, auth=auth)
        result = json.loads(body)["results"][0] if status == 200 else {}
        if status != 200 or "error" in result:
            msg = f"InfluxQL {q!r} failed: HTTP {status} {body}"
            raise RuntimeError(msg)
        series: list[dict[str, Any]] = result.get("series", [])
        return series

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
