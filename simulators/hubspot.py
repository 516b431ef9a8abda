"""A HubSpot CRM v3 simulator: properties, pipelines and objects (batch read/update).

It speaks the wire protocol that ``hubspot-api-client`` expects and is at least
as strict as real HubSpot where it matters to a write-back integration:

* ``Authorization: Bearer <token>``; unknown tokens get 401
  ``INVALID_AUTHENTICATION``, expired ones 401 ``EXPIRED_AUTHENTICATION``.
* ``GET /crm/v3/properties/{objectType}`` with the real property shape;
  ``dealstage``/``pipeline`` (and leads' ``hs_pipeline``/``hs_pipeline_stage``)
  have empty ``options`` and ``externalOptions: true``; their values live in
  ``GET /crm/v3/pipelines/{objectType}``.
* ``POST /crm/v3/objects/{objectType}/batch/read``: 200, or 207 with an
  ``OBJECT_NOT_FOUND`` error listing the missing ids; more than 100 inputs is
  400.
* ``POST /crm/v3/objects/{objectType}/batch/update``: more than 100 inputs or a
  duplicate id is 400; any invalid property value in any input rejects the whole
  batch with 400 ``VALIDATION_ERROR`` (``Property values were not valid: [...]``
  plus ``errors[]`` with ``code`` and ``context.propertyName``), and nothing is
  written; missing records (all values valid) give 207 with the others written.
* ``GET``/``PATCH /crm/v3/objects/{objectType}/{id}``.
* Enumeration options marked ``hidden`` are valid values (hidden only keeps
  them out of HubSpot's pickers and forms); only options no longer listed are
  ``INVALID_OPTION``.
* A token without the scope a call needs gets 403 ``MISSING_SCOPES`` with the
  real body (``errors[].context.requiredGranularScopes``, ``links.scopes``);
  objects need ``crm.objects.{type}.read`` / ``.write``, properties
  ``crm.schemas.{type}.read``.

Knobs for tests and the demo: ``HubSpotState.rate_limit`` (a per-token rolling
window answering 429 ``TEN_SECONDLY_ROLLING`` with ``X-HubSpot-RateLimit-*``
headers), ``fail_next`` (fault injection, also after N good requests),
``expire_token``, ``revoke_scopes`` (403 ``MISSING_SCOPES`` for one object
type), and a request log (``requests``) that never holds the token.

``seed_default_portal`` fills a state with a realistic portal (deals with two
pipelines whose closed stages share their labels, companies, contacts, leads,
meetings); ``create_app`` wraps a state in a Starlette app that
``simulators.server.ServedApp`` can serve.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "HubSpotState",
    "LoggedRequest",
    "create_app",
    "seed_default_portal",
    "DEFAULT_TOKEN",
    "MAX_BATCH",
    "MAX_STRING_LENGTH",
]

DEFAULT_TOKEN = "pat-na1-00000000-sim0-4000-8000-000000000000"
MAX_BATCH = 100
MAX_STRING_LENGTH = 65536

PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool", "phone_number", "object_coordinates", "json"}

_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")
_DIGITS_RE = re.compile(r"^\d+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: "
    "https://developers.hubspot.com/scopes."
)
SCOPE_ACCESS = ("read", "write", "schemas")

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _correlation_id() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------- state


@dataclass
class LoggedRequest:
    """One request the simulator received (never its credentials)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # parsed JSON, or None
    status: int = 0  # the status answered, filled in when the answer is known
    authenticated: bool = False
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)

    def __repr__(self) -> str:  # short, for assertion messages
        return f"<{self.method} {self.path} -> {self.status}>"


@dataclass
class _Fault:
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    path_contains: str | None
    after: int = 0  # matching requests still let through before the fault starts


@dataclass
class _ObjectType:
    name: str  # plural, as used in URLs: deals
    type_id: str  # 0-3
    singular: str  # DEAL, as used in messages
    aliases: tuple[str, ...]
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: list[dict[str, Any]] | None = None  # None: the object has no pipelines
    pipeline_property: str | None = None
    stage_property: str | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_properties: tuple[str, ...] = ()


class HubSpotState:
    """The in-memory portal behind the simulator. Every method is thread-safe."""

    def __init__(self, tokens: Iterable[str] = (DEFAULT_TOKEN,), *, portal_id: int = 24681357) -> None:
        self._lock = threading.RLock()
        self.portal_id = portal_id
        self._tokens: dict[str, dt.datetime | None] = {t: None for t in tokens}  # token -> expired at
        self._types: dict[str, _ObjectType] = {}
        self._aliases: dict[str, str] = {}
        self._next_id = 10000000001
        self._faults: deque[_Fault] = deque()
        self._holds: list[list[Any]] = []  # [path part, seconds, times left]
        self._rate_max: int | None = None
        self._rate_interval_s = 10.0
        self._rate_retry_after: float | None = None
        self._rate_hits: dict[str, deque[float]] = {}
        self._log: list[LoggedRequest] = []
        # A deal's stage must belong to the deal's pipeline (after the update).
        self.strict_stage_pipeline = True
        self.named: dict[str, str] = {}  # names given by seed_default_portal -> record ids
        # Scopes a token lacks (key None: every token); every other scope is granted.
        self._revoked: dict[str | None, set[str]] = {}

    def app(self) -> Starlette:
        """This state's ASGI app (``create_app(self)``)."""
        return create_app(self)

    # ---------------------------------------------------------------- tokens

    def add_token(self, token: str) -> None:
        with self._lock:
            self._tokens[token] = None

    def expire_token(self, token: str, at: dt.datetime | None = None) -> None:
        """The token now answers 401 EXPIRED_AUTHENTICATION."""
        with self._lock:
            self._tokens[token] = at or _now()

    def revoke_token(self, token: str) -> None:
        """The token now answers 401 INVALID_AUTHENTICATION."""
        with self._lock:
            self._tokens.pop(token, None)

    def revoke_scopes(self, object_type: str, *access: str, token: str | None = None) -> list[str]:
        """Take away the scopes of ``object_type``; returns their names.

        ``access`` is any of ``read`` (``crm.objects.{type}.read``: batch read,
        single read, pipelines), ``write`` (``crm.objects.{type}.write``: batch
        update, PATCH) and ``schemas`` (``crm.schemas.{type}.read``: properties);
        default all three. ``token``: only that token (default: every token).
        Such calls then answer 403 ``MISSING_SCOPES``, as for a private app
        installed without them.
        """
        with self._lock:
            name = self._require_type(object_type).name
            wanted = access or SCOPE_ACCESS
            unknown = [a for a in wanted if a not in SCOPE_ACCESS]
            if unknown:
                raise ValueError(f"unknown access {unknown[0]!r}; use {', '.join(SCOPE_ACCESS)}")
            scopes = [_scope(name, a) for a in wanted]
            self._revoked.setdefault(token, set()).update(scopes)
            return scopes

    def grant_scopes(self, token: str | None = None) -> None:
        """Give back every revoked scope (of ``token``, or of every token when None)."""
        with self._lock:
            if token is None:
                self._revoked.clear()
            else:
                self._revoked.pop(token, None)

    # ---------------------------------------------------------------- schema

    def add_object_type(
        self,
        name: str,
        type_id: str,
        singular: str,
        *,
        aliases: Sequence[str] = (),
        pipeline_property: str | None = None,
        stage_property: str | None = None,
        default_properties: Sequence[str] = (),
    ) -> None:
        with self._lock:
            obj = _ObjectType(
                name=name,
                type_id=type_id,
                singular=singular.upper(),
                aliases=tuple(aliases),
                pipeline_property=pipeline_property,
                stage_property=stage_property,
                default_properties=tuple(default_properties),
            )
            if pipeline_property or stage_property:
                obj.pipelines = []
            self._types[name] = obj
            for alias in (name, type_id, *aliases):
                self._aliases[alias.lower()] = name
            # Every HubSpot object has these read-only properties.
            self.add_property(name, "hs_object_id", "number", "number", label="Record ID", read_only_value=True,
                              read_only_definition=True, group_name=f"{singular.lower()}information")
            self.add_property(name, "createdate", "datetime", "date", label="Create Date", read_only_value=True,
                              read_only_definition=True, group_name=f"{singular.lower()}information")
            self.add_property(name, "hs_lastmodifieddate", "datetime", "date", label="Last Modified Date",
                              read_only_value=True, read_only_definition=True,
                              group_name=f"{singular.lower()}information")

    def object_types(self) -> list[str]:
        with self._lock:
            return list(self._types)

    def _type(self, object_type: str) -> _ObjectType | None:
        name = self._aliases.get(object_type.lower())
        return self._types.get(name) if name else None

    def _require_type(self, object_type: str) -> _ObjectType:
        obj = self._type(object_type)
        if obj is None:
            raise KeyError(f"unknown object type {object_type!r}")
        return obj

    def add_property(
        self,
        object_type: str,
        name: str,
        type: str,
        field_type: str,
        *,
        label: str | None = None,
        options: Sequence[Mapping[str, Any] | tuple[str, str] | str] = (),
        calculated: bool = False,
        read_only_value: bool = False,
        read_only_definition: bool | None = None,
        external_options: bool = False,
        hidden: bool = False,
        has_unique_value: bool = False,
        form_field: bool = False,
        group_name: str | None = None,
        description: str = "",
        hubspot_defined: bool = True,
        referenced_object_type: str | None = None,
    ) -> dict[str, Any]:
        """Define (or redefine) a property; returns its JSON shape.

        ``options`` items are ``{"label", "value", "hidden"?}`` dicts,
        ``(value, label)`` pairs or plain values (label = value).
        """
        if type not in PROPERTY_TYPES:
            raise ValueError(f"unknown property type {type!r}")
        with self._lock:
            obj = self._require_type(object_type)
            stamp = _iso(_now())
            built_options = []
            for order, option in enumerate(options):
                if isinstance(option, str):
                    option = {"value": option, "label": option}
                elif isinstance(option, tuple):
                    option = {"value": option[0], "label": option[1]}
                built_options.append(
                    {
                        "label": option["label"],
                        "value": option["value"],
                        "displayOrder": option.get("displayOrder", order),
                        "hidden": bool(option.get("hidden", False)),
                        **({"description": option["description"]} if "description" in option else {}),
                    }
                )
            prop: dict[str, Any] = {
                "updatedAt": stamp,
                "createdAt": stamp,
                "name": name,
                "label": label if label is not None else name.replace("_", " ").title(),
                "type": type,
                "fieldType": field_type,
                "description": description,
                "groupName": group_name or f"{obj.singular.lower()}information",
                "options": built_options,
                "displayOrder": len(obj.properties),
                "calculated": calculated,
                "externalOptions": external_options,
                "hasUniqueValue": has_unique_value,
                "hidden": hidden,
                "hubspotDefined": hubspot_defined,
                "modificationMetadata": {
                    "archivable": not hubspot_defined,
                    "readOnlyDefinition": read_only_definition if read_only_definition is not None else hubspot_defined,
                    "readOnlyValue": read_only_value or calculated,
                },
                "formField": form_field,
                "dataSensitivity": "non_sensitive",
            }
            if referenced_object_type:
                prop["referencedObjectType"] = referenced_object_type
            if calculated and type == "number":
                prop["calculationFormula"] = "amount * hs_deal_stage_probability" if name == "hs_forecast_amount" else ""
            obj.properties[name] = prop
            return copy.deepcopy(prop)

    def remove_property(self, object_type: str, name: str) -> None:
        with self._lock:
            self._require_type(object_type).properties.pop(name, None)

    def get_property(self, object_type: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            prop = self._require_type(object_type).properties.get(name)
            return copy.deepcopy(prop) if prop else None

    def add_pipeline(
        self,
        object_type: str,
        pipeline_id: str,
        label: str,
        stages: Sequence[tuple[str, str] | tuple[str, str, Mapping[str, str]] | Mapping[str, Any]],
        *,
        archived: bool = False,
    ) -> dict[str, Any]:
        """Add a pipeline; ``stages`` are ``(id, label[, metadata])`` or dicts."""
        with self._lock:
            obj = self._require_type(object_type)
            if obj.pipelines is None:
                raise ValueError(f"{obj.name} has no pipelines")
            stamp = _iso(_now())
            built = []
            for order, stage in enumerate(stages):
                if isinstance(stage, Mapping):
                    sid, slabel, meta = stage["id"], stage["label"], dict(stage.get("metadata", {}))
                    sarchived = bool(stage.get("archived", False))
                else:
                    sid, slabel = stage[0], stage[1]
                    meta = dict(stage[2]) if len(stage) > 2 else {}
                    sarchived = False
                built.append(
                    {
                        "label": slabel,
                        "displayOrder": order,
                        "metadata": meta,
                        "id": sid,
                        "createdAt": stamp,
                        "updatedAt": stamp,
                        "archived": sarchived,
                        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                    }
                )
            pipeline = {
                "label": label,
                "displayOrder": len(obj.pipelines),
                "id": pipeline_id,
                "stages": built,
                "createdAt": stamp,
                "updatedAt": stamp,
                "archived": archived,
            }
            obj.pipelines.append(pipeline)
            return copy.deepcopy(pipeline)

    # ---------------------------------------------------------------- records

    def _new_id(self) -> str:
        value = self._next_id
        self._next_id += 1
        return str(value)

    def add_record(self, object_type: str, properties: Mapping[str, Any] | None = None, *,
                   record_id: str | None = None, name: str | None = None) -> str:
        """Create a record without validation (seed data); returns its id."""
        with self._lock:
            obj = self._require_type(object_type)
            rid = str(record_id) if record_id is not None else self._new_id()
            if rid in obj.records:
                raise ValueError(f"{obj.name} {rid} exists")
            created = _now()
            values: dict[str, str | None] = {}
            for key, value in (properties or {}).items():
                values[key] = None if value is None else _stringify(value)
            values["hs_object_id"] = rid
            values["createdate"] = _iso(created)
            values["hs_lastmodifieddate"] = _iso(created)
            obj.records[rid] = {"id": rid, "properties": values, "createdAt": created, "updatedAt": created,
                                "archived": False}
            if name:
                self.named[name] = rid
            return rid

    def get_record(self, object_type: str, record_id: str) -> dict[str, str | None] | None:
        """A copy of the record's property values, or None when missing/archived."""
        with self._lock:
            record = self._require_type(object_type).records.get(str(record_id))
            if record is None or record["archived"]:
                return None
            return dict(record["properties"])

    def set_values(self, object_type: str, record_id: str, **values: Any) -> None:
        """Change values directly (a person editing in HubSpot): no validation."""
        with self._lock:
            record = self._require_type(object_type).records[str(record_id)]
            for key, value in values.items():
                record["properties"][key] = None if value is None else _stringify(value)
            record["updatedAt"] = _now()
            record["properties"]["hs_lastmodifieddate"] = _iso(record["updatedAt"])

    def archive_record(self, object_type: str, record_id: str) -> None:
        """Delete a record (to the recycle bin): reads and updates no longer find it."""
        with self._lock:
            self._require_type(object_type).records[str(record_id)]["archived"] = True

    def delete_record(self, object_type: str, record_id: str) -> None:
        with self._lock:
            self._require_type(object_type).records.pop(str(record_id), None)

    def record_ids(self, object_type: str) -> list[str]:
        with self._lock:
            return [rid for rid, rec in self._require_type(object_type).records.items() if not rec["archived"]]

    # ---------------------------------------------------------------- knobs

    def rate_limit(self, max_requests: int | None, interval_s: float = 10.0, *, retry_after: float | None = None) -> None:
        """Allow ``max_requests`` per token per rolling ``interval_s`` (None: no limit).

        ``retry_after``: also send a ``Retry-After`` header on 429 (real HubSpot
        usually does not).
        """
        with self._lock:
            self._rate_max = max_requests
            self._rate_interval_s = interval_s
            self._rate_retry_after = retry_after
            self._rate_hits.clear()

    def fail_next(self, status: int, body: Any = None, times: int = 1, *, headers: Mapping[str, str] | None = None,
                  path_contains: str | None = None, after: int = 0) -> None:
        """Answer the next ``times`` matching requests with ``status`` and ``body``.

        ``after``: let that many matching requests through first (a failure in
        the middle of a split batch). Faults are served before authentication
        (like a load balancer's 502).
        """
        if body is None:
            body = {
                "status": "error",
                "message": "internal error" if status < 503 else "Service Unavailable",
                "correlationId": "",
                "category": "INTERNAL_ERROR" if status < 503 else "SERVICE_UNAVAILABLE",
            }
        with self._lock:
            self._faults.append(_Fault(status, body, dict(headers or {}), times, path_contains, after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._holds.clear()

    def hold_answers(self, path_contains: str, seconds: float, times: int = 1) -> None:
        """Apply the next ``times`` matching requests, then wait ``seconds`` before
        answering: the CRM has done the work but the caller does not know yet (a
        worker killed during that wait must not write the values twice)."""
        with self._lock:
            self._holds.append([path_contains, seconds, times])

    def _take_hold(self, path: str) -> float:
        with self._lock:
            for hold in self._holds:
                if hold[0] in path:
                    hold[2] -= 1
                    if hold[2] <= 0:
                        self._holds.remove(hold)
                    return hold[1]
            return 0.0

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_to(self, method: str | None = None, path_suffix: str | None = None) -> list[LoggedRequest]:
        """Logged requests filtered by method and path ending (e.g. ``"batch/update"``)."""
        with self._lock:
            return [
                r for r in self._log
                if (method is None or r.method == method.upper())
                and (path_suffix is None or r.path.endswith(path_suffix))
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # ---------------------------------------------------------------- request plumbing

    def _log_request(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains is None or fault.path_contains in path:
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def _authenticate(self, header: str | None) -> tuple[str | None, tuple[int, dict[str, Any]] | None]:
        token = None
        if header and header[:7].lower() == "bearer ":
            token = header[7:].strip()
        with self._lock:
            if not token or token not in self._tokens:
                return None, (401, {"status": "error", "message": AUTH_MESSAGE, "correlationId": _correlation_id(),
                                    "category": "INVALID_AUTHENTICATION"})
            expired = self._tokens[token]
            if expired is not None and expired <= _now():
                ago = max(0, int((_now() - expired).total_seconds()))
                unit, amount = ("second(s)", ago)
                if ago >= 86400:
                    unit, amount = "day(s)", ago // 86400
                elif ago >= 3600:
                    unit, amount = "hour(s)", ago // 3600
                elif ago >= 60:
                    unit, amount = "minute(s)", ago // 60
                return None, (401, {
                    "status": "error",
                    "message": f"The OAuth token used to make this call expired {amount} {unit} ago.",
                    "correlationId": _correlation_id(),
                    "category": "EXPIRED_AUTHENTICATION",
                    "context": {"expire time": [_iso(expired)]},
                })
        return token, None

    def _scope_check(self, token: str, method: str, path: str) -> tuple[int, dict[str, Any]] | None:
        """The 403 MISSING_SCOPES answer when ``token`` lacks the scope of this call, else None."""
        with self._lock:
            revoked = self._revoked.get(None, set()) | self._revoked.get(token, set())
            if not revoked:
                return None
            needed = None
            if method == "GET" and (m := _PROPERTIES.match(path)):
                needed = ("schemas", m["type"])
            elif method == "GET" and (m := _PIPELINES.match(path)):
                needed = ("read", m["type"])
            elif method == "POST" and (m := _BATCH.match(path)):
                needed = ("read" if m["op"] == "read" else "write", m["type"])
            elif m := _ONE.match(path):
                needed = ("read" if method == "GET" else "write", m["type"])
            obj = self._type(needed[1]) if needed else None
            if obj is None:
                return None  # unknown routes and object types are answered as usual
            scope = _scope(obj.name, needed[0])
            if scope not in revoked:
                return None
            return 403, {
                "status": "error",
                "message": SCOPES_MESSAGE,
                "correlationId": _correlation_id(),
                "errors": [{"message": "One or more of the following scopes are required.",
                            "context": {"requiredGranularScopes": [scope]}}],
                "links": {"scopes": "https://developers.hubspot.com/scopes"},
                "category": "MISSING_SCOPES",
            }

    def _rate_check(self, token: str) -> tuple[bool, dict[str, str]]:
        """(allowed, headers) for one request of ``token``."""
        with self._lock:
            if self._rate_max is None:
                return True, {}
            now = time.monotonic()
            hits = self._rate_hits.setdefault(token, deque())
            while hits and hits[0] <= now - self._rate_interval_s:
                hits.popleft()
            headers = {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self._rate_interval_s * 1000)),
                "X-HubSpot-RateLimit-Max": str(self._rate_max),
            }
            if len(hits) >= self._rate_max:
                headers["X-HubSpot-RateLimit-Remaining"] = "0"
                if self._rate_retry_after is not None:
                    headers["Retry-After"] = str(self._rate_retry_after)
                return False, headers
            hits.append(now)
            headers["X-HubSpot-RateLimit-Remaining"] = str(self._rate_max - len(hits))
            return True, headers

    # ---------------------------------------------------------------- API operations (used by the app)

    def _unknown_type(self, object_type: str) -> tuple[int, dict[str, Any]]:
        return 400, {"status": "error", "message": f"Unable to infer object type from: {object_type}",
                     "correlationId": _correlation_id(), "category": "VALIDATION_ERROR"}

    def api_properties(self, object_type: str, name: str | None = None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            obj = self._type(object_type)
            if obj is None:
                return self._unknown_type(object_type)
            if name is None:
                return 200, {"results": [copy.deepcopy(p) for p in obj.properties.values()]}
            prop = obj.properties.get(name)
            if prop is None:
                return 404, {"status": "error", "message": f"Unable to find property {name} on object type {obj.type_id}",
                             "correlationId": _correlation_id(), "category": "OBJECT_NOT_FOUND",
                             "subCategory": "PropertyNotFound"}
            return 200, copy.deepcopy(prop)

    def api_pipelines(self, object_type: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            obj = self._type(object_type)
            if obj is None:
                return self._unknown_type(object_type)
            if obj.pipelines is None:
                return 400, {"status": "error", "message": f"Object type {obj.type_id} does not support pipelines.",
                             "correlationId": _correlation_id(), "category": "VALIDATION_ERROR"}
            return 200, {"results": copy.deepcopy(obj.pipelines)}

    def _public(self, obj: _ObjectType, record: dict[str, Any], properties: Sequence[str] | None) -> dict[str, Any]:
        wanted = list(properties) if properties else list(obj.default_properties)
        for always in ("hs_object_id", "createdate", "hs_lastmodifieddate"):
            if always not in wanted:
                wanted.append(always)
        values = {}
        for name in wanted:
            if name in obj.properties:  # unknown properties are silently left out, as HubSpot does
                values[name] = record["properties"].get(name)
        return {
            "id": record["id"],
            "properties": values,
            "createdAt": _iso(record["createdAt"]),
            "updatedAt": _iso(record["updatedAt"]),
            "archived": False,
        }

    def api_get(self, object_type: str, record_id: str, properties: Sequence[str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            obj = self._type(object_type)
            if obj is None:
                return self._unknown_type(object_type)
            record = obj.records.get(record_id)
            if record is None or record["archived"]:
                return 404, {"status": "error", "message": "Object not found.  objectId are usually numeric.",
                             "correlationId": _correlation_id(), "context": {"id": [record_id]},
                             "category": "OBJECT_NOT_FOUND"}
            return 200, self._public(obj, record, properties)

    def _batch_shape_error(self, body: Any) -> tuple[int, dict[str, Any]] | None:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            return 400, {"status": "error", "message": "Invalid input JSON: 'inputs' is required and must be an array",
                         "correlationId": _correlation_id(), "category": "VALIDATION_ERROR"}
        inputs = body["inputs"]
        if len(inputs) > MAX_BATCH:
            return 400, {"status": "error",
                         "message": f"Batch input must contain at most {MAX_BATCH} inputs; got {len(inputs)}",
                         "correlationId": _correlation_id(), "category": "VALIDATION_ERROR",
                         "context": {"maxInputs": [str(MAX_BATCH)]}}
        bad = [i for i in inputs if not isinstance(i, dict) or not isinstance(i.get("id"), (str, int))
               or isinstance(i.get("id"), bool)]
        if bad:
            return 400, {"status": "error", "message": "Invalid input JSON: every input needs an 'id'",
                         "correlationId": _correlation_id(), "category": "VALIDATION_ERROR"}
        ids = [str(i["id"]) for i in inputs]
        malformed = [i for i in ids if not _DIGITS_RE.match(i)]
        if malformed:
            return 400, {"status": "error",
                         "message": f"Invalid object ids: {malformed}. Object ids must be numeric.",
                         "correlationId": _correlation_id(), "category": "VALIDATION_ERROR",
                         "context": {"ids": malformed}}
        return None

    def _not_found_error(self, obj: _ObjectType, ids: list[str]) -> dict[str, Any]:
        return {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {obj.singular} objects, they may be deleted or not exist. "
                       "Check that ids are valid.",
            "context": {"ids": ids},
        }

    def api_batch_read(self, object_type: str, body: Any) -> tuple[int, dict[str, Any]]:
        started = _now()
        with self._lock:
            obj = self._type(object_type)
            if obj is None:
                return self._unknown_type(object_type)
            error = self._batch_shape_error(body)
            if error:
                return error
            properties = body.get("properties") or []
            if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
                return 400, {"status": "error", "message": "Invalid input JSON: 'properties' must be an array of strings",
                             "correlationId": _correlation_id(), "category": "VALIDATION_ERROR"}
            results, missing, seen = [], [], set()
            for item in body["inputs"]:
                rid = str(item["id"])
                if rid in seen:
                    continue
                seen.add(rid)
                record = obj.records.get(rid)
                if record is None or record["archived"]:
                    missing.append(rid)
                else:
                    results.append(self._public(obj, record, properties))
            answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
            status = 200
            if missing:
                status = 207
                answer["numErrors"] = 1
                answer["errors"] = [self._not_found_error(obj, missing)]
            answer["startedAt"] = _iso(started)
            answer["completedAt"] = _iso(_now())
            return status, answer

    def api_batch_update(self, object_type: str, body: Any) -> tuple[int, dict[str, Any]]:
        started = _now()
        with self._lock:
            obj = self._type(object_type)
            if obj is None:
                return self._unknown_type(object_type)
            error = self._batch_shape_error(body)
            if error:
                return error
            inputs = body["inputs"]
            ids = [str(i["id"]) for i in inputs]
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                return 400, {"status": "error",
                             "message": f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique",
                             "correlationId": _correlation_id(), "category": "VALIDATION_ERROR",
                             "context": {"ids": duplicates}}
            for item in inputs:
                if not isinstance(item.get("properties"), dict):
                    return 400, {"status": "error", "message": "Invalid input JSON: 'properties' must be an object",
                                 "correlationId": _correlation_id(), "category": "VALIDATION_ERROR"}
            problems: list[dict[str, Any]] = []
            planned: list[tuple[dict[str, Any] | None, str, dict[str, str]]] = []
            for item, rid in zip(inputs, ids):
                record = obj.records.get(rid)
                if record is not None and record["archived"]:
                    record = None
                clean, errs = self._validate(obj, record, item["properties"])
                problems.extend(errs)
                planned.append((record, rid, clean))
            if problems:
                return 400, self._validation_body(problems)
            results, missing = [], []
            for record, rid, clean in planned:
                if record is None:
                    missing.append(rid)
                    continue
                stamp = _now()
                record["properties"].update(clean)
                record["updatedAt"] = stamp
                record["properties"]["hs_lastmodifieddate"] = _iso(stamp)
                shown = {k: record["properties"].get(k) for k in clean}
                shown["hs_lastmodifieddate"] = record["properties"]["hs_lastmodifieddate"]
                shown["hs_object_id"] = rid
                results.append({"id": rid, "properties": shown, "createdAt": _iso(record["createdAt"]),
                                "updatedAt": _iso(stamp), "archived": False})
            answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
            status = 200
            if missing:
                status = 207
                answer["numErrors"] = 1
                answer["errors"] = [self._not_found_error(obj, missing)]
            answer["startedAt"] = _iso(started)
            answer["completedAt"] = _iso(_now())
            return status, answer

    def api_update_one(self, object_type: str, record_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            obj = self._type(object_type)
            if obj is None:
                return self._unknown_type(object_type)
            if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
                return 400, {"status": "error", "message": "Invalid input JSON: 'properties' must be an object",
                             "correlationId": _correlation_id(), "category": "VALIDATION_ERROR"}
            record = obj.records.get(record_id)
            if record is None or record["archived"]:
                return 404, {"status": "error", "message": "Object not found.  objectId are usually numeric.",
                             "correlationId": _correlation_id(), "context": {"id": [record_id]},
                             "category": "OBJECT_NOT_FOUND"}
            clean, errs = self._validate(obj, record, body["properties"])
            if errs:
                return 400, self._validation_body(errs)
            stamp = _now()
            record["properties"].update(clean)
            record["updatedAt"] = stamp
            record["properties"]["hs_lastmodifieddate"] = _iso(stamp)
            return 200, self._public(obj, record, list(clean))

    # ---------------------------------------------------------------- validation

    def _validation_body(self, problems: list[dict[str, Any]]) -> dict[str, Any]:
        entries = [
            {
                "isValid": False,
                "message": p["message"],
                "error": p["code"],
                "name": p["name"],
                "localizedErrorMessage": p["message"],
                "propertyValue": p["value"],
                "portalId": self.portal_id,
            }
            for p in problems
        ]
        return {
            "status": "error",
            "message": "Property values were not valid: " + json.dumps(entries, separators=(",", ":")),
            "correlationId": _correlation_id(),
            "errors": [
                {"message": p["message"], "code": p["code"], "context": {"propertyName": [p["name"]]}}
                for p in problems
            ],
            "category": "VALIDATION_ERROR",
        }

    def _stage_ids(self, obj: _ObjectType, pipeline_id: str | None) -> dict[str, str]:
        """stage id -> pipeline id, for one pipeline or all of them (active stages only)."""
        out = {}
        for pipeline in obj.pipelines or []:
            if pipeline["archived"] or (pipeline_id is not None and pipeline["id"] != pipeline_id):
                continue
            for stage in pipeline["stages"]:
                if not stage["archived"]:
                    out[stage["id"]] = pipeline["id"]
        return out

    def _validate(self, obj: _ObjectType, record: dict[str, Any] | None,
                  values: Mapping[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
        clean: dict[str, str] = {}
        errors: list[dict[str, Any]] = []

        def fail(name: str, code: str, message: str, value: Any) -> None:
            errors.append({"name": name, "code": code, "message": message,
                           "value": value if isinstance(value, str) else json.dumps(value)})

        for name, raw in values.items():
            prop = obj.properties.get(name)
            if prop is None:
                fail(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist', raw)
                continue
            if prop["calculated"] or prop["modificationMetadata"]["readOnlyValue"]:
                fail(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.', raw)
                continue
            if isinstance(raw, bool):
                value = "true" if raw else "false"
            elif isinstance(raw, (int, float)):
                value = str(raw)
            elif isinstance(raw, str):
                value = raw
            else:
                fail(name, "INVALID_PROPERTY_VALUE",
                     f"{json.dumps(raw)} is not a valid value for {name}: property values are strings "
                     "(an empty string clears the property)", raw)
                continue
            if value == "":
                clean[name] = ""
                continue
            ptype = prop["type"]
            if ptype not in ("string", "phone_number") and value != value.strip():
                code = {"number": "INVALID_INTEGER", "date": "INVALID_DATE", "datetime": "INVALID_DATETIME",
                        "bool": "INVALID_BOOLEAN"}.get(ptype, "INVALID_OPTION")
                fail(name, code, f"{value!r} has leading or trailing whitespace, which is not allowed for "
                                 f"{ptype} properties", value)
                continue
            if ptype in ("string", "phone_number"):
                if len(value) > MAX_STRING_LENGTH:
                    fail(name, "MAX_LENGTH_EXCEEDED",
                         f"Property {name} value is {len(value)} characters long; the maximum is {MAX_STRING_LENGTH}",
                         value[:100])
                    continue
                clean[name] = value
            elif ptype == "number":
                if not _NUMBER_RE.match(value):
                    fail(name, "INVALID_INTEGER", f"{value} was not a valid number.", value)
                    continue
                clean[name] = value
            elif ptype == "bool":
                if value not in ("true", "false"):
                    fail(name, "INVALID_BOOLEAN", f"{value} was not a valid boolean, expected true or false.", value)
                    continue
                clean[name] = value
            elif ptype == "date":
                parsed, message = _parse_date(value)
                if parsed is None:
                    fail(name, "INVALID_DATE", message, value)
                    continue
                clean[name] = parsed
            elif ptype == "datetime":
                parsed_dt = _parse_datetime(value)
                if parsed_dt is None:
                    fail(name, "INVALID_DATETIME", f"{value} was not a valid datetime (ISO 8601 or epoch milliseconds).",
                         value)
                    continue
                clean[name] = _iso(parsed_dt)
            elif ptype == "enumeration":
                if name in (obj.pipeline_property, obj.stage_property) and prop["externalOptions"]:
                    pass  # checked below, against the pipelines
                elif prop["externalOptions"]:
                    if not _DIGITS_RE.match(value):  # owners and other referenced objects: ids
                        fail(name, "INVALID_OPTION", f"{value} was not a valid id for {name}", value)
                        continue
                else:
                    allowed = [o["value"] for o in prop["options"]]
                    parts = value.split(";") if prop["fieldType"] == "checkbox" else [value]
                    bad = [p for p in parts if p not in allowed]
                    if bad:
                        fail(name, "INVALID_OPTION",
                             f"{bad[0]} was not one of the allowed options: [{', '.join(allowed)}]", value)
                        continue
                clean[name] = value
            else:
                fail(name, "INVALID_PROPERTY_VALUE", f"Property {name} of type {ptype} cannot be set here", value)

        # Pipelines: the pipeline must exist; the stage must be an active stage of the
        # record's (possibly new) pipeline.
        if obj.pipelines is not None:
            pipeline_ids = [p["id"] for p in obj.pipelines if not p["archived"]]
            new_pipeline = clean.get(obj.pipeline_property) if obj.pipeline_property else None
            if new_pipeline and new_pipeline not in pipeline_ids:
                fail(obj.pipeline_property, "INVALID_OPTION",
                     f"{new_pipeline} was not one of the allowed options: [{', '.join(pipeline_ids)}]", new_pipeline)
                clean.pop(obj.pipeline_property, None)
                new_pipeline = None
            new_stage = clean.get(obj.stage_property) if obj.stage_property else None
            if new_stage:
                all_stages = self._stage_ids(obj, None)
                effective = new_pipeline or (record["properties"].get(obj.pipeline_property) if record else None)
                if new_stage not in all_stages:
                    fail(obj.stage_property, "INVALID_OPTION",
                         f"{new_stage} was not one of the allowed options: [{', '.join(all_stages)}]", new_stage)
                elif self.strict_stage_pipeline and effective and all_stages[new_stage] != effective:
                    fail(obj.stage_property, "INVALID_OPTION",
                         f"{new_stage} is not a valid stage of pipeline {effective}: allowed options: "
                         f"[{', '.join(self._stage_ids(obj, effective))}]", new_stage)
            elif new_pipeline and record is not None and obj.stage_property:
                current = record["properties"].get(obj.stage_property)
                if current and current not in self._stage_ids(obj, new_pipeline):
                    fail(obj.pipeline_property, "INVALID_OPTION",
                         f"The current {obj.stage_property} {current} is not a stage of pipeline {new_pipeline}; "
                         f"set {obj.stage_property} in the same update", new_pipeline)
        return clean, errors


def _scope(object_name: str, access: str) -> str:
    """The granular scope of ``access`` (read/write/schemas) on an object type."""
    if access == "schemas":
        return f"crm.schemas.{object_name}.read"
    return f"crm.objects.{object_name}.{access}"


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def _parse_date(value: str) -> tuple[str | None, str]:
    """A date value as HubSpot stores it (YYYY-MM-DD), or None and the reason."""
    if _DATE_RE.match(value):
        try:
            return dt.date.fromisoformat(value).isoformat(), ""
        except ValueError:
            return None, f"{value} was not a valid date."
    moment: dt.datetime | None = None
    if _DIGITS_RE.match(value):
        try:
            moment = dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None, f"{value} was not a valid date."
    else:
        moment = _parse_iso(value)
    if moment is None:
        return None, f"{value} was not a valid date."
    moment = moment.astimezone(dt.UTC)
    if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        return None, (f"{value} is at {moment.hour}:{moment.minute:02d}:{moment.second}."
                      f"{moment.microsecond // 1000:03d} UTC, not midnight!")
    return moment.date().isoformat(), ""


def _parse_iso(value: str) -> dt.datetime | None:
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def _parse_datetime(value: str) -> dt.datetime | None:
    if _DIGITS_RE.match(value):
        try:
            return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if _DATE_RE.match(value):
        try:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        except ValueError:
            return None
    if "T" not in value:
        return None
    return _parse_iso(value)


# --------------------------------------------------------------------------- app

_PROPERTIES = re.compile(r"^/crm/v3/properties/(?P<type>[^/]+)(?:/(?P<name>[^/]+))?/?$")
_PIPELINES = re.compile(r"^/crm/v3/pipelines/(?P<type>[^/]+)/?$")
_BATCH = re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/batch/(?P<op>read|update)/?$")
_ONE = re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/(?P<id>[^/]+)/?$")


def create_app(state: HubSpotState) -> Starlette:
    """The ASGI app serving ``state``."""

    async def handle(request: Request) -> Response:
        path = request.url.path
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(request.url.query, keep_blank_values=True):
            query.setdefault(key, []).append(value)
        raw = await request.body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        entry = LoggedRequest(request.method, path, query, body)
        state._log_request(entry)

        def answer(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
            entry.status = status
            if isinstance(payload, dict) and payload.get("correlationId") == "":
                payload = {**payload, "correlationId": _correlation_id()}
            if payload is None:
                return Response(status_code=status, headers=dict(headers or {}))
            if isinstance(payload, (bytes, str)):
                return Response(payload, status_code=status, headers=dict(headers or {}), media_type="text/plain")
            return JSONResponse(payload, status_code=status, headers=dict(headers or {}))

        fault = state._take_fault(path)
        if fault is not None:
            return answer(fault.status, fault.body, fault.headers)

        token, auth_error = state._authenticate(request.headers.get("authorization"))
        if auth_error is not None:
            return answer(*auth_error)
        entry.authenticated = True

        allowed, rate_headers = state._rate_check(token)
        if not allowed:
            return answer(429, {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": _correlation_id(),
                "policyName": "TEN_SECONDLY_ROLLING",
                "groupName": f"publicapi:private-app-ten-secondly:{state.portal_id}",
            }, rate_headers)

        forbidden = state._scope_check(token, request.method, path)
        if forbidden is not None:
            return answer(*forbidden, rate_headers)

        if bad_json:
            return answer(400, {"status": "error", "message": "Invalid input JSON on line 1: malformed JSON",
                                "correlationId": _correlation_id(), "category": "VALIDATION_ERROR"}, rate_headers)

        response = route(request.method, path, query, body, rate_headers, answer)
        hold = state._take_hold(path)
        if hold:
            await asyncio.sleep(hold)
        return response

    def route(method: str, path: str, query: dict[str, list[str]], body: Any, rate_headers: Mapping[str, str],
              answer: Any) -> Response:
        props = [p for v in query.get("properties", []) for p in v.split(",") if p]
        if method == "GET" and (m := _PROPERTIES.match(path)):
            return answer(*state.api_properties(m["type"], m["name"]), rate_headers)
        if method == "GET" and (m := _PIPELINES.match(path)):
            return answer(*state.api_pipelines(m["type"]), rate_headers)
        if method == "POST" and (m := _BATCH.match(path)):
            if m["op"] == "read":
                return answer(*state.api_batch_read(m["type"], body), rate_headers)
            return answer(*state.api_batch_update(m["type"], body), rate_headers)
        if m := _ONE.match(path):
            if method == "GET":
                return answer(*state.api_get(m["type"], m["id"], props), rate_headers)
            if method == "PATCH":
                return answer(*state.api_update_one(m["type"], m["id"], body), rate_headers)
        return answer(404, {"status": "error", "message": f"No route for {method} {path}",
                            "correlationId": _correlation_id(), "category": "OBJECT_NOT_FOUND"}, rate_headers)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


# --------------------------------------------------------------------------- default portal

DEAL_STAGES_DEFAULT = [
    ("appointmentscheduled", "Appointment Scheduled", {"isClosed": "false", "probability": "0.2"}),
    ("qualifiedtobuy", "Qualified To Buy", {"isClosed": "false", "probability": "0.4"}),
    ("presentationscheduled", "Presentation Scheduled", {"isClosed": "false", "probability": "0.6"}),
    ("decisionmakerboughtin", "Decision Maker Bought-In", {"isClosed": "false", "probability": "0.8"}),
    ("contractsent", "Contract Sent", {"isClosed": "false", "probability": "0.9"}),
    ("closedwon", "Closed Won", {"isClosed": "true", "probability": "1.0"}),
    ("closedlost", "Closed Lost", {"isClosed": "true", "probability": "0.0"}),
]
RENEWALS_PIPELINE = "19826473"
# As in real portals: a pipeline created after the default one gets numeric
# stage ids, and HubSpot seeds it with "Closed Won" / "Closed Lost" stages, so
# those labels exist in every deal pipeline and only the deal's pipeline tells
# which stage a label means.
DEAL_STAGES_RENEWALS = [
    ("61342871", "Renewal Discovery", {"isClosed": "false", "probability": "0.3"}),
    ("61342872", "Renewal Proposal", {"isClosed": "false", "probability": "0.7"}),
    ("61342873", "Closed Won", {"isClosed": "true", "probability": "1.0"}),
    ("61342874", "Closed Lost", {"isClosed": "true", "probability": "0.0"}),
]
LEAD_STAGES = [
    ("new-stage-id", "New"),
    ("attempting-stage-id", "Attempting"),
    ("connected-stage-id", "Connected"),
    ("qualified-stage-id", "Qualified"),
    ("unqualified-stage-id", "Disqualified"),
]


def _owner(state: HubSpotState, object_type: str) -> None:
    state.add_property(object_type, "hubspot_owner_id", "enumeration", "select", label="Owner",
                       external_options=True, referenced_object_type="OWNER")


def seed_default_portal(state: HubSpotState | None = None) -> HubSpotState:
    """Fill ``state`` (or a new one) with a realistic portal; returns it.

    Named records (``state.named``): ``deal_acme``, ``deal_globex``,
    ``deal_initech`` (renewals pipeline), ``deal_umbrella``, ``company_acme``,
    ``company_globex``, ``contact_jane``, ``contact_bob``, ``contact_ana``,
    ``lead_hooli``, ``meeting_acme_discovery``, ``meeting_globex_demo``.
    """
    state = state or HubSpotState()
    add = state.add_property

    # ---- deals
    state.add_object_type("deals", "0-3", "DEAL", aliases=("deal",), pipeline_property="pipeline",
                          stage_property="dealstage",
                          default_properties=("dealname", "amount", "closedate", "pipeline", "dealstage"))
    add("deals", "dealname", "string", "text", label="Deal Name", form_field=True)
    add("deals", "amount", "number", "number", label="Amount")
    # As in real portals, closedate is a datetime shown as a date picker.
    add("deals", "closedate", "datetime", "date", label="Close Date")
    add("deals", "contract_start_date", "date", "date", label="Contract Start Date", hubspot_defined=False,
        group_name="siro")
    add("deals", "dealstage", "enumeration", "radio", label="Deal Stage", external_options=True)
    add("deals", "pipeline", "enumeration", "select", label="Pipeline", external_options=True)
    add("deals", "description", "string", "textarea", label="Deal Description")
    add("deals", "hs_next_step", "string", "textarea", label="Next step")
    add("deals", "dealtype", "enumeration", "radio", label="Deal Type",
        options=[("newbusiness", "New Business"), ("existingbusiness", "Existing Business")])
    add("deals", "hs_priority", "enumeration", "select", label="Priority",
        options=[("low", "Low"), ("medium", "Medium"), ("high", "High")])
    add("deals", "deal_temperature", "enumeration", "select", label="Deal Temperature", hubspot_defined=False,
        group_name="siro", options=[("hot", "Hot"), ("warm", "Warm"), ("cold", "Cold"),
                                    {"value": "frozen", "label": "Frozen", "hidden": True}])
    add("deals", "competitors", "enumeration", "checkbox", label="Competitors Mentioned", hubspot_defined=False,
        group_name="siro", options=[("acme_rival", "Acme Rival"), ("globex", "Globex"), ("initech", "Initech"),
                                    ("umbrella", "Umbrella Corp")])
    add("deals", "budget_confirmed", "bool", "booleancheckbox", label="Budget Confirmed", hubspot_defined=False,
        group_name="siro", options=[("true", "Yes"), ("false", "No")])
    add("deals", "next_meeting_at", "datetime", "date", label="Next Meeting At", hubspot_defined=False,
        group_name="siro")
    add("deals", "decision_makers", "number", "number", label="Decision Makers", hubspot_defined=False,
        group_name="siro")
    add("deals", "hs_deal_stage_probability", "number", "number", label="Deal probability", read_only_value=True)
    add("deals", "hs_forecast_amount", "number", "calculation_equation", label="Forecast amount", calculated=True)
    add("deals", "hs_is_closed", "bool", "booleancheckbox", label="Is Deal Closed?", calculated=True,
        options=[("true", "True"), ("false", "False")])
    _owner(state, "deals")
    state.add_pipeline("deals", "default", "Sales Pipeline", DEAL_STAGES_DEFAULT)
    state.add_pipeline("deals", RENEWALS_PIPELINE, "Enterprise Renewals", DEAL_STAGES_RENEWALS)

    # ---- companies
    state.add_object_type("companies", "0-2", "COMPANY", aliases=("company",), default_properties=("name", "domain"))
    add("companies", "name", "string", "text", label="Company name", form_field=True)
    add("companies", "domain", "string", "text", label="Company Domain Name", form_field=True)
    add("companies", "industry", "enumeration", "select", label="Industry",
        options=[("COMPUTER_SOFTWARE", "Computer Software"),
                 ("INFORMATION_TECHNOLOGY_AND_SERVICES", "Information Technology and Services"),
                 ("MARKETING_AND_ADVERTISING", "Marketing and Advertising"),
                 ("FINANCIAL_SERVICES", "Financial Services"),
                 ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
                 ("CONSTRUCTION", "Construction")])
    add("companies", "type", "enumeration", "select", label="Type",
        options=[("PROSPECT", "Prospect"), ("PARTNER", "Partner"), ("RESELLER", "Reseller"), ("VENDOR", "Vendor"),
                 ("OTHER", "Other")])
    add("companies", "numberofemployees", "number", "number", label="Number of Employees")
    add("companies", "annualrevenue", "number", "number", label="Annual Revenue")
    add("companies", "description", "string", "textarea", label="Description")
    add("companies", "phone", "string", "phonenumber", label="Phone Number")
    add("companies", "city", "string", "text", label="City")
    add("companies", "country", "string", "text", label="Country/Region")
    add("companies", "num_associated_deals", "number", "number", label="Number of Associated Deals",
        calculated=True)
    _owner(state, "companies")

    # ---- contacts
    state.add_object_type("contacts", "0-1", "CONTACT", aliases=("contact",),
                          default_properties=("firstname", "lastname", "email"))
    add("contacts", "firstname", "string", "text", label="First Name", form_field=True)
    add("contacts", "lastname", "string", "text", label="Last Name", form_field=True)
    add("contacts", "email", "string", "text", label="Email", form_field=True, has_unique_value=False)
    add("contacts", "phone", "string", "phonenumber", label="Phone Number", form_field=True)
    add("contacts", "mobilephone", "phone_number", "phonenumber", label="Mobile Phone Number")
    add("contacts", "jobtitle", "string", "text", label="Job Title", form_field=True)
    add("contacts", "lifecyclestage", "enumeration", "radio", label="Lifecycle Stage",
        options=[("subscriber", "Subscriber"), ("lead", "Lead"), ("marketingqualifiedlead", "Marketing Qualified Lead"),
                 ("salesqualifiedlead", "Sales Qualified Lead"), ("opportunity", "Opportunity"),
                 ("customer", "Customer"), ("evangelist", "Evangelist"), ("other", "Other")])
    add("contacts", "hs_lead_status", "enumeration", "radio", label="Lead Status",
        options=[("NEW", "New"), ("OPEN", "Open"), ("IN_PROGRESS", "In Progress"), ("OPEN_DEAL", "Open Deal"),
                 ("UNQUALIFIED", "Unqualified"), ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
                 ("CONNECTED", "Connected"), ("BAD_TIMING", "Bad Timing")])
    add("contacts", "pain_points", "string", "textarea", label="Pain Points", hubspot_defined=False, group_name="siro")
    add("contacts", "notes_last_contacted", "datetime", "date", label="Last Contacted", read_only_value=True)
    _owner(state, "contacts")

    # ---- leads
    state.add_object_type("leads", "0-136", "LEAD", aliases=("lead",), pipeline_property="hs_pipeline",
                          stage_property="hs_pipeline_stage", default_properties=("hs_lead_name",))
    add("leads", "hs_lead_name", "string", "text", label="Lead name")
    add("leads", "hs_pipeline", "enumeration", "select", label="Pipeline", external_options=True)
    add("leads", "hs_pipeline_stage", "enumeration", "select", label="Lead stage", external_options=True)
    add("leads", "hs_lead_type", "enumeration", "select", label="Lead type",
        options=[("NEW_BUSINESS", "New Business"), ("UPSELL", "Upsell"), ("RE_ATTEMPTING", "Re-attempting")])
    add("leads", "hs_lead_label", "enumeration", "select", label="Lead label",
        options=[("COLD", "Cold"), ("WARM", "Warm"), ("HOT", "Hot")])
    _owner(state, "leads")
    state.add_pipeline("leads", "lead-pipeline-id", "Lead pipeline", LEAD_STAGES)

    # ---- meetings
    state.add_object_type("meetings", "0-47", "MEETING_EVENT", aliases=("meeting",),
                          default_properties=("hs_meeting_title", "hs_meeting_start_time"))
    add("meetings", "hs_meeting_title", "string", "text", label="Meeting name")
    add("meetings", "hs_meeting_body", "string", "html", label="Meeting description")
    add("meetings", "hs_internal_meeting_notes", "string", "html", label="Internal meeting notes")
    add("meetings", "hs_meeting_outcome", "enumeration", "select", label="Meeting outcome",
        options=[("SCHEDULED", "Scheduled"), ("COMPLETED", "Completed"), ("RESCHEDULED", "Rescheduled"),
                 ("NO_SHOW", "No Show"), ("CANCELED", "Canceled")])
    add("meetings", "hs_meeting_start_time", "datetime", "date", label="Start Time")
    add("meetings", "hs_meeting_end_time", "datetime", "date", label="End Time")
    add("meetings", "hs_timestamp", "datetime", "date", label="Activity date")
    add("meetings", "hs_meeting_location", "string", "text", label="Location")
    add("meetings", "hs_activity_type", "enumeration", "select", label="Call and meeting type",
        options=[("Discovery call", "Discovery call"), ("Demo", "Demo"), ("Follow up", "Follow up")])
    _owner(state, "meetings")

    # ---- records
    rec = state.add_record
    rec("companies", {"name": "Acme Corp", "domain": "acme.example", "industry": "COMPUTER_SOFTWARE",
                      "numberofemployees": "250", "city": "Boston", "type": "PROSPECT"}, name="company_acme")
    rec("companies", {"name": "Globex", "domain": "globex.example", "industry": "FINANCIAL_SERVICES"},
        name="company_globex")
    rec("contacts", {"firstname": "Jane", "lastname": "Doe", "email": "jane@acme.example", "jobtitle": "VP Sales",
                     "lifecyclestage": "opportunity"}, name="contact_jane")
    rec("contacts", {"firstname": "Bob", "lastname": "Smith", "email": "bob@acme.example"}, name="contact_bob")
    rec("contacts", {"firstname": "Ana", "lastname": "Lopez", "email": "ana@globex.example",
                     "hs_lead_status": "OPEN"}, name="contact_ana")
    rec("deals", {"dealname": "Acme - Platform", "amount": "12500", "closedate": "2026-12-31T17:00:00.000Z",
                  "contract_start_date": "2026-12-31",
                  "pipeline": "default", "dealstage": "qualifiedtobuy", "dealtype": "newbusiness",
                  "hs_deal_stage_probability": "0.4", "hs_forecast_amount": "5000", "hs_is_closed": "false"},
        name="deal_acme")
    rec("deals", {"dealname": "Globex - Expansion", "amount": "48000", "pipeline": "default",
                  "dealstage": "presentationscheduled", "deal_temperature": "warm", "competitors": "initech",
                  "hs_deal_stage_probability": "0.6", "hs_forecast_amount": "28800", "hs_is_closed": "false"},
        name="deal_globex")
    rec("deals", {"dealname": "Initech - Renewal 2027", "amount": "30000", "pipeline": RENEWALS_PIPELINE,
                  "dealstage": "61342871", "hs_is_closed": "false"}, name="deal_initech")
    rec("deals", {"dealname": "Umbrella - Pilot", "pipeline": "default", "dealstage": "appointmentscheduled",
                  "hs_is_closed": "false"}, name="deal_umbrella")
    rec("leads", {"hs_lead_name": "Hooli inbound", "hs_pipeline": "lead-pipeline-id",
                  "hs_pipeline_stage": "new-stage-id", "hs_lead_label": "WARM"}, name="lead_hooli")
    rec("meetings", {"hs_meeting_title": "Acme discovery call", "hs_meeting_outcome": "SCHEDULED",
                     "hs_meeting_start_time": "2026-11-20T15:00:00.000Z",
                     "hs_meeting_end_time": "2026-11-20T15:30:00.000Z",
                     "hs_timestamp": "2026-11-20T15:00:00.000Z"}, name="meeting_acme_discovery")
    rec("meetings", {"hs_meeting_title": "Globex demo", "hs_meeting_outcome": "SCHEDULED",
                     "hs_meeting_start_time": "2026-11-21T17:00:00.000Z",
                     "hs_timestamp": "2026-11-21T17:00:00.000Z"}, name="meeting_globex_demo")
    return state
