"""Listen to Home Assistant's event bus and feed every state change into the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback

from .batcher import Batcher
from .const import (
    CONF_BATCH_SIZE,
    CONF_FLUSH_INTERVAL,
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    LOGGER,
)
from .filters import StateFilter
from .influx_client import InfluxClient
from .normalize import state_to_line, timestamp_us
from .writer import PointWriter


class Ingestor:
    """Owns the listener, the batcher and its flush loop for one config entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: InfluxClient,
    ) -> None:
        """Prepare the pipeline; nothing runs until async_start."""
        self._hass = hass
        self._entry = entry
        self._keep = StateFilter(entry.options)
        self.writer = PointWriter(client, self._async_points_refused)
        self.batcher = Batcher(
            self.writer,
            # The options form's number selector gives floats.
            int(entry.options.get(CONF_BATCH_SIZE, DEFAULT_BATCH_SIZE)),
            entry.options.get(CONF_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL),
        )
        self._unsubscribe_state_changed: Callable[[], None] | None = None
        self._unsubscribe_final_write: Callable[[], None] | None = None
        self._flush_loop: asyncio.Task[None] | None = None

    @callback
    def async_start(self) -> None:
        """Subscribe to state changes and start the flush loop."""
        self._unsubscribe_state_changed = self._hass.bus.async_listen(
            EVENT_STATE_CHANGED, self._async_state_changed
        )
        # Background tasks are cancelled when Home Assistant stops; what is still in
        # memory is written in the final-write stage, while the HTTP session is open.
        self._unsubscribe_final_write = self._hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_final_write
        )
        self._flush_loop = self._entry.async_create_background_task(
            self._hass, self.batcher.run(), "ha_ingestor flush loop"
        )

    async def _async_points_refused(self, lines: list[str], reason: str) -> None:
        LOGGER.error(
            "InfluxDB refused a point, which is dropped: %s (%s)", lines, reason
        )

    @callback
    def _async_state_changed(self, event: Event[EventStateChangedData]) -> None:
        # The hot path: runs in the event loop for every state change in the house.
        if (state := event.data["new_state"]) is not None and self._keep(state):
            self.batcher.add(
                state_to_line(state, timestamp_us(event.time_fired_timestamp))
            )

    async def _async_final_write(self, _event: Event) -> None:
        self._unsubscribe_final_write = None  # a once-listener removes itself
        await self._async_drain()

    async def async_stop(self) -> None:
        """Stop listening, stop the loop, and write what is still in memory."""
        for unsubscribe in (
            self._unsubscribe_state_changed,
            self._unsubscribe_final_write,
        ):
            if unsubscribe is not None:
                unsubscribe()
        self._unsubscribe_state_changed = self._unsubscribe_final_write = None
        await self._async_drain()

    async def _async_drain(self) -> None:
        if self._flush_loop is not None:
            self._flush_loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_loop
            self._flush_loop = None
        await self.batcher.flush()
        if self.batcher.pending:
            LOGGER.error(
                "InfluxDB is unavailable: %d points could not be written",
                self.batcher.pending,
            )
