"""Nothing is lost, whatever happens to InfluxDB or Home Assistant.

influxd killed mid-stream (by its process id), Home Assistant restarted during an
outage, 200,000 state changes with no server, a reload while changes keep coming.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
import re
import textwrap
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_URL, EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import parse_yaml
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    CONF_EXCLUDE_DOMAINS,
    CONF_FLUSH_INTERVAL,
    DOMAIN,
)
from custom_components.ha_ingestor.storage.spool import SpoolError

from ..conftest import restarted, save_options, setup_entry, wait_until
from ..influxdb_v1_server import InfluxDBv1Server
from ..line_protocol.helpers import Unreadable
from ..reverse_proxy import StartProxy

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.1}
_MICROSECOND = dt.timedelta(microseconds=1)


def _record_events(hass: HomeAssistant) -> list[tuple[str, int]]:
    """(entity id, event time in µs) of every state change, as they are fired.

    Not those of the integration's own entities, which it does not write.
    """
    fired: list[tuple[str, int]] = []
    entities = er.async_get(hass)

    @callback
    def _record(event: Event[EventStateChangedData]) -> None:
        registered = entities.async_get(event.data["entity_id"])
        if registered is not None and registered.platform == DOMAIN:
            return
        fired.append(
            (
                event.data["entity_id"],
                (event.time_fired - EPOCH) // _MICROSECOND,
            )
        )

    hass.bus.async_listen(EVENT_STATE_CHANGED, _record)
    return fired


def _stored(influxdb: InfluxDBv1Server, database: str) -> list[tuple[str, int]]:
    """(entity id, time) of every point of the `W` measurement, duplicates kept."""
    return [
        (f"{row['domain']}.{row['entity_id']}", row["time"])
        for row in influxdb.rows(
            'SELECT "value" FROM "W" GROUP BY "domain", "entity_id"', database
        )
    ]


def _count(influxdb: InfluxDBv1Server, database: str) -> int:
    series = influxdb.query('SELECT count("value") FROM "W"', database)
    return int(series[0]["values"][0][1]) if series else 0


async def _fire(hass: HomeAssistant, start: int, stop: int, chunk: int = 100) -> None:
    """Power readings of 100 sensors, yielding to the event loop between chunks."""
    for i in range(start, stop):
        hass.states.async_set(
            f"sensor.power_{i % 100}", str(i), {"unit_of_measurement": "W"}
        )
        if i % chunk == chunk - 1:
            await asyncio.sleep(0)


@pytest.mark.usefixtures("revive")
async def test_influxd_killed_during_10000_state_changes(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Every change is in InfluxDB exactly once, with its original timestamp."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    fired = _record_events(hass)
    spool = config_entry.runtime_data.pipeline.spool

    await _fire(hass, 0, 3000)
    await hass.async_add_executor_job(influxdb.kill)
    await _fire(hass, 3000, 7000)
    await wait_until(lambda: spool.count > 0, "points wait in the spool")
    await hass.async_add_executor_job(influxdb.start)
    await _fire(hass, 7000, 10_000)

    await wait_until(
        lambda: _count(influxdb, database) >= 10_000, "10,000 points", seconds=120
    )
    assert sorted(_stored(influxdb, database)) == sorted(fired)
    await wait_until(lambda: spool.count == 0, "the spool is empty again")


async def test_a_start_with_more_changed_states_than_memory_holds_writes_them_all(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """A big house starts with small batches: 2,500 changed states, memory holds 2,000.

    Every entity's state set before the entry starts that differs from the last one
    written is enqueued at the start, in one step of the event loop: all are written,
    at the times they were set, none dropped.
    """
    await setup_entry(hass, config_entry, FAST_FLUSH | {CONF_BATCH_SIZE: 100})
    for i in range(2_500):
        hass.states.async_set(f"sensor.power_{i}", "1", {"unit_of_measurement": "W"})
        if i % 100 == 99:
            await asyncio.sleep(0)
    await wait_until(lambda: _count(influxdb, database) == 2_500, "2,500 points")
    await hass.async_stop()
    set_at: list[tuple[str, int]] = []

    def changed(second: HomeAssistant) -> None:
        for i in range(2_500):
            second.states.async_set(
                f"sensor.power_{i}", "2", {"unit_of_measurement": "W"}
            )
            state = second.states.get(f"sensor.power_{i}")
            assert state is not None
            set_at.append(
                (state.entity_id, (state.last_updated - EPOCH) // _MICROSECOND)
            )

    async with restarted(hass, config_entry, changed) as second:
        await wait_until(
            lambda: _count(influxdb, database) == 5_000, "5,000 points", seconds=60
        )
        entry = second.config_entries.async_get_entry(config_entry.entry_id)
        assert entry is not None
        assert entry.runtime_data.pipeline.stats.points_dropped_memory_full == 0
    assert set(set_at) <= set(_stored(influxdb, database))


async def test_restart_during_an_outage(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    revive: None,
) -> None:
    """Stopped while influxd is down, started again on the same config dir: all there."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    fired = _record_events(hass)
    await hass.async_add_executor_job(influxdb.kill)
    await _fire(hass, 0, 500)
    await hass.async_stop()

    async with restarted(hass, config_entry) as second:
        fired_after_restart = _record_events(second)
        await _fire(second, 500, 1000)
        await second.async_block_till_done()
        await second.async_add_executor_job(influxdb.start)
        await wait_until(
            lambda: _count(influxdb, database) >= 1000, "1,000 points", seconds=60
        )
        assert sorted(_stored(influxdb, database)) == sorted(
            fired + fired_after_restart
        )


@pytest.mark.usefixtures("revive")
async def test_hostile_values_wait_in_the_spool_and_are_written(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Surrogates, an unreadable object, a list nested 5,000 deep: outage and restart.

    Neither the spool (SQLite takes UTF-8 only) nor InfluxDB could take a line holding
    a surrogate, and no fingerprint could be made of the deep list: the whole of
    memory, good points with it, was lost at the stop, or the spool's step hung. A
    device class that is a list made the filter raise: that state change was lost.
    """
    deep: list[Any] = []
    for _ in range(5_000):
        deep = [deep]
    await setup_entry(hass, config_entry, FAST_FLUSH)
    fired = _record_events(hass)
    await hass.async_add_executor_job(influxdb.kill)
    await _fire(hass, 0, 100)
    hass.states.async_set(
        "sensor.surrogates",
        "a\ud83d\ude00b\udcff",
        {"unit_of_measurement": "W", "note\ud800": "x\udcffy", "reading": Unreadable()},
    )
    hass.states.async_set(
        "sensor.deep", "0.5", {"unit_of_measurement": "W", "deep": deep}
    )
    hass.states.async_set(
        "sensor.odd_class",
        "0.25",
        {"unit_of_measurement": "W", "device_class": ["power"]},
    )
    await _fire(hass, 100, 200)
    await hass.async_stop()

    query = 'SELECT * FROM "W" WHERE "entity_id" = \'surrogates\''
    async with restarted(hass, config_entry) as second:
        await second.async_add_executor_job(influxdb.start)
        await wait_until(
            lambda: _count(influxdb, database) >= 200, "200 points", seconds=60
        )
        await wait_until(lambda: bool(influxdb.rows(query, database)), "its point")
    # Its state is text: no `value` field for _stored to read.
    numbers = [change for change in fired if change[0] != "sensor.surrogates"]
    assert sorted(_stored(influxdb, database)) == sorted(numbers)
    [row] = influxdb.rows(query, database)
    assert row["state"] == "a\U0001f600b\ufffd"
    assert row["note\ufffd_str"] == "x\ufffdy"
    assert re.fullmatch(r"<\S+\.Unreadable object at 0x[0-9a-f]+>", row["reading_str"])
    [deep_row] = influxdb.rows(
        'SELECT "value" FROM "W" WHERE "entity_id" = \'deep\'', database
    )
    assert deep_row["value"] == 0.5


@pytest.mark.usefixtures("revive")
async def test_a_proxy_page_in_latin_1_is_a_failed_write_like_any(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    reverse_proxy: StartProxy,
) -> None:
    """Behind a real nginx, influxd killed: nginx's 502 page is Latin-1, no charset.

    Reading that page raised UnicodeDecodeError, which ended each delivery unseen:
    no backoff, health still fine, memory retried every tick and never made durable
    (a kill lost all of it). It is now a failed write: the points wait in the spool.
    """
    proxy = reverse_proxy(
        {"/influxdb/": f"{influxdb.url}/"},
        {502: "Dienst nicht verfügbar".encode("latin-1")},
    )
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=config_entry.unique_id,
        data=config_entry.data | {CONF_URL: f"{proxy.url}/influxdb"},
    )
    await setup_entry(hass, entry, FAST_FLUSH)
    fired = _record_events(hass)
    pipeline = entry.runtime_data.pipeline
    await _fire(hass, 0, 100)
    await wait_until(lambda: _count(influxdb, database) == 100, "100 points")
    await hass.async_add_executor_job(influxdb.kill)
    await _fire(hass, 100, 200)
    await wait_until(lambda: pipeline.spool.count == 100, "100 in the spool")
    assert pipeline.batcher.health.failing
    assert "HTTP 502: Dienst nicht verf\ufffdgbar" in str(
        pipeline.batcher.health.last_error
    )
    await hass.async_add_executor_job(influxdb.start)
    await wait_until(
        lambda: _count(influxdb, database) == 200, "200 points", seconds=60
    )
    assert sorted(_stored(influxdb, database)) == sorted(fired)
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_200000_state_changes_with_influxdb_down(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Memory stays at its cap, the rest waits on disk, and all of it arrives."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    batcher = config_entry.runtime_data.pipeline.batcher
    spool = config_entry.runtime_data.pipeline.spool
    await hass.async_add_executor_job(influxdb.kill)

    chunk = 1000
    largest_memory = 0
    for start in range(0, 200_000, chunk):
        await _fire(hass, start, start + chunk, chunk)
        largest_memory = max(largest_memory, batcher.pending)
        # A house fires its changes over time, not all in one step of the event
        # loop: let the flush loop run as it would between them.
        await asyncio.sleep(0.005)
    # The cap holds each time the flush loop runs, so memory can exceed it by what
    # fires in one step of the loop at most.
    assert largest_memory <= batcher.memory_cap + chunk
    await wait_until(
        lambda: spool.count + batcher.pending == 200_000, "all counted", seconds=60
    )
    assert spool.count >= 200_000 - batcher.memory_cap

    await hass.async_add_executor_job(influxdb.start)
    await wait_until(
        lambda: _count(influxdb, database) == 200_000, "200,000 points", seconds=300
    )
    # The last batch leaves the spool a moment after InfluxDB has it.
    await wait_until(lambda: spool.count == 0, "the spool is empty again")


async def test_reload_while_state_changes_keep_coming(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Saving options reloads the entry; no change fired meanwhile is lost."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    fired = _record_events(hass)
    keep_firing = True

    async def house() -> None:
        i = 0
        while keep_firing:
            hass.states.async_set(
                f"sensor.power_{i % 100}", str(i), {"unit_of_measurement": "W"}
            )
            i += 1
            await asyncio.sleep(0)

    # Not a task of hass's own: async_block_till_done must not wait for it.
    task = asyncio.create_task(house())
    await wait_until(lambda: len(fired) > 500, "the house is busy")
    result = await save_options(hass, config_entry, {CONF_EXCLUDE_DOMAINS: ["light"]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert config_entry.state is ConfigEntryState.LOADED
    reloaded_at = len(fired)
    await wait_until(lambda: len(fired) > reloaded_at + 500, "still busy")
    keep_firing = False
    await task
    assert await hass.config_entries.async_unload(config_entry.entry_id)

    assert sorted(_stored(influxdb, database)) == sorted(fired)


def _readme_logger_config() -> dict[str, Any]:
    """The logger configuration the README's troubleshooting section gives."""
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    section = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_yaml(textwrap.dedent(block))
    assert isinstance(config, dict)
    return config


async def test_a_failing_save_of_the_counters_warns_once(
    hass: HomeAssistant,
    database: str,
    config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Saves of the counters that keep failing warn once, not once a second.

    Points dropped ask for a save a second after each run of drops; once a save
    works again, the next failure warns again.
    """
    await setup_entry(hass, config_entry, FAST_FLUSH)
    pipeline = config_entry.runtime_data.pipeline
    refused = SpoolError("Spool x: disk I/O error")
    with patch.object(pipeline.spool, "save_state", side_effect=refused):
        for _ in range(3):
            await pipeline.async_save_stats()
    await pipeline.async_save_stats()
    with patch.object(pipeline.spool, "save_state", side_effect=refused):
        await pipeline.async_save_stats()
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING
        and record.name == "custom_components.ha_ingestor"
    ]
    assert warnings == [f"Could not save the counters: {refused}"] * 2
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_the_log_says_what_the_readme_says(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One warning when an outage starts, one line when it ends, a debug line a write.

    The logger is set up exactly as the README's troubleshooting section says.
    """
    assert await async_setup_component(hass, "logger", _readme_logger_config())
    await setup_entry(hass, config_entry, FAST_FLUSH)
    stats = config_entry.runtime_data.pipeline.stats
    await _fire(hass, 0, 10)
    await wait_until(lambda: stats.points_written == 10, "10 written")
    writes = re.findall(r"Wrote (\d+) points \((\d+) bytes\) in \d+ ms", caplog.text)
    assert sum(int(points) for points, _ in writes) == 10
    assert all(int(size) > 0 for _, size in writes)

    await hass.async_add_executor_job(influxdb.kill)
    await _fire(hass, 10, 30)
    spool = config_entry.runtime_data.pipeline.spool
    await wait_until(lambda: spool.count == 20, "20 spooled")
    await _fire(hass, 30, 40)
    await wait_until(lambda: spool.count == 30, "30 spooled")
    await hass.async_add_executor_job(influxdb.start)
    await hass.services.async_call(DOMAIN, "flush", blocking=True)
    await wait_until(lambda: stats.points_written == 40, "40 written")

    assert caplog.text.count("Writing to InfluxDB failed") == 1
    (ended,) = re.findall(
        r"Writing to InfluxDB works again after (\S+); (\d+) points waited in the "
        r"spool meanwhile",
        caplog.text,
    )
    assert ended[1] == "30"
    assert [
        record.levelname
        for record in caplog.records
        if record.name == "custom_components.ha_ingestor"
        and record.levelno >= logging.WARNING
    ] == ["WARNING"]
    assert await hass.config_entries.async_unload(config_entry.entry_id)
