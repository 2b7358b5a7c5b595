"""One subscription to the five registries' update events, read the same way for all users.

The metadata cache and the registry mirror both need to know which entries of the
entity, device, area, floor and label registries changed. The events' data differ per
registry; this turns each into the registry and the ids it names, with the rules both
need: a renamed entity names its old id too, and reordering areas or floors names none.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)


class Registry(StrEnum):
    """A registry whose entries the integration follows."""

    ENTITY = "entity"
    DEVICE = "device"
    AREA = "area"
    FLOOR = "floor"
    LABEL = "label"


type RegistryChange = Callable[[Registry, list[str]], None]
"""Called in the event loop with a registry and the ids of its changed entries."""


@callback
def async_track_registry_changes(
    hass: HomeAssistant, on_change: RegistryChange
) -> CALLBACK_TYPE:
    """Call `on_change` for every registry update that names entries; return unsubscribe."""

    @callback
    def entity_updated(event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        data = event.data
        entity_ids = [data["entity_id"]]
        # A renamed entity: what was known under its old id is gone.
        if data["action"] == "update" and "old_entity_id" in data:
            entity_ids.append(data["old_entity_id"])
        on_change(Registry.ENTITY, entity_ids)

    @callback
    def device_updated(event: Event[dr.EventDeviceRegistryUpdatedData]) -> None:
        on_change(Registry.DEVICE, [event.data["device_id"]])

    @callback
    def area_updated(event: Event[ar.EventAreaRegistryUpdatedData]) -> None:
        # Reordering areas names no area, and changes no name.
        if (area_id := event.data["area_id"]) is not None:
            on_change(Registry.AREA, [area_id])

    @callback
    def floor_updated(event: Event[fr.EventFloorRegistryUpdatedData]) -> None:
        # Reordering floors names no floor, and changes no name.
        if event.data["action"] != "reorder":
            on_change(Registry.FLOOR, [event.data["floor_id"]])

    @callback
    def label_updated(event: Event[lr.EventLabelRegistryUpdatedData]) -> None:
        on_change(Registry.LABEL, [event.data["label_id"]])

    bus = hass.bus
    unsubscribers = [
        bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, entity_updated),
        bus.async_listen(dr.EVENT_DEVICE_REGISTRY_UPDATED, device_updated),
        bus.async_listen(ar.EVENT_AREA_REGISTRY_UPDATED, area_updated),
        bus.async_listen(fr.EVENT_FLOOR_REGISTRY_UPDATED, floor_updated),
        bus.async_listen(lr.EVENT_LABEL_REGISTRY_UPDATED, label_updated),
    ]

    @callback
    def unsubscribe() -> None:
        while unsubscribers:
            unsubscribers.pop()()

    return unsubscribe
