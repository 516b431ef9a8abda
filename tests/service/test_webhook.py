"""The webhook receiver (DESIGN §3 "Webhook") over real HTTP.

Each app is served by uvicorn on a loopback port (``ServedApp``) and called
with httpx; the dedupe tests run on both backends (``Dedupe`` on a
``MemoryStore`` and on a ``RedisStore`` of the private redis-server). The
payload model is checked against Siro's AsyncAPI document when
``../shared/siro`` is present.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from pydantic import ValidationError
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from simulators.server import ServedApp, free_port
from worker.limits.store import MemoryStore, RedisStore
from worker.logs import RedactingFilter
from worker.service.dedupe import (
    PENDING,
    Dedupe,
    DedupeUnavailable,
)
from worker.service.webhook import (
    DEDUPE_TTL_S,
    EVENT_TYPES,
    LOGGERS,
    MAX_BODY_BYTES,
    BrokerUnavailable,
    RecordingEventPayload,
    create_app,
    dedupe_key,
    server_config,
)

SECRET = "whsec-test-7f3a9c2e5b8d1f4a"
BEARER = {"Authorization": f"Bearer {SECRET}"}
SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "siro" / "siro-webhooks.asyncapi.json"


def event(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "recordingId": "rec_8f2c",
        "siroUserId": "user_7",
        "recordingProcessed": True,
        "recordingLinked": True,
        "eventType": "integrations.recordingLinked",
        "crm": {
            "integrationConnectionId": "ic_1",
            "opportunity": {"id": "link_1", "externalId": "006000000000001AAA"},
            "contacts": [{"id": "link_2", "externalId": "003000000000001AAA"}],
        },
    }
    payload.update(overrides)
    return payload


class FakeQueue:
    """``enqueue``: records calls, hands out task ids, fails on demand."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failures = 0  # the next N calls raise BrokerUnavailable
        self.delay_s = 0.0
        self.error: BaseException | None = None  # raised instead of enqueuing
        self._lock = threading.Lock()

    def __call__(self, recording_id: str) -> str:
        time.sleep(self.delay_s)
        with self._lock:
            if self.error is not None:
                raise self.error
            if self.failures:
                self.failures -= 1
                raise BrokerUnavailable("redis://:hunter2@broker:6379/0 unreachable")
            self.calls.append(recording_id)
            return f"task-{len(self.calls)}"


@dataclass
class Webhook:
    http: httpx.Client
    url: str
    queue: FakeQueue
    dedupe: Dedupe


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Dedupe:
    if request.param == "memory":
        return Dedupe(MemoryStore())
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"), socket_timeout=2, socket_connect_timeout=2)
    request.addfinalizer(client.close)
    return Dedupe(RedisStore(client))


class _ServedSlot:
    """The ASGI app of the current test, behind one server for the whole module (uvicorn takes
    a tenth of a second to stop: a server per test would cost seconds)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def served_slot() -> Iterator[tuple[_ServedSlot, ServedApp]]:
    slot = _ServedSlot()
    with ServedApp(slot) as served:
        yield slot, served


@pytest.fixture
def make_webhook(served_slot: tuple[_ServedSlot, ServedApp]) -> Iterator[Callable[..., Webhook]]:
    slot, served = served_slot
    with ExitStack() as stack:

        def make(
            dedupe: Dedupe | None = None,
            ready: Callable[[], dict[str, str | None]] | None = None,
            queue: FakeQueue | None = None,
        ) -> Webhook:
            queue = queue or FakeQueue()
            dedupe = dedupe if dedupe is not None else Dedupe(MemoryStore())
            slot.app = create_app(secret=SECRET, enqueue=queue, dedupe=dedupe, ready=ready)
            http = stack.enter_context(httpx.Client(base_url=served.url, timeout=10))
            return Webhook(http, served.url, queue, dedupe)

        yield make


@pytest.fixture
def webhook(make_webhook: Callable[..., Webhook]) -> Webhook:
    return make_webhook()


@pytest.fixture
def webhook_on(make_webhook: Callable[..., Webhook], store: Dedupe) -> Webhook:
    """The webhook on each dedupe store."""
    return make_webhook(dedupe=store)


def post(hook: Webhook, payload: Any, *, headers: dict[str, str] | None = None, path: str = "/webhooks/siro",
         raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **(BEARER if headers is None else headers)}
    return hook.http.post(path, content=content, headers=headers)


# -- accepted -------------------------------------------------------------------


def test_bearer_secret_enqueues(webhook_on: Webhook) -> None:
    response = post(webhook_on, event())
    assert response.status_code == 202
    assert response.json() == {"status": "enqueued", "recordingId": "rec_8f2c", "taskId": "task-1"}
    assert webhook_on.queue.calls == ["rec_8f2c"]


def test_path_secret_enqueues(webhook: Webhook) -> None:
    response = post(webhook, event(), headers={}, path=f"/webhooks/siro/{SECRET}")
    assert response.status_code == 202
    assert response.json()["status"] == "enqueued"
    assert webhook.queue.calls == ["rec_8f2c"]


def test_bearer_scheme_is_case_insensitive_and_processed_event_without_crm_enqueues(webhook: Webhook) -> None:
    payload = event(eventType="integrations.recordingProcessed", recordingLinked=False, crm=None)
    response = post(webhook, payload, headers={"Authorization": f"bearer  {SECRET}"})
    assert response.status_code == 202
    assert webhook.queue.calls == ["rec_8f2c"]


def test_unknown_extra_fields_are_tolerated(webhook: Webhook) -> None:
    payload = event(newField={"a": 1})
    payload["crm"]["somethingNew"] = [1, 2]
    payload["crm"]["opportunity"]["name"] = "Big deal"
    assert post(webhook, payload).status_code == 202


# -- 401 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        ({}, "/webhooks/siro"),
        ({"Authorization": "Bearer wrong-secret-0000000000"}, "/webhooks/siro"),
        ({"Authorization": f"Basic {SECRET}"}, "/webhooks/siro"),
        ({"Authorization": "Bearer"}, "/webhooks/siro"),
        ({"Authorization": f"Bearer {SECRET}x"}, "/webhooks/siro"),
        ({}, "/webhooks/siro/wrong-secret-0000000000"),
        ({}, f"/webhooks/siro/{SECRET[:-1]}"),
    ],
    ids=["missing", "wrong-bearer", "basic-scheme", "empty-bearer", "longer-bearer", "wrong-path", "prefix-path"],
)
def test_missing_or_wrong_secret_is_401(webhook: Webhook, headers: dict[str, str], path: str) -> None:
    response = post(webhook, event(), headers=headers, path=path)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert SECRET not in response.text
    assert webhook.queue.calls == []


def test_401_comes_before_413_and_422(webhook: Webhook) -> None:
    wrong = {"Authorization": "Bearer nope-nope-nope"}
    assert post(webhook, None, headers=wrong, raw=b"x" * (MAX_BODY_BYTES + 1)).status_code == 401
    assert post(webhook, None, headers=wrong, raw=b"not json").status_code == 401


# -- 413 ------------------------------------------------------------------------


def test_body_over_64_kib_is_413(webhook: Webhook) -> None:
    body = json.dumps(event(padding="")).encode()
    body = body[:-1] + b" " * (MAX_BODY_BYTES + 1 - len(body)) + b"}"
    assert len(body) == MAX_BODY_BYTES + 1
    response = post(webhook, None, raw=body)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert webhook.queue.calls == []


def test_body_of_exactly_64_kib_is_taken(webhook: Webhook) -> None:
    body = json.dumps(event()).encode()
    body = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"
    assert len(body) == MAX_BODY_BYTES
    assert post(webhook, None, raw=body).status_code == 202


def test_413_comes_before_422(webhook: Webhook) -> None:
    assert post(webhook, None, raw=b"x" * (MAX_BODY_BYTES + 1)).status_code == 413


def test_chunked_body_without_content_length_is_counted_as_it_streams(webhook: Webhook) -> None:
    sent = 0

    def chunks(total: int) -> Iterator[bytes]:
        nonlocal sent
        head = json.dumps(event()).encode()[:-1]
        sent += len(head)
        yield head
        while sent < total - 1:
            piece = b" " * min(4096, total - 1 - sent)
            sent += len(piece)
            yield piece
        sent += 1
        yield b"}"

    headers = {**BEARER, "Content-Type": "application/json"}
    request = webhook.http.build_request("POST", "/webhooks/siro", content=chunks(MAX_BODY_BYTES + 1), headers=headers)
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    assert webhook.http.send(request).status_code == 413

    sent = 0
    request = webhook.http.build_request("POST", "/webhooks/siro", content=chunks(MAX_BODY_BYTES), headers=headers)
    assert webhook.http.send(request).status_code == 202
    assert webhook.queue.calls == ["rec_8f2c"]


def test_huge_chunked_body_is_cut_off(webhook: Webhook) -> None:
    # Megabytes announced by no header: the server answers without reading them all.
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * 65536

    headers = {**BEARER, "Content-Type": "application/json"}
    try:
        response = webhook.http.post("/webhooks/siro", content=chunks(), headers=headers)
    except httpx.TransportError:
        return  # the server closed the connection mid-upload: also a refusal
    assert response.status_code == 413


# -- 422 ------------------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    payload = event()
    del payload[key]
    return payload


def _crm(**changes: Any) -> dict[str, Any]:
    payload = event()
    payload["crm"].update(changes)
    return payload


MALFORMED = {
    "not-json": b"{recordingId: rec_1",
    "not-utf8": b'{"recordingId": "\xff"}',
    "nan": b'{"recordingId": "r", "recordingProcessed": true, "recordingLinked": true, "eventType": "x", "n": NaN}',
    "empty-body": b"",
    "array": json.dumps([event()]).encode(),
    "string": b'"rec_1"',
    "null": b"null",
    **{f"missing-{key}": json.dumps(_without(key)).encode()
       for key in ("recordingId", "recordingProcessed", "recordingLinked", "eventType")},
    "bool-as-string": json.dumps(event(recordingProcessed="true")).encode(),
    "bool-as-int": json.dumps(event(recordingLinked=1)).encode(),
    "id-as-number": json.dumps(event(recordingId=123)).encode(),
    "event-type-as-list": json.dumps(event(eventType=["integrations.recordingLinked"])).encode(),
    "empty-recording-id": json.dumps(event(recordingId="")).encode(),
    "blank-recording-id": json.dumps(event(recordingId="  ")).encode(),
    "recording-id-too-long": json.dumps(event(recordingId="r" * 256)).encode(),  # the ledger keeps 255
    "crm-not-object": json.dumps(event(crm="ic_1")).encode(),
    "crm-without-connection": json.dumps(event(crm={"opportunity": {"id": "a", "externalId": "b"}})).encode(),
    "link-without-external-id": json.dumps(_crm(opportunity={"id": "a"})).encode(),
    "external-id-as-number": json.dumps(_crm(account={"id": "a", "externalId": 42})).encode(),
    "contacts-not-list": json.dumps(_crm(contacts={"id": "a", "externalId": "b"})).encode(),
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_body_is_422(webhook: Webhook, body: bytes) -> None:
    response = post(webhook, None, raw=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "malformed"
    assert set(response.json()) == {"error", "message"}
    assert webhook.queue.calls == []


def test_422_never_echoes_the_secret(webhook: Webhook) -> None:
    # A confused sender puts the secret in the body (or the secret is a field value).
    payload = event(recordingProcessed=SECRET, crm={SECRET: SECRET})
    response = post(webhook, payload, headers={}, path=f"/webhooks/siro/{SECRET}")
    assert response.status_code == 422
    assert SECRET not in response.text
    assert "recordingProcessed" in response.json()["message"]


# -- ignored ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        event(eventType="integrations.recordingDeleted"),
        event(eventType=""),
        event(recordingProcessed=False, recordingLinked=False),
        event(eventType="integrations.recordingProcessed", recordingProcessed=False, recordingLinked=False, crm=None),
    ],
    ids=["unknown-event", "empty-event", "both-false", "processed-event-both-false"],
)
def test_nothing_to_do_is_200_ignored(webhook: Webhook, payload: dict[str, Any]) -> None:
    response = post(webhook, payload)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "recordingId": "rec_8f2c", "taskId": None}
    assert webhook.queue.calls == []


# -- dedupe -----------------------------------------------------------------------


def test_repeated_deliveries_enqueue_once(webhook_on: Webhook) -> None:
    answers = [post(webhook_on, event()) for _ in range(5)]
    assert [a.status_code for a in answers] == [202, 200, 200, 200, 200]
    for answer in answers[1:]:
        assert answer.json() == {"status": "duplicate", "recordingId": "rec_8f2c", "taskId": "task-1"}
    assert webhook_on.queue.calls == ["rec_8f2c"]


def test_same_event_in_other_key_order_and_spacing_is_a_duplicate(webhook: Webhook) -> None:
    assert post(webhook, event()).status_code == 202
    reordered = dict(reversed(list(event().items())))
    raw = json.dumps(reordered, indent=4).encode()
    response = post(webhook, None, raw=raw, headers={}, path=f"/webhooks/siro/{SECRET}")
    assert response.json()["status"] == "duplicate"
    assert webhook.queue.calls == ["rec_8f2c"]


def test_concurrent_identical_deliveries_enqueue_once(make_webhook: Callable[..., Webhook], store: Dedupe) -> None:
    queue = FakeQueue()
    queue.delay_s = 0.3  # every delivery arrives while the first enqueue is still running
    hook = make_webhook(dedupe=store, queue=queue)
    barrier = threading.Barrier(5)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def deliver() -> None:
        with httpx.Client(base_url=hook.url, timeout=10) as http:
            barrier.wait()
            response = http.post("/webhooks/siro", json=event(), headers=BEARER)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert queue.calls == ["rec_8f2c"]
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses == ["duplicate"] * 4 + ["enqueued"]
    for answer in answers:
        assert answer.json()["taskId"] in (None, "task-1")  # None: the first enqueue was still pending


def test_new_content_for_the_same_recording_is_a_new_event(webhook_on: Webhook) -> None:
    assert post(webhook_on, event()).status_code == 202
    relinked = event()
    relinked["crm"]["contacts"].append({"id": "link_3", "externalId": "003000000000002AAA"})
    response = post(webhook_on, relinked)
    assert response.status_code == 202
    assert response.json()["taskId"] == "task-2"
    assert webhook_on.queue.calls == ["rec_8f2c", "rec_8f2c"]


def test_broker_down_is_503_and_the_retry_is_taken(webhook_on: Webhook) -> None:
    webhook_on.queue.failures = 1
    first = post(webhook_on, event())
    assert first.status_code == 503
    assert first.json()["error"] == "broker_unavailable"
    assert "hunter2" not in first.text  # the broker error's text stays out of the answer
    retry = post(webhook_on, event())
    assert retry.status_code == 202
    assert retry.json() == {"status": "enqueued", "recordingId": "rec_8f2c", "taskId": "task-1"}
    assert post(webhook_on, event()).json()["status"] == "duplicate"


def test_unexpected_enqueue_error_is_500_without_the_secret_and_releases_the_claim(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.queue.error = RuntimeError(f"boom near /webhooks/siro/{SECRET} and {SECRET}")
    with caplog.at_level(logging.ERROR, logger="worker.service.webhook"):
        response = post(webhook, event(), headers={}, path=f"/webhooks/siro/{SECRET}")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert SECRET not in response.text
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "RuntimeError" in logged and "boom" in logged
    assert SECRET not in logged
    webhook.queue.error = None
    assert post(webhook, event()).status_code == 202  # the failed attempt did not hold the key


def _dead_redis(retries: int) -> redis.Redis:
    """A client for a port nobody listens on, with short timeouts and quick retries."""
    return redis.Redis(host="127.0.0.1", port=free_port(), socket_timeout=0.5, socket_connect_timeout=0.5,
                       retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries))


def test_redis_unreachable_is_503(make_webhook: Callable[..., Webhook]) -> None:
    dead = _dead_redis(retries=1)
    hook = make_webhook(dedupe=Dedupe(RedisStore(dead)))
    started = time.monotonic()
    response = post(hook, event())
    assert response.status_code == 503
    assert response.json()["error"] == "dedupe_unavailable"
    assert time.monotonic() - started < 10
    assert hook.queue.calls == []
    dead.close()


class _ConfirmFails(Dedupe):
    def confirm(self, key: str, task_id: str, ttl_s: float) -> None:
        raise DedupeUnavailable("redis: ConnectionError")


def test_enqueued_task_is_202_even_when_confirm_fails(make_webhook: Callable[..., Webhook]) -> None:
    hook = make_webhook(dedupe=_ConfirmFails())
    response = post(hook, event())
    assert response.status_code == 202
    assert response.json()["taskId"] == "task-1"
    assert post(hook, event()).json() == {"status": "duplicate", "recordingId": "rec_8f2c", "taskId": None}


# -- dedupe stores ----------------------------------------------------------------


def test_store_claim_confirm_release(store: Dedupe) -> None:
    assert isinstance(store, Dedupe)
    assert store.task_id("k") is None
    assert store.claim("k", 30) is True
    assert store.claim("k", 30) is False
    assert store.task_id("k") is None  # pending
    store.release("k")
    assert store.claim("k", 30) is True
    store.confirm("k", "task-9", DEDUPE_TTL_S)
    assert store.task_id("k") == "task-9"
    assert store.claim("k", 30) is False


def test_redis_store_keys_expire(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = Dedupe(RedisStore(client))
    assert store.claim("abc", 30)
    assert client.get("writeback:webhook:abc") == PENDING.encode()
    assert 0 < client.pttl("writeback:webhook:abc") <= 30_000
    store.confirm("abc", "task-1", DEDUPE_TTL_S)
    assert 29_000 < client.pttl("writeback:webhook:abc") <= DEDUPE_TTL_S * 1000
    assert store.claim("short", 0.05)
    time.sleep(0.2)
    assert store.claim("short", 30)
    client.close()


def test_redis_store_errors_are_dedupe_unavailable() -> None:
    dead = _dead_redis(retries=0)
    store = Dedupe(RedisStore(dead))
    for call in (lambda: store.claim("k", 1), lambda: store.task_id("k"), lambda: store.release("k"),
                 lambda: store.confirm("k", "t", 1)):
        with pytest.raises(DedupeUnavailable):
            call()
    dead.close()


def test_memory_store_honours_ttl() -> None:
    now = [1000.0]
    backend = MemoryStore(clock=lambda: now[0])
    store = Dedupe(backend)
    assert store.claim("k", 30)
    now[0] += 29
    assert not store.claim("k", 30)
    now[0] += 2
    assert store.claim("k", 30)  # the pending claim lapsed
    store.confirm("k", "task-1", DEDUPE_TTL_S)
    now[0] += DEDUPE_TTL_S - 1
    assert store.task_id("k") == "task-1"
    now[0] += 2
    assert store.task_id("k") is None
    assert store.claim("k", 30)
    store.claim("other", 1)
    now[0] += 120
    store.claim("third", 1)  # sweeps what expired
    assert set(backend._data) == {"writeback:webhook:third"}


def test_memory_store_is_thread_safe() -> None:
    store = Dedupe(MemoryStore())
    wins: list[bool] = []
    barrier = threading.Barrier(20)

    def race() -> None:
        barrier.wait()
        wins.append(store.claim("k", 30))

    threads = [threading.Thread(target=race) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1


def test_dedupe_key_is_canonical() -> None:
    a = {"b": [1, {"y": 2, "x": "é"}], "a": None}
    b = json.loads(json.dumps(dict(reversed(list(a.items()))), indent=2, ensure_ascii=True))
    assert dedupe_key(a) == dedupe_key(b)
    assert dedupe_key(a) != dedupe_key({**a, "c": 1})
    assert len(dedupe_key({"lone": "\ud800"})) == 64


# -- health -----------------------------------------------------------------------


def test_healthz_and_readyz_without_checks(webhook: Webhook) -> None:
    assert webhook.http.get("/healthz").status_code == 200
    response = webhook.http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {}}


def test_readyz_reports_failed_checks(make_webhook: Callable[..., Webhook]) -> None:
    state: dict[str, str | None] = {"broker": None, "database": None}
    hook = make_webhook(ready=lambda: dict(state))
    healthy = hook.http.get("/readyz")
    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ready", "checks": {"broker": "ok", "database": "ok"}}  # not null
    state["broker"] = "ConnectionError"
    response = hook.http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unready", "checks": {"broker": "ConnectionError", "database": "ok"}}
    assert hook.http.get("/healthz").status_code == 200


def test_readyz_when_the_check_itself_fails(make_webhook: Callable[..., Webhook]) -> None:
    def broken() -> dict[str, str | None]:
        raise OSError(SECRET)

    response = make_webhook(ready=broken).http.get("/readyz")
    assert response.status_code == 503
    assert SECRET not in response.text


def test_app_refuses_to_start_without_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        create_app(secret="", enqueue=FakeQueue(), dedupe=Dedupe(MemoryStore()))


def test_unknown_routes_do_not_echo_the_path(webhook: Webhook) -> None:
    response = webhook.http.get(f"/webhooks/siro/{SECRET}")
    assert response.status_code == 405
    assert SECRET not in response.text
    response = webhook.http.post(f"/webhooks/siro/{SECRET}/extra", json=event())
    assert response.status_code == 404
    assert SECRET not in response.text


# -- logs never carry the secret --------------------------------------------------


def test_secret_filter_masks_access_records_and_tracebacks() -> None:
    secret_filter = RedactingFilter([SECRET])
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "POST", f"/webhooks/siro/{SECRET}", "1.1", 202), None)
    assert secret_filter.filter(record)
    assert record.args == ("127.0.0.1:5000", "POST", "/webhooks/siro/***", "1.1", 202)
    assert record.getMessage() == '127.0.0.1:5000 - "POST /webhooks/siro/*** HTTP/1.1" 202'

    # The path is masked even when it is not the secret (a wrong guess is someone's secret too).
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "GET %s", ("/webhooks/siro/guess?a=1",), None)
    secret_filter.filter(record)
    assert record.getMessage() == "GET /webhooks/siro/***?a=1"

    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops %s", (SECRET,), sys.exc_info())
    secret_filter.filter(record)
    output = logging.Formatter().format(record)
    assert "oops ***" in output and "RuntimeError: failed with ***" in output
    assert SECRET not in output


@contextmanager
def _logging_restored() -> Iterator[None]:
    """uvicorn's log config rewires its loggers: put them back for the other tests."""
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), list(logger.filters), logger.level, logger.propagate, logger.disabled)
    try:
        yield
    finally:
        for name, (handlers, filters, level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.filters[:] = filters
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def test_served_access_log_never_contains_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    queue = FakeQueue()
    app = create_app(secret=SECRET, enqueue=queue, dedupe=Dedupe(MemoryStore()))
    captured = io.StringIO()
    capture = logging.StreamHandler(captured)
    capture.setFormatter(logging.Formatter("%(name)s %(message)s"))
    port = free_port()
    with _logging_restored():
        # The same uvicorn configuration ``serve`` runs, on a loopback port.
        server = uvicorn.Server(server_config(app, "127.0.0.1", port))
        for name in ("uvicorn.access", "uvicorn.error", "worker.service.webhook"):
            logging.getLogger(name).addHandler(capture)
        logging.getLogger("worker.service.webhook").setLevel(logging.INFO)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 15
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "webhook server did not start"
                time.sleep(0.01)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=10) as http:
                assert http.post(f"/webhooks/siro/{SECRET}", json=event()).status_code == 202
                assert http.post(f"/webhooks/siro/{SECRET}", json=event()).status_code == 200
                assert http.post("/webhooks/siro/not-the-secret-123", json=event()).status_code == 401
                assert http.post(f"/webhooks/siro/{SECRET}?token={SECRET}", json=[]).status_code == 422
                assert http.get(f"/webhooks/siro/{SECRET}").status_code == 405
                assert http.post("/webhooks/siro", json=event(recordingId="rec_2"), headers=BEARER).status_code == 202
                queue.error = RuntimeError(f"kaboom {SECRET}")
                assert http.post(f"/webhooks/siro/{SECRET}", json=event(recordingId="rec_3")).status_code == 500
        finally:
            server.should_exit = True
            thread.join(10)
            for name in ("uvicorn.access", "uvicorn.error", "worker.service.webhook"):
                logging.getLogger(name).removeHandler(capture)
    logged = captured.getvalue()
    printed = capsys.readouterr()
    access = [line for line in logged.splitlines() if line.startswith("uvicorn.access")]
    assert sum("/webhooks/siro/***" in line for line in access) == 6, logged
    assert '"POST /webhooks/siro/***?token=*** HTTP/1.1" 422' in logged
    assert '"POST /webhooks/siro HTTP/1.1" 202' in logged
    assert "kaboom ***" in logged
    for text in (logged, printed.out, printed.err):
        assert SECRET not in text
        assert "not-the-secret-123" not in text
    assert "/webhooks/siro/***" in printed.out  # uvicorn's own access handler got the masked line


# -- the payload model against Siro's AsyncAPI document ------------------------------

needs_spec = pytest.mark.skipif(not SPEC_PATH.is_file(), reason=f"{SPEC_PATH} not found")


def _payload_schema() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())["components"]["schemas"]["RecordingEventWebhookPayload"]


def _example(schema: dict[str, Any], name: str = "value") -> Any:
    kind = schema.get("type")
    if kind == "object":
        return {key: _example(sub, key) for key, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example(schema.get("items", {}), name)]
    if kind == "boolean":
        return True
    if kind == "string":
        return f"{name}-1"
    raise AssertionError(f"unexpected schema type {kind!r} for {name}")


WRONG = {"string": [123, True, ["x"]], "boolean": ["true", 1, "yes"], "object": ["x", [], 1], "array": ["x", {}, 1]}


def _properties(schema: dict[str, Any], path: tuple = ()) -> Iterator[tuple[tuple, dict[str, Any], bool]]:
    """Every documented property: its path in an example, its schema, whether required."""
    required = set(schema.get("required", []))
    for key, sub in schema.get("properties", {}).items():
        yield (*path, key), sub, key in required
        if sub.get("type") == "object":
            yield from _properties(sub, (*path, key))
        if sub.get("type") == "array" and sub.get("items", {}).get("type") == "object":
            yield from _properties(sub["items"], (*path, key, 0))


def _edit(document: Any, path: tuple, value: Any = ..., delete: bool = False) -> Any:
    document = copy.deepcopy(document)
    target = document
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@needs_spec
def test_payload_model_matches_the_asyncapi_schema() -> None:
    schema = _payload_schema()
    aliases = {f.alias or name: f for name, f in RecordingEventPayload.model_fields.items()}
    assert set(schema["properties"]) <= set(aliases), "a documented property is not modelled"
    assert {a for a, f in aliases.items() if f.is_required()} == set(schema["required"])

    example = _example(schema)
    parsed = RecordingEventPayload.model_validate(example)
    assert parsed.recording_id == "recordingId-1" and parsed.crm is not None
    assert parsed.crm.contacts[0].external_id == "externalId-1"

    checked = 0
    for path, sub, required in _properties(schema):
        where = ".".join(map(str, path))
        trimmed = _edit(example, path, delete=True)
        if required:
            with pytest.raises(ValidationError):
                RecordingEventPayload.model_validate(trimmed)
        else:
            RecordingEventPayload.model_validate(trimmed)  # optional: may be absent
        # An optional property may be null (``crm: null`` is "not linked yet"); a required one may not.
        for wrong in WRONG[sub["type"]] + ([None] if required else []):
            with pytest.raises(ValidationError):
                RecordingEventPayload.model_validate(_edit(example, path, wrong))
                pytest.fail(f"{where}: {wrong!r} accepted for a {sub['type']}")
        checked += 1
    assert checked >= 20  # top level, crm, and every link object's id/externalId


@needs_spec
def test_routed_event_types_are_the_documented_webhooks() -> None:
    assert set(json.loads(SPEC_PATH.read_text())["webhooks"]) == EVENT_TYPES
