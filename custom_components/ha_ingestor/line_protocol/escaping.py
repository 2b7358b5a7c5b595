"""Line protocol's escapes and what InfluxDB 1.x reads into names, shared by both presets.

Line protocol has no escape for a line break, escapes differently in names and in
string field values, and InfluxDB 1.x reads some backslashes as escapes where other
servers do not; each preset decides from these what it writes.
"""

from __future__ import annotations

import re
from typing import Final

from ..utf8 import utf8_text

# Line protocol escapes in string field values.
STRING_FIELD_ESCAPES: Final = str.maketrans({"\\": "\\\\", '"': '\\"'})

# InfluxDB 1.x skips these at the start of a line; a line that then starts with `#`
# is a comment.
LINE_START_BLANKS: Final = "\t\x00"

# A backslash InfluxDB 1.x reads as escaping what follows it in a name: the delimiter
# after a name, or an escaped comma, space, `=` or double quote in it. It then refuses
# the line, drops the backslash, or stores a measurement that no query finds.
ESCAPING_BACKSLASH: Final = re.compile(r'\\(?=[ ,="]|\Z)')

# InfluxDB 1.x refuses a tag key `time` (and drops a field `time` without a word).
TIME_KEY: Final = "time"


def single_line(text: str) -> str:
    """Replace line breaks by spaces, as core does: line protocol has no escape for them.

    Every character str.splitlines splits at is unprintable, so a printable text (the
    usual case) is returned as it is, without building a list. The text is also made
    one UTF-8 carries (utf8_text).
    """
    return text if text.isprintable() else " ".join(utf8_text(text).splitlines())


def string_field(text: str) -> str:
    """Return a text as the inside of a string field value."""
    text = single_line(text)
    # Most texts hold neither: two scans, and no copy.
    if "\\" in text or '"' in text:
        return text.translate(STRING_FIELD_ESCAPES)
    return text
