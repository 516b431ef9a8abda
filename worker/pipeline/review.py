"""Review before write: fields under the policy ``review`` wait for a person (DESIGN §6).

The pipeline decides as always (``unchanged``, ``invalid_value`` and the
rest come first, so a person only sees writes that would really happen);
a field whose policy is ``review`` and whose value differs from the CRM's is
decided ``pending_review`` and, after the batch, ``hold`` keeps it as a
proposal in the ledger (``Ledger.propose``: one pending per record field,
superseded by a later conversation, never duplicated by a re-run).

A person then acts through ``approve`` and ``reject`` (``writeback review``;
the web console calls the same functions):

* ``approve`` claims the proposals (a concurrent reject or second approver
  cannot act on them), writes the proposed values in the calling process
  through the one ``Writer`` after a fresh read (``unchanged`` when the CRM
  already holds the value), recorded as one run per recording with trigger
  ``review``; a proposal is ``approved`` once its value is in the CRM, and
  pending again when its write failed;
* ``reject`` sends nothing; the ledger remembers the value, and the pipeline
  does not propose it again for that recording version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.base import ObjectSchema
from worker.ledger.proposals import REJECTED, Proposed
from worker.ledger.reverts import REVIEW
from worker.ledger.rows import ProposalRow
from worker.pipeline import coercion, policies
from worker.pipeline.writer import SHADOW, Context, FieldChange, report_of
from worker.report import FieldReport, Outcome, RecordingReport, to_json

if TYPE_CHECKING:
    from worker.ledger import Ledger
    from worker.pipeline.runner import Pipeline

log = logging.getLogger(__name__)

__all__ = ["Approval", "NotPending", "approve", "hold", "pending", "reject"]

#: Outcomes after which an approved value is in the CRM.
_SETTLED = (Outcome.WRITTEN, Outcome.UNCHANGED)


class NotPending(LookupError):
    """Some proposal ids asked for are unknown, or no longer pending (one line: ``str(error)``)."""


def hold(ledger: Ledger | None, changes: Sequence[FieldChange], *, dry_run: bool, shadow: bool) -> None:
    """Keep every change the decision held for review (``pending_review``) as a proposal; and
    withdraw the proposals of earlier conversations for fields this batch found or made as its
    own conversation says (``unchanged``, ``written``): approving them would undo it."""
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
    settled = [change for change in changes if getattr(change, "policy", None) == policies.REVIEW
               and change.outcome in (Outcome.UNCHANGED, Outcome.WRITTEN)]
    if settled and ledger is not None and not (dry_run or shadow):
        try:
            ledger.withdraw_proposals(
                "superseded: a later conversation found the CRM holding its value",
                connection=settled[0].connection, object=settled[0].object,
                fields=[(change.record_id, change.name, getattr(change, "recorded_at", None)) for change in settled])
        except Exception:  # the outcomes stand; an older proposal stays listed for a person to reject
            log.warning("could not withdraw proposals made moot on %s", settled[0].object, exc_info=True)


def _propose(ledger: Ledger, change: FieldChange) -> None:
    proposal = ProposalRow(change.connection, change.object, change.record_id, change.name, to_json(change.value),
                           to_json(change.previous), change.recording_id, change.extraction,
                           getattr(change, "version", None), getattr(change, "recorded_at", None))
    try:
        done, proposal_id = ledger.propose(proposal)
    except Exception as exc:  # noqa: BLE001 - the value must not be lost: the recording is retried
        log.warning("could not hold the proposal for %s.%s of %s: %s", change.object, change.name,
                    change.record_id, exc)
        change.decide(Outcome.FAILED, f"unavailable: could not hold the proposal: {type(exc).__name__}: {exc}")
        change.transient = True
        return
    if done is Proposed.LATER_WAITS:
        change.decide(Outcome.SKIPPED_POLICY,
                      f"superseded: proposal {proposal_id}, from a later conversation, waits for review")
    else:
        held_with = getattr(change, "held_with", None)
        with_it = f", with {held_with}" if held_with else ""
        change.decide(Outcome.PENDING_REVIEW,
                      f"review: proposal {proposal_id} waits for a person{with_it} (writeback review)")


def pending(ledger: Ledger, ids: Iterable[int] | None = None) -> list[ProposalRow]:
    """The pending proposals (``ids``: exactly these, else ``NotPending`` naming the others)."""
    if ids is None:
        return ledger.proposals()
    wanted = list(dict.fromkeys(ids))
    actionable = {row.id: row for row in ledger.proposals(ids=wanted)}
    if len(actionable) < len(wanted):
        raise _refusal(ledger, [i for i in wanted if i not in actionable])
    return [actionable[i] for i in wanted]


def _refusal(ledger: Ledger, refused: Sequence[int]) -> NotPending:
    """One line naming each refused id: unknown, or its status."""
    known = {row.id: row for row in ledger.proposals(ids=refused, status=None)}
    unknown = [str(i) for i in refused if i not in known]
    decided = [f"{i} ({known[i].status})" for i in refused if i in known]
    parts = ([f"no proposal {', '.join(unknown)}"] if unknown else []) + (
        [f"not pending: {', '.join(decided)}"] if decided else [])
    return NotPending("; ".join(parts))


@dataclass(eq=False)
class ApprovedChange(FieldChange):
    """A proposal's value on its way to the CRM."""

    proposal: ProposalRow = None  # type: ignore[assignment]


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


def approve(pipeline: Pipeline, ids: Iterable[int] | None = None) -> Approval:
    """Write pending proposals (``ids``, or all): claimed first (a concurrent reject or approval
    cannot act on them), a fresh read, then the one writer; ``NotPending`` (nothing done) when
    an id is not pending. A proposal whose value did not reach the CRM is pending again."""
    ledger = _ledger(pipeline)
    proposals, refused = ledger.claim_proposals(None if ids is None else list(ids))
    if refused:
        raise _refusal(ledger, list(refused))
    changes = [ApprovedChange(row.connection, row.object, row.record_id, row.field, row.recording_id,
                              value=row.value, extraction=row.extraction, proposal=row) for row in proposals]
    reports: list[RecordingReport] = []
    try:
        pipeline.writer.write_each(pipeline.config.connections, changes, ApproveDecision)
        for recording_id in dict.fromkeys(change.recording_id for change in changes):
            mine = [change for change in changes if change.recording_id == recording_id]
            report = report_of(recording_id, mine)
            version = mine[0].proposal.recording_updated_at if mine[0].proposal else None
            pipeline.writer.record(report, trigger=REVIEW, version=version)
            reports.append(report)
    finally:  # whatever happened, no claim is left behind
        settled = [change.proposal.id for change in changes if change.outcome in _SETTLED]
        ledger.finish_approval(settled, [row.id for row in proposals if row.id not in settled])
    return Approval([(change.proposal.id, line) for change in changes for line in change.reports], reports)


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
