"""The mirror file: whole transactions for readers, only what differs, deleted files.

A transaction makes the rows it names equal to the registries: readers see it whole
or not at all, and an unchanged registry writes nothing. The file's identity tells a
deleted or replaced file, which is written anew.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import sqlite3
import subprocess
import sys
import textwrap
import time

from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    label_registry as lr,
)
import pytest

from custom_components.ha_ingestor.mirror.mirror import RegistryMirror

from .conftest import (
    ENTRY_ID,
    assert_mirrored,
    issue,
    populate,
    read_content,
    retry_now,
    settle,
    with_suffix,
)


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


async def test_reader_in_a_transaction_keeps_its_snapshot(
    hass: HomeAssistant, config_entry_id: str, mirror: RegistryMirror, path: Path
) -> None:
    """A read-only connection in a transaction neither blocks writes nor sees them."""
    populate(hass, config_entry_id)
    await assert_mirrored(hass, mirror)
    reader = await asyncio.to_thread(
        sqlite3.connect,
        f"{path.as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )

    def labels() -> list[str]:
        return [row[0] for row in reader.execute("SELECT name FROM labels ORDER BY 1")]

    try:
        await asyncio.to_thread(reader.execute, "BEGIN")
        before = await asyncio.to_thread(labels)
        lr.async_get(hass).async_create("New label")
        await settle(hass)
        assert mirror.healthy
        assert "New label" in {
            row["name"] for row in (await read_content(path))["labels"].values()
        }
        assert await asyncio.to_thread(labels) == before
        await asyncio.to_thread(reader.execute, "COMMIT")
        assert await asyncio.to_thread(labels) == sorted([*before, "New label"])
    finally:
        await asyncio.to_thread(reader.close)


# Runs in a process of its own: reads the file until it sees the last generation,
# each time in one read transaction, and checks that a snapshot never mixes two.
_READER = textwrap.dedent(
    """
    import json, sqlite3, sys, time

    path, last = sys.argv[1], sys.argv[2]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    seen, snapshots, deadline = set(), 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        db.execute("BEGIN")
        names = {row[0] for row in db.execute(
            "SELECT name FROM entities WHERE platform = 'generations'")}
        labels = {row[0] for row in db.execute(
            "SELECT DISTINCT l.label_id FROM entity_labels l"
            " JOIN entities e USING (entity_id) WHERE e.platform = 'generations'")}
        db.execute("COMMIT")
        if len(names) != 1 or len(labels) != 1:
            print(json.dumps({"mixed": sorted(map(str, names | labels))}))
            sys.exit(1)
        (name,) = names
        if not snapshots:
            print("ready", flush=True)
        snapshots += 1
        seen.add(name)
        if name == last:
            break
    print(json.dumps({"snapshots": snapshots, "generations": len(seen)}))
    """
)


async def test_reader_process_sees_only_whole_changes(
    hass: HomeAssistant, mirror: RegistryMirror, path: Path
) -> None:
    """Another process reading all the while never sees half of a change."""
    entity_registry = er.async_get(hass)
    label_registry = lr.async_get(hass)
    for parity in ("even", "odd"):
        label_registry.async_create(parity)
    entity_ids = [
        entity_registry.async_get_or_create(
            "sensor", "generations", f"sensor-{i}", suggested_object_id=f"g_{i}"
        ).entity_id
        for i in range(200)
    ]

    def generation(number: int) -> None:
        # All 200 in one go, as one registry change can ripple through many entries.
        for entity_id in entity_ids:
            entity_registry.async_update_entity(
                entity_id,
                name=f"generation {number}",
                labels={"even" if number % 2 == 0 else "odd"},
            )

    generation(0)
    await assert_mirrored(hass, mirror)
    reader = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-c", _READER, str(path), "generation 30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert await asyncio.to_thread(reader.stdout.readline) == "ready\n"
        for number in range(1, 31):
            generation(number)
            await asyncio.sleep(0.02)
        await assert_mirrored(hass, mirror)
        out, err = await asyncio.to_thread(reader.communicate, timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            await asyncio.to_thread(reader.wait)
    assert reader.returncode == 0, (out, err)
    result = json.loads(out)
    # It really read while the changes were written, more than once.
    assert result["generations"] > 1
    assert result["snapshots"] >= result["generations"]


async def test_resync_of_5000_entities_is_fast(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """A house of 500 devices and 5,000 entities is mirrored in one quick transaction."""
    device_registry = dr.async_get(hass)
    entity_registry = er.async_get(hass)
    label_registry = lr.async_get(hass)
    labels = [label_registry.async_create(f"Label {i}").label_id for i in range(20)]
    for d in range(500):
        device = device_registry.async_get_or_create(
            config_entry_id=config_entry_id,
            identifiers={("demo", f"device-{d}")},
            name=f"Device {d}",
            manufacturer="Acme",
        )
        for e in range(10):
            entity = entity_registry.async_get_or_create(
                "sensor",
                "demo",
                f"sensor-{d}-{e}",
                suggested_object_id=f"sensor_{d}_{e}",
                device_id=device.id,
                unit_of_measurement="°C",
            )
            if e % 3 == 0:
                entity_registry.async_update_entity(
                    entity.entity_id, labels={labels[(d + e) % 20]}
                )
    await hass.async_block_till_done()

    mirror = RegistryMirror(hass, ENTRY_ID, path)
    started = time.perf_counter()
    await mirror.async_start()
    first = time.perf_counter() - started
    try:
        assert mirror.rows["entities"] == 5_000
        await assert_mirrored(hass, mirror)
    finally:
        await mirror.async_stop()

    # Unchanged since: the resync compares, and writes no page into the log.
    mirror = RegistryMirror(hass, ENTRY_ID, path)
    started = time.perf_counter()
    await mirror.async_start()
    again = time.perf_counter() - started
    try:
        assert mirror.rows["entity_labels"] == 2_000
        assert with_suffix(path, "-wal").stat().st_size == 0
    finally:
        await mirror.async_stop()
    # Generous bounds for slow CI machines; measured ~0.1 s on a laptop.
    assert first < 5, first
    assert again < 5, again
