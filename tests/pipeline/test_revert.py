"""``worker.pipeline.revert`` on the in-memory CRM: what a revert puts back, what it leaves, and what it stops.

Each test writes a recording through the pipeline as a poll page would, changes
what a person or a later recording would change, reverts, and checks what a
user would: the report, the CRM's values, the requests that reached it, and
the ledger (a run with trigger ``revert``; the reverted version not written again).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from connectors.base import TransientError
from tests.fixtures.memory_crm import (
    CONTACT,
    OPPORTUNITY,
    SCHEMA,
    MemoryCRM,
    extraction,
    recording,
)
from tests.fixtures.pipelines import outcomes_of
from worker.pipeline.revert import revert
from worker.siro.models import Recording

X = extraction
SCHEMA_FIELDS = {field.name: field for field in SCHEMA["Opportunity"]}
V1, V2 = "2026-11-01T09:00:00.000Z", "2026-11-02T09:00:00.000Z"


def written(updated_at: str = V1, *, amount: Any = "18,750", title: str = "Homeowner") -> Recording:
    """rec-1: Amount 12500 -> 18750 and Description (empty) -> text on the opportunity, Title on a contact."""
    return recording("rec-1", [
        X("Deal size", amount, ("Opportunity", "Amount")),
        X("Notes", "Two layers of shingles", ("Opportunity", "Description")),
        X("Role", title, ("Contact", "Title")),
    ], opportunity=OPPORTUNITY, contacts=[CONTACT], updated_at=updated_at)


@pytest.fixture
def sf(memory_crm, make_memory_pipeline):
    return make_memory_pipeline(memory_crm, fields={"policy": {}})


def test_revert_puts_back_every_previous_value_and_clears_what_was_empty(memory_crm: MemoryCRM, sf):
    sf.process([written()])
    requests_before = len(memory_crm.requests)

    report = revert(sf, "rec-1")

    got = outcomes_of(report)
    assert report.status == "ok"
    assert got[("Opportunity", OPPORTUNITY, "Amount")][:3] == ("reverted", 12500, 18750)
    assert got[("Opportunity", OPPORTUNITY, "Description")][:3] == ("reverted", None, "Two layers of shingles")
    assert got[("Contact", CONTACT, "Title")][:3] == ("reverted", None, "Homeowner")
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Amount"] == 12500
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Description"] is None  # cleared: write_nulls is off
    assert memory_crm.record("Contact", CONTACT)["Title"] is None
    # Batched as any write: one read and one write per object.
    new = memory_crm.requests[requests_before:]
    assert sorted((r.kind, r.object) for r in new) == [("read", "Contact"), ("read", "Opportunity"),
                                                        ("write", "Contact"), ("write", "Opportunity")]
    runs = sf.ledger.runs("rec-1")
    assert [(run.trigger, run.status) for run in runs] == [("revert", "ok"), ("cli", "ok")]


def test_a_field_a_person_edited_since_is_left_alone(memory_crm, sf):
    sf.process([written()])
    memory_crm.set_values("Opportunity", OPPORTUNITY, {"Amount": 20000})  # a rep corrects the amount

    report = revert(sf, "rec-1")

    amount = outcomes_of(report)[("Opportunity", OPPORTUNITY, "Amount")]
    assert (amount.outcome, amount.previous) == ("skipped_policy", 20000)
    assert amount.reason.startswith("edited_since: ")
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Amount"] == 20000
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Description"] is None  # the rest reverted
    assert [values["Amount"] for sent in memory_crm.writes() for _, values in sent if "Amount" in values] == [
        18750]  # only the sync ever sent Amount


def test_a_field_a_later_recording_wrote_is_left_alone_even_with_the_same_value(memory_crm, sf):
    sf.process([written()])
    later = recording("rec-2", [X("Deal size", 18750, ("Opportunity", "Amount"))], opportunity=OPPORTUNITY,
                      created_at="2026-11-05T09:00:00.000Z")
    memory_crm.set_values("Opportunity", OPPORTUNITY, {"Amount": 1})  # so rec-2 really writes
    sf.process([later])

    amount = outcomes_of(revert(sf, "rec-1"))[("Opportunity", OPPORTUNITY, "Amount")]

    assert (amount.outcome, amount.reason) == ("skipped_policy", "edited_since: recording rec-2 wrote this field since")
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Amount"] == 18750


def test_a_second_revert_sends_nothing(memory_crm, sf):
    sf.process([written()])
    revert(sf, "rec-1")
    writes_before = len(memory_crm.writes())

    again = revert(sf, "rec-1")

    assert {line.outcome for line in again.fields} == {"unchanged"}
    assert len(memory_crm.writes()) == writes_before
    assert [run.trigger for run in sf.ledger.runs("rec-1")] == ["revert", "revert", "cli"]


def test_a_dry_run_plans_the_revert_and_sends_nothing(memory_crm, sf):
    sf.process([written()])
    writes_before = len(memory_crm.writes())

    report = revert(sf, "rec-1", dry_run=True)

    assert {line.outcome for line in report.fields} == {"planned"}
    assert len(memory_crm.writes()) == writes_before
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Amount"] == 18750
    assert [run.trigger for run in sf.ledger.runs("rec-1")] == ["cli"]  # a dry run is not recorded
    sf.process([written()])  # nor does it stop the next pass
    assert sf.ledger.runs("rec-1")[0].status == "ok"


def test_the_reverted_version_is_not_written_again_until_forced_or_newer(memory_crm, sf):
    sf.process([written()])
    revert(sf, "rec-1")
    writes_before = len(memory_crm.writes())

    [again] = sf.process([written()])  # a later poll pass, or the webhook, over the same version

    assert (again.status, again.code) == ("skipped", "reverted")
    assert again.reason.startswith("reverted: this version (updatedAt 2026-11-01T09:00:00+00:00) was reverted")
    assert len(memory_crm.writes()) == writes_before

    [forced] = sf.process([written()], force=True)  # writeback sync --force
    assert outcomes_of(forced)[("Opportunity", OPPORTUNITY, "Amount")].outcome == "written"
    revert(sf, "rec-1")
    [newer] = sf.process([written(V2, amount=30000)])  # Siro re-processed the recording
    assert outcomes_of(newer)[("Opportunity", OPPORTUNITY, "Amount")][:3] == ("written", 30000, 12500)
    # The next revert puts back what the CRM held before the recording's *first* write.
    assert outcomes_of(revert(sf, "rec-1"))[("Opportunity", OPPORTUNITY, "Amount")][:3] == ("reverted", 12500, 30000)


def test_a_recording_that_never_wrote_has_nothing_to_revert(memory_crm, sf):
    sf.process([written()], dry_run=True)

    report = revert(sf, "rec-1")

    assert (report.status, report.code, report.fields) == ("failed", "nothing_written", [])
    assert sf.ledger.runs("rec-1") == []
    assert memory_crm.writes() == []


def test_a_value_the_crm_refuses_to_put_back_is_its_outcome_and_the_rest_reverts(memory_crm, sf):
    """An admin made Description required since the write: clearing it is refused; Amount still reverts."""
    sf.process([written()])
    memory_crm.change_field("Opportunity", replace(SCHEMA_FIELDS["Description"], nillable=False))

    report = revert(sf, "rec-1")

    got = outcomes_of(report)
    assert got[("Opportunity", OPPORTUNITY, "Description")].outcome == "invalid_value"
    assert "REQUIRED" in got[("Opportunity", OPPORTUNITY, "Description")].reason
    assert got[("Opportunity", OPPORTUNITY, "Amount")].outcome == "reverted"
    assert report.status == "partial"  # sync's exit code 1
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Description"] == "Two layers of shingles"
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Amount"] == 12500


def test_a_connection_gone_from_the_config_fails_its_fields(memory_crm, sf, make_memory_pipeline, tmp_path):
    sf.process([written()])
    renamed = make_memory_pipeline(memory_crm, sf.database_url, name="sf-renamed", fields={"policy": {}})

    report = revert(renamed, "rec-1")

    assert {(line.outcome, line.reason) for line in report.fields} == {
        ("failed", "the config has no connection 'sf' any more")}
    assert report.status == "partial"


def test_a_later_recording_that_was_itself_reverted_does_not_stand_in_the_way(memory_crm, sf):
    sf.process([written()])
    later = recording("rec-2", [X("Deal size", 20000, ("Opportunity", "Amount"))], opportunity=OPPORTUNITY,
                      created_at="2026-11-05T09:00:00.000Z")
    sf.process([later])
    assert outcomes_of(revert(sf, "rec-2"))[("Opportunity", OPPORTUNITY, "Amount")][:2] == ("reverted", 18750)

    amount = outcomes_of(revert(sf, "rec-1"))[("Opportunity", OPPORTUNITY, "Amount")]

    assert amount[:3] == ("reverted", 12500, 18750)
    assert memory_crm.record("Opportunity", OPPORTUNITY)["Amount"] == 12500


def test_a_revert_that_settled_nothing_does_not_stop_later_passes(memory_crm, sf, make_memory_pipeline):
    """In shadow mode a revert only plans; with the CRM down every field fails: either way the
    values are still in the CRM, and the version is not taken for reverted."""
    sf.process([written()])
    shadow = make_memory_pipeline(memory_crm, sf.database_url, fields={"policy": {}}, mode="shadow")
    assert {line.outcome for line in revert(shadow, "rec-1").fields} == {"planned"}
    for _ in range(6):  # two objects, three tries each
        memory_crm.fail_next("read", TransientError("503 Service Unavailable"))
    down = revert(sf, "rec-1")
    assert {line.outcome for line in down.fields} == {"failed"} and down.status == "partial"
    memory_crm.set_values("Opportunity", OPPORTUNITY, {"Amount": 1})  # drifted since

    [again] = sf.process([written()])

    assert again.status == "ok"
    assert outcomes_of(again)[("Opportunity", OPPORTUNITY, "Amount")][:3] == ("written", 18750, 1)
