"""The ledger on SQLite and PostgreSQL (``database_url`` runs each test on both)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import socket
import sqlite3
import traceback
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import inspect

from worker.ledger import (
    Ledger,
    LedgerError,
    LedgerUnavailable,
    head_revision,
    normalize_url,
)
from worker.ledger.schema import metadata
from worker.report import FieldReport, Outcome, Status

CONN = "salesforce-main"


def row(field: str, value: Any, outcome: str = "written", *, record_id: str | None = "006A",
        object: str | None = "Opportunity", connection: str = CONN, previous: Any = None,
        reason: str | None = None, extraction: str | None = None) -> FieldReport:
    return FieldReport(connection, object, record_id, field, value, previous, Outcome(outcome),
                       reason, extraction)


def strict(value: Any) -> str:
    """A spelling that tells True from 1 and 1.0 from 1."""
    return json.dumps(value) + "|" + repr(type(value))


def assert_identical(got: Any, expected: Any) -> None:
    assert strict(got) == strict(expected)
    if isinstance(expected, list):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_identical(g, e)


# --------------------------------------------------------------------------- #
# schema and migrations


def test_migrate_is_idempotent(database_url: str) -> None:
    ledger = Ledger(database_url)
    try:
        assert ledger.current_revision() is None
        ledger.migrate()
        ledger.migrate()
        assert ledger.current_revision() == head_revision() == "0008"
        run_id = ledger.start_run("rec-1", trigger="cli")
        ledger.migrate()  # data survives a re-run
        assert [r.id for r in ledger.runs()] == [run_id]
        tables = set(inspect(ledger.engine).get_table_names())
        assert {"runs", "attempts", "writeback_alembic_version"} <= tables
    finally:
        ledger.close()
    Ledger.open(database_url).close()  # open = construct + migrate, again


def test_migrations_match_the_declared_tables(ledger: Ledger) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with ledger.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": "writeback_alembic_version"}
        )
        assert compare_metadata(ctx, metadata) == []


def test_migrate_does_not_depend_on_the_working_directory(tmp_path, monkeypatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with Ledger.open("sqlite:///relative.db") as ledger:
        assert ledger.current_revision() == head_revision()
    assert (elsewhere / "relative.db").is_file()


def test_sqlite_connections_use_wal_and_a_busy_timeout(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        with ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30_000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/ledger", "postgresql+psycopg"),
        ("postgres://u:p@db/ledger", "postgresql+psycopg"),
        ("postgres+psycopg://u@db/ledger", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@db/ledger", "postgresql+psycopg2"),
        ("sqlite:///writeback.db", "sqlite"),
    ],
)
def test_url_rewriting(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver
    ledger = Ledger(given) if "psycopg2" not in given else None  # psycopg2 not installed
    if ledger is not None:
        assert ledger.engine.url.drivername == driver
        ledger.close()


# --------------------------------------------------------------------------- #
# runs and attempts

VALUES: list[Any] = [
    "Ünïcødé ✓ — 日本語 😀 \"quoted\" \\ back\nslash",
    "",
    "  spaced  ",
    0,
    -42,
    2**53 + 1,
    3.14159,
    12500.0,
    -0.5,
    1e-300,
    True,
    False,
    None,
    [],
    ["Red", "Green"],
    ["mixed", 1, 2.5, True, None, ["nested"]],
]


def test_run_round_trips_every_json_type(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    run_id = ledger.start_run("rec-1", trigger="webhook")
    rows = [
        row(f"Field_{i}__c", value, previous=VALUES[-1 - i], reason=f"r{i}" if i % 2 else None,
            extraction=f"extraction {i}", record_id=f"006{i}")
        for i, value in enumerate(VALUES)
    ]
    ledger.record(run_id, "rec-1", rows)
    ledger.finish_run(run_id, "partial", "1 field failed")
    after = datetime.now(UTC)

    got = ledger.attempts("rec-1")
    assert len(got) == len(rows)
    assert [a.line.field for a in got] == [r.field for r in reversed(rows)]  # newest first
    for attempt, expected in zip(reversed(got), rows):
        assert_identical(attempt.line.value, expected.value)
        assert_identical(attempt.line.previous, expected.previous)
        assert attempt.run_id == run_id
        assert attempt.recording_id == "rec-1"
        for name in ("connection", "object", "record_id", "field", "outcome", "reason",
                     "extraction"):
            assert getattr(attempt.line, name) == getattr(expected, name)
        assert attempt.line == expected  # the very report line, read back
        created = attempt.created_at
        assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)

    (run,) = ledger.runs("rec-1")
    assert run.id == run_id
    assert run.trigger == "webhook" and run.dry_run is False
    assert run.status == "partial" and run.reason == "1 field failed"
    assert run.status is Status.PARTIAL
    for name in ("started_at", "finished_at"):
        assert getattr(run, name).utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= run.started_at <= run.finished_at


def test_runs_and_attempts_are_listed_newest_first_and_filtered(ledger: Ledger) -> None:
    first = ledger.start_run("rec-1", trigger="poll", dry_run=True)
    assert ledger.runs("rec-1")[0].status == "running"
    assert ledger.runs("rec-1")[0].finished_at is None
    ledger.record(first, "rec-1", [row("Amount", 1, "planned"), row("StageName", "x", "planned")])
    ledger.finish_run(first, "ok")
    second = ledger.start_run("rec-2", trigger="cli")
    ledger.record(second, "rec-2", [row("Amount", 2), row("Name", None, "null_value")])
    ledger.record(second, "rec-2", [])  # nothing planned: fine
    ledger.finish_run(second, Status.SKIPPED, "crm_null")

    assert [r.id for r in ledger.runs()] == [second, first]
    assert ledger.runs("rec-1")[0].dry_run is True
    assert [a.line.field for a in ledger.attempts()] == ["Name", "Amount", "StageName", "Amount"]
    assert [a.line.field for a in ledger.attempts(limit=1)] == ["Name"]
    assert [a.line.value for a in ledger.attempts("rec-1")] == ["x", 1]
    assert ledger.runs("rec-2")[0].status is Status.SKIPPED
    assert ledger.attempts("rec-unknown") == []
    assert ledger.runs("rec-unknown") == []


def test_record_stores_the_report_lines_values_as_json(ledger: Ledger) -> None:
    run_id = ledger.start_run("rec-1", trigger="cli")
    ledger.record(run_id, "rec-1", [
        row("Amount", Decimal("12500"), previous=Decimal("0.5")),
        row("CloseDate", date(2026, 3, 1), previous=datetime(2026, 2, 1, 9, 30, tzinfo=UTC)),
        row("Colors__c", ("Red", "Green")),
    ])
    got = {a.line.field: (a.line.value, a.line.previous) for a in ledger.attempts("rec-1")}
    assert got == {
        "Amount": (12500, 0.5),
        "CloseDate": ("2026-03-01", "2026-02-01T09:30:00Z"),
        "Colors__c": (["Red", "Green"], None),
    }
    assert_identical(got["Amount"][0], 12500)


def test_record_validates_before_writing(ledger: Ledger) -> None:
    run_id = ledger.start_run("rec-1", trigger="cli")
    with pytest.raises(ValueError, match="outcome"):
        ledger.record(run_id, "rec-1", [replace(row("Amount", 1), outcome="wrote")])
    with pytest.raises(TypeError):
        ledger.record(run_id, "rec-1", [row("Amount", 1, record_id=6)])  # CRM ids are strings
    with pytest.raises(TypeError, match="FieldReport"):
        ledger.record(run_id, "rec-1", [("Amount", 1)])
    with pytest.raises(TypeError, match="JSON"):
        ledger.record(run_id, "rec-1", [row("Amount", 1), row("Amount", float("nan"))])
    with pytest.raises(TypeError, match="JSON"):
        ledger.record(run_id, "rec-1", [row("Amount", 1), row("Amount", object())])
    with pytest.raises(LookupError):
        ledger.record(run_id + 100, "rec-1", [row("Amount", 1)])
    with pytest.raises(ValueError, match="belongs to"):
        ledger.record(run_id, "rec-2", [row("Amount", 1)])
    assert ledger.attempts() == []  # all or nothing
    with pytest.raises(ValueError):
        ledger.finish_run(run_id, "done")
    with pytest.raises(ValueError):
        ledger.finish_run(run_id, Status.RUNNING)  # only ever the start
    with pytest.raises(LookupError):
        ledger.finish_run(run_id + 100, "ok")


# --------------------------------------------------------------------------- #
# last_written


def test_last_written_picks_the_newest_written_attempt(ledger: Ledger) -> None:
    def run(recording: str, rows: list[FieldReport], **kw: Any) -> None:
        run_id = ledger.start_run(recording, trigger="cli", **kw)
        ledger.record(run_id, recording, rows)
        ledger.finish_run(run_id, "ok")

    run("rec-1", [row("StageName", "v1"), row("Amount", 100), row("Next_Step__c", "call")])
    run("rec-2", [row("StageName", "v2"), row("Amount", 200.5)])
    run("rec-3", [row("stagename", "v3")])  # another spelling, still the same field
    run("rec-4", [
        row("StageName", "failed", "failed", reason="UNABLE_TO_LOCK_ROW"),
        row("StageName", "bad", "invalid_value"),
        row("StageName", "same", "unchanged"),
        row("StageName", "policy", "skipped_policy", reason="edited"),
        row("Amount", None),  # write_nulls: we cleared it
    ])
    run("rec-5", [row("StageName", "dry", "planned")], dry_run=True)
    # Other records, objects, connections: never picked.
    run("rec-6", [
        row("StageName", "other record", record_id="006B"),
        row("StageName", "other object", object="Account"),
        row("StageName", "other connection", connection="hubspot"),
        row("StageName", "no object", object=None),
    ])

    got = ledger.last_written(CONN, "Opportunity", ["006A", "006Z"], ["STAGENAME", "amount"])
    assert got == {("006A", "stagename"): "v3", ("006A", "amount"): None}
    assert ("006A", "amount") in got  # a written null is not "never written"

    assert ledger.last_written(CONN, "Opportunity", ["006A", "006B"], ["StageName"]) == {
        ("006A", "stagename"): "v3",
        ("006B", "stagename"): "other record",
    }
    assert ledger.last_written(CONN, "Account", ["006A"], ["stagename"]) == {
        ("006A", "stagename"): "other object"
    }
    assert ledger.last_written(CONN, None, ["006A"], ["stagename"]) == {
        ("006A", "stagename"): "no object"
    }
    assert ledger.last_written("hubspot", "Opportunity", ["006A"], ["StageName"]) == {
        ("006A", "stagename"): "other connection"
    }
    assert ledger.last_written(CONN, "Opportunity", ["006A"], ["Next_Step__C"]) == {
        ("006A", "next_step__c"): "call"
    }
    assert ledger.last_written(CONN, "Opportunity", [], ["StageName"]) == {}
    assert ledger.last_written(CONN, "Opportunity", ["006A"], []) == {}

    # Many record ids at once (more than one IN list).
    ids = [f"id{i:05d}" for i in range(1200)]
    run("rec-7", [row("Amount", i, record_id=ids[i]) for i in (0, 599, 1199)])
    got = ledger.last_written(CONN, "Opportunity", ids, ["Amount"])
    assert got == {(ids[0], "amount"): 0, (ids[599], "amount"): 599, (ids[1199], "amount"): 1199}


# --------------------------------------------------------------------------- #
# concurrency

WORKERS = 4
RUNS_PER_WORKER = 15
ROWS_PER_RUN = 8


def _worker(url: str, worker: int, barrier: Any, errors: Any) -> None:
    """Spawned process: open (migrate) and write at the same moment as the others."""
    try:
        barrier.wait(timeout=60)
        ledger = Ledger.open(url)
        for n in range(RUNS_PER_WORKER):
            recording = f"rec-{worker}-{n}"
            run_id = ledger.start_run(recording, trigger="poll")
            ledger.record(run_id, recording, [
                row(f"Field{i}", [worker, n, i], record_id=f"{worker}-{n}")
                for i in range(ROWS_PER_RUN)
            ])
            ledger.last_written(CONN, "Opportunity", [f"{worker}-{n}"], ["field0"])
            ledger.finish_run(run_id, "ok")
        ledger.close()
    except BaseException:
        errors.put(traceback.format_exc())
        raise


@pytest.mark.e2e  # starts processes
def test_concurrent_processes_migrate_and_write(database_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    errors = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(database_url, w, barrier, errors))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, "\n".join(problems)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    with Ledger.open(database_url) as ledger:
        runs = ledger.runs()
        assert len(runs) == WORKERS * RUNS_PER_WORKER
        assert {r.status for r in runs} == {"ok"}
        assert len(ledger.attempts()) == WORKERS * RUNS_PER_WORKER * ROWS_PER_RUN
        assert ledger.current_revision() == head_revision()


def test_sqlite_threads_write_while_a_reader_holds_a_snapshot(sqlite_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ledger = Ledger.open(sqlite_url)
    # An open read transaction on another connection: WAL lets writers go on.
    reader = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM attempts").fetchone()

    def write(n: int) -> None:
        run_id = ledger.start_run(f"rec-{n}", trigger="webhook")
        ledger.record(run_id, f"rec-{n}", [row("Amount", n), row("StageName", str(n))])
        ledger.finish_run(run_id, "ok")

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(40)))
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert len(ledger.attempts()) == 80
    ledger.close()


# --------------------------------------------------------------------------- #
# secrets


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_password_never_appears_in_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "S3cr@t-pa55"  # given %-encoded in the URL
    url = f"postgresql://writer:S3cr%40t-pa55@127.0.0.1:{_closed_port()}/ledger"
    ledger = Ledger(url)
    for text in (repr(ledger), str(ledger), ledger.display_url):
        assert secret not in text and "S3cr%40t" not in text
        assert "***" in text
    with pytest.raises(LedgerUnavailable) as info:
        ledger.migrate()
    with pytest.raises(LedgerUnavailable) as info2:
        ledger.start_run("rec-1", trigger="cli")
    for exc in (info.value, info2.value):
        rendered = "".join(traceback.format_exception(exc)) + repr(exc)
        assert "127.0.0.1" in rendered
        assert secret not in rendered and "S3cr%40t" not in rendered and "pa55" not in rendered
        assert "\n" not in str(exc)  # one line, for the CLI
    ledger.close()

    with pytest.raises(LedgerError) as info3:
        Ledger.open(url)
    rendered = "".join(traceback.format_exception(info3.value))
    assert "pa55" not in rendered

    bad_port = "postgresql://writer:S3cr%40t-pa55@127.0.0.1:notaport/ledger"
    with pytest.raises(LedgerError) as info4:  # unparseable URL
        Ledger(bad_port)
    assert "pa55" not in "".join(traceback.format_exception(info4.value))
    assert "pa55" not in caplog.text
