"""Siro's error answers: ``{"error": "<code>", "message": "<text>"}``.

Siro does not document its error shape, so clients must not depend on it;
the simulator uses one shape for its own refusals and for injected faults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    408: "request_timeout",
    409: "conflict",
    422: "unprocessable_entity",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class ApiError(Exception):
    """A refusal: answered with ``status`` and ``{"error", "message"}``."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def error_response(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=dict(headers or {}))


def fault_response(status: int | None, body: Any, headers: dict[str, str]) -> Response:
    """An injected fault: a dict/list as JSON, str or bytes raw, None as the usual error body."""
    status = status or 500
    if body is None:
        body = {"error": _REASONS.get(status, f"http_{status}"), "message": "injected fault"}
    if isinstance(body, (dict, list)):
        return JSONResponse(body, status_code=status, headers=headers)
    content = body if isinstance(body, bytes) else str(body).encode()
    return Response(content, status_code=status, headers={"content-type": "text/plain; charset=utf-8", **headers})
