"""scripts/bench --backfill, small: it runs end to end and writes its own section.

A recorder of a few thousand state changes, one idle and one backfilling window of a
second, no point-by-point comparison (tests/pipeline/test_backfill.py is that). Nothing
here asserts on speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.bench_ha import backfill
from scripts.bench_ha.__main__ import main

pytestmark = [pytest.mark.usefixtures("socket_enabled"), pytest.mark.timeout(600)]

OTHER = "# Performance\n\nThe main benchmark's report.\n"


def test_the_section_is_its_own(tmp_path: Path) -> None:
    """Written after the rest, replaced in place; the rest is left as it is."""
    report = tmp_path / "performance.md"
    report.write_text(OTHER)
    first = f"{backfill.BEGIN}\n## Backfill\n\nfirst\n{backfill.END}\n"
    backfill.write_section(report, first)
    assert report.read_text() == OTHER + "\n" + first
    assert backfill.read_section(report) == first
    report.write_text(report.read_text() + "\n## After\n")
    second = first.replace("first", "second")
    backfill.write_section(report, second)
    assert report.read_text() == OTHER + "\n" + second + "\n## After\n"
    assert backfill.read_section(tmp_path / "missing.md") is None


def test_a_small_run_reports_every_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3,000 state changes: read and written whole, the targets and windows reported."""
    monkeypatch.setenv("HA_BENCH_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setattr(backfill, "ARTIFACTS", tmp_path / "artifacts")
    report = tmp_path / "performance.md"
    report.write_text(OTHER)
    argv = [
        "--backfill",
        "--state-changes",
        "3000",
        "--windows",
        "1",
        "--window-seconds",
        "1",
        "--fidelity-changes",
        "0",
        "--out",
        str(report),
    ]
    assert main(argv) == 0
    text = report.read_text()
    assert text.startswith(OTHER)
    section = backfill.read_section(report)
    assert section is not None
    assert "| points backfilled /s, pace at its maximum (100,000/s) | ≥ 20,000 |" in (
        section
    )
    assert "| loop lag p99 backfilling at the default pace (1,000/s)" in section
    assert "| 1 | idle |" in section
    assert "| 2 | backfilling |" in section
    result = json.loads((tmp_path / "artifacts" / "backfill.json").read_text())
    fastest = result["max"]
    # The history, the house's first states of the preparing run, and Home
    # Assistant's own (its zone, say).
    assert fastest["state_changes"] == fastest["read"] > 3000 + backfill.ENTITIES
    assert fastest["written"] >= 3000 + backfill.ENTITIES
    assert (fastest["refused"], fastest["dropped"]) == (0, 0)
    assert fastest["longest_read_ms"] > 0
