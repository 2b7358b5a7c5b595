"""What differs between the Home Assistant releases HA Ingestor runs on: 2026.3 to 2026.11.

Everywhere else the integration uses only what every one of them has. What only some
have is read here, one code path for all:

- Form schemas: 2026.10 replaced voluptuous with probatio and installs probatio under
  the name `voluptuous` (the same objects), so `vol` is the schema library of every
  release. Its types are probatio's, which the tests' Home Assistant expects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import probatio as vol
else:
    import voluptuous as vol

__all__ = ["vol"]
