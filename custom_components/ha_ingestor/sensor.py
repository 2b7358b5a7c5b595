"""Diagnostic sensors: what was received, written, waits, was dropped or set aside.

And how far a backfill from the recorder has come.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, UnitOfInformation, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import HaIngestorConfigEntry, PipelineSnapshot
from .entity import IngestorEntity
from .pipeline.backfill import BackfillProgress

# The coordinator updates every entity at once; nothing is fetched per entity.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class IngestorSensorEntityDescription(SensorEntityDescription):
    """A number of the pipeline, read from a snapshot."""

    value_fn: Callable[[PipelineSnapshot], float | int | datetime | None]
    attributes_fn: Callable[[PipelineSnapshot], dict[str, Any]] | None = None
    exists_fn: Callable[[HaIngestorConfigEntry], bool] = lambda _: True


def _backfill_attributes(progress: BackfillProgress | None) -> dict[str, Any]:
    """Describe the window, the counts and where the backfill stands."""
    if progress is None:
        return {}
    return {
        "status": progress.status.value,
        "start": progress.start,
        "end": progress.end,
        "reached": progress.reached,
        "state_changes": progress.state_changes,
        "read": progress.read,
        "written": progress.written,
        "skipped": progress.skipped,
        "waiting": progress.waiting,
    }


SENSORS: tuple[IngestorSensorEntityDescription, ...] = (
    IngestorSensorEntityDescription(
        key="state_changes_received",
        translation_key="state_changes_received",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda s: s.state_changes_received,
    ),
    IngestorSensorEntityDescription(
        key="points_written",
        translation_key="points_written",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda s: s.points_written,
        attributes_fn=lambda s: {
            "non_finite_values_skipped": s.non_finite_values_skipped
        },
    ),
    IngestorSensorEntityDescription(
        key="points_waiting",
        translation_key="points_waiting",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.points_waiting,
    ),
    IngestorSensorEntityDescription(
        key="spool_size",
        translation_key="spool_size",
        device_class=SensorDeviceClass.DATA_SIZE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfInformation.BYTES,
        suggested_unit_of_measurement=UnitOfInformation.MEBIBYTES,
        suggested_display_precision=1,
        entity_registry_enabled_default=False,
        value_fn=lambda s: s.spool_bytes,
    ),
    IngestorSensorEntityDescription(
        key="points_dropped",
        translation_key="points_dropped",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda s: s.points_dropped,
        attributes_fn=lambda s: {
            "points_dropped_spool_full": s.points_dropped_spool_full
        },
    ),
    IngestorSensorEntityDescription(
        key="points_quarantined",
        translation_key="points_quarantined",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.points_quarantined,
        attributes_fn=lambda s: {"points_refused": s.points_refused},
    ),
    IngestorSensorEntityDescription(
        key="last_write",
        translation_key="last_write",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda s: s.last_write,
    ),
    IngestorSensorEntityDescription(
        key="write_latency",
        translation_key="write_latency",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        suggested_display_precision=0,
        entity_registry_enabled_default=False,
        value_fn=lambda s: s.last_write_latency_ms,
    ),
    IngestorSensorEntityDescription(
        key="events_per_minute",
        translation_key="events_per_minute",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda s: s.events_per_minute,
    ),
    IngestorSensorEntityDescription(
        key="registry_mirror_rows",
        translation_key="registry_mirror_rows",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: (
            None if s.mirror_rows is None else sum(rows for _, rows in s.mirror_rows)
        ),
        attributes_fn=lambda s: dict(s.mirror_rows or ()),
        exists_fn=lambda entry: entry.runtime_data.mirror is not None,
    ),
    IngestorSensorEntityDescription(
        key="history_backfill",
        translation_key="history_backfill",
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        value_fn=lambda s: None if s.backfill is None else s.backfill.percent,
        attributes_fn=lambda s: _backfill_attributes(s.backfill),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HaIngestorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the entry's sensors."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        IngestorSensor(coordinator, description)
        for description in SENSORS
        if description.exists_fn(entry)
    )


class IngestorSensor(IngestorEntity, SensorEntity):
    """One number of the pipeline."""

    entity_description: IngestorSensorEntityDescription

    @property
    def native_value(self) -> float | int | datetime | None:
        """The number in the latest snapshot."""
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Details of the number, where it has any."""
        if (attributes_fn := self.entity_description.attributes_fn) is None:
            return None
        return attributes_fn(self.coordinator.data)
