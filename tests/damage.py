"""Damaging a spool file as a failing disk would: bytes overwritten in its pages."""

from __future__ import annotations

from pathlib import Path
import sqlite3


def leaves(path: Path, table: str) -> list[tuple[int, range]]:
    """Each leaf page of `table` in the closed file `path`, and the ids it holds.

    In order; the ids follow each other from the table's lowest, as a spool's do
    (handed out one after the other, removed oldest first). SQLite's dbstat table
    names each page's cells.
    """
    connection = sqlite3.connect(path)
    try:
        ((first,),) = connection.execute(f"SELECT min(id) FROM {table}").fetchall()
        rows = connection.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = ? AND pagetype = 'leaf'"
            " ORDER BY path",
            (table,),
        ).fetchall()
    finally:
        connection.close()
    found = []
    for page, cells in rows:
        found.append((page, range(first, first + cells)))
        first += cells
    return found


def overwrite_page(path: Path, page: int, page_size: int = 4096) -> None:
    """Overwrite page `page` (counted from 1) of the file `path` with noise."""
    with path.open("r+b") as file:
        file.seek((page - 1) * page_size)
        file.write(bytes(range(256)) * (page_size // 256))
