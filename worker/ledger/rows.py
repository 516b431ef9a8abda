"""The ledger's typed rows: what goes in besides a ``FieldReport``, and what comes back out.

Written: a run's field outcomes are the pipeline's own
:class:`~worker.report.FieldReport` (one type for a field's outcome,
in a report and in the ledger); the values about to be sent are
:class:`IntentRow`.

Read: frozen dataclasses, never dicts. :class:`AttemptRow` carries the
``FieldReport`` it was recorded from (``line``), so a report is rebuilt
from attempts without copying fields; :class:`StoredIntentRow` likewise
carries its ``IntentRow``. Datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.report import FieldReport, NoteReport, Outcome, Status, to_json

__all__ = [
    "AttemptRow",
    "DeadLetterRow",
    "IntentRow",
    "RecordHistoryRow",
    "RunHistory",
    "ProposalRow",
    "RevertTarget",
    "RunRow",
    "StoredIntentRow",
    "check_json",
    "check_str",
]


def check_json(value: Any, what: str) -> None:
    """``TypeError`` unless ``value`` is a JSON value (NaN and Infinity are not)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not a JSON value: {exc}") from None


def check_str(value: Any, what: str, max_len: int = 255) -> None:
    """``TypeError`` unless a non-empty str, ``ValueError`` beyond ``max_len`` characters."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty str, got {value!r}")
    if len(value) > max_len:
        raise ValueError(f"{what} is longer than {max_len} characters")


@dataclass(frozen=True, slots=True)
class IntentRow:
    """A field value about to be sent to the CRM (see ``Ledger.record_intents``).

    ``value`` is the canonical JSON value, as the attempt of the same write
    stores it (``to_json`` of the report line's value).
    """

    connection: str
    object: str
    record_id: str
    field: str
    value: Any
    recording_id: str

    def __post_init__(self) -> None:
        for name in ("connection", "object", "record_id", "field", "recording_id"):
            check_str(getattr(self, name), f"IntentRow.{name}")
        check_json(self.value, "IntentRow.value")


@dataclass(frozen=True, slots=True)
class RunRow:
    """One pipeline run of one recording; ``status`` is ``running`` until it is finished."""

    id: int
    recording_id: str
    trigger: str
    dry_run: bool
    status: Status
    reason: str | None
    started_at: datetime
    finished_at: datetime | None
    # The recording's updatedAt as processed (None when unknown, and for runs before revision 0003).
    recording_updated_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> RunRow:
        """From a ``runs`` result row."""
        return cls(row.id, row.recording_id, row.trigger, row.dry_run, Status(row.status), row.reason,
                   row.started_at, row.finished_at, row.recording_updated_at)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One recorded field outcome: the report line as stored (values as JSON), and where it belongs."""

    id: int
    run_id: int
    recording_id: str
    line: FieldReport
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> AttemptRow:
        """From an ``attempts`` result row."""
        line = FieldReport(
            connection=row.connection,
            object=row.object,
            record_id=row.record_id,
            field=row.field,
            value=row.value,
            previous=row.previous,
            outcome=Outcome(row.outcome),
            reason=row.reason,
            extraction=row.extraction,
        )
        return cls(row.id, row.run_id, row.recording_id, line, row.created_at)


@dataclass(frozen=True, slots=True)
class RunHistory:
    """One run of a recording and its field attempts, in the order they were recorded
    (``Ledger.history``)."""

    run: RunRow
    attempts: tuple[AttemptRow, ...]
    notes: tuple[NoteReport, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A run as ``writeback history --json`` prints it (DESIGN §6); ``reason`` only when the
        run has one, as in the sync report."""
        body: dict[str, Any] = {
            "runId": self.run.id,
            "trigger": self.run.trigger,
            "startedAt": to_json(self.run.started_at),
            "status": str(self.run.status),
            "fields": [attempt.line.to_json() for attempt in self.attempts],
            "notes": [note.to_json() for note in self.notes],
        }
        if self.run.reason:
            body["reason"] = self.run.reason
        return body


@dataclass(frozen=True, slots=True)
class RecordHistoryRow:
    """One attempt on a CRM record, with the trigger of its run (``Ledger.record_history``)."""

    attempt: AttemptRow
    trigger: str

    @property
    def at(self) -> datetime:
        """When the outcome was recorded (the attempt's ``created_at``)."""
        return self.attempt.created_at

    def to_json(self) -> dict[str, Any]:
        """A field object of ``writeback history --record --json`` (DESIGN §6)."""
        return {**self.attempt.line.to_json(), "recordingId": self.attempt.recording_id,
                "trigger": self.trigger, "at": to_json(self.at)}


@dataclass(frozen=True, slots=True)
class StoredIntentRow:
    """An intent still in the ledger: sent (or about to be), its attempt not yet ``written``."""

    id: int
    intent: IntentRow
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> StoredIntentRow:
        """From a ``write_intents`` result row."""
        intent = IntentRow(row.connection, row.object, row.record_id, row.field, row.value, row.recording_id)
        return cls(row.id, intent, row.created_at)


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A recording the workers gave up on (see ``Ledger.add_dead_letter``)."""

    recording_id: str
    reason: str
    error: str
    trigger: str
    attempts: int
    failures: int
    first_failed_at: datetime
    last_failed_at: datetime
    connection: str | None = None  # the connection it failed on, when known

    @classmethod
    def of(cls, row: Any) -> DeadLetterRow:
        """From a ``dead_letters`` result row."""
        return cls(row.recording_id, row.reason, row.error, row.trigger, row.attempts, row.failures,
                   row.first_failed_at, row.last_failed_at, getattr(row, "connection", None))

    def to_json(self) -> dict[str, Any]:
        """What ``writeback failed --json`` prints for it (datetimes in ISO 8601)."""
        return {
            "recording_id": self.recording_id,
            "connection": self.connection,
            "reason": self.reason,
            "error": self.error,
            "trigger": self.trigger,
            "attempts": self.attempts,
            "failures": self.failures,
            "first_failed_at": self.first_failed_at.isoformat(),
            "last_failed_at": self.last_failed_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ProposalRow:
    """A field value held for review (``worker.ledger.proposals``); values as JSON."""

    connection: str
    object: str
    record_id: str
    field: str
    value: Any
    previous: Any
    recording_id: str
    extraction: str | None = None
    recording_updated_at: datetime | None = None  # the recording version it came from
    recorded_at: datetime | None = None  # when that conversation was recorded: the newer supersedes
    id: int | None = None
    status: str = "pending"
    reason: str | None = None
    created_at: datetime | None = None
    decided_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> ProposalRow:
        """From a ``proposals`` result row."""
        return cls(row.connection, row.object, row.record_id, row.field, row.value, row.previous,
                   row.recording_id, row.extraction, row.recording_updated_at, row.recorded_at, row.id,
                   row.status, row.reason, row.created_at, row.decided_at)

    def to_json(self) -> dict[str, Any]:
        """What ``writeback review --json`` prints for it (DESIGN §6)."""
        return {
            "id": self.id,
            "connection": self.connection,
            "object": self.object,
            "recordId": self.record_id,
            "field": self.field,
            "value": self.value,
            "previous": self.previous,
            "recordingId": self.recording_id,
            "extraction": self.extraction,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z") if self.created_at else None,
        }


@dataclass(frozen=True, slots=True)
class RevertTarget:
    """A field a recording wrote, as ``writeback revert`` sees it (values as JSON)."""

    connection: str
    object: str
    record_id: str
    field: str
    previous: Any  # what the CRM held before the recording's first write: what a revert puts back
    value: Any  # what the recording last put there (its write, or a revert's put-back)
    reverted: bool  # that last put was a revert
    later_recording: str | None  # another recording that wrote the field since, if any
    extraction: str | None = None  # the extraction behind the recording's last write


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run with how many of its fields had each outcome and the connections they were on
    (``Ledger.recent_runs``)."""

    run: RunRow
    outcomes: Counter = field(default_factory=Counter)  # outcome -> fields
    connections: tuple[str, ...] = ()
    notes: Counter = field(default_factory=Counter)  # outcome -> summary notes


@dataclass(frozen=True, slots=True)
class RunsPage:
    """A page of ``Ledger.recent_runs``; ``older`` is the ``before`` of the next (older) page, None on the last."""

    runs: list[RunSummary]
    older: int | None
