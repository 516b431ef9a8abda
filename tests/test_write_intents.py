"""Write intents (revision 0004): a value we sent stays ours even when its attempt was never recorded.

The ledger tests run on SQLite and PostgreSQL (``database_url``); the pipeline
tests go Siro simulator → pipeline → simple-salesforce → Salesforce simulator,
with a real ledger on both backends.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, inspect

from simulators.salesforce import SalesforceState
from simulators.siro import SiroState
from tests.e2e import make_pipeline, outcomes_of
from worker.ledger import IntentRow, Ledger, LedgerUnavailable, OutcomeRow
from worker.ledger.schema import Attempt, Run, WriteIntent, utcnow
from worker.ledger.store import _alembic_config

CONN = "salesforce-main"
X = SiroState.extraction


@pytest.fixture
def ledger(database_url: str):
    ledger = Ledger.open(database_url)
    yield ledger
    ledger.close()


def intent(field: str, value: Any, *, record_id: str = "006A", object: str = "Opportunity",
           connection: str = CONN, recording: str = "rec-1") -> IntentRow:
    return IntentRow(connection, object, record_id, field, value, recording)


def attempt(field: str, value: Any, outcome: str = "written", *, record_id: str = "006A",
            object: str = "Opportunity", connection: str = CONN) -> OutcomeRow:
    return OutcomeRow(connection, object, record_id, field, value, None, outcome)


def record(ledger: Ledger, recording: str, rows: list[OutcomeRow]) -> None:
    run_id = ledger.start_run(recording, trigger="cli")
    ledger.record(run_id, recording, rows)
    ledger.finish_run(run_id, "ok")


def targets(ledger: Ledger) -> list[tuple[str, str, str, str, Any]]:
    """The stored intents, oldest first, as (connection, object, record, field, value)."""
    return [(i["connection"], i["object"], i["record_id"], i["field"], i["value"]) for i in reversed(ledger.intents())]


# --------------------------------------------------------------------------- #
# the ledger


def test_our_values_are_the_last_written_value_then_the_intents_since(ledger: Ledger) -> None:
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {}

    # Sent but never recorded (the worker died): the intent alone makes the value ours.
    ledger.record_intents([intent("StageName", "v1"), intent("Amount", 12500.0)])
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["STAGENAME", "amount"]) == {
        ("006A", "stagename"): ["v1"],
        ("006A", "amount"): [12500.0],
    }

    # Recorded as written: the field's intents are settled, other fields keep theirs.
    record(ledger, "rec-1", [attempt("StageName", "v1")])
    assert targets(ledger) == [(CONN, "Opportunity", "006A", "Amount", 12500.0)]
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {("006A", "stagename"): ["v1"]}

    # Two later sends, neither recorded: the written value, then the intents in order.
    ledger.record_intents([intent("StageName", "v2")])
    ledger.record_intents([intent("stagename", "v3", recording="rec-2")])  # another spelling, same field
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {
        ("006A", "stagename"): ["v1", "v2", "v3"]
    }
    assert ledger.last_written(CONN, "Opportunity", ["006A"], ["StageName"]) == {("006A", "stagename"): "v1"}

    # Only a written attempt settles intents. An unchanged one is what a
    # redelivered task records when the CRM already holds the value it sent
    # before dying: the intent must survive it.
    record(ledger, "rec-2", [
        attempt("StageName", "v3", "unchanged"),
        attempt("StageName", "v4", "failed"),
        attempt("StageName", "v4", "invalid_value"),
        attempt("StageName", "v4", "skipped_policy"),
    ])
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {
        ("006A", "stagename"): ["v1", "v2", "v3"]
    }

    # Intents of other records, objects and connections are neither returned nor settled.
    ledger.record_intents([
        intent("StageName", "other record", record_id="006B"),
        intent("StageName", "other object", object="Account"),
        intent("StageName", "other connection", connection="hubspot"),
    ])
    record(ledger, "rec-3", [attempt("STAGENAME", "v5")])
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {("006A", "stagename"): ["v5"]}
    assert targets(ledger) == [
        (CONN, "Opportunity", "006A", "Amount", 12500.0),
        (CONN, "Opportunity", "006B", "StageName", "other record"),
        (CONN, "Account", "006A", "StageName", "other object"),
        ("hubspot", "Opportunity", "006A", "StageName", "other connection"),
    ]
    assert ledger.our_values(CONN, "Opportunity", ["006A", "006B", "006Z"], ["stagename"]) == {
        ("006A", "stagename"): ["v5"],
        ("006B", "stagename"): ["other record"],
    }
    assert ledger.our_values(CONN, "Account", ["006A"], ["StageName"]) == {("006A", "stagename"): ["other object"]}
    assert ledger.our_values("hubspot", "Opportunity", ["006A"], ["StageName"]) == {
        ("006A", "stagename"): ["other connection"]
    }
    assert ledger.our_values(CONN, "Opportunity", [], ["StageName"]) == {}
    assert ledger.our_values(CONN, "Opportunity", ["006A"], []) == {}


def test_a_cleared_field_and_many_records(ledger: Ledger) -> None:
    # write_nulls: a null sent is a value of ours too (the field is ours while empty).
    ledger.record_intents([intent("NextStep", None)])
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["NextStep"]) == {("006A", "nextstep"): [None]}

    ids = [f"id{i:05d}" for i in range(1200)]  # more than one IN list
    ledger.record_intents([intent("Amount", i, record_id=ids[i]) for i in (0, 599, 1199)])
    record(ledger, "rec-1", [attempt("Amount", -1, record_id=ids[599])])
    assert ledger.our_values(CONN, "Opportunity", ids, ["amount"]) == {
        (ids[0], "amount"): [0],
        (ids[599], "amount"): [-1],
        (ids[1199], "amount"): [1199],
    }
    record(ledger, "rec-2", [attempt("Amount", i, record_id=ids[i]) for i in range(1200)])
    assert targets(ledger) == [(CONN, "Opportunity", "006A", "NextStep", None)]


def test_an_intent_older_than_the_written_attempt_is_not_ours(ledger: Ledger) -> None:
    """An intent that no written attempt settled (a worker from before revision 0004
    wrote the field after it) is older than that attempt: it no longer counts."""
    with ledger.engine.begin() as conn:
        conn.execute(insert(WriteIntent).values(
            connection=CONN, object="Opportunity", record_id="006A", field="StageName", value="stale",
            recording_id="rec-0", created_at=utcnow() - timedelta(hours=1),
        ))
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {("006A", "stagename"): ["stale"]}
    with ledger.engine.begin() as conn:  # the old worker's attempt: no intents settled
        run_id = conn.execute(insert(Run).values(
            recording_id="rec-1", trigger="cli", dry_run=False, status="ok", started_at=utcnow(),
        )).inserted_primary_key[0]
        conn.execute(insert(Attempt).values(
            run_id=run_id, recording_id="rec-1", connection=CONN, object="Opportunity", record_id="006A",
            field="StageName", value="v1", outcome="written", created_at=utcnow(),
        ))
    assert len(ledger.intents()) == 1
    assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {("006A", "stagename"): ["v1"]}


def test_intent_rows_are_checked() -> None:
    with pytest.raises(TypeError):
        intent("", "v")
    with pytest.raises(TypeError):
        IntentRow(CONN, "Opportunity", "006A", "StageName", "v", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        intent("StageName", object())
    with pytest.raises(TypeError):
        intent("Amount", float("nan"))


def test_a_ledger_before_0004_still_records_and_upgrades(database_url: str, caplog) -> None:
    from alembic import command

    ledger = Ledger(database_url)
    try:
        with ledger._write("test migration") as conn:
            command.upgrade(_alembic_config(conn), "0003")
        assert "write_intents" not in inspect(ledger.engine).get_table_names()
        with caplog.at_level(logging.WARNING, logger="worker.ledger.store"):
            ledger.record_intents([intent("StageName", "v1")])  # nowhere to keep it: skipped, said
        assert "predates write intents" in caplog.text
        record(ledger, "rec-1", [attempt("StageName", "v1")])
        assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {("006A", "stagename"): ["v1"]}

        ledger.migrate()
        ledger.record_intents([intent("StageName", "v2")])
        assert ledger.our_values(CONN, "Opportunity", ["006A"], ["StageName"]) == {
            ("006A", "stagename"): ["v1", "v2"]
        }
    finally:
        ledger.close()


# --------------------------------------------------------------------------- #
# the pipeline, end to end on the simulators


class WorkerKilled(Exception):
    """Stands for SIGKILL between the CRM's answer and the ledger's record."""


class KilledBeforeRecording(Ledger):
    """Our own ledger, except that the process dies when it would record the outcomes."""

    def record(self, run_id: int, recording_id: str, rows: Any) -> None:
        raise WorkerKilled(recording_id)


class LedgerDownForIntents(Ledger):
    def record_intents(self, rows: Any) -> None:
        raise LedgerUnavailable("ledger database unavailable while recording write intents")


def connection(url: str, token: str) -> dict[str, Any]:
    return {
        "integration_connection_id": "ic_sf",
        "connector": "salesforce",
        "name": "sf",
        "instance_url": url,
        "access_token": token,
        "fields": {"policy": {"Opportunity.Description": "protect_edits"}},
    }


@pytest.fixture
def sf(database_url, salesforce_server, salesforce_state, salesforce_ids, salesforce_token, salesforce_session,
       siro_server, tmp_path):
    config = {"connections": [connection(salesforce_server.url, salesforce_token)]}
    pipeline = make_pipeline(config, siro_server, tmp_path, salesforce_session=salesforce_session,
                             database_url=database_url)
    pipeline.database_url = database_url
    yield pipeline
    pipeline.close()


def notes(value: str, amount: str = "18,750") -> list:
    return [X("Notes", value, ("Opportunity", "Description")), X("Deal size", amount, ("Opportunity", "Amount"))]


def test_a_worker_killed_after_the_crm_accepted_does_not_turn_our_value_into_an_edit(
    sf, salesforce_state: SalesforceState, salesforce_ids, siro_server
) -> None:
    siro = siro_server.state
    opp = salesforce_ids.opportunity
    siro.add_recording("rec-p", entity_extractions=notes("A"))
    siro.link("rec-p", integration_connection_id="ic_sf", opportunity=opp)
    assert outcomes_of(sf.sync("rec-p"))[("Opportunity", opp, "Description")].outcome == "written"
    assert sf.ledger.intents() == []  # recorded as written: nothing left pending

    # The recording is re-processed with B; the CRM accepts it and the worker
    # dies before the ledger records the outcome.
    siro.set_extractions("rec-p", notes("B", "20,000"))
    real = sf.ledger
    sf.ledger = KilledBeforeRecording(sf.database_url)
    try:
        with pytest.raises(WorkerKilled):
            sf.sync("rec-p")
    finally:
        sf.ledger.close()
        sf.ledger = real
    assert salesforce_state.get_record("Opportunity", opp)["Description"] == "B"
    assert real.last_written("sf", "Opportunity", [opp], ["Description"]) == {(opp, "description"): "A"}
    # Sent as the attempts carry them: canonical JSON (18,750 -> 18750 ... 20,000 -> 20000).
    assert sorted((i["field"], i["value"], i["recording_id"]) for i in real.intents()) == [
        ("Amount", 20000, "rec-p"), ("Description", "B", "rec-p")]

    # The task comes back: the CRM already holds B, nothing is sent again.
    before = len(salesforce_state.requests_matching("PATCH"))
    line = outcomes_of(sf.sync("rec-p"))[("Opportunity", opp, "Description")]
    assert line.outcome == "unchanged"
    assert len(salesforce_state.requests_matching("PATCH")) == before

    # A later recording writes C: the CRM holds B, which we sent, so it is ours.
    # Before intents, protect_edits compared B with the last *recorded* write
    # (A) and answered skipped_policy "edited" here, for this and every later
    # recording, although no person ever touched the field.
    siro.set_extractions("rec-p", notes("C"))
    line = outcomes_of(sf.sync("rec-p"))[("Opportunity", opp, "Description")]
    assert (line.outcome, line.previous) == ("written", "B")
    assert salesforce_state.get_record("Opportunity", opp)["Description"] == "C"
    assert real.intents() == []

    # A person's edit is still protected.
    salesforce_state.set_values("Opportunity", opp, {"Description": "typed by the rep"})
    siro.set_extractions("rec-p", notes("D"))
    line = outcomes_of(sf.sync("rec-p"))[("Opportunity", opp, "Description")]
    assert (line.outcome, line.reason.split(":")[0]) == ("skipped_policy", "edited")
    assert salesforce_state.get_record("Opportunity", opp)["Description"] == "typed by the rep"


def test_a_person_editing_after_a_lost_record_is_still_protected(
    sf, salesforce_state: SalesforceState, salesforce_ids, siro_server
) -> None:
    siro = siro_server.state
    opp = salesforce_ids.opportunity
    siro.add_recording("rec-q", entity_extractions=notes("A"))
    siro.link("rec-q", integration_connection_id="ic_sf", opportunity=opp)
    sf.sync("rec-q")
    siro.set_extractions("rec-q", notes("B"))
    real = sf.ledger
    sf.ledger = KilledBeforeRecording(sf.database_url)
    try:
        with pytest.raises(WorkerKilled):
            sf.sync("rec-q")
    finally:
        sf.ledger.close()
        sf.ledger = real

    # Neither A (last recorded) nor B (sent, never recorded): a person's value.
    salesforce_state.set_values("Opportunity", opp, {"Description": "typed by the rep"})
    siro.set_extractions("rec-q", notes("C"))
    line = outcomes_of(sf.sync("rec-q"))[("Opportunity", opp, "Description")]
    assert (line.outcome, line.reason.split(":")[0]) == ("skipped_policy", "edited")
    assert salesforce_state.get_record("Opportunity", opp)["Description"] == "typed by the rep"


def test_dry_runs_record_no_intents_and_nothing_is_sent_without_one(
    sf, salesforce_state: SalesforceState, salesforce_ids, siro_server
) -> None:
    siro = siro_server.state
    opp = salesforce_ids.opportunity
    siro.add_recording("rec-d", entity_extractions=notes("A"))
    siro.link("rec-d", integration_connection_id="ic_sf", opportunity=opp)

    assert outcomes_of(sf.sync("rec-d", dry_run=True))[("Opportunity", opp, "Description")].outcome == "planned"
    assert sf.ledger.intents() == []

    # The ledger cannot take the intents: the fields fail (to be retried), the CRM gets no write.
    real = sf.ledger
    sf.ledger = LedgerDownForIntents(sf.database_url)
    try:
        report = sf.sync("rec-d")
    finally:
        sf.ledger.close()
        sf.ledger = real
    line = outcomes_of(report)[("Opportunity", opp, "Description")]
    assert line.outcome == "failed" and "LedgerUnavailable" in line.reason
    assert report.transient
    assert salesforce_state.requests_matching("PATCH") == []
    assert salesforce_state.get_record("Opportunity", opp)["Description"] != "A"


def test_a_send_that_failed_leaves_an_empty_protected_field_writable(
    sf, salesforce_state: SalesforceState, salesforce_ids, siro_server
) -> None:
    """The intent of a write the CRM never took must not make the field look edited by a person."""
    siro = siro_server.state
    opp = salesforce_ids.opportunity
    salesforce_state.records["Opportunity"][opp]["Description"] = None
    siro.add_recording("rec-503", entity_extractions=notes("First notes"))
    siro.link("rec-503", integration_connection_id="ic_sf", opportunity=opp)
    salesforce_state.fail_next(503, times=3, path_contains="composite/sobjects")  # every try of the first sync

    failed = outcomes_of(sf.sync("rec-503"))[("Opportunity", opp, "Description")]
    assert failed.outcome == "failed"
    assert ("sf", "Opportunity", opp, "Description", "First notes") in targets(sf.ledger)  # sent, never taken

    again = outcomes_of(sf.sync("rec-503"))[("Opportunity", opp, "Description")]
    assert again[:2] == ("written", "First notes")
    assert salesforce_state.get_record("Opportunity", opp)["Description"] == "First notes"
