"""Config flow: choose InfluxDB 3, 2 or 1.x, enter the connection, test it for real.

Or take over from Home Assistant's built-in influxdb integration (takeover.py): its
connection, tested the same way, and its options; the last page names what differs
and disables it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
)
from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.util import dt as dt_util

from .compat import vol
from .const import (
    API_V1,
    API_V2,
    API_V3,
    CONF_API_VERSION,
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_HISTORY_BACKFILL,
    CONF_MIRROR_ENABLED,
    CONF_MIRROR_PATH,
    CONF_NO_SYNC,
    CONF_ORGANIZATION,
    CONF_RETENTION_POLICY,
    CONF_SSL_CA_CERT,
    DEFAULT_DATABASE,
    DEFAULT_MIRROR_FILE,
    DEFAULT_URL,
    DEFAULT_V3_URL,
    DOMAIN,
    LOGGER,
)
from .influxdb.client import ServerInfo
from .influxdb.connection import (
    async_create_client,
    connection_title,
    connection_unique_id,
)
from .influxdb.errors import (
    InfluxAuthError,
    InfluxConnectionError,
    InfluxError,
    InfluxFieldError,
    InvalidURLError,
)
from .options_flow import (
    HISTORY_FORM,
    MIRROR_FORM,
    HaIngestorOptionsFlow,
    async_check_mirror,
    history_placeholders,
)
from .pipeline.backfill import async_estimate_history
from .takeover import (
    Takeover,
    TakeoverError,
    async_describe,
    async_disable_after_setup,
    async_plan,
    takeover_offered,
)

_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL, autocomplete="url"))
_TEXT = TextSelector()
_USERNAME = TextSelector(TextSelectorConfig(autocomplete="username"))
_PASSWORD = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)

INFLUXDB_V1_FORM = vol.Schema(
    {
        vol.Required(CONF_URL, default=DEFAULT_URL): _URL,
        vol.Required(CONF_DATABASE, default=DEFAULT_DATABASE): _TEXT,
        vol.Optional(CONF_RETENTION_POLICY): _TEXT,
        vol.Optional(CONF_USERNAME): _USERNAME,
        vol.Optional(CONF_PASSWORD): _PASSWORD,
        vol.Required(CONF_VERIFY_SSL, default=True): bool,
    }
)
INFLUXDB_V2_FORM = vol.Schema(
    {
        vol.Required(CONF_URL, default=DEFAULT_URL): _URL,
        vol.Required(CONF_TOKEN): _PASSWORD,
        vol.Required(CONF_ORGANIZATION): _TEXT,
        vol.Required(CONF_BUCKET): _TEXT,
        vol.Required(CONF_VERIFY_SSL, default=True): bool,
    }
)
INFLUXDB_V3_FORM = vol.Schema(
    {
        vol.Required(CONF_URL, default=DEFAULT_V3_URL): _URL,
        vol.Required(CONF_DATABASE, default=DEFAULT_DATABASE): _TEXT,
        vol.Optional(CONF_TOKEN): _PASSWORD,
        vol.Required(CONF_NO_SYNC, default=False): bool,
        vol.Required(CONF_VERIFY_SSL, default=True): bool,
    }
)
_CONNECTION_FORMS = {
    API_V1: INFLUXDB_V1_FORM,
    API_V2: INFLUXDB_V2_FORM,
    API_V3: INFLUXDB_V3_FORM,
}
_CREDENTIALS_FORMS = {
    API_V1: vol.Schema(
        {
            vol.Optional(CONF_USERNAME): _USERNAME,
            vol.Optional(CONF_PASSWORD): _PASSWORD,
        }
    ),
    API_V2: vol.Schema({vol.Required(CONF_TOKEN): _PASSWORD}),
    API_V3: vol.Schema({vol.Optional(CONF_TOKEN): _PASSWORD}),
}
# Optional credentials, left empty in a form, are stored empty rather than missing.
_CLEARED_CREDENTIALS: dict[str, dict[str, str]] = {
    API_V1: {CONF_USERNAME: "", CONF_PASSWORD: ""},
    API_V2: {},
    API_V3: {CONF_TOKEN: ""},
}
# The takeover's last page: disable the built-in integration (on unless the user says).
CONF_DISABLE_BUILTIN = "disable_builtin"
STEP_TAKEOVER_CONFIRM_SCHEMA = vol.Schema(
    {vol.Required(CONF_DISABLE_BUILTIN, default=True): BooleanSelector()}
)
# The form that shows a copied connection that does not work, by API version.
_CONNECTION_STEPS = {API_V1: "influxdb_v1", API_V2: "influxdb_v2"}
_OPTIONAL_DEFAULTS: dict[str, dict[str, str]] = {
    API_V1: {CONF_RETENTION_POLICY: "", **_CLEARED_CREDENTIALS[API_V1]},
    API_V2: {},
    API_V3: _CLEARED_CREDENTIALS[API_V3],
}


class HaIngestorConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a connection to one InfluxDB database or bucket."""

    VERSION = 1
    # 1.2: the measurement rule domain__device_class became domain_device_class.
    MINOR_VERSION = 2

    def __init__(self) -> None:
        """Keep the tested connection and the options while the next steps are shown."""
        self._data: dict[str, Any] = {}
        self._options: dict[str, Any] = {}
        # What a takeover copies from the built-in integration; None in other flows.
        self._takeover: Takeover | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> HaIngestorOptionsFlow:
        """Create the options flow: filters and batching."""
        return HaIngestorOptionsFlow()

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask which InfluxDB the server is: the newest first.

        Where the built-in influxdb integration is set up, taking over from it comes
        before all.
        """
        if takeover_offered(self.hass):
            return self.async_show_menu(
                step_id="user",
                menu_options=["takeover", "influxdb_v3", "influxdb_v2", "influxdb_v1"],
            )
        return self.async_show_menu(
            step_id="user", menu_options=["influxdb_v3", "influxdb_v2", "influxdb_v1"]
        )

    async def async_step_takeover(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Copy the built-in integration's connection and options; test the connection.

        A connection that does not work is shown in its version's form, the errors on
        its fields.
        """
        try:
            plan = await async_plan(self.hass)
        except TakeoverError as err:
            if err.reason == "yaml_invalid":
                return self.async_abort(
                    reason="yaml_invalid", description_placeholders={"error": str(err)}
                )
            return self.async_abort(reason="builtin_missing")
        self._takeover = plan
        data = plan.data
        api_version = data[CONF_API_VERSION]
        try:
            unique_id = connection_unique_id(data)
        except InvalidURLError:
            errors, server = {CONF_URL: "invalid_url"}, None
        else:
            await self.async_set_unique_id(unique_id)
            self._abort_if_unique_id_configured()
            errors, server = await self._async_validate(data)
        if not errors:
            self._data = data
            return await self._async_connection_tested(server)
        return self.async_show_form(
            step_id=_CONNECTION_STEPS[api_version],
            data_schema=self.add_suggested_values_to_schema(
                _CONNECTION_FORMS[api_version], data
            ),
            errors=errors,
        )

    async def async_step_takeover_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Say what changes, and create the entry; disable the built-in one if asked.

        It is disabled once the new entry records, so that no state change falls
        between the two.
        """
        if (plan := self._takeover) is None:
            return await self.async_step_takeover()
        if user_input is not None:
            if plan.builtin_enabled and user_input.get(CONF_DISABLE_BUILTIN, True):
                async_disable_after_setup(
                    self.hass, connection_unique_id(self._data), plan.builtin_entry_id
                )
            options = plan.options | {
                CONF_MIRROR_ENABLED: False,
                CONF_MIRROR_PATH: self.hass.config.path(DEFAULT_MIRROR_FILE),
            }
            return self.async_create_entry(
                title=connection_title(self._data), data=self._data, options=options
            )
        placeholders = await async_describe(self.hass, plan)
        return self.async_show_form(
            step_id="takeover_confirm",
            data_schema=(
                STEP_TAKEOVER_CONFIRM_SCHEMA if plan.builtin_enabled else vol.Schema({})
            ),
            description_placeholders={
                "title": connection_title(self._data),
                **placeholders,
            },
        )

    async def async_step_influxdb_v3(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Connect to InfluxDB 3: database, optional token, no_sync."""
        return await self._async_create_step("influxdb_v3", API_V3, user_input)

    async def async_step_influxdb_v1(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Connect to InfluxDB 1.x or a compatible server: database, optional user."""
        return await self._async_create_step("influxdb_v1", API_V1, user_input)

    async def async_step_influxdb_v2(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Connect to InfluxDB 2.x: token, organization, bucket."""
        return await self._async_create_step("influxdb_v2", API_V2, user_input)

    async def _async_create_step(
        self, step_id: str, api_version: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _with_defaults({CONF_API_VERSION: api_version, **user_input})
            # A takeover keeps the built-in integration's CA certificate file, which
            # the form does not show.
            if (
                self._takeover is not None
                and CONF_SSL_CA_CERT in self._takeover.data
                and data[CONF_VERIFY_SSL]
            ):
                data[CONF_SSL_CA_CERT] = self._takeover.data[CONF_SSL_CA_CERT]
            errors, server = await self._async_validate(data)
            if not errors:
                await self.async_set_unique_id(connection_unique_id(data))
                self._abort_if_unique_id_configured()
                self._data = data
                return await self._async_connection_tested(server)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                _CONNECTION_FORMS[api_version], user_input
            ),
            errors=errors,
        )

    async def _async_connection_tested(
        self, server: ServerInfo | None
    ) -> ConfigFlowResult:
        """Go on with the connection tested, in `_data`.

        Where the first write will create the database (InfluxDB 3), say so first.
        """
        if server is not None and server.database_exists is False:
            return await self.async_step_database_created()
        return await self._async_connection_confirmed()

    async def async_step_database_created(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Say that the database does not exist yet: the first write creates it."""
        if user_input is not None:
            return await self._async_connection_confirmed()
        return self.async_show_form(
            step_id="database_created",
            description_placeholders={
                "database": self._data[CONF_DATABASE],
                "url": self._data[CONF_URL],
            },
        )

    async def _async_connection_confirmed(self) -> ConfigFlowResult:
        if self._takeover is not None:
            return await self.async_step_takeover_confirm()
        if self.source == SOURCE_RECONFIGURE:
            data = self._data
            return self.async_update_reload_and_abort(
                self._get_reconfigure_entry(),
                unique_id=connection_unique_id(data),
                title=connection_title(data),
                data=data,
            )
        return await self.async_step_registry_mirror()

    async def async_step_registry_mirror(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer to mirror the registries into an SQLite file."""
        errors: dict[str, str] = {}
        if user_input is not None:
            self._options, errors = await async_check_mirror(self.hass, user_input)
            if not errors:
                return await self.async_step_history()
        return self.async_show_form(
            step_id="registry_mirror",
            data_schema=self.add_suggested_values_to_schema(
                MIRROR_FORM,
                user_input
                or {CONF_MIRROR_PATH: self.hass.config.path(DEFAULT_MIRROR_FILE)},
            ),
            errors=errors,
        )

    async def async_step_history(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer the history the recorder already has, then create the entry.

        Not shown when the recorder holds none (or does not run).
        """
        options = self._options
        if user_input is None:
            estimate = await async_estimate_history(self.hass, {}, dt_util.utcnow())
            if estimate is not None:
                return self.async_show_form(
                    step_id="history",
                    data_schema=HISTORY_FORM,
                    description_placeholders=history_placeholders(estimate),
                )
        elif user_input[CONF_HISTORY_BACKFILL]:
            # Taken by the entry when it first starts, then removed.
            options = options | {CONF_HISTORY_BACKFILL: True}
        return self.async_create_entry(
            title=connection_title(self._data), data=self._data, options=options
        )

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Start re-authentication: the server rejected the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for new credentials and test them before saving."""
        entry = self._get_reauth_entry()
        api_version = entry.data[CONF_API_VERSION]
        errors: dict[str, str] = {}
        if user_input is not None:
            # Optional credentials left empty mean: no authentication.
            data = {**entry.data, **_CLEARED_CREDENTIALS[api_version], **user_input}
            errors, _ = await self._async_validate(data)
            if not errors:
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(
                _CREDENTIALS_FORMS[api_version],
                user_input or {CONF_USERNAME: entry.data.get(CONF_USERNAME, "")},
            ),
            description_placeholders={"title": entry.title},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the server, credentials, database or bucket of an entry."""
        entry = self._get_reconfigure_entry()
        api_version = entry.data[CONF_API_VERSION]
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _with_defaults({CONF_API_VERSION: api_version, **user_input})
            # The forms have no CA certificate field: one taken over is kept.
            if CONF_SSL_CA_CERT in entry.data:
                data[CONF_SSL_CA_CERT] = entry.data[CONF_SSL_CA_CERT]
            errors, server = await self._async_validate(data)
            if not errors:
                unique_id = connection_unique_id(data)
                if any(
                    other.unique_id == unique_id
                    for other in self._async_current_entries(include_ignore=False)
                    if other.entry_id != entry.entry_id
                ):
                    return self.async_abort(reason="already_configured")
                self._data = data
                return await self._async_connection_tested(server)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _CONNECTION_FORMS[api_version], user_input or entry.data
            ),
            errors=errors,
        )

    async def _async_validate(
        self, data: dict[str, Any]
    ) -> tuple[dict[str, str], ServerInfo | None]:
        """Test the connection for real.

        Returns the errors keyed by the field at fault, or none and what the server
        said about itself.
        """
        credentials_field = (
            CONF_PASSWORD if data[CONF_API_VERSION] == API_V1 else CONF_TOKEN
        )
        server = None
        try:
            server = await (await async_create_client(self.hass, data)).validate()
        except InvalidURLError:
            errors = {CONF_URL: "invalid_url"}
        except InfluxConnectionError as err:
            errors = {CONF_URL: err.reason}
        except InfluxAuthError as err:
            errors = {credentials_field: err.reason}
        except InfluxFieldError as err:
            errors = {err.field: err.reason}
        except InfluxError as err:
            LOGGER.warning("Unexpected answer from InfluxDB: %s", err)
            errors = {"base": err.reason}
        except Exception:  # noqa: BLE001 - any bug must still leave a usable form
            LOGGER.exception("Unexpected error while testing the connection")
            errors = {"base": "unknown"}
        else:
            errors = {}
        return errors, server


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Store optional fields left empty as empty strings rather than leave them out."""
    return {**_OPTIONAL_DEFAULTS[data[CONF_API_VERSION]], **data}
