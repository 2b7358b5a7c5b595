"""Switching from the built-in InfluxDB integration, in the browser.

Runs last (conftest.py orders it): it adds a second HA Ingestor entry. The Home
Assistant of the other steps gets the built-in integration configured as its users
have it: an entry made through its own config flow (here through the HTTP API, as setup
for the test) and its options in YAML (a package in local/). Then the person's path:
Add integration -> HA Ingestor -> "Take over from the InfluxDB integration" -> the last
page -> Submit. The built-in entry ends disabled, and HA Ingestor goes on writing the
points the built-in integration wrote, with its options.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from tests.influxdb_v1_server import ADMIN_PASSWORD, ADMIN_USER, InfluxDBv1Server

from .home_assistant import DOMAIN, HomeAssistantProcess, wait_for
from .ui import CONFIG_FLOW, HomeAssistantUI, translations

BUILTIN = "influxdb"
# The built-in integration writes here; the entry of the other steps writes elsewhere.
BUILTIN_DATABASE = "builtin"
# Its options, as its users keep them in YAML.
BUILTIN_YAML = """\
influxdb:
  tags:
    site: e2e
  measurement_attr: entity_id
  exclude:
    domains:
      - input_number
"""


def _flow_step(
    home_assistant: HomeAssistantProcess, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    status, answer = home_assistant.request("POST", path, body, auth=True)
    assert status == 200, answer
    assert isinstance(answer, dict)
    return answer


def set_up_builtin(
    home_assistant: HomeAssistantProcess, influxdb: InfluxDBv1Server
) -> dict[str, Any]:
    """The built-in integration: its options in YAML, its entry by its config flow."""
    influxdb.query(f'CREATE DATABASE "{BUILTIN_DATABASE}"')
    (home_assistant.config_dir / "local" / "builtin_influxdb.yaml").write_text(
        BUILTIN_YAML, "utf-8"
    )
    step = _flow_step(home_assistant, CONFIG_FLOW, {"handler": BUILTIN})
    flow = f"{CONFIG_FLOW}/{step['flow_id']}"
    _flow_step(home_assistant, flow, {"next_step_id": "configure_v1"})
    created = _flow_step(
        home_assistant,
        flow,
        {
            "url": influxdb.url,
            "verify_ssl": False,
            "database": BUILTIN_DATABASE,
            "username": ADMIN_USER,
            "password": ADMIN_PASSWORD,
        },
    )
    assert created["type"] == "create_entry", created
    entries: list[dict[str, Any]] = wait_for(
        lambda: [
            e for e in home_assistant.config_entries(BUILTIN) if e["state"] == "loaded"
        ],
        "the built-in entry loaded",
        timeout=60,
    )
    return entries[0]


def newest_site_point(influxdb: InfluxDBv1Server) -> float:
    """When the newest point tagged site=e2e was made (Unix seconds), 0 if none."""
    series = influxdb.query(
        "SELECT * FROM /.*/ WHERE \"site\" = 'e2e' ORDER BY time DESC LIMIT 1",
        BUILTIN_DATABASE,
    )
    times = [s["values"][0][0] for s in series if s["values"]]
    return max(times) / 1e6 if times else 0.0


def test_take_over_from_the_builtin_integration(
    ui: HomeAssistantUI,
    home_assistant: HomeAssistantProcess,
    e2e_influxdb: InfluxDBv1Server,
) -> None:
    """The takeover comes first; one page later the built-in entry is disabled.

    Points go on arriving with the built-in integration's options (its tag, entity
    ids as measurements, no input_number) after it stopped writing.
    """
    texts = translations()["config"]["step"]
    page = ui.page
    builtin = set_up_builtin(home_assistant, e2e_influxdb)
    started = time.time()
    wait_for(
        lambda: newest_site_point(e2e_influxdb) > started,
        "the built-in integration writing the demo's points",
        timeout=60,
    )

    ui.ensure_logged_in()
    ui.open_devices_and_services()
    menu = ui.start_adding_integration()
    assert menu["menu_options"][0] == "takeover"
    assert ui.menu_order(menu)[0] == "takeover"
    ui.shot("takeover-menu")
    with ui.flow_response(CONFIG_FLOW) as response:
        page.get_by_text(texts["user"]["menu_options"]["takeover"], exact=True).click()
    step = response()
    assert step["step_id"] == "takeover_confirm", step
    last_page = texts["takeover_confirm"]
    expect(page.get_by_text(last_page["title"], exact=True)).to_be_visible()
    expect(page.get_by_text("What changes:")).to_be_visible()
    expect(
        page.get_by_text(last_page["data"]["disable_builtin"], exact=True).first
    ).to_be_visible()
    ui.shot("takeover-last-page")
    answer = ui.submit(CONFIG_FLOW)
    ui.finish_created_entry(answer)
    ui.shot("takeover-done")

    disabled = wait_for(
        lambda: [
            e
            for e in home_assistant.config_entries(BUILTIN)
            if e["disabled_by"] == "user" and e["state"] == "not_loaded"
        ],
        "the built-in entry disabled",
        timeout=60,
    )
    assert [e["entry_id"] for e in disabled] == [builtin["entry_id"]]
    entry = wait_for(
        lambda: [
            e
            for e in home_assistant.config_entries(DOMAIN)
            if e["title"] == answer["title"] and e["state"] == "loaded"
        ],
        "HA Ingestor's new entry loaded",
        timeout=60,
    )
    assert BUILTIN_DATABASE in entry[0]["title"]
    switched = time.time()
    wait_for(
        lambda: newest_site_point(e2e_influxdb) > switched + 5,
        "HA Ingestor writing with the built-in integration's options",
        timeout=60,
    )
    measurements = {
        name
        for (name,) in e2e_influxdb.query("SHOW MEASUREMENTS", BUILTIN_DATABASE)[0][
            "values"
        ]
    }
    # Entity ids as measurements, never an input_number (excluded).
    assert "sensor.demo_power" in measurements
    assert not [name for name in measurements if name.startswith("input_number.")]
