"""The per-recording and poll locks (``worker.limits.locks``) on both backends."""

from __future__ import annotations

import threading
import time

import pytest

from simulators.server import free_port
from worker.limits.locks import (
    POLL_LOCK_KEY,
    RECORDING_LOCK_PREFIX,
    Locks,
    LocksUnavailable,
)
from worker.limits.store import MemoryStore, RedisStore, Store, redis_client


def test_a_held_key_is_busy_for_everyone_else_until_released(backend: Store) -> None:
    locks = Locks(backend, time_limit_s=60)
    with locks.hold([POLL_LOCK_KEY]) as busy:
        assert busy == []
        with locks.hold([POLL_LOCK_KEY]) as other:  # another task
            assert other == [POLL_LOCK_KEY]
        assert backend.get(POLL_LOCK_KEY) is not None  # the other task did not free ours
    assert backend.get(POLL_LOCK_KEY) is None
    with locks.hold([POLL_LOCK_KEY]) as busy:
        assert busy == []


def test_a_lock_is_released_only_by_its_holder(backend: Store) -> None:
    locks = Locks(backend, time_limit_s=60)
    with locks.hold(["test:lock"]) as busy:
        assert busy == []
        # Our lock lapsed (a task that outlived it) and another task took the key over.
        backend.set("test:lock", "the-other-holders-token", 60)
    assert backend.get("test:lock") == "the-other-holders-token"


def test_recordings_held_elsewhere_are_named_by_id(backend: Store) -> None:
    locks = Locks(backend, time_limit_s=60)
    with locks.hold_recordings(["rec-1", "rec-2"]) as busy:
        assert busy == []
        assert backend.get(f"{RECORDING_LOCK_PREFIX}rec-1") is not None
        with locks.hold_recordings(["rec-2", "rec-3", "rec-3"]) as other:
            assert other == ["rec-2"]
            assert backend.get(f"{RECORDING_LOCK_PREFIX}rec-3") is not None
        assert backend.get(f"{RECORDING_LOCK_PREFIX}rec-3") is None


def test_a_waiter_gets_the_lock_once_the_holder_lets_go(backend: Store) -> None:
    locks = Locks(backend, time_limit_s=60)
    taken = threading.Event()

    def holder() -> None:
        with locks.hold(["test:lock"]):
            taken.set()
            time.sleep(0.3)

    thread = threading.Thread(target=holder)
    thread.start()
    assert taken.wait(10)
    with locks.hold(["test:lock"], wait_s=0.05) as busy:
        assert busy == ["test:lock"]  # waited too little
    with locks.hold(["test:lock"], wait_s=10) as busy:
        assert busy == []
    thread.join(10)


def test_a_lock_expires_after_the_hard_time_limit_plus_5_s(redis_url: str) -> None:
    client = redis_client(redis_url)
    locks = Locks(RedisStore(client), time_limit_s=40)
    with locks.hold(["test:lock"]):
        assert 44_000 < client.pttl("test:lock") <= 45_000
    client.close()

    now = [0.0]
    memory = Locks(MemoryStore(clock=lambda: now[0]), time_limit_s=40)
    with memory.hold(["test:lock"]):
        now[0] += 44.9
        with memory.hold(["test:lock"]) as busy:
            assert busy == ["test:lock"]
        now[0] += 0.2  # the holder was killed: its lock lapses on its own
        with memory.hold(["test:lock"]) as busy:
            assert busy == []


def test_without_redis_every_task_of_the_process_shares_the_locks() -> None:
    first, second = Locks.on(None, time_limit_s=60), Locks.on(None, time_limit_s=60)
    with first.hold_recordings(["rec-local"]):
        with second.hold_recordings(["rec-local"]) as busy:
            assert busy == ["rec-local"]


def test_a_dead_redis_is_locks_unavailable() -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    with pytest.raises(LocksUnavailable, match="WRITEBACK_REDIS_URL"):
        with Locks.on(client, time_limit_s=60).hold_recordings(["rec-1"]):
            pytest.fail("held a lock without Redis")
    client.close()
