"""What can go wrong talking to InfluxDB, each error naming the field or fix it concerns."""

from __future__ import annotations


class InfluxError(Exception):
    """The server could not be used; the message is the server's own when it gave one.

    `reason` is the translation key that tells the user what went wrong;
    `retry_after` the wait in seconds the server asked for before a retry, if any.
    """

    reason = "unknown"
    retry_after: float | None = None


class InfluxConnectionError(InfluxError):
    """Unreachable, timed out, or temporarily unable to answer (5xx, 429): worth retrying."""

    reason = "cannot_connect"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Keep the server's requested wait next to the message."""
        super().__init__(message)
        self.retry_after = retry_after


class InfluxUnreachableError(InfluxConnectionError):
    """No answer at all: connection refused or reset, timed out, name not resolved."""


class InfluxSSLError(InfluxConnectionError):
    """The TLS handshake or the server's certificate was rejected."""

    reason = "ssl_error"


class InfluxAuthError(InfluxError):
    """Credentials were rejected (401)."""

    reason = "invalid_auth"


class InfluxForbiddenError(InfluxAuthError):
    """Credentials were accepted but may not write to the database or bucket (403)."""

    reason = "write_forbidden"


class InfluxNotFoundError(InfluxError):
    """The database, retention policy, organization or bucket does not exist."""

    def __init__(self, missing: str, message: str) -> None:
        """Remember which configured name is missing: a config key such as `bucket`."""
        super().__init__(message)
        self.missing = missing
        self.reason = f"{missing}_not_found"


class InfluxWriteRejectedError(InfluxError):
    """The server refused the points themselves (malformed, field type conflict)."""

    reason = "write_rejected"


class InvalidURLError(ValueError):
    """The URL is not an http(s) URL with a host."""
