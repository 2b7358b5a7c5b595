"""The on-disk spool, against real SQLite files: order, cap, reopening, crashes, quarantine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import os
from pathlib import Path
import sqlite3
import subprocess
import sys
import textwrap
import threading
from typing import Any, Self
from unittest.mock import patch
import uuid

import aiosqlite
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.storage import spool as spool_module
from custom_components.ha_ingestor.storage.spool import (
    NO_DROPS,
    SCHEMA_VERSION,
    Drops,
    Spool,
    SpoolDiskFullError,
    SpoolError,
    lines_span,
)

from ..spool_file import remove_read, saved_stats
from ..tmpfs import fill, free_bytes, tmpfs

REPOSITORY = Path(__file__).parents[2]

LARGE = 10**9
BASE_US = 1_760_000_000_000_000


def _line(i: int) -> str:
    """Point `i`, all of one size: a non-ASCII measurement, so bytes and characters differ."""
    return f"°C,domain=sensor,entity_id=t{i:06d} value={i % 10}.5 {BASE_US + i}"


def _time(time_us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=time_us)


def _bytes(lines: list[str]) -> int:
    return sum(len(line.encode()) for line in lines)


def _point(i: int) -> str:
    """A point of sensor.power, as the integration writes it."""
    return f"W,domain=sensor,entity_id=power value={i}.0 {1_700_000_000_000_000 + i}"


def _big(i: int) -> str:
    """Point `i` of about 1,000 bytes: four fit in a page."""
    return f'big,entity_id=e{i:06d} text="{"x" * 950}" {BASE_US + i}'


def _limit(pages: int) -> int:
    """The max_bytes that leaves the database `pages` pages of 4 KiB."""
    return (
        spool_module.wal_bytes(4096)
        + spool_module._SHM_BYTES
        + spool_module.RESERVE_BYTES
        + pages * 4096
    )


async def _db_pages(path: Path) -> tuple[int, int]:
    """The database's pages and free pages, as another connection reads them."""
    ((pages, free),) = await _sqlite(
        path,
        "SELECT (SELECT page_count FROM pragma_page_count()),"
        " (SELECT freelist_count FROM pragma_freelist_count())",
    )
    assert isinstance(pages, int)
    assert isinstance(free, int)
    return pages, free


async def _fill(spool: Spool) -> list[str]:
    """Append big lines until the oldest are dropped; return every line appended.

    Takes the drops, so that those of what follows can be told apart.
    """
    lines: list[str] = []
    while True:
        batch = [_big(len(lines) + i) for i in range(20)]
        lines += batch
        await spool.append(batch)
        if spool.take_drops().points:
            return lines


async def _all_lines(spool: Spool) -> list[str]:
    return [line for _, line in await spool.oldest(spool.count + 1)]


async def _sqlite(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Run `sql` on a connection of its own, in a thread, as another program would."""

    def run() -> list[tuple[object, ...]]:
        connection = sqlite3.connect(path)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    return await asyncio.to_thread(run)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's spool lives: a folder of its own."""
    folder = tmp_path / "spool"
    folder.mkdir()
    return folder / "spool.db"


@pytest.fixture
async def spool(path: Path) -> AsyncIterator[Spool]:
    """An open spool without a practical size limit, closed after the test."""
    spool = await Spool.open(path, LARGE)
    yield spool
    await spool.close()


async def test_new_spool_is_empty(spool: Spool) -> None:
    """Counters start at zero and reading an empty spool returns nothing."""
    assert (spool.count, spool.size_bytes) == (0, 0)
    assert (spool.oldest_time, spool.quarantined) == (None, 0)
    assert await spool.oldest(10) == []
    assert await spool.remove_ids(range(1, 101)) == 0


async def test_order_kept_across_many_appends(spool: Spool) -> None:
    """Batches of any size come back in the order they were appended, ids ascending."""
    lines = [_line(i) for i in range(5_000)]
    start = 0
    for size in (1, 7, 1_000, 2, 3_000, 990):
        await spool.append(lines[start : start + size])
        start += size
    assert start == len(lines)
    assert await spool.append([]) == range(0)
    assert spool.take_drops() == NO_DROPS

    points = await spool.oldest(10_000)
    assert [line for _, line in points] == lines
    ids = [point_id for point_id, _ in points]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert spool.count == len(lines)
    assert spool.size_bytes == _bytes(lines)
    assert [line for _, line in await spool.oldest(3)] == lines[:3]
    assert await spool.oldest(0) == []
    with pytest.raises(ValueError, match="negative"):
        await spool.oldest(-1)


async def test_concurrent_appends_all_kept(spool: Spool) -> None:
    """Appends from several tasks at once are serialized, none lost."""
    batches = [[_line(i * 100 + j) for j in range(100)] for i in range(20)]
    await asyncio.gather(*(spool.append(batch) for batch in batches))
    stored = await _all_lines(spool)
    assert sorted(stored) == sorted(line for batch in batches for line in batch)
    # Each batch is stored whole, in its own order.
    for batch in batches:
        start = stored.index(batch[0])
        assert stored[start : start + len(batch)] == batch


async def test_survives_close_and_reopen(path: Path) -> None:
    """A closed and reopened spool holds the same points, with the same ids."""
    spool = await Spool.open(path, LARGE)
    lines = [_line(i) for i in range(1_500)]
    await spool.append(lines)
    points = await spool.oldest(2_000)
    await spool.close()

    spool = await Spool.open(path, LARGE)
    try:
        assert await spool.oldest(2_000) == points
        assert (spool.count, spool.size_bytes) == (len(lines), _bytes(lines))
    finally:
        await spool.close()


async def test_removing_what_was_read_keeps_what_came_after(spool: Spool) -> None:
    """Points appended after a read stay when what was read is removed."""
    await spool.append([_line(i) for i in range(10)])
    points = await spool.oldest(4)
    await spool.append([_line(i) for i in range(10, 15)])

    assert await remove_read(spool, points) == 4
    assert await _all_lines(spool) == [_line(i) for i in range(4, 15)]
    assert spool.count == 11
    assert spool.size_bytes == _bytes([_line(i) for i in range(4, 15)])
    # Removing the same range again is harmless.
    assert await remove_read(spool, points) == 0


async def test_ids_never_reused_after_emptying(path: Path) -> None:
    """An emptied spool, reopened or not, hands out new ids: a stale id removes nothing."""
    spool = await Spool.open(path, LARGE)
    await spool.append([_line(0), _line(1)])
    points = await spool.oldest(2)
    await remove_read(spool, points)
    await spool.close()

    spool = await Spool.open(path, LARGE)
    try:
        await spool.append([_line(2)])
        assert (await spool.oldest(1))[0][0] > points[-1][0]
        assert await remove_read(spool, points) == 0
        assert spool.count == 1
    finally:
        await spool.close()


async def test_the_limit_drops_the_oldest_as_few_as_make_room(path: Path) -> None:
    """Past its pages the oldest points go first, about a page's worth, and are counted.

    What stays is always the newest of what was appended, in order.
    """
    spool = await Spool.open(path, _limit(100))
    lines = [_big(i) for i in range(1_500)]
    dropped = 0
    try:
        for end in range(50, len(lines) + 1, 50):
            await spool.append(lines[end - 50 : end])
            dropped += spool.take_drops().points
            stored = await _all_lines(spool)
            assert stored == lines[end - len(stored) : end]
            assert dropped == end - len(stored)
            assert (spool.count, spool.size_bytes) == (len(stored), _bytes(stored))
            assert spool.oldest_time == _time(BASE_US + end - len(stored))
            assert (await _db_pages(path))[0] <= 100
        # Four lines a page, in the pages the other tables leave: hardly any waste.
        assert len(stored) >= 4 * (100 - 12)
        assert spool.fill > 0.96
    finally:
        await spool.close()


async def test_a_large_append_goes_in_transactions_of_a_few_statements(
    path: Path,
) -> None:
    """12,001 lines: a transaction per chunk of CHUNK_BYTES, a few statements each.

    Bounded transactions keep the write-ahead log within its room. Each statement
    makes SQLite's thread take the GIL back, which a busy event loop holds for up
    to the switch interval: one statement per line kept the spool slower than a
    burst of state changes, which then waited in memory.
    """
    lines = [_line(i) for i in range(12_001)]
    spool = await Spool.open(path, LARGE)
    statements: list[str] = []
    try:
        await spool._db().set_trace_callback(statements.append)
        assert await spool.append(lines) == range(1, 12_002)
        assert spool.take_drops() == NO_DROPS
        transactions = "\n".join(statements).split("BEGIN IMMEDIATE")[1:]
        assert await _all_lines(spool) == lines
    finally:
        await spool.close()
    weight = sum(len(line) + spool_module._ROW_BYTES for line in lines)
    assert len(transactions) == -(-weight // spool_module.CHUNK_BYTES)
    # INSERTs of 5,000 lines; the bytes added and the pages, the pages, COMMIT; the
    # first also reads the oldest point's time. SQLite traces the pragmas the pages
    # are read with as comments.
    others = [
        [s for s in t.splitlines() if s and not s.startswith(("--", "INSERT"))]
        for t in transactions
    ]
    assert [len(statements) for statements in others] == [4] + [3] * (
        len(transactions) - 1
    )
    inserts = sum(t.count("\nINSERT") for t in transactions)
    assert inserts <= len(transactions) + len(lines) // 5_000


async def test_a_smaller_limit_applies_at_the_next_append(path: Path) -> None:
    """Reopened with a smaller max_bytes: nothing dropped by opening; then the file shrinks."""
    lines = [_big(i) for i in range(1_000)]
    spool = await Spool.open(path, LARGE)
    await spool.append(lines)
    await spool.close()
    assert (await _db_pages(path))[0] > 200

    spool = await Spool.open(path, _limit(64))
    try:
        assert spool.count == 1_000  # nothing is dropped by opening
        await spool.append([_big(1_000)])
        dropped = spool.take_drops().points
        stored = await _all_lines(spool)
        assert stored == [*lines, _big(1_000)][-len(stored) :]
        assert dropped == 1_001 - len(stored)
        assert len(stored) >= 4 * (64 - 12)
        assert (await _db_pages(path))[0] <= 64
    finally:
        await spool.close()


async def test_the_times_of_dropped_points_are_taken_once(path: Path) -> None:
    """The oldest and newest time of the points deleted for room, whatever their order.

    Ids are not in time order (a backfill's points are older than live ones), and a
    string field may end in digits just before the timestamp.
    """
    times = [BASE_US + (i * 7919) % 1_000 for i in range(1_000)]
    lines = [
        f'big,entity_id=e{i:06d} text="{"x" * 940} 12 34" {time_us}'
        for i, time_us in enumerate(times)
    ]
    spool = await Spool.open(path, _limit(64))
    try:
        assert spool.take_drops() == NO_DROPS
        for start in range(0, len(lines), 100):
            await spool.append(lines[start : start + 100])
        dropped = len(lines) - spool.count
        assert dropped > 200
        assert await _all_lines(spool) == lines[dropped:]
        assert spool.take_drops() == Drops(
            dropped, (_time(min(times[:dropped])), _time(max(times[:dropped])))
        )
        assert spool.take_drops() == NO_DROPS
        # Removing written points drops nothing.
        await remove_read(spool, await spool.oldest(10))
        assert spool.take_drops() == NO_DROPS
    finally:
        await spool.close()


async def test_reopen_recomputes_counters_exactly(path: Path) -> None:
    """After appends, drops and removals, a reopened spool counts the same from disk."""
    lines = [_big(i) + " ünïcödé ☃" * (i % 3) for i in range(600)]
    lines = [f"{line} {BASE_US + i}" for i, line in enumerate(lines)]
    spool = await Spool.open(path, _limit(64))
    await spool.append(lines[:150])
    await spool.append(lines[150:])
    assert spool.take_drops().points > 0
    points = await spool.oldest(30)
    await remove_read(spool, points)
    before = (spool.count, spool.size_bytes, spool.oldest_time, spool.used_bytes)
    remaining = await _all_lines(spool)
    await spool.close()

    spool = await Spool.open(path, _limit(64))
    try:
        assert (
            spool.count,
            spool.size_bytes,
            spool.oldest_time,
            spool.used_bytes,
        ) == before
        assert spool.size_bytes == _bytes(remaining)
    finally:
        await spool.close()


async def test_oldest_time_follows_the_head(spool: Spool) -> None:
    """oldest_time is the timestamp at the end of the longest-waiting line."""
    await spool.append([_line(5), _line(9)])
    assert spool.oldest_time == _time(BASE_US + 5)
    await remove_read(spool, await spool.oldest(1))
    assert spool.oldest_time == _time(BASE_US + 9)
    await remove_read(spool, await spool.oldest(1))
    assert (spool.count, spool.oldest_time) == (0, None)
    # Lines whose end is no timestamp a datetime can hold have no time.
    await spool.append(["no timestamp", f"m v=1 {10**20}"])
    assert (spool.count, spool.oldest_time) == (2, None)
    await remove_read(spool, await spool.oldest(1))
    assert (spool.count, spool.oldest_time) == (1, None)


async def test_unremoved_points_are_offered_again_after_a_crash(path: Path) -> None:
    """A process killed between a write and its removal: the same points come back."""
    # The child imports the integration's package from the repository (sys.argv[1]).
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        from pathlib import Path

        sys.path.insert(0, sys.argv[1])
        from custom_components.ha_ingestor.storage import spool as spool_module

        async def main():
            spool = await spool_module.Spool.open(Path(sys.argv[2]), 10**9)
            await spool.append([f"m v={i} {i}" for i in range(100)])
            written = await spool.oldest(10)
            await spool.remove_ids(range(written[0][0], written[-1][0] + 1))
            await spool.oldest(10)  # written, and then the process dies
            os._exit(0)

        asyncio.run(main())
        """
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script, str(REPOSITORY), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    spool = await Spool.open(path, LARGE)
    try:
        assert spool.count == 90
        assert await _all_lines(spool) == [f"m v={i} {i}" for i in range(10, 100)]
    finally:
        await spool.close()


async def test_cancelled_append_keeps_counters_in_step(path: Path) -> None:
    """A caller cancelled mid-append: the transaction ends, counters match the file."""
    spool = await Spool.open(path, LARGE)
    lines = [_line(i) for i in range(5_000)]
    task = asyncio.create_task(spool.append(lines))
    await asyncio.sleep(0)  # the append has started its transaction
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    counted = (spool.count, spool.size_bytes)
    await spool.close()

    assert counted == (len(lines), _bytes(lines))
    spool = await Spool.open(path, LARGE)
    try:
        assert (spool.count, spool.size_bytes) == counted
    finally:
        await spool.close()


async def test_quarantine_round_trip(path: Path) -> None:
    """Refused points leave the queue for the quarantine, survive reopening, come back."""
    spool = await Spool.open(path, LARGE)
    lines = [_line(i) for i in range(5)]
    await spool.append(lines)
    points = await spool.oldest(5)
    await spool.quarantine(lines[1:3], "field type conflict")
    await remove_read(spool, points)
    assert (spool.count, spool.size_bytes, spool.quarantined) == (0, 0, 2)
    await spool.close()

    spool = await Spool.open(path, LARGE)
    try:
        assert (spool.count, spool.quarantined) == (0, 2)
        quarantined = await spool.quarantined_points(10)
        assert [(p.line, p.error) for p in quarantined] == [
            (lines[1], "field type conflict"),
            (lines[2], "field type conflict"),
        ]
        assert all(p.added_at.tzinfo is UTC for p in quarantined)
        assert quarantined[0].added_at <= quarantined[1].added_at
        point_id, line, error, added_at = quarantined[0]  # a plain tuple, too
        assert (point_id, line, error, added_at) == quarantined[0]

        # Quarantined points never count against the queue's cap.
        await spool.quarantine([_line(99)], "unparsable")
        assert (spool.count, spool.size_bytes, spool.quarantined) == (0, 0, 3)

        assert await spool.release_quarantine([quarantined[1].id, 12345]) == 1
        assert spool.take_drops() == NO_DROPS
        assert (spool.count, spool.quarantined) == (1, 2)
        assert await _all_lines(spool) == [lines[2]]
        assert spool.size_bytes == _bytes([lines[2]])
        assert [p.line for p in await spool.quarantined_points(10)] == [
            lines[1],
            _line(99),
        ]
        assert [p.line for p in await spool.quarantined_points(1)] == [lines[1]]
        assert await spool.release_quarantine([]) == 0
    finally:
        await spool.close()


async def test_quarantined_points_take_room_from_the_oldest_waiting(
    path: Path,
) -> None:
    """The quarantine counts against max_bytes: the oldest waiting make way for it.

    Released again, its points only move within the file: they are queued after the
    points waiting, which mostly stay.
    """
    spool = await Spool.open(path, _limit(64))
    try:
        waiting = await _fill(spool)
        before = await _all_lines(spool)
        refused = [_big(i) for i in range(10_000, 10_020)]
        await spool.quarantine(refused, "field type conflict")
        dropped = spool.take_drops().points
        stored = await _all_lines(spool)
        assert dropped > 0
        assert stored == before[dropped:] == waiting[-len(stored) :]
        assert (await _db_pages(path))[0] <= 64
        ids = [point.id for point in await spool.quarantined_points(100)]

        assert await spool.release_quarantine([*ids[:10], 12345]) == 10
        after = await _all_lines(spool)
        assert after == [*stored[spool.take_drops().points :], *refused[:10]]
        assert (spool.count, spool.size_bytes, spool.quarantined) == (
            len(after),
            _bytes(after),
            10,
        )
        assert spool.oldest_time == _time(int(after[0].rpartition(" ")[2]))
        assert [p.line for p in await spool.quarantined_points(100)] == refused[10:]
        assert (await _db_pages(path))[0] <= 64
    finally:
        await spool.close()


async def test_released_points_beyond_the_limit_keep_the_newest(path: Path) -> None:
    """More released than fits: every waiting point goes, then the released ones' first.

    Quarantined points are never dropped for room, so the quarantine alone can hold
    more than the limit; released, they are points like any other.
    """
    refused = [_big(i) for i in range(1_000)]
    spool = await Spool.open(path, _limit(64))
    try:
        await spool.append([_big(-1)])
        # The one point waiting made way; the quarantine then takes more than fits.
        await spool.quarantine(refused, "field type conflict")
        assert spool.take_drops().points == 1
        assert (spool.count, spool.quarantined) == (0, 1_000)
        assert (await _db_pages(path))[0] > 64
        ids = [point.id for point in await spool.quarantined_points(1_000)]
        assert await spool.release_quarantine(ids) == 1_000
        stored = await _all_lines(spool)
        assert spool.take_drops().points == 1_000 - len(stored)
        assert stored == refused[-len(stored) :]
        assert (spool.count, spool.quarantined) == (len(stored), 0)
        assert (await _db_pages(path))[0] <= 64
    finally:
        await spool.close()


async def test_non_sqlite_file_is_refused_not_overwritten(path: Path) -> None:
    """A file that is not SQLite raises SpoolError and is left exactly as it was."""
    content = b"homeassistant:\n  name: Home\n" * 100
    await asyncio.to_thread(path.write_bytes, content)
    with pytest.raises(SpoolError, match="not a database"):
        await Spool.open(path, LARGE)
    assert await asyncio.to_thread(path.read_bytes) == content
    # No journal or log was created beside it either.
    assert await asyncio.to_thread(os.listdir, path.parent) == [path.name]


async def test_other_sqlite_database_is_refused(path: Path) -> None:
    """An SQLite file with tables of its own (Home Assistant's recorder, say) is refused."""
    await _sqlite(path, "CREATE TABLE states (state_id INTEGER PRIMARY KEY)")
    with pytest.raises(SpoolError, match="not a spool"):
        await Spool.open(path, LARGE)
    assert await _sqlite(path, "PRAGMA journal_mode") == [("delete",)]


async def test_newer_schema_is_refused(path: Path) -> None:
    """A spool from a newer version of the integration is not touched."""
    spool = await Spool.open(path, LARGE)
    await spool.close()
    await _sqlite(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SpoolError, match="newer"):
        await Spool.open(path, LARGE)


async def test_unopenable_path_raises_spool_error(tmp_path: Path) -> None:
    """A folder that does not exist gives SpoolError (and no thread is left behind)."""
    with pytest.raises(SpoolError, match="unable to open"):
        await Spool.open(tmp_path / "missing" / "spool.db", LARGE)


async def test_invalid_max_bytes(path: Path) -> None:
    """The cap must allow something to be stored."""
    with pytest.raises(ValueError, match="positive"):
        await Spool.open(path, 0)


async def test_closed_spool_raises(path: Path) -> None:
    """Using a closed spool raises SpoolError; closing twice is fine."""
    spool = await Spool.open(path, LARGE)
    await spool.close()
    await spool.close()
    with pytest.raises(SpoolError, match="closed"):
        await spool.append([_line(0)])
    with pytest.raises(SpoolError, match="closed"):
        await spool.oldest(1)


async def test_wal_mode_and_schema_version(spool: Spool, path: Path) -> None:
    """The file is in write-ahead-log mode and carries the current schema version."""
    await spool.append([_line(0)])
    assert await _sqlite(path, "PRAGMA journal_mode") == [("wal",)]
    assert await _sqlite(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_spool_files_are_readable_by_their_owner_only(
    spool: Spool, path: Path
) -> None:
    """0600, like Home Assistant's `.storage` files: the points are the house's history."""
    await spool.append([_line(0)])
    files = await asyncio.to_thread(lambda: sorted(path.parent.iterdir()))
    assert [file.name for file in files] == [
        path.name,
        f"{path.name}-reserve",
        f"{path.name}-shm",
        f"{path.name}-wal",
    ]
    assert [file.stat().st_mode & 0o777 for file in files] == [0o600] * 4


async def test_reader_reads_while_spool_writes(spool: Spool, path: Path) -> None:
    """Another, read-only connection in a transaction neither blocks nor sees appends."""
    await spool.append([_line(i) for i in range(10)])
    reader = await asyncio.to_thread(
        sqlite3.connect,
        f"{path.as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )

    def count() -> object:
        return reader.execute("SELECT count(*) FROM points").fetchone()[0]

    try:
        await asyncio.to_thread(reader.execute, "BEGIN")
        assert await asyncio.to_thread(count) == 10
        # The writer goes on while the reader's snapshot is open.
        await spool.append([_line(i) for i in range(10, 1_010)])
        await remove_read(spool, await spool.oldest(5))
        assert await asyncio.to_thread(count) == 10
        await asyncio.to_thread(reader.execute, "COMMIT")
        assert await asyncio.to_thread(count) == 1_005 == spool.count
    finally:
        await asyncio.to_thread(reader.close)


@dataclass(frozen=True)
class Append:
    """Append `count` lines of `size` bytes each."""

    count: int
    size: int


@dataclass(frozen=True)
class Replay:
    """Read the oldest `limit` points and, if `written`, remove them."""

    limit: int
    written: bool


@dataclass(frozen=True)
class Reopen:
    """Close and open the spool again."""


_OPERATIONS = st.lists(
    st.one_of(
        st.builds(Append, st.integers(0, 300), st.integers(1, 3_000)),
        st.builds(Replay, st.integers(0, 400), st.booleans()),
        st.just(Reopen()),
    ),
    max_size=25,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=_OPERATIONS)
async def test_spool_behaves_like_a_list_that_forgets_its_oldest(
    tmp_path: Path, operations: list[Append | Replay | Reopen]
) -> None:
    """Any appends, replays and reopenings: the newest of what is not replayed stays.

    Nothing is dropped while the database has pages to spare; whatever is dropped
    is the oldest, and counted; the database never takes more pages than its share.
    """
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    model: list[str] = []
    serial = 0
    spool = await Spool.open(path, _limit(64))
    try:
        for operation in operations:
            match operation:
                case Append(count, size):
                    lines = [
                        f"m v={'x' * size} {BASE_US + serial + i}" for i in range(count)
                    ]
                    serial += count
                    model.extend(lines)
                    await spool.append(lines)
                    dropped = spool.take_drops().points
                    if dropped:
                        assert (await _db_pages(path))[0] >= 64 - 1
                    del model[:dropped]
                case Replay(limit, written):
                    points = await spool.oldest(limit)
                    assert [line for _, line in points] == model[:limit]
                    if written and points:
                        assert await remove_read(spool, points) == len(points)
                        del model[:limit]
                case Reopen():
                    await spool.close()
                    spool = await Spool.open(path, _limit(64))
            assert (spool.count, spool.size_bytes) == (len(model), _bytes(model))
            assert spool.oldest_time == (
                _time(int(model[0].rpartition(" ")[2])) if model else None
            )
            assert (await _db_pages(path))[0] <= 64
        assert await _all_lines(spool) == model
    finally:
        await spool.close()


async def test_appended_lines_get_the_next_ids_and_can_be_removed_by_them(
    spool: Spool,
) -> None:
    """A copy stored while its write was slow is removed by its ids alone."""
    first = await spool.append([_line(i) for i in range(5)])
    second = await spool.append([_line(i) for i in range(5, 8)])
    assert first == range(1, 6)
    assert second == range(6, 9)
    assert await spool.remove_ids(first[1:3]) == 2
    assert await _all_lines(spool) == [_line(i) for i in (0, 3, 4, 5, 6, 7)]
    assert (spool.count, spool.size_bytes) == (6, _bytes(await _all_lines(spool)))
    # Removed already (by a replay, say): nothing happens.
    assert await spool.remove_ids(first[1:3]) == 0
    assert await spool.remove_ids(range(0)) == 0
    assert await spool.append([]) == range(0)


async def test_last_states_and_stats_are_kept_with_the_points(path: Path) -> None:
    """Saved in the append's own transaction, and kept across reopening."""
    spool = await Spool.open(path, LARGE)
    try:
        assert await spool.last_states() == {}
        assert await spool.stats() is None
        counted = {"points_written": 3}
        spool.keep_stats(lambda _drops: dict(counted))
        await spool.append(
            [_line(0)],
            last_states={"sensor.a": "f1", "sensor.b": "f2"},
            save_stats=True,
        )
        counted["points_written"] = 4
        await spool.save_state({"sensor.a": "f3"})
        assert await spool.stats() == {"points_written": 3}, "not asked to save them"
        counted["points_written"] = 5
        await spool.save_state({}, save_stats=True)
    finally:
        await spool.close()
    spool = await Spool.open(path, LARGE)
    try:
        assert await spool.last_states() == {"sensor.a": "f3", "sensor.b": "f2"}
        assert await spool.stats() == {"points_written": 5}
        assert spool.count == 1
    finally:
        await spool.close()


async def test_a_failed_append_keeps_neither_points_nor_state(path: Path) -> None:
    """One transaction: a failure leaves the last states and stats as they were."""
    spool = await Spool.open(path, LARGE)
    try:
        await spool.import_state({"sensor.a": "before"}, {"points_written": 1})
        spool.keep_stats(lambda _drops: {"x": 2})
        with (
            patch.object(
                spool_module,
                "_save_last_states",
                side_effect=sqlite3.OperationalError("disk I/O error"),
            ),
            pytest.raises(SpoolError, match="disk I/O error"),
        ):
            await spool.append(
                [_line(0)], last_states={"sensor.a": "after"}, save_stats=True
            )
        assert spool.count == 0
        assert await _all_lines(spool) == []
        assert await spool.last_states() == {"sensor.a": "before"}
        assert await spool.stats() == {"points_written": 1}
    finally:
        await spool.close()


# Points as the two presets write them (docs/schema.md), and the shortest a line can be.
_CORE = (
    '°C,domain=sensor,entity_id=room_{i} device_class_str="temperature",'
    'friendly_name_str="Room {i}",value={v} {t}'
)
_RICH = (
    "°C,area=Living\\ room,device=Living\\ room\\ thermometer,"
    "device_class=temperature,domain=sensor,entity_id=sensor.room_{i}_temperature,"
    "floor=Ground\\ floor,labels=Climate\\,Heating,unit=°C "
    'state="{v}",value={v},previous_state="21.0",duration_in_state_s=300.0,'
    'context_id="01JDA7Q3ZK8V5N2W4X6Y8B0C1D",state_class_str="measurement",'
    'friendly_name_str="Room {i} temperature" {t}'
)
_TINY = "m v={v} {t}"
SIXTEEN_MIB = 16 << 20  # the option's smallest limit


class _Footprint(threading.Thread):
    """Measures the spool's files on disk every half millisecond, keeping the peak."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="spool footprint")
        self._path = path
        self._stop = threading.Event()
        self.peak = 0

    def measure(self) -> int:
        """The bytes the files take: their size or their blocks, whichever is more."""
        total = 0
        with os.scandir(self._path.parent) as files:
            for file in files:
                if file.name.startswith(self._path.name):
                    with contextlib.suppress(FileNotFoundError):
                        stat = file.stat()
                        total += max(stat.st_size, stat.st_blocks * 512)
        self.peak = max(self.peak, total)
        return total

    def run(self) -> None:
        while not self._stop.wait(0.0005):
            self.measure()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self.join()


@pytest.mark.parametrize(
    ("template", "spill", "share", "points_held"),
    [
        pytest.param(_CORE, 2_000, 0.74, 104_000, id="core_compatible"),
        pytest.param(_RICH, 1_000, 0.74, 34_000, id="rich"),
        # Each row takes about ten bytes more than its line: a third, for these.
        pytest.param(_TINY, 10_000, 0.58, None, id="tiny"),
    ],
)
async def test_the_files_stay_within_the_limit_and_shrink_once_drained(
    path: Path, template: str, spill: int, share: float, points_held: int | None
) -> None:
    """The database, its log and shared memory take at most max_bytes on disk.

    Measured on the real files, all the time, while spills of realistic lines fill
    a 16 MiB spool to one and a half times its limit, and while it is drained; once
    drained, the files take their reserve and a few pages. Full, the lines take
    `share` of the limit, and the spool holds about `points_held` points.
    """
    spool = await Spool.open(path, SIXTEEN_MIB)
    appended = 0
    taken = 0
    try:
        with _Footprint(path) as footprint:
            while taken < SIXTEEN_MIB * 3 // 2:
                lines = [
                    template.format(i=i % 500, v=i % 97, t=BASE_US + i)
                    for i in range(appended, appended + spill)
                ]
                await spool.append(lines)
                appended += spill
                taken += _bytes(lines) + spool_module._ROW_BYTES * spill
                assert footprint.measure() <= SIXTEEN_MIB
            assert spool.size_bytes > SIXTEEN_MIB * share
            assert spool.fill > 0.99
            if points_held is not None:  # as the README says
                assert abs(spool.count - points_held) < points_held * 0.05
            while points := await spool.oldest(spill):
                await remove_read(spool, points)
                assert footprint.measure() <= SIXTEEN_MIB
        assert footprint.peak <= SIXTEEN_MIB
        drained = footprint.measure()
    finally:
        await spool.close()
    # The reserve, and a few pages.
    assert drained <= spool_module.RESERVE_BYTES + (128 << 10), drained


async def test_a_spool_of_an_earlier_version_gives_its_space_back_too(
    path: Path,
) -> None:
    """Made before 0.3 (no auto_vacuum): rewritten once at open, points kept."""

    def make_old_spool() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            for migration in spool_module._MIGRATIONS:
                for statement in migration:
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.executemany(
                "INSERT INTO points (line) VALUES (?)",
                [(_big(i),) for i in range(500)],
            )
        finally:
            connection.close()

    await asyncio.to_thread(make_old_spool)
    assert await _sqlite(path, "PRAGMA auto_vacuum") == [(0,)]
    spool = await Spool.open(path, LARGE)
    try:
        assert await _sqlite(path, "PRAGMA auto_vacuum") == [(2,)]
        assert await _all_lines(spool) == [_big(i) for i in range(500)]
        assert (await _db_pages(path))[0] > 100
        await remove_read(spool, await spool.oldest(500))
        assert (await _db_pages(path))[0] < 12
    finally:
        await spool.close()


async def test_the_stats_saved_count_every_drop_not_taken_yet(path: Path) -> None:
    """Saved in the transaction that drops points, and in each one after, until taken.

    A kill after any commit (the file read by another connection) finds the stats
    counting every point deleted for room: by an append not asked to save them, by a
    quarantine, and those the caller did not take yet when it saved them again.
    """
    counted: list[Drops] = []

    def stats_of(drops: Drops) -> dict[str, Any]:
        counted.append(drops)
        start, end = drops.span or (None, None)
        return {
            "dropped": drops.points,
            "from": None if start is None else start.isoformat(),
            "until": None if end is None else end.isoformat(),
        }

    spool = await Spool.open(path, _limit(64))
    spool.keep_stats(stats_of)
    lines = [_big(i) for i in range(400)]
    for start in range(0, len(lines), 40):
        await spool.append(lines[start : start + 40])
    dropped = len(lines) - spool.count
    assert dropped > 0
    # Not taken: what the file says now is what a kill leaves.
    first = await _saved_stats(path)
    assert first == stats_of(Drops(dropped, lines_span(lines[:dropped])))
    assert all(drops.points > 0 for drops in counted)

    await spool.save_state({"sensor.a": "f1"}, save_stats=True)
    assert await _saved_stats(path) == first
    assert spool.take_drops() == Drops(dropped, lines_span(lines[:dropped]))
    # Taken: counted by the caller's stats from now on, no longer given.
    await spool.save_state({}, save_stats=True)
    assert await _saved_stats(path) == stats_of(NO_DROPS)

    # A quarantine takes room too.
    quarantined = [_big(1_000 + i) for i in range(40)]
    waiting = spool.count
    await spool.quarantine(quarantined, "field type conflict")
    more = waiting - spool.count
    assert more > 0
    assert await _saved_stats(path) == stats_of(
        Drops(more, lines_span(lines[dropped : dropped + more]))
    )
    await spool.close()


async def _saved_stats(path: Path) -> Any:
    """The stats in the file as another process reads it: what a kill would leave."""
    return await asyncio.to_thread(saved_stats, path)


async def test_a_failed_append_keeps_none_of_its_chunks(path: Path) -> None:
    """An append of several transactions that fails at its last: the first are undone.

    The error tells how many old points were dropped to make room meanwhile.
    """
    spool = await Spool.open(path, _limit(200))
    try:
        waiting = await _fill(spool)
        before = await _all_lines(spool)
        assert spool.take_drops() == NO_DROPS  # _fill took its own
        lines = [_big(i) for i in range(len(waiting), len(waiting) + 400)]
        save_last_states = spool_module._save_last_states

        async def fails_with_the_last_states(
            db: aiosqlite.Connection, last_states: dict[str, str] | None
        ) -> None:
            if last_states is not None:  # saved with the last lines
                raise sqlite3.OperationalError("disk I/O error")
            await save_last_states(db, last_states)

        with (
            patch.object(spool_module, "_save_last_states", fails_with_the_last_states),
            pytest.raises(SpoolError, match="disk I/O error"),
        ):
            await spool.append(lines, last_states={"sensor.a": "f1"})
        after = await _all_lines(spool)
        drops = spool.take_drops()
        assert drops.points > 0
        assert after == before[drops.points :]
        # Their times, not those of what the failed transaction deleted and undid.
        assert drops.span == lines_span(before[: drops.points])
        assert (spool.count, spool.size_bytes) == (len(after), _bytes(after))
        assert await spool.stats() is None
    finally:
        await spool.close()


async def test_a_failed_quarantine_keeps_none_of_its_chunks(path: Path) -> None:
    """Refused points set aside in several transactions, the last failing: none kept."""
    spool = await Spool.open(path, LARGE)
    fit = Spool._fit
    calls = 0

    async def fails_the_third_time(self: Spool, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise sqlite3.OperationalError("disk I/O error")
        await fit(self, *args)

    try:
        await spool.quarantine([_big(0)], "refused before")
        lines = [_big(i) for i in range(1, 1_200)]
        with (
            patch.object(Spool, "_fit", fails_the_third_time),
            pytest.raises(SpoolError, match="disk I/O error"),
        ):
            await spool.quarantine(lines, "field type conflict")
        assert calls == 3
        assert spool.quarantined == 1
        assert [p.line for p in await spool.quarantined_points(10)] == [_big(0)]
    finally:
        await spool.close()


async def test_a_full_disk_still_lets_written_points_go(tmp_path: Path) -> None:
    """The disk full: nothing new is stored, yet what is written is removed, in order.

    Freeing space must not need free space: the reserve beside the spool is given
    up for it, and made again from the room the removed points leave. Then new
    points are stored again.
    """
    with tmpfs(tmp_path / "disk", 8 << 20) as disk:
        path = disk / "spool.db"
        reserve = path.with_name(path.name + "-reserve")
        spool = await Spool.open(path, SIXTEEN_MIB)
        try:
            lines = [_big(i) for i in range(3_000)]
            await spool.append(lines)
            assert await asyncio.to_thread(reserve.exists)
            await asyncio.to_thread(fill, disk)
            # The log's room on disk takes some more, until it is used up.
            with pytest.raises(SpoolDiskFullError, match="full"):  # noqa: PT012
                while len(lines) < 10_000:
                    more = [_big(i) for i in range(len(lines), len(lines) + 20)]
                    await spool.append(more)
                    lines += more
            assert spool.count == len(lines)

            removed: list[str] = []
            while points := await spool.oldest(500):
                assert await remove_read(spool, points) == len(points)
                removed += [line for _, line in points]
            assert removed == lines
            assert spool.count == 0
            # The points' room went back to the disk, the reserve took its share.
            assert await asyncio.to_thread(reserve.exists)
            assert await asyncio.to_thread(free_bytes, disk) > 2 << 20
            assert await spool.append([_big(-1)]) == range(
                len(lines) + 1, len(lines) + 2
            )
        finally:
            await spool.close()


async def test_the_stats_are_saved_on_a_full_disk(tmp_path: Path) -> None:
    """The disk full: the stats are still saved, and the reserve made again after.

    They rewrite one row: the reserve's room lets SQLite do it, and is taken back.
    """
    with tmpfs(tmp_path / "disk", 12 << 20) as disk:
        path = disk / "spool.db"
        reserve = path.with_name(path.name + "-reserve")
        spool = await Spool.open(path, SIXTEEN_MIB)
        try:
            counted = {"points_dropped_at_stop": 0}
            spool.keep_stats(lambda _drops: dict(counted))
            await spool.save_state({}, save_stats=True)
            await spool.append([_point(i) for i in range(500)])
            await asyncio.to_thread(fill, disk)
            # The log's room on disk takes some more spills, until it is used up.
            with pytest.raises(SpoolDiskFullError, match="full"):  # noqa: PT012
                for start in range(500, 100_000, 200):
                    await spool.append([_point(i) for i in range(start, start + 200)])

            counted["points_dropped_at_stop"] = 7
            await spool.save_state({}, save_stats=True)
            assert await spool.stats() == {"points_dropped_at_stop": 7}
            assert await asyncio.to_thread(reserve.exists)
        finally:
            await spool.close()
        spool = await Spool.open(path, SIXTEEN_MIB)
        try:
            assert await spool.stats() == {"points_dropped_at_stop": 7}
        finally:
            await spool.close()


async def test_a_spool_reopened_on_a_full_disk_opens_with_its_reserve(
    tmp_path: Path,
) -> None:
    """Home Assistant restarted on a full disk: the reserve makes room to open it.

    New points wait until there is room; those in it can be removed meanwhile, which
    makes room (and the reserve) again.
    """
    with tmpfs(tmp_path / "disk", 6 << 20) as disk:
        path = disk / "spool.db"
        spool = await Spool.open(path, SIXTEEN_MIB)
        lines = [_big(i) for i in range(2_000)]
        await spool.append(lines)
        await spool.close()
        await asyncio.to_thread(fill, disk)

        spool = await Spool.open(path, SIXTEEN_MIB)
        try:
            with pytest.raises(SpoolDiskFullError, match="reserve"):
                await spool.append([_big(-1)])
            removed: list[str] = []
            while points := await spool.oldest(500):
                assert await remove_read(spool, points) == len(points)
                removed += [line for _, line in points]
            assert removed == lines
            assert await spool.append([_big(-1)]) == range(2_001, 2_002)
        finally:
            await spool.close()


async def test_no_reserve_and_no_room_still_refuses_to_open(tmp_path: Path) -> None:
    """Without room nor reserve, SQLite cannot open it: the error says so."""
    with tmpfs(tmp_path / "disk", 4 << 20) as disk:
        path = disk / "spool.db"
        spool = await Spool.open(path, SIXTEEN_MIB)
        await spool.close()
        await asyncio.to_thread(path.with_name(path.name + "-reserve").unlink)
        await asyncio.to_thread(fill, disk)
        with pytest.raises(SpoolError, match="disk I/O error"):
            await Spool.open(path, SIXTEEN_MIB)
