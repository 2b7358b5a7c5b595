"""Home Assistant's repairs platform: the fix flows of the issues a user can fix.

The time of dropped points is written again from the recorder, and they are
acknowledged; quarantined points are written again once the user has fixed what
InfluxDB refused them for; a gap in the history is backfilled from the recorder
(issues.py raises those three). While the built-in influxdb integration writes the
same points, it is disabled (takeover.py raises that one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.config_entries import ConfigEntryDisabler, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir

from .compat import vol
from .const import DOMAIN
from .coordinator import HaIngestorConfigEntry
from .issues import ISSUE_HISTORY_GAP, ISSUE_POINTS_DROPPED, ISSUE_POINTS_QUARANTINED
from .services import (
    async_fill_gaps,
    async_replay_quarantine,
    async_write_dropped_again,
)
from .takeover import ISSUE_DOUBLE_WRITING

if TYPE_CHECKING:
    # From 2026.6; only a type (before, the flow's steps return a FlowResult).
    from homeassistant.components.repairs.models import RepairsFlowResult


def _loaded_entry(
    hass: HomeAssistant, entry_id: object
) -> HaIngestorConfigEntry | None:
    entry = (
        hass.config_entries.async_get_entry(entry_id)
        if isinstance(entry_id, str)
        else None
    )
    if entry is None or entry.state is not ConfigEntryState.LOADED:
        return None
    return entry


class _AskOnceFlow(RepairsFlow):
    """A fix asked for once, on a form showing the issue's placeholders."""

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Run the fix once the user confirms."""
        raise NotImplementedError

    def _show_confirm(
        self, errors: dict[str, str] | None = None, **extra_placeholders: str
    ) -> RepairsFlowResult:
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        placeholders = dict((issue.translation_placeholders if issue else None) or {})
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            description_placeholders=placeholders | extra_placeholders,
            errors=errors or {},
        )


class EntryRepairFlow(_AskOnceFlow):
    """The fix flow of one of an entry's issues: `fix` once the user confirms."""

    def __init__(
        self,
        entry_id: object,
        fix: Callable[[HaIngestorConfigEntry], Awaitable[object]],
    ) -> None:
        """Fix the issue of the entry `entry_id` (from the issue's data)."""
        self._entry_id = entry_id
        self._fix = fix

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Fix the issue once the user confirms."""
        entry = _loaded_entry(self.hass, self._entry_id)
        if entry is None:
            return self.async_abort(reason="not_loaded")
        if user_input is None:
            return self._show_confirm()
        try:
            await self._fix(entry)
        except HomeAssistantError as err:
            return self._show_confirm({"base": "cannot_write"}, error=str(err))
        return self.async_create_entry(data={})


class DisableBuiltinRepairFlow(_AskOnceFlow):
    """The fix of the double-writing issue: disable the built-in entry."""

    def __init__(self, builtin_entry_id: object) -> None:
        """Disable the entry `builtin_entry_id` (from the issue's data)."""
        self._builtin_entry_id = builtin_entry_id

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Disable the built-in entry once the user confirms."""
        if user_input is None:
            return self._show_confirm()
        builtin_id = self._builtin_entry_id
        if (
            isinstance(builtin_id, str)
            and (builtin := self.hass.config_entries.async_get_entry(builtin_id))
            and builtin.disabled_by is None
        ):
            await self.hass.config_entries.async_set_disabled_by(
                builtin_id, ConfigEntryDisabler.USER
            )
        return self.async_create_entry(data={})


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Create the fix flow of a fixable issue."""
    entry_id = None if data is None else data.get("entry_id")
    if issue_id.startswith(f"{ISSUE_POINTS_DROPPED}_"):
        return EntryRepairFlow(entry_id, async_write_dropped_again)
    if issue_id.startswith(f"{ISSUE_POINTS_QUARANTINED}_"):
        # The user has fixed the cause: write the quarantined points again.
        return EntryRepairFlow(entry_id, async_replay_quarantine)
    if issue_id.startswith(f"{ISSUE_HISTORY_GAP}_"):
        return EntryRepairFlow(entry_id, async_fill_gaps)
    if issue_id.startswith(f"{ISSUE_DOUBLE_WRITING}_"):
        return DisableBuiltinRepairFlow(
            None if data is None else data.get("builtin_entry_id")
        )
    return ConfirmRepairFlow()
