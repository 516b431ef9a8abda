"""SalesforceConnector notes (ContentNote + ContentDocumentLink in Composite requests) against the served simulator."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.base import AuthError, TransientError
from connectors.notes import NoteTarget, NoteWrite, render_html
from simulators.salesforce.notes import (
    delete_note,
    note_html,
    note_links,
    set_note_created,
)

NOW = dt.datetime(2024, 4, 20, 15, 0, tzinfo=dt.UTC)
HTML = render_html("Discovery", [("Next steps", "Send Tom's proposal\nBook R&D demo"), ("Pain", "<slow> quotes")])
STORED = ("<p><b>Next steps</b></p><p>Send Tom&#39;s proposal</p><p>Book R&amp;D demo</p>"
          "<p><b>Pain</b></p><p>&lt;slow&gt; quotes</p>")


def target(object_name: str, record_id: str) -> NoteTarget:
    return NoteTarget(object_name, record_id)


def note(*targets: NoteTarget, key="rec-1", title="Siro: Discovery", html=HTML, note_id=None, attached=()):
    return NoteWrite(key=key, title=title, html=html, timestamp=NOW, targets=tuple(targets), note_id=note_id,
                     attached=frozenset(attached))


@pytest.fixture
def crm(salesforce_connector, salesforce_state, salesforce_ids):
    """(connector, state, ids, targets opportunity/account/contact); the log counts only what the test sends."""
    ids = salesforce_ids
    three = (target("Opportunity", ids.opportunity), target("Account", ids.account), target("Contact", ids.contact))
    return salesforce_connector, salesforce_state, ids, three


def sent(state) -> list[tuple[str, str]]:
    """The CRM requests sent since the log was last cleared."""
    return [(r.method, r.path.rsplit("/", 1)[-1]) for r in state.requests]


def create(connector, state, *targets, **kwargs):
    result = connector.write_notes([note(*targets, **kwargs)])[0]
    state.clear_log()
    return result


def test_capability():
    from connectors.salesforce import SalesforceConnector

    assert SalesforceConnector.notes_supported is True and SalesforceConnector.note_object == "ContentNote"
    assert dict(SalesforceConnector.note_targets) == {"opportunity": "Opportunity", "account": "Account",
                                                      "contacts": "Contact", "lead": "Lead"}


def test_create_with_three_targets_is_one_request(crm):
    connector, state, ids, three = crm
    [result] = connector.write_notes([note(*three)])
    assert sent(state) == [("POST", "composite")]
    assert result.outcome == "created" and result.key == "rec-1" and result.reason is None
    assert result.note_id.startswith("069") and result.attached == frozenset(three) and result.refused == {}
    assert note_links(state, result.note_id) == [ids.opportunity, ids.account, ids.contact]
    assert note_html(state, result.note_id) == STORED  # escaped text, no &#x27; (the org refuses it)
    assert state.records["ContentNote"][result.note_id]["Title"] == "Siro: Discovery"


def test_update_in_place_is_one_request(crm):
    connector, state, _, three = crm
    first = create(connector, state, *three)
    changed = render_html("Discovery", [("Next steps", "Signed")])
    [result] = connector.write_notes([note(*three, html=changed, title="Siro: Renamed", note_id=first.note_id,
                                           attached=three)])
    assert sent(state) == [("POST", "composite")]
    assert (result.outcome, result.note_id, result.attached) == ("updated", first.note_id, frozenset(three))
    assert note_html(state, first.note_id) == changed
    assert state.records["ContentNote"][first.note_id]["Title"] == "Siro: Renamed"
    assert len(state.records["ContentNote"]) == 1 and len(note_links(state, first.note_id)) == 3


def test_new_target_only_adds_its_link(crm):
    connector, state, ids, three = crm
    first = create(connector, state, *three[:2])
    [result] = connector.write_notes([note(*three, html=None, note_id=first.note_id, attached=three[:2])])
    assert sent(state) == [("POST", "composite")]
    assert (result.outcome, result.note_id, result.attached) == ("updated", first.note_id, frozenset(three))
    assert note_links(state, first.note_id) == [ids.opportunity, ids.account, ids.contact]
    assert note_html(state, first.note_id) == STORED  # untouched
    [body] = [r.body for r in state.requests]
    assert [s["method"] for s in body["compositeRequest"]] == ["GET", "POST"]  # no PATCH, one link
    assert body["allOrNone"] is False


def test_nothing_to_do_sends_nothing(crm):
    connector, state, _, three = crm
    first = create(connector, state, *three)
    [result] = connector.write_notes([note(*three, html=None, note_id=first.note_id, attached=three)])
    assert sent(state) == [] and result.outcome == "updated" and result.attached == frozenset(three)


def test_note_deleted_in_salesforce_is_created_again(crm):
    connector, state, ids, three = crm
    first = create(connector, state, *three)
    delete_note(state, first.note_id)
    changed = render_html("Discovery", [("Next steps", "Signed")])
    [result] = connector.write_notes([note(*three, html=changed, note_id=first.note_id, attached=three)])
    assert sent(state) == [("POST", "composite"), ("POST", "composite")]
    assert result.outcome == "created" and result.note_id != first.note_id and result.note_id.startswith("069")
    assert result.attached == frozenset(three) and note_html(state, result.note_id) == changed
    assert note_links(state, result.note_id) == [ids.opportunity, ids.account, ids.contact]
    assert list(state.records["ContentNote"]) == [result.note_id]


def test_note_deleted_when_only_links_are_new(crm):
    connector, state, _, three = crm
    first = create(connector, state, *three[:2])
    delete_note(state, first.note_id)
    [result] = connector.write_notes([note(*three, html=None, note_id=first.note_id, attached=three[:2])])
    assert result.outcome == "failed" and result.note_id is None and "NOTE_DELETED" in result.reason
    assert state.records["ContentDocumentLink"] == {}  # the links that depended on it were not run


def test_deleted_record_is_refused_and_others_attach(crm):
    connector, state, ids, three = crm
    gone = target("Opportunity", ids.deleted_opportunity)
    [result] = connector.write_notes([note(gone, *three[1:])])
    assert sent(state) == [("POST", "composite")]
    assert result.outcome == "created" and result.attached == frozenset(three[1:])
    assert list(result.refused) == [gone]
    assert result.refused[gone].startswith("INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY")
    assert note_links(state, result.note_id) == [ids.account, ids.contact]


def test_malformed_target_id_is_refused_without_a_request_for_it(crm):
    connector, state, _, three = crm
    bad = target("Contact", "not-an-id")
    [result] = connector.write_notes([note(three[0], bad)])
    assert result.outcome == "created" and result.attached == {three[0]} and "MALFORMED_ID" in result.refused[bad]


LINK = "sobjects/ContentDocumentLink"


def error(code):
    return [{"message": f"{code} from the org", "errorCode": code}]


@pytest.mark.parametrize("code", ["INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "ENTITY_IS_DELETED",
                                  "MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY", "INVALID_ID_FIELD"])
def test_permanent_link_refusal_is_refused(crm, code):
    connector, state, ids, three = crm
    state.fail_next(400, error(code), path_contains=LINK, after=1)  # the account's link
    [result] = connector.write_notes([note(*three)])
    assert result.outcome == "created" and result.attached == {three[0], three[2]}
    assert list(result.refused) == [three[1]] and result.refused[three[1]].startswith(code)


@pytest.mark.parametrize("status, code", [(400, "UNABLE_TO_LOCK_ROW"), (400, "PROCESSING_HALTED"),
                                          (500, "UNKNOWN_EXCEPTION"), (503, "SERVER_UNAVAILABLE")])
def test_passing_link_failure_is_neither_attached_nor_refused(crm, status, code):
    connector, state, ids, three = crm
    state.fail_next(status, error(code), path_contains=LINK, after=1)
    [result] = connector.write_notes([note(*three)])
    assert result.outcome == "created" and result.attached == {three[0], three[2]} and result.refused == {}
    assert note_links(state, result.note_id) == [ids.opportunity, ids.contact]
    # the next pass sends the missing link only, and it takes
    state.clear_log()
    [again] = connector.write_notes([note(*three, html=None, note_id=result.note_id, attached=result.attached)])
    assert sent(state) == [("POST", "composite")]
    assert again.outcome == "updated" and again.attached == frozenset(three) and again.refused == {}


def test_update_whose_note_read_fails_keeps_its_new_links_for_later(crm):
    connector, state, _, three = crm
    first = create(connector, state, three[0])
    changed = render_html("Discovery", [("Next steps", "Signed")])
    state.fail_next(503, path_contains="/sobjects/ContentNote/", after=1)  # the PATCH runs, the GET fails
    [result] = connector.write_notes([note(*three, html=changed, note_id=first.note_id, attached=three[:1])])
    # the links referencing the GET were not run (PROCESSING_HALTED): passing, not refused
    assert result.outcome == "updated" and result.attached == {three[0]} and result.refused == {}
    assert note_html(state, first.note_id) == changed


def test_link_chunk_without_an_answer_is_left_for_later(crm):
    connector, state, ids, _ = crm
    many = contacts(state, ids, 30)
    state.fail_next(503, path_contains="/composite", after=1)  # the second chunk: 6 links
    [result] = connector.write_notes([note(*many)])
    assert sent(state) == [("POST", "composite")] * 2
    assert result.outcome == "created" and result.attached == frozenset(many[:24]) and result.refused == {}
    assert len(note_links(state, result.note_id)) == 24


def test_existing_link_counts_as_attached(crm):
    connector, state, ids, three = crm
    first = create(connector, state, three[0])
    # the ledger lost that the opportunity is attached: Salesforce answers DUPLICATE_VALUE for it
    [result] = connector.write_notes([note(three[0], three[1], html=None, note_id=first.note_id)])
    assert sent(state) == [("POST", "composite")]
    assert result.outcome == "updated" and result.attached == frozenset(three[:2]) and result.refused == {}
    assert note_links(state, first.note_id) == [ids.opportunity, ids.account]


def test_more_than_24_links_are_chunked(crm):
    connector, state, ids, _ = crm
    many = contacts(state, ids, 30)
    [result] = connector.write_notes([note(*many)])
    assert sent(state) == [("POST", "composite")] * 2  # note + 24 links, then 6 links
    assert [len(r.body["compositeRequest"]) for r in state.requests] == [25, 6]
    assert result.outcome == "created" and result.attached == frozenset(many)
    assert len(note_links(state, result.note_id)) == 30


def contacts(state, ids, count):
    """``count`` new contacts as note targets (the log is cleared after)."""
    made = [target("Contact", state.create_record("Contact", {"LastName": f"C{i}", "AccountId": ids.account}))
            for i in range(count)]
    state.clear_log()
    return made


def test_several_notes_share_one_composite(crm):
    connector, state, ids, three = crm
    notes = [note(*three, key=f"rec-{i}", title=f"Siro: Call {i}") for i in range(5)]  # 5 x (note + 3 links)
    results = connector.write_notes(notes)
    assert sent(state) == [("POST", "composite")]
    [body] = [r.body for r in state.requests]
    assert len(body["compositeRequest"]) == 20 and body["allOrNone"] is False
    assert [r.key for r in results] == [f"rec-{i}" for i in range(5)]
    assert all(r.outcome == "created" and r.attached == frozenset(three) and r.refused == {} for r in results)
    assert len({r.note_id for r in results}) == 5
    for i, result in enumerate(results):  # each answer went back to its own note
        assert state.records["ContentNote"][result.note_id]["Title"] == f"Siro: Call {i}"
        assert note_links(state, result.note_id) == [ids.opportunity, ids.account, ids.contact]


def test_ten_notes_take_two_composites_in_order(crm):
    connector, state, _, three = crm
    results = connector.write_notes([note(*three, key=f"rec-{i}", title=f"Siro: Call {i}") for i in range(10)])
    assert sent(state) == [("POST", "composite")] * 2
    assert [len(r.body["compositeRequest"]) for r in state.requests] == [24, 16]  # 6 notes fit in 25, then 4
    assert [r.key for r in results] == [f"rec-{i}" for i in range(10)]
    assert [state.records["ContentNote"][r.note_id]["Title"] for r in results] == [
        f"Siro: Call {i}" for i in range(10)]
    assert all(r.outcome == "created" and r.attached == frozenset(three) for r in results)


def test_creates_and_updates_share_a_composite_and_one_failure_sinks_no_other(crm):
    connector, state, ids, three = crm
    old = create(connector, state, *three[:2], key="old")
    changed = render_html("Discovery", [("Next steps", "Signed")])
    results = connector.write_notes([
        note(three[0], key="new"),
        note(*three, key="old", html=changed, note_id=old.note_id, attached=three[:2]),
        note(three[1], key="blank", title="  "),  # the org refuses it: its link is not run
        note(three[2], key="other", title="Siro: Other"),
    ])
    assert sent(state) == [("POST", "composite")]
    assert [(r.key, r.outcome) for r in results] == [("new", "created"), ("old", "updated"), ("blank", "failed"),
                                                     ("other", "created")]
    assert results[1].note_id == old.note_id and results[1].attached == frozenset(three)
    assert note_html(state, old.note_id) == changed
    assert "REQUIRED_FIELD_MISSING" in results[2].reason and results[2].refused == {}
    assert note_links(state, results[3].note_id) == [ids.contact]


def test_unusable_note_id_is_created_again_without_sinking_the_composite(crm):
    connector, state, _, three = crm
    results = connector.write_notes([note(three[0], key="a"), note(three[1], key="b", note_id="06 9/x?"),
                                     note(three[2], key="c", html=None, note_id="06 9/x?")])
    assert sent(state) == [("POST", "composite")]
    assert [r.outcome for r in results] == ["created", "created", "failed"]
    assert results[1].attached == {three[1]} and "MALFORMED_ID" in results[2].reason


def test_note_with_more_than_24_links_goes_alone(crm):
    connector, state, ids, three = crm
    many = contacts(state, ids, 30)
    results = connector.write_notes([note(three[0], key="a"), note(*many, key="big"), note(three[1], key="b")])
    assert [len(r.body["compositeRequest"]) for r in state.requests] == [2, 25, 6, 2]
    assert [r.outcome for r in results] == ["created"] * 3 and results[1].attached == frozenset(many)


def test_deleted_notes_are_created_again_together(crm):
    connector, state, _, three = crm
    firsts = [create(connector, state, *three, key=f"rec-{i}", title=f"Siro: Call {i}") for i in range(3)]
    for first in firsts[:2]:
        delete_note(state, first.note_id)
    changed = render_html("Discovery", [("Next steps", "Signed")])
    results = connector.write_notes([note(*three, key=f"rec-{i}", title=f"Siro: Call {i}", html=changed,
                                          note_id=first.note_id, attached=three) for i, first in enumerate(firsts)])
    assert sent(state) == [("POST", "composite")] * 2  # 3 PATCHes, then the 2 re-creates with their links
    assert [len(r.body["compositeRequest"]) for r in state.requests] == [3, 8]
    assert [r.outcome for r in results] == ["created", "created", "updated"]
    assert results[2].note_id == firsts[2].note_id
    assert all(r.attached == frozenset(three) and note_html(state, r.note_id) == changed for r in results)
    assert sorted(state.records["ContentNote"]) == sorted(r.note_id for r in results)


def test_long_title_is_truncated_and_refused_content_fails(crm):
    connector, state, _, three = crm
    [result] = connector.write_notes([note(three[0], title="Siro: " + "x" * 300)])
    assert result.outcome == "created"
    assert state.records["ContentNote"][result.note_id]["Title"] == ("Siro: " + "x" * 300)[:255]
    [blank] = connector.write_notes([note(three[0], title="  ")])
    assert blank.outcome == "failed" and blank.note_id is None and "REQUIRED_FIELD_MISSING" in blank.reason
    assert blank.attached == frozenset()


def test_find_note(crm):
    connector, state, ids, three = crm
    since = dt.datetime.now(dt.UTC)
    written = note(*three)
    created = create(connector, state, *three)
    assert connector.find_note(written, since) == created.note_id
    assert sent(state) == [("GET", "")]  # one query
    assert connector.find_note(note(*three, title="Siro: Another call"), since) is None
    assert connector.find_note(note(target("Lead", ids.lead)), since) is None  # not linked there
    set_note_created(state, created.note_id, since - dt.timedelta(hours=1))  # made before the intent
    assert connector.find_note(written, since) is None
    assert connector.find_note(note(), since) is None  # no target to look on


def test_find_note_skips_notes_of_other_recordings(crm):
    connector, state, ids, three = crm
    since = dt.datetime.now(dt.UTC)
    first = create(connector, state, three[0], key="rec-1")
    second = create(connector, state, three[0], key="rec-2")  # same title, same opportunity
    assert connector.find_note(note(three[0]), since) == first.note_id  # the earliest
    assert connector.find_note(note(three[0]), since, exclude=frozenset({first.note_id})) == second.note_id
    # a 15-character id in exclude excludes its 18-character twin
    assert connector.find_note(note(three[0]), since, exclude=frozenset({first.note_id[:15]})) == second.note_id
    assert connector.find_note(note(three[0]), since, exclude=frozenset({first.note_id, second.note_id[:15]})) is None
    assert connector.find_note(note(three[0]), since, exclude=frozenset({"not-an-id"})) == first.note_id


def test_find_note_takes_the_exact_title(crm):
    connector, state, _, three = crm
    since = dt.datetime.now(dt.UTC)
    create(connector, state, three[0], title="SIRO: DISCOVERY")  # SOQL matches it without case
    assert connector.find_note(note(three[0]), since) is None
    quoted = note(three[0], title="Siro: Tom's \\ call")
    created = create(connector, state, three[0], title="Siro: Tom's \\ call")
    assert connector.find_note(quoted, since) == created.note_id


def test_expired_token_is_auth_error(crm):
    connector, state, _, three = crm
    state.expire_all_tokens()
    with pytest.raises(AuthError):
        connector.write_notes([note(*three)])
    with pytest.raises(AuthError):
        connector.find_note(note(*three), NOW)


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limit_and_outage_are_transient(crm, status):
    connector, state, _, three = crm
    state.fail_next(status)
    with pytest.raises(TransientError):
        connector.write_notes([note(*three)])
    assert state.records["ContentNote"] == {}
    state.fail_next(status)
    with pytest.raises(TransientError):
        connector.find_note(note(*three), NOW)


def test_transient_failure_keeps_the_notes_already_written(crm):
    connector, state, _, three = crm
    state.fail_next(503, after=1)  # the second composite
    with pytest.raises(TransientError) as info:
        connector.write_notes([note(*three, key=f"rec-{i}") for i in range(7)])  # 6 notes, then 1
    done = info.value.partial
    assert [r.key for r in done] == [f"rec-{i}" for i in range(6)] and all(r.outcome == "created" for r in done)
    assert sorted(state.records["ContentNote"]) == sorted(r.note_id for r in done)


def test_password_session_renewed_once(salesforce_login, salesforce_state, salesforce_session, salesforce_ids):
    from connectors.salesforce import SalesforceConnector

    connector = SalesforceConnector(salesforce_login, session=salesforce_session)
    [first] = connector.write_notes([note(target("Account", salesforce_ids.account))])
    salesforce_state.expire_all_tokens()
    salesforce_state.clear_log()
    [second] = connector.write_notes([note(target("Lead", salesforce_ids.lead), key="b")])
    assert first.outcome == second.outcome == "created"
    assert [r.path.rsplit("/", 1)[-1] for r in salesforce_state.requests] == ["composite", "59.0", "composite"]
    connector.close()
