"""Opening, migrating and closing an SQLite file off the event loop, for the spool and the mirror.

Each file gets one aiosqlite connection, which runs every statement in a thread of its
own. Opening checks and migrates the file before anyone uses it; closing ends the
thread too, so that nothing of the file runs on after an unload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
import contextlib
import os
from pathlib import Path
import sqlite3
import threading
from typing import Self

import aiosqlite

from ..const import LOGGER

type Migrations = Sequence[Sequence[str]]
"""Statements that take a schema from version N (the index) to N + 1."""


class SqliteFileError(Exception):
    """An SQLite file cannot be used: not ours, corrupt, unreadable, locked, disk full."""


@contextlib.contextmanager
def sqlite_errors(error: Callable[[str], SqliteFileError]) -> Iterator[None]:
    """Raise SQLite's errors as `error(message)`, the file's own kind of error."""
    try:
        yield
    except sqlite3.Error as err:
        raise error(str(err)) from err


class SqliteConnection:
    """An open aiosqlite connection and the thread it runs in, closed together."""

    def __init__(self, db: aiosqlite.Connection, worker: threading.Thread) -> None:
        """Wrap an open connection; `open` is the way to make one."""
        self.db = db
        self._worker = worker

    @classmethod
    async def open(
        cls,
        path: Path,
        prepare: Callable[[aiosqlite.Connection], Awaitable[None]],
        error: Callable[[str], SqliteFileError],
        *,
        busy_timeout: float = 5.0,
        private: bool = False,
        read_only: bool = False,
    ) -> Self:
        """Open `path` and `prepare` it (check and migrate); close it again if that fails.

        SQLite's errors are raised as `error`; `busy_timeout` is how long a statement
        waits for another program's lock. A `private` file is readable and writable
        by its owner only (0600), as are the log and shared memory SQLite keeps
        beside it, like Home Assistant's own `.storage` files. A `read_only` file is
        never written, not even checkpointed when closed.
        """
        threads: list[threading.Thread] = []

        def connect() -> sqlite3.Connection:
            # Runs in aiosqlite's thread: remember it, to join it when closing.
            threads.append(threading.current_thread())
            # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE).
            connection = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=ro" if read_only else path,
                timeout=busy_timeout,
                isolation_level=None,
                uri=read_only,
            )
            if private:
                # Before the first read, which creates the log and shared memory:
                # SQLite gives those the database's own mode.
                try:
                    _make_private(path)
                except BaseException:
                    connection.close()
                    raise
            return connection

        db = aiosqlite.Connection(connect, iter_chunk_size=64)  # aiosqlite's default
        try:
            with sqlite_errors(error):
                await db
                await prepare(db)
        except BaseException:
            await _close(db, threads)
            raise
        return cls(db, threads[0])

    async def close(self) -> None:
        """Close the file and end its thread; never raises for the file's sake."""
        await _close(self.db, [self._worker])


def _make_private(path: Path) -> None:
    """Make the database and the files beside it that exist owner-only. Blocking."""
    for suffix in SQLITE_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), 0o600)


async def _close(db: aiosqlite.Connection, threads: Iterable[threading.Thread]) -> None:
    try:
        await db.close()
    except sqlite3.Error as err:
        # Closing gives the connection up whatever the error: nothing to do about it.
        LOGGER.debug("Closing an SQLite file failed: %s", err)
    finally:
        # aiosqlite's close() returns before its thread has ended (omnilib/aiosqlite#387);
        # the thread is past its last statement, so this waits for a few instructions.
        for thread in threads:
            thread.join()


async def use_wal(db: aiosqlite.Connection) -> str:
    """Switch the file to write-ahead logging with NORMAL sync; return the mode set.

    WAL: a commit appends to the log instead of rewriting pages in place, and readers
    never block the writer nor are blocked by it. NORMAL syncs the log at checkpoints,
    not at every commit: a killed process loses nothing, a power loss can roll back
    the transactions since the last checkpoint; the file stays consistent.
    """
    ((mode,),) = await db.execute_fetchall("PRAGMA journal_mode=WAL")
    if mode == "wal":
        await db.execute("PRAGMA synchronous=NORMAL")
    return str(mode)


async def migrate(
    db: aiosqlite.Connection,
    migrations: Migrations,
    from_version: int,
    stamps: Iterable[str],
) -> None:
    """Run the migrations after `from_version`, then the `stamps`, in one transaction.

    The stamps are PRAGMAs that mark the file as migrated (its user_version, say).
    """
    await db.execute("BEGIN IMMEDIATE")
    try:
        for migration in migrations[from_version:]:
            for statement in migration:
                await db.execute(statement)
        for stamp in stamps:
            await db.execute(stamp)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise


def delete_sqlite_files(path: Path) -> None:
    """Delete the database and the files SQLite keeps beside it. Blocking."""
    for suffix in SQLITE_SUFFIXES:
        path.with_name(path.name + suffix).unlink(missing_ok=True)


# The database and the files SQLite keeps beside it while it is open (WAL mode).
SQLITE_SUFFIXES = ("", "-wal", "-shm")
