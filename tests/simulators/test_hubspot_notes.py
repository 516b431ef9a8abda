"""The HubSpot simulator's notes and associations v4, driven through hubspot-api-client as an integration would."""

from __future__ import annotations

import json

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import ApiException as V4ApiException
from hubspot.crm.associations.v4 import (
    BatchInputPublicDefaultAssociationMultiPost,
    PublicDefaultAssociationMultiPost,
)
from hubspot.crm.associations.v4 import PublicObjectId as V4Id
from hubspot.crm.objects.notes import (
    ApiException,
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)

from simulators.hubspot import DEFAULT_TOKEN, HubSpotState
from simulators.hubspot.notes import associated_ids

STAMP = "2026-11-20T15:00:00.000Z"


@pytest.fixture
def client(hubspot_url: str) -> HubSpot:
    return HubSpot(access_token=DEFAULT_TOKEN, host=hubspot_url, retry=False)


def link(record_id: str, type_id: int, category: str = "HUBSPOT_DEFINED") -> PublicAssociationsForObject:
    return PublicAssociationsForObject(to=PublicObjectId(id=record_id),
                                       types=[AssociationSpec(association_category=category,
                                                              association_type_id=type_id)])


def refusal(call) -> tuple[int, dict]:
    """(status, body) of the client's ApiException (each API package has its own class)."""
    with pytest.raises((ApiException, V4ApiException)) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


def test_create_a_note_associated_to_a_deal_contact_and_company(client: HubSpot, hubspot_state: HubSpotState) -> None:
    named = hubspot_state.named
    note = client.crm.objects.notes.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"hs_note_body": "<p><b>Siro: Discovery</b></p>", "hs_timestamp": "1795186800000"},
        associations=[link(named["deal_acme"], 214), link(named["contact_jane"], 202),
                      link(named["company_acme"], 190)]))
    assert note.id and note.properties["hs_note_body"] == "<p><b>Siro: Discovery</b></p>"
    assert note.properties["hs_timestamp"] == "2026-11-20T15:00:00.000Z"  # epoch ms in, ISO out
    assert note.properties["hs_createdate"]
    assert hubspot_state.requests_to("POST", "/crm/v3/objects/notes")[0].status == 201
    assert associated_ids(hubspot_state, "notes", note.id, "deals") == [named["deal_acme"]]
    assert associated_ids(hubspot_state, "deals", named["deal_acme"], "notes") == [note.id]
    assert associated_ids(hubspot_state, "contacts", named["contact_jane"], "notes") == [note.id]
    assert associated_ids(hubspot_state, "companies", named["company_acme"], "notes") == [note.id]


def test_a_note_without_hs_timestamp_is_refused(client: HubSpot, hubspot_state: HubSpotState) -> None:
    status, body = refusal(lambda: client.crm.objects.notes.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"hs_note_body": "hello"})))
    assert status == 400
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"] == "Error creating NOTE.  Some required properties were not set."
    assert body["context"] == {"properties": ["hs_timestamp"]}
    assert hubspot_state.record_ids("notes") == []


def test_an_association_to_a_missing_record_refuses_the_create(client: HubSpot, hubspot_state: HubSpotState) -> None:
    status, body = refusal(lambda: client.crm.objects.notes.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": STAMP},
        associations=[link(hubspot_state.named["deal_acme"], 214), link("424242", 202)])))
    assert status == 400
    assert list(body) == ["status", "message", "correlationId", "context", "category"]
    assert body["message"] == "One or more associations are invalid"
    assert body["context"] == {"INVALID_OBJECT_IDS": ["CONTACT=424242 is not valid"], "objectId": ["424242"],
                               "objectType": ["CONTACT"]}
    hubspot_state.archive_record("deals", hubspot_state.named["deal_umbrella"])
    status, body = refusal(lambda: client.crm.objects.notes.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": STAMP}, associations=[link(hubspot_state.named["deal_umbrella"], 214)])))
    assert body["context"]["INVALID_OBJECT_IDS"] == [f"DEAL={hubspot_state.named['deal_umbrella']} is not valid"]
    assert hubspot_state.record_ids("notes") == []


def test_wrong_and_unknown_association_types_are_refused(client: HubSpot, hubspot_state: HubSpotState) -> None:
    deal = hubspot_state.named["deal_acme"]
    create = client.crm.objects.notes.basic_api.create
    # 213 is deal_to_note: its "from" side is a deal, not a note
    status, body = refusal(lambda: create(SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": STAMP}, associations=[link(deal, 213)])))
    assert status == 400 and body["category"] == "VALIDATION_ERROR"
    assert body["message"] == "invalid from object type 0-46 for associations to be created. expected: 0-3"
    status, body = refusal(lambda: create(SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": STAMP}, associations=[link(deal, 99999)])))
    assert status == 400 and body["message"] == "One or more associations are invalid"
    assert body["context"]["INVALID_ASSOCIATION_TYPE_ID"] == [
        "HUBSPOT_DEFINED=99999 is not a valid association definition id"]
    status, body = refusal(lambda: create(SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": STAMP}, associations=[link(deal, 214, "USER_DEFINED")])))
    assert body["context"]["associationSpec"] == ["USER_DEFINED=214"]
    assert hubspot_state.record_ids("notes") == []


def test_batch_create_update_read_and_delete(client: HubSpot, hubspot_state: HubSpotState) -> None:
    named = hubspot_state.named
    batch = client.crm.objects.notes.batch_api
    created = batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        SimplePublicObjectBatchInputForCreate(properties={"hs_timestamp": STAMP, "hs_note_body": f"note {n}"},
                                              associations=[link(named["deal_globex"], 214)],
                                              object_write_trace_id=str(n))
        for n in range(3)]))
    by_trace = {r.object_write_trace_id: r for r in created.results}
    assert sorted(by_trace) == ["0", "1", "2"]
    assert [by_trace[str(n)].properties["hs_note_body"] for n in range(3)] == ["note 0", "note 1", "note 2"]
    ids = [by_trace[str(n)].id for n in range(3)]
    assert hubspot_state.requests_to("POST", "batch/create")[0].status == 201
    assert associated_ids(hubspot_state, "deals", named["deal_globex"], "notes") == sorted(ids, key=int)

    updated = batch.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        SimplePublicObjectBatchInput(id=ids[0], properties={"hs_note_body": "changed"})]))
    assert updated.results[0].properties["hs_note_body"] == "changed"
    client.crm.objects.notes.basic_api.update(ids[1], SimplePublicObjectInput(properties={"hs_note_body": "too"}))

    client.crm.objects.notes.basic_api.archive(ids[2])
    assert hubspot_state.requests_to("DELETE")[0].status == 204
    status, body = refusal(lambda: client.crm.objects.notes.basic_api.get_by_id(ids[2]))
    assert status == 404 and body["category"] == "OBJECT_NOT_FOUND"
    assert body["message"] == "Object not found.  objectId are usually numeric."
    read = batch.read(BatchReadInputSimplePublicObjectId(
        properties=["hs_note_body", "hs_timestamp", "hs_createdate"], properties_with_history=[],
        inputs=[SimplePublicObjectId(id=i) for i in ids]), _preload_content=False)
    answer = json.loads(read.data)
    assert read.status == 207
    assert {r["id"]: r["properties"]["hs_note_body"] for r in answer["results"]} == {ids[0]: "changed",
                                                                                      ids[1]: "too"}
    assert answer["errors"][0]["context"]["ids"] == [ids[2]]
    # an archived note is gone for updates (207 OBJECT_NOT_FOUND) and for association lists
    gone = batch.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        SimplePublicObjectBatchInput(id=ids[2], properties={"hs_note_body": "x"})]), _preload_content=False)
    assert gone.status == 207
    assert associated_ids(hubspot_state, "deals", named["deal_globex"], "notes") == sorted(ids[:2], key=int)


def test_batch_create_is_refused_whole(client: HubSpot, hubspot_state: HubSpotState) -> None:
    batch = client.crm.objects.notes.batch_api
    good = SimplePublicObjectBatchInputForCreate(properties={"hs_timestamp": STAMP},
                                                 associations=[link(hubspot_state.named["deal_acme"], 214)])
    bad = SimplePublicObjectBatchInputForCreate(properties={"hs_timestamp": STAMP},
                                                associations=[link("999", 190)])
    status, body = refusal(lambda: batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[good, bad])))
    assert status == 400 and body["context"]["INVALID_OBJECT_IDS"] == ["COMPANY=999 is not valid"]
    status, body = refusal(lambda: batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[good] * 101)))
    assert status == 400 and "at most 100" in body["message"]
    status, body = refusal(lambda: batch.create(BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[SimplePublicObjectBatchInputForCreate(properties={"hs_timestamp": STAMP, "hs_note_body": "x" * 65537})])))
    assert status == 400 and body["errors"][0]["code"] == "MAX_LENGTH_EXCEEDED"
    assert hubspot_state.record_ids("notes") == []


def test_associations_v4_default_and_paged_list(client: HubSpot, hubspot_state: HubSpotState) -> None:
    named = hubspot_state.named
    v4 = client.crm.associations.v4
    note = client.crm.objects.notes.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"hs_timestamp": STAMP}))
    answer = v4.basic_api.create_default("notes", note.id, "contact", named["contact_bob"])
    specs = {(r._from.id, r.to.id, r.association_spec.association_type_id) for r in answer.results}
    assert specs == {(note.id, named["contact_bob"], 202), (named["contact_bob"], note.id, 201)}
    v4.batch_api.create_default("0-46", "deals", BatchInputPublicDefaultAssociationMultiPost(inputs=[
        PublicDefaultAssociationMultiPost(_from=V4Id(id=note.id), to=V4Id(id=named[d]))
        for d in ("deal_acme", "deal_globex")]))
    assert associated_ids(hubspot_state, "notes", note.id, "deals") == sorted(
        [named["deal_acme"], named["deal_globex"]], key=int)

    status, body = refusal(lambda: v4.batch_api.create_default("notes", "deals", BatchInputPublicDefaultAssociationMultiPost(
        inputs=[PublicDefaultAssociationMultiPost(_from=V4Id(id=note.id), to=V4Id(id="31337"))])))
    assert status == 400 and body["context"]["INVALID_OBJECT_IDS"] == ["DEAL=31337 is not valid"]
    status, body = refusal(lambda: v4.basic_api.create_default("notes", note.id, "widgets", "1"))
    assert status == 400 and body["message"] == "Unable to infer object type from: widgets"

    others = [client.crm.objects.notes.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": STAMP}, associations=[link(named["deal_acme"], 214)])).id for _ in range(2)]
    seen, after = [], None
    while True:
        page = v4.basic_api.get_page("deals", named["deal_acme"], "notes", limit=2, after=after)
        seen += [str(r.to_object_id) for r in page.results]
        # seen from the deal, the association is deal_to_note (213), the inverse of note_to_deal (214)
        assert all(t.type_id == 213 and t.category == "HUBSPOT_DEFINED" for r in page.results
                   for t in r.association_types)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == sorted([note.id, *others], key=int)
    status, body = refusal(lambda: v4.basic_api.get_page("deals", named["deal_acme"], "notes", limit=501))
    assert status == 400


def test_notes_calls_are_logged_without_the_token(client: HubSpot, hubspot_state: HubSpotState) -> None:
    client.crm.objects.notes.basic_api.create(SimplePublicObjectInputForCreate(properties={"hs_timestamp": STAMP}))
    client.crm.associations.v4.basic_api.get_page("deals", hubspot_state.named["deal_acme"], "notes")
    assert [(r.method, r.path, r.status) for r in hubspot_state.requests] == [
        ("POST", "/crm/v3/objects/notes", 201),
        ("GET", f"/crm/v4/objects/deals/{hubspot_state.named['deal_acme']}/associations/notes", 200)]
    assert DEFAULT_TOKEN not in repr([vars(r) for r in hubspot_state.requests])
