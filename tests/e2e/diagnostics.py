"""What HA Ingestor's diagnostics download must hold, however it was downloaded."""

from __future__ import annotations

import json
import re
from typing import Any


def check_diagnostics(text: str, secrets: dict[str, str]) -> dict[str, Any]:
    """Parse a diagnostics download: HA Ingestor's, with counters, without `secrets`.

    `secrets` maps what each is ("InfluxDB password") to its value; none may appear,
    and every key named like a password or token is redacted. Returns the parsed JSON.
    """
    diagnostics: dict[str, Any] = json.loads(text)
    assert diagnostics["integration_manifest"]["domain"] == "ha_ingestor"
    counters = dict(_numbers(diagnostics["data"]))
    for name in ("state_changes", "points_written"):
        found = {key: value for key, value in counters.items() if name in key}
        assert found, f"no counter named like {name!r} in {sorted(counters)}"
        assert all(value >= 0 for value in found.values()), found
    leaked = [what for what, secret in secrets.items() if secret in text]
    assert not leaked, f"diagnostics contain the {', '.join(leaked)}"
    for key, value in _leaves(diagnostics["data"]):
        if re.search(r"password|token", key) and value not in ("", None):
            assert value == "**REDACTED**", f"{key} is not redacted"
    return diagnostics


def _leaves(data: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (dotted key, value) below dicts and lists."""
    if isinstance(data, dict):
        return [
            leaf
            for key, value in data.items()
            for leaf in _leaves(value, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(data, list):
        return [leaf for i, v in enumerate(data) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, data)]


def _numbers(data: Any) -> list[tuple[str, int]]:
    """The integer leaves, by dotted key."""
    return [
        (key, value)
        for key, value in _leaves(data)
        if isinstance(value, int) and not isinstance(value, bool)
    ]
