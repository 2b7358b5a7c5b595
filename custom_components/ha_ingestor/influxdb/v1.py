"""InfluxDB 1.x: `/write` with a database, a retention policy and basic auth."""

from __future__ import annotations

import base64

import aiohttp
from yarl import URL

from ..const import CONF_DATABASE, CONF_RETENTION_POLICY
from .client import InfluxClient
from .errors import InfluxNotFoundError


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
