"""The recorder's history, read for a backfill: in the recorder's executor, in chunks.

The `read_*` functions run in a thread of the recorder's own database executor
(through `get_instance(hass).async_add_executor_job`), with a read-only session of the
recorder, on its own tables: SQLite, MariaDB, MySQL and PostgreSQL alike. Each call is
one short query, so the database is never held for long: a chunk is at most a few
thousand rows found through the recorder's index on `last_updated_ts`, oldest first.
The thread only fetches the rows: making states of them (`to_rows`) is left to the
event loop, a slice at a time, so that the thread holds the GIL as little as it can
(while it does, the event loop waits for it).

Home Assistant's history API does not serve what a point is made of: it leaves out the
context (the `rich` preset writes its ids) and the state before (`rich`'s previous
state and how long it lasted), and it reads one entity at a time or all at once. So
rows are read from the recorder's `states` table joined with the state they replaced
(`old_state_id`, the link the recorder keeps itself), which makes every state's
previous state exact, chunk boundaries or not. Each row becomes the `State` Home
Assistant had: its text, attributes, times and context as the recorder stored them,
with `last_updated_ts`, which is the state change's event time, as its timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
import time
from typing import Any, Final, NamedTuple
from uuid import UUID

from homeassistant.components.recorder.db_schema import (
    SHARED_ATTR_OR_LEGACY_ATTRIBUTES,
    RecorderRuns,
    StateAttributes,
    States,
    StatesMeta,
)
from homeassistant.core import Context, HomeAssistant, State
from homeassistant.helpers.recorder import get_instance, session_scope
from homeassistant.util import dt as dt_util
from homeassistant.util.json import json_loads_object
from homeassistant.util.read_only_dict import ReadOnlyDict
from homeassistant.util.ulid import bytes_to_ulid_or_none
from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import aliased

# Attribute sets decoded and kept while a backfill reads (the recorder stores each
# distinct set once): past this many, the memory is emptied and filled anew.
ATTRIBUTE_CACHE_SIZE: Final = 20_000
# A context without a recorded id (none since 2023) gets this one, so that a row reads
# the same every time.
_NO_CONTEXT_ID: Final = "0"
_NO_ATTRIBUTES: Final[ReadOnlyDict[str, Any]] = ReadOnlyDict()
# The context of states whose context no encoder reads.
_OLD_STATE_CONTEXT: Final = Context(id=_NO_CONTEXT_ID)


class Position(NamedTuple):
    """Where a read stopped: the last row's time, and its id for rows of the same time."""

    time: float
    state_id: int


type HistoryRow = tuple[State | None, State | None]
"""A row of the recorder's `states` as the state change it records, and the state it
replaced. The state is None for a row that is no state change live ingestion writes:
an entity removed, or the unchanged state an entity set again at a restart."""


@dataclass(slots=True)
class Chunk:
    """Rows read in one query, oldest first, and how long the query held the database.

    Each row is a tuple as the query returns it; `to_rows` makes them states.
    """

    rows: Sequence[Sequence[Any]]
    seconds: float
    last: bool
    """Whether the window has no rows after these."""

    @property
    def last_position(self) -> Position | None:
        """Where the next read goes on from."""
        return row_position(self.rows[-1]) if self.rows else None


@dataclass(slots=True)
class ReadMemo:
    """What a backfill carries from row to row: decoded attributes, last states."""

    attributes: dict[int, ReadOnlyDict[str, Any]] = field(default_factory=dict)
    last_states: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Each entity's last state text and attributes (as stored) read so far."""


@dataclass(frozen=True, slots=True)
class Window:
    """State changes from `start` (None: the oldest the recorder has) until `end`.

    Times are seconds since the epoch; a state of time `end` is not in the window.
    """

    start: float | None
    end: float


def _in_window(window: Window, after: Position | None) -> ColumnElement[bool]:
    """Select the rows of `window` after `after`: one range of the time index."""
    conditions = [States.last_updated_ts < window.end]
    if after is not None:
        # One range of the index: >= its time, then the same-time rows already read
        # left out.
        conditions += [
            States.last_updated_ts >= after.time,
            ~and_(
                States.last_updated_ts == after.time,
                States.state_id <= after.state_id,
            ),
        ]
    elif window.start is not None:
        conditions.append(States.last_updated_ts >= window.start)
    return and_(*conditions)


def _metadata_filter(metadata_ids: Sequence[int] | None) -> list[ColumnElement[bool]]:
    return [] if metadata_ids is None else [States.metadata_id.in_(metadata_ids)]


def _chunk_statement(
    window: Window,
    after: Position | None,
    metadata_ids: Sequence[int] | None,
    limit: int,
) -> Select[Any]:
    old = aliased(States)
    return (
        select(
            States.state_id,
            States.last_updated_ts,
            StatesMeta.entity_id,
            States.state,
            States.last_changed_ts,
            States.attributes_id,
            SHARED_ATTR_OR_LEGACY_ATTRIBUTES,
            States.context_id_bin,
            States.context_user_id_bin,
            States.context_parent_id_bin,
            old.state,
            old.last_changed_ts,
            old.last_updated_ts,
        )
        .join(StatesMeta, States.metadata_id == StatesMeta.metadata_id)
        .outerjoin(
            StateAttributes, States.attributes_id == StateAttributes.attributes_id
        )
        .outerjoin(old, States.old_state_id == old.state_id)
        .where(_in_window(window, after), *_metadata_filter(metadata_ids))
        .order_by(States.last_updated_ts, States.state_id)
        .limit(limit)
    )


def _uuid_hex(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return UUID(bytes=data).hex
    except ValueError:
        return None


def _attributes(
    memo: ReadMemo, attributes_id: int | None, shared: str | None
) -> ReadOnlyDict[str, Any]:
    """Decode a set of attributes once; rows that share it share the object.

    Home Assistant keeps an entity's attributes object while a change leaves them as
    they were, and the encoders keep what they rendered of it: so do these rows.
    """
    if not shared or shared == "{}":
        return _NO_ATTRIBUTES
    if attributes_id is None:  # a row of before 2022: `states.attributes`
        return _decoded(shared)
    cache = memo.attributes
    if (attributes := cache.get(attributes_id)) is None:
        if len(cache) >= ATTRIBUTE_CACHE_SIZE:
            cache.clear()
        attributes = cache[attributes_id] = _decoded(shared)
    return attributes


def _decoded(shared: str) -> ReadOnlyDict[str, Any]:
    """Decode attributes; ones that are no JSON object are none, as in the recorder's history."""
    try:
        return ReadOnlyDict(json_loads_object(shared))
    except ValueError:
        return _NO_ATTRIBUTES


def to_rows(
    raw: Sequence[Sequence[Any]], memo: ReadMemo, *, change: bool
) -> Iterator[HistoryRow]:
    """Make each row the state change it records, one at a time (in the event loop).

    One at a time: a row's objects are garbage before the next is made, so the
    garbage collector's young generation frees them, rather than an old one.

    With `change`, the state gets its context, and the state before is made when its
    text differs: the `rich` preset reads of them the context's ids, the previous
    state and how long it lasted, nothing else. Without, the states share one
    context and have none before: `core_compatible` reads neither.
    """
    last_states = memo.last_states
    utc = dt_util.utc_from_timestamp
    contexts: dict[tuple[bytes | None, bytes | None, bytes | None], Context] = {}
    for (
        _state_id,
        updated,
        entity_id,
        text,
        changed,
        attributes_id,
        shared,
        context_id,
        user_id,
        parent_id,
        old_text,
        old_changed,
        old_updated,
    ) in raw:
        if text is None:  # the entity was removed
            last_states.pop(entity_id, None)
            yield None, None
            continue
        seen = last_states.get(entity_id)
        last_states[entity_id] = (text, shared)
        if old_updated is None and seen == (text, shared):
            # A restart set the state it had: live ingestion skips it too
            # (last_states.unchanged_since_restart).
            yield None, None
            continue
        context = _OLD_STATE_CONTEXT
        if change:
            # One service call changes many entities in one context: one object.
            key = (context_id, user_id, parent_id)
            if (known := contexts.get(key)) is None:
                known = contexts[key] = Context(
                    user_id=_uuid_hex(user_id),
                    parent_id=bytes_to_ulid_or_none(parent_id),
                    id=bytes_to_ulid_or_none(context_id) or _NO_CONTEXT_ID,
                )
            context = known
        updated_at = utc(updated)
        state = State(
            entity_id,
            text,
            _attributes(memo, attributes_id, shared),
            last_changed=updated_at if changed is None else utc(changed),
            last_reported=updated_at,
            last_updated=updated_at,
            context=context,
            validate_entity_id=False,
            last_updated_timestamp=updated,
        )
        old_state = None
        if change and old_updated is not None and old_text != text:
            old_changed_at = utc(old_updated if old_changed is None else old_changed)
            old_state = State(
                entity_id,
                old_text or "",
                _NO_ATTRIBUTES,
                last_changed=old_changed_at,
                last_reported=old_changed_at,
                last_updated=old_changed_at,
                context=_OLD_STATE_CONTEXT,
                validate_entity_id=False,
                # Its last_changed_timestamp: exactly the recorder's float.
                last_updated_timestamp=old_updated
                if old_changed is None
                else old_changed,
            )
        yield state, old_state


def row_position(row: Sequence[Any]) -> Position:
    """Where a row is: its time, and its id for rows of the same time."""
    state_id, updated = row[:2]
    return Position(updated, state_id)


def read_chunk(
    hass: HomeAssistant,
    *,
    window: Window,
    after: Position | None,
    metadata_ids: Sequence[int] | None,
    limit: int,
) -> Chunk:
    """Read the next `limit` rows of `window` after `after`; in the recorder's executor."""
    started = time.monotonic()
    with session_scope(hass=hass, read_only=True) as session:
        # Plain tuples of plain values: the garbage collector stops tracking them,
        # where it would move each of SQLAlchemy's rows to its old generation.
        raw = [
            tuple(row)
            for row in session.execute(
                _chunk_statement(window, after, metadata_ids, limit)
            )
        ]
    seconds = time.monotonic() - started
    return Chunk(raw, seconds, len(raw) < limit)


def read_metadata_ids(hass: HomeAssistant, entity_ids: Sequence[str]) -> list[int]:
    """Return the recorder's ids of these entities (those it has any history of)."""
    with session_scope(hass=hass, read_only=True) as session:
        found = get_instance(hass).states_meta_manager.get_many(
            entity_ids, session, False
        )
    return sorted(metadata_id for metadata_id in found.values() if metadata_id)


def read_count(
    hass: HomeAssistant, window: Window, metadata_ids: Sequence[int] | None
) -> int:
    """Count the rows of `window` (of these entities, if any are given)."""
    with session_scope(hass=hass, read_only=True) as session:
        count = session.execute(
            select(func.count())
            .select_from(States)
            .where(_in_window(window, None), *_metadata_filter(metadata_ids))
        ).scalar()
    return int(count or 0)


def read_entity_counts(hass: HomeAssistant, window: Window) -> dict[str, int]:
    """Count the rows of `window` per entity, for estimates before a backfill."""
    with session_scope(hass=hass, read_only=True) as session:
        rows = session.execute(
            select(StatesMeta.entity_id, func.count())
            .select_from(States)
            .join(StatesMeta, States.metadata_id == StatesMeta.metadata_id)
            .where(_in_window(window, None), States.state.is_not(None))
            .group_by(StatesMeta.entity_id)
        ).all()
    return {str(entity_id): int(count) for entity_id, count in rows}


def read_oldest_time(hass: HomeAssistant) -> float | None:
    """Return the time of the oldest state change the recorder holds."""
    with session_scope(hass=hass, read_only=True) as session:
        oldest = session.execute(select(func.min(States.last_updated_ts))).scalar()
    return None if oldest is None else float(oldest)


def read_runs(hass: HomeAssistant, window: Window) -> list[tuple[float, float]]:
    """Return the recorder's runs that overlap `window`: (start, end), oldest first.

    A run that has not ended (the one recording now) ends at the window's end.
    """
    end = dt_util.utc_from_timestamp(window.end)
    with session_scope(hass=hass, read_only=True) as session:
        query = select(RecorderRuns.start, RecorderRuns.end).where(
            RecorderRuns.start < end
        )
        if window.start is not None:
            start = dt_util.utc_from_timestamp(window.start)
            query = query.where(
                (RecorderRuns.end.is_(None)) | (RecorderRuns.end > start)
            )
        rows = session.execute(query.order_by(RecorderRuns.start)).all()
    return [
        (_timestamp(run_start), window.end if run_end is None else _timestamp(run_end))
        for run_start, run_end in rows
    ]


def uncovered_seconds(window: Window, runs: Sequence[tuple[float, float]]) -> float:
    """How much of `window` no run of the recorder covers, in seconds."""
    start = window.end if window.start is None else window.start
    uncovered = 0.0
    for run_start, run_end in sorted(runs):
        if run_start > start:
            uncovered += min(run_start, window.end) - start
        start = max(start, run_end)
        if start >= window.end:
            break
    return uncovered + max(0.0, window.end - start)


def _timestamp(moment: datetime) -> float:
    """Seconds since the epoch of a time the database may return without its zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_util.UTC)
    return moment.timestamp()
