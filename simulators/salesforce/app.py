"""The ASGI app: request log, fault injection, logins, authentication and REST routing.

Every request is logged (never with passwords, security tokens or
assertions), then injected faults are served, then URIs over 16384
characters get 414. Logins need no session; every ``/services/data/vXX.X``
call needs a live bearer token (else 401 ``INVALID_SESSION_ID``) and counts
against the daily API limit. Every response carries ``Sforce-Limit-Info``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.salesforce.composite import composite
from simulators.salesforce.errors import (
    ENTITY_IS_DELETED_BODY,
    INVALID_SESSION_BODY,
    NOT_FOUND_BODY,
    no_such_column,
)
from simulators.salesforce.ids import to_id18
from simulators.salesforce.login import jwt_login, soap_login
from simulators.salesforce.notes import NOTE_OBJECTS, note_resource
from simulators.salesforce.query import query_resource
from simulators.salesforce.schema import SFObject
from simulators.salesforce.state import LoggedRequest, SalesforceState
from simulators.salesforce.writes import collection_update, patch_record

API_VERSIONS = tuple(f"{v}.0" for v in range(31, 63))
MAX_URI_LENGTH = 16384

_DATA = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?P<rest>/.*)?$")


def create_app(state: SalesforceState) -> Starlette:
    """The ASGI app; serve it with ``ServedApp(create_app(state), tls=True)``."""

    async def handle(request: Request) -> Response:
        return await _handle(state, request)

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])


async def _handle(state: SalesforceState, request: Request) -> Response:
    path = request.url.path
    raw = await request.body()
    query = {key: value for key, value in request.query_params.items()}
    authorized = _authorized(state, request)
    state.log(LoggedRequest(request.method, path, query, _logged_body(path, raw), authorized))

    fault = state._take_fault(path, unquote_plus(request.url.query))
    if fault is not None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            return _json_response(fault.status, fault.body, state, fault.headers)
    if len(str(request.url)) > MAX_URI_LENGTH:
        return Response("URI Too Long", status_code=414, headers={"Sforce-Limit-Info": state.limit_info()})
    login = _login(state, request, raw)
    if login is not None:
        return login
    hold = state._take_hold(path)
    response = _rest(state, request, query, raw, authorized)
    if hold:  # applied, answered late (``SalesforceState.hold_answers``)
        await asyncio.sleep(hold)
    return response


def _logged_body(path: str, raw: bytes) -> Any:
    """The body as the log keeps it: never passwords, security tokens or assertions."""
    if path.startswith("/services/oauth2/"):
        return {"grant_type": parse_qs(raw.decode("utf-8", "replace")).get("grant_type", [None])[0]}
    if path.startswith("/services/Soap/"):
        return None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


def _authorized(state: SalesforceState, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return False
    with state.lock:
        return header[7:].strip() in state.tokens


def _json_response(status: int, body: Any, state: SalesforceState,
                   headers: Mapping[str, str] | None = None) -> Response:
    out = {"Sforce-Limit-Info": state.limit_info(), **(headers or {})}
    if status == 204:
        return Response(status_code=204, headers=out)
    return Response(json.dumps(body), status_code=status, media_type="application/json;charset=UTF-8", headers=out)


def _base_url(request: Request) -> str:
    server = request.scope.get("server") or ("127.0.0.1", 443)
    host, port = server[0], server[1]
    return f"https://{host}:{port}"


def _login(state: SalesforceState, request: Request, raw: bytes) -> Response | None:
    """The answer to a SOAP or JWT login, or None for any other request."""
    path, method = request.url.path, request.method
    if path.startswith("/services/Soap/u/") and method == "POST":
        version = path.rstrip("/").split("/")[4] if len(path.split("/")) > 4 else "59.0"
        status, text = soap_login(state, raw, _base_url(request), version)
        return Response(text, status_code=status, media_type="text/xml;charset=UTF-8",
                        headers={"Sforce-Limit-Info": state.limit_info()})
    if path.rstrip("/") == "/services/oauth2/token" and method == "POST":
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        status, body = jwt_login(state, form, _base_url(request))
        return _json_response(status, body, state)
    return None


def _rest(state: SalesforceState, request: Request, query: Mapping[str, str], raw: bytes,
          authorized: bool) -> Response:
    path, method = request.url.path, request.method
    if path.rstrip("/") == "/services/data" and method == "GET":
        return _json_response(200, [{"label": f"API {v}", "url": f"/services/data/v{v}", "version": v}
                                    for v in API_VERSIONS], state)
    match = _DATA.match(path)
    if match is None or match["version"] not in API_VERSIONS:
        return _json_response(404, NOT_FOUND_BODY, state)
    if not authorized:
        return _json_response(401, INVALID_SESSION_BODY, state)
    with state.lock:
        state.api_usage += 1
        status, body = _dispatch(state, method, match["version"], (match["rest"] or "/"), query, raw)
    return _json_response(status, body, state)


def _dispatch(state: SalesforceState, method: str, version: str, rest: str, query: Mapping[str, str],
              raw: bytes) -> tuple[int, Any]:
    parts = [p for p in rest.split("/") if p]
    if method == "GET" and (listing := _org_resource(state, version, parts)) is not None:
        return 200, listing
    if parts and parts[0] == "query" and method == "GET":
        return query_resource(state, version, parts[1:], query)
    if parts == ["composite", "sobjects"] and method == "PATCH":
        return collection_update(state, raw.decode("utf-8", "replace"))
    if parts == ["composite"] and method == "POST":  # its subrequests are routed here again, uncounted
        return composite(state, raw, API_VERSIONS, _dispatch)
    if len(parts) >= 2 and parts[0] == "sobjects":
        return _sobject_resource(state, method, version, parts[1:], query, raw)
    return 404, NOT_FOUND_BODY


def _org_resource(state: SalesforceState, version: str, parts: list[str]) -> dict[str, Any] | None:
    """The version's resource list, ``limits/`` or ``sobjects/`` (GET only), else None."""
    base = f"/services/data/v{version}"
    if not parts:
        return {name: f"{base}/{name}" for name in ("sobjects", "query", "queryAll", "limits", "composite",
                                                    "search", "tooling")}
    if parts == ["limits"]:
        return {"DailyApiRequests": {"Max": state.api_limit, "Remaining": state.api_limit - state.api_usage},
                "DataStorageMB": {"Max": 1024, "Remaining": 1000}}
    if parts == ["sobjects"]:
        return {"encoding": "UTF-8", "maxBatchSize": 200,
                "sobjects": [obj.summary(version) for obj in state.objects.values()]}
    return None


def _sobject_resource(state: SalesforceState, method: str, version: str, parts: list[str],
                      query: Mapping[str, str], raw: bytes) -> tuple[int, Any]:
    """``sobjects/{name}``, ``sobjects/{name}/describe`` and ``sobjects/{name}/{id}``."""
    obj = state.object(parts[0])
    if obj is None:
        return 404, NOT_FOUND_BODY
    if parts[1:] == ["describe"] and method == "GET":
        return 200, obj.describe(version)
    if obj.name in NOTE_OBJECTS and (handled := note_resource(state, method, version, obj, parts[1:], query,
                                                              raw)) is not None:
        return handled
    if len(parts) == 1 and method == "GET":
        return 200, {"objectDescribe": obj.summary(version), "recentItems": []}
    if len(parts) == 2:
        if method == "GET":
            return _get_record(state, obj, parts[1], query, version)
        if method == "PATCH":
            return patch_record(state, obj, parts[1], raw)
        return 405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": f"HTTP Method '{method}' not allowed"}]
    return 404, NOT_FOUND_BODY


def _get_record(state: SalesforceState, obj: SFObject, raw_id: str, query: Mapping[str, str],
                version: str) -> tuple[int, Any]:
    """``GET .../sobjects/{name}/{id}[?fields=a,b]``."""
    canonical = to_id18(raw_id)
    if canonical is None or canonical not in state.records[obj.name]:
        if canonical in state.deleted:
            return 404, ENTITY_IS_DELETED_BODY
        return 404, NOT_FOUND_BODY
    record = state.records[obj.name][canonical]
    names = [n.strip() for n in query["fields"].split(",")] if query.get("fields") else list(obj.fields)
    out: dict[str, Any] = {"attributes": {"type": obj.name,
                                          "url": f"/services/data/v{version}/sobjects/{obj.name}/{canonical}"}}
    for name in names:
        item = obj.field(name)
        if item is None:
            return 400, [{"message": no_such_column(name, obj.name), "errorCode": "INVALID_FIELD"}]
        out[item.name] = copy.deepcopy(record.get(item.name))
    return 200, out
