"""HA Ingestor's config flow for a user whose Home Assistant speaks German.

The user's language is a setting of their profile (see HomeAssistantUI.set_language);
the frontend then asks Home Assistant for HA Ingestor's texts in it, which Home
Assistant reads from custom_components/ha_ingestor/translations/de.json. The texts
expected here are read from that file, and checked to differ from English, so the test
cannot pass on English texts. It runs after the user path (conftest.py orders it) and
switches the language back to English when it ends. Nothing is added.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from playwright.sync_api import expect
import pytest

from tests.influxdb_v1_server import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    InfluxDBv1Server,
    free_port,
)

from .home_assistant import DATABASE, DOMAIN, HomeAssistantProcess
from .ui import CONFIG_FLOW, HomeAssistantUI, fill_placeholders, translations

LANGUAGE = "de"


@pytest.fixture
def german_ui(ui: HomeAssistantUI) -> Iterator[HomeAssistantUI]:
    """The shared tab, its user's language German for the test (English again after)."""
    ui.ensure_logged_in()
    with ui.in_language(LANGUAGE):
        yield ui


def test_config_flow_shows_the_german_texts(
    german_ui: HomeAssistantUI,
    home_assistant: HomeAssistantProcess,
    e2e_influxdb: InfluxDBv1Server,
) -> None:
    """Add integration -> HA Ingestor, in German: the menu, the form, its errors.

    The first step's title and options, the InfluxDB 1.x form's field labels, and a
    wrong password and a URL where nothing answers, each shown on its field: all as
    de.json words them. The dialog is then closed.
    """
    ui, page = german_ui, german_ui.page
    german, english = translations(LANGUAGE)["config"], translations()["config"]
    entries_before = home_assistant.config_entries(DOMAIN)

    ui.open_devices_and_services()
    menu = ui.start_adding_integration()
    assert menu["type"] == "menu", menu
    user = german["step"]["user"]
    assert user["title"] != english["step"]["user"]["title"]
    expect(page.get_by_text(user["title"], exact=True)).to_be_visible()
    for step_id in menu["menu_options"]:
        assert (
            user["menu_options"][step_id]
            != english["step"]["user"]["menu_options"][step_id]
        ), step_id
    # Each option is found by its German text (and they are in the flow's order).
    assert ui.menu_order(menu) == menu["menu_options"]
    ui.shot("de-menu")

    form = ui.choose_influxdb_v1()
    assert form["step_id"] == "influxdb_v1", form
    step = german["step"]["influxdb_v1"]
    expect(page.get_by_text(step["title"], exact=True)).to_be_visible()
    labels = step["data"]
    for field in form["data_schema"]:
        label = labels[field["name"]]
        # Text fields (selectors) and the checkbox (a plain bool), by their labels.
        shown = (
            ui.field(label)
            if "selector" in field
            else page.get_by_role("checkbox", name=label, exact=True)
        )
        expect(shown, f"{field['name']}: {label}").to_be_visible()
    english_labels = english["step"]["influxdb_v1"]["data"]
    assert [name for name in labels if labels[name] != english_labels[name]], labels
    ui.shot("de-influxdb-1-form")

    mistakes: list[tuple[str, tuple[str, str, str, str], str, str]] = [
        (
            "wrong-password",
            (e2e_influxdb.url, DATABASE, ADMIN_USER, "not-the-password"),
            "password",
            "invalid_auth",
        ),
        (
            "wrong-url",
            (f"http://127.0.0.1:{free_port()}", DATABASE, ADMIN_USER, ADMIN_PASSWORD),
            "url",
            "cannot_connect",
        ),
    ]
    for name, values, field_name, error in mistakes:
        ui.fill_influxdb_v1(*values)
        answer: dict[str, Any] = ui.submit(CONFIG_FLOW)
        assert answer["errors"] == {field_name: error}, answer
        placeholders = answer.get("description_placeholders")
        text = fill_placeholders(german["error"][error], placeholders)
        assert text != fill_placeholders(english["error"][error], placeholders)
        expect(page.locator("ha-alert", has_text=text)).to_be_visible()
        ui.shot(f"de-{name}")
        assert ui.form_errors() == {field_name: text}

    ui.close_dialog()
    assert home_assistant.config_entries(DOMAIN) == entries_before
