"""Read a written line back: which entity a point is about.

For the quarantine's repair issue, which names the entities of the points InfluxDB
refused. Both presets write the `domain` tag; `core_compatible` writes the object id
in `entity_id` (as core does), `rich` the whole entity id.
"""

from __future__ import annotations


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split line protocol at `separator`s no backslash escapes."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def line_entity(line: str) -> str | None:
    """Return the entity a line of either preset is about; None if it names none."""
    series = _split_unescaped(line, " ")[0]
    tags: dict[str, str] = {}
    for tag in _split_unescaped(series, ",")[1:]:
        key, _, value = tag.partition("=")
        tags[_unescape(key)] = _unescape(value)
    domain, entity = tags.get("domain"), tags.get("entity_id")
    if not domain or not entity:
        return None
    # An object id has no dot: a tag with one holds the whole entity id (rich).
    return entity if "." in entity else f"{domain}.{entity}"
