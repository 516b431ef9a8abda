"""The history reads (``Ledger.history``, ``Ledger.record_history``) and their indexes
(revision 0006), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, inspect

from worker.ledger import Ledger
from worker.ledger.engine import alembic_config
from worker.report import FieldReport, NoteOutcome, NoteReport, Outcome

SF = "salesforce-main"
OPP = "0065g000000DuAdAAK"
OTHER_OPP = "0065g000000DuAeAAK"


def line(field: str | None, value: Any, outcome: str = "written", *, record_id: str | None = OPP,
         object: str | None = "Opportunity", connection: str | None = SF, previous: Any = None,
         reason: str | None = None) -> FieldReport:
    return FieldReport(connection, object, record_id, field, value, previous, Outcome(outcome), reason,
                       f"extraction of {field}")


def run(ledger: Ledger, recording: str, trigger: str, lines: list[FieldReport], status: str = "ok",
        reason: str | None = None, **kw: Any) -> int:
    run_id = ledger.start_run(recording, trigger=trigger, **kw)
    ledger.record(run_id, recording, lines)
    ledger.finish_run(run_id, status, reason)
    return run_id


# --------------------------------------------------------------------------- #
# by recording


def test_history_lists_runs_newest_first_with_their_fields_in_recorded_order(ledger: Ledger) -> None:
    first = run(ledger, "rec-1", "webhook", [line("StageName", "Closed Won", previous="Prospecting"),
                                             line("Amount", 21000, previous=12500),
                                             line("Title", "Owner", "failed", object="Contact",
                                                  record_id="0035g000000GyssAAC", reason="NOT_FOUND")],
                status="partial")
    run(ledger, "rec-2", "poll", [line("Amount", 1)])  # another recording: not listed
    second = run(ledger, "rec-1", "poll", [line("StageName", "Closed Won", "unchanged"),
                                           line("Amount", 21000, "unchanged")])
    third = run(ledger, "rec-1", "poll", [], status="skipped", reason="reverted")

    history = ledger.history("rec-1")

    assert [entry.run.id for entry in history] == [third, second, first]
    assert [entry.run.trigger for entry in history] == ["poll", "poll", "webhook"]
    assert history[0].attempts == ()
    assert [a.line.field for a in history[1].attempts] == ["StageName", "Amount"]
    assert [a.line.field for a in history[2].attempts] == ["StageName", "Amount", "Title"]
    assert history[2].attempts[2].line == line("Title", "Owner", "failed", object="Contact",
                                               record_id="0035g000000GyssAAC", reason="NOT_FOUND")
    assert all(a.run_id == first and a.recording_id == "rec-1" for a in history[2].attempts)
    assert ledger.history("rec-unknown") == []


def test_history_json_is_the_documented_shape(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    run_id = run(ledger, "rec-1", "webhook", [line("Amount", 21000, previous=12500)])
    skipped = run(ledger, "rec-1", "poll", [], status="skipped", reason="reverted")

    newest, oldest = (entry.to_json() for entry in ledger.history("rec-1"))

    assert oldest == {
        "runId": run_id, "trigger": "webhook", "startedAt": oldest["startedAt"], "status": "ok",
        "fields": [{"connection": SF, "object": "Opportunity", "recordId": OPP, "field": "Amount",
                    "value": 21000, "previous": 12500, "outcome": "written", "reason": None,
                    "extraction": "extraction of Amount"}],
        "notes": [],
    }
    started = datetime.fromisoformat(oldest["startedAt"].replace("Z", "+00:00"))
    assert oldest["startedAt"].endswith("Z") and before - timedelta(seconds=1) <= started
    assert newest == {"runId": skipped, "trigger": "poll", "startedAt": newest["startedAt"],
                      "status": "skipped", "fields": [], "notes": [], "reason": "reverted"}


# --------------------------------------------------------------------------- #
# by CRM record


def _fill_one_record(ledger: Ledger) -> dict[str, int]:
    runs = {
        "first": run(ledger, "rec-1", "webhook", [line("StageName", "Closed Won", previous="Prospecting"),
                                                  line("Amount", 21000, previous=12500)]),
        "elsewhere": run(ledger, "rec-2", "poll", [
            line("StageName", "x", record_id=OTHER_OPP),  # another record
            line("StageName", "x", object="Account"),  # another object, same id
            line("StageName", "x", connection="hubspot-main"),  # another connection
            line("StageName", "x", record_id=None),  # sent to no record
        ]),
        "revert": run(ledger, "rec-1", "revert", [line("StageName", "Prospecting", "reverted",
                                                       previous="Closed Won")]),
        "second": run(ledger, "rec-3", "backfill", [line("stagename", "Negotiation", previous="Prospecting"),
                                                    line("NextStep", "Call", "skipped_policy", reason="edited")]),
    }
    return runs


def test_record_history_lists_every_recordings_outcomes_on_the_record_newest_first(ledger: Ledger) -> None:
    runs = _fill_one_record(ledger)

    entries = ledger.record_history(SF, "Opportunity", OPP)

    assert [(e.attempt.recording_id, e.trigger, e.attempt.line.field) for e in entries] == [
        ("rec-3", "backfill", "NextStep"),
        ("rec-3", "backfill", "stagename"),
        ("rec-1", "revert", "StageName"),
        ("rec-1", "webhook", "Amount"),
        ("rec-1", "webhook", "StageName"),
    ]
    assert [e.attempt.run_id for e in entries] == [runs["second"]] * 2 + [runs["revert"]] + [runs["first"]] * 2
    ids = [e.attempt.id for e in entries]
    assert ids == sorted(ids, reverse=True)
    assert all(e.at == e.attempt.created_at and e.at.utcoffset() == timedelta(0) for e in entries)
    assert ledger.record_history(SF, "Opportunity", "006000000000000AAA") == []
    assert ledger.record_history("hubspot-main", "Opportunity", OPP)[0].attempt.line.value == "x"


def test_record_history_of_one_field_matches_it_in_any_case(ledger: Ledger) -> None:
    _fill_one_record(ledger)

    for asked in ("StageName", "stagename", "STAGENAME"):
        entries = ledger.record_history(SF, "Opportunity", OPP, asked)
        assert [(e.attempt.line.field, e.attempt.line.value) for e in entries] == [
            ("stagename", "Negotiation"), ("StageName", "Prospecting"), ("StageName", "Closed Won"),
        ], asked
    assert [e.attempt.line.value for e in ledger.record_history(SF, "Opportunity", OPP, "nextstep")] == ["Call"]
    assert ledger.record_history(SF, "Opportunity", OPP, "Description") == []
    # Non-ASCII fields fold too (SQLite's lower() would not).
    run(ledger, "rec-4", "cli", [line("Größe__c", 1)])
    assert len(ledger.record_history(SF, "Opportunity", OPP, "GRÖSSE__C")) == 1


def test_record_history_json_is_the_documented_shape(ledger: Ledger) -> None:
    _fill_one_record(ledger)

    entry = ledger.record_history(SF, "Opportunity", OPP, "NextStep")[0]

    assert entry.to_json() == {
        "connection": SF, "object": "Opportunity", "recordId": OPP, "field": "NextStep", "value": "Call",
        "previous": None, "outcome": "skipped_policy", "reason": "edited", "extraction": "extraction of NextStep",
        "recordingId": "rec-3", "trigger": "backfill", "at": entry.at.isoformat().replace("+00:00", "Z"),
    }


def test_history_reads_refuse_what_is_not_an_id(ledger: Ledger) -> None:
    with pytest.raises(TypeError):
        ledger.history("")
    with pytest.raises(TypeError):
        ledger.record_history(SF, "", OPP)
    with pytest.raises(TypeError):
        ledger.record_history(SF, "Opportunity", OPP, "")


# --------------------------------------------------------------------------- #
# the indexes (revision 0006)


def _attempt_indexes(ledger: Ledger) -> dict[str, list[str]]:
    return {ix["name"]: ix["column_names"] for ix in inspect(ledger.engine).get_indexes("attempts")}


def _migrate(ledger: Ledger, revision: str, *, down: bool = False) -> None:
    from alembic import command

    with ledger._write("test migration") as conn:
        (command.downgrade if down else command.upgrade)(alembic_config(conn), revision)


def test_revision_0006_replaces_the_attempts_indexes_with_ones_ending_in_id(ledger: Ledger) -> None:
    run(ledger, "rec-1", "webhook", [line("StageName", "Closed Won")])
    assert _attempt_indexes(ledger) == {
        "ix_attempts_run_id": ["run_id"],
        "ix_attempts_recording_history": ["recording_id", "id"],
        "ix_attempts_record_history": ["connection", "object", "record_id", "field", "id"],
    }

    _migrate(ledger, "0005", down=True)
    assert _attempt_indexes(ledger) == {
        "ix_attempts_run_id": ["run_id"],
        "ix_attempts_recording_id": ["recording_id"],
        "ix_attempts_target": ["connection", "object", "record_id", "field"],
    }
    _migrate(ledger, "0006")
    assert ledger.current_revision() == "0006"
    assert set(_attempt_indexes(ledger)) == {"ix_attempts_run_id", "ix_attempts_recording_history",
                                             "ix_attempts_record_history"}
    assert [e.attempt.line.value for e in ledger.record_history(SF, "Opportunity", OPP, "stagename")] == [
        "Closed Won"]
    ledger.migrate()  # and on to the newest


def _plans(sqlite_url: str, read: Any) -> list[str]:
    """SQLite's query plan of every SELECT that ``read(ledger)`` runs, one text each."""
    ledger = Ledger.open(sqlite_url)
    statements: list[tuple[str, Any]] = []

    def remember(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "sqlite_master" not in statement:
            statements.append((statement, parameters))

    try:
        run(ledger, "rec-1", "webhook", [line("StageName", "Closed Won"), line("Amount", 1)])
        event.listen(ledger.engine, "before_cursor_execute", remember)
        read(ledger)
        event.remove(ledger.engine, "before_cursor_execute", remember)
        with ledger.engine.connect() as conn:
            return [" | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                    for sql, params in statements]
    finally:
        ledger.close()


def test_sqlite_reads_the_history_off_the_indexes_without_sorting(sqlite_url: str) -> None:
    # Not timed (bench/history.py times them on a million attempts): the plans say the rows come off an index.
    by_recording = _plans(sqlite_url, lambda ledger: ledger.history("rec-1"))
    assert any("ix_attempts_recording_history" in plan for plan in by_recording), by_recording
    by_field = _plans(sqlite_url, lambda ledger: ledger.record_history(SF, "Opportunity", OPP, "stagename"))
    assert all("ix_attempts_record_history" in plan for plan in by_field), by_field
    assert "COVERING INDEX" in by_field[0]  # the spellings: the index alone
    assert "TEMP B-TREE" not in by_field[1], by_field  # newest first straight off the index
    whole_record = _plans(sqlite_url, lambda ledger: ledger.record_history(SF, "Opportunity", OPP))
    assert all("ix_attempts_record_history" in plan for plan in whole_record), whole_record


# --------------------------------------------------------------------------- #
# recent runs (the console's first page)


def test_recent_runs_pages_newest_first_with_field_and_note_outcomes_counted(ledger: Ledger) -> None:
    ids = [run(ledger, f"rec-{n}", "poll", [line("Amount", n), line("StageName", "x", "invalid_value")],
               status="partial") for n in range(5)]
    noted = run(ledger, "rec-note", "webhook", [])
    ledger.record_notes(noted, "rec-note", [NoteReport(SF, "ContentNote", "069A", (("Opportunity", OPP),),
                                                       NoteOutcome.CREATED)])

    first = ledger.recent_runs(limit=4)
    second = ledger.recent_runs(before=first.older, limit=4)

    assert [summary.run.id for summary in first.runs] == [noted, *ids[:1:-1]] and first.older == ids[2]
    assert [summary.run.id for summary in second.runs] == [ids[1], ids[0]] and second.older is None
    assert first.runs[0].notes == {"created": 1} and first.runs[0].outcomes == {}
    assert second.runs[0].outcomes == {"written": 1, "invalid_value": 1}
    assert second.runs[0].connections == (SF,) and second.runs[0].notes == {}
