"""InfluxDB 3's native client (influxdb/v3.py) against the stand-in.

Each test names the behaviour of InfluxDB 3 Core it relies on, as its docs describe it
(tests/influxdb_v3_server.py lists the sources): [WRITE] the v3 write_lp page, [API]
the OpenAPI file, [TROUBLE] the write troubleshooting page.
"""

from __future__ import annotations

from typing import Any

from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
import pytest

from custom_components.ha_ingestor.const import CONF_DATABASE, CONF_NO_SYNC
from custom_components.ha_ingestor.influxdb.client import ServerInfo
from custom_components.ha_ingestor.influxdb.connection import create_client
from custom_components.ha_ingestor.influxdb.errors import (
    InfluxAuthError,
    InfluxConnectionError,
    InfluxError,
    InfluxForbiddenError,
    InfluxInvalidNameError,
    InfluxNotFoundError,
    InfluxUnreachableError,
    InfluxWriteRejectedError,
    InfluxWrongVersionError,
)
from scripts.bench_ha.refused_points import CONFLICTING, batch

from ..conftest import (
    V3_DATABASE,
    V3_READ_ONLY_TOKEN,
    point_writer,
    v3_entry_data as entry_data,
)
from ..influxdb_v1_server import InfluxDBv1Server, free_port
from ..influxdb_v2_server import InfluxDBv2TestServer
from ..influxdb_v3_server import InfluxDBv3TestServer

pytestmark = pytest.mark.usefixtures("socket_enabled")

MICROS = 1_700_000_000_000_000


def _power(count: int) -> list[str]:
    """Power readings a microsecond apart."""
    return [
        f"W,entity_id=power_{i % 10} value={i}.5 {MICROS + i}" for i in range(count)
    ]


def _timestamped(lines: list[str]) -> list[str]:
    return [f"{line} {MICROS + i}" for i, line in enumerate(lines)]


async def test_validate_names_server_and_database(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """The server, its version and whether the database exists; nothing is written.

    /ping names the product and version [API GetPing: X-Influxdb-Build, -Version];
    the database list says whether the database exists [API GetConfigureDatabase].
    """
    exists = await create_client(hass, entry_data(influxdb_v3)).validate()
    created = await create_client(hass, entry_data(influxdb_v3, "new-db")).validate()

    assert exists == ServerInfo("3.10.0", "Core", database_exists=True)
    assert created == ServerInfo("3.10.0", "Core", database_exists=False)
    assert influxdb_v3.databases() == ["_internal", V3_DATABASE]
    assert influxdb_v3.points(V3_DATABASE) == []


async def test_validate_without_authentication(
    hass: HomeAssistant,
) -> None:
    """A server started --without-auth takes no token [SERVE]."""
    async with InfluxDBv3TestServer(token=None) as server:
        info = await create_client(
            hass, entry_data(server) | {CONF_TOKEN: ""}
        ).validate()
    assert info == ServerInfo("3.10.0", "Core", database_exists=False)


@pytest.mark.parametrize(
    ("changes", "server_options", "error", "field"),
    [
        ({CONF_TOKEN: "wrong"}, {}, InfluxAuthError, None),
        ({CONF_TOKEN: ""}, {}, InfluxAuthError, None),
        ({CONF_TOKEN: "wrong"}, {"disable_authz": ["ping"]}, InfluxAuthError, None),
        ({CONF_TOKEN: V3_READ_ONLY_TOKEN}, {}, InfluxForbiddenError, None),
        ({CONF_DATABASE: "bad name!"}, {}, InfluxInvalidNameError, CONF_DATABASE),
        ({CONF_DATABASE: "_private"}, {}, InfluxInvalidNameError, CONF_DATABASE),
        (
            {CONF_DATABASE: "elsewhere"},
            {"create_databases": False},
            InfluxNotFoundError,
            CONF_DATABASE,
        ),
    ],
    ids=[
        "wrong token: 401 on /ping",
        "no token where auth is on",
        "ping open, the write judges the token",
        "read-only token: 403",
        "invalid character",
        "must start with a letter or number",
        "not created by writes: 404",
    ],
)
async def test_validate_errors(
    hass: HomeAssistant,
    changes: dict[str, Any],
    server_options: dict[str, Any],
    error: type[InfluxError],
    field: str | None,
) -> None:
    """Each refusal raises the error of the field it concerns, and stores nothing.

    401 without a version header for a missing or wrong token [API: /ping "requires
    authentication by default"; SRC 401 before routing]; 403 for a token that may not
    write [API 403]; 400 for a database name InfluxDB 3 refuses [SRC validate_db_name];
    404 where the server does not create the database [TROUBLE].
    """
    async with InfluxDBv3TestServer(
        token="apiv3_write-token",
        read_only_tokens={V3_READ_ONLY_TOKEN: [V3_DATABASE]},
        databases=[V3_DATABASE],
        **server_options,
    ) as server:
        with pytest.raises(error) as raised:
            await create_client(hass, entry_data(server) | changes).validate()
    assert type(raised.value) is error
    assert getattr(raised.value, "field", None) == field
    assert server.databases() == ["_internal", V3_DATABASE]


async def test_validate_refuses_other_servers(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    influxdb_v2: InfluxDBv2TestServer,
) -> None:
    """InfluxDB 1.x (204 on /ping) and 2.x ("v2.7.11") are not InfluxDB 3."""
    for url in (influxdb.url, influxdb_v2.url):
        with pytest.raises(InfluxWrongVersionError, match="not 3"):
            await create_client(hass, entry_data(url)).validate()
    with pytest.raises(InfluxUnreachableError):
        await create_client(
            hass, entry_data(f"http://127.0.0.1:{free_port()}")
        ).validate()


async def test_write_request(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """POST /api/v3/write_lp with db, precision=microsecond and accept_partial=true.

    With a Bearer token [WRITE]; `no_sync=true` only when asked for [WRITE no_sync].
    """
    for no_sync in (False, True):
        client = create_client(hass, entry_data(influxdb_v3) | {CONF_NO_SYNC: no_sync})
        await client.write(f"m value=1 {MICROS + no_sync}".encode())

    writes = [r for r in influxdb_v3.requests if r.path == "/api/v3/write_lp"]
    base = {"db": V3_DATABASE, "precision": "microsecond", "accept_partial": "true"}
    assert [r.query for r in writes] == [base, base | {"no_sync": "true"}]
    assert [p.time_ns for p in influxdb_v3.points(V3_DATABASE)] == [
        MICROS * 1000,
        (MICROS + 1) * 1000,
    ]


async def test_gzip_write(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """Content-Encoding: gzip is inflated by the server [WRITE gzip]."""
    client = create_client(hass, entry_data(influxdb_v3), gzip=True)
    await client.write("\n".join(_power(200)).encode())
    assert len(influxdb_v3.points(V3_DATABASE)) == 200
    assert influxdb_v3.write_bodies[-1].content_encoding == "gzip"


async def test_partial_write_sets_apart_exactly_the_refused_lines(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """One request for 1,000 points with 10 type conflicts: 990 stored, 10 set apart.

    [WRITE "Accept partial writes"]: 400 "partial write of line protocol occurred"
    lists each refused line by number with its own message, and every other line is
    written; the batch is not split.
    """
    lines = batch()
    writer, refused = point_writer(create_client(hass, entry_data(influxdb_v3)))
    await writer.write(lines)

    writes = [r for r in influxdb_v3.requests if r.path == "/api/v3/write_lp"]
    assert [r.status for r in writes] == [400]
    assert len(influxdb_v3.points(V3_DATABASE)) == 990
    assert len(refused) == 1
    assert refused[0][0] == [lines[i] for i in CONFLICTING]
    assert refused[0][1] == (
        "invalid column type for column 'value', expected "
        "iox::column_type::field::float, got iox::column_type::field::string"
    )
    assert (writer._stats.points_written, writer._stats.points_refused) == (990, 10)


async def test_refused_lines_keep_their_own_messages(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """Lines refused for different reasons go to quarantine each with its message."""
    lines = _timestamped(["m value=1", 'm value="text"', "m value=", "m value=4"])
    writer, refused = point_writer(create_client(hass, entry_data(influxdb_v3)))
    await writer.write(lines)

    assert len(influxdb_v3.points(V3_DATABASE)) == 2
    by_line = {line: reason for group, reason in refused for line in group}
    assert set(by_line) == {lines[1], lines[2]}
    assert "invalid column type" in by_line[lines[1]]
    assert "missing field value" in by_line[lines[2]]


async def test_schema_limit_is_a_422_partial_write(
    hass: HomeAssistant,
) -> None:
    """A line over a schema limit makes the partial write 422 [SRC PartialLpWrite].

    The listed lines are set apart; the others were stored.
    """
    async with InfluxDBv3TestServer(token="t", max_tables=2) as server:
        client = create_client(hass, entry_data(server) | {CONF_TOKEN: "t"})
        writer, refused = point_writer(client)
        await writer.write(_timestamped(["a v=1", "b v=1", "c v=1", "a v=2"]))
        stored = server.points(V3_DATABASE)
    assert [r.status for r in server.requests if r.method == "POST"] == [422]
    assert [p.measurement for p in stored] == ["a", "b", "a"]
    assert [group for group, _ in refused] == [[f"c v=1 {MICROS + 2}"]]
    assert "exceed number of tables limit" in refused[0][1]


async def test_too_large_batch_is_split_and_retried(
    hass: HomeAssistant,
) -> None:
    """413 "max request size (...) exceeded" [API 413; SRC read_body]: split and retry.

    The writer splits the batch until each part fits; every point is stored.
    """
    lines = _power(400)
    async with InfluxDBv3TestServer(token="t", max_request_bytes=4000) as server:
        client = create_client(hass, entry_data(server) | {CONF_TOKEN: "t"})
        writer, refused = point_writer(client)
        await writer.write(lines)
        stored = len(server.points(V3_DATABASE))
        statuses = {r.status for r in server.requests}
    assert stored == 400
    assert refused == []
    assert statuses == {204, 413}


async def test_write_errors(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """401, 403, 503 and the empty write read as what they mean for a write."""
    good = entry_data(influxdb_v3)
    cases: list[tuple[dict[str, Any], type[InfluxError]]] = [
        (good | {CONF_TOKEN: "wrong"}, InfluxAuthError),
        (good | {CONF_TOKEN: V3_READ_ONLY_TOKEN}, InfluxForbiddenError),
        (good, InfluxWriteRejectedError),
    ]
    for data, error in cases:
        with pytest.raises(error):
            await create_client(hass, data).write(b"")
    influxdb_v3.fail_next_writes(1)
    with pytest.raises(InfluxConnectionError) as raised:
        await create_client(hass, good).write(b"m value=1 1")
    assert raised.value.retry_after == 1
