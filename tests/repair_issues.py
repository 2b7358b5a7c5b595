"""Reading repair issues as the user sees them, for the tests of issues and repairs."""

from __future__ import annotations

import json
from pathlib import Path
import re

from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import DOMAIN
from custom_components.ha_ingestor.issues import issue_id

STRINGS = json.loads(
    (
        Path(__file__).parents[1] / "custom_components" / DOMAIN / "strings.json"
    ).read_text("utf-8")
)


def issue_of(
    hass: HomeAssistant, entry: MockConfigEntry, issue: str
) -> ir.IssueEntry | None:
    """The entry's issue of that kind, if it is raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id(issue, entry.entry_id))


def issue_texts(issue: ir.IssueEntry) -> list[str]:
    """The issue's texts: its title and description, or its fix flow's."""
    strings = STRINGS["issues"][issue.translation_key]
    texts = [strings["title"]]
    if issue.is_fixable:
        step = strings["fix_flow"]["step"]["confirm"]
        texts += [step["title"], step["description"]]
    else:
        texts.append(strings["description"])
    return texts


def render_issue(issue: ir.IssueEntry) -> str:
    """The issue as the user reads it; every placeholder must be given."""
    placeholders = issue.translation_placeholders or {}
    text = "\n".join(issue_texts(issue))
    used = set(re.findall(r"\{(\w+)\}", text))
    assert used <= set(placeholders), used - set(placeholders)
    return text.format(**placeholders)


def issue_checked_now(
    hass: HomeAssistant, entry: MockConfigEntry, issue: str
) -> ir.IssueEntry | None:
    """The issue once the pipeline was looked at now, not at the next tick."""
    entry.runtime_data.coordinator.async_update_now()
    return issue_of(hass, entry, issue)


def fire_power(hass: HomeAssistant, start: int, stop: int) -> None:
    """Set sensor.power (in W) to each number from `start` to `stop`."""
    for i in range(start, stop):
        hass.states.async_set("sensor.power", str(i), {"unit_of_measurement": "W"})


async def submit_fix(hass: HomeAssistant, issue: ir.IssueEntry) -> None:
    """Open the issue's fix flow and submit it, as the user does in Repairs."""
    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, data={"issue_id": issue.issue_id})
    assert result["type"] is FlowResultType.FORM
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
