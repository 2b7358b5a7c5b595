"""The diagnostic sensors against a real InfluxDB 1.x: what they say is what happened."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import (
    EVENT_STATE_CHANGED,
    STATE_UNKNOWN,
    EntityCategory,
    Platform,
)
from homeassistant.core import (
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.ha_ingestor.const import (
    CONF_EXCLUDE_DOMAINS,
    CONF_FLUSH_INTERVAL,
    CONF_INCLUDE_ENTITIES,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    DOMAIN,
)
from custom_components.ha_ingestor.coordinator import UPDATE_INTERVAL
from custom_components.ha_ingestor.sensor import SENSORS

from .conftest import setup_entry, setup_unreachable_platform, wait_until
from .influxdb_v1_server import InfluxDBv1Server

INTEGRATION = Path(__file__).parents[1] / "custom_components" / DOMAIN
FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.05}

# What each sensor is, as Home Assistant shows it: (device class, state class, unit).
EXPECTED = {
    "state_changes_received": (None, "total_increasing", None),
    "points_written": (None, "total_increasing", None),
    "points_waiting": (None, "measurement", None),
    "spool_size": ("data_size", "measurement", "MiB"),
    "points_dropped": (None, "total_increasing", None),
    "points_quarantined": (None, "measurement", None),
    "last_write": ("timestamp", None, None),
    "write_latency": ("duration", "measurement", "ms"),
    "events_per_minute": (None, "measurement", "events/min"),
    "history_backfill": (None, None, "%"),
}
DISABLED_BY_DEFAULT = {"spool_size", "write_latency"}


def _entity_id(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_{key}"
    )
    assert entity_id is not None, key
    return entity_id


def _state(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> State:
    state = hass.states.get(_entity_id(hass, entry, key))
    assert state is not None, key
    return state


def _own_entity_ids(hass: HomeAssistant) -> set[str]:
    """The integration's entities that are enabled."""
    return {
        entry.entity_id
        for entry in er.async_get(hass).entities.values()
        if entry.platform == DOMAIN and not entry.disabled
    }


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_entities_and_their_device(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """Diagnostic entities of the entry's device (test_entity checks the device)."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    entities = er.async_get(hass)
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, config_entry.entry_id), config_entry.entry_id
    )
    assert device is not None

    registered = er.async_entries_for_config_entry(entities, config_entry.entry_id)
    assert {entry.unique_id for entry in registered} == {
        f"{config_entry.entry_id}_{key}" for key in [*EXPECTED, "connectivity"]
    }
    icons = json.loads((INTEGRATION / "icons.json").read_text("utf-8"))
    strings = json.loads((INTEGRATION / "strings.json").read_text("utf-8"))
    for key, (device_class, state_class, unit) in EXPECTED.items():
        entry = entities.async_get(_entity_id(hass, config_entry, key))
        assert entry is not None
        assert entry.device_id == device.id
        assert entry.entity_category is EntityCategory.DIAGNOSTIC
        assert entry.has_entity_name
        assert entry.translation_key == key
        assert key in icons["entity"]["sensor"]
        assert key in strings["entity"]["sensor"]
        attributes = _state(hass, config_entry, key).attributes
        assert attributes.get("device_class") == device_class, key
        assert attributes.get("state_class") == state_class, key
        assert attributes.get("unit_of_measurement") == unit, key
    assert {
        description.key
        for description in SENSORS
        if description.entity_registry_enabled_default is False
    } == DISABLED_BY_DEFAULT
    # The mirror's sensor exists only with the mirror.
    assert (
        entities.async_get_entity_id(
            "sensor", DOMAIN, f"{config_entry.entry_id}_registry_mirror_rows"
        )
        is None
    )
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_counters_match_what_influxdb_holds(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """Written, quarantined, dropped by reason; filtered out is not dropped."""
    # Another program wrote `value` as text into "°C": our °C points are refused.
    influxdb.request("POST", "/write", {"db": database}, '°C,x=y value="t"'.encode())
    received = 0

    @callback
    def _count(_event: Event[EventStateChangedData]) -> None:
        nonlocal received
        received += 1

    hass.bus.async_listen(EVENT_STATE_CHANGED, _count)
    await setup_entry(
        hass, config_entry, FAST_FLUSH | {CONF_EXCLUDE_DOMAINS: ["light"]}
    )
    data = config_entry.runtime_data
    for i in range(100):
        hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})
    for i in range(5):
        hass.states.async_set("sensor.temp", str(i), {"unit_of_measurement": "°C"})
    for i in range(10):
        hass.states.async_set("light.kitchen", "on" if i % 2 else "off")
    for i in range(3):
        hass.states.async_set(
            "sensor.odd", str(i), {"unit_of_measurement": "V", "ratio": float("nan")}
        )
    await wait_until(
        lambda: (
            data.pipeline.stats.points_written == 103
            and data.pipeline.spool.quarantined == 5
            # Written points leave the spool in the writer's executor job, a
            # moment after they are counted as written.
            and data.pipeline.points_waiting == 0
        ),
        "everything written or quarantined and out of the spool",
    )
    written_in_influxdb = sum(
        int(series["values"][0][1])
        for measurement in ("W", "V")
        for series in influxdb.query(
            f'SELECT count("value") FROM "{measurement}"', database
        )
    )
    assert written_in_influxdb == 103

    expected_received = received
    await data.coordinator.async_refresh()
    written = _state(hass, config_entry, "points_written")
    assert written.state == "103"
    # NaN is left out of a point that is written: a value skipped, no point dropped.
    assert written.attributes["non_finite_values_skipped"] == 3
    assert _state(hass, config_entry, "state_changes_received").state == str(
        expected_received
    )
    assert int(_state(hass, config_entry, "state_changes_received").state) >= 118
    # Quarantined points are not dropped: they can be replayed.
    dropped = _state(hass, config_entry, "points_dropped")
    assert dropped.state == "0"
    assert dropped.attributes["points_dropped_spool_full"] == 0
    quarantined = _state(hass, config_entry, "points_quarantined")
    assert quarantined.state == "5"
    assert quarantined.attributes["points_refused"] == 5
    assert _state(hass, config_entry, "points_waiting").state == "0"
    assert float(_state(hass, config_entry, "spool_size").state) == 0
    last_write = dt_util.parse_datetime(_state(hass, config_entry, "last_write").state)
    assert last_write is not None
    assert dt_util.utcnow() - last_write < dt.timedelta(seconds=30)
    assert float(_state(hass, config_entry, "write_latency").state) >= 0
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_entities_update_on_a_timer_not_per_state_change(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """A thousand state changes write no state of ours; the next tick writes a few."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    own = _own_entity_ids(hass)
    assert len(own) == 9  # two are disabled by default
    ours: list[str] = []

    @callback
    def _record(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] in own:
            ours.append(event.data["entity_id"])

    hass.bus.async_listen(EVENT_STATE_CHANGED, _record)
    for i in range(1000):
        hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})
    # Written before the clock moves: moving it would time out a write in flight.
    await config_entry.runtime_data.pipeline.batcher.flush()
    await hass.async_block_till_done()
    assert ours == []

    async_fire_time_changed(hass, dt_util.utcnow() + UPDATE_INTERVAL)
    await hass.async_block_till_done()
    assert 1 <= len(ours) <= len(own)
    assert len(set(ours)) == len(ours)
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_own_entities_are_not_written_unless_included(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """By default no point about a point; an own entity listed as included is."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    hass.states.async_set("sensor.power", "1", {"unit_of_measurement": "W"})
    data = config_entry.runtime_data
    await wait_until(lambda: data.pipeline.stats.points_written == 1, "written")
    await data.coordinator.async_refresh()
    await data.pipeline.batcher.flush()
    assert await hass.config_entries.async_unload(config_entry.entry_id)

    def entities_written() -> set[str]:
        return {
            f"{row['domain']}.{row['entity_id']}"
            for row in influxdb.rows(
                'SELECT * FROM /.*/ GROUP BY "domain", "entity_id"', database
            )
        }

    assert entities_written() == {"sensor.power"}

    points_written = _entity_id(hass, config_entry, "points_written")
    hass.config_entries.async_update_entry(
        config_entry, options=FAST_FLUSH | {CONF_INCLUDE_ENTITIES: [points_written]}
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    hass.states.async_set("sensor.power", "2", {"unit_of_measurement": "W"})
    data = config_entry.runtime_data
    await data.coordinator.async_refresh()
    await wait_until(lambda: data.pipeline.stats.points_written >= 1, "written")
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    assert entities_written() == {"sensor.power", points_written}


@pytest.mark.freeze_time(tick=True)
async def test_events_per_minute(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """State changes of the last minute, whatever happens to them."""
    await setup_entry(hass, config_entry, FAST_FLUSH)
    coordinator = config_entry.runtime_data.coordinator
    assert _state(hass, config_entry, "events_per_minute").state == STATE_UNKNOWN
    # Counted from the first snapshot, taken at setup.
    (_, first), *_ = coordinator._samples
    for i in range(120):
        hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})
    freezer.tick(dt.timedelta(seconds=60))
    await coordinator.async_refresh()
    since = config_entry.runtime_data.pipeline.stats.state_changes_received - first
    rate = float(_state(hass, config_entry, "events_per_minute").state)
    # Measured over a little more than the minute the clock moved.
    assert since * 60 / 62 <= rate <= since
    assert since >= 120
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_registry_mirror_rows(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, config_entry: MockConfigEntry
) -> None:
    """With the mirror on, a sensor counts its rows, per table in its attributes."""
    path = hass.config.path("mirror.sqlite")
    await setup_entry(
        hass,
        config_entry,
        FAST_FLUSH | {CONF_MIRROR_ENABLED: True, CONF_MIRROR_PATH: path},
    )
    mirror = config_entry.runtime_data.mirror
    assert mirror is not None
    assert mirror.path == Path(path)
    # The entities of this very integration are among the rows.
    await wait_until(lambda: mirror.rows.get("entities") == 12, "the mirror is written")
    coordinator = config_entry.runtime_data.coordinator
    await coordinator.async_refresh()
    state = _state(hass, config_entry, "registry_mirror_rows")
    assert int(state.state) == sum(mirror.rows.values()) > 0
    assert {
        key: value for key, value in state.attributes.items() if key in mirror.rows
    } == mirror.rows
    assert await hass.config_entries.async_unload(config_entry.entry_id)


@pytest.mark.freeze_time("2026-12-03 12:00:00+00:00")
@pytest.mark.usefixtures("entity_registry_enabled_by_default", "socket_enabled")
async def test_sensor_entities_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion
) -> None:
    """Every sensor as registered and as first shown, InfluxDB not answering yet."""
    entry = await setup_unreachable_platform(hass, Platform.SENSOR)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)
