"""How registry entries become the mirror's rows, in the column order of TABLES."""

from __future__ import annotations

from pathlib import Path

from homeassistant.core import HomeAssistant

from .conftest import assert_mirrored, populate, read_content, running_mirror


async def test_every_populated_field_reaches_the_file(
    hass: HomeAssistant, config_entry_id: str, path: Path
) -> None:
    """The values populate sets are in the file as written, not only equal to an oracle."""
    populate(hass, config_entry_id)
    async with running_mirror(hass, path) as mirror:
        await assert_mirrored(hass, mirror)
        content = await read_content(path)
        assert {row["level"] for row in content["floors"].values()} == {0, 2}
        devices = {row["name"]: row for row in content["devices"].values()}
        assert devices["Hub"]["entry_type"] == "service"
        assert devices["Thermostat"]["via_device_id"] == devices["Hub"]["device_id"]
        channel = devices["Channel 2"]
        assert channel["parent_device_id"] == devices["Thermostat"]["device_id"]
        assert channel["manufacturer"] is None
        rssi = content["entities"]["sensor.hub_rssi"]
        assert (rssi["entity_category"], rssi["disabled_by"], rssi["hidden_by"]) == (
            "diagnostic",
            "integration",
            "integration",
        )
        assert content["entities"]["light.garden_lamp"]["area_id"] == "garden"
        assert set(content["device_labels"]) == {
            (devices["Thermostat"]["device_id"], "critical"),
            (devices["Thermostat"]["device_id"], "energy"),
            (channel["device_id"], "energy"),
        }
