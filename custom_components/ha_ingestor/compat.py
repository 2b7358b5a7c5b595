"""What differs between the Home Assistant releases HA Ingestor runs on: 2026.3 to 2026.11.

Everywhere else the integration uses only what every one of them has. What only some
have is read here, one code path for all:

- Form schemas: 2026.10 replaced voluptuous with probatio and installs probatio under
  the name `voluptuous` (the same objects), so `vol` is the schema library of every
  release. Its types are probatio's, which the tests' Home Assistant expects.
- Devices: until 2026.7 a device may belong to several config entries (one of them
  primary); from 2026.8 to exactly one, a device shared before is split into one per
  entry, and the old id names a composite of them that is never stored. 2026.9 added
  child devices, parts of a parent device, in its area unless given one of their own:
  a device that is not a `DeviceEntry` is one (and has a `parent_device_id`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er

if TYPE_CHECKING:
    import probatio as vol
else:
    import voluptuous as vol

__all__ = [
    "all_devices",
    "device_config_entry",
    "effective_area_id",
    "stored_device",
    "vol",
]


def effective_area_id(hass: HomeAssistant, entity: er.RegistryEntry) -> str | None:
    """Return an entity's area: its own, else its device's, else its parent's."""
    if entity.area_id is not None or entity.device_id is None:
        return entity.area_id
    registry = dr.async_get(hass)
    device = registry.async_get(entity.device_id)
    if (
        device is not None
        and device.area_id is None
        and not isinstance(device, dr.DeviceEntry)
    ):
        device = registry.async_get(device.parent_device_id)
    return None if device is None else device.area_id


def all_devices(hass: HomeAssistant) -> list[dr.AnyDeviceEntry]:
    """Return every device and child device in the registry."""
    registry = dr.async_get(hass)
    # Every device belongs to a config entry (before 2026.8, maybe to several).
    devices: dict[str, dr.AnyDeviceEntry] = {
        device.id: device
        for entry in hass.config_entries.async_entries()
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
    }
    children: tuple[dr.ChildDeviceEntry, ...] = tuple(
        getattr(registry, "child_devices", ())
    )
    devices.update((child.id, child) for child in children)
    return list(devices.values())


def stored_device(hass: HomeAssistant, device_id: str) -> dr.AnyDeviceEntry | None:
    """Return the device or child device with this id; None for a composite's id.

    The registry makes a composite up from the devices it was split into, which refer
    to it by `composite_device_id`, and gives it their reference as its id.
    """
    device = dr.async_get(hass).async_get(device_id)
    if device is None or getattr(device, "composite_device_id", None) == device_id:
        return None
    return device


def device_config_entry(device: dr.AnyDeviceEntry) -> tuple[str | None, str | None]:
    """Return the config entry and subentry a device belongs to.

    Before 2026.8, where it may belong to several: its primary one, and no subentry.
    """
    entry_id: str | None = getattr(device, "config_entry_id", None)
    subentry_id: str | None = getattr(device, "config_subentry_id", None)
    return entry_id or device.primary_config_entry, subentry_id
