"""Rate limits shared by every worker of a deployment (DESIGN §5).

Celery's own ``rate_limit`` is per worker process, and a CRM counts requests
per org or per token: ten workers each keeping "100 per 10 s" send 1000. The
limiters here keep their state in Redis, so a worker waits for its turn
instead of earning a 429:

* ``RedisRateLimiter``: at most ``limit`` acquisitions in any ``period_s``
  (a sliding log in a sorted set, one atomic Lua script, Redis server time);
* ``RedisConcurrencyLimiter``: at most ``limit`` requests in flight (a
  semaphore of leases that expire on their own, so a SIGKILLed worker cannot
  hold a slot for ever);
* ``RequestGate``: what a connector wraps around every HTTP request (rate,
  concurrency, and Salesforce's daily-allocation guard fed by
  ``Sforce-Limit-Info``); ``NO_GATE`` does nothing;
* ``gate_for`` builds a connection's gate from the connector's
  ``default_rate_limit`` and the connection's ``[connections.rate_limit]``;
  ``siro_limiter`` paces Siro's 1000 requests a minute per token.

Without Redis (``writeback demo``, single-process runs) the same gates are
built from in-process limiters.

Redis keys (all under ``writeback:rate:``):

* ``writeback:rate:<connection name>:requests`` (sorted set: request -> time)
* ``writeback:rate:<connection name>:concurrency`` (sorted set: lease -> expiry)
* ``writeback:rate:<connection name>:daily`` (string ``used/limit``, 1 h TTL)
* ``writeback:rate:siro:<first 16 hex digits of sha256(token)>`` (sorted set)

Failures: a connector's gate turns every limiter problem (Redis unreachable,
no turn within ``max_wait_s``) into ``connectors.base.TransientError`` with a
``retry_after``, so the pipeline retries later. The Siro limiter raises
``worker.siro.client.SiroUnavailable`` (with ``retry_after``), the error the
Siro client already raises when Siro cannot be reached.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from connectors.base import NO_GATE, Connector, NoGate, TransientError
from worker.errors import ConfigError, Unavailable
from worker.siro.client import RateLimiter, SiroUnavailable, SlidingWindowRateLimiter

if TYPE_CHECKING:
    import redis

    from worker.settings import ConnectionConfig

log = logging.getLogger(__name__)

KEY_PREFIX = "writeback:rate"
SIRO_REQUESTS_PER_MINUTE = 1000
DEFAULT_MAX_WAIT_S = 120.0
# Longer than any request's timeout (30 s by default for both CRMs), so a live
# request keeps its slot; short enough that a killed worker's slot comes back
# within minutes.
DEFAULT_LEASE_S = 120.0
DAILY_USAGE_TTL_S = 3600.0
# Salesforce's allocation is a rolling 24 h: nothing frees up in seconds, and
# checking again every quarter of an hour costs nothing.
DAILY_RETRY_AFTER_S = 900.0
# After a Redis failure: long enough not to hammer a restarting server.
UNAVAILABLE_RETRY_AFTER_S = 5.0
# How often a waiter for a concurrency slot looks again (a release does not wake it).
SLOT_POLL_S = 0.05

__all__ = [
    "KEY_PREFIX", "NO_GATE", "LimiterError", "LimiterUnavailable", "LimiterBusy", "RedisRateLimiter",
    "RedisConcurrencyLimiter", "LocalRateLimiter", "LocalConcurrencyLimiter", "ConcurrencyLimiter",
    "DailyUsage", "RedisDailyUsage", "LocalDailyUsage", "RequestGate", "siro_limiter", "gate_for",
    "gate_factory", "redis_client",
]


# --------------------------------------------------------------------- errors


class LimiterError(TransientError):
    """No turn could be had; ``retry_after`` suggests when to try again (seconds)."""


class LimiterUnavailable(LimiterError, Unavailable):
    """Redis failed (unreachable, timed out, refused the script)."""


class LimiterBusy(LimiterError):
    """Waited ``max_wait_s`` without getting a turn."""


def redis_client(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A client for the limiters: socket timeouts, so a dead Redis fails fast instead of hanging."""
    import redis as redis_module

    return redis_module.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                       health_check_interval=30)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis as redis_module

    # OSError: a socket error redis-py did not wrap.
    return (redis_module.RedisError, OSError)


# --------------------------------------------------------------------- rate

# Scores are Redis server microseconds: every worker compares against one clock,
# so skewed worker clocks cannot let extra requests through. ``redis.replicate_commands``
# is needed before Redis 5 for a script that reads TIME and then writes; later it is a no-op.
_ACQUIRE_RATE = """
if redis.replicate_commands then redis.replicate_commands() end
local key, limit, period, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(period / 1000))
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(oldest[2]) + period - now))
"""

# Moves a request's entry to "now" (when its answer came back). The limiter
# counts from acquisition but the CRM counts arrivals, and a request that was
# slow to arrive (a fresh TLS handshake) would otherwise leave the window
# earlier on our side than on the CRM's: a later request sent right at the
# window's edge then earns the 429 we are here to avoid.
_RESTAMP_RATE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
return 0
"""


class RedisRateLimiter:
    """At most ``limit`` acquisitions in any ``period_s`` seconds, across every process using ``key``.

    ``acquire()`` (the ``worker.siro.client.RateLimiter`` protocol) blocks until
    a slot is free; ``span()`` also counts the request until its answer (see
    ``_RESTAMP_RATE``). Raises ``LimiterUnavailable`` when Redis fails and
    ``LimiterBusy`` after ``max_wait_s`` without a turn.
    """

    def __init__(self, client: redis.Redis, key: str, limit: int, period_s: float, *,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, sleep: Callable[[float], None] = time.sleep) -> None:
        if limit < 1:
            raise ValueError("rate limit must be at least 1 request per period")
        if period_s <= 0:
            raise ValueError("rate limit period must be positive")
        self.client = client
        self.key = key
        self.limit = int(limit)
        self.period_s = float(period_s)
        self.max_wait_s = max_wait_s
        self._period_us = max(1, int(round(self.period_s * 1_000_000)))
        self._sleep = sleep
        self._acquire_script = client.register_script(_ACQUIRE_RATE)
        self._restamp_script = client.register_script(_RESTAMP_RATE)

    def acquire(self) -> None:
        self._take()

    @contextmanager
    def span(self) -> Iterator[None]:
        member = self._take()
        try:
            yield
        finally:
            try:
                self._restamp_script(keys=[self.key], args=[member, self._period_us])
            except _redis_errors() as exc:  # the request is done: failing it now would misreport it
                log.warning("rate limiter %s: could not record the end of a request (%s)", self.key,
                            type(exc).__name__)

    def _take(self) -> str:
        member = uuid.uuid4().hex  # unique per acquisition: equal timestamps must not collapse into one entry
        deadline = time.monotonic() + self.max_wait_s
        while True:
            try:
                wait_us = int(self._acquire_script(keys=[self.key], args=[self.limit, self._period_us, member]))
            except _redis_errors() as exc:
                raise LimiterUnavailable(f"rate limiter {self.key}: Redis failed ({type(exc).__name__})",
                                         retry_after=UNAVAILABLE_RETRY_AFTER_S) from None
            if wait_us <= 0:
                return member
            wait = wait_us / 1_000_000
            if time.monotonic() + wait > deadline:
                raise LimiterBusy(f"rate limiter {self.key}: no turn within {self.max_wait_s:g}s "
                                  f"({self.limit} per {self.period_s:g}s)", retry_after=wait)
            log.debug("rate limiter %s: waiting %.3fs", self.key, wait)
            # A little jitter, so waiters woken by one expiry do not all ask at once.
            self._sleep(wait + random.uniform(0, min(0.01, wait)))

    def __repr__(self) -> str:
        return f"RedisRateLimiter(key={self.key!r}, limit={self.limit}, period_s={self.period_s:g})"


class LocalRateLimiter(SlidingWindowRateLimiter):
    """The in-process sliding window, with ``span()`` like ``RedisRateLimiter``'s."""

    @contextmanager
    def span(self) -> Iterator[None]:
        stamp = self._take()
        try:
            yield
        finally:
            with self._lock:
                try:
                    self._sent.remove(stamp)
                except ValueError:
                    pass  # already left the window
                self._sent.append(self._clock())  # the clock is monotonic: the deque stays sorted


# --------------------------------------------------------------------- concurrency

_ACQUIRE_SLOT = """
if redis.replicate_commands then redis.replicate_commands() end
local key, limit, lease, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now + lease, member)
  redis.call('PEXPIRE', key, math.ceil(lease / 1000))
  return 0
end
local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(first[2]) - now))
"""


class ConcurrencyLimiter(Protocol):
    def slot(self) -> Any:
        """A context manager: blocks until a slot is free, holds it for the block."""
        ...


class RedisConcurrencyLimiter:
    """A semaphore of ``limit`` slots shared through Redis.

    Each holder has a lease (a sorted-set member scored by its expiry); a
    holder that dies without releasing (SIGKILL) loses its slot when the lease
    expires, after ``lease_s``. Raises ``LimiterUnavailable`` when Redis fails
    and ``LimiterBusy`` after ``max_wait_s`` without a slot.
    """

    def __init__(self, client: redis.Redis, key: str, limit: int, lease_s: float = DEFAULT_LEASE_S, *,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, poll_s: float = SLOT_POLL_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if limit < 1:
            raise ValueError("concurrency limit must be at least 1")
        if lease_s <= 0:
            raise ValueError("lease must be positive")
        self.client = client
        self.key = key
        self.limit = int(limit)
        self.lease_s = float(lease_s)
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self._sleep = sleep
        self._acquire_script = client.register_script(_ACQUIRE_SLOT)

    def acquire(self) -> str:
        """Take a slot; returns the lease to ``release``."""
        member = uuid.uuid4().hex
        lease_us = max(1, int(round(self.lease_s * 1_000_000)))
        deadline = time.monotonic() + self.max_wait_s
        while True:
            try:
                wait_us = int(self._acquire_script(keys=[self.key], args=[self.limit, lease_us, member]))
            except _redis_errors() as exc:
                raise LimiterUnavailable(f"concurrency limiter {self.key}: Redis failed ({type(exc).__name__})",
                                         retry_after=UNAVAILABLE_RETRY_AFTER_S) from None
            if wait_us <= 0:
                return member
            if time.monotonic() >= deadline:
                raise LimiterBusy(f"concurrency limiter {self.key}: no free slot of {self.limit} within "
                                  f"{self.max_wait_s:g}s", retry_after=min(wait_us / 1_000_000, self.max_wait_s))
            # The wait returned is until the oldest lease expires; holders usually release far sooner.
            self._sleep(min(wait_us / 1_000_000, self.poll_s * random.uniform(0.5, 1.5)))

    def release(self, lease: str) -> None:
        try:
            self.client.zrem(self.key, lease)
        except _redis_errors() as exc:  # the lease expires on its own
            log.warning("concurrency limiter %s: could not release a slot (%s); it frees in %gs", self.key,
                        type(exc).__name__, self.lease_s)

    @contextmanager
    def slot(self) -> Iterator[None]:
        lease = self.acquire()
        try:
            yield
        finally:
            self.release(lease)

    def __repr__(self) -> str:
        return f"RedisConcurrencyLimiter(key={self.key!r}, limit={self.limit}, lease_s={self.lease_s:g})"


class LocalConcurrencyLimiter:
    """At most ``limit`` holders in this process."""

    def __init__(self, limit: int, *, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        if limit < 1:
            raise ValueError("concurrency limit must be at least 1")
        self.limit = int(limit)
        self.max_wait_s = max_wait_s
        self._semaphore = threading.BoundedSemaphore(self.limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._semaphore.acquire(timeout=self.max_wait_s):
            raise LimiterBusy(f"no free slot of {self.limit} within {self.max_wait_s:g}s", retry_after=1.0)
        try:
            yield
        finally:
            self._semaphore.release()

    def __repr__(self) -> str:
        return f"LocalConcurrencyLimiter(limit={self.limit})"


# --------------------------------------------------------------------- daily allocation

class DailyUsage(Protocol):
    def store(self, used: int, limit: int) -> None: ...

    def load(self) -> tuple[int, int] | None: ...


class RedisDailyUsage:
    """The latest ``(used, limit)`` any worker saw, shared through Redis.

    Kept for an hour only: once every worker is refused, no answer refreshes
    the numbers, and the expiry lets one request through to read them again.
    """

    def __init__(self, client: redis.Redis, key: str, ttl_s: float = DAILY_USAGE_TTL_S) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = max(1, int(ttl_s * 1000))

    def store(self, used: int, limit: int) -> None:
        self.client.set(self.key, f"{int(used)}/{int(limit)}", px=self.ttl_ms)

    def load(self) -> tuple[int, int] | None:
        raw = self.client.get(self.key)
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        used, _, limit = text.partition("/")
        try:
            return int(used), int(limit)
        except ValueError:
            return None


class LocalDailyUsage:
    """``RedisDailyUsage`` for one process."""

    def __init__(self, ttl_s: float = DAILY_USAGE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._value: tuple[int, int, float] | None = None
        self._lock = threading.Lock()

    def store(self, used: int, limit: int) -> None:
        with self._lock:
            self._value = (int(used), int(limit), self._clock() + self.ttl_s)

    def load(self) -> tuple[int, int] | None:
        with self._lock:
            if self._value is None or self._clock() >= self._value[2]:
                return None
            return self._value[0], self._value[1]


# --------------------------------------------------------------------- gate


class RequestGate:
    """What a connector wraps around every HTTP request: ``with gate.request(): send()``.

    Before the request: the daily-allocation guard (when ``daily_share`` is
    set), then the rate limiter, then a concurrency slot (held until the
    answer is in). A refusal or a limiter failure raises ``TransientError``
    with ``retry_after``; nothing is sent then. Errors of the request itself
    pass through untouched.
    """

    def __init__(self, name: str = "", *, rate: RateLimiter | None = None,
                 concurrency: ConcurrencyLimiter | None = None, daily_share: float | None = None,
                 usage: DailyUsage | None = None) -> None:
        if daily_share is not None and not 0 < daily_share <= 1:
            raise ValueError("daily_share must be in (0, 1]")
        self.name = name
        self.rate = rate
        self.concurrency = concurrency
        self.daily_share = daily_share
        self.usage = usage if usage is not None else (LocalDailyUsage() if daily_share is not None else None)

    @contextmanager
    def request(self) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                self._check_daily()
                if self.rate is not None:
                    span = getattr(self.rate, "span", None)
                    if span is not None:
                        stack.enter_context(span())
                    else:
                        self.rate.acquire()
                if self.concurrency is not None:
                    stack.enter_context(self.concurrency.slot())
            except LimiterError as exc:
                raise TransientError(f"{self.name or 'connection'}: {exc}", retry_after=exc.retry_after) from None
            yield

    def _check_daily(self) -> None:
        if self.daily_share is None or self.usage is None:
            return
        try:
            seen = self.usage.load()
        except _redis_errors() as exc:
            raise LimiterUnavailable(f"daily usage of {self.name}: Redis failed ({type(exc).__name__})",
                                     retry_after=UNAVAILABLE_RETRY_AFTER_S) from None
        if seen is None:
            return
        used, limit = seen
        if limit > 0 and used >= self.daily_share * limit:
            raise LimiterBusy(
                f"daily API allocation spent: {used}/{limit} requests used, this service may use "
                f"{self.daily_share:.0%} (rolling 24 h)", retry_after=DAILY_RETRY_AFTER_S)

    def observe_daily_usage(self, used: int, limit: int) -> None:
        """Record the CRM's latest count of the daily allocation (Salesforce ``Sforce-Limit-Info``)."""
        if self.usage is None:
            return
        try:
            self.usage.store(used, limit)
        except _redis_errors() as exc:  # a missed update only delays the guard by one request
            log.warning("daily usage of %s: could not store it (%s)", self.name, type(exc).__name__)

    def __repr__(self) -> str:
        return (f"RequestGate({self.name!r}, rate={self.rate!r}, concurrency={self.concurrency!r}, "
                f"daily_share={self.daily_share!r})")


# --------------------------------------------------------------------- builders


class _SiroLimiter:
    """A shared limiter whose failures read as Siro being unavailable (what the Siro client's callers handle)."""

    def __init__(self, limiter: RedisRateLimiter) -> None:
        self.limiter = limiter

    def acquire(self) -> None:
        try:
            self.limiter.acquire()
        except LimiterError as exc:
            raise SiroUnavailable(f"shared rate limiter: {exc}", attempts=0, retry_after=exc.retry_after) from None

    def __repr__(self) -> str:
        return f"_SiroLimiter({self.limiter!r})"


def siro_limiter(client: redis.Redis | None, token: str) -> RateLimiter:
    """Siro's 1000 requests a minute per token, shared by every worker using ``token``.

    The key holds a short hash of the token, never the token. Without Redis,
    an in-process window. A Redis failure or no turn within the wait raises
    ``SiroUnavailable`` (``retry_after`` set).
    """
    if client is None:
        return SlidingWindowRateLimiter(SIRO_REQUESTS_PER_MINUTE, 60.0)
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
    return _SiroLimiter(RedisRateLimiter(client, f"{KEY_PREFIX}:siro:{digest}", SIRO_REQUESTS_PER_MINUTE, 60.0))


_LIMIT_KEYS = ("requests", "per_s", "concurrency", "daily_share")


def _limits(value: Any) -> dict[str, Any]:
    """A ``RateLimit``, a mapping or None as a dict of the keys that are set."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = dict(value)
    else:
        items = {key: getattr(value, key, None) for key in _LIMIT_KEYS}
    unknown = set(items) - set(_LIMIT_KEYS)
    if unknown:
        raise ValueError(f"unknown rate limit key {sorted(unknown)[0]!r}")
    return {key: item for key, item in items.items() if item is not None}


def gate_for(connection: ConnectionConfig, connector_cls: type[Connector],
             client: redis.Redis | None, *, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> RequestGate | NoGate:
    """The gate of one connection: the connector's ``default_rate_limit`` overridden key by key by
    ``[connections.rate_limit]``. Shared through Redis when ``client`` is given, in-process otherwise.
    ``max_wait_s``: the longest wait for a turn (a worker keeps it under its task's soft time limit)."""
    name = connection.display_name
    merged = _limits(getattr(connector_cls, "default_rate_limit", None))
    merged.update(_limits(connection.rate_limit))
    requests, per_s = merged.get("requests"), merged.get("per_s")
    if (requests is None) != (per_s is None):
        given, missing = ("requests", "per_s") if per_s is None else ("per_s", "requests")
        raise ConfigError(f"connection {name!r}: rate_limit.{given} needs rate_limit.{missing} "
                          f"(connector {connection.connector!r} has no default for it)")
    concurrency, daily_share = merged.get("concurrency"), merged.get("daily_share")
    if requests is None and concurrency is None and daily_share is None:
        return NO_GATE
    base = f"{KEY_PREFIX}:{name}"
    rate: RateLimiter | None = None
    slots: ConcurrencyLimiter | None = None
    usage: DailyUsage | None = None
    if client is not None:
        if requests is not None:
            rate = RedisRateLimiter(client, f"{base}:requests", int(requests), float(per_s), max_wait_s=max_wait_s)
        if concurrency is not None:
            slots = RedisConcurrencyLimiter(client, f"{base}:concurrency", int(concurrency), max_wait_s=max_wait_s)
        if daily_share is not None:
            usage = RedisDailyUsage(client, f"{base}:daily")
    else:
        if requests is not None:
            rate = LocalRateLimiter(int(requests), float(per_s))
        if concurrency is not None:
            slots = LocalConcurrencyLimiter(int(concurrency))
        if daily_share is not None:
            usage = LocalDailyUsage()
    return RequestGate(name, rate=rate, concurrency=slots,
                       daily_share=float(daily_share) if daily_share is not None else None, usage=usage)


def gate_factory(client: redis.Redis | None) -> Callable[[ConnectionConfig, type[Connector]], RequestGate | NoGate]:
    """``ConnectorPool(config, gate_factory=gate_factory(client))``."""
    return lambda connection, connector_cls: gate_for(connection, connector_cls, client)
