"""HA Ingestor: every Home Assistant state change, written to InfluxDB.

docs/architecture.md draws the path of a state change through the packages.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.storage import STORAGE_DIR
from homeassistant.helpers.typing import ConfigType
from homeassistant.util import dt as dt_util

from . import takeover
from .const import (
    CONF_GZIP,
    CONF_HISTORY_BACKFILL,
    CONF_MEASUREMENT_RULE,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    CONF_SPOOL_MAX_MB,
    DEFAULT_GZIP,
    DEFAULT_MIRROR_FILE,
    DEFAULT_SPOOL_MAX_MB,
    DOMAIN,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
)
from .coordinator import HaIngestorConfigEntry, HaIngestorData, IngestorCoordinator
from .influxdb.connection import async_create_client
from .influxdb.errors import InfluxCACertificateError, InfluxError
from .issues import IngestionIssues
from .mirror.mirror import RegistryMirror
from .pipeline.backfill import Backfill
from .pipeline.backfill_state import BackfillStore
from .pipeline.handover import (
    async_begin_handover,
    async_handover_began,
    async_take_handover,
)
from .pipeline.last_states import LastStates, legacy_store as legacy_last_states
from .pipeline.pipeline import Pipeline
from .pipeline.stats import StatsStore, legacy_store as legacy_stats
from .services import async_setup_services
from .storage.salvage import Salvage, open_spool
from .storage.spool import Spool, SpoolError, delete_spool_files

PLATFORMS = [Platform.BINARY_SENSOR, Platform.SENSOR]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, which work on whichever entry is loaded."""
    async_setup_services(hass)
    return True


def _spool_path(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> Path:
    return Path(hass.config.path(STORAGE_DIR, f"{DOMAIN}.{entry.entry_id}.spool"))


async def async_migrate_entry(
    hass: HomeAssistant, entry: HaIngestorConfigEntry
) -> bool:
    """Bring an entry saved by an earlier version up to this one (1.2).

    An entry of a later major version, saved by a newer HA Ingestor, is not loaded.
    """
    if entry.version > 1:
        return False
    if (entry.version, entry.minor_version) < (1, 2):
        # 1.2: the measurement rule core calls domain__device_class is stored as
        # domain_device_class, a name a translation key may have.
        options = dict(entry.options)
        if options.get(CONF_MEASUREMENT_RULE) == "domain__device_class":
            options[CONF_MEASUREMENT_RULE] = MEASUREMENT_DOMAIN_DEVICE_CLASS
        hass.config_entries.async_update_entry(entry, options=options, minor_version=2)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> bool:
    """Start recording state changes, whether InfluxDB answers yet or not.

    Points wait in the spool until it does: an unreachable server, rejected
    credentials (which start re-authentication) or a missing database do not stop
    the recording. Nor does a damaged spool: it is set aside, a new one started,
    and what can be read of the old one copied into it in the background.
    """
    # State changes fired while this sets up are handed to the pipeline once it runs.
    async_begin_handover(hass, entry)
    try:
        client = await async_create_client(
            hass, entry.data, gzip=entry.options.get(CONF_GZIP, DEFAULT_GZIP)
        )
    except InfluxCACertificateError as err:
        async_take_handover(hass, entry)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="ca_certificate_unusable",
            translation_placeholders={"error": str(err)},
        ) from err
    spool_path = _spool_path(hass, entry)
    try:
        await hass.async_add_executor_job(
            partial(spool_path.parent.mkdir, parents=True, exist_ok=True)
        )
        spool, salvage = await open_spool(
            spool_path,
            int(entry.options.get(CONF_SPOOL_MAX_MB, DEFAULT_SPOOL_MAX_MB)) << 20,
        )
    except (OSError, SpoolError) as err:
        async_take_handover(hass, entry)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="spool_unusable",
            translation_placeholders={"error": str(err)},
        ) from err
    last_states = LastStates(hass, entry.entry_id, spool)
    await last_states.async_load()
    stats = await StatsStore(hass, entry.entry_id, spool).async_load()

    pipeline = Pipeline(
        hass,
        entry,
        client=client,
        spool=spool,
        last_states=last_states,
        stats=stats,
    )
    try:
        pipeline.server = await client.validate()
    except InfluxError as err:
        # Recording starts all the same, into the spool: a failed write, shown and
        # logged once as any (refused credentials start re-authentication).
        pipeline.batcher.failed(err)

    mirror = None
    if entry.options.get(CONF_MIRROR_ENABLED):
        mirror = RegistryMirror(
            hass,
            entry.entry_id,
            Path(
                entry.options.get(CONF_MIRROR_PATH)
                or hass.config.path(DEFAULT_MIRROR_FILE)
            ),
        )
    backfill = await _async_load_backfill(hass, entry, pipeline)
    coordinator = IngestorCoordinator(hass, entry, pipeline, backfill, mirror)
    entry.runtime_data = HaIngestorData(pipeline, coordinator, backfill, mirror)
    pipeline.async_start(async_take_handover(hass, entry))
    # Should the rest of the setup fail, the pipeline stops with it (an unload has
    # stopped it already: then this does nothing).
    entry.async_on_unload(pipeline.async_stop)
    entry.async_on_unload(backfill.async_stop)
    if mirror is not None:
        entry.async_on_unload(mirror.async_stop)
        await mirror.async_start()

    await coordinator.async_config_entry_first_refresh()
    entry.async_on_unload(
        pipeline.async_add_status_listener(coordinator.async_update_now)
    )
    entry.async_on_unload(backfill.async_add_listener(coordinator.async_update_now))
    entry.async_on_unload(
        pipeline.async_add_status_listener(
            partial(_async_update_sw_version, hass, entry)
        )
    )
    issues = IngestionIssues(hass, entry, coordinator, spool, salvage)
    issues.async_start()
    entry.async_on_unload(issues.async_stop)
    # Now that it records: the built-in influxdb integration it takes over from.
    entry.async_on_unload(takeover.async_start(hass, entry))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if salvage is not None:
        entry.async_create_background_task(
            hass,
            _async_salvage(salvage, spool, pipeline, coordinator),
            "ha_ingestor salvage",
        )
    _async_take_history_request(hass, entry, backfill)
    # Looks for a gap, and goes on with a backfill, once the recorder is ready.
    backfill.async_start()
    return True


async def _async_salvage(
    salvage: Salvage,
    spool: Spool,
    pipeline: Pipeline,
    coordinator: IngestorCoordinator,
) -> None:
    """Copy what can be read of the damaged spool, then raise its repair issue."""
    await salvage.run(spool)
    pipeline.stats.count_spool_drops(spool)
    coordinator.async_update_now()


async def _async_load_backfill(
    hass: HomeAssistant, entry: HaIngestorConfigEntry, pipeline: Pipeline
) -> Backfill:
    """Load the entry's backfill, before the pipeline takes the handover.

    Once the pipeline has stored what was in memory at its stop, the backfill saves
    where it stands.
    """
    began_at = async_handover_began(hass, entry) or dt_util.utcnow()
    backfill = Backfill(hass, entry, pipeline, began_at=began_at)
    await backfill.async_load()
    pipeline.async_add_stopped_listener(backfill.async_pipeline_stopped)
    return backfill


@callback
def _async_take_history_request(
    hass: HomeAssistant, entry: HaIngestorConfigEntry, backfill: Backfill
) -> None:
    """Start the backfill the setup flow or the options asked for: once.

    Taken once nothing can keep the entry from setting up, then removed.
    """
    if not entry.options.get(CONF_HISTORY_BACKFILL):
        return
    hass.config_entries.async_update_entry(
        entry,
        options={
            key: value
            for key, value in entry.options.items()
            if key != CONF_HISTORY_BACKFILL
        },
    )
    backfill.async_request_default()


@callback
def _async_update_sw_version(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> None:
    """Show the version the server last said on the entry's device."""
    server = entry.runtime_data.pipeline.server
    if server is None:
        return
    registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if device.sw_version != server.version:
            registry.async_update_device(device.id, sw_version=server.version)


async def async_unload_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> bool:
    """Stop the pipeline; a setup that follows (a reload) gets what fires meanwhile."""
    if not await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        return False
    async_begin_handover(hass, entry)
    data = entry.runtime_data
    # No more points of the past while the pipeline stores what is in memory.
    await data.backfill.async_stop()
    await data.pipeline.async_stop()
    if data.mirror is not None:
        await data.mirror.async_stop()
    return True


async def async_remove_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> None:
    """Delete the entry's spool (its files and reserve): last states, counters too."""
    await hass.async_add_executor_job(delete_spool_files, _spool_path(hass, entry))
    # Where versions before 0.2 kept them, if they were never started since.
    await legacy_last_states(hass, entry.entry_id).async_remove()
    await legacy_stats(hass, entry.entry_id).async_remove()
    await BackfillStore(hass, entry.entry_id).async_remove()
