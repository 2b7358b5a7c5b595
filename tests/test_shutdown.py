"""Stopping once: at Home Assistant's final write or when called, whichever first."""

from __future__ import annotations

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import HomeAssistant

from custom_components.ha_ingestor.shutdown import StopOnce


async def test_called_first_then_the_final_write_does_nothing(
    hass: HomeAssistant,
) -> None:
    """An unload stops it; Home Assistant's later stop finds it stopped."""
    stops: list[None] = []

    async def stop() -> None:
        stops.append(None)

    stop_once = StopOnce(stop)
    stop_once.async_stop_at_final_write(hass)
    assert hass.bus.async_listeners()[EVENT_HOMEASSISTANT_FINAL_WRITE] == 1
    await stop_once()
    assert stop_once.stopping
    # The final-write listener is gone with it.
    assert EVENT_HOMEASSISTANT_FINAL_WRITE not in hass.bus.async_listeners()
    await stop_once()
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()
    assert stops == [None]


async def test_the_final_write_first_then_a_call_does_nothing(
    hass: HomeAssistant,
) -> None:
    """Home Assistant stops it while stopping; the unload that follows does not."""
    stops: list[None] = []

    async def stop() -> None:
        stops.append(None)

    stop_once = StopOnce(stop)
    stop_once.async_stop_at_final_write(hass)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()
    assert stops == [None]
    await stop_once()
    assert stops == [None]


async def test_a_stop_under_way_is_not_started_again(hass: HomeAssistant) -> None:
    """A second call while the first is still stopping returns at once."""
    calls: list[str] = []

    async def stop() -> None:
        calls.append("started")
        await stop_once()  # called again from inside, as a final write might
        calls.append("ended")

    stop_once = StopOnce(stop)
    await stop_once()
    assert calls == ["started", "ended"]
