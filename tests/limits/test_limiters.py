"""The limiters, written once on the store interface, behave alike on both backends.

Counts within windows are measured from timestamps taken after each grant,
with a tolerance only in the direction that load can widen (a stamp is never
taken before its grant).
"""

from __future__ import annotations

import threading
import time

import pytest

from simulators.server import free_port
from worker.limits.limiters import (
    ConcurrencyLimiter,
    DailyUsage,
    LimiterBusy,
    LimiterUnavailable,
    SlidingWindowRateLimiter,
)
from worker.limits.store import MemoryStore, RedisStore, Store, redis_client
from worker.siro.client import SlidingWindowRateLimiter as SiroDefault


def most_in_window(stamps: list[float], window: float) -> int:
    """The most timestamps in any closed interval of length ``window``."""
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_the_rate_window_is_never_exceeded(backend: Store) -> None:
    limit, period, tolerance = 3, 0.5, 0.15
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:  # each with its own limiter on the shared key, as separate workers would
        limiter = SlidingWindowRateLimiter(limit, period, store=backend, key="writeback:rate:test:requests")
        for _ in range(4):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(stamps) == 12
    assert most_in_window(stamps, period - tolerance) <= limit
    # and they did wait for each other: 12 turns at 3 per period span 3 periods at least
    assert max(stamps) - min(stamps) >= 3 * period - tolerance
    assert len(backend.entries("writeback:rate:test:requests")) <= limit


def test_a_turn_not_had_within_the_wait_is_busy(backend: Store) -> None:
    limiter = SlidingWindowRateLimiter(2, 60.0, store=backend, key="writeback:rate:test:requests", max_wait_s=1.0)
    limiter.acquire()
    limiter.acquire()
    with pytest.raises(LimiterBusy) as info:
        limiter.acquire()
    assert 50 < info.value.retry_after <= 60


def test_span_counts_a_request_from_its_answer(backend: Store) -> None:
    limiter = SlidingWindowRateLimiter(1, 0.5, store=backend, key="writeback:rate:test:requests")
    with limiter.span():
        time.sleep(0.2)
        [sent] = limiter.entries()
    [answered] = limiter.entries()
    assert answered - sent >= 0.15


def test_lease_expiry_frees_a_slot(backend: Store) -> None:
    key = "writeback:rate:test:concurrency"
    dead = ConcurrencyLimiter(1, store=backend, key=key, lease_s=0.4)
    dead.acquire()  # never released, as by a SIGKILLed worker
    [expiry] = backend.entries(key)
    alive = ConcurrencyLimiter(1, store=backend, key=key, lease_s=30)
    with alive.slot():
        [lease] = backend.entries(key)
        assert lease > expiry + 29  # the dead holder's lease is gone; this one runs 30 s
    assert backend.entries(key) == []  # released on leaving the block


def test_slots_are_never_more_than_the_limit(backend: Store) -> None:
    limiter = ConcurrencyLimiter(2, store=backend, key="writeback:rate:test:concurrency")
    inside = peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        for _ in range(3):
            with limiter.slot():
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.01)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert peak <= 2 and inside == 0


def test_no_free_slot_within_the_wait_is_busy(backend: Store) -> None:
    holder = ConcurrencyLimiter(1, store=backend, key="writeback:rate:test:concurrency", max_wait_s=0.2)
    holder.acquire()
    with pytest.raises(LimiterBusy) as info:
        holder.acquire()
    assert 0 < info.value.retry_after <= 0.2


def test_daily_usage_is_kept_for_its_ttl(backend: Store) -> None:
    usage = DailyUsage(0.2, store=backend, key="writeback:rate:test:daily")
    assert usage.load() is None
    usage.store(899, 1000)
    assert usage.load() == (899, 1000)
    assert backend.get("writeback:rate:test:daily") == "899/1000"
    time.sleep(0.4)
    assert usage.load() is None
    backend.set("writeback:rate:test:daily", "garbage", 30)
    assert usage.load() is None


def test_a_failing_backend_is_limiter_unavailable(unused_redis_url: str) -> None:
    store = RedisStore(redis_client(unused_redis_url, timeout_s=1))
    for call in (SlidingWindowRateLimiter(1, 1, store=store, key="k").acquire,
                 ConcurrencyLimiter(1, store=store, key="k").acquire,
                 DailyUsage(store=store, key="k").load):
        with pytest.raises(LimiterUnavailable) as info:
            call()
        assert "Redis failed" in str(info.value) and info.value.retry_after == 5.0


def test_the_siro_clients_default_pacing_is_the_in_memory_limiter() -> None:
    limiter = SiroDefault(3, period=60)
    assert isinstance(limiter, SlidingWindowRateLimiter) and isinstance(limiter.backend, MemoryStore)
    assert (limiter.limit, limiter.period) == (3, 60.0)


@pytest.fixture
def unused_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"
