"""``GET /v1/core/integrations/connections``: the simulator's strictness (plain httpx) and
``SiroClient.list_connections`` against it over real HTTP, with the tolerant model.

Where the published API is silent (no page size, no name for the cursor
parameter), the simulator takes the stricter reading: ``cursor`` as the
recordings listing names it, no ``pageSize`` (400), pages of 25.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from simulators.siro import CONNECTION_PARAMS, PLATFORMS, SiroState
from tests.fixtures.siro import SIRO_TEST_TOKEN, SiroServer
from tests.siro.test_models import _example, _response_schema, _spec, needs_spec
from worker.siro.client import (
    SiroAuthError,
    SiroClient,
    SiroProtocolError,
    SiroRequestError,
    SiroUnavailable,
)
from worker.siro.models import ConnectionPage, IntegrationConnection

PATH = "/v1/core/integrations/connections"
T0 = dt.datetime(2025, 1, 1, 9, 0, tzinfo=dt.UTC)


def _raw_get(server: SiroServer, token: str | None = SIRO_TEST_TOKEN, query: str = "", **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = server.url + PATH + (f"?{query}" if query else "")
    return httpx.get(url, params=params or None, headers=headers, timeout=5)


def _seed(state: SiroState, count: int, platform: str | Any = None) -> list[str]:
    """``count`` connections, one minute apart; platforms alternate MERGE / SPOTIO unless given."""
    ids = []
    for i in range(count):
        ident = f"ic_{i:03d}"
        state.add_connection(ident, name=f"Connection {i}", created_at=T0 + dt.timedelta(minutes=i),
                             integration_platform=platform or ("MERGE" if i % 2 == 0 else "SPOTIO"))
        ids.append(ident)
    return ids


def _bad_request(response: httpx.Response, says: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == "bad_request"
    assert says in body["message"], body


# --------------------------------------------------------------------------
# the simulator, on the wire


def test_items_have_the_documented_shape_scoped_to_the_organization(siro_server: SiroServer) -> None:
    state = siro_server.state
    state.add_connection("ic_sf", name="Salesforce", integration_platform="SALESFORCE", sync_transcript=True)
    state.add_connection("ic_other", organization_id="org-other")

    body = _raw_get(siro_server).json()

    assert set(body) == {"data", "cursor"} and body["cursor"] is None
    (item,) = body["data"]
    assert item["id"] == "ic_sf" and item["organizationId"] == state.organization_id
    assert item["isActive"] is True and item["syncTranscript"] is True
    assert {s["modelSyncStatus"] for s in item["syncStatus"]} == {"UP_TO_DATE"}
    other = state.add_token("other-org-token", organization_id="org-other")
    assert [c["id"] for c in _raw_get(siro_server, token=other).json()["data"]] == ["ic_other"]

    retired = state.update_connection("ic_sf", is_active=False)
    assert retired["isActive"] is False and retired["updatedAt"] > item["updatedAt"]
    assert _raw_get(siro_server).json()["data"][0]["isActive"] is False
    state.remove_connection("ic_sf")
    assert _raw_get(siro_server).json() == {"data": [], "cursor": None} and set(state.connections) == {"ic_other"}


@needs_spec
def test_the_simulator_follows_the_spec() -> None:
    get = _spec()["paths"][PATH]["get"]
    (documented,) = get["parameters"]
    assert documented["name"] == "integrationPlatform" and tuple(documented["schema"]["enum"]) == PLATFORMS
    assert CONNECTION_PARAMS == {"integrationPlatform", "cursor"}  # cursor: the recordings listing's name

    schema = _response_schema(PATH)
    assert set(schema["required"]) == {"data", "cursor"}
    items = schema["properties"]["data"]["items"]
    state = SiroState()
    item = state.add_connection("ic_1", sync_transcript=False)
    assert set(items["required"]) <= set(item) <= set(items["properties"])
    status = items["properties"]["syncStatus"]["items"]
    assert all(set(status["required"]) == set(entry) for entry in item["syncStatus"])


def test_unknown_repeated_and_page_size_parameters_are_400(siro_server: SiroServer) -> None:
    _seed(siro_server.state, 3)
    _bad_request(_raw_get(siro_server, pageSize="2"), "unknown query parameter 'pageSize'")
    _bad_request(_raw_get(siro_server, integrationplatform="MERGE"), "unknown query parameter")
    _bad_request(_raw_get(siro_server, showCrmLinks="true"), "unknown query parameter")
    _bad_request(_raw_get(siro_server, query="integrationPlatform=MERGE&integrationPlatform=SPOTIO"),
                 "given more than once")


@pytest.mark.parametrize("value", ["merge", "Salesforce", "HUBSPOT", "", " MERGE"])
def test_an_undocumented_platform_is_400(siro_server: SiroServer, value: str) -> None:
    _bad_request(_raw_get(siro_server, query=f"integrationPlatform={value}"), "integrationPlatform must be one of")


def test_the_platform_filter(siro_server: SiroServer) -> None:
    _seed(siro_server.state, 5)
    spotio = _raw_get(siro_server, integrationPlatform="SPOTIO").json()
    assert [c["id"] for c in spotio["data"]] == ["ic_001", "ic_003"] and spotio["cursor"] is None
    assert _raw_get(siro_server, integrationPlatform="KNOCK").json() == {"data": [], "cursor": None}


def test_pages_of_25_by_default_with_a_cursor_bound_to_the_filter(siro_server: SiroServer) -> None:
    ids = _seed(siro_server.state, 30, platform="MERGE")

    first = _raw_get(siro_server).json()
    assert [c["id"] for c in first["data"]] == ids[:25] and first["cursor"]
    second = _raw_get(siro_server, cursor=first["cursor"]).json()
    assert [c["id"] for c in second["data"]] == ids[25:] and second["cursor"] is None

    # the filter must be sent again with its cursor, and only with it
    filtered = _raw_get(siro_server, integrationPlatform="MERGE").json()
    _bad_request(_raw_get(siro_server, cursor=filtered["cursor"]), "does not match the filters")
    _bad_request(_raw_get(siro_server, cursor=first["cursor"], integrationPlatform="MERGE"), "does not match")
    assert _raw_get(siro_server, cursor=filtered["cursor"], integrationPlatform="MERGE").json()["data"]


def test_tampered_and_foreign_cursors_are_400(siro_server: SiroServer) -> None:
    state = siro_server.state
    state.connection_page_size = 1
    _seed(state, 2)
    for i in range(3):
        state.add_recording(f"rec-{i}")
    cursor = _raw_get(siro_server).json()["cursor"]
    _bad_request(_raw_get(siro_server, cursor=cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")),
                 "invalid cursor")
    _bad_request(_raw_get(siro_server, cursor="not-a-cursor"), "invalid cursor")
    recordings = httpx.get(siro_server.url + "/v1/core/recordings", params={"pageSize": "1"},
                           headers={"Authorization": f"Bearer {SIRO_TEST_TOKEN}"}).json()["cursor"]
    _bad_request(_raw_get(siro_server, cursor=recordings), "invalid cursor")
    to_recordings = httpx.get(siro_server.url + "/v1/core/recordings", params={"cursor": cursor},
                              headers={"Authorization": f"Bearer {SIRO_TEST_TOKEN}"})
    assert to_recordings.status_code == 400


def test_auth_and_methods_as_the_other_endpoints(siro_server: SiroServer) -> None:
    _seed(siro_server.state, 1)
    assert _raw_get(siro_server, token=None).status_code == 401
    assert _raw_get(siro_server, token="nope").json()["error"] == "unauthorized"
    posted = httpx.post(siro_server.url + PATH, json={"name": "x"}, headers={"Authorization": f"Bearer {SIRO_TEST_TOKEN}"})
    assert posted.status_code == 405
    logged = siro_server.state.requests_to(PATH)
    assert [r.status for r in logged] == [401, 401, 405] and logged[-1].token_id is not None


# --------------------------------------------------------------------------
# the client


def test_list_connections_fetches_every_page(siro_server: SiroServer, siro_client: SiroClient) -> None:
    state = siro_server.state
    state.connection_page_size = 2
    ids = _seed(state, 5)

    connections = siro_client.list_connections()

    assert [c.id for c in connections] == ids
    first = connections[0]
    assert isinstance(first, IntegrationConnection)
    assert (first.name, first.integration_platform, first.is_active) == ("Connection 0", "MERGE", True)
    assert first.created_at == T0 and first.organization_id == state.organization_id
    assert [s.model_name for s in first.sync_status] == ["Account", "Contact", "Opportunity"]
    queries = [r.query for r in state.requests_to(PATH)]
    assert len(queries) == 3 and queries[0] == {}
    assert all(set(q) == {"cursor"} for q in queries[1:])  # no pageSize: the spec names none


def test_list_connections_of_one_platform_sends_the_filter_with_every_cursor(
        siro_server: SiroServer, siro_client: SiroClient) -> None:
    state = siro_server.state
    state.connection_page_size = 1
    _seed(state, 5)

    spotio = siro_client.list_connections(integration_platform="SPOTIO")

    assert [c.id for c in spotio] == ["ic_001", "ic_003"]
    assert all(r.query.get("integrationPlatform") == "SPOTIO" for r in state.requests_to(PATH))
    with pytest.raises(SiroRequestError) as refused:
        siro_client.list_connections(integration_platform="spotio")
    assert refused.value.status == 400 and "integrationPlatform" in str(refused.value)
    with pytest.raises(ValueError):
        siro_client.list_connections(integration_platform=" ")


def test_list_connections_errors(siro_server: SiroServer, make_siro_client) -> None:
    _seed(siro_server.state, 1)
    with pytest.raises(SiroAuthError):
        make_siro_client(token="not-a-known-token").list_connections()

    client = make_siro_client(max_retries=2)
    siro_server.state.fail_next(503, times=2, path=PATH)
    assert [c.id for c in client.list_connections()] == ["ic_000"]  # retried
    siro_server.state.fail_next(503, times=3, path=PATH)
    with pytest.raises(SiroUnavailable):
        client.list_connections()
    siro_server.state.fail_next(200, body={"data": [], "cursor": "same"}, times=2, path=PATH)
    with pytest.raises(SiroProtocolError, match="twice"):
        client.list_connections()
    siro_server.state.fail_next(200, body={"connections": []}, path=PATH)
    with pytest.raises(SiroProtocolError, match="'data'"):
        client.list_connections()


def test_odd_items_are_tolerated_not_fatal(siro_server: SiroServer, siro_client: SiroClient, caplog) -> None:
    state = siro_server.state
    state.put_connection({"id": "ic_new", "integrationPlatform": "HUBSPOT_DIRECT", "isActive": "yes",
                          "syncStatus": None, "createdAt": "yesterday", "brandNew": {"x": 1}, "name": 42})
    state.put_connection({"id": 7, "isActive": False})

    odd = sorted(siro_client.list_connections(), key=lambda c: c.id)
    assert [c.id for c in odd] == ["7", "ic_new"]
    seven, new = odd
    assert new.integration_platform == "HUBSPOT_DIRECT" and new.is_active is None and new.name == "42"
    assert new.sync_status == [] and new.created_at is None and new.model_extra == {"brandNew": {"x": 1}}
    assert seven.is_active is False and seven.name is None

    state.fail_next(200, path=PATH, body={"data": [{"name": "no id"}, "junk", {"id": "ic_ok"}], "cursor": None})
    with caplog.at_level("WARNING"):
        assert [c.id for c in siro_client.list_connections()] == ["ic_ok"]
    assert caplog.text.count("has no usable id; skipped") == 2


@needs_spec
def test_the_documented_example_parses() -> None:
    example = _example(_response_schema(PATH))
    page = ConnectionPage.model_validate(example)
    (connection,) = page.data
    assert page.cursor == "cursor-1" and connection.id == "id-1" and connection.is_active is True
    assert connection.integration_platform == "MERGE" and connection.sync_transcript is True
    assert connection.sync_status[0].model_sync_status == "SYNCING"
    props = _response_schema(PATH)["properties"]["data"]["items"]["properties"]
    assert {info.alias for info in IntegrationConnection.model_fields.values()} == set(props)
