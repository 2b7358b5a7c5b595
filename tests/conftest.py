"""Shared fixtures: real InfluxDB 1.x servers, Home Assistant's harness, config entries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
import uuid

from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    API_V1,
    API_V2,
    CONF_API_VERSION,
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_ORGANIZATION,
    CONF_RETENTION_POLICY,
    DOMAIN,
)

from .influxdb_v1_server import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    InfluxDBv1Server,
    sockets_allowed,
)
from .influxdb_v2_server import InfluxDBv2TestServer


async def wait_until(
    condition: Callable[[], bool], what: str, seconds: float = 20
) -> None:
    """Poll `condition` every 50 ms, failing the test with `what` after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not reached in {seconds} s: {what}")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/ha_ingestor in every test."""


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


def v2_entry_data(server: InfluxDBv2TestServer) -> dict[str, Any]:
    """Config entry data for the stand-in's bucket `ha`, as the config flow stores it."""
    return {
        CONF_API_VERSION: API_V2,
        CONF_URL: server.url,
        CONF_TOKEN: V2_TOKEN,
        CONF_ORGANIZATION: "home",
        CONF_BUCKET: "ha",
        CONF_VERIFY_SSL: True,
    }


def v1_entry_data(server: InfluxDBv1Server, database: str) -> dict[str, Any]:
    """Config entry data for `database` on `server`, as the config flow stores it."""
    return {
        CONF_API_VERSION: API_V1,
        CONF_URL: server.url,
        CONF_VERIFY_SSL: True,
        CONF_DATABASE: database,
        CONF_RETENTION_POLICY: "",
        CONF_USERNAME: ADMIN_USER,
        CONF_PASSWORD: ADMIN_PASSWORD,
    }


@pytest.fixture
def config_entry(influxdb: InfluxDBv1Server, database: str) -> MockConfigEntry:
    """A config entry for the test's database, not yet added to Home Assistant."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"{database} on 127.0.0.1:{influxdb.port}",
        unique_id=f"http://127.0.0.1:{influxdb.port}/{database}",
        data=v1_entry_data(influxdb, database),
    )
