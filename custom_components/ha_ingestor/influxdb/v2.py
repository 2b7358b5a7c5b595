"""InfluxDB 2.x and Cloud: `/api/v2/write` with a token, an organization and a bucket."""

from __future__ import annotations

import aiohttp
from yarl import URL

from ..const import CONF_BUCKET, CONF_ORGANIZATION
from .client import InfluxClient
from .errors import InfluxNotFoundError


class InfluxV2Client(InfluxClient):
    """InfluxDB 2.x and Cloud (and 3.x's v2 endpoint): /api/v2/write with a token.

    The organization may be given by name or by ID: the server reads `org` as an ID
    when it is one (docs.influxdata.com/influxdb/v2/api/#operation/PostWrite, `org`).
    A partial write answers 422 and keeps the other points, a malformed batch 400 and
    keeps none; the client raises InfluxWriteRejectedError for both and the writer
    isolates the refused points.
    """

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
