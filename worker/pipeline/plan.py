"""The write plan (what the resolver decides) and the report (what happened).

A ``WritePlan`` holds, for one recording, one ``RecordUpdate`` per CRM record
with every field to write on it, plus the ``FieldReport`` lines of mappings
that were decided without the CRM (unknown model, unlinked, conflict, ...).
The pipeline turns each planned field into a ``FieldReport`` too, so a
``RecordingReport`` accounts for every ``(extraction, mapping)`` pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.pipeline.coercion import to_json
from worker.pipeline.report import FAILING, Outcome


@dataclass(frozen=True)
class FieldReport:
    """One line of the report and one row of the ledger."""

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


@dataclass
class FieldWrite:
    """One field to write on one record, merged from the extractions that map to it."""

    field: str  # as the mapping spells it; the pipeline maps it to the CRM's name
    value: Any  # the raw extracted value
    extractions: tuple[str, ...]  # provenance: the extraction names that gave it
    policy: str = "overwrite"
    # When extractions gave different raw values: each distinct value with the
    # extractions that gave it. Whether they really disagree depends on the
    # field's type ("yes" and true are one value for a checkbox, not for a
    # text field), so the pipeline settles it against the CRM schema: one
    # write when they coerce to the same value, else ``conflict``.
    alternatives: tuple[tuple[Any, tuple[str, ...]], ...] = ()

    @property
    def extraction(self) -> str:
        return ", ".join(self.extractions)


@dataclass
class RecordUpdate:
    """Every field a recording writes on one CRM record."""

    recording_id: str
    connection: str
    object: str
    record_id: str
    fields: dict[str, FieldWrite] = field(default_factory=dict)  # key: field name folded


@dataclass
class WritePlan:
    recording_id: str
    connection: str | None
    updates: list[RecordUpdate] = field(default_factory=list)
    decided: list[FieldReport] = field(default_factory=list)  # non-writes known without the CRM
    skipped: str | None = None  # why the whole recording is skipped (not_linked, deleted, nothing_mapped)
    failed: str | None = None  # why the whole recording failed (no_connection)


@dataclass
class RecordingReport:
    recording_id: str
    status: str  # ok | partial | skipped | failed
    fields: list[FieldReport] = field(default_factory=list)
    reason: str | None = None
    # Some field failed for a reason that may pass (429, 5xx, timeout, ledger
    # outage): the worker retries the recording later. Not part of the report.
    transient: bool = False
    retry_after: float | None = None  # the longest Retry-After a CRM asked for

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "recordingId": self.recording_id,
            "status": self.status,
            "fields": [line.to_json() for line in self.fields],
        }
        if self.reason:
            body["reason"] = self.reason
        return body

    @property
    def has_failures(self) -> bool:
        return self.status == "failed" or any(line.outcome in FAILING for line in self.fields)

    def counts(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for line in self.fields:
            tally[str(line.outcome)] = tally.get(str(line.outcome), 0) + 1
        return tally


def status_of(fields: list[FieldReport]) -> str:
    """``partial`` when any field failed or was invalid, else ``ok``."""
    return "partial" if any(line.outcome in FAILING for line in fields) else "ok"



