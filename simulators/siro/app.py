"""The ASGI app: faults, authentication, the rate limit, routing and the request log.

``Authorization: Bearer <token>`` with a token known to the state, else 401;
recordings are scoped to the token's organization (others' are 404), and so
are the integration connections listed. 1000 requests per minute per token
(every request counts, rejected ones too), answered 429 with no
``Retry-After`` (Siro sends no rate headers). Injected faults are answered
before authentication, as a proxy would.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.siro.connections import CONNECTION_PARAMS, list_connections
from simulators.siro.errors import ApiError, error_response, fault_response
from simulators.siro.listing import list_recordings
from simulators.siro.params import GET_PARAMS, LIST_PARAMS, flags, single_params
from simulators.siro.recordings import render
from simulators.siro.state import LoggedRequest, SiroState

_RECORDINGS = "/v1/core/recordings"
_CONNECTIONS = "/v1/core/integrations/connections"


class SiroApi:
    """The request handlers. The state is read from ``app.state.siro`` on each
    request, so a test can swap in a fresh state without restarting the server."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")

    def state(self, request: Request) -> SiroState:
        return request.app.state.siro

    async def dispatch(self, request: Request) -> Response:
        state = self.state(request)
        path = request.url.path
        if self.prefix:
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                return error_response(404, "not_found", "no such route")
            path = path[len(self.prefix) :] or "/"
        raw_path = (request.scope.get("raw_path") or path.encode()).decode("latin-1")
        token_id: str | None = None
        response: Response
        try:
            fault = state._take_fault(path)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                response = fault_response(fault.status, fault.body, fault.headers)
            else:
                token, token_id = self._authenticate(request, state)
                if state._over_limit(token):
                    raise ApiError(429, "rate_limited", "rate limit exceeded: 1000 requests per minute per token")
                response = self._route(request, state, path, raw_path, token)
        except ApiError as exc:
            response = error_response(exc.status, exc.error, exc.message)
        state._log(LoggedRequest(method=request.method, path=path, query=dict(request.query_params),
                                 raw_query=request.url.query, status=response.status_code, token_id=token_id,
                                 raw_path=raw_path))
        return response

    @staticmethod
    def _authenticate(request: Request, state: SiroState) -> tuple[str, str | None]:
        header = request.headers.get("authorization")
        if not header:
            raise ApiError(401, "unauthorized", "missing Authorization header (expected 'Bearer <token>')")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "malformed Authorization header (expected 'Bearer <token>')")
        identity = state.identity(token)
        if identity is None:
            raise ApiError(401, "unauthorized", "invalid or revoked API token")
        return token, identity["tokenId"]

    def _route(self, request: Request, state: SiroState, path: str, raw_path: str, token: str) -> Response:
        if request.method != "GET":
            raise ApiError(405, "method_not_allowed", f"{request.method} not allowed")
        identity = state.identity(token) or {}
        org = identity.get("organizationId")
        if path == "/v1/core/auth/caller-identity":
            single_params(request, frozenset())
            return JSONResponse(identity)
        if path == _RECORDINGS:
            return JSONResponse(list_recordings(state, single_params(request, LIST_PARAMS), org))
        if path == _CONNECTIONS:
            return JSONResponse(list_connections(state, single_params(request, CONNECTION_PARAMS), org))
        if path.startswith(_RECORDINGS + "/"):
            return self._recording(request, state, path, raw_path, org)
        raise ApiError(404, "not_found", "no such route")

    def _recording(self, request: Request, state: SiroState, path: str, raw_path: str, org: str | None) -> Response:
        """``GET /v1/core/recordings/{id}``."""
        base = _RECORDINGS + "/"
        # The id is taken from the raw path: an encoded '/' stays part of it.
        raw_base = self.prefix + base
        encoded = raw_path[len(raw_base) :] if raw_path.startswith(raw_base) else path[len(base) :]
        if "/" in encoded:
            raise ApiError(404, "not_found", "no such route")
        recording_id = unquote(encoded)
        shown = flags(single_params(request, GET_PARAMS))
        record = state.recording(recording_id)
        if not recording_id or record is None or record.get("organizationId", state.organization_id) != org:
            raise ApiError(404, "not_found", f"recording {recording_id!r} not found")
        return JSONResponse(render(record, shown))


def create_app(state: SiroState | None = None, *, prefix: str = "") -> Starlette:
    """The simulator's ASGI app. ``prefix`` serves it under a base path such as
    ``/api-externalApi`` (the real API's), in which case clients use
    ``<url>/api-externalApi`` as their base URL."""
    api = SiroApi(prefix)
    app = Starlette(
        routes=[Route("/{path:path}", api.dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])]
    )
    app.state.siro = state if state is not None else SiroState()
    return app
