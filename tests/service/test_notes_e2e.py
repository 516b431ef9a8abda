"""End to end, summaries as CRM notes (DESIGN §7): Siro webhook → Redis → Celery worker → CRM, both CRMs.

Real processes (a Celery worker on a private ``redis-server``, the webhook
app), the Siro, HubSpot and Salesforce simulators over HTTP, the real
hubspot-api-client and simple-salesforce. What a user checks: the notes the
CRM holds on each linked record and their content, how many note requests
the CRM received, and the ``notes`` the ledger keeps for each run.
"""

from __future__ import annotations

import signal

import pytest
import redis

from simulators.hubspot.notes import associated_ids
from simulators.salesforce import SalesforceState
from simulators.salesforce.notes import note_html, note_links
from simulators.salesforce.seed import SeededIds
from tests.fixtures.processes import wait_for
from tests.fixtures.service import CONNECTION_ID, World, hubspot_connection, post
from worker.service import dedupe

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # real Celery workers and the webhook app

SUMMARY = [{"id": "s1", "name": "Overview",
            "content": "Budget approved <12,500 EUR> & a pilot. <script>alert(1)</script>"},
           {"id": "s2", "name": "Next steps", "content": "Send the quote"}]
NOTES = {"enabled": True}


class HubSpotNotes:
    """The HubSpot portal as the test reads it."""

    connection_id = CONNECTION_ID

    def __init__(self, world: World) -> None:
        self.world, self.state = world, world.hubspot

    def records(self) -> tuple[str, str, str, str]:
        """A deal, its company and two contacts (the second is linked later)."""
        named = self.state.named
        return named["deal_acme"], named["company_acme"], named["contact_jane"], named["contact_bob"]

    def notes_on(self, record_id: str) -> list[str]:
        for kind in ("deals", "companies", "contacts"):
            if self.state.get_record(kind, record_id) is not None:
                return associated_ids(self.state, kind, record_id, "notes")
        raise KeyError(record_id)

    def body(self, note_id: str) -> str:
        return self.state.get_record("notes", note_id)["hs_note_body"]

    def note_requests(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.state.requests if "notes" in r.path]

    def hold_creates(self, seconds: float) -> None:
        self.state.hold_answers("notes/batch/create", seconds)


class SalesforceNotes:
    """The Salesforce org as the test reads it."""

    connection_id = "ic_sf"

    def __init__(self, world: World, state: SalesforceState, ids: SeededIds) -> None:
        self.world, self.state, self.ids = world, state, ids

    def records(self) -> tuple[str, str, str, str]:
        return self.ids.opportunity, self.ids.account, self.ids.contact, self.ids.contact2

    def notes_on(self, record_id: str) -> list[str]:
        notes = self.state.records.get("ContentNote", {})
        return sorted(note_id for note_id in notes if record_id in note_links(self.state, note_id))

    def body(self, note_id: str) -> str:
        return note_html(self.state, note_id) or ""

    def note_requests(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.state.requests
                if "ContentNote" in r.path or "ContentDocumentLink" in r.path or r.path.endswith("/composite")
                or "ContentDocumentLink" in str(r.query)]

    def hold_creates(self, seconds: float) -> None:
        self.state.hold_answers("/composite", seconds)


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request, world_factory, hubspot_url: str) -> HubSpotNotes | SalesforceNotes:
    if request.param == "hubspot":
        world = world_factory(connection={"notes": NOTES})
        return HubSpotNotes(world)
    options = request.getfixturevalue("salesforce_options")
    ids = request.getfixturevalue("salesforce_ids")
    state = request.getfixturevalue("salesforce_state")
    salesforce = {"integration_connection_id": "ic_sf", "connector": "salesforce", "name": "sf", **options,
                  "notes": NOTES}
    world = world_factory(connections=[hubspot_connection(hubspot_url), salesforce])
    return SalesforceNotes(world, state, ids)


def deliver(world: World, url: str, recording_id: str, runs: int, event: str = "integrations.recordingProcessed"):
    """Siro's webhook for the recording, once the dedupe window of the last one has passed; the
    note lines of the run it led to."""
    store = redis.Redis.from_url(world.processes.env["WRITEBACK_BROKER_URL"])
    stale = store.keys(f"{dedupe.PREFIX}*")  # Siro's payload carries no version: the same body
    if stale:                                  # for a changed recording, ten minutes later
        store.delete(*stale)
    answer = post(url, world.siro.webhook_payload(recording_id, event))
    assert answer.status_code == 202, answer.text
    world.wait_for_runs([recording_id], count=runs, timeout=90)
    newest = world.ledger.history(recording_id)[0]
    return newest.notes


def test_one_note_per_recording_kept_in_step_with_siro(crm: HubSpotNotes | SalesforceNotes) -> None:
    world = crm.world
    opportunity, account, contact, contact2 = crm.records()
    world.siro.add_recording("rec-note", title="Discovery call", summary=[], is_summary_done=False,
                             entity_extractions=[])
    world.siro.link("rec-note", integration_connection_id=crm.connection_id, opportunity=opportunity,
                    account=account, contacts=[contact])
    world.processes.start_worker()
    url = world.processes.start_webhook()

    # No summary yet: skipped, nothing sent.
    [note] = deliver(world, url, "rec-note", runs=1)
    assert (note.outcome, note.reason.split(":")[0]) == ("skipped", "no_summary")
    assert crm.notes_on(opportunity) == [] and crm.note_requests() == []

    # The summary arrives: one note on the opportunity, the account and the contact.
    world.siro.update_recording("rec-note", summary=SUMMARY, is_summary_done=True)
    [note] = deliver(world, url, "rec-note", runs=2)
    assert note.outcome == "created" and note.note_id
    assert crm.notes_on(opportunity) == crm.notes_on(account) == crm.notes_on(contact) == [note.note_id]
    assert "Budget approved &lt;12,500 EUR&gt; &amp; a pilot." in crm.body(note.note_id)
    assert "<script" not in crm.body(note.note_id) and "&lt;script&gt;" in crm.body(note.note_id)
    first_id, sent = note.note_id, len(crm.note_requests())

    # Another event for the same content: nothing sent, still one note.
    [note] = deliver(world, url, "rec-note", runs=3, event="integrations.recordingLinked")
    assert note.outcome == "unchanged" and len(crm.note_requests()) == sent

    # A changed summary: the same note, changed in place.
    world.siro.update_recording("rec-note", summary=[{"id": "s1", "name": "Overview", "content": "Budget cut."}])
    [note] = deliver(world, url, "rec-note", runs=4)
    assert (note.outcome, note.note_id) == ("updated", first_id)
    assert "Budget cut." in crm.body(first_id) and "12,500" not in crm.body(first_id)

    # A contact linked later gets the note; nothing else changes.
    world.siro.link("rec-note", integration_connection_id=crm.connection_id, opportunity=opportunity,
                    account=account, contacts=[contact, contact2])
    [note] = deliver(world, url, "rec-note", runs=5)
    assert (note.outcome, note.note_id) == ("updated", first_id)
    assert crm.notes_on(contact2) == crm.notes_on(opportunity) == [first_id]
    assert len(note.attached_to) == 4 and (opportunity in {record_id for _, record_id in note.attached_to})


def test_a_worker_killed_between_the_crms_answer_and_the_ledger_leaves_one_note(
        crm: HubSpotNotes | SalesforceNotes) -> None:
    world = crm.world
    opportunity, account, contact, _ = crm.records()
    world.siro.add_recording("rec-kill-note", title="Pricing call", summary=SUMMARY, entity_extractions=[])
    world.siro.link("rec-kill-note", integration_connection_id=crm.connection_id, opportunity=opportunity,
                    account=account, contacts=[contact])
    # The CRM creates the note, then takes 30 s to answer: the worker dies in between.
    crm.hold_creates(30)
    first = world.processes.start_worker("w1")
    url = world.processes.start_webhook()
    assert post(url, world.siro.webhook_payload("rec-kill-note")).status_code == 202
    wait_for(lambda: crm.notes_on(opportunity), 60, "the note never reached the CRM")
    world.processes.kill(first, signal.SIGKILL)
    assert world.finished_runs("rec-kill-note") == []

    world.processes.start_worker("w2")
    world.wait_for_runs(["rec-kill-note"], timeout=90)
    [note] = world.ledger.history("rec-kill-note")[0].notes
    assert crm.notes_on(opportunity) == crm.notes_on(contact) == [note.note_id]
    assert note.outcome == "updated"  # found, not created again
