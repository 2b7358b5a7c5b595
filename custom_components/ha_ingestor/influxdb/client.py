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

import aiohttp
from aiohttp import hdrs
from yarl import URL

from ..const import REQUEST_TIMEOUT
from .errors import (
    InfluxAuthError,
    InfluxConnectionError,
    InfluxForbiddenError,
    InfluxNotFoundError,
    InfluxSSLError,
    InfluxUnreachableError,
    InfluxWriteRejectedError,
)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the server says about itself in its ping headers."""

    version: str
    build: str


def _error_message(body: str) -> str:
    """Both API versions answer errors as JSON with `error` (1.x) or `message` (2.x)."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return body.strip()
    if isinstance(decoded, dict):
        return str(decoded.get("error") or decoded.get("message") or body).strip()
    return body.strip()


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
        # Built once, not per write; None while writes go uncompressed.
        self._gzip_headers: Mapping[str, str] | None = (
            {**headers, hdrs.CONTENT_ENCODING: "gzip"} if gzip else None
        )
        self._timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

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
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=self._headers if headers is None else headers,
                timeout=self._timeout,
            ) as response:
                return response.status, response.headers, await response.text()
        except aiohttp.ClientSSLError as err:
            raise InfluxSSLError(str(err)) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise InfluxUnreachableError(str(err) or type(err).__name__) from err

    async def ping(self) -> ServerInfo:
        """Return the server's version; raise InfluxConnectionError if it is no InfluxDB.

        A 401 is let through: servers that guard /ping too (InfluxDB 3) say more about
        the credentials when written to.
        """
        status, headers, _ = await self._request("GET", self._endpoint("/ping"))
        version = headers.get("X-Influxdb-Version")
        if not (
            status == HTTPStatus.NO_CONTENT
            or (status in (HTTPStatus.OK, HTTPStatus.UNAUTHORIZED) and version)
        ):
            raise InfluxConnectionError(
                f"{self._base_url} did not answer like InfluxDB (HTTP {status})"
            )
        return ServerInfo(
            version=version or "unknown", build=headers.get("X-Influxdb-Build", "")
        )

    async def write(self, body: bytes) -> None:
        """Write line protocol, raising the InfluxError that says what went wrong."""
        request_headers = self._headers
        # An empty body (validation) stays as it is: there is nothing to save.
        if self._gzip_headers is not None and body:
            # In the executor, so the event loop never waits on it (zlib releases the
            # GIL); level 1 is fast and still shrinks line protocol several times.
            body = await asyncio.get_running_loop().run_in_executor(
                None, partial(gzip.compress, body, compresslevel=1, mtime=0)
            )
            request_headers = self._gzip_headers
        status, headers, text = await self._request(
            "POST", self._write_url, body, request_headers
        )
        if status == HTTPStatus.NO_CONTENT:
            return
        self._raise_for_write(status, headers, _error_message(text))

    def _raise_for_write(
        self, status: int, headers: Mapping[str, str], message: str
    ) -> None:
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
        raise InfluxWriteRejectedError(message)

    async def validate(self) -> ServerInfo:
        """Check reachability, credentials, database/bucket and write permission."""
        info = await self.ping()
        await self._validate_write()
        return info

    async def _validate_write(self) -> None:
        # An empty write goes through every check a real write does and stores nothing.
        await self.write(b"")
