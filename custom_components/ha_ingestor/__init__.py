"""HA Ingestor: every Home Assistant state change, written to InfluxDB."""

from __future__ import annotations

from homeassistant.const import CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady

from .const import DOMAIN
from .influx_client import InfluxAuthError, InfluxError, create_client
from .ingestor import Ingestor
from .models import HaIngestorConfigEntry, HaIngestorData


async def async_setup_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> bool:
    """Check the server, then start streaming state changes into it."""
    client = create_client(hass, entry.data)
    try:
        server = await client.validate()
    except InfluxError as err:
        error = (
            ConfigEntryAuthFailed
            if isinstance(err, InfluxAuthError)
            else ConfigEntryNotReady
        )
        raise error(
            translation_domain=DOMAIN,
            translation_key=err.reason,
            translation_placeholders={"url": entry.data[CONF_URL], "error": str(err)},
        ) from err

    ingestor = Ingestor(hass, entry, client)
    entry.runtime_data = HaIngestorData(client=client, server=server, ingestor=ingestor)
    ingestor.async_start()
    return True


async def async_unload_entry(hass: HomeAssistant, entry: HaIngestorConfigEntry) -> bool:
    """Stop listening and write what is still in memory."""
    await entry.runtime_data.ingestor.async_stop()
    return True
