"""What can go wrong talking to InfluxDB, each error naming the field or fix it concerns."""

from __future__ import annotations

from collections.abc import Mapping


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


class InfluxCACertificateError(InfluxSSLError):
    """The file of certificate authorities to check the server against is unusable."""

    reason = "ca_certificate_unusable"


class InfluxWrongVersionError(InfluxConnectionError):
    """The server answers as another major version of InfluxDB than the one chosen."""

    reason = "wrong_version"


class InfluxAuthError(InfluxError):
    """Credentials were rejected (401)."""

    reason = "invalid_auth"


class InfluxForbiddenError(InfluxAuthError):
    """Credentials were accepted but may not write to the database or bucket (403)."""

    reason = "write_forbidden"


class InfluxUnsendableTokenError(InfluxAuthError):
    """The token holds a character HTTP cannot carry in a header: it is never sent."""

    reason = "invalid_token"


class InfluxRequestError(InfluxError):
    """The HTTP client refused to make the request (its session closed under it, say).

    No server answered; the points wait in the spool as for any failed write.
    """


class InfluxFieldError(InfluxError):
    """A configured name the server cannot use: `field` is its config key."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        """Remember the field (a config key such as `bucket`) and what is wrong with it."""
        super().__init__(message)
        self.field = field
        self.reason = reason


class InfluxNotFoundError(InfluxFieldError):
    """The database, retention policy, organization or bucket does not exist."""

    def __init__(self, missing: str, message: str) -> None:
        """Name the missing thing by its config key; the reason is `<key>_not_found`."""
        super().__init__(missing, f"{missing}_not_found", message)


class InfluxInvalidNameError(InfluxFieldError):
    """The server refuses the name itself (InfluxDB 3's rules for database names)."""

    def __init__(self, field: str, message: str) -> None:
        """Name the field by its config key; the reason is `invalid_<key>`."""
        super().__init__(field, f"invalid_{field}", message)


class InfluxWriteRejectedError(InfluxError):
    """The server refused the points themselves (malformed, field type conflict).

    `refused` maps each line the server named, by its index in the body written, to
    the server's own message for it; it is empty when the server did not say which
    lines it refused. `others_stored` says whether the server stored every line it
    did not name (InfluxDB 3's partial write), or refused the whole batch and named
    only the line it stopped at.
    """

    reason = "write_rejected"

    def __init__(
        self,
        message: str,
        refused: Mapping[int, str] | None = None,
        *,
        others_stored: bool = False,
    ) -> None:
        """Keep the lines the server named next to its message."""
        super().__init__(message)
        self.refused: Mapping[int, str] = refused or {}
        self.others_stored = others_stored


class InvalidURLError(ValueError):
    """The URL is not an http(s) URL with a host."""
