"""What the parent and a child process say to each other.

The parent starts `python -m scripts.bench_ha.child SPEC_JSON`; the child writes lines
starting with PREFIX to stdout (everything else there is Home Assistant's own output)
and reads the parent's answers, one JSON object a line, on stdin.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
import json
import sys
from typing import Any, Final, Self

from .ha_config import Mode
from .influxdb import InfluxConnection
from .results import Scenario

PREFIX: Final = "BENCH "


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything the child needs, passed as one JSON argument."""

    mode: Mode
    scenario: Scenario
    repeat: int
    events: int
    entities: int
    influx_url: str
    influx_username: str
    influx_password: str
    database: str
    config_dir: str
    http_port: int
    rate: float
    outage_seconds: float
    # HA Ingestor options on top of the mode's own (every HA Ingestor mode).
    ingestor_options: dict[str, Any]
    # Count the young generations' objects (YoungCensus): a run not measured.
    young_census: bool = False

    @property
    def influx(self) -> InfluxConnection:
        """The InfluxDB to count points in."""
        return InfluxConnection(
            self.influx_url, self.influx_username, self.influx_password
        )

    def to_argument(self) -> str:
        """Return the command-line argument that carries this spec."""
        return json.dumps(asdict(self))

    @classmethod
    def from_argument(cls, argument: str) -> Self:
        """Read the spec from the command line."""
        return cls(**json.loads(argument))


def send(message: dict[str, Any]) -> None:
    """Tell the parent something, on one line of stdout."""
    sys.stdout.write(PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


async def receive() -> dict[str, Any]:
    """Wait for the parent's next line on stdin."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        msg = "the parent closed stdin"
        raise RuntimeError(msg)
    message: dict[str, Any] = json.loads(line)
    return message
