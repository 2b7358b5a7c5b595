"""The entry's device page and its diagnostics, in the browser.

These need HA Ingestor's diagnostic entities (a service device per entry with the
sensors "State changes received" and "Points written") and its diagnostics platform
(`async_get_config_entry_diagnostics`). They run after test_user_path.py (conftest.py
orders them), on the entry it made, or on one they add through the UI when run alone.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.influxdb_v1_server import ADMIN_PASSWORD

from .diagnostics import check_diagnostics
from .home_assistant import OWNER_PASSWORD, HomeAssistantProcess, wait_for
from .ui import HomeAssistantUI

COUNTERS = ("State changes received", "Points written")


def counter(ui: HomeAssistantUI, name: str) -> int:
    """A counter's value as the device page shows it (e.g. "1,234")."""
    text = ui.entity_value(name)
    digits = re.sub(r"[^\d]", "", text)
    assert digits, f"{name} shows {text!r}, not a number"
    return int(digits)


def test_device_page_counters_grow_while_the_demo_runs(
    ui: HomeAssistantUI, ingestor_entry: dict[str, Any]
) -> None:
    """Devices & services -> HA Ingestor -> its service: the counters go up."""
    ui.open_integration_page()
    ui.open_device_page(ingestor_entry["title"])
    first = {name: counter(ui, name) for name in COUNTERS}
    ui.shot("device-page")

    def grown() -> dict[str, int] | None:
        now = {name: counter(ui, name) for name in COUNTERS}
        return now if all(now[name] > first[name] for name in COUNTERS) else None

    later = wait_for(grown, f"{' and '.join(COUNTERS)} growing on the page", 60)
    ui.shot("device-page-later")
    assert later["Points written"] > 0


def test_diagnostics_download_has_counters_and_no_secrets(
    ui: HomeAssistantUI,
    ingestor_entry: dict[str, Any],
    home_assistant: HomeAssistantProcess,
) -> None:
    """The entry's ⋮ -> Download diagnostics: JSON, counters in it, no secrets."""
    ui.open_integration_page()
    ui.open_entry_menu(ingestor_entry["title"])
    item = ui.page.get_by_role("menuitem", name="Download diagnostics")
    expect(item).to_be_visible()
    ui.shot("entry-menu-diagnostics")
    with ui.page.expect_download() as download:
        item.click()
    text = download.value.path().read_text("utf-8")
    (ui.shots.folder / download.value.suggested_filename).write_text(text, "utf-8")

    check_diagnostics(
        text,
        {
            "InfluxDB password": ADMIN_PASSWORD,
            "owner's password": OWNER_PASSWORD,
            "access token": str(home_assistant.access_token),
        },
    )
