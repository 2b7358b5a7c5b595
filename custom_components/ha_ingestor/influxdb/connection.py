"""A config entry's connection: its URL, the client it describes, and its names.

The config flow and the entry's device name a connection the same way; both read it
from here.
"""

from __future__ import annotations

from collections.abc import Mapping
import ssl
from typing import Any

from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from yarl import URL

from ..const import (
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
from .client import InfluxClient
from .errors import InfluxCACertificateError, InvalidURLError
from .v1 import InfluxV1Client
from .v2 import InfluxV2Client
from .v3 import InfluxV3Client


def parse_url(url: str) -> URL:
    """Return the server's base URL, or raise InvalidURLError."""
    try:
        parsed = URL(url.strip())
    except ValueError as err:
        raise InvalidURLError(url) from err
    # Credentials belong in their own fields: in the URL they would be stored in
    # clear text and clash with the Authorization header.
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.host
        or parsed.user is not None
        or parsed.password is not None
    ):
        raise InvalidURLError(url)
    try:
        # Parsing takes any text for a host; building refuses one no server can
        # have (a space in it, a port inside the brackets of an address).
        URL.build(scheme=parsed.scheme, host=parsed.host)
    except ValueError as err:
        raise InvalidURLError(url) from err
    return parsed.with_query(None).with_fragment(None)


def ca_certificate_context(path: str) -> ssl.SSLContext:
    """Return a TLS context that trusts the certificate authorities in a PEM file only.

    Reads the file: call it in the executor. Raises InfluxCACertificateError.
    """
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as err:
        raise InfluxCACertificateError(f"{path}: {err}") from err


async def async_create_client(
    hass: HomeAssistant, data: Mapping[str, Any], *, gzip: bool = False
) -> InfluxClient:
    """Build the client of `data`, reading its CA certificate file if it names one.

    Raises InfluxCACertificateError if that file cannot be used.
    """
    context = None
    if data[CONF_VERIFY_SSL] and (path := data.get(CONF_SSL_CA_CERT)):
        context = await hass.async_add_executor_job(ca_certificate_context, path)
    return create_client(hass, data, gzip=gzip, ssl_context=context)


def create_client(
    hass: HomeAssistant,
    data: Mapping[str, Any],
    *,
    gzip: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> InfluxClient:
    """Build the client a config entry's data describes; `gzip` compresses writes.

    The server's certificate is checked against `ssl_context`'s authorities if given
    (async_create_client reads them from the entry's CA certificate file).
    """
    client = _create_client(hass, data, gzip=gzip)
    if ssl_context is not None:
        client.trust(ssl_context)
    return client


def _create_client(
    hass: HomeAssistant, data: Mapping[str, Any], *, gzip: bool
) -> InfluxClient:
    session = async_get_clientsession(hass, verify_ssl=data[CONF_VERIFY_SSL])
    url = parse_url(data[CONF_URL])
    if data[CONF_API_VERSION] == API_V2:
        return InfluxV2Client(
            session,
            url,
            token=data[CONF_TOKEN],
            organization=data[CONF_ORGANIZATION],
            bucket=data[CONF_BUCKET],
            gzip=gzip,
        )
    if data[CONF_API_VERSION] == API_V3:
        return InfluxV3Client(
            session,
            url,
            database=data[CONF_DATABASE],
            token=data.get(CONF_TOKEN) or "",
            no_sync=data.get(CONF_NO_SYNC, False),
            gzip=gzip,
        )
    return InfluxV1Client(
        session,
        url,
        database=data[CONF_DATABASE],
        retention_policy=data.get(CONF_RETENTION_POLICY) or "",
        username=data.get(CONF_USERNAME) or "",
        password=data.get(CONF_PASSWORD) or "",
        gzip=gzip,
    )


def connection_title(data: Mapping[str, Any]) -> str:
    """Name the database (1.x, 3) or bucket (2.x), and the server: `db on host:port`."""
    url = parse_url(data[CONF_URL])
    target = data[CONF_BUCKET if data[CONF_API_VERSION] == API_V2 else CONF_DATABASE]
    return f"{target} on {url.host}:{url.port}"


def connection_unique_id(data: Mapping[str, Any]) -> str:
    """Server and database (1.x, 3) or organization and bucket (2.x), however typed.

    A 1.x and a 3 entry for the same server and database write to the same place:
    they share the id.
    """
    url = parse_url(data[CONF_URL])
    server = f"{url.scheme}://{url.host}:{url.port}{url.path.rstrip('/')}"
    if data[CONF_API_VERSION] == API_V2:
        return f"{server}/{data[CONF_ORGANIZATION]}/{data[CONF_BUCKET]}"
    return f"{server}/{data[CONF_DATABASE]}"
