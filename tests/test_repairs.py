"""Repair issues and their flows, against a real InfluxDB 1.x.

InfluxDB unreachable for five minutes (with the clock moved, not waited for), a
missing database, a spool filling up and overflowing, quarantined points, rejected
credentials; each issue clears itself, or is fixed in its flow, once the cause is gone.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
import re
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.repairs import ConfirmRepairFlow, repairs_flow_manager
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL, DOMAIN
from custom_components.ha_ingestor.issues import (
    ISSUE_POINTS_DROPPED,
    ISSUE_POINTS_QUARANTINED,
    ISSUE_SPOOL_NEARLY_FULL,
    ISSUE_TARGET_MISSING,
    ISSUE_UNREACHABLE,
    ISSUES,
    _entities_text,
    issue_id,
)
from custom_components.ha_ingestor.repairs import async_create_fix_flow
from custom_components.ha_ingestor.storage.spool import QuarantinedPoint, SpoolError

from .conftest import seed_field_type_conflict, setup_entry, wait_until
from .influxdb_v1_server import InfluxDBv1Server

FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.05}
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STRINGS = json.loads(
    (
        Path(__file__).parents[1] / "custom_components" / DOMAIN / "strings.json"
    ).read_text("utf-8")
)


def _issue(
    hass: HomeAssistant, entry: MockConfigEntry, issue: str
) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id(issue, entry.entry_id))


def _texts(issue: ir.IssueEntry) -> list[str]:
    """The issue's texts: its title and description, or its fix flow's."""
    strings = STRINGS["issues"][issue.translation_key]
    texts = [strings["title"]]
    if issue.is_fixable:
        step = strings["fix_flow"]["step"]["confirm"]
        texts += [step["title"], step["description"]]
    else:
        texts.append(strings["description"])
    return texts


def _render(issue: ir.IssueEntry) -> str:
    """The issue as the user reads it; every placeholder must be given."""
    placeholders = issue.translation_placeholders or {}
    text = "\n".join(_texts(issue))
    used = set(re.findall(r"\{(\w+)\}", text))
    assert used <= set(placeholders), used - set(placeholders)
    return text.format(**placeholders)


def _checked(
    hass: HomeAssistant, entry: MockConfigEntry, issue: str
) -> ir.IssueEntry | None:
    """The issue once the pipeline was looked at now, not at the next tick."""
    entry.runtime_data.coordinator.async_update_now()
    return _issue(hass, entry, issue)


def _fire_power(hass: HomeAssistant, start: int, stop: int) -> None:
    for i in range(start, stop):
        hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})


async def _write_without_database(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    points: int,
) -> None:
    """Drop the database, then write `points`: wait until the issue is raised."""
    influxdb.query(f'DROP DATABASE "{database}"')
    await setup_entry(hass, config_entry, FAST_FLUSH)
    _fire_power(hass, 0, points)
    await wait_until(
        lambda: _issue(hass, config_entry, ISSUE_TARGET_MISSING) is not None,
        "the issue",
    )


@pytest.mark.freeze_time(tick=True)
@pytest.mark.usefixtures("revive")
async def test_unreachable_for_five_minutes_raises_an_issue_that_clears_itself(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not before five minutes; with the backlog; gone once writing works; logged once."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    batcher = config_entry.runtime_data.pipeline.batcher
    await hass.async_add_executor_job(influxdb.kill)
    _fire_power(hass, 0, 7)
    await wait_until(lambda: batcher.health.failing, "writing fails")

    freezer.tick(dt.timedelta(minutes=4))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert _issue(hass, config_entry, ISSUE_UNREACHABLE) is None

    freezer.tick(dt.timedelta(minutes=1, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    issue = _issue(hass, config_entry, ISSUE_UNREACHABLE)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert not issue.is_fixable
    text = _render(issue)
    assert "for 5 minutes" in text
    assert "7 points wait in the spool" in text
    assert f"127.0.0.1:{influxdb.port}" in text

    await hass.async_add_executor_job(influxdb.start)
    await wait_until(
        lambda: _issue(hass, config_entry, ISSUE_UNREACHABLE) is None,
        "the issue clears itself",
    )
    assert config_entry.runtime_data.pipeline.spool.count == 0
    assert caplog.text.count("Writing to InfluxDB failed") == 1
    assert caplog.text.count("Writing to InfluxDB works again") == 1
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_missing_database_raises_an_issue_and_the_spool_keeps_everything(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """At once (no five minutes); cleared once the database exists; nothing lost."""
    await _write_without_database(hass, influxdb, database, config_entry, 5)
    issue = _issue(hass, config_entry, ISSUE_TARGET_MISSING)
    assert issue is not None
    text = _render(issue)
    assert "database not found" in text
    assert "5 points wait in the spool" in text
    assert _issue(hass, config_entry, ISSUE_UNREACHABLE) is None

    influxdb.query(f'CREATE DATABASE "{database}"')
    await wait_until(
        lambda: _issue(hass, config_entry, ISSUE_TARGET_MISSING) is None,
        "the issue clears itself",
        seconds=30,
    )
    assert len(influxdb.rows('SELECT * FROM "W"', database)) == 5
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
    await setup_entry(hass, config_entry, FAST_FLUSH)
    data = config_entry.runtime_data
    spool = data.pipeline.spool
    stats = data.pipeline.stats
    await hass.async_add_executor_job(influxdb.kill)
    # A small spool: each point of sensor.power is about 60 bytes.
    line = "W,domain=sensor,entity_id=power value=10.0 1000000000000000"
    spool._max_bytes = 20 * len(line)
    _fire_power(hass, 10, 27)
    await wait_until(lambda: spool.count == 17, "17 points spooled")
    await wait_until(
        lambda: _checked(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL) is not None,
        "the spool issue",
    )
    issue = _issue(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL)
    assert issue is not None
    assert "(85%, 17 points)" in _render(issue)
    assert _issue(hass, config_entry, ISSUE_POINTS_DROPPED) is None

    _fire_power(hass, 27, 33)
    await wait_until(lambda: stats.points_dropped_spool_full == 3, "3 points dropped")
    await wait_until(
        lambda: _checked(hass, config_entry, ISSUE_POINTS_DROPPED) is not None,
        "the dropped issue",
    )
    issue = _issue(hass, config_entry, ISSUE_POINTS_DROPPED)
    assert issue is not None
    assert issue.is_fixable
    assert "its oldest 3 points were deleted" in _render(issue)

    # Acknowledged: gone until more are dropped.
    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, data={"issue_id": issue.issue_id})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"] == issue.translation_placeholders
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _issue(hass, config_entry, ISSUE_POINTS_DROPPED) is None
    assert stats.points_dropped_acknowledged == 3
    data.coordinator.async_update_now()
    await hass.async_block_till_done()
    assert _issue(hass, config_entry, ISSUE_POINTS_DROPPED) is None

    _fire_power(hass, 33, 35)
    await wait_until(lambda: stats.points_dropped_spool_full == 5, "2 more dropped")
    await wait_until(
        lambda: _checked(hass, config_entry, ISSUE_POINTS_DROPPED) is not None,
        "the dropped issue again",
    )
    issue = _issue(hass, config_entry, ISSUE_POINTS_DROPPED)
    assert issue is not None
    assert "its oldest 2 points were deleted" in _render(issue)

    # InfluxDB back (written at once, not after the backoff): the spool empties,
    # its issue clears; the dropped one stays.
    await hass.async_add_executor_job(influxdb.start)
    await hass.services.async_call(DOMAIN, "flush", blocking=True)
    await wait_until(
        lambda: _issue(hass, config_entry, ISSUE_SPOOL_NEARLY_FULL) is None,
        "the spool issue clears itself",
    )
    assert spool.count == 0
    assert len(influxdb.rows('SELECT * FROM "W"', database)) == 20
    assert _issue(hass, config_entry, ISSUE_POINTS_DROPPED) is not None
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
    _fire_power(hass, 0, 3)
    hass.states.async_set("sensor.voltage", "230", {"unit_of_measurement": "W"})
    await wait_until(lambda: spool.quarantined == 4, "4 points quarantined")
    config_entry.runtime_data.coordinator.async_update_now()
    await wait_until(
        lambda: _issue(hass, config_entry, ISSUE_POINTS_QUARANTINED) is not None,
        "the quarantine issue",
    )
    issue = _issue(hass, config_entry, ISSUE_POINTS_QUARANTINED)
    assert issue is not None
    text = _render(issue)
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
    assert _issue(hass, config_entry, ISSUE_POINTS_QUARANTINED) is None
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


async def test_issues_are_withdrawn_at_unload(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """An entry that is unloaded (disabled, removed) leaves no issue behind."""
    await _write_without_database(hass, influxdb, database, config_entry, 1)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    assert all(_issue(hass, config_entry, issue) is None for issue in ISSUES)


async def test_rejected_credentials_start_reauth_not_an_issue(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """The server's password changed while running: reauth, then everything arrives.

    Meanwhile the connectivity sensor is off and no repair issue is raised: the
    re-authentication flow is what the user acts on.
    """
    user = f"writer_{database}"
    influxdb.query(f"CREATE USER {user} WITH PASSWORD 'first-password'")
    influxdb.query(f'GRANT WRITE ON "{database}" TO {user}')
    try:
        config_entry.add_to_hass(hass)
        hass.config_entries.async_update_entry(
            config_entry,
            data={
                **config_entry.data,
                CONF_USERNAME: user,
                CONF_PASSWORD: "first-password",
            },
            options=FAST_FLUSH,
        )
        assert await hass.config_entries.async_setup(config_entry.entry_id)
        influxdb.query(f"SET PASSWORD FOR {user} = 'second-password'")
        _fire_power(hass, 0, 4)
        await wait_until(
            lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)),
            "re-authentication starts",
        )
        (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert flow["context"]["source"] == SOURCE_REAUTH
        config_entry.runtime_data.coordinator.async_update_now()
        await hass.async_block_till_done()
        assert all(_issue(hass, config_entry, issue) is None for issue in ISSUES)
        connectivity = [
            state
            for state in hass.states.async_all("binary_sensor")
            if state.entity_id.endswith("_influxdb_connection")
        ]
        assert [state.state for state in connectivity] == ["off"]

        result = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {CONF_USERNAME: user, CONF_PASSWORD: "first-password"}
        )
        assert result["errors"] == {CONF_PASSWORD: "invalid_auth"}
        result = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {CONF_USERNAME: user, CONF_PASSWORD: "second-password"}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reauth_successful"
        await hass.async_block_till_done()
        assert config_entry.state is ConfigEntryState.LOADED
        await wait_until(
            lambda: len(influxdb.rows('SELECT * FROM "W"', database)) == 4,
            "the spooled points arrive",
        )
        await wait_until(
            lambda: hass.states.get(connectivity[0].entity_id).state == "on",  # type: ignore[union-attr]
            "connected again",
        )
        assert await hass.config_entries.async_unload(config_entry.entry_id)
    finally:
        influxdb.query(f"DROP USER {user}")


def test_entities_text() -> None:
    """Ten entities by name, then how many more; a dash when none is known."""
    points = [
        QuarantinedPoint(i, f"m,domain=sensor,entity_id=e{i} value=1.0 1", "x", NOW)
        for i in range(12)
    ]
    assert _entities_text(points) == ", ".join(f"sensor.e{i}" for i in range(10)) + (
        " (+2)"
    )
    assert _entities_text([QuarantinedPoint(1, "m value=1.0 1", "x", NOW)]) == "-"


async def test_other_fixable_issues_get_a_plain_confirmation(
    hass: HomeAssistant,
) -> None:
    """No such issue is raised today; should one be, it can still be dismissed."""
    flow = await async_create_fix_flow(hass, "something_else", None)
    assert isinstance(flow, ConfirmRepairFlow)


async def test_unreadable_quarantine_still_raises_the_issue(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """The entities cannot be named, the points are still reported."""
    seed_field_type_conflict(influxdb, database)
    await setup_entry(hass, config_entry, FAST_FLUSH)
    spool = config_entry.runtime_data.pipeline.spool
    _fire_power(hass, 0, 1)
    await wait_until(lambda: spool.quarantined == 1, "quarantined")
    with patch.object(
        spool, "quarantined_points", side_effect=SpoolError("disk on fire")
    ):
        await wait_until(
            lambda: _checked(hass, config_entry, ISSUE_POINTS_QUARANTINED) is not None,
            "the quarantine issue",
        )
    issue = _issue(hass, config_entry, ISSUE_POINTS_QUARANTINED)
    assert issue is not None
    assert "Entities involved: -." in _render(issue)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
