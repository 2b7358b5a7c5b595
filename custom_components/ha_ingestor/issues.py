"""Repair issues: what keeps history from being recorded, and what to do about it.

IngestionIssues looks at a snapshot of the pipeline with each update of the
coordinator (at once when a write fails or works again), and at least every
CHECK_INTERVAL, raising or clearing one issue per problem and config entry:

- InfluxDB cannot be written for UNREACHABLE_AFTER (not for rejected credentials: those
  start re-authentication);
- the database, retention policy, organization or bucket does not exist;
- the spool holds more than SPOOL_NEARLY_FULL of its size limit;
- the disk that holds the spool is full (points wait in memory);
- the spool was damaged: moved aside, and what could be read of it copied;
- points were dropped, the spool full (until the user acknowledges it; the fix
  writes their time again from the recorder);
- points are in quarantine, naming their entities (the fix retries them);
- the recorder holds state changes the entry never received, found at a start (the
  fix backfills exactly those windows from the recorder).

Points are never lost to any of these but the full disk, the damage and the dropped
and quarantined points: they wait in the spool (a gap's state changes, in the
recorder). The three fixable issues are fixed in repairs.py's flows.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
import math
from typing import Final

from homeassistant.const import CONF_URL
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER, QUARANTINE_SUMMARY_POINTS
from .coordinator import HaIngestorConfigEntry, IngestorCoordinator, PipelineSnapshot
from .influxdb.errors import InfluxAuthError, InfluxNotFoundError
from .line_protocol.parse import line_entity
from .pipeline.backfill_state import HistoryGap
from .storage.salvage import Salvage
from .storage.spool import QuarantinedPoint, Spool, SpoolDiskFullError, SpoolError

CHECK_INTERVAL: Final = timedelta(seconds=30)
UNREACHABLE_AFTER: Final = timedelta(minutes=5)
# The spool issue is raised above the first share of the size limit, and cleared
# below the second, so that a spool hovering at the limit does not flap.
SPOOL_NEARLY_FULL: Final = 0.8
SPOOL_NO_LONGER_FULL: Final = 0.7
# Entities named in the quarantine issue.
ENTITIES_NAMED: Final = 10

ISSUE_UNREACHABLE: Final = "influxdb_unreachable"
ISSUE_TARGET_MISSING: Final = "target_missing"
ISSUE_SPOOL_NEARLY_FULL: Final = "spool_nearly_full"
ISSUE_DISK_FULL: Final = "spool_disk_full"
ISSUE_SPOOL_DAMAGED: Final = "spool_damaged"
ISSUE_POINTS_DROPPED: Final = "points_dropped"
ISSUE_POINTS_QUARANTINED: Final = "points_quarantined"
ISSUE_HISTORY_GAP: Final = "history_gap"
# Its text when part of the gap is not in the recorder either.
HISTORY_GAP_PARTLY_UNRECORDED: Final = "history_gap_partly_unrecorded"
# The damaged spool's text when how many points it held cannot be read.
SPOOL_DAMAGED_LOST_UNKNOWN: Final = "spool_damaged_lost_unknown"
ISSUES: Final = (
    ISSUE_UNREACHABLE,
    ISSUE_TARGET_MISSING,
    ISSUE_SPOOL_NEARLY_FULL,
    ISSUE_DISK_FULL,
    ISSUE_SPOOL_DAMAGED,
    ISSUE_POINTS_DROPPED,
    ISSUE_POINTS_QUARANTINED,
    ISSUE_HISTORY_GAP,
)


def issue_id(issue: str, entry_id: str) -> str:
    """Return the id of one of ISSUES for one config entry."""
    return f"{issue}_{entry_id}"


class IngestionIssues:
    """Raises and clears the repair issues of one loaded config entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: HaIngestorConfigEntry,
        coordinator: IngestorCoordinator,
        spool: Spool,
        salvage: Salvage | None,
    ) -> None:
        """Check with `coordinator`'s updates; read `spool`'s quarantine to name entities.

        `salvage` is the damaged spool this entry's setup found, if it found one.
        """
        self._hass = hass
        self._entry = entry
        self._coordinator = coordinator
        self._spool = spool
        self._salvage = salvage
        self._unsubscribers: list[CALLBACK_TYPE] = []
        # The quarantine size the issue's text was written for.
        self._quarantine_described: int | None = None
        self._quarantine_task: asyncio.Task[None] | None = None

    @callback
    def async_start(self) -> None:
        """Check now, then with each snapshot and on a timer of its own."""
        self._unsubscribers = [
            async_track_time_interval(
                self._hass,
                self._async_tick,
                CHECK_INTERVAL,
                name="ha_ingestor repair issues",
                cancel_on_shutdown=True,
            ),
            self._coordinator.async_add_listener(self.async_check),
        ]
        self.async_check()

    @callback
    def async_stop(self) -> None:
        """Stop checking and withdraw the issues: the entry is unloaded."""
        while self._unsubscribers:
            self._unsubscribers.pop()()
        if self._quarantine_task is not None:
            self._quarantine_task.cancel()
            self._quarantine_task = None
        for issue in ISSUES:
            self._delete(issue)

    @callback
    def _async_tick(self, _now: datetime) -> None:
        self.async_check()

    @callback
    def async_check(self) -> None:
        """Raise, update or clear each issue from the pipeline as it is now."""
        snapshot = self._coordinator.snapshot()
        self._check_writes(snapshot)
        self._check_spool(snapshot)
        self._check_disk(snapshot)
        self._check_salvage()
        self._check_dropped(snapshot)
        self._check_quarantine(snapshot)
        self._check_history_gaps(snapshot.history_gaps)

    def _id(self, issue: str) -> str:
        return issue_id(issue, self._entry.entry_id)

    def _exists(self, issue: str) -> bool:
        return (
            ir.async_get(self._hass).async_get_issue(DOMAIN, self._id(issue))
            is not None
        )

    def _delete(self, issue: str) -> None:
        ir.async_delete_issue(self._hass, DOMAIN, self._id(issue))

    def _raise(
        self,
        issue: str,
        severity: ir.IssueSeverity,
        placeholders: dict[str, str],
        *,
        fixable: bool = False,
        text: str | None = None,
    ) -> None:
        """Raise or update `issue`; its text names the entry. A fix flow gets its id.

        `text` is the translation key of its text, when not the issue's own.
        """
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self._id(issue),
            data={"entry_id": self._entry.entry_id} if fixable else None,
            is_fixable=fixable,
            severity=severity,
            translation_key=text or issue,
            translation_placeholders={"title": self._entry.title, **placeholders},
        )

    def _check_writes(self, snapshot: PipelineSnapshot) -> None:
        error, since = snapshot.last_error, snapshot.failing_since
        if error is None or since is None or isinstance(error, InfluxAuthError):
            # Writes work; or the credentials were rejected, which the
            # re-authentication flow asks about.
            self._delete(ISSUE_UNREACHABLE)
            self._delete(ISSUE_TARGET_MISSING)
            return
        url = self._entry.data[CONF_URL]
        backlog = str(snapshot.points_waiting)
        if isinstance(error, InfluxNotFoundError):
            self._delete(ISSUE_UNREACHABLE)
            self._raise(
                ISSUE_TARGET_MISSING,
                ir.IssueSeverity.ERROR,
                {"url": url, "error": str(error), "backlog": backlog},
            )
            return
        self._delete(ISSUE_TARGET_MISSING)
        failing_for = dt_util.utcnow() - since
        if failing_for < UNREACHABLE_AFTER:
            return
        self._raise(
            ISSUE_UNREACHABLE,
            ir.IssueSeverity.ERROR,
            {
                "url": url,
                "error": str(error),
                "minutes": str(int(failing_for.total_seconds() // 60)),
                "backlog": backlog,
            },
        )

    def _check_spool(self, snapshot: PipelineSnapshot) -> None:
        share = snapshot.spool_fill
        if share < SPOOL_NO_LONGER_FULL or (
            share < SPOOL_NEARLY_FULL and not self._exists(ISSUE_SPOOL_NEARLY_FULL)
        ):
            self._delete(ISSUE_SPOOL_NEARLY_FULL)
            return
        self._raise(
            ISSUE_SPOOL_NEARLY_FULL,
            ir.IssueSeverity.WARNING,
            {
                "percent": str(math.floor(share * 100)),
                "max_mb": str(snapshot.spool_max_bytes >> 20),
                "backlog": str(snapshot.points_waiting),
            },
        )

    def _check_disk(self, snapshot: PipelineSnapshot) -> None:
        if not isinstance(snapshot.spool_error, SpoolDiskFullError):
            self._delete(ISSUE_DISK_FULL)
            return
        self._raise(
            ISSUE_DISK_FULL,
            ir.IssueSeverity.ERROR,
            {
                "path": snapshot.spool_path,
                "memory": str(snapshot.points_in_memory),
                "cap": str(snapshot.memory_cap),
            },
        )

    def _check_salvage(self) -> None:
        """Once what could be read of a damaged spool is copied, say so until unload."""
        salvage = self._salvage
        if salvage is None or not salvage.done:
            return
        placeholders = {
            "path": str(salvage.moved_to),
            "error": salvage.cause,
            "saved": str(salvage.saved),
            "quarantined": str(salvage.quarantined),
        }
        if salvage.lost is not None:
            placeholders["lost"] = str(salvage.lost)
        self._raise(
            ISSUE_SPOOL_DAMAGED,
            ir.IssueSeverity.ERROR,
            placeholders,
            # A file whose count of points cannot be read: how many are lost is not known.
            text=SPOOL_DAMAGED_LOST_UNKNOWN if salvage.lost is None else None,
        )

    def _check_dropped(self, snapshot: PipelineSnapshot) -> None:
        unacknowledged = snapshot.points_dropped_unacknowledged
        span = snapshot.dropped_span
        if unacknowledged <= 0:
            self._delete(ISSUE_POINTS_DROPPED)
            return
        self._raise(
            ISSUE_POINTS_DROPPED,
            ir.IssueSeverity.ERROR,
            {
                "count": str(unacknowledged),
                "max_mb": str(snapshot.spool_max_bytes >> 20),
                # Unknown only for drops counted before their times were noted.
                "start": "?" if span is None else _local_time(span[0].timestamp()),
                "end": "?" if span is None else _local_time(span[1].timestamp()),
            },
            fixable=True,
        )

    def _check_quarantine(self, snapshot: PipelineSnapshot) -> None:
        count = snapshot.points_quarantined
        if not count:
            self._quarantine_described = None
            self._delete(ISSUE_POINTS_QUARANTINED)
            return
        if (
            self._quarantine_described == count
            and self._exists(ISSUE_POINTS_QUARANTINED)
        ) or self._quarantine_task is not None:
            return
        # Naming the entities reads the quarantine: not in the event loop.
        self._quarantine_task = self._entry.async_create_background_task(
            self._hass, self._describe_quarantine(), "ha_ingestor quarantine issue"
        )

    async def _describe_quarantine(self) -> None:
        spool = self._spool
        try:
            points = await spool.quarantined_points(QUARANTINE_SUMMARY_POINTS)
        except SpoolError as err:
            LOGGER.warning("Could not read the quarantine: %s", err)
            points = []
        finally:
            self._quarantine_task = None
        count = spool.quarantined
        if not count:
            return
        self._raise(
            ISSUE_POINTS_QUARANTINED,
            ir.IssueSeverity.WARNING,
            {
                "count": str(count),
                "entities": _entities_text(points),
                "error": points[-1].error if points else "",
            },
            fixable=True,
        )
        self._quarantine_described = count

    def _check_history_gaps(self, gaps: tuple[HistoryGap, ...]) -> None:
        if not gaps:
            self._delete(ISSUE_HISTORY_GAP)
            return
        unrecorded = sum(gap.unrecorded_seconds for gap in gaps)
        self._raise(
            ISSUE_HISTORY_GAP,
            ir.IssueSeverity.WARNING,
            {
                "start": _local_time(gaps[0].start),
                "end": _local_time(gaps[-1].end),
                "duration": _duration(sum(gap.end - gap.start for gap in gaps)),
                "count": str(sum(gap.state_changes for gap in gaps)),
                "unrecorded": _duration(unrecorded),
            },
            fixable=True,
            # Whole seconds: a restart's second or two is no part worth naming.
            text=HISTORY_GAP_PARTLY_UNRECORDED if unrecorded >= 1 else None,
        )


def _local_time(timestamp: float) -> str:
    """Show a moment as the user's clock shows it, to the second."""
    moment = dt_util.as_local(dt_util.utc_from_timestamp(timestamp))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    """Show a duration as hours, minutes and seconds, and days if any: 2 d 03:04:05."""
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    clock = f"{hour:02d}:{minute:02d}:{second:02d}"
    return f"{days} d {clock}" if days else clock


def _entities_text(points: list[QuarantinedPoint]) -> str:
    """Name the entities of `points`, the first ENTITIES_NAMED of them."""
    entities = list(dict.fromkeys(filter(None, (line_entity(p.line) for p in points))))
    if not entities:
        return "-"
    named = ", ".join(entities[:ENTITIES_NAMED])
    if len(entities) > ENTITIES_NAMED:
        named += f" (+{len(entities) - ENTITIES_NAMED})"
    return named
