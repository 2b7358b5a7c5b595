"""A durable queue on disk of the points not yet written, and a quarantine for refused ones.

Points are line-protocol strings that carry their own timestamp, so a line replayed
later is written with its original time. They are kept in a SQLite file through
aiosqlite, which runs every statement in a thread of its own, off the event loop.

Replaying is crash-safe when points are removed only after they were written:

    points = await spool.oldest(1000)
    await write([line for _, line in points])
    await spool.remove_through(points[-1][0])

A crash between the write and the removal offers the same points again, and writing a
point twice is harmless: InfluxDB keeps one point per series and timestamp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
import functools
import json
from pathlib import Path
import sqlite3
import time
from typing import Any, NamedTuple, Self

import aiosqlite

from .sqlite import SqliteConnection, SqliteFileError, migrate, sqlite_errors, use_wal

# Statements that take the schema from version N (the index) to N + 1; the file's version
# is kept in `PRAGMA user_version`. A new version is a new entry, never an edited one.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # AUTOINCREMENT: an id is never handed out twice, not even after the queue was
        # emptied, so `remove_through` can never reach points appended after a read.
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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Lines per INSERT statement, far below SQLite's limit on parameters (32,766 since
# 3.32). One statement for every chunk, the last one padded with NULLs, which it skips:
# a single compiled statement, however many lines a spill holds.
_INSERT_CHUNK = 5000
_INSERT_CHUNK_SQL = (
    "INSERT INTO points (line) SELECT column1 FROM (VALUES "  # noqa: S608 (only placeholders)
    + ",".join(["(?)"] * _INSERT_CHUNK)
    + ") WHERE column1 IS NOT NULL"
)


class SpoolError(SqliteFileError):
    """The spool file cannot be used: not a spool, corrupt, unreadable, or disk full."""


class QuarantinedPoint(NamedTuple):
    """A point InfluxDB refused, with the server's reason."""

    id: int
    line: str
    error: str
    added_at: datetime


class Appended(NamedTuple):
    """What append did: the ids the lines got, and the oldest points dropped for room."""

    ids: range
    dropped: int


class Released(NamedTuple):
    """What release_quarantine did: points put back, and oldest points dropped for room."""

    released: int
    dropped: int


@dataclass(slots=True)
class _Counters:
    """What the file holds, kept in memory so that reading it costs no I/O."""

    count: int
    size_bytes: int
    oldest_time: datetime | None
    quarantined: int


def _line_time(line: str) -> datetime | None:
    """Return the timestamp that ends `line` (microseconds); None if none does."""
    try:
        return _EPOCH + timedelta(microseconds=int(line.rpartition(" ")[2]))
    except ValueError, OverflowError:
        return None


def _padded(chunk: Sequence[str]) -> Sequence[str | None]:
    """`chunk`, then NULLs up to the parameters of _INSERT_CHUNK_SQL."""
    if len(chunk) == _INSERT_CHUNK:
        return chunk
    return [*chunk, *[None] * (_INSERT_CHUNK - len(chunk))]


def _check_limit(limit: int) -> None:
    # SQLite reads a negative LIMIT as "no limit": refuse it rather than read everything.
    if limit < 0:
        raise ValueError(f"limit must not be negative: {limit}")


class Spool:
    """Points waiting to be written, oldest first, bounded by `max_bytes`.

    Use `await Spool.open(...)` and `await spool.close()`. Operations run one at a time,
    each write in one transaction; the counters are only read from memory.

    `max_bytes` bounds the UTF-8 bytes of the lines themselves; the file takes about
    10% more, plus up to ~4 MB of write-ahead log while open.
    """

    def __init__(
        self,
        connection: SqliteConnection,
        path: Path,
        max_bytes: int,
        counters: _Counters,
    ) -> None:
        """Wrap an open, migrated connection; `open` is the way to make one."""
        self._connection: SqliteConnection | None = connection
        self._path = path
        self._max_bytes = max_bytes
        self._counters = counters
        # One operation at a time: a transaction spans several awaits, and a read
        # between them would see points that may yet be rolled back.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, max_bytes: int) -> Self:
        """Open the spool at `path`, creating it or migrating it forward as needed.

        Raises SpoolError for a file that is not a spool (it is left untouched), one
        written by a newer schema, or one that cannot be read.
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive: {max_bytes}")
        counters: list[_Counters] = []

        async def prepare(db: aiosqlite.Connection) -> None:
            await _prepare(db, path)
            counters.append(await _read_counters(db))

        connection = await SqliteConnection.open(
            path, prepare, _error_for(path), private=True
        )
        return cls(connection, path, max_bytes, counters[0])

    async def close(self) -> None:
        """Close the file and end its thread; nothing runs on once this returns."""
        async with self._lock:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                await connection.close()

    @property
    def max_bytes(self) -> int:
        """The most bytes of lines the spool holds before dropping the oldest."""
        return self._max_bytes

    @property
    def count(self) -> int:
        """Points waiting to be written."""
        return self._counters.count

    @property
    def size_bytes(self) -> int:
        """UTF-8 bytes of the lines waiting, the measure `max_bytes` bounds."""
        return self._counters.size_bytes

    @property
    def oldest_time(self) -> datetime | None:
        """Timestamp of the point that has waited longest; None when nothing waits."""
        return self._counters.oldest_time

    @property
    def quarantined(self) -> int:
        """Points in quarantine."""
        return self._counters.quarantined

    async def append(
        self,
        lines: Sequence[str],
        *,
        last_states: Mapping[str, str] | None = None,
        stats: Mapping[str, Any] | None = None,
    ) -> Appended:
        """Store `lines` after the points already waiting, in one transaction.

        Where they would take the spool past `max_bytes`, the oldest points (the new
        lines' own first ones if need be) are deleted to make room. The entities'
        last states and the stats, if given, are saved in the same transaction: a
        crash keeps both or neither.
        """

        async def body(db: aiosqlite.Connection, counters: _Counters) -> Appended:
            appended = (
                await self._store(lines, db, counters)
                if lines
                else Appended(range(0), 0)
            )
            await _save_state(db, last_states, stats)
            return appended

        return await self._transaction(body)

    async def save_state(
        self, last_states: Mapping[str, str], stats: Mapping[str, Any] | None
    ) -> None:
        """Save the entities' last states (fingerprints) and the stats, in one transaction."""

        async def body(db: aiosqlite.Connection, _counters: _Counters) -> None:
            await _save_state(db, last_states, stats)

        await self._transaction(body)

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

    async def remove_ids(self, ids: range) -> int:
        """Delete the points with these ids that are still waiting; returns how many.

        For a copy stored while its write was slow, once that write has succeeded.
        """
        if not ids:
            return 0

        async def body(db: aiosqlite.Connection, counters: _Counters) -> int:
            return await self._remove_where(
                db, counters, "id BETWEEN ? AND ?", (ids.start, ids.stop - 1)
            )

        return await self._transaction(body)

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

    async def remove_through(self, last_id: int) -> int:
        """Delete every point up to and including id `last_id`; returns how many.

        Call it once the points `oldest` returned were written. Points appended since
        have higher ids, so they stay.
        """
        return await self._transaction(functools.partial(self._remove, last_id))

    async def quarantine(self, lines: Sequence[str], error: str) -> None:
        """Set aside `lines`, which InfluxDB refused for `error`, out of the queue."""

        async def body(db: aiosqlite.Connection, counters: _Counters) -> None:
            added_at = time.time()
            await db.executemany(
                "INSERT INTO quarantine (line, error, added_at) VALUES (?, ?, ?)",
                ((line, error, added_at) for line in lines),
            )
            counters.quarantined += len(lines)

        await self._transaction(body)

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

    async def release_quarantine(self, ids: Iterable[int]) -> Released:
        """Put quarantined points back at the end of the queue, to be written again.

        For after the cause was fixed (a field's type, say). They count against
        `max_bytes` again like appended lines, which may drop the oldest waiting. Ids
        not in quarantine are ignored.
        """
        selected = json.dumps(sorted(set(ids)))

        async def body(db: aiosqlite.Connection, counters: _Counters) -> Released:
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
            dropped = (await self._store(lines, db, counters)).dropped if lines else 0
            return Released(len(lines), dropped)

        return await self._transaction(body)

    async def _store(
        self, lines: Sequence[str], db: aiosqlite.Connection, counters: _Counters
    ) -> Appended:
        """Append `lines`, then delete the oldest points beyond `max_bytes`.

        Within the transaction, so no reader sees the spool past its cap. The sizes are
        summed by SQLite, off the event loop, and the rows go in many per statement:
        aiosqlite's thread then waits for the GIL, which a busy event loop holds for up
        to the switch interval, once per chunk instead of once per row.
        """
        await db.executemany(
            _INSERT_CHUNK_SQL,
            (
                _padded(lines[start : start + _INSERT_CHUNK])
                for start in range(0, len(lines), _INSERT_CHUNK)
            ),
        )
        # Under the write lock, one transaction's new ids follow each other: the
        # `len(lines)` highest are these lines.
        ((newest, added_bytes),) = await db.execute_fetchall(
            "SELECT max(id), sum(length(CAST(line AS BLOB))) FROM points"
            " WHERE id > (SELECT max(id) FROM points) - ?",
            (len(lines),),
        )
        counters.count += len(lines)
        counters.size_bytes += added_bytes
        dropped = 0
        if (excess := counters.size_bytes - self._max_bytes) > 0:
            dropped, freed = await self._delete_oldest(db, excess)
            counters.count -= dropped
            counters.size_bytes -= freed
        if dropped or counters.oldest_time is None:
            counters.oldest_time = await _oldest_time(db)
        return Appended(range(newest - len(lines) + 1, newest + 1), dropped)

    async def _delete_oldest(
        self, db: aiosqlite.Connection, excess: int
    ) -> tuple[int, int]:
        """Delete the fewest oldest points that free `excess` bytes: (points, bytes).

        For `excess` below the stored size. Found by one query, which returns one row.
        """
        rows = list(
            await db.execute_fetchall(
                "SELECT id, n, freed FROM (SELECT id,"
                " row_number() OVER oldest_first AS n,"
                " sum(length(CAST(line AS BLOB))) OVER oldest_first AS freed"
                " FROM points WINDOW oldest_first AS (ORDER BY id ROWS UNBOUNDED PRECEDING))"
                " WHERE freed >= ? LIMIT 1",
                (excess,),
            )
        )
        if not rows:
            raise SpoolError(f"Spool {self._path} was changed by another program")
        ((last_id, count, freed),) = rows
        await db.execute("DELETE FROM points WHERE id <= ?", (last_id,))
        return count, freed

    async def _remove(
        self, last_id: int, db: aiosqlite.Connection, counters: _Counters
    ) -> int:
        return await self._remove_where(db, counters, "id <= ?", (last_id,))

    async def _remove_where(
        self,
        db: aiosqlite.Connection,
        counters: _Counters,
        where: str,
        parameters: tuple[int, ...],
    ) -> int:
        """Delete the points `where` selects (one of ours, never input), keep count."""
        counted = f"SELECT count(*), coalesce(sum(length(CAST(line AS BLOB))), 0) FROM points WHERE {where}"  # noqa: S608
        rows = await db.execute_fetchall(counted, parameters)
        ((removed, size),) = rows
        if removed:
            await db.execute(f"DELETE FROM points WHERE {where}", parameters)  # noqa: S608
            counters.count -= removed
            counters.size_bytes -= size
            counters.oldest_time = await _oldest_time(db)
        return int(removed)

    def _db(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise SpoolError(f"Spool {self._path} is closed")
        return self._connection.db

    async def _read(
        self, sql: str, parameters: tuple[int, ...]
    ) -> Iterable[sqlite3.Row]:
        async with self._lock:
            db = self._db()
            with sqlite_errors(_error_for(self._path)):
                return await db.execute_fetchall(sql, parameters)

    async def _transaction[T](
        self, body: Callable[[aiosqlite.Connection, _Counters], Awaitable[T]]
    ) -> T:
        """Run `body` in one write transaction, to its end even if the caller is cancelled.

        `body` updates a copy of the counters, which replaces them once the transaction
        is committed. A cancelled caller could otherwise leave a COMMIT queued in
        aiosqlite's thread whose effect the counters never see; so the transaction runs
        in a task of its own and the cancellation is raised when it has ended.
        """
        task = asyncio.create_task(self._run_transaction(body))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task])
            raise

    async def _run_transaction[T](
        self, body: Callable[[aiosqlite.Connection, _Counters], Awaitable[T]]
    ) -> T:
        async with self._lock:
            db = self._db()
            counters = replace(self._counters)
            with sqlite_errors(_error_for(self._path)):
                # IMMEDIATE: take the write lock now, so that another process holding
                # it fails us here (after the busy timeout), not halfway through.
                await db.execute("BEGIN IMMEDIATE")
                try:
                    result = await body(db, counters)
                    await db.commit()
                except BaseException:
                    await db.rollback()
                    raise
            self._counters = counters
            return result


def _error_for(path: Path) -> Callable[[str], SpoolError]:
    """Make SQLite's errors SpoolErrors that name the file."""
    return lambda message: SpoolError(f"Spool {path}: {message}")


async def _prepare(db: aiosqlite.Connection, path: Path) -> None:
    """Refuse a file that is not a spool, set the journal up, migrate the schema."""
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
    if (mode := await use_wal(db)) != "wal":
        raise SpoolError(f"Spool {path}: cannot use write-ahead logging ({mode})")
    # With NORMAL sync, a power loss can roll back the last commits (up to ~4 MB of
    # log): appends are then lost, removals undone (those points are written a second
    # time, harmlessly).
    if version < SCHEMA_VERSION:
        # PRAGMA takes no parameters; the value is our own integer constant.
        await migrate(
            db, _MIGRATIONS, version, [f"PRAGMA user_version = {SCHEMA_VERSION:d}"]
        )


async def _save_state(
    db: aiosqlite.Connection,
    last_states: Mapping[str, str] | None,
    stats: Mapping[str, Any] | None,
) -> None:
    if last_states:
        await db.executemany(
            "INSERT INTO last_states (entity_id, fingerprint) VALUES (?, ?)"
            " ON CONFLICT (entity_id) DO UPDATE SET fingerprint = excluded.fingerprint",
            last_states.items(),
        )
    if stats is not None:
        await db.execute(
            "INSERT INTO stats (id, data) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (json.dumps(stats),),
        )


async def _read_counters(db: aiosqlite.Connection) -> _Counters:
    """Count what the file holds: exact, whatever happened before it was opened."""
    ((count, size_bytes),) = await db.execute_fetchall(
        "SELECT count(*), coalesce(sum(length(CAST(line AS BLOB))), 0) FROM points"
    )
    ((quarantined,),) = await db.execute_fetchall("SELECT count(*) FROM quarantine")
    return _Counters(count, size_bytes, await _oldest_time(db), quarantined)


async def _oldest_time(db: aiosqlite.Connection) -> datetime | None:
    rows = list(
        await db.execute_fetchall("SELECT line FROM points ORDER BY id LIMIT 1")
    )
    return _line_time(rows[0][0]) if rows else None
