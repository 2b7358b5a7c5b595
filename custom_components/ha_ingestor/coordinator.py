"""The pipeline's counters: kept across restarts, read on a timer, never per change.

The pipeline counts in plain integers as points go through it (the hot path does
nothing else for the entities). The coordinator reads those integers every
UPDATE_INTERVAL, and at once when a write fails or works again, and hands the
entities one snapshot; nothing here does I/O. The totals of earlier runs are kept in
`.storage` (PipelineCounters), saved when the pipeline stops and every SAVE_INTERVAL,
so the counters a user graphs do not fall back to zero at each restart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
import time
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER

if TYPE_CHECKING:
    from .ingestor import Ingestor
    from .models import HaIngestorConfigEntry

UPDATE_INTERVAL: Final = timedelta(seconds=15)
SAVE_INTERVAL: Final = timedelta(minutes=5)
# Events per minute: counted over the last minute of snapshots.
RATE_WINDOW: Final = 60.0

_STORAGE_VERSION = 1

# The counters kept across restarts, as stored.
_RECEIVED = "state_changes_received"
_WRITTEN = "points_written"
_NON_FINITE = "dropped_non_finite"
_REFUSED = "dropped_quarantined"
_SPOOL_FULL = "dropped_spool_full"
_ACKNOWLEDGED = "dropped_spool_full_acknowledged"
_LAST_WRITE = "last_write"
_TOTALS = (_RECEIVED, _WRITTEN, _NON_FINITE, _REFUSED, _SPOOL_FULL)


class PipelineCounters:
    """The pipeline's counters since the entry was added: earlier runs plus this one.

    Each part of the pipeline counts from zero when it starts; the totals of earlier
    runs are loaded from `.storage` and added.
    """

    def __init__(self, hass: HomeAssistant, entry_id: str, ingestor: Ingestor) -> None:
        """Count for `ingestor`; call async_load before reading."""
        self._store = counters_store(hass, entry_id)
        self._ingestor = ingestor
        self._earlier: dict[str, int] = dict.fromkeys(_TOTALS, 0)
        self._earlier_last_write: datetime | None = None
        self.acknowledged_spool_full = 0

    async def async_load(self) -> None:
        """Read the totals of earlier runs."""
        stored = await self._store.async_load() or {}
        for key in _TOTALS:
            value = stored.get(key)
            self._earlier[key] = value if isinstance(value, int) else 0
        acknowledged = stored.get(_ACKNOWLEDGED)
        self.acknowledged_spool_full = (
            acknowledged if isinstance(acknowledged, int) else 0
        )
        last_write = stored.get(_LAST_WRITE)
        self._earlier_last_write = (
            dt_util.parse_datetime(last_write) if isinstance(last_write, str) else None
        )

    async def async_save(self) -> None:
        """Save the totals; never raises (a failed save is logged)."""
        data: dict[str, Any] = {
            _RECEIVED: self.state_changes_received,
            _WRITTEN: self.points_written,
            _NON_FINITE: self.dropped_non_finite,
            _REFUSED: self.dropped_quarantined,
            _SPOOL_FULL: self.dropped_spool_full,
            _ACKNOWLEDGED: self.acknowledged_spool_full,
            _LAST_WRITE: None
            if self.last_write is None
            else self.last_write.isoformat(),
        }
        try:
            await self._store.async_save(data)
        except OSError as err:  # pragma: no cover - a full or read-only disk
            LOGGER.warning("Could not save the counters: %s", err)

    @property
    def state_changes_received(self) -> int:
        """State changes the integration was told about, written or not."""
        return self._earlier[_RECEIVED] + self._ingestor.state_changes_received

    @property
    def points_written(self) -> int:
        """Points InfluxDB accepted."""
        return self._earlier[_WRITTEN] + self._ingestor.writer.points_written

    @property
    def dropped_non_finite(self) -> int:
        """Values left out of points because InfluxDB cannot store NaN or infinity."""
        return self._earlier[_NON_FINITE] + self._ingestor.encoder.non_finite_dropped

    @property
    def dropped_quarantined(self) -> int:
        """Points InfluxDB refused, set aside in the quarantine."""
        return self._earlier[_REFUSED] + self._ingestor.writer.points_refused

    @property
    def dropped_spool_full(self) -> int:
        """Points deleted from the spool to stay within its size limit."""
        return self._earlier[_SPOOL_FULL] + self._ingestor.spool.dropped_full

    @property
    def last_write(self) -> datetime | None:
        """When InfluxDB last accepted points."""
        return self._ingestor.writer.last_write or self._earlier_last_write


def counters_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Return the `.storage` file of an entry's counters."""
    return Store(hass, _STORAGE_VERSION, f"{DOMAIN}.{entry_id}.counters")


@dataclass(frozen=True, slots=True)
class PipelineSnapshot:
    """What the entities show, read at one moment."""

    connected: bool
    state_changes_received: int
    points_written: int
    points_waiting: int
    spool_bytes: int
    dropped_non_finite: int
    dropped_quarantined: int
    dropped_spool_full: int
    points_quarantined: int
    last_write: datetime | None
    last_write_latency_ms: float | None
    events_per_minute: float | None
    mirror_rows: tuple[tuple[str, int], ...] | None  # None: no mirror

    @property
    def points_dropped(self) -> int:
        """Non-finite values, quarantined conflicts and spool overflow together."""
        return (
            self.dropped_non_finite + self.dropped_quarantined + self.dropped_spool_full
        )


class IngestorCoordinator(DataUpdateCoordinator[PipelineSnapshot]):
    """Snapshots of the pipeline's counters, for the entry's entities."""

    config_entry: HaIngestorConfigEntry

    def __init__(self, hass: HomeAssistant, entry: HaIngestorConfigEntry) -> None:
        """Read the entry's pipeline; its runtime data must be set."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=UPDATE_INTERVAL,
            # Entities are written only when a number changed.
            always_update=False,
        )
        # (monotonic time, state changes received) of the last minute's snapshots.
        self._samples: deque[tuple[float, int]] = deque()

    async def _async_update_data(self) -> PipelineSnapshot:
        """Read the counters in memory: no I/O, cannot fail."""
        return self.snapshot()

    @callback
    def async_update_now(self) -> None:
        """Hand the entities a new snapshot at once (a write failed or works again)."""
        self.async_set_updated_data(self.snapshot())

    @callback
    def snapshot(self) -> PipelineSnapshot:
        """Read the pipeline's counters now."""
        data = self.config_entry.runtime_data
        ingestor = data.ingestor
        writer = ingestor.writer
        spool = ingestor.spool
        counters = data.counters
        received = counters.state_changes_received
        mirror = data.mirror
        return PipelineSnapshot(
            connected=not ingestor.batcher.failing
            and (data.server is not None or writer.last_write is not None),
            state_changes_received=received,
            points_written=counters.points_written,
            points_waiting=ingestor.points_waiting,
            spool_bytes=spool.size_bytes,
            dropped_non_finite=counters.dropped_non_finite,
            dropped_quarantined=counters.dropped_quarantined,
            dropped_spool_full=counters.dropped_spool_full,
            points_quarantined=spool.quarantined,
            last_write=counters.last_write,
            last_write_latency_ms=None
            if writer.last_latency is None
            else round(writer.last_latency * 1000, 1),
            events_per_minute=self._rate(received),
            mirror_rows=None if mirror is None else tuple(sorted(mirror.rows.items())),
        )

    def _rate(self, received: int) -> float | None:
        """State changes per minute over the last minute (less, just after start)."""
        now = time.monotonic()
        samples = self._samples
        samples.append((now, received))
        # Keep the newest sample at least RATE_WINDOW old, and all after it.
        while len(samples) > 1 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        since, count = samples[0]
        elapsed = now - since
        if elapsed < 1.0:
            return None
        return round((received - count) * 60.0 / elapsed, 1)
