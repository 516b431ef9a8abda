"""The ASGI app: request log, faults, authentication, rate limit, scopes, then routing.

A request is logged first (never its token), then an injected fault is
served (before authentication, like a load balancer's 502). Then:
``Authorization: Bearer <token>``, where unknown tokens get 401
``INVALID_AUTHENTICATION`` and expired ones 401 ``EXPIRED_AUTHENTICATION``;
the per-token rate limit (429 with ``X-HubSpot-RateLimit-*`` headers, which
every later answer carries too); the call's scope (403 ``MISSING_SCOPES``);
malformed JSON (400). A held answer waits after the work is done.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.hubspot import errors, notes
from simulators.hubspot.errors import Answer
from simulators.hubspot.knobs import LoggedRequest
from simulators.hubspot.routes import BATCH, ONE, PIPELINES, PROPERTIES

if TYPE_CHECKING:
    from simulators.hubspot.state import HubSpotState


def create_app(state: HubSpotState) -> Starlette:
    """The ASGI app serving ``state``."""

    async def handle(request: Request) -> Response:
        return await _handle(state, request)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


async def _handle(state: HubSpotState, request: Request) -> Response:
    path = request.url.path
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.url.query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    raw = await request.body()
    body, bad_json = _json_body(raw)
    entry = LoggedRequest(request.method, path, query, body)
    state._log_request(entry)

    fault = state._take_fault(path)
    if fault is not None:
        return _answer(entry, fault.status, fault.body, fault.headers)
    refused, rate_headers = _admit(state, request, entry)
    if refused is not None:
        return refused
    if bad_json:
        return _answer(entry, *errors.validation("Invalid input JSON on line 1: malformed JSON"), rate_headers)

    response = _answer(entry, *_route(state, request.method, path, query, body), rate_headers)
    hold = state._take_hold(path)
    if hold:
        await asyncio.sleep(hold)
    return response


def _json_body(raw: bytes) -> tuple[Any, bool]:
    """(parsed body or None, whether it was malformed); a bad body is refused only after authentication."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), False
    except ValueError:
        return None, True


def _admit(state: HubSpotState, request: Request, entry: LoggedRequest) -> tuple[Response | None, dict[str, str]]:
    """Authentication, rate limit and scopes: (the refusal or None, the rate limit headers)."""
    token, auth_error = state._authenticate(request.headers.get("authorization"))
    if auth_error is not None:
        return _answer(entry, *auth_error), {}
    entry.authenticated = True
    allowed, rate_headers = state._rate_check(token)
    if not allowed:
        return _answer(entry, 429, errors.rate_limited(state.portal_id), rate_headers), rate_headers
    forbidden = state._scope_check(token, request.method, request.url.path)
    if forbidden is not None:
        return _answer(entry, *forbidden, rate_headers), rate_headers
    return None, rate_headers


def _answer(entry: LoggedRequest, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    entry.status = status
    if isinstance(payload, dict) and payload.get("correlationId") == "":
        payload = {**payload, "correlationId": errors.correlation_id()}
    if payload is None:
        return Response(status_code=status, headers=dict(headers or {}))
    if isinstance(payload, (bytes, str)):
        return Response(payload, status_code=status, headers=dict(headers or {}), media_type="text/plain")
    return JSONResponse(payload, status_code=status, headers=dict(headers or {}))


def _route(state: HubSpotState, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
    answered = notes.route(state, method, path, query, body)  # notes, deletes and associations v4
    if answered is not None:
        return answered
    props = [p for v in query.get("properties", []) for p in v.split(",") if p]
    if method == "GET" and (m := PROPERTIES.match(path)):
        return state.api_properties(m["type"], m["name"])
    if method == "GET" and (m := PIPELINES.match(path)):
        return state.api_pipelines(m["type"])
    if method == "POST" and (m := BATCH.match(path)):
        if m["op"] == "read":
            return state.api_batch_read(m["type"], body)
        return state.api_batch_update(m["type"], body)
    if m := ONE.match(path):
        if method == "GET":
            return state.api_get(m["type"], m["id"], props)
        if method == "PATCH":
            return state.api_update_one(m["type"], m["id"], body)
    return 404, errors.error(f"No route for {method} {path}", "OBJECT_NOT_FOUND")
