"""Write a batch to InfluxDB in one request; set apart the points it refuses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
import time

from homeassistant.util import dt as dt_util

from ..const import LOGGER
from ..influxdb.client import InfluxClient
from ..influxdb.errors import InfluxError, InfluxWriteRejectedError
from .stats import PipelineStats

# How many distinct write errors the writer remembers, for the diagnostics.
RECENT_ERRORS = 20


@dataclass(slots=True)
class WriteError:
    """A distinct error a write met: its type and the server's message."""

    type: str
    message: str
    count: int
    first_seen: datetime
    last_seen: datetime


class PointWriter:
    """Writes a batch in one request; points the server refuses are set apart.

    A refused batch (malformed point, field type conflict) is split in halves until
    each refused point stands alone, so every other point of it is still written;
    where the server names the refused lines (InfluxDB 3), exactly those are set apart.
    Failures that are not about the points (connection, credentials, missing database)
    raise the client's InfluxError for the caller to keep the batch and retry.
    """

    def __init__(
        self,
        client: InfluxClient,
        stats: PipelineStats,
        on_refused: Callable[[list[str], str], Awaitable[None]],
    ) -> None:
        """Write through `client`; hand refused points and the server's reason on."""
        self._client = client
        self._stats = stats
        self._on_refused = on_refused
        # How long the last request that stored points took (s); None before it.
        self.last_latency: float | None = None
        # The last RECENT_ERRORS distinct errors, keyed by type and message, the
        # most recent last.
        self._errors: dict[tuple[str, str], WriteError] = {}

    @property
    def has_written(self) -> bool:
        """Whether InfluxDB has accepted points since the writer was made."""
        return self.last_latency is not None

    @property
    def recent_errors(self) -> list[WriteError]:
        """The last distinct errors writes met, the most recent first."""
        return list(reversed(self._errors.values()))

    async def server_answers(self) -> bool:
        """Whether InfluxDB answers a ping; nothing is written."""
        try:
            await self._client.ping()
        except InfluxError:
            return False
        return True

    async def write(self, lines: list[str]) -> None:
        """Write `lines`, isolating any the server refuses."""
        started = time.monotonic()
        body = "\n".join(lines).encode()
        try:
            await self._client.write(body)
        except InfluxError as err:
            self._remember(err)
            if not isinstance(err, InfluxWriteRejectedError):
                raise
            if err.refused:
                await self._set_apart(lines, err, started)
                return
            if len(lines) == 1:
                self._stats.points_refused += 1
                await self._on_refused(lines, str(err))
                return
            # Rewriting the points a partial write already stored is harmless:
            # InfluxDB keeps one point per series and timestamp.
            middle = len(lines) // 2
            await self.write(lines[:middle])
            await self.write(lines[middle:])
            return
        self._written(len(lines), len(body), started)

    async def _set_apart(
        self, lines: list[str], err: InfluxWriteRejectedError, started: float
    ) -> None:
        """Set apart exactly the lines the server named as refused.

        Each goes with its own message. The others were stored (InfluxDB 3's partial
        write), or, where the server refused the whole batch at the line it names,
        are written again.
        """
        reasons: dict[str, list[str]] = {}
        for index, reason in err.refused.items():
            reasons.setdefault(reason or str(err), []).append(lines[index])
        self._stats.points_refused += len(err.refused)
        for reason, refused in reasons.items():
            await self._on_refused(refused, reason)
        rest = [line for i, line in enumerate(lines) if i not in err.refused]
        if rest and err.others_stored:
            self._written(len(rest), len("\n".join(rest).encode()), started)
        elif rest:
            await self.write(rest)

    def _written(self, count: int, size: int, started: float) -> None:
        """Count `count` points of `size` bytes, stored by the request begun at `started`."""
        self.last_latency = latency = time.monotonic() - started
        self._stats.last_write = dt_util.utcnow()
        self._stats.points_written += count
        LOGGER.debug(
            "Wrote %d points (%d bytes) in %.0f ms", count, size, latency * 1000
        )

    def _remember(self, err: InfluxError) -> None:
        key = (type(err).__name__, str(err))
        now = dt_util.utcnow()
        if (seen := self._errors.pop(key, None)) is None:
            seen = WriteError(key[0], key[1], 0, now, now)
            if len(self._errors) >= RECENT_ERRORS:
                del self._errors[next(iter(self._errors))]
        seen.count += 1
        seen.last_seen = now
        self._errors[key] = seen
