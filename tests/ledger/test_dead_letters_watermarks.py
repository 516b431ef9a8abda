"""Dead letters and watermarks (revision 0002), on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect

from worker.ledger import DeadLetterRow, Ledger, head_revision
from worker.ledger.engine import alembic_config
from worker.report import FieldReport, Outcome

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


# --------------------------------------------------------------------------- #
# migration


def _migrate_to(ledger: Ledger, revision: str, *, down: bool = False) -> None:
    from alembic import command

    with ledger._write("test migration") as conn:
        cfg = alembic_config(conn)
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_upgrade_from_0001_keeps_the_data(database_url: str) -> None:
    ledger = Ledger(database_url)
    try:
        _migrate_to(ledger, "0001")
        assert ledger.current_revision() == "0001"
        assert not {"dead_letters", "watermarks"} & set(inspect(ledger.engine).get_table_names())
        run_id = ledger.start_run("rec-old", trigger="webhook")
        ledger.record(run_id, "rec-old", [FieldReport("sf", "Opportunity", "006A", "Amount", 12500.0,
                                                      None, Outcome.WRITTEN, None, "Amount")])
        ledger.finish_run(run_id, "ok")
        with ledger.engine.connect() as conn:  # the 0001 columns only: this code reads the newest schema
            before_runs = [tuple(row) for row in conn.exec_driver_sql(
                "SELECT id, recording_id, trigger, status, reason FROM runs ORDER BY id DESC")]
        before_attempts = ledger.attempts()

        ledger.migrate()
        assert ledger.current_revision() == head_revision() == "0008"
        assert [(r.id, r.recording_id, r.trigger, r.status, r.reason) for r in ledger.runs()] == before_runs
        assert ledger.runs()[0].recording_updated_at is None  # 0003's column, unknown for older runs
        assert ledger.attempts() == before_attempts
        assert ledger.attempts()[0].line.value == 12500.0 and isinstance(ledger.attempts()[0].line.value, float)
        assert ledger.last_written("sf", "Opportunity", ["006A"], ["amount"]) == {("006A", "amount"): 12500.0}
        # The new tables work.
        ledger.add_dead_letter("rec-old", reason="auth", error="expired", trigger="poll", attempts=1)
        assert ledger.advance_watermark("poll", T0) == T0
        ledger.migrate()  # idempotent
        assert ledger.dead_letter("rec-old").failures == 1
        assert ledger.watermark("poll") == T0
    finally:
        ledger.close()


def test_downgrade_to_0001_and_back(ledger: Ledger) -> None:
    ledger.start_run("rec-1", trigger="cli")
    ledger.add_dead_letter("rec-1", reason="auth", error="x", trigger="cli", attempts=1)
    _migrate_to(ledger, "0001", down=True)
    assert ledger.current_revision() == "0001"
    assert not {"dead_letters", "watermarks"} & set(inspect(ledger.engine).get_table_names())
    ledger.migrate()
    assert ledger.dead_letters() == []
    assert [r.recording_id for r in ledger.runs()] == ["rec-1"]


# --------------------------------------------------------------------------- #
# dead letters


def test_dead_letter_upsert_counts_failures_and_keeps_the_first(ledger: Ledger) -> None:
    assert ledger.dead_letters() == []
    assert ledger.dead_letter("rec-1") is None

    before = datetime.now(UTC)
    ledger.add_dead_letter("rec-1", reason="retries_exhausted", error="Salesforce HTTP 503",
                           trigger="poll", attempts=9)
    first = ledger.dead_letter("rec-1")
    assert first is not None
    assert first == DeadLetterRow(
        recording_id="rec-1",
        reason="retries_exhausted",
        error="Salesforce HTTP 503",
        trigger="poll",
        attempts=9,
        failures=1,
        first_failed_at=first.first_failed_at,
        last_failed_at=first.first_failed_at,
    )
    assert first.first_failed_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= first.first_failed_at <= datetime.now(UTC) + timedelta(seconds=1)
    # What `writeback failed --json` prints, key for key.
    assert first.to_json() == {
        "recording_id": "rec-1",
        "connection": None,  # not given: the connection was never known
        "reason": "retries_exhausted",
        "error": "Salesforce HTTP 503",
        "trigger": "poll",
        "attempts": 9,
        "failures": 1,
        "first_failed_at": first.first_failed_at.isoformat(),
        "last_failed_at": first.first_failed_at.isoformat(),
    }

    time.sleep(0.01)
    ledger.add_dead_letter("rec-1", reason="auth", error="HubSpot session expired",
                           trigger="retry", attempts=1, connection="hubspot-main")
    again = ledger.dead_letter("rec-1")
    assert again is not None
    assert again.failures == 2
    assert again.connection == "hubspot-main" and again.to_json()["connection"] == "hubspot-main"
    assert again.first_failed_at == first.first_failed_at
    assert again.last_failed_at > first.last_failed_at
    assert (again.reason, again.error, again.trigger, again.attempts) == (
        "auth", "HubSpot session expired", "retry", 1)
    assert len(ledger.dead_letters()) == 1


def test_dead_letters_are_listed_newest_failure_first_and_removed(ledger: Ledger) -> None:
    for rec in ("rec-a", "rec-b", "rec-c"):
        ledger.add_dead_letter(rec, reason="retries_exhausted", error="boom", trigger="webhook", attempts=3)
        time.sleep(0.01)
    assert [d.recording_id for d in ledger.dead_letters()] == ["rec-c", "rec-b", "rec-a"]
    ledger.add_dead_letter("rec-a", reason="retries_exhausted", error="boom", trigger="cli", attempts=3)
    assert [d.recording_id for d in ledger.dead_letters()] == ["rec-a", "rec-c", "rec-b"]
    assert [d.recording_id for d in ledger.dead_letters(limit=1)] == ["rec-a"]

    assert ledger.remove_dead_letter("rec-c") is True
    assert ledger.remove_dead_letter("rec-c") is False
    assert ledger.remove_dead_letter("rec-never") is False
    assert ledger.dead_letter("rec-c") is None
    assert [d.recording_id for d in ledger.dead_letters()] == ["rec-a", "rec-b"]
    # Re-listed after removal: a fresh entry.
    ledger.add_dead_letter("rec-c", reason="auth", error="e", trigger="retry", attempts=1)
    assert ledger.dead_letter("rec-c").failures == 1


def test_dead_letter_error_is_one_line_and_masks_tokens(ledger: Ledger) -> None:
    message = "HTTP 401\nAuthorization: Bearer abc.DEF-123_secret\n\n  retry  later " + "x" * 3000
    ledger.add_dead_letter("rec-1", reason="auth", error=message, trigger="poll", attempts=1)
    error = ledger.dead_letter("rec-1").error
    assert "\n" not in error
    assert "abc.DEF-123_secret" not in error
    assert error.startswith("HTTP 401 Authorization: Bearer *** retry later xxx")
    assert len(error) <= 1000


def test_dead_letter_arguments_are_checked(ledger: Ledger) -> None:
    ok = {"reason": "auth", "error": "e", "trigger": "poll", "attempts": 1}
    with pytest.raises(TypeError):
        ledger.add_dead_letter("", **ok)
    with pytest.raises(TypeError):
        ledger.add_dead_letter("rec-1", **{**ok, "attempts": -1})
    with pytest.raises(TypeError):
        ledger.add_dead_letter("rec-1", **{**ok, "attempts": True})
    with pytest.raises(TypeError):
        ledger.add_dead_letter("rec-1", **{**ok, "error": None})
    with pytest.raises(ValueError):
        ledger.add_dead_letter("rec-1", **{**ok, "trigger": "t" * 33})
    assert ledger.dead_letters() == []


def test_concurrent_dead_letters_all_count(database_url: str) -> None:
    ledgers = [Ledger.open(database_url) for _ in range(4)]  # separate engines, as processes
    try:
        def fail(n: int) -> None:
            ledgers[n % 4].add_dead_letter("rec-hot", reason="retries_exhausted", error=f"failure {n}",
                                           trigger="poll", attempts=n)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(fail, range(40)))
        entry = ledgers[0].dead_letter("rec-hot")
        assert entry is not None and entry.failures == 40
        assert len(ledgers[0].dead_letters()) == 1
    finally:
        for one in ledgers:
            one.close()


# --------------------------------------------------------------------------- #
# watermarks


def test_watermark_never_moves_backwards(ledger: Ledger) -> None:
    assert ledger.watermark("poll") is None
    assert ledger.advance_watermark("poll", T0) == T0
    stored = ledger.watermark("poll")
    assert stored == T0 and stored.utcoffset() == timedelta(0)
    assert ledger.advance_watermark("poll", T0 - timedelta(microseconds=1)) == T0
    assert ledger.advance_watermark("poll", T0 - timedelta(days=3)) == T0
    assert ledger.watermark("poll") == T0
    later = T0 + timedelta(microseconds=1)
    assert ledger.advance_watermark("poll", later) == later
    # Other offsets are the same instant in UTC.
    plus2 = timezone(timedelta(hours=2))
    assert ledger.advance_watermark("poll", (later + timedelta(hours=1)).astimezone(plus2)) == later + timedelta(hours=1)
    assert ledger.watermark("poll").tzinfo is not None
    # Names are independent.
    assert ledger.watermark("other") is None
    assert ledger.advance_watermark("other", T0 - timedelta(days=1)) == T0 - timedelta(days=1)
    assert ledger.watermark("poll") == later + timedelta(hours=1)


def test_watermark_updated_at_moves_only_with_the_value(ledger: Ledger) -> None:
    from sqlalchemy import select

    from worker.ledger.schema import Watermark

    def updated_at() -> datetime:
        with ledger.engine.connect() as conn:
            return conn.execute(select(Watermark.updated_at).where(Watermark.name == "poll")).scalar_one()

    ledger.advance_watermark("poll", T0)
    first = updated_at()
    time.sleep(0.01)
    ledger.advance_watermark("poll", T0 - timedelta(seconds=1))
    assert updated_at() == first
    ledger.advance_watermark("poll", T0 + timedelta(seconds=1))
    assert updated_at() > first


def test_watermark_arguments_are_checked(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="timezone"):
        ledger.advance_watermark("poll", datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        ledger.advance_watermark("poll", "2026-01-01T00:00:00Z")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ledger.advance_watermark("p" * 65, T0)
    assert ledger.watermark("poll") is None


def test_concurrent_advance_watermark_ends_at_the_max(database_url: str) -> None:
    rng = random.Random(7)
    values = [T0 + timedelta(milliseconds=rng.randrange(0, 10**7), microseconds=rng.randrange(1000))
              for _ in range(120)]
    ledgers = [Ledger.open(database_url) for _ in range(4)]
    try:
        def advance(i: int) -> tuple[datetime, datetime]:
            return values[i], ledgers[i % 4].advance_watermark("poll", values[i])

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(advance, range(len(values))))
        for given, stored in results:
            assert stored >= given  # never below what this caller asked for
        assert ledgers[0].watermark("poll") == max(values)
        assert max(stored for _, stored in results) == max(values)
    finally:
        for one in ledgers:
            one.close()
