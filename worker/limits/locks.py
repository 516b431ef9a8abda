"""Locks every worker of a deployment shares: one task per recording, one poll pass at a time.

Two tasks for one recording (Siro's ``recordingProcessed`` and
``recordingLinked`` for the same change, a page beside a webhook) would both
read the CRM before either writes, and both write; two poll passes would
enqueue the same pages. A task therefore holds a lock per recording, and the
poll pass one for itself.

A lock is a key set only if absent, holding a token of its holder:

* it expires on its own after the task's hard time limit plus 5 s, so a
  killed worker never keeps one;
* it is released only by its holder (``delete_if_equals`` with the token): a
  task that outlived its lock cannot free the lock of the task that took it
  over.

Keys: ``writeback:poll:lock`` and ``writeback:lock:recording:<recording id>``.
On Redis (``WRITEBACK_REDIS_URL``) they are the deployment's; without Redis
(the demo's embedded broker) they are this process's own, in one in-memory
store. ``LocksUnavailable`` when Redis fails (transient: the task is retried).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from worker.errors import Unavailable
from worker.limits.store import BackendError, MemoryStore, RedisStore, Store

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

__all__ = ["POLL_LOCK_KEY", "RECORDING_LOCK_PREFIX", "Locks", "LocksUnavailable"]

POLL_LOCK_KEY = "writeback:poll:lock"
RECORDING_LOCK_PREFIX = "writeback:lock:recording:"
# A lock outlives the hard time limit by this much: Celery kills the task first.
TTL_MARGIN_S = 5
# How often a waiter looks again (a release does not wake it).
POLL_S = 0.1

# Without Redis: one store for the process, so every task of this process sees the same locks.
_PROCESS_STORE = MemoryStore()


class LocksUnavailable(Unavailable):
    """Redis did not answer for the locks (transient: the task is retried)."""


class Locks:
    """Locks on ``store`` that expire ``time_limit_s`` + 5 s after they are taken."""

    def __init__(self, store: Store, *, time_limit_s: float, poll_s: float = POLL_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.ttl_s = max(1, int(time_limit_s) + TTL_MARGIN_S)
        self.poll_s = poll_s
        self._sleep = sleep

    @classmethod
    def on(cls, client: redis.Redis | None, *, time_limit_s: float) -> Locks:
        """The deployment's locks in Redis, or this process's own without a client."""
        return cls(RedisStore(client) if client is not None else _PROCESS_STORE, time_limit_s=time_limit_s)

    @contextmanager
    def hold(self, keys: Sequence[str], *, wait_s: float = 0.0) -> Iterator[list[str]]:
        """Hold each key, waiting up to ``wait_s`` for those taken; yields the keys
        another holder still has (not ours: leave their work alone)."""
        keys = list(dict.fromkeys(keys))
        token = uuid.uuid4().hex
        held: list[str] = []
        try:
            try:
                held += [key for key in keys if self._take(key, token)]
                deadline = time.monotonic() + wait_s
                while len(held) < len(keys) and time.monotonic() < deadline:
                    self._sleep(self.poll_s)
                    held += [key for key in keys if key not in held and self._take(key, token)]
            except BackendError as exc:
                raise LocksUnavailable(f"Redis (WRITEBACK_REDIS_URL) unreachable: {exc.kind}") from None
            yield [key for key in keys if key not in held]
        finally:
            for key in held:
                self._release(key, token)

    @contextmanager
    def hold_recordings(self, recording_ids: Sequence[str], *, wait_s: float = 0.0) -> Iterator[list[str]]:
        """Hold each recording; yields the ids another task holds (left alone)."""
        by_key = {f"{RECORDING_LOCK_PREFIX}{recording_id}": recording_id for recording_id in recording_ids}
        with self.hold(list(by_key), wait_s=wait_s) as busy:
            yield [by_key[key] for key in busy]

    def _take(self, key: str, token: str) -> bool:
        return self.store.set_if_absent(key, token, self.ttl_s)

    def _release(self, key: str, token: str) -> None:
        try:
            self.store.delete_if_equals(key, token)
        except Exception:  # it expires on its own
            log.warning("could not release the lock %s", key)
