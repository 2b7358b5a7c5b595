"""The pipeline's figures: one object every stage counts in, kept across restarts.

Each stage adds to its own figures as points go through it (the listener to the state
changes received, the encoder to the values it skips, the writer to what InfluxDB
accepted or refused, the batcher to what the full spool dropped); nothing else is
counted anywhere. The same names are used in diagnostics and entity attributes. The
totals are saved in the spool with each step that makes points durable (every flush
interval at most), so the counters a user graphs do not fall back to zero at a
restart, nor lose more than a flush interval's counts in a crash. Points the spool
drops for room are counted in the transaction that deletes them (Spool.keep_stats):
a crash loses none of those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
import functools
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from ..const import DOMAIN
from ..storage.spool import Drops, Spool, TimeSpan, widen_span

_STORAGE_VERSION: Final = 1
# The figures that are times, not counts.
_TIMES: Final = ("last_write", "received_through", "dropped_from", "dropped_until")
# 2: one name per figure (the five spellings of version 1 renamed, see _RENAMED_IN_2).
_STORAGE_MINOR_VERSION: Final = 2
_RENAMED_IN_2: Final = {
    "dropped_non_finite": "non_finite_values_skipped",
    "dropped_quarantined": "points_refused",
    "dropped_spool_full": "points_dropped_spool_full",
    "dropped_spool_full_acknowledged": "points_dropped_acknowledged",
}


@dataclass(slots=True)
class PipelineStats:
    """Totals since the config entry was added."""

    state_changes_received: int = 0
    """State changes the integration was told about, written or not (listener)."""
    points_written: int = 0
    """Points InfluxDB accepted (writer)."""
    points_refused: int = 0
    """Points InfluxDB refused, set aside in the quarantine (writer)."""
    points_dropped_spool_full: int = 0
    """Points deleted from the spool to stay within its size limit, oldest first."""
    points_dropped_memory_full: int = 0
    """Points dropped from memory, oldest first, while the spool could not take them."""
    points_dropped_at_stop: int = 0
    """Points neither InfluxDB nor the spool could take when the pipeline stopped."""
    points_dropped_unquarantined: int = 0
    """Points InfluxDB refused that could not be set aside in the quarantine."""
    points_dropped_acknowledged: int = 0
    """Of the points dropped, those the user has acknowledged in the repair issue."""
    non_finite_values_skipped: int = 0
    """NaN and infinite values left out of points: InfluxDB cannot store them."""
    last_write: datetime | None = None
    """When InfluxDB last accepted points."""
    received_through: datetime | None = None
    """Until when everything received is durable (written, or in the spool): what a
    crash or a stop without the final write loses is newer (batcher)."""
    dropped_from: datetime | None = None
    """The oldest time of the points dropped since the user last acknowledged it."""
    dropped_until: datetime | None = None
    """The newest time of the points dropped since the user last acknowledged it."""

    def counts(self) -> dict[str, int]:
        """Every count by its name (the figures but the times)."""
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if field.name not in _TIMES
        }

    @property
    def points_dropped(self) -> int:
        """Points lost for good; quarantined points are not: they can be replayed."""
        return (
            self.points_dropped_spool_full
            + self.points_dropped_memory_full
            + self.points_dropped_at_stop
            + self.points_dropped_unquarantined
        )

    @property
    def points_dropped_unacknowledged(self) -> int:
        """Points dropped since the user last acknowledged it."""
        return self.points_dropped - self.points_dropped_acknowledged

    @property
    def dropped_span(self) -> TimeSpan | None:
        """The times of the points dropped since the user last acknowledged it."""
        if self.dropped_from is None or self.dropped_until is None:
            return None
        return self.dropped_from, self.dropped_until

    def note_dropped(self, span: TimeSpan | None) -> None:
        """Widen the span of dropped times by `span`: what InfluxDB misses."""
        if (widened := widen_span(self.dropped_span, span)) is not None:
            self.dropped_from, self.dropped_until = widened

    def count_spool_drops(self, spool: Spool) -> Drops:
        """Count the points `spool` deleted for room, note their times; return them."""
        drops = spool.take_drops()
        self.count_drops(drops)
        return drops

    def count_drops(self, drops: Drops) -> None:
        """Count points a spool deleted for room, and note their times."""
        self.points_dropped_spool_full += drops.points
        self.note_dropped(drops.span)

    def acknowledge_dropped(self) -> None:
        """Note that the user has read of the points dropped; more raise it again."""
        self.points_dropped_acknowledged = self.points_dropped
        self.dropped_from = self.dropped_until = None


class StatsStore:
    """Where an entry's totals are kept: in its spool, saved with each durable step.

    Versions before 0.2 kept them in `.storage`: that file is read once, if the spool
    has none yet, and removed once they are in the spool.
    """

    def __init__(self, hass: HomeAssistant, entry_id: str, spool: Spool) -> None:
        """Keep the totals of the entry `entry_id` in its `spool`."""
        self._spool = spool
        self._legacy = legacy_store(hass, entry_id)

    async def async_load(self) -> PipelineStats:
        """Read the totals of earlier runs; what is missing or unreadable starts at 0.

        The spool saves the totals returned from then on (see Spool.keep_stats).
        """
        stored = await self._spool.stats()
        legacy = None if stored is not None else await self._legacy.async_load()
        stats = stats_from_dict(stored or legacy or {})
        self._spool.keep_stats(functools.partial(_as_saved, stats))
        if legacy is not None:
            await self._spool.save_state({}, save_stats=True)
            await self._legacy.async_remove()
        return stats


def _as_saved(stats: PipelineStats, drops: Drops) -> dict[str, Any]:
    """Return `stats` as the spool saves them: with the drops not counted yet."""
    if drops.points:
        stats = replace(stats)
        stats.count_drops(drops)
    return stats_to_dict(stats)


def stats_from_dict(stored: Mapping[str, Any]) -> PipelineStats:
    """Read stats as stats_to_dict wrote them; what is missing or unreadable is 0."""
    stats = PipelineStats()
    for field in fields(PipelineStats):
        value = stored.get(field.name)
        if field.name in _TIMES:
            setattr(
                stats,
                field.name,
                dt_util.parse_datetime(value) if isinstance(value, str) else None,
            )
        elif isinstance(value, int):
            setattr(stats, field.name, value)
    return stats


def stats_to_dict(stats: PipelineStats) -> dict[str, Any]:
    """Every figure under its name, as JSON can hold it."""
    data = asdict(stats)
    for name in _TIMES:
        moment = data[name]
        data[name] = None if moment is None else moment.isoformat()
    return data


def legacy_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Where versions before 0.2 kept the totals: read once, removed with the entry."""
    return _StatsFile(
        hass,
        _STORAGE_VERSION,
        f"{DOMAIN}.{entry_id}.counters",
        minor_version=_STORAGE_MINOR_VERSION,
    )


class _StatsFile(Store[dict[str, Any]]):
    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: dict[str, Any]
    ) -> dict[str, Any]:
        return {_RENAMED_IN_2.get(key, key): value for key, value in old_data.items()}
