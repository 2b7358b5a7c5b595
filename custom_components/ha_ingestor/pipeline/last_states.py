"""Each entity's last state whose point is durable, so that a restart writes no duplicate.

When Home Assistant starts, every entity sets its state again, most of them to what it
was before the restart. Those are not changes: writing them would put a duplicate
point into every series on every restart, or after every crash. So the fingerprint of
each entity's last state is kept in the spool, saved in the same transaction that
makes its point durable (stored in the spool, or written to InfluxDB): it survives a
hard kill, and never names a state whose point could still be lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import contextlib
from datetime import date, datetime, time
import hashlib
import math
import secrets

from homeassistant.core import HomeAssistant, State, callback
from homeassistant.helpers.json import json_bytes_sorted
from homeassistant.helpers.storage import Store

from ..const import DOMAIN
from ..line_protocol.encoder import object_text
from ..storage.spool import Spool

_LEGACY_STORAGE_VERSION = 1
# Bytes of a fingerprint: 24 hex digits.
_DIGEST_SIZE = 12


def fingerprint(state: State) -> str:
    """Digest the state and its attributes, the same in every process.

    Any value an attribute can hold is digested: ints beyond 64 bits, NaN, keys that
    are not texts, nested containers, bytes, dates, objects. The common case is one
    call to Home Assistant's JSON encoder; what it refuses takes the slower way. Only
    a state that cannot be walked (nested too deep, or failing as it is read) gets a
    digest of its own each time.
    """
    try:
        content = json_bytes_sorted([state.state, state.attributes])
    except Exception:  # noqa: BLE001 - TypeError, ValueError, an object's own as_dict
        try:
            content = _canonical([state.state, state.attributes]).encode(
                "utf-8", "surrogatepass"
            )
        except Exception:  # noqa: BLE001 - RecursionError, or an object's own failure
            # Nested deeper than Python's recursion limit, or a value that fails as
            # it is read: such a state is never taken for unchanged, so a restart
            # writes it again rather than miss it.
            return secrets.token_hex(_DIGEST_SIZE)
    return hashlib.blake2b(content, digest_size=_DIGEST_SIZE).hexdigest()


def _canonical(value: object) -> str:  # noqa: PLR0911 - one way per type
    """Return a text that only equal values share, whatever their type."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return repr(str.__str__(value))
    if isinstance(value, int):
        return f"i{int(value)}"
    if isinstance(value, float):
        return f"f{value!r}" if not math.isnan(value) else "fnan"
    if isinstance(value, bytes | bytearray):
        return f"b{bytes(value).hex()}"
    if isinstance(value, datetime | date | time):
        return f"t{value.isoformat()}"
    if isinstance(value, Mapping):
        items = sorted(f"{_canonical(k)}:{_canonical(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, set | frozenset):
        return "s[" + ",".join(sorted(_canonical(item) for item in value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    # An integration's object can fail in any way: then it is what its text says.
    with contextlib.suppress(Exception):
        if callable(as_dict := getattr(value, "as_dict", None)):
            return f"o{type(value).__qualname__}{_canonical(as_dict())}"
    return f"o{type(value).__qualname__}:{object_text(value)}"


def fingerprints(states: Iterable[State | None]) -> dict[str, str]:
    """Digest each entity's last state of `states`: for the executor (it takes time).

    None stands for a line of the past (a backfill's): it is no entity's last state.
    """
    last = {state.entity_id: state for state in states if state is not None}
    return {entity_id: fingerprint(state) for entity_id, state in last.items()}


class LastStates:
    """The fingerprints of the states written before the last stop, to compare with."""

    def __init__(self, hass: HomeAssistant, entry_id: str, spool: Spool) -> None:
        """Read them from `spool`."""
        self._hass = hass
        self._spool = spool
        self._legacy: Store[dict[str, str]] = legacy_store(hass, entry_id)
        self._before_restart: dict[str, str] = {}

    async def async_load(self) -> None:
        """Read what was durable before the last stop, or crash.

        Versions before 0.2 kept them in `.storage`, saved at a clean
        stop only: those are taken over once, and the file removed.
        """
        self._before_restart = await self._spool.last_states()
        if legacy := await self._legacy.async_load():
            taken = {k: v for k, v in legacy.items() if k not in self._before_restart}
            await self._spool.save_state(taken)
            self._before_restart |= taken
            await self._legacy.async_remove()

    @callback
    def written_before(self, entity_id: str) -> bool:
        """Whether the entity has a last state from before the start, not compared yet."""
        return entity_id in self._before_restart

    @callback
    def unchanged_since_restart(self, state: State) -> bool:
        """Whether `state` is an entity's first since start, and the same as last written.

        Only an entity's first state after a start is compared; call it for states
        that have no old state.
        """
        before = self._before_restart.pop(state.entity_id, None)
        return before is not None and before == fingerprint(state)

    async def async_fingerprints(
        self, states: Iterable[State | None]
    ) -> dict[str, str]:
        """Digest each entity's last state of `states`, in the executor."""
        states = list(states)
        if not any(states):
            return {}  # lines of the past only: nothing to digest
        return await self._hass.async_add_executor_job(fingerprints, states)


def legacy_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, str]]:
    """Where versions before the spool kept the last states: removed with the entry."""
    return Store(hass, _LEGACY_STORAGE_VERSION, f"{DOMAIN}.{entry_id}.last_states")
