"""Whether a path the user typed may hold the mirror, for the config and options flows."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import sqlite3

from homeassistant.core import HomeAssistant
import pytest

from custom_components.ha_ingestor.mirror.path_check import (
    MIRROR_PATH_IS_DIRECTORY,
    MIRROR_PATH_NEWER_VERSION,
    MIRROR_PATH_NOT_SQLITE,
    MIRROR_PATH_NOT_WRITABLE,
    MIRROR_PATH_OTHER_DATABASE,
    validate_mirror_path,
)
from custom_components.ha_ingestor.mirror.tables import FILE_VERSION

from .conftest import immutable, run_sql, running_mirror


async def _validate(path: Path) -> str | None:
    return await asyncio.to_thread(validate_mirror_path, str(path))


async def test_validate_accepts_new_empty_and_own_files(
    hass: HomeAssistant, path: Path
) -> None:
    """A new path, an empty file, an SQLite file without tables, or a mirror: taken."""
    folder = path.parent
    new = folder / "new.db"
    assert await _validate(new) is None
    # Nothing is left behind by the check.
    assert os.listdir(folder) == []

    empty = folder / "empty.db"
    empty.touch()
    assert await _validate(empty) is None

    no_tables = folder / "no_tables.db"
    await asyncio.to_thread(run_sql, no_tables, "PRAGMA user_version = 7")
    assert await _validate(no_tables) is None

    mirror_file = folder / "mirror.db"
    async with running_mirror(hass, mirror_file):
        # While in use, too: readers and the check never block the writer.
        assert await _validate(mirror_file) is None
    assert await _validate(mirror_file) is None
    assert sorted(os.listdir(folder)) == ["empty.db", "mirror.db", "no_tables.db"]


async def test_validate_refuses_what_cannot_be_used(path: Path) -> None:
    """Folders, places nothing can be written, and other programs' files: refused."""
    folder = path.parent
    assert await _validate(folder) == MIRROR_PATH_IS_DIRECTORY
    assert await _validate(folder / "missing" / "registry.db") == (
        MIRROR_PATH_NOT_WRITABLE
    )

    locked_folder = folder / "read-only"
    locked_folder.mkdir()
    with immutable(locked_folder):
        assert await _validate(locked_folder / "registry.db") == (
            MIRROR_PATH_NOT_WRITABLE
        )

    read_only = folder / "read-only.db"
    read_only.touch()
    with immutable(read_only):
        assert await _validate(read_only) == MIRROR_PATH_NOT_WRITABLE

    text = folder / "configuration.yaml"
    text.write_text("homeassistant:\n")
    assert await _validate(text) == MIRROR_PATH_NOT_SQLITE
    assert text.read_text() == "homeassistant:\n"

    fake = folder / "fake.db"
    fake.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    assert await _validate(fake) == MIRROR_PATH_NOT_SQLITE

    fifo = folder / "fifo"
    os.mkfifo(fifo)
    assert await _validate(fifo) == MIRROR_PATH_NOT_SQLITE

    recorder = folder / "home-assistant_v2.db"
    await asyncio.to_thread(
        run_sql, recorder, "CREATE TABLE states (state_id INTEGER PRIMARY KEY)"
    )
    assert await _validate(recorder) == MIRROR_PATH_OTHER_DATABASE

    with pytest.raises(ValueError, match="absolute"):
        validate_mirror_path("registry.db")


async def test_validate_refuses_a_newer_mirror(hass: HomeAssistant, path: Path) -> None:
    """A mirror of a newer file version than this code knows is refused."""
    async with running_mirror(hass, path):
        pass
    await asyncio.to_thread(run_sql, path, f"PRAGMA user_version = {FILE_VERSION + 1}")
    assert await _validate(path) == MIRROR_PATH_NEWER_VERSION


async def test_validate_does_not_wait_for_other_programs(
    hass: HomeAssistant, path: Path
) -> None:
    """A lock held by another program does not hold the check up."""
    async with running_mirror(hass, path):
        pass
    locker = await asyncio.to_thread(
        sqlite3.connect, path, isolation_level=None, check_same_thread=False
    )
    try:
        await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
        assert await _validate(path) is None
    finally:
        await asyncio.to_thread(locker.close)
