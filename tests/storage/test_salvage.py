"""A damaged spool, against real files with bytes overwritten in their pages.

It is moved aside whole, a new spool opens at once, and every point that can be
read is copied into it, before the points stored meanwhile; those that cannot be
read are counted.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from custom_components.ha_ingestor.storage.salvage import DAMAGED, open_spool
from custom_components.ha_ingestor.storage.spool import (
    NO_DROPS,
    Spool,
    SpoolDamagedError,
    SpoolError,
)

from ..damage import leaves, overwrite_page

LARGE = 10**9
BASE_US = 1_760_000_000_000_000


def _line(i: int) -> str:
    """Point `i`, about 500 bytes: eight fit in a page."""
    return f'big,entity_id=e{i:06d} text="{"x" * 450}" {BASE_US + i}'


async def _all_lines(spool: Spool) -> list[str]:
    return [line for _, line in await spool.oldest(spool.count + 1)]


def _make_other_database(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE t (x)")
    finally:
        connection.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _damaged_spool(path: Path, count: int) -> list[range]:
    """A closed spool of `count` points with two leaves of points overwritten.

    It also holds two quarantined points, two entities' last states and the stats.
    Returns the ids the damaged leaves held.
    """
    spool = await Spool.open(path, LARGE)
    spool.keep_stats(lambda _drops: {"points_written": 42})
    await spool.append(
        [_line(i) for i in range(1, count + 1)],
        last_states={"sensor.a": "fa", "sensor.b": "fb"},
        save_stats=True,
    )
    await spool.quarantine([_line(-1), _line(-2)], "field type conflict")
    await spool.close()
    found = await asyncio.to_thread(leaves, path, "points")
    damaged = [found[len(found) // 3], found[2 * len(found) // 3]]
    for page, _ids in damaged:
        await asyncio.to_thread(overwrite_page, path, page)
    return [ids for _page, ids in damaged]


async def test_a_damaged_spool_is_set_aside_and_what_is_readable_copied(
    tmp_path: Path,
) -> None:
    """Two leaves overwritten: the file moves aside unchanged, the rest is copied.

    The new spool opens at once, with the old last states and stats; points stored
    meanwhile stay after the salvaged ones, which keep their order; the points of
    the damaged leaves are counted as lost.
    """
    path = tmp_path / "spool.db"
    lost_ids = await _damaged_spool(path, 3_000)
    lost = {i for ids in lost_ids for i in ids}
    with pytest.raises(SpoolDamagedError, match=r"damaged"):
        await Spool.open(path, LARGE)

    spool, salvage = await open_spool(path, LARGE)
    try:
        assert salvage is not None
        assert DAMAGED in salvage.moved_to.name
        assert await asyncio.to_thread(salvage.moved_to.exists)
        digest = await asyncio.to_thread(_digest, salvage.moved_to)
        # A new spool at the path, with the old last states and stats already.
        assert (spool.count, spool.quarantined) == (0, 0)
        assert await spool.last_states() == {"sensor.a": "fa", "sensor.b": "fb"}
        assert await spool.stats() == {"points_written": 42}
        # Recording goes on meanwhile.
        new = [_line(i) for i in range(5_000, 5_010)]
        await spool.append(new)

        done_before = salvage.done
        await salvage.run(spool)
        assert not done_before
        assert salvage.done
        assert (salvage.saved, salvage.lost) == (3_000 - len(lost), len(lost))
        assert (salvage.quarantined, spool.take_drops()) == (2, NO_DROPS)
        readable = [_line(i) for i in range(1, 3_001) if i not in lost]
        assert await _all_lines(spool) == [*readable, *new]
        assert [p.line for p in await spool.quarantined_points(10)] == [
            _line(-1),
            _line(-2),
        ]
        # Only read: the damaged file is as it was, to be examined.
        assert await asyncio.to_thread(_digest, salvage.moved_to) == digest
    finally:
        await spool.close()

    # What was copied is in the file: a reopened spool holds the same.
    spool = await Spool.open(path, LARGE)
    try:
        assert await _all_lines(spool) == [*readable, *new]
    finally:
        await spool.close()


async def test_points_read_before_a_salvage_are_removed_without_it(
    tmp_path: Path,
) -> None:
    """Salvaged points go below every id handed out, before every point.

    A removal of what was read before, or of a slow batch's copy, never reaches them.
    """
    spool = await Spool.open(tmp_path / "spool.db", LARGE)
    try:
        copy = await spool.append([_line(i) for i in range(10, 15)])
        read = await spool.oldest(3)
        await spool.prepend([_line(i) for i in range(1, 4)])
        assert spool.take_drops() == NO_DROPS
        await spool.prepend([_line(0)])
        assert await spool.remove_ids(range(read[0][0], read[-1][0] + 1)) == 3
        assert await spool.remove_ids(copy) == 2
        assert await _all_lines(spool) == [_line(i) for i in range(4)]
        assert spool.oldest_time is not None
        assert spool.oldest_time.microsecond == (BASE_US % 10**6)
    finally:
        await spool.close()


async def test_a_spool_whose_header_is_lost_is_set_aside_with_nothing_to_copy(
    tmp_path: Path,
) -> None:
    """Page 1 overwritten: no SQLite file any more. Nothing read, how much unknown."""
    path = tmp_path / "spool.db"
    await _damaged_spool(path, 100)
    await asyncio.to_thread(overwrite_page, path, 1)
    spool, salvage = await open_spool(path, LARGE)
    try:
        assert salvage is not None
        assert "not a database" in salvage.cause
        await salvage.run(spool)
        assert (salvage.saved, salvage.lost, salvage.quarantined) == (0, None, 0)
        assert await spool.last_states() == {}
        await spool.append([_line(1)])
        assert spool.count == 1
    finally:
        await spool.close()


async def test_the_points_in_a_damaged_spools_log_are_salvaged_too(
    tmp_path: Path,
) -> None:
    """Damage found after a crash: the log moves aside with the file, and is read.

    The process that wrote the last points was killed: they are in the log only.
    """
    path = tmp_path / "spool.db"
    lost_ids = await _damaged_spool(path, 2_000)
    lost = {i for ids in lost_ids for i in ids}
    script = textwrap.dedent(
        """
        import os, sqlite3, sys

        # Written in the spool's log (it is in WAL mode), then killed.
        connection = sqlite3.connect(sys.argv[1], isolation_level=None)
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        connection.executemany(
            "INSERT INTO points (line) VALUES (?)",
            [(f"log,n={i} v=1 {i}",) for i in range(50)],
        )
        os._exit(0)
        """
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert await asyncio.to_thread(path.with_name(path.name + "-wal").exists)

    spool, salvage = await open_spool(path, LARGE)
    try:
        assert salvage is not None
        assert await asyncio.to_thread(
            salvage.moved_to.with_name(salvage.moved_to.name + "-wal").exists
        )
        await salvage.run(spool)
        assert (salvage.saved, salvage.lost) == (2_050 - len(lost), len(lost))
        lines = await _all_lines(spool)
        assert lines[-50:] == [f"log,n={i} v=1 {i}" for i in range(50)]
    finally:
        await spool.close()


async def test_a_spool_that_is_fine_opens_as_it_is(tmp_path: Path) -> None:
    """No damage, nothing to salvage; other errors are raised as they are."""
    path = tmp_path / "spool.db"
    spool, salvage = await open_spool(path, LARGE)
    await spool.close()
    assert salvage is None
    await asyncio.to_thread(_make_other_database, tmp_path / "other.db")
    with pytest.raises(SpoolError, match="not a spool") as raised:
        await open_spool(tmp_path / "other.db", LARGE)
    assert not isinstance(raised.value, SpoolDamagedError)
