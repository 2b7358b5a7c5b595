"""How registry entries become the mirror's rows, in the column order of `tables.TABLES`.

Read in the event loop: the registries are not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)

from ..compat import all_devices, device_config_entry, stored_device
from .tables import AREAS, DEVICES, ENTITIES, FLOORS, LABELS, Mirrored, Row, Table


def _time(moment: datetime) -> str:
    # Fixed width, so that the text sorts like the time; SQLite's date functions and
    # Grafana read it as RFC 3339.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _text(value: str | None) -> str | None:
    # Enum members (disabled_by, entity_category) as their plain value.
    return None if value is None else str(value)


def _chosen[E](
    keys: Iterable[str] | None,
    every: Callable[[], Iterable[E]],
    get: Callable[[str], E | None],
) -> Iterable[E]:
    """Return the entries with these keys that exist, or every entry (keys None)."""
    return every() if keys is None else filter(None, map(get, keys))


def floor_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the floors with these ids (that exist), or of all floors."""
    registry = fr.async_get(hass)
    floors = _chosen(keys, registry.async_list_floors, registry.async_get_floor)
    return {
        floor.floor_id: Mirrored(
            (
                floor.floor_id,
                floor.name,
                floor.level,
                floor.icon,
                _time(floor.created_at),
                _time(floor.modified_at),
            ),
            frozenset(),
        )
        for floor in floors
    }


def label_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the labels with these ids (that exist), or of all labels."""
    registry = lr.async_get(hass)
    labels = _chosen(keys, registry.async_list_labels, registry.async_get_label)
    return {
        label.label_id: Mirrored(
            (
                label.label_id,
                label.name,
                label.description,
                label.color,
                label.icon,
                _time(label.created_at),
                _time(label.modified_at),
            ),
            frozenset(),
        )
        for label in labels
    }


def area_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the areas with these ids (that exist), or of all areas."""
    registry = ar.async_get(hass)
    areas = _chosen(keys, registry.async_list_areas, registry.async_get_area)
    return {
        area.id: Mirrored(
            (
                area.id,
                area.name,
                area.floor_id,
                area.icon,
                area.picture,
                area.temperature_entity_id,
                area.humidity_entity_id,
                _time(area.created_at),
                _time(area.modified_at),
            ),
            frozenset(area.labels),
        )
        for area in areas
    }


def device_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the devices with these ids (that exist), or of all devices.

    Child devices (parts of a parent device) are rows too, with `parent_device_id`
    set and no manufacturer, model or versions of their own.
    """
    # A composite device id (of a device split in Home Assistant 2026) names no
    # device of its own: its parts are mirrored under their own ids.
    devices = _chosen(keys, partial(all_devices, hass), partial(stored_device, hass))
    return {device.id: _device_row(device) for device in devices}


def _device_row(device: dr.AnyDeviceEntry) -> Mirrored:
    # A child device is a part of its parent: the hardware is the parent's.
    hardware: Row
    if not isinstance(device, dr.DeviceEntry):
        parent_device_id: str | None = device.parent_device_id
        hardware = (None,) * 8
    else:
        parent_device_id = None
        hardware = (
            device.manufacturer,
            device.model,
            device.model_id,
            device.serial_number,
            device.sw_version,
            device.hw_version,
            device.via_device_id,
            _text(device.entry_type),
        )
    return Mirrored(
        (
            device.id,
            parent_device_id,
            device.name,
            device.name_by_user,
            *hardware,
            device.area_id,
            _text(device.disabled_by),
            *device_config_entry(device),
            _time(device.created_at),
            _time(device.modified_at),
        ),
        frozenset(device.labels),
    )


def entity_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the entities with these ids (that exist), or of all entities."""
    entities = er.async_get(hass).entities
    chosen = _chosen(keys, entities.values, entities.get)
    return {entity.entity_id: _entity_row(entity) for entity in chosen}


def _entity_row(entity: er.RegistryEntry) -> Mirrored:
    return Mirrored(
        (
            entity.entity_id,
            entity.id,
            entity.domain,
            entity.entity_id.partition(".")[2],
            entity.platform,
            entity.unique_id,
            entity.device_id,
            entity.area_id,
            entity.name,
            entity.original_name,
            int(entity.has_entity_name),
            entity.device_class,
            entity.original_device_class,
            entity.unit_of_measurement,
            _text(entity.entity_category),
            _text(entity.disabled_by),
            _text(entity.hidden_by),
            entity.config_entry_id,
            entity.config_subentry_id,
            _time(entity.created_at),
            _time(entity.modified_at),
        ),
        frozenset(entity.labels),
    )


type RowReader = Callable[[HomeAssistant, Iterable[str] | None], dict[str, Mirrored]]
"""Returns the rows of entries with the given keys (that exist), or of all (None)."""

READERS: Final[dict[Table, RowReader]] = {
    FLOORS: floor_rows,
    LABELS: label_rows,
    AREAS: area_rows,
    DEVICES: device_rows,
    ENTITIES: entity_rows,
}
