"""Tests of line_protocol/: a module's tests in test_<module>.py."""

import pytest

# The shared helpers check lines with assert: pytest explains their failures too.
pytest.register_assert_rewrite(
    "tests.line_protocol.helpers", "tests.line_protocol.strategies"
)
