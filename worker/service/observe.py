"""What a Celery worker (and beat) shows of itself: ``/metrics``, task timings, JSON logs (DESIGN §8).

Celery signals, connected when Celery imports this module (the app's
``include``):

* ``worker_init`` (the main process, before the pool forks): with
  ``[worker] metrics_port`` set, multiprocess mode on, so that the pool
  processes count into files one scrape merges. The directory is
  ``PROMETHEUS_MULTIPROC_DIR`` when the operator set it, else a private
  temporary one, removed at shutdown; files of processes no longer alive are
  removed at start (``worker.metrics.use_multiprocess_dir``);
* ``worker_ready``: the main process serves ``GET /metrics`` on
  ``metrics_port``: every pool process's counters plus the ledger's gauges;
* ``worker_process_shutdown``: a pool process's bookkeeping is closed
  (``mark_process_dead``); its counts stay, as a dead process's counts must;
* ``task_prerun``/``task_postrun``: ``writeback_task_seconds``; the task's id
  and recording id bound to its log lines; the webhook's arrival time, carried
  in the message header ``writeback_received_at``, bound for
  ``writeback_webhook_to_write_seconds``;
* ``after_setup_logger``/``after_setup_task_logger``: ``WRITEBACK_LOG_FORMAT=json``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from worker import metrics
from worker.logs import bind_log_context, unbind_log_context, use_log_format

log = logging.getLogger(__name__)

_private_dir: str | None = None  # the multiprocess directory this worker made (and removes)
_server: Any = None  # the metrics HTTP server of the main process
_running: dict[str, tuple[float, Any, Any]] = {}  # task id -> (start, log context token, arrival token)


def _metrics_port() -> int:
    from worker.runtime import runtime

    try:
        return int(runtime().config.worker.metrics_port)
    except Exception:  # noqa: BLE001 - a config error stops the worker on its own (worker.service.tasks)
        return 0


@worker_init.connect
def _count_across_processes(**_: Any) -> None:
    global _private_dir
    if not _metrics_port():
        return
    path = metrics.multiprocess_dir()
    if path is None:
        path = _private_dir = tempfile.mkdtemp(prefix="writeback-metrics-")
    metrics.use_multiprocess_dir(path)


@worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    global _server
    port = _metrics_port()
    if not port or _server is not None:
        return
    from prometheus_client import start_http_server

    from worker.runtime import runtime
    from worker.service.polling import POLL_WATERMARK

    rt = runtime()
    scraped = metrics.registry(metrics.LedgerCollector(lambda: rt.ledger, watermark=POLL_WATERMARK))
    try:
        _server, _ = start_http_server(port, registry=scraped)
    except OSError as exc:  # the worker still works; only its metrics are missing
        log.error("metrics: cannot serve on port %d (%s); this worker is not scraped", port, exc)
        return
    log.info("metrics: serving /metrics on port %d", port)


@worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: Any) -> None:
    if metrics.multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@worker_shutdown.connect
def _stop_metrics(**_: Any) -> None:
    global _server, _private_dir
    if _server is not None:
        _server.shutdown()
        _server = None
    if _private_dir is not None:
        shutil.rmtree(_private_dir, ignore_errors=True)
        _private_dir = None


# -- tasks ------------------------------------------------------------------------


def _recording_of(args: Any, kwargs: Any) -> str | None:
    """The one recording a task works on, when it works on one."""
    args, kwargs = list(args or ()), dict(kwargs or {})
    if kwargs.get("recording_id") or (args and isinstance(args[0], str)):
        return str(kwargs.get("recording_id") or args[0])
    ids = kwargs.get("recording_ids") or [raw.get("id") for raw in kwargs.get("recordings") or []
                                           if isinstance(raw, dict)]
    return str(ids[0]) if len(ids) == 1 and ids[0] else None


def _received_at(task: Any) -> float | None:
    request = getattr(task, "request", None)
    value = getattr(request, metrics.RECEIVED_AT_HEADER, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(metrics.RECEIVED_AT_HEADER)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None,
                  **_: Any) -> None:
    if task_id is None:
        return
    context = bind_log_context(task_id=task_id, recording_id=_recording_of(args, kwargs))
    arrival = metrics.webhook_received_at.set(_received_at(task))
    _running[task_id] = (time.monotonic(), context, arrival)


@task_postrun.connect
def _task_finished(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    started = _running.pop(task_id or "", None)
    if started is None:
        return
    began, context, arrival = started
    metrics.task_seconds(getattr(task, "name", None) or "unknown", time.monotonic() - began)
    for undo, token in ((metrics.webhook_received_at.reset, arrival), (unbind_log_context, context)):
        try:
            undo(token)
        except ValueError:  # set in another context (a pool that runs prerun and postrun apart): leave it
            pass


# -- logs -----------------------------------------------------------------------------


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger, **_: Any) -> None:
    use_log_format(logger.handlers)
