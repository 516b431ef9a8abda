"""The Celery tasks: every trigger ends in the same pipeline.

* ``process_recording(recording_id)``: a webhook or ``writeback retry``;
  fetches the recording again (a webhook is a hint, never a source of values).
* ``process_page(recordings)``: one list page of ``poll`` or ``backfill``,
  carried in the message, written with batched CRM calls.
* ``poll()``: beat's pass over recently updated recordings; enqueues pages.

What happens to a failure:

* transient (429, 5xx, timeouts, Siro or the ledger unreachable, the soft
  time limit): the task is retried with exponential backoff and full jitter,
  at least as long as a ``Retry-After`` asked, for the recordings that need it
  only. A page's retry fetches those recordings again, so it never writes a
  snapshot older than what Siro now holds. After ``[retry] max_retries`` the
  recordings go on the dead-letter list (``writeback failed``).
* the CRM refused our credentials (``auth``) or Siro refused the token: on
  the dead-letter list at once, no retries spent.
* permanent (a value the CRM rejects, a missing record): recorded in the
  ledger with the CRM's reason; retrying would not help.

A worker killed mid-task leaves its message unacknowledged; the broker gives
it to another worker, which runs the pipeline again: the diff reads the CRM
first, so what the dead worker wrote is ``unchanged`` and nothing is written
twice.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Any

from celery import Task
from celery.exceptions import Reject, Retry
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_init,
    worker_shutdown,
)
from kombu.exceptions import KombuError, OperationalError

from worker import metrics
from worker.errors import (
    EXIT_USAGE,
    NEEDS_A_FIX,
    RETRY_LATER,
    BrokerUnavailable,
    ConfigError,
    Reason,
    TimeLimit,
    WritebackError,
)
from worker.ledger import LedgerUnavailable
from worker.limits.backoff import full_jitter
from worker.limits.locks import POLL_LOCK_KEY, Locks, LocksUnavailable
from worker.report import RecordingReport
from worker.runtime import Runtime, runtime
from worker.service.celery_app import app
from worker.siro.client import (
    RecordingNotFound,
    SiroAuthError,
    SiroError,
    SiroUnavailable,
)
from worker.siro.models import Recording

log = logging.getLogger(__name__)

MAX_RESENDS = 30  # a failed task sent again while the ledger is down: about half an hour with the defaults
_POLL_LOCK_KEY = POLL_LOCK_KEY


# -- enqueueing ------------------------------------------------------------------


def enqueue_recording(recording_id: str, trigger: str = "webhook") -> str:
    """Hand one recording to the workers; returns the task id. A webhook's arrival time travels in a
    header (``worker.metrics``: the webhook-to-write latency), kept by Celery across retries."""
    received = metrics.webhook_received_at.get()
    headers = {metrics.RECEIVED_AT_HEADER: received} if received is not None else None
    try:
        result = process_recording.apply_async(args=[recording_id], kwargs={"trigger": trigger}, retry=False,
                                               headers=headers)
    except (OperationalError, KombuError, OSError) as exc:
        raise BrokerUnavailable(f"the broker did not take the task: {type(exc).__name__}") from None
    return result.id


def page_message(recordings: Sequence[Recording]) -> list[dict[str, Any]]:
    """A page as it travels in a task message: the recordings' JSON as Siro sent it."""
    return [recording.model_dump(mode="json", by_alias=True) for recording in recordings]


def enqueue_page(recordings: Sequence[Recording], trigger: str = "poll") -> int:
    """Hand one list page to the workers; returns the number of tasks enqueued (0 or 1)."""
    if not recordings:
        return 0
    try:
        # kwargsrepr: task events (Flower) show the page's size, never the conversation values it carries.
        process_page.apply_async(kwargs={"recordings": page_message(recordings), "trigger": trigger}, retry=False,
                                 kwargsrepr=f"{{'recordings': <{len(recordings)} recordings>, 'trigger': {trigger!r}}}")
    except (OperationalError, KombuError, OSError) as exc:
        raise BrokerUnavailable(f"the broker did not take the page: {type(exc).__name__}") from None
    return 1


# -- tasks -------------------------------------------------------------------------


class WritebackTask(Task):
    """Nothing is lost when a task fails in a way our code never sees: the hard
    time limit (Celery kills the process and acknowledges the message) or an
    unexpected error. Its recordings go on the dead-letter list."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        ids = _recording_ids(args, kwargs)
        if not ids:
            return
        reason = Reason.TIME_LIMIT if isinstance(exc, TimeLimit) else Reason.TASK_FAILED
        rt = runtime()
        try:
            _bury(rt, ids, reason, exc, str(kwargs.get("trigger") or "unknown"), attempts=self.request.retries + 1)
        except LedgerUnavailable:
            # The ledger is down too: the task comes back later rather than being lost, a bounded number of times.
            resent = int(kwargs.get("resent") or 0)
            if resent >= MAX_RESENDS:
                log.critical("recording(s) %s: the ledger stayed unavailable; given up", ", ".join(ids))
                return
            log.warning("could not put %d recording(s) on the dead-letter list; the task is sent again", len(ids))
            try:
                self.apply_async(args=args, kwargs={**kwargs, "resent": resent + 1},
                                 countdown=rt.config.retry.max_s, retry=False)
            except Exception:
                log.critical("recording(s) %s could be neither dead-lettered nor sent again", ", ".join(ids))
        except Exception:
            log.exception("could not put recording(s) %s on the dead-letter list", ", ".join(ids))


def _recording_ids(args: Any, kwargs: Any) -> list[str]:
    args, kwargs = list(args or ()), dict(kwargs or {})
    if kwargs.get("recording_id") or (args and isinstance(args[0], str)):
        return [kwargs.get("recording_id") or args[0]]
    if kwargs.get("recording_ids"):
        return [str(i) for i in kwargs["recording_ids"]]
    page = kwargs.get("recordings") or (args[0] if args and isinstance(args[0], list) else [])
    return [str(raw["id"]) for raw in page if isinstance(raw, dict) and raw.get("id")]


@app.task(bind=True, base=WritebackTask, name="worker.tasks.process_recording", max_retries=None)
def process_recording(self: Task, recording_id: str, trigger: str = "webhook", resent: int = 0) -> dict[str, Any]:
    rt = runtime()
    retry = {"recording_id": recording_id, "trigger": trigger}
    with ExitStack() as held:
        try:
            busy = held.enter_context(
                _recording_locks(rt, [recording_id], wait_s=rt.config.worker.soft_time_limit_s / 3)
            )
        except LocksUnavailable as exc:
            _again(self, rt, [recording_id], exc, None, trigger, retry)
            return {"recordingId": recording_id, "status": "failed", "reason": Reason.RETRIES_EXHAUSTED}
        if busy:  # another task still writes this recording: come back when it is done
            _defer(self, rt, retry)
            return {"recordingId": recording_id, "status": "deferred", "reason": "locked"}
        try:
            report = rt.pipeline.sync(recording_id, trigger=trigger)
        except SiroAuthError as exc:
            _bury(rt, [recording_id], Reason.SIRO_AUTH, exc, trigger, attempts=self.request.retries + 1, task=self)
            return {"recordingId": recording_id, "status": "failed", "reason": Reason.SIRO_AUTH}
        except RETRY_LATER as exc:
            _again(self, rt, [recording_id], exc, getattr(exc, "retry_after", None), trigger, retry)
            return {"recordingId": recording_id, "status": "failed", "reason": Reason.RETRIES_EXHAUSTED}
        except ConfigError as exc:  # SIRO_API_URL is not Siro: replayable once fixed (writeback retry)
            _bury(rt, [recording_id], Reason.CONFIG, exc, trigger, attempts=self.request.retries + 1, task=self)
            return {"recordingId": recording_id, "status": "failed", "reason": Reason.CONFIG}
        except SiroError as exc:  # a 4xx or an unusable answer that retrying will not change: keep it visible
            _bury(rt, [recording_id], Reason.SIRO_ERROR, exc, trigger, attempts=self.request.retries + 1, task=self)
            return {"recordingId": recording_id, "status": "failed", "reason": Reason.SIRO_ERROR}
        _settle(self, rt, [report], trigger, lambda ids: retry)
    return _summary(report)


@app.task(bind=True, base=WritebackTask, name="worker.tasks.process_page", max_retries=None)
def process_page(
    self: Task,
    recordings: list[dict[str, Any]] | None = None,
    trigger: str = "poll",
    recording_ids: list[str] | None = None,
    resent: int = 0,
) -> dict[str, Any]:
    """Write a page carried in the message; a retry names only ``recording_ids`` and fetches them again."""
    rt = runtime()

    def retry(ids: list[str]) -> dict[str, Any]:
        return {"recording_ids": ids, "trigger": trigger}

    retry_after: float | None = None
    page = [] if recording_ids else _page(recordings or [])
    ids = list(recording_ids or [recording.id for recording in page])
    with ExitStack() as held:
        try:
            busy = held.enter_context(_recording_locks(rt, ids))
        except LocksUnavailable as exc:
            _again(self, rt, ids, exc, None, trigger, retry(ids))
            return {"recordings": len(ids), "statuses": {"failed": len(ids)}}
        if busy:
            # Another task is writing these right now: a later task fetches them again and writes them.
            _defer(self, rt, retry(list(busy)))
        unavailable: list[str] = []
        try:
            if recording_ids:
                mine = [i for i in recording_ids if i not in busy]
                reports, missing, retry_after = _fetch_and_process(rt, mine, trigger)
                unavailable += missing
            else:
                reports = rt.pipeline.process([r for r in page if r.id not in busy], trigger=trigger)
        except RETRY_LATER as exc:
            mine = [i for i in ids if i not in busy]
            _again(self, rt, mine, exc, None, trigger, retry(mine))
            return {"recordings": len(mine), "statuses": {"failed": len(mine)}}
        except (ConfigError, SiroAuthError) as exc:  # a person must fix something first: replayable then
            mine = [i for i in ids if i not in busy]
            reason = Reason.SIRO_AUTH if isinstance(exc, SiroAuthError) else Reason.CONFIG
            _bury(rt, mine, reason, exc, trigger, attempts=self.request.retries + 1, task=self)
            return {"recordings": len(mine), "statuses": {"failed": len(mine)}}
        _settle(self, rt, reports, trigger, retry, unavailable=unavailable, retry_after=retry_after)
    return {"recordings": len(reports), "statuses": _tally(report.status for report in reports)}


def _page(recordings: Sequence[Any]) -> list[Recording]:
    page = []
    for raw in recordings:
        try:
            page.append(Recording.model_validate(raw))
        except ValueError as exc:  # tolerant models: only a recording without an id lands here
            log.error("page task: skipping an unusable recording: %s", _one_line(str(exc)))
    return page


@app.task(bind=True, name="worker.tasks.poll")
def poll(self: Task) -> dict[str, Any]:
    """One polling pass; skipped while another pass holds the lock."""
    from worker.service.polling import poll_pass

    rt = runtime()
    # One pass at a time across the deployment: a slow pass must not overlap the next.
    with _locks(rt, [_POLL_LOCK_KEY]) as busy:
        if busy:
            log.info("poll: another pass is running; this one is skipped")
            return {"skipped": "another pass is running"}
        try:
            result = poll_pass(rt.siro, rt.ledger, rt.config.poll, lambda page: enqueue_page(page, "poll"))
        except WritebackError as exc:
            # The next scheduled pass starts again from the watermark: nothing is lost.
            log.error("poll: the pass stopped (%s); the next pass resumes from the watermark", _one_line(exc))
            return {"error": _one_line(exc)}
    log.info("poll: %s", result.to_json())
    return result.to_json()


# -- outcomes ------------------------------------------------------------------------


def _fetch_and_process(
    rt: Runtime, recording_ids: Sequence[str], trigger: str
) -> tuple[list[RecordingReport], list[str], float | None]:
    """Fetch recordings again and write them as one batch; the ids Siro could not serve come back."""
    fresh: list[Recording] = []
    reports: list[RecordingReport] = []
    unavailable: list[str] = []
    retry_after: float | None = None
    for recording_id in recording_ids:
        try:
            fresh.append(rt.siro.get_recording(recording_id, summary=rt.config.wants_summaries))
        except RecordingNotFound:
            reports.append(rt.pipeline.sync(recording_id, trigger=trigger))  # records not_found
        except SiroUnavailable as exc:
            unavailable.append(recording_id)
            if exc.retry_after is not None:
                retry_after = max(retry_after or 0.0, exc.retry_after)
    reports.extend(rt.pipeline.process(fresh, trigger=trigger))
    return reports, unavailable, retry_after


def _settle(
    self: Task,
    rt: Runtime,
    reports: Sequence[RecordingReport],
    trigger: str,
    retry_kwargs: Any,
    *,
    unavailable: Sequence[str] = (),
    retry_after: float | None = None,
) -> None:
    """Dead-letter, retry or clear each recording by its report (``unavailable``: Siro did not serve them)."""
    waiting: list[str] = list(unavailable)
    reasons: set[str] = {"Siro unavailable"} if unavailable else set()
    connections = {report.recording_id: report.connection for report in reports}
    for report in reports:
        if report.code in NEEDS_A_FIX:
            error = "the CRM rejected the credentials" if report.code is Reason.AUTH else report.reason or ""
            _bury(rt, [report.recording_id], report.code, error, trigger, attempts=self.request.retries + 1,
                  task=self, connections=connections)
        elif report.transient:
            waiting.append(report.recording_id)
            reasons.update(line.reason for line in report.fields if line.reason and line.outcome == "failed")
            if report.retry_after is not None:
                retry_after = max(retry_after or 0.0, report.retry_after)
        elif report.code is not Reason.STALE:
            # Settled (an older snapshot settles nothing: the newer version's fate stands).
            _clear(rt, report.recording_id)
    if waiting:
        error = "; ".join(sorted(reasons))[:500] or "transient failure"
        _again(self, rt, waiting, error, retry_after, trigger, retry_kwargs(waiting), connections=connections)


def _again(
    self: Task,
    rt: Runtime,
    recording_ids: Sequence[str],
    error: BaseException | str,
    retry_after: float | None,
    trigger: str,
    kwargs: dict[str, Any],
    *,
    connections: Mapping[str, str | None] | None = None,
) -> None:
    """Retry the task for ``recording_ids`` later (raises ``Retry``), or, when its
    retries are spent, put them on the dead-letter list (returns)."""
    attempts = self.request.retries
    policy = rt.config.retry
    if attempts >= policy.max_retries:
        _bury(rt, recording_ids, Reason.RETRIES_EXHAUSTED, error, trigger, attempts=attempts + 1, task=self,
              connections=connections)
        return
    # Capped at max_s, Retry-After included: a countdown past the visibility timeout would run twice.
    countdown = full_jitter(attempts, policy.base_s, policy.max_s, retry_after)
    log.warning(
        "%s: %d recording(s) failed transiently (%s); retry %d/%d in %.1fs",
        self.name, len(recording_ids), _one_line(error), attempts + 1, policy.max_retries, countdown,
    )
    try:
        raise self.retry(kwargs=kwargs, countdown=countdown)
    except Retry:
        raise
    except Exception as exc:  # the broker did not take the retry: give the message back instead
        log.error("%s: could not schedule the retry (%s); the task goes back to the broker", self.name, exc)
        raise Reject(str(exc), requeue=True) from None


def _defer(self: Task, rt: Runtime, kwargs: dict[str, Any]) -> None:
    """Run again later for recordings another task holds, without spending a retry:
    nothing failed, and the holder's lock ends with its task."""
    countdown = random.uniform(0.5, max(0.5, min(rt.config.worker.soft_time_limit_s, rt.config.retry.max_s)))
    try:
        self.apply_async(kwargs=kwargs, countdown=countdown, retry=False)
    except Exception as exc:  # the broker did not take it: give the whole message back instead
        raise Reject(f"could not defer: {type(exc).__name__}", requeue=True) from None


def _bury(
    rt: Runtime,
    recording_ids: Sequence[str],
    reason: str,
    error: BaseException | str,
    trigger: str,
    *,
    attempts: int,
    task: Task | None = None,
    connections: Mapping[str, str | None] | None = None,
) -> None:
    """``connections``: the connection each recording failed on, when known (``writeback failed`` shows it)."""
    for recording_id in recording_ids:
        log.error("recording %s goes on the dead-letter list (%s): %s", recording_id, reason, _one_line(error))
        try:
            rt.ledger.add_dead_letter(recording_id, reason=reason, error=_one_line(error), trigger=trigger,
                                      attempts=attempts, connection=(connections or {}).get(recording_id))
        except LedgerUnavailable:
            if task is None:
                raise
            # Nothing may be lost, and an instant requeue would spin on Siro: the
            # whole task runs again after the longest retry wait.
            log.warning("the ledger is unavailable; %s runs again in %gs", task.name, rt.config.retry.max_s)
            raise task.retry(countdown=rt.config.retry.max_s) from None


def _clear(rt: Runtime, recording_id: str) -> None:
    try:
        rt.ledger.remove_dead_letter(recording_id)
    except LedgerUnavailable:
        log.warning("could not clear recording %s from the dead-letter list", recording_id)


def _one_line(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return " ".join(str(text).split())[:1000]


def _summary(report: RecordingReport) -> dict[str, Any]:
    return {"recordingId": report.recording_id, "status": report.status, "reason": report.reason,
            "outcomes": report.counts()}


def _tally(values: Iterator[str] | Sequence[str]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for value in values:
        tally[value] = tally.get(value, 0) + 1
    return tally


def _locks(rt: Runtime, keys: Sequence[str], *, wait_s: float = 0.0) -> AbstractContextManager[list[str]]:
    """Hold each key for this task (``worker.limits.locks``); yields the keys another task still holds."""
    return Locks.on(rt.redis, time_limit_s=rt.config.worker.time_limit_s).hold(keys, wait_s=wait_s)


def _recording_locks(
    rt: Runtime, recording_ids: Sequence[str], *, wait_s: float = 0.0
) -> AbstractContextManager[list[str]]:
    """Hold each recording for this task; yields the ids another task holds (left alone)."""
    locks = Locks.on(rt.redis, time_limit_s=rt.config.worker.time_limit_s)
    return locks.hold_recordings(recording_ids, wait_s=wait_s)


# -- process hooks ---------------------------------------------------------------------


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: Any) -> None:
    """The worker's log handlers get the one redaction filter (``worker.logs``), tracebacks included."""
    from worker.logs import install, redaction_for

    try:
        redactor = redaction_for(runtime().settings)
    except Exception:  # a config error stops the worker at worker_init, with its own message
        redactor = redaction_for(None)  # meanwhile the secret path and Bearer tokens are still masked
    install(redactor, logger.handlers)


@worker_init.connect
def _check_config(**_: Any) -> None:
    """A worker that cannot work does not start: one line, exit 2.

    Fail closed: a misspelt option, no ``[[connections]]``, no Siro token, a
    ledger URL it cannot use (its driver missing) would otherwise fail every
    task while the worker looks healthy. Its tasks stay in the broker and are
    taken once the config is fixed and the worker restarts. A ledger that is
    only down for now does not stop it: its tasks retry.
    """
    try:
        runtime().pipeline  # noqa: B018 - builds the connections, the Siro client and the ledger
    except ConfigError as exc:
        print(f"writeback: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except LedgerUnavailable as exc:
        log.warning("the ledger does not answer yet (%s); tasks retry until it does", _one_line(exc))


@worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    runtime().close()
