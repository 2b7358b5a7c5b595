"""Actions: write everything now, retry the quarantined points, backfill from the recorder."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from homeassistant.const import ATTR_CONFIG_ENTRY_ID, ATTR_ENTITY_ID, CONF_URL
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.service import async_get_config_entry
from homeassistant.util import dt as dt_util

from .compat import vol
from .const import DOMAIN
from .coordinator import HaIngestorConfigEntry
from .pipeline.backfill import BackfillProgress
from .pipeline.backfill_state import BackfillSource
from .pipeline.history import Window
from .storage.spool import SpoolError

SERVICE_FLUSH = "flush"
SERVICE_REPLAY_QUARANTINE = "replay_quarantine"
SERVICE_BACKFILL = "backfill"
SERVICE_CANCEL_BACKFILL = "cancel_backfill"
ATTR_START = "start"
ATTR_END = "end"

# Without a config entry: the only one there is.
ACTION_FIELDS = vol.Schema({vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string})
BACKFILL_FIELDS = ACTION_FIELDS.extend(
    {
        vol.Optional(ATTR_START): cv.datetime,
        vol.Optional(ATTR_END): cv.datetime,
        vol.Optional(ATTR_ENTITY_ID): cv.entity_ids,
    }
)

# Quarantined points are released this many at a time.
_RELEASE_CHUNK = 1000


async def async_flush(entry: HaIngestorConfigEntry) -> dict[str, Any]:
    """Write what is in memory and in the spool now, even during a backoff.

    Returns how many points this wrote and InfluxDB refused, and how many wait and
    are in quarantine afterwards. Raises HomeAssistantError when InfluxDB cannot be
    written; the points keep waiting in the spool.
    """
    data = entry.runtime_data
    pipeline = data.pipeline
    stats = pipeline.stats
    written, refused = stats.points_written, stats.points_refused
    error = await pipeline.batcher.flush()
    data.coordinator.async_update_now()
    waiting = pipeline.points_waiting
    if error is not None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="write_failed",
            translation_placeholders={
                "url": entry.data[CONF_URL],
                "error": str(error),
                "waiting": str(waiting),
            },
        ) from error
    return {
        "written": stats.points_written - written,
        "refused": stats.points_refused - refused,
        "waiting": waiting,
        "quarantined": pipeline.spool.quarantined,
    }


async def async_replay_quarantine(entry: HaIngestorConfigEntry) -> dict[str, Any]:
    """Put every quarantined point back in the spool, then write it now.

    For after the cause was fixed (a field's type, say). Points InfluxDB refuses
    again go back into quarantine. Returns how many were released, and what
    async_flush returns.
    """
    pipeline = entry.runtime_data.pipeline
    spool = pipeline.spool
    # Points refused again while this runs are quarantined anew, after these: only
    # as many as there are now are released.
    remaining = spool.quarantined
    released = 0
    try:
        while remaining > 0:
            points = await spool.quarantined_points(min(remaining, _RELEASE_CHUNK))
            if not points:
                break
            released += await spool.release_quarantine(point.id for point in points)
            pipeline.stats.count_spool_drops(spool)
            remaining -= len(points)
    except SpoolError as err:
        pipeline.stats.count_spool_drops(spool)
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="spool_error",
            translation_placeholders={"error": str(err)},
        ) from err
    return {"released": released} | await async_flush(entry)


def _progress_response(progress: BackfillProgress | None) -> dict[str, Any]:
    """Answer a backfill action with the window, the counts, where it stands."""
    if progress is None:
        return {}
    return {
        "status": progress.status.value,
        "start": None if progress.start is None else progress.start.isoformat(),
        "end": progress.end.isoformat(),
        "state_changes": progress.state_changes,
        "read": progress.read,
        "written": progress.written,
        "skipped": progress.skipped,
    }


def _utc(moment: datetime) -> datetime:
    """Read a time the user gave; one without a zone is in Home Assistant's zone.

    A time of year 1 or 9999 that UTC has no room for (a zone east or west of it) is
    UTC's earliest or latest: the window is cut to what the recorder holds anyway.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_util.get_default_time_zone())
    try:
        return dt_util.as_utc(moment)
    except OverflowError:
        if moment.year == 1:
            return datetime.min.replace(tzinfo=UTC)
        return datetime.max.replace(tzinfo=UTC)


async def async_backfill(
    entry: HaIngestorConfigEntry,
    start: datetime | None,
    end: datetime | None,
    entity_ids: list[str] | None,
) -> dict[str, Any]:
    """Start writing what the recorder holds from `start` to `end`.

    By default from the oldest state change the recorder holds to the first one the
    entry received. Raises ServiceValidationError for a window with nothing in it, a
    backfill under way already, or no recorder.
    """
    backfill = entry.runtime_data.backfill
    end_at = backfill.first_received if end is None else _utc(end)
    end_at = min(end_at, dt_util.utcnow())
    start_at = None if start is None else _utc(start)
    if start_at is not None and start_at >= end_at:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="backfill_empty_window",
            translation_placeholders={
                "start": start_at.isoformat(),
                "end": end_at.isoformat(),
            },
        )
    window = Window(
        None if start_at is None else start_at.timestamp(), end_at.timestamp()
    )
    progress = await backfill.async_backfill(
        [window], entity_ids, BackfillSource.ACTION
    )
    return _progress_response(progress)


async def async_cancel_backfill(entry: HaIngestorConfigEntry) -> dict[str, Any]:
    """Stop the backfill under way; returns where it stood."""
    return _progress_response(await entry.runtime_data.backfill.async_cancel())


async def async_fill_gaps(entry: HaIngestorConfigEntry) -> dict[str, Any]:
    """Backfill the gaps in the history the entry found (its repair issue's fix)."""
    return _progress_response(await entry.runtime_data.backfill.async_fill_gaps())


async def async_write_dropped_again(entry: HaIngestorConfigEntry) -> dict[str, Any]:
    """Backfill the time of the dropped points, then acknowledge them (the fix).

    Without the recorder, there is nothing to write them from: only acknowledged.
    """
    data = entry.runtime_data
    stats = data.pipeline.stats
    progress = None
    if (span := stats.dropped_span) is not None:
        progress = await data.backfill.async_fill_dropped(span)
    stats.acknowledge_dropped()
    await data.pipeline.async_save_stats()
    data.coordinator.async_update_now()
    return _progress_response(progress)


def _loaded_entry(hass: HomeAssistant, call: ServiceCall) -> HaIngestorConfigEntry:
    """Return the call's entry (or the only one); ServiceValidationError if not loaded."""
    if (entry_id := call.data.get(ATTR_CONFIG_ENTRY_ID)) is None:
        # (async_get_config_entry looks for the only one itself from 2026.7 on.)
        entries = hass.config_entries.async_entries(
            DOMAIN, include_ignore=False, include_disabled=False
        )
        if not entries:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="no_entry"
            )
        if len(entries) > 1:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="choose_entry",
                translation_placeholders={"count": str(len(entries))},
            )
        entry_id = entries[0].entry_id
    entry: HaIngestorConfigEntry = async_get_config_entry(hass, DOMAIN, entry_id)
    return entry


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""

    async def _flush(call: ServiceCall) -> ServiceResponse:
        return await async_flush(_loaded_entry(hass, call))

    async def _replay_quarantine(call: ServiceCall) -> ServiceResponse:
        return await async_replay_quarantine(_loaded_entry(hass, call))

    async def _backfill(call: ServiceCall) -> ServiceResponse:
        return await async_backfill(
            _loaded_entry(hass, call),
            call.data.get(ATTR_START),
            call.data.get(ATTR_END),
            call.data.get(ATTR_ENTITY_ID),
        )

    async def _cancel_backfill(call: ServiceCall) -> ServiceResponse:
        return await async_cancel_backfill(_loaded_entry(hass, call))

    hass.services.async_register(
        DOMAIN,
        SERVICE_FLUSH,
        _flush,
        schema=ACTION_FIELDS,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_REPLAY_QUARANTINE,
        _replay_quarantine,
        schema=ACTION_FIELDS,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_BACKFILL,
        _backfill,
        schema=BACKFILL_FIELDS,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_CANCEL_BACKFILL,
        _cancel_backfill,
        schema=ACTION_FIELDS,
        supports_response=SupportsResponse.OPTIONAL,
    )
