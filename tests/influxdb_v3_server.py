"""A stand-in InfluxDB 3 Core (or Enterprise) HTTP server for tests, on 127.0.0.1.

No InfluxDB 3 runs here (it is in neither Debian, PyPI nor npm), so this answers the
parts of its API HA Ingestor uses the way its documentation says, and where the docs
are silent the way its server source does. Sources:

- [API] InfluxDB 3 Core's OpenAPI file, influxdata/docs-v2
  api-docs/influxdb3/core/influxdb3-core-openapi.yaml (v3.10.0), and its pages under
  docs.influxdata.com/influxdb3/core/api/.
- [WRITE] docs.influxdata.com/influxdb3/core/write-data/http-api/v3-write-lp/
  (partial writes, no_sync, gzip, the cluster-uuid header).
- [TROUBLE] docs.influxdata.com/influxdb3/core/write-data/troubleshoot/ (status codes:
  404 for a database not found, 503 with Retry-After).
- [COMPAT] docs.influxdata.com/influxdb3/core/write-data/http-api/compatibility-apis/
  (/api/v2/write with `bucket` as the database, /write with `db`).
- [SERVE] `influxdb3 serve --help`: `--without-auth`, `--disable-authz health,ping`.
- [TOKENS] docs.influxdata.com/influxdb3/enterprise/admin/tokens/resource/ (database
  tokens: access to specific databases for writing and querying) and .../tokens/admin/
  (admin tokens manage databases and tokens).
- [SRC] influxdata/influxdb influxdb3_server/src/http.rs (error bodies; the empty
  write; 401 before routing), influxdb3_types write.rs (`original_line` cut to 20
  bytes), http.rs `From<iox_http::write::WriteParams>` (the 1.x and 2.x endpoints
  never accept partial writes), influxdb3_write validator.rs (lines are checked one by
  one against the schema the batch builds up).

What it does:

- Every response has a ``cluster-uuid`` header [WRITE]. Authentication comes first, on
  every path but those `disable_authz` names [API: "requires authentication by default"
  on /ping and /health; SERVE]: Bearer, Token or Basic (its password part is the token)
  [API securitySchemes], and on /write also ``p=`` [API QuerystringAuthentication].
  A missing or unknown token: 401 ``{"error": "the request was not authenticated"}``
  with no version header; a header of another form: 400 [SRC AuthenticationError].
  `token` None runs as ``--without-auth``.
- ``GET|POST /ping``: 200 with ``X-Influxdb-Build`` (Core or Enterprise) and
  ``X-Influxdb-Version`` and a JSON body; ``HEAD /ping`` 404 [API GetPing].
  ``GET /health`` and ``/api/v1/health``: 200 ``OK`` [API GetHealth].
- ``POST /api/v3/write_lp?db=&precision=&accept_partial=&no_sync=`` [API PostWriteLP,
  WRITE]: precision auto (by the timestamp's magnitude), nanosecond, microsecond,
  millisecond or second; accept_partial true by default. A database name it refuses:
  400 [SRC validate_db_name]. A body over `max_request_bytes` (after gunzip): 413
  [API, SRC read_body]. Lines are checked one by one: a syntax error, or a column whose
  type differs from the one the database's table has (or an earlier line of the batch
  gave it): refused with InfluxDB 3's message [WRITE example]. With accept_partial every
  other line is stored and the answer is 400 ``{"error": "partial write of line
  protocol occurred", "data": [{"original_line", "line_number", "error_message"}]}``
  [WRITE]; without, nothing is stored and the answer is 400 ``{"error": "parsing
  failed for write_lp endpoint", "data": {...}}`` naming the first refused line
  [WRITE]. A refusal for a schema limit (`max_tables`) turns the 400 into 422 [SRC
  PartialLpWrite]. An empty batch: 400 ``incoming write was empty``, plain text [SRC].
  The database is created by its first stored line [API dbWriteParam], unless
  `create_databases` is off: 404 ``database not found "x"`` [TROUBLE]. No write is
  stored for a read-only token: 403 [API 403 "Access denied"].
- ``POST /api/v2/write?bucket=`` and ``POST /write?db=`` [COMPAT]: the same checks
  without partial writes; errors as ``{"code": "invalid", "message": "write buffer
  error: ..."}`` (2.x) or ``{"error": ..., "data": {...}}`` (1.x) [SRC V2WriteApiError,
  Error::into_response]. The 2.x empty write: ``{"code": "invalid", "message": "write
  buffer error: incoming write was empty"}``.
- ``GET /api/v3/configure/database?format=json``: ``[{"iox::database": name}]``,
  ``_internal`` first [API GetConfigureDatabase, SRC show_databases]; 403 for any
  token but the admin token (database tokens give access to databases for writing
  and querying, admin tokens manage them [TOKENS]).
- Enterprise database tokens [TOKENS] (``db:NAME:read`` or ``db:NAME:read,write``):
  a read-only one stores no write; one that may write stores in its databases only
  (any other: 403).
- Faults: the next writes may answer 503 or 429 with ``Retry-After`` [TROUBLE, API].

Not like a real server: syntax errors carry 2.x's parser texts (the line protocol
parser is tests/influxdb_v2_server.py's port of models/points.go, not InfluxDB 3's
Rust parser); the current source words the whole-batch refusal "line protocol parsing
error" where the docs say "parsing failed for write_lp endpoint" (the docs' text is
used; clients read the data, not the text); no queries, tokens API or other endpoints
(404 ``Not found``).
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
import json
import re
import time
from typing import Final, Literal
import uuid
import zlib

from aiohttp import web

from .http_test_server import HttpTestServer, first_values
from .influxdb_v2_server import (
    FieldType,
    Line,
    LineProtocolError,
    Point,
    RecordedBody,
    parse_line,
)

_UNAUTHENTICATED: Final = "the request was not authenticated"
_MALFORMED_AUTH: Final = (
    "Authorization header was malformed, the request was not in the form of "
    "'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, "
    "Token and Basic"
)
_FORBIDDEN: Final = "unauthorized to perform requested action with the token"
_PARTIAL: Final = "partial write of line protocol occurred"
_REFUSED_WHOLE: Final = "parsing failed for write_lp endpoint"
_EMPTY: Final = "incoming write was empty"
_INTERNAL_DB: Final = "_internal"
# The part of a refused line the server sends back (influxdb3_types write.rs).
_ORIGINAL_LINE_BYTES: Final = 20
_MAX_DB_NAME: Final = 511

# /api/v3/write_lp's precisions, as 2.x's parser names them (None: auto).
_V3_PRECISION: Final[dict[str, str | None]] = {
    "auto": None,
    "nanosecond": "ns",
    "microsecond": "us",
    "millisecond": "ms",
    "second": "s",
}
# The 1.x and 2.x endpoints' precisions [API PrecisionWriteCompatibility].
_COMPAT_PRECISION: Final[dict[str, str]] = {
    "ns": "ns",
    "n": "ns",
    "us": "us",
    "u": "us",
    "ms": "ms",
    "s": "s",
}
_COLUMN_TYPE: Final[dict[FieldType, str]] = {
    "float": "iox::column_type::field::float",
    "integer": "iox::column_type::field::integer",
    "unsigned": "iox::column_type::field::uinteger",
    "string": "iox::column_type::field::string",
    "boolean": "iox::column_type::field::boolean",
}
_TAG: Final = "iox::column_type::tag"
type _Api = Literal["v3", "v2", "v1"]
_WRITE_APIS: Final[dict[str, _Api]] = {
    "/api/v3/write_lp": "v3",
    "/api/v2/write": "v2",
    "/write": "v1",
}
_DB_NAME_ERRORS: Final = {
    "char": "invalid character in database or rp name: must be ASCII, containing "
    "only letters, numbers, underscores, or hyphens",
    "start": "db name did not start with a number or letter",
    "empty": "db name cannot be empty",
    "long": f"db name too long: max {_MAX_DB_NAME}",
}
_DB_NAME_CHARS = re.compile(r"[A-Za-z0-9_\-]*(/[A-Za-z0-9_\-]*)?")


@dataclass
class _Database:
    # table -> column -> InfluxDB 3 column type.
    tables: dict[str, dict[str, str]] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)


@dataclass(frozen=True)
class _RefusedLine:
    line_number: int
    original_line: str
    error_message: str
    # A schema limit, not the line itself: the answer is 422.
    limit: bool = False

    def to_json(self) -> dict[str, object]:
        original = self.original_line.encode()[:_ORIGINAL_LINE_BYTES]
        return {
            "error_message": self.error_message,
            "line_number": self.line_number,
            "original_line": original.decode("utf-8", "ignore"),
        }


class _RefusalError(Exception):
    def __init__(self, status: int, body: object, *, text: bool = False) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.text = text


@dataclass(frozen=True)
class _WriteRequest:
    database: str
    precision: str | None  # 2.x's name; None: auto
    accept_partial: bool
    api: _Api


class InfluxDBv3TestServer(HttpTestServer):
    """An InfluxDB 3 Core stand-in with an admin token and databases made by writes.

    `token` None runs without authentication. Each of `read_only_tokens` may only read
    the databases it names, each of `write_tokens` read and write them (Enterprise
    database tokens). `disable_authz` lists the resources answered without a token
    (``ping``, ``health``).
    """

    def __init__(
        self,
        *,
        token: str | None,
        read_only_tokens: Mapping[str, Iterable[str]] | None = None,
        write_tokens: Mapping[str, Iterable[str]] | None = None,
        databases: Iterable[str] = (),
        disable_authz: Iterable[Literal["ping", "health"]] = (),
        create_databases: bool = True,
        max_request_bytes: int = 10 * 1024 * 1024,
        max_tables: int = 0,
        build: Literal["Core", "Enterprise"] = "Core",
        version: str = "3.10.0",
    ) -> None:
        """Set up; `max_tables` 0 means no limit."""
        super().__init__()
        self.token = token
        self.build = build
        self.version = version
        self.create_databases = create_databases
        self.max_request_bytes = max_request_bytes
        self.max_tables = max_tables
        self.write_bodies: list[RecordedBody] = []
        self.cluster_uuid = str(uuid.uuid4())
        self._read_only = {t: frozenset(d) for t, d in (read_only_tokens or {}).items()}
        self._writers = {t: frozenset(d) for t, d in (write_tokens or {}).items()}
        self._open = frozenset(disable_authz)
        self._databases = {name: _Database() for name in (_INTERNAL_DB, *databases)}
        self._faults: deque[tuple[int, int]] = deque()

    def databases(self) -> list[str]:
        """The databases that exist, by name."""
        return sorted(self._databases)

    def points(self, database: str) -> list[Point]:
        """Every point stored in `database`, in the order written."""
        return list(self._databases[database].points)

    def fail_next_writes(
        self, count: int, *, status: Literal[429, 503] = 503, retry_after: int = 1
    ) -> None:
        """Answer the next `count` writes with `status` and ``Retry-After``."""
        self._faults.extend([(status, retry_after)] * count)

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            response = await self._route(request)
        except _RefusalError as refusal:
            response = _answer(refusal)
        response.headers["cluster-uuid"] = self.cluster_uuid
        return response

    async def _route(self, request: web.Request) -> web.Response:
        method, path = request.method, request.path
        resource = {"/ping": "ping", "/health": "health", "/api/v1/health": "health"}
        token = None
        if self.token is not None and resource.get(path) not in self._open:
            token = self._authenticate(request)
        if path == "/ping" and method in {"GET", "POST"}:
            return self._ping()
        if path in {"/health", "/api/v1/health"} and method == "GET":
            return web.Response(text="OK", content_type="text/plain")
        if method == "POST" and path in _WRITE_APIS:
            return await self._write(request, _WRITE_APIS[path], token)
        if (method, path) == ("GET", "/api/v3/configure/database"):
            return self._list_databases(request, token)
        return web.Response(status=404, text="Not found")

    def _authenticate(self, request: web.Request) -> str:
        """The request's token, or the refusal: 401, or 400 for a malformed header."""
        token = None
        if request.path == "/write":
            token = first_values(request).get("p")
        header = request.headers.get("Authorization")
        if token is None and header is not None:
            parts = header.split(" ")
            if len(parts) != 2 or parts[0] not in {"Bearer", "Token", "Basic"}:
                raise _RefusalError(400, {"error": _MALFORMED_AUTH})
            token = parts[1]
            if parts[0] == "Basic":
                try:
                    decoded = base64.b64decode(token, validate=True).decode()
                except ValueError:
                    raise _RefusalError(400, {"error": _MALFORMED_AUTH}) from None
                token = decoded.rpartition(":")[2]
        if token is None or (
            token != self.token
            and token not in self._read_only
            and token not in self._writers
        ):
            raise _RefusalError(401, {"error": _UNAUTHENTICATED})
        return token

    def _ping(self) -> web.Response:
        body = {
            "version": self.version,
            "revision": "83b589b883",
            "process_id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.cluster_uuid)),
        }
        return web.json_response(
            body,
            headers={
                "X-Influxdb-Build": self.build,
                "X-Influxdb-Version": self.version,
            },
        )

    def _list_databases(self, request: web.Request, token: str | None) -> web.Response:
        if token in self._read_only or token in self._writers:
            raise _RefusalError(403, {"error": _FORBIDDEN})
        if first_values(request).get("format") != "json":
            raise _RefusalError(400, "serde error: missing field `format`", text=True)
        return web.json_response([{"iox::database": name} for name in self.databases()])

    async def _write(
        self,
        request: web.Request,
        api: _Api,
        token: str | None,
    ) -> web.Response:
        body = await request.content.read()
        encoding = request.headers.get("Content-Encoding", "")
        self.write_bodies.append(RecordedBody(encoding, len(body)))
        if self._faults:
            status, retry_after = self._faults.popleft()
            message = {503: "service unavailable", 429: "too many requests"}[status]
            return web.Response(
                status=status, text=message, headers={"Retry-After": str(retry_after)}
            )
        try:
            write = _write_request(first_values(request), api)
            _check_database_name(write.database)
            self._refuse_write(token, write.database)
            text = self._read_body(body, encoding)
            return self._store(write, text)
        except _RefusalError as refusal:
            if api != "v2":
                raise
            raise _v2_refusal(refusal) from None

    def _refuse_write(self, token: str | None, database: str) -> None:
        if token in self._read_only or (
            token in self._writers and database not in self._writers[token]
        ):
            raise _RefusalError(403, {"error": _FORBIDDEN})

    def _read_body(self, body: bytes, encoding: str) -> str:
        if encoding not in {"", "identity", "gzip"}:
            raise _RefusalError(
                400, f"unacceptable content-encoding: {encoding}", text=True
            )
        data = body
        if encoding == "gzip":
            try:
                data = _gunzip(body)
            except zlib.error as err:
                msg = f"error decoding gzip stream: {err}"
                raise _RefusalError(400, msg, text=True) from None
        if len(data) > self.max_request_bytes:
            msg = f"max request size ({self.max_request_bytes} bytes) exceeded"
            raise _RefusalError(413, msg, text=True)
        try:
            return data.decode()
        except UnicodeDecodeError as err:
            msg = f"body content is not valid utf8: {err}"
            raise _RefusalError(400, msg, text=True) from None

    def _store(self, write: _WriteRequest, text: str) -> web.Response:
        """Check the lines one by one against the schema the batch builds up."""
        if write.database not in self._databases and not self.create_databases:
            raise _RefusalError(
                404, f'database not found "{write.database}"', text=True
            )
        database = self._databases.get(write.database) or _Database()
        tables = {name: dict(columns) for name, columns in database.tables.items()}
        now_ns = time.time_ns()
        stored: list[Point] = []
        refused: list[_RefusedLine] = []
        for number, raw in enumerate(text.split("\n"), start=1):
            stripped = raw.strip(" \t")
            if not stripped or stripped.startswith("#"):
                continue
            try:
                line = _parse(stripped.encode(), write.precision, now_ns)
                self._check_schema(tables, line)
            except _LineRefusedError as err:
                refusal = _RefusedLine(number, raw, str(err), limit=err.limit)
                if not write.accept_partial:
                    _refuse_whole(write, refusal)
                refused.append(refusal)
                continue
            stored.append(
                Point(
                    line.measurement,
                    line.tags,
                    {f.key: f.value for f in line.fields},
                    line.time_ns,
                )
            )
        if not stored and not refused:
            raise _RefusalError(400, _EMPTY, text=True)
        if stored:
            database.tables = tables
            database.points.extend(stored)
            self._databases[write.database] = database
        if refused:
            status = 422 if any(r.limit for r in refused) else 400
            data = [r.to_json() for r in refused]
            raise _RefusalError(status, {"error": _PARTIAL, "data": data})
        return web.Response(status=204)

    def _check_schema(self, tables: dict[str, dict[str, str]], line: Line) -> None:
        """validate_and_qualify_v1_line: columns are created as the line names them."""
        columns = tables.get(line.measurement)
        if columns is None:
            if self.max_tables and len(tables) >= self.max_tables:
                msg = (
                    "Update to schema would exceed number of tables limit: attempted "
                    f"to create table but already have {len(tables)} table(s) "
                    f"(limit: {self.max_tables})"
                )
                raise _LineRefusedError(msg, limit=True)
            columns = tables[line.measurement] = {}
        wanted = [(key, _TAG) for key in line.tags]
        seen: set[str] = set()
        for parsed in line.fields:
            if parsed.key in seen:
                msg = (
                    "invalid line protocol - multiple instances of "
                    f"'{parsed.key}' field found"
                )
                raise _LineRefusedError(msg)
            seen.add(parsed.key)
            wanted.append((parsed.key, _COLUMN_TYPE[parsed.kind]))
        for name, kind in wanted:
            existing = columns.setdefault(name, kind)
            if existing != kind:
                msg = (
                    f"invalid column type for column '{name}', expected {existing}, "
                    f"got {kind}"
                )
                raise _LineRefusedError(msg)


class _LineRefusedError(Exception):
    def __init__(self, message: str, *, limit: bool = False) -> None:
        super().__init__(message)
        self.limit = limit


def _parse(raw: bytes, precision: str | None, now_ns: int) -> Line:
    try:
        line = parse_line(raw, precision or "ns", now_ns)
    except LineProtocolError as err:
        raise _LineRefusedError(str(err)) from None
    if precision is None and line.time_ns < 5 * 10**15:
        # Auto precision, by magnitude [WRITE "Auto precision detection"].
        scale = 10**9 if line.time_ns < 5e9 else 10**6 if line.time_ns < 5e12 else 1000
        line = Line(line.measurement, line.tags, line.fields, line.time_ns * scale)
    return line


def _write_request(query: dict[str, str], api: _Api) -> _WriteRequest:
    """The parameters each write endpoint reads; the 1.x and 2.x ones never partial."""
    name = {"v3": "db", "v2": "bucket", "v1": "db"}[api]
    if name not in query:
        raise _RefusalError(400, f"missing query parameter '{name}'", text=True)
    precisions: Mapping[str, str | None]
    if api == "v3":
        precisions, default = _V3_PRECISION, "auto"
    else:
        precisions, default = _COMPAT_PRECISION, "ns"
    precision = query.get("precision", default)
    if precision not in precisions:
        msg = f"serde error: unknown variant `{precision}`"
        raise _RefusalError(400, msg, text=True)
    accept_partial = api == "v3" and query.get("accept_partial", "true") != "false"
    return _WriteRequest(query[name], precisions[precision], accept_partial, api)


def _check_database_name(name: str) -> None:
    """validate_db_name: ASCII letters, numbers, `_` and `-`, a letter or number first."""
    reason = None
    if not name:
        reason = "empty"
    elif len(name) > _MAX_DB_NAME:
        reason = "long"
    elif not name[0].isascii() or not name[0].isalnum():
        reason = "start" if name[0].isascii() else "char"
    elif not _DB_NAME_CHARS.fullmatch(name):
        reason = "char"
    if reason is not None:
        raise _RefusalError(400, {"error": _DB_NAME_ERRORS[reason]})


def _refuse_whole(write: _WriteRequest, refused: _RefusedLine) -> None:
    if write.api == "v2":
        msg = f"write buffer error: line protocol parse failed: {refused.error_message}"
        raise _RefusalError(400, {"code": "invalid", "message": msg})
    raise _RefusalError(400, {"error": _REFUSED_WHOLE, "data": refused.to_json()})


def _v2_refusal(refusal: _RefusalError) -> _RefusalError:
    """The 2.x endpoint's `{"code", "message"}` for what the others answer."""
    if isinstance(refusal.body, dict) and "code" in refusal.body:
        return refusal
    message = refusal.body if isinstance(refusal.body, str) else ""
    if isinstance(refusal.body, dict):
        message = str(refusal.body.get("error", ""))
    if message == _EMPTY:
        message = f"write buffer error: {_EMPTY}"
    code = {
        401: "unauthorized",
        403: "forbidden",
        404: "not found",
        413: "request too large",
    }.get(refusal.status, "invalid")
    return _RefusalError(refusal.status, {"code": code, "message": message})


def _answer(refusal: _RefusalError) -> web.Response:
    if refusal.text:
        return web.Response(status=refusal.status, text=str(refusal.body))
    return web.Response(
        status=refusal.status,
        text=json.dumps(refusal.body),
        content_type="application/json",
    )


def _gunzip(data: bytes) -> bytes:
    """Multi-member gzip, as InfluxDB 3 reads it [API ContentEncoding]."""
    out = []
    while data:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        out.append(inflater.decompress(data))
        if not inflater.eof:
            msg = "unexpected end of gzip stream"
            raise zlib.error(msg)
        data = inflater.unused_data
    return b"".join(out)
