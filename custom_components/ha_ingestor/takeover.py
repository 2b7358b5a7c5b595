"""Take over from Home Assistant's built-in influxdb integration.

Its config entry holds the connection (InfluxDB 1.x or 2.x); the options it writes with
are still read from the `influxdb:` section of configuration.yaml, each time the entry
sets up (homeassistant/components/influxdb/__init__.py, async_setup_entry). Both are
read here the way that integration reads them and mapped to HA Ingestor's entry data
and options, with the `core_compatible` preset: the same points, measurement for
measurement. What cannot be the same is named (`Difference`), for the config flow's
last page.

While the built-in entry is enabled and writes to the same database or bucket as an
HA Ingestor entry, both write every point: a repair issue says so, and its fix flow
(repairs.py) disables the built-in entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from homeassistant import config as conf_util
from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    SOURCE_IGNORE,
    ConfigEntry,
    ConfigEntryChange,
    ConfigEntryDisabler,
)
from homeassistant.const import (
    CONF_DOMAINS,
    CONF_ENTITIES,
    CONF_EXCLUDE,
    CONF_HOST,
    CONF_INCLUDE,
    CONF_PASSWORD,
    CONF_PATH,
    CONF_PORT,
    CONF_SSL,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant, callback, valid_entity_id
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_values import EntityValues
from homeassistant.helpers.entityfilter import (
    CONF_ENTITY_GLOBS,
    INCLUDE_EXCLUDE_BASE_FILTER_SCHEMA,
)
from homeassistant.helpers.translation import async_get_translations

from .compat import vol
from .const import (
    API_V1,
    API_V2,
    CONF_API_VERSION,
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_DEFAULT_MEASUREMENT,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_ENTITY_GLOBS,
    CONF_GLOBAL_TAGS,
    CONF_IGNORE_ATTRIBUTES,
    CONF_IGNORE_ATTRIBUTES_BY_DOMAIN,
    CONF_IGNORE_ATTRIBUTES_BY_ENTITY,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_ENTITY_GLOBS,
    CONF_MEASUREMENT_OVERRIDE,
    CONF_MEASUREMENT_OVERRIDES,
    CONF_MEASUREMENT_RULE,
    CONF_ORGANIZATION,
    CONF_PRESET,
    CONF_RETENTION_POLICY,
    CONF_SKIP_UNAVAILABLE,
    CONF_SSL_CA_CERT,
    CONF_TAG_ATTRIBUTES,
    CONF_TIMESTAMP_PRECISION,
    DEFAULT_DATABASE,
    DOMAIN,
    LOGGER,
    MEASUREMENT_DOMAIN_DEVICE_CLASS,
    MEASUREMENT_ENTITY_ID,
    MEASUREMENT_UNIT,
    PRECISION_MICROSECONDS,
    PRECISION_MILLISECONDS,
    PRECISION_SECONDS,
    PRESET_CORE_COMPATIBLE,
)
from .influxdb.connection import connection_unique_id
from .influxdb.errors import InvalidURLError
from .line_protocol.core_compatible import core_measurement_kept, core_tag_kept
from .line_protocol.entity_settings import key_kind

if TYPE_CHECKING:
    from .coordinator import HaIngestorConfigEntry

# The built-in integration and the names of its configuration
# (homeassistant/components/influxdb/const.py).
BUILTIN_DOMAIN: Final = "influxdb"
_DEFAULT_HOST: Final = "localhost"
_DEFAULT_PORT: Final = 8086
_MEASUREMENT_ATTR: Final = "measurement_attr"
_OVERRIDE_MEASUREMENT: Final = "override_measurement"
_DEFAULT_MEASUREMENT: Final = "default_measurement"
_TAGS: Final = "tags"
_TAGS_ATTRIBUTES: Final = "tags_attributes"
_IGNORE_ATTRIBUTES: Final = "ignore_attributes"
_COMPONENT_CONFIG: Final = "component_config"
_COMPONENT_CONFIG_DOMAIN: Final = "component_config_domain"
_COMPONENT_CONFIG_GLOB: Final = "component_config_glob"
_PRECISION: Final = "precision"
_MAX_RETRIES: Final = "max_retries"
# Its connection settings, which YAML may still hold; not read here (the entry has
# the connection), but allowed, as that integration allows them.
_CONNECTION_KEYS: Final = (
    CONF_API_VERSION,
    CONF_HOST,
    CONF_PATH,
    CONF_PORT,
    CONF_SSL,
    CONF_VERIFY_SSL,
    CONF_SSL_CA_CERT,
    CONF_USERNAME,
    CONF_PASSWORD,
    CONF_DATABASE,
    CONF_TOKEN,
    CONF_ORGANIZATION,
    CONF_BUCKET,
)
# How long its writer kept points it could not write (QUEUE_BACKLOG_SECONDS), and how
# long it waited before each retry (RETRY_DELAY), in seconds.
BUILTIN_BACKLOG_SECONDS: Final = 30
BUILTIN_RETRY_SECONDS: Final = 20

# Its measurement_attr values, as HA Ingestor's measurement rules.
_MEASUREMENT_RULES: Final = {
    "unit_of_measurement": MEASUREMENT_UNIT,
    "domain__device_class": MEASUREMENT_DOMAIN_DEVICE_CLASS,
    "entity_id": MEASUREMENT_ENTITY_ID,
}
# Precisions its InfluxDB 1.x client refuses (it takes n, u, ms, s, m, h): with one of
# these its entry does not set up.
_V1_REFUSED_PRECISIONS: Final = ("ns", "us")
# Its precision, as HA Ingestor's: nanoseconds are the microseconds Home Assistant's
# clock has, written in another unit.
_PRECISIONS: Final = {
    None: PRECISION_MICROSECONDS,
    "ns": PRECISION_MICROSECONDS,
    "us": PRECISION_MICROSECONDS,
    "ms": PRECISION_MILLISECONDS,
    "s": PRECISION_SECONDS,
}

_ENTITY_SETTINGS_SCHEMA = vol.Schema(
    {
        vol.Optional(_OVERRIDE_MEASUREMENT): cv.string,
        vol.Optional(_IGNORE_ATTRIBUTES): vol.All(cv.ensure_list, [cv.string]),
    }
)
# The options of its `influxdb:` section, as it validates them (_INFLUX_BASE_SCHEMA).
YAML_OPTIONS_SCHEMA: Final = INCLUDE_EXCLUDE_BASE_FILTER_SCHEMA.extend(
    {
        vol.Optional(_MAX_RETRIES, default=0): cv.positive_int,
        vol.Optional(_DEFAULT_MEASUREMENT): cv.string,
        vol.Optional(_MEASUREMENT_ATTR, default="unit_of_measurement"): vol.In(
            list(_MEASUREMENT_RULES)
        ),
        vol.Optional(_OVERRIDE_MEASUREMENT): cv.string,
        vol.Optional(_TAGS, default={}): vol.Schema({cv.string: cv.string}),
        vol.Optional(_TAGS_ATTRIBUTES, default=[]): vol.All(
            cv.ensure_list, [cv.string]
        ),
        vol.Optional(_IGNORE_ATTRIBUTES, default=[]): vol.All(
            cv.ensure_list, [cv.string]
        ),
        vol.Optional(_COMPONENT_CONFIG, default={}): vol.Schema(
            {cv.entity_id: _ENTITY_SETTINGS_SCHEMA}
        ),
        vol.Optional(_COMPONENT_CONFIG_GLOB, default={}): vol.Schema(
            {cv.string: _ENTITY_SETTINGS_SCHEMA}
        ),
        vol.Optional(_COMPONENT_CONFIG_DOMAIN, default={}): vol.Schema(
            {cv.string: _ENTITY_SETTINGS_SCHEMA}
        ),
        vol.Optional(_PRECISION): vol.In(["ms", "s", "us", "ns"]),
        **{vol.Optional(key): object for key in _CONNECTION_KEYS},
    }
)

# The repair issue while both write the same points, per HA Ingestor entry.
ISSUE_DOUBLE_WRITING: Final = "double_writing"
# The config flow's last page names each difference with one of these translation keys
# (selector.takeover_difference.options.<kind>), filled with its placeholders.
DIFFERENCE_TRANSLATIONS: Final = "takeover_difference"
# Built-in entries to disable once the HA Ingestor entry of this unique id has set up.
_DISABLE_AFTER_SETUP: Final = f"{DOMAIN}_takeover_disable"


class TakeoverError(HomeAssistantError):
    """The built-in integration's configuration cannot be taken over.

    `reason` is the config flow's abort reason.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        """Name the reason, and what went wrong."""
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Difference:
    """Something HA Ingestor cannot do as the built-in integration did, and why."""

    kind: str
    """Its translation key (selector.takeover_difference.options.<kind>)."""
    placeholders: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Takeover:
    """The built-in integration's entry and options, as HA Ingestor's."""

    builtin_entry_id: str
    builtin_enabled: bool
    data: dict[str, Any]
    """HA Ingestor's entry data: the connection."""
    options: dict[str, Any]
    max_retries: int
    """The built-in integration's retries of a failed write."""
    differences: list[Difference]


@callback
def builtin_entry(hass: HomeAssistant) -> ConfigEntry | None:
    """Return the built-in integration's entry (it has one at most), unless ignored."""
    return next(
        (
            entry
            for entry in hass.config_entries.async_entries(BUILTIN_DOMAIN)
            if entry.source != SOURCE_IGNORE
        ),
        None,
    )


def connection_data(builtin: Mapping[str, Any]) -> dict[str, Any]:
    """Return HA Ingestor's entry data for the built-in entry's connection.

    As its clients connect: InfluxDB 1.x from host, port (8086 if none), SSL and path,
    without a retention policy; 2.x from its URL. A CA certificate file is kept where
    certificates are checked: the built-in 1.x client ignores it otherwise.
    """
    verify_ssl = bool(builtin.get(CONF_VERIFY_SSL, True))
    data: dict[str, Any]
    if str(builtin.get(CONF_API_VERSION)) == API_V2:
        data = {
            CONF_API_VERSION: API_V2,
            CONF_URL: builtin.get(CONF_URL) or "",
            CONF_TOKEN: builtin.get(CONF_TOKEN) or "",
            CONF_ORGANIZATION: builtin.get(CONF_ORGANIZATION) or "",
            CONF_BUCKET: builtin.get(CONF_BUCKET) or "",
            CONF_VERIFY_SSL: verify_ssl,
        }
    else:
        path = builtin.get(CONF_PATH) or ""
        if path and not path.startswith("/"):
            path = f"/{path}"
        scheme = "https" if builtin.get(CONF_SSL) else "http"
        host = str(builtin.get(CONF_HOST) or _DEFAULT_HOST)
        # Its config flow stores an IPv6 address bare; in YAML it is bracketed.
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = builtin.get(CONF_PORT) or _DEFAULT_PORT
        data = {
            CONF_API_VERSION: API_V1,
            # Put together as its client does: a host it could not use either (a
            # space in it, say) makes no URL, which the form then shows on its field.
            CONF_URL: f"{scheme}://{host}:{port}{'' if path == '/' else path}",
            CONF_DATABASE: builtin.get(CONF_DATABASE) or DEFAULT_DATABASE,
            CONF_RETENTION_POLICY: "",
            CONF_USERNAME: builtin.get(CONF_USERNAME) or "",
            CONF_PASSWORD: builtin.get(CONF_PASSWORD) or "",
            CONF_VERIFY_SSL: verify_ssl,
        }
    if verify_ssl and (certificate := builtin.get(CONF_SSL_CA_CERT)):
        data[CONF_SSL_CA_CERT] = str(certificate)
    return data


def builtin_unique_id(builtin: ConfigEntry) -> str | None:
    """Return the unique id HA Ingestor gives an entry for the built-in's target."""
    try:
        return connection_unique_id(connection_data(builtin.data))
    except InvalidURLError, ValueError:
        return None


@callback
def takeover_offered(hass: HomeAssistant) -> bool:
    """Whether a built-in entry exists that no HA Ingestor entry writes like yet."""
    if (builtin := builtin_entry(hass)) is None:
        return False
    unique_id = builtin_unique_id(builtin)
    return not any(
        entry.unique_id == unique_id
        for entry in hass.config_entries.async_entries(DOMAIN, include_ignore=False)
    )


async def async_read_yaml_options(hass: HomeAssistant) -> dict[str, Any]:
    """Read the `influxdb:` section of configuration.yaml as the built-in entry does.

    Raises TakeoverError if it cannot be read or is invalid (the built-in entry would
    not set up either).
    """
    try:
        config = await conf_util.async_hass_config_yaml(hass)
    except (HomeAssistantError, OSError) as err:
        raise TakeoverError("yaml_invalid", str(err)) from err
    try:
        options: dict[str, Any] = YAML_OPTIONS_SCHEMA(config.get(BUILTIN_DOMAIN) or {})
    except vol.Invalid as err:
        raise TakeoverError("yaml_invalid", f"{BUILTIN_DOMAIN}: {err}") from err
    return options


def map_options(yaml: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
    """Return HA Ingestor's options for the built-in integration's, and what differs.

    Every option has its equal; what differs is where InfluxDB would refuse the
    built-in integration's points, which HA Ingestor writes without what it refuses.
    """
    include, exclude = yaml[CONF_INCLUDE], yaml[CONF_EXCLUDE]
    overrides, ignored_by_domain, ignored_by_entity = _entity_settings(yaml)
    options: dict[str, Any] = {
        CONF_PRESET: PRESET_CORE_COMPATIBLE,
        CONF_MEASUREMENT_RULE: _MEASUREMENT_RULES[yaml[_MEASUREMENT_ATTR]],
        CONF_MEASUREMENT_OVERRIDE: yaml.get(_OVERRIDE_MEASUREMENT) or "",
        CONF_DEFAULT_MEASUREMENT: yaml.get(_DEFAULT_MEASUREMENT) or "",
        CONF_MEASUREMENT_OVERRIDES: overrides,
        CONF_GLOBAL_TAGS: dict(yaml[_TAGS]),
        CONF_TAG_ATTRIBUTES: list(yaml[_TAGS_ATTRIBUTES]),
        CONF_IGNORE_ATTRIBUTES: list(yaml[_IGNORE_ATTRIBUTES]),
        CONF_IGNORE_ATTRIBUTES_BY_DOMAIN: ignored_by_domain,
        CONF_IGNORE_ATTRIBUTES_BY_ENTITY: ignored_by_entity,
        CONF_TIMESTAMP_PRECISION: _PRECISIONS[yaml.get(_PRECISION)],
        CONF_INCLUDE_DOMAINS: list(include[CONF_DOMAINS]),
        CONF_INCLUDE_ENTITIES: list(include[CONF_ENTITIES]),
        CONF_INCLUDE_ENTITY_GLOBS: list(include[CONF_ENTITY_GLOBS]),
        CONF_EXCLUDE_DOMAINS: list(exclude[CONF_DOMAINS]),
        CONF_EXCLUDE_ENTITIES: list(exclude[CONF_ENTITIES]),
        CONF_EXCLUDE_ENTITY_GLOBS: list(exclude[CONF_ENTITY_GLOBS]),
        # It never writes unknown, unavailable (or empty) states.
        CONF_SKIP_UNAVAILABLE: True,
    }
    return options, _differences(yaml, overrides)


def _entity_settings(
    yaml: Mapping[str, Any],
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]]]:
    """Return its settings per domain, pattern and entity id, as HA Ingestor has them.

    Measurement overrides (by domain, entity id or pattern), ignored attributes by
    domain, and by entity id or pattern. A pattern without wildcards can only match
    the entity id it spells: it is taken as that entity id's settings, resolved as
    the built-in integration resolves them, so that no later pattern can change them.
    Keys that match no entity (a domain with a dot, say) are left out.
    """
    by_id = yaml[_COMPONENT_CONFIG]
    by_domain = yaml[_COMPONENT_CONFIG_DOMAIN]
    by_pattern = yaml[_COMPONENT_CONFIG_GLOB]
    resolved = EntityValues(by_id, by_domain, by_pattern)
    entity_ids = [
        *(key for key in by_pattern if key_kind(key) != "pattern"),
        *by_id,
    ]
    settings = [
        *(
            (key, value)
            for key, value in by_domain.items()
            if key_kind(key) == "domain"
        ),
        *(
            (key, value)
            for key, value in by_pattern.items()
            if key_kind(key) == "pattern"
        ),
        *(
            (entity_id, resolved.get(entity_id))
            for entity_id in dict.fromkeys(entity_ids)
            if valid_entity_id(entity_id)
        ),
    ]
    overrides: dict[str, str] = {}
    ignored_by_domain: dict[str, list[str]] = {}
    ignored_by_entity: dict[str, list[str]] = {}
    for key, setting in settings:
        if _OVERRIDE_MEASUREMENT in setting:
            overrides[key] = setting[_OVERRIDE_MEASUREMENT]
        if _IGNORE_ATTRIBUTES in setting:
            names = list(setting[_IGNORE_ATTRIBUTES])
            if key_kind(key) != "domain":
                ignored_by_entity[key] = names
            # A domain's empty list is the same as none: nothing comes after it.
            elif names:
                ignored_by_domain[key] = names
    return overrides, ignored_by_domain, ignored_by_entity


def _differences(
    yaml: Mapping[str, Any], overrides: Mapping[str, str]
) -> list[Difference]:
    """Name where HA Ingestor writes otherwise: where InfluxDB refuses the points."""
    differences = [
        Difference("tag_refused", {"tag": key})
        for key, value in yaml[_TAGS].items()
        if not core_tag_kept(key, value)
    ]
    differences += [
        Difference("tag_attribute_refused", {"attribute": key})
        for key in dict.fromkeys(yaml[_TAGS_ATTRIBUTES])
        if not core_tag_kept(key, "")
    ]
    measurements = [
        (_OVERRIDE_MEASUREMENT, yaml.get(_OVERRIDE_MEASUREMENT)),
        (_DEFAULT_MEASUREMENT, yaml.get(_DEFAULT_MEASUREMENT)),
        *(
            (f"{_OVERRIDE_MEASUREMENT} ({key})", text)
            for key, text in overrides.items()
        ),
    ]
    differences += [
        Difference("measurement_refused", {"option": option, "measurement": text})
        for option, text in measurements
        if text and not core_measurement_kept(text)
    ]
    return differences


async def async_plan(hass: HomeAssistant) -> Takeover:
    """Read the built-in entry and its YAML options; map them.

    Raises TakeoverError if there is no built-in entry, or its options are invalid.
    """
    if (builtin := builtin_entry(hass)) is None:
        raise TakeoverError("builtin_missing")
    yaml = await async_read_yaml_options(hass)
    options, differences = map_options(yaml)
    data = connection_data(builtin.data)
    if data[CONF_API_VERSION] == API_V2:
        differences.append(Difference("v2_client"))
    elif (precision := yaml.get(_PRECISION)) in _V1_REFUSED_PRECISIONS:
        differences.append(Difference("precision_refused", {"precision": precision}))
    return Takeover(
        builtin_entry_id=builtin.entry_id,
        builtin_enabled=builtin.disabled_by is None,
        data=data,
        options=options,
        max_retries=int(yaml[_MAX_RETRIES]),
        differences=differences,
    )


async def async_describe(hass: HomeAssistant, plan: Takeover) -> dict[str, str]:
    """Return the last page's placeholders: the differences, in the user's language."""
    translations = await async_get_translations(
        hass, hass.config.language, "selector", {DOMAIN}
    )
    prefix = f"component.{DOMAIN}.selector.{DIFFERENCE_TRANSLATIONS}.options."
    items = []
    for difference in plan.differences:
        text = translations.get(prefix + difference.kind, difference.kind)
        values = {key: _code(value) for key, value in difference.placeholders.items()}
        items.append(f"\n- {text.format(**values)}")
    return {
        "max_retries": str(plan.max_retries),
        "backlog_seconds": str(
            BUILTIN_BACKLOG_SECONDS + BUILTIN_RETRY_SECONDS * plan.max_retries
        ),
        "differences": "".join(items),
    }


def _code(text: str) -> str:
    """Show a name as code, whatever it holds (one line, no backtick left open)."""
    text = " ".join(text.splitlines())
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


@callback
def async_disable_after_setup(
    hass: HomeAssistant, unique_id: str, builtin_entry_id: str
) -> None:
    """Have the built-in entry disabled once the new entry of `unique_id` records.

    Then no state change is lost between the two: for a moment both write it, and
    InfluxDB keeps one point of the two.
    """
    hass.data.setdefault(_DISABLE_AFTER_SETUP, {})[unique_id] = builtin_entry_id


async def _async_disable_builtin(
    hass: HomeAssistant, entry: HaIngestorConfigEntry
) -> None:
    """Disable the built-in entry the takeover of `entry` asked for, if any."""
    pending: dict[str, str] = hass.data.get(_DISABLE_AFTER_SETUP, {})
    builtin_id = pending.pop(entry.unique_id or "", None)
    if builtin_id is None or hass.config_entries.async_get_entry(builtin_id) is None:
        return
    LOGGER.info(
        "Disabling the built-in InfluxDB integration, taken over by %s", entry.title
    )
    # Marked disabled at once, then unloaded: its writer writes what it holds.
    await hass.config_entries.async_set_disabled_by(
        builtin_id, ConfigEntryDisabler.USER
    )


@callback
def async_start(
    hass: HomeAssistant, entry: HaIngestorConfigEntry
) -> Callable[[], None]:
    """Follow the built-in entry for a loaded HA Ingestor entry.

    Disables it if the takeover that made `entry` asked to (in a task: its writer may
    take a while to write what it holds). Then, while it writes where `entry` writes,
    raises the repair issue; checked now and whenever a config entry changes. Returns
    what stops following and withdraws the issue.
    """
    if entry.unique_id in hass.data.get(_DISABLE_AFTER_SETUP, {}):
        entry.async_create_task(
            hass, _async_disable_builtin(hass, entry), "ha_ingestor takeover"
        )
    issue_id = f"{ISSUE_DOUBLE_WRITING}_{entry.entry_id}"
    # Where it writes, however its unique id was made.
    unique_id: str | None
    try:
        unique_id = connection_unique_id(entry.data)
    except InvalidURLError:
        unique_id = None

    @callback
    def check(*_: object) -> None:
        builtin = builtin_entry(hass)
        if (
            # About to be disabled.
            entry.unique_id in hass.data.get(_DISABLE_AFTER_SETUP, {})
            or unique_id is None
            or builtin is None
            or builtin.disabled_by is not None
            or builtin_unique_id(builtin) != unique_id
        ):
            ir.async_delete_issue(hass, DOMAIN, issue_id)
            return
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            data={"builtin_entry_id": builtin.entry_id},
            is_fixable=True,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_DOUBLE_WRITING,
            translation_placeholders={"title": entry.title, "builtin": builtin.title},
        )

    @callback
    def entry_changed(change: ConfigEntryChange, changed: ConfigEntry) -> None:
        if changed.domain == BUILTIN_DOMAIN:
            check()

    unsubscribe = async_dispatcher_connect(
        hass, SIGNAL_CONFIG_ENTRY_CHANGED, entry_changed
    )
    check()

    @callback
    def stop() -> None:
        unsubscribe()
        ir.async_delete_issue(hass, DOMAIN, issue_id)

    return stop
