"""Random sequences of registry changes: after each one, the file equals the registries.

Hypothesis draws create, update and remove operations across the five registries
(child devices, renamed entities, labels, floors and Home Assistant's own cascades
included), and restarts of the mirror with changes made while it was stopped. Entries
are picked by position among those that exist, so that most operations do something;
one that Home Assistant refuses (a name in use, say) changes nothing, which the check
after it covers too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
from pathlib import Path

from homeassistant.core import CoreState, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import (
    area_registry as ar,
    category_registry as cr,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    issue_registry as ir,
    label_registry as lr,
)
from homeassistant.helpers.typing import UNDEFINED
from hypothesis import given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import async_test_home_assistant

from custom_components.ha_ingestor.mirror.mirror import RegistryMirror

from .test_registry_mirror import (
    ENTRY_ID,
    add_config_entry,
    expected_content,
    populate,
    read_content,
    settle,
)

_NAMES = st.sampled_from(["Alpha", "Beta", "Gamma", "Delta"])
_OPTIONAL_NAMES = st.none() | _NAMES
_PICK = st.integers(0, 7)  # an existing entry, by position (modulo how many exist)
_LABEL_PICKS = st.frozensets(_PICK, max_size=3)


@dataclass(frozen=True)
class CreateFloor:
    """Create a floor."""

    name: str
    level: int | None


@dataclass(frozen=True)
class UpdateFloor:
    """Rename a floor or change its level."""

    floor: int
    name: str | None
    level: int | None


@dataclass(frozen=True)
class CreateLabel:
    """Create a label."""

    name: str
    color: str | None


@dataclass(frozen=True)
class UpdateLabel:
    """Rename a label or change its color and description."""

    label: int
    name: str | None
    color: str | None
    description: str | None


@dataclass(frozen=True)
class CreateArea:
    """Create an area, maybe on a floor, maybe with labels."""

    name: str
    floor: int | None
    labels: frozenset[int]


@dataclass(frozen=True)
class UpdateArea:
    """Change an area's name, floor and labels."""

    area: int
    name: str | None
    floor: int | None
    labels: frozenset[int]


@dataclass(frozen=True)
class CreateDevice:
    """Create a device (or restore a removed one), maybe as a child of another."""

    key: int
    parent: int | None
    via: int | None
    model: str | None


@dataclass(frozen=True)
class UpdateDevice:
    """Change what a user can change on a device."""

    device: int
    name_by_user: str | None
    area: int | None
    labels: frozenset[int]
    disabled: bool


@dataclass(frozen=True)
class CreateEntity:
    """Create an entity (or restore a removed one), maybe on a device."""

    key: int
    domain: str
    device: int | None
    original_name: str | None


@dataclass(frozen=True)
class UpdateEntity:
    """Change what a user can change on an entity, maybe its entity id."""

    entity: int
    name: str | None
    area: int | None
    labels: frozenset[int]
    hidden: bool
    rename: bool


@dataclass(frozen=True)
class Remove:
    """Remove an entry of one registry."""

    registry: str
    entry: int


type Change = (
    CreateFloor
    | UpdateFloor
    | CreateLabel
    | UpdateLabel
    | CreateArea
    | UpdateArea
    | CreateDevice
    | UpdateDevice
    | CreateEntity
    | UpdateEntity
    | Remove
)


@dataclass(frozen=True)
class Burst:
    """Make these changes one after the other, without waiting for the mirror."""

    changes: list[Change]


@dataclass(frozen=True)
class Restart:
    """Stop the mirror, make these changes, start it again."""

    changes: list[Change]


_CHANGES: st.SearchStrategy[Change] = st.one_of(
    st.builds(CreateFloor, _NAMES, st.none() | st.integers(-1, 3)),
    st.builds(UpdateFloor, _PICK, _OPTIONAL_NAMES, st.none() | st.integers(-1, 3)),
    st.builds(CreateLabel, _NAMES, st.sampled_from([None, "red", "blue"])),
    st.builds(
        UpdateLabel,
        _PICK,
        _OPTIONAL_NAMES,
        st.sampled_from([None, "green"]),
        st.sampled_from([None, "", "Watch"]),
    ),
    st.builds(CreateArea, _NAMES, st.none() | _PICK, _LABEL_PICKS),
    st.builds(UpdateArea, _PICK, _OPTIONAL_NAMES, st.none() | _PICK, _LABEL_PICKS),
    st.builds(
        CreateDevice,
        st.integers(0, 5),
        st.none() | _PICK,
        st.none() | _PICK,
        st.sampled_from([None, "M1"]),
    ),
    st.builds(
        UpdateDevice,
        _PICK,
        _OPTIONAL_NAMES,
        st.none() | _PICK,
        _LABEL_PICKS,
        st.booleans(),
    ),
    st.builds(
        CreateEntity,
        st.integers(0, 7),
        st.sampled_from(["sensor", "light"]),
        st.none() | _PICK,
        _OPTIONAL_NAMES,
    ),
    st.builds(
        UpdateEntity,
        _PICK,
        _OPTIONAL_NAMES,
        st.none() | _PICK,
        _LABEL_PICKS,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        Remove,
        st.sampled_from(["floor", "label", "area", "device", "entity"]),
        _PICK,
    ),
)
_STEPS = st.lists(
    st.one_of(
        st.builds(Burst, st.lists(_CHANGES, min_size=1, max_size=4)),
        st.builds(Restart, st.lists(_CHANGES, max_size=4)),
    ),
    min_size=1,
    max_size=12,
)


def _pick[T](entries: list[T], position: int | None) -> T | None:
    if position is None or not entries:
        return None
    return entries[position % len(entries)]


class _Registries:
    """The five registries, and their entries in a stable order to pick from."""

    def __init__(self, hass: HomeAssistant, config_entry_id: str) -> None:
        self.hass = hass
        self.config_entry_id = config_entry_id
        self.floors = fr.async_get(hass)
        self.labels = lr.async_get(hass)
        self.areas = ar.async_get(hass)
        self.devices = dr.async_get(hass)
        self.entities = er.async_get(hass)

    def floor_ids(self) -> list[str]:
        return sorted(floor.floor_id for floor in self.floors.async_list_floors())

    def label_ids(self, picks: frozenset[int]) -> set[str]:
        labels = sorted(label.label_id for label in self.labels.async_list_labels())
        return {label for pick in picks if (label := _pick(labels, pick)) is not None}

    def area_ids(self) -> list[str]:
        return sorted(area.id for area in self.areas.async_list_areas())

    def all_devices(self) -> list[dr.AnyDeviceEntry]:
        devices: list[dr.AnyDeviceEntry] = [
            *self.devices.devices,
            *self.devices.child_devices,
        ]
        return sorted(devices, key=lambda device: device.id)

    def main_devices(self) -> list[dr.DeviceEntry]:
        return sorted(self.devices.devices, key=lambda device: device.id)

    def entity_ids(self) -> list[str]:
        return sorted(self.entities.entities)

    def apply(self, change: Change) -> None:
        """Make `change`; one that Home Assistant refuses changes nothing."""
        with contextlib.suppress(ValueError, HomeAssistantError):
            self._apply(change)

    def _apply(self, change: Change) -> None:  # noqa: PLR0912
        match change:
            case CreateFloor(name, level):
                self.floors.async_create(name, level=level)
            case UpdateFloor(floor, name, level):
                if (floor_id := _pick(self.floor_ids(), floor)) is not None:
                    self.floors.async_update(
                        floor_id,
                        name=name or "Floor",
                        level=UNDEFINED if level is None else level,
                    )
            case CreateLabel(name, color):
                self.labels.async_create(name, color=color)
            case UpdateLabel(label, name, color, description):
                for label_id in self.label_ids(frozenset({label})):
                    self.labels.async_update(
                        label_id,
                        name=name or "Label",
                        color=color,
                        description=description,
                    )
            case CreateArea(name, floor, labels):
                self.areas.async_create(
                    name,
                    floor_id=_pick(self.floor_ids(), floor),
                    labels=self.label_ids(labels),
                )
            case UpdateArea(area, name, floor, labels):
                if (area_id := _pick(self.area_ids(), area)) is not None:
                    self.areas.async_update(
                        area_id,
                        name=name or "Area",
                        floor_id=_pick(self.floor_ids(), floor),
                        labels=self.label_ids(labels),
                    )
            case CreateDevice(key, parent, via, model):
                self._create_device(key, parent, via, model)
            case UpdateDevice():
                self._update_device(change)
            case CreateEntity(key, domain, device, original_name):
                owner = _pick(self.all_devices(), device)
                self.entities.async_get_or_create(
                    domain,
                    "demo",
                    f"entity-{key}",
                    config_entry=self.hass.config_entries.async_get_entry(
                        self.config_entry_id
                    ),
                    device_id=None if owner is None else owner.id,
                    original_name=original_name,
                    has_entity_name=owner is not None,
                )
            case UpdateEntity():
                self._update_entity(change)
            case Remove(registry, entry):
                self._remove(registry, entry)

    def _create_device(
        self, key: int, parent: int | None, via: int | None, model: str | None
    ) -> None:
        if (parent_device := _pick(self.main_devices(), parent)) is not None:
            self.devices.async_get_or_create_child(
                config_entry_id=self.config_entry_id,
                identifiers={("demo", f"device-{key}")},
                name=f"Part {key}",
                parent_device_id=parent_device.id,
            )
            return
        via_device = _pick(self.main_devices(), via)
        self.devices.async_get_or_create(
            config_entry_id=self.config_entry_id,
            identifiers={("demo", f"device-{key}")},
            name=f"Device {key}",
            manufacturer="Acme",
            model=model,
            via_device_id=None if via_device is None else via_device.id,
        )

    def _update_device(self, change: UpdateDevice) -> None:
        device = _pick(self.all_devices(), change.device)
        if device is None:
            return
        disabled_by = dr.DeviceEntryDisabler.USER if change.disabled else None
        area_id = _pick(self.area_ids(), change.area)
        labels = self.label_ids(change.labels)
        if isinstance(device, dr.ChildDeviceEntry):
            self.devices.async_update_child_device(
                device.id,
                name_by_user=change.name_by_user,
                area_id=area_id,
                labels=labels,
                disabled_by=disabled_by,
            )
        else:
            self.devices.async_update_device(
                device.id,
                name_by_user=change.name_by_user,
                area_id=area_id,
                labels=labels,
                disabled_by=disabled_by,
            )

    def _update_entity(self, change: UpdateEntity) -> None:
        entity_id = _pick(self.entity_ids(), change.entity)
        if entity_id is None:
            return
        self.entities.async_update_entity(
            entity_id,
            name=change.name,
            area_id=_pick(self.area_ids(), change.area),
            labels=self.label_ids(change.labels),
            hidden_by=er.RegistryEntryHider.USER if change.hidden else None,
            new_entity_id=f"{entity_id}_renamed" if change.rename else entity_id,
        )

    def _remove(self, registry: str, entry: int) -> None:
        match registry:
            case "floor":
                if (floor_id := _pick(self.floor_ids(), entry)) is not None:
                    self.floors.async_delete(floor_id)
            case "label":
                for label_id in self.label_ids(frozenset({entry})):
                    self.labels.async_delete(label_id)
            case "area":
                if (area_id := _pick(self.area_ids(), entry)) is not None:
                    self.areas.async_delete(area_id)
            case "device":
                if (device := _pick(self.all_devices(), entry)) is not None:
                    self.devices.async_remove_device(device.id)
            case "entity":
                if (entity_id := _pick(self.entity_ids(), entry)) is not None:
                    self.entities.async_remove(entity_id)


async def _assert_exact(hass: HomeAssistant, mirror: RegistryMirror) -> None:
    await settle(hass)
    assert mirror.healthy, mirror.last_error
    assert await read_content(mirror.path) == expected_content(hass)


async def _run(hass: HomeAssistant, path: Path, steps: list[Burst | Restart]) -> None:
    config_entry_id = add_config_entry(hass)
    # A furnished home to start from: every kind of entry, labels on all of them.
    populate(hass, config_entry_id)
    registries = _Registries(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        for step in steps:
            if isinstance(step, Restart):
                await mirror.async_stop()
                for change in step.changes:
                    registries.apply(change)
                await hass.async_block_till_done()
                mirror = RegistryMirror(hass, ENTRY_ID, path)
                await mirror.async_start()
                # Reconciled by the start itself.
                assert await read_content(path) == expected_content(hass)
            else:
                for change in step.changes:
                    registries.apply(change)
            await _assert_exact(hass, mirror)
    finally:
        await mirror.async_stop()


@contextlib.asynccontextmanager
async def _fresh_home_assistant() -> AsyncIterator[HomeAssistant]:
    """A Home Assistant of its own, with empty registries that are never saved.

    One per example: registries keep removed devices and entities to restore them,
    and Hypothesis seeds the random numbers their ids come from, so a shared one would
    carry entries from one example into the next. The harness's own loading is not
    used because it shares the stored device registry between instances.
    """
    async with async_test_home_assistant(
        load_registries=False, initial_state=CoreState.not_running
    ) as hass:
        try:
            # Loaded before running, as at a real start: the device registry then
            # cancels its delayed cleanup when Home Assistant stops.
            dr.async_setup(hass)
            for load in (ar, cr, dr, er, fr, ir, lr):
                await load.async_load(hass, load_empty=True)
            hass.set_state(CoreState.running)
            yield hass
        finally:
            await hass.async_stop(force=True)


@settings(max_examples=50, deadline=None)
@given(steps=_STEPS)
async def test_file_equals_registries_after_every_step(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Burst | Restart]
) -> None:
    """Any sequence of changes and restarts leaves the file equal to the registries."""
    async with _fresh_home_assistant() as hass:
        await _run(hass, tmp_path_factory.mktemp("mirror") / "registry.db", steps)
