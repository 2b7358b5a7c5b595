"""Backfill: write the history the recorder already has, as live ingestion would have.

A backfill reads the recorder's `states` in chunks, oldest first, in the recorder's
executor (pipeline/history), and hands each state to the same stages a live state
change goes through: the entry's filters (pipeline/filters), the preset's encoder
(line_protocol), with the state's own time, then the batcher, and from there the spool,
the writer and the quarantine. So a backfilled point is the point live ingestion would
have written for that state (docs/schema.md says where the recorder keeps less).

Live state changes go first: the backfill hands points on only while less than
BACKLOG_BATCHES batches wait in memory and the spool together, never while InfluxDB
cannot be written, and at most `backfill_pace` points per second, in slices small
enough not to hold the event loop (SLICE_SECONDS of pace each). Its lines come without
a state (batcher.add), so they never become an entity's last state.

Every BARRIER_SECONDS, the backfill makes what it handed on durable (a flush: written,
or in the spool), then saves where it stands in `.storage` (pipeline/backfill_state).
When the entry stops, the position of the last point handed on is saved once the
pipeline has stored everything. A restart continues from there: nothing is lost, and
nothing is handed on twice unless Home Assistant was killed between two checkpoints;
then InfluxDB keeps the same point once (same series, same timestamp).

At each start, the backfill also looks for a gap: state changes the recorder holds
that the entry never received (it was disabled, not running, or stopped without its
final write). issues.py raises a repair issue for it; its fix backfills that window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
import time
from typing import TYPE_CHECKING, Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CoreState, HomeAssistant, State, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.recorder import DATA_INSTANCE, get_instance
from homeassistant.util import dt as dt_util
from sqlalchemy.exc import SQLAlchemyError

from ..const import (
    CONF_BACKFILL_PACE,
    CONF_BATCH_SIZE,
    CONF_PRESET,
    DEFAULT_BACKFILL_PACE,
    DEFAULT_BATCH_SIZE,
    DOMAIN,
    LOGGER,
    PRESET_RICH,
)
from ..line_protocol import create_encoder
from ..line_protocol.encoder import Encoder, timestamp_us
from ..registry.cache import RegistryCache
from ..storage.spool import TimeSpan
from .backfill_state import (
    BackfillJob,
    BackfillSource,
    BackfillState,
    BackfillStatus,
    BackfillStore,
    HistoryGap,
)
from .filters import StateFilter
from .history import (
    Chunk,
    Position,
    ReadMemo,
    Window,
    read_chunk,
    read_count,
    read_entity_counts,
    read_metadata_ids,
    read_oldest_time,
    read_runs,
    row_position,
    to_rows,
    uncovered_seconds,
)

if TYPE_CHECKING:
    from homeassistant.components.recorder.core import Recorder

    from .pipeline import Pipeline

# A slice of points is handed on at once; it holds this much of the pace (0.02 s of
# 1,000 points/s: 20 points), within SLICE_POINTS.
SLICE_SECONDS: Final = 0.02
SLICE_POINTS: Final = (10, 1000)
# Rows per read: this much of the pace, within CHUNK_ROWS. A read holds one thread of
# the recorder's executor for one query, and the GIL while it fetches the rows.
CHUNK_SECONDS: Final = 0.1
CHUNK_ROWS: Final = (100, 2000)
# Points handed on only while fewer than this many batches wait (memory and spool).
BACKLOG_BATCHES: Final = 2
# How often a waiting backfill looks again whether it may go on.
WAIT_SECONDS: Final = 0.05
# How often what was handed on is made durable and the position saved.
BARRIER_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """A backfill as the entity, the diagnostics and the actions show it."""

    status: BackfillStatus
    source: BackfillSource
    start: datetime | None
    """The first window's start; None: the oldest state change the recorder had."""
    end: datetime
    """The last window's end."""
    reached: datetime | None
    """The time of the last state change read."""
    state_changes: int
    read: int
    written: int
    skipped: int
    waiting: bool
    """Paused: InfluxDB cannot be written, or live points are waiting."""
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    longest_read_ms: float | None
    """The longest a read held the recorder's database, in this run of Home Assistant."""

    @property
    def percent(self) -> float:
        """How much of the state changes was read, 0 to 100."""
        if self.state_changes <= 0:
            return 100.0 if self.status is BackfillStatus.DONE else 0.0
        return min(100.0, round(100 * self.read / self.state_changes, 1))


@dataclass(frozen=True, slots=True)
class HistoryEstimate:
    """What the recorder holds before a moment, of the entities an entry writes."""

    days: int
    state_changes: int


class BackfillError(ServiceValidationError):
    """A backfill cannot start, or stop; the translation key says why."""


def _clamp(value: float, limits: tuple[int, int]) -> int:
    return int(min(max(value, limits[0]), limits[1]))


def _recorder_loaded(hass: HomeAssistant) -> bool:
    return DATA_INSTANCE in hass.data


async def async_recorder(hass: HomeAssistant) -> Recorder | None:
    """Return the recorder once its database is ready; None if there is none."""
    if not _recorder_loaded(hass):
        return None
    instance = get_instance(hass)
    if not await instance.async_db_ready:
        return None
    return instance


def _written_by(
    hass: HomeAssistant, options: Mapping[str, Any], registry: RegistryCache
) -> Callable[[str], bool]:
    """Whether the entry writes an entity, by its filters and its current attributes.

    For counts only: a state's own text (unknown, unavailable) is not looked at.
    """
    keep = StateFilter(options, registry)

    def written(entity_id: str) -> bool:
        current = hass.states.get(entity_id)
        return keep(
            State(
                entity_id,
                "",
                None if current is None else current.attributes,
                validate_entity_id=False,
            )
        )

    return written


async def async_estimate_history(
    hass: HomeAssistant, options: Mapping[str, Any], end: datetime
) -> HistoryEstimate | None:
    """Say how much history before `end` the recorder holds for an entry's options.

    None when there is no recorder, or it holds nothing of those entities.
    """
    if (recorder := await async_recorder(hass)) is None:
        return None
    window = Window(None, end.timestamp())
    try:
        counts = await recorder.async_add_executor_job(read_entity_counts, hass, window)
        oldest = await recorder.async_add_executor_job(read_oldest_time, hass)
    except SQLAlchemyError as err:
        # The form then offers no history: what was typed in the forms is kept.
        LOGGER.warning(
            "The recorder's database could not be read to count its history: %s", err
        )
        return None
    written = _written_by(hass, options, RegistryCache(hass))
    state_changes = sum(
        count for entity_id, count in counts.items() if written(entity_id)
    )
    if not state_changes or oldest is None:
        return None
    seconds = max(0.0, end.timestamp() - oldest)
    return HistoryEstimate(max(1, round(seconds / 86400)), state_changes)


class Backfill:
    """The entry's backfill: at most one at a time, resumed after a restart."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        pipeline: Pipeline,
        *,
        began_at: datetime,
    ) -> None:
        """Backfill into `pipeline`; `began_at` is when this run began receiving."""
        self._hass = hass
        self._entry = entry
        self._pipeline = pipeline
        self._store = BackfillStore(hass, entry.entry_id)
        self._state = BackfillState()
        options = entry.options
        self._pace = int(options.get(CONF_BACKFILL_PACE, DEFAULT_BACKFILL_PACE))
        self._slice = _clamp(self._pace * SLICE_SECONDS, SLICE_POINTS)
        self._chunk_rows = _clamp(self._pace * CHUNK_SECONDS, CHUNK_ROWS)
        self._backlog = BACKLOG_BATCHES * int(
            options.get(CONF_BATCH_SIZE, DEFAULT_BATCH_SIZE)
        )
        self._began_at = began_at
        # Received during Home Assistant's start: the start's own state changes, of
        # integrations set up before this one, are no gap.
        self._during_start = hass.state is not CoreState.running
        # Looks for a gap and resumes (async_start); reads and hands on (one job).
        self._begin: asyncio.Task[None] | None = None
        self._run: asyncio.Task[None] | None = None
        # Held while a job is made and started: one at a time.
        self._starting = asyncio.Lock()
        self._requested = False
        self._listeners: list[Callable[[], None]] = []
        self.waiting = False
        self.longest_read: float | None = None
        # Event-loop time before which the next slice may not go (the pace).
        self._next_at = 0.0

    async def async_load(self) -> None:
        """Read the saved state; note when the entry first received a state change."""
        state = self._state = await self._store.async_load()
        if state.first_received is None:
            # An entry that ran before this version received its first one when it
            # was added; a new one, now.
            first = (
                self._began_at
                if self._pipeline.stats_at_start.state_changes_received == 0
                else self._entry.created_at
            )
            state.first_received = first.timestamp()
            await self._store.async_save(state)

    @property
    def first_received(self) -> datetime:
        """When the entry received its first state change: a backfill's default end."""
        first = self._state.first_received
        return self._began_at if first is None else dt_util.utc_from_timestamp(first)

    @property
    def gaps(self) -> tuple[HistoryGap, ...]:
        """The gaps found and not filled yet."""
        return tuple(self._state.gaps)

    @property
    def history_written(self) -> bool:
        """Whether a backfill wrote all the recorder held before the first state change."""
        job = self._state.job
        return (
            job is not None
            and job.status is BackfillStatus.DONE
            and job.entity_ids is None
            and bool(job.windows)
            and job.windows[0].start is None
            and job.windows[-1].end >= self.first_received.timestamp()
        )

    @property
    def running(self) -> bool:
        """Whether a backfill is under way (or waits to continue)."""
        job = self._state.job
        return job is not None and job.status is BackfillStatus.RUNNING

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` when a backfill starts or ends, or a gap is found or filled."""
        self._listeners.append(listener)

        @callback
        def remove() -> None:
            self._listeners.remove(listener)

        return remove

    @callback
    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    @callback
    def progress(self) -> BackfillProgress | None:
        """Return the backfill under way or last run; None if there was none."""
        if (job := self._state.job) is None:
            return None
        windows = job.windows
        first = windows[0].start if windows else None
        return BackfillProgress(
            status=job.status,
            source=job.source,
            start=None if first is None else dt_util.utc_from_timestamp(first),
            end=dt_util.utc_from_timestamp(windows[-1].end if windows else 0),
            reached=job.reached,
            state_changes=job.state_changes,
            read=job.read,
            written=job.written,
            skipped=job.skipped,
            waiting=self.waiting and job.status is BackfillStatus.RUNNING,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
            longest_read_ms=None
            if self.longest_read is None
            else round(self.longest_read * 1000, 1),
        )

    @callback
    def async_request_default(self) -> None:
        """Backfill everything older than the first state change, once started."""
        self._requested = True

    @callback
    def async_start(self) -> None:
        """Look for a gap, then continue the backfill under way or start one asked for.

        In a task of the entry's: the recorder may not be ready yet.
        """
        self._begin = self._entry.async_create_background_task(
            self._hass, self._async_begin(), "ha_ingestor backfill start"
        )

    async def _async_begin(self) -> None:
        if await async_recorder(self._hass) is None:
            if self.running or self._requested:
                LOGGER.warning(
                    "The recorder is not running: the backfill of %s goes on at a"
                    " start with the recorder",
                    self._entry.title,
                )
            return
        try:
            await self._async_find_gap()
        except SQLAlchemyError as err:
            # A backfill under way still goes on, and the next start looks again.
            LOGGER.error(
                "%s could not look for state changes it missed: the recorder's"
                " database could not be read: %s",
                self._entry.title,
                err,
            )
        async with self._starting:
            job = self._state.job
            if self._run is not None:
                return  # started by an action meanwhile
            if job is not None and job.status is BackfillStatus.RUNNING:
                LOGGER.info(
                    "Backfill of %s continues from %s",
                    self._entry.title,
                    job.reached or "its start",
                )
                self._start_run(job)
            elif self._requested:
                self._requested = False
                try:
                    job = await self._async_new_job(
                        [Window(None, self.first_received.timestamp())],
                        None,
                        BackfillSource.FLOW,
                    )
                except BackfillError as err:
                    LOGGER.error(
                        "The history backfill asked for in the options of %s could"
                        " not start: %s. Ask for it again there, or with the action"
                        " ha_ingestor.backfill",
                        self._entry.title,
                        err,
                    )
                    return
                self._start_run(job)

    def _start_run(self, job: BackfillJob) -> None:
        self._run = self._entry.async_create_background_task(
            self._hass, self._async_run(job), "ha_ingestor backfill"
        )

    async def async_backfill(
        self,
        windows: Sequence[Window],
        entity_ids: Sequence[str] | None,
        source: BackfillSource,
    ) -> BackfillProgress:
        """Start a backfill of `windows` now; raise BackfillError if it cannot.

        A backfill under way (or waiting to continue after a restart) comes first.
        """
        async with self._starting:
            if self.running:
                raise BackfillError(
                    translation_domain=DOMAIN, translation_key="backfill_running"
                )
            if await async_recorder(self._hass) is None:
                raise BackfillError(
                    translation_domain=DOMAIN, translation_key="backfill_no_recorder"
                )
            if source is BackfillSource.GAP:
                self._state.gaps = []
            job = await self._async_new_job(windows, entity_ids, source)
            self._start_run(job)
        progress = self.progress()
        assert progress is not None  # noqa: S101 - the job was just made
        return progress

    async def async_fill_gaps(self) -> BackfillProgress:
        """Backfill exactly the gaps found, in one backfill."""
        return await self.async_backfill(
            [gap.window for gap in self._state.gaps], None, BackfillSource.GAP
        )

    async def async_fill_dropped(self, span: TimeSpan) -> BackfillProgress | None:
        """Backfill the time of dropped points; None without a recorder to read."""
        if await async_recorder(self._hass) is None:
            return None
        oldest, newest = span
        # A line's microseconds are rounded from the recorder's float seconds: either
        # way. A millisecond more on each side may write a point again: stored once.
        window = Window(oldest.timestamp() - 0.001, newest.timestamp() + 0.001)
        return await self.async_backfill([window], None, BackfillSource.DROPPED)

    async def _async_new_job(
        self,
        windows: Sequence[Window],
        entity_ids: Sequence[str] | None,
        source: BackfillSource,
    ) -> BackfillJob:
        """Count what the windows hold, save the new job, and say so."""
        recorder = get_instance(self._hass)
        metadata_ids = None
        state_changes = 0
        try:
            if entity_ids is not None:
                metadata_ids = await recorder.async_add_executor_job(
                    read_metadata_ids, self._hass, list(entity_ids)
                )
            for window in windows:
                state_changes += await recorder.async_add_executor_job(
                    read_count, self._hass, window, metadata_ids
                )
        except SQLAlchemyError as err:
            raise BackfillError(
                translation_domain=DOMAIN,
                translation_key="backfill_recorder_unreadable",
                translation_placeholders={"error": str(err)},
            ) from err
        job = BackfillJob(
            windows=list(windows),
            entity_ids=None if entity_ids is None else list(entity_ids),
            source=source,
            started_at=dt_util.utcnow(),
            state_changes=state_changes,
        )
        self._state.job = job
        await self._store.async_save(self._state)
        start = windows[0].start if windows else None
        LOGGER.info(
            "Backfill of %s started: %d state changes the recorder holds from %s to"
            " %s, at up to %d points/s",
            self._entry.title,
            state_changes,
            "its oldest" if start is None else dt_util.utc_from_timestamp(start),
            dt_util.utc_from_timestamp(windows[-1].end) if windows else "-",
            self._pace,
        )
        self._notify()
        return job

    async def _async_run(self, job: BackfillJob) -> None:
        """Read every window and hand its states on; save where it stands as it goes."""
        registry = RegistryCache(self._hass)
        registry.async_start()
        options = self._entry.options
        keep = StateFilter(options, registry)
        keep.start()
        encode = create_encoder(options, registry, self._pipeline.stats)
        started = time.monotonic()
        try:
            await self._async_read_windows(job, keep, encode)
            await self._async_checkpoint(job)
        except SQLAlchemyError as err:
            self._failed(job, err)
            LOGGER.error(
                "Backfill of %s stopped: the recorder's database could not be read: %s",
                self._entry.title,
                err,
            )
        except Exception as err:  # noqa: BLE001 - logged with its traceback
            # Shown as failed, not left running for ever: that would hold up every
            # later backfill, and the entry's unload.
            self._failed(job, err)
            LOGGER.exception("Backfill of %s stopped by an error", self._entry.title)
        else:
            job.status = BackfillStatus.DONE
            job.finished_at = dt_util.utcnow()
            LOGGER.info(
                "Backfill of %s done in %.0f s: %d state changes read, %d points"
                " written, %d not (filtered out, or no state change); a read held the"
                " recorder's database %.0f ms at most",
                self._entry.title,
                time.monotonic() - started,
                job.read,
                job.written,
                job.skipped,
                (self.longest_read or 0) * 1000,
            )
        finally:
            keep.stop()
            registry.async_stop()
        if self._run is asyncio.current_task():
            self._run = None
        await self._store.async_save(self._state)
        self._notify()

    @staticmethod
    def _failed(job: BackfillJob, err: Exception) -> None:
        job.status = BackfillStatus.FAILED
        job.error = str(err) or type(err).__name__
        job.finished_at = dt_util.utcnow()

    async def _async_read_windows(
        self, job: BackfillJob, keep: StateFilter, encode: Encoder
    ) -> None:
        recorder = get_instance(self._hass)
        metadata_ids = None
        if job.entity_ids is not None:
            metadata_ids = await recorder.async_add_executor_job(
                read_metadata_ids, self._hass, job.entity_ids
            )
        memo = ReadMemo()
        checkpoint_at = time.monotonic() + BARRIER_SECONDS
        while job.window_index < len(job.windows):
            window = job.windows[job.window_index]

            def read(
                after: Position | None, window: Window = window
            ) -> asyncio.Future[Chunk]:
                return recorder.async_add_executor_job(
                    partial(
                        read_chunk,
                        self._hass,
                        window=window,
                        after=after,
                        metadata_ids=metadata_ids,
                        limit=self._chunk_rows,
                    )
                )

            reading = read(job.after)
            try:
                while True:
                    chunk = await reading
                    if self.longest_read is None or chunk.seconds > self.longest_read:
                        self.longest_read = chunk.seconds
                    if not chunk.last:
                        # The next chunk is read while this one is handed on.
                        reading = read(chunk.last_position)
                    await self._async_hand_on(chunk.rows, memo, job, keep, encode)
                    if time.monotonic() >= checkpoint_at:
                        await self._async_checkpoint(job)
                        checkpoint_at = time.monotonic() + BARRIER_SECONDS
                    if chunk.last:
                        break
            finally:
                reading.cancel()
            job.window_index += 1
            job.after = None

    async def _async_hand_on(
        self,
        rows: Sequence[Sequence[Any]],
        memo: ReadMemo,
        job: BackfillJob,
        keep: StateFilter,
        encode: Encoder,
    ) -> None:
        """Make states of `rows`, filter, encode and add them: a slice at a time, paced."""
        batcher = self._pipeline.batcher
        add = batcher.add
        loop = asyncio.get_running_loop()
        size = self._slice
        change = self._entry.options.get(CONF_PRESET) == PRESET_RICH
        for begin in range(0, len(rows), size):
            await self._async_room()
            # No await from here to the end of the slice: the position always names
            # the last row handed on.
            written = 0
            part = rows[begin : begin + size]
            for state, old_state in to_rows(part, memo, change=change):
                if (
                    state is not None
                    and keep(state)
                    and (
                        line := encode(
                            state, old_state, timestamp_us(state.last_updated_timestamp)
                        )
                    )
                    is not None
                ):
                    add(line, None)
                    written += 1
            job.after = row_position(part[-1])
            count = len(part)
            job.read += count
            job.written += written
            job.skipped += count - written
            # The pace: the next slice no sooner than this one's share of a second.
            self._next_at = max(self._next_at, loop.time()) + count / self._pace

    async def _async_room(self) -> None:
        """Wait until the pace, InfluxDB and the points waiting let a slice go."""
        pipeline = self._pipeline
        batcher, spool = pipeline.batcher, pipeline.spool
        loop = asyncio.get_running_loop()
        while (
            batcher.health.failing
            or batcher.spool_error is not None
            or batcher.pending + spool.count >= self._backlog
        ):
            self.waiting = True
            await asyncio.sleep(WAIT_SECONDS)
        self.waiting = False
        # At least one turn of the loop between slices.
        await asyncio.sleep(max(0.0, self._next_at - loop.time()))

    async def _async_checkpoint(self, job: BackfillJob) -> None:
        """Make what was handed on durable, then save where the backfill stands.

        Nothing is handed on meanwhile: the job names the last row handed on.
        """
        batcher = self._pipeline.batcher
        error = await batcher.flush()
        if error is not None and batcher.spool_error is not None:
            # Neither written nor stored: the last checkpoint stays.
            return
        await self._store.async_save(self._state)

    async def async_cancel(self) -> BackfillProgress | None:
        """Stop the backfill under way; what it handed on is written."""
        job = self._state.job
        if job is None or job.status is not BackfillStatus.RUNNING:
            raise BackfillError(
                translation_domain=DOMAIN, translation_key="backfill_not_running"
            )
        await self._async_stop(self._run)
        self._run = None
        job.status = BackfillStatus.CANCELLED
        job.finished_at = dt_util.utcnow()
        await self._store.async_save(self._state)
        LOGGER.info(
            "Backfill of %s cancelled: %d of %d state changes read, %d points written",
            self._entry.title,
            job.read,
            job.state_changes,
            job.written,
        )
        self._notify()
        return self.progress()

    @staticmethod
    async def _async_stop(task: asyncio.Task[None] | None) -> None:
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Ours, unless the caller itself is being cancelled.
            if (current := asyncio.current_task()) is not None and current.cancelling():
                raise

    async def async_stop(self) -> None:
        """Stop looking and reading: the entry unloads or Home Assistant stops."""
        begin, run = self._begin, self._run
        self._begin = self._run = None
        await self._async_stop(begin)
        await self._async_stop(run)

    async def async_pipeline_stopped(self, drained: bool) -> None:
        """Save where the backfill stands, if what it handed on was stored."""
        await self.async_stop()
        job = self._state.job
        if drained and job is not None and job.status is BackfillStatus.RUNNING:
            await self._store.async_save(self._state)

    async def async_remove(self) -> None:
        """Delete the saved state, with the entry."""
        await self._store.async_remove()

    async def _async_find_gap(self) -> None:
        """Find what the recorder holds that the entry never received, since last run."""
        through = self._pipeline.stats_at_start.received_through
        if through is None:
            return
        recorder = get_instance(self._hass)
        end = self._began_at
        if not self._during_start:
            # What was recorded just before is committed within the commit interval.
            await asyncio.sleep(recorder.commit_interval)
        else:
            # The states set while Home Assistant starts, before this entry, are not
            # a gap: the recorder's run began then.
            end = min(end, recorder.recorder_runs_manager.recording_start)
        if end <= through:
            return
        window = Window(through.timestamp(), end.timestamp())
        counts = await recorder.async_add_executor_job(
            read_entity_counts, self._hass, window
        )
        written = _written_by(
            self._hass, self._entry.options, RegistryCache(self._hass)
        )
        state_changes = sum(
            count for entity_id, count in counts.items() if written(entity_id)
        )
        if not state_changes:
            return
        runs = await recorder.async_add_executor_job(read_runs, self._hass, window)
        gap = HistoryGap(
            window.start or 0.0,
            window.end,
            state_changes,
            uncovered_seconds(window, runs),
        )
        LOGGER.warning(
            "%s received no state changes from %s to %s; the recorder holds %d of"
            " them: see the repair issue to write them",
            self._entry.title,
            dt_util.utc_from_timestamp(gap.start),
            dt_util.utc_from_timestamp(gap.end),
            state_changes,
        )
        self._state.gaps.append(gap)
        await self._store.async_save(self._state)
        self._notify()
