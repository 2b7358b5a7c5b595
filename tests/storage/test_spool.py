"""The on-disk spool, against real SQLite files: order, cap, reopening, crashes, quarantine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import os
from pathlib import Path
import sqlite3
import subprocess
import sys
import textwrap
from unittest.mock import patch
import uuid

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.storage import spool as spool_module
from custom_components.ha_ingestor.storage.spool import (
    SCHEMA_VERSION,
    Appended,
    Released,
    Spool,
    SpoolError,
)

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
    assert await spool.remove_through(100) == 0


async def test_order_kept_across_many_appends(spool: Spool) -> None:
    """Batches of any size come back in the order they were appended, ids ascending."""
    lines = [_line(i) for i in range(5_000)]
    start = 0
    for size in (1, 7, 1_000, 2, 3_000, 990):
        assert (await spool.append(lines[start : start + size])).dropped == 0
        start += size
    assert start == len(lines)
    assert (await spool.append([])).dropped == 0

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


async def test_remove_through_deletes_only_what_was_read(spool: Spool) -> None:
    """Points appended after a read stay when what was read is removed."""
    await spool.append([_line(i) for i in range(10)])
    points = await spool.oldest(4)
    await spool.append([_line(i) for i in range(10, 15)])

    assert await spool.remove_through(points[-1][0]) == 4
    assert await _all_lines(spool) == [_line(i) for i in range(4, 15)]
    assert spool.count == 11
    assert spool.size_bytes == _bytes([_line(i) for i in range(4, 15)])
    # Removing the same range again is harmless.
    assert await spool.remove_through(points[-1][0]) == 0


async def test_ids_never_reused_after_emptying(path: Path) -> None:
    """An emptied spool, reopened or not, hands out new ids: a stale id removes nothing."""
    spool = await Spool.open(path, LARGE)
    await spool.append([_line(0), _line(1)])
    points = await spool.oldest(2)
    await spool.remove_through(points[-1][0])
    await spool.close()

    spool = await Spool.open(path, LARGE)
    try:
        await spool.append([_line(2)])
        assert (await spool.oldest(1))[0][0] > points[-1][0]
        assert await spool.remove_through(points[-1][0]) == 0
        assert spool.count == 1
    finally:
        await spool.close()


async def test_cap_drops_exactly_the_oldest(path: Path) -> None:
    """Past max_bytes the oldest points go first, as few as make room, and are counted."""
    lines = [_line(i) for i in range(100, 130)]  # all of the same size
    size = len(lines[0].encode())
    spool = await Spool.open(path, 10 * size)
    try:
        assert (await spool.append(lines[:10])).dropped == 0
        assert spool.size_bytes == 10 * size

        assert (await spool.append(lines[10:13])).dropped == 3
        assert await _all_lines(spool) == lines[3:13]
        assert (spool.count, spool.size_bytes) == (10, 10 * size)

        # A line 10 bytes longer needs two old ones to go.
        long_line = _line(200).replace("value=", "value=" + "9" * 10)
        assert (await spool.append([long_line])).dropped == 2
        assert await _all_lines(spool) == [*lines[5:13], long_line]
        assert spool.size_bytes <= 10 * size

        # A batch larger than the cap: everything stored goes, then its own first lines.
        assert (await spool.append(lines[13:25])).dropped == 9 + 2
        assert await _all_lines(spool) == lines[15:25]
        assert (spool.count, spool.size_bytes) == (10, 10 * size)
        assert spool.oldest_time == _time(BASE_US + 115)
    finally:
        await spool.close()


async def test_a_large_append_takes_a_few_statements(path: Path) -> None:
    """12,001 lines, past the cap, take nine statements, not one or more per line.

    Each statement makes SQLite's thread take the GIL back, which a busy event loop
    holds for up to the switch interval: one statement per line kept the spool
    slower than a burst of state changes, which then waited in memory.
    """
    lines = [_line(i) for i in range(12_001)]
    spool = await Spool.open(path, _bytes(lines[:11_000]))
    statements: list[str] = []
    try:
        await spool._db().set_trace_callback(statements.append)
        assert (await spool.append(lines)).dropped == 1_001
        assert await _all_lines(spool) == lines[1_001:]
    finally:
        await spool.close()
    # BEGIN, three INSERTs of 5,000, the bytes added, the cut, DELETE, the new oldest
    # time, COMMIT; then the read for _all_lines.
    assert len(statements) == 9 + 1, statements


async def test_cap_applies_to_a_spool_reopened_with_a_smaller_one(path: Path) -> None:
    """Lowering max_bytes takes effect at the next append."""
    spool = await Spool.open(path, LARGE)
    await spool.append([_line(i) for i in range(20)])
    await spool.close()

    size = len(_line(0).encode())
    spool = await Spool.open(path, 5 * size)
    try:
        assert spool.count == 20  # nothing is dropped by opening
        assert (await spool.append([_line(20)])).dropped == 16
        assert await _all_lines(spool) == [_line(i) for i in range(16, 21)]
    finally:
        await spool.close()


async def test_reopen_recomputes_counters_exactly(path: Path) -> None:
    """After appends, drops and removals, a reopened spool counts the same from disk."""
    lines = [_line(i) + " ünïcödé ☃" * (i % 3) for i in range(300)]
    lines = [f"{line} {BASE_US + i}" for i, line in enumerate(lines)]
    spool = await Spool.open(path, _bytes(lines[:200]))
    await spool.append(lines[:150])
    await spool.append(lines[150:])  # drops about 100
    points = await spool.oldest(30)
    await spool.remove_through(points[-1][0])
    before = (spool.count, spool.size_bytes, spool.oldest_time)
    remaining = await _all_lines(spool)
    await spool.close()

    spool = await Spool.open(path, LARGE)
    try:
        assert (spool.count, spool.size_bytes, spool.oldest_time) == before
        assert spool.size_bytes == _bytes(remaining)
    finally:
        await spool.close()


async def test_oldest_time_follows_the_head(spool: Spool) -> None:
    """oldest_time is the timestamp at the end of the longest-waiting line."""
    await spool.append([_line(5), _line(9)])
    assert spool.oldest_time == _time(BASE_US + 5)
    await spool.remove_through((await spool.oldest(1))[0][0])
    assert spool.oldest_time == _time(BASE_US + 9)
    await spool.remove_through((await spool.oldest(1))[0][0])
    assert (spool.count, spool.oldest_time) == (0, None)
    # Lines whose end is no timestamp a datetime can hold have no time.
    await spool.append(["no timestamp", f"m v=1 {10**20}"])
    assert (spool.count, spool.oldest_time) == (2, None)
    await spool.remove_through((await spool.oldest(1))[0][0])
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
            await spool.remove_through(written[-1][0])
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
    await spool.remove_through(points[-1][0])
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

        assert await spool.release_quarantine([quarantined[1].id, 12345]) == (1, 0)
        assert (spool.count, spool.quarantined) == (1, 2)
        assert await _all_lines(spool) == [lines[2]]
        assert spool.size_bytes == _bytes([lines[2]])
        assert [p.line for p in await spool.quarantined_points(10)] == [
            lines[1],
            _line(99),
        ]
        assert [p.line for p in await spool.quarantined_points(1)] == [lines[1]]
        assert await spool.release_quarantine([]) == (0, 0)
    finally:
        await spool.close()


async def test_released_points_past_the_cap_drop_the_oldest_waiting(
    path: Path,
) -> None:
    """Released points count against max_bytes: the oldest waiting go, and are counted."""
    waiting = [_line(i) for i in range(8)]  # all of the same size
    refused = [_line(i) for i in range(50, 56)]
    size = len(waiting[0].encode())
    spool = await Spool.open(path, 10 * size)
    try:
        await spool.append(waiting)
        await spool.quarantine(refused, "field type conflict")
        ids = [point.id for point in await spool.quarantined_points(10)]

        # 8 waiting + 3 released = 11 points for room for 10: the oldest waiting goes.
        released = await spool.release_quarantine(ids[:3])
        assert isinstance(released, Released)
        assert (released.released, released.dropped) == (3, 1)
        assert await _all_lines(spool) == [*waiting[1:], *refused[:3]]
        assert (spool.count, spool.size_bytes, spool.quarantined) == (10, 10 * size, 3)
        assert spool.oldest_time == _time(BASE_US + 1)
        assert [p.line for p in await spool.quarantined_points(10)] == refused[3:]
    finally:
        await spool.close()

    # What was counted is what the file holds.
    spool = await Spool.open(path, 2 * size)
    try:
        assert (spool.count, spool.size_bytes, spool.quarantined) == (10, 10 * size, 3)
        # Released points that alone exceed the cap: every waiting point goes, then
        # the released ones' own first, as for an append.
        await spool.remove_through((await spool.oldest(8))[-1][0])
        assert await spool.release_quarantine(ids) == Released(3, 3)
        assert await _all_lines(spool) == refused[4:]
        assert (spool.count, spool.size_bytes, spool.quarantined) == (2, 2 * size, 0)
        assert spool.oldest_time == _time(BASE_US + 54)
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
        f"{path.name}-shm",
        f"{path.name}-wal",
    ]
    assert [file.stat().st_mode & 0o777 for file in files] == [0o600] * 3


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
        await spool.remove_through((await spool.oldest(5))[-1][0])
        assert await asyncio.to_thread(count) == 10
        await asyncio.to_thread(reader.execute, "COMMIT")
        assert await asyncio.to_thread(count) == 1_005 == spool.count
    finally:
        await asyncio.to_thread(reader.close)


@dataclass(frozen=True)
class Append:
    """Append these lines."""

    lines: list[str]


@dataclass(frozen=True)
class Replay:
    """Read the oldest `limit` points and, if `written`, remove them."""

    limit: int
    written: bool


@dataclass(frozen=True)
class Reopen:
    """Close and open the spool again."""


_LINES = st.lists(
    st.builds(
        "{} {}".format,
        st.text(st.characters(codec="utf-8"), max_size=12),
        st.integers(0, 2**53),
    ),
    max_size=8,
)
_OPERATIONS = st.lists(
    st.one_of(
        st.builds(Append, _LINES),
        st.builds(Replay, st.integers(0, 10), st.booleans()),
        st.just(Reopen()),
    ),
    max_size=25,
)


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=_OPERATIONS, max_bytes=st.integers(1, 150))
async def test_spool_behaves_like_a_bounded_list(
    tmp_path: Path, operations: list[Append | Replay | Reopen], max_bytes: int
) -> None:
    """Any sequence of appends, replays and reopenings matches a list model."""
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    model: list[str] = []
    spool = await Spool.open(path, max_bytes)
    try:
        for operation in operations:
            match operation:
                case Append(lines):
                    model.extend(lines)
                    expected_dropped = 0
                    while _bytes(model) > max_bytes:
                        del model[0]
                        expected_dropped += 1
                    assert (await spool.append(lines)).dropped == expected_dropped
                case Replay(limit, written):
                    points = await spool.oldest(limit)
                    assert [line for _, line in points] == model[:limit]
                    if written and points:
                        assert await spool.remove_through(points[-1][0]) == len(points)
                        del model[:limit]
                case Reopen():
                    await spool.close()
                    spool = await Spool.open(path, max_bytes)
            assert (spool.count, spool.size_bytes) == (len(model), _bytes(model))
            assert spool.oldest_time == (
                _time(int(model[0].rpartition(" ")[2])) if model else None
            )
        assert await _all_lines(spool) == model
    finally:
        await spool.close()


async def test_appended_lines_get_the_next_ids_and_can_be_removed_by_them(
    spool: Spool,
) -> None:
    """A copy stored while its write was slow is removed by its ids alone."""
    first = await spool.append([_line(i) for i in range(5)])
    second = await spool.append([_line(i) for i in range(5, 8)])
    assert first == Appended(range(1, 6), 0)
    assert second == Appended(range(6, 9), 0)
    assert await spool.remove_ids(first.ids[1:3]) == 2
    assert await _all_lines(spool) == [_line(i) for i in (0, 3, 4, 5, 6, 7)]
    assert (spool.count, spool.size_bytes) == (6, _bytes(await _all_lines(spool)))
    # Removed already (by a replay, say): nothing happens.
    assert await spool.remove_ids(first.ids[1:3]) == 0
    assert await spool.remove_ids(range(0)) == 0
    assert (await spool.append([])).ids == range(0)


async def test_last_states_and_stats_are_kept_with_the_points(path: Path) -> None:
    """Saved in the append's own transaction, and kept across reopening."""
    spool = await Spool.open(path, LARGE)
    try:
        assert await spool.last_states() == {}
        assert await spool.stats() is None
        await spool.append(
            [_line(0)],
            last_states={"sensor.a": "f1", "sensor.b": "f2"},
            stats={"points_written": 3},
        )
        await spool.save_state({"sensor.a": "f3"}, None)
        await spool.save_state({}, {"points_written": 4})
    finally:
        await spool.close()
    spool = await Spool.open(path, LARGE)
    try:
        assert await spool.last_states() == {"sensor.a": "f3", "sensor.b": "f2"}
        assert await spool.stats() == {"points_written": 4}
        assert spool.count == 1
    finally:
        await spool.close()


async def test_a_failed_append_keeps_neither_points_nor_state(path: Path) -> None:
    """One transaction: a failure leaves the last states and stats as they were."""
    spool = await Spool.open(path, LARGE)
    try:
        await spool.save_state({"sensor.a": "before"}, {"points_written": 1})
        with (
            patch.object(
                spool_module,
                "_save_state",
                side_effect=sqlite3.OperationalError("disk I/O error"),
            ),
            pytest.raises(SpoolError, match="disk I/O error"),
        ):
            await spool.append(
                [_line(0)], last_states={"sensor.a": "after"}, stats={"x": 2}
            )
        assert spool.count == 0
        assert await _all_lines(spool) == []
        assert await spool.last_states() == {"sensor.a": "before"}
        assert await spool.stats() == {"points_written": 1}
    finally:
        await spool.close()
