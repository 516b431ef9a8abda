"""A batch of recordings (a list page) is written with batched CRM calls.

Each object's records are read once; when several recordings write one field
of one record, the newest recording's value is written and the older ones are
superseded, so a replayed page never makes the CRM flip through history.
"""

from __future__ import annotations

import pytest

from simulators.siro import SiroState
from tests.e2e import make_pipeline, outcomes_of
from tests.test_sync_salesforce import connection

X = SiroState.extraction


@pytest.fixture
def sf_pipeline_for_opportunity(salesforce_server, salesforce_token, salesforce_session, siro_server, tmp_path):
    pipeline = make_pipeline({"connections": [connection(salesforce_server.url, salesforce_token)]}, siro_server,
                             tmp_path, salesforce_session=salesforce_session)
    yield pipeline
    pipeline.close()


def test_a_page_reads_each_object_once_and_the_newest_recording_wins(
    salesforce_server, salesforce_state, salesforce_ids, salesforce_token, salesforce_session, siro_server, tmp_path
):
    ids = salesforce_ids
    siro = siro_server.state
    siro.add_recording("rec-1", entity_extractions=[X("Deal size", 15000, ("Opportunity", "Amount")),
                                                    X("Industry", "Energy", ("Account", "Industry"))])
    siro.link("rec-1", integration_connection_id="ic_sf", opportunity=ids.opportunity, account=ids.account)
    siro.add_recording("rec-2", entity_extractions=[X("Deal size", 16000, ("Opportunity", "Amount")),
                                                    X("Industry", "energy", ("Account", "Industry"))])
    siro.link("rec-2", integration_connection_id="ic_sf", opportunity=ids.opportunity, account=ids.account)
    siro.add_recording("rec-3", entity_extractions=[X("Deal size", 900, ("Opportunity", "Amount"))])
    siro.link("rec-3", integration_connection_id="ic_sf", opportunity=ids.opportunity2)
    for n in (1, 2, 3):  # distinct times: within one millisecond the list order falls back to the id
        siro.update_recording(f"rec-{n}", updatedAt=f"2026-11-0{n}T10:00:00.000Z")
    pipeline = make_pipeline({"connections": [connection(salesforce_server.url, salesforce_token)]}, siro_server,
                             tmp_path, salesforce_session=salesforce_session)
    try:
        with pipeline.siro as client:
            page = client.list_recordings(updated_gte="2000-01-01T00:00:00Z")
            assert [r.id for r in page.data] == ["rec-1", "rec-2", "rec-3"]
            salesforce_state.clear_log()
            first, second, third = pipeline.process(page.data, trigger="poll")
    finally:
        pipeline.close()

    older = outcomes_of(first)[("Opportunity", ids.opportunity, "Amount")]
    assert older.outcome == "skipped_policy" and "superseded" in older.reason and "rec-2" in older.reason
    assert outcomes_of(second)[("Opportunity", ids.opportunity, "Amount")][:3] == ("written", 16000, 12500)
    assert outcomes_of(third)[("Opportunity", ids.opportunity2, "Amount")][:3] == ("written", 900, None)
    assert outcomes_of(first)[("Account", ids.account, "Industry")].outcome == "skipped_policy"
    assert outcomes_of(second)[("Account", ids.account, "Industry")][:3] == ("written", "Energy", "Construction")
    assert salesforce_state.get_record("Opportunity", ids.opportunity)["Amount"] == 16000
    assert salesforce_state.get_record("Opportunity", ids.opportunity2)["Amount"] == 900

    queries = salesforce_state.requests_matching("GET", "/query")
    assert len(queries) == 2  # Opportunity and Account, once each for the whole page
    patches = salesforce_state.requests_matching("PATCH")
    # One request per object: both opportunities together, the account alone; nothing written twice.
    assert sorted(len(p.body["records"]) for p in patches) == [1, 2]


def test_replaying_a_page_writes_nothing(
    salesforce_server, salesforce_state, salesforce_ids, salesforce_token, salesforce_session, siro_server, tmp_path
):
    ids = salesforce_ids
    siro = siro_server.state
    for n, stage in enumerate(("Prospecting", "Negotiation/Review", "Closed Won")):
        siro.add_recording(f"rec-{n}", entity_extractions=[X("Stage", stage, ("Opportunity", "StageName"))])
        siro.link(f"rec-{n}", integration_connection_id="ic_sf", opportunity=ids.opportunity)
        siro.update_recording(f"rec-{n}", updatedAt=f"2026-11-0{n + 1}T10:00:00.000Z")
    pipeline = make_pipeline({"connections": [connection(salesforce_server.url, salesforce_token)]}, siro_server,
                             tmp_path, salesforce_session=salesforce_session)
    try:
        page = pipeline.siro.list_recordings(updated_gte="2000-01-01T00:00:00Z").data
        pipeline.process(page, trigger="poll")
        assert salesforce_state.get_record("Opportunity", ids.opportunity)["StageName"] == "Closed Won"
        salesforce_state.clear_log()
        replay = pipeline.process(page, trigger="backfill")
    finally:
        pipeline.close()

    assert salesforce_state.requests_matching("PATCH") == []
    assert [str(line.outcome) for report in replay for line in report.fields] == [
        "skipped_policy", "skipped_policy", "unchanged"]


def test_a_transient_failure_part_way_through_a_write_retries_only_what_is_unsettled(
    salesforce_server, salesforce_state, salesforce_ids, salesforce_token, salesforce_session, siro_server, tmp_path
):
    ids = salesforce_ids
    siro = siro_server.state
    third = salesforce_state.create_record("Opportunity", {"Name": "Third", "StageName": "Prospecting",
                                                           "CloseDate": "2026-01-31"})
    stages = ("Negotiation/Review", "Closed Won", "Closed Won")
    for n, opportunity in enumerate((ids.opportunity, ids.opportunity2, third)):
        siro.add_recording(f"rec-{n}", entity_extractions=[X("Deal size", 1000 + n, ("Opportunity", "Amount")),
                                                           X("Stage", stages[n], ("Opportunity", "StageName"))])
        siro.link(f"rec-{n}", integration_connection_id="ic_sf", opportunity=opportunity)
    pipeline = make_pipeline({"connections": [connection(salesforce_server.url, salesforce_token)]}, siro_server,
                             tmp_path, salesforce_session=salesforce_session)
    try:
        recordings = pipeline.siro.list_recordings(updated_gte="2000-01-01T00:00:00Z").data
        # Only Salesforce knows: an admin removed the first opportunity's stage after we read the
        # schema, so Salesforce drops that record and the connector re-sends it without the stage.
        # That re-send meets a 503 once.
        stage = salesforce_state.object("Opportunity").field("StageName")
        pipeline.connectors.get(pipeline.config.connections[0]).object_schema("Opportunity")  # cache the schema
        stage.picklist_values = [v for v in stage.picklist_values if v.value != "Negotiation/Review"]
        salesforce_state.clear_log()
        salesforce_state.fail_next(503, after=1, path_contains="composite/sobjects")

        reports = pipeline.process(recordings, trigger="poll")
    finally:
        pipeline.close()

    amounts = [outcomes_of(r)[("Opportunity", rid, "Amount")][0] for r, rid in
               zip(reports, (ids.opportunity, ids.opportunity2, third))]
    assert amounts == ["written", "written", "written"]
    outcome_of_stage = [outcomes_of(r)[("Opportunity", rid, "StageName")][0] for r, rid in
                        zip(reports, (ids.opportunity, ids.opportunity2, third))]
    assert outcome_of_stage == ["invalid_value", "written", "written"]
    assert [salesforce_state.get_record("Opportunity", rid)["Amount"] for rid in
            (ids.opportunity, ids.opportunity2, third)] == [1000, 1001, 1002]
    # All three went out in the first request; after the 503 only the unsettled one went again.
    patches = [[record["id"] for record in p.body["records"]] for p in salesforce_state.requests_matching("PATCH")]
    assert patches[0] == [ids.opportunity, ids.opportunity2, third]
    assert len(patches) > 2 and all(sent == [ids.opportunity] for sent in patches[1:])


def test_fields_the_crm_accepted_before_a_failure_are_written_not_failed(
    sf_pipeline_for_opportunity, salesforce_state, salesforce_ids, siro_server
):
    pipeline = sf_pipeline_for_opportunity
    opp = salesforce_ids.opportunity
    siro = siro_server.state
    siro.add_recording("rec-half", entity_extractions=[
        X("Type", "New Customer", ("Opportunity", "Type")),
        X("Notes", "Long story", ("Opportunity", "Description")),
        X("Deal size", "13000", ("Opportunity", "Amount")),
        X("Source", "Web", ("Opportunity", "LeadSource")),
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
    rows = {r["field"]: r["outcome"] for r in pipeline.ledger.attempts("rec-half")}
    assert rows == {f: got[("Opportunity", opp, f)].outcome for f in ("Type", "Description", "Amount", "LeadSource")}


def test_the_same_record_spelt_with_15_and_18_characters_is_one_record(
    sf_pipeline_for_opportunity, salesforce_state, salesforce_ids, siro_server
):
    pipeline = sf_pipeline_for_opportunity
    opp18 = salesforce_ids.opportunity
    siro = siro_server.state
    siro.add_recording("rec-old", entity_extractions=[X("Next", "old step", ("Opportunity", "Description"))])
    siro.link("rec-old", integration_connection_id="ic_sf", opportunity=opp18[:15])
    siro.add_recording("rec-new", entity_extractions=[X("Next", "new step", ("Opportunity", "Description"))])
    siro.link("rec-new", integration_connection_id="ic_sf", opportunity=opp18)
    siro.update_recording("rec-old", updatedAt="2026-11-01T10:00:00.000Z")
    siro.update_recording("rec-new", updatedAt="2026-11-02T10:00:00.000Z")
    page = pipeline.siro.list_recordings(updated_gte="2000-01-01T00:00:00Z").data
    salesforce_state.clear_log()

    old, new = pipeline.process(page, trigger="poll")

    assert str(old.fields[0].outcome) == "skipped_policy" and str(new.fields[0].outcome) == "written"
    assert salesforce_state.get_record("Opportunity", opp18)["Description"] == "new step"
    assert len(salesforce_state.requests_matching("PATCH")) == 1


def test_an_older_snapshot_of_a_recording_is_not_written_over_a_newer_one(
    salesforce_state, salesforce_ids, siro_server, sf_pipeline_for_opportunity
):
    """A page task listed version 1; a webhook wrote version 2 before the page ran."""
    ids, siro, pipeline = salesforce_ids, siro_server.state, sf_pipeline_for_opportunity
    siro.add_recording("rec-v", entity_extractions=[X("Deal size", 15000, ("Opportunity", "Amount"))])
    siro.link("rec-v", integration_connection_id="ic_sf", opportunity=ids.opportunity)
    siro.update_recording("rec-v", updatedAt="2026-11-01T10:00:00.000Z")
    version_1 = pipeline.siro.get_recording("rec-v")
    siro.set_extractions("rec-v", [X("Deal size", 18000, ("Opportunity", "Amount"))])
    siro.update_recording("rec-v", updatedAt="2026-11-02T10:00:00.000Z")

    newer = pipeline.sync("rec-v", trigger="webhook")
    [older] = pipeline.process([version_1], trigger="poll")
    [same] = pipeline.process([pipeline.siro.get_recording("rec-v")], trigger="poll")

    assert outcomes_of(newer)[("Opportunity", ids.opportunity, "Amount")][:2] == ("written", 18000)
    assert (older.status, older.fields) == ("skipped", [])
    assert older.reason.startswith("stale: a newer version of this recording (updatedAt 2026-11-02T10:00:00")
    assert salesforce_state.get_record("Opportunity", ids.opportunity)["Amount"] == 18000
    # The version already written is processed again as usual (a replay: nothing to send).
    assert outcomes_of(same)[("Opportunity", ids.opportunity, "Amount")].outcome == "unchanged"
    assert [run["recording_updated_at"].isoformat() for run in pipeline.ledger.runs("rec-v")] == [
        "2026-11-02T10:00:00+00:00", "2026-11-01T10:00:00+00:00", "2026-11-02T10:00:00+00:00"]
