"""The Salesforce simulator's notes (ContentNote, ContentDocumentLink) and Composite API, through simple-salesforce."""

from __future__ import annotations

import base64

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from simulators.salesforce.notes import delete_note, note_html, note_links

V = "/services/data/v59.0"


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@pytest.fixture
def sf(salesforce_server, salesforce_session, salesforce_token):
    return Salesforce(session_id=salesforce_token, instance_url=salesforce_server.url, version="59.0",
                      session=salesforce_session)


def error_of(info) -> dict:
    return info.value.content[0]


def composite(sf, subrequests, all_or_none=False):
    return sf.restful("composite", method="POST", json={"allOrNone": all_or_none, "compositeRequest": subrequests})


def link_sub(ref, document, entity, share="V"):
    return {"method": "POST", "url": f"{V}/sobjects/ContentDocumentLink", "referenceId": ref,
            "body": {"ContentDocumentId": document, "LinkedEntityId": entity, "ShareType": share}}


def note_sub(ref="note", title="Siro: Call", html="<p>Hi</p>"):
    return {"method": "POST", "url": f"{V}/sobjects/ContentNote", "referenceId": ref,
            "body": {"Title": title, "Content": b64(html)}}


# ---------------------------------------------------------------- ContentNote

def test_note_create_read_update_delete(sf, salesforce_state):
    created = sf.ContentNote.create({"Title": "Siro: Discovery", "Content": b64("<p><b>Next</b></p>\n<p>a &amp; b</p>")})
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("069")
    note_id = created["id"]
    got = sf.ContentNote.get(note_id)
    assert got["Title"] == "Siro: Discovery" and got["FileType"] == "SNOTE"
    assert got["Content"] == f"{V}/sobjects/ContentNote/{note_id}/Content"  # a blob is never inlined
    assert got["CreatedDate"].endswith(".000+0000") and got["LastModifiedDate"] == got["CreatedDate"]
    assert note_html(salesforce_state, note_id) == "<p><b>Next</b></p><p>a &amp; b</p>"  # line breaks stripped
    assert sf.restful(
        f"sobjects/ContentNote/{note_id}", params={"fields": "Id,Title"}) == {
        "attributes": {"type": "ContentNote", "url": f"{V}/sobjects/ContentNote/{note_id}"}, "Id": note_id,
        "Title": "Siro: Discovery"}
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful(f"sobjects/ContentNote/{note_id}", params={"fields": "Id,Body"})
    assert error_of(info)["errorCode"] == "INVALID_FIELD"

    assert sf.ContentNote.update(note_id, {"Content": b64("<p>changed</p>"), "Title": "Siro: Renamed"}) == 204
    assert note_html(salesforce_state, note_id) == "<p>changed</p>"
    assert sf.ContentNote.get(note_id)["Title"] == "Siro: Renamed"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.ContentNote.update(note_id, {"FileType": "TXT"})
    assert error_of(info)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    assert sf.ContentNote.delete(note_id) == 204
    for call in (lambda: sf.ContentNote.get(note_id), lambda: sf.ContentNote.update(note_id, {"Title": "x"})):
        with pytest.raises(SalesforceResourceNotFound) as info:
            call()
        assert error_of(info) == {"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.ContentNote.get("0695g000009ZZZZAAA"[:15])
    assert error_of(info)["errorCode"] == "NOT_FOUND"


@pytest.mark.parametrize("body, code, fields", [
    ({"Title": "x", "Content": "not base64!"}, "JSON_PARSER_ERROR", None),
    ({"Title": "x", "Content": 5}, "JSON_PARSER_ERROR", None),
    ({"Content": b64("<p>x</p>")}, "REQUIRED_FIELD_MISSING", ["Title"]),
    ({"Title": "   ", "Content": b64("<p>x</p>")}, "REQUIRED_FIELD_MISSING", ["Title"]),
    ({"Title": "t" * 256}, "STRING_TOO_LONG", ["Title"]),
    ({"Title": "x", "Content": b64("Tom &apos;s call")}, "FIELD_INTEGRITY_EXCEPTION", ["Content"]),
    ({"Title": "x", "Content": b64("R&D")}, "FIELD_INTEGRITY_EXCEPTION", ["Content"]),
    ({"Title": "x", "Content": b64("a&nbsp;b")}, "FIELD_INTEGRITY_EXCEPTION", ["Content"]),
    ({"Title": "x", "Nope__c": 1}, "INVALID_FIELD", None),
])
def test_note_refusals(sf, salesforce_state, body, code, fields):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.ContentNote.create(body)
    assert error_of(info)["errorCode"] == code
    if fields is not None:
        assert error_of(info)["fields"] == fields
    assert salesforce_state.records["ContentNote"] == {}


def test_escaped_text_is_accepted(sf, salesforce_state):
    note_id = sf.ContentNote.create({"Title": "Tom's call", "Content": b64("<p>Tom&#39;s &quot;R&amp;D&quot; &lt;3</p>")})["id"]
    assert note_html(salesforce_state, note_id) == "<p>Tom&#39;s &quot;R&amp;D&quot; &lt;3</p>"


# ---------------------------------------------------------------- ContentDocumentLink

def test_links(sf, salesforce_state, salesforce_ids):
    note_id = sf.ContentNote.create({"Title": "Siro: Call", "Content": b64("<p>x</p>")})["id"]
    link = sf.ContentDocumentLink.create({"ContentDocumentId": note_id, "LinkedEntityId": salesforce_ids.opportunity,
                                          "ShareType": "V"})
    assert link["success"] and link["id"].startswith("06A")
    assert note_links(salesforce_state, note_id) == [salesforce_ids.opportunity]

    with pytest.raises(SalesforceMalformedRequest) as info:  # 15-character id of the same record
        sf.ContentDocumentLink.create({"ContentDocumentId": note_id, "LinkedEntityId": salesforce_ids.opportunity[:15],
                                       "ShareType": "V"})
    assert error_of(info) == {
        "message": f"Document with ID: {note_id} is already linked with the entity with ID: "
                   f"{salesforce_ids.opportunity}", "errorCode": "DUPLICATE_VALUE", "fields": ["LinkedEntityId"]}
    refusals = [
        ({"LinkedEntityId": salesforce_ids.deleted_opportunity, "ShareType": "V"},
         "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"),
        ({"LinkedEntityId": "0065g000009ZZZZ", "ShareType": "V"}, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"),
        ({"LinkedEntityId": salesforce_ids.account, "ShareType": "X"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"LinkedEntityId": salesforce_ids.account, "ShareType": "V", "Visibility": "Everyone"},
         "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"LinkedEntityId": salesforce_ids.account}, "REQUIRED_FIELD_MISSING"),
        ({"LinkedEntityId": "nope", "ShareType": "V"}, "MALFORMED_ID"),
    ]
    for body, code in refusals:
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.ContentDocumentLink.create({"ContentDocumentId": note_id, **body})
        assert error_of(info)["errorCode"] == code, body
    sf.ContentDocumentLink.create({"ContentDocumentId": note_id, "LinkedEntityId": salesforce_ids.account,
                                   "ShareType": "V", "Visibility": "AllUsers"})
    assert note_links(salesforce_state, note_id) == [salesforce_ids.opportunity, salesforce_ids.account]

    delete_note(salesforce_state, note_id)  # a person deletes the note: its links go with it
    assert note_links(salesforce_state, note_id) == []
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.ContentDocumentLink.create({"ContentDocumentId": note_id, "LinkedEntityId": salesforce_ids.lead,
                                       "ShareType": "V"})
    assert error_of(info)["errorCode"] == "ENTITY_IS_DELETED"


def test_link_queries(sf, salesforce_ids):
    note_id = sf.ContentNote.create({"Title": "Siro: Call", "Content": b64("<p>x</p>")})["id"]
    sf.ContentDocumentLink.create({"ContentDocumentId": note_id, "LinkedEntityId": salesforce_ids.opportunity,
                                   "ShareType": "V"})
    for unfiltered in ("SELECT Id FROM ContentDocumentLink",
                       "SELECT Id FROM ContentDocumentLink WHERE ShareType = 'V'",
                       f"SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId != '{salesforce_ids.opportunity}'"):
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.query(unfiltered)
        assert error_of(info) == {"message": "Implementation restriction: ContentDocumentLink requires a filter by a "
                                             "single Id on ContentDocumentId or LinkedEntityId using the equals "
                                             "operator or multiple Id's using the IN operator.",
                                  "errorCode": "MALFORMED_QUERY"}
    soql = ("SELECT ContentDocumentId, ContentDocument.Title, ContentDocument.CreatedDate FROM ContentDocumentLink "
            f"WHERE LinkedEntityId = '{salesforce_ids.opportunity}' AND ContentDocument.Title = 'siro: call' "
            "AND ContentDocument.CreatedDate >= {}")
    rows = sf.query(soql.format("2020-01-01T00:00:00Z"))["records"]
    assert [r["ContentDocumentId"] for r in rows] == [note_id]
    assert rows[0]["ContentDocument"]["Title"] == "Siro: Call"  # SOQL compares text without case
    assert sf.query(soql.format("2999-01-01T00:00:00+00:00"))["records"] == []
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(soql.format("'2020-01-01T00:00:00Z'"))
    assert error_of(info)["errorCode"] == "INVALID_FIELD"
    by_note = sf.query(f"SELECT LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId IN ('{note_id}')")
    assert [r["LinkedEntityId"] for r in by_note["records"]] == [salesforce_ids.opportunity]
    assert sf.query(f"SELECT Id, Title FROM ContentNote WHERE Id = '{note_id}'")["records"][0]["Title"] == "Siro: Call"


# ---------------------------------------------------------------- Composite

def test_composite_is_one_api_call_with_references(sf, salesforce_state, salesforce_ids):
    salesforce_state.clear_log()
    usage = salesforce_state.api_usage
    answer = composite(sf, [note_sub(), link_sub("opp", "@{note.id}", salesforce_ids.opportunity),
                            link_sub("acct", "@{note.id}", salesforce_ids.account),
                            link_sub("gone", "@{note.id}", salesforce_ids.deleted_opportunity)])
    results = answer["compositeResponse"]
    assert [r["referenceId"] for r in results] == ["note", "opp", "acct", "gone"]
    assert [r["httpStatusCode"] for r in results] == [201, 201, 201, 400]
    note_id = results[0]["body"]["id"]
    assert results[0]["httpHeaders"] == {"Location": f"{V}/sobjects/ContentNote/{note_id}"}
    assert results[3]["body"][0]["errorCode"] == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"
    assert note_links(salesforce_state, note_id) == [salesforce_ids.opportunity, salesforce_ids.account]
    assert salesforce_state.api_usage == usage + 1
    assert [(r.method, r.path) for r in salesforce_state.requests] == [("POST", f"{V}/composite")]


def test_composite_reference_to_a_failed_subrequest_is_not_run(sf, salesforce_state, salesforce_ids):
    answer = composite(sf, [note_sub(title=""), link_sub("opp", "@{note.id}", salesforce_ids.opportunity),
                            {"method": "GET", "url": f"{V}/sobjects/Account/{salesforce_ids.account}?fields=Name",
                             "referenceId": "acct"}])
    note, opp, acct = answer["compositeResponse"]
    assert note["httpStatusCode"] == 400 and note["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert opp["httpStatusCode"] == 400 and opp["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert "note.id" in opp["body"][0]["message"]
    assert acct["httpStatusCode"] == 200 and acct["body"]["Name"] == "Acme Roofing"  # independent: it runs
    assert salesforce_state.records["ContentDocumentLink"] == {}


def test_composite_all_or_none_rolls_back(sf, salesforce_state, salesforce_ids):
    answer = composite(sf, [note_sub(), link_sub("opp", "@{note.id}", salesforce_ids.opportunity),
                            link_sub("gone", "@{note.id}", salesforce_ids.deleted_opportunity),
                            link_sub("acct", "@{note.id}", salesforce_ids.account)], all_or_none=True)
    results = answer["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [400, 400, 400, 400]
    assert [r["body"][0]["errorCode"] for r in results] == [
        "PROCESSING_HALTED", "PROCESSING_HALTED", "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "PROCESSING_HALTED"]
    assert salesforce_state.records["ContentNote"] == {} and salesforce_state.records["ContentDocumentLink"] == {}


@pytest.mark.parametrize("subrequests, code", [
    ([note_sub(f"n{i}") for i in range(26)], "LIMIT_EXCEEDED"),
    ([note_sub("a"), note_sub("a")], "INVALID_INPUT"),
    ([note_sub("bad-ref")], "INVALID_INPUT"),
    ([{**note_sub(), "url": "/sobjects/ContentNote"}], "INVALID_INPUT"),
    ([{**note_sub(), "method": "FETCH"}], "INVALID_INPUT"),
])
def test_composite_refused_whole(sf, salesforce_state, subrequests, code):
    with pytest.raises(SalesforceMalformedRequest) as info:
        composite(sf, subrequests)
    assert error_of(info)["errorCode"] == code
    assert salesforce_state.records["ContentNote"] == {}  # nothing ran


def test_composite_of_25_runs(sf, salesforce_state):
    answer = composite(sf, [note_sub(f"n{i}") for i in range(25)])
    assert [r["httpStatusCode"] for r in answer["compositeResponse"]] == [201] * 25
    assert len(salesforce_state.records["ContentNote"]) == 25


def test_composite_subrequest_fault_answers_only_that_subrequest(sf, salesforce_state, salesforce_ids):
    lock = [{"message": "unable to obtain exclusive access to this record", "errorCode": "UNABLE_TO_LOCK_ROW"}]
    salesforce_state.fail_next(400, lock, path_contains="sobjects/ContentDocumentLink", after=1)
    salesforce_state.fail_next(503, path_contains="/sobjects/Account/")
    answer = composite(sf, [note_sub(), link_sub("opp", "@{note.id}", salesforce_ids.opportunity),
                            link_sub("acct", "@{note.id}", salesforce_ids.account),
                            {"method": "GET", "url": f"{V}/sobjects/Account/{salesforce_ids.account}?fields=Name",
                             "referenceId": "read"},
                            link_sub("contact", "@{note.id}", salesforce_ids.contact)])
    note, opp, acct, read, contact = answer["compositeResponse"]
    assert [r["httpStatusCode"] for r in (note, opp, acct, read, contact)] == [201, 201, 400, 503, 201]
    assert acct["body"] == lock and read["body"][0]["errorCode"] == "SERVER_UNAVAILABLE"
    # the refused link did not run; the whole request still answered 200
    assert note_links(salesforce_state, note["body"]["id"]) == [salesforce_ids.opportunity, salesforce_ids.contact]


def test_composite_subrequests_never_take_a_default_fault(sf, salesforce_state, salesforce_ids):
    salesforce_state.fail_next(503, after=1)  # meant for the second whole REST request
    answer = composite(sf, [note_sub(), link_sub("opp", "@{note.id}", salesforce_ids.opportunity)])
    assert [r["httpStatusCode"] for r in answer["compositeResponse"]] == [201, 201]
    with pytest.raises(SalesforceError) as info:
        composite(sf, [note_sub("again")])
    assert info.value.status == 503
