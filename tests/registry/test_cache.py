"""The registry cache against Home Assistant's real registries and their events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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

from custom_components.ha_ingestor.const import CONF_PRESET, PRESET_RICH
from custom_components.ha_ingestor.line_protocol import create_encoder
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import (
    UNREGISTERED,
    EntityMetadata,
    RegistryCache,
)

from ..test_normalize import parse_influx_line


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
