"""What the pipeline decides, field by field and recording by recording, on the in-memory CRM.

The pipeline's own logic, apart from any wire protocol: write policies
(``protect_edits`` against the ledger), link slots, recordings that reach no
connection or carry nothing to write, dry runs, contested values, values that
are only separators, dependent fields (a HubSpot deal stage is one of its own
pipeline's stages) and the ledger on either database. Each test checks what a
user would: the report's outcomes, values, previous values and reasons, what
the CRM holds afterwards, which reads and writes reached it, and the ledger.

No HTTP: the CRM is ``tests/fixtures/memory_crm.py``'s (a Salesforce-like one,
and a HubSpot-like one typed as the HubSpot connector reads the simulator's
portal), the recordings are built as Siro's API sends them and handed to
``Pipeline.process``, and the ledger is a real database. What a CRM's wire
does (request shapes, the client libraries, the CRM's error bodies, values
read back as the CRM answers them) stays in test_sync_salesforce.py and
test_sync_hubspot.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.memory_crm import (
    COMPETITORS,
    CONTACT,
    CONTACT2,
    DEAL_ACME,
    DEAL_GLOBEX,
    EXPECTED_REVENUE,
    OPPORTUNITY,
    RENEWALS_PIPELINE,
    MemoryCRM,
    extraction,
    recording,
    sf_id,
)
from tests.fixtures.pipelines import outcomes_of
from worker.siro.models import Recording

X = extraction


@pytest.fixture
def crm(memory_crm: MemoryCRM) -> MemoryCRM:
    """The Salesforce-like CRM, with Opportunity's Competitors__c (a restricted multi-select) and
    ExpectedRevenue (calculated) as the Salesforce simulator seeds them."""
    memory_crm.change_field("Opportunity", COMPETITORS)
    memory_crm.change_field("Opportunity", EXPECTED_REVENUE)
    memory_crm.set_values("Opportunity", OPPORTUNITY, {"Competitors__c": "Gong;Chorus", "ExpectedRevenue": 2500})
    return memory_crm


@pytest.fixture
def sf(crm, make_memory_pipeline):
    """A pipeline on ``crm`` with the Salesforce tests' field rules (``memory_connection``)."""
    return make_memory_pipeline(crm)


@pytest.fixture
def hs(hubspot_crm, make_hubspot_pipeline):
    """A pipeline on the HubSpot-like CRM with the HubSpot tests' field rules (``hubspot_connection``)."""
    return make_hubspot_pipeline(hubspot_crm)


def deal(recording_id: str, deal_id: str, extractions: list[dict[str, Any]], **kwargs: Any) -> Recording:
    """A recording linked to one deal of the HubSpot-like CRM."""
    return recording(recording_id, extractions, opportunity=deal_id, integration_connection_id="ic_hs", **kwargs)


# --------------------------------------------------------------------------- #
# Salesforce-like: the recording as a whole


GONE = sf_id("0035g00000ConZZ")  # a contact the CRM does not have (deleted)


def many_outcomes(recording_id: str = "rec-sf") -> Recording:
    """One recording whose mappings reach most outcomes on ``crm`` (the deleted contact's: failed)."""
    return recording(recording_id, [
        X("Deal size", "18,750", ("Opportunity", "Amount")),
        X("Stage", "negotiation/review", ("Deal", "StageName")),
        X("Owner", "someone", ("Opportunity", "OwnerId")),
        X("Next step", "Call back Tuesday", ("Opportunity", "NextStep")),
        X("Notes", "Two layers of shingles", ("Opportunity", "Description")),
        X("Lead source", "Web", ("Lead", "LeadSource")),
        X("Budget line", 10, ("Budget__c", "Amount__c")),
        X("Roof age", "22", ("Opportunity", "Roof_Age__c")),
        X("Expected", 1000, ("Opportunity", "ExpectedRevenue")),
        X("Competitors", ["Gong", "Zoom"], ("Opportunity", "Competitors__c")),
        X("Type", "New Customer", ("Opportunity", "Type")),
        X("Type recap", "Existing Customer - Upgrade", ("Opportunity", "Type")),
        X("Role", "Homeowner", ("Contact", "Title")),
        X("Spouse", None, ("Contact", "Department")),
    ], opportunity=OPPORTUNITY, contacts=[CONTACT, GONE])


def test_one_recording_reaches_many_outcomes(crm, sf):
    """``many_outcomes`` reaches what its comments say, so the tests below build on known ground."""
    [report] = sf.process([many_outcomes()])

    got = outcomes_of(report)
    assert report.status == "partial"
    assert got[("Opportunity", OPPORTUNITY, "Amount")][:3] == ("written", 18750, 12500)
    assert got[("Opportunity", OPPORTUNITY, "StageName")][:3] == ("written", "Negotiation/Review", "Qualification")
    assert (got[("Opportunity", None, "OwnerId")].outcome, got[("Opportunity", None, "OwnerId")].reason) == (
        "skipped_policy", "deny")
    assert got[("Opportunity", OPPORTUNITY, "NextStep")].reason.startswith("fill_empty")
    assert got[("Opportunity", OPPORTUNITY, "Description")].outcome == "written"  # protect_edits, field empty
    assert got[("Lead", None, "LeadSource")].outcome == "unlinked"
    assert got[(None, None, "Amount__c")].outcome == "unknown_model"
    assert got[("Opportunity", OPPORTUNITY, "Roof_Age__c")].outcome == "unknown_field"
    assert got[("Opportunity", OPPORTUNITY, "ExpectedRevenue")].outcome == "not_writable"
    competitors = got[("Opportunity", OPPORTUNITY, "Competitors__c")]
    assert competitors.outcome == "invalid_value" and "'Zoom'" in competitors.reason
    assert [line.outcome for line in report.fields if line.field == "Type"] == ["conflict", "conflict"]
    assert got[("Contact", CONTACT, "Title")][:3] == ("written", "Homeowner", None)
    assert got[("Contact", GONE, "Title")].outcome == "failed"
    assert got[("Contact", CONTACT, "Department")].outcome == "null_value"
    assert sorted(crm.writes()) == [
        [(CONTACT, {"Title": "Homeowner"})],
        [(OPPORTUNITY, {"Amount": 18750, "StageName": "Negotiation/Review",
                        "Description": "Two layers of shingles"})],
    ]


def test_dry_run_plans_and_sends_nothing(crm, sf):
    [report] = sf.process([many_outcomes()], dry_run=True)

    got = outcomes_of(report)
    assert got[("Opportunity", OPPORTUNITY, "Amount")][:3] == ("planned", 18750, 12500)
    assert crm.writes() == []
    assert crm.record("Opportunity", OPPORTUNITY)["Amount"] == 12500
    assert sf.ledger.attempts("rec-sf") == []


def test_the_same_sync_on_either_ledger_database(database_url, crm, make_memory_pipeline):
    """SQLite by default, PostgreSQL in production: the same outcomes, the same rows."""
    pipeline = make_memory_pipeline(crm, database_url)

    [first] = pipeline.process([many_outcomes()])
    [second] = pipeline.process([many_outcomes()])
    rows = pipeline.ledger.attempts("rec-sf")
    runs = pipeline.ledger.runs("rec-sf")

    assert first.status == second.status == "partial"
    assert len(rows) == len(first.fields) + len(second.fields)
    assert [run.status for run in runs] == ["partial", "partial"]
    amount = [(r.line.outcome, r.line.value, r.line.previous) for r in rows if r.line.field == "Amount"]
    assert amount == [("unchanged", 18750, 18750), ("written", 18750, 12500)]  # newest first
    assert len(crm.writes()) == 2  # the first sync's two objects; the second sent nothing


def test_a_recording_without_a_matching_connection_fails_with_no_connection(crm, sf):
    rec = recording("rec-n", [X("Deal size", 1, ("Opportunity", "Amount"))], opportunity=OPPORTUNITY,
                    integration_connection_id="ic_unknown")

    [report] = sf.process([rec])

    assert (report.status, report.reason) == ("failed", "no_connection")
    assert [str(line.outcome) for line in report.fields] == ["failed"]
    assert crm.requests == []  # nothing reached the CRM


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"crm": None}, "not_linked"), ({"deleted": True}, "deleted"), ({"entity_extractions": []}, "nothing_mapped")],
)
def test_recordings_with_nothing_to_write_are_skipped(crm, sf, changes, reason):
    linked = recording("rec-s", [X("Deal size", 1, ("Opportunity", "Amount"))], opportunity=OPPORTUNITY)

    [report] = sf.process([linked.model_copy(update=changes)])

    assert (report.status, report.reason, report.fields) == ("skipped", reason, [])
    assert crm.writes() == [] and crm.reads() == []


def test_a_contacts_slot_set_to_first_writes_only_the_first_contact(crm, make_memory_pipeline):
    pipeline = make_memory_pipeline(crm, slots={"contacts": "first"})
    rec = recording("rec-c", [X("Role", "Homeowner", ("Contact", "Title"))], contacts=[CONTACT, CONTACT2])

    [report] = pipeline.process([rec])

    assert [(line.record_id, str(line.outcome)) for line in report.fields] == [(CONTACT, "written")]
    assert crm.record("Contact", CONTACT)["Title"] == "Homeowner"
    assert crm.record("Contact", CONTACT2).get("Title") is None
    assert crm.reads() == [("Contact", [CONTACT])] and crm.writes() == [[(CONTACT, {"Title": "Homeowner"})]]


# --------------------------------------------------------------------------- #
# Salesforce-like: policies and values


def test_protect_edits_skips_a_field_a_person_changed(crm, sf):
    def notes(text: str, updated_at: str) -> Recording:  # the same recording, re-processed by Siro
        return recording("rec-p", [X("Notes", text, ("Opportunity", "Description"))], opportunity=OPPORTUNITY,
                         updated_at=updated_at)

    def description(report) -> Any:
        return outcomes_of(report)[("Opportunity", OPPORTUNITY, "Description")]

    [first] = sf.process([notes("first notes", "2026-11-01T10:00:00.000Z")])
    assert description(first).outcome == "written"

    # The recording is re-processed with new notes: the CRM still holds ours, so it is written.
    [second] = sf.process([notes("second notes", "2026-11-02T10:00:00.000Z")])
    assert description(second)[:3] == ("written", "second notes", "first notes")

    # A person edits the field in the CRM: the next change is not written over it.
    crm.set_values("Opportunity", OPPORTUNITY, {"Description": "typed by the rep"})
    [third] = sf.process([notes("third notes", "2026-11-03T10:00:00.000Z")])
    line = description(third)
    assert (line.outcome, line.reason.split(":")[0]) == ("skipped_policy", "edited")
    assert line.previous == "typed by the rep"
    assert crm.record("Opportunity", OPPORTUNITY)["Description"] == "typed by the rep"
    assert crm.writes() == [[(OPPORTUNITY, {"Description": "first notes"})],
                            [(OPPORTUNITY, {"Description": "second notes"})]]
    assert [r.line.outcome for r in sf.ledger.attempts("rec-p")] == ["skipped_policy", "written", "written"]


def test_contested_values_of_a_field_never_written_are_all_reported(crm, sf):
    rec = recording("rec-c2", [X("Forecast", 9000, ("Opportunity", "ExpectedRevenue")),
                               X("Forecast (recap)", 1, ("Opportunity", "ExpectedRevenue"))],
                    opportunity=OPPORTUNITY)

    [report] = sf.process([rec])

    assert [(str(l.outcome), l.value, l.extraction) for l in report.fields] == [
        ("not_writable", 9000, "Forecast"), ("not_writable", 1, "Forecast (recap)")]
    assert crm.writes() == []
    assert crm.record("Opportunity", OPPORTUNITY)["ExpectedRevenue"] == 2500


def test_a_value_that_is_only_separators_never_clears_a_field(crm, sf):
    rec = recording("rec-sep", [X("Competitors", " ; ", ("Opportunity", "Competitors__c"))], opportunity=OPPORTUNITY)

    [line] = sf.process([rec])[0].fields

    assert str(line.outcome) == "null_value"
    assert crm.record("Opportunity", OPPORTUNITY)["Competitors__c"] == "Gong;Chorus"
    assert crm.writes() == []


# --------------------------------------------------------------------------- #
# HubSpot-like: a deal's stage depends on its pipeline


def test_a_stage_is_not_written_when_its_pipeline_from_the_same_recording_is_not(hubspot_crm, hs):
    rec = deal("rec-typo", DEAL_ACME, [X("Pipeline", "Partner Pipeline", ("Deal", "pipeline")),
                                       X("Stage", "Closed Won", ("Deal", "dealstage"))])

    got = outcomes_of(hs.process([rec])[0])

    assert got[("deals", DEAL_ACME, "pipeline")].outcome == "invalid_value"
    stage = got[("deals", DEAL_ACME, "dealstage")]
    assert stage.outcome == "invalid_value" and stage.reason.startswith("depends on pipeline")
    assert hubspot_crm.record("deals", DEAL_ACME)["dealstage"] == "qualifiedtobuy"
    assert hubspot_crm.writes() == []


def test_pipeline_and_stage_from_two_recordings_of_a_page_land_together(hubspot_crm, hs):
    """The stage is matched in the pipeline the deal will hold, whichever recording sets it."""
    page = [  # as Siro lists a page: oldest first
        deal("rec-old", DEAL_ACME, [X("Pipeline", "Enterprise Renewals", ("Deal", "pipeline")),
                                    X("Stage", "Renewal Discovery", ("Deal", "dealstage"))],
             created_at="2026-11-01T09:00:00.000Z", updated_at="2026-11-01T10:00:00.000Z"),
        deal("rec-new", DEAL_ACME, [X("Stage", "Closed Won", ("Deal", "dealstage"))],
             created_at="2026-11-02T09:00:00.000Z", updated_at="2026-11-02T10:00:00.000Z"),
    ]

    old, new = hs.process(page, trigger="poll")

    assert outcomes_of(old)[("deals", DEAL_ACME, "pipeline")][:2] == ("written", RENEWALS_PIPELINE)
    superseded = outcomes_of(old)[("deals", DEAL_ACME, "dealstage")]
    assert superseded.outcome == "skipped_policy" and "superseded" in superseded.reason
    assert outcomes_of(new)[("deals", DEAL_ACME, "dealstage")][:2] == ("written", "61342873")
    record = hubspot_crm.record("deals", DEAL_ACME)
    assert (record["pipeline"], record["dealstage"]) == (RENEWALS_PIPELINE, "61342873")
    # One read, and one write carrying both: the CRM never holds a stage outside the deal's pipeline.
    assert hubspot_crm.reads() == [("deals", [DEAL_ACME])]
    assert hubspot_crm.writes() == [[(DEAL_ACME, {"pipeline": RENEWALS_PIPELINE, "dealstage": "61342873"})]]


def test_a_stage_is_matched_in_the_current_pipeline_when_a_policy_keeps_it(hubspot_crm, make_hubspot_pipeline):
    pipeline = make_hubspot_pipeline(hubspot_crm, fields={"policy": {"deals.pipeline": "fill_empty"}})
    rec = deal("rec-fill", DEAL_ACME, [X("Pipeline", "Enterprise Renewals", ("Deal", "pipeline")),
                                       X("Stage", "Closed Won", ("Deal", "dealstage"))])

    got = outcomes_of(pipeline.process([rec])[0])

    assert got[("deals", DEAL_ACME, "pipeline")].outcome == "skipped_policy"
    assert got[("deals", DEAL_ACME, "dealstage")][:2] == ("written", "closedwon")
    record = hubspot_crm.record("deals", DEAL_ACME)
    assert (record["pipeline"], record["dealstage"]) == ("default", "closedwon")
    assert hubspot_crm.writes() == [[(DEAL_ACME, {"dealstage": "closedwon"})]]


def test_only_separators_beside_a_value_are_set_aside_and_never_clear(hubspot_crm, hs):
    only = deal("rec-sep", DEAL_GLOBEX, [X("C1", " ; ", ("Deal", "competitors")),
                                         X("C2", ";;", ("Deal", "competitors"))])
    beside = deal("rec-sep2", DEAL_GLOBEX, [X("C1", " ; ", ("Deal", "competitors")),
                                            X("C2", "Globex", ("Deal", "competitors"))])

    [only_separators] = hs.process([only])
    [beside_a_value] = hs.process([beside])

    assert {str(line.outcome) for line in only_separators.fields} == {"null_value"}
    assert [(str(l.outcome), l.extraction) for l in beside_a_value.fields] == [("null_value", "C1"), ("written", "C2")]
    assert hubspot_crm.record("deals", DEAL_GLOBEX)["competitors"] == "globex"
    assert hubspot_crm.writes() == [[(DEAL_GLOBEX, {"competitors": "globex"})]]

