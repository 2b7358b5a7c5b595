"""The registry mirror when its file fails: deleted, read-only, locked, corrupt, foreign.

Each fault is real: the file is really deleted, really made unwritable (the immutable
flag, which stops root too, and writes through already open files), really locked by
another connection. Home Assistant goes on, a repair issue names the file and the
error, and the mirror is exact again once the file can be written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
from datetime import timedelta
from pathlib import Path
import sqlite3
import threading
import time

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er, label_registry as lr
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.ha_ingestor.mirror.mirror import RETRY_INTERVAL, RegistryMirror

from .test_registry_mirror import (
    ENTRY_ID,
    add_config_entry,
    assert_mirrored,
    expected_content,
    immutable,
    issue,
    mirror_path,
    populate,
    read_content,
    running_mirror,
    settle,
)


@pytest.fixture
def config_entry_id(hass: HomeAssistant) -> str:
    """A config entry that devices and entities can belong to."""
    return add_config_entry(hass)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's mirror lives."""
    return mirror_path(tmp_path)


@pytest.fixture
async def mirror(hass: HomeAssistant, path: Path) -> AsyncIterator[RegistryMirror]:
    """A started mirror at `path`, stopped after the test."""
    async with running_mirror(hass, path) as mirror:
        yield mirror


async def retry_now(hass: HomeAssistant) -> None:
    """Let the retry interval pass, and the mirror do what it then does."""
    async_fire_time_changed(
        hass, dt_util.utcnow() + RETRY_INTERVAL + timedelta(seconds=1)
    )
    await settle(hass)


def _files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")]


async def assert_failing(
    hass: HomeAssistant, mirror: RegistryMirror, error: str
) -> None:
    """The mirror is down with `error`, and a repair issue says so."""
    assert not mirror.healthy
    assert mirror.last_error is not None
    assert error in mirror.last_error
    raised = issue(hass)
    assert raised is not None
    assert raised.translation_key == "mirror_unavailable"
    assert raised.translation_placeholders == {
        "path": str(mirror.path),
        "error": mirror.last_error,
    }


@pytest.mark.parametrize("suffixes", [("",), ("", "-wal", "-shm")])
async def test_deleted_file_is_written_anew_at_the_next_change(
    hass: HomeAssistant,
    config_entry_id: str,
    mirror: RegistryMirror,
    path: Path,
    suffixes: tuple[str, ...],
) -> None:
    """A deleted file is noticed before the next write and rebuilt in full."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    for suffix in suffixes:
        path.with_name(path.name + suffix).unlink()

    lr.async_get(hass).async_create("After deletion")
    await assert_mirrored(hass, mirror)
    assert "after_deletion" in (await read_content(path))["labels"]
    # Written anew at once: nothing for the user to repair.
    assert issue(hass) is None


async def test_deleted_file_is_noticed_without_changes(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """With no registry change at all, the periodic check brings the file back."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    await asyncio.to_thread(path.unlink)
    await retry_now(hass)
    assert await asyncio.to_thread(path.exists)
    await assert_mirrored(hass, mirror)


async def test_deleted_folder_raises_an_issue_until_it_is_back(
    hass: HomeAssistant, config_entry_id: str, tmp_path: Path
) -> None:
    """A file that cannot be created: an issue, and a full resync once it can."""
    path = mirror_path(tmp_path)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        for file in _files(path):
            file.unlink()
        path.parent.rmdir()
        populate(hass, config_entry_id)
        await settle(hass)
        await assert_failing(hass, mirror, "unable to open database file")

        path.parent.mkdir()
        await retry_now(hass)
        await assert_mirrored(hass, mirror)
        assert issue(hass) is None
    finally:
        await mirror.async_stop()


async def test_file_made_read_only_while_running(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """Writes refused through the open file: an issue, then a resync when allowed."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    # The database and its log: commits go to the log.
    with immutable(path, path.with_name(path.name + "-wal")):
        er.async_get(hass).async_update_entity("light.garden_lamp", name="Lamp")
        await settle(hass)
        await assert_failing(hass, mirror, "")
        failed_with = mirror.last_error
        # Retries fail as long as the file stays read-only; changes go on meanwhile.
        lr.async_get(hass).async_create("While read-only")
        await retry_now(hass)
        await assert_failing(hass, mirror, "")
    assert failed_with is not None
    assert "disk I/O error" in failed_with or "readonly" in failed_with

    await retry_now(hass)
    await assert_mirrored(hass, mirror)
    assert issue(hass) is None
    content = await read_content(path)
    assert content["entities"]["light.garden_lamp"]["name"] == "Lamp"
    assert "while_read_only" in content["labels"]


async def test_read_only_at_start_does_not_stop_the_start(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A folder nothing can be created in: async_start returns, the issue is raised."""
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    with immutable(path.parent):
        await mirror.async_start()
        try:
            await assert_failing(hass, mirror, "unable to open database file")
            assert not await asyncio.to_thread(path.exists)
        except BaseException:
            await mirror.async_stop()
            raise
    try:
        await retry_now(hass)
        await assert_mirrored(hass, mirror)
        assert issue(hass) is None
    finally:
        await mirror.async_stop()


async def test_existing_file_made_read_only_while_stopped(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """An existing mirror that cannot be opened for writing is reported, not used."""
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    await mirror.async_stop()
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    try:
        with immutable(path):
            await mirror.async_start()
            await assert_failing(hass, mirror, "readonly")
        await retry_now(hass)
        await assert_mirrored(hass, mirror)
    finally:
        await mirror.async_stop()


@contextlib.contextmanager
def _state_change_counter(hass: HomeAssistant) -> Iterator[list[Event]]:
    seen: list[Event] = []

    @callback
    def count(event: Event) -> None:
        seen.append(event)

    unsubscribe = hass.bus.async_listen("state_changed", count)
    try:
        yield seen
    finally:
        unsubscribe()


async def test_locked_by_another_program(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """Another connection holding the write lock: Home Assistant does not wait for it."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    locker = await asyncio.to_thread(
        sqlite3.connect, path, isolation_level=None, check_same_thread=False
    )
    try:
        await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
        er.async_get(hass).async_update_entity("light.garden_lamp", name="Locked")
        await asyncio.sleep(0.1)
        # The mirror waits for the lock in its own thread, and the event loop runs
        # on: state changes are handled at once (the ingestion path).
        waiting = mirror._task
        assert waiting is not None
        assert not waiting.done()
        with _state_change_counter(hass) as seen:
            started = time.perf_counter()
            for i in range(100):
                hass.states.async_set("sensor.busy", str(i))
            await hass.async_block_till_done()
            assert len(seen) == 100
            assert time.perf_counter() - started < 0.5
        assert not waiting.done()

        await settle(hass)
        await assert_failing(hass, mirror, "database is locked")
        # Still locked at the retry: still failing, one issue.
        await retry_now(hass)
        await assert_failing(hass, mirror, "database is locked")
    finally:
        await asyncio.to_thread(locker.execute, "ROLLBACK")
        await asyncio.to_thread(locker.close)

    await retry_now(hass)
    await assert_mirrored(hass, mirror)
    assert issue(hass) is None
    assert (await read_content(path))["entities"]["light.garden_lamp"]["name"] == (
        "Locked"
    )


async def test_corrupt_file_until_deleted(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A damaged file is reported, left alone, and replaced once the user deletes it."""
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    await mirror.async_stop()
    # Overwrite page 1 after the header: sqlite_schema's root page.
    with path.open("r+b") as file:
        file.seek(100)
        file.write(b"\xa5" * 3_000)
    damaged = await asyncio.to_thread(path.read_bytes)

    mirror = RegistryMirror(hass, ENTRY_ID, path)
    try:
        await mirror.async_start()
        await assert_failing(hass, mirror, "malformed")
        await retry_now(hass)
        await assert_failing(hass, mirror, "malformed")
        assert await asyncio.to_thread(path.read_bytes) == damaged

        await asyncio.to_thread(path.unlink)
        await retry_now(hass)
        await assert_mirrored(hass, mirror)
        assert issue(hass) is None
    finally:
        await mirror.async_stop()


async def test_another_programs_file_is_never_written(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A file that is not a mirror, found at start or swapped in later, stays as it is."""
    content = b"homeassistant:\n  name: Home\n" * 100
    await asyncio.to_thread(path.write_bytes, content)
    populate(hass, config_entry_id)
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    try:
        await assert_failing(hass, mirror, "file is not a database")
        assert await asyncio.to_thread(path.read_bytes) == content
        assert sorted(file.name for file in path.parent.iterdir()) == [path.name]

        await asyncio.to_thread(path.unlink)
        await retry_now(hass)
        await assert_mirrored(hass, mirror)

        # Replaced while running by another program's database.
        other = path.with_name("other.db")
        connection = sqlite3.connect(other)
        connection.execute("CREATE TABLE states (state_id INTEGER PRIMARY KEY)")
        connection.close()
        other.replace(path)
        lr.async_get(hass).async_create("After swap")
        await settle(hass)
        await assert_failing(hass, mirror, "another program's SQLite database")
        assert await asyncio.to_thread(_tables, path) == ["states"]
    finally:
        await mirror.async_stop()
    assert expected_content(hass)["labels"]["after_swap"]


def _tables(path: Path) -> list[str]:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("SELECT name FROM sqlite_schema")]
    finally:
        connection.close()


async def test_stop_while_failing_closes_everything(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """Stopping a failing mirror removes its issue and leaves no thread or timer."""
    await asyncio.to_thread(path.write_bytes, b"not a database, not empty")
    threads = threading.active_count()
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    await mirror.async_start()
    assert issue(hass) is not None
    populate(hass, config_entry_id)
    await mirror.async_stop()
    assert issue(hass) is None
    assert threading.active_count() == threads
