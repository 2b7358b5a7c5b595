"""The connectivity sensor: whether InfluxDB takes the points."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import HaIngestorConfigEntry, IngestorCoordinator
from .entity import IngestorEntity

# The coordinator updates every entity at once; nothing is fetched per entity.
PARALLEL_UPDATES = 0

CONNECTIVITY = BinarySensorEntityDescription(
    key="connectivity",
    translation_key="connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HaIngestorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the entry's connectivity sensor."""
    async_add_entities([IngestorConnectivity(entry.runtime_data.coordinator)])


class IngestorConnectivity(IngestorEntity, BinarySensorEntity):
    """On while InfluxDB takes writes; off while they fail, whatever the cause."""

    def __init__(self, coordinator: IngestorCoordinator) -> None:
        """Describe the entry's one binary sensor."""
        super().__init__(coordinator, CONNECTIVITY)

    @property
    def is_on(self) -> bool:
        """Whether the last write (or the check at setup) succeeded."""
        return self.coordinator.data.connected
