"""The notes the ledger keeps (revision 0008): claims, intents and answers, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import update

from worker.ledger import Ledger
from worker.ledger.schema import Note

SF = "salesforce-main"
OPP = ("Opportunity", "0065g000000DuAdAAK")


def lapse(ledger: Ledger) -> None:
    """A claim's lease (a task's hard time limit) runs out."""
    with ledger._write("test: lease ends") as conn:
        conn.execute(update(Note).values(claimed_until=None))


def test_one_run_holds_a_note_until_it_answers_or_its_lease_ends(ledger: Ledger) -> None:
    first = ledger.claim_note("rec-1", SF, "ContentNote", lease_s=60)

    assert first is not None and first.state is None
    assert ledger.claim_note("rec-1", SF, "ContentNote", lease_s=60) is None  # held
    assert ledger.claim_note("rec-2", SF, "ContentNote", lease_s=60) is not None  # another note is free
    ledger.settle_note("rec-1", SF, "ContentNote", "069A", "hash", [OPP], token=first.token)

    again = ledger.claim_note("rec-1", SF, "ContentNote", lease_s=60)
    assert again is not None and again.state.note_id == "069A" and again.state.attached == {OPP}
    assert again.state.intent_at is None and again.state.content_hash == "hash"


def test_an_intent_stays_until_an_answer_is_stored(ledger: Ledger) -> None:
    claim = ledger.claim_note("rec-1", SF, "ContentNote", lease_s=60)
    assert ledger.mark_note_intent("rec-1", SF, claim.token, lease_s=60)
    ledger.release_note("rec-1", SF, claim.token)  # the call failed: no answer to store

    second = ledger.claim_note("rec-1", SF, "ContentNote", lease_s=60)
    assert second.state.intent_at is not None  # the next run looks the note up first
    ledger.adopt_note("rec-1", SF, "069A")
    assert ledger.note_owner(SF, "069A") == "rec-1"
    ledger.settle_note("rec-1", SF, "ContentNote", "069A", "hash", [OPP], token=second.token)
    assert ledger.note_states([("rec-1", SF)])[("rec-1", SF)].intent_at is None


def test_a_run_whose_lease_ended_cannot_send_nor_release_the_next_runs_claim(ledger: Ledger) -> None:
    slow = ledger.claim_note("rec-1", SF, "ContentNote", lease_s=60)
    lapse(ledger)
    fresh = ledger.claim_note("rec-1", SF, "ContentNote", lease_s=60)

    assert not ledger.mark_note_intent("rec-1", SF, slow.token, lease_s=60)  # sends nothing
    ledger.release_note("rec-1", SF, slow.token)
    assert ledger.claim_note("rec-1", SF, "ContentNote", lease_s=60) is None  # still the fresh run's
    assert ledger.mark_note_intent("rec-1", SF, fresh.token, lease_s=60)
