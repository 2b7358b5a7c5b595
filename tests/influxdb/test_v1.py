"""The 1.x client (influxdb/v1.py): InfluxDB 1.x and the servers that speak its /write.

Real InfluxDB 1.x and VictoriaMetrics; InfluxDB 3's /write is its stand-in's.
"""

from __future__ import annotations

from typing import Any

from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant
import pytest

from custom_components.ha_ingestor.const import CONF_DATABASE, CONF_RETENTION_POLICY
from custom_components.ha_ingestor.influxdb.connection import create_client
from custom_components.ha_ingestor.influxdb.errors import (
    InfluxAuthError,
    InfluxNotFoundError,
)
from scripts.bench_ha.refused_points import CONFLICTING, batch

from ..conftest import V3_DATABASE, V3_TOKEN, point_writer, v1_entry_data
from ..influxdb_v1_server import InfluxDBv1Server
from ..influxdb_v3_server import InfluxDBv3TestServer
from ..victoriametrics_server import VictoriaMetricsServer

MICROS = 1_700_000_000_000_000


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({CONF_DATABASE: "nowhere"}, CONF_DATABASE),
        ({CONF_RETENTION_POLICY: "nope"}, CONF_RETENTION_POLICY),
    ],
)
async def test_missing_database_or_retention_policy(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    """1.x answers 404 "database not found" and 500 "retention policy not found"."""
    data = v1_entry_data(influxdb, database) | changes
    with pytest.raises(InfluxNotFoundError) as raised:
        await create_client(hass, data).validate()
    assert raised.value.field == field


async def test_influxdb_3_through_the_1x_endpoint(
    hass: HomeAssistant, influxdb_v3: InfluxDBv3TestServer
) -> None:
    """InfluxDB 3's /write, the token as password: set up, and no bisection storm.

    Its /write takes the password of basic auth as the token (API BasicAuthentication)
    and answers the empty write "incoming write was empty". It never accepts a partial
    write, but names the line it stopped at ({"error", "data": {"line_number"}}): that
    line is set apart and the rest written again, one request per refused line.
    """
    data = v1_entry_data(influxdb_v3, V3_DATABASE) | {CONF_PASSWORD: V3_TOKEN}
    await create_client(hass, data).validate()
    with pytest.raises(InfluxAuthError):
        await create_client(hass, data | {CONF_PASSWORD: "wrong"}).validate()

    lines = batch()
    writer, refused = point_writer(create_client(hass, data))
    await writer.write(lines)

    writes = [r for r in influxdb_v3.requests if r.path == "/write"]
    assert [line for group, _ in refused for line in group] == [
        lines[i] for i in CONFLICTING
    ]
    assert len(influxdb_v3.points(V3_DATABASE)) == 990
    # The setup checks (two empty writes, one refused), ten refusals, one write.
    assert len(writes) == 2 + 10 + 1


async def test_victoriametrics_keeps_numbers(
    hass: HomeAssistant, victoriametrics: VictoriaMetricsServer, socket_enabled: None
) -> None:
    """VictoriaMetrics takes /write: each field becomes `<measurement>_<field>`.

    docs.victoriametrics.com/victoriametrics/integrations/influxdb/ "Data
    transformations": `db` becomes a label, numbers are kept with the timestamp in
    milliseconds, booleans become 1 and 0, and text that is no number becomes 0.
    """
    data = v1_entry_data(victoriametrics, "vm_v1") | {
        "username": "",
        CONF_PASSWORD: "",
    }
    client = create_client(hass, data)
    await client.validate()
    await client.write(
        f'W,entity_id=v1_test value=12.5,on=true,state="on",n="42" {MICROS + 1234}'.encode()
    )
    stored = {
        s["metric"]["__name__"]: (s["metric"]["db"], s["values"], s["timestamps"])
        for s in victoriametrics.export('{entity_id="v1_test"}')
    }
    millis = (MICROS + 1234) // 1000
    assert stored == {
        "W_value": ("vm_v1", [12.5], [millis]),
        "W_on": ("vm_v1", [1], [millis]),
        "W_state": ("vm_v1", [0], [millis]),
        "W_n": ("vm_v1", [42], [millis]),
    }
