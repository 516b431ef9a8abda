"""A Salesforce REST API simulator (Starlette app around ``SalesforceState``).

It speaks the parts of the wire protocol that the Salesforce connector and
simple-salesforce use, and is at least as strict as a real org:

* ``GET /services/data/`` (versions), ``GET /services/data/vXX.X/``,
  ``.../sobjects/``, ``.../sobjects/{name}/describe``, ``.../limits/``;
* ``GET .../query/?q=`` for ``SELECT f, ... FROM Obj [WHERE Id = '..' | Id IN (..)] [LIMIT n]``
  (with ``nextRecordsUrl`` paging past ``query_batch_size`` rows);
* ``PATCH .../composite/sobjects`` (sObject Collections update: at most 200
  records, ``JSON_PARSER_ERROR`` fails the whole request, other errors per
  record, ``allOrNone`` rollback);
* ``GET``/``PATCH .../sobjects/{name}/{id}``;
* SOAP ``POST /services/Soap/u/{version}`` login and
  ``POST /services/oauth2/token`` with the JWT bearer grant.

Every response carries ``Sforce-Limit-Info``. Ids are real 15/18-character
Salesforce ids with the object's key prefix and the case-restoring checksum.

simple-salesforce hard-codes ``https://{domain}.salesforce.com`` for logins:
``route_salesforce_logins(session, served_url)`` mounts a transport adapter
that sends every ``*.salesforce.com`` request to the simulator instead.

Typical use::

    state = SalesforceState()
    ids = seed_default(state)                     # schema + sample records
    token = state.issue_token()
    with ServedApp(create_app(state), tls=True) as served:
        session = client_session(served.url)      # trusts the local CA, routes logins
        connector = SalesforceConnector(
            {"instance_url": served.url, "access_token": token}, session=session)
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import json
import math
import re
import secrets
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import parse_qs, unquote_plus, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

API_VERSIONS = tuple(f"{v}.0" for v in range(31, 63))
DEFAULT_API_LIMIT = 15000
MAX_COLLECTION_RECORDS = 200
MAX_URI_LENGTH = 16384
ORG_ID = "00D5g000004AbCdEAK"

NOT_FOUND_BODY = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
INVALID_SESSION_BODY = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]

# --------------------------------------------------------------------------- ids

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_CHARS = re.compile(r"^[A-Za-z0-9]+$")


def id_suffix(id15: str) -> str:
    """The three-character checksum that turns a 15-character id into 18."""
    out = []
    for chunk in range(3):
        part = id15[chunk * 5 : chunk * 5 + 5]
        bits = sum(1 << pos for pos, char in enumerate(part) if "A" <= char <= "Z")
        out.append(_SUFFIX_ALPHABET[bits])
    return "".join(out)


def to_id18(raw: Any) -> str | None:
    """The canonical 18-character form of a Salesforce id, or None if malformed.

    A 15-character id is case-sensitive; an 18-character id is read
    case-insensitively (its suffix restores the case of the first 15
    characters, as Salesforce does) and must carry a consistent checksum.
    """
    if not isinstance(raw, str) or not _ID_CHARS.match(raw):
        return None
    if len(raw) == 15:
        return raw + id_suffix(raw)
    if len(raw) != 18:
        return None
    suffix = raw[15:].upper()
    chars = list(raw[:15])
    for chunk, code in enumerate(suffix):
        bits = _SUFFIX_ALPHABET.find(code)
        if bits < 0:
            return None
        for pos in range(5):
            index = chunk * 5 + pos
            char = chars[index]
            if bits & (1 << pos):
                if not char.isalpha():
                    return None
                chars[index] = char.upper()
            elif char.isalpha():
                chars[index] = char.lower()
    id15 = "".join(chars)
    if id_suffix(id15) != suffix:
        return None
    return id15 + suffix


def make_id(key_prefix: str, number: int, *, pod: str = "5g00000") -> str:
    """A deterministic, valid 18-character id: prefix + pod + base62 counter."""
    digits = []
    value = number * 104729 + 3_000_000  # spread the counter so ids mix upper and lower case
    for _ in range(15 - len(key_prefix) - len(pod)):
        digits.append(_BASE62[value % 62])
        value //= 62
    id15 = key_prefix + pod + "".join(reversed(digits))
    return id15 + id_suffix(id15)


# ------------------------------------------------------------------ schema model

STRING_TYPES = {"string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone", "url", "id",
                "reference", "encryptedstring"}
NUMBER_TYPES = {"double", "currency", "percent"}
INT_TYPES = {"int", "long"}
SOAP_TYPES = {
    "string": "xsd:string", "textarea": "xsd:string", "picklist": "xsd:string", "multipicklist": "xsd:string",
    "combobox": "xsd:string", "email": "xsd:string", "phone": "xsd:string", "url": "xsd:string", "id": "tns:ID",
    "reference": "tns:ID", "encryptedstring": "xsd:string", "boolean": "xsd:boolean", "int": "xsd:int",
    "long": "xsd:long", "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
    "date": "xsd:date", "datetime": "xsd:dateTime", "time": "xsd:time", "address": "urn:address",
    "location": "urn:location", "base64": "xsd:base64Binary", "anyType": "xsd:anyType",
}


@dataclass
class PicklistValue:
    value: str
    label: str | None = None
    active: bool = True
    default_value: bool = False
    # For a dependent picklist: the controller's values this one is valid for (option values of a
    # picklist controller, True / False of a checkbox controller).
    valid_for: tuple[Any, ...] = ()

    def describe(self, controller: SFField | None = None) -> dict[str, Any]:
        return {"active": self.active, "defaultValue": self.default_value, "label": self.label or self.value,
                "validFor": _valid_for(self.valid_for, controller) if controller is not None else None,
                "value": self.value}


def _valid_for(valid: Sequence[Any], controller: SFField) -> str:
    """Salesforce's ``validFor``: base64 of a bitmap over the controller's values, most significant bit
    first; bit i is the controller's i-th picklist value as describe lists it, or for a checkbox bit 0
    unchecked and bit 1 checked."""
    import base64

    if controller.type == "boolean":
        index = {False: 0, True: 1}
        size = 2
    else:
        index = {p.value: i for i, p in enumerate(controller.picklist_values)}
        size = len(controller.picklist_values)
    bitmap = bytearray(max(3, -(-((size + 7) // 8) // 3) * 3))  # whole groups of 3 bytes, as Salesforce sends
    for value in valid:
        position = index.get(value)
        if position is not None:
            bitmap[position >> 3] |= 0x80 >> (position & 7)
    return base64.b64encode(bytes(bitmap)).decode("ascii")


@dataclass
class SFField:
    """One field of a simulated sObject, in Salesforce describe terms."""

    name: str
    type: str
    label: str | None = None
    updateable: bool = True
    createable: bool = True
    calculated: bool = False
    nillable: bool = True
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    picklist_values: list[PicklistValue] = field(default_factory=list)
    restricted_picklist: bool = False
    reference_to: tuple[str, ...] = ()
    custom: bool | None = None
    # A dependent picklist names its controlling field (a picklist or checkbox of the same object); its
    # values say what they are valid for. Writes do not check the dependency (the REST API is known not to).
    controller: str | None = None

    def describe(self, obj: SFObject | None = None) -> dict[str, Any]:
        controller = obj.field(self.controller) if obj is not None and self.controller else None
        return {
            "aggregatable": self.type not in ("textarea", "multipicklist", "address", "location"),
            "autoNumber": False,
            "byteLength": self.length * 3,
            "calculated": self.calculated,
            "calculatedFormula": "Amount * Probability / 100" if self.calculated else None,
            "caseSensitive": False,
            "controllerName": controller.name if controller is not None else None,
            "createable": self.createable,
            "custom": self.name.endswith("__c") if self.custom is None else self.custom,
            "defaultValue": None,
            "defaultedOnCreate": self.type == "boolean",
            "dependentPicklist": controller is not None,
            "digits": self.digits,
            "externalId": False,
            "filterable": self.type not in ("textarea", "address", "location"),
            "htmlFormatted": False,
            "idLookup": self.type == "id",
            "label": self.label or self.name,
            "length": self.length,
            "name": self.name,
            "nameField": self.name == "Name",
            "nillable": self.nillable and self.type != "boolean",  # a checkbox is never null
            "picklistValues": [value.describe(controller) for value in self.picklist_values],
            "precision": self.precision,
            "referenceTo": list(self.reference_to),
            "relationshipName": (self.name[:-2] if self.type == "reference" and self.name.endswith("Id") else None),
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "soapType": SOAP_TYPES.get(self.type, "xsd:anyType"),
            "sortable": self.type not in ("textarea", "multipicklist", "address", "location"),
            "type": self.type,
            "unique": False,
            "updateable": self.updateable,
        }


@dataclass
class SFObject:
    name: str
    key_prefix: str
    label: str
    fields: dict[str, SFField] = field(default_factory=dict)
    custom: bool = False

    def field(self, name: str) -> SFField | None:
        """Field names are case-insensitive in Salesforce."""
        found = self.fields.get(name)
        if found is not None:
            return found
        folded = name.casefold()
        for key, value in self.fields.items():
            if key.casefold() == folded:
                return value
        return None

    def describe(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "activateable": False, "createable": True, "custom": self.custom, "customSetting": False,
            "deletable": True, "deprecatedAndHidden": False, "feedEnabled": False, "keyPrefix": self.key_prefix,
            "label": self.label, "labelPlural": self.label + "s", "layoutable": True, "mergeable": False,
            "name": self.name, "queryable": True, "replicateable": True, "retrieveable": True,
            "searchable": True, "triggerable": True, "undeletable": True, "updateable": True,
            "fields": [f.describe(self) for f in self.fields.values()],
            "childRelationships": [], "recordTypeInfos": [],
            "urls": {"describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}", "sobject": base},
        }

    def summary(self, version: str) -> dict[str, Any]:
        full = self.describe(version)
        full.pop("fields")
        full.pop("childRelationships")
        full.pop("recordTypeInfos")
        return full


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
            self._counter = itertools.count(1)
            self._cursors: dict[str, list[dict[str, Any]]] = {}

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
            for key, value in (values or {}).items():
                target = obj.field(key)
                if target is None:
                    raise KeyError(f"{object_name} has no field {key}")
                record[target.name] = _stored(target, value)
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
            for key, value in values.items():
                target = obj.field(key)
                if target is None:
                    raise KeyError(f"{object_name} has no field {key}")
                record[target.name] = _stored(target, value)
            self._touch(obj, record)

    def delete_record(self, object_name: str, record_id: str) -> None:
        with self.lock:
            key = to_id18(record_id) or ""
            self.records[object_name].pop(key)
            self.deleted[key] = object_name

    def _touch(self, obj: SFObject, record: dict[str, Any]) -> None:
        now = _format_datetime(dt.datetime.now(dt.UTC))
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
            body = {
                403: [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                429: [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                401: INVALID_SESSION_BODY,
            }.get(status, [{"message": "Server unavailable, please try again later.", "errorCode": "SERVER_UNAVAILABLE"}])
        with self.lock:
            self._faults.append(_Fault(status, body, dict(headers or {}), times, path_contains, delay, after,
                                       query_contains))

    def _take_fault(self, path: str, query: str = "") -> _Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.query_contains is not None and fault.query_contains not in query:
                    continue
                if (fault.path_contains is None and path.startswith("/services/data")) or (
                        fault.path_contains is not None and fault.path_contains in path):
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


# ------------------------------------------------------------------ default seed

def _picklist(*values: str, inactive: Sequence[str] = ()) -> list[PicklistValue]:
    out = [PicklistValue(value, value) for value in values]
    out += [PicklistValue(value, value, active=False) for value in inactive]
    return out


OPPORTUNITY_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
                      "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost")


def seed_default_schema(state: SalesforceState) -> None:
    """Opportunity, Account, Contact, Lead, Event and User as a typical org has them."""
    audit = [
        SFField("CreatedDate", "datetime", "Created Date", updateable=False, createable=False, nillable=False),
        SFField("LastModifiedDate", "datetime", "Last Modified Date", updateable=False, createable=False,
                nillable=False),
        SFField("SystemModstamp", "datetime", "System Modstamp", updateable=False, createable=False, nillable=False),
    ]
    owner = SFField("OwnerId", "reference", "Owner ID", nillable=False, length=18, reference_to=("User",))
    state.add_object("Opportunity", "006", [
        SFField("Name", "string", "Name", nillable=False, length=120),
        SFField("AccountId", "reference", "Account ID", length=18, reference_to=("Account",)),
        SFField("StageName", "picklist", "Stage", nillable=False, length=255,
                picklist_values=_picklist(*OPPORTUNITY_STAGES, inactive=("Legacy Stage",)),
                restricted_picklist=True),
        SFField("Amount", "currency", "Amount", precision=18, scale=2),
        SFField("CloseDate", "date", "Close Date", nillable=False),
        SFField("Description", "textarea", "Description", length=32000),
        SFField("NextStep", "string", "Next Step", length=255),
        SFField("Type", "picklist", "Opportunity Type", length=255, picklist_values=_picklist(
            "Existing Customer - Upgrade", "Existing Customer - Replacement", "Existing Customer - Downgrade",
            "New Customer")),
        SFField("LeadSource", "picklist", "Lead Source", length=255,
                picklist_values=_picklist("Web", "Phone Inquiry", "Partner Referral", "Other")),
        SFField("Probability", "percent", "Probability (%)", precision=3, scale=0),
        SFField("ExpectedRevenue", "currency", "Expected Amount", updateable=False, createable=False,
                calculated=True, precision=18, scale=2),
        SFField("IsClosed", "boolean", "Closed", updateable=False, createable=False, nillable=False),
        SFField("Competitors__c", "multipicklist", "Competitors", length=4099,
                picklist_values=_picklist("Gong", "Chorus", "Clari", "Outreach", "Other", inactive=("Legacy",)),
                restricted_picklist=True),
        SFField("Budget_Confirmed__c", "boolean", "Budget Confirmed", nillable=False),
        SFField("Seats__c", "int", "Seats", digits=9),
        SFField("Next_Meeting__c", "datetime", "Next Meeting"),
        SFField("Pain_Points__c", "textarea", "Pain Points", length=1000),
        owner,
        *audit,
    ], label="Opportunity")
    state.add_object("Account", "001", [
        SFField("Name", "string", "Account Name", nillable=False, length=255),
        SFField("Industry", "picklist", "Industry", length=255,
                picklist_values=_picklist("Agriculture", "Banking", "Construction", "Energy", "Retail", "Technology")),
        SFField("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        SFField("NumberOfEmployees", "int", "Employees", digits=8),
        SFField("Website", "url", "Website", length=255),
        SFField("Phone", "phone", "Account Phone", length=40),
        SFField("Description", "textarea", "Account Description", length=32000),
        SFField("BillingCity", "string", "Billing City", length=40),
        SFField("BillingAddress", "address", "Billing Address", updateable=False, createable=False),
        SFField("Rating", "picklist", "Account Rating", length=255, picklist_values=_picklist("Hot", "Warm", "Cold")),
        SFField("Roofing_Material__c", "combobox", "Roofing Material", length=255,
                picklist_values=_picklist("Asphalt Shingle", "Metal", "Tile", "Slate")),
        owner,
        *audit,
    ], label="Account")
    state.add_object("Contact", "003", [
        SFField("FirstName", "string", "First Name", length=40),
        SFField("LastName", "string", "Last Name", nillable=False, length=80),
        SFField("Name", "string", "Full Name", updateable=False, createable=False, nillable=False, length=121),
        SFField("AccountId", "reference", "Account ID", length=18, reference_to=("Account",)),
        SFField("Email", "email", "Email", length=80),
        SFField("Phone", "phone", "Business Phone", length=40),
        SFField("Title", "string", "Title", length=128),
        SFField("Department", "string", "Department", length=80),
        SFField("Description", "textarea", "Contact Description", length=32000),
        SFField("Birthdate", "date", "Birthdate"),
        SFField("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False),
        owner,
        *audit,
    ], label="Contact")
    state.add_object("Lead", "00Q", [
        SFField("FirstName", "string", "First Name", length=40),
        SFField("LastName", "string", "Last Name", nillable=False, length=80),
        SFField("Company", "string", "Company", nillable=False, length=255),
        SFField("Email", "email", "Email", length=80),
        SFField("Phone", "phone", "Phone", length=40),
        SFField("Status", "picklist", "Lead Status", nillable=False, length=255, restricted_picklist=True,
                picklist_values=_picklist("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                                          "Closed - Not Converted")),
        SFField("Rating", "picklist", "Rating", length=255, picklist_values=_picklist("Hot", "Warm", "Cold")),
        SFField("NumberOfEmployees", "int", "Employees", digits=8),
        SFField("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        SFField("Description", "textarea", "Description", length=32000),
        SFField("Address", "address", "Address", updateable=False, createable=False),
        owner,
        *audit,
    ], label="Lead")
    state.add_object("Event", "00U", [
        SFField("Subject", "combobox", "Subject", length=255,
                picklist_values=_picklist("Call", "Email", "Meeting", "Send Letter/Quote", "Other")),
        SFField("StartDateTime", "datetime", "Start Date Time"),
        SFField("EndDateTime", "datetime", "End Date Time"),
        SFField("ActivityDate", "date", "Due Date Only"),
        SFField("DurationInMinutes", "int", "Duration", digits=8),
        SFField("Location", "string", "Location", length=255),
        SFField("Description", "textarea", "Description", length=32000),
        SFField("Type", "picklist", "Type", length=255,
                picklist_values=_picklist("Call", "Email", "Meeting", "Other")),
        SFField("WhatId", "reference", "Related To ID", length=18, reference_to=("Opportunity", "Account")),
        SFField("WhoId", "reference", "Name ID", length=18, reference_to=("Contact", "Lead")),
        owner,
        *audit,
    ], label="Event")
    state.add_object("User", "005", [
        SFField("Username", "string", "Username", nillable=False, length=80),
        SFField("FirstName", "string", "First Name", length=40),
        SFField("LastName", "string", "Last Name", nillable=False, length=80),
        SFField("Name", "string", "Full Name", updateable=False, createable=False, nillable=False, length=121),
        SFField("Email", "email", "Email", nillable=False, length=128),
        SFField("Title", "string", "Title", length=80),
        SFField("Department", "string", "Department", length=80),
        SFField("AboutMe", "textarea", "About Me", length=1000),
        SFField("IsActive", "boolean", "Active", nillable=False),
        *audit,
    ], label="User")


@dataclass(frozen=True)
class SeededIds:
    """Ids (18-character) of the records ``seed_default`` creates."""

    opportunity: str
    opportunity2: str
    account: str
    contact: str
    contact2: str
    lead: str
    event: str
    user: str
    deleted_opportunity: str


def seed_default(state: SalesforceState) -> SeededIds:
    """The default schema plus a small, realistic set of records."""
    seed_default_schema(state)
    user = state.create_record("User", {"Username": "rep@acme.example", "FirstName": "Riley", "LastName": "Rep",
                                        "Name": "Riley Rep", "Email": "rep@acme.example", "IsActive": True})
    account = state.create_record("Account", {"Name": "Acme Roofing", "Industry": "Construction", "OwnerId": user,
                                              "NumberOfEmployees": 120, "BillingCity": "Austin"})
    opportunity = state.create_record("Opportunity", {
        "Name": "Acme Roofing - Renewal", "AccountId": account, "StageName": "Qualification", "Amount": 12500,
        "CloseDate": "2024-05-01", "NextStep": "Send proposal", "Probability": 20, "ExpectedRevenue": 2500,
        "Competitors__c": "Gong;Chorus", "Budget_Confirmed__c": False, "Seats__c": 25,
        "Next_Meeting__c": "2024-05-01T10:00:00.000+0000", "OwnerId": user})
    opportunity2 = state.create_record("Opportunity", {
        "Name": "Acme Roofing - Expansion", "AccountId": account, "StageName": "Prospecting",
        "CloseDate": "2024-09-30", "OwnerId": user})
    contact = state.create_record("Contact", {"FirstName": "Dana", "LastName": "Diaz", "Name": "Dana Diaz",
                                              "AccountId": account, "Email": "dana@acme.example", "OwnerId": user})
    contact2 = state.create_record("Contact", {"FirstName": "Sam", "LastName": "Lee", "Name": "Sam Lee",
                                               "AccountId": account, "OwnerId": user})
    lead = state.create_record("Lead", {"FirstName": "Pat", "LastName": "Moore", "Company": "Moore Homes",
                                        "Status": "Open - Not Contacted", "OwnerId": user})
    event = state.create_record("Event", {"Subject": "Meeting", "StartDateTime": "2024-04-20T15:00:00.000+0000",
                                          "EndDateTime": "2024-04-20T16:00:00.000+0000",
                                          "DurationInMinutes": 60, "WhatId": opportunity, "OwnerId": user})
    deleted = state.create_record("Opportunity", {"Name": "Old deal", "StageName": "Closed Lost",
                                                  "CloseDate": "2023-01-31", "OwnerId": user})
    state.delete_record("Opportunity", deleted)
    return SeededIds(opportunity=opportunity, opportunity2=opportunity2, account=account, contact=contact,
                     contact2=contact2, lead=lead, event=event, user=user, deleted_opportunity=deleted)


# ------------------------------------------------------------------ value typing

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$")


def _format_datetime(value: dt.datetime) -> str:
    """A datetime as Salesforce stores and returns it: UTC, whole seconds (sent milliseconds are dropped)."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + ".000+0000"


def _parse_date(text: str) -> dt.date | None:
    match = _DATE_RE.match(text)
    if not match:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _parse_datetime(text: str) -> dt.datetime | None:
    match = _DATETIME_RE.match(text)
    if not match:
        return None
    year, month, day, hour, minute = (int(match[i]) for i in range(1, 6))
    second = int(match[6] or 0)
    micro = int((match[7] or "0").ljust(6, "0")[:6])
    zone = match[8]
    if zone in (None, "Z"):
        tz = dt.UTC
    else:
        digits = zone[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        tz = dt.timezone(offset if zone[0] == "+" else -offset)
    try:
        return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None


def _stored(item: SFField, value: Any) -> Any:
    """A seed value in the form the API returns it (no validation)."""
    if value is None:
        return None
    if item.type in NUMBER_TYPES:
        return float(value)
    if item.type in INT_TYPES:
        return int(value)
    if item.type == "datetime" and isinstance(value, str):
        parsed = _parse_datetime(value)
        return _format_datetime(parsed) if parsed else value
    if item.type == "multipicklist" and isinstance(value, (list, tuple)):
        return ";".join(value)
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "VALUE_NULL"


class _ParseError(Exception):
    def __init__(self, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


def _deserialize(item: SFField, value: Any) -> Any:
    """Salesforce's JSON deserialisation of one field: the parsed value, or _ParseError."""
    if value is None:
        return None
    kind = _json_kind(value)
    bad = _ParseError(f"Cannot deserialize instance of {item.type} from {kind} value "
                      f"{value if not isinstance(value, (list, dict)) else json.dumps(value)[:40]}", value)
    if isinstance(value, (list, dict)):
        raise bad
    if item.type == "boolean":
        if not isinstance(value, bool):
            raise bad
        return value
    if item.type in INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if item.type in NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        return value
    if item.type == "date":
        parsed = _parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            raise bad
        return parsed.isoformat()
    if item.type == "datetime":
        parsed = _parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise bad
        return _format_datetime(parsed)
    if not isinstance(value, str):
        raise bad
    return value


_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _field_errors(item: SFField, value: Any, state: SalesforceState | None = None) -> tuple[Any, dict[str, Any] | None]:
    """Per-record validation of one deserialised value: (value to store, error or None)."""
    label = item.label or item.name
    if item.type == "reference" and value == "":
        value = None

    def error(code: str, message: str) -> tuple[Any, dict[str, Any]]:
        return None, {"statusCode": code, "message": message, "fields": [item.name]}

    if value is None:
        if item.type == "boolean":
            return False, None  # a checkbox cannot be null: the API stores false
        if not item.nillable:
            return error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{item.name}]")
        if item.restricted_picklist and item.type == "picklist":
            return None, None
        return None, None
    if item.type in ("picklist", "multipicklist") and item.restricted_picklist:
        active = {p.value for p in item.picklist_values if p.active}
        chosen = value.split(";") if item.type == "multipicklist" else [value]
        for one in chosen:
            if one not in active:
                return error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             f"{label}: bad value for restricted picklist field: {one}")
    if item.type in STRING_TYPES and item.length and len(value) > item.length:
        shown = value if len(value) <= 40 else value[:37] + "..."
        return error("STRING_TOO_LONG", f"{label}: data value too large: {shown} (max length={item.length})")
    if item.type == "reference" and state is not None:
        canonical = to_id18(value)
        targets = [state.objects[name] for name in item.reference_to if name in state.objects]
        if canonical is None or not any(canonical.startswith(t.key_prefix) for t in targets):
            return error("MALFORMED_ID", f"{label}: id value of incorrect type: {value}")
        if not any(canonical in state.records.get(t.name, {}) for t in targets):
            return error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        return canonical, None
    if item.type == "email" and value and not _EMAIL_RE.match(value):
        return error("INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {value}")
    if item.type in NUMBER_TYPES:
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:  # pragma: no cover - finite floats always convert
            return error("NUMBER_OUTSIDE_VALID_RANGE", f"{label}: value outside of valid range on numeric field: {value}")
        number = number.quantize(Decimal(1).scaleb(-item.scale), rounding=ROUND_HALF_UP) if item.scale >= 0 else number
        whole = abs(int(number))
        if item.precision and whole and len(str(whole)) > item.precision - item.scale:
            return error("NUMBER_OUTSIDE_VALID_RANGE",
                         f"{label}: value outside of valid range on numeric field: {value}")
        return float(number), None
    if item.type in INT_TYPES:
        limit = 10 ** (item.digits or 9)
        if abs(value) >= limit or abs(value) > 2**31 - 1 and item.type == "int":
            return error("NUMBER_OUTSIDE_VALID_RANGE",
                         f"{label}: value outside of valid range on numeric field: {value}")
    return value, None


# ------------------------------------------------------------------ SOQL subset

_SOQL_RE = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL)
_WHERE_EQ = re.compile(r"^Id\s*=\s*'(?P<id>[^']*)'$", re.IGNORECASE)
_WHERE_IN = re.compile(r"^Id\s+IN\s*\((?P<ids>.*)\)$", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(r"\s*'([^']*)'\s*(?:,|$)")


class _QueryError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _soql_error(query: str, column: int, text: str, code: str) -> _QueryError:
    pointer = " " * max(column - 1, 0) + "^"
    return _QueryError(code, f"\n{query}\n{pointer}\nERROR at Row:1:Column:{column}\n{text}")


def _run_query(state: SalesforceState, query: str, version: str) -> list[dict[str, Any]]:
    match = _SOQL_RE.match(query)
    if not match:
        raise _QueryError("MALFORMED_QUERY", f"unexpected token: {query.split()[0] if query.split() else query!r}")
    obj = state.object(match["object"])
    if obj is None:
        name = match["object"]
        raise _soql_error(query, match.start("object") + 1,
                          f"sObject type '{name}' is not supported. If you are attempting to use a custom object, "
                          "be sure to append the '__c' after the entity name. Please reference your WSDL or the "
                          "describe call for the appropriate names.", "INVALID_TYPE")
    selected: list[SFField] = []
    offset = match.start("fields")
    seen: set[str] = set()
    for raw in match["fields"].split(","):
        name = raw.strip()
        column = offset + len(raw) - len(raw.lstrip()) + 1
        offset += len(raw) + 1
        item = obj.field(name) if re.fullmatch(r"\w+", name) else None
        if item is None:
            raise _soql_error(query, column,
                              f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a "
                              "custom field, be sure to append the '__c' after the custom field name. Please "
                              "reference your WSDL or the describe call for the appropriate names.", "INVALID_FIELD")
        if item.name in seen:
            raise _QueryError("MALFORMED_QUERY", f"duplicate field selected: {item.name}")
        seen.add(item.name)
        selected.append(item)
    records = state.records.get(obj.name, {})
    where = match["where"]
    if where is None:
        chosen = list(records.values())
    else:
        where = where.strip()
        wanted: list[str]
        eq = _WHERE_EQ.match(where)
        within = _WHERE_IN.match(where)
        if eq:
            wanted = [eq["id"]]
        elif within:
            body = within["ids"]
            wanted = [m.group(1) for m in _QUOTED.finditer(body)]
            if re.sub(r"\s*'[^']*'\s*(,|$)", "", body).strip():
                raise _QueryError("MALFORMED_QUERY", f"unexpected token in IN list: {body[:40]}")
        else:
            raise _QueryError("MALFORMED_QUERY", "only Id = '..' and Id IN ('..') filters are simulated")
        chosen = []
        picked: set[str] = set()
        for raw_id in wanted:
            canonical = to_id18(raw_id)
            if canonical is None:
                column = match.start("where") + 1 + query[match.start("where"):].find(raw_id)
                raise _soql_error(query, column, f"invalid ID field: {raw_id}", "INVALID_QUERY_FILTER_OPERATOR")
            record = records.get(canonical)
            if record is not None and canonical not in picked:
                picked.add(canonical)
                chosen.append(record)
    if match["limit"] is not None:
        chosen = chosen[: int(match["limit"])]
    out = []
    for record in chosen:
        row: dict[str, Any] = {"attributes": {"type": obj.name,
                                              "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}"}}
        for item in selected:
            row[item.name] = copy.deepcopy(record.get(item.name))
        out.append(row)
    return out


# ------------------------------------------------------------------ writes

def _record_update_errors(state: SalesforceState, obj: SFObject, record_id: Any,
                          values: Mapping[str, Any]) -> tuple[str | None, dict[str, Any], list[dict[str, Any]]]:
    """Validate one update: (id18, field values to store, errors)."""
    errors: list[dict[str, Any]] = []
    if record_id is None:
        return None, {}, [{"statusCode": "MISSING_ARGUMENT", "message": "Id not specified in an update call",
                           "fields": []}]
    canonical = to_id18(record_id)
    if canonical is None:
        return None, {}, [{"statusCode": "MALFORMED_ID", "message": f"malformed id {record_id}", "fields": []}]
    if not canonical.startswith(obj.key_prefix):
        return None, {}, [{"statusCode": "MALFORMED_ID",
                           "message": f"{obj.label} ID: id value of incorrect type: {record_id}", "fields": ["Id"]}]
    if canonical in state.deleted:
        return None, {}, [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]
    if canonical not in state.records.get(obj.name, {}):
        return None, {}, [{"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id",
                           "fields": []}]
    changes: dict[str, Any] = {}
    not_updateable: list[str] = []
    for key, value in values.items():
        item = obj.field(key)
        if item is None:
            errors.append({"statusCode": "INVALID_FIELD",
                           "message": f"No such column '{key}' on sobject of type {obj.name}", "fields": []})
            continue
        if not item.updateable:
            not_updateable.append(item.name)
            continue
        stored, error = _field_errors(item, value, state)
        if error is not None:
            errors.append(error)
        else:
            changes[item.name] = stored
    if not_updateable:
        errors.append({"statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                       "message": f"Unable to create/update fields: {', '.join(not_updateable)}. Please check the "
                                  "security settings of this field and verify that it is read/write for your "
                                  "profile or permission set.",
                       "fields": not_updateable})
    return canonical, changes, errors


def _deserialize_record(state: SalesforceState, raw_text: str, record: Any) -> tuple[SFObject, Any, dict[str, Any]]:
    """Type-check one collection record as Salesforce's JSON parser does."""
    if not isinstance(record, dict):
        raise _ParseError(f"Cannot deserialize instance of SObject from {_json_kind(record)} value")
    attributes = record.get("attributes")
    if not isinstance(attributes, dict) or not isinstance(attributes.get("type"), str):
        raise _QueryError("INVALID_TYPE", "Must send a concrete entity type.")
    obj = state.object(attributes["type"])
    if obj is None:
        raise _QueryError("INVALID_TYPE", f"sObject type '{attributes['type']}' is not supported.")
    record_id = None
    values: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if key.casefold() == "id":
            if value is not None and not isinstance(value, str):
                raise _ParseError(f"Cannot deserialize instance of id from {_json_kind(value)} value {value}")
            record_id = value
            continue
        item = obj.field(key)
        if item is None:
            if isinstance(value, (list, dict)):
                raise _ParseError(f"Cannot deserialize instance of string from {_json_kind(value)} value")
            values[key] = value
            continue
        values[key] = _deserialize(item, value)
    return obj, record_id, values


def _parser_error(raw_text: str, message: str, probe: Any = None) -> list[dict[str, Any]]:
    column = 1
    if probe is not None:
        found = raw_text.find(json.dumps(probe)[:20])
        column = found + 1 if found >= 0 else 1
    return [{"message": f"{message} or request may be missing a required field at [line:1, column:{column}]",
             "errorCode": "JSON_PARSER_ERROR"}]


def _collection_update(state: SalesforceState, raw_text: str) -> tuple[int, Any]:
    try:
        body = json.loads(raw_text)
    except ValueError as exc:
        return 400, [{"message": f"Unexpected character: {exc.msg} at [line:{exc.lineno}, column:{exc.colno}]",
                      "errorCode": "JSON_PARSER_ERROR"}]
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        return 400, _parser_error(raw_text, "Cannot deserialize instance of SObjectCollection from "
                                            f"{_json_kind(body.get('records') if isinstance(body, dict) else body)} value")
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        return 400, _parser_error(raw_text, f"Cannot deserialize instance of boolean from {_json_kind(all_or_none)} "
                                            f"value {all_or_none}", all_or_none)
    records = body["records"]
    if len(records) > MAX_COLLECTION_RECORDS:
        return 400, [{"message": "record limit reached. cannot submit more than 200 records into this call",
                      "errorCode": "EXCEEDED_ID_LIMIT"}]
    parsed = []
    for record in records:
        try:
            parsed.append(_deserialize_record(state, raw_text, record))
        except _ParseError as exc:
            return 400, _parser_error(raw_text, str(exc), exc.value)
        except _QueryError as exc:
            return 400, [{"message": exc.message, "errorCode": exc.code}]
    results: list[dict[str, Any]] = []
    staged: list[tuple[SFObject, str, dict[str, Any]]] = []
    seen: set[str] = set()
    for obj, record_id, values in parsed:
        canonical, changes, errors = _record_update_errors(state, obj, record_id, values)
        if canonical is not None and canonical in seen:
            errors = [{"statusCode": "DUPLICATE_VALUE", "message": f"Duplicate id in list: {canonical}", "fields": []}]
        if canonical is not None:
            seen.add(canonical)
        if errors:
            results.append({"success": False, "errors": errors})
        else:
            results.append({"id": canonical, "success": True, "errors": []})
            staged.append((obj, canonical, changes))
    if all_or_none and any(not r["success"] for r in results):
        rolled = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                  "message": "Record rolled back because not all records were valid and the request was using "
                             "AllOrNone header", "fields": []}
        return 200, [r if not r["success"] else {"id": r["id"], "success": False, "errors": [rolled]}
                     for r in results]
    for obj, canonical, changes in staged:
        record = state.records[obj.name][canonical]
        record.update(changes)
        state._touch(obj, record)
    return 200, results


# ------------------------------------------------------------------ login

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER_NS = "urn:partner.soap.sforce.com"


def _soap_fault(code: str, message: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {_xml_escape(message)}</faultstring>
<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{_xml_escape(message)}</sf:exceptionMessage></sf:LoginFault></detail>
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _soap_login(state: SalesforceState, raw: bytes, base_url: str, version: str) -> tuple[int, str]:
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        return 500, _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    username = root.findtext(f".//{{{PARTNER_NS}}}username")
    password = root.findtext(f".//{{{PARTNER_NS}}}password")
    with state.lock:
        login = state.logins.get(username or "")
        if login is None or password != login.password + login.security_token:
            return 500, _soap_fault("INVALID_LOGIN",
                                    "Invalid username, password, security token; or user locked out.")
        token = state.issue_token(login.username)
    server = f"{base_url}/services/Soap/u/{version}/{ORG_ID[:15]}"
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns="{PARTNER_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><loginResponse><result>
<metadataServerUrl>{base_url}/services/Soap/m/{version}/{ORG_ID[:15]}</metadataServerUrl>
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>
<serverUrl>{server}</serverUrl><sessionId>{token}</sessionId><userId>{login.user_id}</userId>
<userInfo><organizationId>{ORG_ID}</organizationId><userName>{_xml_escape(login.username)}</userName></userInfo>
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""
    return 200, body


def _jwt_login(state: SalesforceState, form: Mapping[str, str], base_url: str) -> tuple[int, Any]:
    import jwt  # PyJWT, installed with simple-salesforce

    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
    assertion = form.get("assertion") or ""
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return 400, {"error": "invalid_grant", "error_description": "invalid assertion"}
    with state.lock:
        public_key = state.jwt_consumers.get(str(unverified.get("iss")))
        audiences = set(state.jwt_audiences)
        if public_key is None:
            return 400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
    audience = unverified.get("aud")
    if not (audience in audiences or (isinstance(audience, str)
                                      and re.fullmatch(r"https://[\w.-]+\.my\.salesforce\.com", audience))):
        return 400, {"error": "invalid_grant", "error_description": "audience is invalid"}
    try:
        claims = jwt.decode(assertion, public_key, algorithms=["RS256"], audience=audience,
                            options={"require": ["exp", "iss", "sub", "aud"]})
    except jwt.ExpiredSignatureError:
        return 400, {"error": "invalid_grant", "error_description": "expired authorization code"}
    except jwt.PyJWTError:
        return 400, {"error": "invalid_grant", "error_description": "invalid assertion"}
    username = claims.get("sub")
    with state.lock:
        if username not in state.logins:
            return 400, {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"}
        token = state.issue_token(username)
        user_id = state.logins[username].user_id
    return 200, {"access_token": token, "scope": "api", "instance_url": base_url,
                 "id": f"{base_url}/id/{ORG_ID}/{user_id}", "token_type": "Bearer"}


# ------------------------------------------------------------------ app

def _json_response(status: int, body: Any, state: SalesforceState, headers: Mapping[str, str] | None = None) -> Response:
    out = {"Sforce-Limit-Info": state.limit_info(), **(headers or {})}
    if status == 204:
        return Response(status_code=204, headers=out)
    return Response(json.dumps(body), status_code=status, media_type="application/json;charset=UTF-8", headers=out)


def _base_url(request: Request) -> str:
    server = request.scope.get("server") or ("127.0.0.1", 443)
    host, port = server[0], server[1]
    return f"https://{host}:{port}"


_DATA = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?P<rest>/.*)?$")


def create_app(state: SalesforceState) -> Starlette:
    """The ASGI app; serve it with ``ServedApp(create_app(state), tls=True)``."""

    async def handle(request: Request) -> Response:
        path = request.url.path
        raw = await request.body()
        method = request.method
        query = {key: value for key, value in request.query_params.items()}
        # the log never keeps passwords, security tokens or assertions
        if path.startswith("/services/Soap/") or path.startswith("/services/oauth2/"):
            logged_body: Any = {"grant_type": parse_qs(raw.decode("utf-8", "replace")).get("grant_type", [None])[0]} \
                if path.startswith("/services/oauth2/") else None
        else:
            try:
                logged_body = json.loads(raw) if raw else None
            except ValueError:
                logged_body = raw.decode("utf-8", "replace")
        authorized = _authorized(request)
        state.log(LoggedRequest(method, path, query, logged_body, authorized))

        fault = state._take_fault(path, unquote_plus(request.url.query))
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return _json_response(fault.status, fault.body, state, fault.headers)
        if len(str(request.url)) > MAX_URI_LENGTH:
            return Response("URI Too Long", status_code=414, headers={"Sforce-Limit-Info": state.limit_info()})

        if path.startswith("/services/Soap/u/") and method == "POST":
            version = path.rstrip("/").split("/")[4] if len(path.split("/")) > 4 else "59.0"
            status, text = _soap_login(state, raw, _base_url(request), version)
            return Response(text, status_code=status, media_type="text/xml;charset=UTF-8",
                            headers={"Sforce-Limit-Info": state.limit_info()})
        if path.rstrip("/") == "/services/oauth2/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            status, body = _jwt_login(state, form, _base_url(request))
            return _json_response(status, body, state)
        if path.rstrip("/") == "/services/data" and method == "GET":
            return _json_response(200, [{"label": f"API {v}", "url": f"/services/data/v{v}", "version": v}
                                        for v in API_VERSIONS], state)
        match = _DATA.match(path)
        if match is None or match["version"] not in API_VERSIONS:
            return _json_response(404, NOT_FOUND_BODY, state)
        if not authorized:
            return _json_response(401, INVALID_SESSION_BODY, state)
        with state.lock:
            state.api_usage += 1
            status, body = _dispatch(state, method, match["version"], (match["rest"] or "/"), query, raw)
        return _json_response(status, body, state)

    def _authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        with state.lock:
            return header[7:].strip() in state.tokens

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])


def _dispatch(state: SalesforceState, method: str, version: str, rest: str, query: Mapping[str, str],
              raw: bytes) -> tuple[int, Any]:
    parts = [p for p in rest.split("/") if p]
    base = f"/services/data/v{version}"
    if not parts and method == "GET":
        return 200, {name: f"{base}/{name}" for name in ("sobjects", "query", "queryAll", "limits", "composite",
                                                         "search", "tooling")}
    if parts == ["limits"] and method == "GET":
        return 200, {"DailyApiRequests": {"Max": state.api_limit, "Remaining": state.api_limit - state.api_usage},
                     "DataStorageMB": {"Max": 1024, "Remaining": 1000}}
    if parts == ["sobjects"] and method == "GET":
        return 200, {"encoding": "UTF-8", "maxBatchSize": 200,
                     "sobjects": [obj.summary(version) for obj in state.objects.values()]}
    if parts and parts[0] == "query" and method == "GET":
        if len(parts) == 2:  # next page
            rows = state._cursors.get(parts[1].rsplit("-", 1)[0])
            if rows is None:
                return 400, [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
            return 200, _query_page(state, version, parts[1].rsplit("-", 1)[0], rows,
                                    int(parts[1].rsplit("-", 1)[1]))
        q = query.get("q")
        if not q:
            return 400, [{"message": "A query string has to be specified", "errorCode": "MALFORMED_QUERY"}]
        try:
            rows = _run_query(state, q, version)
        except _QueryError as exc:
            return 400, [{"message": exc.message, "errorCode": exc.code}]
        return 200, _query_page(state, version, None, rows, 0)
    if parts == ["composite", "sobjects"] and method == "PATCH":
        return _collection_update(state, raw.decode("utf-8", "replace"))
    if len(parts) >= 2 and parts[0] == "sobjects":
        obj = state.object(parts[1])
        if obj is None:
            return 404, NOT_FOUND_BODY
        if len(parts) == 3 and parts[2] == "describe" and method == "GET":
            return 200, obj.describe(version)
        if len(parts) == 2 and method == "GET":
            return 200, {"objectDescribe": obj.summary(version), "recentItems": []}
        if len(parts) == 3:
            return _single_record(state, obj, parts[2], method, query, raw, version)
    return 404, NOT_FOUND_BODY


def _query_page(state: SalesforceState, version: str, cursor: str | None, rows: list[dict[str, Any]],
                start: int) -> dict[str, Any]:
    size = state.query_batch_size
    page = rows[start : start + size]
    out: dict[str, Any] = {"totalSize": len(rows), "done": start + size >= len(rows), "records": page}
    if not out["done"]:
        if cursor is None:
            cursor = "01g5g00000" + secrets.token_hex(4)
            state._cursors[cursor] = rows
        out["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{start + size}"
    return out


def _single_record(state: SalesforceState, obj: SFObject, raw_id: str, method: str, query: Mapping[str, str],
                   raw: bytes, version: str) -> tuple[int, Any]:
    canonical = to_id18(raw_id)
    if method == "GET":
        if canonical is None or canonical not in state.records[obj.name]:
            if canonical in state.deleted:
                return 404, [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}]
            return 404, NOT_FOUND_BODY
        record = state.records[obj.name][canonical]
        names = [n.strip() for n in query["fields"].split(",")] if query.get("fields") else list(obj.fields)
        out: dict[str, Any] = {"attributes": {"type": obj.name,
                                              "url": f"/services/data/v{version}/sobjects/{obj.name}/{canonical}"}}
        for name in names:
            item = obj.field(name)
            if item is None:
                return 400, [{"message": f"No such column '{name}' on entity '{obj.name}'. If you are attempting "
                                         "to use a custom field, be sure to append the '__c' after the custom field "
                                         "name. Please reference your WSDL or the describe call for the appropriate "
                                         "names.", "errorCode": "INVALID_FIELD"}]
            out[item.name] = copy.deepcopy(record.get(item.name))
        return 200, out
    if method == "PATCH":
        if canonical is None:
            return 404, NOT_FOUND_BODY
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return 400, [{"message": f"Unexpected character: {exc.msg}", "errorCode": "JSON_PARSER_ERROR"}]
        if not isinstance(body, dict):
            return 400, _parser_error(raw.decode(), f"Cannot deserialize instance of {obj.name} from "
                                                    f"{_json_kind(body)} value")
        record = {"attributes": {"type": obj.name}, **body, "Id": raw_id}
        try:
            _, record_id, values = _deserialize_record(state, raw.decode(), record)
        except _ParseError as exc:
            return 400, _parser_error(raw.decode(), str(exc))
        except _QueryError as exc:
            return 400, [{"message": exc.message, "errorCode": exc.code}]
        if canonical in state.deleted:
            return 404, [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}]
        if canonical not in state.records[obj.name]:
            return 404, NOT_FOUND_BODY
        found, changes, errors = _record_update_errors(state, obj, record_id, values)
        if errors:
            return 400, [{"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]}
                         for e in errors]
        stored = state.records[obj.name][canonical]
        stored.update(changes)
        state._touch(obj, stored)
        return 204, None
    return 405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": f"HTTP Method '{method}' not allowed"}]


# ------------------------------------------------------------------ client side

class LocalRoute(HTTPAdapter):
    """A requests transport adapter that sends ``*.salesforce.com`` to a local URL.

    simple-salesforce logs in at ``https://{domain}.salesforce.com`` no matter
    what; mounted on ``https://``, this adapter rewrites those requests to the
    simulator (``served_url``) and passes every other host through unchanged.
    """

    def __init__(self, served_url: str, suffixes: Sequence[str] = ("salesforce.com",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = urlsplit(served_url)
        self.scheme = target.scheme
        self.netloc = target.netloc
        self.suffixes = tuple(suffixes)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        host = (parts.hostname or "").lower()
        if any(host == s or host.endswith("." + s) for s in self.suffixes):
            request.url = urlunsplit((self.scheme, self.netloc, parts.path, parts.query, parts.fragment))
        return super().send(request, *args, **kwargs)


def route_salesforce_logins(session: requests.Session, served_url: str) -> requests.Session:
    """Mount ``LocalRoute`` on ``session`` so logins reach the simulator; returns the session."""
    session.mount("https://", LocalRoute(served_url))
    return session


def client_session(served_url: str | None = None, *, ca_bundle: str | None = None) -> requests.Session:
    """A requests session that trusts the local CA and (given ``served_url``) routes logins to it.

    ``trust_env`` is off so that an ambient ``REQUESTS_CA_BUNDLE`` or proxy
    cannot override the local CA.
    """
    from simulators.tls import local_tls

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle or local_tls().ca_bundle
    if served_url:
        route_salesforce_logins(session, served_url)
    return session
