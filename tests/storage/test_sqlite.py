"""The one way an SQLite file is opened, migrated and closed, against real files.

What the spool and the mirror rely on: nothing of a file runs on once it is closed or
failed to open (no thread, no open file), SQLite's errors reach the caller as its own
error type, and a migration is all or nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import os
from pathlib import Path
import shutil
import sqlite3
import threading
import time
from typing import Any

import aiosqlite
import pytest

from custom_components.ha_ingestor.storage.sqlite import (
    SQLITE_SUFFIXES,
    SqliteConnection,
    SqliteFileError,
    delete_sqlite_files,
    migrate,
    sqlite_errors,
    use_wal,
)

type Prepare = Callable[[aiosqlite.Connection], Awaitable[None]]


class _FileError(SqliteFileError):
    """The error type of a file's owner (SpoolError, MirrorError)."""


async def _nothing(db: aiosqlite.Connection) -> None:
    """A prepare step with nothing to check."""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's file lives: a folder of its own."""
    folder = tmp_path / "sqlite"
    folder.mkdir()
    return folder / "file.db"


def _open_files(path: Path) -> list[str]:
    """Descriptors this process holds open on `path` or the files beside it."""
    names = {os.path.realpath(path) + suffix for suffix in SQLITE_SUFFIXES}
    found = []
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{descriptor}")
        except OSError:
            continue  # closed since it was listed (listdir's own descriptor)
        if target in names:
            found.append(target)
    return found


def _sqlite(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Run `sql` on a connection of its own, as another program would."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


async def _open(path: Path, prepare: Prepare = _nothing) -> SqliteConnection:
    return await SqliteConnection.open(path, prepare, _FileError)


async def test_close_ends_the_thread_and_closes_the_file(path: Path) -> None:
    """Open, prepare, close: one thread while open, none and no open file after."""
    before = set(threading.enumerate())
    prepared_in: list[set[threading.Thread]] = []

    async def prepare(db: aiosqlite.Connection) -> None:
        await db.execute("CREATE TABLE t (x)")
        prepared_in.append(set(threading.enumerate()) - before)

    connection = await _open(path, prepare)
    (worker,) = set(threading.enumerate()) - before
    assert prepared_in == [{worker}]  # prepared through the same connection
    assert _open_files(path)
    assert await connection.db.execute_fetchall("SELECT name FROM sqlite_schema") == [
        ("t",)
    ]

    await connection.close()
    assert not worker.is_alive()
    assert set(threading.enumerate()) == before
    assert _open_files(path) == []
    # Closing again is harmless.
    await connection.close()


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(RuntimeError("the prepare step's own error"), id="own-error"),
        pytest.param(_FileError("not ours"), id="file-error"),
    ],
)
async def test_prepare_that_raises_closes_the_file_and_thread(
    path: Path, failure: Exception
) -> None:
    """A prepare step that fails: its error as it is, no thread, no open file."""
    before = set(threading.enumerate())
    seen: list[aiosqlite.Connection] = []

    async def prepare(db: aiosqlite.Connection) -> None:
        seen.append(db)
        await db.execute("CREATE TABLE t (x)")
        assert _open_files(path)
        raise failure

    with pytest.raises(type(failure)) as raised:
        await _open(path, prepare)
    assert raised.value is failure
    assert len(seen) == 1
    assert set(threading.enumerate()) == before
    assert _open_files(path) == []


async def test_prepare_that_fails_in_sqlite_closes_and_raises_the_callers_error(
    path: Path,
) -> None:
    """An SQLite error while preparing is the caller's error, with SQLite's message."""
    before = set(threading.enumerate())

    async def prepare(db: aiosqlite.Connection) -> None:
        await db.execute("SELECT * FROM missing_table")

    with pytest.raises(_FileError, match=r"^no such table: missing_table$") as raised:
        await _open(path, prepare)
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert set(threading.enumerate()) == before
    assert _open_files(path) == []


async def test_cancelled_prepare_closes_the_file_and_thread(path: Path) -> None:
    """Cancelled while preparing (an unload at start): nothing is left running."""
    before = set(threading.enumerate())
    preparing = asyncio.Event()

    async def prepare(db: aiosqlite.Connection) -> None:
        await db.execute("SELECT 1")
        preparing.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(_open(path, prepare))
    await preparing.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert set(threading.enumerate()) == before
    assert _open_files(path) == []


async def test_unopenable_file_raises_the_callers_error(path: Path) -> None:
    """A folder that does not exist: the caller's error, and no thread left behind."""
    before = set(threading.enumerate())
    with pytest.raises(_FileError, match=r"^unable to open database file$") as raised:
        await _open(path.parent / "missing" / "file.db")
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert set(threading.enumerate()) == before


async def test_not_a_database_raises_the_callers_error(path: Path) -> None:
    """A file that is not SQLite fails the first read, as the caller's error."""
    content = b"homeassistant:\n  name: Home\n" * 100
    await asyncio.to_thread(path.write_bytes, content)

    async def prepare(db: aiosqlite.Connection) -> None:
        await db.execute_fetchall("PRAGMA user_version")

    with pytest.raises(_FileError, match=r"^file is not a database$"):
        await _open(path, prepare)
    assert await asyncio.to_thread(path.read_bytes) == content
    assert _open_files(path) == []


async def test_busy_timeout_bounds_the_wait_for_another_programs_lock(
    path: Path,
) -> None:
    """A write lock held elsewhere: the caller's error after busy_timeout, not before."""
    _sqlite(path, "CREATE TABLE t (x)")
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")

        async def prepare(db: aiosqlite.Connection) -> None:
            await db.execute("BEGIN IMMEDIATE")

        started = time.monotonic()
        with pytest.raises(_FileError, match=r"^database is locked$"):
            await SqliteConnection.open(path, prepare, _FileError, busy_timeout=0.3)
        waited = time.monotonic() - started
    finally:
        locker.close()
    assert 0.3 <= waited < 5, waited
    assert _open_files(path) == []


def test_sqlite_errors_become_the_callers_error() -> None:
    """Any sqlite3.Error is raised as error(message), from the original; others pass."""
    original = sqlite3.IntegrityError("UNIQUE constraint failed: t.x")
    with pytest.raises(_FileError) as raised, sqlite_errors(_FileError):
        raise original
    assert type(raised.value) is _FileError
    assert str(raised.value) == "UNIQUE constraint failed: t.x"
    assert raised.value.__cause__ is original

    with (
        pytest.raises(_FileError, match=r"^disk I/O error$"),
        sqlite_errors(_FileError),
    ):
        raise sqlite3.OperationalError("disk I/O error")

    # The factory decides the message: a file's owner names the file.
    with (
        pytest.raises(_FileError, match=r"^Spool x: database is locked$"),
        sqlite_errors(lambda message: _FileError(f"Spool x: {message}")),
    ):
        raise sqlite3.OperationalError("database is locked")

    other = ValueError("not SQLite's")
    with (
        pytest.raises(ValueError, match="not SQLite's") as passed,
        sqlite_errors(_FileError),
    ):
        raise other
    assert passed.value is other

    with sqlite_errors(_FileError):
        pass  # nothing raised, nothing to do


_MIGRATIONS = (
    ("CREATE TABLE a (x INTEGER)", "INSERT INTO a VALUES (1)"),
    ("CREATE TABLE b (y TEXT)", "INSERT INTO a VALUES (2)"),
)


async def _migrated(
    path: Path,
    migrations: tuple[tuple[str, ...], ...],
    from_version: int,
    stamps: list[str],
) -> None:
    """Open `path` and migrate it from `from_version`; closed again either way."""

    async def prepare(db: aiosqlite.Connection) -> None:
        await migrate(db, migrations, from_version, stamps)

    connection = await _open(path, prepare)
    await connection.close()


def _schema(path: Path) -> tuple[int, list[str], list[tuple[object, ...]]]:
    """The file's user_version, its tables, and the rows of table a (if any)."""
    ((version,),) = _sqlite(path, "PRAGMA user_version")
    tables = [
        str(name)
        for (name,) in _sqlite(path, "SELECT name FROM sqlite_schema ORDER BY name")
    ]
    rows = _sqlite(path, "SELECT x FROM a ORDER BY x") if "a" in tables else []
    return version, tables, rows


async def test_migrate_runs_the_migrations_after_the_version_then_the_stamps(
    path: Path,
) -> None:
    """From version 0 every migration runs; from 1 only the second; stamps last."""
    await _migrated(path, _MIGRATIONS[:1], 0, ["PRAGMA user_version = 1"])
    assert _schema(path) == (1, ["a"], [(1,)])

    await _migrated(path, _MIGRATIONS, 1, ["PRAGMA user_version = 2"])
    assert _schema(path) == (2, ["a", "b"], [(1,), (2,)])

    # Up to date: nothing runs but the stamps.
    await _migrated(path, _MIGRATIONS, 2, ["PRAGMA application_id = 7"])
    assert _schema(path) == (2, ["a", "b"], [(1,), (2,)])
    assert _sqlite(path, "PRAGMA application_id") == [(7,)]


@pytest.mark.parametrize(
    ("migrations", "stamps"),
    [
        pytest.param(
            (*_MIGRATIONS, ("CREATE TABLE c (z)", "NOT SQL")),
            ["PRAGMA user_version = 3"],
            id="failing-statement",
        ),
        pytest.param(
            _MIGRATIONS,
            ["PRAGMA application_id = 7", "NOT SQL", "PRAGMA user_version = 2"],
            id="failing-stamp",
        ),
    ],
)
async def test_migrate_is_one_transaction(
    path: Path, migrations: tuple[tuple[str, ...], ...], stamps: list[str]
) -> None:
    """A statement or stamp that fails undoes every migration: the version stays."""
    before = set(threading.enumerate())
    with pytest.raises(_FileError, match="syntax error"):
        await _migrated(path, migrations, 0, stamps)
    # Not even the migrations that ran before the failing statement are kept.
    assert _schema(path) == (0, [], [])
    assert _sqlite(path, "PRAGMA application_id") == [(0,)]
    assert set(threading.enumerate()) == before

    # From a version the file has: only the later migrations are undone.
    await _migrated(path, _MIGRATIONS[:1], 0, ["PRAGMA user_version = 1"])
    with pytest.raises(_FileError, match="syntax error"):
        await _migrated(path, migrations, 1, stamps)
    assert _schema(path) == (1, ["a"], [(1,)])


async def test_migrate_leaves_no_transaction_open(path: Path) -> None:
    """After a failed migration the connection takes new transactions."""

    async def prepare(db: aiosqlite.Connection) -> None:
        with pytest.raises(sqlite3.OperationalError, match="syntax error"):
            await migrate(db, (("CREATE TABLE a (x)", "NOT SQL"),), 0, [])
        assert not db.in_transaction
        await migrate(db, _MIGRATIONS, 0, ["PRAGMA user_version = 2"])

    connection = await _open(path, prepare)
    await connection.close()
    assert _schema(path) == (2, ["a", "b"], [(1,), (2,)])


async def test_use_wal(path: Path) -> None:
    """A file switches to WAL with NORMAL sync; one that cannot keeps its mode."""
    modes: list[tuple[str, int]] = []

    async def prepare(db: aiosqlite.Connection) -> None:
        mode = await use_wal(db)
        ((synchronous,),) = await db.execute_fetchall("PRAGMA synchronous")
        modes.append((mode, synchronous))

    connection = await _open(path, prepare)
    await connection.close()
    # NORMAL is 1; SQLite's default, FULL, is 2.
    assert modes == [("wal", 1)]
    # WAL is kept in the file, for every connection.
    assert _sqlite(path, "PRAGMA journal_mode") == [("wal",)]

    # An in-memory database cannot use WAL: the mode it has is returned, and the
    # sync level is left alone.
    connection = await _open(Path(":memory:"), prepare)
    await connection.close()
    assert modes[1] == ("memory", 2)


def test_delete_sqlite_files(path: Path) -> None:
    """The database, its log and shared memory go; other files and missing ones stay."""
    _sqlite(path, "PRAGMA journal_mode=WAL")
    ours = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    for file in ours:
        file.write_bytes(b"left by a process that was killed")
    others = [path.with_name(path.name + ".bak"), path.with_name("other.db-wal")]
    for other in others:
        other.touch()

    delete_sqlite_files(path)
    assert sorted(path.parent.iterdir()) == sorted(others)
    delete_sqlite_files(path)  # nothing left to delete: no error
    assert sorted(path.parent.iterdir()) == sorted(others)


def _modes(path: Path) -> dict[str, int]:
    """The permission bits of the database and each file beside it that exists."""
    return {
        suffix: (path.with_name(path.name + suffix).stat().st_mode & 0o777)
        for suffix in SQLITE_SUFFIXES
        if path.with_name(path.name + suffix).exists()
    }


async def test_a_private_file_and_its_log_are_owner_only(path: Path) -> None:
    """0600 for the database, its log and shared memory: new, or left readable before.

    A file opened without `private` (the mirror, read by other programs) keeps the
    mode the process gives new files.
    """
    await asyncio.to_thread(_sqlite, path, "PRAGMA journal_mode=WAL")
    for suffix in SQLITE_SUFFIXES:
        file = path.with_name(path.name + suffix)
        await asyncio.to_thread(file.touch)
        await asyncio.to_thread(file.chmod, 0o644)

    async def prepare(db: aiosqlite.Connection) -> None:
        await use_wal(db)
        await db.execute("CREATE TABLE t (x)")

    connection = await SqliteConnection.open(path, prepare, _FileError, private=True)
    try:
        assert await asyncio.to_thread(_modes, path) == dict.fromkeys(
            SQLITE_SUFFIXES, 0o600
        )
    finally:
        await connection.close()

    fresh = path.with_name("fresh.db")
    connection = await SqliteConnection.open(fresh, prepare, _FileError, private=True)
    try:
        assert await asyncio.to_thread(_modes, fresh) == dict.fromkeys(
            SQLITE_SUFFIXES, 0o600
        )
    finally:
        await connection.close()

    shared = path.with_name("shared.db")
    connection = await _open(shared, prepare)
    try:
        umask = os.umask(0)
        os.umask(umask)
        assert await asyncio.to_thread(_modes, shared) == dict.fromkeys(
            SQLITE_SUFFIXES, 0o644 & ~umask
        )
    finally:
        await connection.close()


async def test_a_read_only_file_is_never_written(path: Path) -> None:
    """Read, not written: not by a statement, not by the checkpoint at closing."""

    def make() -> None:
        """A file whose table is only in its log, as a killed process leaves it."""
        writer = path.with_name("writer.db")
        connection = sqlite3.connect(writer, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA wal_autocheckpoint=0")
            connection.execute("CREATE TABLE t (x)")
            connection.execute("INSERT INTO t VALUES (1)")
            for suffix in ("", "-wal"):
                shutil.copy(
                    writer.with_name(writer.name + suffix),
                    path.with_name(path.name + suffix),
                )
        finally:
            connection.close()

    def files() -> tuple[bytes, bytes]:
        return path.read_bytes(), path.with_name(path.name + "-wal").read_bytes()

    await asyncio.to_thread(make)
    before = await asyncio.to_thread(files)
    connection = await SqliteConnection.open(path, _nothing, _FileError, read_only=True)
    try:
        assert await connection.db.execute_fetchall("SELECT x FROM t") == [(1,)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await connection.db.execute("INSERT INTO t VALUES (2)")
    finally:
        await connection.close()
    # Neither checkpointed into the database nor deleted.
    assert await asyncio.to_thread(files) == before
