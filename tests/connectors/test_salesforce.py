"""SalesforceConnector through simple-salesforce against the served simulator (no mocks)."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import pytest

from connectors.base import (
    AuthError,
    FieldError,
    FieldType,
    RecordWrite,
    TransientError,
    UnknownObject,
)
from connectors.salesforce import BATCH_SIZE, SalesforceConfigError, SalesforceConnector
from simulators.salesforce import SFField, make_id
from worker.pipeline import coercion


def patches(state):
    return state.requests_matching("PATCH", "/composite/sobjects")


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("options, key", [
    ({"access_token": "x"}, "instance_url"),
    ({"instance_url": "https://a.my.salesforce.com"}, "access_token"),
    ({"instance_url": "https://a.my.salesforce.com", "access_token": "x", "username": "u"}, "username"),
    ({"username": "u"}, "password"),
    ({"username": "u", "consumer_key": "k"}, "private_key_file"),
    ({"username": "u", "password": "p", "consumer_key": "k", "private_key_file": "/k"}, "password"),
    ({"instance_url": "https://a", "access_token": "x", "api_version": "latest"}, "api_version"),
    ({}, "access_token"),
])
def test_config_errors_name_the_key_not_the_secret(options, key):
    with pytest.raises(SalesforceConfigError) as info:
        SalesforceConnector(options)
    assert key in str(info.value)
    assert isinstance(info.value, ValueError)
    for secret in ("x", "p"):
        assert f"'{secret}'" not in str(info.value)


def test_construction_does_no_io(salesforce_state, salesforce_options, salesforce_session):
    SalesforceConnector(salesforce_options, session=salesforce_session)
    assert salesforce_state.requests == []


def test_default_models():
    models = SalesforceConnector.default_models
    assert models["deal"].object == "Opportunity" and models["deal"].slot == "opportunity"
    assert models["company"].object == "Account"
    assert models["contact"].slot == "contacts"
    assert models["meeting"].object == "Event" and models["appointment"].slot == "engagement"
    assert models["owner"].object == "User" and models["owner"].slot == "users"
    assert all(key == key.lower() for key in models)


# ---------------------------------------------------------------- describe


def test_describe_mapping_and_cache(salesforce_connector, salesforce_state):
    schema = salesforce_connector.object_schema("Opportunity")
    stage = schema.fields["StageName"]
    assert stage.type == FieldType.PICKLIST and stage.restricted and stage.writable
    assert "Closed Won" in [o.value for o in stage.options if o.active]
    assert [o.value for o in stage.options if not o.active] == ["Legacy Stage"]
    assert schema.fields["Type"].restricted is False
    amount = schema.fields["Amount"]
    assert (amount.type, amount.precision, amount.scale, amount.crm_type) == (FieldType.NUMBER, 18, 2, "currency")
    assert schema.fields["Probability"].type == FieldType.NUMBER
    assert schema.fields["CloseDate"].type == FieldType.DATE
    assert schema.fields["Next_Meeting__c"].type == FieldType.DATETIME
    assert (schema.fields["Description"].type, schema.fields["Description"].max_length) == (FieldType.TEXT, 32000)
    assert (schema.fields["NextStep"].type, schema.fields["NextStep"].max_length) == (FieldType.STRING, 255)
    assert schema.fields["Competitors__c"].type == FieldType.MULTIPICKLIST and schema.fields["Competitors__c"].restricted
    assert schema.fields["Budget_Confirmed__c"].type == FieldType.BOOLEAN
    assert schema.fields["Seats__c"].type == FieldType.INTEGER
    revenue = schema.fields["ExpectedRevenue"]
    assert not revenue.writable and revenue.not_writable_reason == "calculated"
    assert schema.fields["LastModifiedDate"].not_writable_reason == "not updateable"
    assert schema.field("stagename") is stage
    account = salesforce_connector.object_schema("Account")
    assert account.fields["BillingAddress"].type == FieldType.OTHER
    assert account.fields["Roofing_Material__c"].type == FieldType.PICKLIST
    assert not account.fields["Roofing_Material__c"].restricted
    assert account.fields["Website"].type == FieldType.STRING
    salesforce_connector.object_schema("Opportunity")
    assert len(salesforce_state.requests_matching("GET", "/describe")) == 2  # once per object


def test_describe_nillable(salesforce_connector, salesforce_state, salesforce_ids):
    # a checkbox added without saying so is still reported nillable: false, as Salesforce does
    salesforce_state.add_field("Opportunity", SFField("Is_Priority__c", "boolean", "Priority"))
    salesforce_state.set_values("Opportunity", salesforce_ids.opportunity, {"Budget_Confirmed__c": True})
    schema = salesforce_connector.object_schema("Opportunity")
    assert schema.fields["NextStep"].nillable and schema.fields["Amount"].nillable
    assert not schema.fields["CloseDate"].nillable and not schema.fields["StageName"].nillable
    budget, priority = schema.fields["Budget_Confirmed__c"], schema.fields["Is_Priority__c"]
    assert not budget.nillable and not priority.nillable
    # a null for a required field is invalid_value before any request ...
    with pytest.raises(coercion.InvalidValue):
        coercion.coerce(None, schema.fields["CloseDate"])
    assert coercion.coerce(None, schema.fields["NextStep"]) is None
    # ... and clears a checkbox to false, which is what Salesforce stores and reads back
    value = coercion.coerce(None, budget)
    assert value is False
    [result] = salesforce_connector.write("Opportunity", [RecordWrite(
        salesforce_ids.opportunity, {"Budget_Confirmed__c": salesforce_connector.encode(budget, value)})])
    assert result.written == {"Budget_Confirmed__c"}
    raw = salesforce_connector.read("Opportunity", [salesforce_ids.opportunity],
                                    ["Budget_Confirmed__c"])[salesforce_ids.opportunity].values["Budget_Confirmed__c"]
    assert raw is False
    assert coercion.same_value(coercion.parse_current(raw, budget), coercion.coerce(None, budget), budget)


def test_describe_dependent_picklists(salesforce_connector, salesforce_state, salesforce_ids):
    from simulators.salesforce import PicklistValue

    salesforce_state.add_field("Account", SFField("Sub_Industry__c", "picklist", "Sub-Industry", length=255,
                                                  restricted_picklist=True, controller="Industry", picklist_values=[
        PicklistValue("Solar", valid_for=("Energy",)),
        PicklistValue("Residential", valid_for=("Construction",)),
        PicklistValue("Commercial", valid_for=("Construction", "Energy")),
        PicklistValue("Orphan"),  # valid for no industry
    ]))
    salesforce_state.add_field("Opportunity", SFField("Budget_Source__c", "picklist", "Budget Source", length=255,
                                                      controller="Budget_Confirmed__c", picklist_values=[
        PicklistValue("Approved budget", valid_for=(True,)),
        PicklistValue("Still asking", valid_for=(False,)),
    ]))
    sub = salesforce_connector.object_schema("Account").fields["Sub_Industry__c"]
    assert sub.controller == "Industry"
    assert [o.value for o in sub.options] == ["Solar", "Residential", "Commercial", "Orphan"]  # the union stays
    options = {key: [o.value for o in found] for key, found in sub.dependent_options.items()}
    assert options == {"Agriculture": [], "Banking": [], "Construction": ["Residential", "Commercial"],
                       "Energy": ["Solar", "Commercial"], "Retail": [], "Technology": []}
    assert coercion.coerce("solar", sub.for_controller("Energy")) == "Solar"
    with pytest.raises(coercion.InvalidValue):
        coercion.coerce("Solar", sub.for_controller("Construction"))
    source = salesforce_connector.object_schema("Opportunity").fields["Budget_Source__c"]
    assert source.controller == "Budget_Confirmed__c"
    # keys are the controller's canonical values as text: a checkbox's current value parses to a bool
    confirmed = coercion.parse_current(True, salesforce_connector.object_schema("Opportunity").fields[
        "Budget_Confirmed__c"])
    assert [o.value for o in source.for_controller(confirmed).options] == ["Approved budget"]
    assert [o.value for o in source.for_controller(False).options] == ["Still asking"]
    assert salesforce_connector.object_schema("Opportunity").fields["StageName"].controller is None


def test_unknown_object(salesforce_connector):
    with pytest.raises(UnknownObject):
        salesforce_connector.object_schema("Appointment__c")
    with pytest.raises(UnknownObject):
        salesforce_connector.object_schema("../limits")


# ---------------------------------------------------------------- read


def test_read_typed_values_and_15_char_ids(salesforce_connector, salesforce_ids, salesforce_state):
    short = salesforce_ids.opportunity[:15]
    fields = ["Amount", "CloseDate", "Competitors__c", "Budget_Confirmed__c", "Seats__c", "Next_Meeting__c",
              "StageName", "Description"]
    states = salesforce_connector.read("Opportunity", [short, salesforce_ids.opportunity2], fields)
    assert list(states) == [short, salesforce_ids.opportunity2]
    values = states[short].values
    assert values == {"Amount": 12500.0, "CloseDate": "2024-05-01", "Competitors__c": "Gong;Chorus",
                      "Budget_Confirmed__c": False, "Seats__c": 25, "Next_Meeting__c": "2024-05-01T10:00:00.000+0000",
                      "StageName": "Qualification", "Description": None}
    assert states[salesforce_ids.opportunity2].values["Amount"] is None
    queries = salesforce_state.requests_matching("GET", "/query")
    assert len(queries) == 1
    assert salesforce_ids.opportunity in queries[0].query["q"]  # sent as 18-char


def test_read_malformed_deleted_missing_and_wrong_object(salesforce_connector, salesforce_ids, salesforce_state):
    never = make_id("006", 77777)
    ids = [salesforce_ids.opportunity, "006-not-an-id", salesforce_ids.deleted_opportunity, never,
           salesforce_ids.account, salesforce_ids.opportunity2[:15] + "ZZZ"]
    states = salesforce_connector.read("Opportunity", ids, ["Name"])
    assert states[salesforce_ids.opportunity].values == {"Name": "Acme Roofing - Renewal"}
    assert states["006-not-an-id"].values is None
    assert states["006-not-an-id"].error.outcome == "failed"
    assert states["006-not-an-id"].error.reason.startswith("MALFORMED_ID")
    assert "incorrect type" in states[salesforce_ids.account].error.reason
    assert states[salesforce_ids.opportunity2[:15] + "ZZZ"].error.reason.startswith("MALFORMED_ID")
    for gone in (salesforce_ids.deleted_opportunity, never):
        assert states[gone].values is None and states[gone].error.outcome == "failed"
        assert "NOT_FOUND" in states[gone].error.reason
    assert len(salesforce_state.requests_matching("GET", "/query")) == 1


def test_read_splits_when_the_crm_rejects_an_id(salesforce_connector, salesforce_ids, salesforce_state):
    # An id that passes our local checks (format, checksum, key prefix) but that the org refuses in a
    # query: every query naming it is answered 400, so the chunk is split until that id is isolated.
    refused = make_id("006", 55555)
    salesforce_state.fail_next(400, [{"message": f"invalid ID field: {refused}",
                                      "errorCode": "INVALID_QUERY_FILTER_OPERATOR"}],
                               times=10, path_contains="/query", query_contains=refused)
    ids = [salesforce_ids.opportunity, refused, salesforce_ids.opportunity2]
    states = salesforce_connector.read("Opportunity", ids, ["Name"])
    assert states[salesforce_ids.opportunity].values["Name"] == "Acme Roofing - Renewal"
    assert states[salesforce_ids.opportunity2].values["Name"] == "Acme Roofing - Expansion"
    assert states[refused].values is None and states[refused].error.outcome == "failed"
    assert "INVALID_QUERY_FILTER_OPERATOR" in states[refused].error.reason
    assert "invalid ID field" in states[refused].error.reason
    queried = [r.query["q"] for r in salesforce_state.requests_matching("GET", "/query")]
    # all three, then [first] and [refused, third], then [refused] and [third]
    assert [sum(i in q for i in ids) for q in queried] == [3, 1, 2, 1, 1]
    assert queried[-2].endswith(f"WHERE Id = '{refused}'")


def test_read_chunks_by_200(salesforce_connector, salesforce_state, salesforce_ids):
    ids = [salesforce_state.create_record("Contact", {"LastName": f"C{i}"}) for i in range(450)]
    states = salesforce_connector.read("Contact", ids, ["LastName", "Email"])
    assert all(states[i].values is not None for i in ids)
    assert states[ids[449]].values["LastName"] == "C449"
    assert len(salesforce_state.requests_matching("GET", "/query")) == 3


def test_read_follows_next_records_url(salesforce_connector, salesforce_state, salesforce_ids):
    salesforce_state.query_batch_size = 2
    try:
        ids = [salesforce_state.create_record("Contact", {"LastName": f"C{i}"}) for i in range(5)]
        states = salesforce_connector.read("Contact", ids, ["LastName"])
    finally:
        salesforce_state.query_batch_size = 2000
    assert [states[i].values["LastName"] for i in ids] == [f"C{i}" for i in range(5)]


def test_read_skips_fields_the_object_lacks(salesforce_connector, salesforce_ids):
    states = salesforce_connector.read("Opportunity", [salesforce_ids.opportunity], ["NextStep", "Nope__c"])
    assert states[salesforce_ids.opportunity].values == {"NextStep": "Send proposal"}


# ---------------------------------------------------------------- write


def test_write_batch_with_one_bad_record(salesforce_connector, salesforce_ids, salesforce_state):
    updates = [
        RecordWrite(salesforce_ids.opportunity, {"NextStep": "Call back", "Amount": 20000}),
        RecordWrite(salesforce_ids.deleted_opportunity, {"NextStep": "x"}),
        RecordWrite(salesforce_ids.opportunity2[:15], {"StageName": "Closed Won"}),
        RecordWrite("006notanid", {"NextStep": "y"}),
    ]
    results = salesforce_connector.write("Opportunity", updates)
    assert [r.record_id for r in results] == [u.record_id for u in updates]
    assert results[0].written == {"NextStep", "Amount"} and not results[0].errors
    assert results[1].errors["NextStep"].outcome == "failed"
    assert results[1].errors["NextStep"].reason.startswith("ENTITY_IS_DELETED")
    assert results[2].written == {"StageName"}
    assert results[3].errors["NextStep"].reason.startswith("MALFORMED_ID")
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["Amount"] == 20000.0
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity2)["StageName"] == "Closed Won"
    sent = patches(salesforce_state)
    assert len(sent) == 1
    assert sent[0].body["allOrNone"] is False
    assert len(sent[0].body["records"]) == 3  # the malformed id was never sent


def test_record_with_bad_fields_resends_good_siblings(salesforce_connector, salesforce_ids, salesforce_state):
    updates = [RecordWrite(salesforce_ids.opportunity, {
        "NextStep": "Demo on Friday",
        "StageName": "closed won",  # restricted picklist is case-sensitive
        "ExpectedRevenue": 1,
        "Nope__c": "x",
        "Description": "x" * 32001,
        "Amount": 1e20,
    })]
    [result] = salesforce_connector.write("Opportunity", updates)
    assert result.written == {"NextStep"}
    errors = result.errors
    assert errors["StageName"].outcome == "invalid_value"
    assert errors["StageName"].reason.startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert errors["ExpectedRevenue"].outcome == "not_writable"
    assert errors["Nope__c"].outcome == "unknown_field"
    assert errors["Description"].outcome == "invalid_value" and "STRING_TOO_LONG" in errors["Description"].reason
    assert errors["Amount"].outcome == "invalid_value" and "NUMBER_OUTSIDE_VALID_RANGE" in errors["Amount"].reason
    record = salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)
    assert record["NextStep"] == "Demo on Friday" and record["StageName"] == "Qualification"
    sent = patches(salesforce_state)
    assert len(sent) == 2
    assert set(sent[1].body["records"][0]) == {"attributes", "id", "NextStep"}


def test_bad_lookup_value_is_invalid_value_for_that_field(salesforce_connector, salesforce_ids, salesforce_state):
    updates = [
        RecordWrite(salesforce_ids.opportunity, {"AccountId": salesforce_ids.contact, "NextStep": "n1"}),
        RecordWrite(salesforce_ids.opportunity2, {"AccountId": make_id("001", 31337), "NextStep": "n2"}),
        RecordWrite(salesforce_ids.event, {"OwnerId": salesforce_ids.user[:15]}),
    ]
    first, second, third = salesforce_connector.write("Opportunity", updates[:2]) + \
        salesforce_connector.write("Event", updates[2:])
    assert first.written == {"NextStep"} and first.errors["AccountId"].outcome == "invalid_value"
    assert first.errors["AccountId"].reason.startswith("MALFORMED_ID")
    assert second.written == {"NextStep"} and second.errors["AccountId"].outcome == "invalid_value"
    assert second.errors["AccountId"].reason.startswith("INVALID_CROSS_REFERENCE_KEY")
    assert third.written == {"OwnerId"}
    assert salesforce_state.get_record("Event", salesforce_ids.event)["OwnerId"] == salesforce_ids.user


def test_record_level_error_without_fields_fails_every_field(salesforce_connector, salesforce_ids, salesforce_state):
    never = make_id("006", 4242)
    [result] = salesforce_connector.write("Opportunity", [RecordWrite(never, {"NextStep": "a", "Amount": 1})])
    assert result.written == frozenset()
    assert {e.outcome for e in result.errors.values()} == {"failed"}
    assert "INVALID_CROSS_REFERENCE_KEY" in result.errors["Amount"].reason
    assert len(patches(salesforce_state)) == 1  # nothing to re-send


def test_json_parser_error_splits_batch_and_isolates_the_field(salesforce_connector, salesforce_ids, salesforce_state):
    updates = [
        RecordWrite(salesforce_ids.opportunity, {"NextStep": "ok 1"}),
        RecordWrite(salesforce_ids.opportunity2, {"NextStep": "ok 2", "Budget_Confirmed__c": "yes",
                                                  "CloseDate": "2024-06-30", "Amount": 99}),
        RecordWrite(salesforce_ids.account[:0] + salesforce_ids.opportunity, {"Description": "same record again"}),
    ]
    results = salesforce_connector.write("Opportunity", updates)
    assert results[0].written == {"NextStep"}
    assert results[1].written == {"NextStep", "CloseDate", "Amount"}
    bad = results[1].errors["Budget_Confirmed__c"]
    assert bad.outcome == "invalid_value" and bad.reason.startswith("JSON_PARSER_ERROR")
    assert "boolean" in bad.reason
    assert results[2].written == {"Description"}
    record = salesforce_state.get_record("Opportunity", salesforce_ids.opportunity2)
    assert (record["NextStep"], record["CloseDate"], record["Amount"]) == ("ok 2", "2024-06-30", 99.0)
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["Description"] == "same record again"


def test_more_than_200_records_go_in_calls_of_200(salesforce_connector, salesforce_state, salesforce_ids):
    ids = [salesforce_state.create_record("Contact", {"LastName": f"C{i}"}) for i in range(450)]
    updates = [RecordWrite(i, {"Title": f"T{n}"}) for n, i in enumerate(ids)]
    results = salesforce_connector.write("Contact", updates)
    assert all(r.written == {"Title"} for r in results)
    sizes = [len(r.body["records"]) for r in patches(salesforce_state)]
    assert sizes == [200, 200, 50]
    assert salesforce_state.get_record("Contact", ids[420])["Title"] == "T420"


def test_write_batch_size_is_one_collection_call(salesforce_connector, salesforce_state, salesforce_ids):
    # the pipeline hands ``write`` at most write_batch_size updates: that must fill one call, not half of one
    assert SalesforceConnector.write_batch_size == BATCH_SIZE == 200
    ids = [salesforce_state.create_record("Contact", {"LastName": f"C{i}"}) for i in range(200)]
    updates = [RecordWrite(i, {"Title": f"T{n}"}) for n, i in enumerate(ids)]
    results = salesforce_connector.write("Contact", updates[:salesforce_connector.write_batch_size])
    assert len(results) == 200 and all(r.written == {"Title"} for r in results)
    assert [len(r.body["records"]) for r in patches(salesforce_state)] == [200]


def test_datetime_with_milliseconds_is_unchanged_on_the_next_sync(salesforce_connector, salesforce_ids,
                                                                  salesforce_state):
    field = salesforce_connector.object_schema("Opportunity").fields["Next_Meeting__c"]
    assert field.scale == 0  # Salesforce keeps whole seconds
    extracted = "2025-03-04T15:30:45.678Z"
    value = coercion.coerce(extracted, field)
    assert value == dt.datetime(2025, 3, 4, 15, 30, 45, tzinfo=dt.UTC)
    [result] = salesforce_connector.write("Opportunity", [RecordWrite(
        salesforce_ids.opportunity, {"Next_Meeting__c": salesforce_connector.encode(field, value)})])
    assert result.written == {"Next_Meeting__c"}
    assert patches(salesforce_state)[0].body["records"][0]["Next_Meeting__c"] == "2025-03-04T15:30:45.000Z"
    # the next sync of the same extraction diffs equal against what Salesforce kept: nothing to send
    state = salesforce_connector.read("Opportunity", [salesforce_ids.opportunity], ["Next_Meeting__c"])
    raw = state[salesforce_ids.opportunity].values["Next_Meeting__c"]
    assert raw == "2025-03-04T15:30:45.000+0000"
    assert coercion.same_value(coercion.parse_current(raw, field), coercion.coerce(extracted, field), field)


def _opportunity(state, name):
    return state.create_record("Opportunity", {"Name": name, "StageName": "Prospecting", "CloseDate": "2025-01-31"})


@pytest.mark.parametrize("failure", ["503", "429", "timeout"])
def test_transient_failure_after_a_split_carries_the_settled_results(salesforce_state, salesforce_options,
                                                                    salesforce_session, salesforce_ids, failure):
    connector = SalesforceConnector(salesforce_options, session=salesforce_session, timeout=0.5)
    connector.object_schema("Opportunity")
    third = _opportunity(salesforce_state, "Third")
    updates = [
        RecordWrite(salesforce_ids.opportunity, {"NextStep": "landed"}),
        RecordWrite(salesforce_ids.opportunity2, {"Budget_Confirmed__c": "yes"}),  # JSON_PARSER_ERROR: split
        RecordWrite(salesforce_ids.deleted_opportunity, {"NextStep": "gone"}),
        RecordWrite(third, {"NextStep": "open"}),
    ]
    # all four are refused; the first half is refused and split to single records, which are answered;
    # then the second half of the first split fails
    if failure == "timeout":
        salesforce_state.fail_next(None, delay=1.0, after=4, path_contains="/composite/sobjects")
    else:
        salesforce_state.fail_next(int(failure), headers={"Retry-After": "5"}, after=4,
                                   path_contains="/composite/sobjects")
    with pytest.raises(TransientError) as info:
        connector.write("Opportunity", updates)
    assert [len(r.body["records"]) for r in patches(salesforce_state)] == [4, 2, 1, 1, 2]
    assert info.value.retry_after == (None if failure == "timeout" else 5.0)
    partial = {r.record_id: r for r in info.value.partial}
    assert list(partial) == [salesforce_ids.opportunity, salesforce_ids.opportunity2]
    assert partial[salesforce_ids.opportunity].written == {"NextStep"}
    assert not partial[salesforce_ids.opportunity].errors
    bad = partial[salesforce_ids.opportunity2]
    assert bad.written == frozenset() and bad.errors["Budget_Confirmed__c"].outcome == "invalid_value"
    assert bad.errors["Budget_Confirmed__c"].reason.startswith("JSON_PARSER_ERROR")
    if failure == "timeout":
        # the request we gave up on was applied after all: that is why its records are not in ``partial``
        for _ in range(60):
            if salesforce_state.get_record("Opportunity", third)["NextStep"] == "open":
                break
            time.sleep(0.05)
        assert salesforce_state.get_record("Opportunity", third)["NextStep"] == "open"
    else:
        assert salesforce_state.get_record("Opportunity", third)["NextStep"] is None
        # a retry sends only the unsettled records
        gone, retried = connector.write("Opportunity", updates[2:])
        assert gone.errors["NextStep"].reason.startswith("ENTITY_IS_DELETED")
        assert retried.written == {"NextStep"}
        assert salesforce_state.get_record("Opportunity", third)["NextStep"] == "open"
    connector.close()


def test_transient_failure_of_a_resend_keeps_only_the_answered_fields(salesforce_connector, salesforce_ids,
                                                                     salesforce_state):
    updates = [
        RecordWrite(salesforce_ids.opportunity, {"NextStep": "kept", "StageName": "closed won"}),
        RecordWrite(salesforce_ids.opportunity2, {"NextStep": "n2"}),
    ]
    salesforce_state.fail_next(503, after=1, path_contains="/composite/sobjects")  # the re-send without StageName
    with pytest.raises(TransientError) as info:
        salesforce_connector.write("Opportunity", updates)
    assert len(patches(salesforce_state)) == 2
    # the first record has an answer for StageName but none for NextStep: only the answer travels
    first, second = info.value.partial
    assert first.record_id == salesforce_ids.opportunity
    assert first.written == frozenset() and set(first.errors) == {"StageName"}
    assert second.record_id == salesforce_ids.opportunity2 and second.written == {"NextStep"}
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["NextStep"] == "Send proposal"


def test_transient_failure_of_a_later_batch_keeps_the_earlier_ones(salesforce_connector, salesforce_state,
                                                                   salesforce_ids):
    ids = [salesforce_state.create_record("Contact", {"LastName": f"C{i}"}) for i in range(250)]
    updates = [RecordWrite(i, {"Title": f"T{n}"}) for n, i in enumerate(ids)]
    updates.insert(0, RecordWrite("003notanid", {"Title": "x"}))  # settled locally, before any request
    salesforce_state.fail_next(429, after=1, path_contains="/composite/sobjects")
    with pytest.raises(TransientError) as info:
        salesforce_connector.write("Contact", updates)
    partial = info.value.partial
    assert [r.record_id for r in partial] == ["003notanid", *ids[:200]]
    assert partial[0].errors["Title"].reason.startswith("MALFORMED_ID")
    assert all(r.written == {"Title"} for r in partial[1:])
    assert salesforce_state.get_record("Contact", ids[249])["Title"] is None


def test_write_nothing_sends_nothing(salesforce_connector, salesforce_ids, salesforce_state):
    assert salesforce_connector.write("Opportunity", [RecordWrite(salesforce_ids.opportunity, {})])[0].written == set()
    assert patches(salesforce_state) == []


def test_encode(salesforce_connector):
    schema = salesforce_connector.object_schema("Opportunity")
    enc = salesforce_connector.encode
    assert enc(schema.fields["Amount"], Decimal("12500.00")) == 12500
    assert isinstance(enc(schema.fields["Amount"], Decimal("12500.00")), int)
    assert enc(schema.fields["Amount"], Decimal("0.5")) == 0.5
    assert enc(schema.fields["CloseDate"], dt.date(2024, 5, 1)) == "2024-05-01"
    assert enc(schema.fields["CloseDate"], dt.datetime(2024, 5, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))) \
        == "2024-05-02"
    when = dt.datetime(2024, 5, 1, 10, 0, 1, 250000, tzinfo=dt.UTC)
    assert enc(schema.fields["Next_Meeting__c"], when) == "2024-05-01T10:00:01.250Z"
    assert enc(schema.fields["Competitors__c"], ("Gong", "Clari")) == "Gong;Clari"
    assert enc(schema.fields["Budget_Confirmed__c"], True) is True
    assert enc(schema.fields["NextStep"], None) is None
    assert enc(schema.fields["Seats__c"], 7) == 7


def test_encoded_values_round_trip(salesforce_connector, salesforce_ids, salesforce_state):
    schema = salesforce_connector.object_schema("Opportunity")
    canonical = {"Amount": Decimal("1234.5"), "CloseDate": dt.date(2025, 1, 31),
                 "Next_Meeting__c": dt.datetime(2025, 2, 1, 9, 30, tzinfo=dt.UTC),
                 "Competitors__c": ("Clari", "Other"), "Budget_Confirmed__c": True, "Seats__c": 40,
                 "Probability": Decimal("55"), "Type": "Something Custom"}
    values = {name: salesforce_connector.encode(schema.fields[name], value) for name, value in canonical.items()}
    [result] = salesforce_connector.write("Opportunity", [RecordWrite(salesforce_ids.opportunity, values)])
    assert result.written == set(canonical) and not result.errors
    read = salesforce_connector.read("Opportunity", [salesforce_ids.opportunity], list(canonical))
    assert read[salesforce_ids.opportunity].values == {
        "Amount": 1234.5, "CloseDate": "2025-01-31", "Next_Meeting__c": "2025-02-01T09:30:00.000+0000",
        "Competitors__c": "Clari;Other", "Budget_Confirmed__c": True, "Seats__c": 40, "Probability": 55.0,
        "Type": "Something Custom"}


# ---------------------------------------------------------------- auth and errors


def test_expired_access_token_raises_auth_error(salesforce_connector, salesforce_state, salesforce_token):
    salesforce_state.expire_token(salesforce_token)
    with pytest.raises(AuthError) as info:
        salesforce_connector.object_schema("Opportunity")
    assert "INVALID_SESSION_ID" in str(info.value)
    assert salesforce_token not in str(info.value)
    assert len(salesforce_state.requests_matching("GET", "/describe")) == 1  # no retry


def test_password_login_renews_once(salesforce_state, salesforce_login, salesforce_session, salesforce_ids):
    connector = SalesforceConnector(salesforce_login, session=salesforce_session)
    connector.object_schema("Opportunity")
    assert connector.instance_url.startswith("https://127.0.0.1:")
    salesforce_state.expire_all_tokens()
    states = connector.read("Opportunity", [salesforce_ids.opportunity], ["Name"])
    assert states[salesforce_ids.opportunity].values == {"Name": "Acme Roofing - Renewal"}
    assert len(salesforce_state.requests_matching("POST", "/services/Soap/u/59.0")) == 2
    assert len(salesforce_state.requests_matching("GET", "/query")) == 2  # the rejected one and its retry


def test_password_login_renewal_that_keeps_failing(salesforce_state, salesforce_login, salesforce_session):
    connector = SalesforceConnector(salesforce_login, session=salesforce_session)
    connector.object_schema("Opportunity")
    salesforce_state.fail_next(401, times=5, path_contains="/query")
    with pytest.raises(AuthError):
        connector.read("Opportunity", [make_id("006", 1)], ["Name"])
    assert len(salesforce_state.requests_matching("GET", "/query")) == 2


def test_bad_password(salesforce_state, salesforce_login, salesforce_session):
    connector = SalesforceConnector({**salesforce_login, "password": "wrong-pass"}, session=salesforce_session)
    with pytest.raises(AuthError) as info:
        connector.check()
    assert "INVALID_LOGIN" in str(info.value)
    assert "wrong-pass" not in str(info.value) and "TOKEN123" not in str(info.value)


def test_jwt_login_renews_once(salesforce_state, salesforce_jwt, salesforce_session, salesforce_ids):
    connector = SalesforceConnector(salesforce_jwt, session=salesforce_session)
    [result] = connector.write("Opportunity", [RecordWrite(salesforce_ids.opportunity, {"NextStep": "jwt 1"})])
    assert result.written == {"NextStep"}
    salesforce_state.expire_all_tokens()
    [result] = connector.write("Opportunity", [RecordWrite(salesforce_ids.opportunity, {"NextStep": "jwt 2"})])
    assert result.written == {"NextStep"}
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["NextStep"] == "jwt 2"
    assert len(salesforce_state.requests_matching("POST", "/services/oauth2/token")) == 2
    assert len(patches(salesforce_state)) == 3


def test_jwt_with_unknown_key_is_rejected(salesforce_state, salesforce_jwt, salesforce_session, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = tmp_path / "other.key"
    other.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    connector = SalesforceConnector({**salesforce_jwt, "private_key_file": str(other)}, session=salesforce_session)
    with pytest.raises(AuthError) as info:
        connector.object_schema("Opportunity")
    assert "invalid_grant" in str(info.value)
    missing = SalesforceConnector({**salesforce_jwt, "private_key_file": str(tmp_path / "nope.key")},
                                  session=salesforce_session)
    with pytest.raises(AuthError) as info:
        missing.object_schema("Opportunity")
    assert "private_key_file" in str(info.value)


@pytest.mark.parametrize("status, body, headers, retry_after", [
    (503, None, {"Retry-After": "7"}, 7.0),
    (403, None, {}, None),
    (429, None, {"Retry-After": "2"}, 2.0),
    (500, [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}], {}, None),
])
def test_transient_errors(salesforce_connector, salesforce_state, salesforce_ids, status, body, headers, retry_after):
    salesforce_connector.object_schema("Opportunity")
    salesforce_state.fail_next(status, body, headers=headers)
    with pytest.raises(TransientError) as info:
        salesforce_connector.write("Opportunity", [RecordWrite(salesforce_ids.opportunity, {"NextStep": "x"})])
    assert info.value.retry_after == retry_after
    assert len(patches(salesforce_state)) == 1  # the connector does not retry
    if status == 403:
        assert "REQUEST_LIMIT_EXCEEDED" in str(info.value)


def test_timeout_is_transient(salesforce_state, salesforce_options, salesforce_session, salesforce_ids):
    connector = SalesforceConnector(salesforce_options, session=salesforce_session, timeout=0.3)
    salesforce_state.fail_next(None, delay=1.0)
    with pytest.raises(TransientError):
        connector.object_schema("Opportunity")


def test_login_unavailable_is_transient(salesforce_state, salesforce_login, salesforce_jwt, salesforce_session):
    for options, path in ((salesforce_login, "/services/Soap/"), (salesforce_jwt, "/services/oauth2/")):
        salesforce_state.fail_next(503, headers={"Retry-After": "4"}, path_contains=path)
        with pytest.raises(TransientError) as info:
            SalesforceConnector(options, session=salesforce_session).object_schema("Opportunity")
        assert info.value.retry_after == 4.0


def test_default_session_trusts_requests_ca_bundle(salesforce_options, salesforce_ids, monkeypatch):
    from simulators.tls import local_tls

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", local_tls().ca_bundle)
    connector = SalesforceConnector(salesforce_options)
    try:
        states = connector.read("Opportunity", [salesforce_ids.opportunity, salesforce_ids.opportunity[:15]], ["Name"])
    finally:
        connector.close()
    assert {s.values["Name"] for s in states.values()} == {"Acme Roofing - Renewal"}
    assert len(states) == 2


def test_check(salesforce_connector, salesforce_server):
    line = salesforce_connector.check()
    assert line.startswith(f"salesforce {salesforce_server.url} API v59.0 (api-usage ")
    assert "/15000)" in line


def test_secrets_stay_out_of_errors(salesforce_state, salesforce_options, salesforce_session, salesforce_token):
    connector = SalesforceConnector(salesforce_options, session=salesforce_session)
    salesforce_state.expire_token(salesforce_token)
    with pytest.raises(AuthError) as info:
        connector.check()
    text = str(info.value) + repr(info.value) + repr(connector._auth)
    assert salesforce_token not in text
    assert json.dumps(salesforce_token)[1:-1] not in text
    assert isinstance(FieldError("failed", "x"), FieldError)
