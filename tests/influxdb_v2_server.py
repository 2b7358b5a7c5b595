"""A stand-in InfluxDB 2.x OSS HTTP server for tests, on 127.0.0.1.

No real InfluxDB 2.x runs here, so this answers the parts of the 2.x API our
integration uses the way influxd 2.7 does, errors included. Sources, all in
influxdata/influxdb unless named:

- Headers: every response has ``X-Influxdb-Build: OSS`` and ``X-Influxdb-Version``
  ("v2.7.11": real servers send the ``v``) (http package, NewRootHandler).
- ``GET|HEAD /ping`` 204, ``/health`` (any method) 200 with http/health.go's exact
  text; neither needs a token (http/legacy/ping_handler.go, docs /api/ping).
- Tokens: ``Token <t>`` or ``Bearer <t>``, scheme in any case (GetToken). Missing
  or unknown: 401 ``{"code":"unauthorized","message":"unauthorized access"}``
  (http/authentication_middleware.go), unknown paths included.
- Errors: ``{"code","message"}`` plus ``X-Platform-Error-Code``, status from the
  code (kit/platform/errors/errors.go, kit/transport/http/error_handler.go);
  compact from the write handler, tab-indented from the bucket, org and
  path-not-found handlers (kit/transport/http/api.go).
- ``POST /api/v2/write`` in http/write_handler.go's order: bad precision 400; no
  bucket 404 "bucket not found"; gzip body without a gzip header 500; no org/orgID
  400, malformed orgID 400, unknown org 404 ``organization name "x" not found`` or
  "organization not found" (tenant/error_org.go, tenant/service_org.go); unknown
  bucket (by ID, then name) 404 ``bucket "x" not found`` (tenant/error_bucket.go);
  no write permission **403** "insufficient permissions for write"
  (checkBucketWritePermissions: the launcher gives this handler unauthorized
  bucket and org services, so a read-only token gets this far; the docs'
  troubleshooting page says 401). Then http/points: body over ``max_body_bytes``
  after gunzip 413 "unable to read data: points batch is too large" (also
  influxdata/openapi src/common/paths/write.yml), empty 400 "writing requires
  points", bad lines 400 "unable to parse '<line>': <reason>" for each, joined by
  newlines, and nothing of the batch is written.
- Line protocol: a port of models/points.go (escaping via pkg/escape, unescapeTag
  and unescapeStringField; error texts; tag sorting; timestamps scaled by precision
  and range-checked as SafeCalcTime does; the server's time, truncated to the
  precision, for lines without one). ``123u`` is accepted: the v2 line-protocol
  reference documents UInteger.
- Storing (coordinator PointsWriter, tsdb Shard, tsdb ValidateAndCreateFields):
  field types per bucket, shard group (Go's Time.Truncate alignment) and
  measurement. A conflict with stored data or with an earlier point of the batch
  drops that point, keeps the others and answers 422 "unprocessable entity"
  ``failure writing points to database: partial write: field type conflict: input
  field "v" on measurement "m" is type string, already exists as type float
  dropped=1`` (first reason, all drops counted). A "time" tag drops the point, a
  "time" field is not stored, points older than the retention are dropped unless
  a newer point of the batch opens their shard group. Older 2.x releases without
  ValidateAndCreateFields answered 500 for a conflict inside one batch.
- ``GET /api/v2/buckets`` and ``/api/v2/orgs`` (tenant/http_server_bucket.go,
  service_bucket.go, http_server_org.go and their auth middlewares): ``org``,
  ``orgID``, ``name``, ``id`` filters, the same 404s, unreadable resources left
  out; the org's ``_monitoring`` and ``_tasks`` buckets are listed too.

Not like a real server: no ``/ready``, v1 or other 2.x endpoints (other paths:
404 "path not found" after authentication); paging ignored (listings assume fewer
than 20 buckets); a corrupt gzip stream's 500 lacks Go's byte offset; aiohttp adds
a ``Server`` header; with conflicts in several shard groups of one batch the
earliest group's error wins, not the first shard to finish; the injected 503/429
faults answer before authentication (OSS never sends 429); a hung server
(`writes_hanging`) holds each write of points unanswered until it is left.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
import contextlib
from dataclasses import dataclass, field
import datetime as dt
import json
import math
import re
import secrets
import time
from typing import Final, Literal, NamedTuple
from urllib.parse import quote_plus, urlencode
import zlib

from aiohttp import web

from .http_test_server import HttpTestServer, first_values

type FieldType = Literal["float", "integer", "unsigned", "string", "boolean"]
type FieldValue = float | int | bool | str


class Unsigned(int):
    """The value of a line-protocol unsigned integer (``123u``); compares as an int."""


class ParsedField(NamedTuple):
    """One field of a line, its key unescaped, in the order the line gives it."""

    key: str
    kind: FieldType
    value: FieldValue


@dataclass(frozen=True, slots=True)
class Line:
    """One parsed line of line protocol."""

    measurement: str
    tags: dict[str, str]
    fields: tuple[ParsedField, ...]
    time_ns: int


@dataclass(frozen=True, slots=True)
class Point:
    """A point the server accepted, as a test reads it back."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int


class RecordedBody(NamedTuple):
    """A write request's body as it arrived: its Content-Encoding and size on the wire."""

    content_encoding: str
    size: int


class LineProtocolError(ValueError):
    """A batch the 2.x parser rejects; ``str()`` is the message the server answers."""


class _LineError(Exception):
    """Why one line does not parse (models/points.go's error text)."""


# --- Line protocol: a port of models/points.go ---------------------------------

_BACKSLASH: Final = ord("\\")
_COMMA: Final = ord(",")
_SPACE: Final = ord(" ")
_EQUALS: Final = ord("=")
_QUOTE: Final = ord('"')
_MINUS: Final = ord("-")
_NEWLINE: Final = ord("\n")

_MAX_KEY_LENGTH: Final = 65535
# Numbers this long may be out of range, so models/points.go parses them to check.
_MAX_INT64_DIGITS: Final = 19
_MAX_UINT64_DIGITS: Final = 20
_MAX_FLOAT64_DIGITS: Final = 25
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1
_MIN_NANO_TIME: Final = _INT64_MIN + 2
_MAX_NANO_TIME: Final = _INT64_MAX - 1
_INVALID_NUMBER: Final = "invalid number"
_INVALID_BOOLEAN: Final = "invalid boolean"

# Precision -> nanoseconds per unit (http/write_handler.go accepts only these).
_PRECISION_NS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
}
_TRUE_SPELLINGS: Final = frozenset({b"t", b"T", b"true", b"True", b"TRUE"})
_VALID_BOOLEANS: Final = frozenset(
    {b"true", b"True", b"TRUE", b"false", b"False", b"FALSE"}
)

_ESCAPED = re.compile(rb'\\([," =])')
_ESCAPED_IN_STRING = re.compile(rb'\\([\\"])')
_ID_LENGTH: Final = 16
_ID = re.compile(r"[0-9a-fA-F]+")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


_GO_ESCAPES: Final = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
    "\\": r"\\",
    '"': r"\"",
}


def _go_quote(text: str) -> str:
    """Go's strconv.Quote (the ``%q`` verb) for the texts InfluxDB quotes."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _unescape(raw: bytes) -> str:
    """pkg/escape.Unescape: measurement names and field keys."""
    return _text(_ESCAPED.sub(rb"\1", raw))


def _unescape_tag(raw: bytes) -> str:
    """models.unescapeTag: one replace per escape code, in Go's order."""
    for char in (b",", b" ", b"="):
        raw = raw.replace(b"\\" + char, char)
    return _text(raw)


def _skip_whitespace(buf: bytes, i: int) -> int:
    while i < len(buf) and buf[i] in b" \t\x00":
        i += 1
    return i


def _scan_line(buf: bytes, i: int) -> tuple[int, bytes]:
    """One line; a newline inside a quoted field value does not end it."""
    start, quoted, in_fields, equals, commas = i, False, False, 0, 0
    while i < len(buf):
        if buf[i] == _BACKSLASH and i + 2 < len(buf):
            i += 2
            continue
        if buf[i] == _SPACE:
            in_fields = True
        if in_fields:
            if not quoted and buf[i] == _EQUALS:
                i, equals = i + 1, equals + 1
                continue
            if not quoted and buf[i] == _COMMA:
                i, commas = i + 1, commas + 1
                continue
            if buf[i] == _QUOTE and equals > commas:
                i, quoted = i + 1, not quoted
                continue
        if buf[i] == _NEWLINE and not quoted:
            break
        i += 1
    return i, buf[start:i]


def _scan_measurement(buf: bytes, i: int) -> tuple[bool, int]:
    """Whether tags follow, and where they (or the fields) start."""
    if i >= len(buf) or buf[i] == _COMMA:
        raise _LineError("missing measurement")
    while True:
        i += 1
        if i >= len(buf):
            raise _LineError("missing fields")
        if buf[i - 1] == _BACKSLASH:
            continue
        if buf[i] == _COMMA:
            return True, i + 1
        if buf[i] == _SPACE:
            return False, i


def _scan_tag_key(buf: bytes, i: int) -> int:
    if i >= len(buf) or buf[i] in b" ,=":
        raise _LineError("missing tag key")
    while True:
        i += 1
        if i >= len(buf) or (buf[i] in b" ," and buf[i - 1] != _BACKSLASH):
            raise _LineError("missing tag value")
        if buf[i] == _EQUALS and buf[i - 1] != _BACKSLASH:
            return i + 1


def _scan_tag_value(buf: bytes, i: int) -> tuple[bool, int]:
    """Whether another tag follows, and where it (or the fields) starts."""
    if i >= len(buf) or buf[i] in b", ":
        raise _LineError("missing tag value")
    while True:
        i += 1
        if i >= len(buf):
            raise _LineError("missing fields")
        if buf[i - 1] == _BACKSLASH:
            continue
        if buf[i] == _EQUALS:
            raise _LineError("invalid tag format")
        if buf[i] == _COMMA:
            return True, i + 1
        if buf[i] == _SPACE:
            return False, i


def _scan_key(buf: bytes) -> tuple[int, str, dict[str, str]]:
    """Measurement and tags: the end of the key, the name, the tags sorted by key."""
    more_tags, i = _scan_measurement(buf, 0)
    name_end = i - 1 if more_tags else i
    raw_tags: list[tuple[bytes, bytes]] = []
    while more_tags:
        key_start = i
        i = _scan_tag_key(buf, i)
        value_start = i
        more_tags, i = _scan_tag_value(buf, i)
        value_end = i - 1 if more_tags else i
        raw_tags.append((buf[key_start : value_start - 1], buf[value_start:value_end]))
    if len({key for key, _ in raw_tags}) != len(raw_tags):
        raise _LineError("duplicate tags")
    # Go sorts the tags by their escaped key bytes.
    tags = {_unescape_tag(k): _unescape_tag(v) for k, v in sorted(raw_tags)}
    return i, _unescape(buf[:name_end]), tags


def _is_numeric(char: int) -> bool:
    return char in b"0123456789."


def _check_int_range(text: bytes, kind: str, func: str, low: int, high: int) -> None:
    if not low <= int(text) <= high:
        number = _go_quote(_text(text))
        msg = f"unable to parse {kind} {_text(text)}: strconv.{func}: parsing {number}: value out of range"
        raise _LineError(msg)


def _scan_number(buf: bytes, i: int) -> int:  # noqa: PLR0912
    start = i
    is_int = is_unsigned = decimal = scientific = False
    if buf[i] == _MINUS:
        i += 1
        if i == len(buf):
            raise _LineError(_INVALID_NUMBER)
    while i < len(buf) and buf[i] not in b", ":
        char = buf[i]
        if char in b"iu" and i > start and not (is_int or is_unsigned):
            is_int, is_unsigned = char == ord("i"), char == ord("u")
            i += 1
            continue
        if char == ord("."):
            if decimal:
                raise _LineError(_INVALID_NUMBER)
            decimal = True
        if i > start and char in b"eE":
            scientific = True
            i += 1
            continue
        if char in b"+-" and buf[i - 1] in b"eE":
            i += 1
            continue
        if not _is_numeric(char):
            raise _LineError(_INVALID_NUMBER)
        i += 1
    if (is_int or is_unsigned) and (decimal or scientific):
        raise _LineError(_INVALID_NUMBER)
    # Go leaves the 'u' suffix in this count; only 'i', '.' and '-' come off.
    digits = i - start - is_int - decimal - (buf[start] == _MINUS)
    if digits == 0:
        raise _LineError(_INVALID_NUMBER)
    if is_int:
        if buf[i - 1] != ord("i"):
            raise _LineError(_INVALID_NUMBER)
        if len(buf[start : i - 1]) >= _MAX_INT64_DIGITS:
            _check_int_range(
                buf[start : i - 1], "integer", "ParseInt", _INT64_MIN, _INT64_MAX
            )
    elif is_unsigned:
        if buf[i - 1] != ord("u") or buf[start] == _MINUS:
            raise _LineError(_INVALID_NUMBER)
        if len(buf[start : i - 1]) >= _MAX_UINT64_DIGITS:
            _check_int_range(
                buf[start : i - 1], "unsigned", "ParseUint", 0, _UINT64_MAX
            )
    elif scientific or len(buf[start:i]) >= _MAX_FLOAT64_DIGITS:
        try:
            value = float(buf[start:i])
        except ValueError:
            raise _LineError("invalid float") from None
        if math.isinf(value):
            raise _LineError("invalid float")
    return i


def _scan_boolean(buf: bytes, i: int) -> int:
    start = i
    if buf[i] not in b"tfTF":
        raise _LineError(_INVALID_BOOLEAN)
    i += 1
    while i < len(buf) and buf[i] not in b", ":
        i += 1
    if i - start > 1 and buf[start:i] not in _VALID_BOOLEANS:
        raise _LineError(_INVALID_BOOLEAN)
    return i


def _scan_fields(buf: bytes, i: int) -> tuple[int, bytes]:
    start = i = _skip_whitespace(buf, i)
    quoted, equals, commas = False, 0, 0
    while i < len(buf):
        if buf[i] == _BACKSLASH and i + 1 < len(buf):
            i += 2
            continue
        # Quotes matter in values only, not in keys.
        if buf[i] == _QUOTE and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if buf[i] == _EQUALS and not quoted:
            equals += 1
            if buf[i - 1] in b" ," and buf[i - 2] != _BACKSLASH:
                raise _LineError("missing field key")
            if i + 1 >= len(buf) or buf[i + 1] in b", ":
                raise _LineError("missing field value")
            if _is_numeric(buf[i + 1]) or buf[i + 1] in b"-Nn":
                i = _scan_number(buf, i + 1)
                continue
            if buf[i + 1] != _QUOTE:
                i = _scan_boolean(buf, i + 1)
                continue
        if buf[i] == _COMMA and not quoted:
            commas += 1
        if buf[i] == _SPACE and not quoted:
            break
        i += 1
    if quoted:
        raise _LineError("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise _LineError("invalid field format")
    return i, buf[start:i]


def _scan_to_equals(buf: bytes, i: int) -> int:
    while i < len(buf) and not (
        buf[i] == _EQUALS and (i == 0 or buf[i - 1] != _BACKSLASH)
    ):
        i += 1
    return i


def _scan_field_value(buf: bytes, i: int) -> int:
    quoted = False
    while i < len(buf):
        if buf[i] == _BACKSLASH and i + 1 < len(buf) and buf[i + 1] in b'"\\':
            i += 2
            continue
        if buf[i] == _QUOTE:
            quoted = not quoted
        elif buf[i] == _COMMA and not quoted:
            break
        i += 1
    return i


def _split_fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The raw key and value of each field, as the point's field iterator walks them."""
    pairs, pos = [], 0
    while pos < len(raw):
        key_end = _scan_to_equals(raw, pos)
        value_end = _scan_field_value(raw, key_end + 1)
        pairs.append((raw[pos:key_end], raw[key_end + 1 : value_end]))
        pos = value_end + 1
    return pairs


def _typed_field(raw_key: bytes, raw_value: bytes) -> ParsedField:
    """The iterator's typing: by the value's first and last byte."""
    key = _unescape(raw_key)
    if raw_value[0] == _QUOTE:
        return ParsedField(
            key, "string", _text(_ESCAPED_IN_STRING.sub(rb"\1", raw_value[1:-1]))
        )
    if raw_value[0] in b"0123456789-.nNiIu":
        if raw_value.endswith(b"i"):
            return ParsedField(key, "integer", int(raw_value[:-1]))
        if raw_value.endswith(b"u"):
            return ParsedField(key, "unsigned", Unsigned(raw_value[:-1]))
        return ParsedField(key, "float", float(raw_value))
    return ParsedField(key, "boolean", raw_value in _TRUE_SPELLINGS)


def _scan_time(buf: bytes, i: int) -> tuple[int, bytes]:
    start = i = _skip_whitespace(buf, i)
    while i < len(buf) and buf[i] not in b"\n ":
        if not (i == start and buf[i] == _MINUS) and buf[i] not in b"0123456789":
            raise _LineError("bad timestamp")
        i += 1
    return i, buf[start:i]


def _timestamp_ns(raw: bytes, precision: str) -> int:
    if raw == b"-":
        msg = f"strconv.ParseInt: parsing {_go_quote(_text(raw))}: invalid syntax"
        raise _LineError(msg)
    value = int(raw)
    if not _INT64_MIN <= value <= _INT64_MAX:
        msg = f"strconv.ParseInt: parsing {_go_quote(_text(raw))}: value out of range"
        raise _LineError(msg)
    time_ns = value * _PRECISION_NS[precision]
    if not _MIN_NANO_TIME <= time_ns <= _MAX_NANO_TIME:
        raise _LineError(f"time outside range {_MIN_NANO_TIME} - {_MAX_NANO_TIME}")
    return time_ns


def _parse_line(buf: bytes, precision: str, default_time_ns: int) -> Line:
    key_end, measurement, tags = _scan_key(buf)
    if key_end > _MAX_KEY_LENGTH:
        raise _LineError(f"max key length exceeded: {key_end} > {_MAX_KEY_LENGTH}")
    fields_end, raw_fields = _scan_fields(buf, key_end)
    pairs = _split_fields(raw_fields)
    for raw_key, _ in pairs:
        # 4 is the length of the storage engine's field key separator.
        if (size := key_end + 4 + len(raw_key)) > _MAX_KEY_LENGTH:
            raise _LineError(f"max key length exceeded: {size} > {_MAX_KEY_LENGTH}")
    time_end, raw_time = _scan_time(buf, fields_end)
    if raw_time:
        time_ns = _timestamp_ns(raw_time, precision)
        if buf[time_end:].strip(b" "):
            raise _LineError("point is invalid")
    else:
        unit = _PRECISION_NS[precision]
        time_ns = default_time_ns // unit * unit
    fields = tuple(_typed_field(k, v) for k, v in pairs)
    return Line(measurement, tags, fields, time_ns)


def parse_line(line: bytes, precision: str, default_time_ns: int) -> Line:
    """Parse one line as influxd 2.x does; LineProtocolError says why it does not.

    `precision` is one of 2.x's (ns, us, ms, s); a line without a timestamp gets
    `default_time_ns` truncated to it.
    """
    try:
        return _parse_line(line, precision, default_time_ns)
    except _LineError as err:
        raise LineProtocolError(str(err)) from None


def parse_lines(
    data: bytes, precision: str = "ns", default_time_ns: int | None = None
) -> list[Line]:
    """Parse a write body as influxd 2.x does (models.ParsePointsWithPrecision).

    Blank lines and ``#`` comments are skipped. Lines without a timestamp get
    `default_time_ns` (now if None) truncated to `precision`. Raises
    LineProtocolError naming every line that does not parse.
    """
    if default_time_ns is None:
        default_time_ns = time.time_ns()
    lines: list[Line] = []
    failed: list[str] = []
    pos = 0
    while pos < len(data):
        pos, block = _scan_line(data, pos)
        pos += 1
        start = _skip_whitespace(block, 0)
        if start >= len(block) or block[start] == ord("#"):
            continue
        # An unterminated quote runs the block to the end of the body.
        block = block.removesuffix(b"\n")[start:]
        try:
            lines.append(_parse_line(block, precision, default_time_ns))
        except _LineError as err:
            failed.append(f"unable to parse '{_text(block)}': {err}")
    if failed:
        raise LineProtocolError("\n".join(failed))
    return lines


# --- Storage -------------------------------------------------------------------

_SECONDS_PER_DAY: Final = 86_400
# Seconds from Go's zero time (year 1) to the Unix epoch: Time.Truncate counts from
# there, so shard groups start on the Mondays Go picks.
_GO_ZERO_TO_UNIX_S: Final = 62_135_596_800


def _shard_group_duration_s(retention_s: int) -> int:
    """Default shard group duration for a retention (meta.normalisedShardDuration)."""
    if retention_s == 0 or retention_s >= 180 * _SECONDS_PER_DAY:
        return 7 * _SECONDS_PER_DAY
    if retention_s < 2 * _SECONDS_PER_DAY:
        return 3600
    return _SECONDS_PER_DAY


def _new_id() -> str:
    """A random valid (non-zero) 2.x resource ID."""
    return f"{secrets.randbelow(2**64 - 1) + 1:016x}"


@dataclass
class _Bucket:
    name: str
    kind: Literal["user", "system"]
    retention_s: int
    description: str = ""
    bucket_id: str = field(default_factory=_new_id)
    points: list[Point] = field(default_factory=list)
    # (shard group, measurement) -> field key -> type.
    field_types: dict[tuple[int, str], dict[str, FieldType]] = field(
        default_factory=dict
    )

    @property
    def shard_group_s(self) -> int:
        return _shard_group_duration_s(self.retention_s)

    def _shard_group(self, time_ns: int) -> int:
        span_ns = self.shard_group_s * 1_000_000_000
        return (time_ns + _GO_ZERO_TO_UNIX_S * 1_000_000_000) // span_ns

    def write(self, lines: list[Line], now_ns: int) -> str | None:
        """Store `lines`; the partial-write error text when any point is dropped.

        PointsWriter.MapShards: a point older than the retention is kept only when
        a newer point of the batch opens its shard group.
        """
        cutoff = now_ns - self.retention_s * 1_000_000_000 if self.retention_s else None
        opened = {
            self._shard_group(line.time_ns)
            for line in lines
            if cutoff is None or line.time_ns >= cutoff
        }
        shards: dict[int, list[tuple[int, Line]]] = {}
        beyond_retention = 0
        for index, line in enumerate(lines):
            group = self._shard_group(line.time_ns)
            if group in opened:
                shards.setdefault(group, []).append((index, line))
            else:
                beyond_retention += 1
        accepted: dict[int, Point] = {}
        # A shard's error wins over the retention one, as in PointsWriter.
        errors = [
            self._write_shard(group, shards[group], accepted)
            for group in sorted(shards)
        ]
        self.points.extend(accepted[index] for index in sorted(accepted))
        for error in errors:
            if error is not None:
                return error
        if beyond_retention:
            return f"partial write: points beyond retention policy dropped={beyond_retention}"
        return None

    def _write_shard(
        self, group: int, lines: list[tuple[int, Line]], accepted: dict[int, Point]
    ) -> str | None:
        """Shard.validateSeriesAndFields: put the points it keeps into `accepted`."""
        reasons = [
            f'invalid tag key: input tag "time" on measurement "{line.measurement}" is invalid'
            for _, line in lines
            if "time" in line.tags
        ]
        dropped = len(reasons)
        for index, line in lines:
            if "time" in line.tags:
                continue
            fields = [f for f in line.fields if f.key != "time"]
            if not fields:
                reason: str | None = (
                    f'invalid field name: input field "time" on measurement "{line.measurement}" is invalid'
                )
            else:
                reason = self._create_fields(group, line.measurement, fields)
            if reason is not None:
                dropped += 1
                reasons.append(reason)
                continue
            accepted[index] = Point(
                line.measurement,
                line.tags,
                {f.key: f.value for f in fields},
                line.time_ns,
            )
        if dropped:
            return f"partial write: {reasons[0]} dropped={dropped}"
        return None

    def _create_fields(
        self, group: int, measurement: str, fields: list[ParsedField]
    ) -> str | None:
        """ValidateAndCreateFields: fields before a conflict stay created."""
        types = self.field_types.setdefault((group, measurement), {})
        for key, kind, _ in fields:
            existing = types.setdefault(key, kind)
            if existing != kind:
                return (
                    f"field type conflict: input field {_go_quote(key)} on measurement "
                    f"{_go_quote(measurement)} is type {kind}, already exists as type {existing}"
                )
        return None


# --- HTTP ----------------------------------------------------------------------

# kit/transport/http/error_handler.go: influxDBErrorToStatusCode.
_STATUS_BY_CODE: Final[dict[str, int]] = {
    "internal error": 500,
    "invalid": 400,
    "unprocessable entity": 422,
    "not found": 404,
    "unavailable": 503,
    "forbidden": 403,
    "too many requests": 429,
    "unauthorized": 401,
    "request too large": 413,
}
_INTERNAL_MESSAGE: Final = "An internal error has occurred - check server logs"
_JSON: Final = "application/json; charset=utf-8"
_DEFAULT_PAGE_SIZE: Final = 20


class _ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Grant:
    """What a token may do: write everything, or only read some buckets."""

    can_write: bool
    readable: frozenset[str] | None  # None: every bucket and the org itself

    def can_read(self, bucket: str) -> bool:
        return self.readable is None or bucket in self.readable


def _go_json(value: object, *, pretty: bool) -> bytes:
    """encoding/json's output: Marshal, or MarshalIndent with tabs."""
    if pretty:
        text = json.dumps(value, ensure_ascii=False, indent="\t")
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Go escapes these for safe embedding in HTML and JavaScript.
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()


def _error_response(error: _ApiError, *, pretty: bool = False) -> web.Response:
    return web.Response(
        status=_STATUS_BY_CODE[error.code],
        body=_go_json({"code": error.code, "message": error.message}, pretty=pretty),
        headers={"Content-Type": _JSON, "X-Platform-Error-Code": error.code},
    )


def _json_response(value: object) -> web.Response:
    return web.Response(
        body=_go_json(value, pretty=True), headers={"Content-Type": _JSON}
    )


def _valid_id(text: str) -> str:
    """platform.IDFromString's checks; the ID in lower case."""
    if len(text) != _ID_LENGTH:
        raise _ApiError("invalid", "id must have a length of 16 bytes")
    if not _ID.fullmatch(text) or int(text, 16) == 0:
        raise _ApiError("invalid", "invalid ID")
    return text.lower()


def _is_id(text: str) -> bool:
    try:
        _valid_id(text)
    except _ApiError:
        return False
    return True


def _has_gzip_header(data: bytes) -> bool:
    # The fixed part: magic bytes, deflate, flags, mtime, extra flags, OS.
    return len(data) >= 10 and data[:3] == b"\x1f\x8b\x08"


def _gunzip(data: bytes) -> bytes:
    """Go's gzip.Reader: members back to back, its errors as the handler words them."""
    out = []
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out.append(inflater.decompress(data))
        except zlib.error as err:
            if "check" in str(err):  # "incorrect data check" / "incorrect length check"
                raise _ApiError(
                    "invalid", "unable to read data: gzip: invalid checksum"
                ) from None
            raise _ApiError(
                "internal error", "unable to read data: flate: corrupt input"
            ) from None
        if not inflater.eof:
            raise _ApiError("internal error", "unable to read data: unexpected EOF")
        data = inflater.unused_data
        if not data:
            return b"".join(out)
        if not _has_gzip_header(data):
            raise _ApiError("invalid", "unable to read data: gzip: invalid header")


def _rfc3339_nano(time_ns: int) -> str:
    """Go's time.RFC3339Nano for a UTC time, as encoding/json writes it."""
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    text = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


class InfluxDBv2TestServer(HttpTestServer):
    """An InfluxDB 2.x OSS stand-in with one org, its buckets and tokens.

    `token` may do everything in the org. Each of `read_only_tokens` may only read
    the buckets it names (as ``influx auth create --read-bucket`` makes). Use it as
    an async context manager, or `start` and `stop` it (it keeps its port and data).
    """

    def __init__(
        self,
        *,
        token: str,
        org: str,
        buckets: Iterable[str],
        read_only_tokens: Mapping[str, Iterable[str]] | None = None,
        max_body_bytes: int = 0,
        version: str = "v2.7.11",
        commit: str = "fbf5d4ab5e",
    ) -> None:
        """Set up the org; `max_body_bytes` 0 means no limit, as in influxd."""
        super().__init__()
        self.org = org
        self.org_id = _new_id()
        self.version = version
        self.commit = commit
        self.max_body_bytes = max_body_bytes
        self.write_bodies: list[RecordedBody] = []
        self._created = _rfc3339_nano(time.time_ns())
        self._grants = {token: _Grant(can_write=True, readable=None)}
        for ro_token, names in (read_only_tokens or {}).items():
            self._grants[ro_token] = _Grant(can_write=False, readable=frozenset(names))
        # Creating an org creates these two (tenant/service_org.go).
        system = [
            _Bucket(
                "_monitoring",
                "system",
                7 * _SECONDS_PER_DAY,
                "System bucket for monitoring logs",
            ),
            _Bucket(
                "_tasks", "system", 3 * _SECONDS_PER_DAY, "System bucket for task logs"
            ),
        ]
        self._buckets = {b.name: b for b in system}
        for name in buckets:
            if name.startswith("_") or name in self._buckets:
                msg = f"bucket name {name} is invalid or taken"
                raise ValueError(msg)
            self._buckets[name] = _Bucket(name, "user", 0)
        self._faults: deque[tuple[int, int]] = deque()
        # While writes hang: released on leaving writes_hanging; the requests held.
        self._hang: asyncio.Event | None = None
        self._held_writes: set[asyncio.Task[object]] = set()

    def bucket_id(self, name: str) -> str:
        """The ID of bucket `name`."""
        return self._buckets[name].bucket_id

    def points(self, bucket: str) -> list[Point]:
        """Every point accepted into `bucket`, in the order written."""
        return list(self._buckets[bucket].points)

    def fail_next_writes(
        self, count: int, *, status: Literal[429, 503] = 503, retry_after: int = 1
    ) -> None:
        """Answer the next `count` writes with `status` and ``Retry-After``."""
        self._faults.extend([(status, retry_after)] * count)

    @contextlib.asynccontextmanager
    async def writes_hanging(self) -> AsyncIterator[None]:
        """Hold each write of points unanswered while inside; answer them 503 after.

        /ping and setup's empty write are still answered: a server that started well,
        then hangs. On leaving, the held writes are answered and ended, so that no
        request is left pending after the test.
        """
        self._hang = release = asyncio.Event()
        try:
            yield
        finally:
            self._hang = None
            release.set()
            if self._held_writes:
                await asyncio.wait(self._held_writes)

    async def _handle(self, request: web.Request) -> web.Response:
        response = await self._route(request)
        response.headers["X-Influxdb-Build"] = "OSS"
        response.headers["X-Influxdb-Version"] = self.version
        return response

    async def _route(self, request: web.Request) -> web.Response:
        method, path = request.method, request.path
        if path == "/ping" and method in {"GET", "HEAD"}:
            return web.Response(status=204)
        if path == "/health":
            body = (
                '{"name":"influxdb", "message":"ready for queries and writes", '
                f'"status":"pass", "checks":[], "version": {_go_quote(self.version)}, '
                f'"commit": {_go_quote(self.commit)}}}\n'
            )
            return web.Response(body=body.encode(), headers={"Content-Type": _JSON})
        if path == "/api/v2/write" and method == "POST" and self._faults:
            return self._fault(*self._faults.popleft())
        grant = self._grant(request.headers.get("Authorization", ""))
        if grant is None:
            return _error_response(_ApiError("unauthorized", "unauthorized access"))
        return await self._api(request, grant)

    async def _api(self, request: web.Request, grant: _Grant) -> web.Response:
        query = first_values(request)
        route = (request.method, request.path)
        # The write handler answers errors in compact JSON, the others indented.
        pretty = route != ("POST", "/api/v2/write")
        try:
            if not pretty:
                return await self._write(request, query, grant)
            if route == ("GET", "/api/v2/buckets"):
                return self._get_buckets(query, grant)
            if route == ("GET", "/api/v2/orgs"):
                return self._get_orgs(query, grant)
        except _ApiError as err:
            return _error_response(err, pretty=pretty)
        return _error_response(_ApiError("not found", "path not found"), pretty=True)

    def _fault(self, status: int, retry_after: int) -> web.Response:
        code = {503: "unavailable", 429: "too many requests"}[status]
        response = _error_response(_ApiError(code, f"injected fault: {code}"))
        response.headers["Retry-After"] = str(retry_after)
        return response

    def _grant(self, authorization: str) -> _Grant | None:
        for scheme in ("Token ", "Bearer "):
            if authorization[: len(scheme)].lower() == scheme.lower():
                return self._grants.get(authorization[len(scheme) :])
        return None

    def _check_org(self, query: dict[str, str]) -> None:
        """queryOrganization: `orgID`, else `org` as an ID if it parses as one."""
        org, org_id = query.get("org", ""), query.get("orgID", "")
        if org_id:
            self._check_org_id(_valid_id(org_id))
        elif _is_id(org):
            self._check_org_id(org.lower())
        elif org:
            self._check_org_name(org)
        else:
            raise _ApiError("invalid", "Please provide either orgID or org")

    def _check_org_id(self, org_id: str) -> None:
        if org_id != self.org_id:
            raise _ApiError("not found", "organization not found")

    def _check_org_name(self, name: str) -> None:
        if name != self.org:
            raise _ApiError("not found", f'organization name "{name}" not found')

    def _bucket_by_name(self, name: str) -> _Bucket:
        if name not in self._buckets:
            raise _ApiError("not found", f"bucket {_go_quote(name)} not found")
        return self._buckets[name]

    def _bucket_by_id(self, bucket_id: str) -> _Bucket | None:
        return next(
            (b for b in self._buckets.values() if b.bucket_id == bucket_id.lower()),
            None,
        )

    async def _write(
        self, request: web.Request, query: dict[str, str], grant: _Grant
    ) -> web.Response:
        precision = query.get("precision") or "ns"
        if precision not in _PRECISION_NS:
            raise _ApiError(
                "invalid",
                "invalid precision; valid precision units are ns, us, ms, and s",
            )
        bucket_ref = query.get("bucket", "")
        if not bucket_ref:
            raise _ApiError("not found", "bucket not found")
        body = await request.content.read()
        encoding = request.headers.get("Content-Encoding", "")
        self.write_bodies.append(RecordedBody(encoding, len(body)))
        gzipped = encoding in {"gzip", "x-gzip"}
        if gzipped and not _has_gzip_header(body):
            raise _ApiError("internal error", _INTERNAL_MESSAGE)
        self._check_org(query)
        by_id = self._bucket_by_id(bucket_ref) if _is_id(bucket_ref) else None
        bucket = by_id or self._bucket_by_name(bucket_ref)
        if not grant.can_write:
            raise _ApiError("forbidden", "insufficient permissions for write")
        data = _gunzip(body) if gzipped else body
        if self.max_body_bytes and len(data) > self.max_body_bytes:
            raise _ApiError(
                "request too large", "unable to read data: points batch is too large"
            )
        if not data:
            raise _ApiError("invalid", "writing requires points")
        if (hang := self._hang) is not None:
            # The request's task: it ends once its answer is sent.
            request_task = asyncio.current_task()
            assert request_task is not None
            self._held_writes.add(request_task)
            request_task.add_done_callback(self._held_writes.discard)
            await hang.wait()
            raise _ApiError("unavailable", "injected fault: the write hung")
        now_ns = time.time_ns()
        try:
            lines = parse_lines(data, precision, now_ns)
        except LineProtocolError as err:
            raise _ApiError("invalid", str(err)) from None
        if partial := bucket.write(lines, now_ns):
            raise _ApiError(
                "unprocessable entity", f"failure writing points to database: {partial}"
            )
        return web.Response(status=204)

    def _bucket_json(self, bucket: _Bucket) -> dict[str, object]:
        body: dict[str, object] = {
            "id": bucket.bucket_id,
            "orgID": self.org_id,
            "type": bucket.kind,
        }
        if bucket.description:
            body["description"] = bucket.description
        base = f"/api/v2/buckets/{bucket.bucket_id}"
        return body | {
            "name": bucket.name,
            "retentionRules": [
                {
                    "type": "expire",
                    "everySeconds": bucket.retention_s,
                    "shardGroupDurationSeconds": bucket.shard_group_s,
                }
            ],
            "createdAt": self._created,
            "updatedAt": self._created,
            "links": {
                "labels": f"{base}/labels",
                "members": f"{base}/members",
                "org": f"/api/v2/orgs/{self.org_id}",
                "owners": f"{base}/owners",
                "self": base,
                "write": f"/api/v2/write?org={self.org_id}&bucket={bucket.bucket_id}",
            },
            "labels": [],
        }

    def _get_buckets(self, query: dict[str, str], grant: _Grant) -> web.Response:
        """BucketSvc.FindBuckets behind the authorizing middleware."""
        org_id = _valid_id(query["orgID"]) if query.get("orgID") else None
        bucket_id = _valid_id(query["id"]) if query.get("id") else None
        org, name = query.get("org") or None, query.get("name") or None
        found = self._find_buckets(bucket_id, org_id, org, name)
        params = {"id": bucket_id, "bucket": name, "orgID": org_id, "org": org}
        params |= {
            "descending": "false",
            "offset": "0",
            "limit": str(_DEFAULT_PAGE_SIZE),
        }
        self_link = "/api/v2/buckets?" + urlencode(
            sorted((k, v) for k, v in params.items() if v), quote_via=quote_plus
        )
        return _json_response(
            {
                "links": {"self": self_link},
                "buckets": [
                    self._bucket_json(b) for b in found if grant.can_read(b.name)
                ],
            }
        )

    def _find_buckets(
        self,
        bucket_id: str | None,
        org_id: str | None,
        org: str | None,
        name: str | None,
    ) -> list[_Bucket]:
        if bucket_id is not None:
            by_id = self._bucket_by_id(bucket_id)
            if by_id is None:
                raise _ApiError("not found", "bucket not found")
            return [by_id]
        if org_id is None and org is not None:
            self._check_org_name(org)
            org_id = self.org_id
        if org_id is not None and name is not None:
            if org_id != self.org_id:
                raise _ApiError("not found", f"bucket {_go_quote(name)} not found")
            return [self._bucket_by_name(name)]
        if org_id is not None:
            if org_id != self.org_id:
                return []
            # The org's name index keeps its buckets in name order.
            return sorted(self._buckets.values(), key=lambda b: b.name.encode())
        by_id_order = sorted(self._buckets.values(), key=lambda b: b.bucket_id)
        return [b for b in by_id_order if name is None or b.name == name]

    def _get_orgs(self, query: dict[str, str], grant: _Grant) -> web.Response:
        """OrgSvc.FindOrganizations behind the authorizing middleware."""
        name, org_id = query.get("org"), query.get("orgID", "")
        # A malformed orgID is ignored here, unlike in the write handler.
        if _is_id(org_id):
            self._check_org_id(org_id.lower())
        elif name:
            self._check_org_name(name)
        base = f"/api/v2/orgs/{self.org_id}"
        org = {
            "links": {
                "buckets": f"/api/v2/buckets?org={self.org}",
                "dashboards": f"/api/v2/dashboards?org={self.org}",
                "labels": f"{base}/labels",
                "logs": f"{base}/logs",
                "members": f"{base}/members",
                "owners": f"{base}/owners",
                "secrets": f"{base}/secrets",
                "self": base,
                "tasks": f"/api/v2/tasks?org={self.org}",
            },
            "id": self.org_id,
            "name": self.org,
            "description": "",
            "createdAt": self._created,
            "updatedAt": self._created,
        }
        orgs = [org] if grant.readable is None else []
        return _json_response({"links": {"self": "/api/v2/orgs"}, "orgs": orgs})
