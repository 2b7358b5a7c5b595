"""VictoriaMetrics, for real: set up as a 1.x-compatible server, written, read back.

A real victoria-metrics (Debian's 1.145) takes InfluxDB line protocol on /write; a field
becomes the series `<measurement>_<field>` with the tags and `db` as labels, timestamps
in milliseconds (docs.victoriametrics.com/victoriametrics/integrations/influxdb/).
Every numeric point is read back through /api/v1/export after /internal/force_flush.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
import signal
import time
from typing import Any
import uuid

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

from custom_components.ha_ingestor.const import (
    CONF_DATABASE,
    CONF_FLUSH_INTERVAL,
    CONF_IGNORE_ATTRIBUTES,
    CONF_MEASUREMENT_RULE,
    CONF_MIRROR_ENABLED,
    DOMAIN,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
)
from custom_components.ha_ingestor.influxdb.connection import create_client

from .conftest import (
    open_form,
    record_state_changes,
    setup_entry,
    v1_entry_data,
    wait_until,
)
from .victoriametrics_server import VictoriaMetricsServer

pytestmark = pytest.mark.usefixtures("socket_enabled")

FAST_FLUSH = {CONF_FLUSH_INTERVAL: 0.1}


def _entry(server: VictoriaMetricsServer) -> MockConfigEntry:
    """An entry writing to VictoriaMetrics as to InfluxDB 1.x, a `db` of its own."""
    database = f"ha_{uuid.uuid4().hex[:8]}"
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"{database} on 127.0.0.1:{server.port}",
        unique_id=f"{server.url}/{database}",
        data=v1_entry_data(server, database) | {CONF_USERNAME: "", CONF_PASSWORD: ""},
    )


def _power(
    server: VictoriaMetricsServer, entry: MockConfigEntry
) -> Counter[tuple[str, float, int]]:
    """(entity id, value, time in ms) of every sample of `W_value` the entry wrote."""
    database = entry.data[CONF_DATABASE]
    return Counter(
        (f"{series['metric']['domain']}.{series['metric']['entity_id']}", value, ms)
        for series in server.export(f'W_value{{db="{database}"}}')
        for value, ms in zip(series["values"], series["timestamps"], strict=True)
    )


def _expected(
    fired: list[tuple[str, int]], start: int = 0
) -> Counter[tuple[str, float, int]]:
    """What the power readings fired from `start` on are stored as: value, time in ms.

    The n-th reading fired has the value n.
    """
    return Counter(
        (entity_id, float(index), micros // 1000)
        for index, (entity_id, micros) in enumerate(fired[start:], start)
    )


async def _fire(hass: HomeAssistant, start: int, stop: int) -> None:
    """Power readings of 20 sensors; the value is the reading's number."""
    for i in range(start, stop):
        hass.states.async_set(
            f"sensor.power_{i % 20}", str(i), {"unit_of_measurement": "W"}
        )
        if i % 100 == 99:
            await asyncio.sleep(0)


async def test_config_flow_as_a_1x_compatible_server(
    hass: HomeAssistant, victoriametrics: VictoriaMetricsServer
) -> None:
    """Set up as one of the "InfluxDB 1.x and compatible servers": /ping and /write 204."""
    flow_id = await open_form(hass, "influxdb_v1")
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            CONF_URL: victoriametrics.url,
            CONF_DATABASE: "home_assistant",
            CONF_VERIFY_SSL: True,
        },
    )
    assert result["step_id"] == "registry_mirror"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_MIRROR_ENABLED: False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"home_assistant on 127.0.0.1:{victoriametrics.port}"


async def test_chosen_as_influxdb_3_it_is_named_another_version(
    hass: HomeAssistant, victoriametrics: VictoriaMetricsServer
) -> None:
    """The InfluxDB 3 form, given VictoriaMetrics: the URL field says what it is."""
    flow_id = await open_form(hass, "influxdb_v3")
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            CONF_URL: victoriametrics.url,
            CONF_DATABASE: "home_assistant",
            CONF_TOKEN: "",
            CONF_VERIFY_SSL: True,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_URL: "wrong_version"}


async def test_points_older_than_its_default_retention_are_dropped(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Accepted (204), yet gone: a month by default, as its docs and the README say."""
    server = VictoriaMetricsServer(tmp_path, retention=None)
    server.start()
    try:
        entry = _entry(server)
        client = create_client(hass, entry.data)
        now_us = int(time.time() * 1_000_000)
        forty_days_us = 40 * 86_400 * 1_000_000
        await client.write(
            f"W,entity_id=old value=1 {now_us - forty_days_us}\n"
            f"W,entity_id=new value=2 {now_us}".encode()
        )

        def stored() -> set[tuple[str, float]]:
            return {(s[1], s[2]) for s in server.samples('{__name__="W_value"}')}

        # Its newest points are readable last (a search latency): once the new one
        # is, the old one would be, had it been kept.
        await wait_until(lambda: bool(stored()), "the new point readable", seconds=60)
        assert stored() == {("new", 2.0)}
    finally:
        server.kill(signal.SIGINT)


async def test_every_numeric_point_is_read_back(
    hass: HomeAssistant, victoriametrics: VictoriaMetricsServer
) -> None:
    """Each state change is one sample of `W_value`, its value, its time in ms."""
    entry = _entry(victoriametrics)
    await setup_entry(hass, entry, FAST_FLUSH)
    fired = record_state_changes(hass)
    await _fire(hass, 0, 2000)

    await wait_until(
        lambda: sum(_power(victoriametrics, entry).values()) >= 2000,
        "2,000 samples",
        seconds=60,
    )
    assert _power(victoriametrics, entry) == _expected(fired)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
async def test_outage_stopped_by_pid_and_restarted(
    hass: HomeAssistant,
    revive_victoriametrics: VictoriaMetricsServer,
    sig: signal.Signals,
) -> None:
    """VictoriaMetrics stopped by its PID mid-stream, then started again.

    Every point fired while it was down waits in the spool and arrives with its own
    timestamp. Stopped gracefully (SIGINT), it keeps everything it had; killed
    (SIGKILL), it may lose "the last few seconds of inserted data" it had answered 204
    to (docs.victoriametrics.com/victoriametrics/ "Storage"): those only may miss.
    """
    server = revive_victoriametrics
    entry = _entry(server)
    await setup_entry(hass, entry, FAST_FLUSH)
    fired = record_state_changes(hass)
    spool = entry.runtime_data.pipeline.spool

    await _fire(hass, 0, 1000)
    await hass.async_add_executor_job(server.kill, sig)
    await _fire(hass, 1000, 2000)
    await wait_until(lambda: spool.count > 0, "points wait in the spool")
    await hass.async_add_executor_job(server.start)
    await _fire(hass, 2000, 3000)
    await wait_until(lambda: spool.count == 0, "the spool is empty again", seconds=120)

    expected = _expected(fired)
    after_the_kill = _expected(fired, 1000) if sig == signal.SIGKILL else expected
    await wait_until(
        lambda: _power(server, entry) >= after_the_kill, "the points", seconds=60
    )
    stored = _power(server, entry)
    assert stored <= expected
    assert stored >= after_the_kill


async def test_measurement_rule_for_readable_metric_names(
    hass: HomeAssistant, victoriametrics: VictoriaMetricsServer
) -> None:
    """The rule "domain and device class" names series `sensor__temperature_value`.

    The default (the unit) names them `°C_value`, which PromQL selects only as
    {__name__="°C_value"}. Text attributes would each become a series of zeros:
    ignored, they are not written (they still choose the measurement).
    """
    entry = _entry(victoriametrics)
    options: dict[str, Any] = FAST_FLUSH | {
        CONF_MEASUREMENT_RULE: MEASUREMENT_DOMAIN_DEVICE_CLASS,
        CONF_IGNORE_ATTRIBUTES: ["unit_of_measurement", "friendly_name"],
    }
    await setup_entry(hass, entry, options)
    hass.states.async_set(
        "sensor.living_room",
        "21.5",
        {
            "unit_of_measurement": "°C",
            "device_class": "temperature",
            "friendly_name": "Living room",
        },
    )
    database = entry.data[CONF_DATABASE]

    def names() -> set[str]:
        return {
            series["metric"]["__name__"]
            for series in victoriametrics.export(f'{{db="{database}"}}')
        }

    await wait_until(lambda: bool(names()), "the point")
    assert names() == {"sensor__temperature_value"}
