"""The hot path: where every state change enters the pipeline, in the event loop.

For each state change Home Assistant fires, the listener counts it, asks the filter
whether the entity is written, skips a restart's unchanged state, encodes the line and
hands it to the batcher. It only enqueues: no I/O, no await, nothing that waits. The
heartbeat enters the same way, for every included entity's current state.
"""

from __future__ import annotations

from datetime import datetime

from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback

from ..line_protocol.encoder import Encoder, timestamp_us
from .batcher import Batcher
from .filters import StateFilter
from .last_states import LastStates
from .stats import PipelineStats


class StateChangeListener:
    """Turns state changes into lines for the batcher."""

    def __init__(
        self,
        keep: StateFilter,
        last_states: LastStates,
        encode: Encoder,
        batcher: Batcher,
        stats: PipelineStats,
    ) -> None:
        """Filter with `keep`, encode with `encode`, enqueue in `batcher`."""
        self._keep = keep
        self._last_states = last_states
        self._encode = encode
        self._batcher = batcher
        self._stats = stats

    @callback
    def async_state_changed(self, event: Event[EventStateChangedData]) -> None:
        """Enqueue the line of a state change, if it is written."""
        self._stats.state_changes_received += 1
        state = event.data["new_state"]
        if state is None or not self._keep(state):
            return
        old_state = event.data["old_state"]
        if old_state is None and self._last_states.unchanged_since_restart(state):
            return
        line = self._encode(state, old_state, timestamp_us(event.time_fired_timestamp))
        if line is not None:
            self._batcher.add(line, state)

    @callback
    def async_heartbeat(self, hass: HomeAssistant, now: datetime) -> None:
        """Write every included entity's current state again, so graphs have no gaps."""
        time_us = timestamp_us(now.timestamp())
        for state in hass.states.async_all():
            if (
                self._keep(state)
                and (line := self._encode(state, None, time_us)) is not None
            ):
                self._batcher.add(line, state)
