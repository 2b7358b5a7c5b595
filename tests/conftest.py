"""Shared fixtures: real servers, the 2.x and 3 stand-ins, Home Assistant's harness.

The real servers are InfluxDB 1.x, VictoriaMetrics and nginx; InfluxDB 2.x and 3 are
stand-ins that answer as their documentation says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
import contextlib
import datetime as dt
import logging
from pathlib import Path
import shutil
from typing import Any, NoReturn, Protocol
from unittest.mock import PropertyMock, patch
import uuid

from homeassistant import loader
from homeassistant.config_entries import SOURCE_USER, ConfigEntry
from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    EVENT_STATE_CHANGED,
    Platform,
)
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
    get_test_config_dir,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from pytest_homeassistant_custom_component.typing import RecorderInstanceContextManager
from sqlalchemy.exc import DatabaseError
from syrupy.assertion import SnapshotAssertion

from custom_components.ha_ingestor.const import (
    API_V1,
    API_V2,
    API_V3,
    CONF_API_VERSION,
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_NO_SYNC,
    CONF_ORGANIZATION,
    CONF_RETENTION_POLICY,
    DOMAIN,
)
from custom_components.ha_ingestor.coordinator import HaIngestorConfigEntry
from custom_components.ha_ingestor.influxdb.client import InfluxClient
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.pipeline.writer import PointWriter

from .influxdb_v1_server import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    InfluxDBv1Server,
    sockets_allowed,
)
from .influxdb_v2_server import InfluxDBv2TestServer
from .influxdb_v3_server import InfluxDBv3TestServer
from .reverse_proxy import ReverseProxy, StartProxy
from .victoriametrics_server import VictoriaMetricsServer

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


async def wait_until(
    condition: Callable[[], bool], what: str, seconds: float = 20
) -> None:
    """Poll `condition` every 50 ms, failing the test with `what` after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not reached in {seconds} s: {what}")


def seed_field_type_conflict(influxdb: InfluxDBv1Server, database: str) -> None:
    """Write `value` as text into measurement `W`, as another program might have.

    InfluxDB then refuses every point of ours that has a number as `value` in `W`
    (a sensor in watts): a field type conflict.
    """
    influxdb.request("POST", "/write", {"db": database}, b'W,entity_id=x value="text"')


def record_state_changes(hass: HomeAssistant) -> list[tuple[str, int]]:
    """(entity id, event time in µs) of every state change, as they are fired.

    Not those of the integration's own entities, which it does not write.
    """
    fired: list[tuple[str, int]] = []
    entities = er.async_get(hass)

    @callback
    def _record(event: Event[EventStateChangedData]) -> None:
        registered = entities.async_get(event.data["entity_id"])
        if registered is not None and registered.platform == DOMAIN:
            return
        fired.append(
            (
                event.data["entity_id"],
                (event.time_fired - EPOCH) // dt.timedelta(0, 0, 1),
            )
        )

    hass.bus.async_listen(EVENT_STATE_CHANGED, _record)
    return fired


type Refused = list[tuple[list[str], str]]


def point_writer(client: InfluxClient) -> tuple[PointWriter, Refused]:
    """A PointWriter on `client`, and the list of what it sets apart, with the reason."""
    refused: Refused = []

    async def on_refused(lines: list[str], reason: str) -> None:
        refused.append((lines, reason))

    return PointWriter(client, PipelineStats(), on_refused), refused


async def setup_entry(
    hass: HomeAssistant, entry: MockConfigEntry, options: dict[str, Any]
) -> None:
    """Add `entry` with `options` to Home Assistant and set it up; it must load."""
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options=options)
    assert await hass.config_entries.async_setup(entry.entry_id)


async def overflow_the_spool(
    hass: HomeAssistant, entry: HaIngestorConfigEntry, dropped: int
) -> int:
    """Set sensor.filler (1 kB points) until the spool dropped `dropped` points.

    InfluxDB must be down. Returns how many times it was set. Memory never
    overflows: each 500 are spooled.
    """
    pipeline = entry.runtime_data.pipeline
    fillers = 0
    while pipeline.stats.points_dropped_spool_full < dropped:
        for _ in range(500):
            hass.states.async_set(
                "sensor.filler",
                str(fillers),
                {"unit_of_measurement": "B", "text": "x" * 950},
            )
            fillers += 1
        await wait_until(lambda: pipeline.batcher.pending == 0, "memory spooled")
    assert pipeline.stats.points_dropped_memory_full == 0
    return fillers


async def open_form(hass: HomeAssistant, step_id: str) -> str:
    """Open the config flow's first menu and choose `step_id`; the flow's id."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": step_id}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step_id
    flow_id: str = result["flow_id"]
    return flow_id


@contextlib.asynccontextmanager
async def restarted(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    before_setup: Callable[[HomeAssistant], None] = lambda _: None,
    *,
    recorder: RecorderInstanceContextManager | None = None,
) -> AsyncIterator[HomeAssistant]:
    """A new Home Assistant on `hass`'s config dir, with `entry` loaded in it.

    `before_setup` runs before the entry is set up, as the integrations Home Assistant
    sets up first would. `recorder` (the `async_test_recorder` fixture) gives the new
    one a recorder on the same database.
    """
    async with (
        async_test_home_assistant(config_dir=hass.config.config_dir) as second,
        contextlib.AsyncExitStack() as recording,
    ):
        # What the enable_custom_integrations fixture does for `hass`.
        second.data.pop(loader.DATA_CUSTOM_COMPONENTS)
        if recorder is not None:
            await recording.enter_async_context(recorder(second))
        same_entry = MockConfigEntry(
            domain=DOMAIN,
            entry_id=entry.entry_id,
            unique_id=entry.unique_id,
            data=entry.data,
            options=entry.options,
        )
        same_entry.add_to_hass(second)
        before_setup(second)
        assert await second.config_entries.async_setup(same_entry.entry_id)
        yield second
        assert await second.config_entries.async_unload(same_entry.entry_id)
        await second.async_stop()


async def save_options(
    hass: HomeAssistant, entry: ConfigEntry, changes: dict[str, Any]
) -> dict[str, Any]:
    """Go through the option forms as a user would: change `changes`, keep the rest.

    Returns the last step's result: a form with errors, or the created entry.
    """
    result = await hass.config_entries.options.async_init(entry.entry_id)
    while result["type"] is FlowResultType.FORM:
        schema = result["data_schema"]
        assert schema is not None
        fields = {key.schema: key for key in schema.schema}
        shown = {
            name: key.description["suggested_value"]
            for name, key in fields.items()
            if key.description and key.description.get("suggested_value") is not None
        }
        answer = shown | {k: v for k, v in changes.items() if k in fields}
        step = result["step_id"]
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], answer
        )
        if result["type"] is FlowResultType.FORM and result["step_id"] == step:
            break  # the same form again: its errors are the answer
    await hass.async_block_till_done()
    return dict(result)


async def record_past_states(
    hass: HomeAssistant, entity_id: str, count: int, *, days: float = 3
) -> list[float]:
    """Set `count` states of a power sensor over the last `days`, recorded.

    For tests with the recorder (recorder_mock). Returns the states' times.
    """
    end = dt.datetime.now(dt.UTC).timestamp() - 60
    times = [end - days * 86400 * (count - i) / count for i in range(count)]
    for watts, when in enumerate(times):
        hass.states.async_set(
            entity_id, str(watts), {"unit_of_measurement": "W"}, timestamp=when
        )
    await async_wait_recording_done(hass)
    return times


def damaged_recorder_database(*_: Any) -> NoReturn:
    """Stand in for a read of the recorder's database that SQLite finds damaged."""
    raise DatabaseError("SELECT", {}, Exception("database disk image is malformed"))


@pytest.fixture
def quiet_sqlalchemy() -> Iterator[None]:
    """SQLAlchemy logs every statement at INFO: thousands with the recorder."""
    logger = logging.getLogger("sqlalchemy.engine")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Enable the entities that are disabled by default, as the user may."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Home Assistant's snapshot format, in a snapshots/ folder beside the test."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/ha_ingestor in every test."""


@pytest.fixture
def hass_config_dir(tmp_path: Path) -> str:
    """A config dir per test (each has its own spool file), beside the test's files."""
    directory = tmp_path / "config"
    shutil.copytree(get_test_config_dir(), directory, symlinks=True)  # type: ignore[no-untyped-call]
    return str(directory)


def _run_server(directory: Path, *, https: bool = False) -> Iterator[InfluxDBv1Server]:
    with sockets_allowed():
        server = InfluxDBv1Server(directory, https=https)
        server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDBv1Server]:
    """One real influxd for the whole session, authentication on."""
    yield from _run_server(tmp_path_factory.mktemp("influxdb"))


@pytest.fixture(scope="session")
def influxdb_https(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InfluxDBv1Server]:
    """A real influxd that serves https with a self-signed certificate."""
    yield from _run_server(tmp_path_factory.mktemp("influxdb_https"), https=True)


@pytest.fixture
def database(influxdb: InfluxDBv1Server, socket_enabled: None) -> Iterator[str]:
    """A new, empty database for one test (which may then talk to the server)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    influxdb.query(f'CREATE DATABASE "{name}"')
    yield name
    influxdb.query(f'DROP DATABASE "{name}"')


@pytest.fixture
def revive(influxdb: InfluxDBv1Server, database: str) -> Iterator[None]:
    """Start the session's influxd again if a test left it killed.

    (Before the test's database is dropped, which needs it; `database` keeps sockets
    enabled until then.)
    """
    yield
    if influxdb.pid is None:
        influxdb.start()


class Served(Protocol):
    """A server the tests run, found at its URL."""

    @property
    def url(self) -> str:
        """Its base URL."""
        ...


V2_TOKEN = "write-token"
V2_READ_ONLY_TOKEN = "read-only-token"


@pytest.fixture
async def influxdb_v2(socket_enabled: None) -> AsyncIterator[InfluxDBv2TestServer]:
    """The InfluxDB 2.x stand-in: org `home`, bucket `ha`, a write and a read token."""
    async with InfluxDBv2TestServer(
        token=V2_TOKEN,
        org="home",
        buckets=["ha"],
        read_only_tokens={V2_READ_ONLY_TOKEN: ["ha"]},
    ) as server:
        yield server


def v2_entry_data(server: Served) -> dict[str, Any]:
    """Config entry data for the stand-in's bucket `ha`, as the config flow stores it."""
    return {
        CONF_API_VERSION: API_V2,
        CONF_URL: server.url,
        CONF_TOKEN: V2_TOKEN,
        CONF_ORGANIZATION: "home",
        CONF_BUCKET: "ha",
        CONF_VERIFY_SSL: True,
    }


V3_TOKEN = "apiv3_write-token"
V3_READ_ONLY_TOKEN = "apiv3_read-only-token"
# An Enterprise database token that may write `home` and `new-db` (not list them).
V3_DATABASE_TOKEN = "apiv3_database-token"
V3_DATABASE = "home"


@pytest.fixture
async def influxdb_v3(socket_enabled: None) -> AsyncIterator[InfluxDBv3TestServer]:
    """The InfluxDB 3 stand-in: database `home`; admin, read-only and database tokens."""
    async with InfluxDBv3TestServer(
        token=V3_TOKEN,
        databases=[V3_DATABASE],
        read_only_tokens={V3_READ_ONLY_TOKEN: [V3_DATABASE]},
        write_tokens={V3_DATABASE_TOKEN: [V3_DATABASE, "new-db"]},
    ) as server:
        yield server


def v3_entry_data(server: Served | str, database: str = V3_DATABASE) -> dict[str, Any]:
    """Config entry data for `database` on the stand-in (or at a URL), as the flow stores it."""
    return {
        CONF_API_VERSION: API_V3,
        CONF_URL: server if isinstance(server, str) else server.url,
        CONF_DATABASE: database,
        CONF_TOKEN: V3_TOKEN,
        CONF_NO_SYNC: False,
        CONF_VERIFY_SSL: True,
    }


@pytest.fixture(scope="session")
def victoriametrics(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VictoriaMetricsServer]:
    """One real VictoriaMetrics for the whole session."""
    with sockets_allowed():
        server = VictoriaMetricsServer(tmp_path_factory.mktemp("victoriametrics"))
        server.start()
    yield server
    server.kill()


@pytest.fixture
def revive_victoriametrics(
    victoriametrics: VictoriaMetricsServer, socket_enabled: None
) -> Iterator[VictoriaMetricsServer]:
    """The session's VictoriaMetrics, started again if the test left it killed."""
    yield victoriametrics
    if victoriametrics.pid is None:
        with sockets_allowed():
            victoriametrics.start()


@pytest.fixture
def reverse_proxy(tmp_path: Path, socket_enabled: None) -> Iterator[StartProxy]:
    """Start an nginx that routes path prefixes to upstream URLs; stopped after."""
    started: list[ReverseProxy] = []

    def start(
        routes: Mapping[str, str], error_pages: Mapping[int, bytes] | None = None
    ) -> ReverseProxy:
        directory = tmp_path / f"nginx{len(started)}"
        directory.mkdir()
        proxy = ReverseProxy(directory, routes, error_pages)
        proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.kill()


def v1_entry_data(server: Served, database: str) -> dict[str, Any]:
    """Config entry data for `database` on `server`, as the config flow stores it.

    InfluxDB 1.x's data, with its admin; other servers that speak /write take it too.
    """
    return {
        CONF_API_VERSION: API_V1,
        CONF_URL: server.url,
        CONF_VERIFY_SSL: True,
        CONF_DATABASE: database,
        CONF_RETENTION_POLICY: "",
        CONF_USERNAME: ADMIN_USER,
        CONF_PASSWORD: ADMIN_PASSWORD,
    }


async def setup_unreachable_platform(
    hass: HomeAssistant, platform: Platform
) -> MockConfigEntry:
    """Set up one platform of an entry whose InfluxDB does not answer, for snapshots.

    Every name, id and value is fixed: the entry's, the database's, the server's
    (nothing listens on port 1), so its entities look the same in every run.
    """
    entry = MockConfigEntry(
        domain=DOMAIN,
        entry_id="01JSNAPSH0TENTRY000000000",
        title="home_assistant on 127.0.0.1:1",
        unique_id="http://127.0.0.1:1/home_assistant",
        data={
            CONF_API_VERSION: API_V1,
            CONF_URL: "http://127.0.0.1:1",
            CONF_VERIFY_SSL: True,
            CONF_DATABASE: "home_assistant",
            CONF_RETENTION_POLICY: "",
            CONF_USERNAME: "",
            CONF_PASSWORD: "",
        },
    )
    entry.add_to_hass(hass)
    with patch("custom_components.ha_ingestor.PLATFORMS", [platform]):
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
def config_entry(influxdb: InfluxDBv1Server, database: str) -> MockConfigEntry:
    """A config entry for the test's database, not yet added to Home Assistant."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"{database} on 127.0.0.1:{influxdb.port}",
        unique_id=f"http://127.0.0.1:{influxdb.port}/{database}",
        data=v1_entry_data(influxdb, database),
    )
