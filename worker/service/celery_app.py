"""The Celery app: ``celery -A worker worker`` and ``celery -A worker beat``.

``worker.app`` (this module's ``app``) is configured lazily from the
environment and the config file the first time Celery reads its
configuration, so importing it costs nothing and a test or the demo can
configure it first with :func:`configure`.

Reliability settings (DESIGN §5): tasks are acknowledged after they ran
(``acks_late``) and given back when their worker dies
(``reject_on_worker_lost``); a killed worker's unacknowledged task returns
after the broker's visibility timeout, which is set just above a task's hard
time limit plus the longest retry countdown, so a crash costs minutes, not
Celery's default hour, and a retry waiting for its countdown is never
delivered twice.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery

from worker.errors import EXIT_USAGE, ConfigError
from worker.settings import Settings

POLL_SCHEDULE = "poll"

# observe: the worker's /metrics, task timings and log format (Celery signals).
app = Celery("worker", include=["worker.service.tasks", "worker.service.observe"])


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's settings for these writeback settings."""
    config = settings.config
    interval = config.poll.interval_s
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        # A dead broker must fail a publish within seconds (the webhook answers
        # 503 and Siro retries), not hang in kombu's connection retries.
        "broker_connection_timeout": 3,
        "broker_transport_options": {
            "visibility_timeout": config.visibility_timeout_s,
            # kombu sweeps for abandoned messages only every interval x throttle
            # seconds (100 by default): sweep often enough that a killed
            # worker's task is back soon after its visibility timeout.
            "unacked_restore_interval": max(1, min(10, int(config.visibility_timeout_s / 6))),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 3,
            "socket_timeout": 5,
        },
        "task_publish_retry": False,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_soft_time_limit": config.worker.soft_time_limit_s,
        "task_time_limit": config.worker.time_limit_s,
        # One task at a time per process: with late acks, a prefetched task
        # would wait behind a slow one while another worker sits idle.
        "worker_prefetch_multiplier": 1,
        # Task events (received, started, succeeded, ...; and sent, from whoever enqueues) for
        # Flower and celery-exporter. On Redis they are published to whoever listens, else dropped.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "beat_schedule": {
            POLL_SCHEDULE: {
                "task": "worker.tasks.poll",
                "schedule": interval,
                # A pass not started before the next is due is superseded by it.
                "options": {"expires": interval},
            }
        },
        "timezone": "UTC",
        "enable_utc": True,
    }


_explicit: Settings | None = None  # settings given by ``configure`` (the demo, tests): no environment read


def _from_environment() -> dict[str, Any]:
    if _explicit is not None:
        return celery_config(_explicit)
    try:
        # Beat and the worker alike check every connection's keys here; beat talks to no CRM,
        # so the CRM's secrets may be absent. A worker builds its connections before it starts
        # (worker.service.tasks, on worker_init).
        from worker.runtime import load

        return celery_config(load(talks_to_crm=False))
    except ConfigError as exc:
        # `celery -A worker ...` with a broken config: one line and exit 2, as the CLI does.
        print(f"writeback: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


app.add_defaults(_from_environment)


def configure(settings: Settings, **overrides: Any) -> Celery:
    """Configure ``app`` explicitly (the demo, tests), reading nothing of the environment; returns it."""
    global _explicit
    _explicit = settings
    app.conf.update(celery_config(settings), **overrides)
    return app
