"""The README's example automations: valid, naming real entities and actions, working.

They are taken from the README as a user copies them, with the example entry's name
replaced by the test entry's, and set up by Home Assistant's automation integration.
"""

from __future__ import annotations

from pathlib import Path
import re

from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import parse_yaml
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import CONF_FLUSH_INTERVAL, DOMAIN

from .conftest import setup_entry

README = Path(__file__).parents[1] / "README.md"
# The entry the README's examples name.
EXAMPLE_DEVICE = "home_assistant_on_192_168_1_10_8086"


def _examples() -> str:
    """The YAML block of the README's Examples section, as written there."""
    section = README.read_text("utf-8").split("### Examples", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return block.group(1)


async def test_the_readme_examples_work(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each example sets up, names what exists, and does what it says."""
    await setup_entry(hass, config_entry, {CONF_FLUSH_INTERVAL: 0.05})
    connection = er.async_get(hass).async_get_entity_id(
        "binary_sensor", DOMAIN, f"{config_entry.entry_id}_connectivity"
    )
    assert connection is not None
    device = connection.removeprefix("binary_sensor.").removesuffix(
        "_influxdb_connection"
    )
    text = _examples().replace(EXAMPLE_DEVICE, device)
    named = set(re.findall(r"\b(?:sensor|binary_sensor)\.[a-z0-9_]+", text))
    assert len(named) == 3
    assert all(hass.states.get(entity_id) is not None for entity_id in named), named
    automations = parse_yaml(text)
    assert isinstance(automations, list)

    assert await async_setup_component(hass, "persistent_notification", {})
    assert await async_setup_component(hass, "automation", {"automation": automations})
    await hass.async_block_till_done()
    states = hass.states.async_all("automation")
    assert [state.state for state in states] == ["on"] * len(automations)

    # The flush before the backup: its action runs without an error.
    flush = next(s for s in states if "backup" in s.attributes["friendly_name"])
    await hass.services.async_call(
        "automation", "trigger", {"entity_id": flush.entity_id}, blocking=True
    )
    # Points dropped rising: told; unchanged or falling: not.
    titles: list[str] = []

    @callback
    def notified(
        kind: persistent_notification.UpdateType,
        notifications: dict[str, persistent_notification.Notification],
    ) -> None:
        if kind is persistent_notification.UpdateType.ADDED:
            titles.extend(n["title"] or "" for n in notifications.values())

    persistent_notification.async_register_callback(hass, notified)
    dropped = f"sensor.{device}_points_dropped"
    for count in ("0", "3", "3", "1"):
        hass.states.async_set(dropped, count)
        await hass.async_block_till_done()
    assert titles == ["HA Ingestor dropped points"]
    assert "Error executing script" not in caplog.text
    # Their triggers let go (the time trigger's timer would outlive the test).
    await hass.services.async_call(
        "automation", "turn_off", {"entity_id": "all"}, blocking=True
    )
    assert await hass.config_entries.async_unload(config_entry.entry_id)
