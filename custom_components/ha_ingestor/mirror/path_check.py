"""Whether the mirror may live at a path the user typed: for the config and options flows.

Nothing is created or changed; the file is not opened as a database.
"""

from __future__ import annotations

from pathlib import Path
import tempfile
from typing import Final

from .tables import APPLICATION_ID, foreign_file_reason

# validate_mirror_path's answers: config flow error keys.
MIRROR_PATH_IS_DIRECTORY: Final = "mirror_path_is_directory"
MIRROR_PATH_NOT_WRITABLE: Final = "mirror_path_not_writable"
MIRROR_PATH_NOT_SQLITE: Final = "mirror_path_not_sqlite"
MIRROR_PATH_OTHER_DATABASE: Final = "mirror_path_other_database"
MIRROR_PATH_NEWER_VERSION: Final = "mirror_path_newer_version"

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_SQLITE_HEADER_SIZE: Final = 100


def validate_mirror_path(path: str) -> str | None:
    """Say why the mirror cannot live at `path`, as an error key; None if it can.

    Blocking: run it in the executor. `path` must be absolute. It is refused when it
    is a folder; when its folder is missing or no file can be created in it (SQLite
    keeps its write-ahead log beside the file); when the file exists and cannot be
    written; and when the file is another program's: a non-empty file that is not
    SQLite, or an SQLite database that has tables but not our application id (Home
    Assistant's recorder database, say). An empty file, an SQLite database without
    tables, and a mirror of this or an older file version are taken. Nothing is
    created or changed.
    """
    file = Path(path)
    if not file.is_absolute():
        raise ValueError(f"Not an absolute path: {path}")
    if file.is_dir():
        return MIRROR_PATH_IS_DIRECTORY
    if not _writable(file):
        return MIRROR_PATH_NOT_WRITABLE
    if not file.exists():
        return None
    return _check_contents(file)


def _writable(file: Path) -> bool:
    """Return whether `file` can be written and files created beside it."""
    try:
        # Real files, not permission bits: the only test that is also right for root,
        # read-only mounts and immutable files.
        with tempfile.NamedTemporaryFile(dir=file.parent, prefix=f".{file.name}."):
            pass
        if file.is_file():
            with file.open("r+b"):
                pass
    except OSError:
        return False
    return True


def _check_contents(file: Path) -> str | None:
    """Say whose the existing `file` is, from its header: None when empty or ours.

    The database is not opened: a read-only connection would leave -wal and -shm
    files beside a database in WAL mode, and wait for other programs' locks. The
    header is as of the last checkpoint; opening the mirror checks again through
    SQLite.
    """
    if not file.is_file():
        return MIRROR_PATH_NOT_SQLITE  # a FIFO or a device: reading it could block
    with file.open("rb") as existing:
        header = existing.read(_SQLITE_HEADER_SIZE)
    if not header:
        return None
    # https://www.sqlite.org/fileformat.html#the_database_header: the magic string,
    # payload fractions that must be 64, 32 and 32, and big-endian integers.
    if (
        len(header) < _SQLITE_HEADER_SIZE
        or not header.startswith(_SQLITE_MAGIC)
        or header[21:24] != b"\x40\x20\x20"
    ):
        return MIRROR_PATH_NOT_SQLITE
    # The schema cookie changes with every CREATE or DROP: 0 means never a table.
    schema_cookie = int.from_bytes(header[40:44])
    user_version = int.from_bytes(header[60:64])
    application_id = int.from_bytes(header[68:72], signed=True)
    if foreign_file_reason(application_id, user_version, schema_cookie != 0) is None:
        return None
    if application_id == APPLICATION_ID:
        return MIRROR_PATH_NEWER_VERSION
    return MIRROR_PATH_OTHER_DATABASE
