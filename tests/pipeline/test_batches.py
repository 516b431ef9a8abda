"""A batch of recordings (a list page) is written with batched CRM calls.

Each object's records are read once; when several recordings write one field
of one record, the newest recording's value is written and the older ones are
superseded, so a replayed page never makes the CRM flip through history; a
failure part-way through a write costs only what the CRM had not answered; an
older snapshot of a recording is never written over a newer one.

The CRM is in memory (``tests.fixtures.memory_crm``: a Salesforce-like schema
and Salesforce's record ids), the recordings are built as Siro's API sends them
and handed to ``Pipeline.process`` as a poll page would, and the ledger is a
real SQLite file. One test stays on the Siro and Salesforce simulators, because
what it checks is how a Salesforce refusal travels over the wire (see its
docstring).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from connectors.base import TransientError
from simulators.siro import SiroState
from tests.fixtures.memory_crm import (
    ACCOUNT,
    CONTACT,
    CONTACT2,
    OPPORTUNITY,
    OPPORTUNITY2,
    STAGE_NAME,
    MemoryCRM,
    extraction,
    recording,
    sf_id,
)
from tests.fixtures.pipelines import make_pipeline, outcomes_of
from tests.pipeline.test_sync_salesforce import connection

X = extraction


@pytest.fixture
def crm(memory_crm: MemoryCRM) -> MemoryCRM:
    return memory_crm


@pytest.fixture
def pipeline(crm, make_memory_pipeline):
    return make_memory_pipeline(crm)


def test_a_page_reads_each_object_once_and_the_newest_recording_wins(crm, pipeline):
    # A poll page, oldest first (distinct times: within one millisecond Siro's order falls back to the id).
    page = [
        recording("rec-1", [X("Deal size", 15000, ("Opportunity", "Amount")),
                            X("Industry", "Energy", ("Account", "Industry"))],
                  opportunity=OPPORTUNITY, account=ACCOUNT,
                  created_at="2026-11-01T09:00:00.000Z", updated_at="2026-11-01T10:00:00.000Z"),
        recording("rec-2", [X("Deal size", 16000, ("Opportunity", "Amount")),
                            X("Industry", "energy", ("Account", "Industry"))],
                  opportunity=OPPORTUNITY, account=ACCOUNT,
                  created_at="2026-11-02T09:00:00.000Z", updated_at="2026-11-02T10:00:00.000Z"),
        recording("rec-3", [X("Deal size", 900, ("Opportunity", "Amount"))], opportunity=OPPORTUNITY2,
                  created_at="2026-11-03T09:00:00.000Z", updated_at="2026-11-03T10:00:00.000Z"),
    ]
    assert sorted(page, key=lambda r: r.updated_at) == page  # as Siro lists a page

    first, second, third = pipeline.process(page, trigger="poll")

    older = outcomes_of(first)[("Opportunity", OPPORTUNITY, "Amount")]
    assert older.outcome == "skipped_policy" and "superseded" in older.reason and "rec-2" in older.reason
    assert outcomes_of(second)[("Opportunity", OPPORTUNITY, "Amount")][:3] == ("written", 16000, 12500)
    assert outcomes_of(third)[("Opportunity", OPPORTUNITY2, "Amount")][:3] == ("written", 900, None)
    assert outcomes_of(first)[("Account", ACCOUNT, "Industry")].outcome == "skipped_policy"
    assert outcomes_of(second)[("Account", ACCOUNT, "Industry")][:3] == ("written", "Energy", "Construction")
    assert crm.record("Opportunity", OPPORTUNITY)["Amount"] == 16000
    assert crm.record("Opportunity", OPPORTUNITY2)["Amount"] == 900
    assert crm.record("Account", ACCOUNT)["Industry"] == "Energy"  # sent as the option's value

    # Opportunity and Account read once each for the whole page.
    assert sorted(crm.reads()) == [("Account", [ACCOUNT]), ("Opportunity", [OPPORTUNITY, OPPORTUNITY2])]
    # One write per object: both opportunities together, the account alone; nothing written twice.
    assert sorted(crm.writes(), key=len) == [
        [(ACCOUNT, {"Industry": "Energy"})],
        [(OPPORTUNITY, {"Amount": 16000}), (OPPORTUNITY2, {"Amount": 900})],
    ]


def test_replaying_a_page_writes_nothing(crm, pipeline):
    page = [
        recording(f"rec-{n}", [X("Stage", stage, ("Opportunity", "StageName"))], opportunity=OPPORTUNITY,
                  created_at=f"2026-11-0{n + 1}T09:00:00.000Z", updated_at=f"2026-11-0{n + 1}T10:00:00.000Z")
        for n, stage in enumerate(("Prospecting", "Negotiation/Review", "Closed Won"))
    ]
    pipeline.process(page, trigger="poll")
    assert crm.record("Opportunity", OPPORTUNITY)["StageName"] == "Closed Won"
    assert crm.writes() == [[(OPPORTUNITY, {"StageName": "Closed Won"})]]  # the CRM never flipped through history
    crm.clear_requests()

    replay = pipeline.process(page, trigger="backfill")

    assert crm.writes() == []
    assert [str(line.outcome) for report in replay for line in report.fields] == [
        "skipped_policy", "skipped_policy", "unchanged"]


def test_a_transient_failure_part_way_through_a_write_retries_only_what_is_unsettled(crm, pipeline):
    third = sf_id("0065g00000OppCC")
    crm.add_record("Opportunity", third, {"Name": "Third", "StageName": "Prospecting", "CloseDate": "2026-01-31"})
    opportunities = (OPPORTUNITY, OPPORTUNITY2, third)
    stages = ("Negotiation/Review", "Closed Won", "Closed Won")
    recordings = [
        recording(f"rec-{n}", [X("Deal size", 1000 + n, ("Opportunity", "Amount")),
                               X("Stage", stages[n], ("Opportunity", "StageName"))], opportunity=opportunity)
        for n, opportunity in enumerate(opportunities)
    ]
    # Only the CRM knows: an admin removes the first opportunity's stage after the pipeline read the
    # schema, so the CRM refuses that field. The same request then fails (503) after the CRM applied
    # its first record.
    without_negotiation = replace(STAGE_NAME, options=tuple(
        option for option in STAGE_NAME.options if option.value != "Negotiation/Review"))
    crm.before_next("write", lambda: crm.change_field("Opportunity", without_negotiation))
    crm.fail_next("write", TransientError("503 Service Unavailable"), after_applying=1)

    reports = pipeline.process(recordings, trigger="poll")

    amounts = [outcomes_of(r)[("Opportunity", rid, "Amount")][0] for r, rid in zip(reports, opportunities)]
    assert amounts == ["written", "written", "written"]
    stage = [outcomes_of(r)[("Opportunity", rid, "StageName")] for r, rid in zip(reports, opportunities)]
    assert [line.outcome for line in stage] == ["invalid_value", "written", "written"]
    assert "not an active option" in stage[0].reason
    assert [crm.record("Opportunity", rid)["Amount"] for rid in opportunities] == [1000, 1001, 1002]
    assert [crm.record("Opportunity", rid)["StageName"] for rid in opportunities] == [
        "Qualification", "Closed Won", "Closed Won"]
    # All three went out in the first request; after the 503 only the unsettled ones went again.
    assert crm.written_ids() == [[OPPORTUNITY, OPPORTUNITY2, third], [OPPORTUNITY2, third]]
    assert crm.writes()[1] == [(OPPORTUNITY2, {"Amount": 1001, "StageName": "Closed Won"}),
                               (third, {"Amount": 1002, "StageName": "Closed Won"})]


def test_fields_the_crm_accepted_before_a_failure_are_written_not_failed(crm, pipeline):
    fields = ("Title", "Department", "Description")
    rec = recording("rec-half", [X("Title", "VP Sales", ("Contact", "Title")),
                                 X("Department", "Sales", ("Contact", "Department")),
                                 X("Notes", "Long story", ("Contact", "Description"))],
                    contacts=[CONTACT, CONTACT2])
    # The CRM applies the first contact of the request, then fails; every retry meets a 503 too.
    crm.fail_next("write", TransientError("503 Service Unavailable"), after_applying=1)
    for _ in range(2):  # the pipeline's two retries
        crm.fail_next("write", TransientError("503 Service Unavailable"))

    [report] = pipeline.process([rec])

    got = outcomes_of(report)
    for contact in (CONTACT, CONTACT2):
        stored = crm.record("Contact", contact)
        for field in fields:
            landed = stored.get(field) is not None
            assert got[("Contact", contact, field)].outcome == ("written" if landed else "failed"), (contact, field)
    assert {got[("Contact", c, f)].outcome for c in (CONTACT, CONTACT2) for f in fields} == {"written", "failed"}
    assert crm.record("Contact", CONTACT)["Title"] == "VP Sales"
    assert "gave up after retries" in got[("Contact", CONTACT2, "Title")].reason
    assert (report.status, report.transient) == ("partial", True)
    assert crm.written_ids() == [[CONTACT, CONTACT2], [CONTACT2], [CONTACT2]]  # what landed was never re-sent
    rows = {(r.line.record_id, r.line.field): r.line.outcome for r in pipeline.ledger.attempts("rec-half")}
    assert rows == {(c, f): got[("Contact", c, f)].outcome for c in (CONTACT, CONTACT2) for f in fields}


def test_the_same_record_spelt_with_15_and_18_characters_is_one_record(crm, pipeline):
    old = recording("rec-old", [X("Next", "old step", ("Opportunity", "Description"))], opportunity=OPPORTUNITY[:15],
                    created_at="2026-11-01T09:00:00.000Z", updated_at="2026-11-01T10:00:00.000Z")
    new = recording("rec-new", [X("Next", "new step", ("Opportunity", "Description"))], opportunity=OPPORTUNITY,
                    created_at="2026-11-02T09:00:00.000Z", updated_at="2026-11-02T10:00:00.000Z")

    old_report, new_report = pipeline.process([old, new], trigger="poll")

    assert str(old_report.fields[0].outcome) == "skipped_policy" and str(new_report.fields[0].outcome) == "written"
    assert "superseded" in old_report.fields[0].reason
    assert old_report.fields[0].record_id == OPPORTUNITY  # reported in the one spelling
    assert crm.record("Opportunity", OPPORTUNITY)["Description"] == "new step"
    assert crm.reads() == [("Opportunity", [OPPORTUNITY])]
    assert crm.writes() == [[(OPPORTUNITY, {"Description": "new step"})]]


def test_an_older_snapshot_of_a_recording_is_not_written_over_a_newer_one(crm, pipeline):
    """A page task listed version 1; a webhook wrote version 2 before the page ran."""
    version_1 = recording("rec-v", [X("Deal size", 15000, ("Opportunity", "Amount"))], opportunity=OPPORTUNITY,
                          updated_at="2026-11-01T10:00:00.000Z")
    version_2 = recording("rec-v", [X("Deal size", 18000, ("Opportunity", "Amount"))], opportunity=OPPORTUNITY,
                          updated_at="2026-11-02T10:00:00.000Z")

    [newer] = pipeline.process([version_2], trigger="webhook")
    writes_after_webhook = len(crm.writes())
    [older] = pipeline.process([version_1], trigger="poll")
    [same] = pipeline.process([version_2], trigger="poll")

    assert outcomes_of(newer)[("Opportunity", OPPORTUNITY, "Amount")][:2] == ("written", 18000)
    assert (older.status, older.fields) == ("skipped", [])
    assert older.reason.startswith("stale: a newer version of this recording (updatedAt 2026-11-02T10:00:00")
    assert crm.record("Opportunity", OPPORTUNITY)["Amount"] == 18000
    # The version already written is processed again as usual (a replay: nothing to send).
    assert outcomes_of(same)[("Opportunity", OPPORTUNITY, "Amount")].outcome == "unchanged"
    assert len(crm.writes()) == writes_after_webhook == 1
    assert [run.recording_updated_at.isoformat() for run in pipeline.ledger.runs("rec-v")] == [
        "2026-11-02T10:00:00+00:00", "2026-11-01T10:00:00+00:00", "2026-11-02T10:00:00+00:00"]


# --------------------------------------------------------------------------- #
# on the simulators: Salesforce's own refusal of a whole request


def test_a_record_salesforce_refuses_whole_is_split_and_the_half_it_took_is_written(
    salesforce_server, salesforce_state, salesforce_ids, salesforce_token, salesforce_session, siro_server, tmp_path
):
    """Kept on the Siro and Salesforce simulators on purpose: Salesforce fails a whole request on a
    JSON type error (``JSON_PARSER_ERROR``), and the Salesforce connector answers by splitting the
    record's fields in halves. Only that wire behaviour lands part of *one record's* fields before a
    failure (the in-memory CRM settles a record whole); this test follows that per-field partial
    result through the pipeline into the report and the ledger.
    """
    pipeline = make_pipeline({"connections": [connection(salesforce_server.url, salesforce_token)]}, siro_server,
                             tmp_path, salesforce_session=salesforce_session)
    try:
        opp = salesforce_ids.opportunity
        siro = siro_server.state
        siro.add_recording("rec-half", entity_extractions=[
            SiroState.extraction("Type", "New Customer", ("Opportunity", "Type")),
            SiroState.extraction("Notes", "Long story", ("Opportunity", "Description")),
            SiroState.extraction("Deal size", "13000", ("Opportunity", "Amount")),
            SiroState.extraction("Source", "Web", ("Opportunity", "LeadSource")),
        ])
        siro.link("rec-half", integration_connection_id="ic_sf", opportunity=opp)
        pipeline.connectors.get(pipeline.config.connections[0]).object_schema("Opportunity")
        # Salesforce refuses the whole request once (the connector then splits the record's fields in
        # halves); the first half lands, the second half meets 503s until the retries run out.
        salesforce_state.fail_next(400, body=[{"message": "Unexpected parameter", "errorCode": "JSON_PARSER_ERROR"}],
                                   path_contains="composite/sobjects")
        salesforce_state.fail_next(503, times=20, after=1, path_contains="composite/sobjects")

        got = outcomes_of(pipeline.sync("rec-half"))

        stored = salesforce_state.get_record("Opportunity", opp)
        for field in ("Type", "Description", "Amount", "LeadSource"):
            landed = stored[field] not in (None, 12500.0)
            assert got[("Opportunity", opp, field)].outcome == ("written" if landed else "failed"), field
        assert {got[("Opportunity", opp, f)].outcome for f in ("Type", "Description", "Amount", "LeadSource")} == {
            "written", "failed"}
        rows = {r.line.field: r.line.outcome for r in pipeline.ledger.attempts("rec-half")}
        assert rows == {f: got[("Opportunity", opp, f)].outcome
                        for f in ("Type", "Description", "Amount", "LeadSource")}
    finally:
        pipeline.close()
