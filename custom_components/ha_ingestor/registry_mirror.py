"""Home Assistant's device, entity, area, floor and label registries, mirrored to SQLite.

Other programs (Grafana's SQLite data source, notebooks, scripts) read the file while
Home Assistant runs; docs/registry.md describes its tables. It is kept equal to the
registries like this:

- On start, a full resync in one transaction: every row is compared with what the
  registries hold; what differs is written and what is gone is deleted, so entries
  removed while Home Assistant was off disappear.
- While running, each registry event marks the entry it names as changed. A task
  writes the marked entries in one transaction, each as the registry holds it at that
  moment (the data of an update event names only the changed keys, that of a removal
  only the id), or deletes its row when the entry is gone. Events that arrive while a
  transaction is being written go into the next one, so under load the transactions
  grow instead of queueing up.
- The file is used through aiosqlite, in a thread of its own; the event loop only
  reads the registries. A file that cannot be written (locked, read-only, corrupt,
  another program's) never stops anything else: the error is recorded, a repair issue
  raised, and every RETRY_INTERVAL the mirror tries again, with a full resync. A file
  that was deleted or replaced is noticed before the next write (and at least every
  RETRY_INTERVAL) and written anew.

Readers see the file as of a commit, never half of one (write-ahead log).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Iterator
import contextlib
from datetime import datetime, timedelta
import json
from pathlib import Path
import sqlite3
import tempfile
import threading
from typing import Any, Final, NamedTuple, Self

import aiosqlite
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    issue_registry as ir,
    label_registry as lr,
)
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .registry_mirror_schema import (
    APPLICATION_ID,
    AREAS,
    DEVICES,
    ENTITIES,
    FLOORS,
    LABELS,
    TABLE_NAMES,
    TABLES,
    Mirrored,
    MirrorError,
    Row,
    Table,
    area_rows,
    device_rows,
    entity_rows,
    floor_rows,
    foreign_file_reason,
    label_rows,
    prepare,
)

# How often a mirror that failed tries again, and a healthy one checks that its file
# is still there.
RETRY_INTERVAL: Final = timedelta(seconds=30)
# How long a write waits for another program's lock before it gives up until the next
# retry. Writes run in the mirror's own thread, so waiting stalls nothing else; only
# stopping the mirror waits for it.
BUSY_TIMEOUT_SECONDS: Final = 1.0

# validate_mirror_path's answers: config flow error keys.
MIRROR_PATH_IS_DIRECTORY: Final = "mirror_path_is_directory"
MIRROR_PATH_NOT_WRITABLE: Final = "mirror_path_not_writable"
MIRROR_PATH_NOT_SQLITE: Final = "mirror_path_not_sqlite"
MIRROR_PATH_OTHER_DATABASE: Final = "mirror_path_other_database"
MIRROR_PATH_NEWER_VERSION: Final = "mirror_path_newer_version"

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_SQLITE_HEADER_SIZE: Final = 100

# For each table, the function that returns the rows of given keys (or all).
_READERS: Final[
    dict[Table, Callable[[HomeAssistant, Iterable[str] | None], dict[str, Mirrored]]]
] = {
    FLOORS: floor_rows,
    LABELS: label_rows,
    AREAS: area_rows,
    DEVICES: device_rows,
    ENTITIES: entity_rows,
}


@contextlib.contextmanager
def _sqlite_errors() -> Iterator[None]:
    """Raise SQLite's errors as MirrorError."""
    try:
        yield
    except sqlite3.Error as err:
        raise MirrorError(str(err)) from err


def validate_mirror_path(path: str) -> str | None:
    """Say why the mirror cannot live at `path`, as an error key; None if it can.

    Blocking: run it in the executor. `path` must be absolute. It is refused when it
    is a folder; when its folder is missing or no file can be created in it (SQLite
    keeps its write-ahead log beside the file); when the file exists and cannot be
    written; and when the file is another program's: a non-empty file that is not
    SQLite, or an SQLite database that has tables but not our application id (Home
    Assistant's recorder database, say). An empty file, an SQLite database without
    tables, and a mirror of this or an older schema version are taken. Nothing is
    created or changed.
    """
    file = Path(path)
    if not file.is_absolute():
        raise ValueError(f"Not an absolute path: {path}")
    if file.is_dir():
        return MIRROR_PATH_IS_DIRECTORY
    if not _writable(file):
        return MIRROR_PATH_NOT_WRITABLE
    if not file.exists():
        return None
    return _check_contents(file)


def _writable(file: Path) -> bool:
    """Return whether `file` can be written and files created beside it."""
    try:
        # Real files, not permission bits: the only test that is also right for root,
        # read-only mounts and immutable files.
        with tempfile.NamedTemporaryFile(dir=file.parent, prefix=f".{file.name}."):
            pass
        if file.is_file():
            with file.open("r+b"):
                pass
    except OSError:
        return False
    return True


def _check_contents(file: Path) -> str | None:
    """Say whose the existing `file` is, from its header: None when empty or ours.

    The database is not opened: a read-only connection would leave -wal and -shm
    files beside a database in WAL mode, and wait for other programs' locks. The
    header is as of the last checkpoint; opening the mirror checks again through
    SQLite.
    """
    if not file.is_file():
        return MIRROR_PATH_NOT_SQLITE  # a FIFO or a device: reading it could block
    with file.open("rb") as existing:
        header = existing.read(_SQLITE_HEADER_SIZE)
    if not header:
        return None
    # https://www.sqlite.org/fileformat.html#the_database_header: the magic string,
    # payload fractions that must be 64, 32 and 32, and big-endian integers.
    if (
        len(header) < _SQLITE_HEADER_SIZE
        or not header.startswith(_SQLITE_MAGIC)
        or header[21:24] != b"\x40\x20\x20"
    ):
        return MIRROR_PATH_NOT_SQLITE
    # The schema cookie changes with every CREATE or DROP: 0 means never a table.
    schema_cookie = int.from_bytes(header[40:44])
    user_version = int.from_bytes(header[60:64])
    application_id = int.from_bytes(header[68:72], signed=True)
    if foreign_file_reason(application_id, user_version, schema_cookie != 0) is None:
        return None
    if application_id == APPLICATION_ID:
        return MIRROR_PATH_NEWER_VERSION
    return MIRROR_PATH_OTHER_DATABASE


type _Identity = tuple[int, int]  # (device, inode): which file a name points to

# The database and the files SQLite keeps beside it while it is open.
_SUFFIXES: Final = ("", "-wal", "-shm")


def _identities(path: Path) -> tuple[_Identity | None, ...]:
    """Return which files the database's names point to now; None where there is none.

    A file that cannot be looked at (its folder cannot be searched) counts as none.
    """
    identities: list[_Identity | None] = []
    for suffix in _SUFFIXES:
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


class _MirrorFile:
    """An open mirror file: its connection, the connection's thread, which file it is."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        worker: threading.Thread,
        path: Path,
        identities: tuple[_Identity | None, ...],
    ) -> None:
        """Wrap an open, prepared connection; `open` is the way to make one."""
        self._db = db
        self._worker = worker
        self._path = path
        self._identities = identities

    @classmethod
    async def open(cls, hass: HomeAssistant, path: Path) -> Self:
        """Open the mirror at `path`, creating or migrating it; MirrorError if not."""
        threads: list[threading.Thread] = []

        def connect() -> sqlite3.Connection:
            # Runs in aiosqlite's thread: remember it, to join it when closing.
            threads.append(threading.current_thread())
            # isolation_level=None: transactions are begun explicitly, see write.
            return sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
            )

        db = aiosqlite.Connection(connect, iter_chunk_size=64)  # aiosqlite's default
        try:
            with _sqlite_errors():
                await db
                await prepare(db)  # which reads and so creates the -wal and -shm files
            identities = await hass.async_add_executor_job(_identities, path)
        except BaseException:
            await _close(db, threads)
            raise
        return cls(db, threads[0], path, identities)

    async def close(self) -> None:
        """Close the file and end its thread."""
        await _close(self._db, [self._worker])

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
            _SUFFIXES[1:], self._identities[1:], now[1:], strict=True
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
        db = self._db
        with _sqlite_errors():
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


async def _close(db: aiosqlite.Connection, threads: list[threading.Thread]) -> None:
    try:
        await db.close()
    except sqlite3.Error as err:
        # Closing gives the connection up whatever the error: nothing to do about it.
        LOGGER.debug("Closing the registry mirror failed: %s", err)
    finally:
        # aiosqlite's close() returns before its thread has ended (omnilib/aiosqlite#387);
        # the thread is past its last statement, so this waits for a few instructions.
        for thread in threads:
            thread.join()


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
        [item.row for key, item in content.items() if existing.get(key) != item.row],
    )
    if table.labels is not None:
        await db.executemany(sql.insert_label, list(wanted - linked))


class RegistryMirror:
    """Keeps an SQLite file equal to the registries, for one config entry.

    `async_start` and `async_stop` are the whole lifecycle; neither raises because of
    the file. `healthy`, `last_error`, `last_sync` and `rows` say how it goes.
    """

    def __init__(self, hass: HomeAssistant, entry_id: str, path: Path) -> None:
        """Prepare a mirror of the registries at `path` (absolute); nothing runs yet."""
        self.hass = hass
        self.path = path
        self.healthy = False
        self.last_error: str | None = None
        # When the file last became equal to the registries.
        self.last_sync: datetime | None = None
        # Rows per table (link tables included) as of the last commit.
        self.rows: dict[str, int] = {}
        self._issue_id = f"mirror_unavailable_{entry_id}"
        self._file: _MirrorFile | None = None
        # Keys changed since the last transaction, per table, in the order they came.
        self._pending: dict[Table, dict[str, None]] = {table: {} for table in TABLES}
        # Set until a full resync's rows are read: pending keys are then not needed.
        self._resync_needed = True
        self._check_requested = False
        # One pass at a time: a pass holds a transaction across awaits.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._unsubscribe_final_write: CALLBACK_TYPE | None = None
        self._stopping = False

    async def async_start(self) -> None:
        """Listen to the registries, then open the file and resync it in full.

        Returns once that first sync is done or failed; a failure is retried every
        RETRY_INTERVAL.
        """
        bus = self.hass.bus
        # Listening first: a change during the resync is then written after it.
        self._unsubscribers = [
            bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, self._entity_changed),
            bus.async_listen(dr.EVENT_DEVICE_REGISTRY_UPDATED, self._device_changed),
            bus.async_listen(ar.EVENT_AREA_REGISTRY_UPDATED, self._area_changed),
            bus.async_listen(fr.EVENT_FLOOR_REGISTRY_UPDATED, self._floor_changed),
            bus.async_listen(lr.EVENT_LABEL_REGISTRY_UPDATED, self._label_changed),
            async_track_time_interval(
                self.hass,
                self._retry_or_check,
                RETRY_INTERVAL,
                name="ha_ingestor registry mirror",
                cancel_on_shutdown=True,
            ),
        ]
        # The runner is a background task, which Home Assistant cancels when it stops;
        # what is still pending then is written here.
        self._unsubscribe_final_write = bus.async_listen_once(
            EVENT_HOMEASSISTANT_FINAL_WRITE, self._final_write
        )
        if await self._sync():
            self._start_runner()  # for the changes made during the resync

    async def async_stop(self) -> None:
        """Stop listening, write what is pending, close the file; idempotent."""
        if self._stopping:
            return
        self._stopping = True
        while self._unsubscribers:
            self._unsubscribers.pop()()
        if self._unsubscribe_final_write is not None:
            self._unsubscribe_final_write()
            self._unsubscribe_final_write = None
        if self._task is not None:
            await asyncio.wait([self._task])
        # A failed mirror is resynced in full at its next start: no point waiting on
        # its file now.
        if self.healthy and self._work_waiting():
            await self._sync()
        await self._close_file()
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id)

    async def _final_write(self, _event: Event) -> None:
        self._unsubscribe_final_write = None  # a once-listener removes itself
        await self.async_stop()

    @callback
    def _entity_changed(self, event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        data = event.data
        keys = [data["entity_id"]]
        if data["action"] == "update" and "old_entity_id" in data:
            keys.append(data["old_entity_id"])  # renamed: the old row goes
        self._changed(ENTITIES, keys)

    @callback
    def _device_changed(self, event: Event[dr.EventDeviceRegistryUpdatedData]) -> None:
        self._changed(DEVICES, [event.data["device_id"]])

    @callback
    def _area_changed(self, event: Event[ar.EventAreaRegistryUpdatedData]) -> None:
        # The order of areas is not mirrored: "reorder" names none.
        if (area_id := event.data["area_id"]) is not None:
            self._changed(AREAS, [area_id])

    @callback
    def _floor_changed(self, event: Event[fr.EventFloorRegistryUpdatedData]) -> None:
        if event.data["action"] != "reorder":
            self._changed(FLOORS, [event.data["floor_id"]])

    @callback
    def _label_changed(self, event: Event[lr.EventLabelRegistryUpdatedData]) -> None:
        self._changed(LABELS, [event.data["label_id"]])

    @callback
    def _changed(self, table: Table, keys: list[str]) -> None:
        # Runs in the event loop for each registry change: no I/O here.
        if self._resync_needed:
            # A full resync is due (or failing): it reads every entry anyway, and a
            # failed mirror retries on its timer, not at each change.
            return
        self._pending[table].update(dict.fromkeys(keys))
        self._start_runner()

    @callback
    def _retry_or_check(self, _now: datetime) -> None:
        self._check_requested = True
        self._start_runner()

    @callback
    def _start_runner(self) -> None:
        if self._stopping or not self._work_waiting():
            return
        if self._task is None or self._task.done():
            # Not started eagerly, inside the callback of the first change: it would
            # then write that change without those that follow it in the same turn
            # of the event loop (all that one registry call changes, for instance).
            self._task = self.hass.async_create_background_task(
                self._run(), "ha_ingestor registry mirror", eager_start=False
            )

    def _work_waiting(self) -> bool:
        return (
            self._resync_needed or self._check_requested or any(self._pending.values())
        )

    async def _run(self) -> None:
        """Write what comes in, transaction after transaction, until nothing waits."""
        while not self._stopping and self._work_waiting():
            if not await self._sync():
                return  # the retry timer takes over

    async def _sync(self) -> bool:
        """Bring the file up to date in one transaction; return whether that worked."""
        async with self._lock:
            try:
                await self._sync_locked()
            except MirrorError as err:
                await self._close_file()
                self._failed(err)
                return False
            self._succeeded()
            return True

    async def _sync_locked(self) -> None:
        self._check_requested = False
        try:
            file = await self._open_file()
            scope: dict[Table, Collection[str]] | None
            if self._resync_needed:
                self._resync_needed = False
                for keys in self._pending.values():
                    keys.clear()
                scope = None
            elif any(self._pending.values()):
                scope = {table: list(keys) for table, keys in self._pending.items()}
                for keys in self._pending.values():
                    keys.clear()
            else:
                return  # the file was only checked
            # Read in the event loop, in one go: the registries are not thread-safe, and
            # one consistent moment of all five is what this transaction writes.
            content = {
                table: read(self.hass, None if scope is None else scope[table])
                for table, read in _READERS.items()
            }
            self.rows = await file.write(content, scope)
        except BaseException:
            # The changes taken for this transaction are lost with it (a failure, or
            # Home Assistant cancelling the task as it stops): resync in full.
            self._resync_needed = True
            raise
        self.last_sync = dt_util.utcnow()

    async def _open_file(self) -> _MirrorFile:
        """Return the open file; open it anew if it was closed, deleted or replaced."""
        if self._file is not None:
            if await self._file.still_there(self.hass):
                return self._file
            LOGGER.warning(
                "The registry mirror %s was deleted or replaced; writing it anew",
                self.path,
            )
            file, self._file = self._file, None
            await file.close_moved(self.hass)
        file = await _MirrorFile.open(self.hass, self.path)
        self._file = file
        self._resync_needed = True
        return file

    async def _close_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            await file.close()

    @callback
    def _failed(self, err: MirrorError) -> None:
        error = str(err)
        if self.healthy or self.last_error is None:
            LOGGER.error(
                "The registry mirror %s cannot be written, retrying every %s: %s",
                self.path,
                RETRY_INTERVAL,
                error,
            )
        self.healthy = False
        self.last_error = error
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="mirror_unavailable",
            translation_placeholders={"path": str(self.path), "error": error},
        )

    @callback
    def _succeeded(self) -> None:
        if self.last_error is not None:
            LOGGER.info("The registry mirror %s is written again", self.path)
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id)
        self.healthy = True
        self.last_error = None
