"""Whether writes work, and when to try again after they failed.

The batcher reports every attempt here; the connectivity entity, the repair issues and
the diagnostics read it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
import random
from typing import Final, NamedTuple

from homeassistant.util import dt as dt_util

from ..influxdb.errors import InfluxError

# First and longest wait between two attempts while InfluxDB is unavailable.
FIRST_BACKOFF: Final = 1.0
MAX_BACKOFF: Final = 300.0


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


class WriteHealth:
    """Since when writes fail, with which error, and when the next attempt is due."""

    def __init__(self) -> None:
        """Start healthy: no write has failed yet."""
        self._backoff = Backoff()
        self.failing_since: datetime | None = None
        self.last_error: InfluxError | None = None
        # Event-loop time of the next attempt; None while writes succeed.
        self.retry_at: float | None = None
        # Points moved to the spool since writes fail.
        self.spooled = 0

    @property
    def failing(self) -> bool:
        """Whether the last write failed (and nothing has been written since)."""
        return self.retry_at is not None

    def failed(self, err: InfluxError, now: float) -> bool:
        """Note a failed attempt at event-loop time `now`; return whether it is the first."""
        first = self.retry_at is None
        if first:
            self.failing_since = dt_util.utcnow()
        self.last_error = err
        self.retry_at = now + self._backoff.next_delay(err.retry_after)
        return first

    def succeeded(self) -> Outage | None:
        """Note a successful write; return the outage it ends, if writes were failing."""
        if self.retry_at is None:
            return None
        outage = Outage(
            dt_util.utcnow() - (self.failing_since or dt_util.utcnow()), self.spooled
        )
        self.retry_at = None
        self.failing_since = None
        self.last_error = None
        self.spooled = 0
        self._backoff.reset()
        return outage


class Outage(NamedTuple):
    """How long writes failed, and how many points went to the spool meanwhile."""

    lasted: timedelta
    spooled: int
