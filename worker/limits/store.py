"""Shared state behind one small interface: Redis for a deployment, memory for one process.

The rate limits, the concurrency slots, the daily-allocation record, the
webhook dedupe and the locks are each written once, on ``Store``; the
backend decides who shares them:

* ``RedisStore``: every process using the same Redis (the deployment). Times
  are Redis server time (``TIME`` inside Lua scripts), so skewed worker
  clocks cannot let extra requests through;
* ``MemoryStore``: this process only (``writeback demo``, a CLI run without
  Redis, tests). Thread-safe; its operations mirror the Lua scripts step by
  step, TTLs included, on a monotonic clock.

The operations (times in seconds):

* ``window_acquire(key, limit, period_s, member)``: a sliding log (a sorted
  set of acquisition times): drop entries older than ``period_s``, add
  ``member`` if fewer than ``limit`` remain and answer 0, else answer how long
  until the oldest entry leaves; ``window_restamp(key, member, period_s)``
  moves an entry to "now";
* ``lease_acquire(key, limit, lease_s, member)``: a semaphore of leases (a
  sorted set scored by expiry): drop expired leases, add one if fewer than
  ``limit`` remain and answer 0, else how long until the first one expires;
  ``lease_release(key, member)``;
* ``entries(key)``: the scores of a window or lease key, oldest first;
* ``set_if_absent(key, value, ttl_s)`` (``SET NX PX``), ``set``, ``get``,
  ``delete``, and ``delete_if_equals(key, value)`` (a lock is released only
  by the holder of its token).

The store adds no prefix: each caller owns its keys and lists them in its
docstring. A backend that fails raises ``BackendError`` (its ``kind`` names
the backend's exception, never its text, which may quote a Redis URL with a
password); each caller turns it into its own ``Unavailable`` error.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import redis

__all__ = ["BackendError", "MemoryStore", "RedisStore", "Store", "redis_client", "store_for"]

_US = 1_000_000


class BackendError(Exception):
    """The backend did not answer (Redis unreachable, timed out, refused a script)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"the shared-state backend failed ({kind})")
        self.kind = kind


class Store(Protocol):
    """What the limiters, the dedupe and the locks need from shared state."""

    #: True when other processes see the same state (a waiter then adds jitter, see the limiters).
    shared: bool

    def window_acquire(self, key: str, limit: int, period_s: float, member: str) -> float: ...

    def window_restamp(self, key: str, member: str, period_s: float) -> None: ...

    def lease_acquire(self, key: str, limit: int, lease_s: float, member: str) -> float: ...

    def lease_release(self, key: str, member: str) -> None: ...

    def entries(self, key: str) -> list[float]: ...

    def set_if_absent(self, key: str, value: str, ttl_s: float) -> bool: ...

    def set(self, key: str, value: str, ttl_s: float) -> None: ...

    def get(self, key: str) -> str | None: ...

    def delete(self, key: str) -> None: ...

    def delete_if_equals(self, key: str, value: str) -> bool: ...


def _us(seconds: float) -> int:
    return max(1, round(seconds * _US))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


# --------------------------------------------------------------------- Redis

# Scores are Redis server microseconds. ``redis.replicate_commands`` is needed
# before Redis 5 for a script that reads TIME and then writes; later it is a no-op.
_WINDOW_ACQUIRE = """
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

_WINDOW_RESTAMP = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
return 0
"""

_LEASE_ACQUIRE = """
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

_DELETE_IF_EQUALS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def redis_client(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A client for shared state: socket timeouts, so a dead Redis fails fast instead of hanging."""
    import redis as redis_module

    return redis_module.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                       health_check_interval=30)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis as redis_module

    # OSError: a socket error redis-py did not wrap.
    return (redis_module.RedisError, OSError)


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class RedisStore:
    """The store in Redis, shared by every process of the deployment.

    Give the client short socket timeouts (``redis_client``): a Redis that is
    down or hangs must fail within seconds, not hold a request or a task.
    """

    shared = True

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        # Registering computes the script's SHA locally; Redis is first asked when a script runs.
        self._window_acquire = client.register_script(_WINDOW_ACQUIRE)
        self._window_restamp = client.register_script(_WINDOW_RESTAMP)
        self._lease_acquire = client.register_script(_LEASE_ACQUIRE)
        self._delete_if_equals = client.register_script(_DELETE_IF_EQUALS)

    def _run(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except _redis_errors() as exc:
            raise BackendError(type(exc).__name__) from None

    def window_acquire(self, key: str, limit: int, period_s: float, member: str) -> float:
        wait_us = self._run(self._window_acquire, keys=[key], args=[int(limit), _us(period_s), member])
        return max(0, int(wait_us)) / _US

    def window_restamp(self, key: str, member: str, period_s: float) -> None:
        self._run(self._window_restamp, keys=[key], args=[member, _us(period_s)])

    def lease_acquire(self, key: str, limit: int, lease_s: float, member: str) -> float:
        wait_us = self._run(self._lease_acquire, keys=[key], args=[int(limit), _us(lease_s), member])
        return max(0, int(wait_us)) / _US

    def lease_release(self, key: str, member: str) -> None:
        self._run(self.client.zrem, key, member)

    def entries(self, key: str) -> list[float]:
        return [score / _US for _, score in self._run(self.client.zrange, key, 0, -1, withscores=True)]

    def set_if_absent(self, key: str, value: str, ttl_s: float) -> bool:
        return bool(self._run(self.client.set, key, value, nx=True, px=_ms(ttl_s)))

    def set(self, key: str, value: str, ttl_s: float) -> None:
        self._run(self.client.set, key, value, px=_ms(ttl_s))

    def get(self, key: str) -> str | None:
        return _text(self._run(self.client.get, key))

    def delete(self, key: str) -> None:
        self._run(self.client.delete, key)

    def delete_if_equals(self, key: str, value: str) -> bool:
        return bool(self._run(self._delete_if_equals, keys=[key], args=[value]))

    def __repr__(self) -> str:
        return "RedisStore()"  # the client's repr may name the URL, password included


# --------------------------------------------------------------------- memory


class MemoryStore:
    """The store in this process's memory: thread-safe, TTLs honoured.

    Each operation mirrors its Lua script on ``clock`` (seconds, monotonic),
    in whole microseconds as Redis counts them.
    """

    shared = False
    _SWEEP_EVERY_S = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [value, expires at (µs)]; the value is a str or a sorted set (member -> score)
        self._data: dict[str, list[Any]] = {}
        self._last_sweep = self._now()

    def _now(self) -> int:
        return round(self._clock() * _US)

    def _live(self, key: str, now: int) -> Any:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._data[key]
            return None
        return entry[0]

    def _sweep(self, now: int) -> None:
        # Expired keys would otherwise stay until the same key comes again (dedupe keys never do).
        if now - self._last_sweep < self._SWEEP_EVERY_S * _US:
            return
        self._last_sweep = now
        for key in [k for k, (_, expires) in self._data.items() if expires <= now]:
            del self._data[key]

    def _begin(self, key: str, kind: type) -> tuple[int, Any]:
        """Now, and the live value of ``key`` (None when absent); the lock must be held."""
        now = self._now()
        self._sweep(now)
        value = self._live(key, now)
        if value is not None and not isinstance(value, kind):
            raise BackendError("WRONGTYPE")  # what Redis answers for a string used as a sorted set
        return now, value

    def _sorted(self, key: str, limit: int, span_us: int, member: str, *, lease: bool) -> float:
        with self._lock:
            now, entries = self._begin(key, dict)
            entries = entries if entries is not None else {}
            cutoff = now if lease else now - span_us
            for stale in [m for m, score in entries.items() if score <= cutoff]:
                del entries[stale]
            if len(entries) < limit:
                entries[member] = now + span_us if lease else now
                self._data[key] = [entries, now + math.ceil(span_us / 1000) * 1000]
                return 0.0
            first = min(entries.values())
            return max(1, math.ceil(first + (0 if lease else span_us) - now)) / _US

    def window_acquire(self, key: str, limit: int, period_s: float, member: str) -> float:
        return self._sorted(key, int(limit), _us(period_s), member, lease=False)

    def window_restamp(self, key: str, member: str, period_s: float) -> None:
        span_us = _us(period_s)
        with self._lock:
            now, entries = self._begin(key, dict)
            entries = entries if entries is not None else {}
            entries[member] = now
            self._data[key] = [entries, now + math.ceil(span_us / 1000) * 1000]

    def lease_acquire(self, key: str, limit: int, lease_s: float, member: str) -> float:
        return self._sorted(key, int(limit), _us(lease_s), member, lease=True)

    def lease_release(self, key: str, member: str) -> None:
        with self._lock:
            _, entries = self._begin(key, dict)
            if entries is not None:
                entries.pop(member, None)
                if not entries:  # Redis drops a sorted set with its last member
                    del self._data[key]

    def entries(self, key: str) -> list[float]:
        with self._lock:
            _, entries = self._begin(key, dict)
            return sorted(score / _US for score in (entries or {}).values())

    def set_if_absent(self, key: str, value: str, ttl_s: float) -> bool:
        with self._lock:
            now = self._now()
            self._sweep(now)
            if self._live(key, now) is not None:
                return False
            self._data[key] = [value, now + _ms(ttl_s) * 1000]
            return True

    def set(self, key: str, value: str, ttl_s: float) -> None:
        with self._lock:
            now = self._now()
            self._sweep(now)
            self._data[key] = [value, now + _ms(ttl_s) * 1000]

    def get(self, key: str) -> str | None:
        with self._lock:
            _, value = self._begin(key, str)
            return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def delete_if_equals(self, key: str, value: str) -> bool:
        with self._lock:
            now = self._now()
            if self._live(key, now) != value:
                return False
            del self._data[key]
            return True

    def __repr__(self) -> str:
        return "MemoryStore()"


def store_for(client: redis.Redis | None) -> Store:
    """``RedisStore(client)``, or a fresh ``MemoryStore`` when there is no Redis (state of this process only)."""
    return RedisStore(client) if client is not None else MemoryStore()
