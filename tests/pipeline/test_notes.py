"""The notes stage on the in-memory CRM: one note per recording and connection, sent once (DESIGN §7).

What a user checks: the CRM holds one note with the summary on each linked
record; a second pass sends nothing; a changed summary changes the note in
place; a contact linked later gets the note; no summary is ``no_summary``;
an answer lost between the CRM and the ledger never makes a second note.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from connectors.base import Connector, PermanentError, TransientError
from connectors.notes import NotesUnsupported
from tests.fixtures.memory_crm import (
    ACCOUNT,
    CONTACT,
    CONTACT2,
    OPPORTUNITY,
    MemoryCRM,
    extraction,
    recording,
)
from worker.ledger.schema import Note
from worker.report import Status

SUMMARY = [("Overview", "Budget approved: 12,500 <EUR> & a pilot in Q1."), ("Next steps", "Send the quote\nBook a demo")]
NOTES = {"enabled": True}


def amount(value=21000):
    return extraction("Deal size", value, ("Opportunity", "Amount"))


def linked(summary=SUMMARY, contacts=(CONTACT,), **kwargs):
    return recording("rec-1", [amount()], opportunity=OPPORTUNITY, account=ACCOUNT, contacts=contacts,
                     summary=summary, title="Discovery call", **kwargs)


@pytest.fixture
def sf(memory_crm, make_memory_pipeline):
    return make_memory_pipeline(memory_crm, notes=NOTES)


def lapse_claims(ledger) -> None:
    """Time passes: every run's hold on a note (a task's hard time limit) has ended."""
    with ledger._write("test: claims lapse") as conn:
        conn.execute(update(Note).values(claimed_until=None))


def note_requests(crm: MemoryCRM) -> list[str]:
    return [request.kind for request in crm.requests if request.kind in ("notes", "find_note")]


def test_one_note_on_every_linked_record_with_the_summary_escaped(memory_crm: MemoryCRM, sf):
    [report] = sf.process([linked()])

    assert report.status is Status.OK
    [note] = report.notes
    [stored] = memory_crm.notes.values()
    assert note.to_json() == {
        "connection": "sf", "object": "Note", "noteId": stored.id, "outcome": "created", "reason": None,
        "attachedTo": [{"object": "Account", "recordId": ACCOUNT}, {"object": "Contact", "recordId": CONTACT},
                       {"object": "Opportunity", "recordId": OPPORTUNITY}],
    }
    assert stored.title == "Siro: Discovery call"
    assert stored.html == ("<p><b>Overview</b></p><p>Budget approved: 12,500 &lt;EUR&gt; &amp; a pilot in Q1.</p>"
                           "<p><b>Next steps</b></p><p>Send the quote</p><p>Book a demo</p>")
    assert report.to_json()["notes"] == [note.to_json()]


def test_the_same_summary_again_sends_nothing(memory_crm: MemoryCRM, sf):
    sf.process([linked()])
    memory_crm.clear_requests()

    [report] = sf.process([linked()])

    assert [note.outcome for note in report.notes] == ["unchanged"]
    assert note_requests(memory_crm) == []
    assert len(memory_crm.notes) == 1


def test_a_changed_summary_updates_the_note_in_place(memory_crm: MemoryCRM, sf):
    [first] = sf.process([linked()])
    [second] = sf.process([linked(summary=[("Overview", "Budget cut to 9,000.")])])

    assert second.notes[0].outcome == "updated" and second.notes[0].note_id == first.notes[0].note_id
    [stored] = memory_crm.notes.values()
    assert stored.html == "<p><b>Overview</b></p><p>Budget cut to 9,000.</p>"


def test_a_contact_linked_later_gets_the_note(memory_crm: MemoryCRM, sf):
    sf.process([linked()])
    [report] = sf.process([linked(contacts=(CONTACT, CONTACT2))])

    assert report.notes[0].outcome == "updated"
    [stored] = memory_crm.notes.values()
    assert {target.record_id for target in stored.targets} == {OPPORTUNITY, ACCOUNT, CONTACT, CONTACT2}


def test_a_note_deleted_in_the_crm_is_created_again_when_it_changes(memory_crm: MemoryCRM, sf):
    [first] = sf.process([linked()])
    memory_crm.delete_note(first.notes[0].note_id)

    [report] = sf.process([linked(summary=[("Overview", "New facts")])])

    assert report.notes[0].outcome == "created" and report.notes[0].note_id != first.notes[0].note_id
    assert len(memory_crm.notes) == 1


@pytest.mark.parametrize("summary, done", [([], True), (SUMMARY, False), ([("Overview", "  ")], True)])
def test_no_summary_yet_is_skipped_and_sends_nothing(memory_crm: MemoryCRM, sf, summary, done):
    [report] = sf.process([linked(summary=summary, is_summary_done=done)])

    assert [(note.outcome, note.reason.split(":")[0]) for note in report.notes] == [("skipped", "no_summary")]
    assert report.status is Status.OK and memory_crm.notes == {} and note_requests(memory_crm) == []


def test_sections_and_slots_are_chosen_by_the_config(memory_crm: MemoryCRM, make_memory_pipeline):
    sf = make_memory_pipeline(memory_crm, notes={"enabled": True, "attach_to": ["opportunity"],
                                                  "sections": ["next steps"]})
    sf.process([linked()])

    [stored] = memory_crm.notes.values()
    assert stored.html == "<p><b>Next steps</b></p><p>Send the quote</p><p>Book a demo</p>"
    assert {target.object for target in stored.targets} == {"Opportunity"}


def test_notes_off_by_default(memory_crm: MemoryCRM, make_memory_pipeline):
    [report] = make_memory_pipeline(memory_crm).process([linked()])

    assert report.notes == [] and memory_crm.notes == {} and "notes" not in [r.kind for r in memory_crm.requests]


def test_dry_run_and_shadow_plan_the_note_and_send_nothing(memory_crm: MemoryCRM, sf, make_memory_pipeline):
    [dry] = sf.process([linked()], dry_run=True)
    shadow = make_memory_pipeline(memory_crm, notes=NOTES, mode="shadow", name="sf-shadow")
    [shadowed] = shadow.process([linked()])

    assert [note.outcome for note in dry.notes + shadowed.notes] == ["planned", "planned"]
    assert memory_crm.notes == {} and note_requests(memory_crm) == []


def test_a_recording_without_mapped_fields_still_gets_its_note(memory_crm: MemoryCRM, sf):
    bare = recording("rec-2", [], opportunity=OPPORTUNITY, summary=SUMMARY)

    [report] = sf.process([bare])

    assert report.status is Status.OK and report.notes[0].outcome == "created"


def test_a_failed_note_makes_the_recording_partial_and_is_retried_later(memory_crm: MemoryCRM, sf):
    memory_crm.fail_next("notes", TransientError("HTTP 503"), after=0)
    memory_crm.fail_next("notes", TransientError("HTTP 503"))
    memory_crm.fail_next("notes", TransientError("HTTP 503"))

    [report] = sf.process([linked()])

    assert report.status is Status.PARTIAL and report.transient and report.has_failures
    assert report.notes[0].outcome == "failed" and "HTTP 503" in report.notes[0].reason
    assert [f.outcome for f in report.fields] == ["written"]  # the fields stand
    [again] = sf.process([linked()])
    assert again.notes[0].outcome == "created" and len(memory_crm.notes) == 1


def test_an_answer_lost_after_the_crm_created_the_note_never_makes_a_second(memory_crm: MemoryCRM, sf):
    # The CRM creates the note, then the connection drops before its answer: the retry looks it up.
    memory_crm.fail_next("notes", TransientError("connection reset"), after_applying=1)

    [report] = sf.process([linked()])

    assert len(memory_crm.notes) == 1
    [stored] = memory_crm.notes.values()
    assert report.notes[0].note_id == stored.id and report.notes[0].outcome == "updated"
    assert note_requests(memory_crm) == ["notes", "find_note", "notes"]


def test_a_worker_killed_between_the_crm_and_the_ledger_leaves_one_note(memory_crm: MemoryCRM, sf):
    # The CRM creates the note, then the process dies (here: an interrupt no code of ours catches)
    # before the ledger hears of it; the intent it stored first makes the next run look it up.
    memory_crm.fail_next("notes", KeyboardInterrupt(), after_applying=1)
    with pytest.raises(KeyboardInterrupt):
        sf.process([linked()])
    memory_crm.clear_requests()
    # Until the dead run's claim lapses (a task's hard time limit), another run leaves the note alone.
    [busy] = sf.process([linked()])
    assert (busy.notes[0].outcome, busy.transient) == ("failed", True) and "busy" in busy.notes[0].reason
    assert note_requests(memory_crm) == []
    lapse_claims(sf.ledger)

    [report] = sf.process([linked()])

    assert len(memory_crm.notes) == 1
    assert report.notes[0].note_id == next(iter(memory_crm.notes))
    assert note_requests(memory_crm) == ["find_note", "notes"]
    memory_crm.clear_requests()
    assert sf.process([linked()])[0].notes[0].outcome == "unchanged" and note_requests(memory_crm) == []


def test_two_runs_at_once_never_write_one_note_twice(memory_crm: MemoryCRM, sf):
    # A `writeback sync` starts while a worker is sending the same recording's note.
    assert sf.ledger.claim_note("rec-1", "sf", "Note", lease_s=60) is not None

    [report] = sf.process([linked()])

    assert report.notes[0].outcome == "failed" and report.transient and memory_crm.notes == {}


def test_a_note_deleted_in_the_crm_and_created_again_is_never_made_twice(memory_crm: MemoryCRM, sf):
    [first] = sf.process([linked()])
    memory_crm.delete_note(first.notes[0].note_id)
    # The changed summary re-creates the note; the connection drops before the answer comes back.
    memory_crm.fail_next("notes", TransientError("connection reset"), after_applying=1)

    [report] = sf.process([linked(summary=[("Overview", "New facts")])])

    assert len(memory_crm.notes) == 1
    assert report.notes[0].note_id == next(iter(memory_crm.notes)) != first.notes[0].note_id


def test_a_lookup_never_takes_another_recordings_note_of_the_same_title(memory_crm: MemoryCRM, sf):
    other = recording("rec-0", [], opportunity=OPPORTUNITY, summary=SUMMARY, title="Discovery call")
    [theirs] = sf.process([other])
    memory_crm.fail_next("notes", TransientError("connection reset"), after_applying=1)

    [mine] = sf.process([linked()])

    assert len(memory_crm.notes) == 2
    assert mine.notes[0].note_id != theirs.notes[0].note_id


def test_history_keeps_each_runs_note(memory_crm: MemoryCRM, sf):
    sf.process([linked()])
    sf.process([linked()])

    newest, oldest = sf.ledger.history("rec-1")
    assert [note.outcome for note in oldest.notes] == ["created"]
    assert newest.to_json()["notes"][0]["outcome"] == "unchanged"


def test_a_deleted_linked_record_is_refused_once_and_not_asked_again_until_the_content_changes(
        memory_crm: MemoryCRM, sf):
    memory_crm.delete_record("Contact", CONTACT)

    [first] = sf.process([linked()])
    memory_crm.clear_requests()
    [second] = sf.process([linked()])

    assert first.notes[0].outcome == "created" and CONTACT in first.notes[0].reason
    assert ("Contact", CONTACT) not in first.notes[0].attached_to and len(first.notes[0].attached_to) == 2
    assert second.notes[0].outcome == "unchanged" and note_requests(memory_crm) == []


class NoNotesCRM(MemoryCRM):
    """A plugin written before notes: it leaves the capability at its default."""

    notes_supported = False
    write_notes = Connector.write_notes
    find_note = Connector.find_note


def test_a_connector_without_notes_keeps_working_and_says_unsupported(make_memory_pipeline):
    crm = NoNotesCRM()
    [report] = make_memory_pipeline(crm, notes=NOTES).process([linked()])

    assert [(note.outcome, note.reason) for note in report.notes] == [
        ("unsupported", "connector 'in-memory' does not write notes")]
    assert report.status is Status.OK and [f.outcome for f in report.fields] == ["written"]
    with pytest.raises(NotesUnsupported):
        crm.write_notes([])


class NoLookupCRM(MemoryCRM):
    """A plugin that writes notes but forgot the crash guard."""

    find_note = Connector.find_note


def test_a_connector_that_writes_notes_but_cannot_look_one_up_is_refused(make_memory_pipeline):
    crm = NoLookupCRM()
    [report] = make_memory_pipeline(crm, notes=NOTES).process([linked()])

    assert report.notes[0].outcome == "failed" and "find_note" in report.notes[0].reason
    assert crm.notes == {} and report.status is Status.PARTIAL


# --------------------------------------------------------------------------- #
# exactly once, the hard cases


def test_a_note_found_after_a_crash_is_kept_though_the_next_call_is_refused(memory_crm: MemoryCRM, sf):
    memory_crm.fail_next("notes", KeyboardInterrupt(), after_applying=1)  # created, then the worker dies
    with pytest.raises(KeyboardInterrupt):
        sf.process([linked()])
    lapse_claims(sf.ledger)
    memory_crm.fail_next("notes", PermanentError("400 bad request"))  # found, then its update refused

    [refused] = sf.process([linked()])
    [healed] = sf.process([linked()])

    assert refused.notes[0].outcome == "failed" and len(memory_crm.notes) == 1
    assert healed.notes[0].note_id == next(iter(memory_crm.notes)) and len(memory_crm.notes) == 1


def test_an_answer_lost_then_a_refusal_never_makes_a_second_note(memory_crm: MemoryCRM, sf):
    memory_crm.fail_next("notes", TransientError("connection reset"), after_applying=1)
    memory_crm.fail_next("notes", PermanentError("400 bad request"))

    sf.process([linked()])
    sf.process([linked()])

    assert len(memory_crm.notes) == 1


def test_two_recordings_of_one_title_whose_answers_were_lost_keep_their_own_notes(memory_crm: MemoryCRM, sf):
    memory_crm.fail_next("notes", TransientError("connection reset"), after_applying=2)

    a, b = sf.process([recording("rec-a", [], opportunity=OPPORTUNITY, summary=[("Overview", "A's call")],
                                 title="Discovery call"),
                       recording("rec-b", [], opportunity=OPPORTUNITY, summary=[("Overview", "B's call")],
                                 title="Discovery call")])

    assert len(memory_crm.notes) == 2 and a.notes[0].note_id != b.notes[0].note_id
    assert "A&#x27;s call" in memory_crm.notes[a.notes[0].note_id].html
    assert "B&#x27;s call" in memory_crm.notes[b.notes[0].note_id].html


def test_a_run_that_read_the_ledger_before_another_wrote_the_note_decides_again_under_its_claim(
        memory_crm: MemoryCRM, sf, make_memory_pipeline):
    other = make_memory_pipeline(memory_crm, notes=NOTES)  # the same ledger: another process
    claim = sf.ledger.claim_note

    def claim_after_the_other_run(*args, **kwargs):
        if not memory_crm.notes:
            other.process([linked()])  # writes and settles the note between our read and our claim
        return claim(*args, **kwargs)

    sf.ledger.claim_note = claim_after_the_other_run
    [mine] = sf.process([linked()])

    assert len(memory_crm.notes) == 1 and mine.notes[0].outcome == "unchanged"


def test_a_note_deleted_while_its_content_stays_is_created_again_on_the_next_pass(memory_crm: MemoryCRM, sf):
    [first] = sf.process([linked()])
    memory_crm.delete_note(first.notes[0].note_id)

    [links_only] = sf.process([linked(contacts=(CONTACT, CONTACT2))])  # content unchanged: not sent
    [again] = sf.process([linked(contacts=(CONTACT, CONTACT2))])

    assert links_only.notes[0].outcome == "failed"
    assert again.notes[0].outcome == "created" and len(memory_crm.notes) == 1


def test_a_connector_that_ignores_exclude_cannot_make_the_look_up_loop(memory_crm: MemoryCRM, sf):
    sf.process([recording("rec-0", [], opportunity=OPPORTUNITY, summary=SUMMARY, title="Discovery call")])
    find = memory_crm.find_note
    memory_crm.find_note = lambda note, since, exclude=frozenset(): find(note, since)
    memory_crm.fail_next("notes", TransientError("connection reset"), after_applying=1)

    [report] = sf.process([linked()])

    assert len(memory_crm.notes) == 2 and report.notes[0].outcome in ("created", "updated")
    assert [r.kind for r in memory_crm.requests].count("find_note") <= 15
