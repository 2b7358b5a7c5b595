"""Setting up and unloading an entry against a real InfluxDB 1.x."""

from __future__ import annotations

import asyncio
from pathlib import Path
import sqlite3
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_URL, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import STORAGE_DIR
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    API_V1,
    CONF_API_VERSION,
    CONF_DATABASE,
    CONF_FLUSH_INTERVAL,
    CONF_GZIP,
    CONF_MEASUREMENT_RULE,
    CONF_SSL_CA_CERT,
    DOMAIN,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_UNIT,
)
from custom_components.ha_ingestor.issues import ISSUE_SPOOL_DAMAGED
from custom_components.ha_ingestor.storage.spool import Spool

from .conftest import V2_TOKEN, setup_entry, v2_entry_data, wait_until
from .damage import leaves, overwrite_page
from .influxdb_v1_server import InfluxDBv1Server, free_port
from .influxdb_v2_server import InfluxDBv2TestServer
from .repair_issues import issue_checked_now, issue_of, render_issue

EARLIER_US = 1_760_000_000_000_000


async def test_setup_and_unload(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """A reachable server: the entry loads, knows the server's version, and unloads."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.LOADED
    assert config_entry.runtime_data.pipeline.server.version.startswith("1.")
    assert config_entry.runtime_data.pipeline.server.build == "OSS"

    assert await hass.config_entries.async_unload(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.NOT_LOADED


async def test_gzip_option_writes_to_influxdb(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """With the gzip option on, the entry validates and its points reach influxd."""
    await setup_entry(hass, config_entry, {CONF_GZIP: True, CONF_FLUSH_INTERVAL: 0.05})
    assert config_entry.runtime_data.pipeline.server is not None

    for watts in range(50):
        hass.states.async_set("sensor.power", str(watts), {"unit_of_measurement": "W"})
    stats = config_entry.runtime_data.pipeline.stats
    await wait_until(lambda: stats.points_written == 50, "50 points written")
    rows = influxdb.rows('SELECT "value" FROM "W"', database)
    assert [row["value"] for row in rows] == [float(watts) for watts in range(50)]
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.parametrize(
    ("options", "content_encoding"), [({CONF_GZIP: True}, "gzip"), ({}, "")]
)
async def test_gzip_option_compresses_the_entrys_writes(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    options: dict[str, Any],
    content_encoding: str,
) -> None:
    """The option reaches the entry's client: its writes are gzip only when it is on."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=v2_entry_data(influxdb_v2),
        options=options | {CONF_FLUSH_INTERVAL: 0.05},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    await wait_until(lambda: len(influxdb_v2.points("ha")) == 1, "the point is stored")

    # Validation's empty body aside, the one batch carries the point.
    assert [
        body.content_encoding for body in influxdb_v2.write_bodies if body.size
    ] == [content_encoding]
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("data", "reauth"),
    [
        ({CONF_URL: "http://127.0.0.1:{free}"}, False),
        ({CONF_DATABASE: "missing"}, False),
        ({CONF_PASSWORD: "wrong"}, True),
    ],
)
async def test_setup_records_even_when_influxdb_cannot_be_written(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    data: dict[str, str],
    reauth: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unreachable, missing database, wrong password: the entry loads and spools.

    The test at setup counts as the outage's first failed write: shown at once, and
    one warning for the outage, however many attempts fail. Rejected credentials
    also ask the user for new ones, once.
    """
    changes = {key: value.format(free=free_port()) for key, value in data.items()}
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, data={**config_entry.data, **changes}
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.LOADED
    assert config_entry.runtime_data.pipeline.server is None
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == (
        [SOURCE_REAUTH] if reauth else []
    )

    health = config_entry.runtime_data.pipeline.batcher.health
    assert health.failing
    first_retry_at = health.retry_at

    hass.states.async_set("sensor.kept", "1")
    await hass.async_block_till_done()
    spool = config_entry.runtime_data.pipeline.spool
    await wait_until(lambda: spool.count == 1, "the point waits in the spool")
    await wait_until(lambda: health.retry_at != first_retry_at, "a failed retry")
    assert caplog.text.count("Writing to InfluxDB failed") == 1
    assert len(hass.config_entries.flow.async_progress_by_handler(DOMAIN)) == reauth


async def test_a_stored_token_http_cannot_carry_asks_for_a_new_one(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A 2.x entry whose stored token ends in a line break (its file edited by hand).

    Nothing is sent (HTTP forbids the character in a header), the points wait in the
    spool as for a refused token, and re-authentication asks for the token; given,
    the entry reloads and writes what waited.
    """
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=f"{influxdb_v2.url}/home/ha",
        data=v2_entry_data(influxdb_v2) | {CONF_TOKEN: f"{V2_TOKEN}\n"},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    [flow] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == SOURCE_REAUTH
    hass.states.async_set("sensor.kept", "1")
    spool = entry.runtime_data.pipeline.spool
    await wait_until(lambda: spool.count == 1, "the point waits in the spool")
    assert influxdb_v2.requests == []

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_TOKEN: V2_TOKEN}
    )
    assert result["reason"] == "reauth_successful"
    await wait_until(
        lambda: [p.tags["entity_id"] for p in influxdb_v2.points("ha")] == ["kept"],
        "the point written",
    )


def _spool_path(hass: HomeAssistant, entry: MockConfigEntry) -> Path:
    return Path(hass.config.path(STORAGE_DIR, f"{DOMAIN}.{entry.entry_id}.spool"))


def _write_foreign_file(path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not a database, but someone's file\n" * 100)


def _write_other_database(path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE states (state_id INTEGER PRIMARY KEY)")
    finally:
        connection.close()


def _spool_files(path: Path) -> list[Path]:
    return list(path.parent.glob(f"{path.name}*"))


def _moved_aside(path: Path) -> list[Path]:
    """The damaged spools moved aside from `path` (not their log or shared memory)."""
    return [
        file
        for file in path.parent.glob(f"{path.name}.damaged-*")
        if not file.name.endswith(("-wal", "-shm"))
    ]


async def test_another_programs_database_at_the_spool_path_retries_setup(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """An SQLite file that is not a spool: setup is retried later, the file untouched."""
    spool_path = _spool_path(hass, config_entry)
    await hass.async_add_executor_job(_write_other_database, spool_path)
    config_entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert "spool file cannot be used" in (config_entry.reason or "")
    assert "not a spool" in (config_entry.reason or "")
    assert await hass.async_add_executor_job(_spool_files, spool_path) == [spool_path]


def _spool_of_an_earlier_run(path: Path, count: int) -> set[int]:
    """A spool left with `count` points of sensor.power, two pages then overwritten.

    The points are 0 to count - 1 (value and id - 1). Returns those of the pages
    overwritten.
    """
    path.parent.mkdir(exist_ok=True)

    async def fill() -> None:
        spool = await Spool.open(path, 1 << 30)
        await spool.append(
            [
                f"W,domain=sensor,entity_id=power value={i}.0 {EARLIER_US + i}"
                for i in range(count)
            ],
            last_states={"sensor.power": "the state before the restart"},
        )
        await spool.close()

    asyncio.run(fill())
    found = leaves(path, "points")
    lost: set[int] = set()
    for page, ids in (found[len(found) // 3], found[2 * len(found) // 3]):
        overwrite_page(path, page)
        lost.update(i - 1 for i in ids)
    return lost


@pytest.mark.usefixtures("socket_enabled")
async def test_a_damaged_spool_is_salvaged_while_recording_goes_on(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Pages of the spool overwritten: the entry loads and records at once.

    The damaged file is moved aside; what can be read of it is written to InfluxDB
    too, and a repair issue names the file, the points saved and those lost.
    """
    spool_path = _spool_path(hass, config_entry)
    lost = await hass.async_add_executor_job(
        _spool_of_an_earlier_run, spool_path, 3_000
    )
    await setup_entry(hass, config_entry, {CONF_FLUSH_INTERVAL: 0.05})
    assert config_entry.state is ConfigEntryState.LOADED
    for watts in range(5_000, 5_010):
        hass.states.async_set("sensor.power", str(watts), {"unit_of_measurement": "W"})

    await wait_until(
        lambda: issue_checked_now(hass, config_entry, ISSUE_SPOOL_DAMAGED) is not None,
        "the salvage is done",
    )
    issue = issue_of(hass, config_entry, ISSUE_SPOOL_DAMAGED)
    assert issue is not None
    (moved,) = await hass.async_add_executor_job(_moved_aside, spool_path)
    text = render_issue(issue)
    assert f"It was moved to {moved}" in text
    assert f"{3_000 - len(lost)} were read and copied into the new spool" in text
    assert f"; {len(lost)} could not be read and are lost" in text

    expected = sorted({*range(3_000)} - lost | {*range(5_000, 5_010)})
    await wait_until(
        lambda: len(influxdb.rows('SELECT * FROM "W"', database)) == len(expected),
        "every point saved is written",
    )
    rows = influxdb.rows('SELECT "value" FROM "W"', database)
    assert sorted(int(row["value"]) for row in rows) == expected
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    assert issue_of(hass, config_entry, ISSUE_SPOOL_DAMAGED) is None


@pytest.mark.usefixtures("socket_enabled")
async def test_a_file_that_is_no_database_is_set_aside_untouched(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """Someone's file at the spool path: kept aside as it was, the entry records."""
    spool_path = _spool_path(hass, config_entry)
    await hass.async_add_executor_job(_write_foreign_file, spool_path)
    await setup_entry(hass, config_entry, {CONF_FLUSH_INTERVAL: 0.05})
    await wait_until(
        lambda: issue_checked_now(hass, config_entry, ISSUE_SPOOL_DAMAGED) is not None,
        "the salvage is done",
    )
    issue = issue_of(hass, config_entry, ISSUE_SPOOL_DAMAGED)
    assert issue is not None
    assert "0 were read" in render_issue(issue)
    # Translated whole, in every language: no English number put into the text.
    assert issue.translation_key == "spool_damaged_lost_unknown"
    assert "how many there were is not known" in render_issue(issue)
    (moved,) = await hass.async_add_executor_job(_moved_aside, spool_path)
    content = await hass.async_add_executor_job(moved.read_bytes)
    assert content.startswith(b"not a database")
    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    stats = config_entry.runtime_data.pipeline.stats
    await wait_until(lambda: stats.points_written == 1, "the point is written")
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_unusable_ca_certificate_retries_setup(hass: HomeAssistant) -> None:
    """A CA certificate file that cannot be read: setup is retried, saying why."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={
            CONF_API_VERSION: API_V1,
            CONF_URL: "https://127.0.0.1:1",
            CONF_VERIFY_SSL: True,
            CONF_DATABASE: "home_assistant",
            CONF_SSL_CA_CERT: hass.config.path("missing.pem"),
        },
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "certificate authorities" in (entry.reason or "")
    assert "missing.pem" in (entry.reason or "")


async def test_removing_the_entry_deletes_its_spool(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """The spool file and its log go with the entry: last states and counters too.

    So do the `.storage` files of a version before 0.2 that was never started since.
    """
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    spool_path = _spool_path(hass, config_entry)
    assert await hass.async_add_executor_job(_spool_files, spool_path)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    legacy = [
        f"{DOMAIN}.{config_entry.entry_id}.last_states",
        f"{DOMAIN}.{config_entry.entry_id}.counters",
    ]
    for key in legacy:
        hass_storage[key] = {"version": 1, "minor_version": 1, "key": key, "data": {}}
    await hass.config_entries.async_remove(config_entry.entry_id)
    assert not await hass.async_add_executor_job(_spool_files, spool_path)
    assert not set(legacy) & set(hass_storage)


async def test_a_failed_setup_stops_the_pipeline(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """The platforms fail to set up: nothing keeps listening behind the entry."""
    config_entry.add_to_hass(hass)
    with patch.object(
        hass.config_entries,
        "async_forward_entry_setups",
        side_effect=RuntimeError("broken platform"),
    ):
        assert not await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.SETUP_ERROR
    stats = config_entry.runtime_data.pipeline.stats
    received = stats.state_changes_received
    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    await hass.async_block_till_done()
    assert stats.state_changes_received == received


# The measurement of a sensor in °C with the device class temperature, by rule.
_MEASUREMENTS = {
    MEASUREMENT_DOMAIN_DEVICE_CLASS: "sensor__temperature",
    MEASUREMENT_UNIT: "°C",
}


@pytest.mark.parametrize(
    ("stored", "migrated"),
    [
        ("domain__device_class", MEASUREMENT_DOMAIN_DEVICE_CLASS),
        (MEASUREMENT_UNIT, MEASUREMENT_UNIT),
    ],
)
async def test_an_entry_of_version_1_1_is_migrated(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    config_entry: MockConfigEntry,
    stored: str,
    migrated: str,
) -> None:
    """1.1 stored core's name for a measurement rule; 1.2 its own, and writes the same."""
    assert (config_entry.version, config_entry.minor_version) == (1, 1)
    options = {CONF_MEASUREMENT_RULE: stored, CONF_FLUSH_INTERVAL: 0.05}
    await setup_entry(hass, config_entry, options)
    assert (config_entry.version, config_entry.minor_version) == (1, 2)
    assert config_entry.options == options | {CONF_MEASUREMENT_RULE: migrated}

    attributes = {"device_class": "temperature", "unit_of_measurement": "°C"}
    hass.states.async_set("sensor.hall", "21.5", attributes)
    stats = config_entry.runtime_data.pipeline.stats
    await wait_until(lambda: stats.points_written == 1, "the point written")
    rows = influxdb.rows('SELECT "value" FROM /.*/', config_entry.data[CONF_DATABASE])
    assert [(row["measurement"], row["value"]) for row in rows] == [
        (_MEASUREMENTS[migrated], 21.5)
    ]
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_an_entry_of_a_later_major_version_is_not_loaded(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """Saved by a newer HA Ingestor (2.x): not migrated back, not loaded, kept as is."""
    entry = MockConfigEntry(
        domain=DOMAIN, data=config_entry.data, version=2, minor_version=1
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR
    assert (entry.version, entry.minor_version) == (2, 1)
