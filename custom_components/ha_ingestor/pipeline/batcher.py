"""Collect lines in memory and hand them to the writer in batches, or to the spool.

While InfluxDB answers, the spool is replayed first (oldest first, original
timestamps), then memory is written. While it does not, memory is moved to the spool
every flush interval, so that a hard kill loses one interval of points at most, and the
next attempt waits out a backoff. While InfluxDB cannot be reached at all, it is pinged
every PROBE_INTERVAL, so the catch-up starts soon after it is back, however long the
backoff has grown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib

from homeassistant.core import callback

from ..const import LOGGER
from ..influxdb.errors import InfluxError, InfluxUnreachableError
from ..storage.spool import Spool, SpoolError
from .health import WriteHealth
from .stats import PipelineStats
from .writer import PointWriter

# Memory holds at most this many batches; beyond them, points go to the spool.
MEMORY_CAP_BATCHES = 10
# Seconds between pings while InfluxDB cannot be reached. A ping is cheap for the
# server, unlike the write the backoff holds back (up to 5 minutes).
PROBE_INTERVAL = 10.0


class Batcher:
    """A batch goes out when it is full or when the flush interval has passed."""

    def __init__(
        self,
        writer: PointWriter,
        spool: Spool,
        stats: PipelineStats,
        batch_size: int,
        flush_interval: float,
        *,
        on_failure: Callable[[InfluxError], None],
        on_recovery: Callable[[], None],
    ) -> None:
        """Batch for `writer`, keeping in `spool` what cannot be written now."""
        self._writer = writer
        self._spool = spool
        self._stats = stats
        self._batch_size = batch_size
        self.memory_cap = batch_size * MEMORY_CAP_BATCHES
        self._flush_interval = flush_interval
        self._on_failure = on_failure
        self._on_recovery = on_recovery
        self._lines: list[str] = []
        # Lines taken out of memory for a write or a spill that has not ended yet.
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self.health = WriteHealth()
        # Event-loop time of the next ping, while InfluxDB cannot be reached.
        self._probe_at = 0.0
        self._spool_failed = False
        self._spool_dropping = False

    @property
    def pending(self) -> int:
        """Lines waiting in memory to be written or spooled."""
        return len(self._lines)

    @property
    def in_flight(self) -> int:
        """Lines taken from memory by a write or a spill that has not ended yet."""
        return self._in_flight

    @callback
    def add(self, line: str) -> None:
        """Queue one line; called in the event loop for every state change."""
        lines = self._lines
        lines.append(line)
        if len(lines) in (self._batch_size, self.memory_cap):
            self._wake.set()

    async def run(self) -> None:
        """Flush whenever a batch is full or the interval has passed, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            await self.flush()

    async def flush(self, *, force: bool = False) -> InfluxError | None:
        """Write the spool, then memory; while InfluxDB is unavailable, spool memory.

        A batch that fails (server down, credentials, missing database) stays where it
        was, and what is in memory goes to the spool; the next attempt waits out a
        backoff, unless `force`d. Rewriting a point InfluxDB may already hold is
        harmless: it stores one point per series and timestamp.

        Returns the error this attempt met; None if it succeeded or was not made.
        """
        async with self._flush_lock:
            self._wake.clear()
            loop = asyncio.get_running_loop()
            retry_at = self.health.retry_at
            if not force and retry_at is not None and loop.time() < retry_at:
                await self._spill()
                if not await self._back_before_retry(loop.time()):
                    return None
            try:
                await self._write_spool()
                await self._write_memory()
            except InfluxError as err:
                self._failed(err, loop.time())
                await self._spill()
                return err
            if self.health.succeeded():
                LOGGER.info("Writing to InfluxDB works again")
                self._on_recovery()
            return None

    async def _back_before_retry(self, now: float) -> bool:
        """Whether an InfluxDB that could not be reached answers a ping again.

        Only for unreachable servers: one that answered with an error (credentials,
        database, overload) answers pings all along.
        """
        if not isinstance(self.health.last_error, InfluxUnreachableError) or (
            now < self._probe_at
        ):
            return False
        self._probe_at = now + PROBE_INTERVAL
        return await self._writer.server_answers()

    async def drain(self) -> None:
        """Leave nothing in memory: write it if InfluxDB works, else spool it.

        For unload and stop, once the flush loop has ended. Memory is written only
        when nothing older waits in the spool; that replays on the next start.
        """
        async with self._flush_lock:
            if not self.health.failing and not self._spool.count:
                with contextlib.suppress(InfluxError):
                    await self._write_memory()
            await self._spill()

    async def _write_spool(self) -> None:
        while self._spool.count:
            # A long backlog takes a while to replay: meanwhile memory stays bounded.
            if len(self._lines) >= self.memory_cap:
                await self._spill()
            try:
                points = await self._spool.oldest(self._batch_size)
            except SpoolError as err:
                self._log_spool_error(err)
                return
            if not points:
                return
            await self._writer.write([line for _, line in points])
            try:
                await self._spool.remove_through(points[-1][0])
            except SpoolError as err:
                # Those points will be written again, which is harmless.
                self._log_spool_error(err)
                return

    async def _write_memory(self) -> None:
        while self._lines:
            batch = self._lines[: self._batch_size]
            del self._lines[: self._batch_size]
            self._in_flight = len(batch)
            try:
                await self._writer.write(batch)
            except BaseException:
                self._lines[:0] = batch
                raise
            finally:
                self._in_flight = 0

    async def _spill(self) -> None:
        """Move memory to the spool; if the spool cannot take it, keep it in memory."""
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        self._in_flight = len(lines)
        try:
            # Runs to its end even when flush is cancelled: the lines are stored.
            dropped = await self._spool.append(lines)
        except SpoolError as err:
            self._lines[:0] = lines
            self._log_spool_error(err)
            return
        finally:
            self._in_flight = 0
        self._spool_failed = False
        self._stats.points_dropped_spool_full += dropped
        if dropped and not self._spool_dropping:
            LOGGER.warning(
                "The spool is full (%d MB): the oldest points waiting are dropped to "
                "make room for new ones",
                self._spool.max_bytes >> 20,
            )
        self._spool_dropping = bool(dropped)

    def _failed(self, err: InfluxError, now: float) -> None:
        if self.health.failed(err, now):
            LOGGER.warning(
                "Writing to InfluxDB failed, points wait in the spool until it "
                "works again: %s",
                err,
            )
        self._probe_at = now + PROBE_INTERVAL
        self._on_failure(err)

    def _log_spool_error(self, err: SpoolError) -> None:
        if not self._spool_failed:
            self._spool_failed = True
            LOGGER.error("The spool cannot be used, points wait in memory: %s", err)
