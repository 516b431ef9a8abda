"""The write plan: what the resolver decides for one recording.

A ``WritePlan`` holds one ``RecordUpdate`` per CRM record with every field to
write on it, plus the ``FieldReport`` lines of mappings that were decided
without the CRM (unknown model, unlinked, ...). The pipeline turns each
planned field into a ``FieldReport`` too, so a ``RecordingReport`` accounts
for every ``(extraction, mapping)`` pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.errors import Reason
from worker.report import FieldReport


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
    skipped: Reason | None = None  # why the whole recording is skipped (not_linked, deleted, nothing_mapped, stale)
    failed: Reason | None = None  # why the whole recording failed (no_connection)
    detail: str | None = None  # more on ``skipped`` or ``failed``, for the report
