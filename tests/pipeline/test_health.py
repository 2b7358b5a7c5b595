"""Write health: the backoff between attempts, and since when and why writes fail."""

from __future__ import annotations

from custom_components.ha_ingestor.influxdb.errors import (
    InfluxConnectionError,
    InfluxUnreachableError,
)
from custom_components.ha_ingestor.pipeline.health import (
    MAX_BACKOFF,
    Backoff,
    WriteHealth,
)


def test_backoff_doubles_up_to_five_minutes() -> None:
    """Waits double from 1 s and never exceed 5 minutes; jitter only shortens."""
    longest = Backoff(rng=lambda: 1.0)
    assert [longest.next_delay() for _ in range(11)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        300,
        300,
    ]
    shortest = Backoff(rng=lambda: 0.0)
    assert [shortest.next_delay() for _ in range(3)] == [0.5, 1, 2]
    assert MAX_BACKOFF == 300


def test_backoff_honours_retry_after_and_resets() -> None:
    """The server's Retry-After wins when longer, up to the cap; success resets."""
    backoff = Backoff(rng=lambda: 1.0)
    assert backoff.next_delay(retry_after=30) == 30
    assert backoff.next_delay(retry_after=10_000) == MAX_BACKOFF
    backoff.reset()
    assert backoff.next_delay() == 1


def test_health_notes_the_first_failure_and_the_recovery() -> None:
    """Failing since the first failure; the last error; a retry time per failure."""
    assert not WriteHealth().failing
    health = WriteHealth()
    assert (health.failing_since, health.last_error, health.retry_at) == (
        None,
        None,
        None,
    )
    assert not health.succeeded()  # nothing to recover from

    first = InfluxUnreachableError("connection refused")
    assert health.failed(first, now=100.0)
    assert health.failing
    since = health.failing_since
    assert since is not None
    assert health.last_error is first
    assert health.retry_at is not None
    assert 100.5 <= health.retry_at <= 101.0  # the first wait: 0.5 to 1 s

    busy = InfluxConnectionError("HTTP 503: busy", retry_after=60)
    assert not health.failed(busy, now=200.0)  # not the first failure
    assert health.failing_since == since
    assert health.last_error is busy
    assert health.retry_at == 260.0  # the server's Retry-After wins

    assert health.succeeded()
    assert (health.failing, health.failing_since, health.last_error) == (
        False,
        None,
        None,
    )
    # The backoff starts again from its first wait.
    health.failed(first, now=300.0)
    assert health.retry_at is not None
    assert health.retry_at <= 301.0
