"""HA Ingestor: every Home Assistant state change, written to InfluxDB."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path

from homeassistant.const import CONF_URL, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.storage import STORAGE_DIR
from homeassistant.helpers.typing import ConfigType

from .const import (
    CONF_GZIP,
    CONF_MEASUREMENT_RULE,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    CONF_SPOOL_MAX_MB,
    DEFAULT_GZIP,
    DEFAULT_MIRROR_FILE,
    DEFAULT_SPOOL_MAX_MB,
    DOMAIN,
    LOGGER,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
)
from .coordinator import (
    SAVE_INTERVAL,
    IngestorCoordinator,
    PipelineCounters,
    counters_store,
)
from .handover import async_begin_handover, async_take_handover
from .influx_client import InfluxAuthError, InfluxError, ServerInfo, create_client
from .ingestor import Ingestor
from .last_states import LastStates
from .models import HaIngestorConfigEntry, HaIngestorData
from .registry_mirror import RegistryMirror
from .repairs import IngestionIssues
from .services import async_setup_services
from .spool import Spool, SpoolError

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
    the recording.
    """
    # State changes fired while this sets up are handed to the pipeline once it runs.
    async_begin_handover(hass, entry)
    spool_path = _spool_path(hass, entry)
    try:
        await hass.async_add_executor_job(
            partial(spool_path.parent.mkdir, parents=True, exist_ok=True)
        )
        spool = await Spool.open(
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
    last_states = LastStates(hass, entry.entry_id)
    await last_states.async_load()

    client = create_client(
        hass, entry.data, gzip=entry.options.get(CONF_GZIP, DEFAULT_GZIP)
    )
    server: ServerInfo | None = None
    try:
        server = await client.validate()
    except InfluxAuthError:
        entry.async_start_reauth(hass)
    except InfluxError as err:
        LOGGER.warning(
            "InfluxDB at %s cannot be written to yet, points wait in the spool: %s",
            entry.data[CONF_URL],
            err,
        )

    ingestor = Ingestor(hass, entry, client, spool, last_states)
    counters = PipelineCounters(hass, entry.entry_id, ingestor)
    await counters.async_load()
    # Saved once what is in memory is written or spooled, at unload and at stop.
    ingestor.add_stop_hook(counters.async_save)
    coordinator = IngestorCoordinator(hass, entry)
    entry.runtime_data = HaIngestorData(
        client=client,
        server=server,
        ingestor=ingestor,
        counters=counters,
        coordinator=coordinator,
    )
    ingestor.async_start(async_take_handover(hass, entry))
    # Should the rest of the setup fail, the pipeline stops with it (an unload has
    # stopped it already: then this does nothing).
    entry.async_on_unload(ingestor.async_stop)

    if entry.options.get(CONF_MIRROR_ENABLED):
        mirror = RegistryMirror(
            hass,
            entry.entry_id,
            Path(
                entry.options.get(CONF_MIRROR_PATH)
                or hass.config.path(DEFAULT_MIRROR_FILE)
            ),
        )
        entry.runtime_data.mirror = mirror
        entry.async_on_unload(mirror.async_stop)
        await mirror.async_start()

    await coordinator.async_config_entry_first_refresh()
    entry.async_on_unload(
        ingestor.async_add_status_listener(coordinator.async_update_now)
    )
    entry.async_on_unload(
        ingestor.async_add_status_listener(partial(_async_status_changed, hass, entry))
    )
    issues = IngestionIssues(hass, entry)
    issues.async_start()
    entry.async_on_unload(issues.async_stop)

    @callback
    def _save_counters(_now: datetime) -> None:
        # Between restarts too, so that a crash loses a few minutes of counts at most.
        entry.async_create_background_task(
            hass, counters.async_save(), "ha_ingestor save counters"
        )

    entry.async_on_unload(
        async_track_time_interval(
            hass,
            _save_counters,
            SAVE_INTERVAL,
            name="ha_ingestor save counters",
            cancel_on_shutdown=True,
        )
    )
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


@callback
def _async_status_changed(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> None:
    """Ask the server its version again once writing works again (it may be new)."""
    if not entry.runtime_data.ingestor.batcher.failing:
        entry.async_create_background_task(
            hass, _async_refresh_server(hass, entry), "ha_ingestor server version"
        )


async def _async_refresh_server(
    hass: HomeAssistant, entry: HaIngestorConfigEntry
) -> None:
    data = entry.runtime_data
    try:
        server = await data.client.ping()
    except InfluxError as err:
        LOGGER.debug("InfluxDB at %s did not say its version: %s", entry.title, err)
        return
    data.server = server
    registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if device.sw_version != server.version:
            registry.async_update_device(device.id, sw_version=server.version)
    data.coordinator.async_update_now()


async def async_unload_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> bool:
    """Stop the pipeline; a setup that follows (a reload) gets what fires meanwhile."""
    if not await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        return False
    async_begin_handover(hass, entry)
    data = entry.runtime_data
    await data.ingestor.async_stop()
    if data.mirror is not None:
        await data.mirror.async_stop()
    return True


async def async_remove_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> None:
    """Delete the entry's spool, saved states and counters."""
    await LastStates(hass, entry.entry_id).async_remove()
    await counters_store(hass, entry.entry_id).async_remove()
    spool = _spool_path(hass, entry)
    await hass.async_add_executor_job(_delete_sqlite_files, spool)


def _delete_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
