"""A loaded entry's runtime data, and the coordinator that snapshots its pipeline.

The pipeline counts in plain integers as points go through it (the hot path does
nothing else for the entities). The coordinator reads them every UPDATE_INTERVAL, and
at once when a write fails or works again, into one snapshot that the entities and
the repair issues read; nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
import time
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .const import DOMAIN, LOGGER
from .influxdb.errors import InfluxError
from .mirror.mirror import RegistryMirror
from .pipeline.backfill import Backfill, BackfillProgress
from .pipeline.backfill_state import HistoryGap
from .pipeline.pipeline import Pipeline
from .storage.spool import SpoolError, TimeSpan

UPDATE_INTERVAL: Final = timedelta(seconds=15)
# Events per minute: counted over the last minute of snapshots.
RATE_WINDOW: Final = 60.0

type HaIngestorConfigEntry = ConfigEntry[HaIngestorData]


@dataclass(slots=True)
class HaIngestorData:
    """What a loaded entry holds: its pipeline and backfill, the coordinator, the mirror.

    The mirror is None when it is off.
    """

    pipeline: Pipeline
    coordinator: IngestorCoordinator
    backfill: Backfill
    mirror: RegistryMirror | None = None


@dataclass(frozen=True, slots=True)
class PipelineSnapshot:
    """What the entities and the repair issues show, read at one moment.

    The figures are named as in PipelineStats; totals since the entry was added.
    """

    connected: bool
    failing_since: datetime | None
    last_error: InfluxError | None
    state_changes_received: int
    points_written: int
    points_waiting: int
    spool_bytes: int
    spool_fill: float
    """How full the spool is: 1.0 once the oldest points must make room."""
    spool_max_bytes: int
    spool_path: str
    spool_error: SpoolError | None
    """Why the spool could not store points, until it stores some again."""
    points_in_memory: int
    """Points waiting in memory: those the spool does not take meanwhile."""
    memory_cap: int
    points_dropped: int
    points_dropped_spool_full: int
    points_dropped_unacknowledged: int
    dropped_span: TimeSpan | None
    """The times of the points dropped since the user last acknowledged it."""
    points_refused: int
    points_quarantined: int
    non_finite_values_skipped: int
    last_write: datetime | None
    last_write_latency_ms: float | None
    events_per_minute: float | None
    mirror_rows: tuple[tuple[str, int], ...] | None  # None: no mirror
    backfill: BackfillProgress | None  # None: there never was one
    history_gaps: tuple[HistoryGap, ...]


class IngestorCoordinator(DataUpdateCoordinator[PipelineSnapshot]):
    """Snapshots of the pipeline's figures, for the entry's entities."""

    config_entry: HaIngestorConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: HaIngestorConfigEntry,
        pipeline: Pipeline,
        backfill: Backfill,
        mirror: RegistryMirror | None,
    ) -> None:
        """Snapshot `pipeline` and `backfill` (and `mirror`, when the entry has one)."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=UPDATE_INTERVAL,
            # Entities are written only when a number changed.
            always_update=False,
        )
        self._pipeline = pipeline
        self._backfill = backfill
        self._mirror = mirror
        # (monotonic time, state changes received) of the last minute's updates.
        self._samples: deque[tuple[float, int]] = deque()
        self._events_per_minute: float | None = None

    async def _async_update_data(self) -> PipelineSnapshot:
        """Read the figures in memory: no I/O, cannot fail."""
        return self._sampled_snapshot()

    @callback
    def async_update_now(self) -> None:
        """Hand the entities a new snapshot at once (a write failed or works again)."""
        self.async_set_updated_data(self._sampled_snapshot())

    def _sampled_snapshot(self) -> PipelineSnapshot:
        self._events_per_minute = self._rate(
            self._pipeline.stats.state_changes_received
        )
        return self.snapshot()

    @callback
    def snapshot(self) -> PipelineSnapshot:
        """Read the pipeline's figures now; the rate is the last update's."""
        pipeline = self._pipeline
        stats = pipeline.stats
        health = pipeline.batcher.health
        spool = pipeline.spool
        latency = pipeline.writer.last_latency
        mirror = self._mirror
        return PipelineSnapshot(
            connected=pipeline.connected,
            failing_since=health.failing_since,
            last_error=health.last_error,
            state_changes_received=stats.state_changes_received,
            points_written=stats.points_written,
            points_waiting=pipeline.points_waiting,
            spool_bytes=spool.size_bytes,
            spool_fill=spool.fill,
            spool_max_bytes=spool.max_bytes,
            spool_path=str(spool.path),
            spool_error=pipeline.batcher.spool_error,
            points_in_memory=pipeline.batcher.pending + pipeline.batcher.in_flight,
            memory_cap=pipeline.batcher.memory_cap,
            points_dropped=stats.points_dropped,
            points_dropped_spool_full=stats.points_dropped_spool_full,
            points_dropped_unacknowledged=stats.points_dropped_unacknowledged,
            dropped_span=stats.dropped_span,
            points_refused=stats.points_refused,
            points_quarantined=spool.quarantined,
            non_finite_values_skipped=stats.non_finite_values_skipped,
            last_write=stats.last_write,
            last_write_latency_ms=None if latency is None else round(latency * 1000, 1),
            events_per_minute=self._events_per_minute,
            mirror_rows=None if mirror is None else tuple(sorted(mirror.rows.items())),
            backfill=self._backfill.progress(),
            history_gaps=self._backfill.gaps,
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
