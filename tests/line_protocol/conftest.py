"""Home Assistant's own influxdb integration, the oracle of the core_compatible preset."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import importlib
import sys
from types import ModuleType

import pytest

# What core's influxdb package imports from the client libraries, which it needs only
# for writing and which are not installed (they are that integration's requirements).
_CORE_CLIENT_MODULES = {
    "influxdb": ("InfluxDBClient", "exceptions"),
    "influxdb_client": ("InfluxDBClient",),
    "influxdb_client.client": (),
    "influxdb_client.client.write_api": ("ASYNCHRONOUS", "SYNCHRONOUS"),
    "influxdb_client.rest": ("ApiException",),
}


@contextlib.contextmanager
def installed_core_influxdb() -> Iterator[ModuleType]:
    """Home Assistant's influxdb integration as installed: its real code."""
    package = "homeassistant.components.influxdb"
    with pytest.MonkeyPatch.context() as patch:
        for name, attributes in _CORE_CLIENT_MODULES.items():
            module = ModuleType(name)
            for attribute in attributes:
                setattr(module, attribute, object)
            patch.setitem(sys.modules, name, module)
        yield importlib.import_module(package)
        # No later import may get the package built on stand-ins.
        for name in [n for n in sys.modules if f"{n}.".startswith(f"{package}.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def core_influxdb() -> Iterator[ModuleType]:
    """Home Assistant's influxdb integration as installed: its real code."""
    with installed_core_influxdb() as module:
        yield module
