"""What the spool and the registry mirror do alike with their SQLite files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aiosqlite

type Migrations = Sequence[Sequence[str]]
"""Statements that take a schema from version N (the index) to N + 1."""


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
