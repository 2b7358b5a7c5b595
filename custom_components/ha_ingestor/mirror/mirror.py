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
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, LOGGER
from ..registry.events import Registry, async_track_registry_changes
from ..shutdown import StopOnce
from .file import MirrorFile
from .rows import READERS
from .tables import AREAS, DEVICES, ENTITIES, FLOORS, LABELS, TABLES, MirrorError, Table

# How often a mirror that failed tries again, and a healthy one checks that its file
# is still there.
RETRY_INTERVAL: Final = timedelta(seconds=30)

# The table of each registry.
_TABLES: Final = {
    Registry.ENTITY: ENTITIES,
    Registry.DEVICE: DEVICES,
    Registry.AREA: AREAS,
    Registry.FLOOR: FLOORS,
    Registry.LABEL: LABELS,
}


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
        self._file: MirrorFile | None = None
        # Keys changed since the last transaction, per table, in the order they came.
        self._pending: dict[Table, dict[str, None]] = {table: {} for table in TABLES}
        # Set until a full resync's rows are read: pending keys are then not needed.
        self._resync_needed = True
        self._check_requested = False
        # One pass at a time: a pass holds a transaction across awaits.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._stop_once = StopOnce(self._async_shut_down)

    async def async_start(self) -> None:
        """Listen to the registries, then open the file and resync it in full.

        Returns once that first sync is done or failed; a failure is retried every
        RETRY_INTERVAL.
        """
        # Listening first: a change during the resync is then written after it.
        self._unsubscribers = [
            async_track_registry_changes(self.hass, self._registry_changed),
            async_track_time_interval(
                self.hass,
                self._retry_or_check,
                RETRY_INTERVAL,
                name="ha_ingestor registry mirror",
                cancel_on_shutdown=True,
            ),
        ]
        # The runner is a background task, which Home Assistant cancels when it stops;
        # what is still pending then is written at the final write.
        self._stop_once.async_stop_at_final_write(self.hass)
        if await self._sync():
            self._start_runner()  # for the changes made during the resync

    async def async_stop(self) -> None:
        """Stop listening, write what is pending, close the file; idempotent."""
        await self._stop_once()

    async def _async_shut_down(self) -> None:
        while self._unsubscribers:
            self._unsubscribers.pop()()
        if self._task is not None:
            await asyncio.wait([self._task])
        # A failed mirror is resynced in full at its next start: no point waiting on
        # its file now.
        if self.healthy and self._work_waiting():
            await self._sync()
        await self._close_file()
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id)

    @callback
    def _registry_changed(self, registry: Registry, keys: list[str]) -> None:
        self._changed(_TABLES[registry], keys)

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
        if self._stop_once.stopping or not self._work_waiting():
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
        while not self._stop_once.stopping and self._work_waiting():
            if not await self._sync():
                return  # the retry timer takes over

    async def _sync(self) -> bool:
        """Bring the file up to date in one transaction; return whether that worked."""
        async with self._lock:
            try:
                await self._sync_locked()
            except Exception as err:  # noqa: BLE001 - an unexpected one is logged
                if not isinstance(err, MirrorError):
                    # A fault of ours or of a registry entry: shown and retried as
                    # the file's own faults are, rather than end the mirror unseen.
                    LOGGER.exception("The registry mirror %s failed", self.path)
                    err = MirrorError(f"unexpected error: {err!r}")
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
                for table, read in READERS.items()
            }
            self.rows = await file.write(content, scope)
        except BaseException:
            # The changes taken for this transaction are lost with it (a failure, or
            # Home Assistant cancelling the task as it stops): resync in full.
            self._resync_needed = True
            raise
        self.last_sync = dt_util.utcnow()

    async def _open_file(self) -> MirrorFile:
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
        file = await MirrorFile.open(self.hass, self.path)
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
