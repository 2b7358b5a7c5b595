"""Collect lines in memory, make them durable every flush interval, deliver them in batches.

Two jobs run side by side, and the first never waits for the second:

- The flush loop ticks every half flush interval (and when a batch is full). It starts
  a delivery if none is under way and none is held back by a backoff; otherwise it
  keeps memory durable: lines received before the previous tick, in memory or in the
  batch being written, go to the spool (the batch first, as a copy). A line waits at
  most half an interval for a delivery, and is durable an interval after it came at
  the latest, however long a write hangs: a hard kill loses the last flush interval at
  most, and only the newest lines.
- A delivery writes the spool first (oldest first, original timestamps), then memory,
  batch after batch, and the spool again if a tick spilled memory meanwhile: one that
  succeeds leaves nothing received before its end unwritten. A batch that fails goes
  to the spool and the next delivery waits out a backoff, which starts again from its
  first wait as soon as a batch is written.
  While InfluxDB cannot be reached at all it is pinged every PROBE_INTERVAL, so the
  catch-up starts soon after it is back, however long the backoff has grown. The ping
  is a delivery's first step: one that hangs keeps nothing from the spool either.

Each line is added with the state it was made of: once its point is durable (stored in
the spool, or written), that state's fingerprint is saved with it (last_states), with
the stats, unless a newer state of the entity was saved already. A line of the past (a
backfill's) comes without one: it must not become an entity's last state. Memory holds
`memory_cap` lines waiting, and as many again while the spool stores them; should the
spool not keep up, or not take them at all (a full disk), the oldest batch in memory
is dropped, and counted. Lines that come before the spool has had a turn (thousands in
one step of the event loop) all wait for it: they are not dropped for want of one.

Whenever everything received until a moment is durable (a delivery emptied memory, or
memory went to the spool with nothing else under way), that moment is noted in the
stats as `received_through`, saved with them: after a crash, the next start knows from
when on state changes may be missing (pipeline/backfill looks for them in the
recorder).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import contextlib
from dataclasses import dataclass
import math
from typing import Any

from homeassistant.core import State, callback
from homeassistant.util import dt as dt_util

from ..const import LOGGER
from ..influxdb.errors import InfluxError, InfluxUnreachableError
from ..storage.spool import Spool, SpoolError, TimeSpan, lines_span
from .health import WriteHealth
from .last_states import LastStates
from .stats import PipelineStats
from .writer import PointWriter

# Memory holds at most this many batches waiting; beyond them, the oldest are dropped.
MEMORY_CAP_BATCHES = 10
# Seconds between pings while InfluxDB cannot be reached. A ping is cheap for the
# server, unlike the write the backoff holds back (up to 5 minutes).
PROBE_INTERVAL = 10.0
# How long stopping may spend writing what waits, before leaving it to the next start.
STOP_WRITE_SECONDS = 10.0


@dataclass(slots=True)
class _Batch:
    """Lines taken from memory to be written, and the states they were made of."""

    lines: list[str]
    states: list[State | None]
    first: int
    """The number of its first line, counted from the first line added: its age."""
    copy: range | None = None
    """The ids of its copy in the spool, once its write lasted past a tick."""
    copying: asyncio.Task[None] | None = None
    """Its copy being stored: a write that ends meanwhile waits for it."""
    written: bool = False


class Batcher:
    """A batch goes out when it is full or when the flush interval has passed."""

    def __init__(
        self,
        writer: PointWriter,
        spool: Spool,
        *,
        stats: PipelineStats,
        last_states: LastStates,
        batch_size: int,
        flush_interval: float,
        on_failure: Callable[[InfluxError], None],
        on_recovery: Callable[[], None],
        on_dropped: Callable[[], None],
    ) -> None:
        """Batch for `writer`, keeping in `spool` what cannot be written now.

        `on_dropped` is called when memory drops points: they are counted in the
        stats only, which no spool transaction saves meanwhile.
        """
        self._writer = writer
        self._spool = spool
        self._stats = stats
        self._last_states = last_states
        self._batch_size = batch_size
        self.memory_cap = batch_size * MEMORY_CAP_BATCHES
        # What memory may hold: twice the cap while the spool stores, the cap if it
        # cannot (nothing will be taken from memory).
        self._memory_limit = 2 * self.memory_cap
        self._tick_interval = flush_interval / 2
        self._on_failure = on_failure
        self._on_recovery = on_recovery
        self._on_dropped = on_dropped
        # Lines waiting in memory, and the state each was made of.
        self._lines: list[str] = []
        self._states: list[State | None] = []
        # How many lines have left memory from its front (taken, spooled or dropped),
        # less those put back: the number of the first line in memory. Lines are
        # numbered in the order added, which tells a tick how old they are.
        self._left = 0
        self._wake = asyncio.Event()
        self.health = WriteHealth()
        self._delivery: asyncio.Task[InfluxError | None] | None = None
        self._in_flight: _Batch | None = None
        # Whether the delivery is taking memory: it then takes lines as they come.
        self._writing_memory = False
        # Written batches' states and copies, for _save_written.
        self._written_states: dict[str, State] = {}
        self._written_copies: list[range] = []
        # Whether a batch was written since the saving task last took them: the stats
        # are saved then, even for a batch of lines of the past only (no states).
        self._written_unsaved = False
        self._saving: asyncio.Task[None] | None = None
        # Spills go one at a time: a failed one puts its lines back in front of
        # memory, which must not hold newer lines taken by another meanwhile.
        self._spill_lock = asyncio.Lock()
        # Lines a spill took from memory and is storing.
        self._spilling = 0
        # How many spills took lines from memory: a delivery during which this grows
        # goes on to write them.
        self._spills = 0
        # Event-loop time of the next ping, while InfluxDB cannot be reached.
        self._probe_at = 0.0
        self.spool_error: SpoolError | None = None
        self._memory_dropping = False
        self._spool_dropping = False
        # The time of the state whose fingerprint was last saved, per entity.
        self._saved_at: dict[str, float] = {}
        # Spills and copies that run to their end although their caller was cancelled.
        self._unfinished: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Lines waiting in memory to be written or spooled."""
        return len(self._lines)

    def pending_span(self) -> TimeSpan | None:
        """Return the times of the lines in memory: what a stop may have to drop."""
        return lines_span(self._lines)

    @property
    def in_flight(self) -> int:
        """Lines out of memory, being stored or written, and in no spool yet."""
        batch = self._in_flight
        written = 0 if batch is None or batch.copy is not None else len(batch.lines)
        return self._spilling + written

    @callback
    def add(self, line: str, state: State | None) -> None:
        """Queue one line, made of `state`; in the event loop, per state change.

        `state` is None for a line of the past, which names no entity's last state.
        """
        lines = self._lines
        lines.append(line)
        self._states.append(state)
        count = len(lines)
        if count in (self._batch_size, self.memory_cap):
            self._wake.set()
        elif count > self._memory_limit and (
            self._unfinished or self.spool_error is not None
        ):
            # The spool is storing older lines (or cannot): it does not keep up.
            # Otherwise it has not had a turn since memory filled (a heartbeat or
            # Home Assistant's start adds thousands at once): it takes them all then.
            self._drop_oldest_batch()

    def _drop_oldest_batch(self) -> None:
        """Memory is full and the spool does not take it: the oldest batch goes."""
        dropped = min(self._batch_size, len(self._lines))
        self._stats.note_dropped(lines_span(self._lines[:dropped]))
        del self._lines[:dropped]
        del self._states[:dropped]
        self._left += dropped
        self._stats.points_dropped_memory_full += dropped
        self._on_dropped()
        if not self._memory_dropping:
            self._memory_dropping = True
            LOGGER.error(
                "Memory holds %d points and the spool does not take them (%s): the "
                "oldest are dropped",
                len(self._lines),
                self.spool_error or "it is slower than the state changes come",
            )
        self._wake.set()

    async def run(self) -> None:
        """Deliver, or keep memory durable, every half flush interval until cancelled."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self._tick_interval
        # Lines numbered below `aged` came before the previous tick: by the next one
        # they may be an interval old. `received`: those that came before this one.
        aged = received = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(next_tick):
                    await self._wake.wait()
            self._wake.clear()
            if (now := loop.time()) >= next_tick:
                aged, received = received, self._left + len(self._lines)
                next_tick = now + self._tick_interval
            await self._tick(aged)

    async def _tick(self, aged: int) -> None:
        if self._delivery is not None:
            # Still writing: what waits must not depend on how long that takes.
            await self._make_durable(aged)
            return
        now = asyncio.get_running_loop().time()
        retry_at = self.health.retry_at
        if retry_at is not None and now < retry_at:
            await self._spill()
            if self._probe_due(now):
                self._start_delivery(self._deliver_if_back())
            return
        if self._lines or self._spool.count:
            self._start_delivery(self._deliver())

    async def flush(self) -> InfluxError | None:
        """Write the spool, then memory, now, even during a backoff.

        Returns the error the delivery met; None if it wrote everything.
        """
        # The flush loop may start a delivery as the one awaited ends: await it too.
        while self._delivery is not None:
            await asyncio.wait([self._delivery])
        return await self._start_delivery(self._deliver())

    def _start_delivery(
        self, delivery: Coroutine[Any, Any, InfluxError | None]
    ) -> asyncio.Task[InfluxError | None]:
        task = self._delivery = asyncio.get_running_loop().create_task(
            delivery, name="ha_ingestor delivery"
        )
        task.add_done_callback(self._delivery_done)
        return task

    def _delivery_done(self, delivery: asyncio.Task[InfluxError | None]) -> None:
        if self._delivery is delivery:
            self._delivery = None

    async def _deliver(self) -> InfluxError | None:
        """Write the spool, then memory; on failure, spool memory and back off.

        Rewriting a point InfluxDB may already hold is harmless: it stores one point
        per series and timestamp.
        """
        try:
            while True:
                spills = self._spills
                # Lines a tick is moving to the spool: written once stored.
                await self._unfinished_ended()
                await self._copies_dropped()
                await self._write_spool()
                await self._write_memory()
                # A tick spills memory while the spool is written, or a write
                # outlasts it: those lines are in the spool now, not yet written.
                if self._spills == spills:
                    break
        except InfluxError as err:
            self.failed(err)
            await self._spill()
            return err
        # Memory is empty, and the spool was written: all received until now is durable.
        self._stats.received_through = dt_util.utcnow()
        return None

    def _probe_due(self, now: float) -> bool:
        """Whether to ping InfluxDB before the backoff ends.

        Only for unreachable servers: one that answered with an error (credentials,
        database, overload) answers pings all along.
        """
        if not isinstance(self.health.last_error, InfluxUnreachableError) or (
            now < self._probe_at
        ):
            return False
        self._probe_at = now + PROBE_INTERVAL
        return True

    async def _deliver_if_back(self) -> InfluxError | None:
        """Deliver before the backoff ends if InfluxDB answers a ping again."""
        if not await self._writer.server_answers():
            return self.health.last_error
        return await self._deliver()

    async def drain(self) -> None:
        """Leave nothing in memory: for unload and stop, once the flush loop has ended.

        Memory is made durable first (a delivery under way is given up, and what it
        was writing is stored too); then, while writes work, the spool is written for
        STOP_WRITE_SECONDS at most. What is left is replayed on the next start.
        """
        if (delivery := self._delivery) is not None:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery
        await self._unfinished_ended()
        await self._spill()
        if not self.health.failing:
            with contextlib.suppress(InfluxError, TimeoutError):
                async with asyncio.timeout(STOP_WRITE_SECONDS):
                    await self._copies_dropped()
                    # Memory is left only if the spool cannot take it: a last chance.
                    await self._write_spool()
                    await self._write_memory()
        await self._copies_dropped()

    async def _copies_dropped(self) -> None:
        """Wait until written batches' copies are dropped from the spool.

        A copy still there would be written again: harmless in InfluxDB, but counted
        twice, and a point it refuses set apart twice. Their last states are saved
        by the same task.
        """
        if self._saving is not None:
            # Not cancelled with the caller: a save halfway would leave the copies.
            await asyncio.wait([self._saving])

    async def _write_spool(self) -> None:
        while self._spool.count:
            try:
                points = await self._spool.oldest(self._batch_size)
            except SpoolError as err:
                self._spool_failed(err)
                return
            if not points:
                return
            await self._writer.write([line for _, line in points])
            self._written()
            try:
                await self._spool.remove_ids(range(points[0][0], points[-1][0] + 1))
            except SpoolError as err:
                # Those points will be written again, which is harmless.
                self._spool_failed(err)
                return

    async def _write_memory(self) -> None:
        self._writing_memory = True
        try:
            # Not while a spill stores older lines: should both fail, this batch
            # would go back to memory in front of them.
            while self._lines and not self._spilling:
                size = self._batch_size
                batch = _Batch(self._lines[:size], self._states[:size], self._left)
                del self._lines[:size]
                del self._states[:size]
                self._left += len(batch.lines)
                # Should the write last past a tick, the flush loop makes it durable.
                self._in_flight = batch
                try:
                    await self._writer.write(batch.lines)
                except BaseException:
                    if batch.copying is not None:
                        # Where its lines wait depends on whether the copy is stored.
                        await asyncio.wait([batch.copying])
                    if batch.copy is None:  # else it waits in the spool already
                        self._put_back(batch.lines, batch.states)
                    raise
                finally:
                    self._in_flight = None
                batch.written = True
                self._written()
                self._save_written(batch.states, batch.copy)
        finally:
            self._writing_memory = False

    def _save_written(self, states: list[State | None], copy: range | None) -> None:
        """Have a written batch's last states saved with the stats, and its copy dropped.

        By a task of its own, which takes what batches were written meanwhile in one
        transaction: the next write does not wait for it.
        """
        for state in states:
            if state is not None:  # None: a line of the past, no entity's last state
                self._written_states[state.entity_id] = state
        if copy is not None:
            self._written_copies.append(copy)
        self._written_unsaved = True
        if self._saving is None or self._saving.done():
            self._saving = asyncio.get_running_loop().create_task(
                self._saving_written(), name="ha_ingestor last states"
            )

    async def _saving_written(self) -> None:
        while self._written_unsaved:
            self._written_unsaved = False
            states, self._written_states = self._written_states, {}
            copies, self._written_copies = self._written_copies, []
            try:
                await self._spool.save_state(
                    await self._fingerprints(list(states.values())), save_stats=True
                )
            except SpoolError as err:
                # The points are written; a restart may write their states once more.
                self._spool_failed(err)
            else:
                self._spool_works()
            for ids in copies:
                try:
                    await self._spool.remove_ids(ids)
                except SpoolError as err:
                    # Written twice, then, which InfluxDB makes once.
                    self._spool_failed(err)

    async def _make_durable(self, aged: int) -> None:
        """Keep memory durable while a delivery runs, without doing its work twice.

        A delivery taking memory takes new lines as they come, unless the batch being
        written holds a line numbered below `aged` (memory holds newer ones only), or
        memory is full: then memory is spooled. A delivery replaying the spool (or
        pinging) leaves memory waiting: it is spooled at once. The batch being written
        is older than memory: its copy is stored first (memory waits if the spool
        refuses it), so that a kill between the two loses the newest lines only,
        never a batch before lines the spool keeps.
        """
        batch = self._in_flight
        slow = batch is not None and batch.first < aged
        if not (
            slow or not self._writing_memory or len(self._lines) >= self.memory_cap
        ):
            return
        await self._spill()

    async def _copy_in_flight(self) -> bool:
        """Store a copy of the batch being written, and of the next, should it end.

        A write may end while its copy is stored, and the delivery take the next
        batch from memory: that one is older than memory too. Returns False if the
        spool refused the copy of a batch still being written: memory, newer, must
        not be stored before it.
        """
        while (batch := self._in_flight) is not None and batch.copy is None:
            batch.copying = self._unstoppable(self._copy(batch))
            await self._to_its_end(batch.copying)
            if batch.copy is None and self._in_flight is batch:
                return False
        return True

    async def _copy(self, batch: _Batch) -> None:
        """Store a copy of the batch being written; it is dropped once written."""
        if (appended := await self._append(batch.lines, batch.states)) is None:
            return
        batch.copy = appended
        if batch.written:  # it ended while the copy was being stored
            self._save_written([], appended)

    async def _spill(self) -> None:
        """Move memory to the spool, after a copy of the batch being written (older).

        If the spool cannot take memory, it is kept in memory.
        """
        if self._lines or self._in_flight is not None:
            await self._to_its_end(self._unstoppable(self._move_to_spool()))

    async def _move_to_spool(self) -> None:
        async with self._spill_lock:
            await self._move_memory_to_spool()

    async def _move_memory_to_spool(self) -> None:
        # In this task, just before memory is taken: a batch the delivery took from
        # memory meanwhile is older than the lines taken here. Refused, it keeps
        # memory waiting behind it.
        if not await self._copy_in_flight():
            return
        if not self._lines:  # the spill before this one took them
            return
        taken_at = dt_util.utcnow()
        lines, states = self._lines, self._states
        self._lines, self._states = [], []
        self._left += len(lines)
        self._spilling += len(lines)
        self._spills += 1
        try:
            stored = await self._append(lines, states)
        finally:
            self._spilling -= len(lines)
        if stored is None:
            # Back in front of what came meanwhile, within the cap.
            self._put_back(lines, states)
            while len(self._lines) > self._memory_limit:
                self._drop_oldest_batch()
            return
        if self.health.failing:
            self.health.spooled += len(lines)
        # The only lines out of memory and the spool were the batch being written,
        # whose copy the spool holds, and no batch was taken meanwhile (it would
        # have waited for this spill): what was received until the lines were taken
        # is durable.
        self._stats.received_through = taken_at

    def _put_back(self, lines: list[str], states: list[State | None]) -> None:
        """Return lines taken from memory to its front, where they came from."""
        self._lines[:0] = lines
        self._states[:0] = states
        self._left -= len(lines)

    async def _append(
        self, lines: list[str], states: list[State | None]
    ) -> range | None:
        """Store lines with their states' fingerprints; their ids, None if it failed."""
        try:
            ids = await self._spool.append(
                lines,
                last_states=await self._fingerprints(states),
                save_stats=True,
            )
        except SpoolError as err:
            # Old points it dropped for room before failing are gone all the same.
            self._stats.count_spool_drops(self._spool)
            self._spool_failed(err)
            return None
        self._spool_works()
        dropping = self._stats.count_spool_drops(self._spool).points > 0
        if dropping and not self._spool_dropping:
            LOGGER.warning(
                "The spool is full (%d MB): the oldest points waiting are dropped to "
                "make room for new ones",
                self._spool.max_bytes >> 20,
            )
        self._spool_dropping = dropping
        return ids

    def _unstoppable(self, step: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `step` in a task of its own, which no caller's cancellation stops.

        Home Assistant cancels the flush loop as it stops, and `drain` cancels a
        delivery: a spill halfway (lines out of memory, not yet in the spool) would
        lose its lines, and a copy halfway (stored, its ids not yet known) would
        leave the batch in the spool twice. `drain` waits for such steps.
        """
        task = asyncio.get_running_loop().create_task(step)
        self._unfinished.add(task)
        task.add_done_callback(self._unfinished.discard)
        return task

    async def _unfinished_ended(self) -> None:
        """Wait until the spills and copies under way have ended."""
        if self._unfinished:
            await asyncio.wait(list(self._unfinished))

    @staticmethod
    async def _to_its_end(task: asyncio.Task[None]) -> None:
        """Wait for `task`; if cancelled meanwhile, still wait, then let that through."""
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task])
            raise

    async def _fingerprints(self, states: list[State | None]) -> dict[str, str]:
        """Digest each entity's last state of `states`, unless a newer one was saved.

        A batch whose write (or copy) ends after newer states of its entities were
        spooled must not put their older fingerprints back: a restart would then
        write the newer state again. Checked after the digests are made, right
        before the caller hands them to the spool, which commits in call order.
        """
        digests = await self._last_states.async_fingerprints(states)
        times = {
            state.entity_id: state.last_updated_timestamp
            for state in states
            if state is not None  # a line of the past: no entity's last state
        }
        saved = self._saved_at
        for entity_id in list(digests):
            if times[entity_id] < saved.get(entity_id, -math.inf):
                del digests[entity_id]
            else:
                saved[entity_id] = times[entity_id]
        return digests

    def _written(self) -> None:
        """Note a written batch: writes work, the backoff starts again from the first."""
        if (outage := self.health.succeeded()) is None:
            return
        LOGGER.info(
            "Writing to InfluxDB works again after %s; %d points waited in the spool "
            "meanwhile",
            outage.lasted,
            outage.spooled,
        )
        self._on_recovery()

    def failed(self, err: InfluxError) -> None:
        """Note that writing failed (or setup's test of the server): logged once."""
        now = asyncio.get_running_loop().time()
        if self.health.failed(err, now):
            LOGGER.warning(
                "Writing to InfluxDB failed, points wait in the spool until it "
                "works again: %s",
                err,
            )
        self._probe_at = now + PROBE_INTERVAL
        self._on_failure(err)

    def _spool_works(self) -> None:
        """Note that the spool stored something: whatever kept it from that is over."""
        if self.spool_error is not None:
            LOGGER.info("The spool can be written again")
            self.spool_error = None
            self._memory_limit = 2 * self.memory_cap
        self._memory_dropping = False

    def _spool_failed(self, err: SpoolError) -> None:
        if self.spool_error is None:
            LOGGER.error("The spool cannot be used, points wait in memory: %s", err)
        self.spool_error = err
        self._memory_limit = self.memory_cap
