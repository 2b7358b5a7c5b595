"""HA Ingestor: every Home Assistant state change, written to InfluxDB."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from homeassistant.const import CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers.storage import STORAGE_DIR

from .const import CONF_SPOOL_MAX_MB, DEFAULT_SPOOL_MAX_MB, DOMAIN, LOGGER
from .handover import async_begin_handover, async_take_handover
from .influx_client import InfluxAuthError, InfluxError, ServerInfo, create_client
from .ingestor import Ingestor
from .last_states import LastStates
from .models import HaIngestorConfigEntry, HaIngestorData
from .spool import Spool, SpoolError


def _spool_path(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> Path:
    return Path(hass.config.path(STORAGE_DIR, f"{DOMAIN}.{entry.entry_id}.spool"))


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

    client = create_client(hass, entry.data)
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
    entry.runtime_data = HaIngestorData(client=client, server=server, ingestor=ingestor)
    ingestor.async_start(async_take_handover(hass, entry))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> bool:
    """Stop the pipeline; a setup that follows (a reload) gets what fires meanwhile."""
    async_begin_handover(hass, entry)
    await entry.runtime_data.ingestor.async_stop()
    return True


async def async_remove_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> None:
    """Delete the entry's spool and saved states."""
    await LastStates(hass, entry.entry_id).async_remove()
    spool = _spool_path(hass, entry)
    await hass.async_add_executor_job(_delete_sqlite_files, spool)


def _delete_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
