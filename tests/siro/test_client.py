"""SiroClient against the served Siro simulator, over real HTTP.

Also checks the simulator's own strictness directly with httpx, since the
rest of the suite leans on it being at least as strict as Siro.
"""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import threading
import time
import traceback
from typing import Any, Callable

import httpx
import pytest

from connectors.support import parse_retry_after as _parse_retry_after
from simulators.server import free_port
from simulators.siro import SiroState
from tests.fixtures.siro import SIRO_TEST_TOKEN, SiroServer
from worker.siro.client import (
    RecordingNotFound,
    SiroAuthError,
    SiroClient,
    SiroError,
    SiroProtocolError,
    SiroRequestError,
    SiroUnavailable,
    SlidingWindowRateLimiter,
    format_siro_datetime,
)
from worker.siro.errors import SiroEndpointError

UTC = dt.UTC
T0 = dt.datetime(2024, 6, 13, 4, 0, 0, tzinfo=UTC)
MakeClient = Callable[..., SiroClient]


def _seed_full(state: SiroState, recording_id: str = "rec-1") -> None:
    state.add_recording(
        recording_id,
        title="Kitchen remodel",
        created_at=T0,
        entity_extractions=[
            SiroState.extraction("Budget", 12500, ("Opportunity", "Amount")),
            SiroState.extraction("Stage", "Negotiation", ("Opportunity", "StageName"), ("Deal", "dealstage")),
        ],
        summary=[{"id": "s1", "name": "Next steps", "content": "Send the quote."}],
    )
    state.link(recording_id, opportunity="006A", account="001A", contacts=["003A", "003B"], users=["005A"])


def _raw_get(server: SiroServer, path: str, token: str | None = SIRO_TEST_TOKEN, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(server.url + path, params=params, headers=headers, timeout=5)


# --------------------------------------------------------------------------
# get


def test_get_recording_with_links_and_extractions(siro_server: SiroServer, siro_client: SiroClient) -> None:
    _seed_full(siro_server.state)
    rec = siro_client.get_recording("rec-1")
    assert rec.id == "rec-1" and rec.title == "Kitchen remodel"
    assert rec.crm is not None and rec.crm.integration_connection_id == "conn-sim-1"
    assert rec.crm.slot("opportunity")[0].external_id == "006A"
    assert [c.external_id for c in rec.crm.slot("contacts")] == ["003A", "003B"]
    assert rec.entity_extractions is not None and [e.name for e in rec.entity_extractions] == ["Budget", "Stage"]
    assert rec.summary is None  # not asked for
    (logged,) = siro_server.state.requests
    assert logged.path == "/v1/core/recordings/rec-1"
    assert logged.query == {"showCrmLinks": "true", "showEntityExtractions": "true"}
    assert logged.status == 200 and logged.token_id is not None
    assert siro_client.request_count == 1


def test_get_recording_with_summary(siro_server: SiroServer, siro_client: SiroClient) -> None:
    _seed_full(siro_server.state)
    rec = siro_client.get_recording("rec-1", summary=True)
    assert rec.summary is not None and rec.summary[0].content == "Send the quote."
    assert siro_server.state.requests[-1].query == {
        "showCrmLinks": "true",
        "showEntityExtractions": "true",
        "showSummary": "true",
    }


def test_get_recording_id_is_url_quoted(siro_server: SiroServer, siro_client: SiroClient) -> None:
    for weird in ("a/b c", "x?y=1&z#frag", "ünï%20"):
        siro_server.state.add_recording(weird)
        assert siro_client.get_recording(weird).id == weird
    assert siro_server.state.requests[0].raw_path == "/v1/core/recordings/a%2Fb%20c"
    assert siro_server.state.requests[1].raw_path == "/v1/core/recordings/x%3Fy%3D1%26z%23frag"
    with pytest.raises(ValueError):
        siro_client.get_recording("")


def test_enrichment_blocks_only_when_flag_is_true(siro_server: SiroServer) -> None:
    _seed_full(siro_server.state)
    siro_server.state.add_recording("bare")  # not linked, no extractions, no summary
    blocks = {"crm", "entityExtractions", "summary", "evaluationScore", "followups"}

    plain = _raw_get(siro_server, "/v1/core/recordings/rec-1")
    assert plain.status_code == 200 and not blocks & set(plain.json())
    assert plain.json()["links"]["web"]["self"].endswith("/rec-1")

    off = _raw_get(siro_server, "/v1/core/recordings/rec-1", showCrmLinks="false", showSummary="false", showEntityExtractions="false")
    assert off.status_code == 200 and not blocks & set(off.json())

    only_crm = _raw_get(siro_server, "/v1/core/recordings/rec-1", showCrmLinks="true").json()
    assert only_crm["crm"]["opportunity"]["externalId"] == "006A"
    assert "entityExtractions" not in only_crm and "summary" not in only_crm

    bare = _raw_get(
        siro_server, "/v1/core/recordings/bare", showCrmLinks="true", showEntityExtractions="true", showSummary="true"
    ).json()
    assert bare["crm"] is None and bare["entityExtractions"] == [] and bare["summary"] == []

    for bad in ("TRUE", "1", "yes", ""):
        response = _raw_get(siro_server, "/v1/core/recordings/rec-1", showCrmLinks=bad)
        assert response.status_code == 400, bad
        assert set(response.json()) == {"error", "message"}
    assert _raw_get(siro_server, "/v1/core/recordings/rec-1", showCrmLink="true").status_code == 400  # typo
    twice = httpx.get(
        siro_server.url + "/v1/core/recordings/rec-1?showCrmLinks=true&showCrmLinks=false",
        headers={"Authorization": f"Bearer {SIRO_TEST_TOKEN}"},
    )
    assert twice.status_code == 400


def test_simulator_auth_and_scoping(siro_server: SiroServer) -> None:
    state = siro_server.state
    state.add_recording("rec-1")
    assert _raw_get(siro_server, "/v1/core/recordings/rec-1", token=None).status_code == 401
    assert _raw_get(siro_server, "/v1/core/recordings/rec-1", token="nope").status_code == 401
    basic = httpx.get(siro_server.url + "/v1/core/recordings/rec-1", headers={"Authorization": f"Basic {SIRO_TEST_TOKEN}"})
    assert basic.status_code == 401
    lower = httpx.get(siro_server.url + "/v1/core/recordings/rec-1", headers={"Authorization": f"bearer {SIRO_TEST_TOKEN}"})
    assert lower.status_code == 200
    other = state.add_token("other-org-token", organization_id="org-other")
    assert _raw_get(siro_server, "/v1/core/recordings/rec-1", token=other).status_code == 404
    assert _raw_get(siro_server, "/v1/core/recordings", token=other).json() == {"data": [], "cursor": None}
    state.revoke_token(SIRO_TEST_TOKEN)
    assert _raw_get(siro_server, "/v1/core/recordings/rec-1").status_code == 401
    assert all("token" not in r.query for r in state.requests)


def test_deleted_recordings_are_still_returned(siro_server: SiroServer, siro_client: SiroClient) -> None:
    siro_server.state.add_recording("gone", created_at=T0)
    before = siro_server.state.recording("gone")
    siro_server.state.delete_recording("gone")
    rec = siro_client.get_recording("gone")
    assert rec.deleted is True and rec.deleted_at is not None
    assert before is not None and rec.updated_at is not None and rec.updated_at > dt.datetime.fromisoformat(before["updatedAt"])
    assert [r.id for r in siro_client.list_recordings().data] == ["gone"]
    siro_server.state.remove_recording("gone")
    with pytest.raises(RecordingNotFound):
        siro_client.get_recording("gone")


def test_caller_identity(siro_server: SiroServer, siro_client: SiroClient) -> None:
    identity = siro_client.caller_identity()
    assert identity.token_name == "writeback-tests"
    assert identity.organization_id == siro_server.state.organization_id
    assert identity.token_id and identity.created_at is not None
    raw = _raw_get(siro_server, "/v1/core/auth/caller-identity").json()
    assert set(raw) == {
        "tokenId",
        "tokenName",
        "organizationId",
        "authorizedOrgGroupId",
        "parentOrgGroupTokenId",
        "createdAt",
        "createdBy",
    }


# --------------------------------------------------------------------------
# list


def _seed_timeline(state: SiroState, count: int) -> list[str]:
    ids = []
    for i in range(count):
        rid = f"rec-{i:02d}"
        state.add_recording(
            rid,
            created_at=T0 + dt.timedelta(hours=i),
            updated_at=T0 + dt.timedelta(hours=i, minutes=30),
            is_summary_done=i % 2 == 0,
        )
        ids.append(rid)
    return ids


def test_list_filters(siro_server: SiroServer, siro_client: SiroClient) -> None:
    ids = _seed_timeline(siro_server.state, 6)  # updatedAt = T0 + i h 30 min

    def listed(**kw: Any) -> list[str]:
        return [r.id for r in siro_client.list_recordings(**kw).data]

    edge = T0 + dt.timedelta(hours=2, minutes=30)  # exactly rec-02's updatedAt
    assert listed() == ids
    assert listed(updated_gte=edge) == ids[2:]
    assert listed(updated_gt=edge) == ids[3:]
    assert listed(updated_lt=edge) == ids[:2]
    assert listed(updated_lte=edge) == ids[:3]
    assert listed(updated_gte=edge, updated_lt=edge + dt.timedelta(hours=2)) == ids[2:4]
    assert listed(created_gt=T0 + dt.timedelta(hours=3)) == ids[4:]
    assert listed(created_lt=T0 + dt.timedelta(hours=1)) == ids[:1]
    assert listed(is_summary_done=False) == ids[1::2]
    assert listed(is_summary_done=True, updated_gte=edge) == ["rec-02", "rec-04"]
    q = siro_server.state.requests[1].query
    assert q == {
        "updatedAt:gte": "2024-06-13T06:30:00.000Z",
        "pageSize": "100",
        "showCrmLinks": "true",
        "showEntityExtractions": "true",
    }


def test_list_datetimes_are_formatted_as_siro_asks(siro_server: SiroServer, siro_client: SiroClient) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    siro_client.list_recordings(
        updated_gte=dt.datetime(2024, 6, 13, 6, 0, 0, 592_999, tzinfo=plus2),  # aware, not UTC; cut to ms
        updated_lte=dt.datetime(2024, 6, 13, 5, 0, 0, 100_001),  # naive = UTC; upper bound rounds up
        created_gt="2024-06-13T04:00:00+00:00",
        created_lt="2024-06-13T04:00:00.5Z",
        page_size=7,
        summary=True,
    )
    assert siro_server.state.requests[-1].query == {
        "updatedAt:gte": "2024-06-13T04:00:00.592Z",
        "updatedAt:lte": "2024-06-13T05:00:00.101Z",
        "createdAt:gt": "2024-06-13T04:00:00.000Z",
        "createdAt:lt": "2024-06-13T04:00:00.500Z",
        "pageSize": "7",
        "showCrmLinks": "true",
        "showEntityExtractions": "true",
        "showSummary": "true",
    }
    assert format_siro_datetime(dt.datetime(2024, 12, 31, 23, 59, 59, 999_500), round_up=True) == "2025-01-01T00:00:00.000Z"
    with pytest.raises(ValueError):
        format_siro_datetime("last tuesday")
    for bad in (0, 101, -1, 2.5, True):
        with pytest.raises(ValueError):
            siro_client.list_recordings(page_size=bad)  # type: ignore[arg-type]


def test_pagination_across_pages(siro_server: SiroServer, siro_client: SiroClient) -> None:
    ids = _seed_timeline(siro_server.state, 7)
    _seed_full(siro_server.state, "rec-linked")  # updated now: last
    pages = list(siro_client.iter_pages(page_size=3, updated_gte=T0, summary=True))
    assert [[r.id for r in p.data] for p in pages] == [ids[0:3], ids[3:6], [ids[6], "rec-linked"]]
    assert [p.cursor is None for p in pages] == [False, False, True]
    assert pages[-1].data[-1].crm is not None and pages[-1].data[-1].summary is not None
    logged = siro_server.state.requests
    assert len(logged) == 3 == siro_client.request_count
    assert "cursor" not in logged[0].query
    for previous, request in zip(pages, logged[1:]):
        assert request.query["cursor"] == previous.cursor
        assert request.query["updatedAt:gte"] == "2024-06-13T04:00:00.000Z"  # filters sent again
        assert request.query["showSummary"] == "true"
    # Exactly one full page: no empty trailing page.
    assert [r.id for r in siro_client.list_recordings(page_size=8).data] == [*ids, "rec-linked"]
    assert siro_client.list_recordings(page_size=8).cursor is None
    assert [r.id for r in siro_client.iter_recordings(page_size=2)] == [*ids, "rec-linked"]


def test_default_page_size_is_25(siro_server: SiroServer) -> None:
    _seed_timeline(siro_server.state, 30)
    body = _raw_get(siro_server, "/v1/core/recordings").json()
    assert len(body["data"]) == 25 and isinstance(body["cursor"], str)
    assert "crm" not in body["data"][0] and "entityExtractions" not in body["data"][0]
    rest = _raw_get(siro_server, "/v1/core/recordings", cursor=body["cursor"]).json()
    assert len(rest["data"]) == 5 and rest["cursor"] is None


def test_pagination_is_stable_under_concurrent_updates(siro_server: SiroServer, siro_client: SiroClient) -> None:
    state = siro_server.state
    ids = _seed_timeline(state, 6)
    seen: list[str] = []
    cursor = None
    first = True
    while True:
        page = siro_client.list_recordings(page_size=2, updated_gte=T0, cursor=cursor)
        seen += [r.id for r in page.data]
        if first:
            state.update_recording("rec-00", title="edited after being read")  # moves to the end
            state.link("rec-04", opportunity="006Z")  # not yet read: moves to the end, read once
            first = False
        if not page.cursor:
            break
        cursor = page.cursor
    assert set(seen) == set(ids)
    assert seen.count("rec-00") == 2 and seen.count("rec-04") == 1
    assert seen[-2:] == ["rec-00", "rec-04"]


def test_simulator_list_strictness(siro_server: SiroServer) -> None:
    _seed_timeline(siro_server.state, 3)
    path = "/v1/core/recordings"
    for size in ("0", "101", "-1", "abc", "10.0", " 5", "1e1", ""):
        assert _raw_get(siro_server, path, pageSize=size).status_code == 400, size
    for size in ("1", "100", "025"):
        assert _raw_get(siro_server, path, pageSize=size).status_code == 200, size
    for stamp in ("2024-06-13", "2024-06-13T04:00:00Z", "2024-06-13T04:00:00.592+02:00", "yesterday", "2024-13-13T04:00:00.000Z"):
        assert _raw_get(siro_server, path, **{"updatedAt:gte": stamp}).status_code == 400, stamp
    assert _raw_get(siro_server, path, **{"updatedAt:ge": "2024-06-13T04:00:00.000Z"}).status_code == 400
    assert _raw_get(siro_server, path, **{"createdAt:gte": "2024-06-13T04:00:00.000Z"}).status_code == 400  # not documented
    assert _raw_get(siro_server, path, isSummaryDone="yes").status_code == 400
    assert _raw_get(siro_server, path, cursor="garbage").status_code == 400
    first = _raw_get(siro_server, path, pageSize="1", **{"updatedAt:gte": "2024-06-13T04:00:00.000Z"}).json()
    tampered = first["cursor"][:-2] + ("AA" if not first["cursor"].endswith("AA") else "BB")
    assert _raw_get(siro_server, path, cursor=tampered, **{"updatedAt:gte": "2024-06-13T04:00:00.000Z"}).status_code == 400
    # A cursor is bound to its filters: they must be sent again, unchanged.
    assert _raw_get(siro_server, path, cursor=first["cursor"]).status_code == 400
    assert _raw_get(siro_server, path, cursor=first["cursor"], **{"updatedAt:gte": "2024-06-13T05:00:00.000Z"}).status_code == 400
    ok = _raw_get(siro_server, path, cursor=first["cursor"], pageSize="5", **{"updatedAt:gte": "2024-06-13T04:00:00.000Z"})
    assert ok.status_code == 200 and len(ok.json()["data"]) == 2
    siro_server.state.strict_timestamps = False  # any ISO 8601, still validated
    assert _raw_get(siro_server, path, **{"updatedAt:gte": "2024-06-13T04:00:00Z"}).status_code == 200
    assert _raw_get(siro_server, path, **{"updatedAt:gte": "2024-06-13T06:00:00+02:00"}).json()["data"] != []
    assert _raw_get(siro_server, path, **{"updatedAt:gte": "yesterday"}).status_code == 400


# --------------------------------------------------------------------------
# errors and retries


def test_not_found_and_auth_errors(siro_server: SiroServer, siro_client: SiroClient, make_siro_client: MakeClient) -> None:
    with pytest.raises(RecordingNotFound) as not_found:
        siro_client.get_recording("missing-1")
    assert not_found.value.recording_id == "missing-1" and not_found.value.status == 404
    bad = make_siro_client(token="wrong-token")
    with pytest.raises(SiroAuthError) as auth:
        bad.get_recording("missing-1")
    assert auth.value.status == 401 and "rejected" in str(auth.value)
    with pytest.raises(SiroAuthError):
        bad.caller_identity()
    siro_server.state.fail_next(403)
    with pytest.raises(SiroAuthError) as forbidden:
        siro_client.list_recordings()
    assert forbidden.value.status == 403
    # Never retried; the first 404 of a client also asks caller-identity, once, whether SIRO_API_URL is Siro.
    assert siro_client.request_count == 3 and bad.request_count == 2
    assert isinstance(not_found.value, SiroError) and isinstance(auth.value, SiroError)


def test_other_4xx_is_a_request_error(siro_server: SiroServer, siro_client: SiroClient) -> None:
    siro_server.state.fail_next(422, body={"error": "unprocessable", "message": "x" * 1000})
    with pytest.raises(SiroRequestError) as exc:
        siro_client.get_recording("rec-1")
    assert exc.value.status == 422
    assert "unprocessable" in exc.value.body_excerpt and len(exc.value.body_excerpt) <= 201
    assert "422" in str(exc.value)
    with pytest.raises(SiroRequestError) as bad_param:  # a real 400 from the simulator
        siro_client.list_recordings(updated_gte="2024-06-13T04:00:00.000Z", cursor="not-a-cursor")
    assert bad_param.value.status == 400 and "cursor" in bad_param.value.body_excerpt
    assert siro_client.request_count == 3  # the two, and caller-identity asked once: is this Siro?


def test_unparseable_json_is_a_protocol_error(siro_server: SiroServer, siro_client: SiroClient) -> None:
    siro_server.state.add_recording("rec-1")
    siro_server.state.fail_next(200, body="<html>maintenance</html>")
    with pytest.raises(SiroProtocolError, match="not JSON"):
        siro_client.get_recording("rec-1")
    siro_server.state.fail_next(200, body=["not", "an", "object"])
    with pytest.raises(SiroProtocolError):
        siro_client.get_recording("rec-1")
    siro_server.state.fail_next(200, body={"title": "no id"})
    with pytest.raises(SiroProtocolError):
        siro_client.get_recording("rec-1")
    siro_server.state.fail_next(200, body={"items": []})
    with pytest.raises(SiroProtocolError):
        siro_client.list_recordings()
    siro_server.state.fail_next(200, body={"data": [], "cursor": "same"}, times=2)
    with pytest.raises(SiroProtocolError, match="twice"):
        list(siro_client.iter_pages())
    assert siro_client.get_recording("rec-1").id == "rec-1"


def test_retry_on_503_then_success(siro_server: SiroServer, siro_client: SiroClient) -> None:
    siro_server.state.add_recording("rec-1")
    siro_server.state.fail_next(503, times=2)
    assert siro_client.get_recording("rec-1").id == "rec-1"
    assert [r.status for r in siro_server.state.requests] == [503, 503, 200]
    assert siro_client.request_count == 3


def test_retry_on_other_transient_statuses(siro_server: SiroServer, siro_client: SiroClient) -> None:
    siro_server.state.add_recording("rec-1")
    siro_server.state.fail_next(500)
    siro_server.state.fail_next(502, body="Bad Gateway")
    siro_server.state.fail_next(429)
    assert siro_client.list_recordings().data[0].id == "rec-1"
    assert [r.status for r in siro_server.state.requests] == [500, 502, 429, 200]


def test_429_retry_after_is_honoured(siro_server: SiroServer, siro_client: SiroClient) -> None:
    siro_server.state.add_recording("rec-1")
    siro_server.state.fail_next(429, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert siro_client.get_recording("rec-1").id == "rec-1"
    assert time.monotonic() - started >= 1.0  # the backoff alone would be milliseconds
    assert siro_client.request_count == 2


def test_retry_after_longer_than_backoff_max_is_handed_back(siro_server: SiroServer, siro_client: SiroClient) -> None:
    siro_server.state.fail_next(429, headers={"Retry-After": "120"})
    started = time.monotonic()
    with pytest.raises(SiroUnavailable) as exc:
        siro_client.get_recording("rec-1")
    assert time.monotonic() - started < 1
    assert exc.value.retry_after == 120 and exc.value.status == 429 and exc.value.attempts == 1


def test_give_up_after_max_retries(siro_server: SiroServer, make_siro_client: MakeClient) -> None:
    siro_server.state.fail_next(503, times=10)
    client = make_siro_client(max_retries=2)
    with pytest.raises(SiroUnavailable) as exc:
        client.get_recording("rec-1")
    assert exc.value.attempts == 3 and exc.value.status == 503 and exc.value.retry_after is None
    assert len(siro_server.state.requests) == 3 == client.request_count
    no_retry = make_siro_client(max_retries=0)
    with pytest.raises(SiroUnavailable):
        no_retry.list_recordings()
    assert no_retry.request_count == 1


def test_network_error_closed_port(make_siro_client: MakeClient) -> None:
    client = make_siro_client(base_url=f"http://127.0.0.1:{free_port()}", max_retries=2)
    with pytest.raises(SiroUnavailable) as exc:
        client.get_recording("rec-1")
    assert "network error" in str(exc.value) and exc.value.status is None
    assert client.request_count == 3 and exc.value.attempts == 3


def test_timeout_is_retried(siro_server: SiroServer, make_siro_client: MakeClient) -> None:
    siro_server.state.add_recording("rec-1")
    siro_server.state.fail_next(None, delay=0.6)  # slow, then served
    client = make_siro_client(timeout=0.2, max_retries=2)
    assert client.get_recording("rec-1").id == "rec-1"
    assert client.request_count == 2
    siro_server.state.fail_next(None, delay=0.5, times=2)
    with pytest.raises(SiroUnavailable, match="timeout"):
        make_siro_client(timeout=0.2, max_retries=1).get_recording("rec-1")


def test_simulator_rate_limit_answers_429_without_retry_after(siro_server: SiroServer, make_siro_client: MakeClient) -> None:
    siro_server.state.rate_limit_per_minute = 3
    client = make_siro_client(max_retries=0)
    for _ in range(3):
        client.list_recordings()
    with pytest.raises(SiroUnavailable) as exc:
        client.list_recordings()
    assert exc.value.status == 429 and exc.value.retry_after is None
    raw = _raw_get(siro_server, "/v1/core/recordings")
    assert raw.status_code == 429 and "retry-after" not in raw.headers
    other = siro_server.state.add_token("second-token")
    assert _raw_get(siro_server, "/v1/core/recordings", token=other).status_code == 200  # per token


def test_client_paces_itself(siro_server: SiroServer, make_siro_client: MakeClient) -> None:
    limiter = SlidingWindowRateLimiter(2, period=0.4)
    client = make_siro_client(rate_limiter=limiter)
    started = time.monotonic()
    for _ in range(3):
        client.list_recordings()
    assert time.monotonic() - started >= 0.35
    default = make_siro_client(requests_per_minute=7)
    assert isinstance(default.rate_limiter, SlidingWindowRateLimiter) and default.rate_limiter.limit == 7


def test_sliding_window_limiter_never_exceeds_limit() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = SlidingWindowRateLimiter(3, period=60, clock=lambda: now[0], sleep=sleep)
    times = []
    for _ in range(7):
        limiter.acquire()
        times.append(now[0])
    assert times == [0, 0, 0, 60, 60, 60, 120]
    for i, t in enumerate(times):
        assert sum(1 for u in times if t - 60 < u <= t) <= 3, i


def test_limiter_is_thread_safe() -> None:
    limiter = SlidingWindowRateLimiter(50, period=60)
    threads = [threading.Thread(target=lambda: [limiter.acquire() for _ in range(10)]) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(limiter._sent) == 50


def test_retry_after_parsing() -> None:
    assert _parse_retry_after("3") == 3 and _parse_retry_after("0.5") == 0.5 and _parse_retry_after("-4") == 0
    assert _parse_retry_after(None) is None and _parse_retry_after("soon") is None and _parse_retry_after("nan") is None
    future = dt.datetime.now(UTC) + dt.timedelta(seconds=30)
    http_date = future.strftime("%a, %d %b %Y %H:%M:%S GMT")
    parsed = _parse_retry_after(http_date)
    assert parsed is not None and 25 <= parsed <= 31


def test_errors_pickle(siro_server: SiroServer) -> None:
    errors: list[SiroError] = [
        SiroAuthError(401, "/x"),
        RecordingNotFound("r1"),
        SiroRequestError(422, "bad", "/x"),
        SiroProtocolError("odd", "/x"),
        SiroUnavailable("HTTP 503", attempts=3, status=503, retry_after=2.0, url="/x"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
    assert pickle.loads(pickle.dumps(errors[1])).recording_id == "r1"  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(errors[4])).retry_after == 2.0  # type: ignore[attr-defined]


def test_constructor_validation() -> None:
    with pytest.raises(ValueError) as exc:
        SiroClient("http://127.0.0.1:1", "secret\nvalue")
    assert "secret" not in str(exc.value)
    with pytest.raises(ValueError):
        SiroClient("http://127.0.0.1:1", "  ")
    with pytest.raises(ValueError):
        SiroClient("ftp://siro", "token")
    with SiroClient("http://127.0.0.1:1/api-externalApi/", "tok") as client:
        assert client.base_url == "http://127.0.0.1:1/api-externalApi"


def test_prefixed_base_url(siro_server: SiroServer) -> None:
    from simulators.server import ServedApp
    from simulators.siro import create_app

    siro_server.state.add_recording("rec-1")
    with ServedApp(create_app(siro_server.state, prefix="/api-externalApi")) as served:
        with SiroClient(served.url + "/api-externalApi", SIRO_TEST_TOKEN, max_retries=0) as client:
            assert client.get_recording("rec-1").id == "rec-1"
        with SiroClient(served.url, SIRO_TEST_TOKEN, max_retries=0) as client:
            # The prefix left out: Siro's server answers 404, yet this is no recording's absence but a
            # wrong SIRO_API_URL (caller-identity does not answer there either): a config error.
            with pytest.raises(SiroEndpointError, match="SIRO_API_URL"):
                client.get_recording("rec-1")


# --------------------------------------------------------------------------
# the token never leaks


def _all_text(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def test_token_never_leaks(siro_server: SiroServer, make_siro_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "worker.siro.client", "worker.siro.models"):
        caplog.set_level(logging.DEBUG, logger=name)
    state = siro_server.state
    state.add_recording("rec-1")
    wrong_token = "wrong-secret-token-9x8y7z"
    client = make_siro_client(max_retries=1)
    provoked: list[BaseException] = []

    def provoke(call: Callable[[], Any], expected: type[SiroError]) -> None:
        with pytest.raises(expected) as info:
            call()
        provoked.append(info.value)

    assert client.get_recording("rec-1").id == "rec-1"  # a success is logged too
    provoke(lambda: make_siro_client(token=wrong_token).get_recording("rec-1"), SiroAuthError)
    provoke(lambda: client.get_recording("missing"), RecordingNotFound)
    state.fail_next(400, body=f"Bad token Bearer {SIRO_TEST_TOKEN} in request")  # a server echoing it back
    provoke(lambda: client.list_recordings(), SiroRequestError)
    state.fail_next(200, body=f"not json {SIRO_TEST_TOKEN}")
    provoke(lambda: client.get_recording("rec-1"), SiroProtocolError)
    state.fail_next(503, times=2)
    provoke(lambda: client.caller_identity(), SiroUnavailable)
    closed = make_siro_client(base_url=f"http://127.0.0.1:{free_port()}", max_retries=1)
    provoke(lambda: closed.get_recording("rec-1"), SiroUnavailable)
    state.fail_next(None, delay=0.4, times=2)
    provoke(lambda: make_siro_client(timeout=0.1, max_retries=1).get_recording("rec-1"), SiroUnavailable)

    assert len(provoked) == 7
    for exc in provoked:
        text = _all_text(exc)
        assert SIRO_TEST_TOKEN not in text and wrong_token not in text, type(exc).__name__
    for c in (client, closed):
        assert SIRO_TEST_TOKEN not in repr(c) and SIRO_TEST_TOKEN not in str(c)
        assert SIRO_TEST_TOKEN not in repr(c.__dict__) and SIRO_TEST_TOKEN not in repr(c._http.auth)
    # The logs were captured (our hooks, httpx and httpcore) and hold no token.
    assert "Siro request GET" in caplog.text and "HTTP Request: GET" in caplog.text
    assert any(record.name.startswith("httpcore") for record in caplog.records)
    assert "***" in str(provoked[2])
    assert SIRO_TEST_TOKEN not in caplog.text and wrong_token not in caplog.text
    # ...while the token was really sent.
    assert any(r.token_id for r in state.requests)


def test_an_unknown_recording_is_not_found_whatever_siro_puts_in_its_404(siro_server: SiroServer) -> None:
    """Siro documents no 404 body: a missing recording is told from a wrong SIRO_API_URL by asking
    caller-identity (once per client), never by the shape of the 404's body."""
    from simulators.server import ServedApp

    async def plain_404_for_recordings(scope, receive, send):  # noqa: ANN001 - a bare ASGI app in front of Siro's
        if scope["type"] == "http" and scope["path"].startswith("/v1/core/recordings/"):
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"Recording not found"})
            return
        await siro_app(scope, receive, send)

    from simulators.siro import create_app

    siro_app = create_app(siro_server.state)
    with ServedApp(plain_404_for_recordings) as served, \
            SiroClient(served.url, SIRO_TEST_TOKEN, max_retries=0) as client:
        with pytest.raises(RecordingNotFound):
            client.get_recording("gone-1")
        with pytest.raises(RecordingNotFound):
            client.get_recording("gone-2")
        assert client.request_count == 3  # two recordings, and caller-identity asked once
