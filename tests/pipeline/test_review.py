"""Review before write on the in-memory CRM: proposals held, superseded, approved and rejected.

The policy ``review`` on Opportunity.Amount and StageName: the pipeline
holds what would really be written, a person approves (a fresh read, the one
writer, a run with trigger ``review``) or rejects (remembered for that
recording version and value). Checked as a user would: the report, the
proposals listed, what the CRM holds and which requests reached it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.fixtures.memory_crm import (
    DEAL_ACME,
    OPPORTUNITY,
    OPPORTUNITY2,
    RENEWALS_PIPELINE,
    SCHEMA,
    MemoryCRM,
    extraction,
    recording,
)
from tests.fixtures.pipelines import outcomes_of
from worker.pipeline import review
from worker.siro.models import Recording

X = extraction
REVIEWED = {"policy": {"Opportunity.Amount": "review", "Opportunity.StageName": "review"}}


def rec(recording_id: str = "rec-1", amount: object = "18,750", stage: str = "negotiation/review", *,
        created_at: str = "2026-11-01T09:00:00.000Z", updated_at: str | None = None,
        opportunity: str = OPPORTUNITY) -> Recording:
    return recording(recording_id, [X("Deal size", amount, ("Opportunity", "Amount")),
                                    X("Stage", stage, ("Opportunity", "StageName")),
                                    X("Next", "Call Tuesday", ("Opportunity", "NextStep"))],
                     opportunity=opportunity, created_at=created_at, updated_at=updated_at)


@pytest.fixture
def sf(memory_crm, make_memory_pipeline):
    return make_memory_pipeline(memory_crm, fields=REVIEWED)


def test_fields_under_review_are_held_and_nothing_of_them_is_sent(memory_crm: MemoryCRM, sf):
    [report] = sf.process([rec()])

    got = outcomes_of(report)
    amount = got[("Opportunity", OPPORTUNITY, "Amount")]
    assert amount[:3] == ("pending_review", 18750, 12500)
    assert amount.reason.startswith("review: proposal ") and "waits for a person" in amount.reason
    assert got[("Opportunity", OPPORTUNITY, "StageName")][:3] == ("pending_review", "Negotiation/Review",
                                                                   "Qualification")
    assert got[("Opportunity", OPPORTUNITY, "NextStep")].outcome == "written"  # not under review
    assert report.status == "ok"
    assert memory_crm.writes() == [[(OPPORTUNITY, {"NextStep": "Call Tuesday"})]]
    proposals = review.pending(sf.ledger)
    assert [(p.field, p.value, p.previous, p.recording_id, p.extraction) for p in proposals] == [
        ("Amount", 18750, 12500, "rec-1", "Deal size"), ("StageName", "Negotiation/Review", "Qualification", "rec-1",
                                                         "Stage")]
    assert proposals[0].to_json()["recordId"] == OPPORTUNITY


def test_equal_and_invalid_values_are_never_proposed(memory_crm, sf):
    [report] = sf.process([rec(amount=12500, stage="Not A Stage")])

    got = outcomes_of(report)
    assert got[("Opportunity", OPPORTUNITY, "Amount")].outcome == "unchanged"
    assert got[("Opportunity", OPPORTUNITY, "StageName")].outcome == "invalid_value"
    assert review.pending(sf.ledger) == []


def test_a_rerun_keeps_one_proposal_and_a_later_conversation_supersedes_it(memory_crm, sf):
    sf.process([rec()])
    [first] = [p.id for p in review.pending(sf.ledger) if p.field == "Amount"]
    sf.process([rec(updated_at="2026-11-01T10:00:00.000Z")])  # the same recording, re-processed
    assert [p.id for p in review.pending(sf.ledger) if p.field == "Amount"] == [first]

    sf.process([rec("rec-2", 20000, created_at="2026-11-03T09:00:00.000Z")])  # a later conversation
    [amount] = [p for p in review.pending(sf.ledger) if p.field == "Amount"]
    assert (amount.recording_id, amount.value) == ("rec-2", 20000)
    [old] = sf.ledger.proposals(ids=[first], status=None)
    assert (old.status, old.reason) == ("superseded", "superseded by recording rec-2")

    [older] = sf.process([rec("rec-0", 5000, created_at="2026-10-01T09:00:00.000Z")])  # an earlier one, late
    line = outcomes_of(older)[("Opportunity", OPPORTUNITY, "Amount")]
    assert line.outcome == "skipped_policy" and line.reason.startswith(f"superseded: proposal {amount.id}")
    assert [p.recording_id for p in review.pending(sf.ledger) if p.field == "Amount"] == ["rec-2"]


def test_approval_reads_again_writes_and_records_a_review_run(memory_crm, sf):
    sf.process([rec()])
    ids = [p.id for p in review.pending(sf.ledger)]
    requests_before = len(memory_crm.requests)

    approval = review.approve(sf, ids)

    assert [(pid, line.field, line.outcome, line.value) for pid, line in approval.lines] == [
        (ids[0], "Amount", "written", 18750), (ids[1], "StageName", "written", "Negotiation/Review")]
    assert approval.to_json()["fields"][0]["proposalId"] == ids[0]
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Amount"] == 18750
    assert [(r.kind, r.object) for r in memory_crm.requests[requests_before:]] == [
        ("read", "Opportunity"), ("write", "Opportunity")]  # one read, one write for both fields
    assert review.pending(sf.ledger) == []
    assert {p.status for p in sf.ledger.proposals(ids=ids, status=None)} == {"approved"}
    assert [(run.trigger, run.status) for run in sf.ledger.runs("rec-1")] == [("review", "ok"), ("cli", "ok")]
    with pytest.raises(review.NotPending, match=rf"not pending: {ids[0]} \(approved\)"):
        review.approve(sf, ids[:1])


def test_approval_is_unchanged_when_a_person_already_set_the_value(memory_crm, sf):
    sf.process([rec()])
    memory_crm.set_values("Opportunity", OPPORTUNITY, {"Amount": 18750})
    writes_before = len(memory_crm.writes())

    approval = review.approve(sf)  # --all

    assert {line.field: line.outcome for _, line in approval.lines} == {"Amount": "unchanged",
                                                                        "StageName": "written"}
    assert [values for sent in memory_crm.writes()[writes_before:] for _, values in sent] == [
        {"StageName": "Negotiation/Review"}]
    assert review.pending(sf.ledger) == []


def test_a_failed_approval_stays_pending(memory_crm, sf):
    """The CRM refuses the value (an admin narrowed Amount after the proposal): the proposal waits on."""
    sf.process([rec()])
    ids = [p.id for p in review.pending(sf.ledger)]
    [amount] = [field for field in SCHEMA["Opportunity"] if field.name == "Amount"]
    memory_crm.before_next("write", lambda: memory_crm.change_field(
        "Opportunity", replace(amount, precision=3, scale=0)))  # 18750 no longer fits

    approval = review.approve(sf, ids)

    assert approval.has_failures
    outcome = {line.field: (line.outcome, line.reason) for _, line in approval.lines}
    assert outcome["Amount"][0] == "invalid_value" and "INVALID_VALUE" in outcome["Amount"][1]
    assert outcome["StageName"][0] == "written"
    assert [p.field for p in review.pending(sf.ledger)] == ["Amount"]


def test_a_rejected_value_is_not_proposed_again_for_that_version(memory_crm, sf):
    sf.process([rec()])
    ids = [p.id for p in review.pending(sf.ledger)]

    assert review.reject(sf.ledger, ids) == ids
    [again] = sf.process([rec()])  # the same version: a later poll pass

    assert {outcomes_of(again)[("Opportunity", OPPORTUNITY, f)].reason for f in ("Amount", "StageName")} == {
        "rejected: a person rejected this value (writeback review)"}
    assert review.pending(sf.ledger) == []
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Amount"] == 12500
    [newer] = sf.process([rec(updated_at="2026-11-02T09:00:00.000Z")])  # Siro re-processed it
    assert outcomes_of(newer)[("Opportunity", OPPORTUNITY, "Amount")].outcome == "pending_review"


def test_unknown_and_decided_ids_are_refused_and_nothing_is_done(memory_crm, sf):
    sf.process([rec()])
    ids = [p.id for p in review.pending(sf.ledger)]
    review.reject(sf.ledger, ids[:1])

    with pytest.raises(review.NotPending) as refused:
        review.approve(sf, [ids[1], ids[0], 999])
    assert str(refused.value) == f"no proposal 999; not pending: {ids[0]} (rejected)"
    assert [p.id for p in review.pending(sf.ledger)] == [ids[1]]  # untouched
    with pytest.raises(review.NotPending):
        review.reject(sf.ledger, [999])


def test_a_dry_run_holds_nothing_and_shadow_mode_plans(memory_crm, sf, make_memory_pipeline):
    [dry] = sf.process([rec()], dry_run=True)
    assert outcomes_of(dry)[("Opportunity", OPPORTUNITY, "Amount")].outcome == "pending_review"
    assert review.pending(sf.ledger) == []

    shadow = make_memory_pipeline(memory_crm, sf.database_url, fields=REVIEWED, mode="shadow")
    [planned] = shadow.process([rec(opportunity=OPPORTUNITY2)])
    amount = outcomes_of(planned)[("Opportunity", OPPORTUNITY2, "Amount")]
    assert amount.outcome == "planned" and "policy review" in amount.reason
    assert review.pending(shadow.ledger) == [] and memory_crm.writes() == []


def test_a_stage_waits_with_its_pipeline_and_is_matched_in_the_proposed_one(hubspot_crm, make_hubspot_pipeline):
    """deals.pipeline under review: the stage from the same recording waits with it, as the renewals
    pipeline's Closed Won (not the current pipeline's), and approving both moves the deal whole."""
    hs = make_hubspot_pipeline(hubspot_crm, fields={"policy": {"deals.pipeline": "review"}})
    rec = recording("rec-p", [X("Pipeline", "Enterprise Renewals", ("Deal", "pipeline")),
                              X("Stage", "Closed Won", ("Deal", "dealstage"))],
                    opportunity=DEAL_ACME, integration_connection_id="ic_hs")

    [report] = hs.process([rec])

    got = outcomes_of(report)
    assert got[("deals", DEAL_ACME, "pipeline")][:2] == ("pending_review", RENEWALS_PIPELINE)
    assert got[("deals", DEAL_ACME, "dealstage")][:2] == ("pending_review", "61342873")
    assert got[("deals", DEAL_ACME, "dealstage")].reason.endswith("waits for a person, with pipeline (writeback review)")
    assert hubspot_crm.writes() == []
    approval = review.approve(hs)
    assert {line.field: line.outcome for _, line in approval.lines} == {"pipeline": "written", "dealstage": "written"}
    assert hubspot_crm.writes() == [[(DEAL_ACME, {"pipeline": RENEWALS_PIPELINE, "dealstage": "61342873"})]]


@pytest.mark.parametrize("updated_at", ["2026-11-01T11:00:00+02:00", "2026-11-01T09:00:00.123Z"])
def test_a_rejection_is_remembered_whatever_offset_siro_sends(memory_crm, make_memory_pipeline, database_url,
                                                              updated_at):
    sf = make_memory_pipeline(memory_crm, database_url, fields=REVIEWED)
    sf.process([rec(updated_at=updated_at)])
    review.reject(sf.ledger)

    [again] = sf.process([rec(updated_at=updated_at)])

    assert outcomes_of(again)[("Opportunity", OPPORTUNITY, "Amount")].reason.startswith("rejected: ")
    assert review.pending(sf.ledger) == []


def test_a_proposal_being_approved_cannot_be_rejected_and_a_stale_claim_is_pending_again(memory_crm, sf):
    from sqlalchemy import update

    from worker.ledger.proposals import STALE_CLAIM
    from worker.ledger.schema import Proposal, utcnow

    sf.process([rec()])
    [amount, stage] = [p.id for p in review.pending(sf.ledger)]
    claimed, refused = sf.ledger.claim_proposals([amount])  # another operator's approval, under way
    assert [row.id for row in claimed] == [amount] and refused == {}

    with pytest.raises(review.NotPending, match=rf"not pending: {amount} \(approving\)"):
        review.reject(sf.ledger, [amount])
    with pytest.raises(review.NotPending):
        review.approve(sf, [amount, stage])  # all or nothing: the stage is not written either
    assert memory_crm.writes() == [[(OPPORTUNITY, {"NextStep": "Call Tuesday"})]]
    assert [p.id for p in review.pending(sf.ledger)] == [stage]

    with sf.ledger.engine.begin() as conn:  # that process died ten minutes ago
        conn.execute(update(Proposal).where(Proposal.id == amount).values(decided_at=utcnow() - STALE_CLAIM * 2))
    assert [p.id for p in review.pending(sf.ledger)] == [amount, stage]
    assert {line.outcome for _, line in review.approve(sf).lines} == {"written"}


def test_a_revert_withdraws_the_recordings_proposals(memory_crm, sf):
    from worker.pipeline.revert import revert

    sf.process([rec()])  # NextStep written, Amount and StageName held

    revert(sf, "rec-1")

    assert review.pending(sf.ledger) == []
    assert {p.reason for p in sf.ledger.proposals(status=None)} == {"superseded: the recording was reverted"}


def test_a_later_conversation_that_finds_the_crm_as_it_says_withdraws_an_older_proposal(memory_crm, sf):
    sf.process([rec()])  # rec-1 proposes Amount 18750
    memory_crm.set_values("Opportunity", OPPORTUNITY, {"Amount": 30000})  # a rep sets it

    [later] = sf.process([rec("rec-2", 30000, created_at="2026-11-04T09:00:00.000Z")])

    assert outcomes_of(later)[("Opportunity", OPPORTUNITY, "Amount")].outcome == "unchanged"
    assert [p.field for p in review.pending(sf.ledger)] == ["StageName"]  # approving 18750 would undo rec-2
