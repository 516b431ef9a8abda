"""Salesforce connector on simple-salesforce (REST: describe, SOQL, sObject Collections).

Requests per call are kept minimal: one describe per object per connector
instance, one SOQL query per object and chunk of up to 200 ids, one
``PATCH composite/sobjects`` per 200 records. Partial success is the rule:

* ids are checked locally (length, charset, checksum, key prefix) before a
  query, so one malformed id cannot fail a whole ``IN`` list; if the query is
  still rejected for an id, the chunk is split until the bad id is isolated;
* Salesforce drops a whole record for one bad field: the record is re-sent
  once without the fields its errors named, so good sibling fields land;
* a whole-request ``JSON_PARSER_ERROR`` splits the batch in halves, and then a
  single record's fields, until the bad field is isolated;
* when a later request of a call fails transiently (429, 5xx, timeout), the
  ``TransientError`` carries in ``partial`` the results of every record already
  settled, so the caller retries only the others.

Describe is mapped onto ``FieldSchema`` with Salesforce's own facts: datetimes
keep whole seconds (``scale=0``), ``nillable`` is describe's (false for every
checkbox and required field), and dependent picklists get their controller and
options per controller value from ``validFor``.

Authentication: ``instance_url`` + ``access_token`` (no renewal: an expired
token raises ``AuthError``), password (SOAP login) or JWT bearer; the last two
renew an expired session once per call. simple-salesforce is always used in
"direct" session mode so that it never retries or re-logs-in on its own.

Limits: every request simple-salesforce sends (logins included) goes through
the connector's requests session wrapper, ``_TimedSession.request``, which
runs it inside ``self.gate.request()`` (shared rate/concurrency limits, see
``worker.limits.rate``) and reports each answer's ``Sforce-Limit-Info:
api-usage=USED/LIMIT`` to ``gate.observe_daily_usage``, so the gate can stop
before the org's daily allocation is spent. ``REQUEST_LIMIT_EXCEEDED`` (403
or 429) is a ``TransientError`` with the answer's ``Retry-After`` (Salesforce
usually sends none); that answer's ``Sforce-Limit-Info`` then makes the gate
refuse the retries, with a ``retry_after`` of its own, until usage drops.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
import threading
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence, TypeVar
from urllib.parse import quote, urlsplit

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError
from simple_salesforce.login import SalesforceLogin

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
    json_number,
    models_for,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API_VERSION = "59.0"
DEFAULT_TIMEOUT_S = 30.0
BATCH_SIZE = 200  # sObject Collections limit
READ_CHUNK = 200  # ids per SOQL query
MAX_QUERY_CHARS = 12000  # URL-encoded SOQL per GET; Salesforce rejects URIs over 16,384 bytes

_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_NO_SUCH_COLUMN = re.compile(r"No such column '([^']+)'")
# ``api-usage=USED/LIMIT`` but not ``per-app-api-usage=...`` in Sforce-Limit-Info.
_API_USAGE = re.compile(r"(?:^|[,;\s])api-usage=(\d+)/(\d+)")


class SalesforceConfigError(ConfigError, ValueError):
    """The connection's options are missing or contradictory (names the key, never a value)."""


# ---------------------------------------------------------------- helpers


def salesforce_id18(raw: str) -> str | None:
    """The canonical 18-character id (case restored from the checksum), or None if malformed."""
    if not isinstance(raw, str) or not _ID_RE.match(raw):
        return None

    def suffix(id15: str) -> str:
        out = ""
        for chunk in range(3):
            part = id15[chunk * 5 : chunk * 5 + 5]
            out += _SUFFIX_ALPHABET[sum(1 << i for i, c in enumerate(part) if "A" <= c <= "Z")]
        return out

    if len(raw) == 15:
        return raw + suffix(raw)
    code = raw[15:].upper()
    chars = list(raw[:15])
    for chunk, letter in enumerate(code):
        bits = _SUFFIX_ALPHABET.find(letter)
        if bits < 0:
            return None
        for pos in range(5):
            index = chunk * 5 + pos
            if bits & (1 << pos):
                if not chars[index].isalpha():
                    return None
                chars[index] = chars[index].upper()
            elif chars[index].isalpha():
                chars[index] = chars[index].lower()
    id15 = "".join(chars)
    return id15 + code if suffix(id15) == code else None


@dataclass(frozen=True)
class _Auth:
    kind: str  # "token", "password", "jwt"
    api_version: str
    instance_url: str | None = None
    access_token: str | None = None
    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    consumer_key: str | None = None
    private_key_file: str | None = None
    domain: str = "login"

    def __repr__(self) -> str:  # never show secrets
        return f"_Auth(kind={self.kind!r}, api_version={self.api_version!r}, domain={self.domain!r})"


def _parse_options(options: Mapping[str, Any]) -> _Auth:
    def text(key: str) -> str | None:
        value = options.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise SalesforceConfigError(f"salesforce option {key!r} must be a string")
        value = value.strip()
        return value or None

    version = text("api_version") or DEFAULT_API_VERSION
    version = version[1:] if version[:1] in ("v", "V") else version
    if not re.fullmatch(r"\d{2,3}\.\d", version):
        raise SalesforceConfigError("salesforce option 'api_version' must look like '59.0'")
    domain = text("domain") or "login"
    if domain.startswith("https://") or domain.endswith(".salesforce.com") or "/" in domain:
        raise SalesforceConfigError(
            "salesforce option 'domain' is the part before '.salesforce.com' (login, test or 'acme.my')")
    token, instance = text("access_token"), text("instance_url")
    username, password = text("username"), text("password")
    consumer_key, key_file = text("consumer_key"), text("private_key_file")
    security_token = text("security_token")
    if token is not None:
        clashing = [k for k in ("username", "password", "security_token", "consumer_key", "private_key_file")
                    if text(k) is not None]
        if clashing:
            raise SalesforceConfigError(
                f"salesforce options: give either 'access_token' or {clashing[0]!r}, not both")
        if instance is None:
            raise SalesforceConfigError("salesforce option 'instance_url' is required with 'access_token'")
        parts = urlsplit(instance)
        if parts.scheme != "https" or not parts.hostname:
            raise SalesforceConfigError("salesforce option 'instance_url' must be an https:// URL")
        return _Auth("token", version, instance_url=instance.rstrip("/"), access_token=token)
    if username is None:
        if instance is not None:
            raise SalesforceConfigError("salesforce option 'access_token' is required with 'instance_url'")
        raise SalesforceConfigError(
            "salesforce options: need 'instance_url' and 'access_token', 'username' and 'password', "
            "or 'username', 'consumer_key' and 'private_key_file'")
    if consumer_key is not None or key_file is not None:
        if password is not None or security_token is not None:
            which = "password" if password is not None else "security_token"
            raise SalesforceConfigError(
                f"salesforce options: give either {which!r} (password login) or 'consumer_key' and "
                "'private_key_file' (JWT), not both")
        if consumer_key is None:
            raise SalesforceConfigError("salesforce option 'consumer_key' is required with 'private_key_file'")
        if key_file is None:
            raise SalesforceConfigError("salesforce option 'private_key_file' is required with 'consumer_key'")
        return _Auth("jwt", version, username=username, consumer_key=consumer_key, private_key_file=key_file,
                     domain=domain)
    if password is None:
        raise SalesforceConfigError("salesforce option 'password' is required with 'username'")
    return _Auth("password", version, username=username, password=password, security_token=security_token or "",
                 domain=domain)


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
            response = self._session.request(method, url, **kwargs)
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


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            when = parsedate_to_datetime(value)
            return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class _Rejected(PermanentError):
    """A whole request answered 400 (the caller decides whether to split)."""

    def __init__(self, status: int, content: Any) -> None:
        super().__init__(_describe_error(content))
        self.status = status
        self.content = content
        self.codes = _codes(content)


def _json_default(value: Any) -> Any:
    """Canonical values that reached ``write`` without ``encode``."""
    if isinstance(value, Decimal):
        return json_number(value)
    if isinstance(value, dt.datetime):
        return iso_datetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (tuple, set, frozenset)):
        return ";".join(str(v) for v in value)
    raise TypeError(f"cannot send a {type(value).__name__} to Salesforce")


# ---------------------------------------------------------------- type mapping

_STRING_TYPES = {"string", "email", "phone", "url", "id", "reference", "encryptedstring"}
# What Salesforce refuses outright (MALFORMED_ID, INVALID_EMAIL_ADDRESS); it may still refuse more.
_PATTERNS = {
    "id": r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?",
    "reference": r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?",
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
}
_NUMBER_TYPES = {"double", "currency", "percent"}


def _field_schema(raw: Mapping[str, Any]) -> FieldSchema:
    sf_type = str(raw.get("type") or "")
    name = str(raw["name"])
    updateable = bool(raw.get("updateable"))
    reason = None
    if not updateable:
        reason = "calculated" if raw.get("calculated") or raw.get("autoNumber") else "not updateable"
    options = tuple(
        Option(value=str(p["value"]), label=str(p.get("label") or p["value"]), active=bool(p.get("active", True)))
        for p in raw.get("picklistValues") or () if p.get("value") is not None)
    length = int(raw.get("length") or 0) or None
    # describe says ``nillable: false`` for required fields (null is invalid_value before any request) and
    # for every checkbox (null means false, which is what Salesforce stores).
    common: dict[str, Any] = dict(name=name, label=str(raw.get("label") or name), writable=updateable,
                                  not_writable_reason=reason, crm_type=sf_type,
                                  nillable=bool(raw.get("nillable", True)))
    if sf_type in _STRING_TYPES:
        return FieldSchema(type=FieldType.STRING, max_length=length, pattern=_PATTERNS.get(sf_type), **common)
    if sf_type == "textarea":
        return FieldSchema(type=FieldType.TEXT, max_length=length, **common)
    if sf_type == "boolean":
        return FieldSchema(type=FieldType.BOOLEAN, **common)
    if sf_type in ("int", "long"):
        digits = int(raw.get("digits") or 0) or None
        return FieldSchema(type=FieldType.INTEGER, precision=digits, scale=0, **common)
    if sf_type in _NUMBER_TYPES:
        precision = int(raw.get("precision") or 0) or None
        scale = int(raw.get("scale") or 0) if precision is not None else None
        return FieldSchema(type=FieldType.NUMBER, precision=precision, scale=scale, **common)
    if sf_type == "date":
        return FieldSchema(type=FieldType.DATE, **common)
    if sf_type == "datetime":
        # Salesforce keeps whole seconds (SOQL answers ``.000``): coercion truncates to match, or a value
        # with milliseconds would differ from the stored one and be re-sent on every sync.
        return FieldSchema(type=FieldType.DATETIME, scale=0, **common)
    if sf_type == "picklist":
        return FieldSchema(type=FieldType.PICKLIST, options=options, restricted=bool(raw.get("restrictedPicklist")),
                           max_length=length, **common)
    if sf_type == "combobox":
        return FieldSchema(type=FieldType.PICKLIST, options=options, restricted=False, max_length=length, **common)
    if sf_type == "multipicklist":
        return FieldSchema(type=FieldType.MULTIPICKLIST, options=options,
                           restricted=bool(raw.get("restrictedPicklist")), max_length=length, **common)
    return FieldSchema(type=FieldType.OTHER, **common)


def _with_controller(schema: FieldSchema, raw: Mapping[str, Any],
                     raw_fields: Mapping[str, Mapping[str, Any]]) -> FieldSchema:
    """A dependent picklist's options per value of its controlling field (describe's ``validFor``).

    ``validFor`` is base64 of a bitmap, most significant bit first, whose bit i
    is the controller's i-th picklist value as describe lists it (for a
    checkbox controller, bit 0 unchecked and bit 1 checked). Keys are the
    controller's canonical values as text (``str(True)`` for a checkbox), the
    form ``FieldSchema.for_controller`` looks up. A controller the describe
    does not show (no access) leaves the field without a dependency.
    """
    controller = raw_fields.get(str(raw.get("controllerName") or ""))
    if controller is None or schema.type not in (FieldType.PICKLIST, FieldType.MULTIPICKLIST):
        return schema
    if controller.get("type") == "boolean":
        keys = [str(False), str(True)]
    else:
        keys = [str(p["value"]) for p in controller.get("picklistValues") or () if p.get("value") is not None]
    allowed: dict[str, list[Option]] = {key: [] for key in keys}
    for entry, option in zip([p for p in raw.get("picklistValues") or () if p.get("value") is not None],
                             schema.options):
        try:
            bitmap = base64.b64decode(str(entry.get("validFor") or ""), validate=True)
        except (binascii.Error, ValueError):
            bitmap = b""  # unreadable: valid for nothing rather than for everything
        for index, key in enumerate(keys):
            if index >> 3 < len(bitmap) and bitmap[index >> 3] & (0x80 >> (index & 7)):
                allowed[key].append(option)
    return replace(schema, controller=str(controller["name"]),
                   dependent_options=MappingProxyType({key: tuple(found) for key, found in allowed.items()}))


# per-record error codes -> outcome
_INVALID_VALUE_CODES = {
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "STRING_TOO_LONG", "NUMBER_OUTSIDE_VALID_RANGE",
    "INVALID_EMAIL_ADDRESS", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "FIELD_INTEGRITY_EXCEPTION",
    "INVALID_TYPE_ON_FIELD_IN_RECORD", "REQUIRED_FIELD_MISSING", "JSON_PARSER_ERROR", "INVALID_FIELD_VALUE",
    "FIELD_FILTER_VALIDATION_EXCEPTION", "INVALID_CROSS_REFERENCE_KEY_ON_FIELD", "DUPLICATE_VALUE",
    "INVALID_MULTIPICKLIST_VALUE", "TOO_MANY_ENUM_VALUE", "MAXIMUM_SIZE_OF_ATTACHMENT",
}
_NOT_WRITABLE_CODES = {"INVALID_FIELD_FOR_INSERT_UPDATE", "FIELD_NOT_UPDATEABLE", "READ_ONLY_FIELD"}
_RECORD_CODES = {  # about the record even when they name a field
    "ENTITY_IS_DELETED", "NOT_FOUND", "MISSING_ARGUMENT", "ENTITY_IS_LOCKED", "UNABLE_TO_LOCK_ROW",
    "INSUFFICIENT_ACCESS_OR_READONLY", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "ENTITY_FAILED_IFLASTMODIFIED_ON_UPDATE",
}
# Codes such as MALFORMED_ID or INVALID_CROSS_REFERENCE_KEY concern the record when they name no field of
# the update (the record's own id) and the value of a lookup field when they name one.


def _outcome_for(code: str) -> str:
    if code == "INVALID_FIELD":
        return "unknown_field"
    if code in _NOT_WRITABLE_CODES:
        return "not_writable"
    return "invalid_value"


@dataclass
class _Pending:
    index: int  # position in the caller's updates
    record_id: str  # as the caller gave it (sent as is: Salesforce takes 15 or 18)
    key: str  # canonical 18-character id
    values: dict[str, Any]


class _Results:
    def __init__(self, updates: Sequence[RecordWrite]) -> None:
        self.updates = updates
        self.written: list[set[str]] = [set() for _ in updates]
        self.errors: list[dict[str, FieldError]] = [{} for _ in updates]

    def ok(self, pending: _Pending, names: Sequence[str]) -> None:
        self.written[pending.index].update(names)

    def fail(self, pending: _Pending, names: Sequence[str], error: FieldError) -> None:
        for name in names:
            self.errors[pending.index][name] = error

    def _result(self, index: int) -> RecordWriteResult:
        errors = dict(self.errors[index])
        written = self.written[index] - set(errors)
        for name in self.updates[index].values:
            if name not in written and name not in errors:
                errors[name] = FieldError("failed", "no result from Salesforce for this field")
        return RecordWriteResult(record_id=self.updates[index].record_id, written=frozenset(written), errors=errors)

    def build(self) -> list[RecordWriteResult]:
        return [self._result(index) for index in range(len(self.updates))]

    def settled(self) -> list[RecordWriteResult]:
        """What is already answered, for ``ConnectorError.partial``: per record, only the fields
        with a final answer (a record's other half, or its re-send without rejected fields, may
        have been cut short); unanswered fields are left out, never guessed."""
        found = []
        for index, update in enumerate(self.updates):
            errors = dict(self.errors[index])
            written = self.written[index] - set(errors)
            if written or errors:
                found.append(RecordWriteResult(update.record_id, frozenset(written), errors))
        return found


# ---------------------------------------------------------------- connector


class SalesforceConnector(Connector):
    """Salesforce over REST with simple-salesforce. See the module docstring."""

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

    # -- session ------------------------------------------------------------------
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
            if auth.kind == "password":
                session_id, instance = SalesforceLogin(
                    username=auth.username, password=auth.password, security_token=auth.security_token,
                    domain=auth.domain, sf_version=auth.api_version, session=http)  # type: ignore[arg-type]
            else:
                try:
                    with open(auth.private_key_file or "", "rb") as handle:
                        private_key = handle.read().decode("utf-8")
                except OSError as exc:
                    private_key = ""
                    failure = AuthError(f"salesforce JWT login: cannot read 'private_key_file' ({exc.strerror})")
                if failure is None:
                    session_id, instance = SalesforceLogin(
                        username=auth.username, consumer_key=auth.consumer_key, privatekey=private_key,
                        domain=auth.domain, sf_version=auth.api_version, session=http)  # type: ignore[arg-type]
        except TransientError as exc:  # the gate refused to send the login now
            failure = exc
        except SalesforceAuthenticationFailed as exc:
            code = exc.code
            if isinstance(code, int) and (code >= 500 or code == 429):
                failure = TransientError(f"salesforce login unavailable (HTTP {code})",
                                         _retry_after(http.last_headers))
            else:
                failure = AuthError(f"salesforce {auth.kind} login failed ({code}): {exc.auth_message[:200]}")
        except (requests.Timeout, requests.ConnectionError) as exc:
            failure = TransientError(f"salesforce login: {type(exc).__name__}")
        except INTERRUPTS:
            raise
        except Exception as exc:  # an unreadable private key, an unexpected login answer, ...
            status = http.last_status
            if status is not None and (status >= 500 or status == 429):
                failure = TransientError(f"salesforce login unavailable (HTTP {status})",
                                         _retry_after(http.last_headers))
            else:
                failure = AuthError(f"salesforce {auth.kind} login failed: {type(exc).__name__}")
        if failure is not None:
            raise failure
        log.info("salesforce %s login ok (instance %s)", auth.kind, instance)
        return Salesforce(session_id=session_id, instance=instance, version=auth.api_version,
                          session=http)  # type: ignore[arg-type]

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
                status, content = exc.status, exc.content
                codes = _codes(content)
                if status == 401:
                    if self._auth.kind != "token" and not renewed:
                        renewed = True
                        log.info("salesforce session expired; logging in again")
                        with self._lock:
                            if self._sf is client:
                                self._sf = None
                        continue
                    failure = AuthError(f"salesforce {what}: {_describe_error(content)}"
                                        + (" (renewal did not help)" if renewed else ""))
                elif status == 429 or status >= 500 or codes & {"REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE"}:
                    failure = TransientError(f"salesforce {what}: HTTP {status} {_describe_error(content)}",
                                             _retry_after(self._session().last_headers))
                elif status in (400, 414):
                    failure = _Rejected(status, content)
                elif status == 404:
                    failure = missing(f"salesforce {what}: HTTP 404 {_describe_error(content)}")
                else:
                    failure = PermanentError(f"salesforce {what}: HTTP {status} {_describe_error(content)}")
            except (requests.Timeout, requests.ConnectionError) as exc:
                failure = TransientError(f"salesforce {what}: {type(exc).__name__}")
            except requests.RequestException as exc:
                failure = ConnectorError(f"salesforce {what}: {type(exc).__name__}")
            raise failure

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
        raw_fields = {str(raw["name"]): raw for raw in (described or {}).get("fields", [])}
        fields = {name: _with_controller(_field_schema(raw), raw, raw_fields) for name, raw in raw_fields.items()}
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

    # -- read ---------------------------------------------------------------------
    def read(self, object_name: str, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, RecordState]:
        schema = self.object_schema(object_name)
        columns: dict[str, str] = {}  # canonical name -> first requested spelling
        requested: list[tuple[str, str]] = []  # (requested name, canonical)
        for name in fields:
            found = schema.field(name)
            if found is None:
                continue  # not on the object: the pipeline reports unknown_field from the schema
            columns.setdefault(found.name, name)
            requested.append((name, found.name))
        out: dict[str, RecordState] = {}
        keys: dict[str, list[str]] = {}  # canonical id -> ids as given
        for record_id in record_ids:
            key, error = self._check_id(object_name, record_id)
            if error is not None or key is None:
                out[record_id] = RecordState(record_id, None, error)
            else:
                keys.setdefault(key, []).append(record_id)
        rows: dict[str, Mapping[str, Any]] = {}
        failures: dict[str, FieldError] = {}
        names = [c for c in columns if c != "Id"]
        for chunk in self._chunks(schema.name, names, list(keys)):
            self._read_chunk(schema.name, names, chunk, rows, failures)
        for key, given in keys.items():
            for record_id in given:
                if key in failures:
                    out[record_id] = RecordState(record_id, None, failures[key])
                elif key in rows:
                    row = rows[key]
                    values = {asked: row.get(canonical) for asked, canonical in requested if canonical in row}
                    out[record_id] = RecordState(record_id, values)
                else:
                    out[record_id] = RecordState(record_id, None, FieldError(
                        "failed", f"NOT_FOUND: no {schema.name} with id {record_id} (deleted or never existed)"))
        return {record_id: out[record_id] for record_id in record_ids}

    @staticmethod
    def _soql(object_name: str, names: Sequence[str], keys: Sequence[str]) -> str:
        columns = ", ".join(["Id", *names])
        if len(keys) == 1:
            return f"SELECT {columns} FROM {object_name} WHERE Id = '{keys[0]}'"
        quoted = ", ".join("'" + key + "'" for key in keys)
        return f"SELECT {columns} FROM {object_name} WHERE Id IN ({quoted})"

    def _chunks(self, object_name: str, names: Sequence[str], keys: list[str]) -> list[list[str]]:
        chunks: list[list[str]] = []
        start = 0
        while start < len(keys):
            size = min(READ_CHUNK, len(keys) - start)
            while size > 1 and len(quote(self._soql(object_name, names, keys[start:start + size]))) > MAX_QUERY_CHARS:
                size = max(1, size // 2)
            chunks.append(keys[start:start + size])
            start += size
        return chunks

    def _read_chunk(self, object_name: str, names: list[str], keys: list[str], rows: dict[str, Mapping[str, Any]],
                    failures: dict[str, FieldError]) -> None:
        if not keys:
            return
        soql = self._soql(object_name, names, keys)
        try:
            result = self._call(f"query {object_name}", lambda sf: sf.query(soql, timeout=self._timeout))
        except _Rejected as exc:
            if "INVALID_FIELD" in exc.codes:
                match = _NO_SUCH_COLUMN.search(str(exc))
                if match and match.group(1) in names:  # describe and query disagree: read without it
                    log.warning("salesforce query: %s is not readable on %s", match.group(1), object_name)
                    names.remove(match.group(1))
                    self._read_chunk(object_name, names, keys, rows, failures)
                    return
            about_ids = exc.status == 414 or "INVALID_QUERY_FILTER_OPERATOR" in exc.codes or "MALFORMED_ID" in exc.codes
            if len(keys) == 1 or not about_ids:  # splitting only helps when one id spoils the query
                for key in keys:
                    failures[key] = FieldError("failed", str(exc))
                return
            half = len(keys) // 2
            self._read_chunk(object_name, names, keys[:half], rows, failures)
            self._read_chunk(object_name, names, keys[half:], rows, failures)
            return
        while True:
            for record in result.get("records", []):
                key = salesforce_id18(str(record.get("Id", "")))
                if key is not None:
                    rows[key] = {k: v for k, v in record.items() if k != "attributes"}
            if result.get("done", True) or not result.get("nextRecordsUrl"):
                break
            next_url = result["nextRecordsUrl"]
            try:
                result = self._call(f"query {object_name}",
                                    lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True,
                                                                           timeout=self._timeout))
            except _Rejected as exc:
                raise PermanentError(f"salesforce query {object_name} (next page): {exc}") from None

    # -- write --------------------------------------------------------------------
    def write(self, object_name: str, updates: Sequence[RecordWrite]) -> list[RecordWriteResult]:
        schema = self.object_schema(object_name)
        results = _Results(updates)
        batches: list[list[_Pending]] = [[]]
        in_batch: set[str] = set()
        for index, update in enumerate(updates):
            if not update.values:
                continue
            key, error = self._check_id(object_name, update.record_id)
            if error is not None or key is None:
                results.fail(_Pending(index, update.record_id, "", {}), list(update.values),
                             error or FieldError("failed", "malformed id"))
                continue
            # one record entry per id and call: a second update of the same record goes in the next call
            if len(batches[-1]) >= BATCH_SIZE or key in in_batch:
                batches.append([])
                in_batch = set()
            batches[-1].append(_Pending(index, update.record_id, key, dict(update.values)))
            in_batch.add(key)
        # A transient failure (429, 5xx, timeout) may cut the call short after earlier requests (other
        # batches, halves of a split, a re-send) were answered: those answers travel with the error, so the
        # caller retries only the records still open and never reports an accepted write as failed. The
        # records of the failed request itself stay out: Salesforce may or may not have applied them.
        failure: ConnectorError | None = None
        try:
            for batch in batches:
                if batch:
                    self._send(schema.name, batch, results, resend=True)
        except ConnectorError as exc:  # transient, or an expired session / refusal part-way
            failure = exc
        if failure is not None:  # raised outside the except block: no __context__ pinning a response
            failure.partial = results.settled()
            raise failure.with_traceback(None)  # its old frames would pin the response open
        return results.build()

    def _patch(self, object_name: str, batch: Sequence[_Pending]) -> list[Any]:
        body = {"allOrNone": False, "records": [
            {"attributes": {"type": object_name}, "id": p.record_id, **p.values} for p in batch]}
        payload = json.dumps(body, default=_json_default)
        answer = self._call(f"update {object_name}", lambda sf: sf.restful(
            "composite/sobjects", method="PATCH", data=payload, timeout=self._timeout))
        if not isinstance(answer, list) or len(answer) != len(batch):
            raise PermanentError(f"salesforce update {object_name}: unexpected response shape")
        return answer

    def _send(self, object_name: str, batch: list[_Pending], results: _Results, *, resend: bool) -> None:
        try:
            answer = self._patch(object_name, batch)
        except _Rejected as exc:
            self._split(object_name, batch, results, exc, resend=resend)
            return
        again: list[_Pending] = []
        for pending, item in zip(batch, answer):
            if item.get("success"):
                results.ok(pending, list(pending.values))
                continue
            errors = [e for e in item.get("errors") or [] if isinstance(e, dict)]
            if not errors:
                results.fail(pending, list(pending.values), FieldError("failed", "Salesforce gave no reason"))
                continue
            named: dict[str, FieldError] = {}
            record_level: list[str] = []
            for error in errors:
                code = str(error.get("statusCode") or "UNKNOWN")
                message = str(error.get("message") or "").strip()
                reason = f"{code}: {message}"
                fields = [str(f) for f in error.get("fields") or []]
                if code == "INVALID_FIELD" and not fields:
                    match = _NO_SUCH_COLUMN.search(message)
                    fields = [match.group(1)] if match else []
                hits = [self._match_field(pending.values, f) for f in fields]
                hits = [h for h in hits if h is not None]
                if code in _RECORD_CODES or not hits:
                    record_level.append(reason)
                    continue
                for name in hits:
                    named.setdefault(name, FieldError(_outcome_for(code), reason))
            if record_level:
                reason = "; ".join(record_level)
                results.fail(pending, list(pending.values), FieldError("failed", reason))
                continue
            for name, error in named.items():
                results.fail(pending, [name], error)
            remaining = {k: v for k, v in pending.values.items() if k not in named}
            if not remaining:
                continue
            if resend:
                again.append(_Pending(pending.index, pending.record_id, pending.key, remaining))
            else:
                results.fail(pending, list(remaining), FieldError(
                    "failed", "not written: Salesforce rejected the record again after its bad fields were removed"))
        if again:
            self._send(object_name, again, results, resend=False)

    @staticmethod
    def _match_field(values: Mapping[str, Any], name: str) -> str | None:
        if name in values:
            return name
        folded = name.casefold()
        for key in values:
            if key.casefold() == folded:
                return key
        return None

    def _split(self, object_name: str, batch: list[_Pending], results: _Results, exc: _Rejected, *,
               resend: bool) -> None:
        """A whole request was rejected: halve the batch, then a single record's fields."""
        if len(batch) > 1:
            half = len(batch) // 2
            self._send(object_name, batch[:half], results, resend=resend)
            self._send(object_name, batch[half:], results, resend=resend)
            return
        pending = batch[0]
        names = list(pending.values)
        if "EXCEEDED_ID_LIMIT" in exc.codes:  # cannot happen with <= 200 records; never loop on it
            results.fail(pending, names, FieldError("failed", f"{exc}"))
            return
        if len(names) == 1:
            code = next(iter(exc.codes), "")
            outcome = _outcome_for(code) if code else "invalid_value"
            if code in _RECORD_CODES or code in ("INVALID_TYPE", "MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY"):
                outcome = "failed"
            results.fail(pending, names, FieldError(outcome, str(exc)))
            return
        half = len(names) // 2
        for part in (names[:half], names[half:]):
            piece = _Pending(pending.index, pending.record_id, pending.key, {n: pending.values[n] for n in part})
            self._send(object_name, [piece], results, resend=resend)

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
        if isinstance(value, dt.datetime):
            if field.type == FieldType.DATE:
                aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
                return aware.astimezone(dt.UTC).date().isoformat()
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return iso_datetime(value)
        if isinstance(value, dt.date):
            return value.isoformat()
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
