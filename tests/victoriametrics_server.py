"""A real VictoriaMetrics (Debian's victoria-metrics) run by the tests on 127.0.0.1.

Started like influxd: its own data folder, a free port, killed by its process id and
started again on the same port and data. It takes InfluxDB line protocol on /write and
/api/v2/write (and under /influx/), and /api/v1/export gives back every series with its
timestamps once /internal/force_flush made recent points searchable
(docs.victoriametrics.com/victoriametrics/integrations/influxdb/,
docs.victoriametrics.com/victoriametrics/single-server-victoriametrics/).
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import signal
import subprocess
from typing import Any
import urllib.parse
import urllib.request

from .influxdb_v1_server import free_port, start_server


class VictoriaMetricsServer:
    """victoria-metrics with data in a temporary folder, kept for 100 years.

    The default retention (one month) would drop the points of tests that write old
    timestamps; `retention` None runs with it.
    """

    def __init__(self, directory: Path, retention: str | None = "100y") -> None:
        """Prepare a server in `directory`; `start` runs it."""
        self.directory = directory
        self.retention = retention
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running server's process id."""
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start it (again, on the same port and data) and wait until it answers."""
        binary = shutil.which("victoria-metrics")
        if binary is None:
            msg = "victoria-metrics is not installed; scripts/test installs it"
            raise RuntimeError(msg)
        self._process = start_server(
            [
                binary,
                f"-storageDataPath={self.directory / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                *([f"-retentionPeriod={self.retention}"] if self.retention else []),
                "-loggerLevel=WARN",
            ],
            self.directory / "victoria-metrics.log",
            lambda: self.get("/health"),
        )

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill it at once, as a crash or power loss would; or stop it with SIGINT.

        Killed, it loses "the last few seconds of inserted data" it had acknowledged
        (docs.victoriametrics.com/victoriametrics/ "Storage"); SIGINT stops it
        gracefully, everything persisted.
        """
        if self._process is not None:
            self._process.send_signal(sig)
            self._process.wait()
            self._process = None

    def get(self, path: str, params: dict[str, str] | None = None) -> str:
        """GET `path`; the body, raising on any status but 2xx."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.url + path + query, timeout=30) as answer:
            body: str = answer.read().decode()
            return body

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """Every series `match` selects, with its values and timestamps (in ms)."""
        self.get("/internal/force_flush")
        body = self.get("/api/v1/export", {"match[]": match})
        return [json.loads(line) for line in body.splitlines() if line]

    def samples(
        self, match: str = '{__name__!=""}'
    ) -> set[tuple[str, str, float, int]]:
        """(metric, entity_id label, value, timestamp in ms) of every stored sample."""
        return {
            (series["metric"]["__name__"], series["metric"].get("entity_id", ""), v, t)
            for series in self.export(match)
            for v, t in zip(series["values"], series["timestamps"], strict=True)
        }
