"""The HubSpot simulator's wire behaviour, checked with plain HTTP (httpx)."""

from __future__ import annotations

import json

import httpx
import pytest

from simulators.hubspot import DEFAULT_TOKEN, MAX_BATCH, HubSpotState

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


@pytest.fixture
def http(hubspot_url: str):
    with httpx.Client(base_url=hubspot_url, headers=AUTH, timeout=10) as client:
        yield client


def update(http: httpx.Client, object_type: str, inputs: list[dict]) -> httpx.Response:
    return http.post(f"/crm/v3/objects/{object_type}/batch/update", json={"inputs": inputs})


def invalid(response: httpx.Response) -> list[dict]:
    """The embedded list of a 400 'Property values were not valid' body."""
    body = response.json()
    assert response.status_code == 400, body
    assert body["category"] == "VALIDATION_ERROR"
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    entries = json.loads(body["message"][len(prefix):])
    assert [e["code"] for e in body["errors"]] == [e["error"] for e in entries]
    assert [e["context"]["propertyName"] for e in body["errors"]] == [[e["name"]] for e in entries]
    return entries


def test_unknown_token_is_401_invalid_authentication(hubspot_url: str) -> None:
    response = httpx.get(f"{hubspot_url}/crm/v3/properties/deals", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    body = response.json()
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["status"] == "error" and body["correlationId"]
    assert body["message"].startswith("Authentication credentials not found.")
    assert httpx.get(f"{hubspot_url}/crm/v3/properties/deals").status_code == 401


def test_expired_token_is_401_expired_authentication(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    hubspot_state.expire_token(DEFAULT_TOKEN)
    response = http.get("/crm/v3/properties/deals")
    assert response.status_code == 401
    body = response.json()
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired")


def test_properties_have_the_real_shape(http: httpx.Client) -> None:
    response = http.get("/crm/v3/properties/deals")
    assert response.status_code == 200
    props = {p["name"]: p for p in response.json()["results"]}
    for prop in props.values():
        assert {"name", "label", "type", "fieldType", "options", "calculated", "externalOptions", "hasUniqueValue",
                "hidden", "modificationMetadata", "groupName", "description", "formField"} <= set(prop)
        assert {"archivable", "readOnlyDefinition", "readOnlyValue"} <= set(prop["modificationMetadata"])
    assert props["dealstage"]["options"] == [] and props["dealstage"]["externalOptions"] is True
    assert props["pipeline"]["options"] == [] and props["pipeline"]["externalOptions"] is True
    assert props["competitors"]["fieldType"] == "checkbox"
    assert {"label", "value", "displayOrder", "hidden"} <= set(props["dealtype"]["options"][0])
    assert props["hs_forecast_amount"]["calculated"] is True


def test_unknown_object_type(http: httpx.Client) -> None:
    response = http.get("/crm/v3/properties/widgets")
    assert response.status_code == 400
    assert "Unable to infer object type from: widgets" in response.json()["message"]


def test_pipelines(http: httpx.Client) -> None:
    pipelines = http.get("/crm/v3/pipelines/deals").json()["results"]
    default = next(p for p in pipelines if p["id"] == "default")
    assert [s["id"] for s in default["stages"]][:2] == ["appointmentscheduled", "qualifiedtobuy"]
    assert {"id", "label", "displayOrder", "archived", "metadata"} <= set(default["stages"][0])
    other = next(p for p in pipelines if p["id"] != "default")
    assert all(s["id"].isdigit() for s in other["stages"])
    # As HubSpot creates pipelines: the closed stages repeat their labels in every pipeline.
    for pipeline in pipelines:
        assert {"Closed Won", "Closed Lost"} <= {s["label"] for s in pipeline["stages"]}


def test_batch_read_207_for_missing_ids(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    response = http.post("/crm/v3/objects/deals/batch/read",
                         json={"properties": ["dealname", "amount", "nope"], "inputs": [{"id": acme}, {"id": "42"}],
                               "propertiesWithHistory": []})
    assert response.status_code == 207
    body = response.json()
    assert body["status"] == "COMPLETE" and body["numErrors"] == 1
    [result] = body["results"]
    assert result["id"] == acme
    assert result["properties"]["amount"] == "12500"
    assert "nope" not in result["properties"]
    assert {"hs_object_id", "createdate", "hs_lastmodifieddate"} <= set(result["properties"])
    [error] = body["errors"]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"]["ids"] == ["42"]


def test_batch_limits(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    too_many = [{"id": str(1000 + i)} for i in range(MAX_BATCH + 1)]
    assert http.post("/crm/v3/objects/deals/batch/read", json={"properties": [], "inputs": too_many}).status_code == 400
    assert update(http, "deals", [{"id": i["id"], "properties": {}} for i in too_many]).status_code == 400
    duplicate = update(http, "deals", [{"id": acme, "properties": {"amount": "1"}},
                                       {"id": acme, "properties": {"amount": "2"}}])
    assert duplicate.status_code == 400 and "Duplicate IDs" in duplicate.json()["message"]
    assert hubspot_state.get_record("deals", acme)["amount"] == "12500"


def test_one_invalid_value_rejects_the_whole_batch(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    acme, globex = hubspot_state.named["deal_acme"], hubspot_state.named["deal_globex"]
    response = update(http, "deals", [{"id": acme, "properties": {"amount": "99"}},
                                      {"id": globex, "properties": {"dealtype": "NewBusiness"}}])
    [entry] = invalid(response)
    assert entry["error"] == "INVALID_OPTION" and entry["name"] == "dealtype"
    assert hubspot_state.get_record("deals", acme)["amount"] == "12500"  # nothing written


@pytest.mark.parametrize(
    ("prop", "value", "code"),
    [
        ("dealstage", "ClosedWon", "INVALID_OPTION"),  # case-sensitive against stage ids
        ("dealstage", "Closed Won", "INVALID_OPTION"),  # labels are not values
        ("dealstage", "61342873", "INVALID_OPTION"),  # a stage of another pipeline
        ("pipeline", "Sales Pipeline", "INVALID_OPTION"),
        ("competitors", "globex;Initech", "INVALID_OPTION"),
        ("deal_temperature", " hot", "INVALID_OPTION"),
        ("contract_start_date", "2026-05-01T10:00:00Z", "INVALID_DATE"),
        ("contract_start_date", "1777629600000", "INVALID_DATE"),  # 2026-05-01T10:00Z in epoch millis
        ("contract_start_date", "May 1st", "INVALID_DATE"),
        ("next_meeting_at", "tomorrow", "INVALID_DATETIME"),
        ("amount", "1e3", "INVALID_INTEGER"),
        ("amount", "12,500", "INVALID_INTEGER"),
        ("budget_confirmed", "yes", "INVALID_BOOLEAN"),
        ("budget_confirmed", "True", "INVALID_BOOLEAN"),
        ("hs_forecast_amount", "5", "READ_ONLY_VALUE"),
        ("hs_deal_stage_probability", "0.5", "READ_ONLY_VALUE"),
        ("no_such_property", "x", "PROPERTY_DOESNT_EXIST"),
        ("description", "x" * 65537, "MAX_LENGTH_EXCEEDED"),
    ],
)
def test_invalid_values(http: httpx.Client, hubspot_state: HubSpotState, prop: str, value: str, code: str) -> None:
    acme = hubspot_state.named["deal_acme"]
    [entry] = invalid(update(http, "deals", [{"id": acme, "properties": {prop: value}}]))
    assert (entry["name"], entry["error"]) == (prop, code)


def test_valid_values_are_stored_as_strings(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    response = update(http, "deals", [{"id": acme, "properties": {
        "contract_start_date": "1777593600000",  # 2026-05-01T00:00Z
        "next_meeting_at": "2026-05-01T12:30:00+02:00",
        "amount": 1500.5,
        "budget_confirmed": True,
        "competitors": "globex;initech",
        "dealstage": "closedwon",
        "deal_temperature": "frozen",  # hidden options are still valid values
        "description": "",
    }}])
    assert response.status_code == 200, response.text
    stored = hubspot_state.get_record("deals", acme)
    assert stored["contract_start_date"] == "2026-05-01"
    assert stored["next_meeting_at"] == "2026-05-01T10:30:00.000Z"
    assert stored["amount"] == "1500.5"
    assert stored["budget_confirmed"] == "true"
    assert stored["competitors"] == "globex;initech"
    assert stored["description"] == ""


def test_missing_records_are_207_and_the_others_land(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    response = update(http, "deals", [{"id": acme, "properties": {"amount": "7"}},
                                      {"id": "123", "properties": {"amount": "8"}}])
    assert response.status_code == 207
    body = response.json()
    assert [r["id"] for r in body["results"]] == [acme]
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"]["ids"] == ["123"]
    assert hubspot_state.get_record("deals", acme)["amount"] == "7"


def test_pipeline_change_needs_a_matching_stage(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    [entry] = invalid(update(http, "deals", [{"id": acme, "properties": {"pipeline": "19826473"}}]))
    assert entry["name"] == "pipeline"
    ok = update(http, "deals", [{"id": acme, "properties": {"pipeline": "19826473", "dealstage": "61342872"}}])
    assert ok.status_code == 200


def test_single_read(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    response = http.get(f"/crm/v3/objects/deals/{acme}", params={"properties": "dealname,amount"})
    assert response.status_code == 200
    assert response.json()["properties"]["dealname"] == "Acme - Platform"
    missing = http.get("/crm/v3/objects/deals/5")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_rate_limit(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    hubspot_state.rate_limit(2, interval_s=10)
    first = http.get("/crm/v3/properties/deals")
    assert first.headers["X-HubSpot-RateLimit-Max"] == "2"
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == "1"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    http.get("/crm/v3/properties/deals")
    limited = http.get("/crm/v3/properties/deals")
    assert limited.status_code == 429
    body = limited.json()
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_hidden_options_are_accepted_and_removed_ones_are_not(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    options = {o["value"]: o["hidden"] for o in hubspot_state.get_property("deals", "deal_temperature")["options"]}
    assert options["frozen"] is True
    assert update(http, "deals", [{"id": acme, "properties": {"deal_temperature": "frozen"}}]).status_code == 200
    hubspot_state.add_property("deals", "deal_temperature", "enumeration", "select", hubspot_defined=False,
                               options=[("hot", "Hot"), ("warm", "Warm")])
    [entry] = invalid(update(http, "deals", [{"id": acme, "properties": {"deal_temperature": "frozen"}}]))
    assert entry["error"] == "INVALID_OPTION"


def test_missing_scopes_is_403_for_that_object_type_only(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    assert hubspot_state.revoke_scopes("deals", "write") == ["crm.objects.deals.write"]
    acme = hubspot_state.named["deal_acme"]
    response = update(http, "deals", [{"id": acme, "properties": {"amount": "1"}}])
    assert response.status_code == 403
    body = response.json()
    assert body["category"] == "MISSING_SCOPES" and body["status"] == "error" and body["correlationId"]
    assert body["message"].startswith("This app hasn't been granted all required scopes to make this call.")
    assert body["errors"] == [{"message": "One or more of the following scopes are required.",
                               "context": {"requiredGranularScopes": ["crm.objects.deals.write"]}}]
    assert body["links"] == {"scopes": "https://developers.hubspot.com/scopes"}
    assert http.patch(f"/crm/v3/objects/0-3/{acme}", json={"properties": {"amount": "1"}}).status_code == 403
    assert hubspot_state.get_record("deals", acme)["amount"] == "12500"
    # Reads of deals, and writes of other objects, are still allowed.
    assert http.get(f"/crm/v3/objects/deals/{acme}").status_code == 200
    assert http.get("/crm/v3/properties/deals").status_code == 200
    company = hubspot_state.named["company_acme"]
    assert update(http, "companies", [{"id": company, "properties": {"city": "Salem"}}]).status_code == 200

    hubspot_state.revoke_scopes("leads", token="some-other-token")
    assert http.get("/crm/v3/properties/leads").status_code == 200  # another token's scopes
    hubspot_state.revoke_scopes("leads")
    forbidden = http.get("/crm/v3/properties/leads")
    assert forbidden.status_code == 403
    assert forbidden.json()["errors"][0]["context"]["requiredGranularScopes"] == ["crm.schemas.leads.read"]
    assert http.get("/crm/v3/pipelines/leads").status_code == 403
    assert http.post("/crm/v3/objects/leads/batch/read", json={"properties": [], "inputs": []}).status_code == 403
    assert http.get("/crm/v3/properties/widgets").status_code == 400  # unknown types answer as before

    hubspot_state.grant_scopes()
    assert update(http, "deals", [{"id": acme, "properties": {"amount": "1"}}]).status_code == 200
    with pytest.raises(ValueError):
        hubspot_state.revoke_scopes("deals", "delete")


def test_fail_next_after_lets_requests_through_first(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    hubspot_state.fail_next(503, path_contains="batch/update", after=2)
    acme = hubspot_state.named["deal_acme"]
    assert http.get("/crm/v3/properties/deals").status_code == 200  # not matching: not counted
    statuses = [update(http, "deals", [{"id": acme, "properties": {"amount": str(n)}}]).status_code for n in range(4)]
    assert statuses == [200, 200, 503, 200]


def test_fail_next_and_request_log(http: httpx.Client, hubspot_state: HubSpotState) -> None:
    hubspot_state.fail_next(503, times=2, path_contains="batch/update")
    acme = hubspot_state.named["deal_acme"]
    assert http.get("/crm/v3/properties/deals").status_code == 200
    assert update(http, "deals", [{"id": acme, "properties": {"amount": "1"}}]).status_code == 503
    assert update(http, "deals", [{"id": acme, "properties": {"amount": "1"}}]).status_code == 503
    assert update(http, "deals", [{"id": acme, "properties": {"amount": "1"}}]).status_code == 200
    updates = hubspot_state.requests_to("POST", "batch/update")
    assert [r.status for r in updates] == [503, 503, 200]
    assert updates[0].body == {"inputs": [{"id": acme, "properties": {"amount": "1"}}]}
    assert DEFAULT_TOKEN not in repr(hubspot_state.requests)
