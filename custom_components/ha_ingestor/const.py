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

# A batch is written when it holds this many points, or this long after the last write.
DEFAULT_BATCH_SIZE: Final = 1000
DEFAULT_FLUSH_INTERVAL: Final = 1.0

REQUEST_TIMEOUT: Final = 10.0
