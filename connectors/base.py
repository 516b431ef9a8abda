"""The connector interface: what a CRM plugin provides to the pipeline.

A connector knows one CRM's wire protocol and nothing of Siro. The pipeline
asks it, per object, for four things:

* ``default_models``: which Siro ``crmModelName`` (and aliases) map to which
  link slot and CRM object;
* ``object_schema``: the fields of an object, in the CRM-neutral
  ``FieldSchema`` form that ``worker.pipeline.coercion`` validates values against;
* ``read``: the current values of many records (one request per object and
  batch), so the pipeline can diff and never send a value the CRM already has;
* ``write``: many record updates, each carrying all of its fields, with a
  result per record and per field (partial success: one bad record or field
  never sinks its siblings).

Values cross this boundary in canonical Python form (see ``worker.pipeline.coercion``);
``encode`` turns one into what the CRM's JSON wants. Failures that concern a
whole call raise one of the errors below (``AuthError``, ``TransientError``,
``PermanentError``, ``UnknownObject``; ``ConfigError`` from the constructor);
failures of one record or field are returned, never raised.
"""

from __future__ import annotations

import abc
import datetime as dt
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Mapping, Protocol, Sequence

SLOTS = ("opportunity", "account", "contacts", "lead", "engagement", "users")
"""The link slots of a Siro recording's ``crm`` block."""


class FieldType(StrEnum):
    """CRM-neutral field types; each connector maps its own types onto these."""

    STRING = "string"  # single-line text, ids, emails, phones, urls
    TEXT = "text"  # long / rich text
    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"  # double, currency, percent
    DATE = "date"
    DATETIME = "datetime"
    PICKLIST = "picklist"  # one value out of options
    MULTIPICKLIST = "multipicklist"  # several values out of options
    OTHER = "other"  # compound or binary types the service does not write


@dataclass(frozen=True)
class Option:
    """One option of a picklist / enumeration: ``value`` is what is sent."""

    value: str
    label: str
    active: bool = True


@dataclass(frozen=True)
class FieldSchema:
    name: str  # the CRM's exact field / property name
    type: FieldType
    label: str = ""
    writable: bool = True
    # Why the field cannot be written (calculated, read-only, ...), for reports.
    not_writable_reason: str | None = None
    max_length: int | None = None  # text longer than this is invalid_value
    options: tuple[Option, ...] = ()
    restricted: bool = False  # a value outside ``options`` is invalid_value
    precision: int | None = None  # total digits of a number, when the CRM limits it
    # Digits after the decimal point of a number; for a DATETIME, the digits of
    # fractional seconds the CRM keeps (Salesforce 0, default 3), so a value we
    # send compares equal to what the CRM stores.
    scale: int | None = None
    crm_type: str = ""  # the CRM's own type name, for messages
    # A regular expression the whole text must match (record ids, emails), so a
    # value the CRM would refuse is invalid_value before any request.
    pattern: str | None = None
    # False when the CRM refuses an empty value; a null for a non-nillable
    # BOOLEAN means false (Salesforce checkboxes), for any other type it is
    # invalid_value.
    nillable: bool = True
    # Options that depend on another field of the same record (HubSpot's deal
    # stages depend on the deal's pipeline; Salesforce dependent picklists):
    # ``controller`` names that field and ``dependent_options`` maps each of its
    # values to the options allowed then. ``options`` stays the union.
    controller: str | None = None
    dependent_options: Mapping[str, tuple[Option, ...]] = field(default_factory=dict)

    def for_controller(self, value: Any) -> FieldSchema:
        """This field with only the options allowed when the controller holds ``value``."""
        if self.controller is None or value is None:
            return self
        return replace(self, options=self.dependent_options.get(str(value), ()))


@dataclass(frozen=True)
class ObjectSchema:
    name: str
    fields: Mapping[str, FieldSchema]

    def field(self, name: str) -> FieldSchema | None:
        """The field called ``name``: exact match first, then case-insensitive."""
        found = self.fields.get(name)
        if found is not None:
            return found
        folded = name.casefold()
        matches = [f for key, f in self.fields.items() if key.casefold() == folded]
        return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True)
class ModelTarget:
    """Where a ``crmModelName`` goes: a link slot and a CRM object.

    ``object`` is None when the connector cannot write that model at all
    (outcome ``unsupported``).
    """

    slot: str
    object: str | None


#: DESIGN §2: every ``crmModelName`` a connector knows by default (lower case) and the link slot it names.
MODEL_ALIASES: Mapping[str, str] = MappingProxyType({
    "opportunity": "opportunity", "deal": "opportunity",
    "account": "account", "company": "account",
    "contact": "contacts",
    "lead": "lead",
    "engagement": "engagement", "event": "engagement", "appointment": "engagement", "meeting": "engagement",
    "user": "users", "owner": "users",
})


def models_for(objects: Mapping[str, str | None]) -> Mapping[str, ModelTarget]:
    """A connector's ``default_models`` from the CRM object that holds each slot's records.

    ``objects`` maps a slot to its object (None: the connector cannot write that
    slot's models, outcome ``unsupported``); every alias of a slot it names
    points there, and slots it leaves out have no default model.
    """
    unknown = set(objects) - set(SLOTS)
    if unknown:
        raise ValueError(f"unknown slot {sorted(unknown)[0]!r} (slots: {', '.join(SLOTS)})")
    return MappingProxyType({
        alias: ModelTarget(slot, objects[slot]) for alias, slot in MODEL_ALIASES.items() if slot in objects
    })


@dataclass(frozen=True)
class FieldError:
    """Why one field (or a whole record) was not written.

    ``outcome`` is one of ``invalid_value``, ``not_writable``,
    ``unknown_field`` or ``failed``; ``reason`` is the CRM's code and message.
    """

    outcome: str
    reason: str


@dataclass(frozen=True)
class RecordState:
    """The current values of one record, or why it could not be read."""

    record_id: str
    values: Mapping[str, Any] | None  # raw CRM values by field name; None when missing
    error: FieldError | None = None  # set when values is None (deleted, malformed id, ...)


@dataclass(frozen=True)
class RecordWrite:
    """One update of one record: every field goes in the same request."""

    record_id: str
    values: Mapping[str, Any]  # field name -> wire value (from ``Connector.encode``)


@dataclass(frozen=True)
class RecordWriteResult:
    """What the CRM answered for one record.

    Every field of the ``RecordWrite`` is in exactly one of ``written`` and
    ``errors``.
    """

    record_id: str
    written: frozenset[str] = frozenset()
    errors: Mapping[str, FieldError] = field(default_factory=dict)


try:  # Celery's (billiard's) soft time limit, raised inside whatever the task is doing
    from billiard.exceptions import SoftTimeLimitExceeded as SoftTimeLimit
except ImportError:  # pragma: no cover - celery brings billiard

    class SoftTimeLimit(Exception):  # type: ignore[no-redef]
        """Stands in for Celery's soft time limit where Celery is not installed (never raised)."""


#: What a connector must let through untouched, never turn into one of its
#: errors: a worker's soft time limit has to reach the task, which retries the
#: recording.
INTERRUPTS: tuple[type[BaseException], ...] = (SoftTimeLimit,)


# ---------------------------------------------------------------------- errors
# The one error tree of the service and its connectors; ``worker/errors.py``
# draws it whole. A connector raises ConfigError (from its constructor),
# AuthError, TransientError, PermanentError or UnknownObject; failures of one
# record or field are returned in its results, never raised.


class WritebackError(Exception):
    """Base of every error siro-writeback and its connectors raise. Messages never carry a secret.

    ``partial``: raised by ``Connector.write`` after some requests of the call
    were answered (a split batch, a re-send without a rejected field), the
    results already settled, so nothing the CRM accepted is reported as failed
    and a retry re-sends only the rest. A partial result may name only some
    fields of its record: the others are unanswered and will be sent again.
    """

    def __init__(self, message: str = "", *, partial: Sequence[RecordWriteResult] = ()) -> None:
        super().__init__(message)
        self.partial = list(partial)


#: The name connectors have raised and caught since the first release: the root of the tree.
ConnectorError = WritebackError


class ConfigError(WritebackError):
    """The configuration or environment is unusable: fix it and start again (``writeback`` exits 2)."""


class CredentialError(WritebackError):
    """A credential was rejected: retrying will not help until someone replaces it (exit 2)."""


class AuthError(CredentialError):
    """The CRM rejected the connection's credentials, and they could not be renewed."""


class TransientError(WritebackError):
    """Worth retrying later: rate limits, 5xx, timeouts, a service that did not answer.

    ``retry_after``: seconds the other side asked us to wait, when it said.
    """

    def __init__(
        self, message: str = "", retry_after: float | None = None, partial: Sequence[RecordWriteResult] = ()
    ) -> None:
        super().__init__(message, partial=partial)
        self.retry_after = retry_after


class PermanentError(WritebackError):
    """Retrying will not help: a request the other side refuses as it stands."""


class UnknownObject(PermanentError):
    """The CRM has no object (sObject / object type) of that name."""


class Gate(Protocol):
    """What a connector wraps around each HTTP request it sends (``worker.limits.rate.RequestGate``).

    ``request()`` waits for the connection's shared rate and concurrency limits
    and raises ``TransientError`` (nothing sent) when the request must not go
    now; ``observe_daily_usage`` reports the CRM's count of its daily
    allocation, as a response told it; ``observe_response`` reports each request
    sent: ``kind`` one of ``GATE_KINDS``, ``status`` the HTTP status, None when
    no answer came (a connector that does not call it is simply not counted).
    """

    def request(self) -> AbstractContextManager[None]: ...

    def observe_daily_usage(self, used: int, limit: int) -> None: ...

    def observe_response(self, kind: str, status: int | None) -> None: ...


#: What a request was for, as a connector tells ``Gate.observe_response``.
GATE_KINDS = ("auth", "schema", "read", "write", "other")


class NoGate:
    """The gate of a connector nobody limits: lets every request through at once."""

    def request(self) -> AbstractContextManager[None]:
        return nullcontext()

    def observe_daily_usage(self, used: int, limit: int) -> None:
        return None

    def observe_response(self, kind: str, status: int | None) -> None:
        return None

    def __repr__(self) -> str:
        return "NO_GATE"


NO_GATE = NoGate()


class Connector(abc.ABC):
    """A CRM connection. One instance per configured connection.

    ``options`` are the connection's keys from the config file (``${VAR}``
    already expanded), for example ``instance_url`` and ``access_token``.
    Constructing a connector must not do network I/O; the first call does.
    """

    name: ClassVar[str]
    default_models: ClassVar[Mapping[str, ModelTarget]]
    """Keys are lower-case ``crmModelName`` aliases."""
    option_names: ClassVar[frozenset[str] | None] = None
    """The connection keys the connector reads; when set, any other key in its
    ``[[connections]]`` table is a config error (a typo must not be ignored)."""
    write_batch_size: ClassVar[int] = 100
    """The most updates the pipeline hands ``write`` at once (the CRM's batch
    limit), so that a retried call re-sends one batch, never an earlier one."""
    default_rate_limit: ClassVar[Any] = None
    """The CRM's limits for one connection when its config says nothing: a
    mapping (or ``worker.settings.RateLimit``) of ``requests``/``per_s``,
    ``concurrency`` and ``daily_share``; None: unlimited. Config keys override
    it one by one (``worker.limits.rate.gate_for``)."""
    gate: Gate = NO_GATE
    """Set by the connector pool after construction (``worker.limits.rate``);
    a connector sends each HTTP request inside ``with self.gate.request():``.
    A plugin that never calls it is simply not limited."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    @abc.abstractmethod
    def object_schema(self, object_name: str) -> ObjectSchema:
        """The fields of ``object_name``; cached by the connector. Raises UnknownObject."""

    @abc.abstractmethod
    def read(self, object_name: str, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, RecordState]:
        """Current values of ``fields`` for each id, keyed by the id as given.

        A record the CRM does not have (deleted, malformed id) gets a
        ``RecordState`` with ``values=None`` and the CRM's reason; it never
        fails the other ids.
        """

    @abc.abstractmethod
    def write(self, object_name: str, updates: Sequence[RecordWrite]) -> list[RecordWriteResult]:
        """Send the updates, batched as the CRM allows, one result per update."""

    @abc.abstractmethod
    def encode(self, field: FieldSchema, value: Any) -> Any:
        """Turn a canonical value (``worker.pipeline.coercion``) into the CRM's JSON value.

        Canonical types: str, bool, int, Decimal, datetime.date,
        datetime.datetime (aware, UTC), tuple[str, ...] for multi-selects, None.
        """

    def canonical_id(self, object_name: str, record_id: str) -> str:
        """The one spelling of a record id (Salesforce: the 18-character form).

        Two links that spell one record differently must meet as one record;
        an id the connector cannot read is returned as given.
        """
        return record_id

    def check(self) -> str:
        """Verify the credentials; return a one-line, secret-free description."""
        raise NotImplementedError

    # -- notes: optional (``connectors.notes``) ---------------------------------

    notes_supported: ClassVar[bool] = False
    """True when the connector implements ``write_notes`` and ``find_note``;
    a plugin that leaves it False keeps working, its notes are ``unsupported``."""
    note_object: ClassVar[str] = "note"
    """The CRM's name of a note (``ContentNote``, ``notes``), for reports."""
    note_targets: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """The CRM object a note can be attached to, per link slot (``opportunity``:
    ``Opportunity``); a slot not named here gets no note."""

    def write_notes(self, notes: Sequence[Any]) -> list[Any]:
        """Create, update or attach notes (``connectors.notes.NoteWrite``), one
        ``NoteResult`` each, in order."""
        from connectors.notes import NotesUnsupported

        raise NotesUnsupported(f"connector {self.name!r} does not write notes")

    def find_note(self, note: Any, since: dt.datetime, exclude: frozenset[str] = frozenset()) -> str | None:
        """The id of a note like ``note`` (a ``NoteWrite``: same title) on its first target, created at
        or after ``since``, that the CRM already holds, never one in ``exclude`` (other recordings'
        notes); None when there is none. The crash guard of exactly-once notes: a connector that
        writes notes must implement it (``worker.pipeline.notes`` refuses one that does not)."""
        return None

    def close(self) -> None:
        """Release network resources."""


def json_number(value: Decimal) -> int | float:
    """A Decimal as the JSON number a CRM expects (int when integral)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def iso_temporal(field: FieldSchema, value: dt.date) -> str:
    """A date or datetime as ISO 8601 text for ``field``: a datetime written to a DATE field is
    its UTC date; a naive datetime is taken as UTC."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).date().isoformat() if field.type is FieldType.DATE else iso_datetime(aware)
    return value.isoformat()


def iso_datetime(value: dt.datetime) -> str:
    """An aware datetime as ISO 8601 in UTC with milliseconds and a ``Z``."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
