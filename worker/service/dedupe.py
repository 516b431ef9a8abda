"""Webhook dedupe: "has this event already been enqueued?"

Siro (like any webhook sender) may deliver one event several times. The
webhook app keys each event by a hash of its canonical body and uses
``Dedupe`` in two steps, so that a delivery answered 503 is still taken when
retried and two concurrent identical deliveries never both enqueue:

1. ``claim(key, ttl_s)``: atomically take the key with a short "pending"
   marker (set if absent); False when someone already holds it.
2. after the enqueue: ``confirm(key, task_id, ttl_s)`` stores the task id for
   the dedupe window, or ``release(key)`` drops the claim when the enqueue
   failed, so the sender's retry is not mistaken for a duplicate.

``Dedupe`` is written once on the store interface (``worker.limits.store``):
on a ``RedisStore`` it is the deployed store, shared by every webhook
process; on a ``MemoryStore`` (the default) it serves one process (tests,
``writeback demo``). Key: ``writeback:webhook:<sha256 of the canonical body>``
(a string: the pending marker or the task id, expiring on its own). A store
that cannot answer raises ``DedupeUnavailable``; the webhook turns that into 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.errors import Unavailable
from worker.limits.store import BackendError, MemoryStore, Store

__all__ = ["PENDING", "PREFIX", "Dedupe", "DedupeUnavailable"]

# The value of a claimed key whose enqueue has not finished yet. Celery task
# ids are UUIDs, so this can never be mistaken for one.
PENDING = "\x00pending"
#: Where the events live in the store: ``writeback:webhook:<sha256 of the body>``.
PREFIX = "writeback:webhook:"


class DedupeUnavailable(Unavailable):
    """The dedupe store could not be reached or did not answer."""


class Dedupe:
    """Which events were enqueued, one key per event on ``store``, each expiring on its own.

    On Redis, give the client short socket timeouts and few retries (redis-py
    retries a refused connection with backoff, seconds by default): a Redis
    that is down or hangs must turn into a 503 within seconds, not hold the
    sender's request open.
    """

    def __init__(self, store: Store | None = None, prefix: str = PREFIX) -> None:
        self.backend: Store = store if store is not None else MemoryStore()
        self.prefix = prefix

    def _call(self, method: Callable[..., Any], key: str, *args: Any) -> Any:
        try:
            return method(self.prefix + key, *args)
        except BackendError as exc:
            # Only the kind of failure: the backend's text may carry the Redis URL (with a password).
            raise DedupeUnavailable(f"redis: {exc.kind}") from None

    def claim(self, key: str, ttl_s: float) -> bool:
        """Take ``key`` for ``ttl_s`` seconds; False when it is already held."""
        return bool(self._call(self.backend.set_if_absent, key, PENDING, ttl_s))

    def confirm(self, key: str, task_id: str, ttl_s: float) -> None:
        """Record the task enqueued for ``key``, kept for ``ttl_s`` seconds."""
        self._call(self.backend.set, key, task_id, ttl_s)

    def release(self, key: str) -> None:
        """Drop ``key`` (its enqueue failed), so the next delivery is taken."""
        self._call(self.backend.delete, key)

    def task_id(self, key: str) -> str | None:
        """The task id stored for ``key``; None when absent or still pending."""
        value = self._call(self.backend.get, key)
        return None if value in (None, PENDING) else value

    def __repr__(self) -> str:
        return f"Dedupe({self.backend!r}, prefix={self.prefix!r})"
