"""The batcher when writes fail: outages, 503s and rejected points."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.const import CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import STORAGE_DIR
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    CONF_FLUSH_INTERVAL,
    CONF_SPOOL_MAX_MB,
    DOMAIN,
)
from custom_components.ha_ingestor.influxdb.errors import InfluxConnectionError
from custom_components.ha_ingestor.issues import ISSUE_DISK_FULL
from custom_components.ha_ingestor.storage.spool import (
    Appended,
    Spool,
    SpoolDiskFullError,
    SpoolError,
)

from ..conftest import (
    seed_field_type_conflict,
    setup_entry,
    silent_server,
    v2_entry_data,
    wait_until,
)
from ..influxdb_v1_server import InfluxDBv1Server
from ..influxdb_v2_server import InfluxDBv2TestServer
from ..repair_issues import fire_power, issue_checked_now, render_issue
from ..tmpfs import fill, tmpfs


async def _setup_v2(
    hass: HomeAssistant, server: InfluxDBv2TestServer, **data: str
) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=v2_entry_data(server) | data,
        options={CONF_FLUSH_INTERVAL: 0.05},
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
    """Once the server is back, the catch-up starts at the next ping, not the retry."""
    # Every backoff is now at least 150 s: only the ping can bring the points in time.
    with (
        patch("custom_components.ha_ingestor.pipeline.health.FIRST_BACKOFF", 1000.0),
        patch("custom_components.ha_ingestor.pipeline.batcher.PROBE_INTERVAL", 0.2),
    ):
        entry = await _setup_v2(hass, influxdb_v2)
        batcher = entry.runtime_data.pipeline.batcher
        spool = entry.runtime_data.pipeline.spool
        await _spool_while_stopped(hass, influxdb_v2, entry, "sensor.probe", 100)
        requests_before = len(influxdb_v2.requests)

        await influxdb_v2.start()
        await wait_until(
            lambda: len(influxdb_v2.points("ha")) == 100, "100 points", seconds=5
        )
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
        entry = await _setup_v2(hass, influxdb_v2, **{CONF_TOKEN: "revoked"})
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

    async def slow_append(lines: list[str], **state: Any) -> Appended:
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
        gate.set()
        await wait_until(lambda: spool.count == 8, "8 points in the spool")
    assert pipeline.batcher.pending == 0
    assert pipeline.points_waiting == 8
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_hung_write_does_not_keep_memory_from_the_spool(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A server that never answers: memory reaches the spool every flush interval.

    The batch whose write hangs is copied to the spool too, once the write has taken
    longer than an interval; so a hard kill would lose an interval at most.
    """
    async with silent_server() as url:
        entry = MockConfigEntry(
            domain=DOMAIN,
            data=v2_entry_data(influxdb_v2) | {CONF_URL: url},
            options={CONF_FLUSH_INTERVAL: 0.1},
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        pipeline = entry.runtime_data.pipeline
        spool: Spool = pipeline.spool
        hass.states.async_set("sensor.first", "1", {"unit_of_measurement": "W"})
        # Its write starts, and hangs until the request times out (10 s).
        await wait_until(lambda: pipeline.batcher.in_flight == 1, "the write began")
        for i in range(5):
            hass.states.async_set("sensor.next", str(i), {"unit_of_measurement": "W"})
        await wait_until(lambda: spool.count == 6, "all six in the spool", seconds=5)
        assert pipeline.batcher.pending == 0
        assert pipeline.batcher.in_flight == 0  # its copy is in the spool
        assert pipeline.points_waiting == 6
        assert not pipeline.batcher.health.failing  # the write has not failed yet
        assert await hass.config_entries.async_unload(entry.entry_id)


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
    with patch.object(pipeline.spool, "append", side_effect=full):
        for i in range(1_250):
            hass.states.async_set("sensor.a", str(i), {"unit_of_measurement": "W"})
            if i % 100 == 99:
                await asyncio.sleep(0.06)
                assert batcher.pending <= batcher.memory_cap
        await wait_until(lambda: batcher.spool_error is full, "the spool failed")
    assert batcher.memory_cap == 1_000
    assert pipeline.stats.points_dropped_memory_full >= 200
    assert batcher.pending + pipeline.stats.points_dropped_memory_full == 1_250
    assert caplog.text.count("the oldest are dropped") == 1
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


def _value(line: str) -> int:
    """The value a point of sensor.power holds (its number in fire_power)."""
    return int(float(line.split(" value=")[1].split(" ", maxsplit=1)[0]))


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
    storage = Path(hass.config.path(STORAGE_DIR))
    with (
        tmpfs(storage, 12 << 20),
        patch("custom_components.ha_ingestor.pipeline.batcher.PROBE_INTERVAL", 0.2),
    ):
        await setup_entry(
            hass,
            config_entry,
            {CONF_FLUSH_INTERVAL: 0.05, CONF_BATCH_SIZE: 100, CONF_SPOOL_MAX_MB: 16},
        )
        pipeline = config_entry.runtime_data.pipeline
        batcher, spool, stats = pipeline.batcher, pipeline.spool, pipeline.stats
        await hass.async_add_executor_job(influxdb.kill)
        for start in range(0, 3_000, 500):
            fire_power(hass, start, start + 500)
            await wait_until(lambda: spool.count == start + 500, "spooled")  # noqa: B023

        await hass.async_add_executor_job(fill, storage)

        def disk_full() -> bool:
            return isinstance(batcher.spool_error, SpoolDiskFullError)

        # The log's room on disk takes some more points, then memory keeps them.
        fired = 3_000
        while not disk_full():
            fire_power(hass, fired, fired + 200)
            fired += 200
            await wait_until(
                lambda: spool.count == fired or disk_full(),  # noqa: B023
                "spooled, or the disk full",
            )
        assert fired < 10_000
        fire_power(hass, fired, fired + 200)
        fired += 200
        await wait_until(lambda: spool.count + batcher.pending == fired, "in memory")
        issue = issue_checked_now(hass, config_entry, ISSUE_DISK_FULL)
        assert issue is not None
        assert issue.severity is ir.IssueSeverity.ERROR
        text = render_issue(issue)
        assert str(spool.path) in text
        assert f"Meanwhile {batcher.pending} points wait in memory" in text
        assert 200 <= batcher.pending < batcher.memory_cap

        written: list[str] = []
        write = pipeline.client.write

        async def recorded(body: bytes) -> None:
            await write(body)
            written.extend(body.decode().splitlines())

        with patch.object(pipeline.client, "write", recorded):
            await hass.async_add_executor_job(influxdb.start)
            await wait_until(
                lambda: stats.points_written >= fired, "all written", seconds=30
            )
            await wait_until(
                lambda: spool.count == batcher.pending == 0, "spool and memory empty"
            )
        assert [_value(line) for line in written] == list(range(fired))
        assert len(influxdb.rows('SELECT * FROM "W"', database)) == fired
        assert issue_checked_now(hass, config_entry, ISSUE_DISK_FULL) is None
        assert not disk_full()
        assert stats.points_dropped == 0
        assert await hass.config_entries.async_unload(config_entry.entry_id)
