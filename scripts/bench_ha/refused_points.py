"""scripts/bench --refused-points: what refused points cost on each way into InfluxDB 3.

One batch of 1,000 points, 10 of them in conflict with the field's type, written by HA
Ingestor's PointWriter to the InfluxDB 3 stand-in (tests/influxdb_v3_server.py, which
answers as InfluxDB 3 Core's docs say) through each of its write APIs:

- native, /api/v3/write_lp: a partial write lists the refused lines and stores the
  others, so the writer sets the 10 apart in the same request;
- the 2.x path, /api/v2/write: no partial writes and no line named, so the batch is
  split until each conflict stands alone;
- the 1.x path, /write: no partial writes, but the line the server stopped at is named,
  so each conflict costs one request.

The paths run one after the other, `repeats` times, on a fresh server each; the figure
is the number of write requests and the median time of the batch (the stand-in runs in
the same process and event loop: the times compare the paths, they are no InfluxDB 3's).
No Home Assistant runs; the client uses a session of its own.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import statistics
import sys
import time
from typing import Final

import aiohttp
from yarl import URL

from custom_components.ha_ingestor.influxdb.client import InfluxClient
from custom_components.ha_ingestor.influxdb.v1 import InfluxV1Client
from custom_components.ha_ingestor.influxdb.v2 import InfluxV2Client
from custom_components.ha_ingestor.influxdb.v3 import InfluxV3Client
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.pipeline.writer import PointWriter
from tests.influxdb_v3_server import InfluxDBv3TestServer

POINTS: Final = 1000
CONFLICTS: Final = 10
TOKEN: Final = "apiv3_bench"  # noqa: S105 - the stand-in's, in this process only
DATABASE: Final = "home"
# Where the conflicts are in the batch: every POINTS // CONFLICTS points from the 6th.
CONFLICTING: Final = range(5, POINTS, POINTS // CONFLICTS)
# The write endpoint of each path, for counting its requests.
PATHS: Final = {
    "InfluxDB 3 native": "/api/v3/write_lp",
    "2.x path": "/api/v2/write",
    "1.x path": "/write",
}


@dataclass(frozen=True, slots=True)
class PathResult:
    """One path's figure: write requests, median seconds, and what it stored."""

    path: str
    requests: int
    seconds: float
    stored: int
    refused: int


def batch() -> list[str]:
    """1,000 power readings a microsecond apart; every 100th, from the 6th, as text."""
    start = 1_700_000_000_000_000
    return [
        f'W,domain=sensor,entity_id=power_{i % 10} value="{i}" {start + i}'
        if i in CONFLICTING
        else f"W,domain=sensor,entity_id=power_{i % 10} value={i}.5 {start + i}"
        for i in range(POINTS)
    ]


def _client(path: str, session: aiohttp.ClientSession, url: URL) -> InfluxClient:
    if path == "InfluxDB 3 native":
        return InfluxV3Client(session, url, database=DATABASE, token=TOKEN)
    if path == "2.x path":
        return InfluxV2Client(
            session, url, token=TOKEN, organization="ignored", bucket=DATABASE
        )
    return InfluxV1Client(session, url, database=DATABASE, password=TOKEN)


async def _write_once(path: str, session: aiohttp.ClientSession) -> PathResult:
    refused: list[str] = []

    async def on_refused(lines: list[str], reason: str) -> None:
        refused.extend(lines)

    async with InfluxDBv3TestServer(token=TOKEN, databases=[DATABASE]) as server:
        writer = PointWriter(
            _client(path, session, URL(server.url)), PipelineStats(), on_refused
        )
        started = time.perf_counter()
        await writer.write(batch())
        seconds = time.perf_counter() - started
        requests = sum(r.path == PATHS[path] for r in server.requests)
        stored = len(server.points(DATABASE))
    return PathResult(path, requests, seconds, stored, len(refused))


async def measure(repeats: int = 5) -> list[PathResult]:
    """Each path `repeats` times, interleaved; the median time of each."""
    runs: dict[str, list[PathResult]] = {path: [] for path in PATHS}
    async with aiohttp.ClientSession() as session:
        for _ in range(repeats):
            for path in PATHS:
                runs[path].append(await _write_once(path, session))
    return [
        PathResult(
            path,
            results[0].requests,
            statistics.median(r.seconds for r in results),
            results[0].stored,
            results[0].refused,
        )
        for path, results in runs.items()
    ]


def format_table(results: Sequence[PathResult]) -> str:
    """Format the figure as a Markdown table, each path's time against the native."""
    native = results[0].seconds
    rows = [
        f"Refused points: one batch of {POINTS:,} points with {CONFLICTS} field type"
        " conflicts, written to the InfluxDB 3 stand-in",
        "",
        "| path | write requests | time (median) | time vs native | stored | set apart |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {r.path} ({PATHS[r.path]}) | {r.requests} | {r.seconds * 1000:.1f} ms |"
        f" {r.seconds / native:.1f}x | {r.stored} | {r.refused} |"
        for r in results
    ]
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str]) -> int:
    """Measure and print the figure."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench --refused-points", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per path (5)")
    args = parser.parse_args(argv)
    sys.stdout.write(format_table(asyncio.run(measure(args.repeats))))
    return 0
