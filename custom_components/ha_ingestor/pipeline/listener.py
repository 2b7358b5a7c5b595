"""The hot path: where every state change enters the pipeline, in the event loop.

For each state change Home Assistant fires, the listener counts it, asks the filter
whether the entity is written, skips a restart's unchanged state, and holds the change
(pending); once held, it encodes the line and hands it to the batcher. It only
enqueues: no I/O, no await, nothing that waits. The heartbeat enters the same way, for
every included entity's current state, and so do the states entities had before the
pipeline started, compared with the last written.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

from homeassistant.core import (
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.util import dt as dt_util

from ..const import LOGGER
from ..line_protocol.encoder import Encoder, timestamp_us
from .batcher import Batcher
from .filters import StateFilter
from .last_states import LastStates
from .pending import PendingChanges
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
        *,
        max_pending: int,
    ) -> None:
        """Filter with `keep`, encode with `encode`, enqueue in `batcher`.

        State changes wait to be encoded for a moment, or while more than
        `max_pending` wait (pending).
        """
        self._keep = keep
        self._last_states = last_states
        self._encode = encode
        self._batcher = batcher
        self._stats = stats
        self._pending = PendingChanges(self._encode_change, max_pending)

    @property
    def pending(self) -> int:
        """State changes received and not yet encoded."""
        return len(self._pending)

    @callback
    def handed_on_until(self) -> datetime:
        """Until when every state change received is in the batcher.

        Now, unless some wait to be encoded: then a microsecond before the oldest of
        them was fired (a microsecond: the recorder's times and this one may
        round differently, and a backfill writing a point twice is harmless).
        """
        if (fired := self._pending.oldest_fired) is None:
            return dt_util.utcnow()
        return dt_util.utc_from_timestamp(fired) - timedelta(microseconds=1)

    @callback
    def async_state_changed(self, event: Event[EventStateChangedData]) -> None:
        """Hold a state change to be encoded, if it is written."""
        self._stats.state_changes_received += 1
        state = event.data["new_state"]
        if state is None or not self._keep(state):
            return
        if event.data["old_state"] is None and (
            self._last_states.unchanged_since_restart(state)
        ):
            return
        self._pending.append(event)

    @callback
    def async_encode_pending(self) -> None:
        """Encode every state change still waiting: at stop, or to write them now."""
        self._pending.encode_all()

    def _encode_change(self, event: Event[EventStateChangedData]) -> None:
        """Enqueue the line of a state change that was held."""
        data = event.data
        state = cast(State, data["new_state"])  # changes without one are not held
        try:
            line = self._encode(
                state, data["old_state"], timestamp_us(event.time_fired_timestamp)
            )
        except Exception:  # noqa: BLE001 - one change's failure must not stop the rest
            # Home Assistant's bus logged this when the listener encoded; the
            # changes after it are still encoded.
            LOGGER.exception("Could not encode the state of %s", state.entity_id)
            return
        if line is not None:
            self._batcher.add(line, state)

    @callback
    def async_states_before_start(self, states: Iterable[State]) -> None:
        """Take states set before the pipeline listened, as their entities' first.

        Only entities written before the stop: one whose state differs from the last
        written is written, at the time it was set; any other is left as it was.
        """
        last_states = self._last_states
        for state in states:
            if (
                last_states.written_before(state.entity_id)
                and self._keep(state)
                and not last_states.unchanged_since_restart(state)
                and (
                    line := self._encode(
                        state, None, timestamp_us(state.last_updated_timestamp)
                    )
                )
                is not None
            ):
                self._batcher.add(line, state)

    @callback
    def async_heartbeat(self, hass: HomeAssistant, now: datetime) -> None:
        """Write every included entity's current state again, so graphs have no gaps."""
        # The changes waiting are older: their lines go first, and the newest state
        # of each entity is the last one the batcher is given.
        self._pending.encode_all()
        time_us = timestamp_us(now.timestamp())
        for state in hass.states.async_all():
            if (
                self._keep(state)
                and (line := self._encode(state, None, time_us)) is not None
            ):
                self._batcher.add(line, state)
