"""``HubSpotState``: the in-memory portal behind the simulator, and the knobs tests turn.

It holds tokens (valid, expired, revoked scopes), object types with their
properties and pipelines, and records (property values as strings). Knobs:
``rate_limit`` (a per-token rolling window), ``fail_next`` (fault injection,
also after N good requests), ``hold_answers``, ``expire_token``,
``revoke_scopes`` (403 ``MISSING_SCOPES`` for one object type), and a request
log (``requests``) that never holds the token. Every method is thread-safe.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from simulators.hubspot import api, errors
from simulators.hubspot.errors import Answer
from simulators.hubspot.knobs import Fault, Faults, LoggedRequest, RollingRateLimit
from simulators.hubspot.notes import AssociationStore
from simulators.hubspot.routes import SCOPE_ACCESS, needed_access, scope_name
from simulators.hubspot.schema import (
    PROPERTY_TYPES,
    ObjectType,
    Option,
    Stage,
    pipeline_json,
    property_json,
)
from simulators.hubspot.values import iso, now, stringify

if TYPE_CHECKING:
    from starlette.applications import Starlette

DEFAULT_TOKEN = "pat-na1-00000000-sim0-4000-8000-000000000000"

# Every HubSpot object has these read-only properties: (name, type, fieldType, label).
_BUILTIN_PROPERTIES = (
    ("hs_object_id", "number", "number", "Record ID"),
    ("createdate", "datetime", "date", "Create Date"),
    ("hs_lastmodifieddate", "datetime", "date", "Last Modified Date"),
)


class HubSpotState:
    """The in-memory portal behind the simulator. Every method is thread-safe."""

    def __init__(self, tokens: Iterable[str] = (DEFAULT_TOKEN,), *, portal_id: int = 24681357) -> None:
        self._lock = threading.RLock()
        self.portal_id = portal_id
        self._tokens: dict[str, dt.datetime | None] = {t: None for t in tokens}  # token -> expired at
        self._types: dict[str, ObjectType] = {}
        self._aliases: dict[str, str] = {}
        self._next_id = 10000000001
        self._faults = Faults()
        self._rate = RollingRateLimit()
        self._log: list[LoggedRequest] = []
        # A deal's stage must belong to the deal's pipeline (after the update).
        self.strict_stage_pipeline = True
        self.named: dict[str, str] = {}  # names given by seed_default_portal -> record ids
        # Scopes a token lacks (key None: every token); every other scope is granted.
        self._revoked: dict[str | None, set[str]] = {}
        self.associations = AssociationStore()  # between records, both directions (``simulators.hubspot.notes``)

    def app(self) -> Starlette:
        """This state's ASGI app (``create_app(self)``)."""
        from simulators.hubspot.app import (
            create_app,  # here: the app is built on the state, not the reverse
        )

        return create_app(self)

    # ---------------------------------------------------------------- tokens

    def add_token(self, token: str) -> None:
        with self._lock:
            self._tokens[token] = None

    def expire_token(self, token: str, at: dt.datetime | None = None) -> None:
        """The token now answers 401 EXPIRED_AUTHENTICATION."""
        with self._lock:
            self._tokens[token] = at or now()

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
            scopes = [scope_name(name, a) for a in wanted]
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
            obj = ObjectType(
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
            for prop, ptype, field_type, label in _BUILTIN_PROPERTIES:
                self.add_property(name, prop, ptype, field_type, label=label, read_only_value=True,
                                  read_only_definition=True, group_name=f"{singular.lower()}information")

    def object_types(self) -> list[str]:
        with self._lock:
            return list(self._types)

    def _type(self, object_type: str) -> ObjectType | None:
        name = self._aliases.get(object_type.lower())
        return self._types.get(name) if name else None

    def _require_type(self, object_type: str) -> ObjectType:
        obj = self._type(object_type)
        if obj is None:
            raise KeyError(f"unknown object type {object_type!r}")
        return obj

    def add_property(
        self, object_type: str, name: str, type: str, field_type: str, *, label: str | None = None,
        options: Sequence[Option] = (), calculated: bool = False, read_only_value: bool = False,
        read_only_definition: bool | None = None, external_options: bool = False, hidden: bool = False,
        has_unique_value: bool = False, form_field: bool = False, group_name: str | None = None,
        description: str = "", hubspot_defined: bool = True, referenced_object_type: str | None = None,
    ) -> dict[str, Any]:
        """Define (or redefine) a property; returns its JSON shape.

        ``options`` items are ``{"label", "value", "hidden"?}`` dicts,
        ``(value, label)`` pairs or plain values (label = value).
        """
        if type not in PROPERTY_TYPES:
            raise ValueError(f"unknown property type {type!r}")
        with self._lock:
            obj = self._require_type(object_type)
            prop = property_json(
                obj, name, type, field_type, iso(now()), label=label, options=options, calculated=calculated,
                read_only_value=read_only_value, read_only_definition=read_only_definition,
                external_options=external_options, hidden=hidden, has_unique_value=has_unique_value,
                form_field=form_field, group_name=group_name, description=description,
                hubspot_defined=hubspot_defined, referenced_object_type=referenced_object_type)
            obj.properties[name] = prop
            return copy.deepcopy(prop)

    def remove_property(self, object_type: str, name: str) -> None:
        with self._lock:
            self._require_type(object_type).properties.pop(name, None)

    def get_property(self, object_type: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            prop = self._require_type(object_type).properties.get(name)
            return copy.deepcopy(prop) if prop else None

    def add_pipeline(self, object_type: str, pipeline_id: str, label: str, stages: Sequence[Stage], *,
                     archived: bool = False) -> dict[str, Any]:
        """Add a pipeline; ``stages`` are ``(id, label[, metadata])`` or dicts."""
        with self._lock:
            obj = self._require_type(object_type)
            if obj.pipelines is None:
                raise ValueError(f"{obj.name} has no pipelines")
            pipeline = pipeline_json(pipeline_id, label, stages, display_order=len(obj.pipelines), archived=archived,
                                     stamp=iso(now()))
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
            created = now()
            values: dict[str, str | None] = {}
            for key, value in (properties or {}).items():
                values[key] = None if value is None else stringify(value)
            values["hs_object_id"] = rid
            values["createdate"] = iso(created)
            values["hs_lastmodifieddate"] = iso(created)
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
                record["properties"][key] = None if value is None else stringify(value)
            record["updatedAt"] = now()
            record["properties"]["hs_lastmodifieddate"] = iso(record["updatedAt"])

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
            self._rate.configure(max_requests, interval_s, retry_after)

    def fail_next(self, status: int, body: Any = None, times: int = 1, *, headers: Mapping[str, str] | None = None,
                  path_contains: str | None = None, after: int = 0) -> None:
        """Answer the next ``times`` matching requests with ``status`` and ``body``.

        ``after``: let that many matching requests through first (a failure in
        the middle of a split batch). Faults are served before authentication
        (like a load balancer's 502).
        """
        if body is None:
            body = errors.fault(status)
        with self._lock:
            self._faults.add(Fault(status, body, dict(headers or {}), times, path_contains, after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def hold_answers(self, path_contains: str, seconds: float, times: int = 1) -> None:
        """Apply the next ``times`` matching requests, then wait ``seconds`` before
        answering: the CRM has done the work but the caller does not know yet (a
        worker killed during that wait must not write the values twice)."""
        with self._lock:
            self._faults.hold(path_contains, seconds, times)

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

    # ---------------------------------------------------------------- request plumbing (used by the app)

    def _log_request(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            return self._faults.take(path)

    def _take_hold(self, path: str) -> float:
        with self._lock:
            return self._faults.take_hold(path)

    def _authenticate(self, header: str | None) -> tuple[str | None, Answer | None]:
        token = None
        if header and header[:7].lower() == "bearer ":
            token = header[7:].strip()
        with self._lock:
            if not token or token not in self._tokens:
                return None, errors.invalid_authentication()
            expired = self._tokens[token]
            if expired is not None and expired <= now():
                return None, errors.expired_authentication(expired, now())
        return token, None

    def _scope_check(self, token: str, method: str, path: str) -> Answer | None:
        """The 403 MISSING_SCOPES answer when ``token`` lacks the scope of this call, else None."""
        with self._lock:
            revoked = self._revoked.get(None, set()) | self._revoked.get(token, set())
            if not revoked:
                return None
            needed = needed_access(method, path)
            obj = self._type(needed[1]) if needed else None
            if obj is None:
                return None  # unknown routes and object types are answered as usual
            scope = scope_name(obj.name, needed[0])
            return errors.missing_scopes(scope) if scope in revoked else None

    def _rate_check(self, token: str) -> tuple[bool, dict[str, str]]:
        """(allowed, headers) for one request of ``token``."""
        with self._lock:
            return self._rate.check(token)

    # ---------------------------------------------------------------- API operations (used by the app)

    def _on_type(self, object_type: str, operation: Callable[..., Answer], *args: Any) -> Answer:
        """Run one API operation on an object type, under the lock; 400 for an unknown type."""
        with self._lock:
            obj = self._type(object_type)
            if obj is None:
                return errors.unknown_type(object_type)
            return operation(self, obj, *args)

    def api_properties(self, object_type: str, name: str | None = None) -> Answer:
        return self._on_type(object_type, api.properties, name)

    def api_pipelines(self, object_type: str) -> Answer:
        return self._on_type(object_type, api.pipelines)

    def api_get(self, object_type: str, record_id: str, properties: Sequence[str]) -> Answer:
        return self._on_type(object_type, api.get_one, record_id, properties)

    def api_batch_read(self, object_type: str, body: Any) -> Answer:
        return self._on_type(object_type, api.batch_read, body, now())

    def api_batch_update(self, object_type: str, body: Any) -> Answer:
        return self._on_type(object_type, api.batch_update, body, now())

    def api_update_one(self, object_type: str, record_id: str, body: Any) -> Answer:
        return self._on_type(object_type, api.update_one, record_id, body)
