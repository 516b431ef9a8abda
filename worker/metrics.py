"""Prometheus metrics (DESIGN §8): every metric's definition, the ledger's gauges, the exposition.

The one home of what the service measures. Code elsewhere makes one-line
calls into it at the single place where each thing happens:

* ``recorded(report)``: ``worker.pipeline.writer`` once a report is stored in
  the ledger (field and note outcomes; the webhook-to-write latency);
* ``crm_request(connection, kind, status)``: ``worker.limits.rate.RequestGate``,
  told by the connectors through ``Gate.observe_response``;
* ``siro_request(status)``: the Siro client's one request path;
* ``webhook_delivery(answer)``: the webhook app, once per delivery;
* ``task_seconds(task, seconds)``: the Celery signals of ``worker.service.observe``.

Labels are bounded: connection and object names come from the config, outcomes,
kinds and answers from fixed sets, statuses are HTTP codes; never a recording id.

The gauges (dead letters, pending reviews, poll lag) are not kept by any
process: ``LedgerCollector`` computes them from the ledger when Prometheus
scrapes, with indexed ``COUNT`` queries, so every scrape tells the truth
whichever process changed the ledger.

Several processes, one scrape: a Celery worker's pool processes each count in
their own memory, so the worker runs prometheus-client's multiprocess mode
(``use_multiprocess_dir``, before the first observation: every metric here has
labels, so no value exists before its first ``.labels()``); ``exposition``
then merges every process's file. Metrics are defined at import, each once.
"""

from __future__ import annotations

import contextvars
import glob
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from connectors.base import GATE_KINDS

__all__ = [
    "CONTENT_TYPE_LATEST", "CRM_KINDS", "LedgerCollector", "MULTIPROC_ENV", "crm_request", "exposition",
    "multiprocess_dir", "recorded", "registry", "siro_request", "task_seconds", "use_multiprocess_dir",
    "webhook_delivery", "webhook_received_at",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: What a CRM request was for (``Gate.observe_response``); anything else counts as ``other``.
CRM_KINDS = frozenset(GATE_KINDS)
NONE = "none"  # the label value of a connection or object a report line does not name

FIELD_OUTCOMES = Counter(
    "writeback_field_outcomes", "Planned fields recorded in the ledger, by outcome.",
    ["connection", "object", "outcome"])
NOTE_OUTCOMES = Counter(
    "writeback_note_outcomes", "Summary notes recorded in the ledger, by outcome.", ["connection", "outcome"])
CRM_REQUESTS = Counter(
    "writeback_crm_requests", "HTTP requests sent to a CRM, by what they were for and the answer's status "
    "(`error`: no answer).", ["connection", "kind", "status"])
SIRO_REQUESTS = Counter(
    "writeback_siro_requests", "HTTP requests sent to Siro's API, retries included, by status (`error`: no answer).",
    ["status"])
WEBHOOK_DELIVERIES = Counter(
    "writeback_webhook_deliveries", "Webhook deliveries, by the answer given.", ["answer"])
TASK_SECONDS = Histogram(
    "writeback_task_seconds", "Run time of a Celery task, by task.", ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120, 300))
WEBHOOK_TO_WRITE_SECONDS = Histogram(
    "writeback_webhook_to_write_seconds", "From a webhook's arrival to the CRM's answer to the write it caused.",
    ["trigger"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600))

#: When the webhook that started this work arrived (``time.time()``): set by the webhook app for its
#: enqueue, and by the worker for the task that carries it (the ``writeback_received_at`` header).
webhook_received_at: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "webhook_received_at", default=None)
RECEIVED_AT_HEADER = "writeback_received_at"


def _label(value: Any) -> str:
    return NONE if value is None or value == "" else str(value)


# -- one-line observations ----------------------------------------------------------


def recorded(report: Any) -> None:
    """A ``RecordingReport`` stored in the ledger: its field and note outcomes; once per webhook, the
    time from the webhook's arrival to the CRM's answer when a value was written."""
    wrote = False
    for line in report.fields:
        outcome = str(line.outcome)
        FIELD_OUTCOMES.labels(_label(line.connection), _label(line.object), outcome).inc()
        wrote = wrote or outcome in ("written", "reverted")
    for note in report.notes:
        NOTE_OUTCOMES.labels(_label(note.connection), str(note.outcome)).inc()
    received = webhook_received_at.get()
    if wrote and received is not None:
        WEBHOOK_TO_WRITE_SECONDS.labels("webhook").observe(max(0.0, time.time() - received))
        webhook_received_at.set(None)  # one observation per webhook, however many reports its task records


def crm_request(connection: str, kind: str, status: int | str | None) -> None:
    """One HTTP request to a CRM; ``status`` None when no answer came (timeout, refused connection)."""
    CRM_REQUESTS.labels(_label(connection), kind if kind in CRM_KINDS else "other",
                        "error" if status is None else str(status)).inc()


def siro_request(status: int | None) -> None:
    SIRO_REQUESTS.labels("error" if status is None else str(status)).inc()


def webhook_delivery(answer: str) -> None:
    WEBHOOK_DELIVERIES.labels(answer).inc()


def task_seconds(task: str, seconds: float) -> None:
    TASK_SECONDS.labels(task).observe(seconds)


# -- gauges from the ledger ------------------------------------------------------------


class LedgerCollector:
    """``writeback_dead_letters``, ``writeback_pending_reviews`` and ``writeback_poll_lag_seconds``,
    read from the ledger at scrape time (``ledger``: a callable giving this process's ``Ledger``).

    A ledger that does not answer yields no gauge, plus ``writeback_ledger_up 0``, rather than failing
    the scrape: the counters still come through.
    """

    def __init__(self, ledger: Callable[[], Any], *, watermark: str = "poll",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._ledger = ledger
        self._watermark = watermark
        self._clock = clock

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("writeback_ledger_up", "1 when the ledger answered this scrape's queries.")
        try:
            dead, pending, mark = self._read()
        except Exception:  # noqa: BLE001 - any database failure: the scrape goes on without the gauges
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("writeback_dead_letters", "Recordings on the dead-letter list.", value=dead)
        yield GaugeMetricFamily("writeback_pending_reviews", "Proposals waiting for a person's review.",
                                value=pending)
        if mark is not None:
            lag = (self._clock() - mark).total_seconds()
            yield GaugeMetricFamily("writeback_poll_lag_seconds", "Now minus the polling watermark (the "
                                    "updatedAt of the newest recording polling has handed over).", value=lag)

    def _read(self) -> tuple[int, int, datetime | None]:
        from sqlalchemy import func, select

        from worker.ledger.schema import DeadLetter, Proposal, Watermark

        ledger = self._ledger()
        with ledger.engine.connect() as conn:
            dead = conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one()
            # ix_proposals_status covers it.
            pending = conn.execute(select(func.count()).select_from(Proposal)
                                   .where(Proposal.status == "pending")).scalar_one()
            mark = conn.execute(select(Watermark.value).where(Watermark.name == self._watermark)).scalar()
        return int(dead), int(pending), mark


# -- several processes, one scrape -------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The directory the processes share their values through, when multiprocess mode is on."""
    return os.environ.get(MULTIPROC_ENV) or None


def use_multiprocess_dir(path: str) -> None:
    """Count in ``path`` from now on, in this process and the processes it forks.

    Call before the first observation (a worker calls it at start, before its
    pool forks). Files left there by processes no longer alive are removed, so
    a restarted worker starts its counts at zero, as any restarted process does.
    """
    os.makedirs(path, exist_ok=True)
    os.environ[MULTIPROC_ENV] = path
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()
    for name in glob.glob(os.path.join(path, "*.db")):
        pid = os.path.basename(name).rsplit("_", 1)[-1].removesuffix(".db")
        if pid.isdigit() and not _alive(int(pid)):
            try:
                os.remove(name)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def registry(*collectors: Any) -> CollectorRegistry:
    """What a scrape reads: every process's values (multiprocess mode) or this process's, plus ``collectors``."""
    if multiprocess_dir() is None and not collectors:
        return REGISTRY
    scraped = CollectorRegistry(auto_describe=False)
    if multiprocess_dir() is not None:
        MultiProcessCollector(scraped)
    else:
        scraped.register(_Process(REGISTRY))
    for collector in collectors:
        scraped.register(collector)
    return scraped


class _Process:
    """This process's default registry, as one collector of another registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        yield from self._source.collect()


def exposition(scraped: CollectorRegistry | None = None) -> bytes:
    """The Prometheus text format of ``scraped`` (default: ``registry()``)."""
    return generate_latest(scraped if scraped is not None else registry())
