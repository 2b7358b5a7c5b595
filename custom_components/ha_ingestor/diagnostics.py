"""The diagnostics download: configuration, counters, spool, quarantine and errors.

Everything a bug report needs to tell where points go, and nothing that lets anyone
into the database: the password, the token and any credentials in the URL are
redacted.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, Final

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_URL, __version__
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.loader import async_get_loaded_integration
from homeassistant.util import dt as dt_util
from yarl import URL

from .const import (
    CONF_PRESET,
    DOMAIN,
    PRESET_CORE_COMPATIBLE,
    QUARANTINE_SUMMARY_POINTS,
)
from .coordinator import HaIngestorConfigEntry
from .issues import ISSUES, issue_id
from .storage.spool import SpoolError

TO_REDACT: Final = {CONF_PASSWORD, CONF_TOKEN}
# Distinct quarantine reasons listed.
QUARANTINE_REASONS: Final = 20


def _redact_url(url: str) -> str:
    """Keep the address, not a user or password written into it."""
    try:
        parsed = URL(url)
    except ValueError:
        return REDACTED
    if parsed.user is None and parsed.password is None:
        return url
    return str(parsed.with_user(None))


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 1)


def _backfill_diagnostics(entry: HaIngestorConfigEntry) -> dict[str, Any]:
    """Describe the backfill under way or last run, the gaps, and the coverage."""
    data = entry.runtime_data
    backfill = data.backfill
    progress = backfill.progress()
    stats = data.pipeline.stats
    return {
        "first_received": _time(backfill.first_received),
        "received_through": _time(stats.received_through),
        # What the repair issue of dropped points writes again from the recorder.
        "dropped_unacknowledged": {
            "start": _time(stats.dropped_from),
            "end": _time(stats.dropped_until),
        },
        "last": None
        if progress is None
        else {
            "status": progress.status.value,
            "source": progress.source.value,
            "window": {"start": _time(progress.start), "end": _time(progress.end)},
            "reached": _time(progress.reached),
            "state_changes": progress.state_changes,
            "read": progress.read,
            "written": progress.written,
            "skipped": progress.skipped,
            "percent": progress.percent,
            "waiting": progress.waiting,
            "started_at": _time(progress.started_at),
            "finished_at": _time(progress.finished_at),
            "error": progress.error,
            "longest_read_ms": progress.longest_read_ms,
        },
        "gaps": [
            {
                "start": _time(dt_util.utc_from_timestamp(gap.start)),
                "end": _time(dt_util.utc_from_timestamp(gap.end)),
                "state_changes": gap.state_changes,
                "unrecorded_seconds": round(gap.unrecorded_seconds, 1),
            }
            for gap in backfill.gaps
        ],
    }


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: HaIngestorConfigEntry
) -> dict[str, Any]:
    """Return the entry's configuration and the state of its pipeline."""
    data = entry.runtime_data
    pipeline = data.pipeline
    batcher, spool, writer = pipeline.batcher, pipeline.spool, pipeline.writer
    stats = pipeline.stats
    earlier = pipeline.stats_at_start.counts()
    snapshot = data.coordinator.snapshot()
    now = dt_util.utcnow()
    integration = async_get_loaded_integration(hass, DOMAIN)

    entry_data = async_redact_data(dict(entry.data), TO_REDACT)
    if isinstance(entry_data.get(CONF_URL), str):
        entry_data[CONF_URL] = _redact_url(entry_data[CONF_URL])

    try:
        quarantined = await spool.quarantined_points(QUARANTINE_SUMMARY_POINTS)
        quarantine_error = None
    except SpoolError as err:
        quarantined, quarantine_error = [], str(err)
    reasons = Counter(point.error for point in quarantined)

    issue_registry = ir.async_get(hass)
    mirror = data.mirror
    server = pipeline.server
    error = snapshot.last_error
    return {
        "versions": {
            "home_assistant": __version__,
            "integration": str(integration.version),
        },
        "entry": {
            "title": entry.title,
            "data": entry_data,
            "options": async_redact_data(dict(entry.options), TO_REDACT),
        },
        "schema_preset": entry.options.get(CONF_PRESET, PRESET_CORE_COMPATIBLE),
        "server": None
        if server is None
        else {"version": server.version, "build": server.build},
        "writing": {
            "connected": snapshot.connected,
            "failing_since": _time(snapshot.failing_since),
            "last_error": None
            if error is None
            else {"type": type(error).__name__, "message": str(error)},
            "last_write": _time(snapshot.last_write),
            "last_write_latency_ms": snapshot.last_write_latency_ms,
        },
        # Named as the entities' attributes and the stats: totals since the entry
        # was added, and this run's share.
        "stats": {
            **stats.counts(),
            "points_dropped": stats.points_dropped,
            "events_per_minute": snapshot.events_per_minute,
            "since_start": {
                name: count - earlier[name] for name, count in stats.counts().items()
            },
        },
        "spool": {
            "points": spool.count,
            "in_memory": batcher.pending,
            # Taken from memory, being written or stored, and in no spool yet.
            "in_flight": batcher.in_flight,
            "memory_cap": batcher.memory_cap,
            "size_bytes": spool.size_bytes,
            "used_bytes": spool.used_bytes,
            "max_bytes": spool.max_bytes,
            "fill_percent": round(100 * spool.fill, 1),
            "oldest_point_age_seconds": _age(spool.oldest_time, now),
        },
        "quarantine": {
            "points": spool.quarantined,
            "oldest_point_age_seconds": _age(
                quarantined[0].added_at if quarantined else None, now
            ),
            "reasons": [
                {"message": reason, "points": count}
                for reason, count in reasons.most_common(QUARANTINE_REASONS)
            ],
            "read_error": quarantine_error,
        },
        "write_errors": [
            {
                "type": seen.type,
                "message": seen.message,
                "count": seen.count,
                "first_seen": _time(seen.first_seen),
                "last_seen": _time(seen.last_seen),
            }
            for seen in writer.recent_errors
        ],
        "registry_mirror": {"enabled": False}
        if mirror is None
        else {
            "enabled": True,
            "path": str(mirror.path),
            "healthy": mirror.healthy,
            "rows": dict(mirror.rows),
            "last_sync": _time(mirror.last_sync),
            "last_error": mirror.last_error,
        },
        "history_backfill": _backfill_diagnostics(entry),
        "repair_issues": [
            issue
            for issue in ISSUES
            if issue_registry.async_get_issue(DOMAIN, issue_id(issue, entry.entry_id))
            is not None
        ],
    }
