"""Backfill from Home Assistant's real recorder (SQLite on disk) into a real InfluxDB 1.x.

The recorder is filled through the state machine, as a house fills it (house_history):
every point backfilled is then read back from InfluxDB and compared with the point
the live encoder makes of the same state change, for both presets.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
import os
import time
from typing import Any
from unittest.mock import patch
import uuid

from homeassistant.components.recorder.core import Recorder
from homeassistant.components.recorder.db_schema import States
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.config_entries import ConfigEntryDisabler, ConfigEntryState
from homeassistant.const import ATTR_CONFIG_ENTRY_ID, ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.recorder import session_scope
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_purge_done,
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import RecorderInstanceContextManager
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from custom_components.ha_ingestor.const import (
    BACKFILL_PACE_RANGE,
    CONF_BACKFILL_PACE,
    CONF_EXCLUDE_ENTITIES,
    CONF_FLUSH_INTERVAL,
    CONF_HISTORY_BACKFILL,
    CONF_PRESET,
    CONF_SPOOL_MAX_MB,
    DEFAULT_BATCH_SIZE,
    DOMAIN,
    PRESET_CORE_COMPATIBLE,
    PRESET_RICH,
)
from custom_components.ha_ingestor.coordinator import HaIngestorConfigEntry
from custom_components.ha_ingestor.diagnostics import async_get_config_entry_diagnostics
from custom_components.ha_ingestor.issues import (
    HISTORY_GAP_PARTLY_UNRECORDED,
    ISSUE_HISTORY_GAP,
    ISSUE_POINTS_DROPPED,
)
from custom_components.ha_ingestor.line_protocol import create_encoder
from custom_components.ha_ingestor.line_protocol.encoder import timestamp_us
from custom_components.ha_ingestor.pipeline.backfill import (
    BACKLOG_BATCHES,
    SLICE_POINTS,
    Backfill,
)
from custom_components.ha_ingestor.pipeline.backfill_state import (
    BackfillSource,
    BackfillStatus,
    HistoryGap,
)
from custom_components.ha_ingestor.pipeline.filters import StateFilter
from custom_components.ha_ingestor.pipeline.history import Chunk, read_chunk
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import RegistryCache
from custom_components.ha_ingestor.services import (
    ATTR_END,
    ATTR_START,
    SERVICE_BACKFILL,
    SERVICE_CANCEL_BACKFILL,
)

from ..conftest import (
    damaged_recorder_database,
    overflow_the_spool,
    record_past_states,
    restarted,
    setup_entry,
    v1_entry_data,
    wait_until,
)
from ..influxdb_v1_server import InfluxDBv1Server
from ..repair_issues import issue_checked_now, issue_of, render_issue, submit_fix
from .house_history import LiveChange, as_recorded, fill_history, renamed

# The history the suite fills, as issue 16 asks: 100,000 changes (about 3.5 minutes,
# hence the test's own time limit).
CHANGES = int(os.environ.get("HA_INGESTOR_BACKFILL_CHANGES", "100000"))
ENTITIES = 500
DAYS = 30
FAST = {CONF_FLUSH_INTERVAL: 0.1, CONF_BACKFILL_PACE: BACKFILL_PACE_RANGE[1]}


@pytest.fixture
def persistent_database() -> bool:
    """The recorder's database is a file, as at home (WAL, a second connection)."""
    return True


@pytest.fixture
async def mock_recorder_before_hass(
    async_test_recorder: RecorderInstanceContextManager,
) -> None:
    """Let tests set up the recorder (recorder_mock) before Home Assistant."""


@pytest.fixture(autouse=True)
def quiet(quiet_sqlalchemy: None) -> None:
    """The recorder's statements are not logged."""


def _entry(influxdb: InfluxDBv1Server, database: str) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=database,
        unique_id=f"{influxdb.url}/{database}",
        data=v1_entry_data(influxdb, database),
    )


def _new_database(influxdb: InfluxDBv1Server) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    influxdb.query(f'CREATE DATABASE "{name}"')
    return name


def expected_lines(
    hass: HomeAssistant, options: dict[str, Any], handed: list[LiveChange]
) -> list[str]:
    """The lines live ingestion writes for these changes, under the recorder's ids."""
    registry = RegistryCache(hass)
    keep = StateFilter(options, registry)
    encode = create_encoder(options, registry, PipelineStats())
    lines = []
    for change in handed:
        recorded = as_recorded(change, renamed)
        if keep(recorded.state) and (
            line := encode(recorded.state, recorded.old_state, recorded.time_us)
        ):
            lines.append(line)
    return lines


def write_lines(influxdb: InfluxDBv1Server, database: str, lines: list[str]) -> None:
    """Write lines as they are (microseconds), in batches InfluxDB takes whole."""
    for start in range(0, len(lines), 5000):
        body = "\n".join(lines[start : start + 5000]).encode()
        status, answer = influxdb.request(
            "POST", "/write", {"db": database, "precision": "u"}, body
        )
        assert status == 204, answer


def stored_points(
    influxdb: InfluxDBv1Server, database: str
) -> list[tuple[str, tuple[tuple[str, str], ...], int, tuple[tuple[str, Any], ...]]]:
    """Every point of a database: measurement, tags, time, fields, sorted."""
    points = []
    for series in influxdb.query("SELECT * FROM /.*/ GROUP BY *", database):
        assert not series.get("partial"), "InfluxDB cut the answer short"
        tags = tuple(sorted(series.get("tags", {}).items()))
        columns = series["columns"]
        for values in series["values"]:
            row = dict(zip(columns, values, strict=True))
            fields = tuple(
                sorted((k, v) for k, v in row.items() if k != "time" and v is not None)
            )
            points.append((series["name"], tags, row["time"], fields))
    return sorted(points, key=repr)


async def _backfill_and_wait(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    response = await hass.services.async_call(
        DOMAIN,
        SERVICE_BACKFILL,
        {ATTR_CONFIG_ENTRY_ID: entry.entry_id},
        blocking=True,
        return_response=True,
    )
    backfill = entry.runtime_data.backfill
    await wait_until(lambda: not backfill.running, "the backfill is done", seconds=600)
    progress = backfill.progress()
    assert progress is not None
    assert progress.status is BackfillStatus.DONE, progress.error
    await _all_written(entry)
    return response


async def _all_written(entry: MockConfigEntry) -> None:
    """Wait until InfluxDB has every point handed on, none dropped or refused.

    A backfill is done once what it handed on is durable: a batch whose write failed
    waits in the spool for the next delivery.
    """
    pipeline = entry.runtime_data.pipeline
    await wait_until(lambda: pipeline.points_waiting == 0, "nothing waits", seconds=60)
    stats = pipeline.stats
    assert stats.points_dropped == 0, stats
    assert stats.points_refused == 0


def assert_same_points(actual: list[Any], expected: list[Any]) -> None:
    """Compare two databases' points, naming a few that differ.

    pytest's own diff of a hundred thousand points takes longer than the test.
    """
    missing = sorted(set(expected) - set(actual), key=repr)
    extra = sorted(set(actual) - set(expected), key=repr)
    same = not missing and not extra and len(actual) == len(expected)
    assert same, (
        f"{len(actual)} points, {len(expected)} expected; {len(missing)} missing,"
        f" such as {missing[:3]}; {len(extra)} not expected, such as {extra[:3]}"
    )


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("recorder_mock")
async def test_backfilled_points_are_the_live_points(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """30 days of a house, both presets: every point equals its live point, once."""
    end = time.time() - 3600
    handed = await fill_history(
        hass, changes=CHANGES, entities=ENTITIES, start=end - DAYS * 86400, end=end
    )
    await async_wait_recording_done(hass)
    assert len({change.state.entity_id for change in handed}) > ENTITIES

    databases = {PRESET_CORE_COMPATIBLE: database, PRESET_RICH: _new_database(influxdb)}
    entries = {}
    for preset, name in databases.items():
        entries[preset] = _entry(influxdb, name)
        await setup_entry(hass, entries[preset], FAST | {CONF_PRESET: preset})
    try:
        for preset, entry in entries.items():
            response = await _backfill_and_wait(hass, entry)
            # Every row of the recorder: the changes, the one removal, and the
            # states of the entities set up before the entry.
            assert response["state_changes"] >= len(handed) + 1
            progress = entry.runtime_data.backfill.progress()
            assert progress is not None
            assert progress.read == progress.state_changes
            expected = _new_database(influxdb)
            write_lines(
                influxdb,
                expected,
                expected_lines(hass, dict(entry.options), handed),
            )
            backfilled = stored_points(influxdb, databases[preset])
            assert_same_points(backfilled, stored_points(influxdb, expected))
            assert len(backfilled) >= CHANGES * 0.9

        # The same backfill again: InfluxDB keeps each point once.
        entry = entries[PRESET_RICH]
        await _backfill_and_wait(hass, entry)
        assert_same_points(
            stored_points(influxdb, databases[PRESET_RICH]),
            stored_points(influxdb, expected),
        )
    finally:
        for entry in entries.values():
            assert await hass.config_entries.async_unload(entry.entry_id)
        influxdb.query(f'DROP DATABASE "{databases[PRESET_RICH]}"')


async def _wait_done(entry: HaIngestorConfigEntry) -> None:
    backfill = entry.runtime_data.backfill
    await wait_until(
        lambda: (
            (progress := backfill.progress()) is not None
            and progress.status is not BackfillStatus.RUNNING
        ),
        "the backfill is done",
        seconds=120,
    )
    progress = backfill.progress()
    assert progress is not None
    assert progress.status is BackfillStatus.DONE, progress.error


async def test_a_restart_continues_where_the_backfill_stopped(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    async_test_recorder: RecorderInstanceContextManager,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """Home Assistant stops mid-backfill; the next start goes on, nothing twice."""
    end = time.time() - 3600
    handed = await fill_history(
        hass, changes=3000, entities=100, start=end - 86400, end=end
    )
    await async_wait_recording_done(hass)
    entry = _entry(influxdb, database)
    # Slow enough to stop in the middle.
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.1, CONF_BACKFILL_PACE: 500})
    expected = expected_lines(hass, dict(entry.options), handed)
    await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
    backfill = entry.runtime_data.backfill
    await wait_until(
        lambda: (progress := backfill.progress()) is not None and progress.read >= 1000,
        "a third read",
    )
    await hass.async_stop()
    first = entry.runtime_data.pipeline.stats.points_written
    assert 0 < first < len(expected)

    async with restarted(hass, entry, recorder=async_test_recorder) as second:
        (same,) = second.config_entries.async_entries(DOMAIN)
        await _wait_done(same)
        stats = same.runtime_data.pipeline.stats
        await wait_until(
            lambda: stats.points_written == len(expected), "every point written"
        )
        expected_database = _new_database(influxdb)
        write_lines(influxdb, expected_database, expected)
        assert_same_points(
            stored_points(influxdb, database),
            stored_points(influxdb, expected_database),
        )
        # Each point was handed on and written once, before and after.
        progress = same.runtime_data.backfill.progress()
        assert progress is not None
        assert progress.written == len(expected)
    influxdb.query(f'DROP DATABASE "{expected_database}"')


async def test_a_gap_is_found_and_filled_by_its_repair_flow(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """Disabled for a while: the issue says how long and how much; its fix fills it."""
    assert await async_setup_component(hass, "repairs", {})
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.05})
    for watts in range(50):
        hass.states.async_set("sensor.power", str(watts), {"unit_of_measurement": "W"})
    stats = entry.runtime_data.pipeline.stats
    await wait_until(lambda: stats.points_written == 50, "the live points")

    await hass.config_entries.async_set_disabled_by(
        entry.entry_id, ConfigEntryDisabler.USER
    )
    for watts in range(50, 170):
        hass.states.async_set("sensor.power", str(watts), {"unit_of_measurement": "W"})
    await async_wait_recording_done(hass)
    await hass.config_entries.async_set_disabled_by(entry.entry_id, None)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    await wait_until(
        lambda: issue_checked_now(hass, entry, ISSUE_HISTORY_GAP) is not None,
        "the gap's issue",
    )
    issue = issue_of(hass, entry, ISSUE_HISTORY_GAP)
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_key == ISSUE_HISTORY_GAP  # all in the recorder
    placeholders = issue.translation_placeholders or {}
    assert placeholders["count"] == "120"
    text = render_issue(issue)
    assert "The recorder holds 120 state changes of that time" in text
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    (gap,) = diagnostics["history_backfill"]["gaps"]
    assert (gap["state_changes"], gap["unrecorded_seconds"]) == (120, 0)
    assert gap["start"] < gap["end"]

    await submit_fix(hass, issue)
    await _wait_done(entry)
    # Counted in InfluxDB: the entry's own entities' states may be written meanwhile.
    await wait_until(
        lambda: len(influxdb.rows('SELECT "value" FROM "W"', database)) >= 170,
        "the gap written",
    )
    rows = influxdb.rows('SELECT "value" FROM "W"', database)
    assert [row["value"] for row in rows] == [float(watts) for watts in range(170)]
    # Exactly the gap: no point written twice.
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert (progress.written, progress.skipped) == (120, 0)
    entry.runtime_data.coordinator.async_update_now()
    assert issue_of(hass, entry, ISSUE_HISTORY_GAP) is None
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["history_backfill"]["gaps"] == []
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_recorder_that_cannot_be_read_for_a_gap_stops_nothing(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The look for a gap fails (a damaged database): said, nothing else.

    It ended the backfill's start: a backfill under way was not continued, and
    unloading the entry raised the error.
    """
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.05})
    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    stats = entry.runtime_data.pipeline.stats
    await wait_until(lambda: stats.points_written == 1, "the live point")
    await hass.config_entries.async_set_disabled_by(
        entry.entry_id, ConfigEntryDisabler.USER
    )
    hass.states.async_set("sensor.power", "2", {"unit_of_measurement": "W"})
    await async_wait_recording_done(hass)

    with patch(
        "custom_components.ha_ingestor.pipeline.backfill.read_entity_counts",
        damaged_recorder_database,
    ):
        await hass.config_entries.async_set_disabled_by(entry.entry_id, None)
        await hass.async_block_till_done()
        await wait_until(
            lambda: "could not look for state changes it missed" in caplog.text,
            "the error said",
        )
    assert "database disk image is malformed" in caplog.text
    assert entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert "Error unloading entry" not in caplog.text


async def test_an_action_the_recorder_cannot_count_for_says_so(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """The recorder's database cannot be read to count the window: a clear error.

    It raised the database's own error; nothing starts, and the next action does.
    """
    await record_past_states(hass, "sensor.power", 40)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST)

    with (
        patch(
            "custom_components.ha_ingestor.pipeline.backfill.read_count",
            damaged_recorder_database,
        ),
        pytest.raises(ServiceValidationError) as raised,
    ):
        await hass.services.async_call(
            DOMAIN,
            SERVICE_BACKFILL,
            {ATTR_ENTITY_ID: ["sensor.power"]},
            blocking=True,
        )
    assert raised.value.translation_key == "backfill_recorder_unreadable"
    assert "database disk image is malformed" in str(raised.value)
    assert entry.runtime_data.backfill.progress() is None
    await hass.services.async_call(
        DOMAIN, SERVICE_BACKFILL, {ATTR_ENTITY_ID: ["sensor.power"]}, blocking=True
    )
    await _wait_done(entry)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_action_writes_a_window_of_some_entities_within_the_filters(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """Start, end and entities choose; the entry's exclusions still apply."""
    times = await record_past_states(hass, "sensor.power", 40)
    await record_past_states(hass, "sensor.heater", 40)
    await record_past_states(hass, "sensor.pump", 40)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST | {CONF_EXCLUDE_ENTITIES: ["sensor.pump"]})
    start, end = times[10], times[30]
    response = await hass.services.async_call(
        DOMAIN,
        SERVICE_BACKFILL,
        {
            ATTR_START: dt_util.utc_from_timestamp(start),
            ATTR_END: dt_util.utc_from_timestamp(end).isoformat(),
            ATTR_ENTITY_ID: ["sensor.power", "sensor.pump"],
        },
        blocking=True,
        return_response=True,
    )
    assert response is not None
    # Rows 10 to 29 of both entities; the pump's are not written.
    assert response["state_changes"] == 40
    await _wait_done(entry)
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert (progress.read, progress.written, progress.skipped) == (40, 20, 20)
    await entry.runtime_data.pipeline.batcher.flush()
    rows = influxdb.rows('SELECT "value", "entity_id" FROM "W"', database)
    assert [(row["entity_id"], row["value"]) for row in rows] == [
        ("power", float(watts)) for watts in range(10, 30)
    ]
    assert [row["time"] for row in rows] == [
        timestamp_us(when) for when in times[10:30]
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_window_from_year_1_to_9999_is_all_the_recorder_holds(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """Times UTC has no room for (year 1 east of it, 9999 west) are its earliest, latest.

    Converting them raised OverflowError: the action failed without a clear error.
    """
    await hass.config.async_set_time_zone("Europe/Berlin")
    await record_past_states(hass, "sensor.power", 40)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST)
    response = await hass.services.async_call(
        DOMAIN,
        SERVICE_BACKFILL,
        {
            ATTR_START: "0001-01-01 00:00:00",
            ATTR_END: "9999-12-31T23:00:00-08:00",
            ATTR_ENTITY_ID: ["sensor.power"],
        },
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["state_changes"] == 40
    assert response["start"] == "0001-01-01T00:00:00+00:00"
    await _wait_done(entry)
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert (progress.read, progress.written) == (40, 40)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_attributes_the_recorder_cannot_read_are_none_as_in_its_history(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """Rows of before 2022 keep their attributes in `states.attributes`, as JSON.

    One that is no JSON object (damaged, or `null`) reads as no attributes, as the
    recorder's own history reads it; the rows around it are written all the same.
    """
    await record_past_states(hass, "sensor.power", 40)
    legacy = {
        1: '{"unit_of_measurement": "W", "legacy": 1}',
        2: "null",
        3: '{"unit_of_measurement": "W"',
        4: "[1, 2]",
    }

    def make_legacy(session: Session) -> None:
        state_ids = session.scalars(
            select(States.state_id).order_by(States.last_updated_ts)
        ).all()
        for index, attributes in legacy.items():
            session.execute(
                update(States)
                .where(States.state_id == state_ids[index])
                .values(attributes_id=None, attributes=attributes)
            )

    def run_in_recorder() -> None:
        with session_scope(session=recorder_mock.get_session()) as session:
            make_legacy(session)

    await recorder_mock.async_add_executor_job(run_in_recorder)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST)
    await hass.services.async_call(
        DOMAIN, SERVICE_BACKFILL, {ATTR_ENTITY_ID: ["sensor.power"]}, blocking=True
    )
    await _wait_done(entry)
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert (progress.read, progress.written) == (40, 40)
    watts = influxdb.rows('SELECT "value", "legacy" FROM "W"', database)
    # Without its unit, a state is measured by its entity id, as core's.
    by_entity = influxdb.rows('SELECT "value" FROM "sensor.power"', database)
    assert sorted(row["value"] for row in watts + by_entity) == list(range(40))
    assert [row["value"] for row in by_entity] == [2, 3, 4]
    assert [row["value"] for row in watts if row["legacy"] is not None] == [1]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_fault_nobody_foresaw_ends_the_backfill_as_failed(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any error, not only the database's, fails the backfill: shown, logged, over.

    One such as the unreadable attributes above left it running for ever: no later
    backfill could start, and unloading the entry raised the error.
    """
    await record_past_states(hass, "sensor.power", 40)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST)

    def fault(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a fault nobody foresaw")

    with patch("custom_components.ha_ingestor.pipeline.backfill.to_rows", fault):
        await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
        await wait_until(
            lambda: (
                (progress := entry.runtime_data.backfill.progress()) is not None
                and progress.status is not BackfillStatus.RUNNING
            ),
            "the backfill has ended",
        )
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert (progress.status, progress.error) == (
        BackfillStatus.FAILED,
        "a fault nobody foresaw",
    )
    assert f"Backfill of {entry.title} stopped by an error" in caplog.text
    assert "RuntimeError: a fault nobody foresaw" in caplog.text
    await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
    await _wait_done(entry)
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("recorder_mock")
@pytest.mark.parametrize(("pace", "rows_per_read"), [(1_000, 100), (100_000, 2_000)])
async def test_a_read_takes_a_tenth_of_a_second_of_the_pace_100_to_2000_rows(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    pace: int,
    rows_per_read: int,
) -> None:
    """Short queries: 100 state changes at the default pace, 2,000 at most."""
    await record_past_states(hass, "sensor.power", 2_500)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.1, CONF_BACKFILL_PACE: pace})
    reads: list[tuple[int, int]] = []

    def counted_read(*args: Any, **kwargs: Any) -> Chunk:
        chunk = read_chunk(*args, **kwargs)
        reads.append((kwargs["limit"], len(chunk.rows)))
        return chunk

    with patch(
        "custom_components.ha_ingestor.pipeline.backfill.read_chunk", counted_read
    ):
        await _backfill_and_wait(hass, entry)
    assert {limit for limit, _ in reads} == {rows_per_read}
    assert max(rows for _, rows in reads) == rows_per_read
    assert sum(rows for _, rows in reads) >= 2_500
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_one_backfill_at_a_time_and_what_the_actions_refuse(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """An empty window, a second backfill, a cancel with none: translated errors."""
    await record_past_states(hass, "sensor.power", 500)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.1, CONF_BACKFILL_PACE: 100})
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN, SERVICE_CANCEL_BACKFILL, blocking=True, return_response=True
        )
    assert raised.value.translation_key == "backfill_not_running"
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_BACKFILL,
            {ATTR_START: "2026-01-02 00:00:00", ATTR_END: "2026-01-01 00:00:00"},
            blocking=True,
        )
    assert raised.value.translation_key == "backfill_empty_window"

    await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
    assert raised.value.translation_key == "backfill_running"
    backfill = entry.runtime_data.backfill
    await wait_until(
        lambda: (progress := backfill.progress()) is not None and progress.read > 0,
        "the backfill under way",
    )
    response = await hass.services.async_call(
        DOMAIN, SERVICE_CANCEL_BACKFILL, blocking=True, return_response=True
    )
    assert response is not None
    assert response["status"] == "cancelled"
    read = response["read"]
    assert isinstance(read, int)
    assert 0 < read < 500
    assert not backfill.running
    entry.runtime_data.coordinator.async_update_now()
    await hass.async_block_till_done()
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_history_backfill"
    )
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    # Each attribute the README lists, as the cancel action answered.
    attributes = state.attributes
    assert attributes["status"] == "cancelled"
    # No start given: from the oldest state change the recorder holds.
    assert attributes["start"] is response["start"] is None
    assert attributes["end"].isoformat() == response["end"]
    assert attributes["reached"] <= attributes["end"]
    assert attributes["state_changes"] == response["state_changes"] == 500
    assert attributes["read"] == read
    assert attributes["written"] == response["written"]
    assert attributes["skipped"] == response["skipped"]
    assert attributes["written"] + attributes["skipped"] <= read
    assert attributes["waiting"] is False
    assert 0 < float(state.state) < 100
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    last = diagnostics["history_backfill"]["last"]
    assert (last["status"], last["source"]) == ("cancelled", "action")
    assert last["read"] == read
    assert last["longest_read_ms"] > 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_without_the_recorder_there_is_nothing_to_backfill(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """No recorder: the action says so; the entry runs as always."""
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST)
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
    assert raised.value.translation_key == "backfill_no_recorder"
    assert entry.runtime_data.backfill.progress() is None
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("recorder_mock")
async def test_rich_the_oldest_state_kept_after_a_purge_has_no_previous_state(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """docs/schema.md: a state whose predecessor the recorder purged has no link.

    Its backfilled point has no `previous_state` and `duration_in_state_s` (live
    ingestion had them); the state after it has both, from the state it kept.
    """
    now = time.time()
    for days_ago, value in ((3, "1"), (1.5, "2"), (0.5, "3")):
        hass.states.async_set(
            "sensor.purged_before",
            value,
            {"unit_of_measurement": "W"},
            timestamp=now - days_ago * 86400,
        )
    await async_wait_recording_done(hass)
    await hass.services.async_call(
        "recorder", "purge", {"keep_days": 2, "repack": False}, blocking=True
    )
    await async_wait_purge_done(hass)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST | {CONF_PRESET: PRESET_RICH})
    try:
        await _backfill_and_wait(hass, entry)
        points = [
            (time_ns, dict(fields))
            for _, tags, time_ns, fields in stored_points(influxdb, database)
            if ("entity_id", "sensor.purged_before") in tags
        ]
        points.sort(key=lambda point: point[0])
        assert [(fields["value"], time_ns) for time_ns, fields in points] == [
            (2.0, timestamp_us(now - 1.5 * 86400)),
            (3.0, timestamp_us(now - 0.5 * 86400)),
        ]
        oldest_kept, newest = (fields for _, fields in points)
        assert "previous_state" not in oldest_kept
        assert "duration_in_state_s" not in oldest_kept
        assert newest["previous_state"] == "2"
        assert newest["duration_in_state_s"] == pytest.approx(86400, abs=0.001)
    finally:
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_an_action_right_after_the_start_runs_once(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """While the start still looks for a gap, an action's backfill is the only one."""
    await record_past_states(hass, "sensor.power", 200)
    entry = _entry(influxdb, database)
    looking = asyncio.Event()
    original = Backfill._async_find_gap

    async def slow_find_gap(self: Backfill) -> None:
        await looking.wait()
        await original(self)

    with patch.object(Backfill, "_async_find_gap", slow_find_gap):
        await setup_entry(hass, entry, FAST)
        await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
        looking.set()
        await _wait_done(entry)
    await hass.async_block_till_done()
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert progress.read == progress.state_changes == 200
    assert entry.runtime_data.pipeline.stats.points_written <= 200
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_a_backfill_waits_while_influxdb_cannot_be_written(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """InfluxDB down: the backfill pauses; back: it goes on, nothing lost."""
    await record_past_states(hass, "sensor.power", 300)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.05, CONF_BACKFILL_PACE: 200})
    await hass.async_add_executor_job(influxdb.kill)
    await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
    backfill = entry.runtime_data.backfill
    await wait_until(
        lambda: (progress := backfill.progress()) is not None and progress.waiting,
        "the backfill waits",
    )
    await hass.async_add_executor_job(influxdb.start)
    await hass.services.async_call(DOMAIN, "flush", blocking=True)
    await _wait_done(entry)
    stats = entry.runtime_data.pipeline.stats
    await wait_until(lambda: stats.points_written >= 300, "every point written")
    rows = influxdb.rows('SELECT "value" FROM "W"', database)
    assert [row["value"] for row in rows] == [float(watts) for watts in range(300)]
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_dropped_points_are_written_again_by_their_repair_flow(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """A spool overflowing in an outage drops its oldest; the fix writes them again.

    Every state change is in InfluxDB in the end, each once: the dropped ones from the
    recorder, the rest from the spool (the window's are written twice, stored once).
    """
    assert await async_setup_component(hass, "repairs", {})
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.1, CONF_SPOOL_MAX_MB: 16})
    pipeline = entry.runtime_data.pipeline
    stats = pipeline.stats
    await hass.async_add_executor_job(influxdb.kill)
    times = []
    for watts in range(200):
        hass.states.async_set("sensor.power", str(watts), {"unit_of_measurement": "W"})
        state = hass.states.get("sensor.power")
        assert state is not None
        times.append(state.last_updated)
    fillers = await overflow_the_spool(hass, entry, 200)
    await hass.async_add_executor_job(influxdb.start)
    await hass.services.async_call(DOMAIN, "flush", blocking=True)
    await wait_until(lambda: pipeline.points_waiting == 0, "the spool written")
    assert influxdb.rows('SELECT "value" FROM "W"', database) == []
    await async_wait_recording_done(hass)

    await wait_until(
        lambda: issue_checked_now(hass, entry, ISSUE_POINTS_DROPPED) is not None,
        "the dropped points' issue",
    )
    issue = issue_of(hass, entry, ISSUE_POINTS_DROPPED)
    assert issue is not None
    placeholders = issue.translation_placeholders or {}
    assert placeholders["count"] == str(stats.points_dropped_spool_full)
    assert placeholders["start"] == dt_util.as_local(times[0]).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    assert "InfluxDB misses them, between" in render_issue(issue)

    await submit_fix(hass, issue)
    await _wait_done(entry)
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert progress.source is BackfillSource.DROPPED
    await wait_until(lambda: pipeline.points_waiting == 0, "the backfill written")
    rows = influxdb.rows('SELECT "value" FROM "W"', database)
    assert [row["value"] for row in rows] == [float(watts) for watts in range(200)]
    assert [row["time"] for row in rows] == [
        timestamp_us(moment.timestamp()) for moment in times
    ]
    filler_rows = influxdb.rows('SELECT "value" FROM "B"', database)
    assert [row["value"] for row in filler_rows] == [float(i) for i in range(fillers)]
    # Acknowledged: the issue is gone until more are dropped.
    assert stats.dropped_span is None
    assert stats.points_dropped_unacknowledged == 0
    entry.runtime_data.coordinator.async_update_now()
    assert issue_of(hass, entry, ISSUE_POINTS_DROPPED) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_dropped_points_fix_waits_for_a_backfill_under_way(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """One backfill at a time: the fix says so on its form and acknowledges nothing."""
    assert await async_setup_component(hass, "repairs", {})
    await record_past_states(hass, "sensor.power", 500)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.1, CONF_BACKFILL_PACE: 100})
    stats = entry.runtime_data.pipeline.stats
    # As a full disk leaves them (test_batcher.py drops points for real).
    span = (dt_util.utcnow() - timedelta(minutes=1), dt_util.utcnow())
    stats.points_dropped_memory_full = 3
    stats.note_dropped(span)
    await hass.services.async_call(DOMAIN, SERVICE_BACKFILL, blocking=True)
    issue = issue_checked_now(hass, entry, ISSUE_POINTS_DROPPED)
    assert issue is not None

    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, data={"issue_id": issue.issue_id})
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_write"}
    placeholders = result["description_placeholders"] or {}
    assert "A backfill is under way already" in placeholders["error"]
    assert (stats.points_dropped_unacknowledged, stats.dropped_span) == (3, span)

    await hass.services.async_call(DOMAIN, SERVICE_CANCEL_BACKFILL, blocking=True)
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert progress.source is BackfillSource.DROPPED
    assert (stats.points_dropped_unacknowledged, stats.dropped_span) == (0, None)
    await _wait_done(entry)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_backfill_asked_for_in_the_flows_starts_once(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """The flows' request: everything before the entry began, then it is gone."""
    await record_past_states(hass, "sensor.power", 50)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST | {CONF_HISTORY_BACKFILL: True})
    assert CONF_HISTORY_BACKFILL not in entry.options
    await _wait_done(entry)
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert (progress.source, progress.written) == (BackfillSource.FLOW, 50)
    assert progress.start is None
    assert progress.end == entry.runtime_data.backfill.first_received
    # A reload does not start it again.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    progress = entry.runtime_data.backfill.progress()
    assert progress is not None
    assert progress.status is BackfillStatus.DONE
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_backfill_asked_for_in_the_flows_that_cannot_be_counted_says_so(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The recorder cannot be read as the entry starts: the log says to ask again.

    The error ended the backfill's start unseen, and unloading the entry raised it.
    """
    await record_past_states(hass, "sensor.power", 50)
    entry = _entry(influxdb, database)

    with patch(
        "custom_components.ha_ingestor.pipeline.backfill.read_count",
        damaged_recorder_database,
    ):
        await setup_entry(hass, entry, FAST | {CONF_HISTORY_BACKFILL: True})
        await wait_until(lambda: "could not start: " in caplog.text, "the failure said")
    assert "Ask for it again there, or with the action" in caplog.text
    assert entry.runtime_data.backfill.progress() is None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert "Error unloading entry" not in caplog.text


async def test_a_gap_partly_missing_in_the_recorder_says_so(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
) -> None:
    """Where the recorder did not record either, the issue names how long."""
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, FAST)
    backfill = entry.runtime_data.backfill
    now = time.time()
    backfill._state.gaps = [HistoryGap(now - 7200, now - 60, 12, 3600)]
    entry.runtime_data.coordinator.async_update_now()
    issue = issue_of(hass, entry, ISSUE_HISTORY_GAP)
    assert issue is not None
    assert issue.translation_key == HISTORY_GAP_PARTLY_UNRECORDED
    text = render_issue(issue)
    assert "for 01:59:00, between" in text
    assert "For 01:00:00 of that time the recorder has nothing either" in text
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert issue_of(hass, entry, ISSUE_HISTORY_GAP) is None


async def _hand_on_sampled(
    hass: HomeAssistant, entry: MockConfigEntry
) -> tuple[float, int]:
    """Run the default backfill; how long it took, and the most lines memory held."""
    batcher = entry.runtime_data.pipeline.batcher
    backfill = entry.runtime_data.backfill
    most = 0
    started = time.monotonic()
    await hass.services.async_call(
        DOMAIN, SERVICE_BACKFILL, {ATTR_CONFIG_ENTRY_ID: entry.entry_id}, blocking=True
    )
    while backfill.running:
        most = max(most, batcher.pending)
        await asyncio.sleep(0)
    return time.monotonic() - started, most


async def test_a_backfill_keeps_its_pace_and_memory_and_says_when_it_runs(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    influxdb: InfluxDBv1Server,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At most the pace; memory within the backlog it waits for; one line each end.

    At its fastest, the backfill hands a slice on only while fewer than two batches
    wait: memory never holds more than those and a slice, far below its cap.
    """
    await record_past_states(hass, "sensor.power", 2000)
    entry = _entry(influxdb, database)
    await setup_entry(hass, entry, {CONF_FLUSH_INTERVAL: 0.1, CONF_BACKFILL_PACE: 1000})
    seconds, most = await _hand_on_sampled(hass, entry)
    await _wait_done(entry)
    # 2,000 points at 1,000/s: the first slice (20 points) goes at once.
    assert seconds >= (2000 - 20) / 1000
    said = [m for m in caplog.messages if m.startswith(f"Backfill of {entry.title} ")]
    assert len(said) == 2, said
    assert "started: 2000 state changes the recorder holds" in said[0]
    assert "2000 state changes read, 2000 points written" in said[1]
    longest = entry.runtime_data.backfill.longest_read
    assert longest is not None
    assert said[1].endswith(
        f"a read held the recorder's database {longest * 1000:.0f} ms at most"
    )
    assert await hass.config_entries.async_unload(entry.entry_id)

    database_fast = _new_database(influxdb)
    fast = _entry(influxdb, database_fast)
    await setup_entry(hass, fast, FAST)
    _, most = await _hand_on_sampled(hass, fast)
    await _wait_done(fast)
    pipeline = fast.runtime_data.pipeline
    assert 0 < most <= BACKLOG_BATCHES * DEFAULT_BATCH_SIZE + SLICE_POINTS[1]
    assert most < pipeline.batcher.memory_cap
    await wait_until(lambda: pipeline.stats.points_written == 2000, "all written")
    assert pipeline.stats.points_dropped == 0
    assert await hass.config_entries.async_unload(fast.entry_id)
    influxdb.query(f'DROP DATABASE "{database_fast}"')
