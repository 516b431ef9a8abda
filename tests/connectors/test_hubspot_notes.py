"""HubSpot notes through the real connector against the simulator: requests counted from the simulator's log."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import Iterator

import pytest

from connectors.base import AuthError, NoGate, TransientError
from connectors.hubspot import HubSpotConnector
from connectors.hubspot.notes import MAX_NOTE_BODY, note_body
from connectors.notes import NoteTarget, NoteWrite, render_html
from simulators.hubspot import HubSpotState
from simulators.hubspot.notes import associated_ids

WHEN = dt.datetime(2026, 11, 20, 15, 0, 0, 123000, tzinfo=dt.UTC)


def deal(state: HubSpotState, name: str = "deal_acme") -> NoteTarget:
    return NoteTarget("deals", state.named[name])


def contact(state: HubSpotState, name: str) -> NoteTarget:
    return NoteTarget("contacts", state.named[name])


def company(state: HubSpotState, name: str = "company_acme") -> NoteTarget:
    return NoteTarget("companies", state.named[name])


def note(key: str, *targets: NoteTarget, text: str = "They need SSO.", **more) -> NoteWrite:
    return NoteWrite(key=key, title=f"Siro: {key}", html=render_html(f"Siro: {key}", [("Summary", text)]),
                     timestamp=WHEN, targets=targets, **more)


def stored(state: HubSpotState, note_id: str) -> dict:
    values = state.get_record("notes", note_id)
    assert values is not None, f"note {note_id} is not in HubSpot"
    return values


def sent(state: HubSpotState) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in state.requests]


def test_three_notes_with_their_associations_are_one_request(hubspot_connector: HubSpotConnector,
                                                            hubspot_state: HubSpotState) -> None:
    s = hubspot_state
    results = hubspot_connector.write_notes([
        note("rec-1", deal(s), company(s), contact(s, "contact_jane"), contact(s, "contact_bob")),
        note("rec-2", deal(s, "deal_globex"), company(s, "company_globex")),
        note("rec-3", contact(s, "contact_ana")),
    ])
    assert sent(s) == [("POST", "/crm/v3/objects/notes/batch/create", 201)]
    assert [(r.key, r.outcome) for r in results] == [("rec-1", "created"), ("rec-2", "created"), ("rec-3", "created")]
    assert len({r.note_id for r in results}) == 3
    first = results[0]
    assert first.attached == {deal(s), company(s), contact(s, "contact_jane"), contact(s, "contact_bob")}
    assert not first.refused
    values = stored(s, first.note_id)
    assert values["hs_note_body"].startswith("<p><b>Siro: rec-1</b></p><p><b>Summary</b></p>")
    assert values["hs_timestamp"] == "2026-11-20T15:00:00.123Z"
    assert associated_ids(s, "deals", s.named["deal_acme"], "notes") == [first.note_id]
    assert associated_ids(s, "contacts", s.named["contact_bob"], "notes") == [first.note_id]
    assert associated_ids(s, "companies", s.named["company_globex"], "notes") == [results[1].note_id]
    assert associated_ids(s, "contacts", s.named["contact_ana"], "notes") == [results[2].note_id]


def test_a_changed_summary_is_one_update_of_the_same_note(hubspot_connector: HubSpotConnector,
                                                          hubspot_state: HubSpotState) -> None:
    s = hubspot_state
    [created] = hubspot_connector.write_notes([note("rec-1", deal(s))])
    s.clear_requests()
    [updated] = hubspot_connector.write_notes([note("rec-1", deal(s), text="They need SAML.",
                                                    note_id=created.note_id, attached=frozenset({deal(s)}))])
    assert sent(s) == [("POST", "/crm/v3/objects/notes/batch/update", 200)]
    assert (updated.outcome, updated.note_id, updated.attached) == ("updated", created.note_id, {deal(s)})
    assert "They need SAML." in stored(s, created.note_id)["hs_note_body"]
    assert s.record_ids("notes") == [created.note_id]


def test_a_contact_linked_later_is_one_association_request(hubspot_connector: HubSpotConnector,
                                                           hubspot_state: HubSpotState) -> None:
    s = hubspot_state
    [first] = hubspot_connector.write_notes([note("rec-1", deal(s))])
    s.clear_requests()
    later = NoteWrite(key="rec-1", title="Siro: rec-1", html=None, timestamp=WHEN,
                      targets=(deal(s), contact(s, "contact_jane")), note_id=first.note_id,
                      attached=frozenset({deal(s)}))
    [linked] = hubspot_connector.write_notes([later])
    assert sent(s) == [("POST", "/crm/v4/associations/notes/contacts/batch/associate/default", 200)]
    assert (linked.outcome, linked.note_id) == ("updated", first.note_id)
    assert linked.attached == {deal(s), contact(s, "contact_jane")}
    assert associated_ids(s, "notes", first.note_id, "contacts") == [s.named["contact_jane"]]
    assert "Siro: rec-1" in stored(s, first.note_id)["hs_note_body"]  # content untouched


def test_a_note_deleted_in_hubspot_is_created_again(hubspot_connector: HubSpotConnector,
                                                    hubspot_state: HubSpotState) -> None:
    s = hubspot_state
    [first] = hubspot_connector.write_notes([note("rec-1", deal(s), contact(s, "contact_bob"))])
    s.archive_record("notes", first.note_id)  # a person deleted it
    s.clear_requests()
    [again] = hubspot_connector.write_notes([note("rec-1", deal(s), contact(s, "contact_bob"), text="New summary.",
                                                  note_id=first.note_id, attached=frozenset({deal(s)}))])
    assert sent(s) == [("POST", "/crm/v3/objects/notes/batch/update", 207),
                       ("POST", "/crm/v3/objects/notes/batch/create", 201)]
    assert again.outcome == "created" and again.note_id != first.note_id
    assert again.attached == {deal(s), contact(s, "contact_bob")}
    assert "New summary." in stored(s, again.note_id)["hs_note_body"]
    assert associated_ids(s, "deals", s.named["deal_acme"], "notes") == [again.note_id]


def test_a_missing_record_is_refused_and_the_rest_stands(hubspot_connector: HubSpotConnector,
                                                         hubspot_state: HubSpotState) -> None:
    s = hubspot_state
    s.archive_record("contacts", s.named["contact_bob"])  # deleted since Siro linked it
    gone = contact(s, "contact_bob")
    results = hubspot_connector.write_notes([
        note("rec-1", deal(s), gone, company(s)),
        note("rec-2", deal(s, "deal_globex")),
        note("rec-3", NoteTarget("contacts", "31337")),  # its only target is missing: no orphan note
    ])
    # A refusal names the missing records of one input (the first refused): one more request per such input.
    assert sent(s) == [("POST", "/crm/v3/objects/notes/batch/create", 400),
                       ("POST", "/crm/v3/objects/notes/batch/create", 400),
                       ("POST", "/crm/v3/objects/notes/batch/create", 201)]
    one, two, three = results
    assert one.outcome == "created" and one.attached == {deal(s), company(s)}
    assert list(one.refused) == [gone] and s.named["contact_bob"] in one.refused[gone]
    assert two.outcome == "created" and two.attached == {deal(s, "deal_globex")}
    assert three.outcome == "failed" and three.note_id is None and "31337" in three.reason
    assert sorted(s.record_ids("notes"), key=int) == sorted([one.note_id, two.note_id], key=int)
    assert associated_ids(s, "notes", one.note_id, "companies") == [s.named["company_acme"]]


def test_a_refused_later_link_leaves_the_others(hubspot_connector: HubSpotConnector,
                                                hubspot_state: HubSpotState) -> None:
    s = hubspot_state
    [first] = hubspot_connector.write_notes([note("rec-1", deal(s))])
    s.archive_record("contacts", s.named["contact_ana"])
    s.clear_requests()
    later = NoteWrite(key="rec-1", title="Siro: rec-1", html=None, timestamp=WHEN, note_id=first.note_id,
                      targets=(deal(s), contact(s, "contact_jane"), contact(s, "contact_ana")),
                      attached=frozenset({deal(s)}))
    [linked] = hubspot_connector.write_notes([later])
    assert [status for _, _, status in sent(s)] == [400, 200]
    assert linked.outcome == "updated"
    assert linked.attached == {deal(s), contact(s, "contact_jane")}
    assert list(linked.refused) == [contact(s, "contact_ana")]


def test_links_for_a_deleted_note_fail_until_its_content_is_sent(hubspot_connector: HubSpotConnector,
                                                                  hubspot_state: HubSpotState) -> None:
    s = hubspot_state
    [first] = hubspot_connector.write_notes([note("rec-1", deal(s))])
    s.archive_record("notes", first.note_id)
    s.clear_requests()
    [linked] = hubspot_connector.write_notes([NoteWrite(
        key="rec-1", title="Siro: rec-1", html=None, timestamp=WHEN, note_id=first.note_id,
        targets=(deal(s), contact(s, "contact_jane"), contact(s, "contact_bob")), attached=frozenset({deal(s)}))])
    assert sent(s) == [("POST", "/crm/v4/associations/notes/contacts/batch/associate/default", 400)]
    assert linked.outcome == "failed" and linked.note_id is None and "deleted" in linked.reason
    assert associated_ids(s, "contacts", s.named["contact_jane"], "notes") == []


def test_find_note_finds_this_note_and_no_other(hubspot_connector: HubSpotConnector,
                                                hubspot_state: HubSpotState) -> None:
    s = hubspot_state
    since = dt.datetime.now(dt.UTC)
    wanted = note("rec-1", deal(s), contact(s, "contact_jane"))
    [created] = hubspot_connector.write_notes([wanted, note("rec-2", deal(s))])[:1]
    hubspot_connector.write_notes([note("rec-1 follow-up", deal(s))])  # same deal, a title starting alike
    s.clear_requests()
    assert hubspot_connector.find_note(wanted, since) == created.note_id
    assert [path for _, path, _ in sent(s)] == [f"/crm/v4/objects/deals/{s.named['deal_acme']}/associations/notes",
                                                "/crm/v3/objects/notes/batch/read"]
    other_time = NoteWrite(key="rec-1", title=wanted.title, html=wanted.html,
                           timestamp=WHEN + dt.timedelta(seconds=1), targets=wanted.targets)
    assert hubspot_connector.find_note(other_time, since) is None
    assert hubspot_connector.find_note(wanted, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) is None
    elsewhere = note("rec-1", deal(s, "deal_umbrella"))
    assert hubspot_connector.find_note(elsewhere, since) is None


def test_auth_rate_limit_and_server_errors(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState,
                                           make_hubspot_connector) -> None:
    s = hubspot_state
    with pytest.raises(AuthError) as caught:
        make_hubspot_connector(access_token="pat-na1-wrong").write_notes([note("rec-1", deal(s))])
    assert "pat-na1-wrong" not in str(caught.value)
    s.fail_next(429, {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                      "errorType": "RATE_LIMIT", "correlationId": ""},
                headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    with pytest.raises(TransientError) as limited:
        hubspot_connector.write_notes([note("rec-1", deal(s))])
    assert limited.value.retry_after == 10.0
    s.fail_next(502, path_contains="batch/associate")
    with pytest.raises(TransientError):
        hubspot_connector.write_notes([NoteWrite(key="rec-1", title="t", html=None, timestamp=WHEN,
                                                 targets=(deal(s),), note_id="10000000099")])
    s.fail_next(503, path_contains="/associations/notes")
    with pytest.raises(TransientError):
        hubspot_connector.find_note(note("rec-1", deal(s)), WHEN)
    assert s.record_ids("notes") == []


def test_every_request_passes_the_gate(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    class CountingGate(NoGate):
        count = 0

        @contextmanager
        def request(self) -> Iterator[None]:
            self.count += 1
            yield

    gate = CountingGate()
    hubspot_connector.gate = gate
    s = hubspot_state
    [first] = hubspot_connector.write_notes([note("rec-1", deal(s))])
    hubspot_connector.write_notes([note("rec-1", deal(s), contact(s, "contact_jane"), text="v2",
                                        note_id=first.note_id, attached=frozenset({deal(s)}))])
    hubspot_connector.find_note(note("rec-1", deal(s)), WHEN)
    assert gate.count == len(s.requests) == 5


def test_a_long_summary_is_cut_at_a_paragraph_to_fit() -> None:
    sections = [(f"Part {n}", "x" * 999 + "😀") for n in range(80)]  # astral characters count twice
    body = note_body("Siro: Call", render_html("Siro: Call", sections))
    assert len(body.encode("utf-16-le")) // 2 <= MAX_NOTE_BODY
    assert body.startswith("<p><b>Siro: Call</b></p>") and body.endswith("</p><p>[…]</p>")
    one_paragraph = note_body("Siro: Call", "<p>" + "a &amp; b " * 20000 + "</p>")
    assert len(one_paragraph) <= MAX_NOTE_BODY and one_paragraph.endswith("</p><p>[…]</p>")
    assert one_paragraph.count("&") == one_paragraph.count("&amp;")  # no entity cut in half
    assert note_body("Siro: <Call>", "<p>short</p>") == "<p><b>Siro: &lt;Call&gt;</b></p><p>short</p>"
