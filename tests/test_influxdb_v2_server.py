"""The InfluxDB 2.x stand-in answers as influxd 2.7 does (see its module docstring)."""

from __future__ import annotations

from collections.abc import AsyncIterator
import datetime as dt
import gzip
import json
import time
from typing import Any

import aiohttp
from hypothesis import given, strategies as st
import pytest

from .conftest import V2_READ_ONLY_TOKEN, V2_TOKEN
from .http_test_server import RecordedRequest
from .influxdb_v2_server import (
    InfluxDBv2TestServer,
    Line,
    LineProtocolError,
    ParsedField,
    Point,
    Unsigned,
    parse_lines,
)

TOKEN = V2_TOKEN
READ_ONLY_TOKEN = V2_READ_ONLY_TOKEN
ORG = "home"
BUCKET = "ha"
JSON_TYPE = "application/json; charset=utf-8"
INTERNAL = "An internal error has occurred - check server logs"


@pytest.fixture
def server(influxdb_v2: InfluxDBv2TestServer) -> InfluxDBv2TestServer:
    """The shared stand-in: bucket `ha` of org `home`, a token that may only read it."""
    return influxdb_v2


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client."""
    async with aiohttp.ClientSession() as client:
        yield client


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


async def call(
    session: aiohttp.ClientSession,
    server: InfluxDBv2TestServer,
    method: str,
    path: str,
    *,
    token: str | None = TOKEN,
    params: dict[str, str] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request, with `token` unless it is None."""
    sent = dict(headers or {})
    if token is not None:
        sent.setdefault("Authorization", f"Token {token}")
    async with session.request(
        method, server.url + path, params=params, data=body, headers=sent
    ) as response:
        return Answer(response.status, dict(response.headers), await response.read())


async def write(
    session: aiohttp.ClientSession,
    server: InfluxDBv2TestServer,
    body: bytes | str,
    *,
    token: str | None = TOKEN,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """POST /api/v2/write to org "home", bucket "ha", precision ns unless overridden."""
    query = {"org": ORG, "bucket": BUCKET} | (params or {})
    data = body.encode() if isinstance(body, str) else body
    return await call(
        session,
        server,
        "POST",
        "/api/v2/write",
        token=token,
        params=query,
        body=data,
        headers=headers,
    )


def assert_error(answer: Answer, status: int, code: str, message: str) -> None:
    """A compact 2.x error, as the write handler and authentication send them."""
    assert answer.status == status
    assert answer.text == json.dumps(
        {"code": code, "message": message}, separators=(",", ":")
    )
    assert answer.headers["Content-Type"] == JSON_TYPE
    assert answer.headers["X-Platform-Error-Code"] == code
    assert answer.headers["X-Influxdb-Version"] == "v2.7.11"


# --- /ping, /health, authentication -------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_ping(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession, method: str
) -> None:
    """204 without a body or token, the version and build in the headers."""
    answer = await call(session, server, method, "/ping", token=None)
    assert answer.status == 204
    assert answer.text == ""
    assert answer.headers["X-Influxdb-Version"] == "v2.7.11"
    assert answer.headers["X-Influxdb-Build"] == "OSS"
    assert "Content-Type" not in answer.headers


async def test_health(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """http/health.go's text, byte for byte, without a token."""
    answer = await call(session, server, "GET", "/health", token=None)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == JSON_TYPE
    assert answer.text == (
        '{"name":"influxdb", "message":"ready for queries and writes", '
        '"status":"pass", "checks":[], "version": "v2.7.11", "commit": "fbf5d4ab5e"}\n'
    )
    assert answer.json()["status"] == "pass"


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Token wrong", 401),
        ("Basic dXNlcjpwYXNz", 401),
        (TOKEN, 401),
        ("Bearer ", 401),
        (f"Token {TOKEN}", 204),
        (f"token {TOKEN}", 204),
        (f"Bearer {TOKEN}", 204),
        (f"BEARER {TOKEN}", 204),
    ],
)
async def test_authorization_header(
    server: InfluxDBv2TestServer,
    session: aiohttp.ClientSession,
    authorization: str | None,
    status: int,
) -> None:
    """Token or Bearer, scheme in any case; anything else is 401 unauthorized."""
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await write(
        session,
        server,
        "m v=1 1",
        token=None,
        headers=headers,
        params={"precision": "s"},
    )
    if status == 401:
        assert_error(answer, 401, "unauthorized", "unauthorized access")
        assert server.points(BUCKET) == []
    else:
        assert answer.status == status


async def test_unknown_path(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """Authentication comes first; then chi's indented "path not found"."""
    anonymous = await call(session, server, "GET", "/api/v2/nothing", token=None)
    assert_error(anonymous, 401, "unauthorized", "unauthorized access")
    answer = await call(session, server, "GET", "/api/v2/nothing")
    assert answer.status == 404
    assert answer.text == '{\n\t"code": "not found",\n\t"message": "path not found"\n}'
    assert answer.headers["X-Platform-Error-Code"] == "not found"


# --- POST /api/v2/write --------------------------------------------------------


async def test_write_stores_typed_points(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """204 without a body; every line-protocol type comes back as its Python type."""
    answer = await write(
        session,
        server,
        "temp,entity_id=hall,domain=sensor value=21.5,n=3i,u=7u,on=T,off=false,"
        's="say \\"hi\\" C:\\\\" 1700000000000000001\n',
    )
    assert answer.status == 204
    assert answer.text == ""
    assert answer.headers["X-Influxdb-Build"] == "OSS"
    [point] = server.points(BUCKET)
    assert point == Point(
        "temp",
        {"domain": "sensor", "entity_id": "hall"},
        {"value": 21.5, "n": 3, "u": 7, "on": True, "off": False, "s": 'say "hi" C:\\'},
        1700000000000000001,
    )
    assert [type(v) for v in point.fields.values()] == [
        float,
        int,
        Unsigned,
        bool,
        bool,
        str,
    ]
    assert list(point.tags) == ["domain", "entity_id"]


@pytest.mark.parametrize(
    ("precision", "timestamp", "time_ns"),
    [
        (None, "1700000000123456789", 1700000000123456789),
        ("ns", "1700000000123456789", 1700000000123456789),
        ("us", "1700000000123456", 1700000000123456000),
        ("ms", "1700000000123", 1700000000123000000),
        ("s", "1700000000", 1700000000000000000),
        ("s", "-1", -1000000000),
    ],
)
async def test_precision_scales_timestamps(
    server: InfluxDBv2TestServer,
    session: aiohttp.ClientSession,
    precision: str | None,
    timestamp: str,
    time_ns: int,
) -> None:
    """Nanoseconds by default; us, ms and s timestamps are scaled to nanoseconds."""
    params = {} if precision is None else {"precision": precision}
    answer = await write(session, server, f"m v=1 {timestamp}", params=params)
    assert answer.status == 204
    assert [p.time_ns for p in server.points(BUCKET)] == [time_ns]


async def test_line_without_timestamp_gets_server_time(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """The server's time, truncated to the precision."""
    before = time.time_ns()
    answer = await write(session, server, "m v=1", params={"precision": "s"})
    after = time.time_ns()
    assert answer.status == 204
    [point] = server.points(BUCKET)
    assert point.time_ns % 1_000_000_000 == 0
    assert before // 1_000_000_000 * 1_000_000_000 <= point.time_ns <= after


async def test_org_and_bucket_by_id(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """`org` may be an ID, `orgID` may replace it, `bucket` may be an ID."""
    bucket_id = server.bucket_id(BUCKET)
    for params in (
        {"org": server.org_id, "bucket": bucket_id},
        {"org": "", "orgID": server.org_id.upper()},
        {"org": "ignored when orgID is given", "orgID": server.org_id},
    ):
        answer = await write(session, server, "m v=1 1", params=params)
        assert answer.status == 204, answer.text
    assert len(server.points(BUCKET)) == 3


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"precision": "n"},
            (
                400,
                "invalid",
                "invalid precision; valid precision units are ns, us, ms, and s",
            ),
        ),
        ({"bucket": ""}, (404, "not found", "bucket not found")),
        ({"org": ""}, (400, "invalid", "Please provide either orgID or org")),
        ({"org": "work"}, (404, "not found", 'organization name "work" not found')),
        ({"org": "0123456789abcdef"}, (404, "not found", "organization not found")),
        ({"orgID": "123"}, (400, "invalid", "id must have a length of 16 bytes")),
        ({"orgID": "0123456789abcdeg"}, (400, "invalid", "invalid ID")),
        ({"orgID": "0000000000000000"}, (400, "invalid", "invalid ID")),
        ({"bucket": "other"}, (404, "not found", 'bucket "other" not found')),
        ({"bucket": 'say "x"'}, (404, "not found", r'bucket "say \"x\"" not found')),
        (
            {"bucket": "0123456789abcdef"},
            (404, "not found", 'bucket "0123456789abcdef" not found'),
        ),
    ],
)
async def test_write_request_errors(
    server: InfluxDBv2TestServer,
    session: aiohttp.ClientSession,
    params: dict[str, str],
    error: tuple[int, str, str],
) -> None:
    """Precision, bucket and org are checked before the body, with 2.x's words."""
    answer = await write(session, server, "m v=1 1", params=params)
    assert_error(answer, *error)
    assert server.points(BUCKET) == []


async def test_read_only_token_is_forbidden_to_write(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """403, not 401: the token is valid but lacks write permission on the bucket."""
    answer = await write(session, server, "m v=1 1", token=READ_ONLY_TOKEN)
    assert_error(answer, 403, "forbidden", "insufficient permissions for write")
    unknown_bucket = await write(
        session, server, "m v=1 1", token=READ_ONLY_TOKEN, params={"bucket": "x"}
    )
    assert_error(unknown_bucket, 404, "not found", 'bucket "x" not found')
    assert server.points(BUCKET) == []


async def test_empty_body(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """An empty body is an error; a body of comments and blank lines is not."""
    assert_error(
        await write(session, server, ""), 400, "invalid", "writing requires points"
    )
    answer = await write(session, server, "# nothing\n\n   \n")
    assert answer.status == 204
    assert server.points(BUCKET) == []


async def test_unparsable_lines_reject_the_batch(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """Every bad line is named, one per line of the message; nothing is written."""
    answer = await write(session, server, "m v=1 1\nbad\nm v=2 2\nworse line\n")
    assert_error(
        answer,
        400,
        "invalid",
        "unable to parse 'bad': missing fields\n"
        "unable to parse 'worse line': invalid field format",
    )
    assert server.points(BUCKET) == []


async def test_field_type_conflict_with_stored_data(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """422 partial write: the conflicting point is dropped, the others are kept."""
    assert (await write(session, server, "m v=1 1")).status == 204
    answer = await write(session, server, 'm v="s" 2\nm v=2 3\nother x=1i 4')
    assert_error(
        answer,
        422,
        "unprocessable entity",
        "failure writing points to database: partial write: field type conflict: "
        'input field "v" on measurement "m" is type string, already exists as type '
        "float dropped=1",
    )
    assert [(p.measurement, p.fields, p.time_ns) for p in server.points(BUCKET)] == [
        ("m", {"v": 1.0}, 1),
        ("m", {"v": 2.0}, 3),
        ("other", {"x": 1}, 4),
    ]


async def test_field_type_conflict_within_a_batch(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """The first point sets the type; the message gives the first reason, all drops."""
    answer = await write(session, server, "m v=1i 1\nm v=1.5 2\nm v=true 3\nm v=2i 4")
    assert_error(
        answer,
        422,
        "unprocessable entity",
        "failure writing points to database: partial write: field type conflict: "
        'input field "v" on measurement "m" is type float, already exists as type '
        "integer dropped=2",
    )
    assert [p.fields for p in server.points(BUCKET)] == [{"v": 1}, {"v": 2}]


async def test_fields_before_a_conflict_are_created(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """A dropped point's fields ahead of the conflicting one still fix their type."""
    assert (await write(session, server, "m v=1 1")).status == 204
    assert (await write(session, server, 'm a=1i,v="x" 2')).status == 422
    answer = await write(session, server, "m a=1.5 3")
    assert answer.json()["message"].endswith(
        'input field "a" on measurement "m" is type float, already exists as type '
        "integer dropped=1"
    )


async def test_field_types_are_per_shard_group(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """Shard groups are 7 days from Monday (Go's Time.Truncate); types differ between them."""
    monday = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp())
    sunday_before, sunday_after = monday - 1, monday + 7 * 86400 - 1
    params = {"precision": "s"}
    assert (
        await write(session, server, f"m v=1 {monday}", params=params)
    ).status == 204
    answer = await write(session, server, f'm v="x" {sunday_before}', params=params)
    assert answer.status == 204
    answer = await write(session, server, f'm v="x" {sunday_after}', params=params)
    assert answer.status == 422
    assert len(server.points(BUCKET)) == 2


@pytest.mark.parametrize(
    ("body", "message", "stored"),
    [
        (
            "m,time=1 v=1 1",
            'invalid tag key: input tag "time" on measurement "m" is invalid',
            [],
        ),
        (
            "m time=1 1",
            'invalid field name: input field "time" on measurement "m" is invalid',
            [],
        ),
        ("m time=1,v=2 1", None, [{"v": 2.0}]),
    ],
)
async def test_time_tag_and_field(
    server: InfluxDBv2TestServer,
    session: aiohttp.ClientSession,
    body: str,
    message: str | None,
    stored: list[dict[str, Any]],
) -> None:
    """A "time" tag drops the point; a "time" field is left out of it."""
    answer = await write(session, server, body)
    if message is None:
        assert answer.status == 204
    else:
        assert_error(
            answer,
            422,
            "unprocessable entity",
            f"failure writing points to database: partial write: {message} dropped=1",
        )
    assert [p.fields for p in server.points(BUCKET)] == stored


async def test_points_beyond_retention(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """_monitoring keeps 7 days; an older point is dropped, a recent one kept."""
    now = time.time_ns()
    answer = await write(
        session, server, f"m v=1 1\nm v=2 {now}", params={"bucket": "_monitoring"}
    )
    assert_error(
        answer,
        422,
        "unprocessable entity",
        "failure writing points to database: partial write: points beyond retention "
        "policy dropped=1",
    )
    assert [p.time_ns for p in server.points("_monitoring")] == [now]


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip"])
async def test_gzip_body(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession, encoding: str
) -> None:
    """A gzip body, several members back to back included, is inflated first."""
    body = gzip.compress(b"m v=1 1\n") + gzip.compress(b"m v=2 2")
    answer = await write(session, server, body, headers={"Content-Encoding": encoding})
    assert answer.status == 204
    assert [p.fields for p in server.points(BUCKET)] == [{"v": 1.0}, {"v": 2.0}]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"m v=1 1", (500, "internal error", INTERNAL)),
        (
            gzip.compress(b"m v=1 1")[:-9],
            (500, "internal error", "unable to read data: unexpected EOF"),
        ),
        (
            gzip.compress(b"m v=1 1")[:-8] + b"\0\0\0\0\7\0\0\0",
            (400, "invalid", "unable to read data: gzip: invalid checksum"),
        ),
        (
            gzip.compress(b"m v=1 1") + b"trailing garbage",
            (400, "invalid", "unable to read data: gzip: invalid header"),
        ),
    ],
)
async def test_bad_gzip_body(
    server: InfluxDBv2TestServer,
    session: aiohttp.ClientSession,
    body: bytes,
    error: tuple[int, str, str],
) -> None:
    """No gzip header is a bare internal error; stream errors are wrapped."""
    answer = await write(session, server, body, headers={"Content-Encoding": "gzip"})
    assert_error(answer, *error)
    assert server.points(BUCKET) == []


async def test_body_size_limit(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """The limit counts inflated bytes; at the limit is fine, beyond it is 413."""
    server.max_body_bytes = 7
    assert (await write(session, server, "m v=1 1")).status == 204
    too_large = "request too large", "unable to read data: points batch is too large"
    assert_error(await write(session, server, "m v=10 1"), 413, *too_large)
    compressed = gzip.compress(b"m v=1 1" + b" " * 100)
    assert len(compressed) < 100
    answer = await write(
        session, server, compressed, headers={"Content-Encoding": "gzip"}
    )
    assert_error(answer, 413, *too_large)
    assert len(server.points(BUCKET)) == 1


# --- Faults, restarts, the request log -----------------------------------------


async def test_injected_faults(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """The next writes answer 503 or 429 with Retry-After, then writes work again."""
    server.fail_next_writes(2, retry_after=7)
    server.fail_next_writes(1, status=429, retry_after=3)
    for status, code, retry_after in [
        (503, "unavailable", "7"),
        (503, "unavailable", "7"),
        (429, "too many requests", "3"),
    ]:
        answer = await write(session, server, "m v=1 1")
        assert_error(answer, status, code, f"injected fault: {code}")
        assert answer.headers["Retry-After"] == retry_after
    assert server.points(BUCKET) == []
    assert (await write(session, server, "m v=1 1")).status == 204
    assert len(server.points(BUCKET)) == 1


async def test_stop_and_start_on_the_same_port(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """While stopped, connections are refused; restarted, the data is still there."""
    url = server.url
    assert (await write(session, server, "m v=1 1")).status == 204
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        await session.get(f"{url}/ping")
    await server.start()
    assert server.url == url
    assert (await call(session, server, "GET", "/ping")).status == 204
    assert (await write(session, server, "m v=2 2")).status == 204
    assert [p.fields for p in server.points(BUCKET)] == [{"v": 1.0}, {"v": 2.0}]


async def test_request_log(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """Method, path, query (first values) and status of every request."""
    await call(session, server, "HEAD", "/ping", token=None)
    await write(session, server, "m v=1 1", params={"precision": "s"})
    await write(session, server, "m v=1 1", token="nope")
    assert server.requests == [
        RecordedRequest("HEAD", "/ping", {}, 204),
        RecordedRequest(
            "POST",
            "/api/v2/write",
            {"org": ORG, "bucket": BUCKET, "precision": "s"},
            204,
        ),
        RecordedRequest("POST", "/api/v2/write", {"org": ORG, "bucket": BUCKET}, 401),
    ]


# --- GET /api/v2/buckets and /api/v2/orgs --------------------------------------


async def test_list_buckets(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """The org's buckets in name order, system ones included, tab-indented JSON."""
    answer = await call(session, server, "GET", "/api/v2/buckets", params={"org": ORG})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == JSON_TYPE
    assert answer.text.startswith('{\n\t"links": {\n\t\t"self": ')
    body = answer.json()
    assert body["links"] == {
        "self": "/api/v2/buckets?descending=false&limit=20&offset=0&org=home"
    }
    assert [(b["name"], b["type"]) for b in body["buckets"]] == [
        ("_monitoring", "system"),
        ("_tasks", "system"),
        ("ha", "user"),
    ]
    monitoring, _, bucket = body["buckets"]
    assert monitoring["retentionRules"] == [
        {"type": "expire", "everySeconds": 604800, "shardGroupDurationSeconds": 86400}
    ]
    assert monitoring["description"] == "System bucket for monitoring logs"
    bucket_id = server.bucket_id(BUCKET)
    assert bucket == {
        "id": bucket_id,
        "orgID": server.org_id,
        "type": "user",
        "name": "ha",
        "retentionRules": [
            {"type": "expire", "everySeconds": 0, "shardGroupDurationSeconds": 604800}
        ],
        "createdAt": bucket["createdAt"],
        "updatedAt": bucket["createdAt"],
        "links": {
            "labels": f"/api/v2/buckets/{bucket_id}/labels",
            "members": f"/api/v2/buckets/{bucket_id}/members",
            "org": f"/api/v2/orgs/{server.org_id}",
            "owners": f"/api/v2/buckets/{bucket_id}/owners",
            "self": f"/api/v2/buckets/{bucket_id}",
            "write": f"/api/v2/write?org={server.org_id}&bucket={bucket_id}",
        },
        "labels": [],
    }
    created = dt.datetime.fromisoformat(bucket["createdAt"])
    assert abs(created - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"org": ORG, "name": BUCKET}, [BUCKET]),
        ({"name": BUCKET}, [BUCKET]),
        ({"orgID": "{org_id}", "name": BUCKET}, [BUCKET]),
        ({"orgID": "0123456789abcdef"}, []),
        ({"id": "{bucket_id}", "org": "ignored with an id"}, [BUCKET]),
    ],
)
async def test_find_buckets(
    server: InfluxDBv2TestServer,
    session: aiohttp.ClientSession,
    params: dict[str, str],
    names: list[str],
) -> None:
    """The name, orgID and id filters."""
    ids = {"org_id": server.org_id, "bucket_id": server.bucket_id(BUCKET)}
    query = {k: v.format(**ids) for k, v in params.items()}
    answer = await call(session, server, "GET", "/api/v2/buckets", params=query)
    assert answer.status == 200
    assert [b["name"] for b in answer.json()["buckets"]] == names


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"org": "work"}, (404, "not found", 'organization name "work" not found')),
        ({"org": ORG, "name": "nope"}, (404, "not found", 'bucket "nope" not found')),
        (
            {"orgID": "0123456789abcdef", "name": "ha"},
            (404, "not found", 'bucket "ha" not found'),
        ),
        ({"id": "0123456789abcdef"}, (404, "not found", "bucket not found")),
        ({"orgID": "xyz"}, (400, "invalid", "id must have a length of 16 bytes")),
    ],
)
async def test_find_buckets_errors(
    server: InfluxDBv2TestServer,
    session: aiohttp.ClientSession,
    params: dict[str, str],
    error: tuple[int, str, str],
) -> None:
    """An unknown org or named bucket is a 404 in the indented format."""
    status, code, message = error
    answer = await call(session, server, "GET", "/api/v2/buckets", params=params)
    assert answer.status == status
    assert answer.text == json.dumps({"code": code, "message": message}, indent="\t")
    assert answer.headers["X-Platform-Error-Code"] == code


async def test_read_only_token_sees_its_bucket_only(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """Buckets and orgs the token cannot read are left out of listings."""
    answer = await call(
        session,
        server,
        "GET",
        "/api/v2/buckets",
        token=READ_ONLY_TOKEN,
        params={"org": ORG},
    )
    assert [b["name"] for b in answer.json()["buckets"]] == [BUCKET]
    orgs = await call(
        session,
        server,
        "GET",
        "/api/v2/orgs",
        token=READ_ONLY_TOKEN,
        params={"org": ORG},
    )
    assert orgs.status == 200
    assert orgs.json() == {"links": {"self": "/api/v2/orgs"}, "orgs": []}


async def test_orgs(
    server: InfluxDBv2TestServer, session: aiohttp.ClientSession
) -> None:
    """The org by name or ID; an unknown one is a 404."""
    answer = await call(session, server, "GET", "/api/v2/orgs", params={"org": ORG})
    assert answer.status == 200
    [org] = answer.json()["orgs"]
    assert {k: org[k] for k in ("id", "name", "description")} == {
        "id": server.org_id,
        "name": ORG,
        "description": "",
    }
    assert org["links"]["buckets"] == "/api/v2/buckets?org=home"
    by_id = await call(
        session, server, "GET", "/api/v2/orgs", params={"orgID": server.org_id}
    )
    assert by_id.json()["orgs"] == [org]
    unknown = await call(session, server, "GET", "/api/v2/orgs", params={"org": "work"})
    assert unknown.status == 404
    assert unknown.json() == {
        "code": "not found",
        "message": 'organization name "work" not found',
    }


# --- The line-protocol parser --------------------------------------------------


@pytest.mark.parametrize(
    ("line", "measurement", "tags", "fields"),
    [
        (
            r"a\ b\,c\=d,t\ k\,\==v\ \,\=x f\ k\,\=\"=1",
            "a b,c=d",
            {"t k,=": "v ,=x"},
            [ParsedField('f k,="', "float", 1.0)],
        ),
        (
            r'm s="a\"b\\c\d",e=""',
            "m",
            {},
            [ParsedField("s", "string", 'a"b\\c\\d'), ParsedField("e", "string", "")],
        ),
        (
            "m,z=1,a=2,m=3 x=1",
            "m",
            {"a": "2", "m": "3", "z": "1"},
            [ParsedField("x", "float", 1.0)],
        ),
        (
            "m i=-9223372036854775808i,j=9223372036854775807i,u=18446744073709551615u",
            "m",
            {},
            [
                ParsedField("i", "integer", -(2**63)),
                ParsedField("j", "integer", 2**63 - 1),
                ParsedField("u", "unsigned", 2**64 - 1),
            ],
        ),
        (
            "m a=1,b=-1.5,c=.5,d=1.,e=1e3,f=-2.5E-3,g=1e+2",
            "m",
            {},
            [
                ParsedField(k, "float", v)
                for k, v in zip(
                    "abcdefg",
                    [1.0, -1.5, 0.5, 1.0, 1000.0, -0.0025, 100.0],
                    strict=True,
                )
            ],
        ),
        (
            "m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE",
            "m",
            {},
            [ParsedField(k, "boolean", k < "f") for k in "abcdefghij"],
        ),
        (
            'm s="two\nlines"',
            "m",
            {},
            [ParsedField("s", "string", "two\nlines")],
        ),
    ],
)
def test_parse_line(
    line: str, measurement: str, tags: dict[str, str], fields: list[ParsedField]
) -> None:
    """Escaping, types, tag sorting and a newline inside a quoted string value."""
    [parsed] = parse_lines(line.encode() + b" 5")
    assert parsed == Line(measurement, tags, tuple(fields), 5)
    assert list(parsed.tags) == sorted(parsed.tags)


def test_parse_skips_comments_and_blank_lines() -> None:
    """Lines starting with # (after whitespace) and blank lines are no points."""
    lines = parse_lines(
        b"# a comment\n\n  \t\n  m v=1 1\n\t# indented comment\nm v=2 2\n"
    )
    assert [(line.measurement, line.time_ns) for line in lines] == [("m", 1), ("m", 2)]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("m", "missing fields"),
        (",t=1 v=1", "missing measurement"),
        ("m, v=1", "missing tag key"),
        ("m,=1 v=1", "missing tag key"),
        ("m,t v=1", "missing tag value"),
        ("m,t= v=1", "missing tag value"),
        ("m,t=1", "missing fields"),
        ("m,t=a=b v=1", "invalid tag format"),
        ("m,t=1,t=2 v=1", "duplicate tags"),
        ("m,b=1,a=1,b=2 v=1", "duplicate tags"),
        ("m v", "invalid field format"),
        ("m v=1,w", "invalid field format"),
        ("m =1", "missing field key"),
        ("m v=1,=2", "missing field key"),
        ("m v=", "missing field value"),
        ("m v=,w=1", "missing field value"),
        ('m v="open', "unbalanced quotes"),
        ("m v=1.2.3", "invalid number"),
        ("m v=-", "invalid number"),
        ("m v=.", "invalid number"),
        ("m v=1i2", "invalid number"),
        ("m v=1.5i", "invalid number"),
        ("m v=-1u", "invalid number"),
        ("m v=NaN", "invalid number"),
        ("m v=1e", "invalid float"),
        ("m v=1e400", "invalid float"),
        ("m v=+1", "invalid boolean"),
        ("m v=tru", "invalid boolean"),
        ("m v=tRUE", "invalid boolean"),
        ("m v=yes", "invalid boolean"),
        (
            "m v=9223372036854775808i",
            'unable to parse integer 9223372036854775808: strconv.ParseInt: parsing "9223372036854775808": value out of range',
        ),
        (
            "m v=18446744073709551616u",
            'unable to parse unsigned 18446744073709551616: strconv.ParseUint: parsing "18446744073709551616": value out of range',
        ),
        ("m v=1 12a", "bad timestamp"),
        ("m v=1 1-2", "bad timestamp"),
        ("m v=1 1 2", "point is invalid"),
        ("m v=1 -", 'strconv.ParseInt: parsing "-": invalid syntax'),
        (
            "m v=1 9223372036854775808",
            'strconv.ParseInt: parsing "9223372036854775808": value out of range',
        ),
        (
            "m v=1 9223372036854775807",
            "time outside range -9223372036854775806 - 9223372036854775806",
        ),
        ("m v=1\r", "invalid number"),
    ],
)
def test_parse_errors(line: str, reason: str) -> None:
    """models/points.go's reason for each malformed line, after the line itself."""
    with pytest.raises(LineProtocolError) as caught:
        parse_lines(line.encode())
    assert str(caught.value) == f"unable to parse '{line}': {reason}"


def test_timestamp_range_depends_on_precision() -> None:
    """A timestamp in range as ns may overflow once scaled by the precision."""
    assert parse_lines(b"m v=1 9223372036854775806")[0].time_ns == 2**63 - 2
    with pytest.raises(LineProtocolError, match="time outside range"):
        parse_lines(b"m v=1 9223372036855", "ms")


def test_max_key_length() -> None:
    """Measurement and tags, and with each field key, fit in 65535 bytes."""
    with pytest.raises(
        LineProtocolError, match="max key length exceeded: 65536 > 65535"
    ):
        parse_lines(b"m" * 65536 + b" v=1")
    with pytest.raises(
        LineProtocolError, match="max key length exceeded: 65536 > 65535"
    ):
        parse_lines(b"m" * 65530 + b" v=1,ab=2")


NAMES = st.text(
    st.characters(
        codec="utf-8", categories=["L", "N", "P", "S", "Zs"], exclude_characters="\\"
    ),
    min_size=1,
    max_size=8,
).filter(lambda name: not name.startswith("#"))


def escape(text: str, specials: str) -> str:
    """Backslash-escape each of `specials` in `text`, as the docs tell writers to."""
    return "".join(f"\\{char}" if char in specials else char for char in text)


def encode_value(value: int | float | bool | str) -> str:
    """A field value in line protocol."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Unsigned):
        return f"{value}u"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + escape(value, '"\\') + '"'


FIELD_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**64 - 1).map(Unsigned),
    st.booleans(),
    st.text(st.characters(codec="utf-8"), max_size=8),
)


@given(
    measurement=NAMES,
    tags=st.dictionaries(NAMES, NAMES, max_size=3),
    fields=st.dictionaries(NAMES, FIELD_VALUES, min_size=1, max_size=3),
    timestamp=st.integers(-(2**63) + 2, 2**63 - 2),
)
def test_parse_round_trip(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, int | float | bool | str],
    timestamp: int,
) -> None:
    """Whatever a writer escapes by the documented rules parses back as written."""
    key = escape(measurement, ", ") + "".join(
        f",{escape(k, ',= ')}={escape(v, ',= ')}" for k, v in tags.items()
    )
    field_set = ",".join(
        f"{escape(k, ',= ')}={encode_value(v)}" for k, v in fields.items()
    )
    [line] = parse_lines(f"{key} {field_set} {timestamp}".encode())
    assert line.measurement == measurement
    assert line.tags == tags
    assert {f.key: f.value for f in line.fields} == fields
    assert [type(f.value) for f in line.fields] == [type(v) for v in fields.values()]
    assert line.time_ns == timestamp
