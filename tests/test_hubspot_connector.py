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
    RecordWrite,
    TransientError,
    UnknownObject,
)
from connectors.hubspot import HubSpotConnector
from worker.errors import ConfigError
from worker.simulators.hubspot import DEFAULT_TOKEN, HubSpotState, create_app, seed_default_portal
from worker.simulators.server import ServedApp, free_port
from worker.simulators.tls import local_tls


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
    assert temperature == {"hot": True, "warm": True, "cold": True, "frozen": False}  # hidden -> inactive

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


def test_schema_of_leads_uses_its_pipelines(hubspot_connector: HubSpotConnector) -> None:
    schema = hubspot_connector.object_schema("leads")
    stages = {o.value: o.label for o in schema.fields["hs_pipeline_stage"].options}
    assert stages["qualified-stage-id"] == "Qualified"
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
