"""End-to-end: a real InfluxDB, a real Home Assistant serving its frontend, a browser.

Everything here lives for the tests/e2e package only (scope "package"): InfluxDB 1.x
and Home Assistant run as processes of their own on free 127.0.0.1 ports with fresh
data and config dirs, and one headless Chromium (Debian's, driven by Playwright's sync
API) is logged in as the owner. The tests run in file order, each a step of a person's
path, and share that state; a failed step saves a screenshot and Home Assistant's log.

Home Assistant's test harness (pytest-homeassistant-custom-component) is built for
tests that run Home Assistant in-process. These do not, and Playwright's sync API marks
its own event loop as the running one between calls, which the harness's per-test
event-loop fixtures cannot run beside: they are replaced below by no-ops for this
package. Playwright is stopped when the package ends, before any other test runs.

Environment:
    HA_INGESTOR_E2E_INTEGRATION  another copy of custom_components/ha_ingestor for Home
                                 Assistant to load (e.g. one broken on purpose)
    HA_INGESTOR_SCREENSHOTS      where the screenshots go (default e2e-screenshots/)
    HA_INGESTOR_CHROMIUM         the browser binary (default: chromium on PATH)
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
import os
from pathlib import Path
import shutil
from typing import Any

from playwright.sync_api import Browser, Playwright, expect, sync_playwright
import pytest

from tests.http_test_server import running_in_thread
from tests.influxdb_v1_server import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    InfluxDBv1Server,
    free_port,
    sockets_allowed,
)
from tests.influxdb_v3_server import InfluxDBv3TestServer

from .home_assistant import (
    DATABASE,
    DOMAIN,
    HA_START_TIMEOUT,
    REPO,
    HomeAssistantProcess,
    wait_for,
)
from .ui import UI_TIMEOUT_MS, HomeAssistantUI, Screenshots

SCREENSHOTS = Path(
    os.environ.get("HA_INGESTOR_SCREENSHOTS", REPO / "e2e-screenshots")
).resolve()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
]


def chromium_executable() -> str:
    """Debian's chromium (scripts/_python.sh installs it), or HA_INGESTOR_CHROMIUM."""
    wanted = os.environ.get("HA_INGESTOR_CHROMIUM")
    for candidate in [wanted] if wanted else ["chromium", "chromium-browser"]:
        if path := shutil.which(candidate):
            return path
    pytest.fail(
        "no Chromium for the end-to-end tests: install Debian's `chromium` (scripts/test"
        " does where it can) or set HA_INGESTOR_CHROMIUM to a Chromium or Chrome binary"
    )


# --- Home Assistant's harness: what does not apply to tests that run HA as a process --


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No in-process Home Assistant here (tests/conftest.py would start one)."""


@pytest.fixture(autouse=True)
def configure_event_loop() -> None:
    """No asyncio here: Playwright's sync API owns the thread's event loop."""


@pytest.fixture(autouse=True)
def enable_event_loop_debug() -> None:
    """No asyncio here (see configure_event_loop)."""


@pytest.fixture(autouse=True)
def verify_cleanup() -> None:
    """Nothing in-process to clean up: the servers and the browser are processes."""


@pytest.fixture(autouse=True)
def sockets(socket_enabled: None) -> None:
    """The tests talk to their own servers on 127.0.0.1."""


# Files that run after the others, in this order: the device page needs the entry the
# user path creates; the takeover adds a second entry and the built-in integration.
_LAST = ("test_device_page.py", "test_takeover_path.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the device page's tests after the user path, which creates the entry.

    Then the takeover. (Only this package's items move, within their own block of the
    session.)
    """
    here = Path(__file__).parent
    positions = [i for i, item in enumerate(items) if item.path.parent == here]
    ours = [items[i] for i in positions]
    ours.sort(
        key=lambda item: (
            _LAST.index(item.path.name) + 1 if item.path.name in _LAST else 0
        )
    )
    for position, item in zip(positions, ours, strict=True):
        items[position] = item


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """When a step fails: a screenshot, and the end of Home Assistant's log."""
    report = yield
    ui = getattr(item, "funcargs", {}).get("ui")
    if report.when == "call" and report.failed and isinstance(ui, HomeAssistantUI):
        shot: object
        try:
            shot = ui.shot(f"FAILED-{item.name}")
        except Exception as err:  # noqa: BLE001 - the browser itself may be gone
            shot = f"(none: {err})"
        report.sections.append(
            (
                "end-to-end",
                f"screenshot: {shot}\nHome Assistant log:\n{ui.ha.log_tail()}",
            )
        )
    return report


# --- Servers --------------------------------------------------------------------------


@pytest.fixture(scope="package")
def e2e_influxdb(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InfluxDBv1Server]:
    """InfluxDB 1.x with authentication on and the database the form suggests."""
    with sockets_allowed():
        server = InfluxDBv1Server(tmp_path_factory.mktemp("e2e_influxdb"))
        server.start()
        server.query(f'CREATE DATABASE "{DATABASE}"')
    yield server
    server.kill()


# The InfluxDB 3 stand-in's token and database, for the form's test.
V3_TOKEN = "apiv3_e2e-token"
V3_DATABASE = "home"


@pytest.fixture(scope="package")
def e2e_influxdb_v3() -> Iterator[InfluxDBv3TestServer]:
    """The InfluxDB 3 stand-in, in a thread of its own (Playwright owns this one)."""
    server = InfluxDBv3TestServer(token=V3_TOKEN, databases=[V3_DATABASE])
    with sockets_allowed(), running_in_thread(server):
        yield server


@pytest.fixture(scope="package")
def home_assistant(
    tmp_path_factory: pytest.TempPathFactory,
    e2e_influxdb: InfluxDBv1Server,
) -> Iterator[HomeAssistantProcess]:
    """Home Assistant with the demo home, onboarded up to its owner (through the API)."""
    with sockets_allowed():
        ha = HomeAssistantProcess(
            tmp_path_factory.mktemp("e2e_home_assistant") / "config", free_port()
        )
        try:
            ha.start(HA_START_TIMEOUT)
            ha.create_owner()
            ha.wait_until_running(HA_START_TIMEOUT)
        except BaseException:
            ha.stop()
            raise
    yield ha
    ha.stop()


# --- Browser --------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, for this package only."""
    with sync_playwright() as playwright:
        expect.set_options(timeout=UI_TIMEOUT_MS)
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium, the Debian package (never `playwright install`)."""
    browser = playwright.chromium.launch(
        executable_path=chromium_executable(), args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def screenshots() -> Screenshots:
    """The git-ignored folder of this run's screenshots (emptied first)."""
    return Screenshots(SCREENSHOTS)


@pytest.fixture(scope="package")
def package_ui(
    browser: Browser, home_assistant: HomeAssistantProcess, screenshots: Screenshots
) -> Iterator[HomeAssistantUI]:
    """One browser tab on Home Assistant, shared by the tests in file order."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    yield HomeAssistantUI(context.new_page(), home_assistant, screenshots)
    context.close()


@pytest.fixture
def ui(package_ui: HomeAssistantUI) -> HomeAssistantUI:
    """The shared tab, for one step (a failing step gets a screenshot of its own)."""
    return package_ui


@pytest.fixture
def ingestor_entry(
    ui: HomeAssistantUI,
    home_assistant: HomeAssistantProcess,
    e2e_influxdb: InfluxDBv1Server,
) -> dict[str, Any]:
    """HA Ingestor's entry, loaded: the user path made it, or it is made now (UI)."""
    if not home_assistant.config_entries(DOMAIN):
        ui.add_entry(e2e_influxdb.url, DATABASE, ADMIN_USER, ADMIN_PASSWORD)
    ui.ensure_logged_in()

    def loaded() -> dict[str, Any] | None:
        entries = home_assistant.config_entries(DOMAIN)
        return entries[0] if entries and entries[0]["state"] == "loaded" else None

    return wait_for(loaded, "HA Ingestor's entry loaded", timeout=60)
