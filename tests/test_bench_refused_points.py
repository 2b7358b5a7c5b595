"""scripts/bench --refused-points: the figure's counts, on each path into InfluxDB 3."""

from __future__ import annotations

import pytest

from scripts.bench_ha.__main__ import main
from scripts.bench_ha.refused_points import PATHS, format_table, measure

pytestmark = pytest.mark.usefixtures("socket_enabled")


async def test_requests_per_path() -> None:
    """Native: one request; the 2.x path bisects (151); the 1.x path, one per conflict.

    Every path stores the 990 valid points and sets the 10 conflicts apart.
    """
    results = await measure(repeats=1)
    assert [(r.path, r.requests, r.stored, r.refused) for r in results] == [
        ("InfluxDB 3 native", 1, 990, 10),
        ("2.x path", 151, 990, 10),
        ("1.x path", 11, 990, 10),
    ]
    table = format_table(results).splitlines()
    assert [row.split(" | ")[1] for row in table[4:]] == ["1", "151", "11"]
    assert all(f"({endpoint})" in "\n".join(table) for endpoint in PATHS.values())


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`scripts/bench --refused-points --repeats 1` prints the table."""
    assert main(["--refused-points", "--repeats", "1"]) == 0
    assert "| InfluxDB 3 native (/api/v3/write_lp) | 1 |" in capsys.readouterr().out
