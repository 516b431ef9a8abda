"""The Salesforce simulator's strictness, spoken to over plain HTTPS."""

from __future__ import annotations

import pytest

from simulators.salesforce import id_suffix, make_id, to_id18


@pytest.fixture
def api(salesforce_server, salesforce_session, salesforce_token):
    base = f"{salesforce_server.url}/services/data/v59.0"
    headers = {"Authorization": f"Bearer {salesforce_token}"}

    def call(method, path, **kwargs):
        response = salesforce_session.request(method, base + path, headers=headers, **kwargs)
        body = response.json() if response.content else None
        return response.status_code, body, response.headers.copy()

    return call


def collection(*records, all_or_none=False):
    return {"allOrNone": all_or_none, "records": [{"attributes": {"type": "Opportunity"}, **r} for r in records]}


def test_id_checksum():
    # Salesforce's documented example: 001A0000006Vm9r -> 001A0000006Vm9rIAC
    assert id_suffix("001A0000006Vm9r") == "IAC"
    assert to_id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert to_id18("001a0000006vm9riac") == "001A0000006Vm9rIAC"  # 18-char ids are case-insensitive
    assert to_id18("001A0000006Vm9rIAD") is None
    assert to_id18("001A0000006Vm9") is None
    assert to_id18("001A0000006Vm9r!") is None
    made = make_id("006", 5)
    assert len(made) == 18 and made.startswith("006") and to_id18(made) == made


def test_auth_and_limit_header(api, salesforce_server, salesforce_session, salesforce_state):
    status, body, headers = api("GET", "/limits/")
    assert status == 200 and body["DailyApiRequests"]["Max"] == 15000
    assert headers["Sforce-Limit-Info"].startswith("api-usage=")
    response = salesforce_session.get(f"{salesforce_server.url}/services/data/v59.0/limits/",
                                      headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert "Sforce-Limit-Info" in response.headers
    versions = salesforce_session.get(f"{salesforce_server.url}/services/data/").json()
    assert {"label": "API 59.0", "url": "/services/data/v59.0", "version": "59.0"} in versions


def test_describe_unknown_object(api):
    status, body, _ = api("GET", "/sobjects/Nope__c/describe")
    assert status == 404 and body == [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    status, body, _ = api("GET", "/sobjects/Opportunity/describe/")
    assert status == 200 and body["keyPrefix"] == "006"
    stage = next(f for f in body["fields"] if f["name"] == "StageName")
    assert stage["restrictedPicklist"] is True and stage["picklistValues"][0].keys() == {
        "active", "defaultValue", "label", "validFor", "value"}


def test_query_errors(api, salesforce_ids):
    status, body, _ = api("GET", "/query/", params={"q": "SELECT Id, Nope FROM Opportunity"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Nope' on entity 'Opportunity'" in body[0]["message"]
    q = f"SELECT Id FROM Opportunity WHERE Id IN ('{salesforce_ids.opportunity}', 'abc')"
    status, body, _ = api("GET", "/query/", params={"q": q})
    assert status == 400 and body[0]["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"
    assert "invalid ID field: abc" in body[0]["message"]
    q = f"SELECT Id, Amount FROM Opportunity WHERE Id = '{salesforce_ids.opportunity[:15]}'"
    status, body, _ = api("GET", "/query/", params={"q": q})
    assert status == 200 and body["totalSize"] == 1 and body["done"] is True
    record = body["records"][0]
    assert record["Id"] == salesforce_ids.opportunity and record["Amount"] == 12500.0
    assert record["attributes"] == {"type": "Opportunity",
                                    "url": f"/services/data/v59.0/sobjects/Opportunity/{salesforce_ids.opportunity}"}


def test_restricted_picklist_is_case_sensitive(api, salesforce_ids, salesforce_state):
    status, body, _ = api("PATCH", "/composite/sobjects",
                          json=collection({"id": salesforce_ids.opportunity, "StageName": "closed won",
                                           "NextStep": "x"}))
    assert status == 200
    assert body == [{"success": False, "errors": [{
        "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "message": "Stage: bad value for restricted picklist field: closed won", "fields": ["StageName"]}]}]
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["NextStep"] == "Send proposal"
    status, body, _ = api("PATCH", "/composite/sobjects",
                          json=collection({"id": salesforce_ids.opportunity, "StageName": "Legacy Stage"}))
    assert body[0]["success"] is False  # inactive values are refused too
    status, body, _ = api("PATCH", "/composite/sobjects",
                          json=collection({"id": salesforce_ids.opportunity, "Competitors__c": "Gong;gong"}))
    assert body[0]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_more_than_200_records_rejected(api, salesforce_ids):
    records = [{"id": salesforce_ids.opportunity, "NextStep": str(i)} for i in range(201)]
    status, body, _ = api("PATCH", "/composite/sobjects", json=collection(*records))
    assert status == 400 and body[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


@pytest.mark.parametrize("field, value", [
    ("Budget_Confirmed__c", "true"), ("Amount", "12"), ("CloseDate", "2024-13-01"), ("CloseDate", "05/01/2024"),
    ("Seats__c", 1.5), ("NextStep", ["a"]), ("Competitors__c", ["Gong", "Clari"]), ("Next_Meeting__c", "soon"),
    ("NextStep", 5), ("Nope__c", {"a": 1}),
])
def test_json_type_errors_fail_the_whole_request(api, salesforce_ids, salesforce_state, field, value):
    payload = collection({"id": salesforce_ids.opportunity2, "NextStep": "fine"},
                         {"id": salesforce_ids.opportunity, field: value})
    status, body, _ = api("PATCH", "/composite/sobjects", json=payload)
    assert status == 400 and body[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert body[0]["message"].startswith("Cannot deserialize instance of")
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity2)["NextStep"] is None


def test_per_record_errors_and_ids(api, salesforce_ids, salesforce_state):
    never = make_id("006", 99999)
    payload = collection(
        {"id": salesforce_ids.opportunity, "NextStep": "ok", "Amount": 10.555},
        {"id": "006abc", "NextStep": "x"},
        {"id": salesforce_ids.account, "NextStep": "x"},
        {"id": salesforce_ids.deleted_opportunity, "NextStep": "x"},
        {"id": never, "NextStep": "x"},
        {"id": salesforce_ids.opportunity2, "ExpectedRevenue": 5, "IsClosed": True, "Nope__c": "x",
         "NextStep": "y" * 256, "Probability": 1000, "Name": None},
    )
    status, body, _ = api("PATCH", "/composite/sobjects", json=payload)
    assert status == 200 and len(body) == 6
    assert body[0] == {"id": salesforce_ids.opportunity, "success": True, "errors": []}
    codes = [[e["statusCode"] for e in r["errors"]] for r in body[1:]]
    assert codes[:4] == [["MALFORMED_ID"], ["MALFORMED_ID"], ["ENTITY_IS_DELETED"], ["INVALID_CROSS_REFERENCE_KEY"]]
    assert sorted(codes[4]) == sorted(["INVALID_FIELD", "STRING_TOO_LONG", "NUMBER_OUTSIDE_VALID_RANGE",
                                       "REQUIRED_FIELD_MISSING", "INVALID_FIELD_FOR_INSERT_UPDATE"])
    not_updateable = next(e for e in body[5]["errors"] if e["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE")
    assert not_updateable["fields"] == ["ExpectedRevenue", "IsClosed"]
    assert all("id" not in r for r in body[1:])
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["Amount"] == 10.56


def test_all_or_none_rolls_back(api, salesforce_ids, salesforce_state):
    payload = collection({"id": salesforce_ids.opportunity, "NextStep": "rolled"},
                         {"id": salesforce_ids.opportunity2, "StageName": "Nope"}, all_or_none=True)
    status, body, _ = api("PATCH", "/composite/sobjects", json=payload)
    assert status == 200
    assert body[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["NextStep"] == "Send proposal"


def test_single_record_get_and_patch(api, salesforce_ids, salesforce_state):
    status, body, _ = api("GET", f"/sobjects/Opportunity/{salesforce_ids.opportunity[:15]}",
                          params={"fields": "Name,Amount"})
    assert status == 200 and body["Name"] == "Acme Roofing - Renewal" and body["Amount"] == 12500.0
    status, body, _ = api("PATCH", f"/sobjects/Opportunity/{salesforce_ids.opportunity}", json={"NextStep": "z"})
    assert status == 204 and body is None
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["NextStep"] == "z"
    status, body, _ = api("PATCH", f"/sobjects/Opportunity/{salesforce_ids.opportunity}", json={"StageName": "x"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    status, body, _ = api("GET", f"/sobjects/Opportunity/{salesforce_ids.deleted_opportunity}")
    assert status == 404 and body[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_fault_injection_and_log(api, salesforce_state):
    salesforce_state.fail_next(503, headers={"Retry-After": "3"})
    status, body, headers = api("GET", "/limits/")
    assert status == 503 and headers["Retry-After"] == "3"
    assert api("GET", "/limits/")[0] == 200
    entries = salesforce_state.requests_matching("GET", "/limits")
    assert len(entries) == 2 and all(e.authorized for e in entries)


def test_soap_login_fault(salesforce_session, salesforce_login):
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed
    from simple_salesforce.login import SalesforceLogin

    session_id, instance = SalesforceLogin(username=salesforce_login["username"], password="s3cret-Pass",
                                           security_token="TOKEN123", session=salesforce_session)
    assert instance.startswith("127.0.0.1:") and session_id
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        SalesforceLogin(username=salesforce_login["username"], password="s3cret-Pass", security_token="bad",
                        session=salesforce_session)
    assert info.value.code == "INVALID_LOGIN"


def test_login_secrets_are_not_logged(salesforce_state, salesforce_session, salesforce_login):
    from simple_salesforce.login import SalesforceLogin

    SalesforceLogin(username=salesforce_login["username"], password="s3cret-Pass", security_token="TOKEN123",
                    session=salesforce_session)
    assert "s3cret" not in repr(salesforce_state.requests)


def test_datetimes_are_kept_to_the_second(api, salesforce_ids, salesforce_state):
    # Salesforce drops the milliseconds it is sent: SOQL answers ``.000``
    status, body, _ = api("PATCH", "/composite/sobjects", json=collection(
        {"id": salesforce_ids.opportunity, "Next_Meeting__c": "2025-03-04T10:30:45.678-05:00"}))
    assert status == 200 and body[0]["success"] is True
    q = f"SELECT Id, Next_Meeting__c, LastModifiedDate FROM Opportunity WHERE Id = '{salesforce_ids.opportunity}'"
    status, body, _ = api("GET", "/query/", params={"q": q})
    record = body["records"][0]
    assert record["Next_Meeting__c"] == "2025-03-04T15:30:45.000+0000"
    assert record["LastModifiedDate"].endswith(".000+0000")


def test_describe_reports_nillable_as_salesforce_does(api, salesforce_state):
    from simulators.salesforce import SFField

    salesforce_state.add_field("Opportunity", SFField("Is_Priority__c", "boolean"))  # nillable not said
    status, body, _ = api("GET", "/sobjects/Opportunity/describe")
    assert status == 200
    nillable = {f["name"]: f["nillable"] for f in body["fields"]}
    assert nillable["Is_Priority__c"] is False and nillable["Budget_Confirmed__c"] is False  # checkboxes never null
    assert nillable["CloseDate"] is False and nillable["Id"] is False
    assert nillable["NextStep"] is True and nillable["Amount"] is True


def test_fault_after_and_query_contains(api, salesforce_ids, salesforce_state):
    salesforce_state.fail_next(503, after=1, path_contains="/limits")
    assert api("GET", "/limits/")[0] == 200  # let through
    assert api("GET", "/limits/")[0] == 503
    assert api("GET", "/limits/")[0] == 200  # spent
    refused = make_id("006", 55555)
    salesforce_state.fail_next(400, [{"message": "invalid ID field", "errorCode": "INVALID_QUERY_FILTER_OPERATOR"}],
                               times=5, path_contains="/query", query_contains=refused)
    ok = f"SELECT Id FROM Opportunity WHERE Id = '{salesforce_ids.opportunity}'"
    assert api("GET", "/query/", params={"q": ok})[0] == 200
    status, body, _ = api("GET", "/query/", params={"q": f"SELECT Id FROM Opportunity WHERE Id = '{refused}'"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"


def test_dependent_picklist_describe(api, salesforce_state):
    import base64

    from simulators.salesforce import PicklistValue, SFField

    salesforce_state.add_field("Account", SFField("Sub_Industry__c", "picklist", controller="Industry", picklist_values=[
        PicklistValue("Solar", valid_for=("Energy",)),
        PicklistValue("Any", valid_for=("Agriculture", "Technology")),
    ]))
    status, body, _ = api("GET", "/sobjects/Account/describe")
    assert status == 200
    fields = {f["name"]: f for f in body["fields"]}
    sub = fields["Sub_Industry__c"]
    assert sub["controllerName"] == "Industry" and sub["dependentPicklist"] is True
    industries = [p["value"] for p in fields["Industry"]["picklistValues"]]
    assert industries.index("Energy") == 3 and industries.index("Technology") == 5
    solar, any_ = (base64.b64decode(p["validFor"]) for p in sub["picklistValues"])
    assert solar == bytes([0b00010000, 0, 0])  # bit 3, most significant first, in 3 bytes as Salesforce sends
    assert any_ == bytes([0b10000100, 0, 0])
    assert fields["Industry"]["dependentPicklist"] is False and fields["Industry"]["controllerName"] is None
    assert all(p["validFor"] is None for p in fields["Industry"]["picklistValues"])
