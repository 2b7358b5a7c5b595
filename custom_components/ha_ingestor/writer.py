"""Write batches of lines to InfluxDB: isolate refused points, back off when it fails."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import random

from .influx_client import InfluxClient, InfluxWriteRejectedError

# First and longest wait between two attempts while InfluxDB is unavailable.
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0


class Backoff:
    """Exponential waits with jitter, capped; a server's Retry-After is honoured."""

    def __init__(self, rng: Callable[[], float] = random.random) -> None:
        """Double the wait per failure; `rng` draws the jitter (fixed in tests)."""
        self._rng = rng
        self._failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count one more failure and return the wait before the next attempt."""
        ceiling = min(MAX_BACKOFF, FIRST_BACKOFF * 2.0**self._failures)
        self._failures += 1
        # Half fixed, half random: spread out retries of many homes without ever
        # retrying at once.
        delay = ceiling / 2 + self._rng() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_BACKOFF))
        return delay

    def reset(self) -> None:
        """Start from the first wait again: a write succeeded."""
        self._failures = 0


class PointWriter:
    """Writes a batch in one request; points the server refuses are set apart.

    A refused batch (malformed point, field type conflict) is split in halves until
    each refused point stands alone, so every other point of it is still written.
    Failures that are not about the points (connection, credentials, missing database)
    raise the client's InfluxError for the caller to keep the batch and retry.
    """

    def __init__(
        self,
        client: InfluxClient,
        on_refused: Callable[[list[str], str], Awaitable[None]],
    ) -> None:
        """Write through `client`; hand refused points and the server's reason on."""
        self._client = client
        self._on_refused = on_refused
        self.points_written = 0
        self.points_refused = 0

    async def write(self, lines: list[str]) -> None:
        """Write `lines`, isolating any the server refuses."""
        try:
            await self._client.write("\n".join(lines).encode())
        except InfluxWriteRejectedError as err:
            if len(lines) == 1:
                self.points_refused += 1
                await self._on_refused(lines, str(err))
                return
            # Rewriting the points a partial write already stored is harmless:
            # InfluxDB keeps one point per series and timestamp.
            middle = len(lines) // 2
            await self.write(lines[:middle])
            await self.write(lines[middle:])
            return
        self.points_written += len(lines)
