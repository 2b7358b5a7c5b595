"""Constants for HA Ingestor."""

from __future__ import annotations

import logging
from typing import Final

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN

DOMAIN: Final = "ha_ingestor"
LOGGER = logging.getLogger(__package__)

CONF_API_VERSION: Final = "api_version"
CONF_DATABASE: Final = "database"
CONF_RETENTION_POLICY: Final = "retention_policy"
CONF_ORGANIZATION: Final = "organization"
CONF_BUCKET: Final = "bucket"
# InfluxDB 3: acknowledge writes before the server's write-ahead log is persisted.
CONF_NO_SYNC: Final = "no_sync"
# A PEM file of the certificate authorities the server's certificate is checked
# against, instead of the system's (taken over from the built-in integration).
CONF_SSL_CA_CERT: Final = "ssl_ca_cert"

API_V1: Final = "1"
API_V2: Final = "2"
API_V3: Final = "3"

DEFAULT_URL: Final = "http://localhost:8086"
DEFAULT_V3_URL: Final = "http://localhost:8181"
DEFAULT_DATABASE: Final = "home_assistant"

CONF_BATCH_SIZE: Final = "batch_size"
CONF_FLUSH_INTERVAL: Final = "flush_interval"
CONF_INCLUDE_DOMAINS: Final = "include_domains"
CONF_INCLUDE_ENTITIES: Final = "include_entities"
CONF_INCLUDE_ENTITY_GLOBS: Final = "include_entity_globs"
CONF_EXCLUDE_DOMAINS: Final = "exclude_domains"
CONF_EXCLUDE_ENTITIES: Final = "exclude_entities"
CONF_EXCLUDE_ENTITY_GLOBS: Final = "exclude_entity_globs"
CONF_SKIP_UNAVAILABLE: Final = "skip_unavailable"
# States that hold no value: skipped by that option, else written as the text alone.
NO_VALUE_STATES: Final = frozenset((STATE_UNKNOWN, STATE_UNAVAILABLE))
CONF_INCLUDE_DEVICE_CLASSES: Final = "include_device_classes"
CONF_EXCLUDE_DEVICE_CLASSES: Final = "exclude_device_classes"
CONF_INCLUDE_AREAS: Final = "include_areas"
CONF_EXCLUDE_AREAS: Final = "exclude_areas"
CONF_INCLUDE_LABELS: Final = "include_labels"
CONF_EXCLUDE_LABELS: Final = "exclude_labels"

# Schema options. The measurement rules and override are those of Home Assistant's
# built-in influxdb integration (measurement_attr, override_measurement).
CONF_PRESET: Final = "preset"
PRESET_CORE_COMPATIBLE: Final = "core_compatible"
PRESET_RICH: Final = "rich"
CONF_MEASUREMENT_RULE: Final = "measurement_rule"
MEASUREMENT_UNIT: Final = "unit_of_measurement"
# Core's domain__device_class: a select option is a translation key, which may not hold
# two underscores in a row. Entries of version 1.1 stored core's name (async_migrate_entry).
MEASUREMENT_DOMAIN_DEVICE_CLASS: Final = "domain_device_class"
MEASUREMENT_DEVICE_CLASS: Final = "device_class"
MEASUREMENT_ENTITY_ID: Final = "entity_id"
CONF_MEASUREMENT_OVERRIDE: Final = "measurement_override"
CONF_GLOBAL_TAGS: Final = "global_tags"  # dict[str, str]
CONF_IGNORE_ATTRIBUTES: Final = "ignore_attributes"  # list[str]
CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: Final = (
    "ignore_attributes_by_domain"  # dict[str, list[str]]
)
# What the built-in integration calls component_config and component_config_glob's
# ignore_attributes: by entity id or entity id pattern (line_protocol/entity_settings).
CONF_IGNORE_ATTRIBUTES_BY_ENTITY: Final = (
    "ignore_attributes_by_entity"  # dict[str, list[str]]
)
# Its component_config(_domain, _glob)'s override_measurement: by domain, entity id or
# pattern; an empty one means the rule's measurement (or the one for everything).
CONF_MEASUREMENT_OVERRIDES: Final = "measurement_overrides"  # dict[str, str]
# Its default_measurement: the measurement where the rule finds none.
CONF_DEFAULT_MEASUREMENT: Final = "default_measurement"
# Its tags_attributes: attributes written as tags rather than fields.
CONF_TAG_ATTRIBUTES: Final = "tag_attributes"  # list[str]
# Its precision: timestamps are cut to whole milliseconds or seconds.
CONF_TIMESTAMP_PRECISION: Final = "timestamp_precision"
PRECISION_MICROSECONDS: Final = "us"
PRECISION_MILLISECONDS: Final = "ms"
PRECISION_SECONDS: Final = "s"
# Microseconds per unit of each precision.
PRECISION_US: Final = {
    PRECISION_MICROSECONDS: 1,
    PRECISION_MILLISECONDS: 1_000,
    PRECISION_SECONDS: 1_000_000,
}

# Tags the presets write themselves: a global tag cannot take their names.
RESERVED_TAGS: Final = frozenset(
    ("domain", "entity_id", "device_class", "unit", "area", "floor", "device", "labels")
)

CONF_SPOOL_MAX_MB: Final = "spool_max_mb"
DEFAULT_SPOOL_MAX_MB: Final = 1024
SPOOL_MAX_MB_RANGE: Final = (16, 1_048_576)
CONF_HEARTBEAT_MINUTES: Final = "heartbeat_minutes"  # 0: off

# The registry mirror (mirror/), set in the config flow and the options.
CONF_MIRROR_ENABLED: Final = "registry_mirror"
CONF_MIRROR_PATH: Final = "registry_mirror_path"
DEFAULT_MIRROR_FILE: Final = "ha_ingestor_registry.sqlite"  # in the config dir
HEARTBEAT_MINUTES_RANGE: Final = (0, 1440)

# A batch is written when it holds this many points, or this long after the last write.
DEFAULT_BATCH_SIZE: Final = 1000
DEFAULT_FLUSH_INTERVAL: Final = 1.0
BATCH_SIZE_RANGE: Final = (100, 100_000)
FLUSH_INTERVAL_RANGE: Final = (0.1, 60.0)

# Gzip-compressed write requests: fewer bytes to a remote server, only CPU on localhost.
CONF_GZIP: Final = "gzip"
DEFAULT_GZIP: Final = False

REQUEST_TIMEOUT: Final = 10.0

# Backfill from the recorder (pipeline/backfill): points handed to the pipeline per
# second at most. The setup flow and the options offer it (a one-shot request, removed
# from the options once the entry has started it).
CONF_BACKFILL_PACE: Final = "backfill_pace"
DEFAULT_BACKFILL_PACE: Final = 1000
BACKFILL_PACE_RANGE: Final = (100, 100_000)
CONF_HISTORY_BACKFILL: Final = "history_backfill"

# Quarantined points read to summarize the quarantine (repair issue, diagnostics).
QUARANTINE_SUMMARY_POINTS: Final = 1000
