"""``SiroState``: the in-memory, thread-safe store behind the simulator.

Seed it with ``add_token``, ``add_recording``/``put_recording``, ``link``,
``update_recording``, ``add_connection``/``put_connection``; inspect
``requests`` (the request log, which never holds a token); inject faults
with ``fail_next``. It also keeps the per-token rate limit (1000 requests
per minute, every request counting, rejected ones too) and signs the
listing cursors.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulators.siro.connections import CONNECTION_PAGE_SIZE
from simulators.siro.connections import connection as build_connection
from simulators.siro.recordings import (
    WEB_APP_URL,
    camel,
    iso,
    lifecycle,
    link_value,
    parse_ts,
    ts_value,
)
from simulators.siro.recordings import extraction as build_extraction
from simulators.siro.recordings import webhook_payload as build_webhook_payload

DEFAULT_ORGANIZATION_ID = "org-sim-1"
RATE_LIMIT_PER_MINUTE = 1000


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
class Fault:
    status: int | None
    times: int
    headers: dict[str, str]
    body: Any
    path: str | None
    delay: float


class SiroState:
    """In-memory Siro: recordings, integration connections, tokens, request log, faults, rate limit.

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
        connection_page_size: int = CONNECTION_PAGE_SIZE,
    ) -> None:
        self.rate_limit_per_minute = rate_limit_per_minute
        self.connection_page_size = connection_page_size
        self.strict_timestamps = strict_timestamps
        self.organization_id = organization_id
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.RLock()
        self._recordings: dict[str, dict[str, Any]] = {}
        self._connections: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._requests: list[LoggedRequest] = []
        self._faults: list[Fault] = []
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
        self, recording_id: str | None = None, *, title: str | None = None, user_id: str = "user-sim-rep",
        organization_id: str | None = None, created_at: dt.datetime | str | None = None,
        updated_at: dt.datetime | str | None = None, crm: dict[str, Any] | None = None,
        entity_extractions: list[dict[str, Any]] | None = None, summary: list[dict[str, Any]] | None = None,
        deleted: bool = False, deleted_at: dt.datetime | str | None = None, is_processing_done: bool = True,
        is_entity_extraction_done: bool = True, is_summary_done: bool = True, result: str = "OPEN",
        duration_ms: float = 1_800_000, **extra: Any,
    ) -> dict[str, Any]:
        """Create a recording in API shape and return (a copy of) it.

        ``extra`` keys are stored as given (camelCase them yourself).
        """
        now = self.now()
        recording_id = recording_id or f"rec_{uuid.uuid4().hex[:16]}"
        record: dict[str, Any] = {
            "id": recording_id,
            "organizationId": organization_id or self.organization_id,
            "userId": user_id,
            "title": title if title is not None else f"Recording {recording_id}",
            "durationInMilliseconds": duration_ms,
            "latitude": 40.7128,
            "longitude": -74.006,
            "result": result,
            **lifecycle(now, created_at, updated_at, deleted, deleted_at),
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
                key = camel(key)
                if key == "updatedAt":
                    explicit = value
                    continue
                if isinstance(value, dt.datetime):
                    value = iso(value)
                record[key] = copy.deepcopy(value)
            record["updatedAt"] = (
                ts_value(explicit, self.now()) if explicit is not None else iso(self._now_after(record.get("updatedAt")))
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
            "users": [link_value(u, "user", i) for i, u in enumerate(users)],
            "contacts": [link_value(c, "contact", i) for i, c in enumerate(contacts)],
        }
        for slot, value in (("engagement", engagement), ("opportunity", opportunity), ("account", account), ("lead", lead)):
            if value is not None:
                crm[slot] = link_value(value, slot)
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
        return build_webhook_payload(record, event_type)

    @property
    def recordings(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._recordings)

    #: ``SiroState.extraction("Amount", 12500, ("Opportunity", "Amount"))`` builds an entity extraction
    extraction = staticmethod(build_extraction)

    # -- integration connections -------------------------------------------

    def add_connection(self, connection_id: str | None = None, *, name: str | None = None,
                       integration_platform: str = "MERGE", is_active: bool = True,
                       organization_id: str | None = None, **options: Any) -> dict[str, Any]:
        """Create an integration connection in API shape and return (a copy of) it.

        ``options``: ``external_account_id``, ``created_at``, ``updated_at``,
        ``sync_status``, ``sync_transcript``, and extra keys stored as given.
        """
        connection_id = connection_id or f"ic_{uuid.uuid4().hex[:12]}"
        item = build_connection(connection_id, name=name if name is not None else f"Connection {connection_id}",
                                integration_platform=integration_platform, is_active=is_active,
                                organization_id=organization_id or self.organization_id, now=self.now(), **options)
        return self.put_connection(item)

    def put_connection(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Store a connection dict exactly as given (only ``id`` is required). Returns a copy."""
        if "id" not in item:
            raise ValueError("a connection needs an 'id'")
        stored = copy.deepcopy(dict(item))
        with self._lock:
            self._connections[str(stored["id"])] = stored
            return copy.deepcopy(stored)

    def update_connection(self, connection_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields (snake_case or camelCase keys, ``is_active=False`` say) and bump ``updatedAt``."""
        with self._lock:
            item = self._connections[connection_id]
            for key, value in changes.items():
                item[camel(key)] = iso(value) if isinstance(value, dt.datetime) else copy.deepcopy(value)
            if "updatedAt" not in {camel(key) for key in changes}:
                item["updatedAt"] = iso(self._now_after(item.get("updatedAt")))
            return copy.deepcopy(item)

    def remove_connection(self, connection_id: str) -> None:
        with self._lock:
            self._connections.pop(connection_id, None)

    @property
    def connections(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._connections)

    def _select(self, keep: Callable[[dict[str, Any]], bool], position: Callable[[dict[str, Any]], Any],
                after: Any, limit: int, *, kind: str = "recordings") -> list[dict[str, Any]]:
        """Copies of up to ``limit`` recordings (or, with ``kind="connections"``, connections) that
        ``keep`` accepts, ordered by ``position``, past ``after``."""
        with self._lock:
            store = self._connections if kind == "connections" else self._recordings
            candidates = sorted((r for r in store.values() if keep(r)), key=position)
            if after is not None:
                candidates = [r for r in candidates if position(r) > after]
            return [copy.deepcopy(r) for r in candidates[:limit]]

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
            self._faults.append(Fault(status, times, dict(headers or {}), body, path, delay))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
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
        return self._sign_cursor({"u": last["updatedAt"], "i": str(last["id"]), "f": fingerprint})

    def _sign_cursor(self, payload: dict[str, Any]) -> str:
        """An opaque cursor carrying ``payload``, signed (``_read_cursor`` gives it back)."""
        body = json.dumps(payload, separators=(",", ":"))
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
