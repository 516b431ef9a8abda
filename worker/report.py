"""What happened: the outcome of every planned field and of every recording (the ``--json`` shapes).

The vocabulary that the pipeline writes, the ledger stores and the CLI and
the service read; a leaf module below all of them (it imports only
``worker.errors``), so no room imports another sideways or up to share it.

``FieldReport`` is one line of a report and, as it is, one row of the ledger
(``Ledger.record`` stores these, ``Ledger.attempts`` gives them back):
there is one type for a field's outcome. ``RecordingReport`` is what
``writeback sync --json`` prints (DESIGN §3); ``code`` says in a ``Reason``
why a recording was skipped or failed, so code never reads the text of
``reason``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from worker.errors import Reason


class Outcome(StrEnum):
    """The outcomes a planned field can have (DESIGN §2)."""

    WRITTEN = "written"  # the CRM accepted the value
    UNCHANGED = "unchanged"  # the CRM already holds an equal value; nothing sent
    SKIPPED_POLICY = "skipped_policy"  # deny list or a write policy; ``reason`` says which
    UNLINKED = "unlinked"  # the model's slot is empty on this recording
    UNKNOWN_MODEL = "unknown_model"  # no model map entry (or the CRM has no such object)
    UNKNOWN_FIELD = "unknown_field"  # the object has no such field
    NOT_WRITABLE = "not_writable"  # read-only, calculated, or a type we do not write
    INVALID_VALUE = "invalid_value"  # the value does not fit the field (ours or the CRM's reason)
    CONFLICT = "conflict"  # extractions disagree on one field; nothing written
    FAILED = "failed"  # the record is missing, or the CRM call failed after retries
    NULL_VALUE = "null_value"  # a null is not written unless ``write_nulls``
    UNSUPPORTED = "unsupported"  # the connector cannot write that model
    PLANNED = "planned"  # --dry-run or shadow mode: would be written
    REVERTED = "reverted"  # writeback revert put back the value the CRM held before the recording's write
    PENDING_REVIEW = "pending_review"  # policy review: a proposal waits for a person; nothing sent


#: Outcomes whose value the CRM took from us: what ``protect_edits`` counts as ours, what settles an intent.
SENT = frozenset({Outcome.WRITTEN, Outcome.REVERTED})

#: Outcomes that make a recording's status ``partial`` and ``sync`` exit 1.
FAILING = frozenset({Outcome.FAILED, Outcome.INVALID_VALUE})


class Status(StrEnum):
    """A recording's (and a run's) status; a run reads ``running`` until it is finished."""

    OK = "ok"  # nothing failed
    PARTIAL = "partial"  # some field failed or was invalid
    SKIPPED = "skipped"  # not linked, deleted, nothing mapped, a stale snapshot
    FAILED = "failed"  # the recording could not be processed
    RUNNING = "running"


@dataclass(frozen=True)
class FieldReport:
    """One line of the report and one row of the ledger.

    ``value`` is what we wrote or meant to write (after coercion) and
    ``previous`` the CRM's value before; ``record_id`` is the CRM id as text.
    """

    connection: str | None
    object: str | None
    record_id: str | None
    field: str | None
    value: Any
    previous: Any
    outcome: Outcome
    reason: str | None
    extraction: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "object": self.object,
            "recordId": self.record_id,
            "field": self.field,
            "value": to_json(self.value),
            "previous": to_json(self.previous),
            "outcome": str(self.outcome),
            "reason": self.reason,
            "extraction": self.extraction,
        }


class NoteOutcome(StrEnum):
    """The outcomes of a recording's summary note on one connection (DESIGN §7)."""

    CREATED = "created"
    UPDATED = "updated"  # the content changed in place, or a record was attached
    UNCHANGED = "unchanged"  # the ledger says the CRM holds this note as it is; nothing sent
    SKIPPED = "skipped"  # ``reason``: no_summary, no_targets, shadow
    FAILED = "failed"
    UNSUPPORTED = "unsupported"  # the connector does not write notes
    PLANNED = "planned"  # --dry-run: would be created or updated


@dataclass(frozen=True)
class NoteReport:
    """One recording's note on one connection: a line of the report's ``notes`` and of the ledger."""

    connection: str
    object: str | None  # the CRM's note object (ContentNote, notes)
    note_id: str | None
    attached_to: tuple[tuple[str, str], ...]  # (object, record id) the note is attached to
    outcome: NoteOutcome
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "object": self.object,
            "noteId": self.note_id,
            "attachedTo": [{"object": obj, "recordId": record_id} for obj, record_id in self.attached_to],
            "outcome": str(self.outcome),
            "reason": self.reason,
        }


@dataclass
class RecordingReport:
    recording_id: str
    status: Status
    fields: list[FieldReport] = field(default_factory=list)
    reason: str | None = None  # as shown: ``Reason.explain(detail)``
    code: Reason | None = None  # the reason as a code (not part of the report)
    # Some field failed for a reason that may pass (429, 5xx, timeout, ledger
    # outage): the worker retries the recording later. Not part of the report.
    transient: bool = False
    retry_after: float | None = None  # the longest Retry-After a CRM asked for
    notes: list[NoteReport] = field(default_factory=list)  # the summary note per connection (DESIGN §7)

    @classmethod
    def because(cls, recording_id: str, status: Status, code: Reason, detail: str | None = None,
                fields: list[FieldReport] | None = None) -> RecordingReport:
        """A report whose recording was skipped or failed as a whole, for ``code``."""
        return cls(recording_id, status, list(fields or ()), reason=code.explain(detail), code=code)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "recordingId": self.recording_id,
            "status": str(self.status),
            "fields": [line.to_json() for line in self.fields],
            "notes": [note.to_json() for note in self.notes],
        }
        if self.reason:
            body["reason"] = self.reason
        return body

    @property
    def connection(self) -> str | None:
        """The connection the recording was written through, when it got that far."""
        return next((line.connection for line in self.fields if line.connection), None)

    @property
    def has_failures(self) -> bool:
        return (self.status == Status.FAILED or any(line.outcome in FAILING for line in self.fields)
                or any(note.outcome is NoteOutcome.FAILED for note in self.notes))

    def counts(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for line in self.fields:
            tally[str(line.outcome)] = tally.get(str(line.outcome), 0) + 1
        return tally


def status_of(fields: list[FieldReport]) -> Status:
    """``partial`` when any field failed or was invalid, else ``ok``."""
    return Status.PARTIAL if any(line.outcome in FAILING for line in fields) else Status.OK


def to_json(value: Any) -> Any:
    """A canonical (or raw extracted) value as plain JSON for reports and the ledger."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [to_json(item) for item in value]
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    return value
