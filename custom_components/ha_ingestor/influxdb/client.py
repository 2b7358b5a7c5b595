"""What every InfluxDB API version shares: requests, answers read as errors, gzip."""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
import gzip
from http import HTTPStatus
import json
import re
import ssl
from typing import Any

import aiohttp
from aiohttp import hdrs
from yarl import URL

from ..const import REQUEST_TIMEOUT
from .errors import (
    InfluxAuthError,
    InfluxConnectionError,
    InfluxForbiddenError,
    InfluxNotFoundError,
    InfluxRequestError,
    InfluxSSLError,
    InfluxUnreachableError,
    InfluxUnsendableTokenError,
    InfluxWriteRejectedError,
)

# What a server answers an empty write once every check a real write makes has passed
# (nothing is stored): InfluxDB 2.x "writing requires points" (http/points), InfluxDB 3
# "incoming write was empty" (influxdb3_write WriteBufferError::EmptyWrite; its 2.x
# endpoint prefixes "write buffer error: "). InfluxDB 1.x and VictoriaMetrics answer 204.
_EMPTY_WRITE_ANSWERS = ("writing requires points", "incoming write was empty")

# The control characters HTTP forbids in a header's value (RFC 9110 section 5.5), which
# aiohttp refuses to send.
_NOT_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the server says about itself in its ping headers.

    `database_exists` is InfluxDB 3's: whether the database exists already (False: the
    first write creates it); None where the server does not say.
    """

    version: str
    build: str
    database_exists: bool | None = None


def _decode_error(body: str) -> tuple[str, object]:
    """Read an error's message and its `data` (InfluxDB 3's refused lines), if any.

    Every API version answers errors as JSON with `error` (1.x, 3.x) or `message`
    (2.x); some 3.x errors are plain text.
    """
    try:
        decoded = json.loads(body)
    except ValueError:
        return body.strip(), None
    if isinstance(decoded, dict):
        message = decoded.get("error") or decoded.get("message") or body
        return str(message).strip(), decoded.get("data")
    return body.strip(), None


def _refused_lines(data: object, line_count: int) -> tuple[dict[int, str], bool]:
    """Read which lines an InfluxDB 3 error names, and whether the rest was stored.

    A partial write lists every refused line and stores the others; a batch refused
    whole names the line the server stopped at, as one object (docs.influxdata.com
    /influxdb3/core/write-data/http-api/v3-write-lp/#partial-writes). The lines are
    taken by number (1-based) and returned by index in the body; `original_line` is
    cut to 20 bytes (influxdb3_types WriteLineError), so it cannot name a line.
    """
    entries = data if isinstance(data, list) else [data]
    refused = {
        entry["line_number"] - 1: str(entry.get("error_message", "")).strip()
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("line_number"), int)
        and 1 <= entry["line_number"] <= line_count
    }
    return refused, isinstance(data, list)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds; InfluxDB sends seconds, never an HTTP date."""
    try:
        return max(0.0, float(headers["Retry-After"]))
    except KeyError, ValueError:
        return None


class InfluxClient(ABC):
    """Writes line protocol to one database or bucket."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        write_path: str,
        write_query: Mapping[str, str],
        headers: Mapping[str, str],
        *,
        gzip: bool = False,
    ) -> None:
        """Use HA's shared session; never one of our own. `gzip` compresses writes."""
        self._session = session
        self._base_url = url
        self._write_url = self._endpoint(write_path).with_query(write_query)
        self._headers = headers
        # Only a token can hold one (1.x's credentials are sent base64-encoded).
        self._token_unsendable = any(
            _NOT_IN_HEADERS.search(value) for value in headers.values()
        )
        # Built once, not per write; None while writes go uncompressed.
        self._gzip_headers: Mapping[str, str] | None = (
            {**headers, hdrs.CONTENT_ENCODING: "gzip"} if gzip else None
        )
        self._timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        # Per request: the shared session's own TLS settings unless `trust` says.
        self._request_options: dict[str, Any] = {}

    def trust(self, context: ssl.SSLContext) -> None:
        """Check the server's certificate against `context`'s authorities only."""
        self._request_options = {"ssl": context}

    def _endpoint(self, path: str) -> URL:
        # Keep a path prefix (InfluxDB behind a reverse proxy at /influx).
        return self._base_url.with_path(self._base_url.path.rstrip("/") + path)

    @abstractmethod
    def _not_found(self, message: str) -> InfluxNotFoundError:
        """Name the configured thing a 404 (or 1.x's missing retention policy) refers to."""

    async def _request(
        self,
        method: str,
        url: URL,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], str]:
        if self._token_unsendable:
            # Refused as credentials are: the user is asked for the token again.
            raise InfluxUnsendableTokenError(
                "The token holds a line break or another control character, "
                "which HTTP cannot send"
            )
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=self._headers if headers is None else headers,
                timeout=self._timeout,
                **self._request_options,
            ) as response:
                # An error page (a proxy's, say) may not be in the charset it names,
                # or in UTF-8 where it names none.
                text = await response.text(errors="replace")
                return response.status, response.headers, text
        except aiohttp.ClientSSLError as err:
            raise InfluxSSLError(str(err)) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise InfluxUnreachableError(str(err) or type(err).__name__) from err
        except Exception as err:
            # aiohttp may refuse a request in any way (its session closed under
            # it, say): a failed write like any other, whose points wait in the
            # spool, not an end to the delivery.
            raise InfluxRequestError(
                f"The request could not be made: {type(err).__name__}: {err}"
            ) from err

    async def ping(self) -> ServerInfo:
        """Return the server's version; raise InfluxConnectionError if it is no InfluxDB.

        A 401 is let through, version header or not: InfluxDB 3 guards /ping too and
        its 401 names no version; the write that follows says whether the credentials
        are wrong. Where /ping is not served (VictoriaMetrics cluster's insert path
        /insert/<tenant>/influx serves only write, query and health), /health answers.
        """
        status, headers, _ = await self._request("GET", self._endpoint("/ping"))
        version = headers.get("X-Influxdb-Version")
        if status in (HTTPStatus.NO_CONTENT, HTTPStatus.UNAUTHORIZED) or (
            status == HTTPStatus.OK and version
        ):
            return ServerInfo(
                version=version or "unknown", build=headers.get("X-Influxdb-Build", "")
            )
        return await self._health()

    async def _health(self) -> ServerInfo:
        """InfluxDB 1.8+ and 2.x's /health, which VictoriaMetrics imitates.

        `{"name": "influxdb", "status": "pass", ...}`, with the version where the
        server has one (docs.victoriametrics.com/victoriametrics/integrations/influxdb/,
        lib/influxutil WriteHealthCheckResponse).
        """
        status, headers, text = await self._request("GET", self._endpoint("/health"))
        try:
            health = json.loads(text) if status == HTTPStatus.OK else None
        except ValueError:
            health = None
        if not (
            isinstance(health, dict)
            and health.get("name") == "influxdb"
            and health.get("status") == "pass"
        ):
            raise InfluxConnectionError(
                f"{self._base_url} did not answer like InfluxDB (HTTP {status})"
            )
        return ServerInfo(
            version=str(
                health.get("version") or headers.get("X-Influxdb-Version") or "unknown"
            ),
            build=headers.get("X-Influxdb-Build", ""),
        )

    async def write(self, body: bytes) -> None:
        """Write line protocol, raising the InfluxError that says what went wrong."""
        request_headers, sent = self._headers, body
        # An empty body (validation) stays as it is: there is nothing to save.
        if self._gzip_headers is not None and body:
            # In the executor, so the event loop never waits on it (zlib releases the
            # GIL); level 1 is fast and still shrinks line protocol several times.
            sent = await asyncio.get_running_loop().run_in_executor(
                None, partial(gzip.compress, body, compresslevel=1, mtime=0)
            )
            request_headers = self._gzip_headers
        status, headers, text = await self._request(
            "POST", self._write_url, sent, request_headers
        )
        if status == HTTPStatus.NO_CONTENT:
            return
        message, data = _decode_error(text)
        self._raise_for_write(status, headers, message)
        # What is left is about the points (400, 413, 422): InfluxDB 3 names the lines.
        refused, others_stored = _refused_lines(data, body.count(b"\n") + 1)
        raise InfluxWriteRejectedError(message, refused, others_stored=others_stored)

    def _raise_for_write(
        self, status: int, headers: Mapping[str, str], message: str
    ) -> None:
        """Raise what a failed write means unless it is about the points themselves.

        A 413 (batch too large) is about the points too: the writer splits the batch.
        """
        if status == HTTPStatus.UNAUTHORIZED:
            raise InfluxAuthError(message)
        if status == HTTPStatus.FORBIDDEN:
            raise InfluxForbiddenError(message)
        if status == HTTPStatus.NOT_FOUND:
            raise self._not_found(message)
        if (
            status == HTTPStatus.TOO_MANY_REQUESTS
            or status >= HTTPStatus.INTERNAL_SERVER_ERROR
        ):
            if "retention policy not found" in message:
                raise self._not_found(message)
            raise InfluxConnectionError(
                f"HTTP {status}: {message}", _retry_after(headers)
            )

    async def validate(self) -> ServerInfo:
        """Check reachability, credentials, database/bucket and write permission."""
        info = await self.ping()
        await self._validate_write()
        return info

    async def _validate_write(self) -> None:
        # An empty write goes through every check a real write does and stores nothing.
        try:
            await self.write(b"")
        except InfluxWriteRejectedError as err:
            if not any(answer in str(err) for answer in _EMPTY_WRITE_ANSWERS):
                raise
