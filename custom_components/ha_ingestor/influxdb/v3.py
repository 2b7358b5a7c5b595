"""InfluxDB 3 Core and Enterprise: `/api/v3/write_lp` with a database and a token.

As InfluxDB 3 Core's API documents it (docs.influxdata.com/influxdb3/core/api/, the
OpenAPI file api-docs/influxdb3/core/influxdb3-core-openapi.yaml): a write answers 204;
with `accept_partial=true` a batch with refused lines answers 400 listing each refused
line by number and stores every other line, so the writer sets the refused lines apart
in one round trip. `/ping` names the product and version in its headers and, like every
endpoint, needs the token where authentication is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
import json

import aiohttp
from yarl import URL

from ..const import CONF_DATABASE
from .client import InfluxClient, ServerInfo
from .errors import (
    InfluxAuthError,
    InfluxInvalidNameError,
    InfluxNotFoundError,
    InfluxWrongVersionError,
)

# The texts InfluxDB 3 answers a database name it refuses with (influxdb3_server
# http.rs ValidateDbNameError).
_INVALID_NAME_TEXTS = ("database or rp name", "db name")


class InfluxV3Client(InfluxClient):
    """InfluxDB 3: /api/v3/write_lp with a database and an optional Bearer token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        *,
        database: str,
        token: str = "",
        no_sync: bool = False,
        gzip: bool = False,
    ) -> None:
        """Write to `database`, with `token` unless the server runs without auth.

        `no_sync` has the server answer before its write-ahead log is persisted:
        faster, and a crash of the server loses what it acknowledged in the last
        second or so.
        """
        query = {"db": database, "precision": "microsecond", "accept_partial": "true"}
        if no_sync:
            query["no_sync"] = "true"
        headers: dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(session, url, "/api/v3/write_lp", query, headers, gzip=gzip)
        self._database = database

    def _not_found(self, message: str) -> InfluxNotFoundError:
        # A missing database, where the server does not create it on write.
        return InfluxNotFoundError(CONF_DATABASE, message)

    def _raise_for_write(
        self, status: int, headers: Mapping[str, str], message: str
    ) -> None:
        if status == HTTPStatus.BAD_REQUEST and any(
            text in message for text in _INVALID_NAME_TEXTS
        ):
            raise InfluxInvalidNameError(CONF_DATABASE, message)
        super()._raise_for_write(status, headers, message)

    async def validate(self) -> ServerInfo:
        """Check server, token and database without writing a point.

        /ping with the token: InfluxDB 3 names itself, or answers 401 to a wrong or
        missing token. The empty write then goes through every check a write makes
        (token, permission, the database's name). Listing the databases says whether
        the database exists or the first write creates it; a token that may not list
        them (an Enterprise database token) leaves that unsaid.
        """
        status, headers, text = await self._request("GET", self._endpoint("/ping"))
        if status == HTTPStatus.UNAUTHORIZED:
            raise InfluxAuthError(text.strip() or "the server requires a valid token")
        version = headers.get("X-Influxdb-Version", "")
        # 1.x answers 204 (as VictoriaMetrics does), 2.x 204 with its version.
        if status == HTTPStatus.NO_CONTENT or (
            status == HTTPStatus.OK
            and version
            and not version.removeprefix("v").startswith("3")
        ):
            raise InfluxWrongVersionError(
                f"{self._base_url} answers as InfluxDB {version or '1.x'}, not 3"
            )
        if status != HTTPStatus.OK or not version:
            # No /ping here: VictoriaMetrics cluster's insert path serves /health only,
            # as InfluxDB 1.x and 2.x answer it; a server that does not is no InfluxDB
            # (_health raises InfluxConnectionError).
            other = await self._health()
            raise InfluxWrongVersionError(
                f"{self._base_url} answers as InfluxDB {other.version}, not 3"
            )
        await self._validate_write()
        return ServerInfo(
            version=version,
            build=headers.get("X-Influxdb-Build", ""),
            database_exists=await self._database_exists(),
        )

    async def _database_exists(self) -> bool | None:
        """Whether the database is listed; None if the server does not list them."""
        status, _, text = await self._request(
            "GET",
            self._endpoint("/api/v3/configure/database").with_query(format="json"),
        )
        if status != HTTPStatus.OK:
            return None
        try:
            listed = json.loads(text)
        except ValueError:
            return None
        if not isinstance(listed, list):
            return None
        return any(
            isinstance(row, dict) and row.get("iox::database") == self._database
            for row in listed
        )
