"""The registry cache against Home Assistant's real registries and their events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_INCLUDE_AREAS,
    CONF_PRESET,
    PRESET_RICH,
)
from custom_components.ha_ingestor.line_protocol import create_encoder
from custom_components.ha_ingestor.pipeline.filters import StateFilter
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import (
    UNREGISTERED,
    EntityMetadata,
    RegistryCache,
)

from ..line_protocol.helpers import parse_influx_line


@dataclass
class Home:
    """A floor, an area on it, two labels, a device in the area and its entity."""

    cache: RegistryCache
    changes: list[list[str]]
    """The entity ids of each change listeners heard of."""
    """One item per call of the cache's listener."""
    owner: MockConfigEntry
    floor: fr.FloorEntry
    area: ar.AreaEntry
    climate: lr.LabelEntry
    heating: lr.LabelEntry
    device: dr.DeviceEntry
    entity_id: str


@pytest.fixture
def home(hass: HomeAssistant) -> Iterator[Home]:
    """Registries filled as a user would, and a started cache with a listener."""
    owner = MockConfigEntry(domain="test")
    owner.add_to_hass(hass)
    floor = fr.async_get(hass).async_create("Ground floor")
    area = ar.async_get(hass).async_create("Living room", floor_id=floor.floor_id)
    labels = lr.async_get(hass)
    climate = labels.async_create("Climate")
    heating = labels.async_create("Heating")
    devices = dr.async_get(hass)
    device = devices.async_get_or_create(
        config_entry_id=owner.entry_id,
        identifiers={("test", "thermometer")},
        name="Thermometer",
    )
    devices.async_update_device(device.id, area_id=area.id, labels={heating.label_id})
    entity = er.async_get(hass).async_get_or_create(
        "sensor",
        "test",
        "temperature",
        config_entry=owner,
        device_id=device.id,
        original_device_class="temperature",
        # A name of its own: an entity of a device may then have its own area.
        original_name="Temperature",
        suggested_object_id="living_room_temperature",
    )
    er.async_get(hass).async_update_entity(entity.entity_id, labels={climate.label_id})
    cache = RegistryCache(hass)
    cache.async_start()
    changes: list[list[str]] = []
    unsubscribe = cache.async_listen(
        lambda entity_ids: changes.append(list(entity_ids))
    )
    yield Home(
        cache, changes, owner, floor, area, climate, heating, device, entity.entity_id
    )
    unsubscribe()
    cache.async_stop()


def _metadata(home: Home, **changes: object) -> EntityMetadata:
    """The home entity's metadata as set up, with `changes`."""
    metadata = {
        "device_class": "temperature",
        "area_id": home.area.id,
        "area": "Living room",
        "floor": "Ground floor",
        "device": "Thermometer",
        "label_ids": frozenset({home.climate.label_id, home.heating.label_id}),
        "labels": ("Climate", "Heating"),
        "platform": "test",
    }
    return EntityMetadata(**(metadata | changes))  # type: ignore[arg-type]


async def test_metadata_from_the_registries(hass: HomeAssistant, home: Home) -> None:
    """Area, floor and device name come through the device; labels from both."""
    assert home.cache.get(home.entity_id) == _metadata(home)
    assert home.cache.get("sensor.not_registered") is UNREGISTERED


async def test_looked_up_once(hass: HomeAssistant, home: Home) -> None:
    """After the first time, the registries are not read again."""
    metadata = home.cache.get(home.entity_id)
    with patch.object(er, "async_get", side_effect=AssertionError("read again")):
        assert home.cache.get(home.entity_id) is metadata


async def test_follows_the_entity(hass: HomeAssistant, home: Home) -> None:
    """The entity's own area, device class and labels, its id and its removal."""
    entities = er.async_get(hass)
    kitchen = ar.async_get(hass).async_create("Kitchen")
    home.cache.get(home.entity_id)

    entities.async_update_entity(home.entity_id, area_id=kitchen.id)
    await hass.async_block_till_done()
    assert home.cache.get(home.entity_id) == _metadata(
        home, area_id=kitchen.id, area="Kitchen", floor=None
    )
    assert len(home.changes) == 1

    entities.async_update_entity(
        home.entity_id, area_id=None, device_class="humidity", labels=set()
    )
    await hass.async_block_till_done()
    assert home.cache.get(home.entity_id) == _metadata(
        home,
        device_class="humidity",
        label_ids=frozenset({home.heating.label_id}),
        labels=("Heating",),
    )
    assert len(home.changes) == 2

    entities.async_update_entity(home.entity_id, new_entity_id="sensor.renamed")
    await hass.async_block_till_done()
    assert home.cache.get(home.entity_id) is UNREGISTERED
    assert home.cache.get("sensor.renamed").device_class == "humidity"
    assert len(home.changes) == 3

    entities.async_remove("sensor.renamed")
    await hass.async_block_till_done()
    assert home.cache.get("sensor.renamed") is UNREGISTERED
    assert len(home.changes) == 4


async def test_follows_the_device(hass: HomeAssistant, home: Home) -> None:
    """The device's area, name and labels, and its removal."""
    devices = dr.async_get(hass)
    hall = ar.async_get(hass).async_create("Hall")
    home.cache.get(home.entity_id)

    devices.async_update_device(
        home.device.id, area_id=hall.id, name_by_user="My thermometer", labels=set()
    )
    await hass.async_block_till_done()
    assert home.cache.get(home.entity_id) == _metadata(
        home,
        area_id=hall.id,
        area="Hall",
        floor=None,
        device="My thermometer",
        label_ids=frozenset({home.climate.label_id}),
        labels=("Climate",),
    )
    assert len(home.changes) == 1

    # What the cache does not keep changes nothing.
    devices.async_update_device(home.device.id, sw_version="2.0")
    await hass.async_block_till_done()
    assert len(home.changes) == 1

    devices.async_remove_device(home.device.id)
    await hass.async_block_till_done()
    metadata = home.cache.get(home.entity_id)
    assert metadata.device is None
    assert metadata.area is None


async def test_follows_areas_floors_and_labels(hass: HomeAssistant, home: Home) -> None:
    """Renamed, moved and removed areas, floors and labels."""
    areas, floors, labels = ar.async_get(hass), fr.async_get(hass), lr.async_get(hass)
    home.cache.get(home.entity_id)

    areas.async_update(home.area.id, name="Lounge")
    floors.async_update(home.floor.floor_id, name="First floor")
    labels.async_update(home.climate.label_id, name="Air")
    await hass.async_block_till_done()
    assert home.cache.get(home.entity_id) == _metadata(
        home, area="Lounge", floor="First floor", labels=("Air", "Heating")
    )
    assert len(home.changes) == 3

    attic = floors.async_create("Attic")
    areas.async_update(home.area.id, floor_id=attic.floor_id)
    await hass.async_block_till_done()
    assert home.cache.get(home.entity_id).floor == "Attic"

    floors.async_delete(attic.floor_id)
    labels.async_delete(home.climate.label_id)
    await hass.async_block_till_done()
    assert home.cache.get(home.entity_id) == _metadata(
        home,
        area="Lounge",
        floor=None,
        label_ids=frozenset({home.heating.label_id}),
        labels=("Heating",),
    )

    areas.async_delete(home.area.id)
    await hass.async_block_till_done()
    metadata = home.cache.get(home.entity_id)
    assert (metadata.area_id, metadata.area) == (None, None)


async def test_child_device_in_its_parents_area(
    hass: HomeAssistant, home: Home
) -> None:
    """An entity of a child device without an area follows its parent's area."""
    devices = dr.async_get(hass)
    child = devices.async_get_or_create_child(
        config_entry_id=home.owner.entry_id,
        identifiers={("test", "probe")},
        name="Probe",
        parent_device_id=home.device.id,
    )
    entity = er.async_get(hass).async_get_or_create(
        "sensor", "test", "probe", config_entry=home.owner, device_id=child.id
    )
    assert home.cache.get(entity.entity_id).area == "Living room"
    assert home.cache.get(entity.entity_id).device == "Probe"

    hall = ar.async_get(hass).async_create("Hall")
    devices.async_update_device(home.device.id, area_id=hall.id)
    await hass.async_block_till_done()
    assert home.cache.get(entity.entity_id).area == "Hall"


async def test_listeners(hass: HomeAssistant, home: Home) -> None:
    """Listeners hear of changes to what was asked about, until they unsubscribe."""
    areas = ar.async_get(hass)
    # Nothing asked yet: nothing to tell.
    areas.async_update(home.area.id, name="Lounge")
    await hass.async_block_till_done()
    assert home.changes == []

    assert home.cache.get(home.entity_id).area == "Lounge"
    later: list[list[str]] = []
    unsubscribe = home.cache.async_listen(
        lambda entity_ids: later.append(list(entity_ids))
    )
    areas.async_update(home.area.id, name="Living room")
    await hass.async_block_till_done()
    assert (len(home.changes), len(later)) == (1, 1)

    unsubscribe()
    areas.async_update(home.area.id, name="Lounge")
    await hass.async_block_till_done()
    assert (len(home.changes), len(later)) == (2, 1)


async def test_stop(hass: HomeAssistant, home: Home) -> None:
    """A stopped cache follows nothing, and reads the registries afresh if asked."""
    home.cache.get(home.entity_id)
    home.cache.async_stop()
    ar.async_get(hass).async_update(home.area.id, name="Lounge")
    await hass.async_block_till_done()
    assert home.changes == []
    assert home.cache.get(home.entity_id).area == "Lounge"


async def test_rich_lines_follow_the_registries(
    hass: HomeAssistant, home: Home
) -> None:
    """The rich encoder's tags change as soon as the registries do."""
    encoder = create_encoder({CONF_PRESET: PRESET_RICH}, home.cache, PipelineStats())

    def tags() -> dict[str, str]:
        state = State(home.entity_id, "21.5", {"unit_of_measurement": "°C"})
        line = encoder(state, None, 0)
        assert line is not None
        return parse_influx_line(line)[1]

    assert tags() == {
        "area": "Living room",
        "device": "Thermometer",
        "device_class": "temperature",
        "domain": "sensor",
        "entity_id": home.entity_id,
        "floor": "Ground floor",
        "labels": "Climate,Heating",
        "unit": "°C",
    }
    ar.async_get(hass).async_update(home.area.id, name="Lounge")
    await hass.async_block_till_done()
    assert tags()["area"] == "Lounge"


# ---------------------------------------------------------------------------------------
# The reverse index: a change of a device, area, floor or label reads again only the
# entities whose metadata was read from it.


@dataclass
class Rooms:
    """Two floors, two areas, three labels, two devices and a child, five entities.

    `temperature`, `probe`, `lamp` and `outdoor` were asked about; `unasked` was not.
    """

    cache: RegistryCache
    looked_up: list[str]
    """The entity ids the cache read from the registries, in order."""
    changes: list[list[str]]
    """The entity ids of each change listeners heard of."""
    ground: fr.FloorEntry
    attic: fr.FloorEntry
    kitchen: ar.AreaEntry
    hall: ar.AreaEntry
    climate: lr.LabelEntry
    heating: lr.LabelEntry
    lighting: lr.LabelEntry
    thermostat: dr.DeviceEntry
    probe_device: dr.ChildDeviceEntry
    lamp_device: dr.DeviceEntry
    temperature: str
    """On the thermostat (kitchen, ground floor, label heating); label climate."""
    probe: str
    """On the thermostat's child device, in its parent's area."""
    lamp: str
    """On the lamp device (hall, attic); label lighting."""
    outdoor: str
    """No device, no area, no label."""
    unasked: str
    """On the thermostat, never asked about."""

    async def settle(self, hass: HomeAssistant) -> tuple[set[str], list[list[str]]]:
        """Wait for the registries' events; take what was read and what changed."""
        await hass.async_block_till_done()
        looked_up, changes = set(self.looked_up), [sorted(c) for c in self.changes]
        self.looked_up.clear()
        self.changes.clear()
        return looked_up, changes


@pytest.fixture
def rooms(hass: HomeAssistant) -> Iterator[Rooms]:
    """The registries of Rooms, and a started cache that counts its look-ups."""
    owner = MockConfigEntry(domain="test")
    owner.add_to_hass(hass)
    floors, areas, labels = fr.async_get(hass), ar.async_get(hass), lr.async_get(hass)
    devices, entities = dr.async_get(hass), er.async_get(hass)
    ground, attic = floors.async_create("Ground"), floors.async_create("Attic")
    kitchen = areas.async_create("Kitchen", floor_id=ground.floor_id)
    hall = areas.async_create("Hall", floor_id=attic.floor_id)
    climate, heating = labels.async_create("Climate"), labels.async_create("Heating")
    lighting = labels.async_create("Lighting")
    thermostat = devices.async_get_or_create(
        config_entry_id=owner.entry_id,
        identifiers={("test", "thermostat")},
        name="Thermostat",
    )
    thermostat = devices.async_update_device(
        thermostat.id, area_id=kitchen.id, labels={heating.label_id}
    ) or pytest.fail("thermostat not updated")
    probe_device = devices.async_get_or_create_child(
        config_entry_id=owner.entry_id,
        identifiers={("test", "probe")},
        name="Probe",
        parent_device_id=thermostat.id,
    )
    lamp_device = devices.async_get_or_create(
        config_entry_id=owner.entry_id, identifiers={("test", "lamp")}, name="Lamp"
    )
    lamp_device = devices.async_update_device(
        lamp_device.id, area_id=hall.id
    ) or pytest.fail("lamp not updated")

    def entity(unique_id: str, device_id: str | None, *labels: str) -> str:
        entity_id = entities.async_get_or_create(
            "sensor",
            "test",
            unique_id,
            config_entry=owner,
            device_id=device_id,
            # A name of its own: an entity of a device may then have its own area.
            original_name=unique_id.title(),
        ).entity_id
        entities.async_update_entity(entity_id, labels=set(labels))
        return entity_id

    temperature = entity("temperature", thermostat.id, climate.label_id)
    probe = entity("probe", probe_device.id)
    lamp = entity("lamp", lamp_device.id, lighting.label_id)
    outdoor = entity("outdoor", None)
    unasked = entity("unasked", thermostat.id)

    cache = RegistryCache(hass)
    looked_up: list[str] = []
    look_up = cache._look_up

    def counting_look_up(entity_id: str) -> Any:
        looked_up.append(entity_id)
        return look_up(entity_id)

    changes: list[list[str]] = []
    with patch.object(cache, "_look_up", counting_look_up):
        cache.async_start()
        unsubscribe = cache.async_listen(
            lambda entity_ids: changes.append(list(entity_ids))
        )
        for entity_id in (temperature, probe, lamp, outdoor):
            cache.get(entity_id)
        looked_up.clear()
        yield Rooms(
            cache,
            looked_up,
            changes,
            ground,
            attic,
            kitchen,
            hall,
            climate,
            heating,
            lighting,
            thermostat,
            probe_device,
            lamp_device,
            temperature,
            probe,
            lamp,
            outdoor,
            unasked,
        )
        unsubscribe()
        cache.async_stop()


async def test_a_device_change_reads_only_its_entities(
    hass: HomeAssistant, rooms: Rooms
) -> None:
    """Its own entities and its child devices' (which may be in its area), no other."""
    devices = dr.async_get(hass)
    # Settled first: the fixture's own changes have no events left to deliver.
    assert await rooms.settle(hass) == (set(), [])

    devices.async_update_device(rooms.thermostat.id, name_by_user="Heating")
    assert await rooms.settle(hass) == (
        {rooms.temperature, rooms.probe},
        [[rooms.temperature]],  # the probe's device is still the Probe
    )
    assert rooms.cache.get(rooms.temperature).device == "Heating"

    devices.async_update_device(rooms.thermostat.id, area_id=rooms.hall.id)
    assert await rooms.settle(hass) == (
        {rooms.temperature, rooms.probe},
        [sorted([rooms.temperature, rooms.probe])],
    )
    assert rooms.cache.get(rooms.probe).area == "Hall"

    devices.async_update_child_device(rooms.probe_device.id, name_by_user="Probe 1")
    assert await rooms.settle(hass) == ({rooms.probe}, [[rooms.probe]])

    # Read again, found the same: nobody is told.
    devices.async_update_device(rooms.lamp_device.id, sw_version="2.0")
    assert await rooms.settle(hass) == ({rooms.lamp}, [])


async def test_an_area_change_reads_only_its_entities(
    hass: HomeAssistant, rooms: Rooms
) -> None:
    """The entities in the area, through their device or their own."""
    areas = ar.async_get(hass)
    areas.async_update(rooms.kitchen.id, name="Cooking")
    assert await rooms.settle(hass) == (
        {rooms.temperature, rooms.probe},
        [sorted([rooms.temperature, rooms.probe])],
    )
    areas.async_update(rooms.hall.id, name="Corridor")
    assert await rooms.settle(hass) == ({rooms.lamp}, [[rooms.lamp]])
    assert rooms.cache.get(rooms.lamp).area == "Corridor"

    # A new area: nothing was read from it.
    areas.async_create("Garden")
    assert await rooms.settle(hass) == (set(), [])


async def test_a_floor_change_reads_only_the_entities_of_its_areas(
    hass: HomeAssistant, rooms: Rooms
) -> None:
    """The entities whose area is on the floor."""
    floors = fr.async_get(hass)
    floors.async_update(rooms.attic.floor_id, name="Loft")
    assert await rooms.settle(hass) == ({rooms.lamp}, [[rooms.lamp]])
    assert rooms.cache.get(rooms.lamp).floor == "Loft"

    floors.async_update(rooms.ground.floor_id, name="Ground floor")
    assert await rooms.settle(hass) == (
        {rooms.temperature, rooms.probe},
        [sorted([rooms.temperature, rooms.probe])],
    )


async def test_a_label_change_reads_only_its_entities(
    hass: HomeAssistant, rooms: Rooms
) -> None:
    """The entities with the label, their own or their device's."""
    labels = lr.async_get(hass)
    labels.async_update(rooms.heating.label_id, name="Warmth")  # on the device
    assert await rooms.settle(hass) == ({rooms.temperature}, [[rooms.temperature]])
    assert rooms.cache.get(rooms.temperature).labels == ("Climate", "Warmth")

    labels.async_update(rooms.lighting.label_id, name="Light")
    assert await rooms.settle(hass) == ({rooms.lamp}, [[rooms.lamp]])

    labels.async_create("Spare")
    assert await rooms.settle(hass) == (set(), [])


async def test_a_moved_entity_is_no_longer_read_for_its_old_place(
    hass: HomeAssistant, rooms: Rooms
) -> None:
    """Moved to another device or area: the old one's changes leave it alone."""
    devices, areas = dr.async_get(hass), ar.async_get(hass)
    floors, entities = fr.async_get(hass), er.async_get(hass)

    # The lamp goes to the thermostat: now in the kitchen, on the ground floor.
    entities.async_update_entity(rooms.lamp, device_id=rooms.thermostat.id)
    assert await rooms.settle(hass) == ({rooms.lamp}, [[rooms.lamp]])
    devices.async_update_device(rooms.lamp_device.id, name_by_user="Old lamp")
    areas.async_update(rooms.hall.id, name="Corridor")
    floors.async_update(rooms.attic.floor_id, name="Loft")
    assert await rooms.settle(hass) == (set(), [])
    devices.async_update_device(rooms.thermostat.id, name_by_user="Heating")
    assert await rooms.settle(hass) == (
        {rooms.temperature, rooms.probe, rooms.lamp},
        [sorted([rooms.temperature, rooms.lamp])],
    )

    # The temperature sensor gets an area of its own, no longer its device's.
    entities.async_update_entity(rooms.temperature, area_id=rooms.hall.id)
    assert await rooms.settle(hass) == ({rooms.temperature}, [[rooms.temperature]])
    areas.async_update(rooms.kitchen.id, name="Cooking")
    assert await rooms.settle(hass) == (
        {rooms.probe, rooms.lamp},
        [sorted([rooms.probe, rooms.lamp])],
    )
    floors.async_update(rooms.attic.floor_id, name="Top floor")
    assert await rooms.settle(hass) == ({rooms.temperature}, [[rooms.temperature]])

    # A label taken off is no longer followed.
    entities.async_update_entity(rooms.lamp, labels=set())
    assert await rooms.settle(hass) == ({rooms.lamp}, [[rooms.lamp]])
    lr.async_get(hass).async_update(rooms.lighting.label_id, name="Light")
    assert await rooms.settle(hass) == (set(), [])

    # Removed entities are followed by nothing; the index keeps nothing for them.
    for entity_id in (rooms.temperature, rooms.probe, rooms.lamp):
        entities.async_remove(entity_id)
    await rooms.settle(hass)
    devices.async_update_device(rooms.thermostat.id, name_by_user="Thermostat")
    areas.async_update(rooms.hall.id, name="Hall")
    assert await rooms.settle(hass) == (set(), [])
    assert rooms.cache._users == {}


async def test_the_filter_forgets_only_the_changed_entities(
    hass: HomeAssistant, rooms: Rooms
) -> None:
    """A change decides again for the entities whose metadata changed, and no other."""
    state_filter = StateFilter({CONF_INCLUDE_AREAS: [rooms.hall.id]}, rooms.cache)
    state_filter.start()
    decided: list[str] = []
    decide = state_filter._decide

    def counting_decide(state: State) -> bool:
        decided.append(state.entity_id)
        return decide(state)

    def written() -> dict[str, bool]:
        return {
            entity_id: state_filter(State(entity_id, "1"))
            for entity_id in (rooms.temperature, rooms.probe, rooms.lamp, rooms.outdoor)
        }

    try:
        with patch.object(state_filter, "_decide", counting_decide):
            assert written() == {
                rooms.temperature: False,
                rooms.probe: False,
                rooms.lamp: True,
                rooms.outdoor: False,
            }
            assert sorted(decided) == sorted(
                [rooms.temperature, rooms.probe, rooms.lamp, rooms.outdoor]
            )
            decided.clear()
            assert written()[rooms.lamp]
            assert decided == []  # decided once

            # The thermostat moves to the hall: its two entities are decided again.
            dr.async_get(hass).async_update_device(
                rooms.thermostat.id, area_id=rooms.hall.id
            )
            await hass.async_block_till_done()
            assert written() == {
                rooms.temperature: True,
                rooms.probe: True,
                rooms.lamp: True,
                rooms.outdoor: False,
            }
            assert sorted(decided) == sorted([rooms.temperature, rooms.probe])
            decided.clear()

            # A change the metadata does not show: nothing is decided again.
            dr.async_get(hass).async_update_device(rooms.lamp_device.id, model="L2")
            await hass.async_block_till_done()
            written()
            assert decided == []

            # A label renamed: its entity's metadata changed, its decision is taken
            # again (and stays the same).
            lr.async_get(hass).async_update(rooms.lighting.label_id, name="Light")
            await hass.async_block_till_done()
            assert written()[rooms.lamp]
            assert decided == [rooms.lamp]
    finally:
        state_filter.stop()
