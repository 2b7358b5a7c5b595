"""InfluxDB 2.x and Cloud: `/api/v2/write` with a token, an organization and a bucket."""

from __future__ import annotations

import aiohttp
from yarl import URL

from ..const import CONF_BUCKET, CONF_ORGANIZATION
from .client import InfluxClient
from .errors import InfluxNotFoundError, InfluxWriteRejectedError


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
