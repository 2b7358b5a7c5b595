"""The registry mirror's file format: its tables, and how registry entries become rows.

docs/registry.md describes the tables for the people who query them. The tables are
created by `_MIGRATIONS`; `TABLES` names the columns the code writes, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, NamedTuple

import aiosqlite
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)

from .compat import all_devices, device_config_entry, stored_device
from .sqlite_schema import migrate, use_wal

# `PRAGMA application_id` of every mirror file ("HAIR": HA Ingestor Registry). It tells
# our file apart from any other SQLite database, whatever that one's user_version.
APPLICATION_ID: Final = 0x48414952

# Statements that take the schema from version N (the index) to N + 1; the file's version
# is kept in `PRAGMA user_version`. A new version is a new entry, never an edited one.
#
# References between registries (an entity's area_id, a label id in a link table) are
# not foreign keys: Home Assistant does not enforce them (an entity may carry a label
# id or area id that no longer exists), and the mirror holds what Home Assistant holds.
# The link tables do reference the row they belong to.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE floors ("
        " floor_id TEXT PRIMARY KEY NOT NULL,"
        " name TEXT NOT NULL,"
        " level INTEGER,"
        " icon TEXT,"
        " created_at TEXT NOT NULL,"
        " modified_at TEXT NOT NULL)",
        "CREATE TABLE labels ("
        " label_id TEXT PRIMARY KEY NOT NULL,"
        " name TEXT NOT NULL,"
        " description TEXT,"
        " color TEXT,"
        " icon TEXT,"
        " created_at TEXT NOT NULL,"
        " modified_at TEXT NOT NULL)",
        "CREATE TABLE areas ("
        " area_id TEXT PRIMARY KEY NOT NULL,"
        " name TEXT NOT NULL,"
        " floor_id TEXT,"
        " icon TEXT,"
        " picture TEXT,"
        " temperature_entity_id TEXT,"
        " humidity_entity_id TEXT,"
        " created_at TEXT NOT NULL,"
        " modified_at TEXT NOT NULL)",
        "CREATE TABLE devices ("
        " device_id TEXT PRIMARY KEY NOT NULL,"
        " parent_device_id TEXT,"
        " name TEXT,"
        " name_by_user TEXT,"
        " manufacturer TEXT,"
        " model TEXT,"
        " model_id TEXT,"
        " serial_number TEXT,"
        " sw_version TEXT,"
        " hw_version TEXT,"
        " via_device_id TEXT,"
        " entry_type TEXT,"
        " area_id TEXT,"
        " disabled_by TEXT,"
        " config_entry_id TEXT NOT NULL,"
        " config_subentry_id TEXT,"
        " created_at TEXT NOT NULL,"
        " modified_at TEXT NOT NULL)",
        "CREATE TABLE entities ("
        " entity_id TEXT PRIMARY KEY NOT NULL,"
        " id TEXT NOT NULL,"
        " domain TEXT NOT NULL,"
        " object_id TEXT NOT NULL,"
        " platform TEXT NOT NULL,"
        " unique_id TEXT NOT NULL,"
        " device_id TEXT,"
        " area_id TEXT,"
        " name TEXT,"
        " original_name TEXT,"
        " has_entity_name INTEGER NOT NULL,"
        " device_class TEXT,"
        " original_device_class TEXT,"
        " unit_of_measurement TEXT,"
        " entity_category TEXT,"
        " disabled_by TEXT,"
        " hidden_by TEXT,"
        " config_entry_id TEXT,"
        " config_subentry_id TEXT,"
        " created_at TEXT NOT NULL,"
        " modified_at TEXT NOT NULL)",
        "CREATE TABLE area_labels ("
        " area_id TEXT NOT NULL REFERENCES areas ON DELETE CASCADE,"
        " label_id TEXT NOT NULL,"
        " PRIMARY KEY (area_id, label_id)) WITHOUT ROWID",
        "CREATE TABLE device_labels ("
        " device_id TEXT NOT NULL REFERENCES devices ON DELETE CASCADE,"
        " label_id TEXT NOT NULL,"
        " PRIMARY KEY (device_id, label_id)) WITHOUT ROWID",
        "CREATE TABLE entity_labels ("
        " entity_id TEXT NOT NULL REFERENCES entities ON DELETE CASCADE,"
        " label_id TEXT NOT NULL,"
        " PRIMARY KEY (entity_id, label_id)) WITHOUT ROWID",
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
SCHEMA_VERSION: Final = len(_MIGRATIONS)


@dataclass(frozen=True, slots=True)
class Table:
    """A table of the mirror: one row per registry entry, keyed by its first column."""

    name: str
    columns: tuple[str, ...]
    # The link table holding (key, label_id) for each of the entry's labels.
    labels: str | None = None

    @property
    def key(self) -> str:
        """The column that identifies an entry."""
        return self.columns[0]


FLOORS: Final = Table(
    "floors", ("floor_id", "name", "level", "icon", "created_at", "modified_at")
)
LABELS: Final = Table(
    "labels",
    ("label_id", "name", "description", "color", "icon", "created_at", "modified_at"),
)
AREAS: Final = Table(
    "areas",
    (
        "area_id",
        "name",
        "floor_id",
        "icon",
        "picture",
        "temperature_entity_id",
        "humidity_entity_id",
        "created_at",
        "modified_at",
    ),
    labels="area_labels",
)
DEVICES: Final = Table(
    "devices",
    (
        "device_id",
        "parent_device_id",
        "name",
        "name_by_user",
        "manufacturer",
        "model",
        "model_id",
        "serial_number",
        "sw_version",
        "hw_version",
        "via_device_id",
        "entry_type",
        "area_id",
        "disabled_by",
        "config_entry_id",
        "config_subentry_id",
        "created_at",
        "modified_at",
    ),
    labels="device_labels",
)
ENTITIES: Final = Table(
    "entities",
    (
        "entity_id",
        "id",
        "domain",
        "object_id",
        "platform",
        "unique_id",
        "device_id",
        "area_id",
        "name",
        "original_name",
        "has_entity_name",
        "device_class",
        "original_device_class",
        "unit_of_measurement",
        "entity_category",
        "disabled_by",
        "hidden_by",
        "config_entry_id",
        "config_subentry_id",
        "created_at",
        "modified_at",
    ),
    labels="entity_labels",
)
# In the order a full resync writes them. No table references another, so any order works.
TABLES: Final = (FLOORS, LABELS, AREAS, DEVICES, ENTITIES)
# Every table, link tables included, as `RegistryMirror.rows` counts them.
TABLE_NAMES: Final = tuple(
    name for table in TABLES for name in (table.name, table.labels) if name is not None
)


class MirrorError(Exception):
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
    application id, and only up to the schema version this code knows.
    """
    if application_id == APPLICATION_ID:
        if user_version > SCHEMA_VERSION:
            return (
                f"has schema version {user_version}, newer than this version of the "
                f"integration knows ({SCHEMA_VERSION})"
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
    if version < SCHEMA_VERSION:
        # PRAGMA takes no parameters; the values are our own integer constants.
        await migrate(
            db,
            _MIGRATIONS,
            version,
            [
                f"PRAGMA application_id = {APPLICATION_ID:d}",
                f"PRAGMA user_version = {SCHEMA_VERSION:d}",
            ],
        )


def _time(moment: datetime) -> str:
    # Fixed width, so that the text sorts like the time; SQLite's date functions and
    # Grafana read it as RFC 3339.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _text(value: str | None) -> str | None:
    # Enum members (disabled_by, entity_category) as their plain value.
    return None if value is None else str(value)


def floor_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the floors with these ids (that exist), or of all floors."""
    registry = fr.async_get(hass)
    if keys is None:
        floors: Iterable[fr.FloorEntry] = registry.async_list_floors()
    else:
        floors = filter(None, map(registry.async_get_floor, keys))
    return {
        floor.floor_id: Mirrored(
            (
                floor.floor_id,
                floor.name,
                floor.level,
                floor.icon,
                _time(floor.created_at),
                _time(floor.modified_at),
            ),
            frozenset(),
        )
        for floor in floors
    }


def label_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the labels with these ids (that exist), or of all labels."""
    registry = lr.async_get(hass)
    if keys is None:
        labels: Iterable[lr.LabelEntry] = registry.async_list_labels()
    else:
        labels = filter(None, map(registry.async_get_label, keys))
    return {
        label.label_id: Mirrored(
            (
                label.label_id,
                label.name,
                label.description,
                label.color,
                label.icon,
                _time(label.created_at),
                _time(label.modified_at),
            ),
            frozenset(),
        )
        for label in labels
    }


def area_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the areas with these ids (that exist), or of all areas."""
    registry = ar.async_get(hass)
    if keys is None:
        areas: Iterable[ar.AreaEntry] = registry.async_list_areas()
    else:
        areas = filter(None, map(registry.async_get_area, keys))
    return {
        area.id: Mirrored(
            (
                area.id,
                area.name,
                area.floor_id,
                area.icon,
                area.picture,
                area.temperature_entity_id,
                area.humidity_entity_id,
                _time(area.created_at),
                _time(area.modified_at),
            ),
            frozenset(area.labels),
        )
        for area in areas
    }


def device_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the devices with these ids (that exist), or of all devices.

    Child devices (parts of a parent device) are rows too, with `parent_device_id`
    set and no manufacturer, model or versions of their own.
    """
    devices: Iterable[dr.AnyDeviceEntry]
    if keys is None:
        devices = all_devices(hass)
    else:
        # A composite device id (of a device split in Home Assistant 2026) names no
        # device of its own: its parts are mirrored under their own ids.
        devices = filter(None, (stored_device(hass, key) for key in keys))
    return {device.id: _device_row(device) for device in devices}


def _device_row(device: dr.AnyDeviceEntry) -> Mirrored:
    # A child device is a part of its parent: the hardware is the parent's.
    hardware: Row
    if not isinstance(device, dr.DeviceEntry):
        parent_device_id: str | None = device.parent_device_id
        hardware = (None,) * 8
    else:
        parent_device_id = None
        hardware = (
            device.manufacturer,
            device.model,
            device.model_id,
            device.serial_number,
            device.sw_version,
            device.hw_version,
            device.via_device_id,
            _text(device.entry_type),
        )
    return Mirrored(
        (
            device.id,
            parent_device_id,
            device.name,
            device.name_by_user,
            *hardware,
            device.area_id,
            _text(device.disabled_by),
            *device_config_entry(device),
            _time(device.created_at),
            _time(device.modified_at),
        ),
        frozenset(device.labels),
    )


def entity_rows(hass: HomeAssistant, keys: Iterable[str] | None) -> dict[str, Mirrored]:
    """Return the rows of the entities with these ids (that exist), or of all entities."""
    registry = er.async_get(hass)
    if keys is None:
        entities: Iterable[er.RegistryEntry] = registry.entities.values()
    else:
        entities = filter(None, map(registry.entities.get, keys))
    return {entity.entity_id: _entity_row(entity) for entity in entities}


def _entity_row(entity: er.RegistryEntry) -> Mirrored:
    return Mirrored(
        (
            entity.entity_id,
            entity.id,
            entity.domain,
            entity.entity_id.partition(".")[2],
            entity.platform,
            entity.unique_id,
            entity.device_id,
            entity.area_id,
            entity.name,
            entity.original_name,
            int(entity.has_entity_name),
            entity.device_class,
            entity.original_device_class,
            entity.unit_of_measurement,
            _text(entity.entity_category),
            _text(entity.disabled_by),
            _text(entity.hidden_by),
            entity.config_entry_id,
            entity.config_subentry_id,
            _time(entity.created_at),
            _time(entity.modified_at),
        ),
        frozenset(entity.labels),
    )
