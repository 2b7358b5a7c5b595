"""What a backfill keeps across restarts, in `.storage`: its job, the gaps, the start.

One file per config entry, `ha_ingestor.<entry id>.backfill`:

- `first_received`: when the entry received its first state change, the default end
  of a backfill (everything older is what the recorder has and HA Ingestor never saw);
- `job`: the backfill under way or last run: its windows, where it stands (the last
  row whose point is durable: written, or in the spool) and its counts;
- `gaps`: windows of history the entry never received while the recorder did, found
  at a start, waiting for the user to fill them (issues.py raises the repair issue).

Times are kept as seconds since the epoch, exactly as the recorder stores them: a
position must find the same row again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from ..const import DOMAIN
from .history import Position, Window

_STORAGE_VERSION: Final = 1


class BackfillStatus(StrEnum):
    """Where a backfill stands."""

    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class BackfillSource(StrEnum):
    """Who asked for a backfill."""

    ACTION = "action"
    """The action ha_ingestor.backfill."""
    FLOW = "flow"
    """The setup flow or the options: everything older than the first state change."""
    GAP = "gap"
    """The repair issue of a gap."""
    DROPPED = "dropped"
    """The repair issue of dropped points."""


@dataclass(frozen=True, slots=True)
class HistoryGap:
    """A window the entry received nothing of while the recorder recorded."""

    start: float
    end: float
    state_changes: int
    """What the recorder holds of it, of the entities the entry writes."""
    unrecorded_seconds: float
    """How much of it the recorder has nothing of either (it was not running, or has
    purged it)."""

    @property
    def window(self) -> Window:
        """The window to backfill."""
        return Window(self.start, self.end)

    @property
    def duration(self) -> timedelta:
        """How long the entry received nothing."""
        return timedelta(seconds=self.end - self.start)


@dataclass(slots=True)
class BackfillJob:
    """One backfill: the windows it writes, where it stands, what it did so far."""

    windows: list[Window]
    entity_ids: list[str] | None
    """Only these entities (the entry's filters still apply); None: every one."""
    source: BackfillSource
    started_at: datetime
    status: BackfillStatus = BackfillStatus.RUNNING
    window_index: int = 0
    """The window being read."""
    after: Position | None = None
    """The last row of that window handed on (its point, if any, is in the pipeline)."""
    state_changes: int = 0
    """The recorder's rows in the windows when the job started."""
    read: int = 0
    written: int = 0
    """Points handed to the pipeline (the batcher)."""
    skipped: int = 0
    """Rows not written: filtered out, or no state change live ingestion writes."""
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def reached(self) -> datetime | None:
        """The time of the last row read."""
        return None if self.after is None else dt_util.utc_from_timestamp(self.after[0])


def _job_to_dict(job: BackfillJob) -> dict[str, Any]:
    data = asdict(job)
    data["windows"] = [[window.start, window.end] for window in job.windows]
    data["after"] = None if job.after is None else list(job.after)
    for name in ("started_at", "finished_at"):
        moment = getattr(job, name)
        data[name] = None if moment is None else moment.isoformat()
    return data


def _job_from_dict(data: dict[str, Any]) -> BackfillJob:
    started_at = dt_util.parse_datetime(data["started_at"]) or dt_util.utcnow()
    finished = data.get("finished_at")
    after = data.get("after")
    return BackfillJob(
        windows=[Window(start, end) for start, end in data["windows"]],
        entity_ids=data.get("entity_ids"),
        source=BackfillSource(data["source"]),
        started_at=started_at,
        status=BackfillStatus(data["status"]),
        window_index=int(data.get("window_index", 0)),
        after=None if after is None else Position(float(after[0]), int(after[1])),
        state_changes=int(data.get("state_changes", 0)),
        read=int(data.get("read", 0)),
        written=int(data.get("written", 0)),
        skipped=int(data.get("skipped", 0)),
        finished_at=None if finished is None else dt_util.parse_datetime(finished),
        error=data.get("error"),
    )


@dataclass(slots=True)
class BackfillState:
    """The file's content."""

    first_received: float | None = None
    job: BackfillJob | None = None
    gaps: list[HistoryGap] = field(default_factory=list)


class BackfillStore:
    """Reads and writes an entry's BackfillState."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Keep the state of the entry `entry_id`."""
        self._store: Store[dict[str, Any]] = Store(
            hass, _STORAGE_VERSION, f"{DOMAIN}.{entry_id}.backfill"
        )

    async def async_load(self) -> BackfillState:
        """Read the state; what is missing or unreadable is empty."""
        data = await self._store.async_load() or {}
        state = BackfillState()
        if isinstance(first := data.get("first_received"), int | float):
            state.first_received = float(first)
        try:
            if (job := data.get("job")) is not None:
                state.job = _job_from_dict(job)
            state.gaps = [HistoryGap(**gap) for gap in data.get("gaps", [])]
        except KeyError, TypeError, ValueError:
            state.job, state.gaps = None, []
        return state

    async def async_save(self, state: BackfillState) -> None:
        """Write the state now (atomically: the file is replaced)."""
        await self._store.async_save(
            {
                "first_received": state.first_received,
                "job": None if state.job is None else _job_to_dict(state.job),
                "gaps": [asdict(gap) for gap in state.gaps],
            }
        )

    async def async_remove(self) -> None:
        """Delete the file, with the entry."""
        await self._store.async_remove()
