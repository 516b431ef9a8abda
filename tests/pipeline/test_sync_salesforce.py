"""End to end, Salesforce: Siro simulator → pipeline → simple-salesforce → Salesforce simulator.

Every outcome of DESIGN §2 is produced by one recording, then checked where a
user would look: the report, the CRM's records, the CRM's request log and the
ledger. Nothing of our own code is replaced.

What stays here is what only the wire proves: simple-salesforce's requests
(one composite PATCH per object), the values Salesforce answers read back as
equal to what was sent (a second sync writes nothing), Salesforce's own error
bodies pinned on their fields, an expired session. The pipeline's own logic
(write policies, slots, dry runs, recordings skipped or without a connection,
contested values, the ledger on either database) runs on the in-memory CRM in
test_decisions.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from simulators.salesforce import PicklistValue, SalesforceState, SeededIds
from simulators.siro import SiroState
from tests.fixtures.pipelines import make_pipeline, outcomes_of

X = SiroState.extraction


def connection(url: str, token: str, **extra: Any) -> dict[str, Any]:
    return {
        "integration_connection_id": "ic_sf",
        "connector": "salesforce",
        "name": "sf",
        "instance_url": url,
        "access_token": token,
        "fields": {
            "deny": ["Opportunity.OwnerId"],
            "policy": {"Opportunity.NextStep": "fill_empty", "Opportunity.Description": "protect_edits"},
        },
        "models": {"Territory": {"slot": "account"}},
        **extra,
    }


@pytest.fixture
def sf(salesforce_server, salesforce_state: SalesforceState, salesforce_ids: SeededIds, salesforce_token: str,
       salesforce_session, siro_server, tmp_path):
    """A pipeline wired to the simulators, plus the handles a test needs."""
    config = {"connections": [connection(salesforce_server.url, salesforce_token)]}
    pipeline = make_pipeline(config, siro_server, tmp_path, salesforce_session=salesforce_session)
    yield pipeline
    pipeline.close()


def patches(state: SalesforceState) -> list:
    return state.requests_matching("PATCH")


def seed_every_outcome(siro: SiroState, sf: SalesforceState, ids: SeededIds) -> tuple[str, str]:
    """A recording whose mappings reach every outcome; returns (recording id, deleted contact id)."""
    gone = sf.create_record("Contact", {"FirstName": "Old", "LastName": "Contact", "Name": "Old Contact"})
    sf.delete_record("Contact", gone)
    siro.add_recording(
        "rec-sf",
        entity_extractions=[
            X("Deal size", "18,750", ("Opportunity", "Amount")),
            X("Stage", "negotiation/review", ("Deal", "StageName")),
            X("Seats", "25", ("Opportunity", "Seats__c")),
            X("Owner", "someone", ("Opportunity", "OwnerId")),
            X("Next step", "Call back Tuesday", ("Opportunity", "NextStep")),
            X("Notes", "Two layers of shingles", ("Opportunity", "Description")),
            X("Lead source", "Web", ("Lead", "LeadSource")),
            X("Territory", "West", ("Territory", "Name")),
            X("Budget line", 10, ("Budget__c", "Amount__c")),
            X("Roof age", "22", ("Opportunity", "Roof_Age__c")),
            X("Expected", 1000, ("Opportunity", "ExpectedRevenue")),
            X("Competitors", ["Gong", "Zoom"], ("Opportunity", "Competitors__c")),
            X("Pains", "x" * 1001, ("Opportunity", "Pain_Points__c")),
            X("Budget confirmed", "yes", ("Opportunity", "Budget_Confirmed__c")),
            X("Budget (recap)", True, ("Opportunity", "Budget_Confirmed__c")),
            X("Type", "New Customer", ("Opportunity", "Type")),
            X("Type recap", "Existing Customer - Upgrade", ("Opportunity", "Type")),
            X("Role", "Homeowner", ("Contact", "Title")),
            X("Spouse", None, ("Contact", "Department")),
            X("Visit notes", "Walked the roof", ("Appointment", "Description")),
            X("Account", "Acme Roofing", ("Opportunity", "AccountId")),
            X("Email", "dana at acme", ("Contact", "Email")),
        ],
    )
    siro.link("rec-sf", integration_connection_id="ic_sf", opportunity=ids.opportunity, account=ids.account,
              contacts=[ids.contact, gone], engagement=ids.event, users=[ids.user])
    return "rec-sf", gone


def test_one_recording_reaches_every_outcome(sf, salesforce_state, salesforce_ids, siro_server):
    ids = salesforce_ids
    recording_id, gone = seed_every_outcome(siro_server.state, salesforce_state, ids)

    report = sf.sync(recording_id)
    got = outcomes_of(report)

    assert report.status == "partial"
    assert got[("Opportunity", ids.opportunity, "Amount")][:3] == ("written", 18750, 12500)
    assert got[("Opportunity", ids.opportunity, "StageName")][:3] == ("written", "Negotiation/Review", "Qualification")
    assert got[("Opportunity", ids.opportunity, "Seats__c")][:3] == ("unchanged", 25, 25)
    assert got[("Opportunity", None, "OwnerId")].outcome == "skipped_policy"
    assert got[("Opportunity", None, "OwnerId")].reason == "deny"
    assert got[("Opportunity", ids.opportunity, "NextStep")].outcome == "skipped_policy"
    assert got[("Opportunity", ids.opportunity, "NextStep")].reason.startswith("fill_empty")
    assert got[("Opportunity", ids.opportunity, "Description")].outcome == "written"  # protect_edits, field empty
    assert got[("Lead", None, "LeadSource")].outcome == "unlinked"
    assert got[(None, None, "Name")].outcome == "unsupported"
    assert got[(None, None, "Amount__c")].outcome == "unknown_model"
    assert got[("Opportunity", ids.opportunity, "Roof_Age__c")].outcome == "unknown_field"
    assert got[("Opportunity", ids.opportunity, "ExpectedRevenue")].outcome == "not_writable"
    competitors = got[("Opportunity", ids.opportunity, "Competitors__c")]
    assert competitors.outcome == "invalid_value" and "'Zoom'" in competitors.reason
    pains = got[("Opportunity", ids.opportunity, "Pain_Points__c")]
    assert pains.outcome == "invalid_value" and "1000" in pains.reason
    # A name where a record id belongs, a malformed email: refused before any request.
    assert got[("Opportunity", ids.opportunity, "AccountId")].outcome == "invalid_value"
    assert got[("Contact", ids.contact, "Email")].outcome == "invalid_value"
    assert [(line.outcome, line.extraction) for line in report.fields if line.field == "Type"] == [
        ("conflict", "Type"), ("conflict", "Type recap")]
    # "yes" and true differ as raw values but are one value for a checkbox: one write naming both.
    budget = [line for line in report.fields if line.field == "Budget_Confirmed__c"]
    assert [(line.outcome, line.value, line.extraction) for line in budget] == [
        ("written", True, "Budget confirmed, Budget (recap)")]
    assert got[("Contact", ids.contact, "Title")][:3] == ("written", "Homeowner", None)
    assert got[("Contact", gone, "Title")].outcome == "failed"
    assert got[("Contact", ids.contact, "Department")].outcome == "null_value"
    assert got[("Event", ids.event, "Description")].outcome == "written"

    # The CRM holds exactly what the report says was written, and nothing else changed.
    opportunity = salesforce_state.get_record("Opportunity", ids.opportunity)
    assert opportunity["Amount"] == 18750
    assert opportunity["StageName"] == "Negotiation/Review"
    assert opportunity["NextStep"] == "Send proposal"
    assert opportunity["Competitors__c"] == "Gong;Chorus"
    assert opportunity["Type"] is None
    assert salesforce_state.get_record("Contact", ids.contact)["Title"] == "Homeowner"
    assert salesforce_state.get_record("Event", ids.event)["Description"] == "Walked the roof"

    # One write request per object, each record's fields in one entry; the deleted contact got none.
    sent = {}
    for patch in patches(salesforce_state):
        assert len({record["attributes"]["type"] for record in patch.body["records"]}) == 1
        sent.update({record["id"]: record for record in patch.body["records"]})
    assert len(patches(salesforce_state)) == 3
    assert set(sent) == {ids.opportunity, ids.contact, ids.event}
    assert {k for k in sent[ids.opportunity] if k not in ("attributes", "id")} == {
        "Amount", "StageName", "Description", "Budget_Confirmed__c"}

    # The ledger explains every line, with the previous value.
    rows = sf.ledger.attempts(recording_id)
    assert len(rows) == len(report.fields)
    amount = next(r.line for r in rows if r.line.field == "Amount")
    assert (amount.outcome, amount.value, amount.previous) == ("written", 18750, 12500)


def test_a_second_sync_sends_no_write(sf, salesforce_state, salesforce_ids, siro_server):
    recording_id, _ = seed_every_outcome(siro_server.state, salesforce_state, salesforce_ids)
    first = sf.sync(recording_id)
    salesforce_state.clear_log()

    second = sf.sync(recording_id)

    assert patches(salesforce_state) == []
    written_before = {(l.object, l.record_id, l.field) for l in first.fields if l.outcome == "written"}
    assert written_before
    for line in second.fields:
        if (line.object, line.record_id, line.field) in written_before:
            assert line.outcome == "unchanged", line
    # Reads stay one query per object.
    queries = salesforce_state.requests_matching("GET", "/query")
    assert len(queries) == len({l.object for l in second.fields if l.record_id and l.outcome == "unchanged"})


def test_a_value_the_crm_rejects_does_not_block_its_siblings(sf, salesforce_state, salesforce_ids, siro_server):
    siro = siro_server.state
    opp = salesforce_ids.opportunity
    siro.add_recording("rec-a", entity_extractions=[X("Seats", 30, ("Opportunity", "Seats__c"))])
    siro.link("rec-a", integration_connection_id="ic_sf", opportunity=opp)
    sf.sync("rec-a")  # the connector now holds Opportunity's describe

    # An admin deactivates a stage after we read the schema: only Salesforce knows.
    stage = salesforce_state.object("Opportunity").field("StageName")
    stage.picklist_values = [
        PicklistValue(v.value, v.label, active=v.value != "Negotiation/Review") for v in stage.picklist_values
    ]
    siro.add_recording("rec-b", entity_extractions=[
        X("Stage", "Negotiation/Review", ("Opportunity", "StageName")),
        X("Deal size", 20000, ("Opportunity", "Amount")),
    ])
    siro.link("rec-b", integration_connection_id="ic_sf", opportunity=opp)
    report = sf.sync("rec-b")

    got = outcomes_of(report)
    assert got[("Opportunity", opp, "StageName")].outcome == "invalid_value"
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in got[("Opportunity", opp, "StageName")].reason
    assert got[("Opportunity", opp, "Amount")].outcome == "written"
    assert salesforce_state.get_record("Opportunity", opp)["Amount"] == 20000
    assert salesforce_state.get_record("Opportunity", opp)["StageName"] == "Qualification"


def test_an_expired_session_fails_every_field_with_reason_auth(sf, salesforce_state, salesforce_ids, siro_server):
    siro = siro_server.state
    siro.add_recording("rec-x", entity_extractions=[X("Deal size", 1, ("Opportunity", "Amount"))])
    siro.link("rec-x", integration_connection_id="ic_sf", opportunity=salesforce_ids.opportunity)
    salesforce_state.expire_all_tokens()

    report = sf.sync("rec-x")

    assert (report.status, report.reason) == ("failed", "auth")
    assert [str(line.outcome) for line in report.fields] == ["failed"]
    assert report.fields[0].reason.startswith("auth:")
