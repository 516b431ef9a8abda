"""Proposals (revision 0007) and the reads behind a revert, on SQLite and PostgreSQL.

``propose`` keeps one pending proposal per record field (the database enforces
it too), ``decide_proposals`` acts only on pending ones, ``rejected_values``
names what is not proposed again; ``revert_targets`` and ``reverted_versions``
read the runs a revert leaves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from worker.ledger import Ledger, ProposalRow
from worker.ledger.engine import alembic_config, head_revision
from worker.ledger.proposals import Proposed, rejection_key
from worker.ledger.schema import Proposal, utcnow
from worker.report import FieldReport, Outcome

SF, OPP = "sf", "0065g00000OppAAAA1"
DAY1, DAY2, DAY3 = (datetime(2026, 11, day, 9, tzinfo=UTC) for day in (1, 2, 3))


def proposal(recording: str = "rec-1", value: Any = 18750, *, field: str = "Amount", recorded_at: datetime = DAY1,
             version: datetime = DAY1) -> ProposalRow:
    return ProposalRow(SF, "Opportunity", OPP, field, value, 12500, recording, "Deal size", version, recorded_at)


def test_one_pending_proposal_per_field_kept_superseded_or_left_waiting(ledger: Ledger) -> None:
    done, first = ledger.propose(proposal())
    assert done is Proposed.NEW
    assert ledger.propose(proposal(value=19000)) == (Proposed.KEPT, first)  # the same recording again
    assert ledger.propose(proposal("rec-0", 1, recorded_at=DAY1.replace(hour=8))) == (Proposed.LATER_WAITS, first)

    done, second = ledger.propose(proposal("rec-2", 20000, recorded_at=DAY2))

    assert done is Proposed.NEW and second != first
    [pending] = ledger.proposals()
    assert (pending.id, pending.recording_id, pending.value, pending.previous) == (second, "rec-2", 20000, 12500)
    assert pending.created_at is not None and pending.created_at.tzinfo is not None
    [old] = ledger.proposals(ids=[first], status=None)
    assert (old.status, old.value, old.reason) == ("superseded", 19000, "superseded by recording rec-2")
    assert ledger.propose(proposal("rec-2", 20000, field="StageName"))[0] is Proposed.NEW  # another field


def test_the_database_refuses_a_second_pending_proposal_for_a_field(ledger: Ledger) -> None:
    ledger.propose(proposal())
    row = {"connection": SF, "object": "Opportunity", "record_id": OPP, "field": "Amount", "value": 1,
           "previous": None, "recording_id": "rec-x", "status": "pending", "created_at": utcnow()}

    with pytest.raises(IntegrityError), ledger.engine.begin() as conn:
        conn.execute(insert(Proposal).values(**row))
    with ledger.engine.begin() as conn:  # a decided one is only history
        conn.execute(insert(Proposal).values(**{**row, "status": "rejected"}))


def test_decisions_act_on_pending_proposals_only_and_rejections_are_remembered(ledger: Ledger) -> None:
    _, amount = ledger.propose(proposal())
    _, stage = ledger.propose(proposal(value="Closed Won", field="StageName"))

    assert ledger.decide_proposals([amount, 999], "rejected", "no") == [amount]
    assert ledger.decide_proposals([amount, stage], "approved") == [stage]  # the rejected one stays rejected
    with pytest.raises(ValueError, match="approved or rejected"):
        ledger.decide_proposals([stage], "pending")

    assert ledger.proposals() == []
    assert {(row.id, row.status) for row in ledger.proposals(status=None)} == {(amount, "rejected"),
                                                                               (stage, "approved")}
    assert ledger.rejected_values(SF, "Opportunity", [OPP]) == {rejection_key(OPP, "AMOUNT", "rec-1", DAY1, 18750)}
    assert ledger.rejected_values(SF, "Account", [OPP]) == set()


def test_revision_0007_goes_down_and_up(ledger: Ledger) -> None:
    from alembic import command
    from sqlalchemy import inspect

    ledger.propose(proposal())
    with ledger._write("test migration") as conn:
        command.downgrade(alembic_config(conn), "0006")
    assert "proposals" not in inspect(ledger.engine).get_table_names()
    ledger.migrate()
    assert ledger.current_revision() == head_revision() and ledger.proposals() == []


# --------------------------------------------------------------------------- #
# what a revert reads


def line(field: str, value: Any, previous: Any, outcome: str = "written", *, record_id: str = OPP) -> FieldReport:
    return FieldReport(SF, "Opportunity", record_id, field, value, previous, Outcome(outcome), None, field)


def run(ledger: Ledger, recording: str, trigger: str, lines: list[FieldReport], *, version: datetime | None = DAY1,
        status: str = "ok", dry_run: bool = False) -> None:
    run_id = ledger.start_run(recording, trigger=trigger, recording_updated_at=version, dry_run=dry_run)
    ledger.record(run_id, recording, lines)
    ledger.finish_run(run_id, status)


def test_revert_targets_are_the_first_previous_and_the_last_value_put(ledger: Ledger) -> None:
    run(ledger, "rec-1", "webhook", [line("Amount", 18750, 12500), line("NextStep", "Call", None, "unchanged")])
    run(ledger, "rec-1", "poll", [line("amount", 19000, 18750)], version=DAY2)  # spelt otherwise, a later version
    run(ledger, "rec-2", "poll", [line("Description", "x", None)])

    [target] = ledger.revert_targets("rec-1")

    assert (target.field, target.previous, target.value, target.reverted, target.later_recording) == (
        "amount", 12500, 19000, False, None)
    run(ledger, "rec-2", "poll", [line("Amount", 5, 19000)])
    run(ledger, "rec-1", "revert", [line("Amount", 12500, 19000, "reverted")])
    [target] = ledger.revert_targets("rec-1")
    assert (target.value, target.reverted, target.later_recording) == (12500, True, None)  # the revert was later
    assert ledger.revert_targets("rec-9") == []


def test_a_later_recordings_write_is_named(ledger: Ledger) -> None:
    run(ledger, "rec-1", "webhook", [line("Amount", 18750, 12500)])
    run(ledger, "rec-2", "poll", [line("Amount", 18750, 1)])

    assert [t.later_recording for t in ledger.revert_targets("rec-1")] == ["rec-2"]


def test_a_revert_stands_until_the_pipeline_writes_the_recording_again(ledger: Ledger) -> None:
    run(ledger, "rec-1", "webhook", [line("Amount", 18750, 12500)])
    run(ledger, "rec-2", "webhook", [line("Amount", 1, 2)])
    assert ledger.reverted_versions(["rec-1", "rec-2"]) == {}

    run(ledger, "rec-1", "revert", [line("Amount", 12500, 18750, "reverted")], version=DAY2)
    run(ledger, "rec-1", "poll", [], status="skipped", version=DAY2)  # skipped passes do not end it
    run(ledger, "rec-1", "review", [line("Amount", 7, 12500)], version=DAY2)  # nor does an approval
    run(ledger, "rec-1", "revert", [], version=DAY3, dry_run=True)  # a dry run is no revert
    assert ledger.reverted_versions(["rec-1", "rec-2"]) == {"rec-1": DAY2}

    run(ledger, "rec-1", "cli", [line("Amount", 18750, 12500)], version=DAY2)  # sync --force
    assert ledger.reverted_versions(["rec-1"]) == {}


def test_two_processes_proposing_one_field_at_once_leave_one_pending(postgres_url: str) -> None:
    """PostgreSQL runs proposals concurrently (SQLite serialises writers): another process's proposal
    lands between this one's read and its insert. The database refuses the second pending row, and
    this one proposes again against what the other stored: nothing is lost, nothing doubled."""
    from sqlalchemy import event

    ledger, other = Ledger.open(postgres_url), Ledger.open(postgres_url)
    raced = []

    def meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO proposals") and not raced:
            raced.append(other.propose(proposal("rec-other", 1, recorded_at=DAY1.replace(hour=8))))

    event.listen(ledger.engine, "before_cursor_execute", meanwhile)
    try:
        done, held = ledger.propose(proposal("rec-1", 18750, recorded_at=DAY2))
    finally:
        event.remove(ledger.engine, "before_cursor_execute", meanwhile)
        other.close()

    assert raced and raced[0][0] is Proposed.NEW
    assert done is Proposed.NEW  # the later conversation's value supersedes the other process's
    [pending] = ledger.proposals()
    assert (pending.id, pending.recording_id, pending.value) == (held, "rec-1", 18750)
    assert [row.status for row in ledger.proposals(status=None)] == ["superseded", "pending"]
    ledger.close()
