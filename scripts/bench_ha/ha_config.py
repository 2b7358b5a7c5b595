"""A fresh Home Assistant config dir for one run, as a user would have it for each mode.

Everything but the exporter is the same in every mode: a real configuration.yaml (no
default_config; the recorder only in the recorder variant, with SQLite and its
defaults), the HTTP server on a free port of 127.0.0.1, and the integrations Home
Assistant always loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from homeassistant import config_entries
from homeassistant.components.http import config as http_config
from homeassistant.helpers.json import save_json
from homeassistant.util import dt as dt_util

from .influxdb import InfluxConnection
from .peers import PEERS

REPO: Final = Path(__file__).resolve().parents[2]
INTEGRATION: Final = REPO / "custom_components" / "ha_ingestor"

type Mode = Literal["a", "l", "b", "c", "d", "g", "s", "t"]
# The four modes, run by default.
MODES: Final[tuple[Mode, ...]] = ("a", "b", "c", "d")
# On request: mode l, an empty state_changed listener (Home Assistant creates an Event,
# and a reference cycle with its Context, per state change only when something listens,
# so l is the floor any exporter that listens on the bus starts from); mode g, what
# compressing each write costs and saves; modes s and t, the peers (peers.py).
ALL_MODES: Final[tuple[Mode, ...]] = ("a", "l", "b", "c", "d", "g", "s", "t")
MODE_NAMES: Final[Mapping[str, str]] = {
    "a": "HA alone",
    "l": "HA + empty listener",
    "b": "built-in influxdb",
    "c": "HA Ingestor core_compatible",
    "d": "HA Ingestor rich",
    "g": "HA Ingestor core_compatible, gzip",
    "s": f"{PEERS['s'].name} {PEERS['s'].release}",
    "t": f"{PEERS['t'].name} {PEERS['t'].release}",
}
# The HA Ingestor modes and their config-entry options (const.CONF_PRESET, CONF_GZIP).
INGESTOR_OPTIONS: Final[Mapping[Mode, Mapping[str, Any]]] = {
    "c": {"preset": "core_compatible"},
    "d": {"preset": "rich"},
    "g": {"preset": "core_compatible", "gzip": True},
}
# The modes that export, and the domain of their integration: the built-in one, HA
# Ingestor, and the peers.
EXPORTER_DOMAINS: Final[Mapping[Mode, str]] = {
    "b": "influxdb",
    **dict.fromkeys(INGESTOR_OPTIONS, "ha_ingestor"),
    "s": PEERS["s"].domain,
    "t": PEERS["t"].domain,
}
EXPORTER_MODES: Final[tuple[Mode, ...]] = tuple(EXPORTER_DOMAINS)

_CORE_YAML: Final = """\
homeassistant:
  name: Bench
  latitude: 52.3731
  longitude: 4.8922
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
  language: en

logger:
  default: warning
  logs:
    # Integrations Home Assistant always loads complain about what this machine lacks.
    haffmpeg: critical
    homeassistant.components.camera.img_util: critical
    aiohttp_fast_zlib: error
"""


def _builtin_yaml(influx: InfluxConnection, database: str) -> str:
    # The built-in integration sets up through its YAML import with default settings.
    return (
        "\ninfluxdb:\n"
        f"  host: {influx.host}\n"
        f"  port: {influx.port}\n"
        f"  database: {database}\n"
        f"  username: {influx.username}\n"
        f"  password: {influx.password}\n"
    )


def _peer_yaml(domain: str, url: str) -> str:
    # A peer as its README sets it up: YAML with only the database URL.
    return f"\n{domain}:\n  db_url: {url}\n"


def _http_store(port: int) -> dict[str, Any]:
    # Home Assistant 2026 reads the HTTP settings from .storage/http, not YAML.
    stable = {
        **http_config.HTTP_STORAGE_SCHEMA(
            {"server_host": ["127.0.0.1"], "server_port": port}
        ),
        "created_at": dt_util.utcnow().isoformat(),
        "error": None,
        "error_message": None,
    }
    return {
        "version": http_config.STORAGE_VERSION,
        "minor_version": http_config.STORAGE_MINOR_VERSION,
        "key": http_config.STORAGE_KEY,
        "data": {"stable": stable, "pending": None, "yaml_migration_done": True},
    }


def _ingestor_entries(
    influx: InfluxConnection, database: str, options: dict[str, Any]
) -> dict[str, Any]:
    """HA Ingestor's config entry as its config flow stores it, with `options`."""
    entry = config_entries.ConfigEntry(
        domain="ha_ingestor",
        title=f"{database} (bench)",
        version=1,
        minor_version=1,
        source=config_entries.SOURCE_USER,
        unique_id=f"{influx.url}/{database}",
        data={
            "api_version": "1",
            "url": influx.url,
            "verify_ssl": True,
            "database": database,
            "retention_policy": "",
            "username": influx.username,
            "password": influx.password,
        },
        options=options,
        discovery_keys=MappingProxyType({}),
        subentries_data=None,
    )
    return {
        "version": config_entries.STORAGE_VERSION,
        "minor_version": config_entries.STORAGE_VERSION_MINOR,
        "key": config_entries.STORAGE_KEY,
        "data": {"entries": [entry.as_dict()]},
    }


def write_config_dir(
    config_dir: Path,
    mode: Mode,
    influx: InfluxConnection,
    database: str,
    *,
    http_port: int,
    ingestor_options: dict[str, Any],
    recorder: bool = False,
    peer: tuple[str, Path] | None = None,
) -> None:
    """Write configuration.yaml and .storage for `mode` into an empty `config_dir`.

    HA Ingestor gets `ingestor_options` on top of the mode's own options; a peer mode
    gets `peer`, its database URL and its component's folder.
    """
    storage = config_dir / ".storage"
    storage.mkdir(parents=True)
    yaml = _CORE_YAML + (_builtin_yaml(influx, database) if mode == "b" else "")
    if recorder:
        yaml += "\nrecorder:\n"
    if peer is not None:
        url, folder = peer
        yaml += _peer_yaml(PEERS[mode].domain, url)
        (config_dir / "custom_components").mkdir()
        (config_dir / "custom_components" / PEERS[mode].domain).symlink_to(folder)
    (config_dir / "configuration.yaml").write_text(yaml)
    save_json(str(storage / http_config.STORAGE_KEY), _http_store(http_port))
    if (mode_options := INGESTOR_OPTIONS.get(mode)) is not None:
        (config_dir / "custom_components").mkdir()
        (config_dir / "custom_components" / "ha_ingestor").symlink_to(INTEGRATION)
        save_json(
            str(storage / config_entries.STORAGE_KEY),
            _ingestor_entries(influx, database, {**mode_options, **ingestor_options}),
        )
