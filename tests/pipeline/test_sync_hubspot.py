"""End to end, HubSpot: Siro simulator → pipeline → hubspot-api-client → HubSpot simulator.

One recording reaches every outcome of DESIGN §2; the report, the portal's
records, the portal's request log and the ledger are checked as a user would.

What stays here is what only the wire proves: hubspot-api-client's batch
updates, HubSpot's string values read back as equal to what was sent,
HubSpot's error bodies and rate limits, deal stages as the connector reads
them from the pipelines API and as HubSpot accepts them, how a cleared
property is sent. The logic of dependent fields (a stage refused with its
pipeline, matched in the pipeline the deal will hold) and of separators runs
on the in-memory CRM in test_decisions.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from simulators.hubspot import DEFAULT_TOKEN, HubSpotState
from simulators.siro import SiroState
from tests.fixtures.pipelines import make_pipeline, outcomes_of

X = SiroState.extraction


def connection(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "integration_connection_id": "ic_hs",
        "connector": "hubspot",
        "name": "hs",
        "api_url": url,
        "access_token": DEFAULT_TOKEN,
        "fields": {
            "deny": ["deals.hubspot_owner_id"],
            "policy": {"deals.dealname": "fill_empty"},
        },
        **extra,
    }


@pytest.fixture
def hs(hubspot_url, hubspot_state: HubSpotState, siro_server, tmp_path):
    pipeline = make_pipeline({"connections": [connection(hubspot_url)]}, siro_server, tmp_path)
    yield pipeline
    pipeline.close()


def batch_updates(state: HubSpotState) -> list:
    return state.requests_to("POST", "batch/update")


def seed_every_outcome(siro: SiroState, state: HubSpotState) -> tuple[str, str]:
    named = state.named
    gone = state.add_record("contacts", {"firstname": "Old", "lastname": "Contact"})
    state.delete_record("contacts", gone)
    siro.add_recording(
        "rec-hs",
        entity_extractions=[
            X("Deal size", "14,200", ("Deal", "amount")),
            X("Stage", "Contract Sent", ("Opportunity", "dealstage")),
            X("Decision date", "2026-12-20T15:00:00-05:00", ("Deal", "closedate")),
            X("Contract start", "2027-01-04T21:30:00-05:00", ("Deal", "contract_start_date")),
            X("Temperature", "HOT", ("Deal", "deal_temperature")),
            X("Competitors", "Globex;Initech", ("Deal", "competitors")),
            X("Budget confirmed", "y", ("Deal", "budget_confirmed")),
            X("Deal type", "New Business", ("Deal", "dealtype")),
            X("Deal name", "Acme - renamed", ("Deal", "dealname")),
            X("Owner", "42", ("Deal", "hubspot_owner_id")),
            X("Forecast", 9000, ("Deal", "hs_forecast_amount")),
            X("Priority", "urgent", ("Deal", "hs_priority")),
            X("Budget owner", "CFO", ("Deal", "budget_owner")),
            X("Next step", "Send the quote", ("Deal", "hs_next_step")),
            X("Next step (recap)", "Book a site visit", ("Deal", "hs_next_step")),
            X("Job title", "VP Sales", ("Contact", "jobtitle")),
            X("Phone", "", ("Contact", "phone")),
            X("Outcome", "completed", ("Meeting", "hs_meeting_outcome")),
            X("Employees", "250", ("Company", "numberofemployees")),
            X("Lead label", "Hot", ("Lead", "hs_lead_label")),
            X("Rep", "Jordan", ("User", "firstname")),
            X("Quote", 5, ("Quote", "hs_quote_amount")),
        ],
    )
    siro.link("rec-hs", integration_connection_id="ic_hs", opportunity=named["deal_acme"],
              account=named["company_acme"], contacts=[named["contact_jane"], named["contact_bob"], gone],
              engagement=named["meeting_acme_discovery"], users=["90210"])
    return "rec-hs", gone


def test_one_recording_reaches_every_outcome(hs, hubspot_state, siro_server):
    named = hubspot_state.named
    deal, jane, bob = named["deal_acme"], named["contact_jane"], named["contact_bob"]
    recording_id, gone = seed_every_outcome(siro_server.state, hubspot_state)

    report = hs.sync(recording_id)
    got = outcomes_of(report)

    assert report.status == "partial"
    assert got[("deals", deal, "amount")][:3] == ("written", 14200, 12500)
    assert got[("deals", deal, "dealstage")][:3] == ("written", "contractsent", "qualifiedtobuy")
    assert got[("deals", deal, "closedate")][:3] == ("written", "2026-12-20T20:00:00Z", "2026-12-31T17:00:00Z")
    # A date field takes the UTC date of a date-time: 21:30 in New York is the next day in UTC.
    assert got[("deals", deal, "contract_start_date")][:3] == ("written", "2027-01-05", "2026-12-31")
    assert got[("deals", deal, "deal_temperature")].outcome == "written"
    assert got[("deals", deal, "competitors")][:3] == ("written", ["globex", "initech"], None)
    assert got[("deals", deal, "budget_confirmed")][:3] == ("written", True, None)
    assert got[("deals", deal, "dealtype")][:3] == ("unchanged", "newbusiness", "newbusiness")
    assert (got[("deals", deal, "dealname")].outcome, got[("deals", deal, "dealname")].reason[:10]) == (
        "skipped_policy", "fill_empty")
    assert got[("deals", None, "hubspot_owner_id")].outcome == "skipped_policy"
    assert got[("deals", deal, "hs_forecast_amount")].outcome == "not_writable"
    priority = got[("deals", deal, "hs_priority")]
    assert priority.outcome == "invalid_value" and "'urgent'" in priority.reason
    assert got[("deals", deal, "budget_owner")].outcome == "unknown_field"
    assert [line.outcome for line in report.fields if line.field == "hs_next_step"] == ["conflict", "conflict"]
    assert got[("contacts", jane, "jobtitle")][:3] == ("unchanged", "VP Sales", "VP Sales")
    assert got[("contacts", bob, "jobtitle")][:3] == ("written", "VP Sales", None)
    assert got[("contacts", gone, "jobtitle")].outcome == "failed"
    assert "OBJECT_NOT_FOUND" in got[("contacts", gone, "jobtitle")].reason
    assert got[("contacts", bob, "phone")].outcome == "null_value"
    assert got[("meetings", named["meeting_acme_discovery"], "hs_meeting_outcome")][:3] == (
        "written", "COMPLETED", "SCHEDULED")
    assert got[("companies", named["company_acme"], "numberofemployees")].outcome == "unchanged"
    assert got[("leads", None, "hs_lead_label")].outcome == "unlinked"
    assert got[(None, None, "firstname")].outcome == "unsupported"
    assert got[(None, None, "hs_quote_amount")].outcome == "unknown_model"

    record = hubspot_state.get_record("deals", deal)
    assert (record["amount"], record["dealstage"], record["contract_start_date"]) == ("14200", "contractsent", "2027-01-05")
    assert set(record["competitors"].split(";")) == {"globex", "initech"}
    assert record.get("hs_priority") in (None, "")
    assert record["dealname"] == "Acme - Platform"
    assert hubspot_state.get_record("contacts", bob)["jobtitle"] == "VP Sales"

    # One batch update per object type, one input per record; the deleted contact got no write.
    sent: dict[str, set[str]] = {}
    for request in batch_updates(hubspot_state):
        ids = [item["id"] for item in request.body["inputs"]]
        assert len(ids) == len(set(ids))
        sent.setdefault(request.path.split("/")[4], set()).update(ids)
    assert sent == {"deals": {deal}, "contacts": {bob}, "meetings": {named["meeting_acme_discovery"]}}

    rows = hs.ledger.attempts(recording_id)
    assert len(rows) == len(report.fields)
    assert {(r.line.field, r.line.outcome) for r in rows} >= {("amount", "written"), ("jobtitle", "failed")}


def test_a_second_sync_sends_no_write(hs, hubspot_state, siro_server):
    recording_id, _ = seed_every_outcome(siro_server.state, hubspot_state)
    first = hs.sync(recording_id)
    hubspot_state.clear_requests()

    second = hs.sync(recording_id)

    assert batch_updates(hubspot_state) == []
    written = {(l.object, l.record_id, l.field) for l in first.fields if l.outcome == "written"}
    assert len(written) >= 8
    assert all(l.outcome == "unchanged" for l in second.fields if (l.object, l.record_id, l.field) in written)


def test_a_value_the_portal_rejects_does_not_block_its_siblings(hs, hubspot_state, siro_server):
    siro = siro_server.state
    deal = hubspot_state.named["deal_acme"]
    siro.add_recording("rec-a", entity_extractions=[X("Deal size", 1, ("Deal", "amount"))])
    siro.link("rec-a", integration_connection_id="ic_hs", opportunity=deal)
    hs.sync("rec-a")  # the connector now holds the deal properties

    # An admin removes an option after we read the schema: only HubSpot knows.
    hubspot_state.add_property("deals", "deal_temperature", "enumeration", "select", hubspot_defined=False,
                               options=[("warm", "Warm"), ("cold", "Cold")])
    siro.add_recording("rec-b", entity_extractions=[
        X("Temperature", "hot", ("Deal", "deal_temperature")),
        X("Deal size", 2000, ("Deal", "amount")),
    ])
    siro.link("rec-b", integration_connection_id="ic_hs", opportunity=deal)
    got = outcomes_of(hs.sync("rec-b"))

    assert got[("deals", deal, "deal_temperature")].outcome == "invalid_value"
    assert "INVALID_OPTION" in got[("deals", deal, "deal_temperature")].reason
    assert got[("deals", deal, "amount")].outcome == "written"
    assert hubspot_state.get_record("deals", deal)["amount"] == "2000"


def test_a_rate_limited_portal_is_retried_until_the_write_lands(hs, hubspot_state, siro_server):
    siro = siro_server.state
    deal = hubspot_state.named["deal_acme"]
    siro.add_recording("rec-r", entity_extractions=[X("Deal size", 777, ("Deal", "amount"))])
    siro.link("rec-r", integration_connection_id="ic_hs", opportunity=deal)
    hubspot_state.fail_next(429, {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                                  "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
                            times=2, headers={"Retry-After": "0"})

    got = outcomes_of(hs.sync("rec-r"))

    assert got[("deals", deal, "amount")].outcome == "written"
    assert hubspot_state.get_record("deals", deal)["amount"] == "777"


def test_an_unrecovering_portal_fails_the_fields_after_the_retries(hs, hubspot_state, siro_server):
    siro = siro_server.state
    deal = hubspot_state.named["deal_acme"]
    siro.add_recording("rec-f", entity_extractions=[X("Deal size", 778, ("Deal", "amount"))])
    siro.link("rec-f", integration_connection_id="ic_hs", opportunity=deal)
    hubspot_state.fail_next(503, {"status": "error", "message": "Service Unavailable"}, times=50)

    report = hs.sync("rec-f")

    assert report.status == "partial"
    line = outcomes_of(report)[("deals", deal, "amount")]
    assert line.outcome == "failed" and "503" in line.reason
    assert hubspot_state.get_record("deals", deal)["amount"] == "12500"


def test_a_stage_label_is_matched_among_the_deals_own_pipeline(hs, hubspot_state, siro_server):
    """"Closed Won" exists in every pipeline: the deal's pipeline (current, or the one written) decides."""
    siro = siro_server.state
    named = hubspot_state.named
    siro.add_recording("rec-renewal", entity_extractions=[X("Stage", "closed won", ("Deal", "dealstage"))])
    siro.link("rec-renewal", integration_connection_id="ic_hs", opportunity=named["deal_initech"])
    siro.add_recording("rec-default", entity_extractions=[X("Stage", "Closed Won", ("Deal", "dealstage"))])
    siro.link("rec-default", integration_connection_id="ic_hs", opportunity=named["deal_globex"])
    siro.add_recording("rec-move", entity_extractions=[
        X("Pipeline", "Enterprise Renewals", ("Deal", "pipeline")),
        X("Stage", "Closed Won", ("Deal", "dealstage")),
    ])
    siro.link("rec-move", integration_connection_id="ic_hs", opportunity=named["deal_umbrella"])

    renewal = outcomes_of(hs.sync("rec-renewal"))[("deals", named["deal_initech"], "dealstage")]
    default = outcomes_of(hs.sync("rec-default"))[("deals", named["deal_globex"], "dealstage")]
    moved = outcomes_of(hs.sync("rec-move"))

    assert renewal[:2] == ("written", "61342873")
    assert default[:2] == ("written", "closedwon")
    assert moved[("deals", named["deal_umbrella"], "pipeline")][:2] == ("written", "19826473")
    assert moved[("deals", named["deal_umbrella"], "dealstage")][:2] == ("written", "61342873")
    assert hubspot_state.get_record("deals", named["deal_umbrella"])["dealstage"] == "61342873"


def test_write_nulls_never_clears_a_pipeline_or_stage(hubspot_url, hubspot_state, siro_server, tmp_path):
    deal = hubspot_state.named["deal_acme"]
    siro = siro_server.state
    siro.add_recording("rec-null", entity_extractions=[X("Stage", None, ("Deal", "dealstage")),
                                                       X("Next step", None, ("Deal", "hs_next_step"))])
    siro.link("rec-null", integration_connection_id="ic_hs", opportunity=deal)
    hubspot_state.set_values("deals", deal, hs_next_step="Call back")
    config = connection(hubspot_url)
    config["fields"] = {"write_nulls": True}
    pipeline = make_pipeline({"connections": [config]}, siro_server, tmp_path)
    try:
        got = outcomes_of(pipeline.sync("rec-null"))
    finally:
        pipeline.close()

    assert got[("deals", deal, "dealstage")].outcome == "invalid_value"
    assert got[("deals", deal, "hs_next_step")].outcome == "written"  # an ordinary property is cleared
    record = hubspot_state.get_record("deals", deal)
    assert record["dealstage"] == "qualifiedtobuy" and record["hs_next_step"] in ("", None)
