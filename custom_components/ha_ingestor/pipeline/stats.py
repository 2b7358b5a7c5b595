"""The pipeline's figures: one object every stage counts in, kept across restarts.

Each stage adds to its own figures as points go through it (the listener to the state
changes received, the encoder to the values it skips, the writer to what InfluxDB
accepted or refused, the batcher to what the full spool dropped); nothing else is
counted anywhere. The same names are used in diagnostics and entity attributes. The
totals are saved in `.storage` every SAVE_INTERVAL and when the pipeline stops, so the
counters a user graphs do not fall back to zero at each restart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, LOGGER

SAVE_INTERVAL: Final = timedelta(minutes=5)

_STORAGE_VERSION: Final = 1
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
    points_dropped_acknowledged: int = 0
    """Of the points dropped, those the user has acknowledged in the repair issue."""
    non_finite_values_skipped: int = 0
    """NaN and infinite values left out of points: InfluxDB cannot store them."""
    last_write: datetime | None = None
    """When InfluxDB last accepted points."""

    def counts(self) -> dict[str, int]:
        """Every count by its name (the figures but `last_write`)."""
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if field.name != "last_write"
        }

    @property
    def points_dropped(self) -> int:
        """Points lost for good; quarantined points are not: they can be replayed."""
        return self.points_dropped_spool_full

    @property
    def points_dropped_unacknowledged(self) -> int:
        """Points dropped since the user last acknowledged it."""
        return self.points_dropped - self.points_dropped_acknowledged


class StatsStore:
    """The `.storage` file of an entry's totals."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Keep the totals of the entry `entry_id`."""
        self._store: Store[dict[str, Any]] = _StatsFile(
            hass,
            _STORAGE_VERSION,
            f"{DOMAIN}.{entry_id}.counters",
            minor_version=_STORAGE_MINOR_VERSION,
        )

    async def async_load(self) -> PipelineStats:
        """Read the totals of earlier runs; what is missing or unreadable starts at 0."""
        stored = await self._store.async_load() or {}
        stats = PipelineStats()
        for field in fields(PipelineStats):
            value = stored.get(field.name)
            if field.name == "last_write":
                stats.last_write = (
                    dt_util.parse_datetime(value) if isinstance(value, str) else None
                )
            elif isinstance(value, int):
                setattr(stats, field.name, value)
        return stats

    async def async_save(self, stats: PipelineStats) -> None:
        """Save the totals; never raises (a failed save is logged)."""
        data = asdict(stats)
        data["last_write"] = (
            None if stats.last_write is None else stats.last_write.isoformat()
        )
        try:
            await self._store.async_save(data)
        except OSError as err:  # pragma: no cover - a full or read-only disk
            LOGGER.warning("Could not save the counters: %s", err)

    async def async_remove(self) -> None:
        """Delete the file: the config entry is gone."""
        await self._store.async_remove()


class _StatsFile(Store[dict[str, Any]]):
    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: dict[str, Any]
    ) -> dict[str, Any]:
        return {_RENAMED_IN_2.get(key, key): value for key, value in old_data.items()}
