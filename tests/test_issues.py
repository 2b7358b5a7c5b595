"""Repair issues, against a real InfluxDB 1.x: raised when the user must act.

InfluxDB unreachable for five minutes (with the clock moved, not waited for), a
missing database, quarantined points, rejected credentials (which start
re-authentication instead); each issue clears itself once the cause is gone. Their
fix flows are in test_repairs.py.
"""

from __future__ import annotations

import datetime as dt
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL, DOMAIN
from custom_components.ha_ingestor.issues import (
    ISSUE_POINTS_QUARANTINED,
    ISSUE_TARGET_MISSING,
    ISSUE_UNREACHABLE,
    ISSUES,
    _entities_text,
)
from custom_components.ha_ingestor.storage.spool import QuarantinedPoint, SpoolError

from .conftest import seed_field_type_conflict, setup_entry, wait_until
from .influxdb_v1_server import InfluxDBv1Server
from .repair_issues import fire_power, issue_checked_now, issue_of, render_issue

FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.05}
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def _write_without_database(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    points: int,
) -> None:
    """Drop the database, then write `points`: wait until the issue counts them.

    The issue is raised at setup already, whose test of the server finds no database.
    """
    influxdb.query(f'DROP DATABASE "{database}"')
    await setup_entry(hass, config_entry, FAST_FLUSH)
    assert issue_checked_now(hass, config_entry, ISSUE_TARGET_MISSING) is not None
    fire_power(hass, 0, points)
    pipeline = config_entry.runtime_data.pipeline
    await wait_until(lambda: pipeline.spool.count == points, "the points spooled")
    assert issue_checked_now(hass, config_entry, ISSUE_TARGET_MISSING) is not None


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
    fire_power(hass, 0, 7)
    await wait_until(lambda: batcher.health.failing, "writing fails")

    freezer.tick(dt.timedelta(minutes=4))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert issue_of(hass, config_entry, ISSUE_UNREACHABLE) is None

    # Past five minutes by more than the harness's ticking clock can lag (about a
    # second under load).
    freezer.tick(dt.timedelta(minutes=1, seconds=15))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    issue = issue_of(hass, config_entry, ISSUE_UNREACHABLE)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert not issue.is_fixable
    text = render_issue(issue)
    assert "for 5 minutes" in text
    assert "7 points wait in the spool" in text
    assert f"127.0.0.1:{influxdb.port}" in text

    await hass.async_add_executor_job(influxdb.start)
    await wait_until(
        lambda: issue_of(hass, config_entry, ISSUE_UNREACHABLE) is None,
        "the issue clears itself",
    )
    # Cleared with the first batch written; the spool empties right after.
    spool = config_entry.runtime_data.pipeline.spool
    await wait_until(lambda: spool.count == 0, "the spool is empty")
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
    issue = issue_of(hass, config_entry, ISSUE_TARGET_MISSING)
    assert issue is not None
    text = render_issue(issue)
    assert "database not found" in text
    assert "5 points wait in the spool" in text
    assert issue_of(hass, config_entry, ISSUE_UNREACHABLE) is None

    influxdb.query(f'CREATE DATABASE "{database}"')
    await wait_until(
        lambda: issue_of(hass, config_entry, ISSUE_TARGET_MISSING) is None,
        "the issue clears itself",
        seconds=30,
    )
    assert len(influxdb.rows('SELECT * FROM "W"', database)) == 5
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_issues_are_withdrawn_at_unload(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """An entry that is unloaded (disabled, removed) leaves no issue behind."""
    await _write_without_database(hass, influxdb, database, config_entry, 1)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    assert all(issue_of(hass, config_entry, issue) is None for issue in ISSUES)


@pytest.mark.freeze_time(tick=True)
async def test_rejected_credentials_start_reauth_not_an_issue(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The server's password changed while running: reauth, then everything arrives.

    Meanwhile the connectivity sensor is off and no repair issue is raised, not even
    after the five minutes that raise one for a server that cannot be reached: the
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
        fire_power(hass, 0, 4)
        await wait_until(
            lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)),
            "re-authentication starts",
        )
        (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert flow["context"]["source"] == SOURCE_REAUTH
        freezer.tick(dt.timedelta(minutes=6))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        config_entry.runtime_data.coordinator.async_update_now()
        await hass.async_block_till_done()
        assert config_entry.runtime_data.coordinator.data.failing_since is not None
        assert all(issue_of(hass, config_entry, issue) is None for issue in ISSUES)
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


async def test_unreadable_quarantine_still_raises_theissue_of(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """The entities cannot be named, the points are still reported."""
    seed_field_type_conflict(influxdb, database)
    await setup_entry(hass, config_entry, FAST_FLUSH)
    spool = config_entry.runtime_data.pipeline.spool
    fire_power(hass, 0, 1)
    await wait_until(lambda: spool.quarantined == 1, "quarantined")
    with patch.object(
        spool, "quarantined_points", side_effect=SpoolError("disk on fire")
    ):
        await wait_until(
            lambda: (
                issue_checked_now(hass, config_entry, ISSUE_POINTS_QUARANTINED)
                is not None
            ),
            "the quarantine issue",
        )
    issue = issue_of(hass, config_entry, ISSUE_POINTS_QUARANTINED)
    assert issue is not None
    assert "Entities involved: -." in render_issue(issue)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
