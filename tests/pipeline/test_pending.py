"""State changes held a moment, then encoded in slices, oldest first."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

from homeassistant.core import Event, EventStateChangedData, HomeAssistant

from custom_components.ha_ingestor.pipeline import pending
from custom_components.ha_ingestor.pipeline.pending import (
    HOLD_SECONDS,
    MOST_WAITING_FACTOR,
    PendingChanges,
)

from ..conftest import wait_until


def _events(count: int) -> list[Event[EventStateChangedData]]:
    return [
        Event(
            "state_changed",
            {"entity_id": f"sensor.n{n}", "old_state": None, "new_state": None},
            time_fired_timestamp=1_000.0 + n,
        )
        for n in range(count)
    ]


async def _next_turns(turns: int) -> None:
    """Let the event loop run `turns` times."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_held_for_the_hold_then_encoded_oldest_first(hass: HomeAssistant) -> None:
    """Nothing is encoded as it comes; all of it once the hold is over, in order."""
    encoded: list[Event[EventStateChangedData]] = []
    changes = PendingChanges(encoded.append, max_waiting=100)
    events = _events(5)
    for event in events:
        changes.append(event)
    await _next_turns(3)
    assert encoded == []
    assert len(changes) == 5
    assert changes.oldest_fired == 1_000.0
    await asyncio.sleep(HOLD_SECONDS * 1.5)
    assert encoded == events
    assert len(changes) == 0
    assert changes.oldest_fired is None


async def test_beyond_max_waiting_the_oldest_go_without_waiting_for_the_hold(
    hass: HomeAssistant,
) -> None:
    """In a burst, at most `max_waiting` wait; the rest are encoded on the next turn."""
    encoded: list[Event[EventStateChangedData]] = []
    changes = PendingChanges(encoded.append, max_waiting=3)
    events = _events(10)
    for event in events:
        changes.append(event)
    await _next_turns(1)
    assert encoded == events[:7]
    assert len(changes) == 3
    changes.encode_all()
    assert encoded == events


async def test_encoded_in_slices(hass: HomeAssistant) -> None:
    """A slice ends once it has held the loop ENCODE_SLICE_SECONDS: the rest waits.

    With a slice of no time at all, each slice encodes one change.
    """
    encoded: list[Event[EventStateChangedData]] = []
    changes = PendingChanges(encoded.append, max_waiting=2)
    events = _events(6)
    with patch.object(pending, "ENCODE_SLICE_SECONDS", 0.0):
        for event in events:
            changes.append(event)
        await _next_turns(1)
        assert len(encoded) <= 1
        await wait_until(lambda: len(encoded) == 4, "beyond max_waiting encoded")
        await _next_turns(3)
        assert encoded == events[:4]
    changes.encode_all()
    assert encoded == events


async def test_changes_faster_than_the_slices_are_encoded_as_they_come(
    hass: HomeAssistant,
) -> None:
    """Beyond MOST_WAITING_FACTOR times max_waiting, each new change encodes one."""
    encoded: list[Event[EventStateChangedData]] = []
    changes = PendingChanges(encoded.append, max_waiting=2)
    most = MOST_WAITING_FACTOR * 2
    events = _events(most + 3)
    for event in events:
        changes.append(event)
    assert encoded == events[:3]
    assert len(changes) == most
    changes.encode_all()
    assert encoded == events


async def test_encode_all_leaves_nothing_waiting_nor_scheduled(
    hass: HomeAssistant,
) -> None:
    """At stop: every change encoded at once, in order, and no timer left behind."""
    encoded: list[Event[EventStateChangedData]] = []
    changes = PendingChanges(encoded.append, max_waiting=2)
    events = _events(4)
    for event in events:
        changes.append(event)
    changes.encode_all()
    assert encoded == events
    assert len(changes) == 0
    await asyncio.sleep(HOLD_SECONDS * 1.5)
    assert encoded == events
    # What comes afterwards is held again.
    later = _events(1)
    changes.append(later[0])
    assert encoded == events
    changes.encode_all()
    assert encoded == [*events, *later]
