"""Listen to Home Assistant's event bus and feed every state change into the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
from datetime import datetime, timedelta

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, EVENT_STATE_CHANGED
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    EventStateChangedData,
    HomeAssistant,
    callback,
)
from homeassistant.helpers.event import async_track_time_interval

from .batcher import Batcher
from .const import (
    CONF_BATCH_SIZE,
    CONF_FLUSH_INTERVAL,
    CONF_HEARTBEAT_MINUTES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    LOGGER,
)
from .filters import StateFilter
from .influx_client import InfluxAuthError, InfluxClient, InfluxError
from .last_states import LastStates
from .normalize import create_encoder, timestamp_us
from .registry_cache import RegistryCache
from .spool import Spool, SpoolError
from .writer import PointWriter


class Ingestor:
    """Owns the listener, the batcher and its flush loop for one config entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: InfluxClient,
        spool: Spool,
        last_states: LastStates,
    ) -> None:
        """Prepare the pipeline; nothing runs until async_start."""
        self._hass = hass
        self._entry = entry
        self.spool = spool
        self._last_states = last_states
        self._registry = RegistryCache(hass)
        self._keep = StateFilter(entry.options, self._registry)
        self.encoder = create_encoder(entry.options, self._registry)
        self.writer = PointWriter(client, self._async_points_refused)
        self.batcher = Batcher(
            self.writer,
            spool,
            # The options form's number selector gives floats.
            int(entry.options.get(CONF_BATCH_SIZE, DEFAULT_BATCH_SIZE)),
            entry.options.get(CONF_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL),
            on_failure=self._write_failed,
            on_recovery=self._write_recovered,
        )
        self._heartbeat_minutes = int(entry.options.get(CONF_HEARTBEAT_MINUTES, 0))
        self.state_changes_received = 0
        self._status_listeners: list[Callable[[], None]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._reauth_started = False
        self._stopped = False
        self._unsubscribers: list[Callable[[], None]] = []
        self._unsubscribe_final_write: Callable[[], None] | None = None
        self._flush_loop: asyncio.Task[None] | None = None

    @callback
    def async_start(self, earlier: list[Event[EventStateChangedData]]) -> None:
        """Take the state changes fired since setup began, then listen for more."""
        self._registry.async_start()
        self._keep.start()
        for event in earlier:
            self._async_state_changed(event)
        self._unsubscribers.append(
            self._hass.bus.async_listen(EVENT_STATE_CHANGED, self._async_state_changed)
        )
        # Background tasks are cancelled when Home Assistant stops; what is still in
        # memory is handled in the final-write stage, while the HTTP session is open.
        self._unsubscribe_final_write = self._hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_final_write
        )
        if self._heartbeat_minutes:
            self._unsubscribers.append(
                async_track_time_interval(
                    self._hass,
                    self._async_heartbeat,
                    timedelta(minutes=self._heartbeat_minutes),
                    name="ha_ingestor heartbeat",
                )
            )
        self._flush_loop = self._entry.async_create_background_task(
            self._hass, self.batcher.run(), "ha_ingestor flush loop"
        )

    @property
    def points_waiting(self) -> int:
        """Points not written yet: in the spool and in memory."""
        return self.spool.count + self.batcher.pending

    @callback
    def async_add_status_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` after each failed write attempt, and on recovery."""
        self._status_listeners.append(listener)

        @callback
        def remove() -> None:
            self._status_listeners.remove(listener)

        return remove

    def add_stop_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Await `hook` when the pipeline stops, once memory is written or spooled."""
        self._stop_hooks.append(hook)

    @callback
    def _notify_status(self) -> None:
        for listener in list(self._status_listeners):
            listener()

    @callback
    def _async_state_changed(self, event: Event[EventStateChangedData]) -> None:
        # The hot path: runs in the event loop for every state change in the house.
        self.state_changes_received += 1
        state = event.data["new_state"]
        if state is None or not self._keep(state):
            return
        old_state = event.data["old_state"]
        if old_state is None and self._last_states.unchanged_since_restart(state):
            return
        line = self.encoder(state, old_state, timestamp_us(event.time_fired_timestamp))
        if line is not None:
            self.batcher.add(line)
            self._last_states.written(state)

    @callback
    def _async_heartbeat(self, now: datetime) -> None:
        """Write every included entity's current state again, so graphs have no gaps."""
        time_us = timestamp_us(now.timestamp())
        for state in self._hass.states.async_all():
            if (
                self._keep(state)
                and (line := self.encoder(state, None, time_us)) is not None
            ):
                self.batcher.add(line)

    async def _async_points_refused(self, lines: list[str], reason: str) -> None:
        LOGGER.warning(
            "InfluxDB refused %d point(s), kept in quarantine: %s", len(lines), reason
        )
        try:
            await self.spool.quarantine(lines, reason)
        except SpoolError as err:
            LOGGER.error("Could not quarantine %s, they are lost: %s", lines, err)

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

    async def _async_final_write(self, _event: Event) -> None:
        self._unsubscribe_final_write = None  # a once-listener removes itself
        await self._async_shut_down()

    async def async_stop(self) -> None:
        """Stop listening and the loop; write or spool what is still in memory."""
        await self._async_shut_down()

    async def _async_shut_down(self) -> None:
        # Home Assistant's stop, then an unload (as tests do), shut down twice.
        if self._stopped:
            return
        self._stopped = True
        while self._unsubscribers:
            self._unsubscribers.pop()()
        if self._unsubscribe_final_write is not None:
            self._unsubscribe_final_write()
            self._unsubscribe_final_write = None
        self._keep.stop()
        self._registry.async_stop()
        if self._flush_loop is not None:
            self._flush_loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_loop
            self._flush_loop = None
        await self.batcher.drain()
        if self.batcher.pending:
            LOGGER.error(
                "Neither InfluxDB nor the spool could take %d points: they are lost",
                self.batcher.pending,
            )
        for hook in self._stop_hooks:
            await hook()
        await self._last_states.async_save()
        await self.spool.close()
