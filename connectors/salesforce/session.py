"""How the Salesforce connector talks to the org: the gated requests session, logins, one API call.

``_TimedSession`` is the one place every request passes (simple-salesforce
sends everything, logins included, through ``session.request``/``post``): it
sets a default timeout, runs the request inside the connection's gate and
reports ``Sforce-Limit-Info`` and each answer's status to it. ``SessionMixin`` gives the connector its
simple-salesforce client (logging in with a password or a JWT when needed)
and ``_call``, which runs one API call, renews an expired session once and
maps Salesforce's answers onto the connector error tree (``_Rejected`` for a
whole request refused with 400, so that readers and writers can split it).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import urlsplit

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError
from simple_salesforce.login import SalesforceLogin

from connectors.base import (
    INTERRUPTS,
    NO_GATE,
    AuthError,
    ConnectorError,
    Gate,
    PermanentError,
    TransientError,
)
from connectors.salesforce.options import _Auth
from connectors.support import retry_after_of

# One logger for the whole connector, whichever of its modules logs.
log = logging.getLogger("connectors.salesforce")

T = TypeVar("T")

# ``api-usage=USED/LIMIT`` but not ``per-app-api-usage=...`` in Sforce-Limit-Info.
_API_USAGE = re.compile(r"(?:^|[,;\s])api-usage=(\d+)/(\d+)")
# INVALID_FIELD names the column only in its message, both in queries and in updates.
_NO_SUCH_COLUMN = re.compile(r"No such column '([^']+)'")


class _TimedSession:
    """Wraps a requests session: a default timeout on every call, each call inside the
    connection's gate, and the headers of the last response kept (per thread) so that
    error handling can read ``Retry-After``.

    This is the one place every Salesforce request passes (simple-salesforce
    sends everything, logins included, through ``session.request``/``post``).
    Only the headers are kept, never the response: a live response pins its
    socket open after the session is closed.
    """

    def __init__(self, session: requests.Session, timeout: float, gate: Gate = NO_GATE) -> None:
        self._session = session
        self._timeout = timeout
        self._local = threading.local()
        self.gate = gate

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        self._local.headers = None
        self._local.status = None
        gate = self.gate
        with gate.request():  # may raise TransientError: then nothing was sent
            try:
                response = self._session.request(method, url, **kwargs)
            except requests.RequestException:
                gate.observe_response(_kind(method, url), None)
                raise
        gate.observe_response(_kind(method, url), response.status_code)
        self._local.headers = dict(response.headers)
        self._local.status = response.status_code
        usage = _api_usage(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            gate.observe_daily_usage(*usage)
        return response

    def post(self, url: str, data: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, data=data, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    @property
    def last_headers(self) -> Mapping[str, str]:
        return getattr(self._local, "headers", None) or {}

    @property
    def last_status(self) -> int | None:
        return getattr(self._local, "status", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _kind(method: str, url: str) -> str:
    """What a request is for (``Gate.observe_response``): logins, describes, reads (SOQL, GETs), writes."""
    path = urlsplit(url).path
    if "/services/oauth2/" in path or "/services/Soap/" in path:
        return "auth"
    if method.upper() != "GET":
        return "write"
    return "schema" if path.endswith(("/describe", "/sobjects")) else "read"


def _api_usage(value: str | None) -> tuple[int, int] | None:
    """(used, limit) from a ``Sforce-Limit-Info`` header."""
    match = _API_USAGE.search(value) if value else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _error_items(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [item for item in content if isinstance(item, dict)]
    if isinstance(content, dict):
        return [content]
    return []


def _describe_error(content: Any) -> str:
    items = _error_items(content)
    if items:
        return "; ".join(f"{i.get('errorCode') or i.get('statusCode') or 'ERROR'}: "
                         f"{str(i.get('message', '')).strip()}" for i in items)[:500]
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    return text.strip()[:300]


def _codes(content: Any) -> set[str]:
    return {str(i.get("errorCode") or i.get("statusCode")) for i in _error_items(content)}


def _private_key(path: str | None) -> str:
    """The JWT signing key's PEM; ``AuthError`` (without a ``__context__``) when the file cannot be read."""
    try:
        with open(path or "", "rb") as handle:
            data = handle.read()
    except OSError as exc:
        reason = exc.strerror
    else:
        return data.decode("utf-8")
    raise AuthError(f"salesforce JWT login: cannot read 'private_key_file' ({reason})")


class _Rejected(PermanentError):
    """A whole request answered 400 (the caller decides whether to split)."""

    def __init__(self, status: int, content: Any) -> None:
        super().__init__(_describe_error(content))
        self.status = status
        self.content = content
        self.codes = _codes(content)


class SessionMixin:
    """``SalesforceConnector``'s session: its simple-salesforce client, logins, and ``_call``.

    The state is the connector's, set in its ``__init__``.
    """

    _auth: _Auth
    _timeout: float
    _raw_session: requests.Session | None
    _http: _TimedSession | None
    _sf: Salesforce | None
    _lock: threading.RLock
    _gate: Gate

    def _session(self) -> _TimedSession:
        if self._http is None:
            self._raw_session = self._raw_session or requests.Session()
            self._http = _TimedSession(self._raw_session, self._timeout, self._gate)
        return self._http

    def _client(self) -> Salesforce:
        with self._lock:
            if self._sf is None:
                self._sf = self._login()
            return self._sf

    def _login(self) -> Salesforce:
        auth = self._auth
        http = self._session()
        if auth.kind == "token":
            return Salesforce(session_id=auth.access_token, instance_url=auth.instance_url,
                              version=auth.api_version, session=http)  # type: ignore[arg-type]
        failure: Exception | None = None
        try:
            session_id, instance = self._log_in(http)
        except (TransientError, AuthError) as exc:  # the gate refused to send the login now; no private key
            failure = exc
        except SalesforceAuthenticationFailed as exc:
            failure = self._login_failure(exc.code, http, f" ({exc.code}): {exc.auth_message[:200]}")
        except (requests.Timeout, requests.ConnectionError) as exc:
            failure = TransientError(f"salesforce login: {type(exc).__name__}")
        except INTERRUPTS:
            raise
        except Exception as exc:  # an unreadable private key, an unexpected login answer, ...
            failure = self._login_failure(http.last_status, http, f": {type(exc).__name__}")
        if failure is not None:  # raised outside the except blocks: no __context__ pinning a response
            raise failure
        log.info("salesforce %s login ok (instance %s)", auth.kind, instance)
        return Salesforce(session_id=session_id, instance=instance, version=auth.api_version,
                          session=http)  # type: ignore[arg-type]

    def _log_in(self, http: _TimedSession) -> tuple[str, str]:
        """(session id, instance) from a password (SOAP) or JWT bearer login."""
        auth = self._auth
        if auth.kind == "password":
            return SalesforceLogin(
                username=auth.username, password=auth.password, security_token=auth.security_token,
                domain=auth.domain, sf_version=auth.api_version, session=http)  # type: ignore[arg-type]
        return SalesforceLogin(
            username=auth.username, consumer_key=auth.consumer_key, privatekey=_private_key(auth.private_key_file),
            domain=auth.domain, sf_version=auth.api_version, session=http)  # type: ignore[arg-type]

    def _login_failure(self, status: Any, http: _TimedSession, detail: str) -> ConnectorError:
        """A refused login: transient when the server was unavailable or busy, else the credentials."""
        if isinstance(status, int) and (status >= 500 or status == 429):
            return TransientError(f"salesforce login unavailable (HTTP {status})", retry_after_of(http.last_headers))
        return AuthError(f"salesforce {self._auth.kind} login failed{detail}")

    def _call(self, what: str, action: Callable[[Salesforce], T], *, missing: type[ConnectorError] = PermanentError) -> T:
        """Run one API call; renew an expired session once (password/JWT); map errors.

        Raises ``_Rejected`` for a 400 so callers can split; ``AuthError``,
        ``TransientError``, ``UnknownObject`` or ``PermanentError`` otherwise.
        """
        renewed = False
        while True:
            client = self._client()
            # Errors are raised outside the except blocks so they carry no __context__:
            # the original traceback pins simple-salesforce's response (and its socket).
            failure: Exception | None = None
            try:
                return action(client)
            except SalesforceError as exc:
                if exc.status == 401 and self._auth.kind != "token" and not renewed:
                    renewed = True
                    self._forget_session(client)
                    continue
                failure = self._api_failure(what, exc.status, exc.content, missing, renewed=renewed)
            except (requests.Timeout, requests.ConnectionError) as exc:
                failure = TransientError(f"salesforce {what}: {type(exc).__name__}")
            except requests.RequestException as exc:
                failure = ConnectorError(f"salesforce {what}: {type(exc).__name__}")
            raise failure

    def _forget_session(self, client: Salesforce) -> None:
        """Drop an expired session, so that the next call logs in again."""
        log.info("salesforce session expired; logging in again")
        with self._lock:
            if self._sf is client:  # another thread may have logged in again already
                self._sf = None

    def _api_failure(self, what: str, status: int, content: Any, missing: type[ConnectorError], *,
                     renewed: bool) -> Exception:
        """The error an API call answered with ``status`` raises (a 401 only once renewal is out)."""
        if status == 401:
            return AuthError(f"salesforce {what}: {_describe_error(content)}"
                             + (" (renewal did not help)" if renewed else ""))
        if status == 429 or status >= 500 or _codes(content) & {"REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE"}:
            return TransientError(f"salesforce {what}: HTTP {status} {_describe_error(content)}",
                                  retry_after_of(self._session().last_headers))
        if status in (400, 414):
            return _Rejected(status, content)
        if status == 404:
            return missing(f"salesforce {what}: HTTP 404 {_describe_error(content)}")
        return PermanentError(f"salesforce {what}: HTTP {status} {_describe_error(content)}")


__all__ = ["SessionMixin"]
