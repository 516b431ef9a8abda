"""Pacing Siro: 1000 requests a minute per token, counted by every worker of a deployment.

Siro sends no rate-limit headers, so the client paces itself through a
``RateLimiter``: by default a sliding window in this process's memory; with
Redis (``siro_limiter``), the same window shared by every worker using the
token. The Redis key holds a short hash of the token, never the token.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Protocol

from worker.limits.limiters import LimiterError, SlidingWindowRateLimiter
from worker.limits.store import store_for
from worker.siro.errors import SiroUnavailable

if TYPE_CHECKING:
    import redis

SIRO_REQUESTS_PER_MINUTE = 1000
KEY_PREFIX = "writeback:rate:siro"



class RateLimiter(Protocol):
    """Pacing interface: ``acquire()`` blocks until one more request may go.

    The default is ``SlidingWindowRateLimiter`` on this process's memory
    (``worker.limits.limiters``); the same limiter on Redis, shared by all
    workers (``siro_limiter``), implements the same method.
    """

    def acquire(self) -> None: ...


class _SharedSiroLimiter(SlidingWindowRateLimiter):
    """A limiter whose failures read as Siro being unavailable (what the Siro client's callers handle)."""

    def acquire(self) -> None:
        try:
            super().acquire()
        except LimiterError as exc:
            raise SiroUnavailable(f"shared rate limiter: {exc}", attempts=0, retry_after=exc.retry_after) from None


def siro_limiter(client: redis.Redis | None, token: str) -> RateLimiter:
    """Siro's 1000 requests a minute per token, shared by every worker using ``token``.

    Without Redis, a window of this process. A Redis failure or no turn within
    the wait raises ``SiroUnavailable`` (``retry_after`` set).
    """
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
    return _SharedSiroLimiter(SIRO_REQUESTS_PER_MINUTE, 60.0, store=store_for(client), key=f"{KEY_PREFIX}:{digest}")
