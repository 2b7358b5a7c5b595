"""Decide which state changes are written, from the entry's include and exclude options.

An entity is written when it passes Home Assistant's own entity filter (domains, entity
ids and globs, as recorder and logbook apply them), matches one of the included device
classes, areas or labels when any are included, and has none of the excluded ones.
This integration's own entities are left out unless included by entity id: writing
them would write a point about every write.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from homeassistant.const import ATTR_DEVICE_CLASS
from homeassistant.core import State
from homeassistant.helpers.entityfilter import generate_filter

from ..const import (
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
    NO_VALUE_STATES,
)
from ..registry.cache import RegistryCache


class StateFilter:
    """The entry's include and exclude rules, decided once per entity.

    Globs are regular expressions, and areas and labels come from the registries: too
    slow to evaluate for every state change in the event loop. A decision is kept
    until the entity's registry metadata changes.
    """

    def __init__(self, options: Mapping[str, Any], registry: RegistryCache) -> None:
        """Build the filter from the entry's options."""
        self._entity_filter = generate_filter(
            options.get(CONF_INCLUDE_DOMAINS, []),
            options.get(CONF_INCLUDE_ENTITIES, []),
            options.get(CONF_EXCLUDE_DOMAINS, []),
            options.get(CONF_EXCLUDE_ENTITIES, []),
            options.get(CONF_INCLUDE_ENTITY_GLOBS, []),
            options.get(CONF_EXCLUDE_ENTITY_GLOBS, []),
        )
        self._include_device_classes = frozenset(
            options.get(CONF_INCLUDE_DEVICE_CLASSES, [])
        )
        self._exclude_device_classes = frozenset(
            options.get(CONF_EXCLUDE_DEVICE_CLASSES, [])
        )
        self._include_areas = frozenset(options.get(CONF_INCLUDE_AREAS, []))
        self._exclude_areas = frozenset(options.get(CONF_EXCLUDE_AREAS, []))
        self._include_labels = frozenset(options.get(CONF_INCLUDE_LABELS, []))
        self._exclude_labels = frozenset(options.get(CONF_EXCLUDE_LABELS, []))
        self._included_entities = frozenset(options.get(CONF_INCLUDE_ENTITIES, []))
        self._skip_no_value = options.get(CONF_SKIP_UNAVAILABLE, False)
        self._registry = registry
        self._decisions: dict[str, bool] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Forget an entity's decision when its metadata changes (area, labels, class)."""
        self._unsubscribe = self._registry.async_listen(self._forget)

    def stop(self) -> None:
        """Stop following the registries."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _forget(self, entity_ids: Collection[str]) -> None:
        for entity_id in entity_ids:
            self._decisions.pop(entity_id, None)

    def __call__(self, state: State) -> bool:
        """Whether `state` is written; runs for every state change."""
        if self._skip_no_value and state.state in NO_VALUE_STATES:
            return False
        if (decision := self._decisions.get(state.entity_id)) is None:
            decision = self._decisions[state.entity_id] = self._decide(state)
        return decision

    def _decide(self, state: State) -> bool:
        metadata = self._registry.get(state.entity_id)
        if (
            metadata.platform == DOMAIN
            and state.entity_id not in self._included_entities
        ):
            return False
        if not self._entity_filter(state.entity_id):
            return False
        device_class = metadata.device_class or state.attributes.get(ATTR_DEVICE_CLASS)
        # An integration may put anything there (a list, a dict); only a text can
        # be one of the options' device classes.
        device_classes = frozenset(
            (device_class,) if isinstance(device_class, str) else ()
        )
        areas = frozenset(() if metadata.area_id is None else (metadata.area_id,))
        labels = metadata.label_ids
        if (
            device_classes & self._exclude_device_classes
            or areas & self._exclude_areas
            or labels & self._exclude_labels
        ):
            return False
        if not (
            self._include_device_classes or self._include_areas or self._include_labels
        ):
            return True
        return bool(
            device_classes & self._include_device_classes
            or areas & self._include_areas
            or labels & self._include_labels
        )
