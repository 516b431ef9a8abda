"""Review before write: fields under the policy ``review`` wait for a person (DESIGN §6).

The pipeline decides as always (``unchanged``, ``invalid_value`` and the
rest come first, so a person only sees writes that would really happen);
a field whose policy is ``review`` and whose value differs from the CRM's is
decided ``pending_review`` and, after the batch, ``hold`` keeps it as a
proposal in the ledger (``Ledger.propose``: one pending per record field,
superseded by a later conversation, never duplicated by a re-run).

A person then acts through ``approve`` and ``reject`` (``writeback review``;
the web console calls the same functions):

* ``approve`` writes the proposed values in the calling process through the
  one ``Writer``, after a fresh read (``unchanged`` when the CRM already holds
  the value), recorded as one run per recording with trigger ``review``; a
  proposal is ``approved`` once its value is in the CRM, and stays pending
  when its write failed;
* ``reject`` sends nothing; the ledger remembers the value, and the pipeline
  does not propose it again for that recording version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.base import ObjectSchema
from worker.errors import TransientError
from worker.ledger.proposals import APPROVED, REJECTED, Proposed
from worker.ledger.reverts import REVIEW
from worker.ledger.rows import ProposalRow
from worker.pipeline import coercion
from worker.pipeline.writer import SHADOW, Context, FieldChange, report_of
from worker.report import FieldReport, Outcome, RecordingReport, to_json

if TYPE_CHECKING:
    from worker.ledger import Ledger
    from worker.pipeline.runner import Pipeline

__all__ = ["Approval", "NotPending", "approve", "hold", "pending", "reject"]

#: Outcomes after which an approved value is in the CRM.
_SETTLED = (Outcome.WRITTEN, Outcome.UNCHANGED)


class NotPending(LookupError):
    """Some proposal ids asked for are unknown, or no longer pending (one line: ``str(error)``)."""


def hold(ledger: Ledger | None, changes: Sequence[FieldChange], *, dry_run: bool, shadow: bool) -> None:
    """Keep every change the decision held for review (``pending_review``) as a proposal."""
    for change in changes:
        if change.outcome is not Outcome.PENDING_REVIEW:
            continue
        if dry_run:
            change.decide(Outcome.PENDING_REVIEW, "review: would wait for a person (dry run: nothing is held)")
        elif shadow:
            change.decide(Outcome.PLANNED, f"{SHADOW} (policy review: a person would approve it first)")
        elif ledger is None:
            change.decide(Outcome.SKIPPED_POLICY, "review: no ledger to hold the proposal in; nothing sent")
        else:
            _propose(ledger, change)


def _propose(ledger: Ledger, change: FieldChange) -> None:
    proposal = ProposalRow(change.connection, change.object, change.record_id, change.name, to_json(change.value),
                           to_json(change.previous), change.recording_id, change.extraction,
                           getattr(change, "version", None), getattr(change, "recorded_at", None))
    try:
        done, proposal_id = ledger.propose(proposal)
    except TransientError as exc:  # the ledger did not answer: the recording is retried
        change.decide(Outcome.FAILED, f"unavailable: could not hold the proposal: {exc}")
        change.transient = True
        return
    if done is Proposed.LATER_WAITS:
        change.decide(Outcome.SKIPPED_POLICY,
                      f"superseded: proposal {proposal_id}, from a later conversation, waits for review")
    else:
        change.decide(Outcome.PENDING_REVIEW, f"review: proposal {proposal_id} waits for a person (writeback review)")


def pending(ledger: Ledger, ids: Iterable[int] | None = None) -> list[ProposalRow]:
    """The pending proposals (``ids``: exactly these, else ``NotPending`` naming the others)."""
    if ids is None:
        return ledger.proposals()
    wanted = list(dict.fromkeys(ids))
    found = ledger.proposals(ids=wanted, status=None)
    known = {row.id: row for row in found}
    unknown = [i for i in wanted if i not in known]
    decided = [f"{i} ({known[i].status})" for i in wanted if i in known and known[i].status != "pending"]
    if unknown or decided:
        parts = ([f"no proposal {', '.join(map(str, unknown))}"] if unknown else []) + (
            [f"not pending: {', '.join(decided)}"] if decided else [])
        raise NotPending("; ".join(parts))
    return [known[i] for i in wanted]


@dataclass(eq=False)
class ApprovedChange(FieldChange):
    """A proposal's value on its way to the CRM."""

    proposal: ProposalRow | None = None


class ApproveDecision:
    """Write the proposed value unless the CRM already holds it (a ``Decision``)."""

    def prepare(self, schema: ObjectSchema, changes: Sequence[FieldChange]) -> set[str]:
        for change in changes:
            change.settle_schema(schema)
            if not change.done:
                change.value = coercion.parse_current(change.value, change.schema)
        return set()

    def decide(self, schema: ObjectSchema, changes: Sequence[FieldChange], context: Context) -> list[FieldChange]:
        send = []
        for change in changes:
            assert change.schema is not None
            if coercion.same_value(change.previous, change.value, change.schema):
                change.decide(Outcome.UNCHANGED, "the CRM already holds the proposed value")
            else:
                send.append(change)
        return send


@dataclass
class Approval:
    """What ``approve`` did: a line per proposal, and the recordings' reports as recorded."""

    lines: list[tuple[int, FieldReport]]
    reports: list[RecordingReport]

    def to_json(self) -> dict[str, Any]:
        """``writeback review approve --json`` (DESIGN §6)."""
        return {"fields": [{**line.to_json(), "proposalId": proposal_id} for proposal_id, line in self.lines]}

    @property
    def has_failures(self) -> bool:
        return any(report.has_failures for report in self.reports)


def approve(pipeline: Pipeline, ids: Iterable[int] | None = None, *, dry_run: bool = False) -> Approval:
    """Write pending proposals (``ids``, or all): a fresh read, then the one writer; ``NotPending``
    (nothing done) when an id is not pending."""
    ledger = _ledger(pipeline)
    proposals = pending(ledger, ids)
    changes = [ApprovedChange(row.connection, row.object, row.record_id, row.field, row.recording_id,
                              value=row.value, extraction=row.extraction, proposal=row) for row in proposals]
    pipeline.writer.write_each(pipeline.config.connections, changes, ApproveDecision, dry_run=dry_run)
    reports = []
    for recording_id in dict.fromkeys(change.recording_id for change in changes):
        mine = [change for change in changes if change.recording_id == recording_id]
        report = report_of(recording_id, mine)
        version = mine[0].proposal.recording_updated_at if mine[0].proposal else None
        pipeline.writer.record(report, trigger=REVIEW, dry_run=dry_run, version=version)
        reports.append(report)
    if not dry_run:
        ledger.decide_proposals([change.proposal.id for change in changes
                                 if change.outcome in _SETTLED and change.proposal and change.proposal.id],
                                APPROVED, "approved by a person (writeback review approve)")
    return Approval([(change.proposal.id, line) for change in changes if change.proposal
                     for line in change.reports], reports)


def reject(ledger: Ledger, ids: Iterable[int] | None = None) -> list[int]:
    """Drop pending proposals (``ids``, or all); ``NotPending`` (nothing done) when an id is not pending.
    The ids rejected."""
    proposals = pending(ledger, ids)
    return ledger.decide_proposals([row.id for row in proposals if row.id is not None], REJECTED,
                                   "rejected by a person (writeback review reject)")


def _ledger(pipeline: Pipeline) -> Ledger:
    if pipeline.ledger is None:
        raise RuntimeError("proposals live in the ledger")
    return pipeline.ledger
