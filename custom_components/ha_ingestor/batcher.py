"""Collect lines in memory and hand them to the writer in batches."""

from __future__ import annotations

import asyncio
import contextlib

from homeassistant.core import callback

from .const import LOGGER
from .influx_client import InfluxError
from .writer import Backoff, PointWriter


class Batcher:
    """A batch goes out when it is full or when the flush interval has passed."""

    def __init__(
        self, writer: PointWriter, batch_size: int, flush_interval: float
    ) -> None:
        """Batch for `writer`."""
        self._writer = writer
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._lines: list[str] = []
        self._batch_full = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._backoff = Backoff()
        # Seconds to wait before the next attempt; None while writes succeed.
        self._retry_delay: float | None = None

    @property
    def pending(self) -> int:
        """Lines waiting in memory."""
        return len(self._lines)

    @callback
    def add(self, line: str) -> None:
        """Queue one line; called in the event loop for every state change."""
        self._lines.append(line)
        if len(self._lines) == self._batch_size:
            self._batch_full.set()

    async def run(self) -> None:
        """Flush whenever a batch is full or the interval has passed, until cancelled.

        After a failed write, wait out the backoff instead: a full batch must not
        hammer a server that is down.
        """
        while True:
            if self._retry_delay is not None:
                await asyncio.sleep(self._retry_delay)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._batch_full.wait()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued, one batch per request.

        A batch that fails (server down, credentials, missing database) goes back to
        the front of the queue for the next attempt, after a backoff, and so does one
        whose write was cancelled: rewriting a point InfluxDB may already hold is
        harmless, since it stores one point per series and timestamp.
        """
        async with self._flush_lock:
            self._batch_full.clear()
            while self._lines:
                batch = self._lines[: self._batch_size]
                del self._lines[: self._batch_size]
                try:
                    await self._writer.write(batch)
                except InfluxError as err:
                    self._lines[:0] = batch
                    if self._retry_delay is None:
                        LOGGER.warning(
                            "Writing to InfluxDB failed, %d points wait in memory: %s",
                            len(self._lines),
                            err,
                        )
                    self._retry_delay = self._backoff.next_delay(err.retry_after)
                    return
                except asyncio.CancelledError:
                    self._lines[:0] = batch
                    raise
                if self._retry_delay is not None:
                    LOGGER.info("Writing to InfluxDB works again")
                    self._retry_delay = None
                    self._backoff.reset()
