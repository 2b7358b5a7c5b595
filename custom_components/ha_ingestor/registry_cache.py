"""What the registries say about each entity, kept in memory for the hot path.

The encoder and the filter need an entity's device class, area, floor, device and
labels for every state change. Reading them from five registries each time would cost
far more than the rest of the work, so each entity's answer is computed once and kept
until a registry event says that something it was computed from has changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)

from .compat import effective_area_id


@dataclass(frozen=True, slots=True)
class EntityMetadata:
    """An entity's place in the registries, as far as the schema and filters use it."""

    device_class: str | None
    """The entity registry's device class (the user's choice, else the integration's)."""
    area_id: str | None
    """The entity's own area, else its device's (else that device's parent's)."""
    area: str | None
    """That area's name."""
    floor: str | None
    """The name of that area's floor."""
    device: str | None
    """The device's name as the user set it, else as its integration named it."""
    label_ids: frozenset[str]
    """The labels of the entity and of its device, as in Home Assistant's targets."""
    labels: tuple[str, ...]
    """The names of those labels, sorted."""
    platform: str | None = None
    """The integration that registered the entity."""


UNREGISTERED: Final = EntityMetadata(
    device_class=None,
    area_id=None,
    area=None,
    floor=None,
    device=None,
    label_ids=frozenset(),
    labels=(),
)
"""The metadata of an entity the entity registry does not know (it has no unique id)."""

# Which registry a source of an entity's metadata is in; areas, floors and labels use
# the same kind of ids (slugs), so an id alone could name entries of several.
_DEVICE: Final = "device"
_AREA: Final = "area"
_FLOOR: Final = "floor"
_LABEL: Final = "label"

type _Source = tuple[str, str]


class RegistryCache:
    """Each entity's registry metadata, looked up once and refreshed on registry events."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Prepare an empty cache; async_start follows the registries' changes."""
        self._hass = hass
        self._metadata: dict[str, EntityMetadata] = {}
        # The device, area, floor and label entries each cached entity's metadata was
        # read from: an update of any of them refreshes it.
        self._sources: dict[str, frozenset[_Source]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._unsubscribers: list[Callable[[], None]] = []

    @callback
    def async_start(self) -> None:
        """Follow the entity, device, area, floor and label registries."""
        bus = self._hass.bus
        self._unsubscribers = [
            bus.async_listen(
                er.EVENT_ENTITY_REGISTRY_UPDATED, self._async_entity_registry_updated
            ),
            bus.async_listen(
                dr.EVENT_DEVICE_REGISTRY_UPDATED, self._async_device_registry_updated
            ),
            bus.async_listen(
                ar.EVENT_AREA_REGISTRY_UPDATED, self._async_area_registry_updated
            ),
            bus.async_listen(
                fr.EVENT_FLOOR_REGISTRY_UPDATED, self._async_floor_registry_updated
            ),
            bus.async_listen(
                lr.EVENT_LABEL_REGISTRY_UPDATED, self._async_label_registry_updated
            ),
        ]

    @callback
    def async_stop(self) -> None:
        """Stop following the registries, and forget what would no longer be updated."""
        while self._unsubscribers:
            self._unsubscribers.pop()()
        self._metadata.clear()
        self._sources.clear()

    def get(self, entity_id: str) -> EntityMetadata:
        """Return the entity's metadata: from memory, or from the registries once."""
        try:
            return self._metadata[entity_id]
        except KeyError:
            metadata, self._sources[entity_id] = self._look_up(entity_id)
            self._metadata[entity_id] = metadata
            return metadata

    @callback
    def async_listen(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Call `on_change` whenever the metadata of an entity asked about changes."""
        self._listeners.append(on_change)

        @callback
        def unsubscribe() -> None:
            self._listeners.remove(on_change)

        return unsubscribe

    def _look_up(self, entity_id: str) -> tuple[EntityMetadata, frozenset[_Source]]:
        """Read an entity's metadata from the registries, and what it was read from."""
        entity = er.async_get(self._hass).async_get(entity_id)
        if entity is None:
            return UNREGISTERED, frozenset()
        sources: set[_Source] = set()
        device = None
        if entity.device_id is not None:
            sources.add((_DEVICE, entity.device_id))
            device = dr.async_get(self._hass).async_get(entity.device_id)
            # A child device without an area of its own is in its parent's.
            if device is not None and not isinstance(device, dr.DeviceEntry):
                sources.add((_DEVICE, device.parent_device_id))
        area = floor = None
        if (area_id := effective_area_id(self._hass, entity)) is not None:
            sources.add((_AREA, area_id))
            area_entry = ar.async_get(self._hass).async_get_area(area_id)
            if area_entry is not None:
                area = area_entry.name
                if area_entry.floor_id is not None:
                    sources.add((_FLOOR, area_entry.floor_id))
                    floor_entry = fr.async_get(self._hass).async_get_floor(
                        area_entry.floor_id
                    )
                    floor = None if floor_entry is None else floor_entry.name
        label_ids = frozenset(entity.labels).union(
            () if device is None else device.labels
        )
        sources.update((_LABEL, label_id) for label_id in label_ids)
        label_registry = lr.async_get(self._hass)
        labels = sorted(
            label.name
            for label_id in label_ids
            if (label := label_registry.async_get_label(label_id)) is not None
        )
        metadata = EntityMetadata(
            device_class=entity.device_class or entity.original_device_class,
            area_id=area_id,
            area=area,
            floor=floor,
            device=None if device is None else device.name_by_user or device.name,
            label_ids=label_ids,
            labels=tuple(labels),
            platform=entity.platform,
        )
        return metadata, frozenset(sources)

    @callback
    def _async_refresh(self, entity_ids: Iterable[str]) -> None:
        """Read these entities again; tell the listeners if any of them changed.

        Entities nobody asked about are left alone: they are read when first asked.
        """
        changed = False
        for entity_id in entity_ids:
            if (cached := self._metadata.get(entity_id)) is None:
                continue
            metadata, self._sources[entity_id] = self._look_up(entity_id)
            # Unchanged metadata stays the same object, which users may compare by
            # identity to know whether what they built from it still holds.
            if metadata != cached:
                self._metadata[entity_id] = metadata
                changed = True
        if changed:
            for listener in list(self._listeners):
                listener()

    @callback
    def _async_refresh_users_of(self, source: _Source) -> None:
        self._async_refresh(
            [
                entity_id
                for entity_id, sources in self._sources.items()
                if source in sources
            ]
        )

    @callback
    def _async_entity_registry_updated(
        self, event: Event[er.EventEntityRegistryUpdatedData]
    ) -> None:
        data = event.data
        entity_ids = [data["entity_id"]]
        # A renamed entity: what was cached under its old id is read again (and found
        # unregistered).
        if data["action"] == "update" and "old_entity_id" in data:
            entity_ids.append(data["old_entity_id"])
        self._async_refresh(entity_ids)

    @callback
    def _async_device_registry_updated(
        self, event: Event[dr.EventDeviceRegistryUpdatedData]
    ) -> None:
        self._async_refresh_users_of((_DEVICE, event.data["device_id"]))

    @callback
    def _async_area_registry_updated(
        self, event: Event[ar.EventAreaRegistryUpdatedData]
    ) -> None:
        # Reordering areas names no area, and changes no name.
        if (area_id := event.data["area_id"]) is not None:
            self._async_refresh_users_of((_AREA, area_id))

    @callback
    def _async_floor_registry_updated(
        self, event: Event[fr.EventFloorRegistryUpdatedData]
    ) -> None:
        # Reordering floors names no floor, and changes no name.
        if event.data["action"] != "reorder":
            self._async_refresh_users_of((_FLOOR, event.data["floor_id"]))

    @callback
    def _async_label_registry_updated(
        self, event: Event[lr.EventLabelRegistryUpdatedData]
    ) -> None:
        self._async_refresh_users_of((_LABEL, event.data["label_id"]))
