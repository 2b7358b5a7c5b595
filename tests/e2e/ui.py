"""Home Assistant's frontend, driven the way a person uses it: roles, labels and texts.

Home Assistant's frontend is made of web components; Playwright's role, text and CSS
locators pierce their (open) shadow roots. Two things need care: a dialog's content is
slotted into it, so it is not found by scoping a locator to the dialog (locators here
are page-wide, which is safe because one dialog is open at a time); and the texts HA
Ingestor shows come from its translations/<language>.json, read here rather than copied.

The language is the user's, as their profile sets it (English unless a test switches,
see `HomeAssistantUI.in_language`). The frontend's own words on the way to HA Ingestor's
flow (Settings, Devices & services, Add integration, Submit, Close) are asked from the
frontend itself (`hass.localize`), so the same steps work in any language.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import json
from pathlib import Path
import re
from typing import Any

from playwright.sync_api import (
    Locator,
    Page,
    Response,
    TimeoutError as PlaywrightTimeoutError,
    expect,
)
import pytest

from .home_assistant import (
    OWNER_PASSWORD,
    OWNER_USERNAME,
    HomeAssistantProcess,
    integration_source,
)

# Slow machines (2 cores shared with other test runs): generous, but a broken step still
# fails within a minute rather than at the suite's timeout.
UI_TIMEOUT_MS = 60_000
INTEGRATION_NAME = "HA Ingestor"
# Where the UI sends a flow's steps (POST, with the flow's id after it).
CONFIG_FLOW = "/api/config/config_entries/flow"
OPTIONS_FLOW = "/api/config/config_entries/options/flow"
# The frontend's own texts the steps below look for, by their keys in its translations.
# SETTINGS is always loaded: set_language waits for it to change (so two languages
# switched between must not share it, as English and German do not).
SETTINGS = "panel.config"
DEVICES_AND_SERVICES = "ui.panel.config.dashboard.devices.main"
ADD_INTEGRATION = "ui.panel.config.integrations.add_integration"
SEARCH_BRAND = "ui.panel.config.integrations.search_brand"
SUBMIT = "ui.panel.config.integrations.config_flow.submit"
CLOSE = "ui.common.close"
# A text of the frontend in the language it shows ("" until loaded).
LOCALIZE = 'key => document.querySelector("home-assistant")?.hass?.localize?.(key)'


def translations(language: str = "en") -> dict[str, Any]:
    """The texts of the HA Ingestor that Home Assistant loads, in `language`.

    Only that language's file, as it is shipped: where it lacks a key, Home Assistant
    shows the English text instead, and this has none.
    """
    data: dict[str, Any] = json.loads(
        (integration_source() / "translations" / f"{language}.json").read_text("utf-8")
    )
    return data


def fill_placeholders(text: str, placeholders: dict[str, str] | None) -> str:
    """`text` with its {name} placeholders filled, as the frontend shows it."""
    values = placeholders or {}
    return re.sub(r"\{(\w+)\}", lambda match: str(values[match[1]]), text)


class Screenshots:
    """Numbered screenshots of each step, in a git-ignored folder, for people to see."""

    def __init__(self, folder: Path) -> None:
        """Start numbering at 1 in `folder` (emptied of an earlier run's files)."""
        self.folder = folder
        self._count = 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in [*folder.glob("*.png"), *folder.glob("*.json")]:
            old.unlink()

    def take(self, page: Page, name: str) -> Path:
        """Save what the browser shows now as NN-name.png."""
        self._count += 1
        path = self.folder / f"{self._count:02d}-{name}.png"
        page.screenshot(path=path)
        return path


class HomeAssistantUI:
    """One logged-in browser tab on Home Assistant, and the steps a person takes."""

    def __init__(
        self, page: Page, ha: HomeAssistantProcess, shots: Screenshots
    ) -> None:
        """Drive `page` against `ha`, saving screenshots in `shots`."""
        self.page = page
        self.ha = ha
        self.shots = shots
        self.logged_in = False
        # The user's language, which the frontend shows (see in_language).
        self.language = "en"
        page.set_default_timeout(UI_TIMEOUT_MS)

    def shot(self, name: str) -> Path:
        """Screenshot the current state of the page."""
        return self.shots.take(self.page, name)

    def texts(self) -> dict[str, Any]:
        """HA Ingestor's texts in the language the frontend shows."""
        return translations(self.language)

    # --- The frontend's language -----------------------------------------------------------

    def frontend_text(self, key: str) -> str:
        """One of the frontend's own texts, in the language it shows (hass.localize).

        Waits until the frontend has it: a panel's texts load when it is first opened.
        """
        try:
            handle = self.page.wait_for_function(LOCALIZE, arg=key)
        except PlaywrightTimeoutError:
            pytest.fail(f"the frontend has no text {key!r} (hass.localize)")
        text: str = handle.json_value()
        return text

    def set_language(self, language: str) -> None:
        """Set the user's language, as their profile page does, and wait until shown.

        The profile page saves the frontend's locale with the language in it as the
        user's data (websocket `frontend/set_user_data`, key "language"); every open
        frontend of that user is subscribed to it and switches. This sends the same
        message on the page's own connection. Done once the frontend's texts are the
        new language's (SETTINGS changed) and <html lang> says it.
        """
        if language == self.language:
            return
        before = self.frontend_text(SETTINGS)
        self.page.evaluate(
            """async language => {
                const hass = document.querySelector("home-assistant").hass;
                await hass.connection.sendMessagePromise({
                    type: "frontend/set_user_data",
                    key: "language",
                    value: {...hass.locale, language},
                });
            }""",
            language,
        )
        self.page.wait_for_function(
            """([language, key, before]) => {
                const hass = document.querySelector("home-assistant")?.hass;
                const text = hass?.localize?.(key);
                return hass?.language === language
                    && document.documentElement.lang === language
                    && Boolean(text) && text !== before;
            }""",
            arg=[language, SETTINGS, before],
        )
        self.language = language

    @contextlib.contextmanager
    def in_language(self, language: str) -> Iterator[None]:
        """The user's language is `language` inside the block, the earlier one after."""
        earlier = self.language
        self.set_language(language)
        try:
            yield
        finally:
            self.set_language(earlier)

    # --- Logging in and onboarding -----------------------------------------------------

    def log_in_and_onboard(self) -> None:
        """Log in as the owner, then finish onboarding's remaining steps in the UI."""
        page = self.page
        page.goto(self.ha.url)
        expect(page.get_by_role("heading", name="Welcome home!")).to_be_visible()
        page.get_by_role("textbox", name="Username").fill(OWNER_USERNAME)
        page.get_by_role("textbox", name="Password").fill(OWNER_PASSWORD)
        self.shot("login")
        page.get_by_role("button", name="Log in").click()

        # The owner exists (made through the onboarding API); the other steps follow.
        steps = (
            (
                "onboarding-home-location",
                page.get_by_role("heading", name="Home location"),
            ),
            ("onboarding-country", page.get_by_text("the country your home is in")),
            (
                "onboarding-analytics",
                page.get_by_role("heading", name="Help us help you"),
            ),
        )
        for name, marker in steps:
            expect(marker).to_be_visible()
            self.shot(name)
            page.get_by_role("button", name="Next").click()
            expect(marker).to_be_hidden()
        expect(page.get_by_role("heading", name="All set!")).to_be_visible()
        self.shot("onboarding-done")
        page.get_by_role("button", name="Finish").click()
        expect(self.sidebar_settings).to_be_visible()
        expect(page).to_have_url(re.compile(r"/home|/lovelace"))
        self.shot("dashboard")
        self.logged_in = True

    def ensure_logged_in(self) -> None:
        """Log in and onboard, unless an earlier test did."""
        if not self.logged_in:
            self.log_in_and_onboard()

    @property
    def sidebar_settings(self) -> Locator:
        """The sidebar's Settings entry (its name may carry a repairs badge)."""
        settings = re.escape(self.frontend_text(SETTINGS))
        return self.page.get_by_role("link", name=re.compile(rf"\b{settings}\b"))

    # --- Settings -> Devices & services ---------------------------------------------------

    def open_devices_and_services(self) -> None:
        """Settings -> Devices & services, as a person clicks it."""
        self.sidebar_settings.click()
        devices = re.escape(self.frontend_text(DEVICES_AND_SERVICES))
        self.page.get_by_role("link", name=re.compile(rf"^{devices}")).click()
        add = self.frontend_text(ADD_INTEGRATION)
        expect(self.page.get_by_role("button", name=add)).to_be_visible()

    def open_integration_page(self) -> None:
        """Settings -> Devices & services -> HA Ingestor.

        Once in CI the dashboard listed only Backup for a minute while the core had
        HA Ingestor's entry loaded (its list comes from a subscription of the
        frontend's): a person reloads the page then, and so does this, once.
        """
        self.open_devices_and_services()
        link = self.page.get_by_role("link", name=re.compile(rf"^{INTEGRATION_NAME}\b"))
        try:
            link.wait_for(timeout=15_000)
        except PlaywrightTimeoutError:
            self.page.reload()
        link.click()
        expect(
            self.page.get_by_role("heading", name=INTEGRATION_NAME, level=1)
        ).to_be_visible()

    def start_adding_integration(self) -> dict[str, Any]:
        """Add integration -> search -> HA Ingestor; return the flow's first step."""
        page = self.page
        page.get_by_role("button", name=self.frontend_text(ADD_INTEGRATION)).click()
        search = page.get_by_placeholder(self.frontend_text(SEARCH_BRAND))
        search.fill(INTEGRATION_NAME)
        self.shot("add-integration-search")
        with self.flow_response(CONFIG_FLOW) as response:
            page.get_by_role("button", name=INTEGRATION_NAME, exact=True).click()
        step: dict[str, Any] = response()
        return step

    # --- Flows (config and options) -------------------------------------------------------

    @contextlib.contextmanager
    def flow_response(self, path: str) -> Iterator[Any]:
        """Capture the answer to the flow request the UI sends inside the block.

        Yields a function returning the decoded JSON, for after the block. The UI is
        still what is driven; the answer says which step it should now render.
        """
        pattern = re.compile(re.escape(path) + r"(/[^/?]+)?(\?.*)?")

        def matches(response: Response) -> bool:
            return response.request.method == "POST" and bool(
                pattern.fullmatch(response.url.removeprefix(self.ha.url))
            )

        with self.page.expect_response(matches, timeout=UI_TIMEOUT_MS) as info:

            def answer() -> Any:
                response = info.value
                if not response.ok:
                    # What the person sees then: an error dialog instead of a form.
                    dialog = self.page.get_by_text(
                        re.compile(r"could not be|error", re.I)
                    )
                    with contextlib.suppress(AssertionError):
                        expect(dialog.first).to_be_visible(timeout=10_000)
                    shown = self.page.get_by_role("dialog").first.aria_snapshot()
                    pytest.fail(
                        f"the flow failed: HTTP {response.status} {response.text()}; "
                        f"the UI shows:\n{shown}"
                    )
                return response.json()

            yield answer

    def submit(self, path: str) -> dict[str, Any]:
        """Click the dialog's Submit; return the flow's answer (next step or result)."""
        # Exactly: a short word such as German's "OK" is part of many other names.
        submit = self.frontend_text(SUBMIT)
        with self.flow_response(path) as response:
            self.page.get_by_role("button", name=submit, exact=True).click()
        answer: dict[str, Any] = response()
        return answer

    def submit_remaining_steps(
        self, answer: dict[str, Any], path: str, section: str
    ) -> dict[str, Any]:
        """Submit any further form steps as they come (their proposed values).

        A flow may grow steps after the one a test is about; each is shown, checked
        for its title, photographed and submitted, until the flow ends.
        """
        texts = self.texts()[section]["step"]
        for _ in range(10):
            if answer["type"] != "form":
                return answer
            assert not answer.get("errors"), answer
            step = answer["step_id"]
            if title := texts.get(step, {}).get("title"):
                expect(self.page.get_by_text(title, exact=True)).to_be_visible()
            self.shot(f"{section}-{step}")
            answer = self.submit(path)
        pytest.fail(f"the flow did not end after 10 steps: {answer}")

    def form_errors(self) -> dict[str, str]:
        """The error messages the open form shows, keyed by the field they sit on.

        Home Assistant's forms render a field's error as an alert right before the
        field; an error that concerns no field (`base`) stands above the form.
        """
        errors: dict[str, str] = {}
        alerts = self.page.locator("ha-alert")
        for index in range(alerts.count()):
            alert = alerts.nth(index)
            if not alert.is_visible():
                continue
            kind, field, text = alert.evaluate(
                """el => [
                    el.alertType,
                    el.nextElementSibling?.schema?.name ?? "base",
                    el.textContent.trim(),
                ]"""
            )
            if kind == "error":
                errors[field] = text
        return errors

    def field(self, label: str) -> Locator:
        """A text field of the open form, by its label (a required one ends in *)."""
        return self.page.get_by_role(
            "textbox", name=re.compile(rf"^{re.escape(label)}\*?$")
        )

    # --- HA Ingestor's config flow ---------------------------------------------------------

    def menu_order(self, menu: dict[str, Any]) -> list[str]:
        """The first step's options, by where they are shown, top to bottom.

        `menu` is the step, as the flow answered it: its options are looked for.
        """
        texts = self.texts()["config"]["step"]["user"]["menu_options"]
        shown = {}
        for step_id in menu["menu_options"]:
            option = self.page.get_by_text(texts[step_id], exact=True)
            expect(option).to_be_visible()
            box = option.bounding_box()
            assert box is not None
            shown[step_id] = box["y"]
        return sorted(shown, key=shown.__getitem__)

    def choose_influxdb(self, step_id: str) -> dict[str, Any]:
        """In the first step's menu, choose `step_id`'s server; return the form step."""
        option = self.texts()["config"]["step"]["user"]["menu_options"][step_id]
        with self.flow_response(CONFIG_FLOW) as response:
            self.page.get_by_text(option, exact=True).click()
        step: dict[str, Any] = response()
        labels = self.texts()["config"]["step"][step_id]["data"]
        expect(self.field(labels["url"])).to_be_visible()
        return step

    def choose_influxdb_v1(self) -> dict[str, Any]:
        """In the first step's menu, choose InfluxDB 1.x; return the form step."""
        return self.choose_influxdb("influxdb_v1")

    def fill_influxdb_v3(self, url: str, database: str, token: str) -> None:
        """Type the connection into the InfluxDB 3 form."""
        labels = self.texts()["config"]["step"]["influxdb_v3"]["data"]
        self.field(labels["url"]).fill(url)
        self.field(labels["database"]).fill(database)
        self.field(labels["token"]).fill(token)

    def close_dialog(self) -> None:
        """Close the open flow dialog without finishing it."""
        self.page.get_by_role("button", name=self.frontend_text(CLOSE)).click()
        expect(self.page.get_by_role("dialog")).to_have_count(0)

    def fill_influxdb_v1(
        self, url: str, database: str, username: str, password: str
    ) -> None:
        """Type the connection into the InfluxDB 1.x form."""
        labels = self.texts()["config"]["step"]["influxdb_v1"]["data"]
        self.field(labels["url"]).fill(url)
        self.field(labels["database"]).fill(database)
        self.field(labels["username"]).fill(username)
        self.field(labels["password"]).fill(password)

    def finish_created_entry(self, answer: dict[str, Any]) -> None:
        """The flow created the entry: finish, and see the entry on its page.

        Without a device the dialog says "Success" with Finish, and Home Assistant
        then shows the integration's page; with one (HA Ingestor's service device) it
        offers to name and place the device ("Skip and finish"), then shows its page.
        """
        assert answer["type"] == "create_entry", answer
        finish = self.page.get_by_role(
            "button", name=re.compile(r"^(Finish|Skip and finish)$")
        )
        expect(finish).to_be_visible()
        self.shot("entry-created")
        finish.click()
        expect(self.page).to_have_url(
            re.compile(
                r"/config/(integrations/integration/ha_ingestor|devices/device/)"
            )
        )
        expect(self.page.get_by_text(answer["title"], exact=True).first).to_be_visible()

    def add_entry(self, url: str, database: str, username: str, password: str) -> None:
        """The whole happy path: Add integration -> HA Ingestor -> 1.x -> Submit."""
        self.ensure_logged_in()
        self.open_devices_and_services()
        self.start_adding_integration()
        self.choose_influxdb_v1()
        self.fill_influxdb_v1(url, database, username, password)
        answer = self.submit(CONFIG_FLOW)
        answer = self.submit_remaining_steps(answer, CONFIG_FLOW, "config")
        self.finish_created_entry(answer)

    # --- The entry's page, device page and menu --------------------------------------------

    def entry_row(self, title: str) -> Locator:
        """The entry's own row on the integration's page (not its devices' rows)."""
        return (
            self.page.locator("ha-config-entry-row")
            .filter(has_text=title)
            .locator("ha-row-item")
            .first
        )

    def open_entry_menu(self, title: str) -> None:
        """The entry's ⋮ menu on the integration's page."""
        self.entry_row(title).get_by_role("button", name="Menu").click()

    def open_device_page(self, title: str) -> None:
        """From the integration's page to the entry's device ("1 service")."""
        self.page.get_by_role("link", name=re.compile(r"^1 (service|device)$")).click()
        expect(self.page).to_have_url(re.compile(r"/config/devices/device/"))
        expect(self.page.get_by_text(title, exact=True).first).to_be_visible()

    def entity_value(self, name: str) -> str:
        """The state an entity row of the page shows next to the entity's name."""
        row = self.page.locator("hui-generic-entity-row").filter(has_text=name)
        expect(row).to_have_count(1)
        return row.inner_text().strip()
