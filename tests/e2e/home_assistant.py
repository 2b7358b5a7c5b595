"""A real Home Assistant, as a separate process, with the demo home of scripts/develop.

The config dir is made fresh for each run: scripts/develop's configuration.yaml (its demo
entities change state on their own), HTTP settings for 127.0.0.1 and a free port, and HA
Ingestor in custom_components/ (a symlink to the repository's, or to another copy of the
integration named by HA_INGESTOR_E2E_INTEGRATION, e.g. a deliberately broken one). No
config entry is seeded: the tests add it through the UI or the HTTP API.

Home Assistant runs from a virtualenv: the tests' own (the harness's release), or one
with another release in it (scripts/_python.sh makes them; see test_releases.py). The
config dir is written by that virtualenv's Python (`python -m tests.e2e.home_assistant
CONFIG_DIR PORT`), in the format of the Home Assistant installed there.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, TypeVar
import urllib.error
import urllib.parse
import urllib.request

from homeassistant.helpers.json import save_json
from homeassistant.util import dt as dt_util

DOMAIN = "ha_ingestor"
# The database scripts/develop writes to, and the form's default.
DATABASE = "home_assistant"
REPO = Path(__file__).parents[2]
DEMO_CONFIGURATION = REPO / "scripts" / "develop_config" / "configuration.yaml"
INTEGRATION = REPO / "custom_components" / "ha_ingestor"

# Home Assistant answers within seconds on a warm machine; a cold one compiles first.
HA_START_TIMEOUT = 240

OWNER_NAME = "E2E Owner"
OWNER_USERNAME = "owner"
OWNER_PASSWORD = "e2e-owner-password"

T = TypeVar("T")


def wait_for[T](
    probe: Callable[[], T | None], what: str, timeout: float, interval: float = 0.25
) -> T:
    """Call `probe` until it returns something other than None (or False); return it.

    A server that does not answer yet (OSError, or RuntimeError from the InfluxDB
    helper) counts as not yet; on timeout, TimeoutError names `what` and the last
    value or error seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
        except (OSError, RuntimeError) as err:
            result, last = None, err
        else:
            last = result
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            msg = f"not reached within {timeout:.0f} s: {what} (last: {last!r})"
            raise TimeoutError(msg)
        time.sleep(interval)


def integration_source() -> Path:
    """The integration folder HA loads: the repository's, unless the environment says."""
    override = os.environ.get("HA_INGESTOR_E2E_INTEGRATION")
    return Path(override).resolve() if override else INTEGRATION


def prepare_config_dir(config_dir: Path, port: int) -> None:
    """A fresh Home Assistant config dir with scripts/develop's demo home in it.

    For the Home Assistant installed where this runs.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_CONFIGURATION, config_dir / "configuration.yaml")
    (config_dir / "local").mkdir(exist_ok=True)  # packages: !include_dir_named local
    (config_dir / "automations.yaml").write_text("[]\n")
    (config_dir / "scripts.yaml").write_text("")
    (config_dir / "scenes.yaml").write_text("")
    custom_components = config_dir / "custom_components"
    custom_components.mkdir(exist_ok=True)
    (custom_components / "ha_ingestor").symlink_to(integration_source())
    try:
        # (Only there from 2026.8 on.)
        from homeassistant.components.http import config as http_config  # noqa: PLC0415
    except ImportError:
        # Until 2026.7 the listen address and port are set in configuration.yaml.
        with (config_dir / "configuration.yaml").open("a", encoding="utf-8") as yaml:
            yaml.write(f"\nhttp:\n  server_host: 127.0.0.1\n  server_port: {port}\n")
        return
    # Home Assistant 2026.8 and later read them from .storage/http (YAML would only be
    # migrated once, with a repair issue): write them there, in the format of the
    # installed Home Assistant, as scripts/develop does.
    storage = config_dir / ".storage"
    storage.mkdir(exist_ok=True)
    stable = http_config.HTTP_STORAGE_SCHEMA(
        {"server_host": ["127.0.0.1"], "server_port": port}
    )
    stable |= {"created_at": dt_util.utcnow().isoformat(), "error": None}
    stable |= {"error_message": None}
    save_json(
        str(storage / http_config.STORAGE_KEY),
        {
            "version": http_config.STORAGE_VERSION,
            "minor_version": http_config.STORAGE_MINOR_VERSION,
            "key": http_config.STORAGE_KEY,
            "data": {"stable": stable, "pending": None, "yaml_migration_done": True},
        },
    )


class HomeAssistantProcess:
    """The `hass` command of a virtualenv on 127.0.0.1:`port`, with its own config dir."""

    def __init__(
        self, config_dir: Path, port: int, venv: Path = Path(sys.prefix)
    ) -> None:
        """Prepare the config dir; `start` runs Home Assistant from `venv`."""
        self.config_dir = config_dir
        self.port = port
        self.venv = venv
        self.url = f"http://127.0.0.1:{port}"
        self.client_id = f"{self.url}/"
        self.access_token: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [venv / "bin" / "python", "-m", __name__, str(config_dir), str(port)],
            cwd=REPO,
            check=True,
        )

    @property
    def log(self) -> Path:
        """Home Assistant's own log file."""
        return self.config_dir / "home-assistant.log"

    def log_tail(self, lines: int = 40) -> str:
        """The end of Home Assistant's log, for failure messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text("utf-8").splitlines()[-lines:])
        return "(no log)"

    def start(self, timeout: float) -> None:
        """Start Home Assistant and wait until its HTTP API answers."""
        output = (self.config_dir / "hass.out").open("ab")
        self._process = subprocess.Popen(
            # --skip-pip: everything is installed already (requirements_test.txt, or
            # the release's in tests/e2e/releases/); a missing requirement must fail
            # here, not be fetched from PyPI mid-test.
            [
                self.venv / "bin" / "hass",
                "--config",
                str(self.config_dir),
                "--skip-pip",
            ],
            cwd=self.config_dir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SETUP_PORT": str(self.port)},
        )
        output.close()

        def answers() -> bool:
            self._check_alive()
            status, _ = self.request("GET", "/api/onboarding")
            return status == 200

        wait_for(answers, f"Home Assistant answering on {self.url}", timeout)

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            msg = (
                f"Home Assistant exited with code {self._process.returncode}:\n"
                f"{self.log_tail()}"
            )
            raise RuntimeError(msg)

    def stop(self, timeout: float = 60) -> None:
        """Stop Home Assistant as Ctrl-C would (HA Ingestor flushes), else kill it."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        form: dict[str, str] | None = None,
        auth: bool = False,
    ) -> tuple[int, Any]:
        """One HTTP request to Home Assistant; the status and the decoded JSON body."""
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth:
            headers["Authorization"] = f"Bearer {self.access_token}"
        request = urllib.request.Request(
            self.url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def create_owner(self) -> None:
        """Onboarding's first step through its HTTP API: the owner user, and a token.

        Everything after this (log in, the other onboarding steps) goes through the UI.
        """
        status, answer = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": OWNER_NAME,
                "username": OWNER_USERNAME,
                "password": OWNER_PASSWORD,
                "language": "en",
            },
        )
        if status != 200:
            msg = f"creating the owner failed: HTTP {status} {answer}"
            raise RuntimeError(msg)
        status, tokens = self.request(
            "POST",
            "/auth/token",
            form={
                "grant_type": "authorization_code",
                "code": answer["auth_code"],
                "client_id": self.client_id,
            },
        )
        if status != 200:
            msg = f"exchanging the auth code failed: HTTP {status} {tokens}"
            raise RuntimeError(msg)
        self.access_token = tokens["access_token"]

    def wait_until_running(self, timeout: float) -> None:
        """Wait until Home Assistant has finished starting (core state RUNNING)."""

        def running() -> bool:
            self._check_alive()
            status, config = self.request("GET", "/api/config", auth=True)
            return status == 200 and config.get("state") == "RUNNING"

        wait_for(running, "Home Assistant's state RUNNING", timeout)

    def config_entries(self, domain: str) -> list[dict[str, Any]]:
        """The config entries of `domain`, as the UI's REST endpoint lists them."""
        status, entries = self.request(
            "GET", f"/api/config/config_entries/entry?domain={domain}", auth=True
        )
        if status != 200:
            msg = f"listing config entries failed: HTTP {status} {entries}"
            raise RuntimeError(msg)
        return list(entries)


if __name__ == "__main__":
    prepare_config_dir(Path(sys.argv[1]), int(sys.argv[2]))
