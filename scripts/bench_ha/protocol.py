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

from .ha_config import EXPORTER_MODES, Mode
from .influxdb import InfluxConnection, PointCounter
from .peers import PEERS
from .postgres import PostgresConnection, RowCounter
from .results import Scenario
from .servers import StoredCounter

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
    # The recorder variant: Home Assistant's recorder on, with SQLite and its defaults.
    recorder: bool = False
    # The peer modes' PostgreSQL (its port) and the peer's component folder.
    postgres_port: int = 0
    peer_folder: str = ""
    # The restart scenario's second Home Assistant, on the first one's config dir.
    resume: bool = False

    @property
    def influx(self) -> InfluxConnection:
        """The InfluxDB to count points in."""
        return InfluxConnection(
            self.influx_url, self.influx_username, self.influx_password
        )

    @property
    def postgres(self) -> PostgresConnection:
        """The PostgreSQL the peer modes write to."""
        return PostgresConnection(self.postgres_port)

    @property
    def peer_url(self) -> str:
        """The database URL a peer mode's YAML gets (its README's user, if any)."""
        user = PEERS[self.mode].user
        return self.postgres.url(self.database, *(user or ()))

    def counter(self) -> StoredCounter | None:
        """Return what counts this run's stored state changes (None: no exporter)."""
        if self.mode not in EXPORTER_MODES:
            return None
        if (peer := PEERS.get(self.mode)) is not None:
            return RowCounter(self.postgres, self.database, peer.table)
        return PointCounter(self.influx, self.database)

    def create_database(self) -> None:
        """Create the run's fresh database (with what the peer's README runs in it)."""
        if (peer := PEERS.get(self.mode)) is not None:
            self.postgres.create_database(self.database, peer.setup)
        elif self.mode in EXPORTER_MODES:
            self.influx.create_database(self.database)

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
