"""The hot path: where every state change enters the pipeline, in the event loop.

For each state change Home Assistant fires, the listener counts it, asks the filter
whether the entity is written, skips a restart's unchanged state, encodes the line and
hands it to the batcher. It only enqueues: no I/O, no await, nothing that waits. The
heartbeat enters the same way, for every included entity's current state, and so do
the states entities had before the pipeline started, compared with the last written
(or, for an entity never written, taken if set since the entry last listened).

It also holds the Events it enqueued lines of, in two turns: a turn ends after
EVENT_HOLD_SECONDS or EVENT_HOLD_COUNT Events, whichever comes first, and the turn
before it is then let go. An Event forms a reference cycle with its Context, so only
the garbage collector frees it; let go young (its line is made at once), it is freed
by a middle-generation collection, which in a burst pauses the event loop for
milliseconds. Held, it outlives those, as in the queue of Home Assistant's built-in
influxdb integration, and is freed by the oldest generation's collections, which walk
the heap anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
import math
from time import monotonic

from homeassistant.core import (
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)

from ..line_protocol.encoder import Encoder, timestamp_us
from .batcher import Batcher
from .filters import StateFilter
from .last_states import LastStates
from .stats import PipelineStats

# A turn of held Events ends after this many seconds, or this many Events. The
# collector's generations fill with allocations, not time: in a burst, 5,000 state
# changes outlast a middle-generation collection (one per ~2,500 where Home Assistant
# does nothing else), and no more than twice that many Events are ever held.
EVENT_HOLD_SECONDS = 0.5
EVENT_HOLD_COUNT = 5_000


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
        # The Events of this turn, those of the turn before, and when this turn ends
        # (the turn before is let go then) unless it holds EVENT_HOLD_COUNT first.
        self._held: list[Event[EventStateChangedData]] = []
        self._held_before: list[Event[EventStateChangedData]] = []
        self._swap_at = 0.0

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
        if line is None:
            return
        self._batcher.add(line, state)
        # Monotonic: a clock set back must not hold Events for as long.
        now = monotonic()
        if now >= self._swap_at or len(self._held) >= EVENT_HOLD_COUNT:
            self._held_before, self._held = self._held, []
            self._swap_at = now + EVENT_HOLD_SECONDS
        self._held.append(event)

    @callback
    def async_states_before_start(
        self, states: Iterable[State], received_through: datetime | None
    ) -> None:
        """Take states set before the pipeline listened, as their entities' first.

        One that differs from its entity's last state written before the stop is
        written, at the time it was set; one the same is left out. An entity never
        written (new, or unchanged while the entry ran) is written if its state was
        set after `received_through` (the stats': when the entry last stopped
        listening, or earlier after a crash), unseen by any listener. None: the entry
        never ran, and a state set before its first setup is not its to keep.
        """
        last_states = self._last_states
        since = math.inf if received_through is None else received_through.timestamp()
        for state in states:
            if not self._keep(state):
                continue
            if last_states.written_before(state.entity_id):
                if last_states.unchanged_since_restart(state):
                    continue
            elif state.last_updated_timestamp <= since:
                continue
            line = self._encode(state, None, timestamp_us(state.last_updated_timestamp))
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
