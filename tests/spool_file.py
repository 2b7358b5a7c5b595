"""A spool as the tests look at it.

Its file read by a connection of its own (what another process, or a kill, finds), and
points removed from it as the batcher removes them once written.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from custom_components.ha_ingestor.storage.spool import Spool


def read_spool(path: Path, query: str) -> list[Any]:
    """The rows `query` finds in the spool file at `path`. Blocking."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


def saved_stats(path: Path) -> dict[str, Any]:
    """The stats saved in the spool file at `path`; empty if none were. Blocking."""
    rows = read_spool(path, "SELECT data FROM stats WHERE id = 1")
    saved: dict[str, Any] = json.loads(rows[0][0]) if rows else {}
    return saved


async def remove_read(spool: Spool, points: list[tuple[int, str]]) -> int:
    """Remove the points `oldest` returned, as the batcher does once they are written."""
    return await spool.remove_ids(range(points[0][0], points[-1][0] + 1))
