"""The scenarios a child runs once Home Assistant and the exporter are ready."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from homeassistant.core import HomeAssistant

from .ha_config import INGESTOR_OPTIONS
from .measure import Window, burst_lag_span, record_stored, wait_stored_async
from .protocol import RunSpec, receive, send
from .results import RunResult
from .servers import StoredCounter
from .workload import BenchEntity, fire_burst, fire_paced

# How long the count may stand still before a run stops waiting for more points. After
# a burst every exporter writes continuously; after an outage HA Ingestor may be in a
# backoff wait of up to about as long as the outage lasted.
BURST_QUIET: Final = 10.0
DOWN_BURST_QUIET: Final = 20.0
# The restart scenario fires for this share of an outage run's length.
RESTART_SHARE: Final = 1 / 6


async def run_burst(
    hass: HomeAssistant,
    spec: RunSpec,
    entities: list[BenchEntity],
    counter: StoredCounter | None,
) -> RunResult:
    """Fire spec.events state changes at full speed; wait for them in the database."""
    window = Window(young_census=spec.young_census)
    window.start()
    await fire_burst(hass, entities, spec.events)
    fired_at = time.monotonic()
    stored = None
    if counter is not None:
        stored = await wait_stored_async(
            counter, window.since_ns, spec.events, BURST_QUIET
        )
    await recorder_done(hass, spec)
    result = await window.stop(
        spec,
        spec.events,
        fired_at,
        stored.poll_cpu if stored else 0.0,
        burst_lag_span(spec.events),
    )
    if stored is not None:
        record_stored(result, stored, window.started_at)
    return result


async def recorder_done(hass: HomeAssistant, spec: RunSpec) -> None:
    """With the recorder on, wait until it has committed every state change fired.

    Every mode's window then holds all the recorder's work on the burst, its memory
    included, so that what an exporter adds to it is what it costs: an empty
    listener's window would otherwise close while the recorder still works.
    """
    if spec.recorder:
        from homeassistant.helpers.recorder import get_instance  # noqa: PLC0415

        await get_instance(hass).async_block_till_done()


async def run_outage(
    hass: HomeAssistant,
    spec: RunSpec,
    entities: list[BenchEntity],
    counter: StoredCounter,
) -> RunResult:
    """Fire at spec.rate for spec.outage_seconds while the parent kills the database.

    The parent kills the database a third of the way in, restarts it at two thirds, and
    then sends the outage's start and end (time.time_ns).
    """
    window = Window()
    window.start()
    fired_ns = await fire_paced(hass, entities, spec.rate, spec.outage_seconds)
    fired_at = time.monotonic()
    killed_ns, restarted_ns = (await receive())["outage_ns"]
    # HA Ingestor may be in a backoff wait that began during the outage.
    quiet = max(BURST_QUIET, spec.outage_seconds / 2)
    stored = await wait_stored_async(counter, window.since_ns, len(fired_ns), quiet)
    result = await window.stop(spec, len(fired_ns), fired_at, stored.poll_cpu)
    record_stored(result, stored, window.started_at)
    if stored.count:
        result.caught_up_seconds = window.seconds_after(restarted_ns, stored.reached_at)
    result.fired_in_outage = sum(killed_ns <= t < restarted_ns for t in fired_ns)
    result.stored_in_outage = await asyncio.get_running_loop().run_in_executor(
        None, counter.count, killed_ns, restarted_ns
    )
    return result


async def run_down_burst(
    hass: HomeAssistant,
    spec: RunSpec,
    entities: list[BenchEntity],
    counter: StoredCounter | None,
) -> RunResult:
    """Fire a burst while the database is down (the parent killed it), then wait for it.

    Without an exporter (mode l) the window ends when the database is back and the
    recorder (if on) is done: Home Assistant's own memory under the same burst, for the
    exporters' to be compared with.
    """
    window = Window()
    window.start()
    await fire_burst(hass, entities, spec.events)
    fired_at = time.monotonic()
    send({"fired": True})
    restarted_ns = (await receive())["restarted_ns"]
    if counter is None:
        await recorder_done(hass, spec)
        return await window.stop(spec, spec.events, fired_at, 0.0)
    stored = await wait_stored_async(
        counter, window.since_ns, spec.events, DOWN_BURST_QUIET
    )
    await recorder_done(hass, spec)
    result = await window.stop(spec, spec.events, fired_at, stored.poll_cpu)
    record_stored(result, stored, window.started_at)
    if stored.count:
        result.caught_up_seconds = window.seconds_after(restarted_ns, stored.reached_at)
    if spec.mode in INGESTOR_OPTIONS:
        # Imported only here: other modes' processes must not hold the integration's
        # modules, which count in their peak RSS.
        from .buffer_cap import record_buffer_cap  # noqa: PLC0415

        record_buffer_cap(hass, spec, entities, result)
    return result


async def run_restart(
    hass: HomeAssistant, spec: RunSpec, entities: list[BenchEntity]
) -> RunResult:
    """Fire at spec.rate for part of spec.outage_seconds; the database dies halfway.

    The parent kills the database halfway through and sends when. Home Assistant then
    stops gracefully (child.run), the database still down; the parent starts another
    on the same config dir, brings the database back and counts what was kept.
    """
    window = Window()
    window.start()
    fired_ns = await fire_paced(
        hass, entities, spec.rate, spec.outage_seconds * RESTART_SHARE
    )
    fired_at = time.monotonic()
    killed_ns = (await receive())["killed_ns"]
    result = await window.stop(spec, len(fired_ns), fired_at, 0.0)
    result.fired_in_outage = sum(t >= killed_ns for t in fired_ns)
    return result
