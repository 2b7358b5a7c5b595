"""State changes held for a moment before they are encoded, then encoded in slices.

Home Assistant makes an `Event` per state change, in a reference cycle with its
`Context` that only the garbage collector frees. Encoded as it fires, an `Event`
becomes garbage while young (when its entity next changes), and in a burst the
collections of the middle generation free thousands of them on the event loop, pauses
of milliseconds (docs/performance.md, "Loop lag p99"). Held here until HOLD_SECONDS have
passed, or while more than `max_waiting` wait, the `Event`s of a burst outlive those
collections, as they do in the recorder's queue and in other exporters' queues.

The listener only appends; the encoding runs in slices of ENCODE_SLICE_SECONDS with as
long a pause between them, so no other callback waits long behind it, and the threads
that need the GIL (the spool's, the executor's) still get it. Should changes come
faster than that for long (MOST_WAITING_FACTOR times `max_waiting` wait), the listener encodes the
oldest itself, as it did before the hold. A hard kill loses what waits here too:
HOLD_SECONDS is well within the flush interval a kill may lose.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import time
from typing import Final

from homeassistant.core import Event, EventStateChangedData, callback

# How long a state change waits, at most, before it is due to be encoded.
HOLD_SECONDS: Final = 0.25
# How long one slice of the encoding may hold the event loop, and the pause after it.
ENCODE_SLICE_SECONDS: Final = 0.0005
# Beyond this many times `max_waiting`, each change that comes encodes the oldest.
MOST_WAITING_FACTOR: Final = 5


class PendingChanges:
    """The state changes received and not encoded yet, oldest first."""

    def __init__(
        self,
        encode: Callable[[Event[EventStateChangedData]], None],
        max_waiting: int,
    ) -> None:
        """Hand each change to `encode` once held; beyond `max_waiting`, at once."""
        self._encode = encode
        self._max_waiting = max_waiting
        self._events: deque[Event[EventStateChangedData]] = deque()
        # How many of the oldest have been held long enough.
        self._due = 0
        self._hold: asyncio.TimerHandle | None = None
        self._next_slice: asyncio.Handle | None = None

    def __len__(self) -> int:
        """Return how many state changes wait."""
        return len(self._events)

    @property
    def oldest_fired(self) -> float | None:
        """When the oldest change waiting was fired (seconds since the epoch), if any."""
        return self._events[0].time_fired_timestamp if self._events else None

    @callback
    def append(self, event: Event[EventStateChangedData]) -> None:
        """Hold a state change; in the event loop, per state change."""
        events = self._events
        events.append(event)
        if self._hold is None:
            self._hold = asyncio.get_running_loop().call_later(
                HOLD_SECONDS, self._hold_over
            )
        elif len(events) > self._max_waiting:
            if len(events) > MOST_WAITING_FACTOR * self._max_waiting:
                self._due = max(0, self._due - 1)
                self._encode(events.popleft())
            if self._next_slice is None:
                self._next_slice = asyncio.get_running_loop().call_soon(
                    self._encode_slice
                )

    @callback
    def encode_all(self) -> None:
        """Encode every change waiting, now: at stop, or before lines that follow them."""
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        if self._next_slice is not None:
            self._next_slice.cancel()
            self._next_slice = None
        self._due = 0
        events, encode = self._events, self._encode
        while events:
            encode(events.popleft())

    @callback
    def _hold_over(self) -> None:
        """Everything waiting now is due; what comes next starts a hold of its own."""
        self._hold = None
        self._due = len(self._events)
        if self._next_slice is None:
            self._encode_slice()

    @callback
    def _encode_slice(self) -> None:
        """Encode what is due, the oldest first, for one slice; the rest after a pause."""
        self._next_slice = None
        events, encode = self._events, self._encode
        slice_ends = time.perf_counter() + ENCODE_SLICE_SECONDS
        while self._due or len(events) > self._max_waiting:
            self._due = max(0, self._due - 1)
            encode(events.popleft())
            if time.perf_counter() >= slice_ends:
                break
        if self._due or len(events) > self._max_waiting:
            self._next_slice = asyncio.get_running_loop().call_later(
                ENCODE_SLICE_SECONDS, self._encode_slice
            )
