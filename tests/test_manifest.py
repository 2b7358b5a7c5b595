"""What HACS and hassfest check: manifest, hacs.json, translations, brand images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from custom_components.ha_ingestor import influx_client
from custom_components.ha_ingestor.const import (
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_ORGANIZATION,
    CONF_RETENTION_POLICY,
)

ROOT = Path(__file__).parents[1]
INTEGRATION = ROOT / "custom_components" / "ha_ingestor"


def _json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def test_manifest() -> None:
    """Domain and name first, then the other keys in alphabetical order."""
    manifest = _json(INTEGRATION / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert manifest["domain"] == "ha_ingestor" == INTEGRATION.name
    assert manifest["config_flow"] is True
    assert manifest["integration_type"] == "service"
    assert manifest["iot_class"] == "local_push"
    assert set(keys) >= {
        "codeowners",
        "documentation",
        "issue_tracker",
        "requirements",
        "version",
    }


def test_hacs_json() -> None:
    """HACS needs a name and the oldest Home Assistant that works."""
    hacs = _json(ROOT / "hacs.json")
    assert hacs["name"] == _json(INTEGRATION / "manifest.json")["name"]
    assert hacs["homeassistant"].startswith("2026.")


def test_english_translation_is_strings_json() -> None:
    """A custom integration ships translations/en.json; strings.json is its source."""
    assert _json(INTEGRATION / "strings.json") == _json(
        INTEGRATION / "translations" / "en.json"
    )


def test_every_error_reason_is_translated() -> None:
    """Each reason an InfluxError can carry reads well in the form and in exceptions."""
    strings = _json(INTEGRATION / "strings.json")
    reasons = {
        cls.reason
        for cls in vars(influx_client).values()
        if isinstance(cls, type) and issubclass(cls, influx_client.InfluxError)
    }
    reasons |= {
        influx_client.InfluxNotFoundError(missing, "").reason
        for missing in (
            CONF_DATABASE,
            CONF_RETENTION_POLICY,
            CONF_ORGANIZATION,
            CONF_BUCKET,
        )
    }
    assert reasons <= set(strings["config"]["error"])
    assert reasons <= set(strings["exceptions"])
