"""Siro external API simulator: the recordings endpoints and caller identity.

At least as strict as Siro's published API (``shared/siro/siro-external-api.openapi.json``);
where the documentation leaves room, it picks the stricter reading:

- ``Authorization: Bearer <token>`` with a token known to the state, else 401;
  recordings are scoped to the token's organization (others' are 404);
- the enrichment blocks ``crm``, ``entityExtractions``, ``summary`` (and
  ``evaluationScore``, ``followups``) appear only when their flag is exactly
  ``"true"``; flag values other than ``"true"``/``"false"`` are 400;
- unknown and repeated query parameters are 400 (a typo such as
  ``updatedAt:ge`` must not silently widen a poll);
- list filters take exactly ``YYYY-MM-DDTHH:mm:ss.sssZ`` (the documented
  format; ``SiroState(strict_timestamps=False)`` accepts any ISO 8601);
- ``pageSize`` is an integer 1..100 (default 25), anything else 400;
- the ``cursor`` is opaque and signed, bound to the filters it was issued for:
  a tampered cursor, or one sent with other filters, is 400; the filters must
  be sent again with every cursor;
- listings are ordered by ``updatedAt`` then ``id``; the cursor is a keyset
  position, so a recording updated mid-walk moves to the end instead of
  shifting the pages (nothing is skipped);
- 1000 requests per minute per token (every request counts, rejected ones
  too), answered 429 with no ``Retry-After`` (Siro sends no rate headers).

Error bodies are ``{"error": "<code>", "message": "<text>"}`` (Siro does not
document its error shape, so clients must not depend on it).

``SiroState`` is the in-memory, thread-safe store: seed it with
``add_token``, ``add_recording``/``put_recording``, ``link``,
``update_recording``; inspect ``requests`` (the request log); inject faults
with ``fail_next``. ``create_app(state)`` gives the ASGI app, and
``app.state.siro`` may be swapped for a fresh state between tests.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEFAULT_ORGANIZATION_ID = "org-sim-1"
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
RATE_LIMIT_PER_MINUTE = 1000
WEB_APP_URL = "https://app.siro.ai/recordings"

#: flag -> (key in the recording, value when the recording has none)
ENRICHMENTS: dict[str, tuple[str, Any]] = {
    "showCrmLinks": ("crm", None),
    "showEntityExtractions": ("entityExtractions", []),
    "showSummary": ("summary", []),
    "showEvaluationScore": ("evaluationScore", None),
    "showFollowups": ("followups", []),
}
ENRICHMENT_KEYS = {key for key, _ in ENRICHMENTS.values()}
STATUS_FILTERS = ("isProcessingDone", "isEntityExtractionDone", "isSummaryDone")
TIME_FILTERS: dict[str, tuple[str, str]] = {
    "updatedAt:gte": ("updatedAt", "gte"),
    "updatedAt:gt": ("updatedAt", "gt"),
    "updatedAt:lt": ("updatedAt", "lt"),
    "updatedAt:lte": ("updatedAt", "lte"),
    "createdAt:gt": ("createdAt", "gt"),
    "createdAt:lt": ("createdAt", "lt"),
}
GET_PARAMS = frozenset(ENRICHMENTS)
LIST_PARAMS = frozenset(ENRICHMENTS) | frozenset(STATUS_FILTERS) | frozenset(TIME_FILTERS) | {"pageSize", "cursor"}

_STRICT_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --------------------------------------------------------------------------
# time helpers


def iso(value: dt.datetime) -> str:
    """A datetime in Siro's wire format, ``YYYY-MM-DDTHH:mm:ss.sssZ`` (UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_ts(value: Any) -> dt.datetime | None:
    """Lenient parse of a stored timestamp (str or datetime); None when unusable."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _ts_value(value: dt.datetime | str | None, default: dt.datetime) -> str:
    if value is None:
        return iso(default)
    if isinstance(value, dt.datetime):
        return iso(value)
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _link_value(value: Any, slot: str, index: int = 0) -> dict[str, Any] | None:
    """``"006..."`` / ``("siro-id", "006...")`` / ``{"id", "externalId"}`` -> a link."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return {"id": str(value[0]), "externalId": str(value[1])}
    external = str(value)
    digest = hashlib.sha1(f"{slot}:{external}:{index}".encode()).hexdigest()[:16]
    return {"id": f"sx_{slot}_{digest}", "externalId": external}


# --------------------------------------------------------------------------
# state


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the simulator saw it (the token itself is never kept)."""

    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    status: int
    token_id: str | None
    raw_path: str = ""
    at: float = field(default_factory=time.time)


@dataclass
class _Fault:
    status: int | None
    times: int
    headers: dict[str, str]
    body: Any
    path: str | None
    delay: float


class SiroState:
    """In-memory Siro: recordings, tokens, request log, faults, rate limit.

    Recordings are stored as full dicts in the API's shape, including the
    enrichment blocks (``crm``, ``entityExtractions``, ``summary``), which the
    endpoints strip unless asked for. All methods are thread-safe and return
    copies.
    """

    def __init__(
        self,
        *,
        rate_limit_per_minute: int = RATE_LIMIT_PER_MINUTE,
        strict_timestamps: bool = True,
        clock: Callable[[], dt.datetime] | None = None,
        organization_id: str = DEFAULT_ORGANIZATION_ID,
    ) -> None:
        self.rate_limit_per_minute = rate_limit_per_minute
        self.strict_timestamps = strict_timestamps
        self.organization_id = organization_id
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.RLock()
        self._recordings: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._requests: list[LoggedRequest] = []
        self._faults: list[_Fault] = []
        self._windows: dict[str, deque[float]] = {}
        self._cursor_key = secrets.token_bytes(16)
        self._seq = itertools.count(1)
        self.default_token: str | None = None

    def now(self) -> dt.datetime:
        """The state's clock (UTC, aware)."""
        value = self._clock()
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    # -- tokens ------------------------------------------------------------

    def add_token(
        self,
        token: str | None = None,
        *,
        name: str = "writeback",
        organization_id: str | None = None,
        token_id: str | None = None,
        created_by: str | None = "user-sim-admin",
    ) -> str:
        """Register a bearer token (generated when not given) and return it.

        The first token added becomes ``default_token``.
        """
        token = token or "siro_sim_" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = {
                "tokenId": token_id or f"tok_{uuid.uuid4().hex[:12]}",
                "tokenName": name,
                "organizationId": organization_id or self.organization_id,
                "authorizedOrgGroupId": None,
                "parentOrgGroupTokenId": None,
                "createdAt": iso(self.now()),
                "createdBy": created_by,
            }
            if self.default_token is None:
                self.default_token = token
        return token

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def identity(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            info = self._tokens.get(token)
            return dict(info) if info else None

    # -- recordings --------------------------------------------------------

    def _now_after(self, previous: Any) -> dt.datetime:
        """Now, but strictly after ``previous`` (millisecond resolution)."""
        now = self.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # wire resolution
        last = parse_ts(previous)
        if last is not None and now <= last:
            now = last + dt.timedelta(milliseconds=1)
        return now

    def add_recording(
        self,
        recording_id: str | None = None,
        *,
        title: str | None = None,
        user_id: str = "user-sim-rep",
        organization_id: str | None = None,
        created_at: dt.datetime | str | None = None,
        updated_at: dt.datetime | str | None = None,
        crm: dict[str, Any] | None = None,
        entity_extractions: list[dict[str, Any]] | None = None,
        summary: list[dict[str, Any]] | None = None,
        deleted: bool = False,
        deleted_at: dt.datetime | str | None = None,
        is_processing_done: bool = True,
        is_entity_extraction_done: bool = True,
        is_summary_done: bool = True,
        result: str = "OPEN",
        duration_ms: float = 1_800_000,
        **extra: Any,
    ) -> dict[str, Any]:
        """Create a recording in API shape and return (a copy of) it.

        ``extra`` keys are stored as given (camelCase them yourself).
        """
        now = self.now()
        recording_id = recording_id or f"rec_{uuid.uuid4().hex[:16]}"
        created = _ts_value(created_at, now)
        record: dict[str, Any] = {
            "id": recording_id,
            "organizationId": organization_id or self.organization_id,
            "userId": user_id,
            "title": title if title is not None else f"Recording {recording_id}",
            "durationInMilliseconds": duration_ms,
            "latitude": 40.7128,
            "longitude": -74.006,
            "result": result,
            "createdAt": created,
            "updatedAt": _ts_value(updated_at, now) if updated_at is not None else created,
            "rootDataPurgedAt": None,
            "deleted": deleted,
            "deletedAt": (_ts_value(deleted_at, now) if (deleted or deleted_at) else None),
            "links": {"web": {"self": f"{WEB_APP_URL}/{recording_id}"}},
            "isProcessingDone": is_processing_done,
            "isEntityExtractionDone": is_entity_extraction_done,
            "isSummaryDone": is_summary_done,
            "crm": crm,
            "entityExtractions": list(entity_extractions or []),
            "summary": list(summary or []),
        }
        record.update(extra)
        return self.put_recording(record)

    def put_recording(self, recording: Mapping[str, Any]) -> dict[str, Any]:
        """Store a recording dict exactly as given (malformed content too).

        Only ``id`` is required; without ``organizationId`` it belongs to the
        state's organization. Returns a copy.
        """
        if "id" not in recording:
            raise ValueError("a recording needs an 'id'")
        stored = copy.deepcopy(dict(recording))
        with self._lock:
            self._recordings[str(stored["id"])] = stored
            return copy.deepcopy(stored)

    def load(self, recordings: Iterable[Mapping[str, Any]]) -> None:
        for recording in recordings:
            self.put_recording(recording)

    def update_recording(self, recording_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields (snake_case or camelCase keys) and bump ``updatedAt``.

        An explicit ``updated_at``/``updatedAt`` is used as given instead.
        """
        with self._lock:
            record = self._recordings[recording_id]
            explicit = None
            for key, value in changes.items():
                key = _camel(key)
                if key == "updatedAt":
                    explicit = value
                    continue
                if isinstance(value, dt.datetime):
                    value = iso(value)
                record[key] = copy.deepcopy(value)
            record["updatedAt"] = (
                _ts_value(explicit, self.now()) if explicit is not None else iso(self._now_after(record.get("updatedAt")))
            )
            return copy.deepcopy(record)

    def link(
        self,
        recording_id: str,
        *,
        integration_connection_id: str = "conn-sim-1",
        opportunity: Any = None,
        account: Any = None,
        contacts: Sequence[Any] = (),
        lead: Any = None,
        engagement: Any = None,
        users: Sequence[Any] = (),
    ) -> dict[str, Any]:
        """Set the recording's CRM links and bump ``updatedAt``.

        Each link is a CRM id (a Siro id is derived), an ``(id, externalId)``
        pair or a ``{"id", "externalId"}`` dict. Unset single slots are left
        out of the block, as Siro does.
        """
        crm: dict[str, Any] = {
            "integrationConnectionId": integration_connection_id,
            "users": [_link_value(u, "user", i) for i, u in enumerate(users)],
            "contacts": [_link_value(c, "contact", i) for i, c in enumerate(contacts)],
        }
        for slot, value in (("engagement", engagement), ("opportunity", opportunity), ("account", account), ("lead", lead)):
            if value is not None:
                crm[slot] = _link_value(value, slot)
        return self.update_recording(recording_id, crm=crm)

    def unlink(self, recording_id: str) -> dict[str, Any]:
        return self.update_recording(recording_id, crm=None)

    def set_extractions(self, recording_id: str, extractions: list[dict[str, Any]]) -> dict[str, Any]:
        return self.update_recording(recording_id, entityExtractions=extractions)

    def delete_recording(self, recording_id: str) -> dict[str, Any]:
        """Soft delete, as Siro does: still listed, ``deleted: true``."""
        with self._lock:
            when = self._now_after(self._recordings[recording_id].get("updatedAt"))
            return self.update_recording(recording_id, deleted=True, deletedAt=iso(when), updatedAt=iso(when))

    def remove_recording(self, recording_id: str) -> None:
        """Hard removal (the API then answers 404)."""
        with self._lock:
            self._recordings.pop(recording_id, None)

    def recording(self, recording_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._recordings.get(recording_id)
            return copy.deepcopy(record) if record is not None else None

    def webhook_payload(self, recording_id: str, event_type: str = "integrations.recordingProcessed") -> dict[str, Any]:
        """The ``RecordingEventWebhookPayload`` Siro would send for this recording now."""
        record = self.recording(recording_id)
        if record is None:
            raise KeyError(recording_id)
        crm = record.get("crm")
        payload: dict[str, Any] = {
            "recordingId": record["id"],
            "siroUserId": record.get("userId"),
            "recordingProcessed": bool(record.get("isProcessingDone")),
            "recordingLinked": crm is not None,
            "eventType": event_type,
        }
        if crm is not None:
            payload["crm"] = {key: value for key, value in crm.items() if value not in (None, [])}
        return payload

    @property
    def recordings(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._recordings)

    @staticmethod
    def extraction(name: str, value: Any, *mappings: tuple[str, str] | Mapping[str, Any]) -> dict[str, Any]:
        """Build an entity extraction: ``extraction("Amount", 12500, ("Opportunity", "Amount"))``."""
        return {
            "name": name,
            "value": value,
            "mappings": [
                dict(m) if isinstance(m, Mapping) else {"crmModelName": m[0], "crmFieldName": m[1]} for m in mappings
            ],
        }

    # -- request log -------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _log(self, request: LoggedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- faults ------------------------------------------------------------

    def fail_next(
        self,
        status: int | None,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        *,
        path: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests (to paths starting with ``path``,
        or any) with ``status``, before authentication, as a proxy would.

        ``body``: a dict/list (sent as JSON), str or bytes (sent raw), or None
        for the usual ``{"error", "message"}``. ``delay`` seconds pass before
        the answer; ``status=None`` with a delay only slows the request down
        (to provoke client timeouts) and then serves it normally.
        """
        with self._lock:
            self._faults.append(_Fault(status, times, dict(headers or {}), body, path, delay))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is None or path.startswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- rate limit --------------------------------------------------------

    def _over_limit(self, token: str) -> bool:
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(token, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            window.append(now)
            return len(window) > self.rate_limit_per_minute

    # -- cursors -----------------------------------------------------------

    def _make_cursor(self, last: dict[str, Any], fingerprint: str) -> str:
        body = json.dumps({"u": last["updatedAt"], "i": str(last["id"]), "f": fingerprint}, separators=(",", ":"))
        sig = hmac.new(self._cursor_key, body.encode(), hashlib.sha256).hexdigest()[:24]
        return base64.urlsafe_b64encode(f"{body}|{sig}".encode()).decode().rstrip("=")

    def _read_cursor(self, cursor: str) -> dict[str, Any] | None:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            body, sig = raw.rsplit("|", 1)
            expected = hmac.new(self._cursor_key, body.encode(), hashlib.sha256).hexdigest()[:24]
            if not hmac.compare_digest(sig, expected):
                return None
            data = json.loads(body)
            return data if isinstance(data, dict) else None
        except (ValueError, UnicodeDecodeError, TypeError):
            return None


# --------------------------------------------------------------------------
# HTTP


class _ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _error(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=dict(headers or {}))


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


def _fault_response(fault: _Fault) -> Response:
    status = fault.status or 500
    body = fault.body
    if body is None:
        body = {"error": _REASONS.get(status, f"http_{status}"), "message": "injected fault"}
    if isinstance(body, (dict, list)):
        return JSONResponse(body, status_code=status, headers=fault.headers)
    content = body if isinstance(body, bytes) else str(body).encode()
    headers = {"content-type": "text/plain; charset=utf-8", **fault.headers}
    return Response(content, status_code=status, headers=headers)


def _single_params(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            raise _ApiError(400, "bad_request", f"unknown query parameter {key!r}")
        if key in params:
            raise _ApiError(400, "bad_request", f"query parameter {key!r} given more than once")
        params[key] = value
    return params


def _flags(params: dict[str, str]) -> dict[str, bool]:
    flags = {}
    for name in ENRICHMENTS:
        value = params.get(name)
        if value is None:
            continue
        if value not in ("true", "false"):
            raise _ApiError(400, "bad_request", f"{name} must be 'true' or 'false', got {value!r}")
        flags[name] = value == "true"
    return flags


def _render(record: dict[str, Any], flags: dict[str, bool]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in record.items() if k not in ENRICHMENT_KEYS}
    for flag, (key, default) in ENRICHMENTS.items():
        if flags.get(flag):
            # crm stays null when not linked; the lists are [] when empty.
            value = record.get(key)
            out[key] = copy.deepcopy(default if value is None else value)
    return out


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
                return _error(404, "not_found", "no such route")
            path = path[len(self.prefix) :] or "/"
        raw_path = request.scope.get("raw_path") or path.encode()
        token_id: str | None = None
        response: Response
        try:
            fault = state._take_fault(path)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                response = _fault_response(fault)
            else:
                token, token_id = self._authenticate(request, state)
                if state._over_limit(token):
                    raise _ApiError(429, "rate_limited", "rate limit exceeded: 1000 requests per minute per token")
                response = self._route(request, state, path, raw_path.decode("latin-1"), token)
        except _ApiError as exc:
            response = _error(exc.status, exc.error, exc.message)
        state._log(
            LoggedRequest(
                method=request.method,
                path=path,
                query=dict(request.query_params),
                raw_query=request.url.query,
                status=response.status_code,
                token_id=token_id,
                raw_path=raw_path.decode("latin-1"),
            )
        )
        return response

    @staticmethod
    def _authenticate(request: Request, state: SiroState) -> tuple[str, str | None]:
        header = request.headers.get("authorization")
        if not header:
            raise _ApiError(401, "unauthorized", "missing Authorization header (expected 'Bearer <token>')")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _ApiError(401, "unauthorized", "malformed Authorization header (expected 'Bearer <token>')")
        identity = state.identity(token)
        if identity is None:
            raise _ApiError(401, "unauthorized", "invalid or revoked API token")
        return token, identity["tokenId"]

    def _route(self, request: Request, state: SiroState, path: str, raw_path: str, token: str) -> Response:
        if request.method != "GET":
            raise _ApiError(405, "method_not_allowed", f"{request.method} not allowed")
        identity = state.identity(token) or {}
        org = identity.get("organizationId")
        if path == "/v1/core/auth/caller-identity":
            _single_params(request, frozenset())
            return JSONResponse(identity)
        if path == "/v1/core/recordings":
            return JSONResponse(self._list(request, state, org))
        base = "/v1/core/recordings/"
        if path.startswith(base):
            # The id is taken from the raw path: an encoded '/' stays part of it.
            raw_base = self.prefix + base
            encoded = raw_path[len(raw_base) :] if raw_path.startswith(raw_base) else path[len(base) :]
            if "/" in encoded:
                raise _ApiError(404, "not_found", "no such route")
            recording_id = unquote(encoded)
            params = _single_params(request, GET_PARAMS)
            flags = _flags(params)
            record = state.recording(recording_id)
            if not recording_id or record is None or record.get("organizationId", state.organization_id) != org:
                raise _ApiError(404, "not_found", f"recording {recording_id!r} not found")
            return JSONResponse(_render(record, flags))
        raise _ApiError(404, "not_found", "no such route")

    def _list(self, request: Request, state: SiroState, org: str | None) -> dict[str, Any]:
        params = _single_params(request, LIST_PARAMS)
        flags = _flags(params)

        raw_size = params.get("pageSize")
        if raw_size is None:
            page_size = DEFAULT_PAGE_SIZE
        else:
            if not re.fullmatch(r"[0-9]+", raw_size):
                raise _ApiError(400, "bad_request", f"pageSize must be an integer from 1 to {MAX_PAGE_SIZE}")
            page_size = int(raw_size)
            if not 1 <= page_size <= MAX_PAGE_SIZE:
                raise _ApiError(400, "bad_request", f"pageSize must be an integer from 1 to {MAX_PAGE_SIZE}")

        bounds: list[tuple[str, str, dt.datetime]] = []
        for name, (field_name, op) in TIME_FILTERS.items():
            value = params.get(name)
            if value is None:
                continue
            if state.strict_timestamps and not _STRICT_TS.match(value):
                raise _ApiError(400, "bad_request", f"{name} must be an ISO 8601 timestamp (YYYY-MM-DDTHH:mm:ss.sssZ)")
            try:
                when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise _ApiError(400, "bad_request", f"{name} is not a valid ISO 8601 timestamp") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            bounds.append((field_name, op, when))

        status_filters: dict[str, bool] = {}
        for name in STATUS_FILTERS:
            value = params.get(name)
            if value is None:
                continue
            if value not in ("true", "false"):
                raise _ApiError(400, "bad_request", f"{name} must be 'true' or 'false', got {value!r}")
            status_filters[name] = value == "true"

        filter_keys = sorted(k for k in params if k in TIME_FILTERS or k in STATUS_FILTERS)
        fingerprint = hashlib.sha256(
            json.dumps([[k, params[k]] for k in filter_keys], separators=(",", ":")).encode()
        ).hexdigest()[:16]

        after: tuple[dt.datetime, str] | None = None
        if "cursor" in params:
            data = state._read_cursor(params["cursor"])
            if data is None:
                raise _ApiError(400, "bad_request", "invalid cursor")
            if data.get("f") != fingerprint:
                raise _ApiError(400, "bad_request", "cursor does not match the filters it was issued for")
            position = parse_ts(data.get("u"))
            if position is None:
                raise _ApiError(400, "bad_request", "invalid cursor")
            after = (position, str(data.get("i")))

        def key(record: dict[str, Any]) -> tuple[dt.datetime, str]:
            return (parse_ts(record.get("updatedAt")) or _EPOCH, str(record.get("id")))

        def matches(record: dict[str, Any]) -> bool:
            if record.get("organizationId", state.organization_id) != org:
                return False
            for field_name, op, when in bounds:
                value = parse_ts(record.get(field_name))
                if value is None:
                    return False
                if op == "gte" and not value >= when:
                    return False
                if op == "gt" and not value > when:
                    return False
                if op == "lt" and not value < when:
                    return False
                if op == "lte" and not value <= when:
                    return False
            for name, wanted in status_filters.items():
                if bool(record.get(name)) != wanted:
                    return False
            return True

        with state._lock:
            candidates = [r for r in state._recordings.values() if matches(r)]
            candidates.sort(key=key)
            if after is not None:
                candidates = [r for r in candidates if key(r) > after]
            page = [copy.deepcopy(r) for r in candidates[: page_size + 1]]

        more = len(page) > page_size
        page = page[:page_size]
        cursor = state._make_cursor(page[-1], fingerprint) if more and page else None
        return {"data": [_render(r, flags) for r in page], "cursor": cursor}


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
