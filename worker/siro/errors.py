"""The errors of the Siro client: a family (``SiroError``) whose members each sit in a category of
``worker.errors`` (credentials, transient, permanent), and survive pickling (Celery ships them)."""

from __future__ import annotations

from typing import Any

from worker.errors import (
    ConfigError,
    CredentialError,
    PermanentError,
    Unavailable,
    WritebackError,
)


class SiroError(WritebackError):
    """Base of every error the Siro client raises (each one is also in a category of ``worker.errors``)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self._details = details
        for key, value in details.items():
            setattr(self, key, value)

    def __reduce__(self) -> Any:  # picklable (Celery ships exceptions around)
        return (_rebuild_error, (type(self), self.message, self._details))

    def __str__(self) -> str:
        return self.message


def _rebuild_error(cls: type[SiroError], message: str, details: dict[str, Any]) -> SiroError:
    error = cls.__new__(cls)
    SiroError.__init__(error, message, **details)
    return error


class SiroAuthError(SiroError, CredentialError):
    """401/403: Siro rejected the token (wrong, revoked, or without access)."""

    def __init__(self, status: int, url: str = "") -> None:
        super().__init__(
            f"Siro rejected the API token (HTTP {status}{' on ' + url if url else ''}): "
            "check SIRO_API_TOKEN is a current organization integration token",
            status=status,
            url=url,
        )


class RecordingNotFound(SiroError, PermanentError):
    """404 on ``GET /v1/core/recordings/{id}``."""

    def __init__(self, recording_id: str) -> None:
        super().__init__(f"Siro recording {recording_id!r} not found", recording_id=recording_id, status=404)


class SiroRequestError(SiroError, PermanentError):
    """A 4xx other than 401/403/404 (and 408/429): our request was refused."""

    def __init__(self, status: int, body_excerpt: str = "", url: str = "") -> None:
        text = f"Siro refused the request (HTTP {status}{' on ' + url if url else ''})"
        if body_excerpt:
            text += f": {body_excerpt}"
        super().__init__(text, status=status, body_excerpt=body_excerpt, url=url)


class SiroProtocolError(SiroError, PermanentError):
    """Siro answered 2xx with something that is not the JSON we expect."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(f"{message}{' (' + url + ')' if url else ''}", url=url)


class SiroUnavailable(SiroError, Unavailable):
    """Transient failures outlasted the retries (or Siro asked us to wait longer
    than ``retry_after_max``). ``retry_after`` is the server's requested wait in
    seconds when it gave one, so a task queue can schedule the next attempt."""

    def __init__(
        self,
        reason: str,
        *,
        attempts: int,
        status: int | None = None,
        retry_after: float | None = None,
        url: str = "",
    ) -> None:
        super().__init__(
            f"Siro unavailable after {attempts} attempt{'s' if attempts != 1 else ''}"
            f"{' on ' + url if url else ''}: {reason}",
            attempts=attempts,
            status=status,
            retry_after=retry_after,
            url=url,
            reason=reason,
        )


class SiroEndpointError(SiroError, ConfigError):
    """``SIRO_API_URL`` does not point at Siro's external API: an answer that could be Siro's
    (a 404, a redirect, a body that is not JSON) came with a caller-identity endpoint that does
    not answer as Siro's."""

    def __init__(self, base_url: str, url: str = "", status: int | None = None, body_excerpt: str = "") -> None:
        answered = f"{url or 'it'} answered HTTP {status}" if status else f"{url or 'it'} answered oddly"
        super().__init__(
            f"SIRO_API_URL ({base_url}) does not look like Siro's external API: {answered}, and "
            f"/v1/core/auth/caller-identity does not answer as Siro's"
            f"{' (' + body_excerpt[:80] + ')' if body_excerpt else ''}",
            base_url=base_url, url=url, status=status, body_excerpt=body_excerpt,
        )
