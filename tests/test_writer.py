"""The writer against a real InfluxDB 1.x: refused points are isolated, not batches."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from yarl import URL

from custom_components.ha_ingestor.influxdb.v1 import InfluxV1Client
from custom_components.ha_ingestor.pipeline.health import MAX_BACKOFF, Backoff
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.pipeline.writer import PointWriter

from .influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server


def _writer(
    hass: HomeAssistant, server: InfluxDBv1Server, database: str
) -> tuple[PointWriter, list[tuple[list[str], str]]]:
    refused: list[tuple[list[str], str]] = []

    async def on_refused(lines: list[str], reason: str) -> None:
        refused.append((lines, reason))

    client = InfluxV1Client(
        async_get_clientsession(hass),
        URL(server.url),
        database=database,
        username=ADMIN_USER,
        password=ADMIN_PASSWORD,
    )
    return PointWriter(client, PipelineStats(), on_refused), refused


def _values(server: InfluxDBv1Server, database: str, measurement: str) -> list[object]:
    return [
        row["value"] for row in server.rows(f'SELECT * FROM "{measurement}"', database)
    ]


async def test_conflict_inside_one_batch(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """InfluxDB refuses the whole batch; every point but the odd one is written."""
    writer, refused = _writer(hass, influxdb, database)
    lines = [f"m value={i}.5 {1_000_000 + i}" for i in range(10)]
    lines[7] = 'm value="seven" 1000007'
    await writer.write(lines)

    assert _values(influxdb, database, "m") == [i + 0.5 for i in range(10) if i != 7]
    assert len(refused) == 1
    assert refused[0][0] == ['m value="seven" 1000007']
    assert "field type conflict" in refused[0][1]
    stats = writer._stats
    assert (stats.points_written, stats.points_refused) == (9, 1)


async def test_conflict_with_stored_data(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Points whose field already has another type are refused one by one."""
    influxdb.request("POST", "/write", {"db": database}, b'm value="text" 1')
    writer, refused = _writer(hass, influxdb, database)
    await writer.write(["m value=1.0 2", "other value=2.0 3", "m value=3.0 4"])

    assert _values(influxdb, database, "other") == [2.0]
    assert [lines for lines, _ in refused] == [["m value=1.0 2"], ["m value=3.0 4"]]
    assert all("already exists as type string" in reason for _, reason in refused)


async def test_malformed_point_is_isolated(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """A line InfluxDB cannot parse is refused with the parser's message."""
    writer, refused = _writer(hass, influxdb, database)
    await writer.write(["m value=1.0 1", "m value= 2", "m value=3.0 3"])
    assert _values(influxdb, database, "m") == [1.0, 3.0]
    assert refused[0][0] == ["m value= 2"]
    assert "unable to parse" in refused[0][1]


def test_backoff_doubles_up_to_five_minutes() -> None:
    """Waits double from 1 s and never exceed 5 minutes; jitter only shortens."""
    longest = Backoff(rng=lambda: 1.0)
    assert [longest.next_delay() for _ in range(11)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        300,
        300,
    ]
    shortest = Backoff(rng=lambda: 0.0)
    assert [shortest.next_delay() for _ in range(3)] == [0.5, 1, 2]
    assert MAX_BACKOFF == 300


def test_backoff_honours_retry_after_and_resets() -> None:
    """The server's Retry-After wins when longer, up to the cap; success resets."""
    backoff = Backoff(rng=lambda: 1.0)
    assert backoff.next_delay(retry_after=30) == 30
    assert backoff.next_delay(retry_after=10_000) == MAX_BACKOFF
    backoff.reset()
    assert backoff.next_delay() == 1
