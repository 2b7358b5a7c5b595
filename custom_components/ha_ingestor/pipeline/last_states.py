"""Remember the last state written per entity across restarts.

When Home Assistant starts, every entity sets its state again, most of them to what it
was before the restart. Those are not changes: writing them would put a duplicate
point into every series on every restart.
"""

from __future__ import annotations

import hashlib

from homeassistant.core import HomeAssistant, State, callback
from homeassistant.helpers.json import json_bytes_sorted
from homeassistant.helpers.storage import Store

from ..const import DOMAIN

_STORAGE_VERSION = 1


def _fingerprint(state: State) -> str:
    """Digest the state and its attributes, the same in every process."""
    content = json_bytes_sorted([state.state, state.attributes])
    return hashlib.blake2b(content, digest_size=12).hexdigest()


def _fingerprints(states: dict[str, State]) -> dict[str, str]:
    """Digest every state: for the executor, as it takes a while for a large house."""
    return {entity_id: _fingerprint(state) for entity_id, state in states.items()}


class LastStates:
    """The state last written for each entity, saved when the pipeline stops."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Keep them in `.storage`, one file per config entry."""
        self._hass = hass
        self._store: Store[dict[str, str]] = Store(
            hass, _STORAGE_VERSION, f"{DOMAIN}.{entry_id}.last_states"
        )
        self._written: dict[str, State] = {}
        self._before_restart: dict[str, str] = {}

    async def async_load(self) -> None:
        """Read what was written before the last stop."""
        self._before_restart = await self._store.async_load() or {}

    @callback
    def unchanged_since_restart(self, state: State) -> bool:
        """Whether `state` is an entity's first since start, and the same as last written.

        Only an entity's first state after a start is compared; call it for states
        that have no old state.
        """
        before = self._before_restart.pop(state.entity_id, None)
        if before is None or before != _fingerprint(state):
            return False
        # Still the last written state, for the next restart.
        self._written[state.entity_id] = state
        return True

    @callback
    def written(self, state: State) -> None:
        """Note `state` as its entity's last written one (a dict assignment)."""
        self._written[state.entity_id] = state

    async def async_save(self) -> None:
        """Save the last written states; entities not seen since start keep theirs."""
        # States are immutable: a copy of the dict is all the executor needs.
        written = await self._hass.async_add_executor_job(
            _fingerprints, dict(self._written)
        )
        await self._store.async_save(self._before_restart | written)

    async def async_remove(self) -> None:
        """Delete the file: the config entry is gone."""
        await self._store.async_remove()
