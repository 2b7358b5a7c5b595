"""scripts/bench's PostgreSQL and peers, without the peers' code.

The PostgreSQL harness runs a real server (Debian's postgresql-18 with TimescaleDB,
installed by scripts/_python.sh): start, a fresh database with what a peer's README runs
in it, rows counted by time, a kill by PID and a restart on the same data. The peers'
own code is not on PyPI and cannot be installed on a fresh machine, so no test here
runs it: runs with modes s and t need a peers directory (scripts/bench --peers-dir), and
only the checks that guard that directory, and the config a peer run gets, are tested.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import subprocess
import sys
import time

import pytest

from scripts.bench_ha.ha_config import INTEGRATION, REPO, write_config_dir
from scripts.bench_ha.influxdb import InfluxConnection
from scripts.bench_ha.orchestrate import Servers, log_findings
from scripts.bench_ha.peers import (
    ENVIRONMENT,
    LTSS,
    PEERS,
    SCRIBE,
    PeerError,
    git_tree_id,
    peer_folders,
)
from scripts.bench_ha.postgres import (
    PostgresConnection,
    PostgresQueryError,
    PostgresServer,
    RowCounter,
    running_postgres,
)
from scripts.bench_ha.protocol import RunSpec

from .influxdb_v1_server import sockets_allowed

# The git tree id of the folder made_folder() makes, as `git rev-parse HEAD:comp` gave
# it for the same files committed with git.
MADE_FOLDER_TREE = "520e0f248106b91bb0d4de383dcf527ea54b4333"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL with TimescaleDB for the module."""
    with sockets_allowed(), running_postgres() as server:
        yield server


def _us(ns: int) -> int:
    return ns // 1000


def _insert_at(connection: PostgresConnection, database: str, *times_ns: int) -> None:
    values = ", ".join(
        f"(timestamptz 'epoch' + {_us(t)} * interval '1 microsecond', {n})"
        for n, t in enumerate(times_ns)
    )
    connection.sql(f"INSERT INTO states_raw (time, n) VALUES {values}", database)


def test_fresh_database_with_timescaledb_and_rows_counted_by_time(
    postgres: PostgresServer,
) -> None:
    """A fresh database per run; rows count from since_ns, exact to the microsecond."""
    connection = postgres.connection
    connection.create_database("bench_count", ("CREATE EXTENSION timescaledb",))
    connection.sql(
        "CREATE TABLE states_raw (time timestamptz NOT NULL, n int)", "bench_count"
    )
    connection.sql("SELECT create_hypertable('states_raw', 'time')", "bench_count")
    base = time.time_ns() // 1000 * 1000
    _insert_at(connection, "bench_count", base, base + 1000, base + 2000)
    counter = RowCounter(connection, "bench_count", "states_raw")
    assert counter.count() == 3
    assert counter.count(base + 1000) == 2
    assert counter.count(base, base + 1000) == 1
    assert counter.count(base + 3000) == 0
    # Made again, the database is empty.
    connection.create_database("bench_count")
    with pytest.raises(PostgresQueryError, match="states_raw"):
        counter.count()


def test_killed_by_pid_and_restarted_on_the_same_data(postgres: PostgresServer) -> None:
    """SIGKILL takes the server and its backends; it restarts with what was committed."""
    connection = postgres.connection
    connection.create_database("bench_kill")
    connection.sql("CREATE TABLE states_raw (time timestamptz, n int)", "bench_kill")
    _insert_at(connection, "bench_kill", *(time.time_ns() + n for n in range(5)))
    pid = postgres.pid
    assert pid is not None
    postgres.kill()
    assert postgres.pid is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # no process of its group is left
    counter = RowCounter(connection, "bench_kill", "states_raw")
    with pytest.raises(PostgresQueryError):
        counter.count()
    postgres.start()
    assert postgres.port == connection.port
    assert counter.count() == 5


def test_scribe_readme_setup_lets_its_user_create_tables(
    postgres: PostgresServer,
) -> None:
    """Scribe's README set-up lets its user create tables in the new database.

    TimescaleDB is there; a second database reuses the user the first one made.
    """
    connection = postgres.connection
    assert SCRIBE.user is not None
    user, password = SCRIBE.user
    as_scribe = PostgresConnection(connection.port, user, password)
    for database in ("bench_scribe_1", "bench_scribe_2"):
        connection.create_database(database, SCRIBE.setup)
        as_scribe.sql("CREATE TABLE states_raw (time timestamptz)", database)
        extensions = connection.sql("SELECT extname FROM pg_extension", database)
        assert ["timescaledb"] in extensions


def test_stop_removes_the_data() -> None:
    """A stopped server's directory is gone, and so is its process."""
    with sockets_allowed(), running_postgres() as server:
        directory, pid = server.directory, server.pid
        assert (directory / "data" / "PG_VERSION").exists()
    assert not directory.exists()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def made_folder(root: Path) -> Path:
    """A component folder with a file, an executable, a symlink and a subfolder."""
    folder = root / "comp"
    (folder / "sub").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"domain": "x"}\n')
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o755)
    (folder / "sub" / "a.py").write_text("x = 1\n")
    (folder / "sub.py").write_text("x = 1\n")
    (folder / "link").symlink_to("manifest.json")
    return folder


def test_git_tree_id_is_gits(tmp_path: Path) -> None:
    """The id is git's own; bytecode Python leaves beside the code does not count."""
    folder = made_folder(tmp_path)
    assert git_tree_id(folder) == MADE_FOLDER_TREE
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "a.cpython-314.pyc").write_bytes(b"\0")
    (folder / "empty").mkdir()  # git keeps no empty folder
    assert git_tree_id(folder) == MADE_FOLDER_TREE
    (folder / "sub" / "a.py").write_text("x = 2\n")
    assert git_tree_id(folder) != MADE_FOLDER_TREE


def test_peer_modes_say_what_is_missing(tmp_path: Path) -> None:
    """No directory, no folder, or not the pinned release: each says what to do.

    The message names what to put where, and how.
    """
    assert peer_folders(None, ("a", "c")) == {}
    with pytest.raises(PeerError) as no_dir:
        peer_folders(None, ("c", "s", "t"))
    for text in ("--peers-dir", ENVIRONMENT, SCRIBE.commit, LTSS.commit, "ltss/"):
        assert text in str(no_dir.value)
    with pytest.raises(PeerError) as missing:
        peer_folders(tmp_path, ("t",))
    assert f"{tmp_path}/ltss/custom_components/ltss/manifest.json" in str(missing.value)
    assert f"archive {LTSS.commit} | tar -x -C {tmp_path}/ltss" in str(missing.value)
    folder = SCRIBE.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text('{"domain": "scribe"}')
    with pytest.raises(PeerError, match=f"is not Scribe {SCRIBE.release}"):
        peer_folders(tmp_path, ("s",))


def test_command_line_refuses_peer_modes_without_their_code(tmp_path: Path) -> None:
    """scripts/bench --modes s without a peers directory fails at once, saying why."""
    env = {k: v for k, v in os.environ.items() if k != ENVIRONMENT}
    answer = subprocess.run(
        [sys.executable, "-m", "scripts.bench_ha", "--modes", "l,s", "--events", "10"],
        cwd=REPO,
        env={**env, "HA_BENCH_ARTIFACTS": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 1
    assert "need the peers' code" in answer.stderr
    assert SCRIBE.repository in answer.stderr


@pytest.mark.parametrize("mode", sorted(PEERS))
def test_a_peer_run_is_set_up_as_its_readme_says(tmp_path: Path, mode: str) -> None:
    """YAML with only the database URL, the component linked in custom_components/."""
    peer = PEERS[mode]
    spec = RunSpec(
        mode=mode,  # type: ignore[arg-type]
        scenario="burst",
        repeat=0,
        events=1,
        entities=1,
        influx_url="",
        influx_username="",
        influx_password="",
        database="bench_burst",
        config_dir=str(tmp_path / "run" / "config"),
        http_port=8123,
        rate=1.0,
        outage_seconds=1.0,
        ingestor_options={},
        postgres_port=5999,
        peer_folder=str(tmp_path / "peer"),
    )
    user = "scribe:password" if peer.user else "bench:bench-password"
    assert spec.peer_url == f"postgresql://{user}@127.0.0.1:5999/bench_burst"
    counter = spec.counter()
    assert isinstance(counter, RowCounter)
    write_config_dir(
        Path(spec.config_dir),
        spec.mode,
        InfluxConnection(""),
        spec.database,
        http_port=spec.http_port,
        ingestor_options={},
        recorder=True,
        peer=(spec.peer_url, Path(spec.peer_folder)),
    )
    config = Path(spec.config_dir)
    yaml = (config / "configuration.yaml").read_text()
    assert yaml.endswith(f"\nrecorder:\n\n{peer.domain}:\n  db_url: {spec.peer_url}\n")
    link = config / "custom_components" / peer.domain
    assert link.readlink() == tmp_path / "peer"
    assert not (config / ".storage" / "core.config_entries").exists()
    assert Servers().of(mode) is None


def test_ha_ingestor_is_loaded_from_the_config_dir(tmp_path: Path) -> None:
    """HA Ingestor, too, is where a user has it: the config dir's custom_components."""
    config = tmp_path / "run" / "config"
    write_config_dir(
        config,
        "c",
        InfluxConnection("http://127.0.0.1:8086"),
        "bench",
        http_port=8123,
        ingestor_options={},
    )
    link = config / "custom_components" / "ha_ingestor"
    assert link.readlink() == INTEGRATION
    entries = json.loads((config / ".storage" / "core.config_entries").read_text())
    assert entries["data"]["entries"][0]["domain"] == "ha_ingestor"


def test_log_findings_counts_what_names_the_exporter(tmp_path: Path) -> None:
    """Warnings and errors from the exporter's logger or naming it, numbers as N."""
    log = tmp_path / "home-assistant.log"
    log.write_text(
        "2026-12-03 07:20:00.100 WARNING (MainThread) [homeassistant.loader] We found"
        " a custom integration scribe which has not been tested\n"
        "2026-12-03 07:20:01.100 ERROR (MainThread) [custom_components.scribe.writer]"
        " Buffering 500 items\n"
        "Traceback (most recent call last):\n"
        "2026-12-03 07:20:02.100 ERROR (MainThread) [custom_components.scribe.writer]"
        " Buffering 1000 items\n"
        "2026-12-03 07:20:03.100 INFO (MainThread) [custom_components.scribe] started\n"
        "2026-12-03 07:20:04.100 WARNING (MainThread) [homeassistant.core] other\n"
    )
    assert log_findings(log, "scribe") == {
        "We found a custom integration scribe which has not been tested": 1,
        "Buffering N items": 2,
    }
    assert log_findings(tmp_path / "absent.log", "scribe") == {}
