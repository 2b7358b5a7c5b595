"""A house's history, recorded by Home Assistant's real recorder, for the backfill tests.

`fill_history` sets states with `hass.states.async_set` at times spread over the past
days, as a house would have: numeric sensors with units and device classes, on/off
sensors, text sensors with list and dict attributes, thermostats (with a datetime, a
tuple, a set and an attribute the recorder does not keep), lights whose
brightness changes alone (an attribute-only change), `unknown`, `unavailable` and `nan`
states, a unit that changes, an entity renamed in the registry (the recorder moves its
history to the new id), an entity removed and added again, and contexts with a user
and a parent, some shared by several changes (one service call). The recorder stores
every change; the listener keeps what live ingestion was handed for each: the state,
the state before, the event's time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import datetime as dt
import random
from typing import Any, Final

from homeassistant.const import (
    ATTR_ATTRIBUTION,
    ATTR_RESTORED,
    ATTR_SUPPORTED_FEATURES,
    EVENT_STATE_CHANGED,
)
from homeassistant.core import (
    Context,
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers import entity_registry as er
from homeassistant.util.ulid import ulid_at_time

from custom_components.ha_ingestor.line_protocol.encoder import timestamp_us

RENAMED_FROM: Final = "sensor.house_rename_me"
RENAMED_TO: Final = "sensor.house_renamed"
UNIT_CHANGES: Final = "sensor.house_power_001"
REMOVED_AND_ADDED: Final = "sensor.house_text_006"
USER_ID: Final = "5f4dcc3b5aa765d61d8327deb882cf99"
# The recorder keeps these of no state (docs/schema.md, "What the recorder does not keep").
_UNRECORDED: Final = frozenset(
    {ATTR_ATTRIBUTION, ATTR_RESTORED, ATTR_SUPPORTED_FEATURES}
)

_NUMERIC: Final = (
    ("temperature", "°C", "measurement", 21.0, 0.1),
    ("power", "W", "measurement", 350.0, 7.5),
    ("humidity", "%", "measurement", 45.0, 1.0),
    ("energy", "kWh", "total_increasing", 1200.0, 0.01),
    ("illuminance", "lx", "measurement", 120.0, 3.0),
)
_TEXTS: Final = ("idle", "heating", "cleaning", "paused", "docked", "error 7")


@dataclass(frozen=True, slots=True)
class LiveChange:
    """What live ingestion was handed for one state change."""

    state: State
    old_state: State | None
    time_us: int


@dataclass(slots=True)
class _Entity:
    entity_id: str
    kind: int
    number: int
    step: int = 0


def _numeric(entity: _Entity, rng: random.Random) -> tuple[str, dict[str, Any]]:
    device_class, unit, state_class, base, step = _NUMERIC[entity.number % 5]
    value = base + step * rng.randint(-40, 40)
    attributes: dict[str, Any] = {
        "unit_of_measurement": unit,
        "device_class": device_class,
        "state_class": state_class,
        "friendly_name": f"House {device_class} {entity.number}",
    }
    if entity.entity_id == UNIT_CHANGES and entity.step >= _UNIT_CHANGE_STEP:
        attributes["unit_of_measurement"] = "kW"
        value /= 1000
    return str(round(value, 3)), attributes


_UNIT_CHANGE_STEP: Final = 10


def _state_of(entity: _Entity, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """The next state and attributes of an entity, by its kind."""
    entity.step += 1
    kind, number = entity.kind, entity.number
    if kind <= 4:
        return _numeric(entity, rng)
    if kind == 5:
        device_class = ("door", "motion")[number % 2]
        return rng.choice(("on", "off")), {
            "device_class": device_class,
            "friendly_name": f"House {device_class} {number}",
        }
    if kind == 6:
        return rng.choice(_TEXTS), {
            "friendly_name": f"House status {number}",
            "options": list(_TEXTS),
            "details": {"bin": rng.randint(1, 3), "full": rng.random() < 0.5},
        }
    if kind == 7:
        return rng.choice(("heat", "off", "cool")), {
            "current_temperature": round(19 + rng.random() * 4, 1),
            "hvac_modes": ["off", "heat", "cool"],
            "preset_mode": None,
            "boost": rng.random() < 0.2,
            "friendly_name": f"House thermostat {number}",
            "next_change": dt.datetime(
                2024, 11, 22, 8, entity.step % 60, tzinfo=dt.UTC
            ),
            "fan_modes": ("auto", "low"),
            "zones": {f"zone {number}"},
            ATTR_ATTRIBUTION: "House maker",
            ATTR_SUPPORTED_FEATURES: 17,
        }
    if kind == 8:
        # The brightness often changes alone: an attribute-only change.
        return rng.choice(("on", "on", "on", "off")), {
            "brightness": rng.randint(1, 255),
            "color_mode": "brightness",
            "friendly_name": f"House light {number}",
        }
    text = rng.choice(("unknown", "unavailable", "nan", "3.5", "4", "-1e3", "12.25"))
    return text, {"unit_of_measurement": "V", "friendly_name": f"House volts {number}"}


def _entities(count: int) -> list[_Entity]:
    domains = {5: "binary_sensor", 7: "climate", 8: "light"}
    names = {5: "contact", 6: "text", 7: "thermostat", 8: "light", 9: "volts"}
    entities = []
    for number in range(count):
        kind = number % 10
        domain = domains.get(kind, "sensor")
        name = names.get(kind) or _NUMERIC[number % 5][0]
        entities.append(_Entity(f"{domain}.house_{name}_{number:03d}", kind, number))
    # One numeric sensor is in the registry, to be renamed.
    entities[-1] = _Entity(RENAMED_FROM, 0, count - 1)
    return entities


async def fill_history(
    hass: HomeAssistant,
    *,
    changes: int,
    entities: int,
    start: float,
    end: float,
    seed: int = 16,
) -> list[LiveChange]:
    """Set `changes` states of `entities` entities between `start` and `end`.

    Returns what live ingestion was handed for each, in order. The caller waits for the
    recorder to have recorded them.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible house, not a secret
    house = _entities(entities)
    registry = er.async_get(hass)
    registered = registry.async_get_or_create(
        "sensor", "house", "rename-me", suggested_object_id="house_rename_me"
    )
    assert registered.entity_id == RENAMED_FROM
    handed: list[LiveChange] = []

    @callback
    def _listen(event: Event[EventStateChangedData]) -> None:
        if (state := event.data["new_state"]) is None or not state.entity_id.startswith(
            ("sensor.house", "binary_sensor.house", "climate.house", "light.house")
        ):
            return
        handed.append(
            LiveChange(
                state, event.data["old_state"], timestamp_us(event.time_fired_timestamp)
            )
        )

    unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, _listen)
    step = (end - start) / changes
    context: Context | None = None
    for index in range(changes):
        when = start + index * step + rng.random() * step * 0.5
        entity = (
            house[index % len(house)] if index < changes // 2 else rng.choice(house)
        )
        if index == changes // 2:
            registry.async_update_entity(RENAMED_FROM, new_entity_id=RENAMED_TO)
            house[-1].entity_id = RENAMED_TO
        if index == changes // 3:
            hass.states.async_remove(REMOVED_AND_ADDED)
        text, attributes = _state_of(entity, rng)
        if index % 13 != 1 or context is None:
            # Every 13th change shares its context with the one before: one service
            # call, two entities. Every 7th comes from a user, through an automation.
            context = (
                Context(
                    user_id=USER_ID,
                    parent_id=ulid_at_time(when - 1),
                    id=ulid_at_time(when),
                )
                if index % 7 == 0
                else Context(id=ulid_at_time(when))
            )
        hass.states.async_set(
            entity.entity_id, text, attributes, context=context, timestamp=when
        )
        if index % 500 == 499:
            await hass.async_block_till_done()
    unsubscribe()
    return handed


def as_recorded(change: LiveChange, rename: Callable[[str], str]) -> LiveChange:
    """The change as the recorder keeps it, as docs/schema.md says.

    A renamed entity's under its new id; without the attributes it does not keep;
    dates and times as their ISO text, tuples and sets as lists (its JSON).
    """
    entity_id = rename(change.state.entity_id)

    def moved(state: State | None) -> State | None:
        if state is None:
            return None
        return State(
            entity_id,
            state.state,
            {
                key: _as_json_keeps(value)
                for key, value in state.attributes.items()
                if key not in _UNRECORDED
            },
            last_changed=state.last_changed,
            last_reported=state.last_reported,
            last_updated=state.last_updated,
            context=state.context,
            last_updated_timestamp=state.last_updated_timestamp,
        )

    new_state = moved(change.state)
    assert new_state is not None
    return LiveChange(new_state, moved(change.old_state), change.time_us)


def _as_json_keeps(value: Any) -> Any:
    """An attribute's value as the recorder's JSON gives it back."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple | set):
        return [_as_json_keeps(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_json_keeps(item) for key, item in value.items()}
    return value


def renamed(entity_id: str) -> str:
    """The id the recorder keeps an entity's history under."""
    return RENAMED_TO if entity_id == RENAMED_FROM else entity_id
