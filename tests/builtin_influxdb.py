"""Home Assistant's built-in influxdb integration, set up for real in the test harness.

Its entry is made through its own config flow (or its YAML import), its options are
written to configuration.yaml as a user writes them, and it writes through its own
thread and client library to the servers the tests run. `BuiltinWriter` waits until
that thread has written what it was given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import contextlib
import json
from pathlib import Path
import threading
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from .influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server

BUILTIN = "influxdb"
# How long the tests wait for the built-in writer, at most.
_WAIT_SECONDS = 30


def write_configuration(hass: HomeAssistant, influxdb: Mapping[str, Any]) -> None:
    """Write configuration.yaml with this `influxdb:` section (JSON is YAML)."""
    Path(hass.config.path("configuration.yaml")).write_text(
        json.dumps({BUILTIN: dict(influxdb)}, ensure_ascii=False), "utf-8"
    )


@contextlib.contextmanager
def prompt_builtin_writes() -> Iterator[None]:
    """Have the built-in writer write a batch as soon as its queue is empty.

    It otherwise waits a second for more (BATCH_TIMEOUT).
    """
    with patch(
        "homeassistant.components.influxdb.InfluxThread.batch_timeout",
        return_value=0.01,
    ):
        yield


async def async_setup_builtin_v1(
    hass: HomeAssistant,
    influxdb: InfluxDBv1Server,
    database: str,
    yaml: Mapping[str, Any] | None = None,
    *,
    state: ConfigEntryState = ConfigEntryState.LOADED,
) -> ConfigEntry:
    """Set up the built-in integration for `database` through its own config flow.

    Its options are `yaml`'s, in configuration.yaml; its entry must end in `state`.
    """
    write_configuration(hass, yaml or {})
    result = await hass.config_entries.flow.async_init(
        BUILTIN, context={"source": "user"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "configure_v1"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "url": influxdb.url,
            "verify_ssl": False,
            "database": database,
            "username": ADMIN_USER,
            "password": ADMIN_PASSWORD,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is state
    return entry


class _Marker(threading.Event):
    """Put in the built-in writer's queue: notes which batch it was taken into."""

    def __init__(self, writer: BuiltinWriter) -> None:
        super().__init__()
        self._writer = writer
        self.batch = -1

    def set(self) -> None:
        self.batch = self._writer.batches_started
        super().set()


class BuiltinWriter:
    """The built-in entry's writer thread (InfluxThread), made observable.

    It takes state changes from its queue into a batch (get_events_json), then
    writes the batch, then starts the next one: once a batch has started after the
    one a marker was taken into, every state change queued before the marker is
    written.
    """

    def __init__(self, entry: ConfigEntry) -> None:
        """Follow the thread of `entry`, which is loaded."""
        self._thread: Any = entry.runtime_data
        self._condition = threading.Condition()
        self.batches_started = 0
        collect = self._thread.get_events_json

        def counted() -> Any:
            with self._condition:
                self.batches_started += 1
                self._condition.notify_all()
            return collect()

        self._thread.get_events_json = counted

    def wait_written(self) -> None:
        """Return once everything queued so far is written (in the executor)."""
        marker = _Marker(self)
        self._thread.queue.put(marker)
        assert marker.wait(_WAIT_SECONDS), "the built-in writer took no batch"
        with self._condition:
            assert self._condition.wait_for(
                lambda: self.batches_started > marker.batch, _WAIT_SECONDS
            ), "the built-in writer did not write its batch"
