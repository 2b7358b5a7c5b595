"""The diagnostics download: its shape (a snapshot), and no secret in it."""

from __future__ import annotations

import json
import re
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.ha_ingestor.const import (
    CONF_DATABASE,
    CONF_FLUSH_INTERVAL,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    DOMAIN,
)
from custom_components.ha_ingestor.diagnostics import _redact_url
from custom_components.ha_ingestor.influxdb.errors import InfluxConnectionError
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.pipeline.writer import RECENT_ERRORS, PointWriter
from custom_components.ha_ingestor.storage.spool import SpoolError

from .conftest import (
    V2_TOKEN,
    V3_TOKEN,
    seed_field_type_conflict,
    v2_entry_data,
    v3_entry_data,
    wait_until,
)
from .influxdb_v1_server import ADMIN_PASSWORD, InfluxDBv1Server
from .influxdb_v2_server import InfluxDBv2TestServer
from .influxdb_v3_server import InfluxDBv3TestServer

_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


# Numbers that depend on timing: their type is pinned, not their value.
_TIMING = frozenset(
    (
        "oldest_point_age_seconds",
        "last_write_latency_ms",
        "events_per_minute",
        "state_changes_received",
    )
)


def _normalized(value: Any, volatile: dict[str, str]) -> Any:
    """Replace what differs from run to run (names, ports, times) by placeholders."""
    if isinstance(value, dict):
        return {
            key: f"<{type(item).__name__}>"
            if key in _TIMING and item is not None
            else _normalized(item, volatile)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_normalized(item, volatile) for item in value]
    if isinstance(value, str):
        if _ISO_TIME.match(value):
            return "<time>"
        for text, placeholder in volatile.items():
            value = value.replace(text, placeholder)
    return value


async def test_diagnostics_snapshot(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    influxdb: InfluxDBv1Server,
    config_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Counters, spool, quarantine, write errors, mirror: the shape is pinned."""
    database = config_entry.data[CONF_DATABASE]
    seed_field_type_conflict(influxdb, database)
    mirror = hass.config.path("mirror.sqlite")
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry,
        options={
            CONF_FLUSH_INTERVAL: 0.05,
            CONF_MIRROR_ENABLED: True,
            CONF_MIRROR_PATH: mirror,
        },
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    data = config_entry.runtime_data
    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.temperature", "21", {"unit_of_measurement": "°C"})
    hass.states.async_set(
        "sensor.odd", "1", {"unit_of_measurement": "°C", "ratio": float("nan")}
    )
    await wait_until(lambda: data.pipeline.spool.quarantined == 1, "quarantined")
    await wait_until(lambda: data.pipeline.stats.points_written == 2, "2 written")

    diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(
        hass, hass_client, config_entry
    )

    server_version = diagnostics["server"]["version"]
    assert server_version.startswith("1.")
    volatile = {
        config_entry.entry_id: "<entry_id>",
        database: "<database>",
        mirror: "<mirror>",
        f":{influxdb.port}": ":<port>",
        diagnostics["versions"]["home_assistant"]: "<ha_version>",
        server_version: "<influxdb_version>",
    }
    assert _normalized(diagnostics, volatile) == snapshot
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("influxdb")
async def test_no_secret_in_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    config_entry: MockConfigEntry,
    influxdb_v2: InfluxDBv2TestServer,
    influxdb_v3: InfluxDBv3TestServer,
) -> None:
    """Neither the 1.x password nor the 2.x or 3 token."""
    v2_entry = MockConfigEntry(domain=DOMAIN, data=v2_entry_data(influxdb_v2))
    v2_entry.add_to_hass(hass)
    v3_entry = MockConfigEntry(domain=DOMAIN, data=v3_entry_data(influxdb_v3))
    v3_entry.add_to_hass(hass)
    config_entry.add_to_hass(hass)
    # Setting up the first sets up every entry of the integration.
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    await hass.async_block_till_done()

    for entry in (config_entry, v2_entry, v3_entry):
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        text = json.dumps(diagnostics)
        for secret in (ADMIN_PASSWORD, V2_TOKEN, V3_TOKEN):
            assert secret not in text
        assert "**REDACTED**" in text
    for entry in (config_entry, v2_entry, v3_entry):
        assert await hass.config_entries.async_unload(entry.entry_id)


def test_credentials_in_the_url_are_redacted() -> None:
    """A URL may carry a user and password: only the address is shown."""
    assert _redact_url("http://someone:secret@db.local:8086/influx") == (
        "http://db.local:8086/influx"
    )
    assert _redact_url("http://db.local:8086") == "http://db.local:8086"
    assert _redact_url("http://[not-an-address") == "**REDACTED**"


async def test_unreadable_quarantine_is_reported(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    influxdb: InfluxDBv1Server,
    config_entry: MockConfigEntry,
) -> None:
    """The download still works, and says why the quarantine is not summarized."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    spool = config_entry.runtime_data.pipeline.spool
    with patch.object(
        spool, "quarantined_points", side_effect=SpoolError("disk on fire")
    ):
        diagnostics = await get_diagnostics_for_config_entry(
            hass, hass_client, config_entry
        )
    assert diagnostics["quarantine"] == {
        "points": 0,
        "oldest_point_age_seconds": None,
        "reasons": [],
        "read_error": "disk on fire",
    }
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_the_last_20_distinct_write_errors_are_kept() -> None:
    """Each distinct error once, with how often it came; the most recent first."""

    class Failing:
        message = ""

        async def write(self, body: bytes) -> None:
            raise InfluxConnectionError(self.message)

    client = Failing()
    writer = PointWriter(client, PipelineStats(), AsyncMock())  # type: ignore[arg-type]
    for message in [f"error {i}" for i in range(25)] + ["error 10"]:
        client.message = message
        with pytest.raises(InfluxConnectionError):
            await writer.write(["m value=1.0 1"])
    errors = writer.recent_errors
    assert [(e.message, e.count) for e in errors[:2]] == [
        ("error 10", 2),
        ("error 24", 1),
    ]
    assert len(errors) == RECENT_ERRORS == 20
    assert {e.message for e in errors} == {f"error {i}" for i in range(5, 25)}
    assert {e.type for e in errors} == {"InfluxConnectionError"}
