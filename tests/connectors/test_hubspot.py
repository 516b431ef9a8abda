"""HubSpotConnector through hubspot-api-client against the served simulator (no mocks)."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest

from connectors.base import (
    AuthError,
    FieldType,
    ModelTarget,
    PermanentError,
    RecordWrite,
    TransientError,
    UnknownObject,
)
from connectors.hubspot import HubSpotConnector
from simulators.hubspot import (
    DEFAULT_TOKEN,
    RENEWALS_PIPELINE,
    HubSpotState,
    create_app,
    seed_default_portal,
)
from simulators.server import ServedApp, free_port
from simulators.tls import local_tls
from worker.errors import ConfigError
from worker.pipeline.coercion import InvalidValue, coerce


def make_deals(state: HubSpotState, count: int) -> list[str]:
    return [state.add_record("deals", {"dealname": f"Deal {i}", "pipeline": "default",
                                       "dealstage": "appointmentscheduled"}) for i in range(count)]


# ---------------------------------------------------------------- construction


def test_default_models() -> None:
    models = HubSpotConnector.default_models
    assert models["opportunity"] == models["deal"] == ModelTarget("opportunity", "deals")
    assert models["account"] == models["company"] == ModelTarget("account", "companies")
    assert models["contact"] == ModelTarget("contacts", "contacts")
    assert models["lead"] == ModelTarget("lead", "leads")
    for alias in ("engagement", "event", "appointment", "meeting"):
        assert models[alias] == ModelTarget("engagement", "meetings")
    assert models["user"] == models["owner"] == ModelTarget("users", None)
    assert HubSpotConnector.name == "hubspot"


def test_missing_token_is_a_config_error_and_init_does_no_io() -> None:
    for options in ({"api_url": "http://127.0.0.1:9"}, {"access_token": "  "}, {"access_token": 12345}):
        with pytest.raises(ConfigError, match="access_token") as info:
            HubSpotConnector(options)
        assert isinstance(info.value, ValueError)  # the connector pool reports it as a config error
        assert "12345" not in str(info.value)
    with pytest.raises(ConfigError, match="api_url"):
        HubSpotConnector({"access_token": "pat-secret-value", "api_url": "api.hubapi.com"})
    with pytest.raises(ConfigError, match="timeout_s"):
        HubSpotConnector({"access_token": "pat-secret-value", "timeout_s": "soon"})
    connector = HubSpotConnector({"access_token": "pat-secret-value", "api_url": "http://127.0.0.1:9"})
    assert connector.api_url == "http://127.0.0.1:9"
    assert "pat-secret-value" not in repr(connector)
    assert HubSpotConnector({"access_token": "x"}).api_url == "https://api.hubapi.com"


# ---------------------------------------------------------------- schema


def test_schema_maps_properties_and_pipelines(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    schema = hubspot_connector.object_schema("deals")
    f = schema.fields
    assert f["dealname"].type == FieldType.STRING and f["dealname"].max_length == 65536
    assert f["description"].type == FieldType.TEXT and f["description"].max_length == 65536
    assert f["amount"].type == FieldType.NUMBER
    assert f["contract_start_date"].type == FieldType.DATE
    assert f["next_meeting_at"].type == FieldType.DATETIME
    assert f["budget_confirmed"].type == FieldType.BOOLEAN
    assert f["competitors"].type == FieldType.MULTIPICKLIST and f["competitors"].restricted
    assert f["dealtype"].type == FieldType.PICKLIST and f["dealtype"].restricted
    assert f["dealtype"].crm_type == "enumeration/radio"

    stage = f["dealstage"]
    assert stage.type == FieldType.PICKLIST and stage.restricted and stage.writable
    values = {o.value: o.label for o in stage.options}
    assert values["closedwon"] == "Closed Won"
    assert values["appointmentscheduled"] == "Appointment Scheduled"
    assert values["61342872"] == "Renewal Proposal"
    assert {o.value for o in f["pipeline"].options} == {"default", "19826473"}

    temperature = {o.value: o.active for o in f["deal_temperature"].options}
    assert temperature == {"hot": True, "warm": True, "cold": True, "frozen": True}  # hidden is still a value

    assert not f["hs_forecast_amount"].writable and "calculated" in f["hs_forecast_amount"].not_writable_reason
    assert not f["hs_deal_stage_probability"].writable
    assert "read-only" in f["hs_deal_stage_probability"].not_writable_reason
    assert not f["hs_object_id"].writable
    owner = f["hubspot_owner_id"]
    assert owner.writable and not owner.restricted and owner.options == ()

    # cached: no more requests
    before = len(hubspot_state.requests)
    assert hubspot_connector.object_schema("deals") is schema
    assert len(hubspot_state.requests) == before
    assert schema.field("DealStage") is stage


def test_deal_stages_are_published_per_pipeline(hubspot_connector: HubSpotConnector,
                                                 hubspot_state: HubSpotState) -> None:
    # "Closed Won" is a stage of both deal pipelines (closedwon, 61342873): only
    # the deal's pipeline says which one a label means.
    stage = hubspot_connector.object_schema("deals").fields["dealstage"]
    assert stage.controller == "pipeline"
    assert set(stage.dependent_options) == {"default", RENEWALS_PIPELINE}
    assert [o.value for o in stage.dependent_options[RENEWALS_PIPELINE]] == ["61342871", "61342872", "61342873",
                                                                           "61342874"]
    assert {o.value for o in stage.options} == {o.value for opts in stage.dependent_options.values() for o in opts}
    with pytest.raises(InvalidValue, match="several options"):
        coerce("Closed Won", stage)  # the union alone cannot tell
    assert coerce("Closed Won", stage.for_controller("default")) == "closedwon"
    assert coerce("closed won", stage.for_controller(RENEWALS_PIPELINE)) == "61342873"
    assert coerce("Closed Lost", stage.for_controller(RENEWALS_PIPELINE)) == "61342874"
    with pytest.raises(InvalidValue, match="not an option"):
        coerce("Contract Sent", stage.for_controller(RENEWALS_PIPELINE))  # a stage of the other pipeline
    assert hubspot_connector.object_schema("deals").fields["pipeline"].controller is None

    # What the pipeline does: read the controller, coerce against its options, write.
    acme, initech = hubspot_state.named["deal_acme"], hubspot_state.named["deal_initech"]
    current = hubspot_connector.read("deals", [acme, initech], ["pipeline", "dealstage"])
    updates = [RecordWrite(rid, {"dealstage": hubspot_connector.encode(
        stage, coerce("Closed Won", stage.for_controller(current[rid].values["pipeline"])))}) for rid in (acme, initech)]
    results = hubspot_connector.write("deals", updates)
    assert [r.written for r in results] == [{"dealstage"}, {"dealstage"}]
    assert hubspot_state.get_record("deals", acme)["dealstage"] == "closedwon"
    assert hubspot_state.get_record("deals", initech)["dealstage"] == "61342873"


def test_stages_of_archived_pipelines_and_stages_are_inactive(make_hubspot_connector,
                                                              hubspot_state: HubSpotState) -> None:
    hubspot_state.add_pipeline("deals", "30000001", "Old channel", [("70000001", "Closed Won")], archived=True)
    hubspot_state.add_pipeline("deals", "30000002", "Partners", [
        ("70000002", "Signed"), {"id": "70000003", "label": "Legacy", "archived": True}])
    stage = make_hubspot_connector().object_schema("deals").fields["dealstage"]
    assert [(o.value, o.active) for o in stage.dependent_options["30000001"]] == [("70000001", False)]
    assert [(o.value, o.active) for o in stage.dependent_options["30000002"]] == [("70000002", True),
                                                                                 ("70000003", False)]
    with pytest.raises(InvalidValue):
        coerce("Legacy", stage.for_controller("30000002"))
    with pytest.raises(InvalidValue):
        coerce("Closed Won", stage.for_controller("30000001"))
    with pytest.raises(InvalidValue):
        coerce("Signed", stage.for_controller("no-such-pipeline"))


def test_hidden_options_are_valid_values(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    # "frozen" is hidden: kept off HubSpot's pickers and forms, still accepted by the API.
    field = hubspot_connector.object_schema("deals").fields["deal_temperature"]
    value = coerce("Frozen", field)
    assert value == "frozen"
    acme = hubspot_state.named["deal_acme"]
    [result] = hubspot_connector.write("deals", [RecordWrite(acme, {"deal_temperature": hubspot_connector.encode(
        field, value)})])
    assert result.written == {"deal_temperature"} and not result.errors
    assert hubspot_state.get_record("deals", acme)["deal_temperature"] == "frozen"


def test_schema_of_leads_uses_its_pipelines(hubspot_connector: HubSpotConnector) -> None:
    schema = hubspot_connector.object_schema("leads")
    stages = {o.value: o.label for o in schema.fields["hs_pipeline_stage"].options}
    assert stages["qualified-stage-id"] == "Qualified"
    assert schema.fields["hs_pipeline_stage"].controller == "hs_pipeline"
    assert coerce("qualified", schema.fields["hs_pipeline_stage"].for_controller("lead-pipeline-id")) == \
        "qualified-stage-id"
    companies = hubspot_connector.object_schema("companies")
    assert companies.fields["phone"].type == FieldType.STRING
    meetings = hubspot_connector.object_schema("meetings")
    assert meetings.fields["hs_meeting_body"].type == FieldType.TEXT
    assert meetings.fields["hs_meeting_start_time"].type == FieldType.DATETIME


def test_unknown_object(hubspot_connector: HubSpotConnector) -> None:
    with pytest.raises(UnknownObject):
        hubspot_connector.object_schema("widgets")
    with pytest.raises(UnknownObject):
        hubspot_connector.read("widgets", ["1"], ["name"])


# ---------------------------------------------------------------- read


def test_read_typed_values_and_missing_ids(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    acme, globex = hubspot_state.named["deal_acme"], hubspot_state.named["deal_globex"]
    hubspot_state.archive_record("deals", globex)
    fields = ["dealname", "amount", "contract_start_date", "dealstage", "competitors", "budget_confirmed"]
    states = hubspot_connector.read("deals", [acme, "404404", globex, "not-an-id"], fields)
    assert list(states) == [acme, "404404", globex, "not-an-id"]
    values = states[acme].values
    assert values["dealname"] == "Acme - Platform"
    assert values["amount"] == "12500"
    assert values["contract_start_date"] == "2026-12-31"
    assert values["dealstage"] == "qualifiedtobuy"
    assert values["competitors"] is None and values["budget_confirmed"] is None
    for missing in ("404404", globex):
        assert states[missing].values is None
        assert states[missing].error.outcome == "failed"
        assert states[missing].error.reason.startswith("OBJECT_NOT_FOUND")
    assert states["not-an-id"].values is None and "malformed" in states["not-an-id"].error.reason

    [request] = hubspot_state.requests_to("POST", "batch/read")
    assert request.body["properties"] == fields  # only what is needed
    assert [i["id"] for i in request.body["inputs"]] == [acme, "404404", globex]  # the malformed id is not sent


def test_read_splits_into_batches_of_100(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    ids = make_deals(hubspot_state, 230)
    states = hubspot_connector.read("deals", ids, ["dealname"])
    assert len(states) == 230 and all(s.values is not None for s in states.values())
    sizes = [len(r.body["inputs"]) for r in hubspot_state.requests_to("POST", "batch/read")]
    assert sizes == [100, 100, 30]


# ---------------------------------------------------------------- write


def test_write_happy_path(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    schema = hubspot_connector.object_schema("deals")
    enc = hubspot_connector.encode
    acme, globex = hubspot_state.named["deal_acme"], hubspot_state.named["deal_globex"]
    updates = [
        RecordWrite(acme, {
            "amount": enc(schema.fields["amount"], Decimal("15000.50")),
            "contract_start_date": enc(schema.fields["contract_start_date"], dt.date(2027, 1, 15)),
            "dealstage": enc(schema.fields["dealstage"], "closedwon"),
            "budget_confirmed": enc(schema.fields["budget_confirmed"], True),
            "competitors": enc(schema.fields["competitors"], ("globex", "umbrella")),
            "next_meeting_at": enc(schema.fields["next_meeting_at"],
                                   dt.datetime(2027, 1, 3, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
        }),
        RecordWrite(globex, {"hs_next_step": "Send the proposal", "description": enc(schema.fields["description"], None)}),
    ]
    results = hubspot_connector.write("deals", updates)
    assert [r.record_id for r in results] == [acme, globex]
    assert results[0].written == frozenset(updates[0].values) and not results[0].errors
    assert results[1].written == {"hs_next_step", "description"}
    assert len(hubspot_state.requests_to("POST", "batch/update")) == 1

    stored = hubspot_state.get_record("deals", acme)
    assert stored["amount"] == "15000.50"
    assert stored["contract_start_date"] == "2027-01-15"
    assert stored["budget_confirmed"] == "true"
    assert stored["competitors"] == "globex;umbrella"
    assert stored["next_meeting_at"] == "2027-01-03T14:30:00.000Z"

    again = hubspot_connector.read("deals", [acme], ["amount", "contract_start_date", "next_meeting_at"])[acme].values
    assert again["contract_start_date"] == "2027-01-15" and again["next_meeting_at"] == "2027-01-03T14:30:00.000Z"


def test_one_bad_record_does_not_sink_its_batch(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    ids = make_deals(hubspot_state, 10)
    updates = [RecordWrite(rid, {"hs_next_step": f"step {n}"}) for n, rid in enumerate(ids)]
    updates[6] = RecordWrite(ids[6], {"hs_next_step": "step 6", "contract_start_date": "2026-05-01T10:00:00.000Z"})
    results = hubspot_connector.write("deals", updates)
    assert len(results) == 10
    for n, (rid, result) in enumerate(zip(ids, results)):
        assert result.record_id == rid
        assert "hs_next_step" in result.written
        assert hubspot_state.get_record("deals", rid)["hs_next_step"] == f"step {n}"
    bad = results[6]
    assert set(bad.errors) == {"contract_start_date"}
    assert bad.errors["contract_start_date"].outcome == "invalid_value"
    assert bad.errors["contract_start_date"].reason.startswith("INVALID_DATE")
    assert hubspot_state.get_record("deals", ids[6]).get("contract_start_date") is None


def test_field_outcomes_on_one_record(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    results = hubspot_connector.write("deals", [RecordWrite(acme, {
        "hs_next_step": "Call the CFO",
        "dealstage": "Closed Won",
        "hs_forecast_amount": "1",
        "made_up_property": "x",
        "amount": "12,000",
    })])
    [result] = results
    assert result.written == {"hs_next_step"}
    outcomes = {name: err.outcome for name, err in result.errors.items()}
    assert outcomes == {"dealstage": "invalid_value", "hs_forecast_amount": "not_writable",
                        "made_up_property": "unknown_field", "amount": "invalid_value"}
    assert result.errors["dealstage"].reason.startswith("INVALID_OPTION")
    stored = hubspot_state.get_record("deals", acme)
    assert stored["hs_next_step"] == "Call the CFO" and stored["dealstage"] == "qualifiedtobuy"


def test_missing_and_malformed_records_fail(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    results = hubspot_connector.write("deals", [
        RecordWrite("777", {"amount": "1"}),
        RecordWrite(acme, {"amount": "2"}),
        RecordWrite("abc", {"amount": "3"}),
    ])
    assert [r.record_id for r in results] == ["777", acme, "abc"]
    assert results[0].errors["amount"].outcome == "failed"
    assert "OBJECT_NOT_FOUND" in results[0].errors["amount"].reason
    assert results[1].written == {"amount"}
    assert results[2].errors["amount"].outcome == "failed" and "malformed" in results[2].errors["amount"].reason
    [request] = hubspot_state.requests_to("POST", "batch/update")
    assert [i["id"] for i in request.body["inputs"]] == ["777", acme]


def test_more_than_100_updates_are_split(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    ids = make_deals(hubspot_state, 230)
    results = hubspot_connector.write("deals", [RecordWrite(rid, {"amount": "5"}) for rid in ids])
    assert all(r.written == {"amount"} for r in results)
    sizes = [len(r.body["inputs"]) for r in hubspot_state.requests_to("POST", "batch/update")]
    assert sizes == [100, 100, 30]


def test_two_updates_of_one_record_go_in_separate_batches(hubspot_connector: HubSpotConnector,
                                                         hubspot_state: HubSpotState) -> None:
    acme = hubspot_state.named["deal_acme"]
    results = hubspot_connector.write("deals", [RecordWrite(acme, {"amount": "1"}),
                                                RecordWrite(acme, {"hs_next_step": "x"})])
    assert [r.written for r in results] == [{"amount"}, {"hs_next_step"}]
    assert len(hubspot_state.requests_to("POST", "batch/update")) == 2


def test_nothing_to_write_sends_nothing(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    assert hubspot_connector.write("deals", []) == []
    assert hubspot_state.requests_to("POST", "batch/update") == []


# ---------------------------------------------------------------- errors


def test_unknown_token_is_auth_error_without_the_token(make_hubspot_connector, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    connector = make_hubspot_connector(access_token="pat-na1-wrong-secret")
    with pytest.raises(AuthError) as info:
        connector.object_schema("deals")
    assert "401" in str(info.value) and "INVALID_AUTHENTICATION" in str(info.value)
    assert "pat-na1-wrong-secret" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "pat-na1-wrong-secret" not in caplog.text


def test_expired_token_is_auth_error(hubspot_connector: HubSpotConnector, hubspot_state: HubSpotState) -> None:
    hubspot_state.expire_token(DEFAULT_TOKEN)
    with pytest.raises(AuthError, match="EXPIRED_AUTHENTICATION"):
        hubspot_connector.write("deals", [RecordWrite(hubspot_state.named["deal_acme"], {"amount": "1"})])


def test_rate_limit_is_transient_with_retry_after(hubspot_connector: HubSpotConnector,
                                                  hubspot_state: HubSpotState) -> None:
    hubspot_state.rate_limit(1, interval_s=10)
    hubspot_connector.object_schema("companies")  # spends the one allowed request
    with pytest.raises(TransientError) as info:
        hubspot_connector.read("deals", [hubspot_state.named["deal_acme"]], ["amount"])
    assert info.value.retry_after == 10.0  # the rolling window, from X-HubSpot-RateLimit-Interval-Milliseconds
    assert "429" in str(info.value)

    hubspot_state.rate_limit(0, retry_after=2)
    with pytest.raises(TransientError) as info:
        hubspot_connector.check()
    assert info.value.retry_after == 2.0


def test_server_errors_are_transient_and_not_retried(hubspot_connector: HubSpotConnector,
                                                     hubspot_state: HubSpotState) -> None:
    hubspot_state.fail_next(503)
    acme = hubspot_state.named["deal_acme"]
    with pytest.raises(TransientError, match="503"):
        hubspot_connector.write("deals", [RecordWrite(acme, {"amount": "1"})])
    assert len(hubspot_state.requests_to("POST", "batch/update")) == 1
    hubspot_state.fail_next(502, body="<html>Bad gateway</html>")
    with pytest.raises(TransientError, match="502"):
        hubspot_connector.read("deals", [acme], ["amount"])
    assert hubspot_state.get_record("deals", acme)["amount"] == "12500"


def test_missing_scopes_is_a_permanent_error_not_auth(hubspot_connector: HubSpotConnector,
                                                      hubspot_state: HubSpotState) -> None:
    # A private app installed without crm.objects.deals.write: the token is fine,
    # this call is not allowed. Not AuthError (that would dead-letter the whole run).
    hubspot_state.revoke_scopes("deals", "write")
    acme = hubspot_state.named["deal_acme"]
    with pytest.raises(PermanentError) as info:
        hubspot_connector.write("deals", [RecordWrite(acme, {"amount": "1"})])
    assert not isinstance(info.value, AuthError)
    message = str(info.value)
    assert "403 MISSING_SCOPES" in message and "hasn't been granted all required scopes" in message
    assert "crm.objects.deals.write" in message and DEFAULT_TOKEN not in message
    assert len(hubspot_state.requests_to("POST", "batch/update")) == 1  # not split, not retried
    assert hubspot_state.get_record("deals", acme)["amount"] == "12500"

    # Other calls and object types still work.
    assert hubspot_connector.read("deals", [acme], ["amount"])[acme].values["amount"] == "12500"
    company = hubspot_state.named["company_acme"]
    assert hubspot_connector.write("companies", [RecordWrite(company, {"city": "Salem"})])[0].written == {"city"}

    hubspot_state.revoke_scopes("leads", "schemas")
    with pytest.raises(PermanentError, match="crm.schemas.leads.read"):
        hubspot_connector.object_schema("leads")


def test_connection_refused_is_transient(make_hubspot_connector) -> None:
    connector = make_hubspot_connector(api_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError):
        connector.check()


def test_timeout_is_transient(make_hubspot_connector, hubspot_state: HubSpotState) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        connector = make_hubspot_connector(api_url=f"http://127.0.0.1:{port}", timeout_s=0.3)
        with pytest.raises(TransientError):
            connector.check()
    finally:
        for sock in accepted:
            sock.close()
        listener.close()


# ---------------------------------------------------------------- encode, check, TLS


def test_encode(hubspot_connector: HubSpotConnector) -> None:
    schema = hubspot_connector.object_schema("deals").fields
    enc = hubspot_connector.encode
    assert enc(schema["budget_confirmed"], True) == "true"
    assert enc(schema["budget_confirmed"], False) == "false"
    assert enc(schema["amount"], Decimal("1E+3")) == "1000"
    assert enc(schema["amount"], Decimal("0.0000001")) == "0.0000001"
    assert enc(schema["amount"], Decimal("-12.50")) == "-12.50"
    assert enc(schema["amount"], 42) == "42"
    assert enc(schema["contract_start_date"], dt.date(2026, 2, 3)) == "2026-02-03"
    assert enc(schema["contract_start_date"], dt.datetime(2026, 2, 3, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))) == "2026-02-04"
    assert enc(schema["next_meeting_at"], dt.datetime(2026, 2, 3, 23, 30, tzinfo=dt.UTC)) == "2026-02-03T23:30:00.000Z"
    assert enc(schema["competitors"], ("globex", "initech")) == "globex;initech"
    assert enc(schema["dealname"], "Acme") == "Acme"
    assert enc(schema["dealname"], None) == ""


def test_check(hubspot_connector: HubSpotConnector, hubspot_url: str) -> None:
    line = hubspot_connector.check()
    assert line.startswith(f"hubspot {hubspot_url} (deals: ") and line.endswith(" properties)")
    assert DEFAULT_TOKEN not in line


def test_check_accepts_a_token_without_the_deals_scopes(hubspot_connector: HubSpotConnector,
                                                        hubspot_state: HubSpotState) -> None:
    # A contacts-only app: the token is valid; `writeback check` then fails only the deals schema.
    hubspot_state.revoke_scopes("deals")
    line = hubspot_connector.check()
    assert "token accepted" in line and "MISSING_SCOPES" in line and "crm.schemas.deals.read" in line
    with pytest.raises(PermanentError):
        hubspot_connector.object_schema("deals")
    assert hubspot_connector.object_schema("contacts").fields["jobtitle"].writable
    hubspot_state.expire_token(DEFAULT_TOKEN)
    with pytest.raises(AuthError):
        hubspot_connector.check()


def test_tls_with_a_private_ca() -> None:
    state = seed_default_portal()
    with ServedApp(create_app(state), tls=True) as served:
        connector = HubSpotConnector({"access_token": DEFAULT_TOKEN, "api_url": served.url,
                                      "ca_bundle": local_tls().ca_bundle})
        try:
            assert "properties" in connector.check()
        finally:
            connector.close()


# ---------------------------------------------------------------- isolating rejections


def test_a_bad_value_is_pinned_without_bisecting(hubspot_connector: HubSpotConnector,
                                                 hubspot_state: HubSpotState) -> None:
    ids = make_deals(hubspot_state, 50)
    updates = [RecordWrite(rid, {"hs_next_step": "go", "deal_temperature": "hot"}) for rid in ids]
    updates[17] = RecordWrite(ids[17], {"hs_next_step": "go", "deal_temperature": "Scorching"})
    results = hubspot_connector.write("deals", updates)
    assert [r.written for r in results].count({"hs_next_step", "deal_temperature"}) == 49
    assert results[17].written == {"hs_next_step"}
    assert results[17].errors["deal_temperature"].outcome == "invalid_value"
    assert [r.status for r in hubspot_state.requests_to("POST", "batch/update")] == [400, 200]


def test_unknown_property_on_every_record_costs_two_calls(hubspot_connector: HubSpotConnector,
                                                          hubspot_state: HubSpotState) -> None:
    ids = make_deals(hubspot_state, 100)
    results = hubspot_connector.write("deals", [RecordWrite(rid, {"amount": "9", "siro_score": "5"}) for rid in ids])
    assert all(r.written == {"amount"} and r.errors["siro_score"].outcome == "unknown_field" for r in results)
    assert len(hubspot_state.requests_to("POST", "batch/update")) == 2


def test_bisection_when_the_rejected_input_cannot_be_pinned(hubspot_connector: HubSpotConnector,
                                                            hubspot_state: HubSpotState) -> None:
    # The same stage id is valid on the renewals deal and invalid on the default-pipeline deal.
    acme, initech = hubspot_state.named["deal_acme"], hubspot_state.named["deal_initech"]
    ids = make_deals(hubspot_state, 6)
    updates = [RecordWrite(rid, {"hs_next_step": "x"}) for rid in ids]
    updates.insert(2, RecordWrite(acme, {"dealstage": "61342872", "hs_next_step": "a"}))
    updates.insert(5, RecordWrite(initech, {"dealstage": "61342872", "hs_next_step": "i"}))
    long_text = "y" * 65537  # HubSpot echoes long values truncated: not pinnable by value
    updates.append(RecordWrite(ids[0], {"description": long_text}))
    results = hubspot_connector.write("deals", updates)
    by_id = {(r.record_id, frozenset(r.written | set(r.errors))): r for r in results}
    assert results[2].record_id == acme
    assert results[2].errors["dealstage"].outcome == "invalid_value" and results[2].written == {"hs_next_step"}
    assert results[5].record_id == initech and results[5].written == {"dealstage", "hs_next_step"}
    assert results[-1].errors["description"].outcome == "invalid_value"
    assert hubspot_state.get_record("deals", initech)["dealstage"] == "61342872"
    assert hubspot_state.get_record("deals", acme)["dealstage"] == "qualifiedtobuy"
    assert len(by_id) == len(updates)
    sent = hubspot_state.requests_to("POST", "batch/update")
    assert all(len(r.body["inputs"]) <= 100 for r in sent)


# ---------------------------------------------------------------- transient failures after partial progress


def test_a_later_batch_failing_keeps_the_earlier_batches(hubspot_connector: HubSpotConnector,
                                                          hubspot_state: HubSpotState) -> None:
    ids = make_deals(hubspot_state, 230)
    hubspot_state.fail_next(429, {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                                  "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
                            headers={"Retry-After": "3"}, path_contains="batch/update", after=2)
    updates = [RecordWrite("not-an-id", {"amount": "5"})] + [RecordWrite(rid, {"amount": "5"}) for rid in ids]
    with pytest.raises(TransientError) as info:
        hubspot_connector.write("deals", updates)
    assert info.value.retry_after == 3.0 and "429" in str(info.value)
    partial = {r.record_id: r for r in info.value.partial}
    # The malformed id and the first two batches are settled; the third batch was never applied.
    assert set(partial) == {"not-an-id", *ids[:200]}
    assert partial["not-an-id"].errors["amount"].outcome == "failed"
    assert all(partial[rid].written == {"amount"} and not partial[rid].errors for rid in ids[:200])
    assert all(hubspot_state.get_record("deals", rid)["amount"] == "5" for rid in ids[:200])
    assert all(hubspot_state.get_record("deals", rid).get("amount") is None for rid in ids[200:])

    # The retry sends only the rest and nothing twice.
    hubspot_state.clear_requests()
    rest = [u for u in updates if u.record_id not in partial]
    assert all(r.written == {"amount"} for r in hubspot_connector.write("deals", rest))
    assert [len(r.body["inputs"]) for r in hubspot_state.requests_to("POST", "batch/update")] == [30]


def test_a_failure_while_bisecting_keeps_the_settled_half(hubspot_connector: HubSpotConnector,
                                                          hubspot_state: HubSpotState) -> None:
    ids = make_deals(hubspot_state, 4)
    updates = [RecordWrite(rid, {"hs_next_step": "go"}) for rid in ids]
    updates[3] = RecordWrite(ids[3], {"description": "y" * 65537})  # not pinnable: the batch is bisected
    # Request 1: the whole batch, 400. Request 2: the first half, 200. Request 3: the second half, 503.
    hubspot_state.fail_next(503, path_contains="batch/update", after=2)
    with pytest.raises(TransientError, match="503") as info:
        hubspot_connector.write("deals", updates)
    assert [r.status for r in hubspot_state.requests_to("POST", "batch/update")] == [400, 200, 503]
    assert [(r.record_id, r.written) for r in info.value.partial] == [(ids[0], {"hs_next_step"}),
                                                                     (ids[1], {"hs_next_step"})]
    assert hubspot_state.get_record("deals", ids[2]).get("hs_next_step") is None  # unknown, so not in partial


def test_a_failure_of_the_resend_keeps_only_settled_records(hubspot_connector: HubSpotConnector,
                                                            hubspot_state: HubSpotState) -> None:
    ids = make_deals(hubspot_state, 3)
    updates = [
        RecordWrite(ids[0], {"hs_next_step": "go", "deal_temperature": "hot"}),
        RecordWrite(ids[1], {"hs_next_step": "go", "deal_temperature": "Scorching"}),  # pinned and dropped
        RecordWrite(ids[2], {"deal_temperature": "Scorching"}),  # nothing left to send: settled
    ]
    hubspot_state.fail_next(502, body="<html>Bad gateway</html>", path_contains="batch/update", after=1)
    with pytest.raises(TransientError, match="502") as info:
        hubspot_connector.write("deals", updates)
    # ids[1] lost deal_temperature, but its hs_next_step was in the failed re-send: unknown, so retried whole.
    [settled] = info.value.partial
    assert settled.record_id == ids[2] and settled.written == frozenset()
    assert settled.errors["deal_temperature"].outcome == "invalid_value"
    assert "INVALID_OPTION" in settled.errors["deal_temperature"].reason

    # Without a fault the same call settles every record, dropped properties merged in.
    results = hubspot_connector.write("deals", updates[:2])
    assert results[0].written == {"hs_next_step", "deal_temperature"}
    assert results[1].written == {"hs_next_step"} and set(results[1].errors) == {"deal_temperature"}


def test_a_worker_soft_time_limit_inside_a_call_is_not_turned_into_a_crm_error(hubspot_connector, hubspot_state):
    """Celery raises its soft time limit from a signal handler, wherever the task is: inside
    hubspot-api-client it must reach the task (which retries), not become a field failure."""
    import signal

    from celery.exceptions import SoftTimeLimitExceeded

    hubspot_connector.object_schema("deals")
    hubspot_state.hold_answers("batch/read", 3.0)

    def soft_limit(signum, frame):  # what billiard's handler does in a pool process
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, soft_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(SoftTimeLimitExceeded):
            hubspot_connector.read("deals", [hubspot_state.named["deal_acme"]], ["amount"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
