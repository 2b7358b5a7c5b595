"""What the registries say about each entity, kept in memory for the hot path.

The encoder and the filter need an entity's device class, area, floor, device and
labels for every state change. Reading them from five registries each time would cost
far more than the rest of the work, so each entity's answer is computed once and kept
until a registry event says that something it was computed from has changed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)

from ..compat import effective_area_id
from .events import Registry, async_track_registry_changes


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

# A registry entry an entity's metadata was read from: areas, floors and labels use the
# same kind of ids (slugs), so an id alone could name entries of several registries.
type _Source = tuple[Registry, str]

type MetadataChanged = Callable[[Collection[str]], None]
"""Called with the ids of the entities whose metadata changed."""


class RegistryCache:
    """Each entity's registry metadata, looked up once and refreshed on registry events.

    A reverse index from each registry entry to the entities read from it lets a
    change of a device, area, floor or label touch only those entities.
    """

    def __init__(self, hass: HomeAssistant) -> None:
        """Prepare an empty cache; async_start follows the registries' changes."""
        self._hass = hass
        self._metadata: dict[str, EntityMetadata] = {}
        # The device, area, floor and label entries each cached entity's metadata was
        # read from, and the other way round.
        self._sources: dict[str, frozenset[_Source]] = {}
        self._users: dict[_Source, set[str]] = {}
        self._listeners: list[MetadataChanged] = []
        self._unsubscribe: Callable[[], None] | None = None

    @callback
    def async_start(self) -> None:
        """Follow the entity, device, area, floor and label registries."""
        self._unsubscribe = async_track_registry_changes(
            self._hass, self._async_registry_changed
        )

    @callback
    def async_stop(self) -> None:
        """Stop following the registries, and forget what would no longer be updated."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._metadata.clear()
        self._sources.clear()
        self._users.clear()

    def get(self, entity_id: str) -> EntityMetadata:
        """Return the entity's metadata: from memory, or from the registries once."""
        try:
            return self._metadata[entity_id]
        except KeyError:
            metadata = self._metadata[entity_id] = self._read(entity_id)
            return metadata

    @callback
    def async_listen(self, on_change: MetadataChanged) -> Callable[[], None]:
        """Call `on_change` with the entities asked about whose metadata changed."""
        self._listeners.append(on_change)

        @callback
        def unsubscribe() -> None:
            self._listeners.remove(on_change)

        return unsubscribe

    def _read(self, entity_id: str) -> EntityMetadata:
        """Read an entity's metadata, and index the entries it was read from."""
        metadata, sources = self._look_up(entity_id)
        before = self._sources.get(entity_id, frozenset())
        for source in before - sources:
            users = self._users[source]
            users.discard(entity_id)
            if not users:
                del self._users[source]
        for source in sources - before:
            self._users.setdefault(source, set()).add(entity_id)
        self._sources[entity_id] = sources
        return metadata

    def _look_up(self, entity_id: str) -> tuple[EntityMetadata, frozenset[_Source]]:
        """Read an entity's metadata from the registries, and what it was read from."""
        entity = er.async_get(self._hass).async_get(entity_id)
        if entity is None:
            return UNREGISTERED, frozenset()
        sources: set[_Source] = set()
        device = None
        if entity.device_id is not None:
            sources.add((Registry.DEVICE, entity.device_id))
            device = dr.async_get(self._hass).async_get(entity.device_id)
            # A child device without an area of its own is in its parent's.
            if device is not None and not isinstance(device, dr.DeviceEntry):
                sources.add((Registry.DEVICE, device.parent_device_id))
        area = floor = None
        if (area_id := effective_area_id(self._hass, entity)) is not None:
            sources.add((Registry.AREA, area_id))
            area_entry = ar.async_get(self._hass).async_get_area(area_id)
            if area_entry is not None:
                area = area_entry.name
                if area_entry.floor_id is not None:
                    sources.add((Registry.FLOOR, area_entry.floor_id))
                    floor_entry = fr.async_get(self._hass).async_get_floor(
                        area_entry.floor_id
                    )
                    floor = None if floor_entry is None else floor_entry.name
        label_ids = frozenset(entity.labels).union(
            () if device is None else device.labels
        )
        sources.update((Registry.LABEL, label_id) for label_id in label_ids)
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
    def _async_registry_changed(self, registry: Registry, ids: list[str]) -> None:
        """Read the entities again that these entries concern; tell who listens.

        Entities nobody asked about are left alone: they are read when first asked.
        """
        if registry is Registry.ENTITY:
            entity_ids: Iterable[str] = ids
        else:
            entity_ids = {
                entity_id
                for entry_id in ids
                for entity_id in self._users.get((registry, entry_id), ())
            }
        changed = []
        for entity_id in entity_ids:
            if (cached := self._metadata.get(entity_id)) is None:
                continue
            # Unchanged metadata stays the same object, which users may compare by
            # identity to know whether what they built from it still holds.
            if (metadata := self._read(entity_id)) != cached:
                self._metadata[entity_id] = metadata
                changed.append(entity_id)
        if changed:
            for listener in list(self._listeners):
                listener(changed)
