"""How the HubSpot connector talks to the API: the client, its gated connection pools, one call.

``ApiMixin`` builds the ``hubspot-api-client`` objects (one per API,
reused), wraps each one's urllib3 pool manager in ``_GatedPoolManager`` so
that every request passes the connection's gate (and tells it each answer's
status), and runs one call
(``_call``): transport errors become ``TransientError``, an HTTP error
becomes ``_HTTPFailure`` for the caller to classify, ``_raise`` turns that
into the connector error tree. The token never appears in a message. It
also holds what reads and writes both rely on: ``MAX_BATCH`` inputs per batch
request, and record ids are numeric.

Retries are not done here (the client's urllib3 retries are off too): the
pipeline retries ``TransientError``.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import urllib3
from hubspot import HubSpot

from connectors.base import (
    INTERRUPTS,
    AuthError,
    ConnectorError,
    Gate,
    PermanentError,
    TransientError,
)
from connectors.support import parse_retry_after, retry_after_of

MAX_BATCH = 100  # inputs per batch/read and batch/update
DEFAULT_RETRY_AFTER_S = 1.0

_NUMERIC_ID = re.compile(r"^\d+$")


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
        gate = self._ref.gate
        with gate.request():  # may raise TransientError: then nothing was sent
            try:
                response = self._pool.request(method, url, *args, **kwargs)
                if not kwargs.get("preload_content", True):
                    # The body is read here, not later by the caller, so a concurrency slot
                    # covers the whole exchange; urllib3 keeps it for ``.data``.
                    response.data  # noqa: B018
            except (urllib3.exceptions.HTTPError, OSError):
                gate.observe_response(_kind(method, url), None)
                raise
        gate.observe_response(_kind(method, url), response.status)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class ApiMixin:
    """``HubSpotConnector``'s API objects and calls. The state is the connector's, set in its ``__init__``."""

    api_url: str
    _token: str
    _timeout: tuple[float, float]
    _ca_bundle: str | None
    _client: HubSpot | None
    _apis: dict[str, Any]
    _lock: threading.RLock
    _gate_ref: _GateRef

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
                    "associations": lambda: crm.associations.v4.basic_api,  # notes (connectors.hubspot.notes)
                    "association_batch": lambda: crm.associations.v4.batch_api,
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
            raise self._client_failure(what, exc) from None
        return _answer(what, response)

    def _client_failure(self, what: str, exc: Exception) -> Exception:
        """What an exception of the client becomes: ``_HTTPFailure`` when it carries an HTTP answer."""
        status = getattr(exc, "status", None)
        if status is None:
            return ConnectorError(self._clean(f"hubspot {what}: {type(exc).__name__}"))
        if not status:  # status 0: the client wraps SSL errors this way
            return TransientError(self._clean(f"hubspot {what}: TLS error: {_short(getattr(exc, 'reason', ''))}"))
        body = getattr(exc, "body", None)
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body
        headers = dict(getattr(exc, "headers", None) or {})
        return _HTTPFailure(int(status), parsed, headers)

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
            raise TransientError(message, retry_after=_rate_limit_wait(failure.headers)) from None
        if failure.status >= 500 or failure.status in (408, 423):
            raise TransientError(message, retry_after=retry_after_of(failure.headers)) from None
        raise PermanentError(message) from None


def _answer(what: str, response: Any) -> tuple[int, Any]:
    """(status, parsed JSON) of a 2xx answer, its connection handed back to the pool."""
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


def _kind(method: str, url: str) -> str:
    """What a request is for (``Gate.observe_response``): properties and pipelines, reads, writes."""
    path = urlsplit(url).path
    if "/properties/" in path or "/pipelines/" in path:
        return "schema"
    if method.upper() == "GET" or path.endswith(("/batch/read", "/search")):
        return "read"
    return "write"


def _short(exc: Any, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _rate_limit_wait(headers: Mapping[str, str]) -> float:
    """How long to wait after a 429: Retry-After, else the rate-limit window, else 1 s."""
    explicit = retry_after_of(headers)
    if explicit is not None:
        return explicit
    # The window is a count of milliseconds: read like a delay-seconds Retry-After, then scaled.
    interval = parse_retry_after(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
    if interval:
        return interval / 1000.0
    return DEFAULT_RETRY_AFTER_S


__all__ = ["DEFAULT_RETRY_AFTER_S", "MAX_BATCH", "ApiMixin"]
