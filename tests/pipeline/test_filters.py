"""The filter: which entities are written, decided once per entity from the options."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    label_registry as lr,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_DEVICE_CLASSES,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_ENTITY_GLOBS,
    CONF_EXCLUDE_LABELS,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_DEVICE_CLASSES,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_ENTITY_GLOBS,
    CONF_INCLUDE_LABELS,
    CONF_SKIP_UNAVAILABLE,
    DOMAIN,
)
from custom_components.ha_ingestor.pipeline.filters import StateFilter
from custom_components.ha_ingestor.registry.cache import RegistryCache


@pytest.fixture
def cache(hass: HomeAssistant) -> Iterator[RegistryCache]:
    """The registries' metadata, following their changes."""
    registry_cache = RegistryCache(hass)
    registry_cache.async_start()
    yield registry_cache
    registry_cache.async_stop()


def _filter(cache: RegistryCache, **options: Any) -> Iterator[StateFilter]:
    keep = StateFilter(options, cache)
    keep.start()
    yield keep
    keep.stop()


def _register(
    hass: HomeAssistant,
    object_id: str,
    *,
    platform: str = "demo",
    device_id: str | None = None,
    area_id: str | None = None,
    labels: set[str] | None = None,
    device_class: str | None = None,
) -> str:
    entity = er.async_get(hass).async_get_or_create(
        "sensor",
        platform,
        object_id,
        suggested_object_id=object_id,
        device_id=device_id,
        original_device_class=device_class,
        # A name of its own: an entity of a device may then have its own area.
        original_name=object_id,
    )
    if area_id is not None or labels:
        entity = er.async_get(hass).async_update_entity(
            entity.entity_id, area_id=area_id, labels=labels or set()
        )
    return entity.entity_id


_PLUG = "sensor.plug_linkquality"
_POWER = "sensor.power"
_FAN = "switch.fan"


@pytest.mark.parametrize(
    ("options", "written"),
    [
        # An entity listed by id decides first, whatever else is set.
        (
            {
                CONF_INCLUDE_ENTITIES: [_PLUG],
                CONF_EXCLUDE_DOMAINS: ["sensor"],
                CONF_EXCLUDE_ENTITY_GLOBS: ["*_linkquality"],
            },
            {_PLUG, _FAN},
        ),
        (
            {
                CONF_INCLUDE_DOMAINS: ["sensor"],
                CONF_INCLUDE_ENTITY_GLOBS: ["sensor.*"],
                CONF_EXCLUDE_ENTITIES: [_POWER],
            },
            {_PLUG},
        ),
        # A domain or pattern included: only what they name.
        (
            {
                CONF_INCLUDE_ENTITY_GLOBS: ["sensor.*"],
                CONF_EXCLUDE_ENTITY_GLOBS: ["sensor.*_linkquality"],
            },
            {_PLUG, _POWER},
        ),
        (
            {
                CONF_INCLUDE_DOMAINS: ["sensor"],
                CONF_EXCLUDE_ENTITY_GLOBS: ["sensor.*_linkquality"],
            },
            {_POWER},
        ),
        (
            {CONF_INCLUDE_DOMAINS: ["sensor"], CONF_EXCLUDE_DOMAINS: ["switch"]},
            {_PLUG, _POWER},
        ),
        # Only excluded domains or patterns (and entities listed): the rest.
        (
            {CONF_INCLUDE_ENTITIES: [_POWER], CONF_EXCLUDE_DOMAINS: ["sensor"]},
            {_POWER, _FAN},
        ),
        ({CONF_EXCLUDE_ENTITY_GLOBS: ["*_linkquality"]}, {_POWER, _FAN}),
        # Otherwise only when nothing is included.
        ({CONF_EXCLUDE_ENTITIES: [_FAN]}, {_PLUG, _POWER}),
        (
            {CONF_INCLUDE_ENTITIES: [_PLUG], CONF_EXCLUDE_ENTITIES: [_FAN]},
            {_PLUG},
        ),
        ({}, {_PLUG, _POWER, _FAN}),
    ],
)
def test_the_recorders_rules_as_the_readme_states_them(
    cache: RegistryCache, options: dict[str, list[str]], written: set[str]
) -> None:
    """Domains, entity ids and patterns: each rule the README lists, in its order."""
    for keep in _filter(cache, **options):
        assert {
            entity_id
            for entity_id in (_PLUG, _POWER, _FAN)
            if keep(State(entity_id, "1"))
        } == written


def test_skip_unavailable_only_when_chosen(cache: RegistryCache) -> None:
    """Unknown and unavailable are written unless the option is on; per state."""
    for keep in _filter(cache):
        assert keep(State("sensor.power", "unavailable"))
        assert keep(State("sensor.power", "unknown"))
    for keep in _filter(cache, **{CONF_SKIP_UNAVAILABLE: True}):
        assert not keep(State("sensor.power", "unavailable"))
        assert not keep(State("sensor.power", "unknown"))
        # The decision about the entity itself is kept for its next state.
        assert keep(State("sensor.power", "5"))


def test_own_entities_only_when_included_by_id(
    hass: HomeAssistant, cache: RegistryCache
) -> None:
    """Writing them would write a point about every write."""
    own = _register(hass, "points_written", platform=DOMAIN)
    for keep in _filter(cache):
        assert not keep(State(own, "10"))
    for keep in _filter(cache, **{CONF_INCLUDE_ENTITIES: [own]}):
        assert keep(State(own, "10"))


def test_device_classes_from_the_registry_or_the_state(
    hass: HomeAssistant, cache: RegistryCache
) -> None:
    """The registry's class (the user's choice) first, else the state's attribute."""
    registered = _register(hass, "outside", device_class="temperature")
    for keep in _filter(cache, **{CONF_INCLUDE_DEVICE_CLASSES: ["temperature"]}):
        assert keep(State(registered, "3"))
        assert keep(State("sensor.bare", "3", {"device_class": "temperature"}))
        assert not keep(State("sensor.watts", "3", {"device_class": "power"}))
        assert not keep(State("sensor.plain", "3"))
    for keep in _filter(cache, **{CONF_EXCLUDE_DEVICE_CLASSES: ["temperature"]}):
        assert not keep(State(registered, "3"))
        assert keep(State("sensor.plain", "3"))


@pytest.mark.parametrize("device_class", [["temperature"], {"a": 1}, {1}, 5, None])
def test_a_device_class_that_is_no_text_is_none(
    cache: RegistryCache, device_class: object
) -> None:
    """A list, dict or set there made the filter raise: the state change was lost."""
    for keep in _filter(cache):
        assert keep(State("sensor.odd", "3", {"device_class": device_class}))
    for keep in _filter(cache, **{CONF_INCLUDE_DEVICE_CLASSES: ["temperature"]}):
        assert not keep(State("sensor.odd", "3", {"device_class": device_class}))
    for keep in _filter(cache, **{CONF_EXCLUDE_DEVICE_CLASSES: ["temperature"]}):
        assert keep(State("sensor.odd", "3", {"device_class": device_class}))


def test_areas_and_labels_of_the_entity_and_its_device(
    hass: HomeAssistant, cache: RegistryCache
) -> None:
    """An entity's area is its own, else its device's; labels of both count."""
    entry = MockConfigEntry(domain="demo")
    entry.add_to_hass(hass)
    kitchen = ar.async_get(hass).async_create("Kitchen")
    garage = ar.async_get(hass).async_create("Garage")
    solar = lr.async_get(hass).async_create("Solar")
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={("demo", "meter")}
    )
    dr.async_get(hass).async_update_device(
        device.id, area_id=kitchen.id, labels={solar.label_id}
    )
    in_kitchen = _register(hass, "meter_power", device_id=device.id)
    in_garage = _register(hass, "meter_other", device_id=device.id, area_id=garage.id)
    plain = _register(hass, "plain")

    for keep in _filter(cache, **{CONF_INCLUDE_AREAS: [kitchen.id]}):
        assert keep(State(in_kitchen, "1"))
        assert not keep(State(in_garage, "1"))
        assert not keep(State(plain, "1"))
    for keep in _filter(cache, **{CONF_INCLUDE_LABELS: [solar.label_id]}):
        assert keep(State(in_kitchen, "1"))
        assert keep(State(in_garage, "1"))  # the device's label
        assert not keep(State(plain, "1"))
    for keep in _filter(
        cache,
        **{CONF_INCLUDE_LABELS: [solar.label_id], CONF_EXCLUDE_AREAS: [garage.id]},
    ):
        assert keep(State(in_kitchen, "1"))
        assert not keep(State(in_garage, "1"))  # exclusions win
    for keep in _filter(cache, **{CONF_EXCLUDE_LABELS: [solar.label_id]}):
        assert not keep(State(in_kitchen, "1"))
        assert keep(State(plain, "1"))


async def test_a_registry_change_forgets_only_its_entities_decisions(
    hass: HomeAssistant, cache: RegistryCache
) -> None:
    """Moving one entity to an included area writes it from its next state on.

    The decisions about other entities are kept: they are not read again.
    """
    kitchen = ar.async_get(hass).async_create("Kitchen")
    moved = _register(hass, "moved")
    other = _register(hass, "other")
    for keep in _filter(cache, **{CONF_INCLUDE_AREAS: [kitchen.id]}):
        assert not keep(State(moved, "1"))
        assert not keep(State(other, "1"))
        assert keep._decisions == {moved: False, other: False}

        er.async_get(hass).async_update_entity(moved, area_id=kitchen.id)
        await hass.async_block_till_done()
        assert keep._decisions == {other: False}
        assert keep(State(moved, "2"))

        # A change of the area's name touches the entity in it, not the other one.
        ar.async_get(hass).async_update(kitchen.id, name="Cuisine")
        await hass.async_block_till_done()
        assert keep._decisions == {other: False}
        assert keep(State(moved, "3"))
