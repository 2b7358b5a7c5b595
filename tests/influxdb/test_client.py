"""What every API version shares (influxdb/client.py): pings, answers, gzip.

Against real servers where they run here (InfluxDB 1.x, VictoriaMetrics, nginx) and
the 2.x and 3 stand-ins, each answering as its documentation says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import aiohttp
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest
from yarl import URL

from custom_components.ha_ingestor.influxdb.client import _refused_lines
from custom_components.ha_ingestor.influxdb.connection import create_client
from custom_components.ha_ingestor.influxdb.errors import (
    InfluxConnectionError,
    InfluxRequestError,
    InfluxUnsendableTokenError,
    InfluxWriteRejectedError,
)
from custom_components.ha_ingestor.influxdb.v1 import InfluxV1Client

from ..conftest import (
    V3_TOKEN,
    point_writer,
    v1_entry_data,
    v2_entry_data,
    v3_entry_data,
)
from ..influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server, free_port
from ..influxdb_v2_server import InfluxDBv2TestServer, RecordedBody
from ..influxdb_v3_server import InfluxDBv3TestServer
from ..reverse_proxy import StartProxy
from ..victoriametrics_server import VictoriaMetricsServer


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

    writer, refused = point_writer(client)
    lines = [f"n value={i}.5 {1_000_000 + i}" for i in range(10)]
    lines[3] = "n value= 1000003"
    await writer.write(lines)

    values = [row["value"] for row in influxdb.rows('SELECT * FROM "n"', database)]
    assert values == [i + 0.5 for i in range(10) if i != 3]
    assert [group for group, _ in refused] == [["n value= 1000003"]]


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


async def test_ping_reads_each_server_kind(
    hass: HomeAssistant,
    *,
    influxdb: InfluxDBv1Server,
    influxdb_v2: InfluxDBv2TestServer,
    influxdb_v3: InfluxDBv3TestServer,
    victoriametrics: VictoriaMetricsServer,
    reverse_proxy: StartProxy,
) -> None:
    """/ping's answer names the server, and a 401 counts as an answer.

    InfluxDB 1.x: 204 with X-Influxdb-Version. 2.x: 204 with "v2.7.11". InfluxDB 3
    guards /ping with the token (API GetPing: "requires authentication by default")
    and its 401 has no version header: the server is there, the write that follows
    judges the token. VictoriaMetrics' cluster path has no /ping, only /health
    (InfluxDB's health document, lib/influxutil): it answers in its place.
    """
    proxy = reverse_proxy({"/insert/0/influx/": f"{victoriametrics.url}/influx/"})
    wrong_token = v3_entry_data(influxdb_v3) | {CONF_TOKEN: "wrong"}
    cluster = v1_entry_data(influxdb, "db") | {"url": f"{proxy.url}/insert/0/influx"}
    answers = {
        "1.x": await create_client(hass, v1_entry_data(influxdb, "db")).ping(),
        "2.x": await create_client(hass, v2_entry_data(influxdb_v2)).ping(),
        "3": await create_client(hass, v3_entry_data(influxdb_v3)).ping(),
        "3, wrong token": await create_client(hass, wrong_token).ping(),
        "vminsert path": await create_client(hass, cluster).ping(),
    }
    assert {kind: info.version for kind, info in answers.items()} == {
        "1.x": "1.6.7~rc0",
        "2.x": "v2.7.11",
        "3": "3.10.0",
        "3, wrong token": "unknown",
        "vminsert path": "unknown",
    }
    assert answers["3"].build == "Core"


async def test_ping_refuses_what_is_not_influxdb(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, socket_enabled: None
) -> None:
    """A path where neither /ping nor /health answers like InfluxDB is no InfluxDB."""
    data = v1_entry_data(influxdb, "db") | {"url": f"{influxdb.url}/not-influxdb"}
    with pytest.raises(InfluxConnectionError, match="did not answer like InfluxDB"):
        await create_client(hass, data).ping()


@pytest.mark.parametrize(
    "data",
    [
        lambda s: v2_entry_data(s["v2"]),
        lambda s: (
            v2_entry_data(s["v2"])
            | {"url": s["v3"].url, "bucket": "home", "token": V3_TOKEN}
        ),
        lambda s: (
            v1_entry_data(s["v1"], "home") | {"url": s["v3"].url, "password": V3_TOKEN}
        ),
    ],
    ids=["2.x", "3 through /api/v2/write", "3 through /write"],
)
async def test_empty_write_answers_mean_every_check_passed(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    influxdb_v2: InfluxDBv2TestServer,
    influxdb_v3: InfluxDBv3TestServer,
    data: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """The setup check's empty write is refused with "nothing to write": that passes.

    2.x: 400 "writing requires points" (http/points). InfluxDB 3: 400 "incoming write
    was empty", as plain text on /write and inside the 2.x error on /api/v2/write
    (influxdb3_server http.rs); nothing is stored or created by it.
    """
    servers = {"v1": influxdb, "v2": influxdb_v2, "v3": influxdb_v3}
    await create_client(hass, data(servers)).validate()
    empty_answers = [
        r for r in [*influxdb_v2.requests, *influxdb_v3.requests] if r.status == 400
    ]
    assert len(empty_answers) == 1
    assert influxdb_v2.points("ha") == []
    assert influxdb_v3.points("home") == []


@pytest.mark.parametrize(
    ("data", "line_count", "expected"),
    [
        (
            [
                {"line_number": 2, "error_message": "conflict", "original_line": "m"},
                {"line_number": 5, "error_message": "bad", "original_line": "n"},
            ],
            5,
            ({1: "conflict", 4: "bad"}, True),
        ),
        (
            {"line_number": 3, "error_message": "conflict", "original_line": "m"},
            4,
            ({2: "conflict"}, False),
        ),
        ([{"line_number": 9, "error_message": "beyond the batch"}], 4, ({}, True)),
        ([{"line_number": "2"}, "garbage", None], 4, ({}, True)),
        (None, 4, ({}, False)),
    ],
    ids=["partial write", "refused whole", "out of range", "malformed", "no data"],
)
def test_refused_lines_are_read_from_influxdb_3s_data(
    data: object, line_count: int, expected: tuple[dict[int, str], bool]
) -> None:
    """`data` lists the refused lines (partial write) or names the one it stopped at.

    docs.influxdata.com/influxdb3/core/write-data/http-api/v3-write-lp/#partial-writes;
    line numbers are 1-based, and only numbers within the batch are taken.
    """
    assert _refused_lines(data, line_count) == expected


@pytest.mark.parametrize("status", [503, 429])
async def test_retry_after_is_kept_with_the_error(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    influxdb_v3: InfluxDBv3TestServer,
    status: Literal[429, 503],
) -> None:
    """503 and 429 are worth retrying, after the server's Retry-After (in seconds).

    2.x: docs.influxdata.com/influxdb/v2/api/#operation/PostWrite (429 Cloud, 503);
    InfluxDB 3: write-data/troubleshoot (503 "The Retry-After header describes when
    to try the write again").
    """
    for server, data in (
        (influxdb_v2, v2_entry_data(influxdb_v2)),
        (influxdb_v3, v3_entry_data(influxdb_v3)),
    ):
        server.fail_next_writes(1, status=status, retry_after=7)
        with pytest.raises(InfluxConnectionError, match=f"HTTP {status}") as raised:
            await create_client(hass, data).write(b"m value=1 1")
        assert raised.value.retry_after == 7


async def test_a_token_http_cannot_carry_is_never_sent(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    influxdb_v3: InfluxDBv3TestServer,
) -> None:
    """A control character in a header is forbidden (RFC 9110 5.5): no request is made.

    It is refused as credentials are, so the form puts it on the token field and a
    running entry asks for a new token.
    """
    for server, data in (
        (influxdb_v2, v2_entry_data(influxdb_v2)),
        (influxdb_v3, v3_entry_data(influxdb_v3)),
    ):
        client = create_client(hass, data | {CONF_TOKEN: f"{data[CONF_TOKEN]}\n"})
        with pytest.raises(InfluxUnsendableTokenError, match="control character"):
            await client.ping()
        with pytest.raises(InfluxUnsendableTokenError):
            await client.write(b"m value=1 1")
        assert server.requests == []


async def test_a_request_the_http_client_refuses_is_a_failed_request(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """A request aiohttp refuses (its session closed) fails like InfluxDB being down.

    It raised RuntimeError before, which ended a delivery without a backoff or the
    spool: memory was retried every tick, unseen, and lost to a kill.
    """
    session = aiohttp.ClientSession()
    await session.close()
    client = InfluxV1Client(
        session,
        URL(influxdb.url),
        database=database,
        username=ADMIN_USER,
        password=ADMIN_PASSWORD,
    )
    with pytest.raises(InfluxRequestError, match="RuntimeError: Session is closed"):
        await client.write(b"m value=1 1")
    with pytest.raises(InfluxRequestError):
        await client.ping()


async def test_an_error_page_in_another_charset_is_read(
    hass: HomeAssistant, reverse_proxy: StartProxy
) -> None:
    """A real nginx whose upstream is down answers its custom page, in Latin-1.

    Sent as `text/html` with no charset, it is read as UTF-8 with the bytes that are
    not replaced: the write fails as the 502 it is (it raised UnicodeDecodeError,
    which ended the delivery as above).
    """
    proxy = reverse_proxy(
        {"/influxdb/": f"http://127.0.0.1:{free_port()}/"},
        {502: "Dienst nicht verfügbar".encode("latin-1")},
    )
    data = v1_entry_data(proxy, "db") | {"url": f"{proxy.url}/influxdb"}
    with pytest.raises(
        InfluxConnectionError, match="HTTP 502: Dienst nicht verf\ufffdgbar"
    ):
        await create_client(hass, data).write(b"m value=1 1")
