"""URLs with a path, for every kind of server, through a real reverse proxy (nginx).

In front of the real influxd and VictoriaMetrics (single node at /vm/, and with
vminsert's cluster path /insert/0/influx/) and of the 2.x and 3 stand-ins. Each is set
up through the config flow at its prefixed URL and written to; nginx's own 1 MiB limit
on a request body is met by splitting the batch.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.ha_ingestor.const import (
    CONF_API_VERSION,
    CONF_DATABASE,
    CONF_MIRROR_ENABLED,
    DOMAIN,
)
from custom_components.ha_ingestor.influxdb.connection import create_client
from custom_components.ha_ingestor.influxdb.errors import InfluxWrongVersionError

from .conftest import (
    V3_DATABASE,
    point_writer,
    v1_entry_data,
    v2_entry_data,
    v3_entry_data,
)
from .influxdb_v1_server import InfluxDBv1Server
from .influxdb_v2_server import InfluxDBv2TestServer
from .influxdb_v3_server import InfluxDBv3TestServer
from .reverse_proxy import StartProxy
from .victoriametrics_server import VictoriaMetricsServer

pytestmark = pytest.mark.usefixtures("socket_enabled")

MICROS = 1_700_000_000_000_000


async def _set_up_and_write(
    hass: HomeAssistant, data: dict[str, Any], lines: list[str]
) -> dict[str, Any]:
    """Go through the config flow with `data`, then write `lines` with its client."""
    step = {"1": "influxdb_v1", "2": "influxdb_v2", "3": "influxdb_v3"}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": step[data[CONF_API_VERSION]]}
    )
    typed = {k: v for k, v in data.items() if k != CONF_API_VERSION}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], typed)
    assert result["step_id"] == "registry_mirror", result.get("errors")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_MIRROR_ENABLED: False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await create_client(hass, result["data"]).write("\n".join(lines).encode())
    return dict(result["data"])


def _lines(count: int, measurement: str = "m") -> list[str]:
    return [
        f"{measurement},entity_id=p{i % 5} value={i}.5 {MICROS + i}"
        for i in range(count)
    ]


async def test_influxdb_1x_behind_a_proxy(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    reverse_proxy: StartProxy,
) -> None:
    """https://example.org/influxdb → influxd."""
    proxy = reverse_proxy({"/influxdb/": f"{influxdb.url}/"})
    data = v1_entry_data(influxdb, database) | {CONF_URL: f"{proxy.url}/influxdb"}
    await _set_up_and_write(hass, data, _lines(10))
    assert len(influxdb.rows('SELECT * FROM "m"', database)) == 10


@pytest.mark.parametrize(
    ("prefix", "upstream_path"),
    [("/vm/", "/"), ("/insert/0/influx/", "/influx/")],
    ids=["single node behind a proxy", "vminsert's cluster path"],
)
async def test_victoriametrics_behind_a_proxy(
    hass: HomeAssistant,
    victoriametrics: VictoriaMetricsServer,
    reverse_proxy: StartProxy,
    prefix: str,
    upstream_path: str,
) -> None:
    """http://vminsert:8480/insert/0/influx: write and health answer, ping does not.

    VictoriaMetrics serves /influx/write and /influx/health
    (docs.victoriametrics.com/victoriametrics/integrations/influxdb/: "For cluster
    version use vminsert address http://<vminsert-addr>:8480/insert/<tenant>/influx");
    the setup check takes /health's InfluxDB document where /ping is not served.
    """
    proxy = reverse_proxy({prefix: f"{victoriametrics.url}{upstream_path}"})
    measurement = f"prefix{len(prefix)}"
    data = v1_entry_data(victoriametrics, "vm") | {
        CONF_URL: f"{proxy.url}{prefix.rstrip('/')}",
        CONF_USERNAME: "",
        CONF_PASSWORD: "",
    }
    await _set_up_and_write(hass, data, _lines(10, measurement))
    samples = victoriametrics.samples(f"{measurement}_value")
    assert len(samples) == 10


async def test_victoriametrics_cluster_chosen_as_influxdb_3_is_named_so(
    hass: HomeAssistant,
    victoriametrics: VictoriaMetricsServer,
    reverse_proxy: StartProxy,
) -> None:
    """Vminsert's path serves no /ping: its /health still tells another version."""
    proxy = reverse_proxy({"/insert/0/influx/": f"{victoriametrics.url}/influx/"})
    client = create_client(
        hass, v3_entry_data(f"{proxy.url}/insert/0/influx") | {CONF_TOKEN: ""}
    )
    with pytest.raises(InfluxWrongVersionError, match="not 3"):
        await client.validate()


async def test_influxdb_2_behind_a_proxy(
    hass: HomeAssistant,
    influxdb_v2: InfluxDBv2TestServer,
    reverse_proxy: StartProxy,
) -> None:
    """/api/v2/write under the prefix."""
    proxy = reverse_proxy({"/influxdb2/": f"{influxdb_v2.url}/"})
    data = v2_entry_data(influxdb_v2) | {CONF_URL: f"{proxy.url}/influxdb2/"}
    await _set_up_and_write(hass, data, _lines(10))
    assert len(influxdb_v2.points("ha")) == 10


async def test_influxdb_3_behind_a_proxy(
    hass: HomeAssistant,
    influxdb_v3: InfluxDBv3TestServer,
    reverse_proxy: StartProxy,
) -> None:
    """/ping, /api/v3/configure/database and /api/v3/write_lp under the prefix."""
    proxy = reverse_proxy({"/influxdb3/": f"{influxdb_v3.url}/"})
    data = v3_entry_data(f"{proxy.url}/influxdb3")
    stored = await _set_up_and_write(hass, data, _lines(10))
    assert stored[CONF_DATABASE] == V3_DATABASE
    assert len(influxdb_v3.points(V3_DATABASE)) == 10


async def test_a_batch_over_the_proxys_limit_is_split(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    reverse_proxy: StartProxy,
) -> None:
    """A proxy's 413 splits the batch too.

    nginx refuses a body over 1 MiB with 413 (client_max_body_size) and an HTML page:
    the writer splits the batch and every point is stored.
    """
    proxy = reverse_proxy({"/influxdb/": f"{influxdb.url}/"})
    data = v1_entry_data(influxdb, database) | {CONF_URL: f"{proxy.url}/influxdb"}
    note = "x" * 40
    lines = [
        f'big,entity_id=p{i % 5} value={i}.5,note="{note}" {MICROS + i}'
        for i in range(20_000)
    ]
    assert len("\n".join(lines)) > 1 << 20
    writer, refused = point_writer(create_client(hass, data))
    await writer.write(lines)
    counted = influxdb.rows('SELECT COUNT("value") FROM "big"', database)
    assert counted[0]["count"] == 20_000
    assert refused == []
