"""A durable queue on disk of the points not yet written, and a quarantine for refused ones.

Points are line-protocol strings that carry their own timestamp, so a line replayed
later is written with its original time. They are kept in a SQLite file through
aiosqlite, which runs every statement in a thread of its own, off the event loop.

Replaying is crash-safe when points are removed only after they were written:

    points = await spool.oldest(1000)
    await write([line for _, line in points])
    await spool.remove_ids(range(points[0][0], points[-1][0] + 1))

A crash between the write and the removal offers the same points again, and writing a
point twice is harmless: InfluxDB keeps one point per series and timestamp.

The spool's whole footprint on disk stays within `max_bytes`: the database, its
write-ahead log and the log's shared memory, and a reserve file. The log is bounded
first: every
transaction writes at most TRANSACTION_PAGES pages (appends and removals are split
into chunks of about CHUNK_BYTES of lines) and SQLite checkpoints it into the
database every WAL_CHECKPOINT_PAGES, truncating it to what that leaves. The database
gets the rest of the limit, counted in its real pages: when an append takes it past
them, the oldest points are deleted and the pages beyond given back to the file
system (auto_vacuum=INCREMENTAL). Once the spool is drained, every free page is given
back, and the log truncated.

Freeing space never needs free space. When the disk is full, SQLite can neither add
to the log nor checkpoint it, and so cannot delete either. The reserve, a file of
RESERVE_BYTES beside the database, is deleted when SQLite finds the disk full while
removing points: that is room to checkpoint a full log and remove them. Their pages
are then given back at once, and the reserve made again; until it can be, nothing
new is stored (SpoolDiskFullError), so the room it needs is not taken meanwhile.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
import contextlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
import errno
import functools
import itertools
import json
import os
from pathlib import Path
import sqlite3
import time
from typing import Any, Final, NamedTuple, Self

import aiosqlite

from ..const import LOGGER
from .sqlite import (
    SqliteConnection,
    SqliteFileError,
    delete_sqlite_files,
    migrate,
    use_wal,
)

# Statements that take the schema from version N (the index) to N + 1; the file's version
# is kept in `PRAGMA user_version`. A new version is a new entry, never an edited one.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # AUTOINCREMENT: an id is never handed out twice, not even after the queue was
        # emptied, so a removal can never reach points appended after a read.
        "CREATE TABLE points (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL)",
        "CREATE TABLE quarantine ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " line TEXT NOT NULL,"
        " error TEXT NOT NULL,"
        " added_at REAL NOT NULL)",  # seconds since the epoch
    ),
    (
        # The fingerprint of each entity's last state whose point is durable: in the
        # spool or written. A restart skips an entity's first state if it matches.
        "CREATE TABLE last_states ("
        " entity_id TEXT PRIMARY KEY NOT NULL,"
        " fingerprint TEXT NOT NULL) WITHOUT ROWID",
        # The pipeline's totals, one JSON row, saved with each durable step.
        "CREATE TABLE stats (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

# PRAGMA auto_vacuum's value for INCREMENTAL.
_INCREMENTAL: Final = 2
# SQLite's page size for new files; a file keeps the one it was made with.
_NEW_PAGE_SIZE: Final = 4096
# The log is checkpointed into the database once it holds this many pages.
WAL_CHECKPOINT_PAGES: Final = 64
# The most pages one transaction writes: a chunk of lines stored (and as many of the
# oldest deleted for room, and pages moved to give them back), or removed; the
# entities' last states saved with an append (about 60 per page). The log never holds
# more than WAL_CHECKPOINT_PAGES + TRANSACTION_PAGES pages.
TRANSACTION_PAGES: Final = 256
# Bytes of lines (their characters, and a few for each row) stored or removed per
# transaction: about 110 pages of 4 KiB, 180 for the shortest lines (measured), with
# room to spare for multi-byte characters. Each transaction takes a few statements,
# and each statement makes SQLite's thread wait for the GIL, which a busy event loop
# holds for up to the switch interval: chunks much smaller make a burst of state
# changes wait in memory.
CHUNK_BYTES: Final = 384 << 10
# What SQLite adds to each line in a page, about: its row's header and pointer.
_ROW_BYTES: Final = 10
# Lines per chunk at most, however short they are.
_CHUNK_LINES: Final = CHUNK_BYTES // _ROW_BYTES
# The log's shared memory: 32 KiB per 4,096 pages of log, mapped in the system's pages
# (up to 64 KiB on some ARM kernels).
_SHM_BYTES: Final = 64 << 10
# The database's share of the limit must hold its tables and a few chunks.
_MIN_PAGES: Final = 64
# Free pages given back to the file system per transaction. Where points remain,
# pages are moved into them, and so written to the log; and more dirty pages than
# SQLite's cache holds (500) would be written to the log even if truncated after.
_VACUUM_STEP: Final = 128

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A line's time in microseconds, in SQL: the digits that end it (0 if none do).
_LINE_TIME_US: Final = (
    "CAST(substr(line, length(rtrim(line, '0123456789')) + 1) AS INTEGER)"
)

type TimeSpan = tuple[datetime, datetime]
"""The oldest and the newest of some points' times."""

# The database's pages, and how many of them are free, as columns of a SELECT.
_PAGES: Final = (
    "(SELECT page_count FROM pragma_page_count()),"
    " (SELECT freelist_count FROM pragma_freelist_count())"
)

# Lines per INSERT statement, far below SQLite's limit on parameters (32,766 since
# 3.32). One statement for every 5,000 lines, the last one padded with NULLs, which
# it skips: a single compiled statement, however many lines a chunk holds.
_INSERT_ROWS = 5000
_INSERT_SQL = (
    "INSERT INTO points (line) SELECT column1 FROM (VALUES "  # noqa: S608 (only placeholders)
    + ",".join(["(?)"] * _INSERT_ROWS)
    + ") WHERE column1 IS NOT NULL"
)


def wal_bytes(page_size: int) -> int:
    """Return the most bytes the write-ahead log takes: a header, a frame per page."""
    return 32 + (WAL_CHECKPOINT_PAGES + TRANSACTION_PAGES) * (24 + page_size)


# The reserve: room for the database to take in every page of a full log (a checkpoint
# on a full disk), after which the log is truncated and the removal's own pages fit.
RESERVE_BYTES: Final = wal_bytes(_NEW_PAGE_SIZE)
RESERVE_SUFFIX: Final = "-reserve"


class SpoolError(SqliteFileError):
    """The spool file cannot be used: not a spool, corrupt, unreadable, or disk full.

    Oldest points deleted for room before an operation failed are lost all the same:
    take_drops tells them.
    """


class SpoolDamagedError(SpoolError):
    """The spool file is damaged, or no SQLite file at all: only salvage is left."""


class SpoolDiskFullError(SpoolError):
    """The disk that holds the spool is full: nothing new can be stored meanwhile.

    Points already stored can still be read and removed.
    """


class QuarantinedPoint(NamedTuple):
    """A point InfluxDB refused, with the server's reason."""

    id: int
    line: str
    error: str
    added_at: datetime


class Drops(NamedTuple):
    """Points deleted for room: how many, and the oldest and newest of their times."""

    points: int = 0
    span: TimeSpan | None = None

    def joined(self, other: Drops) -> Drops:
        """Return these drops and `other`'s together."""
        return Drops(self.points + other.points, widen_span(self.span, other.span))


NO_DROPS: Final = Drops()

type StatsOf = Callable[[Drops], Mapping[str, Any]]
"""Gives the stats to save, given the drops they do not count yet (see keep_stats)."""


@dataclass(slots=True)
class _Counters:
    """What the file holds, kept in memory so that reading it costs no I/O."""

    count: int
    size_bytes: int
    oldest_time: datetime | None
    quarantined: int
    pages: int
    """Pages of the database in use (not free)."""
    dropped: Drops = NO_DROPS
    """The points a transaction deleted for room, until it commits."""


def _time_of_us(time_us: int) -> datetime:
    """Return the moment `time_us` microseconds after the epoch, as lines give it."""
    return _EPOCH + timedelta(microseconds=time_us)


def _line_time(line: str) -> datetime | None:
    """Return the timestamp that ends `line` (microseconds); None if none does."""
    try:
        return _time_of_us(int(line.rpartition(" ")[2]))
    except ValueError, OverflowError:
        return None


def lines_span(lines: Iterable[str]) -> TimeSpan | None:
    """Return the oldest and the newest time of `lines`; None if none has one."""
    times = [moment for line in lines if (moment := _line_time(line)) is not None]
    return (min(times), max(times)) if times else None


def widen_span(span: TimeSpan | None, other: TimeSpan | None) -> TimeSpan | None:
    """Return the span from the older start to the newer end of the two."""
    if span is None or other is None:
        return span or other
    return min(span[0], other[0]), max(span[1], other[1])


def _chunks[T](items: Sequence[T], sizes: Sequence[int]) -> list[Sequence[T]]:
    """Split `items` into runs of about CHUNK_BYTES (by `sizes`), at least one item each.

    Never none: an empty `items` is one empty run (a transaction saving state only).
    """
    if not items:
        return [items]
    # Where each item ends, counted from the first.
    ends = list(itertools.accumulate(size + _ROW_BYTES for size in sizes))
    runs = []
    start = 0
    while start < len(items):
        base = ends[start - 1] if start else 0
        end = bisect.bisect_right(ends, base + CHUNK_BYTES, lo=start)
        end = max(start + 1, min(end, start + _CHUNK_LINES))
        runs.append(items[start:end])
        start = end
    return runs


def _padded(rows: Sequence[str]) -> Sequence[str | None]:
    """`rows`, then NULLs up to the parameters of _INSERT_SQL."""
    if len(rows) == _INSERT_ROWS:
        return rows
    return [*rows, *[None] * (_INSERT_ROWS - len(rows))]


def _check_limit(limit: int) -> None:
    # SQLite reads a negative LIMIT as "no limit": refuse it rather than read everything.
    if limit < 0:
        raise ValueError(f"limit must not be negative: {limit}")


class Spool:
    """Points waiting to be written, oldest first, within `max_bytes` on disk.

    Use `await Spool.open(...)` and `await spool.close()`. Operations run one
    transaction at a time; the counters are only read from memory. An operation that
    writes runs to its end even if its caller is cancelled.
    """

    def __init__(
        self,
        connection: SqliteConnection,
        path: Path,
        *,
        max_bytes: int,
        page_size: int,
        counters: _Counters,
        reserve: _Reserve,
    ) -> None:
        """Wrap an open, migrated connection; `open` is the way to make one."""
        self._connection: SqliteConnection | None = connection
        self._path = path
        self._reserve = reserve
        self._max_bytes = max_bytes
        self._page_size = page_size
        self._max_pages = _max_pages(max_bytes, page_size)
        self._counters = counters
        # One transaction at a time: a transaction spans several awaits, and a read
        # between them would see points that may yet be rolled back.
        self._lock = asyncio.Lock()
        # One append (or quarantine) at a time, over all its chunks: its lines get
        # ids that follow each other.
        self._append_lock = asyncio.Lock()
        # The points committed transactions deleted for room, since take_drops.
        self._drops = NO_DROPS
        self._stats_of: StatsOf | None = None

    @classmethod
    async def open(cls, path: Path, max_bytes: int) -> Self:
        """Open the spool at `path`, creating it or migrating it forward as needed.

        Raises SpoolDamagedError for a file SQLite finds damaged, in any page, or
        that is no SQLite file; SpoolError for an SQLite file that is not a spool,
        one written by a newer schema, or one that cannot be opened (those are left
        untouched); ValueError for a `max_bytes` too small to hold the log, the
        reserve and a few pages.
        """
        found: list[tuple[int, _Counters]] = []

        async def prepare(db: aiosqlite.Connection) -> None:
            with _spool_errors(path):
                page_size = await _prepare(db, path)
                _max_pages(max_bytes, page_size)
                found.append((page_size, await _read_counters(db)))

        _max_pages(max_bytes, _NEW_PAGE_SIZE)  # before a file is made for nothing
        reserve = _Reserve(path)
        try:
            connection = await SqliteConnection.open(
                path, prepare, _error_for(path), private=True
            )
        except SpoolError:
            # On a full disk SQLite cannot even make the log's shared memory: the
            # reserve makes room for it, as it does to remove points.
            if not await reserve.release_for_room():
                raise
            connection = await SqliteConnection.open(
                path, prepare, _error_for(path), private=True
            )
        ((page_size, counters),) = found
        try:
            # On a full disk it is made once there is room; the spool opens anyway.
            await reserve.make()
        except BaseException:
            await connection.close()
            raise
        return cls(
            connection,
            path,
            max_bytes=max_bytes,
            page_size=page_size,
            counters=counters,
            reserve=reserve,
        )

    async def close(self) -> None:
        """Close the file and end its thread; nothing runs on once this returns."""
        async with self._lock:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                await connection.close()

    @property
    def path(self) -> Path:
        """The database's file."""
        return self._path

    @property
    def max_bytes(self) -> int:
        """The most bytes the spool's files take on disk; beyond, the oldest go."""
        return self._max_bytes

    @property
    def count(self) -> int:
        """Points waiting to be written."""
        return self._counters.count

    @property
    def size_bytes(self) -> int:
        """UTF-8 bytes of the lines waiting."""
        return self._counters.size_bytes

    @property
    def used_bytes(self) -> int:
        """Bytes of the database's pages that hold data: points, quarantine, states."""
        return self._counters.pages * self._page_size

    @property
    def fill(self) -> float:
        """How full the spool is: 1.0 once the oldest points must make room.

        The share of the pages `max_bytes` leaves the database (the rest is the
        log's room) that hold data.
        """
        return self._counters.pages / self._max_pages

    @property
    def oldest_time(self) -> datetime | None:
        """Timestamp of the point that has waited longest; None when nothing waits."""
        return self._counters.oldest_time

    @property
    def quarantined(self) -> int:
        """Points in quarantine."""
        return self._counters.quarantined

    def take_drops(self) -> Drops:
        """Return the points deleted for room since the last call, to be counted.

        Whoever counts the drops takes them, with their times: the history they leave
        missing in InfluxDB, which the recorder may still hold.
        """
        drops, self._drops = self._drops, NO_DROPS
        return drops

    def keep_stats(self, stats_of: StatsOf) -> None:
        """Save the stats `stats_of` gives with every transaction that drops points.

        And with those asked to (`save_stats`). It is given the drops not taken yet,
        the transaction's own included, and returns stats that count them: the stats
        saved count every point deleted, even where the process is killed before the
        drops are taken. Replaces the one kept before.
        """
        self._stats_of = stats_of

    async def append(
        self,
        lines: Sequence[str],
        *,
        last_states: Mapping[str, str] | None = None,
        save_stats: bool = False,
    ) -> range:
        """Store `lines` after the points already waiting; return the ids they got.

        Where they would take the spool past `max_bytes`, the oldest points (the new
        lines' own first ones if need be) are deleted to make room. The entities'
        last states, if given, and the stats, if `save_stats`, are saved in the
        transaction that stores the last lines: once they are saved, every line is.
        Large appends take several transactions; should one fail, the lines stored
        before it are removed again, so that an append stores all of its lines or
        none (a crash between two can keep the first ones, without their last
        states). Old points dropped for room meanwhile are take_drops's.
        """
        return await _to_the_end(self._append(lines, last_states, save_stats))

    async def _append(
        self,
        lines: Sequence[str],
        last_states: Mapping[str, str] | None,
        save_stats: bool,
    ) -> range:
        chunks = _chunks(lines, [len(line) for line in lines])
        stored: range = range(0)
        async with self._append_lock:
            try:
                for index, chunk in enumerate(chunks):
                    last = index == len(chunks) - 1
                    ids = await self._transaction(
                        functools.partial(
                            self._store_chunk, chunk, last_states if last else None
                        ),
                        saves_stats=save_stats and last,
                    )
                    stored = range(stored.start if stored else ids.start, ids.stop)
            except SpoolError:
                if stored:
                    await self._undo(stored)
                raise
        return stored

    async def _undo(self, ids: range) -> None:
        """Remove the points `ids`, stored by an append that then failed."""
        try:
            await self._remove_range(ids)
        except SpoolError as err:
            # They are in memory too: written twice, which InfluxDB makes once.
            LOGGER.debug("Could not remove the lines of a failed append: %s", err)

    async def _store_chunk(
        self,
        lines: Sequence[str],
        last_states: Mapping[str, str] | None,
        db: aiosqlite.Connection,
        counters: _Counters,
    ) -> range:
        ids = await self._store(lines, db, counters) if lines else range(0)
        await _save_last_states(db, last_states)
        return ids

    async def save_state(
        self, last_states: Mapping[str, str], *, save_stats: bool = False
    ) -> None:
        """Save the entities' last states (fingerprints), and the stats if `save_stats`.

        In one transaction. The stats alone rewrite one row and take no room for
        good: on a full disk they may use the reserve's room, as a removal does, and
        the reserve is made again from it right after. Else the counters of what was
        lost meanwhile (points dropped, a stop that could not keep memory) would be
        lost with it.
        """

        async def body(db: aiosqlite.Connection, _counters: _Counters) -> None:
            await _save_last_states(db, last_states)

        await _to_the_end(
            self._save(body, frees=not last_states, saves_stats=save_stats)
        )

    async def import_state(
        self, last_states: Mapping[str, str], stats: Mapping[str, Any] | None
    ) -> None:
        """Save last states and stats kept elsewhere until now, as they are.

        An older version's file, a damaged spool's: before anything is counted here.
        Stats saved afterwards are keep_stats's.
        """

        async def body(db: aiosqlite.Connection, _counters: _Counters) -> None:
            await _save_last_states(db, last_states)
            if stats is not None:
                await _save_stats(db, stats)

        await _to_the_end(self._save(body, frees=not last_states, saves_stats=False))

    async def _save(
        self,
        body: Callable[[aiosqlite.Connection, _Counters], Awaitable[None]],
        *,
        frees: bool,
        saves_stats: bool,
    ) -> None:
        await self._transaction(body, frees=frees, saves_stats=saves_stats)
        if frees and not self._reserve.present:
            async with self._lock:
                await self._checkpoint()
            try:
                await self._reserve.make()
            except SpoolError as err:
                LOGGER.debug("Spool %s: %s", self._path, err)

    async def last_states(self) -> dict[str, str]:
        """Return the fingerprint of each entity's last durable state."""
        rows = await self._read("SELECT entity_id, fingerprint FROM last_states", ())
        return {str(entity_id): str(fingerprint) for entity_id, fingerprint in rows}

    async def stats(self) -> dict[str, Any] | None:
        """Return the stats last saved; None if none were."""
        rows = list(await self._read("SELECT data FROM stats WHERE id = 1", ()))
        if not rows:
            return None
        data = json.loads(rows[0][0])
        return data if isinstance(data, dict) else None

    async def oldest(self, limit: int) -> list[tuple[int, str]]:
        """Return the `limit` oldest points, oldest first, as (id, line)."""
        _check_limit(limit)
        # As one JSON row: SQLite's thread takes the GIL back once for the lot, rather
        # than once per row while a busy event loop holds it.
        rows = await self._read(
            "SELECT json_group_array(json_array(id, line)) FROM"
            " (SELECT id, line FROM points ORDER BY id LIMIT ?)",
            (limit,),
        )
        ((points,),) = rows
        # Aggregates keep no order before SQLite 3.44: sort, in linear time if kept.
        return sorted((row_id, line) for row_id, line in json.loads(points))

    async def remove_ids(self, ids: range) -> int:
        """Delete the points with these ids that are still waiting; returns how many.

        For the points `oldest` returned, once they are written (the range from the
        first one's id to the last one's), and for a copy stored while its write was
        slow, once that write has succeeded. Points appended since have higher ids,
        so they stay. Once the spool is empty, its free pages go back to the file
        system.
        """
        return await _to_the_end(self._remove_range(ids))

    async def _remove_range(self, ids: range) -> int:
        removed = 0
        # About CHUNK_BYTES of lines per transaction, by the lines' average size.
        counters = self._counters
        average = counters.size_bytes // counters.count if counters.count else 0
        step = max(1, CHUNK_BYTES // (average + _ROW_BYTES))
        for start in range(ids.start, ids.stop, step):
            last = min(start + step, ids.stop) - 1
            removed += await self._transaction(
                functools.partial(self._remove_between, start, last), frees=True
            )
        if removed and not (self._counters.count and self._reserve.present):
            await self._give_back()
        return removed

    async def _give_back(self) -> None:
        """Return the free pages to the file system and truncate the log; then the reserve.

        Once drained, or when the disk is full. Never fails: what cannot be given back
        now stays in the file, for new points or the next time.
        """
        try:
            while await self._transaction(
                functools.partial(_vacuum, _VACUUM_STEP), frees=True
            ):
                pass
            async with self._lock:
                await self._checkpoint()
            await self._reserve.make()
        except SpoolError as err:
            LOGGER.debug("Spool %s: could not give space back: %s", self._path, err)

    async def quarantine(self, lines: Sequence[str], error: str) -> None:
        """Set aside `lines`, which InfluxDB refused for `error`, out of the queue.

        Quarantined points count against `max_bytes` too, but are never dropped for
        room: the oldest points waiting are (take_drops tells them). Like an append,
        it keeps all of the lines or none.
        """
        await _to_the_end(self._quarantine(lines, error))

    async def _quarantine(self, lines: Sequence[str], error: str) -> None:
        added_at = time.time()
        await self._quarantine_rows([(line, error, added_at) for line in lines])

    async def _quarantine_rows(self, rows: Sequence[tuple[str, str, float]]) -> None:
        if not rows:
            return
        stored: range = range(0)
        async with self._append_lock:
            try:
                for chunk in _chunks(rows, [len(row[0]) for row in rows]):
                    ids = await self._transaction(
                        functools.partial(self._quarantine_chunk, chunk)
                    )
                    stored = range(stored.start if stored else ids.start, ids.stop)
            except SpoolError:
                if stored:
                    with contextlib.suppress(SpoolError):
                        await self._transaction(
                            functools.partial(_unquarantine, stored)
                        )
                raise

    async def _quarantine_chunk(
        self,
        rows: Sequence[tuple[str, str, float]],
        db: aiosqlite.Connection,
        counters: _Counters,
    ) -> range:
        await db.executemany(
            "INSERT INTO quarantine (line, error, added_at) VALUES (?, ?, ?)", rows
        )
        ((newest,),) = await db.execute_fetchall("SELECT max(id) FROM quarantine")
        counters.quarantined += len(rows)
        await self._fit(db, counters, *await _pages(db))
        return range(newest - len(rows) + 1, newest + 1)

    async def prepend(self, lines: Sequence[str]) -> None:
        """Store `lines` before every point waiting, as the oldest: salvaged points.

        They get ids below any ever handed out (zero and below), so that neither a
        removal of points read before nor the removal of a slow batch's copy reaches
        them. Where they take the spool past `max_bytes`, the oldest points go,
        these first (take_drops tells them).
        """
        await _to_the_end(self._prepend(lines))

    async def _prepend(self, lines: Sequence[str]) -> None:
        # Each chunk goes below the one stored before it: the last chunk first.
        for chunk in reversed(_chunks(lines, [len(line) for line in lines])):
            await self._transaction(functools.partial(self._prepend_chunk, chunk))

    async def _prepend_chunk(
        self, lines: Sequence[str], db: aiosqlite.Connection, counters: _Counters
    ) -> None:
        ((below,),) = await db.execute_fetchall(
            "SELECT min(coalesce((SELECT min(id) FROM points), 1), 1)"
        )
        first = below - len(lines)
        await db.executemany(
            "INSERT INTO points (id, line) VALUES (?, ?)",
            zip(range(first, below), lines, strict=True),
        )
        ((added_bytes, page_count, free),) = await db.execute_fetchall(
            f"SELECT sum(length(CAST(line AS BLOB))), {_PAGES} FROM points"  # noqa: S608 (our constant)
            " WHERE id BETWEEN ? AND ?",
            (first, below - 1),
        )
        counters.count += len(lines)
        counters.size_bytes += added_bytes
        await self._fit(db, counters, page_count, free)
        counters.oldest_time = await _oldest_time(db)

    async def add_quarantined(self, points: Sequence[QuarantinedPoint]) -> None:
        """Quarantine `points` again, each with its error and time: salvaged points.

        The oldest points waiting may make room for them (take_drops tells them).
        """
        rows = [
            (point.line, point.error, point.added_at.timestamp()) for point in points
        ]
        await _to_the_end(self._quarantine_rows(rows))

    async def quarantined_points(self, limit: int) -> list[QuarantinedPoint]:
        """Return the `limit` points quarantined first, oldest first."""
        _check_limit(limit)
        rows = await self._read(
            "SELECT id, line, error, added_at FROM quarantine ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            QuarantinedPoint(
                row[0], row[1], row[2], datetime.fromtimestamp(row[3], UTC)
            )
            for row in rows
        ]

    async def release_quarantine(self, ids: Iterable[int]) -> int:
        """Put quarantined points back at the end of the queue, to be written again.

        For after the cause was fixed (a field's type, say). They count against
        `max_bytes` again like appended lines, which may drop the oldest waiting
        (take_drops tells them). Ids not in quarantine are ignored. Each chunk of
        points moves in a transaction of its own; should one fail, the points moved
        before it stay moved. Returns how many were put back.
        """
        return await _to_the_end(self._release(sorted(set(ids))))

    async def _release(self, ids: list[int]) -> int:
        sizes = {
            int(row_id): int(size)
            for row_id, size in await self._read(
                "SELECT id, length(line) FROM quarantine"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            )
        }
        present = [row_id for row_id in ids if row_id in sizes]
        released = 0
        async with self._append_lock:
            for chunk in _chunks(present, [sizes[row_id] for row_id in present]):
                released += await self._transaction(
                    functools.partial(self._release_chunk, json.dumps(chunk))
                )
        return released

    async def _release_chunk(
        self, selected: str, db: aiosqlite.Connection, counters: _Counters
    ) -> int:
        """Move the quarantined points `selected` (a JSON list of ids) to the queue."""
        rows = await db.execute_fetchall(
            "SELECT line FROM quarantine"
            " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (selected,),
        )
        lines = [row[0] for row in rows]
        await db.execute(
            "DELETE FROM quarantine WHERE id IN (SELECT value FROM json_each(?))",
            (selected,),
        )
        counters.quarantined -= len(lines)
        if lines:
            await self._store(lines, db, counters)
        return len(lines)

    async def _store(
        self, lines: Sequence[str], db: aiosqlite.Connection, counters: _Counters
    ) -> range:
        """Append `lines`, then delete the oldest points beyond the database's pages.

        Returns the ids the lines got.

        Within the transaction, so no reader sees the spool past its limit. The sizes
        are summed by SQLite, off the event loop, and the rows go in many per
        statement: aiosqlite's thread then waits for the GIL, which a busy event loop
        holds for up to the switch interval, once per statement instead of per row.
        """
        await db.executemany(
            _INSERT_SQL,
            (
                _padded(lines[start : start + _INSERT_ROWS])
                for start in range(0, len(lines), _INSERT_ROWS)
            ),
        )
        # Under the write lock, one transaction's new ids follow each other: the
        # `len(lines)` highest are these lines.
        ((newest, added_bytes, page_count, free),) = await db.execute_fetchall(
            f"SELECT max(id), sum(length(CAST(line AS BLOB))), {_PAGES} FROM points"  # noqa: S608 (our constant)
            " WHERE id > (SELECT max(id) FROM points) - ?",
            (len(lines),),
        )
        counters.count += len(lines)
        counters.size_bytes += added_bytes
        await self._fit(db, counters, page_count, free)
        if counters.oldest_time is None:
            counters.oldest_time = await _oldest_time(db)
        return range(newest - len(lines) + 1, newest + 1)

    async def _fit(
        self,
        db: aiosqlite.Connection,
        counters: _Counters,
        page_count: int,
        free: int,
    ) -> None:
        """Bring the database back within its pages, deleting the oldest points.

        `page_count` and `free` are its pages now. The pages beyond are given back to
        the file system, after as few of the oldest points as free enough of them
        were deleted. Those pages are the newest: they move into the pages freed.
        """
        dropped = 0
        beyond = page_count - self._max_pages
        while beyond > free and counters.count:
            count, freed_bytes = await self._delete_oldest(
                db, counters, (beyond - free) * self._page_size
            )
            dropped += count
            counters.count -= count
            counters.size_bytes -= freed_bytes
            _, free = await _pages(db)
        if beyond > 0 and free:
            await _vacuum(min(beyond, free), db, counters)
        if dropped:
            counters.oldest_time = await _oldest_time(db)

    async def _delete_oldest(
        self, db: aiosqlite.Connection, counters: _Counters, room: int
    ) -> tuple[int, int]:
        """Delete the fewest oldest points that take `room` bytes: (points, line bytes).

        A point takes its line's bytes and _ROW_BYTES more, about (the pages then
        tell how many were freed). Found by one query, which returns one row.
        """
        rows = list(
            await db.execute_fetchall(
                "SELECT id, n, freed FROM (SELECT id,"
                " row_number() OVER oldest_first AS n,"
                " sum(length(CAST(line AS BLOB))) OVER oldest_first AS freed,"
                " sum(length(CAST(line AS BLOB)) + ?) OVER oldest_first AS taken"
                " FROM points"
                " WINDOW oldest_first AS (ORDER BY id ROWS UNBOUNDED PRECEDING))"
                " WHERE taken >= ? LIMIT 1",
                (_ROW_BYTES, room),
            )
        )
        if not rows:
            # Not enough: every point goes.
            await _note_dropped(db, counters, None, counters.count)
            await db.execute("DELETE FROM points")
            return counters.count, counters.size_bytes
        ((last_id, count, freed),) = rows
        await _note_dropped(db, counters, last_id, count)
        await db.execute("DELETE FROM points WHERE id <= ?", (last_id,))
        return count, freed

    async def _remove_between(
        self, first: int, last: int, db: aiosqlite.Connection, counters: _Counters
    ) -> int:
        """Delete the points from id `first` to `last` (those still there), keep count."""
        ((removed, size),) = await db.execute_fetchall(
            "SELECT count(*), coalesce(sum(length(CAST(line AS BLOB))), 0)"
            " FROM points WHERE id BETWEEN ? AND ?",
            (first, last),
        )
        if not removed:
            return 0
        if removed == counters.count:
            # All of them: SQLite then frees the table's pages without writing them.
            await db.execute("DELETE FROM points")
        else:
            await db.execute(
                "DELETE FROM points WHERE id BETWEEN ? AND ?", (first, last)
            )
        counters.count -= removed
        counters.size_bytes -= size
        counters.oldest_time = await _oldest_time(db)
        return int(removed)

    def _db(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise SpoolError(f"Spool {self._path} is closed")
        return self._connection.db

    async def _read(
        self, sql: str, parameters: tuple[int | str, ...]
    ) -> Iterable[sqlite3.Row]:
        async with self._lock:
            db = self._db()
            with _spool_errors(self._path):
                return await db.execute_fetchall(sql, parameters)

    async def _transaction[T](
        self,
        body: Callable[[aiosqlite.Connection, _Counters], Awaitable[T]],
        *,
        frees: bool = False,
        saves_stats: bool = False,
    ) -> T:
        """Run `body` in one write transaction; it saves the stats if `saves_stats`.

        `body` updates a copy of the counters, which replaces them once the
        transaction is committed. One that `frees` space (a removal) may take the
        reserve's room when the disk is full; any other needs the reserve in place.
        """
        async with self._lock:
            if not frees:
                if not await self._reserve.make():
                    raise SpoolDiskFullError(
                        f"Spool {self._path}: the disk is full, no room for its "
                        f"reserve ({RESERVE_BYTES >> 10} KiB kept to free space)"
                    )
                return await self._attempt(body, saves_stats)
            try:
                return await self._attempt(body, saves_stats)
            except SpoolDiskFullError:
                if not await self._reserve.release():
                    raise
            LOGGER.debug(
                "Spool %s: the disk is full, its reserve makes room to free space",
                self._path,
            )
            await self._checkpoint()
            return await self._attempt(body, saves_stats)

    async def _checkpoint(self) -> None:
        """Copy the log into the database and truncate it; under the lock.

        Left for later if it cannot be done now (the disk full, another reader).
        """
        try:
            with _spool_errors(self._path):
                await self._db().execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
        except SpoolError as err:
            LOGGER.debug("Spool %s: could not checkpoint: %s", self._path, err)

    async def _attempt[T](
        self,
        body: Callable[[aiosqlite.Connection, _Counters], Awaitable[T]],
        saves_stats: bool,
    ) -> T:
        """Run `body` in one write transaction, under the lock.

        The stats are saved in it if it `saves_stats` or deleted points for room.
        """
        db = self._db()
        counters = replace(self._counters)
        with _spool_errors(self._path):
            # IMMEDIATE: take the write lock now, so that another process holding
            # it fails us here (after the busy timeout), not halfway through.
            await db.execute("BEGIN IMMEDIATE")
            try:
                result = await body(db, counters)
                if self._stats_of is not None and (
                    saves_stats or counters.dropped.points
                ):
                    # Made now, not when the caller asked: they count every drop
                    # committed before this one, taken or not.
                    stats = self._stats_of(self._drops.joined(counters.dropped))
                    await _save_stats(db, stats)
                page_count, free = await _pages(db)
                await db.commit()
            except BaseException:
                await db.rollback()
                raise
        counters.pages = page_count - free
        # Committed: its drops count, and the next transaction starts without them.
        self._drops = self._drops.joined(counters.dropped)
        counters.dropped = NO_DROPS
        self._counters = counters
        return result


async def _to_the_end[T](operation: Coroutine[Any, Any, T]) -> T:
    """Run a write to its end even if the caller is cancelled, then raise that.

    A cancelled caller could otherwise leave a COMMIT queued in aiosqlite's thread
    whose effect the counters never see, or an append half stored.
    """
    task = asyncio.create_task(operation)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


def _max_pages(max_bytes: int, page_size: int) -> int:
    """Return the database's share of `max_bytes` in pages: what the rest leaves."""
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive: {max_bytes}")
    pages = (max_bytes - wal_bytes(page_size) - _SHM_BYTES - RESERVE_BYTES) // page_size
    if pages < _MIN_PAGES:
        raise ValueError(
            f"max_bytes must leave {_MIN_PAGES} pages beside the log and the reserve: "
            f"{max_bytes}"
        )
    return pages


@contextlib.contextmanager
def _spool_errors(path: Path) -> Iterator[None]:
    """Raise SQLite's errors as SpoolErrors that name the file; a full disk, damage."""
    try:
        yield
    except sqlite3.Error as err:
        # (An error raised by hand has no code.)
        code = getattr(err, "sqlite_errorcode", 0) & 0xFF
        if code == sqlite3.SQLITE_FULL:
            raise SpoolDiskFullError(f"Spool {path}: {err}") from err
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise SpoolDamagedError(f"Spool {path}: {err}") from err
        raise _error_for(path)(str(err)) from err


def _error_for(path: Path) -> Callable[[str], SpoolError]:
    """Make SQLite's errors SpoolErrors that name the file."""
    return lambda message: SpoolError(f"Spool {path}: {message}")


class _Reserve:
    """The reserve file beside a spool: deleted to free space on a full disk."""

    def __init__(self, path: Path) -> None:
        """Keep the reserve of the spool at `path`; `make` makes it."""
        self._path = path.with_name(path.name + RESERVE_SUFFIX)
        self.present = False

    async def make(self) -> bool:
        """Make it, if it is not there; return whether it is now."""
        if not self.present:
            try:
                self.present = await asyncio.to_thread(_make_reserve, self._path)
            except OSError as err:
                raise SpoolError(f"Cannot make the spool's reserve: {err}") from err
        return self.present

    async def release(self) -> bool:
        """Delete it to give its room to the spool; return whether it was there."""
        if not self.present:
            return False
        self.present = False
        await asyncio.to_thread(self._path.unlink, missing_ok=True)
        return True

    async def release_for_room(self) -> bool:
        """Delete it if its disk has no room left; return whether that made some."""
        return await asyncio.to_thread(_release_for_room, self._path)


def _release_for_room(path: Path) -> bool:
    """Delete the reserve `path` if its disk is (nearly) full. Blocking."""
    try:
        stat = os.statvfs(path.parent)
        if stat.f_bavail * stat.f_frsize >= RESERVE_BYTES:
            return False
        path.unlink()
    except OSError:  # no folder, no reserve: nothing to make room with
        return False
    return True


def _make_reserve(path: Path) -> bool:
    """Write `path` to RESERVE_BYTES, in blocks on disk; False if there is no room.

    Blocking. Written (not fallocated, not sparse, not zeros that a file system
    may compress away) and synced, so that the room is really taken.
    """
    try:
        stat = os.statvfs(path.parent)
        missing = RESERVE_BYTES - (path.stat().st_size if path.exists() else 0)
        if stat.f_bavail * stat.f_frsize < missing:
            return False  # no need to write it to find out, every time it is tried
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            block = os.urandom(1 << 16)
            os.lseek(fd, size, os.SEEK_SET)
            while size < RESERVE_BYTES:
                size += os.write(fd, block[: RESERVE_BYTES - size])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        path.unlink(missing_ok=True)
        return False
    return True


def delete_spool_files(path: Path) -> None:
    """Delete the spool at `path`: its database, the files beside it, its reserve."""
    delete_sqlite_files(path)
    path.with_name(path.name + RESERVE_SUFFIX).unlink(missing_ok=True)


async def _prepare(db: aiosqlite.Connection, path: Path) -> int:
    """Refuse a file that is not a spool, set the journal up, migrate the schema.

    Returns the database's page size.
    """
    # The first read: raises "file is not a database" before anything is written.
    ((version,),) = await db.execute_fetchall("PRAGMA user_version")
    if version > SCHEMA_VERSION:
        raise SpoolError(
            f"Spool {path} has schema version {version}, newer than this version of "
            f"the integration knows ({SCHEMA_VERSION})"
        )
    if version == 0:
        ((tables,),) = await db.execute_fetchall("SELECT count(*) FROM sqlite_schema")
        if tables:
            raise SpoolError(f"{path} is an SQLite database, but not a spool")
        # A new file: free pages can be given back (set before any table exists).
        await db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    # Every page, read once: a damaged one is found now, while the file can still be
    # set aside whole, not by some removal later.
    ((verdict,), *_) = await db.execute_fetchall("PRAGMA quick_check(1)")
    if verdict != "ok":
        raise SpoolDamagedError(f"Spool {path} is damaged: {verdict}")
    if (mode := await use_wal(db)) != "wal":
        raise SpoolError(f"Spool {path}: cannot use write-ahead logging ({mode})")
    # With NORMAL sync, a power loss can roll back the commits since the last
    # checkpoint (up to WAL_CHECKPOINT_PAGES of log): appends are then lost, removals
    # undone (those points are written a second time, harmlessly).
    if version < SCHEMA_VERSION:
        # PRAGMA takes no parameters; the value is our own integer constant.
        await migrate(
            db, _MIGRATIONS, version, [f"PRAGMA user_version = {SCHEMA_VERSION:d}"]
        )
    ((page_size,),) = await db.execute_fetchall("PRAGMA page_size")
    for setting in (
        # Deleted rows need not be overwritten: it would only write more.
        "PRAGMA secure_delete = OFF",
        f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES:d}",
        # What a checkpoint leaves of the log is truncated to this.
        f"PRAGMA journal_size_limit = {wal_bytes(page_size):d}",
    ):
        await db.execute_fetchall(setting)
    await _use_incremental_vacuum(db, path)
    return int(page_size)


async def _use_incremental_vacuum(db: aiosqlite.Connection, path: Path) -> None:
    """Make a file of a version before 0.3 give its free pages back (auto_vacuum).

    That takes rewriting it once (VACUUM). Should that fail (a full disk, say), the
    spool works as it is, keeping its free pages for new points; it is tried again
    at the next start.
    """
    ((auto_vacuum,),) = await db.execute_fetchall("PRAGMA auto_vacuum")
    if auto_vacuum == _INCREMENTAL:
        return
    try:
        await db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        await db.execute("VACUUM")
    except sqlite3.OperationalError as err:
        LOGGER.warning(
            "The spool %s cannot give the disk space of written points back yet: %s",
            path,
            err,
        )
        return
    await db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")


async def _save_last_states(
    db: aiosqlite.Connection, last_states: Mapping[str, str] | None
) -> None:
    if last_states:
        # An unchanged fingerprint is not written again: its page stays as it is.
        await db.executemany(
            "INSERT INTO last_states (entity_id, fingerprint) VALUES (?, ?)"
            " ON CONFLICT (entity_id) DO UPDATE SET fingerprint = excluded.fingerprint"
            " WHERE fingerprint <> excluded.fingerprint",
            last_states.items(),
        )


async def _save_stats(db: aiosqlite.Connection, stats: Mapping[str, Any]) -> None:
    await db.execute(
        "INSERT INTO stats (id, data) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
        (json.dumps(stats),),
    )


async def _unquarantine(
    ids: range, db: aiosqlite.Connection, counters: _Counters
) -> None:
    """Delete the quarantined points `ids`, stored by a quarantine that then failed."""
    await db.execute(
        "DELETE FROM quarantine WHERE id BETWEEN ? AND ?", (ids.start, ids.stop - 1)
    )
    counters.quarantined -= len(ids)


async def _pages(db: aiosqlite.Connection) -> tuple[int, int]:
    """Return the database's pages, and how many of them are free."""
    ((page_count, free),) = await db.execute_fetchall(f"SELECT {_PAGES}")
    return int(page_count), int(free)


async def _vacuum(pages: int, db: aiosqlite.Connection, _counters: _Counters) -> int:
    """Give up to `pages` free pages back to the file system; return how many."""
    _, before = await _pages(db)
    # Each row it returns is a step: it must be read to the end.
    await db.execute_fetchall(f"PRAGMA incremental_vacuum({pages:d})")
    _, after = await _pages(db)
    return before - after


async def _read_counters(db: aiosqlite.Connection) -> _Counters:
    """Count what the file holds: exact, whatever happened before it was opened."""
    ((count, size_bytes),) = await db.execute_fetchall(
        "SELECT count(*), coalesce(sum(length(CAST(line AS BLOB))), 0) FROM points"
    )
    ((quarantined,),) = await db.execute_fetchall("SELECT count(*) FROM quarantine")
    page_count, free = await _pages(db)
    return _Counters(
        count, size_bytes, await _oldest_time(db), quarantined, page_count - free
    )


async def _note_dropped(
    db: aiosqlite.Connection, counters: _Counters, last_id: int | None, count: int
) -> None:
    """Add the `count` points up to `last_id` (None: all) to the transaction's drops.

    Their times are found in SQL, so that the lines are not read into Python.
    """
    ((oldest, newest),) = await db.execute_fetchall(
        f"SELECT min(t), max(t) FROM (SELECT nullif({_LINE_TIME_US}, 0) AS t"  # noqa: S608 (our constant)
        " FROM points WHERE id <= coalesce(?, id))",
        (last_id,),
    )
    span = None if oldest is None else (_time_of_us(oldest), _time_of_us(newest))
    counters.dropped = counters.dropped.joined(Drops(count, span))


async def _oldest_time(db: aiosqlite.Connection) -> datetime | None:
    rows = list(
        await db.execute_fetchall("SELECT line FROM points ORDER BY id LIMIT 1")
    )
    return _line_time(rows[0][0]) if rows else None
