"""One config entry's pipeline: its stages built, started and stopped together.

A state change goes: listener (filters, last_states, the encoder of line_protocol) ->
batcher -> writer -> InfluxDB; while InfluxDB cannot be written, batcher -> spool, and
back to the writer once it can. This module wires the stages, runs the flush loop,
and stops them in order: nothing in memory is left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from ..const import (
    CONF_BATCH_SIZE,
    CONF_FLUSH_INTERVAL,
    CONF_HEARTBEAT_MINUTES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    LOGGER,
)
from ..influxdb.client import InfluxClient, ServerInfo
from ..influxdb.errors import InfluxAuthError, InfluxError
from ..line_protocol import create_encoder
from ..registry.cache import RegistryCache
from ..shutdown import StopOnce
from ..storage.spool import Spool, SpoolError, lines_span
from .batcher import Batcher
from .filters import StateFilter
from .last_states import LastStates
from .listener import StateChangeListener
from .stats import PipelineStats
from .writer import PointWriter

# How often the counters are saved when nothing else saves them (filtered changes).
SAVE_INTERVAL: Final = timedelta(minutes=5)
# Seconds from points dropped outside a spool transaction to the save of their count:
# drops come in runs (a burst on a full disk), saved together.
DROPS_SAVE_DELAY: Final = 1.0


class Pipeline:
    """Owns the listener, the batcher and its flush loop, and the stats of one entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        *,
        client: InfluxClient,
        spool: Spool,
        last_states: LastStates,
        stats: PipelineStats,
    ) -> None:
        """Wire the stages; nothing runs until async_start."""
        self._hass = hass
        self._entry = entry
        self.client = client
        self.spool = spool
        self.stats = stats
        # The totals of earlier runs, to tell this run's share apart.
        self.stats_at_start = replace(stats)
        # What the server said about itself; None until it has answered.
        self.server: ServerInfo | None = None
        self._registry = RegistryCache(hass)
        self._keep = StateFilter(entry.options, self._registry)
        self.writer = PointWriter(client, stats, self._async_points_refused)
        self.batcher = Batcher(
            self.writer,
            spool,
            stats=stats,
            last_states=last_states,
            # The options form's number selector gives floats.
            batch_size=int(entry.options.get(CONF_BATCH_SIZE, DEFAULT_BATCH_SIZE)),
            flush_interval=entry.options.get(
                CONF_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL
            ),
            on_failure=self._write_failed,
            on_recovery=self._write_recovered,
            on_dropped=self._save_drops_soon,
        )
        self._listener = StateChangeListener(
            self._keep,
            last_states,
            create_encoder(entry.options, self._registry, stats),
            self.batcher,
            stats,
        )
        self._heartbeat_minutes = int(entry.options.get(CONF_HEARTBEAT_MINUTES, 0))
        self._status_listeners: list[Callable[[], None]] = []
        # Awaited once stopped, before the spool closes: with whether nothing that was
        # in memory is left behind (pipeline/backfill saves its checkpoint then).
        self._stopped_listeners: list[Callable[[bool], Awaitable[None]]] = []
        self._reauth_started = False
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._flush_loop: asyncio.Task[None] | None = None
        # Saving the counts of points dropped outside a spool transaction; whether
        # one was dropped since that save began.
        self._saving_drops: asyncio.Task[None] | None = None
        self._drops_unsaved = False
        # Whether the last save of the counters failed: logged once per failing run.
        self._stats_save_failing = False
        self._stop_once = StopOnce(self._async_shut_down)

    @callback
    def async_start(self, earlier: list[Event[EventStateChangedData]]) -> None:
        """Take the state changes fired since setup began, then listen for more.

        Home Assistant sets most entities up before this entry, so their first states
        since a start fired before anything listened: each entity's state from before
        setup began (the old state of its first change since, or its state now) is
        compared with the last one written before the stop, or written if its entity
        was never written and it was set after this entry last stopped listening.
        """
        self._registry.async_start()
        self._keep.start()
        hass = self._hass
        before: dict[str, State | None] = {
            state.entity_id: state for state in hass.states.async_all()
        }
        for event in reversed(earlier):
            before[event.data["entity_id"]] = event.data["old_state"]
        self._listener.async_states_before_start(
            (state for state in before.values() if state is not None),
            self.stats_at_start.received_through,
        )
        state_changed = self._listener.async_state_changed
        for event in earlier:
            state_changed(event)
        self._unsubscribers.append(
            hass.bus.async_listen(EVENT_STATE_CHANGED, state_changed)
        )
        # Background tasks are cancelled when Home Assistant stops; what is still in
        # memory is handled in the final-write stage, while the HTTP session is open.
        self._stop_once.async_stop_at_final_write(hass)
        if self._heartbeat_minutes:
            self._unsubscribers.append(
                async_track_time_interval(
                    hass,
                    # A partial keeps it a callback, run in the event loop: Home
                    # Assistant runs a plain function (a lambda) in its executor.
                    partial(self._listener.async_heartbeat, hass),
                    timedelta(minutes=self._heartbeat_minutes),
                    name="ha_ingestor heartbeat",
                )
            )
        self._unsubscribers.append(
            async_track_time_interval(
                hass,
                self._async_save_stats_now,
                SAVE_INTERVAL,
                name="ha_ingestor save counters",
                cancel_on_shutdown=True,
            )
        )
        self._flush_loop = self._entry.async_create_background_task(
            hass, self.batcher.run(), "ha_ingestor flush loop"
        )

    @property
    def connected(self) -> bool:
        """Whether InfluxDB takes writes: it answered, and the last write did not fail."""
        return not self.batcher.health.failing and (
            self.server is not None or self.writer.has_written
        )

    @property
    def points_waiting(self) -> int:
        """Points not written yet: in the spool, in memory, and on their way."""
        batcher = self.batcher
        return self.spool.count + batcher.pending + batcher.in_flight

    @callback
    def async_add_status_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` when writes fail, work again, or the server's version is read."""
        self._status_listeners.append(listener)

        @callback
        def remove() -> None:
            self._status_listeners.remove(listener)

        return remove

    @callback
    def async_add_stopped_listener(
        self, listener: Callable[[bool], Awaitable[None]]
    ) -> None:
        """Await `listener` once stopping has stored what was in memory, or failed to.

        It is told whether everything added before the stop is durable.
        """
        self._stopped_listeners.append(listener)

    async def async_save_stats(self) -> None:
        """Save the totals now (after the user acknowledged dropped points, say).

        They are saved with each step that makes points durable anyway; this is for
        what changes without one. A failure is logged once until a save works again
        (drops ask for one every second): the next step saves them.
        """
        try:
            await self.spool.save_state({}, save_stats=True)
        except SpoolError as err:
            log = LOGGER.debug if self._stats_save_failing else LOGGER.warning
            self._stats_save_failing = True
            log("Could not save the counters: %s", err)
        else:
            self._stats_save_failing = False

    @callback
    def _async_save_stats_now(self, _now: datetime) -> None:
        # Between restarts too, so that a crash loses a few minutes of counts at most.
        self._entry.async_create_background_task(
            self._hass, self.async_save_stats(), "ha_ingestor save counters"
        )

    @callback
    def _save_drops_soon(self) -> None:
        """Have the counts of points just dropped saved, with any that follow soon.

        A spool transaction saves the drops it makes; these (memory full, a
        quarantine refused) would else wait for the next save, which a kill loses.
        """
        self._drops_unsaved = True
        if self._saving_drops is None:
            self._saving_drops = self._entry.async_create_background_task(
                self._hass, self._save_drops(), "ha_ingestor save drops"
            )

    async def _save_drops(self) -> None:
        try:
            while self._drops_unsaved:
                await asyncio.sleep(DROPS_SAVE_DELAY)
                self._drops_unsaved = False
                await self.async_save_stats()
        finally:
            self._saving_drops = None

    @callback
    def _notify_status(self) -> None:
        for listener in list(self._status_listeners):
            listener()

    async def _async_points_refused(self, lines: list[str], reason: str) -> None:
        LOGGER.warning(
            "InfluxDB refused %d point(s), kept in quarantine: %s", len(lines), reason
        )
        try:
            await self.spool.quarantine(lines, reason)
        except SpoolError as err:
            self.stats.points_dropped_unquarantined += len(lines)
            self.stats.note_dropped(lines_span(lines))
            self._save_drops_soon()
            LOGGER.error("Could not quarantine %s, they are lost: %s", lines, err)
        finally:
            # The quarantine takes room in the spool: its oldest may have made way.
            self.stats.count_spool_drops(self.spool)

    @callback
    def _write_failed(self, err: InfluxError) -> None:
        if isinstance(err, InfluxAuthError) and not self._reauth_started:
            # Points keep waiting in the spool until the user gives new credentials.
            self._reauth_started = True
            self._entry.async_start_reauth(self._hass)
        self._notify_status()

    @callback
    def _write_recovered(self) -> None:
        self._reauth_started = False
        self._notify_status()
        # The server may be a new one, or a new version of it.
        self._entry.async_create_background_task(
            self._hass, self._async_refresh_server(), "ha_ingestor server version"
        )

    async def _async_refresh_server(self) -> None:
        try:
            self.server = await self.client.ping()
        except InfluxError as err:
            LOGGER.debug(
                "InfluxDB at %s did not say its version: %s", self._entry.title, err
            )
            return
        self._notify_status()

    async def async_stop(self) -> None:
        """Stop listening and the loop; write or spool what is still in memory."""
        await self._stop_once()

    async def _async_shut_down(self) -> None:
        """Stop each part, whatever the part before it raised: an unload always ends."""
        stopped_listening_at = dt_util.utcnow()
        while self._unsubscribers:
            self._unsubscribers.pop()()
        self._keep.stop()
        self._registry.async_stop()
        if self._flush_loop is not None:
            self._flush_loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_loop
            self._flush_loop = None
        batcher = self.batcher
        try:
            await batcher.drain()
        except Exception:  # noqa: BLE001 - the parts below still stop: an unload ends
            LOGGER.exception("Stopping: the points in memory could not be stored")
        if lost := batcher.pending:
            self.stats.points_dropped_at_stop += lost
            self.stats.note_dropped(batcher.pending_span())
            LOGGER.error(
                "Neither InfluxDB nor the spool could take %d points: they are lost",
                lost,
            )
        if not batcher.in_flight:
            # Everything received until the listener was removed is durable, or
            # counted as dropped with its times, whose repair issue writes them
            # again: the next start must not find that time a gap too.
            self.stats.received_through = stopped_listening_at
        for listener in self._stopped_listeners:
            try:
                await listener(not lost)
            except Exception:  # noqa: BLE001 - the spool still closes: an unload ends
                LOGGER.exception("Stopping: a listener failed")
        if (saving := self._saving_drops) is not None:
            # The save below takes its drops too; one under way ends first.
            saving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saving
        await self.async_save_stats()
        await self.spool.close()
