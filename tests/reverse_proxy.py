"""A real reverse proxy (Debian's nginx-light) run by the tests on 127.0.0.1.

It puts servers behind URLs with a path, as people run InfluxDB behind a proxy
(`https://example.org/influxdb`) and as VictoriaMetrics cluster's vminsert serves line
protocol under `/insert/<tenant>/influx/` (docs.victoriametrics.com/victoriametrics/
integrations/influxdb/). Each route maps a path prefix to a server's URL, which may
have a path of its own: `/insert/0/influx/` → `http://127.0.0.1:8428/influx/` gives a
single VictoriaMetrics the cluster's paths (where, as on vminsert, `write`,
`api/v2/write` and `health` answer and `ping` does not). nginx's own limits are left as
they are: a request body over 1 MiB is refused with 413 (client_max_body_size).
"""

from __future__ import annotations

from collections.abc import Mapping
import contextlib
from pathlib import Path
import shutil
import subprocess
from typing import Protocol
import urllib.error
import urllib.request

from .influxdb_v1_server import free_port, start_server


def _nginx() -> str:
    # /usr/sbin is not on every user's PATH.
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        msg = "nginx is not installed; scripts/test installs it (nginx-light)"
        raise RuntimeError(msg)
    return found


class StartProxy(Protocol):
    """The `reverse_proxy` fixture: start an nginx, stopped after the test."""

    def __call__(
        self,
        routes: Mapping[str, str],
        error_pages: Mapping[int, bytes] | None = None,
    ) -> ReverseProxy:
        """Start one with these routes and error pages (see ReverseProxy)."""


class ReverseProxy:
    """nginx in the foreground, one process, its files in `directory`."""

    def __init__(
        self,
        directory: Path,
        routes: Mapping[str, str],
        error_pages: Mapping[int, bytes] | None = None,
    ) -> None:
        """Route each path prefix (ending in /) to an upstream URL (ending in /).

        `error_pages` replaces nginx's own page for a status with a file's bytes,
        sent as `text/html` with no charset, as a proxy's custom page often is.
        """
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        locations = "".join(
            f"    location {prefix} {{ proxy_pass {upstream}; }}\n"
            for prefix, upstream in routes.items()
        )
        if error_pages:
            (directory / "errors").mkdir()
            for status, page in error_pages.items():
                (directory / "errors" / str(status)).write_bytes(page)
                locations += f"    error_page {status} /errors/{status};\n"
            locations += (
                f"    location /errors/ {{ internal; root {directory}; "
                "default_type text/html; }\n"
            )
        temp = "".join(
            f"  {kind}_temp_path {directory}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self._config = directory / "nginx.conf"
        self._config.write_text(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n"
            f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n  access_log off;\n" + temp + "  server {\n"
            f"    listen 127.0.0.1:{self.port};\n" + locations + "  }\n}\n"
        )

    def start(self) -> None:
        """Start nginx and wait until it answers."""
        self._process = start_server(
            [
                _nginx(),
                "-p",
                str(self.directory),
                "-e",
                str(self.directory / "error.log"),
                "-c",
                str(self._config),
            ],
            self.directory / "nginx.log",
            self._answers,
        )

    def _answers(self) -> None:
        # A 404 is an answer too: nothing is routed at /.
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"{self.url}/", timeout=5).close()

    def kill(self) -> None:
        """Stop nginx."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
