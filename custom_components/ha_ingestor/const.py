"""Constants for HA Ingestor."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "ha_ingestor"
LOGGER = logging.getLogger(__package__)

CONF_API_VERSION: Final = "api_version"
CONF_DATABASE: Final = "database"
CONF_RETENTION_POLICY: Final = "retention_policy"
CONF_ORGANIZATION: Final = "organization"
CONF_BUCKET: Final = "bucket"

API_V1: Final = "1"
API_V2: Final = "2"

DEFAULT_URL: Final = "http://localhost:8086"
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

# A batch is written when it holds this many points, or this long after the last write.
DEFAULT_BATCH_SIZE: Final = 1000
DEFAULT_FLUSH_INTERVAL: Final = 1.0
BATCH_SIZE_RANGE: Final = (100, 100_000)
FLUSH_INTERVAL_RANGE: Final = (0.1, 60.0)

REQUEST_TIMEOUT: Final = 10.0
