"""``HubSpotConnector``: options, gate, properties and pipelines, values and the connection check.

Its API plumbing, reads and writes live beside it (``api``, ``read``,
``write``) and are mixed in; the state they share is set up here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Mapping

from hubspot import HubSpot

from connectors.base import (
    NO_GATE,
    ConfigError,
    Connector,
    FieldSchema,
    Gate,
    ObjectSchema,
    UnknownObject,
    iso_temporal,
    models_for,
)
from connectors.hubspot.api import MAX_BATCH, _GateRef, _HTTPFailure
from connectors.hubspot.notes import NotesMixin
from connectors.hubspot.read import ReadMixin
from connectors.hubspot.schema import needs_pipelines, object_fields
from connectors.hubspot.write import WriteMixin

# One logger for the whole connector, whichever of its modules logs.
log = logging.getLogger("connectors.hubspot")

DEFAULT_API_URL = "https://api.hubapi.com"
CONNECT_TIMEOUT_S = 10.0
DEFAULT_TIMEOUT_S = 30.0


class HubSpotConfigError(ConfigError, ValueError):
    """The connection's options are missing or malformed (names the key, never a value)."""


class HubSpotConnector(ReadMixin, WriteMixin, NotesMixin, Connector):
    """HubSpot CRM v3 with hubspot-api-client. See the ``connectors.hubspot`` docstring."""

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
    # Notes (``connectors.hubspot.notes``) take HubSpot's default associations to deals, companies and
    # contacts. Leads get none: the note association types of leads are not covered (nor simulated).
    notes_supported = True
    note_object = "notes"
    note_targets = MappingProxyType({"opportunity": "deals", "account": "companies", "contacts": "contacts"})

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
        pipelines = self._pipelines(object_name) if needs_pipelines(properties) else None
        schema = ObjectSchema(name=object_name, fields=object_fields(properties, pipelines))
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
        if isinstance(value, dt.date):  # datetimes too
            return iso_temporal(field, value)
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


__all__ = ["CONNECT_TIMEOUT_S", "DEFAULT_API_URL", "DEFAULT_TIMEOUT_S", "HubSpotConfigError", "HubSpotConnector"]
