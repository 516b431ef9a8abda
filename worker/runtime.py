"""What a service process holds: its settings and the clients built from them.

A worker, the beat, the webhook app and the CLI each need the same things:
the ledger, the Siro client, the connector pool, the shared Redis (rate
limits, webhook dedupe, the poll lock) and the pipeline wired from them. A
``Runtime`` builds each once per process, on first use, and again in a child
process after a fork (Celery's prefork pool), so no socket is ever shared
between processes. Nothing here holds state another worker needs: that lives
in the ledger and in Redis.

Without a Redis URL (``writeback demo`` runs on an embedded broker) the rate
limits and the dedupe store are the in-process ones.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from worker.errors import ConfigError
from worker.ledger import Ledger, LedgerError, LedgerUnavailable
from worker.limits.backoff import RetryPolicy
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.runner import Pipeline
from worker.settings import Settings, load_settings
from worker.siro.client import SiroClient

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Inside a task, transient failures get a few quick retries; longer waits are
# Celery retries with a countdown, so a worker never sleeps through its time limit.
IN_TASK_RETRY_MAX_S = 5.0


class Runtime:
    def __init__(self, settings: Settings, *, redis_optional: bool = False, in_task: bool = True,
                 with_siro: bool = True) -> None:
        """``redis_optional``: without an answering Redis, fall back to in-process
        rate limits (a CLI run on a machine without the service). ``in_task``:
        the pipeline makes a few quick retries and leaves longer waits to
        Celery; else (the CLI) it retries as ``[retry]`` says, in-process.
        ``with_siro``: the pipeline gets a Siro client (not for revert and
        review approval, which start from the ledger: no Siro token needed)."""
        self.settings = settings
        self.with_siro = with_siro
        self.redis_optional = redis_optional
        self.in_task = in_task
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._objects: dict[str, Any] = {}

    @property
    def config(self):  # noqa: ANN201
        return self.settings.config

    @property
    def uses_redis(self) -> bool:
        return self.settings.redis_url.startswith(REDIS_SCHEMES)

    def _get(self, name: str, build: Any) -> Any:
        with self._lock:
            if os.getpid() != self._pid:
                # Forked: the parent's clients hold its sockets; build ours.
                self._objects.clear()
                self._pid = os.getpid()
            if name not in self._objects:
                self._objects[name] = build()
            return self._objects[name]

    # -- clients -------------------------------------------------------------

    @property
    def redis(self):  # noqa: ANN201 - redis.Redis | None
        """The shared Redis (``WRITEBACK_REDIS_URL``), or None on an embedded broker."""
        if not self.uses_redis:
            return None
        return self._get("redis", lambda: connect_redis(self.settings.redis_url, optional=self.redis_optional,
                                                        named=self.settings.redis_named))

    @property
    def ledger(self) -> Ledger:
        def build() -> Ledger:
            try:
                return Ledger.open(self.settings.database_url)
            except LedgerError as exc:
                if self.in_task and isinstance(exc, LedgerUnavailable):
                    raise  # the database is down for now: the task retries later
                raise ConfigError(f"WRITEBACK_DATABASE_URL: cannot open the ledger: {exc}") from None

        return self._get("ledger", build)

    @property
    def siro(self) -> SiroClient:
        def build() -> SiroClient:
            if not self.in_task:
                return siro_client(self.settings, self.redis)
            return siro_client(self.settings, self.redis, max_retries=2, backoff_max=IN_TASK_RETRY_MAX_S,
                               retry_after_max=IN_TASK_RETRY_MAX_S)

        return self._get("siro", build)

    @property
    def connectors(self) -> ConnectorPool:
        def build() -> ConnectorPool:
            from worker.limits.rate import DEFAULT_MAX_WAIT_S, gate_for

            client = self.redis
            # In a task, a wait for a turn ends (as a transient failure, retried later) before the soft time limit.
            wait = max(1.0, self.config.worker.soft_time_limit_s / 2) if self.in_task else DEFAULT_MAX_WAIT_S
            return ConnectorPool(
                self.config, gate_factory=lambda connection, cls: gate_for(connection, cls, client, max_wait_s=wait)
            )

        return self._get("connectors", build)

    @property
    def pipeline(self) -> Pipeline:
        def build() -> Pipeline:
            if not self.config.connections:
                where = self.settings.config_path or "no config file (set WRITEBACK_CONFIG)"
                raise ConfigError(f"no [[connections]] configured: {where}")
            retry = self.config.retry
            in_task = RetryPolicy(
                max_retries=self.config.worker.in_task_retries,
                base_s=min(retry.base_s, 1.0),
                max_s=min(retry.max_s, IN_TASK_RETRY_MAX_S),
            )
            retry_policy = in_task if self.in_task else RetryPolicy(
                max_retries=retry.max_retries, base_s=retry.base_s, max_s=retry.max_s
            )
            pipeline = Pipeline(
                self.config, connectors=self.connectors, siro=self.siro if self.with_siro else None, ledger=self.ledger,
                retry=retry_policy,
                log_refusals=self.in_task,
            )
            return pipeline

        return self._get("pipeline", build)

    def close(self) -> None:
        with self._lock:
            for name in ("connectors", "siro", "ledger", "redis"):
                thing = self._objects.pop(name, None)
                if thing is not None and os.getpid() == self._pid:
                    try:
                        thing.close()
                    except Exception:  # closing is best effort
                        log.debug("closing %s failed", name, exc_info=True)
            self._objects.clear()


def siro_client(settings: Settings, shared_redis: Any = None, **options: Any) -> SiroClient:
    """The Siro client for these settings, paced through ``shared_redis`` when
    given (else in-process); a malformed URL or token is a config error."""
    from worker.siro.pacing import siro_limiter

    token = settings.require_siro_token()
    try:
        return SiroClient(settings.siro_api_url, token, rate_limiter=siro_limiter(shared_redis, token), **options)
    except ValueError as exc:  # the client's messages name the variable, never the token
        raise ConfigError(str(exc).replace("Siro API URL", "SIRO_API_URL")) from None


def connect_redis(url: str, *, optional: bool = False, named: bool = True):  # noqa: ANN201 - redis.Redis | None
    """The shared Redis at ``url``; None for a non-Redis URL (the embedded broker),
    or, when ``optional``, when it does not answer (limits are then this process's own:
    a warning when the user ``named`` that Redis, else the default was just not there)."""
    if not url.startswith(REDIS_SCHEMES):
        return None
    import redis

    from worker.limits.store import redis_client

    client = redis_client(url, timeout_s=3)
    if optional:
        try:
            client.ping()
        except (redis.RedisError, OSError):
            (log.warning if named else log.debug)(
                "Redis (WRITEBACK_REDIS_URL) does not answer: rate limits are this process's own")
            client.close()
            return None
    return client


_current: Runtime | None = None
_current_lock = threading.Lock()


def load(*, config_path: str | None = None, talks_to_crm: bool = True, env: Any = None) -> Settings:
    """A process's settings, its config checked before any work (fail closed).

    Every ``[[connections]]`` table is checked (``ConnectorPool.validate``): a
    misspelt key or an option the connector refuses is a ``ConfigError`` here,
    not a failed field later. ``talks_to_crm=False`` (beat, the webhook app,
    commands that only enqueue): the CRM's secrets need not be set and no
    connector is built.
    """
    settings = load_settings(env, config_path=config_path, crm_secrets=talks_to_crm)
    ConnectorPool(settings.config).validate(build=talks_to_crm)
    return settings


def runtime() -> Runtime:
    """This process's runtime, built from the environment on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Runtime(load())
        return _current


def use_runtime(value: Runtime | None) -> None:
    """Install a runtime built from explicit settings (the demo, tests)."""
    global _current
    with _current_lock:
        _current = value
