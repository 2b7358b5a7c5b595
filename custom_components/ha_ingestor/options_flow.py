"""Options flow: filters, schema, delivery, registry mirror, history.

Five forms, one after the other; each checks its fields before the next is shown.
Saving reloads the entry, and the reload hands over every state change in flight.
The last form offers to write the history the recorder holds from before the entry
started (a one-shot request the entry takes when it starts), and sets the pace of
backfills.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
import re
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorDeviceClass
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    AreaSelector,
    AreaSelectorConfig,
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    LabelSelector,
    LabelSelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
)

from .compat import vol
from .const import (
    BACKFILL_PACE_RANGE,
    BATCH_SIZE_RANGE,
    CONF_BACKFILL_PACE,
    CONF_BATCH_SIZE,
    CONF_DEFAULT_MEASUREMENT,
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_DEVICE_CLASSES,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_ENTITY_GLOBS,
    CONF_EXCLUDE_LABELS,
    CONF_FLUSH_INTERVAL,
    CONF_GLOBAL_TAGS,
    CONF_GZIP,
    CONF_HEARTBEAT_MINUTES,
    CONF_HISTORY_BACKFILL,
    CONF_IGNORE_ATTRIBUTES,
    CONF_IGNORE_ATTRIBUTES_BY_DOMAIN,
    CONF_IGNORE_ATTRIBUTES_BY_ENTITY,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_DEVICE_CLASSES,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_ENTITY_GLOBS,
    CONF_INCLUDE_LABELS,
    CONF_MEASUREMENT_OVERRIDE,
    CONF_MEASUREMENT_OVERRIDES,
    CONF_MEASUREMENT_RULE,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    CONF_PRESET,
    CONF_SKIP_UNAVAILABLE,
    CONF_SPOOL_MAX_MB,
    CONF_TAG_ATTRIBUTES,
    CONF_TIMESTAMP_PRECISION,
    DEFAULT_BACKFILL_PACE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_GZIP,
    DEFAULT_MIRROR_FILE,
    DEFAULT_SPOOL_MAX_MB,
    FLUSH_INTERVAL_RANGE,
    HEARTBEAT_MINUTES_RANGE,
    MEASUREMENT_DEVICE_CLASS,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID,
    MEASUREMENT_UNIT,
    PRECISION_MICROSECONDS,
    PRECISION_MILLISECONDS,
    PRECISION_SECONDS,
    PRESET_CORE_COMPATIBLE,
    PRESET_RICH,
    RESERVED_TAGS,
    SPOOL_MAX_MB_RANGE,
)
from .line_protocol.entity_settings import key_kind
from .mirror.path_check import validate_mirror_path
from .pipeline.backfill import HistoryEstimate, async_estimate_history

_DOMAIN = re.compile(r"[a-z0-9_]+")
# An entity id pattern: with a dot or a wildcard (`*_linkquality` is one), in the
# characters of entity ids and fnmatch's wildcards and sets.
_ENTITY_GLOB = re.compile(r"(?=.*[.*?\[])[a-z0-9_.*?\[\]!-]+")
_ENTITY_ID = re.compile(r"[a-z0-9_]+\.[a-z0-9_]+")
_DEVICE_CLASS = _DOMAIN

_LIST_CHECKS = (
    (CONF_INCLUDE_DOMAINS, _DOMAIN, "invalid_domain"),
    (CONF_EXCLUDE_DOMAINS, _DOMAIN, "invalid_domain"),
    (CONF_INCLUDE_ENTITY_GLOBS, _ENTITY_GLOB, "invalid_glob"),
    (CONF_EXCLUDE_ENTITY_GLOBS, _ENTITY_GLOB, "invalid_glob"),
    (CONF_INCLUDE_DEVICE_CLASSES, _DEVICE_CLASS, "invalid_device_class"),
    (CONF_EXCLUDE_DEVICE_CLASSES, _DEVICE_CLASS, "invalid_device_class"),
)


MIRROR_FORM = vol.Schema(
    {
        vol.Required(CONF_MIRROR_ENABLED, default=False): BooleanSelector(),
        vol.Optional(CONF_MIRROR_PATH): TextSelector(),
    }
)


# The setup flow's last form: whether to write the history the recorder already has.
HISTORY_FORM = vol.Schema(
    {vol.Required(CONF_HISTORY_BACKFILL, default=False): BooleanSelector()}
)


def history_placeholders(estimate: HistoryEstimate) -> dict[str, str]:
    """Return the history form's placeholders: days, and about how many changes."""
    return {"days": str(estimate.days), "count": f"{estimate.state_changes:,}"}


async def async_check_mirror(
    hass: HomeAssistant, user_input: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the mirror options to store (path made absolute) and the form's errors.

    A relative path is taken inside the configuration folder; an empty one is the
    default file there.
    """
    path = hass.config.path(
        str(user_input.get(CONF_MIRROR_PATH) or "").strip() or DEFAULT_MIRROR_FILE
    )
    options = {
        CONF_MIRROR_ENABLED: user_input[CONF_MIRROR_ENABLED],
        CONF_MIRROR_PATH: path,
    }
    if not options[CONF_MIRROR_ENABLED]:
        return options, {}
    error = await hass.async_add_executor_job(validate_mirror_path, path)
    return options, {} if error is None else {CONF_MIRROR_PATH: error}


class InvalidOptionError(ValueError):
    """A text option that cannot be read; its argument is the translation key."""


def _split_lines(text: str, separator: str) -> Iterator[tuple[str, str, str]]:
    """Each non-blank line of a form's text as (before, separator, after), stripped."""
    for line in text.splitlines():
        if line.strip():
            before, found, after = line.partition(separator)
            yield before.strip(), found, after.strip()


def parse_global_tags(text: str) -> dict[str, str]:
    """Read `key=value` lines (blank lines ignored) into tags."""
    tags: dict[str, str] = {}
    for key, equals, value in _split_lines(text, "="):
        # InfluxDB 2.x reserves keys starting with `_`; an empty value has no line
        # protocol form; a key given twice is a typo.
        if not equals or not key or not value or key.startswith("_") or key in tags:
            raise InvalidOptionError("invalid_global_tags")
        if key in RESERVED_TAGS:
            raise InvalidOptionError("reserved_global_tag")
        tags[key] = value
    return tags


def format_global_tags(tags: Mapping[str, str]) -> str:
    """Show stored tags as the form's text."""
    return "\n".join(f"{key}={value}" for key, value in tags.items())


def parse_ignore_by_domain(text: str) -> dict[str, list[str]]:
    """Read `domain: attribute, attribute` lines (blank lines ignored)."""
    ignored: dict[str, list[str]] = {}
    for domain, colon, names in _split_lines(text, ":"):
        attributes = [name.strip() for name in names.split(",") if name.strip()]
        if not colon or not _DOMAIN.fullmatch(domain) or not attributes:
            raise InvalidOptionError("invalid_ignore_attributes_by_domain")
        ignored.setdefault(domain, []).extend(attributes)
    return ignored


def format_ignore_by_domain(ignored: Mapping[str, list[str]]) -> str:
    """Show stored per-domain ignored attributes as the form's text."""
    return "\n".join(
        f"{domain}: {', '.join(attributes)}" for domain, attributes in ignored.items()
    )


def _entity_key_valid(key: str, *, domains: bool) -> bool:
    """Whether a settings key is an entity id or pattern (or a domain, if allowed)."""
    match key_kind(key):
        case "domain":
            return domains and _DOMAIN.fullmatch(key) is not None
        case "entity":
            return _ENTITY_ID.fullmatch(key) is not None
    return _ENTITY_GLOB.fullmatch(key) is not None


def parse_measurement_overrides(text: str) -> dict[str, str]:
    """Read `key: measurement` lines: a domain, entity id or pattern, each once.

    An empty measurement is none: the rule's (or the one for everything) applies,
    also where a domain or pattern would give another.
    """
    overrides: dict[str, str] = {}
    for key, colon, measurement in _split_lines(text, ":"):
        if (
            not colon
            or key in overrides
            or not _entity_key_valid(key, domains=True)
            or not measurement.isprintable()
        ):
            raise InvalidOptionError("invalid_measurement_overrides")
        overrides[key] = measurement
    return overrides


def format_measurement_overrides(overrides: Mapping[str, str]) -> str:
    """Show stored measurements per domain, entity or pattern as the form's text."""
    return "\n".join(f"{key}: {measurement}" for key, measurement in overrides.items())


def parse_ignore_by_entity(text: str) -> dict[str, list[str]]:
    """Read `entity id or pattern: attribute, attribute` lines, each key once.

    No attribute after the colon: none besides those ignored everywhere, also where
    the domain or a pattern would ignore more.
    """
    ignored: dict[str, list[str]] = {}
    for key, colon, names in _split_lines(text, ":"):
        if not colon or key in ignored or not _entity_key_valid(key, domains=False):
            raise InvalidOptionError("invalid_ignore_attributes_by_entity")
        ignored[key] = [name.strip() for name in names.split(",") if name.strip()]
    return ignored


def _valid_measurement(text: str) -> bool:
    """Whether a measurement typed in a form is printable text, not only spaces."""
    return not text or (bool(text.strip()) and text.isprintable())


def _number(low: float, high: float, step: float, unit: str | None = None) -> Any:
    config = NumberSelectorConfig(
        min=low, max=high, step=step, mode=NumberSelectorMode.BOX
    )
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


class HaIngestorOptionsFlow(OptionsFlowWithReload):
    """Change what is written and how; the entry reloads with the new options."""

    def __init__(self) -> None:
        """Collect the forms' answers."""
        self._options: dict[str, Any] = {}

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose which entities are written."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = {
                key: error
                for key, pattern, error in _LIST_CHECKS
                if not all(pattern.fullmatch(item) for item in user_input.get(key, []))
            }
            if not errors:
                self._options.update(user_input)
                return await self.async_step_schema()
        return self._show("init", self._filters_form(), user_input, errors)

    async def async_step_schema(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose what a point looks like."""
        errors: dict[str, str] = {}
        if user_input is not None:
            parsed = dict(user_input)
            for key, parse in (
                (CONF_GLOBAL_TAGS, parse_global_tags),
                (CONF_IGNORE_ATTRIBUTES_BY_DOMAIN, parse_ignore_by_domain),
                (CONF_IGNORE_ATTRIBUTES_BY_ENTITY, parse_ignore_by_entity),
                (CONF_MEASUREMENT_OVERRIDES, parse_measurement_overrides),
            ):
                try:
                    parsed[key] = parse(user_input.get(key, ""))
                except InvalidOptionError as err:
                    errors[key] = str(err)
            for key in (CONF_MEASUREMENT_OVERRIDE, CONF_DEFAULT_MEASUREMENT):
                if not _valid_measurement(user_input.get(key, "")):
                    errors[key] = "invalid_measurement"
            if not errors:
                self._options.update(parsed)
                return await self.async_step_delivery()
        return self._show(
            "schema", _SCHEMA_FORM, user_input, errors, _schema_form_values
        )

    async def async_step_delivery(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose how points reach InfluxDB: batches, compression, spool, heartbeat."""
        if user_input is not None:
            self._options.update(user_input)
            return await self.async_step_registry_mirror()
        return self._show("delivery", _DELIVERY_FORM, None, {})

    async def async_step_registry_mirror(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose whether and where the registries are mirrored to SQLite."""
        errors: dict[str, str] = {}
        if user_input is not None:
            mirror, errors = await async_check_mirror(self.hass, user_input)
            if not errors:
                self._options.update(mirror)
                return await self.async_step_history()
        return self._show("registry_mirror", MIRROR_FORM, user_input, errors)

    async def async_step_history(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer the recorder's history from before the entry started; set the pace.

        Without such history, or while a backfill runs, only the pace is asked
        (the form `backfill_pace`).
        """
        if user_input is not None:
            options = self._options | user_input
            if not options.pop(CONF_HISTORY_BACKFILL, False):
                return self.async_create_entry(data=options)
            # Taken by the entry when it starts again, then removed.
            return self.async_create_entry(data=options | {CONF_HISTORY_BACKFILL: True})
        estimate = await self._async_estimate()
        if estimate is None:
            return self._show("backfill_pace", _PACE_FORM, None, {})
        return self.async_show_form(
            step_id="history",
            data_schema=self.add_suggested_values_to_schema(
                _HISTORY_OPTIONS_FORM, self._current_options()
            ),
            description_placeholders=history_placeholders(estimate),
        )

    async def async_step_backfill_pace(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Set the pace of backfills, then save."""
        return await self.async_step_history(user_input)

    async def _async_estimate(self) -> HistoryEstimate | None:
        """Estimate what the recorder holds before the entry's first state change.

        Counted with the filters just chosen; nothing while a backfill runs or once
        one has written it.
        """
        entry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            return None
        backfill = entry.runtime_data.backfill
        if backfill.running or backfill.history_written:
            return None
        options = {**entry.options, **self._options}
        return await async_estimate_history(self.hass, options, backfill.first_received)

    def _current_options(self) -> dict[str, Any]:
        # The request is never stored: the box is always offered unticked.
        return {
            key: value
            for key, value in self.config_entry.options.items()
            if key != CONF_HISTORY_BACKFILL
        }

    def _show(
        self,
        step_id: str,
        schema: vol.Schema,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
        to_form: Callable[[Mapping[str, Any]], Mapping[str, Any]] = dict,
    ) -> ConfigFlowResult:
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or to_form(self.config_entry.options)
            ),
            errors=errors,
        )

    def _filters_form(self) -> vol.Schema:
        domains = SelectSelector(
            SelectSelectorConfig(
                options=sorted(
                    {state.domain for state in self.hass.states.async_all()}
                ),
                multiple=True,
                custom_value=True,
            )
        )
        entities = EntitySelector(EntitySelectorConfig(multiple=True))
        globs = TextSelector(TextSelectorConfig(multiple=True))
        device_classes = SelectSelector(
            SelectSelectorConfig(
                options=sorted({*SensorDeviceClass, *BinarySensorDeviceClass}, key=str),
                multiple=True,
                custom_value=True,
            )
        )
        areas = AreaSelector(AreaSelectorConfig(multiple=True))
        labels = LabelSelector(LabelSelectorConfig(multiple=True))
        return vol.Schema(
            {
                vol.Optional(CONF_INCLUDE_DOMAINS): domains,
                vol.Optional(CONF_INCLUDE_ENTITIES): entities,
                vol.Optional(CONF_INCLUDE_ENTITY_GLOBS): globs,
                vol.Optional(CONF_INCLUDE_DEVICE_CLASSES): device_classes,
                vol.Optional(CONF_INCLUDE_AREAS): areas,
                vol.Optional(CONF_INCLUDE_LABELS): labels,
                vol.Optional(CONF_EXCLUDE_DOMAINS): domains,
                vol.Optional(CONF_EXCLUDE_ENTITIES): entities,
                vol.Optional(CONF_EXCLUDE_ENTITY_GLOBS): globs,
                vol.Optional(CONF_EXCLUDE_DEVICE_CLASSES): device_classes,
                vol.Optional(CONF_EXCLUDE_AREAS): areas,
                vol.Optional(CONF_EXCLUDE_LABELS): labels,
                vol.Required(CONF_SKIP_UNAVAILABLE, default=False): BooleanSelector(),
            }
        )


def _schema_form_values(options: Mapping[str, Any]) -> dict[str, Any]:
    """Show stored schema options as the form does (text for tags and lists)."""
    return {
        **options,
        CONF_GLOBAL_TAGS: format_global_tags(options.get(CONF_GLOBAL_TAGS, {})),
        CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: format_ignore_by_domain(
            options.get(CONF_IGNORE_ATTRIBUTES_BY_DOMAIN, {})
        ),
        CONF_IGNORE_ATTRIBUTES_BY_ENTITY: format_ignore_by_domain(
            options.get(CONF_IGNORE_ATTRIBUTES_BY_ENTITY, {})
        ),
        CONF_MEASUREMENT_OVERRIDES: format_measurement_overrides(
            options.get(CONF_MEASUREMENT_OVERRIDES, {})
        ),
    }


_SCHEMA_FORM = vol.Schema(
    {
        vol.Required(CONF_PRESET, default=PRESET_CORE_COMPATIBLE): SelectSelector(
            SelectSelectorConfig(
                options=[PRESET_CORE_COMPATIBLE, PRESET_RICH],
                translation_key=CONF_PRESET,
                mode=SelectSelectorMode.LIST,
            )
        ),
        vol.Required(CONF_MEASUREMENT_RULE, default=MEASUREMENT_UNIT): (
            SelectSelector(
                SelectSelectorConfig(
                    options=[
                        MEASUREMENT_UNIT,
                        MEASUREMENT_DOMAIN_DEVICE_CLASS,
                        MEASUREMENT_DEVICE_CLASS,
                        MEASUREMENT_ENTITY_ID,
                    ],
                    translation_key=CONF_MEASUREMENT_RULE,
                )
            )
        ),
        vol.Optional(CONF_MEASUREMENT_OVERRIDE): TextSelector(),
        vol.Optional(CONF_MEASUREMENT_OVERRIDES): TextSelector(
            TextSelectorConfig(multiline=True)
        ),
        vol.Optional(CONF_DEFAULT_MEASUREMENT): TextSelector(),
        vol.Optional(CONF_GLOBAL_TAGS): TextSelector(
            TextSelectorConfig(multiline=True)
        ),
        vol.Optional(CONF_TAG_ATTRIBUTES): TextSelector(
            TextSelectorConfig(multiple=True)
        ),
        vol.Optional(CONF_IGNORE_ATTRIBUTES): TextSelector(
            TextSelectorConfig(multiple=True)
        ),
        vol.Optional(CONF_IGNORE_ATTRIBUTES_BY_DOMAIN): TextSelector(
            TextSelectorConfig(multiline=True)
        ),
        vol.Optional(CONF_IGNORE_ATTRIBUTES_BY_ENTITY): TextSelector(
            TextSelectorConfig(multiline=True)
        ),
        vol.Required(
            CONF_TIMESTAMP_PRECISION, default=PRECISION_MICROSECONDS
        ): SelectSelector(
            SelectSelectorConfig(
                options=[
                    PRECISION_MICROSECONDS,
                    PRECISION_MILLISECONDS,
                    PRECISION_SECONDS,
                ],
                translation_key=CONF_TIMESTAMP_PRECISION,
            )
        ),
    }
)

_PACE_FORM = vol.Schema(
    {
        vol.Required(CONF_BACKFILL_PACE, default=DEFAULT_BACKFILL_PACE): _number(
            *BACKFILL_PACE_RANGE, 100, "points/s"
        ),
    }
)
_HISTORY_OPTIONS_FORM = HISTORY_FORM.extend(_PACE_FORM.schema)

_DELIVERY_FORM = vol.Schema(
    {
        vol.Required(CONF_BATCH_SIZE, default=DEFAULT_BATCH_SIZE): _number(
            *BATCH_SIZE_RANGE, 1
        ),
        vol.Required(CONF_FLUSH_INTERVAL, default=DEFAULT_FLUSH_INTERVAL): (
            _number(*FLUSH_INTERVAL_RANGE, 0.1, "s")
        ),
        vol.Required(CONF_GZIP, default=DEFAULT_GZIP): BooleanSelector(),
        vol.Required(CONF_SPOOL_MAX_MB, default=DEFAULT_SPOOL_MAX_MB): _number(
            *SPOOL_MAX_MB_RANGE, 1, "MiB"
        ),
        vol.Required(CONF_HEARTBEAT_MINUTES, default=0): _number(
            *HEARTBEAT_MINUTES_RANGE, 1, "min"
        ),
    }
)
