"""Write intents (revision 0004): a value we sent stays ours even when its attempt was never recorded.

Every test runs on SQLite and PostgreSQL (``database_url``). The ledger tests
drive the ledger alone; the pipeline tests (protect_edits with write intents: a
worker killed after the CRM accepted, a person's edit still protected, dry runs,
a ledger down for intents, a failed send) hand recordings built as Siro sends
them to ``Pipeline.process`` with a real ledger, and the CRM is in memory
(``tests.fixtures.memory_crm``): no Siro or Salesforce simulator, no HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, inspect

from connectors.base import TransientError
from tests.fixtures.memory_crm import OPPORTUNITY as OPP
from tests.fixtures.memory_crm import MemoryCRM, MemoryPipeline, recording
from tests.fixtures.memory_crm import extraction as X
from tests.fixtures.pipelines import outcomes_of
from worker.ledger import IntentRow, Ledger, LedgerUnavailable
from worker.ledger.engine import alembic_config
from worker.ledger.schema import Attempt, Run, WriteIntent, utcnow
from worker.report import FieldReport, Outcome, RecordingReport
from worker.siro.models import Recording

CONN = "salesforce-main"


def intent(field: str, value: Any, *, record_id: str = "006A", object: str = "Opportunity",
           connection: str = CONN, recording: str = "rec-1") -> IntentRow:
    return IntentRow(connection, object, record_id, field, value, recording)


def attempt(field: str, value: Any, outcome: str = "written", *, record_id: str = "006A",
            object: str = "Opportunity", connection: str = CONN) -> FieldReport:
    return FieldReport(connection, object, record_id, field, value, None, Outcome(outcome), None, None)


def record(ledger: Ledger, recording: str, rows: list[FieldReport]) -> None:
    run_id = ledger.start_run(recording, trigger="cli")
    ledger.record(run_id, recording, rows)
    ledger.finish_run(run_id, "ok")


def targets(ledger: Ledger) -> list[tuple[str, str, str, str, Any]]:
    """The stored intents, oldest first, as (connection, object, record, field, value)."""
    return [(i.intent.connection, i.intent.object, i.intent.record_id, i.intent.field, i.intent.value)
            for i in reversed(ledger.intents())]


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
            command.upgrade(alembic_config(conn), "0003")
        assert "write_intents" not in inspect(ledger.engine).get_table_names()
        with caplog.at_level(logging.WARNING, logger="worker.ledger.intents"):
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
# the pipeline, on the in-memory CRM


class WorkerKilled(Exception):
    """Stands for SIGKILL between the CRM's answer and the ledger's record."""


class KilledBeforeRecording(Ledger):
    """Our own ledger, except that the process dies when it would record the outcomes."""

    def record(self, run_id: int, recording_id: str, rows: Any) -> None:
        raise WorkerKilled(recording_id)


class LedgerDownForIntents(Ledger):
    def record_intents(self, rows: Any) -> None:
        raise LedgerUnavailable("ledger database unavailable while recording write intents")


@pytest.fixture
def sf(database_url: str, memory_crm: MemoryCRM, make_memory_pipeline) -> MemoryPipeline:
    """The pipeline on the in-memory CRM (connection ``sf``, Opportunity.Description under protect_edits),
    with a real ledger on ``database_url``."""
    return make_memory_pipeline(memory_crm, database_url,
                                fields={"policy": {"Opportunity.Description": "protect_edits"}})


def notes(value: str, amount: str = "18,750") -> list:
    return [X("Notes", value, ("Opportunity", "Description")), X("Deal size", amount, ("Opportunity", "Amount"))]


def version(recording_id: str, n: int, value: str, amount: str = "18,750") -> Recording:
    """Version ``n`` of a recording linked to OPPORTUNITY, as Siro returns it after its extractions changed."""
    return recording(recording_id, notes(value, amount), opportunity=OPP, updated_at=f"2026-11-01T10:00:{n:02d}.000Z")


def process_one(pipeline: MemoryPipeline, rec: Recording, **options: Any) -> RecordingReport:
    """One recording through `Pipeline.process`: what `writeback sync` does once it has fetched it."""
    [report] = pipeline.process([rec], **options)
    return report


@contextmanager
def ledger_swapped(pipeline: MemoryPipeline, cls: type[Ledger]) -> Iterator[Ledger]:
    """Run with ``cls`` on the pipeline's own database in place of its ledger; the real one is yielded."""
    real = pipeline.ledger
    pipeline.ledger = cls(pipeline.database_url)
    try:
        yield real
    finally:
        pipeline.ledger.close()
        pipeline.ledger = real


def test_a_worker_killed_after_the_crm_accepted_does_not_turn_our_value_into_an_edit(sf: MemoryPipeline) -> None:
    crm = sf.crm
    first = outcomes_of(process_one(sf, version("rec-p", 1, "A")))[("Opportunity", OPP, "Description")]
    assert first.outcome == "written"
    assert sf.ledger.intents() == []  # recorded as written: nothing left pending

    # The recording is re-processed with B; the CRM accepts it and the worker
    # dies before the ledger records the outcome.
    with ledger_swapped(sf, KilledBeforeRecording) as real, pytest.raises(WorkerKilled):
        process_one(sf, version("rec-p", 2, "B", "20,000"))
    assert crm.record("Opportunity", OPP)["Description"] == "B"
    assert real.last_written("sf", "Opportunity", [OPP], ["Description"]) == {(OPP, "description"): "A"}
    # Sent as the attempts carry them: canonical JSON (18,750 -> 18750 ... 20,000 -> 20000).
    assert sorted((i.intent.field, i.intent.value, i.intent.recording_id) for i in real.intents()) == [
        ("Amount", 20000, "rec-p"), ("Description", "B", "rec-p")]

    # The task comes back: the CRM already holds B, nothing is sent again.
    before = len(crm.writes())
    line = outcomes_of(process_one(sf, version("rec-p", 2, "B", "20,000")))[("Opportunity", OPP, "Description")]
    assert line.outcome == "unchanged"
    assert len(crm.writes()) == before

    # A later recording writes C: the CRM holds B, which we sent, so it is ours.
    # Before intents, protect_edits compared B with the last *recorded* write
    # (A) and answered skipped_policy "edited" here, for this and every later
    # recording, although no person ever touched the field.
    line = outcomes_of(process_one(sf, version("rec-p", 3, "C")))[("Opportunity", OPP, "Description")]
    assert (line.outcome, line.previous) == ("written", "B")
    assert crm.record("Opportunity", OPP)["Description"] == "C"
    assert real.intents() == []

    # A person's edit is still protected.
    crm.set_values("Opportunity", OPP, {"Description": "typed by the rep"})
    line = outcomes_of(process_one(sf, version("rec-p", 4, "D")))[("Opportunity", OPP, "Description")]
    assert (line.outcome, line.reason.split(":")[0]) == ("skipped_policy", "edited")
    assert crm.record("Opportunity", OPP)["Description"] == "typed by the rep"


def test_a_person_editing_after_a_lost_record_is_still_protected(sf: MemoryPipeline) -> None:
    crm = sf.crm
    process_one(sf, version("rec-q", 1, "A"))
    with ledger_swapped(sf, KilledBeforeRecording), pytest.raises(WorkerKilled):
        process_one(sf, version("rec-q", 2, "B"))

    # Neither A (last recorded) nor B (sent, never recorded): a person's value.
    crm.set_values("Opportunity", OPP, {"Description": "typed by the rep"})
    line = outcomes_of(process_one(sf, version("rec-q", 3, "C")))[("Opportunity", OPP, "Description")]
    assert (line.outcome, line.reason.split(":")[0]) == ("skipped_policy", "edited")
    assert crm.record("Opportunity", OPP)["Description"] == "typed by the rep"


def test_dry_runs_record_no_intents_and_nothing_is_sent_without_one(sf: MemoryPipeline) -> None:
    crm = sf.crm
    rec = version("rec-d", 1, "A")

    assert outcomes_of(process_one(sf, rec, dry_run=True))[("Opportunity", OPP, "Description")].outcome == "planned"
    assert sf.ledger.intents() == []

    # The ledger cannot take the intents: the fields fail (to be retried), the CRM gets no write.
    with ledger_swapped(sf, LedgerDownForIntents):
        report = process_one(sf, rec)
    line = outcomes_of(report)[("Opportunity", OPP, "Description")]
    assert line.outcome == "failed" and "LedgerUnavailable" in line.reason
    assert report.transient
    assert crm.writes() == []
    assert crm.record("Opportunity", OPP)["Description"] != "A"


def test_a_send_that_failed_leaves_an_empty_protected_field_writable(sf: MemoryPipeline) -> None:
    """The intent of a write the CRM never took must not make the field look edited by a person."""
    crm = sf.crm
    crm.set_values("Opportunity", OPP, {"Description": None})
    rec = version("rec-503", 1, "First notes")
    for _ in range(3):  # every try of the first sync (the pipeline retries twice)
        crm.fail_next("write", TransientError("503 Service Unavailable"))

    failed = outcomes_of(process_one(sf, rec))[("Opportunity", OPP, "Description")]
    assert failed.outcome == "failed"
    assert ("sf", "Opportunity", OPP, "Description", "First notes") in targets(sf.ledger)  # sent, never taken
    assert len(crm.writes()) == 3 and crm.record("Opportunity", OPP)["Description"] is None

    again = outcomes_of(process_one(sf, rec))[("Opportunity", OPP, "Description")]
    assert again[:2] == ("written", "First notes")
    assert crm.record("Opportunity", OPP)["Description"] == "First notes"
