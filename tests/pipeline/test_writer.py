"""The writer against a real InfluxDB 1.x: refused points are isolated, not batches."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from yarl import URL

from custom_components.ha_ingestor.influxdb.v1 import InfluxV1Client
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.pipeline.writer import PointWriter

from ..influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server


def _writer(
    hass: HomeAssistant,
    server: InfluxDBv1Server,
    database: str,
    stats: PipelineStats | None = None,
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
    return PointWriter(client, stats or PipelineStats(), on_refused), refused


def _values(server: InfluxDBv1Server, database: str, measurement: str) -> list[object]:
    return [
        row["value"] for row in server.rows(f'SELECT * FROM "{measurement}"', database)
    ]


async def test_conflict_inside_one_batch(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """InfluxDB refuses the whole batch; every point but the odd one is written."""
    stats = PipelineStats()
    writer, refused = _writer(hass, influxdb, database, stats)
    lines = [f"m value={i}.5 {1_000_000 + i}" for i in range(10)]
    lines[7] = 'm value="seven" 1000007'
    await writer.write(lines)

    assert _values(influxdb, database, "m") == [i + 0.5 for i in range(10) if i != 7]
    assert len(refused) == 1
    assert refused[0][0] == ['m value="seven" 1000007']
    assert "field type conflict" in refused[0][1]
    assert (stats.points_written, stats.points_refused) == (9, 1)
    assert stats.last_write is not None
    assert writer.has_written


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
