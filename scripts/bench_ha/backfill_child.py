"""The Home Assistant side of scripts/bench --backfill: python -m ...backfill_child SPEC.

Two runs on one config dir and one recorder database (SQLite, a file):

- `prepare`: Home Assistant with its recorder starts, the house's 500 entities get their
  first states (so the recorder knows them), and it stops. The parent then writes the
  history into the recorder's tables (backfill.py).
- `measure`: Home Assistant starts again with the recorder and HA Ingestor (default
  options but the pace), and the house changes ~20 states a second, live, all along.
  The event loop's lag is sampled in windows that alternate: the house idle, and the
  house while a backfill runs at the default pace (started at the window's start,
  cancelled at its end). Then the pace is set to its maximum (the entry reloads) and
  the whole history is backfilled, timed.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
import json
import random
import sys
import time
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import __version__ as HA_VERSION  # noqa: N812
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import get_instance

from custom_components.ha_ingestor.const import (
    BACKFILL_PACE_RANGE,
    CONF_BACKFILL_PACE,
    DEFAULT_BACKFILL_PACE,
)
from custom_components.ha_ingestor.pipeline.backfill_state import BackfillStatus

from .child import run_and_exit, start_home_assistant, wait_exporter_loaded
from .probes import GcProbe, LoopLagProbe
from .protocol import send
from .workload import BenchEntity, create_entities, make_entities

# Live state changes per second, all along: the house is never silent.
LIVE_RATE: Final = 20.0
MAX_BACKFILL_SECONDS: Final = 1800.0


@dataclass(frozen=True, slots=True)
class BackfillSpec:
    """What a run needs, as one JSON argument."""

    phase: str  # prepare | measure
    config_dir: str
    entities: int
    windows: int
    window_seconds: float
    database: str


@dataclass(frozen=True, slots=True)
class LagWindow:
    """One window's loop lag, in milliseconds."""

    kind: str  # idle | backfill
    p99_ms: float
    max_ms: float
    samples: int
    gc_pause_ms: float
    points: int
    """Points the backfill handed on in the window (0 when idle)."""


def _set_live(hass: HomeAssistant, entities: list[BenchEntity], seq: int) -> None:
    entity = entities[seq % len(entities)]
    hass.states.async_set(
        entity.entity_id,
        entity.states[(seq // len(entities)) % len(entity.states)],
        dict(entity.attributes),
    )


async def _live(
    hass: HomeAssistant, entities: list[BenchEntity], fired: list[int]
) -> None:
    """Change a state LIVE_RATE times a second until cancelled; count them."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    seq = 0
    while True:
        if (delay := start + seq / LIVE_RATE - loop.time()) > 0:
            await asyncio.sleep(delay)
        _set_live(hass, entities, seq + 7)
        seq += 1
        fired[0] = seq


async def _lag(seconds: float) -> tuple[float, float, int, float]:
    """Loop lag p99 and max (ms), samples, and GC pauses (ms) over `seconds`."""
    probe, gc_probe = LoopLagProbe(), GcProbe()
    gc_probe.start()
    probe.start()
    await asyncio.sleep(seconds)
    stats = probe.stop([])
    pauses = gc_probe.stats(until=time.monotonic()).pause_ms
    gc_probe.stop()
    return stats.p99_ms, stats.max_ms, stats.samples, pauses


async def _backfill(hass: HomeAssistant, entry: ConfigEntry) -> None:
    await hass.services.async_call(
        "ha_ingestor",
        "backfill",
        {"config_entry_id": entry.entry_id},
        blocking=True,
    )


async def prepare(hass: HomeAssistant, spec: BackfillSpec) -> dict[str, Any]:
    """Give the house's entities their first states, recorded."""
    create_entities(hass, make_entities(spec.entities))
    await hass.async_block_till_done()
    # Everything recorded is committed before Home Assistant stops.
    await get_instance(hass).async_block_till_done()
    return {"prepared": spec.entities}


async def _windows(
    hass: HomeAssistant, entry: ConfigEntry, spec: BackfillSpec
) -> tuple[list[LagWindow], float]:
    """Alternate windows: idle, then backfilling at the default pace (then cancelled).

    Returns them, and the longest read of the recorder's database (ms).
    """
    windows: list[LagWindow] = []
    longest_read = 0.0
    for _ in range(spec.windows):
        p99, worst, samples, pauses = await _lag(spec.window_seconds)
        windows.append(LagWindow("idle", p99, worst, samples, pauses, 0))
        await _backfill(hass, entry)
        p99, worst, samples, pauses = await _lag(spec.window_seconds)
        progress = entry.runtime_data.backfill.progress()
        assert progress is not None  # noqa: S101 - it was started
        longest_read = max(longest_read, progress.longest_read_ms or 0.0)
        await hass.services.async_call(
            "ha_ingestor",
            "cancel_backfill",
            {"config_entry_id": entry.entry_id},
            blocking=True,
        )
        windows.append(
            LagWindow("backfill", p99, worst, samples, pauses, progress.written)
        )
    return windows, longest_read


async def _fastest(hass: HomeAssistant, entry: ConfigEntry) -> dict[str, Any]:
    """Backfill the whole history at the fastest pace (the entry reloads with it)."""
    hass.config_entries.async_update_entry(
        entry,
        options={**entry.options, CONF_BACKFILL_PACE: BACKFILL_PACE_RANGE[1]},
    )
    assert await hass.config_entries.async_reload(entry.entry_id)  # noqa: S101
    probe, gc_probe = LoopLagProbe(), GcProbe()
    gc_probe.start()
    probe.start()
    started = time.monotonic()
    await _backfill(hass, entry)
    backfill = entry.runtime_data.backfill
    done = asyncio.Event()
    unsubscribe = backfill.async_add_listener(
        lambda: None if backfill.running else done.set()
    )
    if not backfill.running:
        done.set()
    try:
        async with asyncio.timeout(MAX_BACKFILL_SECONDS):
            await done.wait()
    finally:
        unsubscribe()
    seconds = time.monotonic() - started
    lag = probe.stop(gc_probe.collections)
    gc_stats = gc_probe.stats(until=time.monotonic())
    gc_probe.stop()
    progress = backfill.progress()
    if progress is None or progress.status is not BackfillStatus.DONE:
        msg = f"the backfill did not end: {progress}"
        raise RuntimeError(msg)
    pipeline = entry.runtime_data.pipeline
    await pipeline.batcher.flush()
    return {
        "seconds": seconds,
        "state_changes": progress.state_changes,
        "read": progress.read,
        "written": progress.written,
        "lag_p99_ms": lag.p99_ms,
        "lag_max_ms": lag.max_ms,
        "lag_p99_gc_share": lag.p99_gc_share,
        "gc_pause_ms": gc_stats.pause_ms,
        "gc_full_collections": gc_stats.full_collections,
        "longest_read_ms": progress.longest_read_ms,
        "refused": pipeline.stats.points_refused,
        "dropped": pipeline.stats.points_dropped,
    }


async def measure(hass: HomeAssistant, spec: BackfillSpec) -> dict[str, Any]:
    """Sample loop lag idle and backfilling at the default pace; then go fastest."""
    await wait_exporter_loaded(hass, "c")  # HA Ingestor, core_compatible
    entry = hass.config_entries.async_entries("ha_ingestor")[0]
    fired = [0]
    live = hass.async_create_background_task(
        _live(hass, make_entities(spec.entities), fired), "live"
    )
    try:
        await asyncio.sleep(5)  # settle after start
        windows, longest_read = await _windows(hass, entry, spec)
        fastest = await _fastest(hass, entry)
    finally:
        live.cancel()
    return {
        "ha_version": HA_VERSION,
        "default_pace": DEFAULT_BACKFILL_PACE,
        "max_pace": BACKFILL_PACE_RANGE[1],
        "windows": [asdict(window) for window in windows],
        "max": fastest,
        "longest_read_default_ms": longest_read,
        "live_fired": fired[0],
        "first_received": entry.runtime_data.backfill.first_received.timestamp(),
    }


async def run(spec: BackfillSpec) -> None:
    """Start Home Assistant, run the phase, send its result, stop it."""
    hass = await start_home_assistant(spec.config_dir)
    try:
        if spec.phase == "prepare":
            send({"result": await prepare(hass, spec)})
        else:
            send({"result": await measure(hass, spec)})
    finally:
        await hass.async_stop()


def main() -> None:
    """Run one phase in Home Assistant's own kind of event loop."""
    spec = BackfillSpec(**json.loads(sys.argv[1]))
    random.seed(16)
    run_and_exit(run(spec))


if __name__ == "__main__":
    main()
