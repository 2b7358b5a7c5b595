"""An open mirror file: which file it is on disk, and writing rows into it.

A transaction makes the rows of the entries it names equal to what the registries
hold, writing only what differs. The file's identity (device and inode of the database
and its write-ahead log) tells whether another program deleted or replaced it.
"""

from __future__ import annotations

from collections.abc import Collection
import json
from pathlib import Path
from typing import Any, Final, NamedTuple, Self

import aiosqlite
from homeassistant.core import HomeAssistant

from ..storage.sqlite import SQLITE_SUFFIXES, SqliteConnection, sqlite_errors
from ..utf8 import utf8_text
from .tables import TABLE_NAMES, TABLES, Mirrored, MirrorError, Row, Table, prepare

# How long a write waits for another program's lock before it gives up until the next
# retry. Writes run in the mirror's own thread, so waiting stalls nothing else; only
# stopping the mirror waits for it.
BUSY_TIMEOUT_SECONDS: Final = 1.0

type _Identity = tuple[int, int]  # (device, inode): which file a name points to


def _identities(path: Path) -> tuple[_Identity | None, ...]:
    """Return which files the database's names point to now; None where there is none.

    A file that cannot be looked at (its folder cannot be searched) counts as none.
    """
    identities: list[_Identity | None] = []
    for suffix in SQLITE_SUFFIXES:
        try:
            stat = path.with_name(path.name + suffix).stat()
        except OSError:
            identities.append(None)
        else:
            identities.append((stat.st_dev, stat.st_ino))
    return tuple(identities)


class _Statements(NamedTuple):
    """The SQL that writes one table and its labels."""

    select: str  # add " WHERE <key> IN ..." to read some rows only
    upsert: str
    delete: str
    select_labels: str
    delete_label: str
    insert_label: str
    where_key_in: str


def _statements(table: Table) -> _Statements:
    # Every name formatted in is one of our constants, never input (hence the noqa).
    columns = ", ".join(table.columns)
    updates = ", ".join(f"{column} = excluded.{column}" for column in table.columns[1:])
    values = ", ".join("?" * len(table.columns))
    name, key, labels = table.name, table.key, table.labels
    return _Statements(
        select=f"SELECT {columns} FROM {name}",  # noqa: S608
        upsert=f"INSERT INTO {name} ({columns}) VALUES ({values})"  # noqa: S608
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}",
        delete=f"DELETE FROM {name} WHERE {key} = ?",  # noqa: S608
        select_labels=f"SELECT {key}, label_id FROM {labels}",  # noqa: S608
        delete_label=f"DELETE FROM {labels} WHERE {key} = ? AND label_id = ?",  # noqa: S608
        insert_label=f"INSERT INTO {labels} ({key}, label_id) VALUES (?, ?)",  # noqa: S608
        where_key_in=f" WHERE {key} IN (SELECT value FROM json_each(?))",  # noqa: S608
    )


_SQL: Final = {table: _statements(table) for table in TABLES}
_COUNT_ROWS: Final = "SELECT " + ", ".join(  # noqa: S608
    f"(SELECT count(*) FROM {name})"  # noqa: S608
    for name in TABLE_NAMES
)


class MirrorFile:
    """An open mirror file: its connection, and which file it is."""

    def __init__(
        self,
        connection: SqliteConnection,
        path: Path,
        identities: tuple[_Identity | None, ...],
    ) -> None:
        """Wrap an open, prepared connection; `open` is the way to make one."""
        self._connection = connection
        self._path = path
        self._identities = identities

    @classmethod
    async def open(cls, hass: HomeAssistant, path: Path) -> Self:
        """Open the mirror at `path`, creating or migrating it; MirrorError if not."""
        # Preparing reads the file, and so creates the -wal and -shm files.
        connection = await SqliteConnection.open(
            path, prepare, MirrorError, busy_timeout=BUSY_TIMEOUT_SECONDS
        )
        try:
            identities = await hass.async_add_executor_job(_identities, path)
        except BaseException:
            await connection.close()
            raise
        return cls(connection, path, identities)

    async def close(self) -> None:
        """Close the file and end its thread."""
        await self._connection.close()

    async def still_there(self, hass: HomeAssistant) -> bool:
        """Return whether the path still names this file: not deleted, not replaced."""
        now = await hass.async_add_executor_job(_identities, self._path)
        return now[0] is not None and now[0] == self._identities[0]

    async def close_moved(self, hass: HomeAssistant) -> None:
        """Close a file that was deleted or replaced, and remove what it left behind.

        Its write-ahead log outlives it (SQLite keeps the log of a database that is
        no longer at its path) and would be replayed into any new database at the
        path, be it the mirror written anew or another program's file.
        """
        await self.close()
        try:
            await hass.async_add_executor_job(self._remove_leftovers)
        except OSError as err:
            raise MirrorError(f"cannot remove the old write-ahead log: {err}") from err

    def _remove_leftovers(self) -> None:
        now = _identities(self._path)
        for suffix, ours, there in zip(
            SQLITE_SUFFIXES[1:], self._identities[1:], now[1:], strict=True
        ):
            if ours is not None and there == ours:
                self._path.with_name(self._path.name + suffix).unlink(missing_ok=True)

    async def write(
        self,
        content: dict[Table, dict[str, Mirrored]],
        scope: dict[Table, Collection[str]] | None,
    ) -> dict[str, int]:
        """Make the rows of `scope` equal `content`, in one transaction.

        `scope` names the keys to make equal, per table (a key absent from `content`
        is deleted); None means every row of every table. Returns the rows per table.
        """
        db = self._connection.db
        with sqlite_errors(MirrorError):
            # IMMEDIATE: take the write lock now, so that another program holding it
            # fails us here (after the busy timeout), not halfway through.
            await db.execute("BEGIN IMMEDIATE")
            try:
                for table in TABLES:
                    if scope is None:
                        await _write_table(db, table, content[table], None)
                    elif keys := scope.get(table):
                        await _write_table(db, table, content[table], keys)
                ((*counts,),) = await db.execute_fetchall(_COUNT_ROWS)
                await db.commit()
            except BaseException:
                await db.rollback()
                raise
        return dict(zip(TABLE_NAMES, counts, strict=True))


def _storable(row: Row) -> Row:
    """Return the row as SQLite takes it: texts with surrogates made UTF-8.

    Integrations name devices and entities from what the devices report; one name
    holding a surrogate would fail every transaction, and the mirror with it.
    """
    return tuple(utf8_text(value) if type(value) is str else value for value in row)


async def _write_table(
    db: aiosqlite.Connection,
    table: Table,
    content: dict[str, Mirrored],
    keys: Collection[str] | None,
) -> None:
    """Make the rows of `keys` (None: all) and their labels equal `content`.

    Only what differs is written: a resync of an unchanged registry writes nothing.
    """
    sql = _SQL[table]
    where = ""
    parameters: tuple[str, ...] = ()
    if keys is not None:
        where, parameters = sql.where_key_in, (json.dumps(list(keys)),)
    existing: dict[Any, Row] = {
        row[0]: tuple(row)
        for row in await db.execute_fetchall(sql.select + where, parameters)
    }
    if table.labels is not None:
        linked = {
            (row[0], row[1])
            for row in await db.execute_fetchall(sql.select_labels + where, parameters)
        }
        wanted = {
            (key, label) for key, item in content.items() for label in item.labels
        }
        await db.executemany(sql.delete_label, list(linked - wanted))
    await db.executemany(sql.delete, [(key,) for key in existing if key not in content])
    await db.executemany(
        sql.upsert,
        [
            row
            for key, item in content.items()
            if existing.get(key) != (row := _storable(item.row))
        ],
    )
    if table.labels is not None:
        await db.executemany(sql.insert_label, list(wanted - linked))
