"""Reading the recorder's rows as state changes (history.to_rows), and its runs.

The queries themselves run against Home Assistant's real recorder in
test_backfill.py; here, rows as the query returns them.
"""

from __future__ import annotations

from typing import Any

from homeassistant.util.ulid import ulid_at_time, ulid_to_bytes
import pytest

from custom_components.ha_ingestor.pipeline.history import (
    Chunk,
    Position,
    ReadMemo,
    Window,
    row_position,
    to_rows,
    uncovered_seconds,
)

USER_HEX = "5f4dcc3b5aa765d61d8327deb882cf99"
CONTEXT = ulid_at_time(1_800_000_000.0)
PARENT = ulid_at_time(1_799_999_999.0)


def row(
    state_id: int,
    updated: float,
    text: str | None,
    *,
    entity_id: str = "sensor.power",
    changed: float | None = None,
    attributes: tuple[int, str] | None = (1, '{"unit_of_measurement":"W"}'),
    context: str | None = CONTEXT,
    user: str | None = None,
    parent: str | None = None,
    old: tuple[str, float | None, float] | None = None,
) -> tuple[Any, ...]:
    """A row as the backfill's query returns it."""
    attributes_id, shared = attributes or (None, None)
    old_text, old_changed, old_updated = old or (None, None, None)
    return (
        state_id,
        updated,
        entity_id,
        text,
        changed,
        attributes_id,
        shared,
        None if context is None else ulid_to_bytes(context),
        None if user is None else bytes.fromhex(user),
        None if parent is None else ulid_to_bytes(parent),
        old_text,
        old_changed,
        old_updated,
    )


def test_a_row_is_the_state_it_records() -> None:
    """Text, attributes, times, context and the state before, as recorded."""
    ((state, old_state),) = to_rows(
        [
            row(
                7,
                1000.25,
                "21.5",
                user=USER_HEX,
                parent=PARENT,
                old=("21.0", 900.5, 950.75),
            )
        ],
        ReadMemo(),
        change=True,
    )
    assert state is not None
    assert (state.entity_id, state.state) == ("sensor.power", "21.5")
    assert dict(state.attributes) == {"unit_of_measurement": "W"}
    assert state.last_updated_timestamp == 1000.25
    assert state.last_changed_timestamp == 1000.25
    assert (state.context.id, state.context.user_id, state.context.parent_id) == (
        CONTEXT,
        USER_HEX,
        PARENT,
    )
    # The state before: its text, and since when it had it, to the recorder's float.
    assert old_state is not None
    assert (old_state.state, old_state.last_changed_timestamp) == ("21.0", 900.5)


def test_what_a_row_does_not_need_is_not_made() -> None:
    """No state before for core_compatible, nor when only attributes changed."""
    rows = [
        row(1, 10.0, "on", old=("off", None, 5.0)),
        row(2, 20.0, "on", changed=10.0, old=("on", None, 10.0)),
    ]
    assert [old for _, old in to_rows(rows, ReadMemo(), change=False)] == [
        None,
        None,
    ]
    (_, first), (second, after_attributes) = to_rows(rows, ReadMemo(), change=True)
    assert first is not None
    assert (first.state, first.last_changed_timestamp) == ("off", 5.0)
    assert after_attributes is None
    assert second is not None
    assert second.last_changed_timestamp == 10.0


def test_removals_and_a_restarts_unchanged_states_are_no_state_changes() -> None:
    """As live ingestion: a removal writes nothing, nor a restart's same state.

    The state an entity gets after it was removed is written, also when it is the
    same as before the removal.
    """
    memo = ReadMemo()
    rows = [
        row(1, 10.0, "5"),
        # Home Assistant restarted: no state before, the same state and attributes.
        row(2, 20.0, "5"),
        # Attributes changed at the restart: written.
        row(3, 30.0, "5", attributes=(2, '{"unit_of_measurement":"kW"}')),
        row(4, 40.0, None, attributes=None),
        row(5, 50.0, "5", attributes=(2, '{"unit_of_measurement":"kW"}')),
        row(6, 60.0, "5", entity_id="sensor.other"),
    ]
    states = [state for state, _ in to_rows(rows, memo, change=True)]
    assert [state is not None for state in states] == [
        True,
        False,
        True,
        False,
        True,
        True,
    ]


def test_rows_share_attributes_and_contexts_as_home_assistant_does() -> None:
    """One object per set of attributes (and per context within a slice)."""
    rows = [
        row(1, 10.0, "1", entity_id="light.a"),
        row(2, 10.5, "2", entity_id="light.b"),
        row(3, 11.0, "3", entity_id="light.a", context=None),
    ]
    (a, _), (b, _), (c, _) = to_rows(rows, ReadMemo(), change=True)
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.attributes is b.attributes is c.attributes
    assert a.context is b.context
    assert a.context.id == CONTEXT
    # A row without a recorded context gets a fixed id: it reads the same each time.
    assert c.context.id == "0"
    # core_compatible reads no context: one for all.
    (a, _), (b, _), (c, _) = to_rows(rows, ReadMemo(), change=False)
    assert a is not None
    assert c is not None
    assert a.context is c.context


def test_positions() -> None:
    """A chunk goes on after its last row: its time, then its id."""
    rows = [row(3, 10.0, "1"), row(9, 10.0, "2")]
    assert row_position(rows[0]) == Position(10.0, 3)
    assert Chunk(rows, 0.1, last=False).last_position == Position(10.0, 9)
    assert Chunk([], 0.1, last=True).last_position is None


@pytest.mark.parametrize(
    ("runs", "uncovered"),
    [
        ([], 100.0),
        ([(0.0, 200.0)], 0.0),
        ([(0.0, 130.0), (150.0, 300.0)], 20.0),
        ([(110.0, 120.0), (115.0, 140.0)], 100.0 - 30.0),
        ([(50.0, 100.0), (200.0, 250.0)], 100.0),
        ([(190.0, 250.0)], 90.0),
    ],
)
def test_what_no_run_of_the_recorder_covers(
    runs: list[tuple[float, float]], uncovered: float
) -> None:
    """Of the window 100 to 200: the time no run recorded."""
    assert uncovered_seconds(Window(100.0, 200.0), runs) == uncovered
