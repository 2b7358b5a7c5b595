"""A damaged spool: set aside, a new one started at once, and what can be read copied.

A spool SQLite finds damaged (a page overwritten, its header lost) cannot be used,
but most of it can usually still be read. `open_spool` moves such a file and its log
aside under a name with the time, opens a new spool at its path at once, and copies
the last states and stats that can be read into it, which setup reads next.
`Salvage.run` then copies the quarantine and the points, in the background, reading
the old file only (it stays as it was, to be examined). Ranges of ids are read whole
where they can be and halved where they cannot, down to the single points that are
lost. The points go before any stored meanwhile, oldest first (Spool.prepend).

The ids of the points waiting follow each other (handed out in order, removed
oldest first): the points of their range that cannot be read are the points lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
import json
from pathlib import Path
import sqlite3
from typing import Any, Final

import aiosqlite

from ..const import LOGGER
from .spool import QuarantinedPoint, Spool, SpoolDamagedError, SpoolError
from .sqlite import SQLITE_SUFFIXES, SqliteConnection

# Ids read per query while they can be read; a range that cannot is halved.
WINDOW: Final = 4096
DAMAGED: Final = ".damaged-"

type _Row = tuple[Any, ...]


@dataclass(slots=True)
class Salvage:
    """A damaged spool moved aside, and what was copied from it into the new one."""

    moved_to: Path
    cause: str
    saved: int = 0
    """Points copied into the new spool."""
    lost: int | None = 0
    """Points that could not be read; None if their number is unknown too."""
    quarantined: int = 0
    """Quarantined points copied into the new spool's quarantine."""
    done: bool = False

    async def copy_state(self, spool: Spool) -> None:
        """Copy the old spool's last states and stats, where readable, into `spool`."""
        try:
            async with _reading(self.moved_to) as db:
                last_states = {
                    str(entity_id): str(fingerprint)
                    for entity_id, fingerprint in await _query(
                        db, "SELECT entity_id, fingerprint FROM last_states"
                    )
                    or []
                }
                stats = _stats(await _query(db, "SELECT data FROM stats WHERE id = 1"))
            await spool.import_state(last_states, stats)
        except SpoolError as err:
            LOGGER.warning(
                "The last states and counters of %s could not be copied: %s",
                self.moved_to,
                err,
            )

    async def run(self, spool: Spool) -> None:
        """Copy the old spool's quarantine and points into `spool`; then it is done.

        Should `spool` fail meanwhile (a full disk, an unload), what is not copied
        yet stays in the old file, and is counted as lost.
        """
        lost = _Count()
        try:
            async with _reading(self.moved_to) as db:
                quarantine: list[_Row] = []
                async for rows in _readable_rows(
                    db, "quarantine", "line, error, added_at", _Count()
                ):
                    quarantine[:0] = rows
                # The oldest dropped for room (the new spool's limit) are the
                # spool's drops, counted by whoever takes them.
                await spool.add_quarantined(
                    [
                        QuarantinedPoint(
                            row[0], row[1], row[2], datetime.fromtimestamp(row[3], UTC)
                        )
                        for row in quarantine
                    ]
                )
                self.quarantined = len(quarantine)
                async for rows in _readable_rows(db, "points", "line", lost):
                    await spool.prepend([row[1] for row in rows])
                    self.saved += len(rows)
        except SpoolError as err:
            LOGGER.warning("Salvaging %s stopped: %s", self.moved_to, err)
        self.lost = None if lost.range is None else lost.range - self.saved
        self.done = True
        LOGGER.warning(
            "Salvaged %d points and %d quarantined ones of the damaged spool %s; "
            "%s points could not be read",
            self.saved,
            self.quarantined,
            self.moved_to,
            "an unknown number of" if self.lost is None else self.lost,
        )


async def open_spool(path: Path, max_bytes: int) -> tuple[Spool, Salvage | None]:
    """Open the spool at `path`; a damaged one is moved aside and a new one opened.

    The new one gets the old one's last states and stats, where readable; the
    Salvage returned copies the rest (`run`). Raises what Spool.open raises for
    anything else.
    """
    try:
        return await Spool.open(path, max_bytes), None
    except SpoolDamagedError as err:
        moved = await asyncio.to_thread(_move_aside, path)
        LOGGER.error(
            "The spool %s is damaged (%s): it was moved to %s and a new one started; "
            "what can be read of it is copied into the new one",
            path,
            err,
            moved,
        )
        salvage = Salvage(moved, str(err))
    spool = await Spool.open(path, max_bytes)
    try:
        await salvage.copy_state(spool)
    except BaseException:
        await spool.close()
        raise
    return spool, salvage


def _move_aside(path: Path) -> Path:
    """Rename the spool and the files beside it to a name with the time. Blocking.

    The log goes first: a log left at the path would be replayed into the new spool.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = path.with_name(f"{path.name}{DAMAGED}{stamp}")
    number = 1
    while moved.exists():
        number += 1
        moved = path.with_name(f"{path.name}{DAMAGED}{stamp}-{number}")
    for suffix in reversed(SQLITE_SUFFIXES):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).rename(
                moved.with_name(moved.name + suffix)
            )
    return moved


@contextlib.asynccontextmanager
async def _reading(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """Open the damaged spool `path` read-only, for the block."""

    async def nothing_to_prepare(_db: aiosqlite.Connection) -> None:
        """Check nothing: each read says for itself whether it can be done."""

    connection = await SqliteConnection.open(
        path,
        nothing_to_prepare,
        lambda message: SpoolError(f"Damaged spool {path}: {message}"),
        private=True,
        read_only=True,
    )
    try:
        yield connection.db
    finally:
        await connection.close()


async def _query(
    db: aiosqlite.Connection, sql: str, parameters: Sequence[Any] = ()
) -> list[_Row] | None:
    """Return the rows of `sql`; None if the file cannot give them."""
    try:
        return [tuple(row) for row in await db.execute_fetchall(sql, parameters)]
    except sqlite3.Error as err:
        LOGGER.debug("Cannot read %s: %s", sql, err)
        return None


def _stats(rows: list[_Row] | None) -> dict[str, Any] | None:
    """Return the stats saved, if their row can be read and holds them."""
    if not rows:
        return None
    try:
        data = json.loads(rows[0][0])
    except ValueError, TypeError:
        return None
    return data if isinstance(data, dict) else None


@dataclass(slots=True)
class _Count:
    """How many ids the rows read span: None if where they start or end is unknown."""

    range: int | None = 0


async def _readable_rows(
    db: aiosqlite.Connection, table: str, columns: str, count: _Count
) -> AsyncIterator[list[_Row]]:
    """Yield the rows of `table` (id and `columns`) that can be read, newest first.

    Each yield is a window of ids, in order within it. Where the lowest id cannot
    be read, the windows go down until one holds nothing readable, and `count`
    says the range is unknown.
    """
    empty = await _query(db, f"SELECT NOT EXISTS (SELECT 1 FROM {table})")  # noqa: S608 (ours)
    if empty == [(1,)]:
        return
    first = _id(await _query(db, f"SELECT min(id) FROM {table}"))  # noqa: S608 (ours)
    last = _id(await _query(db, f"SELECT max(id) FROM {table}"))  # noqa: S608 (ours)
    if last is None:
        last = _id(
            await _query(db, "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
        )
    if last is None:
        count.range = None
        return
    count.range = None if first is None else last - first + 1
    high = last
    while first is None or high >= first:
        low = high - WINDOW + 1 if first is None else max(first, high - WINDOW + 1)
        rows = await _readable(db, table, columns, low, high)
        if rows:
            yield rows
        elif first is None:
            return
        high = low - 1


def _id(rows: list[_Row] | None) -> int | None:
    """Return the id a min, max or sequence query read; None if it could not."""
    if not rows or rows[0][0] is None:
        return None
    return int(rows[0][0])


async def _readable(
    db: aiosqlite.Connection, table: str, columns: str, first: int, last: int
) -> list[_Row]:
    """Return every row of `table` with an id from `first` to `last` that can be read.

    A range that cannot be read is halved, and its halves read, down to single ids.
    Reading a range steps from the page of its last row to the next one: the last
    row of a page before a damaged one is read alone.
    """
    rows: list[_Row] = []
    ranges = [(first, last)]
    while ranges:
        low, high = ranges.pop()
        # One id is looked up: a range would step on to the next page, damaged or not.
        found = await _query(
            db,
            f"SELECT id, {columns} FROM {table} WHERE id BETWEEN ? AND ? ORDER BY id"  # noqa: S608 (ours)
            if low < high
            else f"SELECT id, {columns} FROM {table} WHERE id = ?",  # noqa: S608 (ours)
            (low, high) if low < high else (low,),
        )
        if found is not None:
            rows += found
        elif low < high:
            middle = (low + high) // 2
            ranges += [(middle + 1, high), (low, middle)]
    return rows
