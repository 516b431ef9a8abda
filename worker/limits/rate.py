"""Rate limits shared by every worker of a deployment (DESIGN §5), and the connectors' gates.

Celery's own ``rate_limit`` is per worker process, and a CRM counts requests
per org or per token: ten workers each keeping "100 per 10 s" send 1000. The
limiters (``worker.limits.limiters``, on the store interface of
``worker.limits.store``) keep their state in Redis, so a worker waits for its
turn instead of earning a 429:

* ``RequestGate``: what a connector wraps around every HTTP request (rate,
  concurrency, and Salesforce's daily-allocation guard fed by
  ``Sforce-Limit-Info``); ``NO_GATE`` does nothing;
* ``gate_for`` builds a connection's gate from the connector's
  ``default_rate_limit`` and the connection's ``[connections.rate_limit]``.

Siro's 1000 requests a minute per token use the same limiter
(``worker.siro.pacing.siro_limiter``).

Without Redis (``writeback demo``, single-process runs) the same limiters run
on an in-memory store, one per gate.

Redis keys (all under ``writeback:rate:``):

* ``writeback:rate:<connection name>:requests`` (sorted set: request -> time)
* ``writeback:rate:<connection name>:concurrency`` (sorted set: lease -> expiry)
* ``writeback:rate:<connection name>:daily`` (string ``used/limit``, 1 h TTL)
* ``writeback:rate:siro:<first 16 hex digits of sha256(token)>`` (sorted set; ``worker.siro.pacing``)

Failures: a connector's gate turns every limiter problem (Redis unreachable,
no turn within ``max_wait_s``) into ``connectors.base.TransientError`` with a
``retry_after``, so the pipeline retries later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from connectors.base import NO_GATE, Connector, NoGate, TransientError
from worker import metrics
from worker.errors import ConfigError
from worker.limits.limiters import (
    DAILY_USAGE_TTL_S,
    DEFAULT_LEASE_S,
    DEFAULT_MAX_WAIT_S,
    SLOT_POLL_S,
    UNAVAILABLE_RETRY_AFTER_S,
    ConcurrencyLimiter,
    DailyUsage,
    LimiterBusy,
    LimiterError,
    LimiterUnavailable,
    SlidingWindowRateLimiter,
)
from worker.limits.store import store_for

if TYPE_CHECKING:
    import redis

    from worker.settings import ConnectionConfig

log = logging.getLogger(__name__)

KEY_PREFIX = "writeback:rate"
# Salesforce's allocation is a rolling 24 h: nothing frees up in seconds, and
# checking again every quarter of an hour costs nothing.
DAILY_RETRY_AFTER_S = 900.0

__all__ = [
    "KEY_PREFIX", "NO_GATE", "DAILY_RETRY_AFTER_S", "DAILY_USAGE_TTL_S", "DEFAULT_LEASE_S", "DEFAULT_MAX_WAIT_S",
    "SLOT_POLL_S", "UNAVAILABLE_RETRY_AFTER_S", "LimiterError", "LimiterUnavailable", "LimiterBusy",
    "SlidingWindowRateLimiter", "ConcurrencyLimiter", "DailyUsage", "RequestGate", "gate_for",
    "gate_factory",
]


# --------------------------------------------------------------------- gate


class RequestGate:
    """What a connector wraps around every HTTP request: ``with gate.request(): send()``.

    Before the request: the daily-allocation guard (when ``daily_share`` is
    set), then the rate limiter, then a concurrency slot (held until the
    answer is in). A refusal or a limiter failure raises ``TransientError``
    with ``retry_after``; nothing is sent then. Errors of the request itself
    pass through untouched.
    """

    def __init__(self, name: str = "", *, rate: SlidingWindowRateLimiter | None = None,
                 concurrency: ConcurrencyLimiter | None = None, daily_share: float | None = None,
                 usage: DailyUsage | None = None) -> None:
        if daily_share is not None and not 0 < daily_share <= 1:
            raise ValueError("daily_share must be in (0, 1]")
        self.name = name
        self.rate = rate
        self.concurrency = concurrency
        self.daily_share = daily_share
        self.usage = usage if usage is not None else (DailyUsage() if daily_share is not None else None)

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
        seen = self.usage.load()  # LimiterUnavailable when the store fails
        if seen is None:
            return
        used, limit = seen
        if limit > 0 and used >= self.daily_share * limit:
            raise LimiterBusy(
                f"daily API allocation spent: {used}/{limit} requests used, this service may use "
                f"{self.daily_share:.0%} (rolling 24 h)", retry_after=DAILY_RETRY_AFTER_S)

    def observe_response(self, kind: str, status: int | None) -> None:
        """Count one request the connector sent through this gate (``writeback_crm_requests_total``)."""
        metrics.crm_request(self.name, kind, status)

    def observe_daily_usage(self, used: int, limit: int) -> None:
        """Record the CRM's latest count of the daily allocation (Salesforce ``Sforce-Limit-Info``)."""
        if self.usage is None:
            return
        try:
            self.usage.store(used, limit)
        except LimiterError as exc:  # a missed update only delays the guard by one request
            log.warning("daily usage of %s: could not store it (%s)", self.name, exc)

    def __repr__(self) -> str:
        return (f"RequestGate({self.name!r}, rate={self.rate!r}, concurrency={self.concurrency!r}, "
                f"daily_share={self.daily_share!r})")


# --------------------------------------------------------------------- builders


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
    store = store_for(client)  # one backend for the gate's three limiters: Redis, or this gate's own memory
    rate = slots = usage = None
    if requests is not None:
        rate = SlidingWindowRateLimiter(int(requests), float(per_s), store=store, key=f"{base}:requests",
                                        max_wait_s=max_wait_s)
    if concurrency is not None:
        slots = ConcurrencyLimiter(int(concurrency), store=store, key=f"{base}:concurrency", max_wait_s=max_wait_s)
    if daily_share is not None:
        usage = DailyUsage(store=store, key=f"{base}:daily")
    return RequestGate(name, rate=rate, concurrency=slots,
                       daily_share=float(daily_share) if daily_share is not None else None, usage=usage)


def gate_factory(client: redis.Redis | None) -> Callable[[ConnectionConfig, type[Connector]], RequestGate | NoGate]:
    """``ConnectorPool(config, gate_factory=gate_factory(client))``."""
    return lambda connection, connector_cls: gate_for(connection, connector_cls, client)
