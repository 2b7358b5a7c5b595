"""Texts made ones UTF-8 can carry: for the lines InfluxDB reads and the SQLite files."""

from __future__ import annotations


def utf8_text(text: str) -> str:
    """Return a text UTF-8 can carry: its surrogate code points made characters.

    A str can hold surrogates (bytes decoded with `surrogateescape`, JSON's escaped
    halves of a pair), which UTF-8 cannot encode: InfluxDB would refuse the whole
    batch, SQLite the whole transaction. A pair becomes the character it encodes, a
    lone half U+FFFD. Surrogates are unprintable: a printable text (nearly every one)
    has none and is returned as it is, after one scan.
    """
    if text.isprintable():
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
