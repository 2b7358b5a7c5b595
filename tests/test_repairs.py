"""The repairs platform's fix flows, against a real InfluxDB 1.x.

Points dropped because the spool was full are acknowledged (without the recorder;
tests/pipeline/test_backfill.py writes them again from it); quarantined points are
written again once the conflict is fixed; an entry that is not loaded cannot be fixed.
"""

from __future__ import annotations

from homeassistant.components.repairs import ConfirmRepairFlow, repairs_flow_manager
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_FLUSH_INTERVAL,
    CONF_SPOOL_MAX_MB,
    DOMAIN,
)
from custom_components.ha_ingestor.issues import (
    ISSUE_POINTS_DROPPED,
    ISSUE_POINTS_QUARANTINED,
    ISSUE_SPOOL_NEARLY_FULL,
    issue_id,
)
from custom_components.ha_ingestor.repairs import async_create_fix_flow
from custom_components.ha_ingestor.storage.spool import Spool

from .conftest import seed_field_type_conflict, setup_entry, wait_until
from .influxdb_v1_server import InfluxDBv1Server
from .repair_issues import (
    STRINGS,
    fire_power,
    issue_checked_now,
    issue_of,
    render_issue,
)
from .spool_file import remove_read

FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.05}


async def _fill_nearly(spool: Spool, share: float = 0.995, filler: int = 0) -> int:
    """Fill `spool` with another measurement's points until it is `share` full.

    The points take 1 kB each (about 0.2% of a 16 MB spool per 20); at 99.5%, a few
    hundred of sensor.power's fill the rest. Returns how many were appended in all,
    `filler` of them before.
    """
    while spool.fill < share:
        lines = [
            f'filler,entity_id=f{i} text="{"x" * 950}" {1_000_000 + i}'
            for i in range(filler, filler + 20)
        ]
        await spool.append(lines)
        assert spool.take_drops().points == 0
        filler += 20
    return filler


async def _drain_below(spool: Spool, share: float) -> None:
    """Remove the oldest points of `spool` until it is less than `share` full."""
    while spool.fill >= share:
        assert await remove_read(spool, await spool.oldest(20)) == 20


@pytest.mark.usefixtures("revive")
async def test_the_spool_issue_from_80_percent_until_below_70(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """Raised above 80% of the limit, and then kept until the spool is below 70%.

    So that a spool around 80% does not raise and clear it again and again.
    """
    await setup_entry(hass, config_entry, FAST_FLUSH | {CONF_SPOOL_MAX_MB: 16})
    spool = config_entry.runtime_data.pipeline.spool
    await hass.async_add_executor_job(influxdb.kill)

    filler = await _fill_nearly(spool, 0.78)
    assert spool.fill < 0.8
    assert issue_checked_now(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL) is None
    await _fill_nearly(spool, 0.8, filler)
    issue = issue_checked_now(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL)
    assert issue is not None
    assert "is 80% full" in render_issue(issue)

    await _drain_below(spool, 0.72)
    assert spool.fill >= 0.7
    issue = issue_checked_now(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL)
    assert issue is not None
    assert "is 71% full" in render_issue(issue)
    await _drain_below(spool, 0.7)
    assert issue_checked_now(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL) is None
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_spool_nearly_full_then_points_dropped(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Above 80%: an issue; overflowing: another, acknowledged in its flow."""
    assert await async_setup_component(hass, "repairs", {})
    await setup_entry(hass, config_entry, FAST_FLUSH | {CONF_SPOOL_MAX_MB: 16})
    data = config_entry.runtime_data
    spool = data.pipeline.spool
    stats = data.pipeline.stats
    await hass.async_add_executor_job(influxdb.kill)
    filler = await _fill_nearly(spool)
    await wait_until(
        lambda: (
            issue_checked_now(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL) is not None
        ),
        "the spool issue",
    )
    issue = issue_of(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL)
    assert issue is not None
    assert f"is 99% full ({filler} points; its files may take 16 MB on disk)" in (
        render_issue(issue)
    )
    assert issue_of(hass, config_entry, ISSUE_POINTS_DROPPED) is None

    fire_power(hass, 0, 2_000)
    await wait_until(
        lambda: spool.count + stats.points_dropped_spool_full == filler + 2_000,
        "each point spooled or dropped",
    )
    assert stats.points_dropped_spool_full > 0
    await wait_until(
        lambda: issue_checked_now(hass, config_entry, ISSUE_POINTS_DROPPED) is not None,
        "the dropped issue",
    )
    issue = issue_of(hass, config_entry, ISSUE_POINTS_DROPPED)
    assert issue is not None
    assert issue.is_fixable
    dropped = stats.points_dropped_spool_full
    # The oldest went: fillers, timed 1,000,000 µs on (16:00:01 in the test's zone).
    assert (
        f"dropped {dropped} points, the oldest first: its spool reached its 16 MB"
        " limit, or its disk was full. InfluxDB misses them, between 1969-12-31"
        " 16:00:01 and 1969-12-31 16:00:01"
    ) in render_issue(issue)

    # Acknowledged: gone until more are dropped.
    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, data={"issue_id": issue.issue_id})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"] == issue.translation_placeholders
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert issue_of(hass, config_entry, ISSUE_POINTS_DROPPED) is None
    # Without the recorder there is nothing to write them from: acknowledged only.
    assert (
        stats.points_dropped_acknowledged,
        stats.dropped_span,
        data.backfill.progress(),
    ) == (dropped, None, None)
    data.coordinator.async_update_now()
    await hass.async_block_till_done()
    assert issue_of(hass, config_entry, ISSUE_POINTS_DROPPED) is None

    fire_power(hass, 2_000, 2_100)
    await wait_until(
        lambda: spool.count + stats.points_dropped_spool_full == filler + 2_100,
        "each point spooled or dropped",
    )
    assert stats.points_dropped_spool_full > dropped
    await wait_until(
        lambda: issue_checked_now(hass, config_entry, ISSUE_POINTS_DROPPED) is not None,
        "the dropped issue again",
    )
    issue = issue_of(hass, config_entry, ISSUE_POINTS_DROPPED)
    assert issue is not None
    more = stats.points_dropped_spool_full - dropped
    assert f"dropped {more} points, the oldest first" in render_issue(issue)

    # InfluxDB back (written at once, not after the backoff): the spool empties,
    # its issue clears; the dropped one stays.
    await hass.async_add_executor_job(influxdb.start)
    await hass.services.async_call(DOMAIN, "flush", blocking=True)
    await wait_until(
        lambda: issue_of(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL) is None,
        "the spool issue clears itself",
    )
    assert spool.count == 0
    # The oldest went: the other measurement's points, none of sensor.power's.
    assert len(influxdb.rows('SELECT * FROM "W"', database)) == 2_100
    assert issue_of(hass, config_entry, ISSUE_POINTS_DROPPED) is not None
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_quarantine_issue_names_the_entities_and_its_flow_replays(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """The issue names sensor.power; its flow writes the points once fixed.

    Submitted while InfluxDB is down, the flow says so and stays open; submitted
    again once it is back, it writes.
    """
    assert await async_setup_component(hass, "repairs", {})
    seed_field_type_conflict(influxdb, database)
    await setup_entry(hass, config_entry, FAST_FLUSH)
    spool = config_entry.runtime_data.pipeline.spool
    fire_power(hass, 0, 3)
    hass.states.async_set("sensor.voltage", "230", {"unit_of_measurement": "W"})
    await wait_until(lambda: spool.quarantined == 4, "4 points quarantined")
    config_entry.runtime_data.coordinator.async_update_now()
    await wait_until(
        lambda: issue_of(hass, config_entry, ISSUE_POINTS_QUARANTINED) is not None,
        "the quarantine issue",
    )
    issue = issue_of(hass, config_entry, ISSUE_POINTS_QUARANTINED)
    assert issue is not None
    text = render_issue(issue)
    assert "refused 4 points" in text
    assert "Entities involved: sensor.power, sensor.voltage." in text
    assert "field type conflict" in text

    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, data={"issue_id": issue.issue_id})
    assert result["step_id"] == "confirm"
    influxdb.query('DROP MEASUREMENT "W"', database)
    await hass.async_add_executor_job(influxdb.kill)
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_write"}
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert "could not be written" in placeholders["error"]
    assert spool.count == 4

    await hass.async_add_executor_job(influxdb.start)
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert issue_of(hass, config_entry, ISSUE_POINTS_QUARANTINED) is None
    assert spool.quarantined == 0
    assert len(influxdb.rows('SELECT * FROM "W"', database)) == 4
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_fix_flow_of_an_unloaded_entry_aborts(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """An issue of an entry that is no longer loaded cannot be fixed."""
    assert await async_setup_component(hass, "repairs", {})
    await setup_entry(hass, config_entry, FAST_FLUSH)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(ISSUE_POINTS_DROPPED, config_entry.entry_id),
        data={"entry_id": config_entry.entry_id},
        is_fixable=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_POINTS_DROPPED,
        translation_placeholders={"title": "t", "count": "1", "max_mb": "16"},
    )
    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(
        DOMAIN,
        data={"issue_id": issue_id(ISSUE_POINTS_DROPPED, config_entry.entry_id)},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"
    assert "not_loaded" in STRINGS["issues"][ISSUE_POINTS_DROPPED]["fix_flow"]["abort"]


async def test_other_fixable_issues_get_a_plain_confirmation(
    hass: HomeAssistant,
) -> None:
    """No such issue is raised today; should one be, it can still be dismissed."""
    flow = await async_create_fix_flow(hass, "something_else", None)
    assert isinstance(flow, ConfirmRepairFlow)
