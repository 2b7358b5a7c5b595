"""State to line: the exact lines docs/schema.md shows, accepted by real InfluxDB 1.x."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.core import State
import pytest

from custom_components.ha_ingestor.normalize import state_to_line, timestamp_us

from .influxdb_v1_server import InfluxDBv1Server

TIME_US = 1732262400123456

# (entity id, state, attributes) -> the line docs/schema.md shows for it.
DOCUMENTED_LINES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "sensor.living_room",
        "21",
        {"unit_of_measurement": "°C"},
        "°C,domain=sensor,entity_id=living_room value=21.0 1732262400123456",
    ),
    (
        "sensor.pv_power",
        "1234.5",
        {"unit_of_measurement": "W"},
        "W,domain=sensor,entity_id=pv_power value=1234.5 1732262400123456",
    ),
    (
        "sensor.water",
        "0.25",
        {"unit_of_measurement": "m³ per h, est"},
        r"m³\ per\ h\,\ est,domain=sensor,entity_id=water value=0.25 1732262400123456",
    ),
    (
        "binary_sensor.front_door",
        "on",
        {},
        'binary_sensor,domain=binary_sensor,entity_id=front_door state="on" 1732262400123456',
    ),
    (
        "climate.hall",
        'say "eco"',
        {},
        r'climate,domain=climate,entity_id=hall state="say \"eco\"" 1732262400123456',
    ),
    (
        "sensor.path",
        "C:\\temp",
        {},
        r'sensor,domain=sensor,entity_id=path state="C:\\temp" 1732262400123456',
    ),
    (
        "sensor.broken",
        "nan",
        {"unit_of_measurement": "°C"},
        '°C,domain=sensor,entity_id=broken state="nan" 1732262400123456',
    ),
    (
        "sensor.big",
        "1e300",
        {"unit_of_measurement": "B"},
        "B,domain=sensor,entity_id=big value=1e+300 1732262400123456",
    ),
]


@pytest.mark.parametrize(
    ("entity_id", "state", "attributes", "line"),
    DOCUMENTED_LINES,
    ids=[case[0] for case in DOCUMENTED_LINES],
)
def test_documented_lines(
    entity_id: str, state: str, attributes: dict[str, Any], line: str
) -> None:
    """The lines are exactly the ones docs/schema.md shows."""
    assert state_to_line(State(entity_id, state, attributes), TIME_US) == line


def test_documented_lines_are_in_the_docs() -> None:
    """docs/schema.md shows these very lines, so it cannot drift from the code."""
    text = (Path(__file__).parents[1] / "docs" / "schema.md").read_text("utf-8")
    for *_, line in DOCUMENTED_LINES:
        assert line in text


def test_timestamp_keeps_microseconds() -> None:
    """Float seconds become exact integer microseconds, rounding not truncating."""
    assert timestamp_us(1732262400.123456) == TIME_US
    assert timestamp_us(0.0000019999) == 2


def test_documented_lines_read_back(influxdb: InfluxDBv1Server, database: str) -> None:
    """Real InfluxDB accepts every line and gives back the same values."""
    lines = [
        state_to_line(State(entity_id, state, attributes), TIME_US + offset)
        for offset, (entity_id, state, attributes, _) in enumerate(DOCUMENTED_LINES)
    ]
    status, body = influxdb.request(
        "POST", "/write", {"db": database, "precision": "u"}, "\n".join(lines).encode()
    )
    assert status == 204, body
    rows = {
        row["entity_id"]: row
        for row in influxdb.rows('SELECT * FROM /.*/ GROUP BY "entity_id"', database)
    }
    assert rows["living_room"]["measurement"] == "°C"
    assert rows["living_room"]["value"] == 21.0
    assert rows["water"]["measurement"] == "m³ per h, est"
    assert rows["front_door"]["state"] == "on"
    assert rows["hall"]["state"] == 'say "eco"'
    assert rows["path"]["state"] == "C:\\temp"
    assert rows["broken"]["state"] == "nan"
    assert rows["big"]["value"] == 1e300
    assert [rows[e.split(".")[1]]["time"] for e, *_ in DOCUMENTED_LINES] == [
        TIME_US + offset for offset in range(len(DOCUMENTED_LINES))
    ]
