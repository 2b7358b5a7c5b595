"""An entry's connection (influxdb/connection.py): its client, title and unique id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
import pytest
from yarl import URL

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
    CONF_SSL_CA_CERT,
)
from custom_components.ha_ingestor.influxdb.connection import (
    async_create_client,
    ca_certificate_context,
    connection_title,
    connection_unique_id,
    create_client,
    parse_url,
)
from custom_components.ha_ingestor.influxdb.errors import (
    InfluxCACertificateError,
    InfluxSSLError,
    InvalidURLError,
)
from custom_components.ha_ingestor.influxdb.v1 import InfluxV1Client
from custom_components.ha_ingestor.influxdb.v2 import InfluxV2Client
from custom_components.ha_ingestor.influxdb.v3 import InfluxV3Client

from ..conftest import v1_entry_data
from ..influxdb_v1_server import InfluxDBv1Server

V1 = {
    CONF_API_VERSION: API_V1,
    CONF_URL: "http://db.local:8086",
    CONF_DATABASE: "home",
    CONF_RETENTION_POLICY: "",
    CONF_USERNAME: "ha",
    CONF_PASSWORD: "secret",
    CONF_VERIFY_SSL: True,
}
V2 = {
    CONF_API_VERSION: API_V2,
    CONF_URL: "https://example.org/influxdb/",
    CONF_TOKEN: "t",
    CONF_ORGANIZATION: "family",
    CONF_BUCKET: "ha",
    CONF_VERIFY_SSL: True,
}
V3 = {
    CONF_API_VERSION: API_V3,
    CONF_URL: "http://db.local:8181",
    CONF_DATABASE: "home",
    CONF_TOKEN: "apiv3_t",
    CONF_NO_SYNC: True,
    CONF_VERIFY_SSL: False,
}


@pytest.mark.parametrize(
    ("data", "kind", "write_url", "authorization"),
    [
        (
            V1,
            InfluxV1Client,
            "http://db.local:8086/write?db=home&precision=u",
            "Basic aGE6c2VjcmV0",
        ),
        (
            V2,
            InfluxV2Client,
            "https://example.org/influxdb/api/v2/write?org=family&bucket=ha&precision=us",
            "Token t",
        ),
        (
            V3,
            InfluxV3Client,
            "http://db.local:8181/api/v3/write_lp?db=home&precision=microsecond"
            "&accept_partial=true&no_sync=true",
            "Bearer apiv3_t",
        ),
        (
            V3 | {CONF_TOKEN: "", CONF_NO_SYNC: False},
            InfluxV3Client,
            "http://db.local:8181/api/v3/write_lp?db=home&precision=microsecond"
            "&accept_partial=true",
            None,
        ),
    ],
    ids=["1.x", "2.x behind a path", "3", "3 without auth"],
)
async def test_create_client(
    hass: HomeAssistant,
    data: dict[str, Any],
    kind: type,
    write_url: str,
    authorization: str | None,
) -> None:
    """Each kind gets its client, write URL (path prefix kept) and credentials."""
    client = create_client(hass, data)
    assert type(client) is kind
    assert client._write_url == URL(write_url)
    assert client._headers.get("Authorization") == authorization


@pytest.mark.parametrize(
    ("data", "title", "unique_id"),
    [
        (V1, "home on db.local:8086", "http://db.local:8086/home"),
        (V2, "ha on example.org:443", "https://example.org:443/influxdb/family/ha"),
        (V3, "home on db.local:8181", "http://db.local:8181/home"),
        (
            V1 | {CONF_URL: "HTTP://vminsert:8480/insert/0/influx/"},
            "home on vminsert:8480",
            "http://vminsert:8480/insert/0/influx/home",
        ),
    ],
    ids=["1.x", "2.x", "3", "VictoriaMetrics cluster"],
)
def test_title_and_unique_id(data: dict[str, Any], title: str, unique_id: str) -> None:
    """The database (1.x, 3) or bucket (2.x) on the server, however the URL is typed."""
    assert connection_title(data) == title
    assert connection_unique_id(data) == unique_id


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://host:8086",
        "http://",
        "http://user:pw@host:8086",
        "http://influx db.local:8086",
        "http://[influxdb.local:8086]:8086",
    ],
)
def test_parse_url_refuses(url: str) -> None:
    """Only http(s) with a host; credentials belong in their own fields."""
    with pytest.raises(InvalidURLError):
        parse_url(url)


def test_parse_url_keeps_the_path() -> None:
    """A path prefix stays; a query or fragment typed with it does not."""
    assert parse_url(" https://example.org/influxdb?x=1#top ") == URL(
        "https://example.org/influxdb"
    )


@pytest.mark.usefixtures("socket_enabled")
async def test_ca_certificate_file(
    hass: HomeAssistant, influxdb_https: InfluxDBv1Server, tmp_path: Path
) -> None:
    """A server whose certificate only the entry's CA file vouches for is trusted.

    The built-in integration stores such a file; a takeover keeps its path.
    """
    influxdb_https.query('CREATE DATABASE "ca"')
    data = v1_entry_data(influxdb_https, "ca")
    with pytest.raises(InfluxSSLError):
        await (await async_create_client(hass, data)).validate()
    certificate = str(influxdb_https.directory / "cert.pem")
    trusted = data | {CONF_SSL_CA_CERT: certificate}
    await (await async_create_client(hass, trusted)).write(b"m,t=1 f=1 1")
    assert influxdb_https.rows("SELECT * FROM m", "ca") == [
        {"measurement": "m", "time": 1, "t": "1", "f": 1}
    ]
    # Checked against the file alone: no other authority is trusted beside it.
    context = await hass.async_add_executor_job(ca_certificate_context, certificate)
    assert len(context.get_ca_certs()) == 1
    # Not checked at all: the file is not read.
    unchecked = trusted | {CONF_VERIFY_SSL: False, CONF_SSL_CA_CERT: "/missing.pem"}
    await (await async_create_client(hass, unchecked)).validate()
    (tmp_path / "empty.pem").write_text("")
    for unusable in ("/missing.pem", str(tmp_path / "empty.pem")):
        with pytest.raises(InfluxCACertificateError):
            await async_create_client(hass, data | {CONF_SSL_CA_CERT: unusable})
