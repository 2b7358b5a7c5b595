"""Turn a Home Assistant state change into one InfluxDB line, per schema preset.

`create_encoder` builds the preset the options choose: `core_compatible` writes what
Home Assistant's own influxdb integration writes, so that its users keep their
measurements, fields and queries; `rich` adds the registries' context and gives every
field one type forever. docs/schema.md describes both, with real lines. `escaping` and
`encoder` are what both share; `parse` reads a written line back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..const import CONF_PRESET, PRESET_CORE_COMPATIBLE, PRESET_RICH
from ..registry.cache import RegistryCache
from .core_compatible import CoreCompatibleEncoder
from .encoder import Encoder, SkippedValues
from .rich import RichEncoder


def create_encoder(
    options: Mapping[str, Any], registry: RegistryCache, skipped: SkippedValues
) -> Encoder:
    """Build the encoder of the preset the options choose (core_compatible by default).

    It counts the values it leaves out in `skipped`.
    """
    preset = options.get(CONF_PRESET, PRESET_CORE_COMPATIBLE)
    if preset == PRESET_CORE_COMPATIBLE:
        return CoreCompatibleEncoder(options, skipped)
    if preset == PRESET_RICH:
        return RichEncoder(options, registry, skipped)
    raise ValueError(f"Unknown schema preset {preset!r}")
