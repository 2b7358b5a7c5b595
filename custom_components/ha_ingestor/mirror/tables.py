"""The registry mirror's tables, each column written once, and opening a mirror file.

docs/registry.md describes the tables for the people who query them. `TABLES` defines
every column once; the code writes rows in that order, and the first migration
creates the tables from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

import aiosqlite

from ..storage.sqlite import SqliteFileError, migrate, use_wal

# `PRAGMA application_id` of every mirror file ("HAIR": HA Ingestor Registry). It tells
# our file apart from any other SQLite database, whatever that one's user_version.
APPLICATION_ID: Final = 0x48414952

_KEY: Final = "TEXT PRIMARY KEY NOT NULL"
_TEXT: Final = "TEXT"
_REQUIRED_TEXT: Final = "TEXT NOT NULL"
_INTEGER: Final = "INTEGER"


@dataclass(frozen=True, slots=True)
class Table:
    """A table of the mirror: one row per registry entry, keyed by its first column.

    References between registries (an entity's area_id, a label id in a link table)
    are not foreign keys: Home Assistant does not enforce them (an entity may carry a
    label id or area id that no longer exists), and the mirror holds what Home
    Assistant holds. The link table does reference the row it belongs to.
    """

    name: str
    definition: tuple[tuple[str, str], ...]
    """Each column's name and its SQL type and constraints, the key first."""
    labels: str | None = None
    """The link table holding (key, label_id) for each of the entry's labels."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns' names, in the order rows hold their values."""
        return tuple(name for name, _ in self.definition)

    @property
    def key(self) -> str:
        """The column that identifies an entry."""
        return self.definition[0][0]

    def create(self) -> tuple[str, ...]:
        """Return the statements that create the table and its link table."""
        columns = ", ".join(f"{name} {sql}" for name, sql in self.definition)
        statements = [f"CREATE TABLE {self.name} ({columns})"]
        if self.labels is not None:
            statements.append(
                f"CREATE TABLE {self.labels} ("
                f"{self.key} TEXT NOT NULL REFERENCES {self.name} ON DELETE CASCADE, "
                f"label_id TEXT NOT NULL, PRIMARY KEY ({self.key}, label_id))"
                " WITHOUT ROWID"
            )
        return tuple(statements)


_CREATED_MODIFIED: Final = (
    ("created_at", _REQUIRED_TEXT),
    ("modified_at", _REQUIRED_TEXT),
)

FLOORS: Final = Table(
    "floors",
    (
        ("floor_id", _KEY),
        ("name", _REQUIRED_TEXT),
        ("level", _INTEGER),
        ("icon", _TEXT),
        *_CREATED_MODIFIED,
    ),
)
LABELS: Final = Table(
    "labels",
    (
        ("label_id", _KEY),
        ("name", _REQUIRED_TEXT),
        ("description", _TEXT),
        ("color", _TEXT),
        ("icon", _TEXT),
        *_CREATED_MODIFIED,
    ),
)
AREAS: Final = Table(
    "areas",
    (
        ("area_id", _KEY),
        ("name", _REQUIRED_TEXT),
        ("floor_id", _TEXT),
        ("icon", _TEXT),
        ("picture", _TEXT),
        ("temperature_entity_id", _TEXT),
        ("humidity_entity_id", _TEXT),
        *_CREATED_MODIFIED,
    ),
    labels="area_labels",
)
DEVICES: Final = Table(
    "devices",
    (
        ("device_id", _KEY),
        ("parent_device_id", _TEXT),
        ("name", _TEXT),
        ("name_by_user", _TEXT),
        ("manufacturer", _TEXT),
        ("model", _TEXT),
        ("model_id", _TEXT),
        ("serial_number", _TEXT),
        ("sw_version", _TEXT),
        ("hw_version", _TEXT),
        ("via_device_id", _TEXT),
        ("entry_type", _TEXT),
        ("area_id", _TEXT),
        ("disabled_by", _TEXT),
        ("config_entry_id", _REQUIRED_TEXT),
        ("config_subentry_id", _TEXT),
        *_CREATED_MODIFIED,
    ),
    labels="device_labels",
)
ENTITIES: Final = Table(
    "entities",
    (
        ("entity_id", _KEY),
        ("id", _REQUIRED_TEXT),
        ("domain", _REQUIRED_TEXT),
        ("object_id", _REQUIRED_TEXT),
        ("platform", _REQUIRED_TEXT),
        ("unique_id", _REQUIRED_TEXT),
        ("device_id", _TEXT),
        ("area_id", _TEXT),
        ("name", _TEXT),
        ("original_name", _TEXT),
        ("has_entity_name", "INTEGER NOT NULL"),
        ("device_class", _TEXT),
        ("original_device_class", _TEXT),
        ("unit_of_measurement", _TEXT),
        ("entity_category", _TEXT),
        ("disabled_by", _TEXT),
        ("hidden_by", _TEXT),
        ("config_entry_id", _TEXT),
        ("config_subentry_id", _TEXT),
        *_CREATED_MODIFIED,
    ),
    labels="entity_labels",
)
# In the order a full resync writes them. No table references another, so any order works.
TABLES: Final = (FLOORS, LABELS, AREAS, DEVICES, ENTITIES)
# Every table, link tables included, as `RegistryMirror.rows` counts them.
TABLE_NAMES: Final = tuple(
    name for table in TABLES for name in (table.name, table.labels) if name is not None
)

# Statements that take the tables from version N (the index) to N + 1; the file's version
# is kept in `PRAGMA user_version`. A new version is a new entry, never an edited one:
# before a version 2 changes a table of TABLES, version 1 must be frozen as the
# statements it generates today (tests/mirror/snapshots holds them).
_MIGRATIONS: Final = (
    (
        *(statement for table in TABLES for statement in table.create()),
        # What readers join and filter on.
        "CREATE INDEX areas_floor_id ON areas (floor_id)",
        "CREATE INDEX devices_area_id ON devices (area_id)",
        "CREATE INDEX entities_id ON entities (id)",
        "CREATE INDEX entities_object_id ON entities (object_id)",
        "CREATE INDEX entities_device_id ON entities (device_id)",
        "CREATE INDEX entities_area_id ON entities (area_id)",
        "CREATE INDEX area_labels_label_id ON area_labels (label_id)",
        "CREATE INDEX device_labels_label_id ON device_labels (label_id)",
        "CREATE INDEX entity_labels_label_id ON entity_labels (label_id)",
        # An entity is in its own area, or else in its device's: what Home Assistant
        # shows, and what most queries want.
        "CREATE VIEW entity_overview AS SELECT"
        " e.entity_id, e.domain, e.object_id,"
        " coalesce(e.name, e.original_name) AS name,"
        " coalesce(e.device_class, e.original_device_class) AS device_class,"
        " e.unit_of_measurement,"
        " e.device_id, coalesce(d.name_by_user, d.name) AS device_name,"
        " a.area_id, a.name AS area_name,"
        " f.floor_id, f.name AS floor_name"
        " FROM entities e"
        " LEFT JOIN devices d ON d.device_id = e.device_id"
        " LEFT JOIN areas a ON a.area_id = coalesce(e.area_id, d.area_id)"
        " LEFT JOIN floors f ON f.floor_id = a.floor_id",
    ),
)
FILE_VERSION: Final = len(_MIGRATIONS)


class MirrorError(SqliteFileError):
    """The mirror file cannot be used: unwritable, locked, corrupt or not ours."""


type Value = str | int | None
type Row = tuple[Value, ...]


class Mirrored(NamedTuple):
    """What the mirror holds for one registry entry: its row and its label ids."""

    row: Row
    labels: frozenset[str]


def foreign_file_reason(
    application_id: int, user_version: int, has_tables: bool
) -> str | None:
    """Say why a file with these header values must not be written; None if it may.

    An SQLite file without tables is free to take (the file a failed first start
    left behind, or one made empty on purpose); one with tables is ours only with our
    application id, and only up to the file version this code knows.
    """
    if application_id == APPLICATION_ID:
        if user_version > FILE_VERSION:
            return (
                f"has file version {user_version}, newer than this version of the "
                f"integration knows ({FILE_VERSION})"
            )
        return None
    if has_tables:
        return "is another program's SQLite database, not a registry mirror"
    return None


async def prepare(db: aiosqlite.Connection) -> None:
    """Check that the open file is a mirror (or empty), set it up, migrate it forward.

    Raises sqlite3.Error, or MirrorError with the reason the file is not ours.
    """
    # The first read: raises "file is not a database" before anything is written.
    ((application_id,),) = await db.execute_fetchall("PRAGMA application_id")
    ((version,),) = await db.execute_fetchall("PRAGMA user_version")
    ((tables,),) = await db.execute_fetchall("SELECT count(*) FROM sqlite_schema")
    if reason := foreign_file_reason(application_id, version, tables > 0):
        raise MirrorError(reason)
    if application_id != APPLICATION_ID:
        version = 0  # an SQLite file without tables: new, whatever its user_version
    # WAL: readers (Grafana, a notebook) never block the writer nor are blocked by it,
    # and each sees the file as of the last commit before its read began. The mirror
    # is rebuilt from the registries at every start, so NORMAL sync costs nothing.
    if (mode := await use_wal(db)) != "wal":
        raise MirrorError(f"cannot use write-ahead logging ({mode})")
    # Off by default in SQLite, and per connection; a no-op inside a transaction.
    await db.execute("PRAGMA foreign_keys=ON")
    if version < FILE_VERSION:
        # PRAGMA takes no parameters; the values are our own integer constants.
        await migrate(
            db,
            _MIGRATIONS,
            version,
            [
                f"PRAGMA application_id = {APPLICATION_ID:d}",
                f"PRAGMA user_version = {FILE_VERSION:d}",
            ],
        )
