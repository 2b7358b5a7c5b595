"""Actions: write everything now, and retry the quarantined points."""

from __future__ import annotations

from typing import Any

from homeassistant.const import ATTR_CONFIG_ENTRY_ID, CONF_URL
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

from .compat import vol
from .const import DOMAIN
from .coordinator import HaIngestorConfigEntry
from .storage.spool import SpoolError

SERVICE_FLUSH = "flush"
SERVICE_REPLAY_QUARANTINE = "replay_quarantine"

# Without a config entry: the only one there is.
ACTION_FIELDS = vol.Schema({vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string})

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
            result = await spool.release_quarantine(point.id for point in points)
            released += result.released
            pipeline.stats.points_dropped_spool_full += result.dropped
            remaining -= len(points)
    except SpoolError as err:
        pipeline.stats.points_dropped_spool_full += err.dropped
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="spool_error",
            translation_placeholders={"error": str(err)},
        ) from err
    return {"released": released} | await async_flush(entry)


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
