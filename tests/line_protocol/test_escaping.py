"""line_protocol/escaping.py: line protocol's escapes, and what InfluxDB 1.x reads.

Both presets build their names and string fields from these; what the constants say
about InfluxDB 1.x is checked against the real server.
"""

from __future__ import annotations

from hypothesis import given, strategies as st
import pytest

from custom_components.ha_ingestor.line_protocol.escaping import (
    ESCAPING_BACKSLASH,
    LINE_START_BLANKS,
    TIME_KEY,
    single_line,
    string_field,
)

from ..influxdb_v1_server import InfluxDBv1Server
from .helpers import read_string
from .strategies import TEXTS, TEXTS_WITH_SURROGATES

# Texts with every kind of line break str.splitlines knows, quotes and backslashes.
AWKWARD_TEXTS = [
    'say "hi"',
    "C:\\temp\\",
    '\\"',
    "two\nlines",
    "Avenida 50\n28002 Madrid\r\nEspaña\n",
    "a\x0bb\x0cc\x1cd\x1de\x1ef\x85g\u2028h\u2029i\rj",
    "\n",
    "",
    "température",
]


@pytest.mark.parametrize(
    ("text", "one_line"),
    [
        ("a\nb", "a b"),
        ("a\r\nb", "a b"),
        ("a\n", "a"),
        ("\n\na", "  a"),
        ("a\u2028b\x85c", "a b c"),
        ("\x00a\tb", "\x00a\tb"),  # unprintable, but no line break
    ],
)
def test_single_line(text: str, one_line: str) -> None:
    """Line breaks become spaces, as core does; a last one goes."""
    assert single_line(text) == one_line


@given(TEXTS_WITH_SURROGATES)
def test_single_line_is_utf8(text: str) -> None:
    """Whatever surrogates a text holds, its single line and field have none left."""
    for carried in (single_line(text), string_field(text)):
        assert not any("\ud800" <= char <= "\udfff" for char in carried)
        assert carried.encode("utf-8").decode("utf-8") == carried


@given(TEXTS | st.text())
def test_single_line_leaves_no_line_break(text: str) -> None:
    """Whatever the text, one line; a printable text is returned as it is."""
    one_line = single_line(text)
    assert one_line.splitlines() in ([one_line], [])
    assert one_line == " ".join(text.splitlines())
    if text.isprintable():
        assert one_line is text


@given(TEXTS | st.text() | st.sampled_from(AWKWARD_TEXTS))
def test_string_field_reads_back_as_the_text(text: str) -> None:
    """The quoted value ends at its own closing quote and reads back as the text."""
    escaped = string_field(text)
    quoted = f'"{escaped}" 1'
    assert read_string(quoted, 0) == (single_line(text), len(escaped) + 2)
    if text.isprintable() and not {"\\", '"'} & set(text):
        assert escaped is text


@pytest.mark.parametrize(
    ("name", "escaping"),
    [
        ("a\\", True),
        ("a\\ b", True),
        ("a\\,b", True),
        ("a\\=b", True),
        ('a\\"b', True),
        ("a\\\\", True),
        ("a\\b", False),
        ("a\\\\b", False),
        ("a\\nb", False),
        ("\\x", False),
        ("a b,c=d", False),
    ],
)
def test_escaping_backslash(name: str, escaping: bool) -> None:
    """Found before a comma, space, `=` or double quote, and last; nowhere else."""
    assert (ESCAPING_BACKSLASH.search(name) is not None) is escaping


def _write(influxdb: InfluxDBv1Server, database: str, lines: list[str]) -> int:
    status, _ = influxdb.request(
        "POST", "/write", {"db": database, "precision": "u"}, "\n".join(lines).encode()
    )
    return status


def _shown(influxdb: InfluxDBv1Server, database: str, query: str) -> list[str]:
    """The names a SHOW query answers over every series (its last column), sorted."""
    return sorted(
        row[-1]
        for series in influxdb.query(query, database)
        for row in series["values"]
    )


# Names with backslashes ESCAPING_BACKSLASH does not find.
_KEPT = ["a\\b", "C:\\temp\\x", "\\\\srv", "a\\nb", "\\x", "é\\ü"]


def test_influxdb_keeps_other_backslashes(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """A backslash the pattern does not find is stored as written, in every name."""
    lines = [
        f"{name},t={name} {name}=1 {time}" for time, name in enumerate(_KEPT, start=1)
    ]
    assert not any(ESCAPING_BACKSLASH.search(name) for name in _KEPT)
    assert _write(influxdb, database, lines) == 204
    assert _shown(influxdb, database, "SHOW MEASUREMENTS") == sorted(_KEPT)
    assert _shown(influxdb, database, "SHOW TAG VALUES WITH KEY = t") == sorted(_KEPT)
    keys = [
        key
        for series in influxdb.query("SHOW FIELD KEYS", database)
        for key, _ in series["values"]
    ]
    assert sorted(keys) == sorted(_KEPT)


@pytest.mark.parametrize(
    ("name", "tag_value", "field_key"),
    [
        # What InfluxDB 1.x stores for the name as a tag value and as a field key;
        # None: it refuses the line.
        ("a\\", None, None),
        ("a\\ b", "a b", "a b"),
        ("a\\,b", "a,b", "a,b"),
        ("a\\=b", "a=b", "a=b"),
        ('a\\"b', 'a\\"b', 'a"b'),
    ],
)
def test_influxdb_reads_an_escaping_backslash_as_an_escape(
    influxdb: InfluxDBv1Server,
    database: str,
    name: str,
    tag_value: str | None,
    field_key: str | None,
) -> None:
    """Where the pattern finds a backslash, InfluxDB does not keep every name as written.

    It refuses the line or drops the backslash; so the presets never write one.
    """
    assert ESCAPING_BACKSLASH.search(name)
    stored: list[str | None] = []
    for line, query in (
        (f"m,t={name} f=1 1", "SHOW TAG VALUES FROM m WITH KEY = t"),
        (f"n {name}=1 2", "SHOW FIELD KEYS FROM n"),
    ):
        if _write(influxdb, database, [line]) == 204:
            (series,) = influxdb.query(query, database)
            (row,) = series["values"]
            stored.append(row[1] if query.startswith("SHOW TAG") else row[0])
        else:
            stored.append(None)
    assert stored == [tag_value, field_key]
    # Kept in a tag value, `\"` is still read as `"` in a field key.
    assert stored != [name, name]


def test_influxdb_skips_blanks_at_the_start_of_a_line(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """After tabs and NULs, a line is read as it goes on: `#` makes it a comment."""
    lines = []
    for time, blank in enumerate(LINE_START_BLANKS, start=1):
        lines += [f"{blank}start f=1 {time}", f"{blank}#comment f=1 {time}"]
    lines.append(f"{LINE_START_BLANKS}#comment f=1 9")
    assert _write(influxdb, database, lines) == 204
    assert _shown(influxdb, database, "SHOW MEASUREMENTS") == ["start"]
    (series,) = influxdb.query("SELECT * FROM start", database)
    assert len(series["values"]) == len(LINE_START_BLANKS)


def test_influxdb_refuses_a_time_tag_and_drops_a_time_field(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """A tag key `time` costs the point; a field `time` is lost without a word."""
    assert _write(influxdb, database, [f"m,{TIME_KEY}=x f=1 1"]) == 400
    assert _write(influxdb, database, [f"n {TIME_KEY}=1,f=2 2"]) == 204
    assert influxdb.query("SHOW MEASUREMENTS", database) == [
        {"name": "measurements", "columns": ["name"], "values": [["n"]]}
    ]
    (series,) = influxdb.query("SHOW FIELD KEYS FROM n", database)
    assert series["values"] == [["f", "float"]]


def test_influxdb_stores_string_fields_as_the_text(
    influxdb: InfluxDBv1Server, database: str
) -> None:
    """Each escaped text is stored as the text on one line."""
    lines = [
        f'm f="{string_field(text)}" {time}'
        for time, text in enumerate(AWKWARD_TEXTS, start=1)
    ]
    assert _write(influxdb, database, lines) == 204
    (series,) = influxdb.query("SELECT f FROM m", database)
    assert [value for _, value in series["values"]] == [
        single_line(text) for text in AWKWARD_TEXTS
    ]
