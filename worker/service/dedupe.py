"""Webhook dedupe stores: "has this event already been enqueued?"

Siro (like any webhook sender) may deliver one event several times. The
webhook app keys each event by a hash of its canonical body and uses a store
with two steps, so that a delivery answered 503 is still taken when retried
and two concurrent identical deliveries never both enqueue:

1. ``claim(key, ttl_s)``: atomically take the key with a short "pending"
   marker (Redis ``SET NX``); False when someone already holds it.
2. after the enqueue: ``confirm(key, task_id, ttl_s)`` stores the task id for
   the dedupe window, or ``release(key)`` drops the claim when the enqueue
   failed, so the sender's retry is not mistaken for a duplicate.

``RedisDedupe`` is the deployed store (shared by every webhook process);
``MemoryDedupe`` serves one process (tests, ``writeback demo``). A store that
cannot answer raises ``DedupeUnavailable``; the webhook turns that into 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from worker.errors import Unavailable

# The value of a claimed key whose enqueue has not finished yet. Celery task
# ids are UUIDs, so this can never be mistaken for one.
PENDING = "\x00pending"


class DedupeUnavailable(Unavailable):
    """The dedupe store could not be reached or did not answer."""


@runtime_checkable
class Dedupe(Protocol):
    def claim(self, key: str, ttl_s: float) -> bool:
        """Take ``key`` for ``ttl_s`` seconds; False when it is already held."""

    def confirm(self, key: str, task_id: str, ttl_s: float) -> None:
        """Record the task enqueued for ``key``, kept for ``ttl_s`` seconds."""

    def release(self, key: str) -> None:
        """Drop ``key`` (its enqueue failed), so the next delivery is taken."""

    def task_id(self, key: str) -> str | None:
        """The task id stored for ``key``; None when absent or still pending."""


class RedisDedupe:
    """Dedupe in Redis: one string key per event, expiring on its own.

    Give the client short socket timeouts and few retries (redis-py retries
    a refused connection with backoff, seconds by default): a Redis that is
    down or hangs must turn into a 503 within seconds, not hold the sender's
    request open.
    """

    def __init__(self, client: Any, prefix: str = "writeback:webhook:") -> None:
        self.client = client
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return self.prefix + key

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import redis  # only this store needs the library

        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            # The exception's text may carry the Redis URL (with a password): keep only its kind.
            raise DedupeUnavailable(f"redis: {type(exc).__name__}") from None

    def claim(self, key: str, ttl_s: float) -> bool:
        return bool(self._call(self.client.set, self._name(key), PENDING, nx=True, px=_ms(ttl_s)))

    def confirm(self, key: str, task_id: str, ttl_s: float) -> None:
        self._call(self.client.set, self._name(key), task_id, px=_ms(ttl_s))

    def release(self, key: str) -> None:
        self._call(self.client.delete, self._name(key))

    def task_id(self, key: str) -> str | None:
        value = self._call(self.client.get, self._name(key))
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return None if value in (None, PENDING) else value


class MemoryDedupe:
    """Dedupe in this process's memory: thread-safe, TTLs honoured."""

    _SWEEP_EVERY_S = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}  # key -> (value, expires at)
        self._last_sweep = clock()

    def _live(self, key: str, now: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        return entry[0]

    def _sweep(self, now: float) -> None:
        # Expired entries would otherwise stay until their key comes again.
        if now - self._last_sweep < self._SWEEP_EVERY_S:
            return
        self._last_sweep = now
        for key in [k for k, (_, expires) in self._entries.items() if expires <= now]:
            del self._entries[key]

    def claim(self, key: str, ttl_s: float) -> bool:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            if self._live(key, now) is not None:
                return False
            self._entries[key] = (PENDING, now + ttl_s)
            return True

    def confirm(self, key: str, task_id: str, ttl_s: float) -> None:
        with self._lock:
            self._entries[key] = (task_id, self._clock() + ttl_s)

    def release(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def task_id(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key, self._clock())
        return None if value in (None, PENDING) else value


def _ms(ttl_s: float) -> int:
    return max(1, int(ttl_s * 1000))
