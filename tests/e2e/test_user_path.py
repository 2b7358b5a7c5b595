"""A person's path, in a real browser: log in, add HA Ingestor, see points, filter.

The steps run in this order against one Home Assistant (see conftest.py) and each
saves screenshots under e2e-screenshots/. The form's texts are read from the
integration's translations/en.json, so the tests check what a person reads.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from tests.influxdb_v1_server import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    InfluxDBv1Server,
    free_port,
)
from tests.influxdb_v3_server import InfluxDBv3TestServer

from .conftest import V3_DATABASE
from .home_assistant import DATABASE, DOMAIN, HomeAssistantProcess, wait_for
from .ui import CONFIG_FLOW, OPTIONS_FLOW, HomeAssistantUI, translations

# Demo entities (scripts/develop_config/configuration.yaml) that change every 3 s.
DEMO_ENTITIES = {
    ("sensor", "demo_power"),
    ("sensor", "demo_energy"),
    ("input_number", "demo_power_raw"),
    ("input_number", "demo_energy_raw"),
}
# The domain the options flow excludes, and one that keeps being written.
EXCLUDED_DOMAIN = "input_number"
KEPT_DOMAIN = "sensor"


def point_counts(influxdb: InfluxDBv1Server) -> dict[tuple[str, str], int]:
    """How many points each (domain, entity_id) has in the database."""
    counts: dict[tuple[str, str], int] = {}
    for series in influxdb.query(
        'SELECT count(*) FROM /.*/ GROUP BY "domain", "entity_id"', DATABASE
    ):
        key = (series["tags"]["domain"], series["tags"]["entity_id"])
        counts[key] = counts.get(key, 0) + sum(
            value for value in series["values"][0][1:] if value is not None
        )
    return counts


def newest_point(influxdb: InfluxDBv1Server, domain: str) -> float | None:
    """The timestamp (Unix seconds) of the newest point of `domain`, if any."""
    series = influxdb.query(
        f"SELECT * FROM /.*/ WHERE \"domain\" = '{domain}' ORDER BY time DESC LIMIT 1",
        DATABASE,
    )
    times = [s["values"][0][0] for s in series if s["values"]]
    return max(times) / 1e6 if times else None


def test_log_in_and_finish_onboarding(ui: HomeAssistantUI) -> None:
    """The owner (made through the onboarding API) logs in; the rest is the UI's."""
    ui.log_in_and_onboard()


def test_influxdb_3_comes_first_and_shows_a_wrong_token_on_its_field(
    ui: HomeAssistantUI,
    home_assistant: HomeAssistantProcess,
    e2e_influxdb_v3: InfluxDBv3TestServer,
) -> None:
    """The menu offers InfluxDB 3, then 2, then 1.x and compatible servers.

    InfluxDB 3's form suggests port 8181; a wrong token (the server answers 401 on
    /ping) is shown on the token field. The dialog is then closed: nothing is added.
    """
    errors = translations()["config"]["error"]
    labels = translations()["config"]["step"]["influxdb_v3"]["data"]
    page = ui.page
    ui.ensure_logged_in()
    ui.open_devices_and_services()
    menu = ui.start_adding_integration()
    assert menu["menu_options"] == ["influxdb_v3", "influxdb_v2", "influxdb_v1"]
    assert ui.menu_order(menu) == ["influxdb_v3", "influxdb_v2", "influxdb_v1"]
    ui.shot("menu-influxdb-3-first")

    assert ui.choose_influxdb("influxdb_v3")["step_id"] == "influxdb_v3"
    expect(ui.field(labels["url"])).to_have_value("http://localhost:8181")
    for label in (labels["database"], labels["token"]):
        expect(ui.field(label)).to_be_visible()
    expect(page.get_by_text(labels["no_sync"])).to_be_visible()
    ui.shot("influxdb-3-form")

    ui.fill_influxdb_v3(e2e_influxdb_v3.url, V3_DATABASE, "not-the-token")
    answer = ui.submit(CONFIG_FLOW)
    expect(page.locator("ha-alert", has_text=errors["invalid_auth"])).to_be_visible()
    ui.shot("influxdb-3-wrong-token")
    assert answer["errors"] == {"token": "invalid_auth"}
    assert ui.form_errors() == {"token": errors["invalid_auth"]}
    ui.close_dialog()
    assert home_assistant.config_entries(DOMAIN) == []


def test_add_integration_shows_each_mistake_on_its_field(
    ui: HomeAssistantUI,
    home_assistant: HomeAssistantProcess,
    e2e_influxdb: InfluxDBv1Server,
) -> None:
    """Settings -> Devices & services -> Add integration -> HA Ingestor.

    A wrong password is shown on the password field, a URL where no InfluxDB answers
    on the URL field; with the right values the entry is created and listed.
    """
    assert home_assistant.config_entries(DOMAIN) == []
    errors = translations()["config"]["error"]
    page = ui.page
    ui.ensure_logged_in()
    ui.open_devices_and_services()
    ui.shot("devices-and-services")
    assert ui.start_adding_integration()["type"] == "menu"
    ui.shot("choose-influxdb-version")
    assert ui.choose_influxdb_v1()["step_id"] == "influxdb_v1"
    ui.shot("influxdb-1-form")

    # 1. The right server, a wrong password.
    ui.fill_influxdb_v1(e2e_influxdb.url, DATABASE, ADMIN_USER, "not-the-password")
    answer = ui.submit(CONFIG_FLOW)
    expect(page.locator("ha-alert", has_text=errors["invalid_auth"])).to_be_visible()
    ui.shot("wrong-password")
    assert ui.form_errors() == {"password": errors["invalid_auth"]}
    assert answer["errors"] == {"password": "invalid_auth"}

    # 2. The right password, a URL where nothing answers.
    ui.fill_influxdb_v1(
        f"http://127.0.0.1:{free_port()}", DATABASE, ADMIN_USER, ADMIN_PASSWORD
    )
    answer = ui.submit(CONFIG_FLOW)
    expect(page.locator("ha-alert", has_text=errors["cannot_connect"])).to_be_visible()
    ui.shot("wrong-url")
    assert ui.form_errors() == {"url": errors["cannot_connect"]}
    assert answer["errors"] == {"url": "cannot_connect"}

    # 3. All right: the entry is created, shown, and set up.
    ui.fill_influxdb_v1(e2e_influxdb.url, DATABASE, ADMIN_USER, ADMIN_PASSWORD)
    answer = ui.submit(CONFIG_FLOW)
    assert not answer.get("errors"), answer
    answer = ui.submit_remaining_steps(answer, CONFIG_FLOW, "config")
    ui.finish_created_entry(answer)
    ui.shot("entry-shown")
    entry = wait_for(
        lambda: [
            e for e in home_assistant.config_entries(DOMAIN) if e["state"] == "loaded"
        ],
        "the new entry set up",
        timeout=60,
    )
    assert [e["title"] for e in entry] == [answer["title"]]


def test_points_of_the_demo_entities_arrive(
    ingestor_entry: dict[str, Any], e2e_influxdb: InfluxDBv1Server
) -> None:
    """The demo home's state changes reach InfluxDB; numbers as the float `value`."""

    def demo_points() -> dict[tuple[str, str], int] | None:
        counts = point_counts(e2e_influxdb)
        return counts if counts.keys() >= DEMO_ENTITIES else None

    counts = wait_for(
        demo_points, f"points of {sorted(DEMO_ENTITIES)} in InfluxDB", timeout=120
    )
    assert all(counts[key] > 0 for key in DEMO_ENTITIES)
    # Demo power is in W: the measurement is the unit, the number a float field.
    (fields,) = e2e_influxdb.query('SHOW FIELD KEYS FROM "W"', DATABASE)
    assert ["value", "float"] in fields["values"]


def test_options_exclude_a_domain_and_its_points_stop(
    ui: HomeAssistantUI,
    ingestor_entry: dict[str, Any],
    e2e_influxdb: InfluxDBv1Server,
) -> None:
    """Configure -> Exclude domains: input_number; its points stop, others go on."""
    page = ui.page
    texts = translations()["options"]["step"]
    started = time.time()
    wait_for(
        lambda: (newest_point(e2e_influxdb, EXCLUDED_DOMAIN) or 0) > started - 10,
        f"{EXCLUDED_DOMAIN} points being written before the change",
        timeout=60,
    )

    ui.open_integration_page()
    with ui.flow_response(OPTIONS_FLOW) as response:
        page.get_by_role("button", name="Configure").click()
    step = response()
    assert step["type"] == "form", step
    page.get_by_role(
        "button", name=texts[step["step_id"]]["data"]["exclude_domains"], exact=True
    ).click()
    # The domain picker: "Search | Add custom item".
    page.get_by_placeholder("Add custom item").fill(EXCLUDED_DOMAIN)
    page.get_by_text(EXCLUDED_DOMAIN, exact=True).click()
    # The choice shows as a chip on the field.
    expect(page.get_by_role("button", name=EXCLUDED_DOMAIN, exact=True)).to_be_visible()
    ui.shot("options-exclude-domain")

    # Submit; any further steps of the options flow keep their values.
    answer = ui.submit(OPTIONS_FLOW)
    answer = ui.submit_remaining_steps(answer, OPTIONS_FLOW, "options")
    assert answer["type"] == "create_entry", answer
    finish = page.get_by_role("button", name="Finish")
    expect(finish).to_be_visible()
    saved = time.time()
    ui.shot("options-saved")
    finish.click()

    # Other domains go on being written well past the change; the excluded one stopped
    # when the entry reloaded, which Home Assistant starts before answering the form.
    wait_for(
        lambda: (newest_point(e2e_influxdb, KEPT_DOMAIN) or 0) > saved + 15,
        f"{KEPT_DOMAIN} points written 15 s after the change",
        timeout=120,
    )
    last_excluded = newest_point(e2e_influxdb, EXCLUDED_DOMAIN)
    assert last_excluded is not None
    # (3 s: what a slow reload may take; the demo changes input_number every 3 s.)
    assert last_excluded < saved + 3, (
        f"{EXCLUDED_DOMAIN} still written {last_excluded - saved:.1f} s after the change"
    )
