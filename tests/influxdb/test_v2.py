"""InfluxDB 2.x and Cloud's client (influxdb/v2.py), against the documented answers.

The 2.x stand-in answers as influxd 2.7 and the API reference say
(docs.influxdata.com/influxdb/v2/api/#operation/PostWrite, and write-data/troubleshoot
for OSS and Cloud); InfluxDB 3's /api/v2/write is its stand-in's.
"""

from __future__ import annotations

from typing import Any

from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
import pytest

from custom_components.ha_ingestor.const import CONF_BUCKET, CONF_ORGANIZATION
from custom_components.ha_ingestor.influxdb.connection import create_client
from custom_components.ha_ingestor.influxdb.errors import (
    InfluxAuthError,
    InfluxForbiddenError,
    InfluxNotFoundError,
    InfluxWriteRejectedError,
)
from scripts.bench_ha.refused_points import CONFLICTING, batch

from ..conftest import (
    V2_READ_ONLY_TOKEN,
    V2_TOKEN,
    V3_DATABASE,
    V3_TOKEN,
    point_writer,
    v2_entry_data,
)
from ..influxdb_v2_server import InfluxDBv2TestServer, Point
from ..influxdb_v3_server import InfluxDBv3TestServer

pytestmark = pytest.mark.usefixtures("socket_enabled")

MICROS = 1_700_000_000_000_000


def _distinct(points: list[Point]) -> set[tuple[str, str, int]]:
    """Points as InfluxDB keeps them: one per series and time (rewrites collapse)."""
    return {(p.measurement, p.tags.get("entity_id", ""), p.time_ns) for p in points}


async def test_organization_by_name_or_id(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """`org` takes the organization's name or its ID ("The organization name or ID")."""
    for org in ("home", influxdb_v2.org_id):
        client = create_client(hass, v2_entry_data(influxdb_v2) | {"organization": org})
        await client.validate()
        await client.write(f"m value=1 {MICROS}".encode())
    assert len(influxdb_v2.points("ha")) == 2
    with pytest.raises(InfluxNotFoundError) as raised:
        await create_client(
            hass, v2_entry_data(influxdb_v2) | {CONF_ORGANIZATION: "0123456789abcdef"}
        ).validate()
    assert raised.value.field == CONF_ORGANIZATION


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({CONF_TOKEN: "wrong"}, InfluxAuthError, None),
        ({CONF_TOKEN: V2_READ_ONLY_TOKEN}, InfluxForbiddenError, None),
        ({CONF_ORGANIZATION: "elsewhere"}, InfluxNotFoundError, CONF_ORGANIZATION),
        ({CONF_BUCKET: "missing"}, InfluxNotFoundError, CONF_BUCKET),
    ],
)
async def test_refusals_name_their_field(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    changes: dict[str, Any],
    error: type[Exception],
    field: str | None,
) -> None:
    """401 token, 403 no write permission, 404 organization or bucket not found."""
    with pytest.raises(error) as raised:
        await create_client(hass, v2_entry_data(influxdb_v2) | changes).validate()
    assert getattr(raised.value, "field", None) == field


async def test_partial_write_422_keeps_the_valid_points(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """OSS 2.x answers a partial write with 422 and keeps the valid points.

    write-data/troubleshoot: "Data that has not been rejected is ingested"; the
    writer finds the refused ones.
    """
    client = create_client(hass, v2_entry_data(influxdb_v2))
    await client.write(f"W,entity_id=other value=0.5 {MICROS}".encode())
    lines = [f"W,entity_id=p{i} value={i}.5 {MICROS + i}" for i in range(8)]
    lines[5] = f'W,entity_id=p5 value="five" {MICROS + 5}'
    with pytest.raises(InfluxWriteRejectedError, match="partial write"):
        await client.write("\n".join(lines).encode())
    first_answer = [r.status for r in influxdb_v2.requests][-1]
    kept = _distinct(influxdb_v2.points("ha"))

    writer, refused = point_writer(client)
    await writer.write(lines)

    assert first_answer == 422
    assert len(kept) == 1 + 7  # the seed, and every point but the text one
    assert [group for group, _ in refused] == [[lines[5]]]
    assert _distinct(influxdb_v2.points("ha")) == kept


async def test_malformed_batch_400_stores_nothing(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """400: the whole batch was malformed and nothing was written (troubleshoot)."""
    lines = [f"m,entity_id=p{i} value={i}.5 {MICROS + i}" for i in range(8)]
    lines[2] = "m,entity_id=p2 value= 1"
    with pytest.raises(InfluxWriteRejectedError, match="unable to parse"):
        await create_client(hass, v2_entry_data(influxdb_v2)).write(
            "\n".join(lines).encode()
        )
    assert influxdb_v2.points("ha") == []

    writer, refused = point_writer(create_client(hass, v2_entry_data(influxdb_v2)))
    await writer.write(lines)
    assert [group for group, _ in refused] == [[lines[2]]]
    assert len(_distinct(influxdb_v2.points("ha"))) == 7


async def test_too_large_413_is_split_and_retried(hass: HomeAssistant) -> None:
    """413 "points batch is too large": all rejected, nothing written; split, retry."""
    lines = [f"m,entity_id=p{i % 9} value={i}.5 {MICROS + i}" for i in range(300)]
    async with InfluxDBv2TestServer(
        token=V2_TOKEN, org="home", buckets=["ha"], max_body_bytes=3000
    ) as server:
        writer, refused = point_writer(create_client(hass, v2_entry_data(server)))
        await writer.write(lines)
        statuses = {r.status for r in server.requests}
        stored = len(_distinct(server.points("ha")))
    assert statuses == {204, 413}
    assert refused == []
    assert stored == 300


async def test_influxdb_3_through_the_2x_endpoint(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """InfluxDB 3's /api/v2/write: the setup check passes, conflicts need bisection.

    The empty write's "write buffer error: incoming write was empty" means every
    check passed; the endpoint never accepts partial writes and does not say which
    line failed, so a refused batch is split until each conflict stands alone. The
    native client needs one request for the same batch (test_v3.py).
    """
    data = v2_entry_data(influxdb_v3) | {
        CONF_TOKEN: V3_TOKEN,
        CONF_BUCKET: V3_DATABASE,
    }
    await create_client(hass, data).validate()
    lines = batch()
    writer, refused = point_writer(create_client(hass, data))
    await writer.write(lines)

    writes = [r for r in influxdb_v3.requests if r.path == "/api/v2/write"]
    assert [line for group, _ in refused for line in group] == [
        lines[i] for i in CONFLICTING
    ]
    assert len(influxdb_v3.points(V3_DATABASE)) == 990
    assert len(writes) - 1 == 151  # the figure issue 15 measured, bar the check
