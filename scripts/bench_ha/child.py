"""One measured run in a fresh process: python -m scripts.bench_ha.child SPEC_JSON.

Starts a real Home Assistant (homeassistant.bootstrap, as the `hass` command does) on a
fresh config dir, waits for the exporter under test, creates the entities, and tells the
parent it is ready. The parent answers on stdin (it may first attach a profiler, or
kill the database); the child then runs its scenario (scenarios.py) and prints its
RunResult before stopping Home Assistant.

The restart scenario's second process (spec.resume) starts Home Assistant on the first
one's config dir while the database is down, tells the parent what became of the
exporter, and stops when told: the parent counts what was kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import gc
import os
from pathlib import Path
import sys
import time
from typing import Any, Final, NoReturn

from homeassistant import bootstrap, runner
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    EVENT_STATE_CHANGED,
    __version__ as HA_VERSION,  # noqa: N812
)
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback

from .ha_config import EXPORTER_DOMAINS, Mode, write_config_dir
from .measure import wait_stored_async
from .peers import PEERS
from .protocol import RunSpec, receive, send
from .scenarios import run_burst, run_down_burst, run_outage, run_restart
from .servers import StoredCounter
from .workload import BenchEntity, create_entities, make_entities

SETUP_TIMEOUT: Final = 120.0
# How long the first states may take to be stored before the run gives up.
INITIAL_QUIET: Final = 30.0
_FAILED_STATES: Final = frozenset(
    (
        ConfigEntryState.SETUP_ERROR,
        ConfigEntryState.SETUP_RETRY,
        ConfigEntryState.MIGRATION_ERROR,
    )
)


@callback
def ignore_event(_event: Event[EventStateChangedData]) -> None:
    """Listen and do nothing: mode l, what any state_changed listener costs."""


async def start_home_assistant(config_dir: str) -> HomeAssistant:
    """Bootstrap Home Assistant as the `hass` command does, and start it."""
    hass = await bootstrap.async_setup_hass(
        runner.RuntimeConfig(
            config_dir=config_dir,
            # Everything is installed (requirements_test.txt): never pip at start.
            skip_pip=True,
            log_file=str(Path(config_dir) / "home-assistant.log"),
            log_no_color=True,
        )
    )
    if hass is None or hass.config.recovery_mode:
        msg = f"Home Assistant did not start: see {config_dir}/home-assistant.log"
        raise RuntimeError(msg)
    await hass.async_start()
    return hass


def exporter_setup(hass: HomeAssistant, mode: Mode) -> str:
    """Say how the exporter's set-up went.

    That is its config entry's state, or whether the integration set up (LTSS has no
    config entry).
    """
    domain = EXPORTER_DOMAINS[mode]
    if entries := hass.config_entries.async_entries(domain):
        return str(entries[0].state.value)
    return "set up" if domain in hass.config.components else "not set up"


def exporter_account(hass: HomeAssistant, mode: Mode) -> str:
    """HA Ingestor's own count of what it wrote, for an error; nothing for the others."""
    entries = hass.config_entries.async_entries(EXPORTER_DOMAINS[mode])
    runtime_data = getattr(entries[0], "runtime_data", None) if entries else None
    if (pipeline := getattr(runtime_data, "pipeline", None)) is None:
        return ""
    return (
        f"; HA Ingestor counted {pipeline.stats.counts()}, {pipeline.points_waiting}"
        f" waiting, last write error: {pipeline.batcher.health.last_error!r}"
    )


async def wait_exporter_loaded(hass: HomeAssistant, mode: Mode) -> None:
    """Wait until the exporter's config entry is set up.

    The built-in's and Scribe's are imported from YAML; LTSS, which has none, is set
    up once bootstrap is done. Bootstrap has set up every integration by now, so a domain that is not among the
    components failed to (say, an import error): no point waiting for it.
    """
    domain = EXPORTER_DOMAINS[mode]
    peer = PEERS.get(mode)
    if peer is not None and not peer.config_entry and domain in hass.config.components:
        return
    deadline = time.monotonic() + SETUP_TIMEOUT
    while time.monotonic() < deadline and domain in hass.config.components:
        entries = hass.config_entries.async_entries(domain)
        if entries and entries[0].state is ConfigEntryState.LOADED:
            return
        if entries and entries[0].state in _FAILED_STATES:
            break
        await asyncio.sleep(0.1)
    msg = f"{domain} was not set up: see {hass.config.config_dir}/home-assistant.log"
    raise RuntimeError(msg)


async def prepare(
    hass: HomeAssistant, spec: RunSpec, counter: StoredCounter | None
) -> list[BenchEntity]:
    """Create the entities; with an exporter, wait until their first states are stored."""
    if counter is not None:
        await wait_exporter_loaded(hass, spec.mode)
    entities = make_entities(spec.entities)
    create_entities(hass, entities)
    if counter is not None:
        stored = await wait_stored_async(counter, 0, len(entities), INITIAL_QUIET)
        if stored.count < len(entities):
            msg = (
                f"only {stored.count} of {len(entities)} first states were stored"
                f"{'' if stored.answered else ' (the database answered no count)'}"
                f"{exporter_account(hass, spec.mode)}"
            )
            raise RuntimeError(msg)
    # Garbage from start-up must not be collected on the clock (nor in a profile,
    # which starts before the clock).
    gc.collect()
    return entities


async def run(spec: RunSpec) -> None:
    """Start Home Assistant, run the scenario, stop Home Assistant."""
    counter = spec.counter()
    hass = await start_home_assistant(spec.config_dir)
    try:
        if spec.mode == "l":
            hass.bus.async_listen(EVENT_STATE_CHANGED, ignore_event)
        if spec.resume:
            send({"ready": True, "setup": exporter_setup(hass, spec.mode)})
            await receive()
            return
        entities = await prepare(hass, spec, counter)
        send({"ready": True, "pid": os.getpid(), "ha_version": HA_VERSION})
        await receive()
        if spec.scenario == "burst":
            result = await run_burst(hass, spec, entities, counter)
        elif spec.scenario == "down_burst":
            result = await run_down_burst(hass, spec, entities, counter)
        elif spec.scenario == "restart":
            result = await run_restart(hass, spec, entities)
        elif counter is None:
            msg = f"scenario {spec.scenario} needs an exporter"
            raise RuntimeError(msg)
        else:
            result = await run_outage(hass, spec, entities, counter)
        send({"result": result.to_json()})
    finally:
        await hass.async_stop()


def main() -> None:
    """Run one spec in Home Assistant's own kind of event loop."""
    spec = RunSpec.from_argument(sys.argv[1])
    if not spec.resume:
        spec.create_database()
        write_config_dir(
            Path(spec.config_dir),
            spec.mode,
            spec.influx,
            spec.database,
            http_port=spec.http_port,
            ingestor_options=spec.ingestor_options,
            recorder=spec.recorder,
            peer=(spec.peer_url, Path(spec.peer_folder))
            if spec.mode in PEERS
            else None,
        )
    run_and_exit(run(spec))


def run_and_exit(work: Coroutine[Any, Any, None]) -> NoReturn:
    """Run `work` in Home Assistant's own kind of event loop, report a failure, exit.

    `work` has stopped Home Assistant by then; threads its integrations leave behind
    (HTTP clients' pools) must not keep a finished run alive.
    """
    loop = runner.create_event_loop()
    asyncio.set_event_loop(loop)
    exit_code = 0
    try:
        loop.run_until_complete(work)
    except Exception as err:  # noqa: BLE001 - any failure is reported to the parent
        send({"error": f"{type(err).__name__}: {err}"})
        exit_code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


if __name__ == "__main__":
    main()
