"""InfluxDB HTTP API, 1.x and 2.x, over Home Assistant's shared aiohttp session."""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
import gzip
from http import HTTPStatus
import json
from typing import Any

import aiohttp
from aiohttp import hdrs
from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from yarl import URL

from .const import (
    API_V2,
    CONF_API_VERSION,
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_ORGANIZATION,
    CONF_RETENTION_POLICY,
    REQUEST_TIMEOUT,
)


class InfluxError(Exception):
    """The server could not be used; the message is the server's own when it gave one.

    `reason` is the translation key that tells the user what went wrong;
    `retry_after` the wait in seconds the server asked for before a retry, if any.
    """

    reason = "unknown"
    retry_after: float | None = None


class InfluxConnectionError(InfluxError):
    """Unreachable, timed out, or temporarily unable to answer (5xx, 429): worth retrying."""

    reason = "cannot_connect"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Keep the server's requested wait next to the message."""
        super().__init__(message)
        self.retry_after = retry_after


class InfluxUnreachableError(InfluxConnectionError):
    """No answer at all: connection refused or reset, timed out, name not resolved."""


class InfluxSSLError(InfluxConnectionError):
    """The TLS handshake or the server's certificate was rejected."""

    reason = "ssl_error"


class InfluxAuthError(InfluxError):
    """Credentials were rejected (401)."""

    reason = "invalid_auth"


class InfluxForbiddenError(InfluxAuthError):
    """Credentials were accepted but may not write to the database or bucket (403)."""

    reason = "write_forbidden"


class InfluxNotFoundError(InfluxError):
    """The database, retention policy, organization or bucket does not exist."""

    def __init__(self, missing: str, message: str) -> None:
        """Remember which configured name is missing: a config key such as `bucket`."""
        super().__init__(message)
        self.missing = missing
        self.reason = f"{missing}_not_found"


class InfluxWriteRejectedError(InfluxError):
    """The server refused the points themselves (malformed, field type conflict)."""

    reason = "write_rejected"


class InvalidURLError(ValueError):
    """The URL is not an http(s) URL with a host."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the server says about itself in its ping headers."""

    version: str
    build: str


def parse_url(url: str) -> URL:
    """Return the server's base URL, or raise InvalidURLError."""
    try:
        parsed = URL(url.strip())
    except ValueError as err:
        raise InvalidURLError(url) from err
    # Credentials belong in their own fields: in the URL they would be stored in
    # clear text and clash with the Authorization header.
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.host
        or parsed.user is not None
        or parsed.password is not None
    ):
        raise InvalidURLError(url)
    return parsed.with_query(None).with_fragment(None)


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


class InfluxV1Client(InfluxClient):
    """InfluxDB 1.x: /write with database, retention policy and basic auth."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        *,
        database: str,
        retention_policy: str = "",
        username: str = "",
        password: str = "",
        gzip: bool = False,
    ) -> None:
        """Write to `database`, optionally into a retention policy, optionally as a user."""
        query = {"db": database, "precision": "u"}
        if retention_policy:
            query["rp"] = retention_policy
        headers = {}
        if username or password:
            # (aiohttp.encode_basic_auth is from aiohttp 3.14, Home Assistant 2026.7.)
            credentials = f"{username}:{password}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(credentials).decode()}"
        super().__init__(session, url, "/write", query, headers, gzip=gzip)

    def _not_found(self, message: str) -> InfluxNotFoundError:
        if "retention policy" in message:
            return InfluxNotFoundError(CONF_RETENTION_POLICY, message)
        return InfluxNotFoundError(CONF_DATABASE, message)


class InfluxV2Client(InfluxClient):
    """InfluxDB 2.x (and 3.x's v2 endpoint): /api/v2/write with a token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        *,
        token: str,
        organization: str,
        bucket: str,
        gzip: bool = False,
    ) -> None:
        """Write to `bucket` of `organization` with an API token."""
        super().__init__(
            session,
            url,
            "/api/v2/write",
            {"org": organization, "bucket": bucket, "precision": "us"},
            {"Authorization": f"Token {token}"},
            gzip=gzip,
        )

    def _not_found(self, message: str) -> InfluxNotFoundError:
        if "organization" in message:
            return InfluxNotFoundError(CONF_ORGANIZATION, message)
        return InfluxNotFoundError(CONF_BUCKET, message)

    async def _validate_write(self) -> None:
        # 2.x checks token, organization, bucket and permission before it answers an
        # empty body with 400 "writing requires points": that answer means all passed.
        try:
            await self.write(b"")
        except InfluxWriteRejectedError as err:
            if "requires points" not in str(err):
                raise


def create_client(
    hass: HomeAssistant, data: Mapping[str, Any], *, gzip: bool = False
) -> InfluxClient:
    """Build the client a config entry's data describes; `gzip` compresses writes."""
    session = async_get_clientsession(hass, verify_ssl=data[CONF_VERIFY_SSL])
    url = parse_url(data[CONF_URL])
    if data[CONF_API_VERSION] == API_V2:
        return InfluxV2Client(
            session,
            url,
            token=data[CONF_TOKEN],
            organization=data[CONF_ORGANIZATION],
            bucket=data[CONF_BUCKET],
            gzip=gzip,
        )
    return InfluxV1Client(
        session,
        url,
        database=data[CONF_DATABASE],
        retention_policy=data.get(CONF_RETENTION_POLICY) or "",
        username=data.get(CONF_USERNAME) or "",
        password=data.get(CONF_PASSWORD) or "",
        gzip=gzip,
    )
