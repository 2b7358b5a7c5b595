"""The base of the entry's diagnostic entities: one service device per config entry."""

from __future__ import annotations

from homeassistant.const import CONF_URL, EntityCategory
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import API_V2, CONF_API_VERSION, DOMAIN
from .coordinator import HaIngestorConfigEntry, IngestorCoordinator
from .influxdb.connection import connection_title


def device_info(entry: HaIngestorConfigEntry) -> DeviceInfo:
    """Describe the service device that stands for the entry's database or bucket."""
    data = entry.data
    server = entry.runtime_data.pipeline.server
    info = DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        entry_type=DeviceEntryType.SERVICE,
        manufacturer="InfluxData",
        model=f"InfluxDB {data[CONF_API_VERSION]}.x",
        # The data is valid: the client was made from it.
        name=connection_title(data),
    )
    if server is not None:
        info["sw_version"] = server.version
    if data[CONF_API_VERSION] == API_V2:
        # 2.x serves its UI at the API's address; 1.x has none.
        info["configuration_url"] = data[CONF_URL]
    return info


class IngestorEntity(CoordinatorEntity[IngestorCoordinator]):
    """A diagnostic entity of the entry's device, updated from the coordinator."""

    _attr_has_entity_name = True
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(
        self, coordinator: IngestorCoordinator, description: EntityDescription
    ) -> None:
        """Describe one number of the pipeline."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self.entity_description = description
        # The entry id: the server, database and credentials may all be
        # reconfigured, and the entities stay the same.
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = device_info(entry)
