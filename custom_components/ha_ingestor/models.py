"""Runtime data of a config entry."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .influx_client import InfluxClient, ServerInfo
from .ingestor import Ingestor

type HaIngestorConfigEntry = ConfigEntry[HaIngestorData]


@dataclass(slots=True)
class HaIngestorData:
    """What a loaded entry holds: its client, the server it talks to, its pipeline."""

    client: InfluxClient
    server: ServerInfo | None  # None until the server has answered
    ingestor: Ingestor
