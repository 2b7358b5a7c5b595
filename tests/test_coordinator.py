"""The coordinator: one snapshot of the pipeline for the entities and the issues."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL
from custom_components.ha_ingestor.coordinator import RATE_WINDOW, IngestorCoordinator
from custom_components.ha_ingestor.influxdb.errors import InfluxUnreachableError

from .conftest import seed_field_type_conflict, setup_entry, wait_until
from .influxdb_v1_server import InfluxDBv1Server
from .repair_issues import fire_power

FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.05}


async def test_the_snapshot_is_what_the_pipeline_counted(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Each figure, named as in the stats, read from the pipeline at one moment."""
    seed_field_type_conflict(influxdb, database)
    await setup_entry(hass, config_entry, FAST_FLUSH)
    data = config_entry.runtime_data
    pipeline = data.pipeline
    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    hass.states.async_set(
        "sensor.temperature", "21", {"unit_of_measurement": "°C", "x": float("nan")}
    )
    await wait_until(
        lambda: pipeline.stats.points_written == 1 and pipeline.spool.quarantined == 1,
        "one written, one quarantined",
    )
    snapshot = data.coordinator.snapshot()
    stats = pipeline.stats
    assert snapshot.connected
    assert (snapshot.failing_since, snapshot.last_error) == (None, None)
    assert snapshot.state_changes_received == stats.state_changes_received
    assert (snapshot.points_written, snapshot.points_refused) == (1, 1)
    assert snapshot.points_quarantined == 1
    assert snapshot.non_finite_values_skipped == 1
    assert (snapshot.points_dropped, snapshot.points_dropped_spool_full) == (0, 0)
    assert snapshot.points_dropped_unacknowledged == 0
    assert (snapshot.points_waiting, snapshot.spool_bytes) == (0, 0)
    assert snapshot.spool_max_bytes == pipeline.spool.max_bytes
    assert 0 < snapshot.spool_fill == pipeline.spool.fill < 0.01
    assert snapshot.last_write == stats.last_write is not None
    assert snapshot.last_write_latency_ms is not None
    assert snapshot.mirror_rows is None  # no mirror
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
@pytest.mark.freeze_time(tick=True)
async def test_the_snapshot_is_taken_every_15_seconds(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Never once per state change: what was counted shows at the next tick."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    coordinator = config_entry.runtime_data.coordinator
    stats = config_entry.runtime_data.pipeline.stats
    fire_power(hass, 0, 3)
    await wait_until(lambda: stats.points_written == 3, "3 points written")
    assert coordinator.data.points_written == 0
    # The clock ticks on its own as well: 3 s are left for the setup and the writes.
    freezer.tick(timedelta(seconds=12))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert coordinator.data.points_written == 0
    freezer.tick(timedelta(seconds=4))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert coordinator.data.points_written == 3
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_a_failed_write_updates_the_entities_at_once(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """Not at the next 15 s tick: failing and working again show within seconds."""
    with patch("custom_components.ha_ingestor.pipeline.batcher.PROBE_INTERVAL", 0.2):
        await setup_entry(hass, config_entry, FAST_FLUSH)
        coordinator = config_entry.runtime_data.coordinator
        assert coordinator.data.connected
        await hass.async_add_executor_job(influxdb.kill)
        hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
        await wait_until(
            lambda: not coordinator.data.connected, "the snapshot says so", seconds=5
        )
        assert isinstance(coordinator.data.last_error, InfluxUnreachableError)
        assert coordinator.data.failing_since is not None
        await hass.async_add_executor_job(influxdb.start)
        await wait_until(lambda: coordinator.data.connected, "connected", seconds=5)
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_events_per_minute_over_the_last_minute(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """The rate is taken at each update, over the samples of the last minute.

    Reading a snapshot (diagnostics, the issues) does not take a sample.
    """
    await setup_entry(hass, config_entry, FAST_FLUSH)
    coordinator: IngestorCoordinator = config_entry.runtime_data.coordinator
    stats = config_entry.runtime_data.pipeline.stats

    def updated_rate() -> float | None:
        coordinator.async_update_now()
        return coordinator.data.events_per_minute

    clock = [1000.0]
    with patch(
        "custom_components.ha_ingestor.coordinator.time.monotonic",
        side_effect=lambda: clock[0],
    ):
        coordinator._samples.clear()
        received = stats.state_changes_received
        assert updated_rate() is None  # one sample: no rate yet
        stats.state_changes_received = received + 30
        clock[0] += 30
        for _ in range(5):
            assert coordinator.snapshot().events_per_minute is None
        assert updated_rate() == 60.0
        # A minute later, the first sample has left the window.
        stats.state_changes_received = received + 40
        clock[0] += RATE_WINDOW
        assert updated_rate() == 10.0
    assert await hass.config_entries.async_unload(config_entry.entry_id)
