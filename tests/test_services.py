"""The actions ha_ingestor.flush and ha_ingestor.replay_quarantine, on a real InfluxDB."""

from __future__ import annotations

from unittest.mock import patch

from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL, DOMAIN
from custom_components.ha_ingestor.services import (
    SERVICE_FLUSH,
    SERVICE_REPLAY_QUARANTINE,
)
from custom_components.ha_ingestor.storage.spool import SpoolError

from .conftest import seed_field_type_conflict, setup_entry, wait_until
from .influxdb_v1_server import InfluxDBv1Server

# The timed flush never comes during a test: only the action writes.
NO_TIMED_FLUSH = {CONF_FLUSH_INTERVAL: 60.0}


def _count(influxdb: InfluxDBv1Server, database: str, measurement: str) -> int:
    series = influxdb.query(f'SELECT count("value") FROM "{measurement}"', database)
    return int(series[0]["values"][0][1]) if series else 0


async def test_flush_writes_now_and_returns_counts(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """What waits in memory is written by the call; the response counts it."""
    await setup_entry(hass, config_entry, NO_TIMED_FLUSH)
    for i in range(25):
        hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})
    assert _count(influxdb, database, "W") == 0

    response = await hass.services.async_call(
        DOMAIN,
        SERVICE_FLUSH,
        {ATTR_CONFIG_ENTRY_ID: config_entry.entry_id},
        blocking=True,
        return_response=True,
    )
    assert response == {"written": 25, "refused": 0, "waiting": 0, "quarantined": 0}
    assert _count(influxdb, database, "W") == 25

    # Without an entry id: the only entry there is; and without asking for counts.
    hass.states.async_set("sensor.power", "26", {"unit_of_measurement": "W"})
    await hass.services.async_call(DOMAIN, SERVICE_FLUSH, blocking=True)
    assert _count(influxdb, database, "W") == 26
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_flush_while_influxdb_is_down_raises_and_keeps_the_points(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """A translated error; the points wait; once back, a flush needs no backoff."""
    await setup_entry(hass, config_entry, NO_TIMED_FLUSH)
    spool = config_entry.runtime_data.pipeline.spool
    await hass.async_add_executor_job(influxdb.kill)
    for i in range(10):
        hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})

    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call(DOMAIN, SERVICE_FLUSH, blocking=True)
    assert raised.value.translation_key == "write_failed"
    placeholders = raised.value.translation_placeholders
    assert placeholders is not None
    assert (placeholders["url"], placeholders["waiting"]) == (influxdb.url, "10")
    assert "10 points wait in the spool" in str(raised.value)
    assert spool.count == 10

    # The batcher now waits out a backoff; the action does not.
    await hass.async_add_executor_job(influxdb.start)
    response = await hass.services.async_call(
        DOMAIN, SERVICE_FLUSH, blocking=True, return_response=True
    )
    assert response == {"written": 10, "refused": 0, "waiting": 0, "quarantined": 0}
    assert _count(influxdb, database, "W") == 10
    assert not config_entry.runtime_data.pipeline.batcher.health.failing
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_replay_quarantine_after_the_conflict_is_fixed(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Refused while the field had another type; written once the user dropped it."""
    seed_field_type_conflict(influxdb, database)
    await setup_entry(hass, config_entry, NO_TIMED_FLUSH)
    spool = config_entry.runtime_data.pipeline.spool
    for i in range(3):
        hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.temperature", "21", {"unit_of_measurement": "°C"})
    response = await hass.services.async_call(
        DOMAIN, SERVICE_FLUSH, blocking=True, return_response=True
    )
    assert response == {"written": 1, "refused": 3, "waiting": 0, "quarantined": 3}

    # Replaying before the fix: refused again, back in quarantine, nothing lost.
    response = await hass.services.async_call(
        DOMAIN, SERVICE_REPLAY_QUARANTINE, blocking=True, return_response=True
    )
    assert response == {
        "released": 3,
        "written": 0,
        "refused": 3,
        "waiting": 0,
        "quarantined": 3,
    }

    influxdb.query('DROP MEASUREMENT "W"', database)
    response = await hass.services.async_call(
        DOMAIN, SERVICE_REPLAY_QUARANTINE, blocking=True, return_response=True
    )
    assert response == {
        "released": 3,
        "written": 3,
        "refused": 0,
        "waiting": 0,
        "quarantined": 0,
    }
    assert spool.quarantined == 0
    assert [row["value"] for row in influxdb.rows('SELECT * FROM "W"', database)] == [
        0.0,
        1.0,
        2.0,
    ]
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("revive")
async def test_replay_while_influxdb_is_down_keeps_the_points(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Released points that cannot be written wait in the spool, then arrive."""
    seed_field_type_conflict(influxdb, database)
    await setup_entry(hass, config_entry, {CONF_FLUSH_INTERVAL: 0.05})
    spool = config_entry.runtime_data.pipeline.spool
    hass.states.async_set("sensor.power", "5", {"unit_of_measurement": "W"})
    await wait_until(lambda: spool.quarantined == 1, "quarantined")
    influxdb.query('DROP MEASUREMENT "W"', database)
    await hass.async_add_executor_job(influxdb.kill)

    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call(
            DOMAIN, SERVICE_REPLAY_QUARANTINE, blocking=True, return_response=True
        )
    assert raised.value.translation_key == "write_failed"
    assert (spool.quarantined, spool.count) == (0, 1)

    await hass.async_add_executor_job(influxdb.start)
    await wait_until(lambda: _count(influxdb, database, "W") == 1, "written")
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_actions_refuse_an_entry_that_is_not_loaded(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """Unknown entry, unloaded entry: a translated ServiceValidationError."""
    await setup_entry(hass, config_entry, NO_TIMED_FLUSH)
    for service in (SERVICE_FLUSH, SERVICE_REPLAY_QUARANTINE):
        with pytest.raises(ServiceValidationError) as raised:
            await hass.services.async_call(
                DOMAIN,
                service,
                {ATTR_CONFIG_ENTRY_ID: "no-such-entry"},
                blocking=True,
            )
        assert raised.value.translation_key == "service_config_entry_not_found"

    assert await hass.config_entries.async_unload(config_entry.entry_id)
    for service in (SERVICE_FLUSH, SERVICE_REPLAY_QUARANTINE):
        with pytest.raises(ServiceValidationError) as raised:
            await hass.services.async_call(
                DOMAIN,
                service,
                {ATTR_CONFIG_ENTRY_ID: config_entry.entry_id},
                blocking=True,
            )
        assert raised.value.translation_key == "service_config_entry_not_loaded"


async def test_actions_without_entry_id_need_exactly_one_entry(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """Two entries and no entry id: the user is told to choose; none: to add one."""
    other = MockConfigEntry(
        domain=DOMAIN, data=config_entry.data, unique_id=f"{config_entry.unique_id}-2"
    )
    other.add_to_hass(hass)
    await setup_entry(hass, config_entry, NO_TIMED_FLUSH)
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(DOMAIN, SERVICE_FLUSH, blocking=True)
    assert (raised.value.translation_domain, raised.value.translation_key) == (
        DOMAIN,
        "choose_entry",
    )
    assert raised.value.translation_placeholders == {"count": "2"}

    await hass.config_entries.async_remove(other.entry_id)
    await hass.config_entries.async_remove(config_entry.entry_id)
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(DOMAIN, SERVICE_FLUSH, blocking=True)
    assert (raised.value.translation_domain, raised.value.translation_key) == (
        DOMAIN,
        "no_entry",
    )


async def test_replay_with_an_unusable_spool_raises(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """The spool cannot be read: a translated error, nothing changed."""
    await setup_entry(hass, config_entry, NO_TIMED_FLUSH)
    spool = config_entry.runtime_data.pipeline.spool
    await spool.quarantine(["m value=1.0 1"], "refused")
    with (
        patch.object(
            spool, "quarantined_points", side_effect=SpoolError("disk on fire")
        ),
        pytest.raises(HomeAssistantError) as raised,
    ):
        await hass.services.async_call(DOMAIN, SERVICE_REPLAY_QUARANTINE, blocking=True)
    assert raised.value.translation_key == "spool_error"
    assert "disk on fire" in str(raised.value)
    assert spool.quarantined == 1
    assert await hass.config_entries.async_unload(config_entry.entry_id)
