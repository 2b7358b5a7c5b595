"""Write batches of lines to InfluxDB and count what was written."""

from __future__ import annotations

from .influx_client import InfluxClient


class PointWriter:
    """Sends one batch per request; raises the client's InfluxError when it fails."""

    def __init__(self, client: InfluxClient) -> None:
        """Write through `client`."""
        self._client = client
        self.points_written = 0

    async def write(self, lines: list[str]) -> None:
        """Write `lines` in one request."""
        await self._client.write("\n".join(lines).encode())
        self.points_written += len(lines)
