"""The store interface: the same behaviour on both backends (``MemoryStore`` and ``RedisStore``).

Waits are asserted from the values the store answers, and expiries with
sleeps well past the TTL, so load can only make a test slower, not wrong.
"""

from __future__ import annotations

import threading
import time

import pytest

from simulators.server import free_port
from worker.limits.store import (
    BackendError,
    MemoryStore,
    RedisStore,
    Store,
    redis_client,
    store_for,
)

# -- strings: set-if-absent, TTLs, compare-and-delete ---------------------------------


def test_set_if_absent_takes_a_key_once_until_it_expires(backend: Store) -> None:
    assert backend.set_if_absent("test:k", "first", 0.2) is True
    assert backend.set_if_absent("test:k", "second", 30) is False
    assert backend.get("test:k") == "first"
    time.sleep(0.4)
    assert backend.get("test:k") is None
    assert backend.set_if_absent("test:k", "second", 30) is True
    assert backend.get("test:k") == "second"


def test_set_overwrites_and_renews_the_ttl_and_delete_removes(backend: Store) -> None:
    assert backend.get("test:k") is None
    backend.set("test:k", "a", 0.2)
    backend.set("test:k", "b", 30)
    time.sleep(0.4)
    assert backend.get("test:k") == "b"
    backend.delete("test:k")
    assert backend.get("test:k") is None
    backend.delete("test:k")  # deleting what is gone is fine


def test_delete_if_equals_deletes_only_the_matching_value(backend: Store) -> None:
    backend.set("test:lock", "token-a", 30)
    assert backend.delete_if_equals("test:lock", "token-b") is False
    assert backend.get("test:lock") == "token-a"
    assert backend.delete_if_equals("test:lock", "token-a") is True
    assert backend.get("test:lock") is None
    assert backend.delete_if_equals("test:lock", "token-a") is False


def test_values_keep_their_characters(backend: Store) -> None:
    for value in ("\x00pending", "é ü 漢", "12/100"):
        backend.set("test:v", value, 30)
        assert backend.get("test:v") == value


def test_set_if_absent_is_atomic_across_threads(backend: Store) -> None:
    barrier = threading.Barrier(12)
    wins: list[bool] = []

    def race() -> None:
        barrier.wait()
        wins.append(backend.set_if_absent("test:race", "x", 30))

    threads = [threading.Thread(target=race) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert wins.count(True) == 1


# -- sliding window -------------------------------------------------------------------


def test_window_admits_limit_then_answers_the_wait(backend: Store) -> None:
    for member in ("a", "b", "c"):
        assert backend.window_acquire("test:w", 3, 0.5, member) == 0
    wait = backend.window_acquire("test:w", 3, 0.5, "d")
    assert 0 < wait <= 0.5
    assert len(backend.entries("test:w")) == 3  # the refused member was not added
    time.sleep(wait + 0.05)
    assert backend.window_acquire("test:w", 3, 0.5, "d") == 0
    assert len(backend.entries("test:w")) == 1  # the three older entries left the window


def test_restamp_moves_an_entry_to_now(backend: Store) -> None:
    assert backend.window_acquire("test:w", 1, 0.5, "a") == 0
    [taken] = backend.entries("test:w")
    time.sleep(0.2)
    backend.window_restamp("test:w", "a", 0.5)
    [restamped] = backend.entries("test:w")
    assert restamped - taken >= 0.15
    # the next turn is counted from the restamped time: nearly a whole period away again
    assert 0.3 < backend.window_acquire("test:w", 1, 0.5, "b") <= 0.5


def test_a_window_key_expires_with_its_period(backend: Store) -> None:
    assert backend.window_acquire("test:w", 2, 0.2, "a") == 0
    time.sleep(0.4)
    assert backend.entries("test:w") == []


# -- lease semaphore --------------------------------------------------------------------


def test_leases_up_to_the_limit_and_release(backend: Store) -> None:
    assert backend.lease_acquire("test:s", 2, 30, "a") == 0
    assert backend.lease_acquire("test:s", 2, 30, "b") == 0
    wait = backend.lease_acquire("test:s", 2, 30, "c")
    assert 29 < wait <= 30  # until the first lease expires
    backend.lease_release("test:s", "a")
    assert backend.lease_acquire("test:s", 2, 30, "c") == 0
    assert len(backend.entries("test:s")) == 2


def test_an_expired_lease_frees_its_slot(backend: Store) -> None:
    assert backend.lease_acquire("test:s", 1, 0.3, "dead-holder") == 0
    wait = backend.lease_acquire("test:s", 1, 0.3, "next")
    assert 0 < wait <= 0.3
    [expiry] = backend.entries("test:s")
    time.sleep(wait + 0.05)
    assert backend.lease_acquire("test:s", 1, 0.3, "next") == 0
    [mine] = backend.entries("test:s")
    assert mine > expiry


# -- backends ---------------------------------------------------------------------------


def test_memory_store_follows_its_clock_and_sweeps_expired_keys() -> None:
    now = [100.0]
    store = MemoryStore(clock=lambda: now[0])
    store.set("a", "1", 1)
    assert store.window_acquire("w", 1, 10, "m") == 0
    assert store.window_acquire("w", 1, 10, "n") == pytest.approx(10)
    now[0] += 4
    assert store.window_acquire("w", 1, 10, "n") == pytest.approx(6)
    now[0] += 120
    store.set("b", "2", 1)  # a write sweeps what expired
    assert set(store._data) == {"b"}


def test_a_key_of_another_kind_is_refused_as_redis_refuses_it(backend: Store) -> None:
    backend.set("test:k", "v", 30)
    with pytest.raises(BackendError):
        backend.window_acquire("test:k", 1, 1, "m")


def test_a_dead_redis_is_a_backend_error_naming_only_the_kind() -> None:
    client = redis_client(f"redis://:hunter2@127.0.0.1:{free_port()}/0", timeout_s=1)
    store = RedisStore(client)
    calls = [lambda: store.set_if_absent("k", "v", 1), lambda: store.get("k"), lambda: store.delete("k"),
             lambda: store.window_acquire("k", 1, 1, "m"), lambda: store.lease_release("k", "m"),
             lambda: store.delete_if_equals("k", "v")]
    for call in calls:
        with pytest.raises(BackendError) as info:
            call()
        assert info.value.kind and "hunter2" not in str(info.value)
    assert "hunter2" not in repr(store)
    client.close()


def test_store_for_picks_the_backend(redis_url: str) -> None:
    assert isinstance(store_for(None), MemoryStore)
    client = redis_client(redis_url)
    assert isinstance(store_for(client), RedisStore) and store_for(client).shared
    assert not store_for(None).shared
    client.close()
