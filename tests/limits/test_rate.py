"""Rate limits shared through Redis (``worker.limits.rate``) and the connectors' gates.

Cross-process guarantees are shown with real subprocesses against the private
``redis-server`` of ``tests/fixtures/redis.py``. Nothing here asserts on
wall-clock durations: counts within windows are measured from recorded
timestamps, with a tolerance only in the direction that load can widen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from connectors.base import NO_GATE, Connector, RecordWrite, TransientError
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from simulators.server import free_port
from tests.limits.test_limiters import most_in_window
from worker.errors import ConfigError
from worker.limits.rate import (
    DAILY_RETRY_AFTER_S,
    ConcurrencyLimiter,
    DailyUsage,
    LimiterBusy,
    RequestGate,
    SlidingWindowRateLimiter,
    gate_factory,
    gate_for,
)
from worker.limits.store import MemoryStore, RedisStore, redis_client
from worker.pipeline.connector_pool import ConnectorPool
from worker.settings import ConnectionConfig, WritebackConfig, parse_config
from worker.siro.client import SiroUnavailable
from worker.siro.pacing import siro_limiter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(redis_url: str) -> Any:
    made = redis_client(redis_url)
    yield made
    made.close()


def connection(connector: str, name: str | None = None, **extra: Any) -> ConnectionConfig:
    return ConnectionConfig.model_validate({"connector": connector, "name": name, **extra})


# ----------------------------------------------------------------- subprocess helpers

_RATE_CHILD = """
import json, sys, time
from worker.limits.rate import SlidingWindowRateLimiter
from worker.limits.store import RedisStore, redis_client
url, key, limit, period, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
client = redis_client(url)
limiter = SlidingWindowRateLimiter(limit, period, store=RedisStore(client), key=key)
client.incr("test:ready")
while not client.exists("test:go"):
    time.sleep(0.01)
stamps = []
for _ in range(count):
    limiter.acquire()
    stamps.append(time.time())
print(json.dumps(stamps))
"""

_SLOT_CHILD = """
import json, sys, time
from worker.limits.rate import ConcurrencyLimiter
from worker.limits.store import RedisStore, redis_client
url, key, limit, count, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
client = redis_client(url)
limiter = ConcurrencyLimiter(limit, store=RedisStore(client), key=key, lease_s=60)
client.incr("test:ready")
while not client.exists("test:go"):
    time.sleep(0.01)
spans = []
for _ in range(count):
    with limiter.slot():
        start = time.time()
        held = client.zcard(key)
        time.sleep(hold)
        end = time.time()
    spans.append([start, end, held])
print(json.dumps(spans))
"""

_HOLDER_CHILD = """
import sys, time
from worker.limits.rate import ConcurrencyLimiter
from worker.limits.store import RedisStore, redis_client
store = RedisStore(redis_client(sys.argv[1]))
limiter = ConcurrencyLimiter(1, store=store, key=sys.argv[2], lease_s=float(sys.argv[3]))
limiter.acquire()
print("held", flush=True)
time.sleep(600)
"""


def run_together(code: str, args: list[list[str]], client: Any) -> list[Any]:
    """Start one child per argument list, release them at once, and return what each printed (JSON)."""
    children = [subprocess.Popen([sys.executable, "-c", code, *argv], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for argv in args]
    try:
        deadline = time.monotonic() + 120
        while int(client.get("test:ready") or 0) < len(children):
            for child in children:
                if child.poll() is not None:
                    pytest.fail(f"a child exited early: {child.stderr.read() if child.stderr else ''}")
            assert time.monotonic() < deadline, "children did not start"
            time.sleep(0.02)
        client.set("test:go", 1)
        results = []
        for child in children:
            out, err = child.communicate(timeout=300)
            assert child.returncode == 0, err
            results.append(json.loads(out))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


# ----------------------------------------------------------------- rate limiter, across processes


@pytest.mark.e2e  # starts processes
def test_never_more_than_the_limit_in_any_window_across_processes(client, redis_url):
    limit, period, per_child = 4, 1.0, 5
    results = run_together(_RATE_CHILD, [[redis_url, "writeback:rate:test:requests", str(limit), str(period),
                                          str(per_child)] for _ in range(3)], client)
    stamps = sorted(stamp for child in results for stamp in child)
    assert len(stamps) == 3 * per_child
    # A stamp is taken a moment after Redis granted the slot, never before: a recorded window can only
    # look *longer* than the real one by that delay. So any window of ``period - tolerance`` must hold at
    # most ``limit`` (a broken limiter would let 3 processes through together, with gaps of ~0).
    tolerance = 0.3
    assert most_in_window(stamps, period - tolerance) <= limit
    # and the processes did wait for each other: 15 acquisitions at 4 per second span 3 periods at least
    assert stamps[-1] - stamps[0] >= 3 * period - tolerance


def test_a_waiting_acquirer_gets_its_turn(client):
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    key = "writeback:rate:test:requests"
    first = SlidingWindowRateLimiter(2, 1.0, store=RedisStore(client), key=key)
    second = SlidingWindowRateLimiter(2, 1.0, store=RedisStore(client), key=key, sleep=sleep)  # another worker
    first.acquire()
    start = time.time()
    first.acquire()
    got: list[float] = []
    thread = threading.Thread(target=lambda: (second.acquire(), got.append(time.time())))
    thread.start()
    thread.join(60)
    assert got, "the waiting acquirer never got its turn"
    assert waits and all(0 < w <= 1.0 + 0.011 for w in waits)  # it slept the wait Redis computed
    assert got[0] - start >= 1.0 - 0.3
    assert client.zcard("writeback:rate:test:requests") <= 2
    assert 0 < client.pttl("writeback:rate:test:requests") <= 1000  # the key expires with the window


def test_every_acquisition_is_a_distinct_entry_and_the_wait_is_bounded(client):
    limiter = SlidingWindowRateLimiter(3, 60.0, store=RedisStore(client), key="writeback:rate:test:requests",
                                       max_wait_s=1.0)
    for _ in range(3):
        limiter.acquire()
    assert client.zcard("writeback:rate:test:requests") == 3
    with pytest.raises(LimiterBusy) as info:
        limiter.acquire()  # the next slot frees in ~60 s: more than max_wait_s, so it does not sleep
    assert 50 < info.value.retry_after <= 60


def test_span_counts_a_request_until_its_answer():
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = SlidingWindowRateLimiter(2, 10.0, clock=lambda: clock[0], sleep=sleep)
    with limiter.span():
        clock[0] += 3.0  # a slow request: the CRM may have counted it as late as t=3
    limiter.acquire()
    limiter.acquire()  # waits for the first entry, now stamped t=3, to leave the window
    assert clock[0] == pytest.approx(13.0)
    assert isinstance(limiter.backend, MemoryStore)


# ----------------------------------------------------------------- concurrency limiter


@pytest.mark.e2e  # starts processes
def test_the_semaphore_never_exceeds_its_limit_across_processes(client, redis_url):
    limit = 2
    results = run_together(_SLOT_CHILD, [[redis_url, "writeback:rate:test:concurrency", str(limit), "3", "0.15"]
                                         for _ in range(4)], client)
    spans = [span for child in results for span in child]
    assert len(spans) == 12
    # Each recorded (start, end) lies inside its lease: overlaps of the recorded spans cannot exceed
    # the real ones, whatever the load.
    events = sorted([(start, 1) for start, _, _ in spans] + [(end, -1) for _, end, _ in spans])
    inside = peak = 0
    for _, step in events:
        inside += step
        peak = max(peak, inside)
    assert peak <= limit
    assert max(held for _, _, held in spans) <= limit
    assert client.zcard("writeback:rate:test:concurrency") == 0  # every slot released


@pytest.mark.e2e  # starts processes
def test_the_lease_of_a_killed_holder_expires(client, redis_url):
    key = "writeback:rate:test:concurrency"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER_CHILD, redis_url, key, "1.5"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        holder.kill()  # SIGKILL: no release
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    [(_, expiry)] = client.zrange(key, 0, -1, withscores=True)
    limiter = ConcurrencyLimiter(1, store=RedisStore(client), key=key, lease_s=30)
    with limiter.slot():
        seconds, micros = client.time()
        assert seconds * 1_000_000 + micros >= expiry  # granted only once the dead holder's lease ran out
        assert client.zcard(key) == 1


# ----------------------------------------------------------------- gate


def test_the_default_gate_does_nothing():
    class Plugin(Connector):  # a plugin that knows nothing of gates, not even super().__init__
        name = "plugin"
        default_models = {}

        def __init__(self, options):
            self.options = options

        def object_schema(self, object_name): raise NotImplementedError
        def read(self, object_name, record_ids, fields): return {}
        def write(self, object_name, updates): return []
        def encode(self, field, value): return value

    plugin = Plugin({})
    assert plugin.gate is NO_GATE and Plugin.default_rate_limit is None
    with plugin.gate.request():
        pass
    plugin.gate.observe_daily_usage(10, 10)
    assert gate_for(connection("plugin"), Plugin, None) is NO_GATE
    plugin.gate = gate_for(connection("plugin", rate_limit={"concurrency": 2}), Plugin, None)
    assert isinstance(plugin.gate.concurrency, ConcurrencyLimiter) and plugin.gate.concurrency.limit == 2
    assert isinstance(plugin.gate.concurrency.backend, MemoryStore)


def test_the_daily_guard_refuses_once_the_share_is_spent():
    clock = [0.0]
    acquired: list[int] = []

    class Counting:
        def acquire(self) -> None:
            acquired.append(1)

    gate = RequestGate("sf", rate=Counting(), daily_share=0.9, usage=DailyUsage(3600, clock=lambda: clock[0]))
    with gate.request():
        pass  # nothing seen yet: let it go
    gate.observe_daily_usage(899, 1000)
    with gate.request():
        pass
    gate.observe_daily_usage(900, 1000)
    with pytest.raises(TransientError) as info:
        with gate.request():
            pytest.fail("sent although the share is spent")
    assert info.value.retry_after == DAILY_RETRY_AFTER_S
    assert "900/1000" in str(info.value) and "sf" in str(info.value)
    assert len(acquired) == 2  # refused before taking a rate slot
    clock[0] += 3601  # the numbers are stale after an hour: one request may go and bring new ones
    with gate.request():
        pass


def test_errors_of_the_request_itself_pass_through_the_gate(client):
    gate = gate_for(connection("salesforce", "sf"), SalesforceConnector, client)
    with pytest.raises(KeyError):
        with gate.request():
            raise KeyError("boom")
    assert client.zcard("writeback:rate:sf:concurrency") == 0  # the slot was released


def test_gate_for_merges_connector_defaults_and_config(client):
    sf = gate_for(connection("salesforce", "sf-main"), SalesforceConnector, None)
    assert sf.rate is None and sf.concurrency.limit == 10 and sf.daily_share == 0.9
    hs = gate_for(connection("hubspot"), HubSpotConnector, None)
    assert (hs.rate.limit, hs.rate.period) == (100, 10.0) and hs.concurrency is None and hs.daily_share is None
    hs = gate_for(connection("hubspot", rate_limit={"requests": 5}), HubSpotConnector, None)
    assert (hs.rate.limit, hs.rate.period) == (5, 10.0)  # per_s from the default
    sf = gate_for(connection("salesforce", "sf-main", rate_limit={"requests": 190, "per_s": 10, "concurrency": 3,
                                                                   "daily_share": 0.5}), SalesforceConnector, None)
    assert (sf.rate.limit, sf.rate.period, sf.concurrency.limit, sf.daily_share) == (190, 10.0, 3, 0.5)
    with pytest.raises(ConfigError, match="rate_limit.requests needs rate_limit.per_s"):
        gate_for(connection("salesforce", rate_limit={"requests": 190}), SalesforceConnector, None)

    shared = gate_for(connection("salesforce", "sf-main", rate_limit={"requests": 190, "per_s": 10}),
                      SalesforceConnector, client)
    assert isinstance(shared.rate, SlidingWindowRateLimiter) and isinstance(shared.concurrency, ConcurrencyLimiter)
    assert isinstance(shared.rate.backend, RedisStore) and isinstance(shared.concurrency.backend, RedisStore)
    assert shared.rate.key == "writeback:rate:sf-main:requests"
    assert shared.concurrency.key == "writeback:rate:sf-main:concurrency"
    assert shared.usage.key == "writeback:rate:sf-main:daily"
    hs = gate_for(connection("hubspot"), HubSpotConnector, client)
    assert hs.rate.key == "writeback:rate:hubspot:requests" and (hs.rate.limit, hs.rate.period) == (100, 10.0)


def test_daily_share_is_validated_in_the_config():
    config = parse_config({"connections": [{"connector": "salesforce", "rate_limit": {"daily_share": 0.75}}]}, {})
    assert config.connections[0].rate_limit.daily_share == 0.75
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="daily_share"):
            parse_config({"connections": [{"connector": "salesforce", "rate_limit": {"daily_share": bad}}]}, {})


def test_the_pool_gives_each_connector_its_gate(client):
    config = WritebackConfig.model_validate({"connections": [
        {"connector": "salesforce", "name": "sf", "instance_url": "https://acme.my.salesforce.com",
         "access_token": "t0ken", "rate_limit": {"concurrency": 4}},
        {"connector": "hubspot", "access_token": "t0ken", "integration_connection_id": "hs"},
    ]})
    pool = ConnectorPool(config, gate_factory=gate_factory(client))
    try:
        sf, hs = pool.get(config.connections[0]), pool.get(config.connections[1])
        assert sf.gate.concurrency.limit == 4 and sf.gate.concurrency.key == "writeback:rate:sf:concurrency"
        assert hs.gate.rate.key == "writeback:rate:hubspot:requests"
    finally:
        pool.close()
    assert ConnectorPool(config).get(config.connections[1]).gate is NO_GATE


# ----------------------------------------------------------------- Redis failures


def test_a_dead_redis_is_a_transient_error_not_a_hang(hubspot_state, make_hubspot_connector):
    dead = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout_s=2)
    connector = make_hubspot_connector()
    connector.gate = gate_for(connection("hubspot"), HubSpotConnector, dead)
    hubspot_state.clear_requests()
    with pytest.raises(TransientError) as info:
        connector.read("deals", [hubspot_state.named["deal_acme"]], ["dealname"])
    assert "Redis failed" in str(info.value) and info.value.retry_after
    assert hubspot_state.requests == []  # nothing was sent

    with pytest.raises(SiroUnavailable) as siro:
        siro_limiter(dead, "secret-token-value").acquire()
    assert "Redis" in str(siro.value) and "secret-token-value" not in str(siro.value)
    assert siro.value.retry_after


def test_siro_limiter_keys_hash_the_token(client):
    assert isinstance(siro_limiter(None, "tok"), SlidingWindowRateLimiter)
    assert isinstance(siro_limiter(None, "tok").backend, MemoryStore)
    limiter = siro_limiter(client, "secret-token-value")
    limiter.acquire()
    keys = [key.decode() for key in client.keys("*")]
    assert len(keys) == 1 and keys[0].startswith("writeback:rate:siro:")
    assert "secret-token-value" not in keys[0] and "secret" not in repr(limiter)
    assert client.zcard(keys[0]) == 1


# ----------------------------------------------------------------- the connectors behind their gates


def test_salesforce_stops_before_the_daily_share_is_spent(client, salesforce_state, salesforce_ids,
                                                          salesforce_options, salesforce_session, monkeypatch):
    monkeypatch.setattr(salesforce_state, "api_limit", 100)
    salesforce_state.api_usage = 80
    conn = connection("salesforce", "sf-main")  # defaults: 90% of the daily allocation
    worker_a = SalesforceConnector(salesforce_options, session=salesforce_session)
    worker_a.gate = gate_for(conn, SalesforceConnector, client)
    refused = None
    for _ in range(30):
        try:
            worker_a.read("Opportunity", [salesforce_ids.opportunity], ["Name"])
        except TransientError as exc:
            refused = exc
            break
    assert refused is not None and refused.retry_after == DAILY_RETRY_AFTER_S
    assert "90/100" in str(refused)
    assert salesforce_state.api_usage == 90  # the answer saying 90/100 was the last request sent
    assert client.get("writeback:rate:sf-main:daily") == b"90/100"
    assert 0 < client.ttl("writeback:rate:sf-main:daily") <= 3600

    # another worker (another process, its own connector and gate) refuses before its first request
    salesforce_state.clear_log()
    worker_b = SalesforceConnector(salesforce_options, session=salesforce_session)
    worker_b.gate = gate_for(conn, SalesforceConnector, client)
    with pytest.raises(TransientError):
        worker_b.object_schema("Account")
    assert salesforce_state.requests == []
    # the first worker's retries stay off the wire as well
    with pytest.raises(TransientError):
        worker_a.write("Opportunity", [RecordWrite(salesforce_ids.opportunity, {"NextStep": "x"})])
    assert salesforce_state.requests == []
    worker_a.close()
    worker_b.close()


def test_salesforce_logins_pass_the_gate(client, salesforce_state, salesforce_login, salesforce_session):
    conn = connection("salesforce", "sf-login", rate_limit={"daily_share": 0.5})
    client.set("writeback:rate:sf-login:daily", "60/100")  # another worker saw the share spent
    connector = SalesforceConnector(salesforce_login, session=salesforce_session)
    connector.gate = gate_for(conn, SalesforceConnector, client)
    salesforce_state.clear_log()
    with pytest.raises(TransientError) as info:  # not an AuthError: the login was never sent
        connector.object_schema("Opportunity")
    assert info.value.retry_after == DAILY_RETRY_AFTER_S
    assert salesforce_state.requests == []
    connector.close()


def test_hubspot_behind_a_shared_gate_earns_no_429(client, hubspot_state, make_hubspot_connector):
    hubspot_state.rate_limit(5, 1.0)
    conn = connection("hubspot", "hs", rate_limit={"requests": 5, "per_s": 1})
    deal = hubspot_state.named["deal_acme"]
    hubspot_state.clear_requests()
    errors: list[BaseException] = []

    def worker() -> None:  # two workers, each with its own connector and gate, one Redis
        connector = make_hubspot_connector()
        connector.gate = gate_for(conn, HubSpotConnector, client)
        try:
            connector.object_schema("deals")  # properties + pipelines
            for _ in range(6):
                connector.read("deals", [deal], ["dealname"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    statuses = [request.status for request in hubspot_state.requests]
    assert len(statuses) == 16 and 429 not in statuses

    # the same calls without a gate do earn one (so the simulator's limit is real)
    hubspot_state.rate_limit(5, 60.0)
    bare = make_hubspot_connector()
    with pytest.raises(TransientError, match="429"):
        for _ in range(6):
            bare.read("deals", [deal], ["dealname"])


def test_a_hubspot_concurrency_slot_covers_the_whole_exchange(client, hubspot_state, make_hubspot_connector):
    conn = connection("hubspot", "hs", rate_limit={"concurrency": 1})
    connector = make_hubspot_connector()
    connector.gate = gate_for(conn, HubSpotConnector, client)
    seen: list[int] = []
    original = connector.gate.concurrency.release

    def release(lease: str) -> None:
        seen.append(client.zcard("writeback:rate:hs:concurrency"))
        original(lease)

    connector.gate.concurrency.release = release
    state = connector.read("deals", [hubspot_state.named["deal_acme"]], ["dealname"])
    assert state[hubspot_state.named["deal_acme"]].values["dealname"]  # the body was read, and kept
    assert seen == [1] and client.zcard("writeback:rate:hs:concurrency") == 0


def test_redis_client_fails_fast():
    dead = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    with pytest.raises(redis.RedisError):
        dead.ping()
