"""The stats: one object every stage counts in, kept across restarts under one name each."""

from __future__ import annotations

import datetime as dt
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL, DOMAIN
from custom_components.ha_ingestor.pipeline.stats import (
    PipelineStats,
    StatsStore,
    stats_to_dict,
)
from custom_components.ha_ingestor.storage.spool import Spool

from ..conftest import restarted, setup_entry, wait_until
from ..influxdb_v1_server import InfluxDBv1Server

FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.05}
ENTRY_ID = "01JABCDEF0000000000000000"


KEY = f"{DOMAIN}.{ENTRY_ID}.counters"


async def test_saved_in_the_spool_under_one_name_each(
    hass: HomeAssistant, spool: Spool
) -> None:
    """Every count and time survive a save and a load; names are the fields'."""
    store = StatsStore(hass, ENTRY_ID, spool)
    stats = await store.async_load()
    assert stats == PipelineStats()
    stats.state_changes_received = 7
    stats.points_written = 5
    stats.points_refused = 1
    stats.points_dropped_spool_full = 3
    stats.points_dropped_memory_full = 8
    stats.points_dropped_at_stop = 9
    stats.points_dropped_unquarantined = 10
    stats.points_dropped_acknowledged = 2
    stats.non_finite_values_skipped = 4
    stats.last_write = dt.datetime(2026, 12, 1, 12, 30, tzinfo=dt.UTC)
    stats.received_through = dt.datetime(2026, 12, 1, 12, 31, tzinfo=dt.UTC)
    stats.dropped_from = dt.datetime(2026, 11, 30, 8, 0, 0, 1, tzinfo=dt.UTC)
    stats.dropped_until = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    await spool.import_state({}, stats_to_dict(stats))

    assert await StatsStore(hass, ENTRY_ID, spool).async_load() == stats
    assert await spool.stats() == {
        "state_changes_received": 7,
        "points_written": 5,
        "points_refused": 1,
        "points_dropped_spool_full": 3,
        "points_dropped_memory_full": 8,
        "points_dropped_at_stop": 9,
        "points_dropped_unquarantined": 10,
        "points_dropped_acknowledged": 2,
        "non_finite_values_skipped": 4,
        "last_write": "2026-12-01T12:30:00+00:00",
        "received_through": "2026-12-01T12:31:00+00:00",
        "dropped_from": "2026-11-30T08:00:00.000001+00:00",
        "dropped_until": "2026-11-30T09:00:00+00:00",
    }
    stored = await spool.stats()
    assert stored is not None
    times = {"last_write", "received_through", "dropped_from", "dropped_until"}
    assert stats.counts() == {k: v for k, v in stored.items() if k not in times}
    assert stats.points_dropped == 3 + 8 + 9 + 10
    assert stats.points_dropped_unacknowledged == 30 - 2


def test_the_span_of_dropped_times_widens_until_acknowledged() -> None:
    """Each drop widens it, older or newer; acknowledging the drops forgets it."""
    stats = PipelineStats()
    at = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    stats.note_dropped(None)
    assert (stats.dropped_from, stats.dropped_until) == (None, None)
    stats.note_dropped((at, at + minute))
    stats.note_dropped((at - minute, at))  # older: a backfill's, or the spool's
    stats.note_dropped((at + minute, at + 2 * minute))
    stats.note_dropped(None)
    assert stats.dropped_span == (at - minute, at + 2 * minute)
    stats.points_dropped_memory_full = 5
    stats.acknowledge_dropped()
    assert (stats.dropped_from, stats.points_dropped_unacknowledged) == (None, 0)


async def test_counters_of_version_1_are_taken_over_renamed_not_reset(
    hass: HomeAssistant, spool: Spool, hass_storage: dict[str, Any]
) -> None:
    """The `.storage` file of a version before 0.2 loads with every total kept.

    Its five spellings are renamed; it is removed once the totals are in the spool.
    """
    hass_storage[KEY] = {
        "version": 1,
        "minor_version": 1,
        "key": KEY,
        "data": {
            "state_changes_received": 100,
            "points_written": 90,
            "dropped_non_finite": 4,
            "dropped_quarantined": 6,
            "dropped_spool_full": 3,
            "dropped_spool_full_acknowledged": 3,
            "last_write": "2026-11-30T08:00:00+00:00",
        },
    }
    expected = PipelineStats(
        state_changes_received=100,
        points_written=90,
        points_refused=6,
        points_dropped_spool_full=3,
        points_dropped_acknowledged=3,
        non_finite_values_skipped=4,
        last_write=dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC),
    )
    assert await StatsStore(hass, ENTRY_ID, spool).async_load() == expected
    await hass.async_block_till_done()
    assert KEY not in hass_storage
    assert await StatsStore(hass, ENTRY_ID, spool).async_load() == expected


async def test_unreadable_values_start_at_zero(
    hass: HomeAssistant, spool: Spool
) -> None:
    """A hand-edited row with wrong types loses those values, not the others."""
    await spool.import_state(
        {}, {"points_written": "many", "points_refused": 2, "last_write": 12}
    )
    stats = await StatsStore(hass, ENTRY_ID, spool).async_load()
    assert stats == PipelineStats(points_refused=2)


async def test_counters_survive_a_restart(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Totals go on where they were; last write is still known before a new one."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    for i in range(10):
        hass.states.async_set(
            "sensor.power", str(i), {"unit_of_measurement": "W", "x": float("inf")}
        )
    counters = config_entry.runtime_data.pipeline.stats
    await wait_until(lambda: counters.points_written == 10, "10 written")
    received = counters.state_changes_received
    last_write = counters.last_write
    await hass.async_stop()

    async with restarted(hass, config_entry) as second:
        entry = second.config_entries.async_entries(DOMAIN)[0]
        again = entry.runtime_data.pipeline.stats
        assert again.points_written == 10
        assert again.non_finite_values_skipped == 10
        assert again.state_changes_received >= received
        assert again.last_write == last_write
        for i in range(5):
            second.states.async_set(
                "sensor.power", str(i + 10), {"unit_of_measurement": "W"}
            )
        await wait_until(lambda: again.points_written == 15, "15 written")
        await entry.runtime_data.coordinator.async_refresh()
        entity_id = er.async_get(second).async_get_entity_id(
            "sensor", DOMAIN, f"{config_entry.entry_id}_points_written"
        )
        assert entity_id is not None
        state = second.states.get(entity_id)
        assert state is not None
        assert state.state == "15"
    assert len(influxdb.rows('SELECT * FROM "W"', database)) == 15
