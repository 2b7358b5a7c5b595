"""The batcher when writes fail: outages, 503s and rejected points."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
import contextlib
from datetime import datetime
import functools
from pathlib import Path
import time
from typing import Any
from unittest.mock import patch

from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import STORAGE_DIR
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor import _spool_path
from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    CONF_FLUSH_INTERVAL,
    CONF_SPOOL_MAX_MB,
    DEFAULT_BATCH_SIZE,
    DEFAULT_SPOOL_MAX_MB,
    DOMAIN,
)
from custom_components.ha_ingestor.diagnostics import async_get_config_entry_diagnostics
from custom_components.ha_ingestor.influxdb.client import InfluxClient
from custom_components.ha_ingestor.influxdb.errors import InfluxConnectionError
from custom_components.ha_ingestor.issues import ISSUE_DISK_FULL
from custom_components.ha_ingestor.pipeline.batcher import Batcher
from custom_components.ha_ingestor.pipeline.last_states import LastStates, fingerprint
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.storage.spool import (
    Spool,
    SpoolDiskFullError,
    SpoolError,
)

from ..conftest import (
    overflow_the_spool,
    seed_field_type_conflict,
    setup_entry,
    v2_entry_data,
    wait_until,
)
from ..influxdb_v1_server import InfluxDBv1Server
from ..influxdb_v2_server import InfluxDBv2TestServer
from ..repair_issues import fire_power, issue_checked_now, render_issue
from ..spool_file import read_spool, saved_stats
from ..tmpfs import fill, tmpfs


async def _setup_v2(
    hass: HomeAssistant,
    server: InfluxDBv2TestServer,
    data: dict[str, str] | None = None,
    *,
    flush_interval: float = 0.05,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=v2_entry_data(server) | (data or {}),
        options={CONF_FLUSH_INTERVAL: flush_interval, CONF_BATCH_SIZE: batch_size},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    return entry


async def _spool_while_stopped(
    hass: HomeAssistant,
    server: InfluxDBv2TestServer,
    entry: MockConfigEntry,
    entity_id: str,
    count: int,
) -> None:
    """Stop the server, then set `count` states: wait until all are in the spool."""
    await server.stop()
    for i in range(count):
        hass.states.async_set(entity_id, str(i), {"unit_of_measurement": "W"})
    spool = entry.runtime_data.pipeline.spool
    await wait_until(lambda: spool.count == count, f"{count} points in the spool")


async def test_outage_keeps_points_until_the_server_is_back(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While the server is down, points move to the spool; none lost, logged once."""
    entry = await _setup_v2(hass, influxdb_v2)
    batcher = entry.runtime_data.pipeline.batcher
    spool = entry.runtime_data.pipeline.spool
    await _spool_while_stopped(hass, influxdb_v2, entry, "sensor.outage", 300)
    assert batcher.pending == 0
    assert batcher.health.failing
    assert caplog.text.count("Writing to InfluxDB failed") == 1

    await influxdb_v2.start()
    await wait_until(lambda: len(influxdb_v2.points("ha")) == 300, "300 points")
    # Logged with the first batch written; the points leave the spool right after.
    await wait_until(
        lambda: "Writing to InfluxDB works again" in caplog.text, "recovery logged"
    )
    await wait_until(lambda: spool.count == 0, "the spool is empty again")
    values = [point.fields["value"] for point in influxdb_v2.points("ha")]
    assert values == [float(i) for i in range(300)]
    assert not batcher.health.failing
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_server_busy_is_retried(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """503 answers are temporary: the same points are written once it recovers."""
    entry = await _setup_v2(hass, influxdb_v2)
    influxdb_v2.fail_next_writes(3, status=503)
    for i in range(50):
        hass.states.async_set("sensor.busy", str(i), {"unit_of_measurement": "W"})
    await wait_until(lambda: len(influxdb_v2.points("ha")) == 50, "50 points")
    assert [r.status for r in influxdb_v2.requests if r.path == "/api/v2/write"][
        1:4
    ] == [503, 503, 503]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unreachable_server_is_pinged_before_the_backoff_ends(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """Once the server is back, the catch-up starts at the next ping, not the retry.

    The server is pinged every 10 seconds: writing resumes within them.
    """
    # Every backoff is now at least 150 s: only the ping can bring the points in time.
    with patch("custom_components.ha_ingestor.pipeline.health.FIRST_BACKOFF", 1000.0):
        entry = await _setup_v2(hass, influxdb_v2)
        batcher = entry.runtime_data.pipeline.batcher
        spool = entry.runtime_data.pipeline.spool
        await _spool_while_stopped(hass, influxdb_v2, entry, "sensor.probe", 100)
        requests_before = len(influxdb_v2.requests)

        await influxdb_v2.start()
        back_at = time.monotonic()
        await wait_until(
            lambda: len(influxdb_v2.points("ha")) == 100, "100 points", seconds=15
        )
        # The next ping, then a tick of the flush loop (and a loaded machine's lag).
        assert time.monotonic() - back_at < 10 + 1
        # Recovered with the first batch written; the spool is emptied right after.
        await wait_until(lambda: not batcher.health.failing, "recovered", seconds=5)
        await wait_until(lambda: spool.count == 0, "the spool is empty", seconds=5)
        ping, write = influxdb_v2.requests[requests_before:][:2]
        assert (ping.path, ping.status) == ("/ping", 204)
        assert (write.path, write.status) == ("/api/v2/write", 204)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_server_that_answers_with_an_error_is_not_pinged(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """Refused credentials do not heal by themselves: the backoff alone paces retries."""
    with patch("custom_components.ha_ingestor.pipeline.batcher.PROBE_INTERVAL", 0.05):
        entry = await _setup_v2(hass, influxdb_v2, {CONF_TOKEN: "revoked"})
        batcher = entry.runtime_data.pipeline.batcher
        hass.states.async_set("sensor.probe", "1", {"unit_of_measurement": "W"})
        await wait_until(lambda: batcher.health.failing, "the write refused")
        failed_at = len(influxdb_v2.requests)
        # Ten probe intervals, within the first backoffs (1 s, then 2 s).
        await asyncio.sleep(0.5)
    since_failure = influxdb_v2.requests[failed_at:]
    assert all(request.path == "/api/v2/write" for request in since_failure)
    assert all(request.status == 401 for request in since_failure)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_conflict_with_stored_field_is_quarantined(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """A real field type conflict: the point is quarantined with the server's message.

    Writing goes on for the other points, in the same batch and after it.
    """
    seed_field_type_conflict(influxdb, database)
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, options={CONF_FLUSH_INTERVAL: 0.05}
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    spool = config_entry.runtime_data.pipeline.spool

    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.temperature", "21", {"unit_of_measurement": "°C"})
    await wait_until(lambda: spool.quarantined == 1, "one point quarantined")
    hass.states.async_set("sensor.temperature", "22", {"unit_of_measurement": "°C"})
    await wait_until(
        lambda: len(influxdb.rows('SELECT * FROM "°C"', database)) == 2,
        "both °C points written",
    )
    (quarantined,) = await spool.quarantined_points(10)
    assert quarantined.line.startswith("W,domain=sensor,entity_id=power value=5.0 ")
    assert "field type conflict" in quarantined.error
    assert config_entry.runtime_data.pipeline.stats.points_refused == 1
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_conflict_inside_one_batch_is_quarantined(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """InfluxDB refuses a batch whose points disagree on a type; only they are kept.

    Our presets never write such a batch; another integration's lines in the same
    database, or a replayed spool from an older schema, can.
    """
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, options={CONF_FLUSH_INTERVAL: 60.0}
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    ingestor = config_entry.runtime_data.pipeline
    lines = [f"m value={i}.5 {1_000_000 + i}" for i in range(10)]
    lines[3] = 'm value="three" 1000003'
    for line in lines:
        ingestor.batcher.add(line, State("sensor.m", "1"))
    await ingestor.batcher.flush()

    values = [row["value"] for row in influxdb.rows('SELECT * FROM "m"', database)]
    assert values == [i + 0.5 for i in range(10) if i != 3]
    assert ingestor.spool.quarantined == 1
    (quarantined,) = await ingestor.spool.quarantined_points(10)
    assert quarantined.line == 'm value="three" 1000003'
    assert "field type conflict" in quarantined.error
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_a_flush_writes_what_a_tick_spilled_during_it(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Lines a tick moves to the spool while a flush replays it are written too.

    A flush that succeeds leaves nothing waiting: the backfill's last checkpoint and
    the flush action count on it. Here the tick's spill is still being stored when the
    replay ends.
    """
    config_entry.add_to_hass(hass)
    # Ticks come only when a batch is full: this test says when.
    hass.config_entries.async_update_entry(
        config_entry, options={CONF_FLUSH_INTERVAL: 60.0, CONF_BATCH_SIZE: 100}
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    pipeline = config_entry.runtime_data.pipeline
    spool: Spool = pipeline.spool
    replayed = "replayed value=1.5 1000000"
    await spool.append([replayed])
    write, store = pipeline.writer.write, spool.append
    replaying, release_replay = asyncio.Event(), asyncio.Event()
    spilling, release_spill = asyncio.Event(), asyncio.Event()

    async def held_write(lines: list[str]) -> None:
        if lines == [replayed]:
            replaying.set()
            await release_replay.wait()
        await write(lines)

    async def held_append(lines: list[str], **state: Any) -> range:
        spilling.set()
        await release_spill.wait()
        return await store(lines, **state)

    with (
        patch.object(pipeline.writer, "write", held_write),
        patch.object(spool, "append", held_append),
    ):
        flush = hass.async_create_task(pipeline.batcher.flush())
        await replaying.wait()
        for i in range(100):  # a full batch: a tick, which spills them
            hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})
        await spilling.wait()
        release_replay.set()
        # The replay ends while the spill is being stored; the flush must not end
        # before the spill is stored and written.
        await asyncio.wait([flush], timeout=0.5)
        release_spill.set()
        assert await flush is None
        assert (pipeline.batcher.pending, pipeline.batcher.in_flight) == (0, 0)
        assert spool.count == 0
    assert len(influxdb.rows('SELECT * FROM "W"', database)) == 100
    assert len(influxdb.rows('SELECT * FROM "replayed"', database)) == 1
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_points_on_their_way_to_the_spool_still_wait(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """While a spill is being stored, its points count as waiting, not as gone."""
    entry = await _setup_v2(hass, influxdb_v2)
    pipeline = entry.runtime_data.pipeline
    spool: Spool = pipeline.spool
    await _spool_while_stopped(hass, influxdb_v2, entry, "sensor.first", 3)
    store = spool.append
    gate = asyncio.Event()
    storing = asyncio.Event()

    async def slow_append(lines: list[str], **state: Any) -> range:
        storing.set()
        await gate.wait()
        return await store(lines, **state)

    with patch.object(spool, "append", slow_append):
        for i in range(5):
            hass.states.async_set("sensor.second", str(i), {"unit_of_measurement": "W"})
        await storing.wait()
        # Taken out of memory, not yet in the spool: still waiting.
        assert (pipeline.batcher.pending, pipeline.batcher.in_flight) == (0, 5)
        assert pipeline.points_waiting == 8
        assert entry.runtime_data.coordinator.snapshot().points_waiting == 8
        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        assert (
            diagnostics["spool"]["in_memory"],
            diagnostics["spool"]["in_flight"],
        ) == (
            0,
            5,
        )
        gate.set()
        await wait_until(lambda: spool.count == 8, "8 points in the spool")
    assert pipeline.batcher.pending == 0
    assert pipeline.points_waiting == 8
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_hung_write_does_not_keep_memory_from_the_spool(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A server that never answers: memory reaches the spool every half interval.

    The batch whose write hangs is copied to the spool too, once the write is still
    going at the next half interval, and before the newer lines in memory: so a hard
    kill would lose an interval at most, and the newest lines only. A stop then
    tries to write the spool for 10 s at most, and leaves it as it is.
    """
    async with influxdb_v2.writes_hanging():
        entry = await _setup_v2(hass, influxdb_v2, flush_interval=0.1)
        pipeline = entry.runtime_data.pipeline
        spool: Spool = pipeline.spool
        hass.states.async_set("sensor.first", "1", {"unit_of_measurement": "W"})
        # Its write starts, and hangs until the request times out (10 s).
        await wait_until(lambda: pipeline.batcher.in_flight == 1, "the write began")
        for i in range(5):
            hass.states.async_set("sensor.next", str(i), {"unit_of_measurement": "W"})
        changed_at = time.monotonic()
        await wait_until(lambda: spool.count == 6, "all six in the spool", seconds=5)
        # Within a few intervals of 0.1 s (a loaded machine's lag), long before the
        # write times out.
        assert time.monotonic() - changed_at < 1
        assert pipeline.batcher.pending == 0
        assert pipeline.batcher.in_flight == 0  # its copy is in the spool
        assert pipeline.points_waiting == 6
        assert not pipeline.batcher.health.failing  # the write has not failed yet
        spooled = [line.split(" ")[0] for _, line in await spool.oldest(10)]
        assert spooled == ["W,domain=sensor,entity_id=first"] + 5 * [
            "W,domain=sensor,entity_id=next"
        ]
        stop_began = time.monotonic()
        assert await hass.config_entries.async_unload(entry.entry_id)
        # The stop writes the spool for 10 s at most: a server that never answers
        # holds Home Assistant's stop no longer, and the points stay in the spool.
        assert time.monotonic() - stop_began < 10 + 1
        kept = await hass.async_add_executor_job(
            read_spool, spool.path, "SELECT count(*) FROM points"
        )
        assert kept == [(6,)]


async def test_memory_full_during_a_write_spools_the_batch_first(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """Memory full while a batch is being written: its copy goes to the spool first.

    Then memory: what the spool keeps is everything up to the newest line, so a hard
    kill in between would not leave the batch missing before newer points.
    """
    async with influxdb_v2.writes_hanging():
        # Ticks come only when a batch, or memory, is full.
        entry = await _setup_v2(hass, influxdb_v2, flush_interval=60.0, batch_size=100)
        pipeline = entry.runtime_data.pipeline
        spool: Spool = pipeline.spool
        memory_cap = pipeline.batcher.memory_cap
        for i in range(100):  # a full batch: its write starts, and hangs
            hass.states.async_set("sensor.first", str(i), {"unit_of_measurement": "W"})
        await wait_until(lambda: pipeline.batcher.in_flight == 100, "the write began")
        for i in range(memory_cap):  # memory full: a tick long before the interval
            hass.states.async_set("sensor.next", str(i), {"unit_of_measurement": "W"})
        await wait_until(lambda: spool.count == 100 + memory_cap, "all in the spool")
        spooled = [
            (line.split(",entity_id=")[1].split(" ")[0], _value(line))
            for _, line in await spool.oldest(100 + memory_cap)
        ]
        assert spooled == [("first", i) for i in range(100)] + [
            ("next", i) for i in range(memory_cap)
        ]
        assert pipeline.batcher.in_flight == 0  # its copy is in the spool
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_write_ending_during_its_copy_leaves_no_batch_out_of_the_spool(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """The write ends while its copy is stored; the next batch's write hangs.

    That next batch, taken from memory before the rest was spilled, is older than
    the rest: it goes to the spool before it, or a kill would leave it missing
    before newer points (tests/test_reliability.py's burst found that hole).
    """
    entry = await _setup_v2(hass, influxdb_v2, {}, flush_interval=60.0, batch_size=100)
    pipeline = entry.runtime_data.pipeline
    batcher, spool = pipeline.batcher, pipeline.spool
    copy_started = asyncio.Event()
    write, append = batcher._writer.write, spool.append
    writes = 0

    async def first_ends_during_its_copy_then_hang(lines: list[str]) -> None:
        nonlocal writes
        writes += 1
        if writes > 1:
            await asyncio.Event().wait()  # a server that never answers
        await copy_started.wait()
        await write(lines)

    async def slow_first_copy(lines: list[str], **kwargs: Any) -> range:
        if not copy_started.is_set():
            copy_started.set()
            await asyncio.sleep(0.1)  # the write ends, the next one begins
        ids: range = await append(lines, **kwargs)
        return ids

    with (
        patch.object(batcher._writer, "write", first_ends_during_its_copy_then_hang),
        patch.object(spool, "append", slow_first_copy),
    ):
        for i in range(100):  # a full batch: its write starts
            hass.states.async_set("sensor.first", str(i), {"unit_of_measurement": "W"})
        await wait_until(lambda: batcher.in_flight == 100, "the write began")
        for i in range(batcher.memory_cap):  # memory full: a tick spills it
            hass.states.async_set("sensor.next", str(i), {"unit_of_measurement": "W"})
        await wait_until(lambda: writes == 2, "the next write began")
        await wait_until(
            lambda: spool.count == batcher.memory_cap,
            "all but the written batch spooled",
        )
        spooled = [_value(line) for _, line in await spool.oldest(spool.count)]
        assert spooled == list(range(batcher.memory_cap))
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_hung_ping_does_not_keep_memory_from_the_spool(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """While InfluxDB cannot be reached, a ping that hangs keeps nothing from the spool.

    The ping is a delivery's first step: the flush loop goes on spooling meanwhile.
    """
    with (
        patch("custom_components.ha_ingestor.pipeline.health.FIRST_BACKOFF", 1000.0),
        patch("custom_components.ha_ingestor.pipeline.batcher.PROBE_INTERVAL", 0.2),
    ):
        entry = await _setup_v2(hass, influxdb_v2)
        pipeline = entry.runtime_data.pipeline
        await _spool_while_stopped(hass, influxdb_v2, entry, "sensor.first", 3)
        pinging = asyncio.Event()
        answered = asyncio.Event()

        async def hung_ping() -> bool:
            pinging.set()
            await answered.wait()
            return False

        with patch.object(pipeline.writer, "server_answers", hung_ping):
            await pinging.wait()
            for i in range(5):
                hass.states.async_set(
                    "sensor.second", str(i), {"unit_of_measurement": "W"}
                )
            await wait_until(
                lambda: pipeline.spool.count == 8, "spooled as the ping hangs"
            )
            answered.set()
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_hung_write_does_not_put_an_older_last_state_back(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A state spooled while an older one's write hangs stays the entity's last state.

    The hung batch is copied to the spool after the newer state was: its older
    fingerprint must not replace the newer one, or a restart would write it again.
    """
    async with influxdb_v2.writes_hanging():
        entry = await _setup_v2(hass, influxdb_v2, flush_interval=0.1)
        pipeline = entry.runtime_data.pipeline
        spool: Spool = pipeline.spool
        hass.states.async_set("sensor.device", "a", {"unit_of_measurement": "W"})
        await wait_until(lambda: pipeline.batcher.in_flight == 1, "the write began")
        hass.states.async_set("sensor.device", "b", {"unit_of_measurement": "W"})
        await wait_until(lambda: spool.count == 2, "b spooled, a's batch copied")
        newest = hass.states.get("sensor.device")
        assert newest is not None
        assert (await spool.last_states())["sensor.device"] == fingerprint(newest)
        assert await hass.config_entries.async_unload(entry.entry_id)


class _Gate:
    """Holds the digests of last states until opened: a step caught halfway."""

    def __init__(self, entry: MockConfigEntry) -> None:
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self._last_states: LastStates = entry.runtime_data.pipeline.batcher._last_states
        self._digest: Callable[
            [Iterable[State]], Coroutine[Any, Any, dict[str, str]]
        ] = self._last_states.async_fingerprints

    async def _held(self, states: list[State]) -> dict[str, str]:
        self.entered.set()
        await self.open.wait()
        return await self._digest(states)

    def __enter__(self) -> _Gate:
        self._patch = patch.object(self._last_states, "async_fingerprints", self._held)
        self._patch.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.open.set()  # nothing stays held, whatever the test found
        self._patch.stop()


async def _spooled(hass: HomeAssistant, entry: MockConfigEntry) -> Spool:
    """The unloaded entry's spool, opened again to read what it kept."""
    return await Spool.open(_spool_path(hass, entry), DEFAULT_SPOOL_MAX_MB << 20)


async def test_a_stop_saves_the_last_states_of_a_written_batch(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A stop while a written batch's last states are being saved waits for them.

    Else a restart would write those states again.
    """
    entry = await _setup_v2(hass, influxdb_v2)
    pipeline = entry.runtime_data.pipeline
    with _Gate(entry) as gate:
        hass.states.async_set("sensor.a", "1", {"unit_of_measurement": "W"})
        await gate.entered.wait()  # written, its last state being digested
        assert len(influxdb_v2.points("ha")) == 1
        unload = hass.async_create_task(
            hass.config_entries.async_unload(entry.entry_id)
        )
        await wait_until(lambda: pipeline._stop_once.stopping, "the stop began")
        gate.open.set()
        assert await unload
    assert len(influxdb_v2.points("ha")) == 1
    state = hass.states.get("sensor.a")
    assert state is not None
    spool = await _spooled(hass, entry)
    try:
        assert (await spool.last_states()).get("sensor.a") == fingerprint(state)
    finally:
        await spool.close()


async def test_a_stop_keeps_the_points_of_a_spill_under_way(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A spill cancelled halfway still puts its points in the spool.

    Home Assistant cancels the flush loop as it stops, wherever it is.
    """
    entry = await _setup_v2(hass, influxdb_v2)
    await _spool_while_stopped(hass, influxdb_v2, entry, "sensor.a", 1)
    pipeline = entry.runtime_data.pipeline
    with _Gate(entry) as gate:
        for i in range(1, 6):
            hass.states.async_set("sensor.a", str(i), {"unit_of_measurement": "W"})
        await gate.entered.wait()  # out of memory, their last states being digested
        flush_loop = pipeline._flush_loop
        assert flush_loop is not None
        # The cancellation reaches the spill's wait at once: opening the gate after
        # it cannot undo it.
        flush_loop.cancel("Home Assistant is stopping")
        gate.open.set()
        assert await hass.config_entries.async_unload(entry.entry_id)
    assert pipeline.stats.points_dropped == 0
    newest = hass.states.get("sensor.a")
    assert newest is not None
    spool = await _spooled(hass, entry)
    try:
        assert spool.count == 6
        assert (await spool.last_states())["sensor.a"] == fingerprint(newest)
    finally:
        await spool.close()


class _HeldCopy:
    """A hung write, and a spool whose appends are held once stored until opened.

    The first append after the write began is the batch's copy: stored in the
    spool, its ids not yet handed back to the batcher.
    """

    def __init__(self, entry: MockConfigEntry) -> None:
        self.pipeline = entry.runtime_data.pipeline
        self.release_write = asyncio.Event()
        self.given_up = asyncio.Event()
        self.stored = asyncio.Event()
        self.open = asyncio.Event()
        self.lines: list[str] = []
        self._store: Callable[..., Coroutine[Any, Any, range]] = (
            self.pipeline.spool.append
        )
        self._patches = contextlib.ExitStack()

    async def _write(self, lines: list[str]) -> None:
        if self.lines:  # the first write alone hangs; the others fail at once
            raise InfluxConnectionError("HTTP 503: busy")
        self.lines[:] = lines
        try:
            await self.release_write.wait()
        except asyncio.CancelledError:
            self.given_up.set()
            raise
        # It fails as the copy's ids come back: the batcher must wait for them.
        asyncio.get_running_loop().call_soon(self.open.set)
        raise InfluxConnectionError("HTTP 503: busy")

    async def _append(self, lines: list[str], **state: Any) -> range:
        appended = await self._store(lines, **state)
        self.stored.set()
        await self.open.wait()
        return appended

    def __enter__(self) -> _HeldCopy:
        self._patches.enter_context(
            patch.object(self.pipeline.writer, "write", self._write)
        )
        self._patches.enter_context(
            patch.object(self.pipeline.spool, "append", self._append)
        )
        return self

    def __exit__(self, *_: object) -> None:
        self.open.set()
        self._patches.close()


async def _spooled_lines(hass: HomeAssistant, entry: MockConfigEntry) -> list[str]:
    spool = await _spooled(hass, entry)
    try:
        return [line for _, line in await spool.oldest(100)]
    finally:
        await spool.close()


async def test_a_stop_during_the_copy_of_a_hung_write_keeps_it_once(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A stop while a hung write's batch is being copied: the batch is spooled once.

    Stopping cancels the flush loop as the copy is stored, its ids not yet known,
    then gives the write up: the copy must end, and the write leave its lines to
    it, not put them back in memory to be spooled a second time.
    """
    entry = await _setup_v2(hass, influxdb_v2, flush_interval=0.1)
    pipeline = entry.runtime_data.pipeline
    flush_loop = pipeline._flush_loop
    assert flush_loop is not None
    with _HeldCopy(entry) as held:
        hass.states.async_set("sensor.a", "1", {"unit_of_measurement": "W"})
        await held.stored.wait()  # copied an interval into the write
        assert pipeline.batcher.pending == 0
        unload = hass.async_create_task(
            hass.config_entries.async_unload(entry.entry_id)
        )
        await wait_until(lambda: flush_loop.cancelling() > 0, "the stop began")
        held.open.set()
        assert await unload
        assert held.given_up.is_set()
    assert pipeline.stats.points_dropped == 0
    assert await _spooled_lines(hass, entry) == held.lines


async def test_a_write_failing_during_its_copy_keeps_the_batch_once(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A write that fails while its batch's copy is being stored: spooled once."""
    entry = await _setup_v2(hass, influxdb_v2, flush_interval=0.1)
    pipeline = entry.runtime_data.pipeline
    with _HeldCopy(entry) as held:
        hass.states.async_set("sensor.a", "1", {"unit_of_measurement": "W"})
        await held.stored.wait()  # copied an interval into the write
        held.release_write.set()  # it fails, and the copy's ids come back
        await wait_until(lambda: pipeline.batcher.health.failing, "the write failed")
        assert pipeline.batcher.pending == 0
        assert pipeline.spool.count == 1
        assert await hass.config_entries.async_unload(entry.entry_id)
    assert pipeline.stats.points_dropped == 0
    assert await _spooled_lines(hass, entry) == held.lines


async def test_the_backoff_starts_again_once_a_batch_is_written(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A partial success ends the outage: writes work, the next wait is the first.

    The server takes the spool's first batch, then fails again: the backoff does not
    keep growing from where the outage left it, and the connection shows on between.
    """
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=v2_entry_data(influxdb_v2),
        options={CONF_FLUSH_INTERVAL: 60.0, CONF_BATCH_SIZE: 100},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    pipeline = entry.runtime_data.pipeline
    batcher = pipeline.batcher
    await _spool_while_stopped(hass, influxdb_v2, entry, "sensor.a", 150)
    health = batcher.health
    for _ in range(3):  # the backoff grows: 1, 2, 4, 8 s
        await batcher.flush()
    assert health.failing
    assert pipeline.spool.count == 150
    assert health._backoff._failures == 4

    await influxdb_v2.start()
    write = pipeline.client.write
    calls = 0
    seen: list[bool] = []

    async def first_write_only(body: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            seen.append(pipeline.connected)
            raise InfluxConnectionError("HTTP 503: busy")
        await write(body)

    with patch.object(pipeline.client, "write", first_write_only):
        assert await batcher.flush() is not None
    assert len(influxdb_v2.points("ha")) == 100
    assert seen == [True]  # on while InfluxDB took the first batch
    assert health.failing  # a new outage, counted from its first wait
    assert health._backoff._failures == 1
    assert pipeline.spool.count == 50
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_turn_of_the_loop_beyond_memory_waits_whole_for_the_spool(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """More state changes in one turn of the event loop than memory holds: none lost.

    Home Assistant's start, a heartbeat, or an integration setting many states at once
    in a big house with small batches: the spool has not had a turn yet, so memory
    keeps them all for it (limit: 2,000 lines here); all are written, none dropped.
    """
    await setup_entry(hass, config_entry, {CONF_BATCH_SIZE: 100})
    pipeline = config_entry.runtime_data.pipeline
    fire_power(hass, 0, 5_000)
    assert pipeline.batcher.pending == 5_000

    def stored() -> list[float]:
        return [
            row["value"] for row in influxdb.rows('SELECT "value" FROM "W"', database)
        ]

    await wait_until(lambda: len(stored()) == 5_000, "5,000 points", seconds=60)
    assert sorted(stored()) == [float(i) for i in range(5_000)]
    assert pipeline.stats.points_dropped_memory_full == 0
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_memory_never_holds_more_than_its_cap(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """InfluxDB down and the spool refusing everything (a full disk, say).

    Memory keeps ten batches; beyond them the oldest batch goes, counted, logged once.
    """
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=v2_entry_data(influxdb_v2),
        options={CONF_FLUSH_INTERVAL: 0.05, CONF_BATCH_SIZE: 100},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    pipeline = entry.runtime_data.pipeline
    batcher = pipeline.batcher
    await influxdb_v2.stop()
    full = SpoolError("Spool x: database or disk is full")
    times = []
    with patch.object(pipeline.spool, "append", side_effect=full):
        for i in range(1_250):
            hass.states.async_set("sensor.a", str(i), {"unit_of_measurement": "W"})
            times.append(_last_updated(hass, "sensor.a"))
            if i % 100 == 99:
                await asyncio.sleep(0.06)
                assert batcher.pending <= batcher.memory_cap
        await wait_until(lambda: batcher.spool_error is full, "the spool failed")
    assert batcher.memory_cap == 1_000
    assert pipeline.stats.points_dropped_memory_full >= 200
    assert batcher.pending + pipeline.stats.points_dropped_memory_full == 1_250
    # What InfluxDB misses, for the repair issue to write again from the recorder.
    dropped = pipeline.stats.points_dropped_memory_full
    assert pipeline.stats.dropped_span == (times[0], times[dropped - 1])
    assert caplog.text.count("the oldest are dropped") == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_full_spool_warns_once_per_run_of_drops(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At its limit the spool drops its oldest for every spill: one warning a run.

    Once a spill drops nothing (InfluxDB took the points), the next run warns again.
    """
    entry = MockConfigEntry(domain=DOMAIN, data=v2_entry_data(influxdb_v2))
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.05, CONF_SPOOL_MAX_MB: 16})
    pipeline = entry.runtime_data.pipeline
    warning = "The spool is full (16 MB): the oldest points waiting are dropped"
    await influxdb_v2.stop()
    fillers = await overflow_the_spool(hass, entry, 1)
    # Every spill of 500 from now on drops about as many.
    fillers += await overflow_the_spool(hass, entry, 2_000)
    assert caplog.text.count(warning) == 1
    dropped = pipeline.stats.points_dropped_spool_full
    assert pipeline.spool.count + dropped == fillers
    assert pipeline.stats.points_written == 0

    await influxdb_v2.start()
    await wait_until(lambda: pipeline.points_waiting == 0, "the spool written")
    assert pipeline.stats.points_written == fillers - dropped
    await influxdb_v2.stop()
    await overflow_the_spool(hass, entry, dropped + 1)
    assert caplog.text.count(warning) == 2
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_until_when_everything_received_is_durable(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """Noted when a delivery empties memory, and when memory goes to the spool.

    What a crash loses is newer: the next start looks for it in the recorder.
    """
    entry = await _setup_v2(hass, influxdb_v2)
    stats = entry.runtime_data.pipeline.stats
    before = dt_util.utcnow()
    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    await wait_until(
        lambda: stats.received_through is not None and stats.received_through > before,
        "written, and noted",
    )
    await influxdb_v2.stop()
    written = stats.received_through
    assert written is not None
    hass.states.async_set("sensor.power", "2", {"unit_of_measurement": "W"})
    spool = entry.runtime_data.pipeline.spool
    await wait_until(lambda: spool.count == 1, "in the spool")
    await wait_until(
        lambda: stats.received_through is not None and stats.received_through > written,
        "spooled, and noted",
    )
    await influxdb_v2.start()
    await wait_until(lambda: spool.count == 0, "the spool written")
    # Lines of the past are written like any other, and counted in the stats saved,
    # though they name no entity's last state.
    entry.runtime_data.pipeline.batcher.add("W,entity_id=old value=7.0 1000000", None)
    await wait_until(lambda: len(influxdb_v2.points("ha")) == 3, "3 points")

    async def saved_written() -> int:
        saved = await spool.stats()
        return 0 if saved is None else int(saved["points_written"])

    deadline = asyncio.get_running_loop().time() + 5
    while await saved_written() != 3:
        assert asyncio.get_running_loop().time() < deadline, await spool.stats()
        await asyncio.sleep(0.05)
    assert set(await spool.last_states()) == {"sensor.power"}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_newer_lines_wait_behind_a_hung_batch_the_spool_refuses(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """The spool refuses the copy of a hung batch: newer lines wait in memory too.

    Stored before it, they would be kept by a kill that loses the batch, and
    written before it. Once its write fails, the batch goes back to memory in front
    of them, and both are spooled in order once the spool works; until then,
    nothing received since the batch is noted durable.
    """
    entry = await _setup_v2(hass, influxdb_v2, flush_interval=0.1)
    pipeline = entry.runtime_data.pipeline
    spool: Spool = pipeline.spool
    stats, store = pipeline.stats, spool.append
    writing, fail = asyncio.Event(), asyncio.Event()
    refusing = True
    offered: list[list[str]] = []

    async def failing_write(_lines: list[str]) -> None:
        if not writing.is_set():  # the first write fails when told; others at once
            writing.set()
            await fail.wait()
        raise InfluxConnectionError("HTTP 503: busy")

    async def refusing_append(lines: list[str], **state: Any) -> range:
        offered.append([line.split(" ")[0] for line in lines])
        if refusing:
            raise SpoolError("Spool x: disk I/O error")
        return await store(lines, **state)

    a, b = "W,domain=sensor,entity_id=a", "W,domain=sensor,entity_id=b"
    with (
        patch.object(pipeline.writer, "write", failing_write),
        patch.object(spool, "append", refusing_append),
    ):
        before = stats.received_through
        hass.states.async_set("sensor.a", "1", {"unit_of_measurement": "W"})
        await writing.wait()
        hass.states.async_set("sensor.b", "2", {"unit_of_measurement": "W"})
        await wait_until(lambda: len(offered) >= 3, "three ticks into the write")
        # Each tick tried the hung batch's copy again; sensor.b was not offered.
        assert all(lines == [a] for lines in offered)
        fail.set()
        await wait_until(lambda: offered[-1] == [a, b], "both offered, in order")
        assert stats.received_through == before
        refusing = False
        await wait_until(lambda: spool.count == 2, "both spooled")
        assert stats.received_through != before
        assert await hass.config_entries.async_unload(entry.entry_id)
    assert pipeline.stats.points_dropped == 0
    assert [line.split(" ")[0] for line in await _spooled_lines(hass, entry)] == [a, b]


def _value(line: str) -> int:
    """The number a W point holds (the state it was set to, as fire_power sets it)."""
    return int(float(line.split(" value=")[1].split(" ", maxsplit=1)[0]))


@contextlib.asynccontextmanager
async def _influxdb_down_on_a_small_disk(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    entry: MockConfigEntry,
    *,
    flush_interval: float = 0.05,
) -> AsyncIterator[Path]:
    """`.storage` on a 12 MB tmpfs, `entry` set up on it, influxd killed.

    Yields `.storage`, for the test to fill.
    """
    storage = Path(hass.config.path(STORAGE_DIR))
    with tmpfs(storage, 12 << 20):
        await setup_entry(
            hass,
            entry,
            {
                CONF_FLUSH_INTERVAL: flush_interval,
                CONF_BATCH_SIZE: 100,
                CONF_SPOOL_MAX_MB: 16,
            },
        )
        await hass.async_add_executor_job(influxdb.kill)
        yield storage


def _assert_written_once_in_order(
    written: list[str], influxdb: InfluxDBv1Server, database: str, fired: int
) -> None:
    """The `fired` changes of sensor.power were written once each, oldest first."""
    assert [_value(line) for line in written] == list(range(fired))
    assert len(influxdb.rows('SELECT * FROM "W"', database)) == fired


@contextlib.contextmanager
def _lines_written(client: InfluxClient) -> Iterator[list[str]]:
    """The lines `client` writes meanwhile, in the order written."""
    written: list[str] = []
    write = client.write

    async def recorded(body: bytes) -> None:
        await write(body)
        written.extend(body.decode().splitlines())

    with patch.object(client, "write", recorded):
        yield written


async def _fire_until_points_wait_in_memory(
    hass: HomeAssistant, batcher: Batcher, spool: Spool, fired: int
) -> int:
    """On a filled disk, fire changes until the spool refuses them, then 200 more.

    `fired` were fired before; returns how many were fired in all. The last 200 at
    least wait in memory.
    """

    def disk_full() -> bool:
        return isinstance(batcher.spool_error, SpoolDiskFullError)

    while not disk_full():
        fire_power(hass, fired, fired + 200)
        fired += 200
        await wait_until(
            lambda: spool.count == fired or disk_full(),  # noqa: B023
            "spooled, or the disk full",
        )
    fire_power(hass, fired, fired + 200)
    fired += 200
    await wait_until(lambda: spool.count + batcher.pending == fired, "in memory")
    return fired


def _last_updated(hass: HomeAssistant, entity_id: str) -> datetime:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.last_updated


@pytest.mark.usefixtures("revive")
async def test_a_stop_on_a_full_disk_with_influxdb_down_counts_what_it_loses(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stopped while `.storage` is full and InfluxDB down: memory has nowhere to go.

    The points in memory are lost, and said: counted in Points dropped at stop,
    logged with their number, and the counters saved with them, so that the next
    start shows them (not zero) once the disk has room again. Their time is the
    repair issue's of dropped points, not a history gap as well.
    """
    async with _influxdb_down_on_a_small_disk(hass, influxdb, config_entry) as storage:
        pipeline = config_entry.runtime_data.pipeline
        batcher, spool, stats = pipeline.batcher, pipeline.spool, pipeline.stats
        fire_power(hass, 0, 500)
        await wait_until(lambda: spool.count == 500, "spooled")
        spooled_at = _last_updated(hass, "sensor.power")
        ballast = await hass.async_add_executor_job(fill, storage)
        fired = await _fire_until_points_wait_in_memory(hass, batcher, spool, 500)
        in_memory = batcher.pending
        assert in_memory >= 200

        assert await hass.config_entries.async_unload(config_entry.entry_id)
        assert stats.points_dropped_at_stop == in_memory
        assert (
            f"Neither InfluxDB nor the spool could take {in_memory} points: they are "
            "lost" in caplog.text
        )
        await hass.async_add_executor_job(ballast.unlink)
        assert await hass.config_entries.async_setup(config_entry.entry_id)
        restarted = config_entry.runtime_data.pipeline
        assert restarted.stats.points_dropped_at_stop == in_memory
        # Their time, for the repair issue to write again from the recorder: the
        # newest state changes, after those the spool took.
        span = restarted.stats.dropped_span
        assert span is not None
        assert spooled_at < span[0] < span[1] == _last_updated(hass, "sensor.power")
        # Not a history gap as well: one repair issue for one loss.
        through = restarted.stats_at_start.received_through
        assert through is not None
        assert through > span[1]
        assert restarted.spool.count == fired - in_memory
        assert await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_add_executor_job(influxdb.start)


@pytest.mark.usefixtures("revive")
async def test_a_full_disk_keeps_points_in_memory_then_drains_oldest_first(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """`.storage` on a disk that fills up while InfluxDB is down, then InfluxDB back.

    New points wait in memory, a repair issue names the spool and them; once
    InfluxDB is back, the spool is written and emptied although the disk is still
    full, then memory: every point once, oldest first. The issue clears when the
    spool stores again; nothing was dropped.
    """
    with patch("custom_components.ha_ingestor.pipeline.batcher.PROBE_INTERVAL", 0.2):
        async with _influxdb_down_on_a_small_disk(
            hass, influxdb, config_entry
        ) as storage:
            pipeline = config_entry.runtime_data.pipeline
            batcher, spool, stats = pipeline.batcher, pipeline.spool, pipeline.stats
            for start in range(0, 3_000, 500):
                fire_power(hass, start, start + 500)
                await wait_until(lambda: spool.count == start + 500, "spooled")  # noqa: B023

            await hass.async_add_executor_job(fill, storage)
            # The log's room on disk takes some more points, then memory keeps them.
            fired = await _fire_until_points_wait_in_memory(hass, batcher, spool, 3_000)
            assert fired < 10_000
            issue = issue_checked_now(hass, config_entry, ISSUE_DISK_FULL)
            assert issue is not None
            assert issue.severity is ir.IssueSeverity.ERROR
            text = render_issue(issue)
            assert str(spool.path) in text
            assert f"Meanwhile {batcher.pending} points wait in memory" in text
            assert 200 <= batcher.pending < batcher.memory_cap

            with _lines_written(pipeline.client) as written:
                await hass.async_add_executor_job(influxdb.start)
                await wait_until(
                    lambda: stats.points_written >= fired, "all written", seconds=30
                )
                await wait_until(
                    lambda: spool.count == batcher.pending == 0,
                    "spool and memory empty",
                )
            _assert_written_once_in_order(written, influxdb, database, fired)
            assert issue_checked_now(hass, config_entry, ISSUE_DISK_FULL) is None
            assert not isinstance(batcher.spool_error, SpoolDiskFullError)
            assert stats.points_dropped == 0
            assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_two_spills_refused_by_a_full_disk_keep_memory_in_order(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """A failed delivery spills memory, a tick spills newer lines: both are refused.

    Each spill puts what it took back in front of memory. Had the tick's taken the
    newer lines before the delivery's put the older ones back, the newer would end
    up in front, to be written (or dropped) first, and a later spill that the spool
    takes would store them before the older ones. Once the disk has room and
    InfluxDB is back, every point is written once, oldest first.
    """
    # Ticks only as a batch fills (every 30 s else): the test says when.
    async with _influxdb_down_on_a_small_disk(
        hass, influxdb, config_entry, flush_interval=60.0
    ) as storage:
        pipeline = config_entry.runtime_data.pipeline
        batcher: Batcher = pipeline.batcher
        spool: Spool = pipeline.spool
        stats = pipeline.stats
        ballast = await hass.async_add_executor_job(fill, storage)
        fired = await _fire_until_points_wait_in_memory(hass, batcher, spool, 0)
        older = batcher.pending

        store, release = spool.append, asyncio.Event()
        held: list[int] = []

        async def held_append(lines: list[str], **state: Any) -> range:
            held.append(len(lines))
            await release.wait()
            return await store(lines, **state)

        with patch.object(spool, "append", held_append):
            flushed = hass.async_create_task(batcher.flush())
            await wait_until(lambda: held == [older], "the failed delivery's spill")
            fire_power(hass, fired, fired + 100)  # a full batch: a tick
            fired += 100
            await wait_until(lambda: len(batcher._unfinished) == 2, "the tick's spill")
            release.set()
            assert await flushed is not None
            await wait_until(lambda: batcher.pending == older + 100, "all refused")
        assert isinstance(batcher.spool_error, SpoolDiskFullError)

        await hass.async_add_executor_job(ballast.unlink)
        await hass.async_add_executor_job(influxdb.start)
        with _lines_written(pipeline.client) as written:
            assert await batcher.flush() is None
        _assert_written_once_in_order(written, influxdb, database, fired)
        assert stats.points_dropped == 0
        assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_the_drops_of_memory_are_saved_on_their_own(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """A full disk, InfluxDB down, a burst: memory drops its oldest, and counts them.

    No spool transaction saves those drops (the spool stores nothing): their count
    and times are saved on their own, DROPS_SAVE_DELAY after the first of a run,
    using the reserve's room. A kill after that loses none of them.
    """
    async with _influxdb_down_on_a_small_disk(hass, influxdb, config_entry) as storage:
        pipeline = config_entry.runtime_data.pipeline
        batcher: Batcher = pipeline.batcher
        spool: Spool = pipeline.spool
        stats = pipeline.stats
        await hass.async_add_executor_job(fill, storage)
        fired = await _fire_until_points_wait_in_memory(hass, batcher, spool, 0)
        burst_at = time.monotonic()
        fire_power(hass, fired, fired + 2 * batcher.memory_cap)
        assert stats.points_dropped_memory_full >= batcher.memory_cap
        saved = await hass.async_add_executor_job(saved_stats, spool.path)
        assert saved.get("points_dropped_memory_full", 0) == 0

        def counted() -> dict[str, Any]:
            span = stats.dropped_span
            assert span is not None
            return {
                "points_dropped_memory_full": stats.points_dropped_memory_full,
                "dropped_from": span[0].isoformat(),
                "dropped_until": span[1].isoformat(),
            }

        for _ in range(100):  # 5 s
            saved = await hass.async_add_executor_job(saved_stats, spool.path)
            if saved.items() >= counted().items():
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"saved {saved}, counted {counted()}")
        # A second after the first drop, and the save's own time on a loaded machine.
        assert time.monotonic() - burst_at < 1 + 0.75
        assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_refused_points_a_full_disk_cannot_quarantine_are_counted(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """InfluxDB refuses points while `.storage` is full: the quarantine cannot keep them.

    They are lost, and said: logged, counted as dropped with their times (for the
    repair issue), and that count saved on its own soon after, as no spool
    transaction saves it.
    """
    seed_field_type_conflict(influxdb, database)
    storage = Path(hass.config.path(STORAGE_DIR))
    with tmpfs(storage, 12 << 20):
        await setup_entry(hass, config_entry, {CONF_FLUSH_INTERVAL: 0.05})
        pipeline = config_entry.runtime_data.pipeline
        spool: Spool = pipeline.spool
        stats = pipeline.stats
        await hass.async_add_executor_job(fill, storage)
        # Refused points of 16 kB: the log's room left on the disk takes a few.
        padding = "x" * 16384
        for refused in range(1, 200):
            hass.states.async_set(
                "sensor.power",
                str(refused),
                {"unit_of_measurement": "W", "padding": padding},
            )
            await wait_until(
                functools.partial(_handled, spool, stats, refused),
                "quarantined or dropped",
            )
            if stats.points_dropped_unquarantined:
                break
        assert stats.points_dropped_unquarantined == 1
        assert "Could not quarantine" in caplog.text
        span = stats.dropped_span
        assert span is not None
        state = hass.states.get("sensor.power")
        assert state is not None
        assert span == (state.last_updated, state.last_updated)
        counted = {
            "points_dropped_unquarantined": 1,
            "dropped_from": state.last_updated.isoformat(),
            "dropped_until": state.last_updated.isoformat(),
        }
        for _ in range(100):  # 5 s
            saved = await hass.async_add_executor_job(saved_stats, spool.path)
            if saved.items() >= counted.items():
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"saved {saved}, counted {counted}")
        assert await hass.config_entries.async_unload(config_entry.entry_id)


def _handled(spool: Spool, stats: PipelineStats, refused: int) -> bool:
    """Whether `refused` points are in the quarantine or dropped from it."""
    return spool.quarantined + stats.points_dropped_unquarantined == refused
