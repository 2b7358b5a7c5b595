"""Config flow against a real InfluxDB 1.x server, and the 2.x and 3 stand-ins."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import patch

from aiohttp import web
from homeassistant.config_entries import SOURCE_USER, ConfigFlowResult
from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import RecorderInstanceContextManager

from custom_components.ha_ingestor.compat import vol
from custom_components.ha_ingestor.config_flow import INFLUXDB_V3_FORM
from custom_components.ha_ingestor.const import (
    API_V1,
    API_V2,
    API_V3,
    CONF_API_VERSION,
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_HISTORY_BACKFILL,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    CONF_NO_SYNC,
    CONF_ORGANIZATION,
    CONF_RETENTION_POLICY,
    DOMAIN,
)

from .conftest import (
    V2_READ_ONLY_TOKEN,
    V2_TOKEN,
    V3_DATABASE,
    V3_DATABASE_TOKEN,
    V3_READ_ONLY_TOKEN,
    V3_TOKEN,
    Served,
    open_form,
    record_past_states,
    v2_entry_data,
    v3_entry_data,
)
from .influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server, free_port
from .influxdb_v2_server import InfluxDBv2TestServer
from .influxdb_v3_server import InfluxDBv3TestServer

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture
async def mock_recorder_before_hass(
    async_test_recorder: RecorderInstanceContextManager,
) -> None:
    """Let a test set up the recorder (recorder_mock) before Home Assistant."""


@pytest.fixture(autouse=True)
def no_setup() -> Any:
    """Test the flow alone: the entry it creates is not set up here."""
    with patch(
        "custom_components.ha_ingestor.async_setup_entry", return_value=True
    ) as mock_setup:
        yield mock_setup


async def _v1_form(hass: HomeAssistant) -> str:
    return await open_form(hass, "influxdb_v1")


async def test_menu_offers_the_newest_first(hass: HomeAssistant) -> None:
    """InfluxDB 3, then 2, then 1.x and compatible servers (VictoriaMetrics)."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["menu_options"] == ["influxdb_v3", "influxdb_v2", "influxdb_v1"]


def _v1_input(
    server: InfluxDBv1Server, database: str, /, **changes: Any
) -> dict[str, Any]:
    return {
        CONF_URL: server.url,
        CONF_DATABASE: database,
        CONF_USERNAME: ADMIN_USER,
        CONF_PASSWORD: ADMIN_PASSWORD,
        CONF_VERIFY_SSL: True,
    } | changes


async def test_v1_success(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Valid settings create an entry holding exactly what was entered."""
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb, database)
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"{database} on 127.0.0.1:{influxdb.port}"
    assert result["data"] == {
        CONF_API_VERSION: API_V1,
        CONF_URL: influxdb.url,
        CONF_DATABASE: database,
        CONF_RETENTION_POLICY: "",
        CONF_USERNAME: ADMIN_USER,
        CONF_PASSWORD: ADMIN_PASSWORD,
        CONF_VERIFY_SSL: True,
    }
    assert result["result"].unique_id == f"http://127.0.0.1:{influxdb.port}/{database}"


async def test_v1_retention_policy(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """An existing retention policy is accepted and stored."""
    influxdb.query(
        f'CREATE RETENTION POLICY "year" ON "{database}" DURATION 52w REPLICATION 1'
    )
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb, database, retention_policy="year")
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_RETENTION_POLICY] == "year"


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({CONF_URL: "not a url"}, {CONF_URL: "invalid_url"}),
        ({CONF_URL: "ftp://127.0.0.1:8086"}, {CONF_URL: "invalid_url"}),
        ({CONF_URL: "http://"}, {CONF_URL: "invalid_url"}),
        ({CONF_URL: "http://influx db.local:8086"}, {CONF_URL: "invalid_url"}),
        (
            {CONF_URL: "http://admin:secret@127.0.0.1:8086"},
            {CONF_URL: "invalid_url"},
        ),
        ({CONF_PASSWORD: "wrong"}, {CONF_PASSWORD: "invalid_auth"}),
        ({CONF_USERNAME: "", CONF_PASSWORD: ""}, {CONF_PASSWORD: "invalid_auth"}),
        ({CONF_DATABASE: "does_not_exist"}, {CONF_DATABASE: "database_not_found"}),
        (
            {CONF_RETENTION_POLICY: "nope"},
            {CONF_RETENTION_POLICY: "retention_policy_not_found"},
        ),
    ],
)
async def test_v1_errors_then_recovery(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Each mistake shows its error on its field; corrected, the same flow succeeds."""
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb, database, **changes)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert not hass.config_entries.async_entries(DOMAIN)

    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb, database)
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_v1_cannot_connect(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """Nothing listens on the port: the URL field says so."""
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb, database, url=f"http://127.0.0.1:{free_port()}")
    )
    assert result["errors"] == {CONF_URL: "cannot_connect"}


async def test_v1_write_forbidden(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """A user who may only read is told so on the username field."""
    influxdb.query("CREATE USER reader WITH PASSWORD 'reader-password'")
    influxdb.query(f'GRANT READ ON "{database}" TO reader')
    try:
        flow_id = await _v1_form(hass)
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            _v1_input(
                influxdb, database, username="reader", password="reader-password"
            ),
        )
        assert result["errors"] == {CONF_PASSWORD: "write_forbidden"}
    finally:
        influxdb.query("DROP USER reader")


async def test_v1_ssl_error(
    hass: HomeAssistant, influxdb_https: InfluxDBv1Server
) -> None:
    """A self-signed certificate fails verification; with verification off it works."""
    influxdb_https.query('CREATE DATABASE "tls"')
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb_https, "tls")
    )
    assert result["errors"] == {CONF_URL: "ssl_error"}

    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb_https, "tls", verify_ssl=False)
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_VERIFY_SSL] is False


async def test_v1_not_influxdb(hass: HomeAssistant, influxdb: InfluxDBv1Server) -> None:
    """A web server that is not InfluxDB (Home Assistant's own) cannot be used."""
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb, "db", url=f"{influxdb.url}/not-influxdb")
    )
    assert result["errors"] == {CONF_URL: "cannot_connect"}


async def test_unexpected_exception(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """A bug of ours shows `unknown` instead of a broken form."""
    flow_id = await _v1_form(hass)
    with patch(
        "custom_components.ha_ingestor.influxdb.client.InfluxClient.validate",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(
            flow_id, _v1_input(influxdb, database)
        )
    assert result["errors"] == {"base": "unknown"}


async def test_v1_duplicate_aborts(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    config_entry: MockConfigEntry,
) -> None:
    """The same server and database cannot be added twice, however the URL is typed."""
    config_entry.add_to_hass(hass)
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        _v1_input(influxdb, database, url=f"HTTP://127.0.0.1:{influxdb.port}/"),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.fixture
def writer_entry(hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str) -> Any:
    """An entry that writes as its own user, who may write to the test database."""
    user = f"writer_{database}"
    influxdb.query(f"CREATE USER {user} WITH PASSWORD 'first-password'")
    influxdb.query(f'GRANT WRITE ON "{database}" TO {user}')
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=database,
        unique_id=f"http://127.0.0.1:{influxdb.port}/{database}",
        data=_v1_input(influxdb, database, username=user, password="first-password")
        | {CONF_API_VERSION: API_V1, CONF_RETENTION_POLICY: ""},
    )
    entry.add_to_hass(hass)
    yield entry
    influxdb.query(f"DROP USER {user}")


async def test_reauth_after_password_change(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    writer_entry: MockConfigEntry,
    no_setup: Any,
) -> None:
    """The server's password changed: reauth rejects the old one, takes the new one."""
    user = writer_entry.data[CONF_USERNAME]
    influxdb.query(f"SET PASSWORD FOR {user} = 'second-password'")
    result = await writer_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: user, CONF_PASSWORD: "first-password"}
    )
    assert result["errors"] == {CONF_PASSWORD: "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: user, CONF_PASSWORD: "second-password"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert writer_entry.data[CONF_PASSWORD] == "second-password"
    assert writer_entry.data[CONF_DATABASE] == writer_entry.title


async def test_reconfigure(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    writer_entry: MockConfigEntry,
) -> None:
    """Reconfigure validates like the user step, and moves the entry's unique id."""
    other = f"{writer_entry.title}_other"
    influxdb.query(f'CREATE DATABASE "{other}"')
    try:
        result = await writer_entry.start_reconfigure_flow(hass)
        assert result["step_id"] == "reconfigure"

        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _v1_input(influxdb, "nowhere")
        )
        assert result["errors"] == {CONF_DATABASE: "database_not_found"}

        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _v1_input(influxdb, other)
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert writer_entry.data[CONF_DATABASE] == other
        assert writer_entry.unique_id == f"http://127.0.0.1:{influxdb.port}/{other}"
        assert writer_entry.title == f"{other} on 127.0.0.1:{influxdb.port}"
    finally:
        influxdb.query(f'DROP DATABASE "{other}"')


async def test_reconfigure_onto_another_entry_aborts(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    writer_entry: MockConfigEntry,
) -> None:
    """Pointing an entry at a database another entry writes to is refused."""
    other = f"{writer_entry.title}_taken"
    influxdb.query(f'CREATE DATABASE "{other}"')
    try:
        MockConfigEntry(
            domain=DOMAIN, unique_id=f"http://127.0.0.1:{influxdb.port}/{other}"
        ).add_to_hass(hass)
        result = await writer_entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _v1_input(influxdb, other)
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "already_configured"
        assert writer_entry.data[CONF_DATABASE] == writer_entry.title
    finally:
        influxdb.query(f'DROP DATABASE "{other}"')


async def _v2_form(hass: HomeAssistant) -> str:
    return await open_form(hass, "influxdb_v2")


def _v2_input(server: Served, **changes: Any) -> dict[str, Any]:
    """What a user types in the 2.x form."""
    data = v2_entry_data(server) | changes
    del data[CONF_API_VERSION]
    return data


async def test_v2_success(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """Token, organization and bucket are checked and stored; nothing is written.

    The same organization and bucket on the same server cannot be added again.
    """
    flow_id = await _v2_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v2_input(influxdb_v2)
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"ha on 127.0.0.1:{influxdb_v2.url.rsplit(':', 1)[1]}"
    assert result["data"] == {CONF_API_VERSION: API_V2, **_v2_input(influxdb_v2)}
    assert result["result"].unique_id == f"{influxdb_v2.url}/home/ha"
    assert influxdb_v2.points("ha") == []
    assert (
        "POST",
        "/api/v2/write",
        {"org": "home", "bucket": "ha", "precision": "us"},
        400,
    ) in influxdb_v2.requests

    flow_id = await _v2_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v2_input(influxdb_v2, url=f"{influxdb_v2.url}/")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({CONF_TOKEN: "wrong"}, {CONF_TOKEN: "invalid_auth"}),
        ({CONF_TOKEN: V2_READ_ONLY_TOKEN}, {CONF_TOKEN: "write_forbidden"}),
        (
            {CONF_ORGANIZATION: "elsewhere"},
            {CONF_ORGANIZATION: "organization_not_found"},
        ),
        ({CONF_BUCKET: "missing"}, {CONF_BUCKET: "bucket_not_found"}),
        # HTTP cannot carry a control character in a header (RFC 9110 5.5).
        ({CONF_TOKEN: f"{V2_TOKEN}\n"}, {CONF_TOKEN: "invalid_token"}),
        ({CONF_TOKEN: "a\r\nX-Injected: 1"}, {CONF_TOKEN: "invalid_token"}),
    ],
)
async def test_v2_errors_then_recovery(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """2.x answers each mistake differently; each lands on its field."""
    flow_id = await _v2_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v2_input(influxdb_v2, **changes)
    )
    assert result["errors"] == errors
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v2_input(influxdb_v2)
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_v2_server_down(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A stopped server refuses connections: cannot_connect on the URL."""
    await influxdb_v2.stop()
    flow_id = await _v2_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v2_input(influxdb_v2)
    )
    assert result["errors"] == {CONF_URL: "cannot_connect"}


async def _without_mirror(
    hass: HomeAssistant, result: ConfigFlowResult
) -> ConfigFlowResult:
    """Answer the registry mirror step, shown once the connection works: no mirror."""
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "registry_mirror"
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_MIRROR_ENABLED: False}
    )


@pytest.mark.usefixtures("recorder_mock", "quiet_sqlalchemy")
@pytest.mark.parametrize("backfill", [True, False])
async def test_history_step_offers_what_the_recorder_holds(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str, backfill: bool
) -> None:
    """With a recorder that holds history: how much, off unless chosen."""
    await record_past_states(hass, "sensor.power", 1200, days=6)
    await record_past_states(hass, "sensor.heater", 34, days=2)
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb, database)
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "history"
    assert result["description_placeholders"] == {"days": "6", "count": "1,234"}
    schema = result["data_schema"]
    assert schema is not None
    assert schema({}) == {CONF_HISTORY_BACKFILL: False}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HISTORY_BACKFILL: backfill}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # A request the entry takes when it starts; nothing when not chosen.
    assert result["options"].get(CONF_HISTORY_BACKFILL, False) is backfill


async def test_registry_mirror_step(
    hass: HomeAssistant, influxdb: InfluxDBv1Server, database: str
) -> None:
    """The mirror's file is checked; a relative path is taken in the config folder."""
    flow_id = await _v1_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v1_input(influxdb, database)
    )
    assert result["step_id"] == "registry_mirror"
    folder = hass.config.path()
    await hass.async_add_executor_job(
        Path(hass.config.path("notes.txt")).write_text, "someone's notes\n"
    )
    for path, error in (
        (folder, "mirror_path_is_directory"),
        ("notes.txt", "mirror_path_not_sqlite"),
        ("/proc/no_such_folder/mirror.sqlite", "mirror_path_not_writable"),
    ):
        result = await hass.config_entries.flow.async_configure(
            flow_id, {CONF_MIRROR_ENABLED: True, CONF_MIRROR_PATH: path}
        )
        assert result["errors"] == {CONF_MIRROR_PATH: error}, path
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_MIRROR_ENABLED: True, CONF_MIRROR_PATH: "registry.sqlite"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"] == {
        CONF_MIRROR_ENABLED: True,
        CONF_MIRROR_PATH: hass.config.path("registry.sqlite"),
    }


async def test_unexpected_refusal_of_the_test_write(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """A server that pings like InfluxDB but refuses the empty write: a form error.

    As an InfluxDB 3 behind a proxy that rejects empty bodies does; the message
    points to the server's log, and nothing is saved.
    """

    async def ping(_request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"X-Influxdb-Version": "3.0"})

    async def write(_request: web.Request) -> web.Response:
        return web.json_response({"error": "request body is empty"}, status=400)

    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_post("/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        flow_id = await _v1_form(hass)
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            {
                CONF_URL: f"http://127.0.0.1:{port}",
                CONF_DATABASE: "home",
                CONF_VERIFY_SSL: True,
            },
        )
        assert result["errors"] == {"base": "write_rejected"}
        assert not hass.config_entries.async_entries(DOMAIN)
    finally:
        await runner.cleanup()


# --- InfluxDB 3 ---------------------------------------------------------------------


def _v3_input(server: Served | str, **changes: Any) -> dict[str, Any]:
    """What a user types in the InfluxDB 3 form."""
    data = v3_entry_data(server) | changes
    del data[CONF_API_VERSION]
    return data


async def test_v3_form_and_success(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """An existing database: straight on; nothing is written to test it."""
    flow_id = await open_form(hass, "influxdb_v3")
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v3_input(influxdb_v3)
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_API_VERSION: API_V3, **_v3_input(influxdb_v3)}
    port = influxdb_v3.url.rsplit(":", 1)[1]
    assert result["title"] == f"{V3_DATABASE} on 127.0.0.1:{port}"
    assert result["result"].unique_id == f"{influxdb_v3.url}/{V3_DATABASE}"
    assert influxdb_v3.points(V3_DATABASE) == []


def test_v3_form_defaults() -> None:
    """InfluxDB 3's default port is 8181; the token is optional; no_sync is off."""
    fields = {key.schema: key for key in INFLUXDB_V3_FORM.schema}
    assert fields[CONF_URL].default() == "http://localhost:8181"
    assert fields[CONF_NO_SYNC].default() is False
    assert isinstance(fields[CONF_TOKEN], vol.Optional)


async def test_v3_database_to_be_created_is_said(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """A database that does not exist yet: a step says the first write creates it."""
    flow_id = await open_form(hass, "influxdb_v3")
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v3_input(influxdb_v3, database="new-db")
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "database_created"
    assert result["description_placeholders"] == {
        "database": "new-db",
        "url": influxdb_v3.url,
    }
    result = await hass.config_entries.flow.async_configure(flow_id, {})
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_DATABASE] == "new-db"
    assert "new-db" not in influxdb_v3.databases()


async def test_v3_a_token_that_may_not_list_databases_goes_straight_on(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """An Enterprise database token: whether the database exists cannot be told."""
    flow_id = await open_form(hass, "influxdb_v3")
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v3_input(influxdb_v3, database="new-db", token=V3_DATABASE_TOKEN)
    )
    assert result.get("step_id") != "database_created"
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_TOKEN] == V3_DATABASE_TOKEN
    assert "new-db" not in influxdb_v3.databases()


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({CONF_TOKEN: "wrong"}, {CONF_TOKEN: "invalid_auth"}),
        ({CONF_TOKEN: ""}, {CONF_TOKEN: "invalid_auth"}),
        ({CONF_TOKEN: V3_READ_ONLY_TOKEN}, {CONF_TOKEN: "write_forbidden"}),
        ({CONF_DATABASE: "home assistant"}, {CONF_DATABASE: "invalid_database"}),
        ({CONF_URL: "http://127.0.0.1:1/x"}, {CONF_URL: "cannot_connect"}),
        ({CONF_TOKEN: f"{V3_TOKEN}\x7f"}, {CONF_TOKEN: "invalid_token"}),
    ],
    ids=[
        "wrong token",
        "no token",
        "read-only token",
        "invalid name",
        "down",
        "unsendable token",
    ],
)
async def test_v3_errors_then_recovery(
    hass: HomeAssistant,
    influxdb_v3: InfluxDBv3TestServer,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Each mistake on its field; corrected, the same flow goes on."""
    flow_id = await open_form(hass, "influxdb_v3")
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v3_input(influxdb_v3, **changes)
    )
    assert result["errors"] == errors
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v3_input(influxdb_v3)
    )
    assert result["step_id"] == "registry_mirror"


async def test_v3_other_versions_are_told_apart(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    influxdb_v2: InfluxDBv2TestServer,
) -> None:
    """A 1.x or 2.x server chosen as InfluxDB 3: wrong_version on the URL."""
    flow_id = await open_form(hass, "influxdb_v3")
    for url in (influxdb.url, influxdb_v2.url):
        result = await hass.config_entries.flow.async_configure(flow_id, _v3_input(url))
        assert result["errors"] == {CONF_URL: "wrong_version"}


async def test_v3_without_authentication(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """A server run without auth: the token may stay empty; no_sync is stored."""
    async with InfluxDBv3TestServer(token=None, databases=[V3_DATABASE]) as server:
        flow_id = await open_form(hass, "influxdb_v3")
        typed = _v3_input(server, no_sync=True)
        del typed[CONF_TOKEN]
        result = await hass.config_entries.flow.async_configure(flow_id, typed)
        result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_TOKEN] == ""
    assert result["data"][CONF_NO_SYNC] is True


def _v3_entry(hass: HomeAssistant, server: InfluxDBv3TestServer, token: str) -> Any:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"{V3_DATABASE} on 127.0.0.1",
        unique_id=f"{server.url}/{V3_DATABASE}",
        data=v3_entry_data(server) | {CONF_TOKEN: token},
    )
    entry.add_to_hass(hass)
    return entry


async def test_v3_reauth(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """The token was revoked: a wrong one is refused on its field, a good one saved."""
    entry = _v3_entry(hass, influxdb_v3, "revoked")
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: V3_TOKEN}
    )
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_TOKEN] == V3_TOKEN
    assert entry.data[CONF_DATABASE] == V3_DATABASE


async def test_v3_reconfigure_onto_a_new_database(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """Reconfigure says the new database will be created, then moves the entry."""
    entry = _v3_entry(hass, influxdb_v3, V3_TOKEN)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _v3_input(influxdb_v3, database="other")
    )
    assert result["step_id"] == "database_created"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_DATABASE] == "other"
    assert entry.unique_id == f"{influxdb_v3.url}/other"
    assert entry.title == f"other on 127.0.0.1:{influxdb_v3.url.rsplit(':', 1)[1]}"


# --- The compatibility paths on InfluxDB 3, and 2.x organizations by ID ---------------


async def test_influxdb_3_through_the_1x_form(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """The 1.x form sets up InfluxDB 3, the token as password.

    A wrong token is shown on the password field, though InfluxDB 3's /ping answers
    401 without a version header (before: cannot_connect on the URL).
    """
    flow_id = await _v1_form(hass)
    typed = {
        CONF_URL: influxdb_v3.url,
        CONF_DATABASE: V3_DATABASE,
        CONF_USERNAME: "",
        CONF_VERIFY_SSL: True,
    }
    result = await hass.config_entries.flow.async_configure(
        flow_id, typed | {CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {CONF_PASSWORD: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, typed | {CONF_PASSWORD: V3_TOKEN}
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_influxdb_3_through_the_2x_form(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """The 2.x form sets up InfluxDB 3, the database as bucket.

    Its empty-write answer "write buffer error: incoming write was empty" passes
    (before: write_rejected); a wrong token is shown on the token field.
    """
    flow_id = await _v2_form(hass)
    typed = _v2_input(influxdb_v3, bucket=V3_DATABASE)
    result = await hass.config_entries.flow.async_configure(
        flow_id, typed | {CONF_TOKEN: "wrong"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, typed | {CONF_TOKEN: V3_TOKEN}
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_v2_organization_by_id(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """The organization may be typed as its ID (InfluxDB Cloud shows the ID)."""
    flow_id = await _v2_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _v2_input(influxdb_v2, organization=influxdb_v2.org_id)
    )
    result = await _without_mirror(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_ORGANIZATION] == influxdb_v2.org_id


async def test_v2_reauth_and_reconfigure(
    hass: HomeAssistant, influxdb_v2: InfluxDBv2TestServer
) -> None:
    """A 2.x entry takes a new token, and its organization given by ID instead."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="ha",
        unique_id=f"{influxdb_v2.url}/home/ha",
        data=v2_entry_data(influxdb_v2) | {CONF_TOKEN: "revoked"},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-revoked"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: v2_entry_data(influxdb_v2)[CONF_TOKEN]}
    )
    assert result["reason"] == "reauth_successful"

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _v2_input(influxdb_v2, bucket="missing")
    )
    assert result["errors"] == {CONF_BUCKET: "bucket_not_found"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _v2_input(influxdb_v2, organization=influxdb_v2.org_id)
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id == f"{influxdb_v2.url}/{influxdb_v2.org_id}/ha"
