"""Decide which state changes are written, from the entry's include and exclude options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import State
from homeassistant.helpers.entityfilter import generate_filter

from .const import (
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_ENTITY_GLOBS,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_ENTITY_GLOBS,
    CONF_SKIP_UNAVAILABLE,
)

_NO_VALUE_STATES = frozenset((STATE_UNKNOWN, STATE_UNAVAILABLE))


class StateFilter:
    """Home Assistant's own include/exclude rules (as recorder and logbook apply them).

    The decision for an entity id is computed once and remembered: globs are regular
    expressions, too slow to run for every state change in the event loop.
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        """Build the filter from the entry's options."""
        self._entity_filter = generate_filter(
            options.get(CONF_INCLUDE_DOMAINS, []),
            options.get(CONF_INCLUDE_ENTITIES, []),
            options.get(CONF_EXCLUDE_DOMAINS, []),
            options.get(CONF_EXCLUDE_ENTITIES, []),
            options.get(CONF_INCLUDE_ENTITY_GLOBS, []),
            options.get(CONF_EXCLUDE_ENTITY_GLOBS, []),
        )
        self._skip_no_value = options.get(CONF_SKIP_UNAVAILABLE, False)
        self._decisions: dict[str, bool] = {}

    def __call__(self, state: State) -> bool:
        """Whether `state` is written; runs for every state change."""
        if self._skip_no_value and state.state in _NO_VALUE_STATES:
            return False
        entity_id = state.entity_id
        if (decision := self._decisions.get(entity_id)) is None:
            decision = self._decisions[entity_id] = self._entity_filter(entity_id)
        return decision
