"""``SalesforceConnector``: options, gate, describe, values and the connection check, in one class.

Its session, reads and writes live beside it (``session``, ``read``,
``write``) and are mixed in; the state they share is set up here.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Mapping

import requests
from simple_salesforce import Salesforce

from connectors.base import (
    NO_GATE,
    Connector,
    FieldError,
    FieldSchema,
    Gate,
    ObjectSchema,
    UnknownObject,
    iso_temporal,
    json_number,
    models_for,
)
from connectors.salesforce.ids import salesforce_id18
from connectors.salesforce.notes import NotesMixin
from connectors.salesforce.options import _parse_options
from connectors.salesforce.read import ReadMixin
from connectors.salesforce.schema import object_fields
from connectors.salesforce.session import _Rejected, _TimedSession
from connectors.salesforce.write import BATCH_SIZE, WriteMixin

DEFAULT_TIMEOUT_S = 30.0

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SalesforceConnector(ReadMixin, WriteMixin, NotesMixin, Connector):
    """Salesforce over REST with simple-salesforce. See the ``connectors.salesforce`` docstring."""

    name = "salesforce"
    option_names = frozenset({
        "instance_url", "access_token", "username", "password", "security_token", "domain", "consumer_key",
        "private_key_file", "api_version", "timeout_s",
    })
    default_models = models_for({"opportunity": "Opportunity", "account": "Account", "contacts": "Contact",
                                 "lead": "Lead", "engagement": "Event", "users": "User"})
    write_batch_size = BATCH_SIZE  # one sObject Collections call (the base's 100 would halve throughput)
    # No request rate (Salesforce limits requests per day, not per second); 10 requests in flight,
    # well under the org's 25 long-running (over 20 s) requests shared by every integration; and
    # at most 90% of the rolling 24 h API allocation, leaving the rest to people and other tools.
    default_rate_limit = MappingProxyType({"concurrency": 10, "daily_share": 0.9})
    # ContentNote linked with ContentDocumentLink, one Composite request per note (``notes``).
    notes_supported = True
    note_object = "ContentNote"
    note_targets = MappingProxyType({"opportunity": "Opportunity", "account": "Account", "contacts": "Contact",
                                     "lead": "Lead"})

    def __init__(self, options: Mapping[str, Any], *, session: requests.Session | None = None,
                 timeout: float | None = None) -> None:
        super().__init__(options)
        self._auth = _parse_options(options)
        self.api_version = self._auth.api_version
        configured = options.get("timeout_s")
        self._timeout = float(timeout if timeout is not None else configured or DEFAULT_TIMEOUT_S)
        self._own_session = session is None
        self._raw_session = session
        self._http: _TimedSession | None = None
        self._sf: Salesforce | None = None
        self._schemas: dict[str, ObjectSchema] = {}
        self._key_prefixes: dict[str, str | None] = {}
        self._lock = threading.RLock()
        self._gate: Gate = NO_GATE

    @property  # type: ignore[override]
    def gate(self) -> Gate:
        return self._gate

    @gate.setter
    def gate(self, value: Gate) -> None:
        # The session wrapper holds the gate itself (no reference back to the connector).
        self._gate = value
        if self._http is not None:
            self._http.gate = value

    # -- schema -------------------------------------------------------------------
    def object_schema(self, object_name: str) -> ObjectSchema:
        with self._lock:
            cached = self._schemas.get(object_name)
        if cached is not None:
            return cached
        if not _NAME_RE.match(object_name or ""):
            raise UnknownObject(f"salesforce has no object {object_name!r}")
        try:
            described = self._call(f"describe {object_name}",
                                   lambda sf: sf.restful(f"sobjects/{object_name}/describe/", timeout=self._timeout),
                                   missing=UnknownObject)
        except _Rejected as exc:
            raise UnknownObject(f"salesforce describe {object_name}: {exc}") from None
        except UnknownObject:
            raise UnknownObject(f"salesforce has no object {object_name!r}") from None
        fields = object_fields(described or {})
        schema = ObjectSchema(name=str((described or {}).get("name") or object_name), fields=MappingProxyType(fields))
        with self._lock:
            self._schemas[object_name] = schema
            self._key_prefixes[object_name] = (described or {}).get("keyPrefix")
        return schema

    def _check_id(self, object_name: str, record_id: str) -> tuple[str | None, FieldError | None]:
        key = salesforce_id18(record_id)
        if key is None:
            return None, FieldError("failed", f"MALFORMED_ID: malformed id {record_id!r}")
        prefix = self._key_prefixes.get(object_name)
        if prefix and not key.startswith(prefix):
            return None, FieldError(
                "failed", f"MALFORMED_ID: {object_name} ID: id value of incorrect type: {record_id}")
        return key, None

    # -- values -------------------------------------------------------------------
    def canonical_id(self, object_name: str, record_id: str) -> str:
        """The 18-character id (the case-safe form Salesforce returns); malformed ids as given."""
        return salesforce_id18(record_id.strip()) or record_id

    def encode(self, field: FieldSchema, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, Decimal):
            return json_number(value)
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, dt.date):  # datetimes too
            return iso_temporal(field, value)
        if isinstance(value, (tuple, list, frozenset, set)):
            items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
            return ";".join(str(item) for item in items)
        return value if isinstance(value, str) else str(value)

    # -- misc ---------------------------------------------------------------------
    def check(self) -> str:
        limits = self._call("limits", lambda sf: sf.limits(timeout=self._timeout))
        client = self._client()
        usage = client.api_usage.get("api-usage") if client.api_usage else None
        if usage is None and isinstance(limits, Mapping) and "DailyApiRequests" in limits:
            daily = limits["DailyApiRequests"]
            used = f"{int(daily['Max']) - int(daily['Remaining'])}/{daily['Max']}"
        else:
            used = f"{usage[0]}/{usage[1]}" if usage else "unknown"
        return f"salesforce https://{client.sf_instance} API v{self.api_version} (api-usage {used})"

    @property
    def instance_url(self) -> str | None:
        """The instance the current session talks to (None before the first call)."""
        return f"https://{self._sf.sf_instance}" if self._sf is not None else None

    def close(self) -> None:
        with self._lock:
            self._sf = None
            if self._own_session and self._raw_session is not None:
                self._raw_session.close()
                self._raw_session = None
                self._http = None


__all__ = ["DEFAULT_TIMEOUT_S", "SalesforceConnector"]
