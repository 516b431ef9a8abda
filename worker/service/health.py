"""Is this process ready to work? The broker, the ledger database and Redis, each asked once.

``writeback ready`` prints it (the health check of the beat container) and the
webhook app serves it on ``GET /readyz``. A problem is a short reason without
secrets: the kind of error, never its text (which may carry a URL's password).
"""

from __future__ import annotations

from worker.errors import ConfigError
from worker.runtime import Runtime


def readiness(rt: Runtime) -> dict[str, str | None]:
    """Each dependency: None when it answers, else a short reason (no secrets)."""
    checks = {"broker": _broker(), "database": _database(rt)}
    if rt.uses_redis and rt.settings.redis_url != rt.settings.broker_url:
        checks["redis"] = _redis(rt)
    return checks


def _broker() -> str | None:
    from worker.service.celery_app import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # any failure means "not ready"
        return f"unreachable ({type(exc).__name__})"
    return None


def _database(rt: Runtime) -> str | None:
    try:
        with rt.ledger.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except ConfigError as exc:
        # Not a database that is down, one this process cannot use (a driver not installed, a
        # malformed URL): the ledger's messages say which, never with the password.
        return str(exc)
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return None


def _redis(rt: Runtime) -> str | None:
    try:
        rt.redis.ping()
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return None
