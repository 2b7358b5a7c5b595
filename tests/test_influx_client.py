"""Gzip-compressed writes, against a real InfluxDB 1.x and the 2.x stand-in."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest
from yarl import URL

from custom_components.ha_ingestor.influxdb.connection import create_client
from custom_components.ha_ingestor.influxdb.errors import InfluxWriteRejectedError
from custom_components.ha_ingestor.influxdb.v1 import InfluxV1Client
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.pipeline.writer import PointWriter

from .conftest import v2_entry_data
from .influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server
from .influxdb_v2_server import InfluxDBv2TestServer, RecordedBody


def _gzip_v1_client(
    hass: HomeAssistant, server: InfluxDBv1Server, database: str
) -> InfluxV1Client:
    return InfluxV1Client(
        async_get_clientsession(hass),
        URL(server.url),
        database=database,
        username=ADMIN_USER,
        password=ADMIN_PASSWORD,
        gzip=True,
    )


async def test_gzip_writes_are_stored_by_influxdb_v1(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """InfluxDB inflates the compressed batch; every point can be counted back."""
    client = _gzip_v1_client(hass, influxdb, database)
    await client.validate()
    lines = [f"m,entity_id=e{i % 7} value={i}.5 {1_000_000 + i}" for i in range(2000)]
    await client.write("\n".join(lines).encode())

    counted = influxdb.rows('SELECT COUNT("value") FROM "m"', database)
    assert counted[0]["count"] == 2000


async def test_gzip_refused_point_raises_write_rejected(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """A refused point is told apart from a bad gzip stream: it can be isolated."""
    client = _gzip_v1_client(hass, influxdb, database)
    with pytest.raises(InfluxWriteRejectedError, match="field type conflict"):
        await client.write(b'm value=1.0 1\nm value="text" 2')

    refused: list[list[str]] = []

    async def on_refused(lines: list[str], reason: str) -> None:
        refused.append(lines)

    writer = PointWriter(client, PipelineStats(), on_refused)
    lines = [f"n value={i}.5 {1_000_000 + i}" for i in range(10)]
    lines[3] = "n value= 1000003"
    await writer.write(lines)

    values = [row["value"] for row in influxdb.rows('SELECT * FROM "n"', database)]
    assert values == [i + 0.5 for i in range(10) if i != 3]
    assert refused == [["n value= 1000003"]]


async def test_gzip_client_sends_batches_compressed(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A batch goes out gzip-compressed, several times smaller; an empty body never.

    The stand-in inflates a body sent as gzip and refuses one that is not gzip, as
    influxd does, so the stored points prove the compressed body was whole.
    """
    body = "\n".join(
        f"W,domain=sensor,entity_id=power_{i % 10} value={i}.5 {1_000_000 + i}"
        for i in range(500)
    ).encode()
    for gzip in (False, True):
        client = create_client(hass, v2_entry_data(influxdb_v2), gzip=gzip)
        await client.validate()
        await client.write(body)

    assert len(influxdb_v2.points("ha")) == 2 * 500
    validation = RecordedBody("", 0)
    plain, compressed = influxdb_v2.write_bodies[1], influxdb_v2.write_bodies[3]
    assert influxdb_v2.write_bodies == [validation, plain, validation, compressed]
    assert plain == RecordedBody("", len(body))
    assert compressed.content_encoding == "gzip"
    assert compressed.size * 4 < plain.size
