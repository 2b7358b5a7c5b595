"""The house: 500 entities and the state changes fired for them.

70% numeric sensors with a unit, a device class and a few attributes, 20% on/off binary
sensors, 10% text sensors. Every state change carries the attribute `seq`, unique per
event: Home Assistant fires no state_changed event for a state and attributes it already
has, and `seq` lets every stored point be traced to the event that made it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import time
from typing import Any, Final

from homeassistant.core import HomeAssistant

# Events fired back to back before yielding to the event loop once, as a busy house's
# integrations do: many updates arrive together, then the loop does other work.
CHUNK: Final = 100
NUMERIC_SHARE: Final = 0.7
ON_OFF_SHARE: Final = 0.2
SEQ: Final = "seq"
# The seq of the states that create the entities before anything is measured.
INITIAL_SEQ: Final = -1

_NUMERIC_KINDS: Final = (
    ("temperature", "°C", 21.0, 0.1),
    ("humidity", "%", 45.0, 1.0),
    ("power", "W", 350.0, 7.0),
    ("illuminance", "lx", 120.0, 3.0),
    ("pressure", "hPa", 1013.0, 0.1),
)
_ON_OFF_CLASSES: Final = ("door", "motion", "window", "occupancy")
_TEXT_STATES: Final = ("idle", "heating", "cleaning", "paused", "docked", "error 7")
_NUMERIC_STEPS: Final = 16


@dataclass(frozen=True, slots=True)
class BenchEntity:
    """One entity: the states it cycles through and its attributes without `seq`."""

    entity_id: str
    states: Sequence[str]
    attributes: Mapping[str, Any]


def _numeric(number: int) -> BenchEntity:
    device_class, unit, base, step = _NUMERIC_KINDS[number % len(_NUMERIC_KINDS)]
    return BenchEntity(
        entity_id=f"sensor.bench_{device_class}_{number:03d}",
        states=tuple(
            str(round(base + step * i, 1))
            for i in range(-_NUMERIC_STEPS // 2, _NUMERIC_STEPS // 2)
        ),
        attributes={
            "unit_of_measurement": unit,
            "device_class": device_class,
            "state_class": "measurement",
            "friendly_name": f"Bench {device_class} {number}",
        },
    )


def _on_off(number: int) -> BenchEntity:
    device_class = _ON_OFF_CLASSES[number % len(_ON_OFF_CLASSES)]
    return BenchEntity(
        entity_id=f"binary_sensor.bench_{device_class}_{number:03d}",
        states=("on", "off"),
        attributes={
            "device_class": device_class,
            "friendly_name": f"Bench {device_class} {number}",
        },
    )


def _text(number: int) -> BenchEntity:
    return BenchEntity(
        entity_id=f"sensor.bench_status_{number:03d}",
        states=_TEXT_STATES,
        attributes={"friendly_name": f"Bench status {number}", "icon": "mdi:robot"},
    )


def make_entities(count: int) -> list[BenchEntity]:
    """`count` entities: 70% numeric, 20% on/off, the rest text."""
    numeric = round(count * NUMERIC_SHARE)
    on_off = round(count * ON_OFF_SHARE)
    return [
        _numeric(n) if n < numeric else _on_off(n) if n < numeric + on_off else _text(n)
        for n in range(count)
    ]


def state_change(
    entities: Sequence[BenchEntity], seq: int
) -> tuple[str, str, dict[str, Any]]:
    """State change number `seq`: entities take turns, each moves to its next state.

    Return its entity id, state and attributes. A negative `seq` down to
    -len(entities) is the entity's first state (with that `seq`).
    """
    entity = entities[seq % len(entities)]
    rounds = seq // len(entities)
    return (
        entity.entity_id,
        entity.states[rounds % len(entity.states)],
        {**entity.attributes, SEQ: seq},
    )


def set_state(hass: HomeAssistant, entities: Sequence[BenchEntity], seq: int) -> None:
    """Fire state change number `seq`."""
    hass.states.async_set(*state_change(entities, seq))


def create_entities(hass: HomeAssistant, entities: Sequence[BenchEntity]) -> None:
    """Give every entity its first state (a state_changed event each, not measured)."""
    for entity in entities:
        hass.states.async_set(
            entity.entity_id, entity.states[-1], {**entity.attributes, SEQ: INITIAL_SEQ}
        )


async def fire_burst(
    hass: HomeAssistant, entities: Sequence[BenchEntity], events: int
) -> None:
    """Fire `events` state changes as fast as the event loop runs them."""
    for start in range(0, events, CHUNK):
        for seq in range(start, min(start + CHUNK, events)):
            set_state(hass, entities, seq)
        await asyncio.sleep(0)


async def fire_paced(
    hass: HomeAssistant,
    entities: Sequence[BenchEntity],
    rate: float,
    seconds: float,
) -> list[int]:
    """Fire state changes at `rate` per second for `seconds`.

    Return when each was fired (time.time_ns), to tell which fell into an outage.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    fired_ns = []
    for seq in range(int(rate * seconds)):
        # An absolute schedule: a late wake-up is made up, not carried forward.
        if (delay := start + seq / rate - loop.time()) > 0:
            await asyncio.sleep(delay)
        fired_ns.append(time.time_ns())
        set_state(hass, entities, seq)
    return fired_ns
