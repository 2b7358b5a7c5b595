"""HA Ingestor on the oldest and the newest Home Assistant it supports, for real.

The rest of the suite runs on the test harness's release. Each requirements file in
releases/ names another: the last patch of the oldest release (hacs.json) and the newest.
scripts/_python.sh makes a virtualenv for each beside the tests' own
(`<virtualenv>-ha-<release>`); here that release's Home Assistant runs as its `hass`
command starts it, with the demo home and a real influxd, and a user's path goes through
Home Assistant's HTTP API (the browser tests show the UI on the harness's release):

1. the config flow: InfluxDB 1.x, the database and its user, the registry mirror on,
   and the history the recorder already holds (the demo home's) written too;
2. state changes written to influxd and read back; the entry's device in the mirror;
3. the options flow: the rich preset, after which the entry reloads and writes it;
4. an outage: influxd killed, the changes spooled, influxd started again, all written,
   and the action that writes now, with nothing left to write;
5. the diagnostics download, which shows the history backfilled;

and Home Assistant's log holds no error, and no report of a call HA Ingestor should not
make (Home Assistant logs those for custom integrations, where it raises for its own).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path
import sqlite3
import sys
from typing import Any

from awesomeversion import AwesomeVersion
import pytest

from tests.influxdb_v1_server import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    InfluxDBv1Server,
    free_port,
)

from .diagnostics import check_diagnostics
from .home_assistant import (
    DATABASE,
    DOMAIN,
    HA_START_TIMEOUT,
    OWNER_PASSWORD,
    HomeAssistantProcess,
    wait_for,
)

RELEASES = sorted(
    (path.stem for path in (Path(__file__).parent / "releases").glob("*.txt")),
    key=AwesomeVersion,
)
ENTITY = "sensor.ha_ingestor_release"
# What the two presets write for it: core's tag entity_id is the object id.
CORE_QUERY = 'SELECT "value" FROM "W" WHERE "entity_id" = \'ha_ingestor_release\''
RICH_QUERY = f'SELECT "value" FROM "W" WHERE "entity_id" = \'{ENTITY}\''
MIRROR_FILE = "ha_ingestor_registry.sqlite"  # the default, in the config dir


def release_venv(release: str) -> Path:
    """The release's virtualenv, named after the tests' own as scripts/_python.sh does."""
    venv = Path(f"{sys.prefix}-ha-{release}")
    if not (venv / "bin" / "hass").is_file():
        pytest.fail(
            f"no Home Assistant {release} in {venv}: scripts/test makes it "
            "(ensure_release_venvs in scripts/_python.sh)"
        )
    return venv


@pytest.mark.timeout(900)
@pytest.mark.parametrize("release", RELEASES)
def test_release(release: str, tmp_path: Path) -> None:
    """Set up, write, change options, survive an outage, download the diagnostics."""
    influxdb = InfluxDBv1Server(tmp_path)
    ha = HomeAssistantProcess(tmp_path / "config", free_port(), release_venv(release))
    try:
        influxdb.start()
        influxdb.query(f'CREATE DATABASE "{DATABASE}"')
        ha.start(HA_START_TIMEOUT)
        ha.create_owner()
        ha.wait_until_running(HA_START_TIMEOUT)
        status, config = ha.request("GET", "/api/config", auth=True)
        assert (status, config["version"]) == (200, release)

        wait_for(
            lambda: recorded_states(ha) > 0,
            "the recorder's first commit",
            HA_START_TIMEOUT,
        )
        entry_id = add_entry(ha, influxdb)
        assert write_and_read(ha, influxdb, CORE_QUERY, [1, 2, 3]) == [1, 2, 3]
        assert mirrored_device_names(ha, entry_id) == [
            f"{DATABASE} on 127.0.0.1:{influxdb.port}"
        ]

        choose_rich_preset(ha, entry_id)
        # Changes made while the entry reloads are handed over, and written in the
        # preset of the moment: change the sensor until one is written in the new one.
        values = itertools.count(100)

        def rich_values() -> list[float] | None:
            set_state(ha, next(values))
            return read(influxdb, RICH_QUERY) or None

        wait_for(
            rich_values,
            "a point in the rich preset after the entry reloaded",
            timeout=120,
            interval=1,
        )

        outage = [float(next(values)) for _ in range(5)]
        influxdb.kill()
        for value in outage:
            set_state(ha, value)
        wait_for(
            lambda: spooled(ha, entry_id, len(outage)),
            "the changes made during the outage in the spool",
            timeout=60,
        )
        influxdb.start()
        wait_for(
            lambda: set(outage) <= set(read(influxdb, RICH_QUERY)) or None,
            "the spooled changes written once influxd is back",
            timeout=120,
        )
        # The action, without naming the entry: the only one there is.
        status, flushed = ha.request(
            "POST", f"/api/services/{DOMAIN}/flush?return_response", {}, auth=True
        )
        assert (status, flushed["service_response"]["waiting"]) == (200, 0)

        status, diagnostics = ha.request(
            "GET", f"/api/diagnostics/config_entry/{entry_id}", auth=True
        )
        assert status == 200
        data = check_diagnostics(
            json.dumps(diagnostics),
            {
                "InfluxDB password": ADMIN_PASSWORD,
                "owner's password": OWNER_PASSWORD,
                "access token": str(ha.access_token),
            },
        )["data"]
        assert data["versions"]["home_assistant"] == release
        assert data["schema_preset"] == "rich"
        assert data["server"]["version"].startswith("1.")
        assert data["stats"]["points_written"] >= 3 + 1 + len(outage)
        assert data["registry_mirror"]["healthy"] is True
        backfilled = data["history_backfill"]["last"]
        assert (backfilled["status"], backfilled["source"]) == ("done", "flow")
        assert backfilled["written"] > 0
    except BaseException as err:
        err.add_note(f"The end of Home Assistant's log:\n{ha.log_tail()}")
        raise
    finally:
        ha.stop()
        influxdb.kill()
    assert log_problems(ha) == []


def flow_step(
    ha: HomeAssistantProcess, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """One step of a config or options flow through the HTTP API the UI uses."""
    status, answer = ha.request("POST", path, body, auth=True)
    assert status == 200, f"{path}: HTTP {status} {answer}"
    assert isinstance(answer, dict)
    return answer


def recorded_states(ha: HomeAssistantProcess) -> int:
    """How many states the recorder's database holds (it commits every few seconds).

    The config flow offers the history step only once there is some: right after a
    start under load there may be none yet.
    """
    path = ha.config_dir / "home-assistant_v2.db"
    if not path.exists():
        return 0
    with contextlib.closing(
        sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    ) as database:
        try:
            (count,) = database.execute("SELECT count(*) FROM states").fetchone()
        except sqlite3.OperationalError:  # its tables are not made yet
            return 0
    return int(count)


def add_entry(ha: HomeAssistantProcess, influxdb: InfluxDBv1Server) -> str:
    """The config flow of a user choosing InfluxDB 1.x and the registry mirror."""
    result = flow_step(ha, "/api/config/config_entries/flow", {"handler": DOMAIN})
    assert (result["type"], result["step_id"]) == ("menu", "user")
    flow = f"/api/config/config_entries/flow/{result['flow_id']}"
    result = flow_step(ha, flow, {"next_step_id": "influxdb_v1"})
    assert (result["type"], result["step_id"]) == ("form", "influxdb_v1")
    connection = {
        "url": influxdb.url,
        "database": DATABASE,
        "username": ADMIN_USER,
        "password": ADMIN_PASSWORD,
        "verify_ssl": True,
    }
    result = flow_step(ha, flow, connection)
    assert (result["type"], result["step_id"], result["errors"]) == (
        "form",
        "registry_mirror",
        {},
    )
    result = flow_step(ha, flow, {"registry_mirror": True})
    # The demo home's history, recorded since Home Assistant started.
    assert (result["type"], result["step_id"]) == ("form", "history"), result
    assert int(result["description_placeholders"]["count"].replace(",", "")) > 0
    result = flow_step(ha, flow, {"history_backfill": True})
    assert result["type"] == "create_entry", result
    entry_id: str = result["result"]["entry_id"]

    def loaded() -> bool:
        return any(
            entry["entry_id"] == entry_id and entry["state"] == "loaded"
            for entry in ha.config_entries(DOMAIN)
        )

    wait_for(loaded, "the new entry loaded", timeout=60)
    return entry_id


def set_state(ha: HomeAssistantProcess, watts: float) -> None:
    """A state change of the test's sensor, through the REST API."""
    status, answer = ha.request(
        "POST",
        f"/api/states/{ENTITY}",
        {"state": str(watts), "attributes": {"unit_of_measurement": "W"}},
        auth=True,
    )
    assert status in {200, 201}, f"HTTP {status} {answer}"


def read(influxdb: InfluxDBv1Server, query: str) -> list[float]:
    """The sensor's values in influxd, oldest first."""
    return [row["value"] for row in influxdb.rows(query, DATABASE)]


def write_and_read(
    ha: HomeAssistantProcess,
    influxdb: InfluxDBv1Server,
    query: str,
    values: list[float],
) -> list[float]:
    """Change the sensor to each value; return what influxd then holds of it."""
    for value in values:
        set_state(ha, value)

    def written() -> list[float] | None:
        found = read(influxdb, query)
        return found if len(found) >= len(values) else None

    return wait_for(written, f"{len(values)} points of {ENTITY} in influxd", timeout=60)


def mirrored_device_names(ha: HomeAssistantProcess, entry_id: str) -> list[str]:
    """The names of the entry's devices in the registry mirror, once it has them."""

    def names() -> list[str] | None:
        path = ha.config_dir / MIRROR_FILE
        if not path.is_file():
            return None
        with contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        ) as db:
            rows = db.execute(
                "SELECT name FROM devices WHERE config_entry_id = ?", (entry_id,)
            ).fetchall()
        return [name for (name,) in rows] or None

    return wait_for(names, "the entry's device in the registry mirror", timeout=60)


def choose_rich_preset(ha: HomeAssistantProcess, entry_id: str) -> None:
    """The options flow's five forms, changing only the schema preset."""
    result = flow_step(
        ha, "/api/config/config_entries/options/flow", {"handler": entry_id}
    )
    flow = f"/api/config/config_entries/options/flow/{result['flow_id']}"
    answers: list[tuple[str, dict[str, Any]]] = [
        ("init", {}),
        ("schema", {"preset": "rich"}),
        ("delivery", {}),
        ("registry_mirror", {"registry_mirror": True}),
    ]
    for step, answer in answers:
        assert (result["type"], result["step_id"]) == ("form", step), result
        result = flow_step(ha, flow, answer)
    # The pace; the history is offered again only until a backfill has written it.
    assert result["step_id"] in {"history", "backfill_pace"}, result
    result = flow_step(ha, flow, {})
    assert result["type"] == "create_entry", result


def spooled(ha: HomeAssistantProcess, entry_id: str, count: int) -> bool:
    """Whether the diagnostics show InfluxDB down and at least `count` points spooled."""
    status, diagnostics = ha.request(
        "GET", f"/api/diagnostics/config_entry/{entry_id}", auth=True
    )
    data = diagnostics["data"] if status == 200 else {}
    return (
        status == 200
        and not data["writing"]["connected"]
        and data["spool"]["points"] >= count
    )


def log_problems(ha: HomeAssistantProcess) -> list[str]:
    """Errors in Home Assistant's log, and its reports of calls made by HA Ingestor."""
    return [
        line
        for line in ha.log.read_text("utf-8").splitlines()
        if " ERROR " in line
        or " CRITICAL " in line
        or "custom integration 'ha_ingestor'" in line
    ]
