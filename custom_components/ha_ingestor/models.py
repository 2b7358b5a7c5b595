"""Runtime data of a config entry."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .coordinator import IngestorCoordinator, PipelineCounters
from .influx_client import InfluxClient, ServerInfo
from .ingestor import Ingestor
from .registry_mirror import RegistryMirror

type HaIngestorConfigEntry = ConfigEntry[HaIngestorData]


@dataclass(slots=True)
class HaIngestorData:
    """What a loaded entry holds: its client, the server it talks to, its pipeline.

    Also the counters and their coordinator, which the diagnostic entities, repair
    issues and diagnostics read, and the registry mirror when it is enabled.
    """

    client: InfluxClient
    server: ServerInfo | None  # None until the server has answered
    ingestor: Ingestor
    counters: PipelineCounters
    coordinator: IngestorCoordinator
    mirror: RegistryMirror | None = None
