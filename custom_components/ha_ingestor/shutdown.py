"""Stopping what the integration runs, once: at Home Assistant's final write or at unload.

Home Assistant cancels background tasks when it stops, before the final-write stage;
what is still in memory must be written or stored then, while the HTTP session and
the executor still work. An unload stops the same things; whichever comes first stops
them, and the other finds them stopped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback


class StopOnce:
    """Runs `stop` once: when called, or at the final write, whichever comes first."""

    def __init__(self, stop: Callable[[], Awaitable[None]]) -> None:
        """Run `stop` when called; `async_stop_at_final_write` adds the other moment."""
        self._stop = stop
        self._unsubscribe_final_write: CALLBACK_TYPE | None = None
        self.stopping = False

    @callback
    def async_stop_at_final_write(self, hass: HomeAssistant) -> None:
        """Also run `stop` at Home Assistant's final write."""
        self._unsubscribe_final_write = hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_final_write
        )

    async def _async_final_write(self, _event: Event) -> None:
        self._unsubscribe_final_write = None  # a once-listener removes itself
        await self()

    async def __call__(self) -> None:
        """Run `stop`, unless it has run or is running."""
        if self.stopping:
            return
        self.stopping = True
        if self._unsubscribe_final_write is not None:
            self._unsubscribe_final_write()
            self._unsubscribe_final_write = None
        await self._stop()
