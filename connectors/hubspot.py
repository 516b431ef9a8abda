"""HubSpot CRM v3 connector, on the official ``hubspot-api-client``.

Options (a connection's keys from the config file):

``access_token``
    A private app token (or an OAuth access token). Required. It cannot be
    renewed here: a 401 is an ``AuthError``. A 403 (``MISSING_SCOPES`` for one
    object type, say) is a ``PermanentError`` of that call: the token works, it
    just may not do that.
``api_url``
    Default ``https://api.hubapi.com``; the simulators use a loopback URL.
``timeout_s``
    Read timeout of one call, seconds (default 30; connect timeout 10).
``ca_bundle``
    A PEM file of CAs to trust (default: ``REQUESTS_CA_BUNDLE`` when set, else
    the system's).

Wire facts this module relies on (see ``simulators.hubspot``):

* Property values travel as strings; an empty string clears a property.
* ``dealstage``/``pipeline`` (and ``hs_pipeline``/``hs_pipeline_stage`` of
  leads and tickets) keep their options in the pipelines API: a stage ``id`` is
  the option value, its ``label`` the label. A stage belongs to one pipeline,
  and labels repeat across pipelines (every deal pipeline HubSpot creates has a
  "Closed Won" and a "Closed Lost", with numeric ids outside the default one),
  so the stage property is published with ``controller`` = the pipeline
  property and ``dependent_options`` per pipeline id; ``options`` is the union.
* Every option a property lists is a valid value, ``hidden`` ones included:
  ``hidden`` is a display flag (the client's model: "Hidden options will not
  be displayed in HubSpot"; it keeps them off pickers and forms), and records
  may hold, and the API may set, a hidden option. An option an admin removed
  is no longer listed at all (there is no "archived" option). So every listed
  option is ``active``, and HubSpot stays the judge: a value it refuses after
  all comes back as ``INVALID_OPTION``, pinned on its record like any other.
* ``batch/update`` rejects the whole batch (400 ``VALIDATION_ERROR``) for one
  bad property value without saying which input it was, so a rejected batch is
  bisected; for a single input, the rejected properties (named in the error)
  are dropped with their outcome and the rest re-sent.
* Missing records are reported per object (207 ``OBJECT_NOT_FOUND``).

Retries are not done here (the client's urllib3 retries are off too): the
pipeline retries ``TransientError``. A 429 (``RATE_LIMIT``, policy
``TEN_SECONDLY_ROLLING``) is one, with ``retry_after`` from ``Retry-After``,
else the window of ``X-HubSpot-RateLimit-Interval-Milliseconds``.

Limits: every request goes through ``self.gate.request()`` (shared rate and
concurrency limits, ``worker.limits.rate``). The choke point is the urllib3
pool manager inside each API object's ``ApiClient.rest_client``, which every
generated API method ends in: ``_api`` wraps it in ``_GatedPoolManager`` when
it builds the API object.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import urllib3
from hubspot import HubSpot

from connectors.base import (
    INTERRUPTS,
    NO_GATE,
    AuthError,
    ConfigError,
    Connector,
    ConnectorError,
    FieldError,
    FieldSchema,
    FieldType,
    Gate,
    ObjectSchema,
    Option,
    PermanentError,
    RecordState,
    RecordWrite,
    RecordWriteResult,
    TransientError,
    UnknownObject,
    iso_datetime,
    models_for,
)

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.hubapi.com"
MAX_BATCH = 100
MAX_STRING_LENGTH = 65536
CONNECT_TIMEOUT_S = 10.0
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRY_AFTER_S = 1.0

_NUMERIC_ID = re.compile(r"^\d+$")

# Pipeline-backed enumerations: property name -> which half of the pipelines API holds its options.
PIPELINE_PROPERTIES = {"pipeline": "pipeline", "hs_pipeline": "pipeline", "dealstage": "stage",
                       "hs_pipeline_stage": "stage"}
# A stage property -> the pipeline property of the same object, whose value picks the allowed stages.
STAGE_CONTROLLERS = {"dealstage": "pipeline", "hs_pipeline_stage": "hs_pipeline"}

# HubSpot validation codes -> our outcome. Anything not listed is ``invalid_value``.
ERROR_OUTCOMES = {
    "PROPERTY_DOESNT_EXIST": "unknown_field",
    "READ_ONLY_VALUE": "not_writable",
    "READ_ONLY_PROPERTY": "not_writable",
    "CALCULATED_PROPERTY": "not_writable",
}


class HubSpotConfigError(ConfigError, ValueError):
    """The connection's options are missing or malformed (names the key, never a value)."""


class _HTTPFailure(Exception):
    """A non-2xx answer, already stripped of anything secret."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body if isinstance(body, dict) else {}
        self.raw = body
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    @property
    def category(self) -> str:
        return str(self.body.get("category") or self.body.get("errorType") or "")

    @property
    def required_scopes(self) -> list[str]:
        """The scopes a 403 MISSING_SCOPES names (``errors[].context.requiredGranularScopes``)."""
        found: list[str] = []
        for error in self.body.get("errors") or []:
            context = (error.get("context") or {}) if isinstance(error, dict) else {}
            for key in ("requiredGranularScopes", "requiredScopes"):
                for scope in context.get(key) or []:
                    if str(scope) not in found:
                        found.append(str(scope))
        return found

    @property
    def message(self) -> str:
        if self.body.get("message"):
            return str(self.body["message"])
        return "" if self.raw is None else str(self.raw)[:300]


class _GateRef:
    """The connector's current gate, shared with its pool wrappers (which never point back at the connector)."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate


class _GatedPoolManager:
    """A urllib3 pool manager whose every request passes the connection's gate."""

    def __init__(self, pool: Any, ref: _GateRef) -> None:
        self._pool = pool
        self._ref = ref

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        with self._ref.gate.request():  # may raise TransientError: then nothing was sent
            response = self._pool.request(method, url, *args, **kwargs)
            if not kwargs.get("preload_content", True):
                # The body is read here, not later by the caller, so a concurrency slot
                # covers the whole exchange; urllib3 keeps it for ``.data``.
                response.data  # noqa: B018
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class HubSpotConnector(Connector):
    name = "hubspot"
    option_names = frozenset({"access_token", "api_url", "timeout_s", "ca_bundle"})
    write_batch_size = MAX_BATCH  # batch/update takes 100 inputs
    # The lowest burst limit of a private app (100 per 10 s; higher tiers allow more): a default
    # that never earns a 429 on any account. One app token shared by several connections, or by
    # other integrations, needs a lower ``[connections.rate_limit]``.
    default_rate_limit = MappingProxyType({"requests": 100, "per_s": 10.0})
    # HubSpot owners are not CRM objects this service can update: models of the users slot are unsupported.
    default_models = models_for({"opportunity": "deals", "account": "companies", "contacts": "contacts",
                                 "lead": "leads", "engagement": "meetings", "users": None})

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        token = self.options.get("access_token")
        if token is None or (isinstance(token, str) and not token.strip()):
            raise HubSpotConfigError("hubspot option 'access_token' is required (a private app or OAuth access token)")
        if not isinstance(token, str):
            raise HubSpotConfigError("hubspot option 'access_token' must be a string")
        self._token = token.strip()
        api_url = self.options.get("api_url") or DEFAULT_API_URL
        if not isinstance(api_url, str) or not re.match(r"^https?://[^/\s]+", api_url):
            raise HubSpotConfigError("hubspot option 'api_url' must be an http(s):// URL")
        self.api_url = api_url.rstrip("/")
        try:
            read_timeout = float(self.options.get("timeout_s", DEFAULT_TIMEOUT_S))
            if read_timeout <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise HubSpotConfigError("hubspot option 'timeout_s' must be a positive number of seconds") from None
        self._timeout = (min(CONNECT_TIMEOUT_S, read_timeout), read_timeout)
        self._ca_bundle = self.options.get("ca_bundle") or os.environ.get("REQUESTS_CA_BUNDLE") or None
        self._client: HubSpot | None = None
        self._apis: dict[str, Any] = {}
        self._schemas: dict[str, ObjectSchema] = {}
        self._lock = threading.RLock()
        self._gate_ref = _GateRef(NO_GATE)

    @property  # type: ignore[override]
    def gate(self) -> Gate:
        return self._gate_ref.gate

    @gate.setter
    def gate(self, value: Gate) -> None:
        self._gate_ref.gate = value

    # ------------------------------------------------------------------ plumbing

    def _hubspot(self) -> HubSpot:
        if self._client is None:
            config: dict[str, Any] = {"host": self.api_url}
            if self._ca_bundle:
                config["ssl_ca_cert"] = self._ca_bundle
            # retry=False: urllib3 retries nothing (not even connection errors); the pipeline retries.
            self._client = HubSpot(access_token=self._token, retry=False, **config)
        return self._client

    def _api(self, which: str) -> Any:
        """One API object per kind, reused (each owns a connection pool)."""
        with self._lock:
            api = self._apis.get(which)
            if api is None:
                crm = self._hubspot().crm
                api = {
                    "properties": lambda: crm.properties.core_api,
                    "pipelines": lambda: crm.pipelines.pipelines_api,
                    "batch": lambda: crm.objects.batch_api,
                    "basic": lambda: crm.objects.basic_api,
                }[which]()
                rest = api.api_client.rest_client
                rest.pool_manager = _GatedPoolManager(rest.pool_manager, self._gate_ref)
                self._apis[which] = api
            return api

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> tuple[int, Any]:
        """Run one client call; returns (status, parsed JSON) for 2xx, raises otherwise.

        Transport errors become ``TransientError``; HTTP errors become
        ``_HTTPFailure`` for the caller to classify (see ``_raise``).
        """
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self._timeout)
        except ConnectorError:  # the gate refused to send (TransientError): already what we raise
            raise
        except urllib3.exceptions.HTTPError as exc:  # timeouts, refused connections, resets
            raise TransientError(self._clean(f"hubspot {what}: {type(exc).__name__}: {_short(exc)}"),
                                 retry_after=None) from None
        except OSError as exc:
            raise TransientError(self._clean(f"hubspot {what}: {type(exc).__name__}: {_short(exc)}")) from None
        except INTERRUPTS:
            raise
        except Exception as exc:  # the client's ApiException family (has .status, .body, .headers)
            status = getattr(exc, "status", None)
            if status is None:
                raise ConnectorError(self._clean(f"hubspot {what}: {type(exc).__name__}")) from None
            if not status:  # status 0: the client wraps SSL errors this way
                raise TransientError(self._clean(f"hubspot {what}: TLS error: {_short(getattr(exc, 'reason', ''))}")) from None
            body = getattr(exc, "body", None)
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = body
            headers = dict(getattr(exc, "headers", None) or {})
            raise _HTTPFailure(int(status), parsed, headers) from None
        data = response.data
        try:
            response.release_conn()
        except Exception:  # pragma: no cover - best effort
            pass
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            raise TransientError(f"hubspot {what}: {response.status} answer is not JSON") from None
        return response.status, parsed

    def _raise(self, what: str, failure: _HTTPFailure) -> None:
        """Turn an HTTP failure into the ConnectorError the pipeline expects."""
        message = self._clean(f"hubspot {what}: {failure.status} {failure.category or 'error'}: {failure.message}")
        if failure.status == 401:
            raise AuthError(message) from None
        if failure.status == 403:
            # Not the credentials: this token lacks a scope (MISSING_SCOPES) or the
            # portal forbids this call, for this object type only. Renewing or
            # re-authenticating would not help and other object types still work,
            # so the fields fail with HubSpot's reason instead of the run stopping
            # as an expired session would.
            scopes = failure.required_scopes
            if scopes:
                message += self._clean(f" (requires {', '.join(scopes)})")
            raise PermanentError(message) from None
        if failure.status == 429:
            raise TransientError(message, retry_after=_retry_after(failure.headers)) from None
        if failure.status >= 500 or failure.status in (408, 423):
            retry = failure.headers.get("retry-after")
            raise TransientError(message, retry_after=_seconds(retry)) from None
        raise PermanentError(message) from None

    # ------------------------------------------------------------------ schema

    def object_schema(self, object_name: str) -> ObjectSchema:
        with self._lock:
            cached = self._schemas.get(object_name)
        if cached is not None:
            return cached
        what = f"properties of {object_name}"
        try:
            _, body = self._call(what, self._api("properties").get_all, object_name)
        except _HTTPFailure as failure:
            if failure.status == 404 or "infer object type" in failure.message.lower():
                raise UnknownObject(self._clean(f"hubspot: no object type {object_name!r} ({failure.message})")) from None
            self._raise(what, failure)
        properties = (body or {}).get("results") or []
        pipelines: list[dict[str, Any]] | None = None
        if any(_pipeline_kind(p) for p in properties):
            pipelines = self._pipelines(object_name)
        names = {str(p.get("name")) for p in properties}
        fields = {}
        for prop in properties:
            schema = _field_schema(prop, pipelines, names)
            fields[schema.name] = schema
        schema = ObjectSchema(name=object_name, fields=fields)
        with self._lock:
            self._schemas[object_name] = schema
        return schema

    def _pipelines(self, object_name: str) -> list[dict[str, Any]] | None:
        what = f"pipelines of {object_name}"
        try:
            _, body = self._call(what, self._api("pipelines").get_all, object_name)
        except _HTTPFailure as failure:
            if failure.status in (400, 404):
                log.warning("hubspot: %s unavailable (%s); pipeline properties get no options", what, failure.message)
                return None
            self._raise(what, failure)
        return (body or {}).get("results") or []

    # ------------------------------------------------------------------ read

    def read(self, object_name: str, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, RecordState]:
        from hubspot.crm.objects import (
            BatchReadInputSimplePublicObjectId,
            SimplePublicObjectId,
        )

        out: dict[str, RecordState] = {}
        wanted: list[str] = []
        seen: set[str] = set()
        for rid in record_ids:
            key = str(rid)
            if key in seen:
                continue
            seen.add(key)
            if not _NUMERIC_ID.match(key):
                out[key] = RecordState(key, None, FieldError("failed", f"malformed HubSpot record id {key!r} (ids are numeric)"))
            else:
                wanted.append(key)
        properties = list(dict.fromkeys(str(f) for f in fields))
        for start in range(0, len(wanted), MAX_BATCH):
            chunk = wanted[start:start + MAX_BATCH]
            request = BatchReadInputSimplePublicObjectId(
                properties=properties, properties_with_history=[],
                inputs=[SimplePublicObjectId(id=rid) for rid in chunk],
            )
            what = f"batch read of {len(chunk)} {object_name}"
            try:
                _, body = self._call(what, self._api("batch").read, object_name, request)
            except _HTTPFailure as failure:
                if failure.status == 404 or "infer object type" in failure.message.lower():
                    raise UnknownObject(self._clean(f"hubspot: no object type {object_name!r} ({failure.message})")) from None
                self._raise(what, failure)
            body = body or {}
            for result in body.get("results") or []:
                rid = str(result.get("id"))
                if rid in chunk:
                    values = dict(result.get("properties") or {})
                    for name in properties:
                        values.setdefault(name, None)
                    out[rid] = RecordState(rid, values)
            for error in body.get("errors") or []:
                reason = f"{error.get('category') or 'ERROR'}: {error.get('message') or 'not returned'}"
                ids = ((error.get("context") or {}).get("ids")) or []
                for rid in ids:
                    rid = str(rid)
                    if rid in chunk and rid not in out:
                        out[rid] = RecordState(rid, None, FieldError("failed", self._clean(reason)))
            for rid in chunk:
                if rid not in out:
                    out[rid] = RecordState(rid, None, FieldError("failed", "HubSpot returned neither the record nor an error"))
        return {str(rid): out[str(rid)] for rid in record_ids}

    # ------------------------------------------------------------------ write

    def write(self, object_name: str, updates: Sequence[RecordWrite]) -> list[RecordWriteResult]:
        """One result per update, in order; see the module docstring for how rejections are isolated.

        A call may take several requests (batches of 100, bisection after a
        400, a re-send without rejected properties). When a later one fails
        transiently, the ``TransientError`` carries in ``partial`` the results
        of the records already settled (written, or refused by HubSpot or by
        us), so a retry re-sends only the others. The records of the failed
        request itself are not in ``partial``: after a 5xx or a timeout nobody
        knows whether HubSpot applied them.
        """
        settled: dict[int, RecordWriteResult] = {}
        pending: list[tuple[int, str, dict[str, str]]] = []
        for index, update in enumerate(updates):
            rid = str(update.record_id)
            values = {str(k): _as_wire(v) for k, v in update.values.items()}
            if not _NUMERIC_ID.match(rid):
                reason = f"malformed HubSpot record id {rid!r} (ids are numeric)"
                settled[index] = RecordWriteResult(rid, errors={k: FieldError("failed", reason) for k in values})
            elif not values:
                settled[index] = RecordWriteResult(rid)
            else:
                pending.append((index, rid, values))
        try:
            for chunk in _chunks(pending):
                self._write_batch(object_name, chunk, settled, {})
        except ConnectorError as exc:  # transient, or a credential / permission refusal part-way
            exc.partial = [settled[index] for index in sorted(settled)]
            raise exc from None
        return [settled[index] for index in sorted(settled)]

    def _send(self, object_name: str, items: Sequence[tuple[int, str, dict[str, str]]]) -> tuple[int, dict[str, Any]]:
        from hubspot.crm.objects import (
            BatchInputSimplePublicObjectBatchInput,
            SimplePublicObjectBatchInput,
        )

        request = BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=rid, properties=values) for _, rid, values in items]
        )
        status, body = self._call(f"batch update of {len(items)} {object_name}", self._api("batch").update,
                                  object_name, request)
        return status, body or {}

    def _write_batch(self, object_name: str, items: Sequence[tuple[int, str, dict[str, str]]],
                     settled: dict[int, RecordWriteResult], dropped: dict[int, dict[str, FieldError]]) -> None:
        """Send one batch (<=100 distinct ids), isolating rejected inputs and properties.

        A 400 names the rejected properties (and, in its message, their
        values) but not the inputs: properties that can be pinned on inputs
        are dropped with their outcome and the rest re-sent; otherwise the
        batch is bisected. Every step removes a property or halves a batch,
        so this ends.

        Results go into ``settled`` (by input index) as soon as a request
        decides them, so that a transient failure of a later request loses
        none of them; ``dropped`` holds the errors of properties already
        dropped from a record whose other properties are still in flight.
        """
        what = f"batch update of {len(items)} {object_name}"
        try:
            _, body = self._send(object_name, items)
        except _HTTPFailure as failure:
            if "infer object type" in failure.message.lower():
                raise UnknownObject(self._clean(f"hubspot: no object type {object_name!r} ({failure.message})")) from None
            if failure.status not in (400, 404, 409, 422):
                self._raise(what, failure)  # auth, scopes, rate limit, 5xx: the whole call fails
            drops = self._pin_rejections(items, failure) if failure.status == 400 else {}
            if drops:
                self._drop_and_resend(object_name, items, drops, settled, dropped)
                return
            if len(items) > 1:
                middle = len(items) // 2
                self._write_batch(object_name, items[:middle], settled, dropped)
                self._write_batch(object_name, items[middle:], settled, dropped)
                return
            index, rid, values = items[0]
            reason = self._clean(f"{failure.status} {failure.category or 'error'}: {failure.message}")
            self._settle(settled, dropped, index,
                         RecordWriteResult(rid, errors={name: FieldError("failed", reason) for name in values}))
            return
        for index, result in self._interpret(items, body).items():
            self._settle(settled, dropped, index, result)

    @staticmethod
    def _settle(settled: dict[int, RecordWriteResult], dropped: Mapping[int, Mapping[str, FieldError]],
                index: int, result: RecordWriteResult) -> None:
        """Record the final result of input ``index``, with the errors of its dropped properties."""
        errors = {**dropped.get(index, {}), **result.errors}
        settled[index] = RecordWriteResult(result.record_id, written=result.written, errors=errors)

    def _pin_rejections(self, items: Sequence[tuple[int, str, dict[str, str]]],
                        failure: _HTTPFailure) -> dict[int, dict[str, FieldError]]:
        """index -> {property: FieldError} for the rejections that can be pinned on inputs.

        Empty when any rejection cannot be pinned (then the caller bisects).
        """
        rejections = _rejections(failure.body, failure.message)
        if not rejections:
            return {}
        drops: dict[int, dict[str, FieldError]] = {}
        for name, code, message, value in rejections:
            error = FieldError(ERROR_OUTCOMES.get(code, "invalid_value"), self._clean(f"{code}: {message}"))
            if len(items) == 1:
                targets = [items[0]] if name in items[0][2] else []
            elif code in ERROR_OUTCOMES:  # unknown / read-only: whoever sends the property
                targets = [item for item in items if name in item[2]]
            elif value is not None:
                targets = [item for item in items if item[2].get(name) == value]
                if name in PIPELINE_PROPERTIES and len(targets) != 1:
                    return {}  # a stage may be valid on one record's pipeline and not another's
            else:
                return {}
            if not targets:
                return {}
            for index, _, _ in targets:
                drops.setdefault(index, {})[name] = error
        return drops

    def _drop_and_resend(self, object_name: str, items: Sequence[tuple[int, str, dict[str, str]]],
                         drops: Mapping[int, Mapping[str, FieldError]], settled: dict[int, RecordWriteResult],
                         dropped: dict[int, dict[str, FieldError]]) -> None:
        again = []
        for index, rid, values in items:
            if drops.get(index):
                dropped.setdefault(index, {}).update(drops[index])
            remaining = {k: v for k, v in values.items() if k not in dropped.get(index, {})}
            if remaining:
                again.append((index, rid, remaining))
            else:  # every property was rejected: settled without another request
                self._settle(settled, dropped, index, RecordWriteResult(rid))
        if again:
            self._write_batch(object_name, again, settled, dropped)

    def _interpret(self, items: Sequence[tuple[int, str, dict[str, str]]], body: Mapping[str, Any]) -> dict[int, RecordWriteResult]:
        done = {str(r.get("id")) for r in body.get("results") or []}
        failed: dict[str, str] = {}
        for error in body.get("errors") or []:
            reason = self._clean(f"{error.get('category') or 'ERROR'}: {error.get('message') or 'not updated'}")
            ids = (error.get("context") or {}).get("ids") or []
            for rid in ids:
                failed[str(rid)] = reason
        out = {}
        for index, rid, values in items:
            if rid in done and rid not in failed:
                out[index] = RecordWriteResult(rid, written=frozenset(values))
            else:
                reason = failed.get(rid, "HubSpot did not confirm the update")
                out[index] = RecordWriteResult(rid, errors={name: FieldError("failed", reason) for name in values})
        return out

    # ------------------------------------------------------------------ values

    def encode(self, field: FieldSchema, value: Any) -> Any:
        if value is None:
            return ""  # HubSpot clears a property set to an empty string
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"{value} is not a number HubSpot can store")
            text = format(value, "f")
            return text
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return format(Decimal(repr(value)), "f")
        if isinstance(value, dt.datetime):
            if field.type == FieldType.DATE:
                aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
                return aware.astimezone(dt.UTC).date().isoformat()
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return iso_datetime(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, (tuple, list, set, frozenset)):
            return ";".join(str(v) for v in value)
        if isinstance(value, str):
            return value
        raise TypeError(f"hubspot: cannot encode {type(value).__name__} for {field.name}")

    # ------------------------------------------------------------------ misc

    def check(self) -> str:
        what = "properties of deals"
        try:
            _, body = self._call(what, self._api("properties").get_all, "deals")
        except _HTTPFailure as failure:
            if failure.status == 403:
                # HubSpot authenticated the token and refused this one call: the
                # credentials are good; the object checks then show what is missing.
                scopes = ", ".join(failure.required_scopes) or failure.message
                return self._clean(f"hubspot {self.api_url} (token accepted; deals: 403 "
                                   f"{failure.category or 'forbidden'}: {scopes})")
            self._raise(what, failure)
        count = len((body or {}).get("results") or [])
        return f"hubspot {self.api_url} (deals: {count} properties)"

    def close(self) -> None:
        with self._lock:
            for api in self._apis.values():
                client = getattr(api, "api_client", None)
                try:
                    pool = getattr(getattr(client, "rest_client", None), "pool_manager", None)
                    if pool is not None:
                        pool.clear()
                    if client is not None:
                        client.close()
                except Exception:  # pragma: no cover - best effort
                    pass
            self._apis.clear()

    def __repr__(self) -> str:
        return f"HubSpotConnector(api_url={self.api_url!r})"


# ---------------------------------------------------------------------- helpers


def _short(exc: Any, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def _retry_after(headers: Mapping[str, str]) -> float:
    """How long to wait after a 429: Retry-After, else the rate-limit window, else 1 s."""
    explicit = _seconds(headers.get("retry-after"))
    if explicit is not None:
        return explicit
    interval = _seconds(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
    if interval:
        return interval / 1000.0
    return DEFAULT_RETRY_AFTER_S


def _as_wire(value: Any) -> str:
    """Values should already be encoded; tolerate canonical ones."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return iso_datetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return ";".join(str(v) for v in value)
    return str(value)


def _chunks(items: Sequence[tuple[int, str, dict[str, str]]]) -> list[list[tuple[int, str, dict[str, str]]]]:
    """Batches of at most 100 inputs with distinct ids (HubSpot rejects duplicates), in order."""
    batches: list[list[tuple[int, str, dict[str, str]]]] = []
    ids: list[set[str]] = []
    first_open = 0  # batches before this one are full
    for item in items:
        for number in range(first_open, len(batches)):
            if len(batches[number]) < MAX_BATCH and item[1] not in ids[number]:
                batches[number].append(item)
                ids[number].add(item[1])
                break
        else:
            batches.append([item])
            ids.append({item[1]})
        while first_open < len(batches) and len(batches[first_open]) >= MAX_BATCH:
            first_open += 1
    return batches


def _rejections(body: Mapping[str, Any], message: str) -> list[tuple[str, str, str, str | None]]:
    """(property, code, message, rejected value or None) from a VALIDATION_ERROR answer.

    Reads the JSON list embedded in ``message`` ("Property values were not
    valid: [...]", which carries ``propertyValue``) and ``errors[]`` with
    ``code`` and ``context.propertyName`` (which does not).
    """
    found: list[tuple[str, str, str, str | None]] = []
    marker = message.find("[")
    if "not valid" in message and marker >= 0:
        try:
            entries = json.loads(message[marker:])
        except ValueError:
            entries = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("name"):
                value = entry.get("propertyValue")
                found.append((str(entry["name"]), str(entry.get("error") or "INVALID_VALUE"),
                              str(entry.get("message") or ""), None if value is None else str(value)))
    named = {f[0] for f in found}
    for error in body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        names = (error.get("context") or {}).get("propertyName") or []
        if isinstance(names, str):
            names = [names]
        for name in names:
            if str(name) not in named:
                found.append((str(name), str(error.get("code") or "INVALID_VALUE"), str(error.get("message") or ""), None))
    return found


def _pipeline_kind(prop: Mapping[str, Any]) -> str | None:
    if prop.get("type") != "enumeration" or not prop.get("externalOptions") or prop.get("options"):
        return None
    return PIPELINE_PROPERTIES.get(str(prop.get("name")))


def _pipeline_options(kind: str, pipelines: list[dict[str, Any]]
                      ) -> tuple[tuple[Option, ...], dict[str, tuple[Option, ...]]]:
    """(options, options per pipeline id) of a pipeline or stage property.

    For ``pipeline`` the second item is empty. For ``stage`` the union is kept
    for records whose pipeline is unknown, but only the per-pipeline lists can
    tell "Closed Won" of one pipeline from "Closed Won" of another.
    """
    options: dict[str, Option] = {}
    per_pipeline: dict[str, tuple[Option, ...]] = {}
    for pipeline in sorted(pipelines, key=lambda p: p.get("displayOrder", 0)):
        pipeline_active = not pipeline.get("archived", False)
        pid = str(pipeline["id"])
        if kind == "pipeline":
            options[pid] = Option(pid, str(pipeline.get("label") or pid), pipeline_active)
            continue
        stages = []
        for stage in sorted(pipeline.get("stages") or [], key=lambda s: s.get("displayOrder", 0)):
            sid = str(stage["id"])
            # A stage of an archived pipeline cannot be set either.
            option = Option(sid, str(stage.get("label") or sid), pipeline_active and not stage.get("archived", False))
            stages.append(option)
            options.setdefault(sid, option)
        per_pipeline[pid] = tuple(stages)
    return tuple(options.values()), per_pipeline


def _field_schema(prop: Mapping[str, Any], pipelines: list[dict[str, Any]] | None,
                  names: frozenset[str] | set[str] = frozenset()) -> FieldSchema:
    """One property as a ``FieldSchema``; ``names`` are the object's property names (for controllers)."""
    name = str(prop["name"])
    ptype = str(prop.get("type") or "")
    field_type = str(prop.get("fieldType") or "")
    label = str(prop.get("label") or name)
    meta = prop.get("modificationMetadata") or {}
    writable, reason = True, None
    if prop.get("calculated"):
        writable, reason = False, "calculated property"
    elif meta.get("readOnlyValue"):
        writable, reason = False, "read-only property (modificationMetadata.readOnlyValue)"
    crm_type = f"{ptype}/{field_type}"
    common = dict(name=name, label=label, crm_type=crm_type)

    if ptype in ("string", "phone_number"):
        long_text = field_type in ("textarea", "html", "rich_text")
        return FieldSchema(type=FieldType.TEXT if long_text else FieldType.STRING, writable=writable,
                           not_writable_reason=reason, max_length=MAX_STRING_LENGTH, **common)
    if ptype == "number":
        return FieldSchema(type=FieldType.NUMBER, writable=writable, not_writable_reason=reason, **common)
    if ptype == "date":
        return FieldSchema(type=FieldType.DATE, writable=writable, not_writable_reason=reason, **common)
    if ptype == "datetime":
        return FieldSchema(type=FieldType.DATETIME, writable=writable, not_writable_reason=reason, **common)
    if ptype == "bool" or (ptype == "enumeration" and field_type == "booleancheckbox"):
        return FieldSchema(type=FieldType.BOOLEAN, writable=writable, not_writable_reason=reason, **common)
    if ptype == "enumeration":
        kind = _pipeline_kind(prop)
        controller: str | None = None
        dependent: dict[str, tuple[Option, ...]] = {}
        if kind is not None:
            options, dependent = _pipeline_options(kind, pipelines or [])
            restricted = True
            if kind == "stage" and STAGE_CONTROLLERS.get(name) in names:
                controller = STAGE_CONTROLLERS[name]
            else:
                dependent = {}
        elif prop.get("externalOptions") and not prop.get("options"):
            # Owners and other referenced objects: options we cannot list; HubSpot validates.
            options, restricted = (), False
        else:
            # Hidden options stay active: the API accepts them (see the module docstring).
            options = tuple(
                Option(str(o.get("value")), str(o.get("label") or o.get("value")))
                for o in sorted(prop.get("options") or [], key=lambda o: o.get("displayOrder", 0))
            )
            restricted = True
        kind_type = FieldType.MULTIPICKLIST if field_type == "checkbox" else FieldType.PICKLIST
        # A record always sits in a pipeline and a stage: clearing either is never intended.
        return FieldSchema(type=kind_type, writable=writable, not_writable_reason=reason, options=options,
                           restricted=restricted, controller=controller, dependent_options=dependent,
                           nillable=kind is None, **common)
    return FieldSchema(type=FieldType.OTHER, writable=False,
                       not_writable_reason=reason or f"HubSpot {ptype} properties are not written by this service",
                       **common)


__all__ = ["HubSpotConnector", "HubSpotConfigError", "DEFAULT_API_URL", "MAX_BATCH"]
