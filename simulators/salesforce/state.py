"""``SalesforceState``: everything the simulated org knows, and the knobs tests turn.

Objects and records (values in wire form), deleted ids, access tokens, SOAP
logins and JWT connected apps, the API usage counter behind
``Sforce-Limit-Info``, query cursors, the request log (without secrets) and
fault injection (``fail_next``).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from simulators.salesforce.errors import fault_body
from simulators.salesforce.ids import make_id, to_id18
from simulators.salesforce.schema import SFField, SFObject
from simulators.salesforce.values import format_datetime, stored

DEFAULT_API_LIMIT = 15000
ORG_ID = "00D5g000004AbCdEAK"


@dataclass(frozen=True)
class LoggedRequest:
    """One request the simulator received (secrets are not kept)."""

    method: str
    path: str
    query: Mapping[str, str]
    body: Any  # parsed JSON, form fields (minus secrets), or None
    authorized: bool


@dataclass
class _Fault:
    status: int | None
    body: Any
    headers: dict[str, str]
    times: int
    path_contains: str | None
    delay: float
    after: int = 0  # matching requests still let through before the fault starts
    query_contains: str | None = None

    def matches(self, path: str, query: str) -> bool:
        """REST requests by default, else any path containing ``path_contains``."""
        if self.query_contains is not None and self.query_contains not in query:
            return False
        if self.path_contains is None:
            return path.startswith("/services/data")
        return self.path_contains in path


@dataclass
class _Login:
    username: str
    password: str
    security_token: str
    user_id: str


class SalesforceState:
    """Everything the simulator knows; thread-safe (tests poke it from outside)."""

    def __init__(self, *, api_limit: int = DEFAULT_API_LIMIT, query_batch_size: int = 2000) -> None:
        self.lock = threading.RLock()
        self.api_limit = api_limit
        self.query_batch_size = query_batch_size
        self.reset()

    # -- lifecycle ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (objects, records, tokens, users, log, faults)."""
        with self.lock:
            self.objects: dict[str, SFObject] = {}
            self.records: dict[str, dict[str, dict[str, Any]]] = {}
            self.deleted: dict[str, str] = {}  # id18 -> object name
            self.tokens: dict[str, str] = {}  # token -> username
            self.logins: dict[str, _Login] = {}
            self.jwt_consumers: dict[str, bytes] = {}  # consumer key -> public key PEM
            self.jwt_audiences: set[str] = {"https://login.salesforce.com", "https://test.salesforce.com"}
            self.requests: list[LoggedRequest] = []
            self.api_usage = 0
            self._faults: list[_Fault] = []
            self._holds: list[list[Any]] = []
            self._counter = itertools.count(1)
            self._cursors: dict[str, list[dict[str, Any]]] = {}
            self.note_bodies: dict[str, bytes] = {}  # ContentNote id18 -> stored body (``notes``)

    # -- schema -----------------------------------------------------------------
    def add_object(self, name: str, key_prefix: str, fields: Iterable[SFField] = (), *, label: str | None = None,
                   custom: bool | None = None) -> SFObject:
        with self.lock:
            obj = SFObject(name=name, key_prefix=key_prefix, label=label or name,
                           custom=name.endswith("__c") if custom is None else custom)
            if not any(f.name == "Id" for f in fields):
                obj.fields["Id"] = SFField("Id", "id", label=f"{obj.label} ID", updateable=False,
                                           createable=False, nillable=False, length=18)
            for item in fields:
                obj.fields[item.name] = item
            self.objects[name] = obj
            self.records.setdefault(name, {})
            return obj

    def add_field(self, object_name: str, item: SFField) -> None:
        with self.lock:
            self.objects[object_name].fields[item.name] = item

    def object(self, name: str) -> SFObject | None:
        with self.lock:
            found = self.objects.get(name)
            if found is not None:
                return found
            folded = name.casefold()
            for key, obj in self.objects.items():
                if key.casefold() == folded:
                    return obj
            return None

    # -- records ----------------------------------------------------------------
    def create_record(self, object_name: str, values: Mapping[str, Any] | None = None, *,
                      record_id: str | None = None) -> str:
        """Insert a record (values in wire form, not validated); returns its 18-char id."""
        with self.lock:
            obj = self.objects[object_name]
            new_id = to_id18(record_id) if record_id else make_id(obj.key_prefix, next(self._counter))
            if new_id is None:
                raise ValueError(f"malformed id {record_id!r}")
            record: dict[str, Any] = {name: None for name in obj.fields}
            for name, item in obj.fields.items():
                if item.type == "boolean":
                    record[name] = False
            self._assign(obj, record, values or {})
            record["Id"] = new_id
            self._touch(obj, record)
            self.records[object_name][new_id] = record
            return new_id

    def get_record(self, object_name: str, record_id: str) -> dict[str, Any] | None:
        """A copy of a live record's values (wire form), or None."""
        with self.lock:
            key = to_id18(record_id)
            record = self.records.get(object_name, {}).get(key or "")
            return copy.deepcopy(record) if record is not None else None

    def set_values(self, object_name: str, record_id: str, values: Mapping[str, Any]) -> None:
        """Change a record behind the API's back (as a person in the UI would)."""
        with self.lock:
            obj = self.objects[object_name]
            record = self.records[object_name][to_id18(record_id) or ""]
            self._assign(obj, record, values)
            self._touch(obj, record)

    def delete_record(self, object_name: str, record_id: str) -> None:
        with self.lock:
            key = to_id18(record_id) or ""
            self.records[object_name].pop(key)
            self.deleted[key] = object_name

    def _assign(self, obj: SFObject, record: dict[str, Any], values: Mapping[str, Any]) -> None:
        """Seed-style assignment: any field name case, no validation, stored in wire form."""
        for key, value in values.items():
            target = obj.field(key)
            if target is None:
                raise KeyError(f"{obj.name} has no field {key}")
            record[target.name] = stored(target, value)

    def _touch(self, obj: SFObject, record: dict[str, Any]) -> None:
        now = format_datetime(dt.datetime.now(dt.UTC))
        for name in ("LastModifiedDate", "SystemModstamp"):
            if name in obj.fields:
                record[name] = now

    # -- auth -------------------------------------------------------------------
    def issue_token(self, username: str = "api@example.com") -> str:
        with self.lock:
            token = ORG_ID[:15] + "!" + secrets.token_urlsafe(48)
            self.tokens[token] = username
            return token

    def expire_token(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def expire_all_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def add_login(self, username: str, password: str, security_token: str = "") -> None:
        """A user that may log in with SOAP ``login`` (password + security token)."""
        with self.lock:
            user_id = make_id("005", 900000 + len(self.logins))
            self.logins[username] = _Login(username, password, security_token, user_id)

    def add_jwt_consumer(self, consumer_key: str, public_key_pem: bytes | str) -> None:
        """A connected app whose JWT bearer assertions are signed with the matching private key."""
        with self.lock:
            pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
            self.jwt_consumers[consumer_key] = pem

    # -- faults and log -----------------------------------------------------------
    def fail_next(self, status: int | None = 503, body: Any = None, times: int = 1, *,
                  headers: Mapping[str, str] | None = None, path_contains: str | None = None,
                  delay: float = 0.0, after: int = 0, query_contains: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` and ``body``: REST
        requests (``/services/data/...``) by default, or any request whose path
        contains ``path_contains`` (e.g. ``"/services/Soap/"`` for logins).

        ``after`` lets that many matching requests through first (to fail the
        second request of a split batch); ``query_contains`` narrows the match
        to requests whose decoded query string contains it (a SOQL query naming
        one id, to model an id the org refuses although it looks well formed).
        ``status=None`` with a ``delay`` only slows the requests down (for
        timeouts). Default bodies: 503 ``SERVER_UNAVAILABLE``, 403
        ``REQUEST_LIMIT_EXCEEDED``, 429 ``REQUEST_LIMIT_EXCEEDED``.
        """
        if body is None and status is not None:
            body = fault_body(status)
        with self.lock:
            self._faults.append(_Fault(status, body, dict(headers or {}), times, path_contains, delay, after,
                                       query_contains))

    def hold_answers(self, path_contains: str, seconds: float, times: int = 1) -> None:
        """Apply the next ``times`` requests whose path contains ``path_contains``, then wait
        ``seconds`` before answering: the org has done the work but the caller does not know yet
        (a worker killed during that wait must not do it twice)."""
        with self.lock:
            self._holds.append([path_contains, seconds, times])

    def _take_hold(self, path: str) -> float:
        """Seconds to wait before answering this request (0.0: none)."""
        with self.lock:
            for hold in self._holds:
                if hold[0] in path:
                    hold[2] -= 1
                    if hold[2] <= 0:
                        self._holds.remove(hold)
                    return float(hold[1])
            return 0.0

    def _take_fault(self, path: str, query: str = "") -> _Fault | None:
        with self.lock:
            for fault in self._faults:
                if not fault.matches(path, query):
                    continue
                if fault.after > 0:  # let this one through (another fault may still take it)
                    fault.after -= 1
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
            return None

    def log(self, entry: LoggedRequest) -> None:
        with self.lock:
            self.requests.append(entry)

    def requests_matching(self, method: str | None = None, path_contains: str | None = None) -> list[LoggedRequest]:
        """Logged requests, filtered by method and a path substring."""
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method.upper())
                    and (path_contains is None or path_contains in r.path)]

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def limit_info(self) -> str:
        return f"api-usage={self.api_usage}/{self.api_limit}"
