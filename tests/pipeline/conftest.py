"""Fixtures for the pipeline's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from custom_components.ha_ingestor.storage.spool import Spool


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    """A real spool file of its own, closed after the test."""
    opened = await Spool.open(tmp_path / "test.spool", 64 << 20)
    yield opened
    await opened.close()
