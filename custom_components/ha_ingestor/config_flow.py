"""Config flow: choose InfluxDB 1.x or 2.x, enter the connection, test it for real."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import (
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio

from .const import (
    API_V1,
    API_V2,
    CONF_API_VERSION,
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_ORGANIZATION,
    CONF_RETENTION_POLICY,
    DEFAULT_DATABASE,
    DEFAULT_URL,
    DOMAIN,
    LOGGER,
)
from .influx_client import (
    InfluxAuthError,
    InfluxConnectionError,
    InfluxError,
    InfluxNotFoundError,
    InvalidURLError,
    create_client,
    parse_url,
)

_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL, autocomplete="url"))
_TEXT = TextSelector()
_PASSWORD = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)

STEP_INFLUXDB_V1_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_URL, default=DEFAULT_URL): _URL,
        probatio.Required(CONF_DATABASE, default=DEFAULT_DATABASE): _TEXT,
        probatio.Optional(CONF_RETENTION_POLICY): _TEXT,
        probatio.Optional(CONF_USERNAME): TextSelector(
            TextSelectorConfig(autocomplete="username")
        ),
        probatio.Optional(CONF_PASSWORD): _PASSWORD,
        probatio.Required(CONF_VERIFY_SSL, default=True): bool,
    }
)
STEP_INFLUXDB_V2_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_URL, default=DEFAULT_URL): _URL,
        probatio.Required(CONF_TOKEN): _PASSWORD,
        probatio.Required(CONF_ORGANIZATION): _TEXT,
        probatio.Required(CONF_BUCKET): _TEXT,
        probatio.Required(CONF_VERIFY_SSL, default=True): bool,
    }
)
# Optional 1.x fields are stored empty rather than missing.
_V1_OPTIONAL_DEFAULTS = {
    CONF_RETENTION_POLICY: "",
    CONF_USERNAME: "",
    CONF_PASSWORD: "",
}


class HaIngestorConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a connection to one InfluxDB database or bucket."""

    VERSION = 1
    MINOR_VERSION = 1

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask which InfluxDB version the server speaks."""
        return self.async_show_menu(
            step_id="user", menu_options=["influxdb_v1", "influxdb_v2"]
        )

    async def async_step_influxdb_v1(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Connect to InfluxDB 1.x: database, retention policy, optional user."""
        return await self._async_connection_step(
            "influxdb_v1", STEP_INFLUXDB_V1_SCHEMA, user_input, API_V1, CONF_PASSWORD
        )

    async def async_step_influxdb_v2(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Connect to InfluxDB 2.x: token, organization, bucket."""
        return await self._async_connection_step(
            "influxdb_v2", STEP_INFLUXDB_V2_SCHEMA, user_input, API_V2, CONF_TOKEN
        )

    async def _async_connection_step(
        self,
        step_id: str,
        schema: probatio.Schema,
        user_input: dict[str, Any] | None,
        api_version: str,
        credentials_field: str,
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {CONF_API_VERSION: api_version, **user_input}
            if api_version == API_V1:
                data = {**_V1_OPTIONAL_DEFAULTS, **data}
            try:
                url = parse_url(data[CONF_URL])
                await create_client(self.hass, data).validate()
            except InvalidURLError:
                errors[CONF_URL] = "invalid_url"
            except InfluxConnectionError as err:
                errors[CONF_URL] = err.reason
            except InfluxAuthError as err:
                errors[credentials_field] = err.reason
            except InfluxNotFoundError as err:
                errors[err.missing] = err.reason
            except InfluxError as err:
                LOGGER.warning("Unexpected answer from InfluxDB: %s", err)
                errors["base"] = err.reason
            except Exception:  # noqa: BLE001 - any bug must still leave a usable form
                LOGGER.exception("Unexpected error while testing the connection")
                errors["base"] = "unknown"
            else:
                target = data[CONF_DATABASE if api_version == API_V1 else CONF_BUCKET]
                scope = "" if api_version == API_V1 else f"/{data[CONF_ORGANIZATION]}"
                server = f"{url.scheme}://{url.host}:{url.port}{url.path.rstrip('/')}"
                await self.async_set_unique_id(f"{server}{scope}/{target}")
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=f"{target} on {url.host}:{url.port}", data=data
                )
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )
