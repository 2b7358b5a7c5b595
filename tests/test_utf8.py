"""utf8.py: texts made ones UTF-8 can carry."""

from __future__ import annotations

import pytest

from custom_components.ha_ingestor.utf8 import utf8_text


@pytest.mark.parametrize(
    ("text", "carried"),
    [
        ("a\ud83d\ude00b", "a\U0001f600b"),  # a pair: the character it encodes
        ("a\udcffb", "a\ufffdb"),  # a byte `surrogateescape` kept
        ("\ude00\ud83d", "\ufffd\ufffd"),  # halves in the wrong order
        ("x\ud800", "x\ufffd"),
        ("température ☃\n", "température ☃\n"),  # nothing else changes
    ],
)
def test_utf8_text(text: str, carried: str) -> None:
    """Surrogates become what UTF-8 can carry; every other character stays."""
    assert utf8_text(text) == carried
