"""Repair issues: what keeps history from being recorded, and what to do about it.

IngestionIssues looks at the pipeline with each snapshot of the coordinator (at once
when a write fails or works again), and at least every CHECK_INTERVAL, and raises or
clears one issue per problem and config entry:

- InfluxDB cannot be written for UNREACHABLE_AFTER (not for rejected credentials: those
  start re-authentication);
- the database, retention policy, organization or bucket does not exist;
- the spool holds more than SPOOL_NEARLY_FULL of its size limit;
- points were dropped because the spool was full (until the user acknowledges it);
- points are in quarantine, naming their entities (the fix retries them).

Points are never lost to any of these but the last two: they wait in the spool. This
module is also Home Assistant's repairs platform for the two issues that are fixed in a
flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
import math
from typing import TYPE_CHECKING, Final

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_URL
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from .compat import vol
from .const import DOMAIN, LOGGER
from .influx_client import InfluxAuthError, InfluxNotFoundError
from .models import HaIngestorConfigEntry
from .services import async_replay_quarantine
from .spool import QuarantinedPoint, SpoolError

if TYPE_CHECKING:
    # From 2026.6; only a type (before, the flow's steps return a FlowResult).
    from homeassistant.components.repairs.models import RepairsFlowResult

CHECK_INTERVAL: Final = timedelta(seconds=30)
UNREACHABLE_AFTER: Final = timedelta(minutes=5)
# The spool issue is raised above the first share of the size limit, and cleared
# below the second, so that a spool hovering at the limit does not flap.
SPOOL_NEARLY_FULL: Final = 0.8
SPOOL_NO_LONGER_FULL: Final = 0.7
# Quarantined points read to name their entities, and entities named.
QUARANTINE_READ: Final = 1000
ENTITIES_NAMED: Final = 10

ISSUE_UNREACHABLE: Final = "influxdb_unreachable"
ISSUE_TARGET_MISSING: Final = "target_missing"
ISSUE_SPOOL_NEARLY_FULL: Final = "spool_nearly_full"
ISSUE_POINTS_DROPPED: Final = "points_dropped"
ISSUE_POINTS_QUARANTINED: Final = "points_quarantined"
ISSUES: Final = (
    ISSUE_UNREACHABLE,
    ISSUE_TARGET_MISSING,
    ISSUE_SPOOL_NEARLY_FULL,
    ISSUE_POINTS_DROPPED,
    ISSUE_POINTS_QUARANTINED,
)


def issue_id(issue: str, entry_id: str) -> str:
    """Return the id of one of ISSUES for one config entry."""
    return f"{issue}_{entry_id}"


class IngestionIssues:
    """Raises and clears the repair issues of one loaded config entry."""

    def __init__(self, hass: HomeAssistant, entry: HaIngestorConfigEntry) -> None:
        """Watch `entry`, whose runtime data is set; nothing runs until async_start."""
        self._hass = hass
        self._entry = entry
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
            # Each snapshot: on the coordinator's timer, and at once when a write
            # fails or works again.
            self._entry.runtime_data.coordinator.async_add_listener(self.async_check),
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
        """Raise, update or clear each issue from the pipeline's state now."""
        self._check_writes()
        self._check_spool()
        self._check_dropped()
        self._check_quarantine()

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
    ) -> None:
        """Raise or update `issue`; its text names the entry. A fix flow gets its id."""
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self._id(issue),
            data={"entry_id": self._entry.entry_id} if fixable else None,
            is_fixable=fixable,
            severity=severity,
            translation_key=issue,
            translation_placeholders={"title": self._entry.title, **placeholders},
        )

    def _backlog(self) -> int:
        return self._entry.runtime_data.ingestor.points_waiting

    def _check_writes(self) -> None:
        batcher = self._entry.runtime_data.ingestor.batcher
        error, since = batcher.last_error, batcher.failing_since
        if error is None or since is None or isinstance(error, InfluxAuthError):
            # Writes work; or the credentials were rejected, which the
            # re-authentication flow asks about.
            self._delete(ISSUE_UNREACHABLE)
            self._delete(ISSUE_TARGET_MISSING)
            return
        url = self._entry.data[CONF_URL]
        if isinstance(error, InfluxNotFoundError):
            self._delete(ISSUE_UNREACHABLE)
            self._raise(
                ISSUE_TARGET_MISSING,
                ir.IssueSeverity.ERROR,
                {"url": url, "error": str(error), "backlog": str(self._backlog())},
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
                "backlog": str(self._backlog()),
            },
        )

    def _check_spool(self) -> None:
        spool = self._entry.runtime_data.ingestor.spool
        share = spool.size_bytes / spool.max_bytes
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
                "size_mb": str(spool.size_bytes >> 20),
                "max_mb": str(spool.max_bytes >> 20),
                "backlog": str(self._backlog()),
            },
        )

    def _check_dropped(self) -> None:
        data = self._entry.runtime_data
        counters = data.counters
        unacknowledged = counters.dropped_spool_full - counters.acknowledged_spool_full
        if unacknowledged <= 0:
            self._delete(ISSUE_POINTS_DROPPED)
            return
        self._raise(
            ISSUE_POINTS_DROPPED,
            ir.IssueSeverity.ERROR,
            {
                "count": str(unacknowledged),
                "max_mb": str(data.ingestor.spool.max_bytes >> 20),
            },
            fixable=True,
        )

    def _check_quarantine(self) -> None:
        count = self._entry.runtime_data.ingestor.spool.quarantined
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
        spool = self._entry.runtime_data.ingestor.spool
        try:
            points = await spool.quarantined_points(QUARANTINE_READ)
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


def _entities_text(points: list[QuarantinedPoint]) -> str:
    """Name the entities of `points`, the first ENTITIES_NAMED of them."""
    entities = list(dict.fromkeys(filter(None, (line_entity(p.line) for p in points))))
    if not entities:
        return "-"
    named = ", ".join(entities[:ENTITIES_NAMED])
    if len(entities) > ENTITIES_NAMED:
        named += f" (+{len(entities) - ENTITIES_NAMED})"
    return named


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split line protocol at `separator`s no backslash escapes."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def line_entity(line: str) -> str | None:
    """Return the entity a line of either preset is about, from its domain and entity_id tags."""
    series = _split_unescaped(line, " ")[0]
    tags: dict[str, str] = {}
    for tag in _split_unescaped(series, ",")[1:]:
        key, _, value = tag.partition("=")
        tags[_unescape(key)] = _unescape(value)
    domain, object_id = tags.get("domain"), tags.get("entity_id")
    if not domain or not object_id:
        return None
    return f"{domain}.{object_id}"


def _loaded_entry(
    hass: HomeAssistant, entry_id: object
) -> HaIngestorConfigEntry | None:
    entry = (
        hass.config_entries.async_get_entry(entry_id)
        if isinstance(entry_id, str)
        else None
    )
    if entry is None or entry.state is not ConfigEntryState.LOADED:
        return None
    return entry


class EntryRepairFlow(RepairsFlow):
    """The fix flow of one of an entry's issues: `fix` once the user confirms."""

    def __init__(
        self,
        entry_id: object,
        fix: Callable[[HaIngestorConfigEntry], Awaitable[object]],
    ) -> None:
        """Fix the issue of the entry `entry_id` (from the issue's data)."""
        self._entry_id = entry_id
        self._fix = fix

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Fix the issue once the user confirms."""
        entry = _loaded_entry(self.hass, self._entry_id)
        if entry is None:
            return self.async_abort(reason="not_loaded")
        errors: dict[str, str] = {}
        placeholders = self._placeholders()
        if user_input is not None:
            try:
                await self._fix(entry)
            except HomeAssistantError as err:
                errors["base"] = "cannot_write"
                placeholders["error"] = str(err)
            else:
                return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            description_placeholders=placeholders,
            errors=errors,
        )

    def _placeholders(self) -> dict[str, str]:
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        if issue is None or issue.translation_placeholders is None:
            return {}
        return dict(issue.translation_placeholders)


async def _acknowledge_dropped(entry: HaIngestorConfigEntry) -> None:
    """Note that the user has read of the dropped points; more raise it again."""
    counters = entry.runtime_data.counters
    counters.acknowledged_spool_full = counters.dropped_spool_full
    await counters.async_save()


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Create the fix flow of a fixable issue."""
    entry_id = None if data is None else data.get("entry_id")
    if issue_id.startswith(f"{ISSUE_POINTS_DROPPED}_"):
        return EntryRepairFlow(entry_id, _acknowledge_dropped)
    if issue_id.startswith(f"{ISSUE_POINTS_QUARANTINED}_"):
        # The user has fixed the cause: write the quarantined points again.
        return EntryRepairFlow(entry_id, async_replay_quarantine)
    return ConfirmRepairFlow()
