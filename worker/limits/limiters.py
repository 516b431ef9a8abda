"""The limiters, each written once on the store interface (``worker.limits.store``).

* ``SlidingWindowRateLimiter``: at most ``limit`` acquisitions in any
  ``period`` seconds (a sliding log rather than a token bucket: a bucket
  refilling at limit/period can let through nearly twice the limit in the
  first period);
* ``ConcurrencyLimiter``: at most ``limit`` holders at once, each with a lease
  that expires on its own, so a SIGKILLed worker cannot hold a slot for ever;
* ``DailyUsage``: the latest ``(used, limit)`` of a CRM's daily allocation.

On a ``RedisStore`` they are shared by every process of the deployment; on a
``MemoryStore`` (the default) by the threads of one process. The keys are
their callers' (``worker.limits.rate`` lists them). This module imports
nothing of the Siro client, which builds its default pacing from it.

Failures: ``LimiterUnavailable`` when the backend fails, ``LimiterBusy`` after
``max_wait_s`` without a turn; both carry ``retry_after`` (seconds).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from worker.errors import TransientError, Unavailable
from worker.limits.store import BackendError, MemoryStore, Store

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LEASE_S", "DEFAULT_MAX_WAIT_S", "DAILY_USAGE_TTL_S", "SLOT_POLL_S", "UNAVAILABLE_RETRY_AFTER_S",
    "ConcurrencyLimiter", "DailyUsage", "LimiterBusy", "LimiterError", "LimiterUnavailable",
    "SlidingWindowRateLimiter",
]

DEFAULT_MAX_WAIT_S = 120.0
# Longer than any request's timeout (30 s by default for both CRMs), so a live
# request keeps its slot; short enough that a killed worker's slot comes back
# within minutes.
DEFAULT_LEASE_S = 120.0
DAILY_USAGE_TTL_S = 3600.0
# After a backend failure: long enough not to hammer a restarting server.
UNAVAILABLE_RETRY_AFTER_S = 5.0
# How often a waiter for a concurrency slot looks again (a release does not wake it).
SLOT_POLL_S = 0.05
# The key of a limiter nobody else shares (its own MemoryStore).
_PRIVATE_KEY = "writeback:rate:local"


class LimiterError(TransientError):
    """No turn could be had; ``retry_after`` suggests when to try again (seconds)."""


class LimiterUnavailable(LimiterError, Unavailable):
    """The backend failed (Redis unreachable, timed out, refused the script)."""


class LimiterBusy(LimiterError):
    """Waited ``max_wait_s`` without getting a turn."""


def _unavailable(what: str, exc: BackendError) -> LimiterUnavailable:
    return LimiterUnavailable(f"{what}: Redis failed ({exc.kind})", retry_after=UNAVAILABLE_RETRY_AFTER_S)


class SlidingWindowRateLimiter:
    """At most ``limit`` acquisitions in any ``period`` seconds, across every user of ``key`` on ``store``.

    ``acquire()`` (the ``worker.siro.client.RateLimiter`` protocol) blocks until
    a turn is free; ``span()`` also counts the request until its answer. Raises
    ``LimiterUnavailable`` when the store fails and ``LimiterBusy`` after
    ``max_wait_s`` without a turn. Without ``store``, a private ``MemoryStore``
    on ``clock``: the Siro client's default pacing.
    """

    def __init__(self, limit: int, period: float = 60.0, *, store: Store | None = None, key: str = _PRIVATE_KEY,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if limit < 1:
            raise ValueError("rate limit must be at least 1 request per period")
        if period <= 0:
            raise ValueError("rate limit period must be positive")
        self.backend: Store = store if store is not None else MemoryStore(clock)
        self.key = key
        self.limit = int(limit)
        self.period = float(period)
        self.max_wait_s = max_wait_s
        self._sleep = sleep

    def acquire(self) -> None:
        self._take()

    @contextmanager
    def span(self) -> Iterator[None]:
        """Hold a turn for a request, and count it from when its answer came back.

        The limiter counts from acquisition but the CRM counts arrivals: a
        request slow to arrive (a fresh TLS handshake) would otherwise leave
        the window earlier on our side than on the CRM's, and a later request
        sent right at the window's edge would earn the 429 we are here to avoid.
        """
        member = self._take()
        try:
            yield
        finally:
            try:
                self.backend.window_restamp(self.key, member, self.period)
            except BackendError as exc:  # the request is done: failing it now would misreport it
                log.warning("rate limiter %s: could not record the end of a request (%s)", self.key, exc.kind)

    def _take(self) -> str:
        member = uuid.uuid4().hex  # unique per acquisition: equal timestamps must not collapse into one entry
        deadline = time.monotonic() + self.max_wait_s
        while True:
            try:
                wait = self.backend.window_acquire(self.key, self.limit, self.period, member)
            except BackendError as exc:
                raise _unavailable(f"rate limiter {self.key}", exc) from None
            if wait <= 0:
                return member
            if time.monotonic() + wait > deadline:
                raise LimiterBusy(f"rate limiter {self.key}: no turn within {self.max_wait_s:g}s "
                                  f"({self.limit} per {self.period:g}s)", retry_after=wait)
            log.debug("rate limiter %s: waiting %.3fs", self.key, wait)
            if self.backend.shared:
                # A little jitter, so waiters in other processes woken by one expiry do not all ask at once.
                wait += random.uniform(0, min(0.01, wait))
            self._sleep(wait)

    def entries(self) -> list[float]:
        """The acquisitions the window holds, oldest first (store time, seconds)."""
        return self.backend.entries(self.key)

    # The Siro client's tests count the window through the name of its former deque.
    _sent = property(entries)

    def __repr__(self) -> str:
        return f"SlidingWindowRateLimiter(key={self.key!r}, limit={self.limit}, period={self.period:g})"


class ConcurrencyLimiter:
    """A semaphore of ``limit`` slots shared by every user of ``key`` on ``store``.

    Each holder has a lease (a sorted-set member scored by its expiry); a
    holder that dies without releasing (SIGKILL) loses its slot when the lease
    expires, after ``lease_s``. Raises ``LimiterUnavailable`` when the store
    fails and ``LimiterBusy`` after ``max_wait_s`` without a slot.
    """

    def __init__(self, limit: int, *, store: Store | None = None, key: str = _PRIVATE_KEY,
                 lease_s: float = DEFAULT_LEASE_S, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 poll_s: float = SLOT_POLL_S, sleep: Callable[[float], None] = time.sleep) -> None:
        if limit < 1:
            raise ValueError("concurrency limit must be at least 1")
        if lease_s <= 0:
            raise ValueError("lease must be positive")
        self.backend: Store = store if store is not None else MemoryStore()
        self.key = key
        self.limit = int(limit)
        self.lease_s = float(lease_s)
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self._sleep = sleep

    def acquire(self) -> str:
        """Take a slot; returns the lease to ``release``."""
        member = uuid.uuid4().hex
        deadline = time.monotonic() + self.max_wait_s
        while True:
            try:
                wait = self.backend.lease_acquire(self.key, self.limit, self.lease_s, member)
            except BackendError as exc:
                raise _unavailable(f"concurrency limiter {self.key}", exc) from None
            if wait <= 0:
                return member
            if time.monotonic() >= deadline:
                raise LimiterBusy(f"concurrency limiter {self.key}: no free slot of {self.limit} within "
                                  f"{self.max_wait_s:g}s", retry_after=min(wait, self.max_wait_s))
            # The wait returned is until the oldest lease expires; holders usually release far sooner.
            self._sleep(min(wait, self.poll_s * random.uniform(0.5, 1.5)))

    def release(self, lease: str) -> None:
        try:
            self.backend.lease_release(self.key, lease)
        except BackendError as exc:  # the lease expires on its own
            log.warning("concurrency limiter %s: could not release a slot (%s); it frees in %gs", self.key,
                        exc.kind, self.lease_s)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Block until a slot is free, hold it for the block."""
        lease = self.acquire()
        try:
            yield
        finally:
            self.release(lease)

    def __repr__(self) -> str:
        return f"ConcurrencyLimiter(key={self.key!r}, limit={self.limit}, lease_s={self.lease_s:g})"


class DailyUsage:
    """The latest ``(used, limit)`` any user of ``key`` saw, as the string ``used/limit``.

    Kept for an hour only: once every worker is refused, no answer refreshes
    the numbers, and the expiry lets one request through to read them again.
    Raises ``LimiterUnavailable`` when the store fails.
    """

    def __init__(self, ttl_s: float = DAILY_USAGE_TTL_S, *, store: Store | None = None, key: str = _PRIVATE_KEY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backend: Store = store if store is not None else MemoryStore(clock)
        self.key = key
        self.ttl_s = ttl_s

    def store(self, used: int, limit: int) -> None:
        try:
            self.backend.set(self.key, f"{int(used)}/{int(limit)}", self.ttl_s)
        except BackendError as exc:
            raise _unavailable(f"daily usage {self.key}", exc) from None

    def load(self) -> tuple[int, int] | None:
        try:
            text = self.backend.get(self.key)
        except BackendError as exc:
            raise _unavailable(f"daily usage {self.key}", exc) from None
        if text is None:
            return None
        used, _, limit = text.partition("/")
        try:
            return int(used), int(limit)
        except ValueError:
            return None

    def __repr__(self) -> str:
        return f"DailyUsage(key={self.key!r})"
