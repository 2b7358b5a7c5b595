"""The one subscription to the five registries, against Home Assistant's real registries.

Every change is made through a registry's own methods, as integrations and the UI
make them; what the subscription reports is compared with the ids those calls
returned, never with the events' data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import logging

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.registry.events import (
    Registry,
    async_track_registry_changes,
)

type Change = tuple[Registry, list[str]]


@dataclass
class Tracked:
    """The changes the subscription reported, in order, and how to end it."""

    changes: list[Change]
    unsubscribe: CALLBACK_TYPE

    def take(self) -> list[Change]:
        """The changes reported since the last call."""
        taken, self.changes[:] = list(self.changes), []
        return taken


@pytest.fixture
def tracked(hass: HomeAssistant) -> Iterator[Tracked]:
    """A subscription that records what it is told, ended after the test."""
    changes: list[Change] = []

    @callback
    def on_change(registry: Registry, ids: list[str]) -> None:
        changes.append((registry, ids))

    tracked = Tracked(changes, async_track_registry_changes(hass, on_change))
    yield tracked
    tracked.unsubscribe()


@pytest.fixture
def owner(hass: HomeAssistant) -> MockConfigEntry:
    """A config entry that devices and entities can belong to."""
    entry = MockConfigEntry(domain="test")
    entry.add_to_hass(hass)
    return entry


async def test_entity_create_update_remove(
    hass: HomeAssistant, tracked: Tracked
) -> None:
    """Each names the entity's id."""
    entities = er.async_get(hass)
    entity_id = entities.async_get_or_create("sensor", "test", "power").entity_id
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.ENTITY, [entity_id])]

    entities.async_update_entity(entity_id, name="Power", labels={"energy"})
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.ENTITY, [entity_id])]

    entities.async_remove(entity_id)
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.ENTITY, [entity_id])]


async def test_entity_rename_names_the_new_and_the_old_id(
    hass: HomeAssistant, tracked: Tracked
) -> None:
    """What was known under the old id is gone: both ids, the new one first."""
    entities = er.async_get(hass)
    entity_id = entities.async_get_or_create("sensor", "test", "power").entity_id
    await hass.async_block_till_done()
    tracked.take()

    entities.async_update_entity(entity_id, new_entity_id="sensor.grid_power")
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.ENTITY, ["sensor.grid_power", entity_id])]

    # An update that keeps the id names it once.
    entities.async_update_entity("sensor.grid_power", name="Grid")
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.ENTITY, ["sensor.grid_power"])]


async def test_device_create_update_remove(
    hass: HomeAssistant, tracked: Tracked, owner: MockConfigEntry
) -> None:
    """Each names the device's id; a child device names its own."""
    devices = dr.async_get(hass)
    device = devices.async_get_or_create(
        config_entry_id=owner.entry_id, identifiers={("test", "meter")}, name="Meter"
    )
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.DEVICE, [device.id])]

    devices.async_update_device(device.id, name_by_user="Grid meter")
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.DEVICE, [device.id])]

    child = devices.async_get_or_create_child(
        config_entry_id=owner.entry_id,
        identifiers={("test", "meter-phase-1")},
        name="Phase 1",
        parent_device_id=device.id,
    )
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.DEVICE, [child.id])]

    devices.async_update_child_device(child.id, name_by_user="L1")
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.DEVICE, [child.id])]

    devices.async_remove_device(child.id)
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.DEVICE, [child.id])]

    devices.async_remove_device(device.id)
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.DEVICE, [device.id])]


async def test_area_create_update_remove(hass: HomeAssistant, tracked: Tracked) -> None:
    """Each names the area's id."""
    areas = ar.async_get(hass)
    area = areas.async_create("Kitchen")
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.AREA, [area.id])]

    areas.async_update(area.id, name="Cooking", icon="mdi:pot")
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.AREA, [area.id])]

    areas.async_delete(area.id)
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.AREA, [area.id])]


async def test_floor_create_update_remove(
    hass: HomeAssistant, tracked: Tracked
) -> None:
    """Each names the floor's id."""
    floors = fr.async_get(hass)
    floor = floors.async_create("Ground floor", level=0)
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.FLOOR, [floor.floor_id])]

    floors.async_update(floor.floor_id, name="Ground", level=1)
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.FLOOR, [floor.floor_id])]

    floors.async_delete(floor.floor_id)
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.FLOOR, [floor.floor_id])]


async def test_label_create_update_remove(
    hass: HomeAssistant, tracked: Tracked
) -> None:
    """Each names the label's id."""
    labels = lr.async_get(hass)
    label = labels.async_create("Energy", color="green")
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.LABEL, [label.label_id])]

    labels.async_update(label.label_id, name="Power", color="red")
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.LABEL, [label.label_id])]

    labels.async_delete(label.label_id)
    await hass.async_block_till_done()
    assert tracked.take() == [(Registry.LABEL, [label.label_id])]


async def test_reordering_areas_and_floors_names_nothing(
    hass: HomeAssistant, tracked: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    """A new order changes no entry: nothing is reported, and nothing fails."""
    areas, floors = ar.async_get(hass), fr.async_get(hass)
    kitchen, hall = areas.async_create("Kitchen"), areas.async_create("Hall")
    ground, attic = floors.async_create("Ground"), floors.async_create("Attic")
    await hass.async_block_till_done()
    tracked.take()

    areas.async_reorder([hall.id, kitchen.id])
    floors.async_reorder([attic.floor_id, ground.floor_id])
    await hass.async_block_till_done()
    assert [area.id for area in areas.async_list_areas()] == [hall.id, kitchen.id]
    assert tracked.take() == []
    # A listener that failed on the reorder's data would only be logged.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_cascades_name_every_entry_they_change(
    hass: HomeAssistant, tracked: Tracked, owner: MockConfigEntry
) -> None:
    """What Home Assistant changes in other registries on a removal is named too."""
    floors, areas, labels = fr.async_get(hass), ar.async_get(hass), lr.async_get(hass)
    devices, entities = dr.async_get(hass), er.async_get(hass)
    floor = floors.async_create("Ground")
    area = areas.async_create("Kitchen", floor_id=floor.floor_id)
    label = labels.async_create("Energy")
    device = devices.async_get_or_create(
        config_entry_id=owner.entry_id, identifiers={("test", "meter")}, name="Meter"
    )
    devices.async_update_device(device.id, labels={label.label_id})
    entity_id = entities.async_get_or_create(
        "sensor", "test", "power", config_entry=owner, device_id=device.id
    ).entity_id
    entities.async_update_entity(entity_id, labels={label.label_id})
    await hass.async_block_till_done()
    tracked.take()

    floors.async_delete(floor.floor_id)
    await hass.async_block_till_done()
    assert sorted(tracked.take()) == [
        (Registry.AREA, [area.id]),
        (Registry.FLOOR, [floor.floor_id]),
    ]

    labels.async_delete(label.label_id)
    await hass.async_block_till_done()
    assert sorted(tracked.take()) == [
        (Registry.DEVICE, [device.id]),
        (Registry.ENTITY, [entity_id]),
        (Registry.LABEL, [label.label_id]),
    ]

    devices.async_remove_device(device.id)
    await hass.async_block_till_done()
    assert sorted(tracked.take()) == [
        (Registry.DEVICE, [device.id]),
        (Registry.ENTITY, [entity_id]),
    ]


async def test_unsubscribe_stops_everything(
    hass: HomeAssistant, tracked: Tracked, owner: MockConfigEntry
) -> None:
    """After unsubscribing, no registry's change is reported; twice is harmless."""
    areas, floors = ar.async_get(hass), fr.async_get(hass)
    kitchen = areas.async_create("Kitchen")
    ground = floors.async_create("Ground")
    await hass.async_block_till_done()
    tracked.take()

    tracked.unsubscribe()
    tracked.unsubscribe()
    entity_id = er.async_get(hass).async_get_or_create("sensor", "test", "x").entity_id
    er.async_get(hass).async_update_entity(entity_id, new_entity_id="sensor.y")
    dr.async_get(hass).async_get_or_create(
        config_entry_id=owner.entry_id, identifiers={("test", "meter")}
    )
    areas.async_update(kitchen.id, name="Cooking")
    floors.async_update(ground.floor_id, name="Ground floor")
    lr.async_get(hass).async_create("Energy")
    await hass.async_block_till_done()
    assert tracked.take() == []
