"""Revert: put back what the CRM held before a recording's writes, never over a later change (DESIGN §6).

``revert(pipeline, recording_id)`` reads from the ledger every field the
recording wrote (``Ledger.revert_targets``: the value before its first write,
the value it last put there) and hands them to the one ``Writer`` with a
``RevertDecision``, so a revert is batched like any write (one schema lookup,
one read and one write per connection, object and CRM batch) and leaves
intents and attempts like any write. After the read, field by field:

* the CRM holds the value from before the recording: ``unchanged``;
* another recording wrote the field since, or the CRM holds anything but the
  value this recording put there (a person edited it): ``skipped_policy``,
  ``edited_since``, nothing sent;
* otherwise the old value is sent (a null clears the field, whatever
  ``write_nulls`` says): ``reverted``.

The revert is recorded as a run with trigger ``revert`` at the recording's
latest processed version; that version is then skipped by every later pass
(``Ledger.reverted_versions``), and a second revert finds every field
``unchanged``: it sends nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.base import ObjectSchema
from worker.errors import Reason
from worker.ledger.reverts import REVERT
from worker.pipeline import coercion
from worker.pipeline.writer import Context, FieldChange, report_of
from worker.report import Outcome, RecordingReport, Status

if TYPE_CHECKING:
    from worker.ledger.rows import RevertTarget
    from worker.pipeline.runner import Pipeline

__all__ = ["RevertChange", "RevertDecision", "revert"]

EDITED_SINCE = "edited_since"
#: Outcomes after which the revert stands (``Ledger.reverted_versions`` counts the same).
_STANDS = (Outcome.REVERTED, Outcome.UNCHANGED, Outcome.SKIPPED_POLICY)


@dataclass(eq=False)
class RevertChange(FieldChange):
    """A field to put back: ``value`` is the old value once canonical; ``ours`` what the recording put there."""

    put_back: Any = None  # JSON, as stored
    ours: Any = None  # JSON, as stored
    later_recording: str | None = None

    @classmethod
    def of(cls, recording_id: str, target: RevertTarget) -> RevertChange:
        return cls(target.connection, target.object, target.record_id, target.field, recording_id,
                   extraction=target.extraction, put_back=target.previous, ours=target.value,
                   later_recording=target.later_recording)


class RevertDecision:
    """Put back the old value only where the CRM still holds this recording's value (a ``Decision``)."""

    def prepare(self, schema: ObjectSchema, changes: Sequence[FieldChange]) -> set[str]:
        for change in _reverts(changes):
            change.settle_schema(schema)
            if not change.done:
                change.value = coercion.parse_current(change.put_back, change.schema)
        return set()

    def decide(self, schema: ObjectSchema, changes: Sequence[FieldChange], context: Context) -> list[FieldChange]:
        send: list[FieldChange] = []
        for change in _reverts(changes):
            field = change.schema
            assert field is not None
            if coercion.same_value(change.previous, change.value, field):
                change.decide(Outcome.UNCHANGED, "already the value from before this recording")
            elif change.later_recording is not None:
                change.decide(Outcome.SKIPPED_POLICY,
                              f"{EDITED_SINCE}: recording {change.later_recording} wrote this field since")
            elif coercion.same_value(change.previous, coercion.parse_current(change.ours, field), field):
                send.append(change)
            else:
                change.decide(Outcome.SKIPPED_POLICY,
                              f"{EDITED_SINCE}: the CRM's value changed since this recording wrote it")
        return send


def revert(pipeline: Pipeline, recording_id: str, *, dry_run: bool = False) -> RecordingReport:
    """Revert every field ``recording_id`` wrote; the report (``failed``, reason ``nothing_written``,
    when the ledger has no write of it). Recorded as a run with trigger ``revert`` unless ``dry_run``."""
    ledger = pipeline.ledger
    if ledger is None:
        raise RuntimeError("revert reads what was written from the ledger")
    targets = ledger.revert_targets(recording_id)
    if not targets:
        return RecordingReport.because(recording_id, Status.FAILED, Reason.NOTHING_WRITTEN,
                                       "the ledger has no value this recording wrote")
    changes = [RevertChange.of(recording_id, target) for target in targets]
    pipeline.writer.write_each(pipeline.config.connections, changes, RevertDecision, dry_run=dry_run)
    for change in changes:
        if change.outcome is Outcome.WRITTEN:
            change.decide(Outcome.REVERTED)
    report = report_of(recording_id, changes)
    version = ledger.newest_versions([recording_id]).get(recording_id)
    pipeline.writer.record(report, trigger=REVERT, dry_run=dry_run, version=version)
    if not dry_run and any(change.outcome in _STANDS for change in changes):
        ledger.withdraw_proposals("superseded: the recording was reverted", recording_id=recording_id)
    return report


def _reverts(changes: Sequence[FieldChange]) -> list[RevertChange]:
    return [change for change in changes if isinstance(change, RevertChange)]
