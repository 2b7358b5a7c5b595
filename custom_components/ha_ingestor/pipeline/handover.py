"""Record state changes while a config entry is being set up, unloaded or reloaded.

The pipeline needs awaits to start (opening the spool) and to stop (a last write), and
a reload (after the options changed) is an unload followed by a setup. State changes
fired meanwhile are recorded here and handed to the pipeline that starts next, so that
no state change falls between two pipelines.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from ..const import DOMAIN

_HANDOVERS: HassKey[dict[str, StateChangeHandover]] = HassKey(f"{DOMAIN}_handovers")


class StateChangeHandover:
    """State changes fired while no pipeline of the entry listens."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Start recording at once."""
        self._hass = hass
        self._entry = entry
        # Every state change from this moment on reaches the next pipeline.
        self.began_at = dt_util.utcnow()
        self.events: list[Event[EventStateChangedData]] = []
        self._unsubscribe: Callable[[], None] | None = hass.bus.async_listen(
            EVENT_STATE_CHANGED, self._async_record
        )

    @callback
    def _async_record(self, event: Event[EventStateChangedData]) -> None:
        # Setup, unload and reload all hold the entry's setup lock. Once it is free
        # with no pipeline taking over, the entry was unloaded for good (disabled,
        # removed): stop recording and let go of what was recorded.
        if not self._entry.setup_lock.locked():
            async_take_handover(self._hass, self._entry)
            self.events.clear()
            return
        self.events.append(event)

    @callback
    def stop(self) -> list[Event[EventStateChangedData]]:
        """Stop recording; return what was recorded, oldest first."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        return self.events


@callback
def async_begin_handover(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Record the entry's state changes until `async_take_handover`."""
    handovers = hass.data.setdefault(_HANDOVERS, {})
    if entry.entry_id not in handovers:
        handovers[entry.entry_id] = StateChangeHandover(hass, entry)


@callback
def async_handover_began(hass: HomeAssistant, entry: ConfigEntry) -> datetime | None:
    """Return since when the entry's state changes are recorded; None if they are not."""
    handover = hass.data.get(_HANDOVERS, {}).get(entry.entry_id)
    return None if handover is None else handover.began_at


@callback
def async_take_handover(
    hass: HomeAssistant, entry: ConfigEntry
) -> list[Event[EventStateChangedData]]:
    """Stop recording the entry's state changes and return them, oldest first."""
    handover = hass.data.get(_HANDOVERS, {}).pop(entry.entry_id, None)
    return [] if handover is None else handover.stop()
