"""HA Ingestor's memory buffer cap in a down-burst run: in lines, and their mean size.

Imports the integration itself, so a child imports this module only in an HA Ingestor
run, once Home Assistant has loaded the integration.
"""

from __future__ import annotations

from collections.abc import Sequence
import statistics

from homeassistant.core import HomeAssistant, State

from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    DEFAULT_BATCH_SIZE,
    DOMAIN,
)
from custom_components.ha_ingestor.line_protocol import create_encoder
from custom_components.ha_ingestor.line_protocol.encoder import timestamp_us
from custom_components.ha_ingestor.pipeline.batcher import MEMORY_CAP_BATCHES
from custom_components.ha_ingestor.pipeline.stats import PipelineStats
from custom_components.ha_ingestor.registry.cache import RegistryCache

from .protocol import RunSpec
from .results import RunResult
from .workload import BenchEntity, state_change


def record_buffer_cap(
    hass: HomeAssistant,
    spec: RunSpec,
    entities: Sequence[BenchEntity],
    result: RunResult,
) -> None:
    """Add HA Ingestor's memory buffer cap, in lines and their mean size, to `result`.

    The cap is what pipeline/batcher.py allows: MEMORY_CAP_BATCHES batches of the entry's
    batch_size. The lines measured are what the integration's own encoder, built from
    the entry's options, makes of each entity's last state change of the burst, with
    the change before it as the old state: entities take turns, so these are the
    burst's mix.
    """
    options = hass.config_entries.async_entries(DOMAIN)[0].options
    encoder = create_encoder(options, RegistryCache(hass), PipelineStats())
    sizes = []
    for seq in range(max(spec.events - len(entities), 0), spec.events):
        old_state = State(*state_change(entities, seq - len(entities)))
        new_state = State(*state_change(entities, seq))
        line = encoder(
            new_state, old_state, timestamp_us(new_state.last_updated_timestamp)
        )
        if line is not None:
            sizes.append(len(line.encode()))
    result.batch_size = int(options.get(CONF_BATCH_SIZE, DEFAULT_BATCH_SIZE))
    result.buffer_cap_lines = result.batch_size * MEMORY_CAP_BATCHES
    result.mean_line_bytes = statistics.fmean(sizes)
