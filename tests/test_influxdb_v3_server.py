"""The InfluxDB 3 stand-in answers as InfluxDB 3 Core's docs say (see its docstring).

Each test names the documented behaviour it checks: [API] the OpenAPI file
(api-docs/influxdb3/core/influxdb3-core-openapi.yaml), [WRITE] the v3 write_lp page,
[TROUBLE] the write troubleshooting page, [COMPAT] the compatibility APIs page, [SERVE]
`influxdb3 serve --help`, [SRC] the server source where the docs are silent.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
import gzip
import json
from typing import Any

import aiohttp
import pytest

from .conftest import V3_DATABASE, V3_DATABASE_TOKEN, V3_READ_ONLY_TOKEN, V3_TOKEN
from .influxdb_v3_server import InfluxDBv3TestServer

pytestmark = pytest.mark.usefixtures("socket_enabled")

WRITE = "/api/v3/write_lp"
# [WRITE] "Accept partial writes": the conflict of its example.
SUNROOM = 'home,room=Sunroom temp=96 1735545600\nhome,room=Sunroom temp="hi" 1735549200'
TYPE_CONFLICT = (
    "invalid column type for column 'temp', expected iox::column_type::field::float, "
    "got iox::column_type::field::string"
)


class Answer:
    """Status, headers and body of one response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """Keep what the server sent."""
        self.status = status
        self.headers = headers
        self.text = body.decode()

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.text)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client."""
    async with aiohttp.ClientSession() as client:
        yield client


async def call(
    session: aiohttp.ClientSession,
    server: InfluxDBv3TestServer,
    method: str,
    path: str,
    *,
    token: str | None = V3_TOKEN,
    params: dict[str, str] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request, with `token` as a Bearer token unless it is None."""
    sent = dict(headers or {})
    if token is not None:
        sent.setdefault("Authorization", f"Bearer {token}")
    async with session.request(
        method, server.url + path, params=params, data=body, headers=sent
    ) as response:
        return Answer(response.status, dict(response.headers), await response.read())


async def write(
    session: aiohttp.ClientSession,
    server: InfluxDBv3TestServer,
    body: str,
    *,
    token: str = V3_TOKEN,
    **params: str,
) -> Answer:
    """POST `body` to /api/v3/write_lp of database `home`, with `params`."""
    return await call(
        session,
        server,
        "POST",
        WRITE,
        token=token,
        params={"db": V3_DATABASE, **params},
        body=body.encode(),
    )


async def test_ping_names_product_and_version(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """/ping names the product and version.

    [API GetPing] 200, x-influxdb-build and -version, a JSON body; [WRITE] every
    answer carries cluster-uuid.
    """
    answer = await call(session, influxdb_v3, "GET", "/ping")
    assert answer.status == 200
    assert answer.headers["X-Influxdb-Build"] == "Core"
    assert answer.headers["X-Influxdb-Version"] == "3.10.0"
    assert answer.headers["cluster-uuid"] == influxdb_v3.cluster_uuid
    assert set(answer.json()) == {"version", "revision", "process_id"}
    assert (await call(session, influxdb_v3, "POST", "/ping")).status == 200
    assert (await call(session, influxdb_v3, "HEAD", "/ping")).status == 404


@pytest.mark.parametrize("path", ["/ping", "/health", "/api/v1/health", WRITE])
@pytest.mark.parametrize("token", [None, "wrong"])
async def test_every_path_needs_the_token(
    session: aiohttp.ClientSession,
    influxdb_v3: InfluxDBv3TestServer,
    path: str,
    token: str | None,
) -> None:
    """A missing or wrong token is refused on every path.

    [API] /ping and /health "require authentication by default"; [SRC] a missing or
    unknown token is 401 {"error": "the request was not authenticated"}, before
    routing, without a version header.
    """
    answer = await call(session, influxdb_v3, "GET", path, token=token)
    assert answer.status == 401
    assert answer.json() == {"error": "the request was not authenticated"}
    assert "X-Influxdb-Version" not in answer.headers
    assert "cluster-uuid" in answer.headers


async def test_disable_authz_opens_ping_and_health(
    session: aiohttp.ClientSession,
) -> None:
    """[SERVE] `--disable-authz health,ping` answers those without a token."""
    async with InfluxDBv3TestServer(
        token=V3_TOKEN, disable_authz=["ping", "health"]
    ) as server:
        ping = await call(session, server, "GET", "/ping", token="wrong")
        health = await call(session, server, "GET", "/health", token=None)
        written = await write(session, server, "m v=1", token="wrong")
    assert (ping.status, health.status, health.text) == (200, 200, "OK")
    assert written.status == 401


async def test_without_auth_takes_anything(session: aiohttp.ClientSession) -> None:
    """[SERVE] `--without-auth`: no token needed."""
    async with InfluxDBv3TestServer(token=None) as server:
        answer = await call(
            session,
            server,
            "POST",
            WRITE,
            token=None,
            params={"db": "x"},
            body=b"m v=1 1",
        )
    assert answer.status == 204


@pytest.mark.parametrize(
    ("headers", "params", "path", "status"),
    [
        ({"Authorization": f"Token {V3_TOKEN}"}, {}, WRITE, 204),
        (
            {
                "Authorization": "Basic "
                + base64.b64encode(f"any:{V3_TOKEN}".encode()).decode()
            },
            {},
            WRITE,
            204,
        ),
        ({}, {"p": V3_TOKEN}, "/write", 204),
        ({}, {"p": V3_TOKEN}, WRITE, 401),
        ({"Authorization": f"Bearer{V3_TOKEN}"}, {}, WRITE, 400),
        ({"Authorization": f"Bearer {V3_TOKEN} x"}, {}, WRITE, 400),
        ({"Authorization": f"OAuth {V3_TOKEN}"}, {}, WRITE, 400),
    ],
    ids=[
        "Token",
        "Basic",
        "p= on /write",
        "p= elsewhere",
        "no space",
        "3 parts",
        "other scheme",
    ],
)
async def test_authentication_schemes(
    session: aiohttp.ClientSession,
    influxdb_v3: InfluxDBv3TestServer,
    *,
    headers: dict[str, str],
    params: dict[str, str],
    path: str,
    status: int,
) -> None:
    """The token may come in each documented way.

    [API securitySchemes] Bearer, Token, Basic (the password is the token), and on
    the 1.x endpoints `p=`; [SRC] a header of another form is 400 "malformed".
    """
    answer = await call(
        session,
        influxdb_v3,
        "POST",
        path,
        token=None,
        headers=headers,
        params={"db": V3_DATABASE, **params},
        body=b"m v=1 1",
    )
    assert answer.status == status
    if status == 400:
        assert answer.json()["error"].startswith("Authorization header was malformed")


async def test_write_stores_points_with_their_precision(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """Timestamps are read in the precision asked for.

    [WRITE] precision nanosecond/microsecond/millisecond/second, and auto by the
    timestamp's magnitude (< 5e9 s, < 5e12 ms, < 5e15 us, else ns).
    """
    for precision, stamp in (
        ("nanosecond", "1735545600000000000"),
        ("microsecond", "1735545600000001"),
        ("millisecond", "1735545600002"),
        ("second", "1735545603"),
    ):
        answer = await write(
            session, influxdb_v3, f"m v=1 {stamp}", precision=precision
        )
        assert answer.status == 204
    for stamp in (
        "1735545604",
        "1735545600005",
        "1735545600000006",
        "1735545600000000007",
    ):
        assert (await write(session, influxdb_v3, f"m v=2 {stamp}")).status == 204
    times = [p.time_ns - 1735545600 * 10**9 for p in influxdb_v3.points(V3_DATABASE)]
    assert times == [0, 1000, 2_000_000, 3 * 10**9, 4 * 10**9, 5_000_000, 6000, 7]


async def test_partial_write_lists_refused_lines(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """A partial write lists the refused lines and stores the rest.

    [WRITE "Accept partial writes"] line 1 written, line 2 refused: 400 with
    "partial write of line protocol occurred" and the line's number and message;
    [SRC WriteLineError] `original_line` cut to 20 bytes.
    """
    answer = await write(session, influxdb_v3, SUNROOM, precision="second")
    assert answer.status == 400
    assert answer.json() == {
        "error": "partial write of line protocol occurred",
        "data": [
            {
                "error_message": TYPE_CONFLICT,
                "line_number": 2,
                "original_line": "home,room=Sunroom te",
            }
        ],
    }
    assert [p.fields for p in influxdb_v3.points(V3_DATABASE)] == [{"temp": 96.0}]


async def test_without_partial_writes_nothing_is_stored(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """With accept_partial=false the whole batch is refused.

    [WRITE "Do not accept partial writes"] every point refused; the body names the
    line as one object.
    """
    answer = await write(
        session, influxdb_v3, SUNROOM, precision="second", accept_partial="false"
    )
    assert answer.status == 400
    assert answer.json() == {
        "error": "parsing failed for write_lp endpoint",
        "data": {
            "error_message": TYPE_CONFLICT,
            "line_number": 2,
            "original_line": "home,room=Sunroom te",
        },
    }
    assert influxdb_v3.points(V3_DATABASE) == []


async def test_syntax_errors_and_duplicate_fields_are_refused_lines(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """[WRITE] "invalid line protocol or schema conflicts" refuse the line only."""
    answer = await write(
        session, influxdb_v3, "m v=1 1\nm v=\nm v=1,v=2 3\nm,v=t w=1 4"
    )
    refused = {d["line_number"]: d["error_message"] for d in answer.json()["data"]}
    assert answer.status == 400
    assert refused == {
        2: "missing field value",
        3: "invalid line protocol - multiple instances of 'v' field found",
        4: "invalid column type for column 'v', expected "
        "iox::column_type::field::float, got iox::column_type::tag",
    }


async def test_empty_write(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """An empty write is refused as empty.

    [SRC WriteBufferError::EmptyWrite] 400 "incoming write was empty", plain text;
    nothing is created by it.
    """
    answer = await write(session, influxdb_v3, "")
    other = await call(
        session, influxdb_v3, "POST", WRITE, params={"db": "new"}, body=b""
    )
    assert (answer.status, answer.text) == (400, "incoming write was empty")
    assert (other.status, other.text) == (400, "incoming write was empty")
    assert influxdb_v3.databases() == ["_internal", V3_DATABASE]


async def test_first_write_creates_the_database(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """The first write creates the database.

    [API dbWriteParam] "InfluxDB creates the database if it doesn't already exist";
    [API GetConfigureDatabase] the list shows it.
    """
    listed = await call(
        session,
        influxdb_v3,
        "GET",
        "/api/v3/configure/database",
        params={"format": "json"},
    )
    await call(
        session, influxdb_v3, "POST", WRITE, params={"db": "new"}, body=b"m v=1 1"
    )
    after = await call(
        session,
        influxdb_v3,
        "GET",
        "/api/v3/configure/database",
        params={"format": "json"},
    )
    assert listed.json() == [{"iox::database": "_internal"}, {"iox::database": "home"}]
    assert {"iox::database": "new"} in after.json()
    no_format = await call(session, influxdb_v3, "GET", "/api/v3/configure/database")
    assert no_format.status == 400


async def test_database_not_created_is_404(session: aiohttp.ClientSession) -> None:
    """[TROUBLE] 404 "If a requested resource (for example ... database) wasn't found"."""
    async with InfluxDBv3TestServer(token=V3_TOKEN, create_databases=False) as server:
        answer = await call(
            session, server, "POST", WRITE, params={"db": "new"}, body=b"m v=1 1"
        )
    assert (answer.status, answer.text) == (404, 'database not found "new"')


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (
            "a b",
            "invalid character in database or rp name: must be ASCII, containing only letters, numbers, underscores, or hyphens",
        ),
        ("_x", "db name did not start with a number or letter"),
        ("", "db name cannot be empty"),
        ("x" * 512, "db name too long: max 511"),
    ],
)
async def test_database_name_rules(
    session: aiohttp.ClientSession,
    influxdb_v3: InfluxDBv3TestServer,
    name: str,
    error: str,
) -> None:
    """Database names InfluxDB 3 refuses.

    [SRC validate_db_name] ASCII letters, numbers, `_` and `-`, starting with a
    letter or number, 511 characters at most: else 400 {"error": ...}.
    """
    answer = await call(
        session, influxdb_v3, "POST", WRITE, params={"db": name}, body=b"m v=1"
    )
    assert (answer.status, answer.json()) == (400, {"error": error})


async def test_read_only_token_may_not_write_or_list(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """[API] 403 "Access denied" for a token that may not write."""
    written = await write(session, influxdb_v3, "m v=1 1", token=V3_READ_ONLY_TOKEN)
    listed = await call(
        session,
        influxdb_v3,
        "GET",
        "/api/v3/configure/database",
        token=V3_READ_ONLY_TOKEN,
        params={"format": "json"},
    )
    assert (written.status, listed.status) == (403, 403)
    assert influxdb_v3.points(V3_DATABASE) == []


async def test_a_database_token_writes_its_databases_and_lists_none(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """[TOKENS] Writing and querying its databases; managing them is for admins."""
    written = await write(session, influxdb_v3, "m v=1 1", token=V3_DATABASE_TOKEN)
    elsewhere = await write(
        session, influxdb_v3, "m v=1 1", token=V3_DATABASE_TOKEN, db="other"
    )
    listed = await call(
        session,
        influxdb_v3,
        "GET",
        "/api/v3/configure/database",
        token=V3_DATABASE_TOKEN,
        params={"format": "json"},
    )
    assert (written.status, elsewhere.status, listed.status) == (204, 403, 403)
    assert [point.fields for point in influxdb_v3.points(V3_DATABASE)] == [{"v": 1.0}]
    assert "other" not in influxdb_v3.databases()


async def test_size_limit_gzip_and_faults(session: aiohttp.ClientSession) -> None:
    """Size limit, gzip, and the faults to retry.

    [API 413] too large after gunzip; [API ContentEncoding] multi-member gzip;
    [TROUBLE] 503 with Retry-After; [SRC RequestLimit] 429.
    """
    async with InfluxDBv3TestServer(token=V3_TOKEN, max_request_bytes=100) as server:
        big = await write(session, server, "m v=1 1\n" * 20)
        members = gzip.compress(b"m v=1 1\n") + gzip.compress(b"m v=2 2")
        zipped = await call(
            session,
            server,
            "POST",
            WRITE,
            params={"db": V3_DATABASE},
            body=members,
            headers={"Content-Encoding": "gzip"},
        )
        server.fail_next_writes(1, status=503, retry_after=3)
        server.fail_next_writes(1, status=429, retry_after=4)
        faults = [await write(session, server, "m v=3 3") for _ in range(2)]
        stored = [p.fields["v"] for p in server.points(V3_DATABASE)]
    assert (big.status, big.text) == (413, "max request size (100 bytes) exceeded")
    assert zipped.status == 204
    assert [(a.status, a.headers["Retry-After"]) for a in faults] == [
        (503, "3"),
        (429, "4"),
    ]
    assert stored == [1.0, 2.0]


async def test_schema_limit_makes_the_partial_write_422(
    session: aiohttp.ClientSession,
) -> None:
    """[SRC PartialLpWrite] a line refused for a schema limit turns 400 into 422."""
    async with InfluxDBv3TestServer(token=V3_TOKEN, max_tables=1) as server:
        answer = await write(session, server, "a v=1 1\nb v=1 2")
    assert answer.status == 422
    assert answer.json()["data"][0]["line_number"] == 2


async def test_v2_endpoint(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """The 2.x endpoint: no partial writes, 2.x's error form.

    [COMPAT] /api/v2/write with `bucket` as the database; [SRC] no partial writes,
    errors as {"code", "message"} with "write buffer error: " before the reason.
    """
    params = {"bucket": V3_DATABASE, "org": "ignored", "precision": "s"}
    refused = await call(
        session,
        influxdb_v3,
        "POST",
        "/api/v2/write",
        params=params,
        body=SUNROOM.encode(),
    )
    empty = await call(
        session, influxdb_v3, "POST", "/api/v2/write", params=params, body=b""
    )
    stored = await call(
        session, influxdb_v3, "POST", "/api/v2/write", params=params, body=b"m v=1 1"
    )
    assert (refused.status, refused.json()) == (
        400,
        {
            "code": "invalid",
            "message": f"write buffer error: line protocol parse failed: {TYPE_CONFLICT}",
        },
    )
    assert (empty.status, empty.json()) == (
        400,
        {"code": "invalid", "message": "write buffer error: incoming write was empty"},
    )
    assert stored.status == 204
    assert [p.measurement for p in influxdb_v3.points(V3_DATABASE)] == ["m"]


async def test_v1_endpoint(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """The 1.x endpoint: no partial writes, the line named.

    [COMPAT] /write with `db` and 1.x precisions; [SRC] no partial writes: the first
    refused line named in `data`, nothing stored; the empty write as text.
    """
    params = {"db": V3_DATABASE, "precision": "s"}
    refused = await call(
        session, influxdb_v3, "POST", "/write", params=params, body=SUNROOM.encode()
    )
    empty = await call(session, influxdb_v3, "POST", "/write", params=params, body=b"")
    assert refused.status == 400
    assert refused.json()["data"]["line_number"] == 2
    assert (empty.status, empty.text) == (400, "incoming write was empty")
    assert influxdb_v3.points(V3_DATABASE) == []


async def test_unknown_path(
    session: aiohttp.ClientSession, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """Paths it does not serve: 404 after authentication."""
    answer = await call(session, influxdb_v3, "GET", "/api/v3/query_sql")
    assert (answer.status, answer.text) == (404, "Not found")
