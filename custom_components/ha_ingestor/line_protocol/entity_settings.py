"""Settings by domain, entity id or entity id pattern, resolved per entity.

The built-in influxdb integration configures override_measurement and
ignore_attributes per domain (component_config_domain), per pattern
(component_config_glob) and per entity id (component_config), and resolves them with
Home Assistant's EntityValues: the entity id's setting wins over every pattern's, the
last matching pattern's over the domain's. These are the same rules, for the options
that hold such settings, keyed by what a key looks like: a key with `*`, `?` or `[` is
a pattern, one with a dot an entity id, any other a domain.
"""

from __future__ import annotations

from collections.abc import Mapping
import fnmatch
import re
from typing import Final, Literal

# What makes a key a pattern (fnmatch's wildcards and character sets).
WILDCARDS: Final = frozenset("*?[")

type KeyKind = Literal["domain", "entity", "pattern"]


def key_kind(key: str) -> KeyKind:
    """Whether a settings key is a domain, an entity id or a pattern."""
    if not WILDCARDS.isdisjoint(key):
        return "pattern"
    return "entity" if "." in key else "domain"


class EntitySettings[T]:
    """One setting by domain, entity id and pattern, resolved as EntityValues does."""

    def __init__(
        self,
        by_key: Mapping[str, T],
        by_domain: Mapping[str, T] | None = None,
    ) -> None:
        """Hold `by_key` (domains, entity ids, patterns) and more domains' settings."""
        self._domains: dict[str, T] = dict(by_domain or {})
        self._entities: dict[str, T] = {}
        # Last first: the last matching pattern wins.
        patterns: list[tuple[re.Pattern[str], T]] = []
        for key, value in by_key.items():
            match key_kind(key):
                case "pattern":
                    patterns.append((re.compile(fnmatch.translate(key)), value))
                case "entity":
                    self._entities[key] = value
                case "domain":
                    self._domains[key] = value
        self._patterns = tuple(reversed(patterns))

    def __bool__(self) -> bool:
        """Whether any entity can have a setting."""
        return bool(self._domains or self._entities or self._patterns)

    def get(self, entity_id: str, domain: str) -> T | None:
        """Return the entity's setting, None if it has none."""
        if (value := self._entities.get(entity_id)) is not None:
            return value
        for pattern, value in self._patterns:
            if pattern.match(entity_id):
                return value
        return self._domains.get(domain)
