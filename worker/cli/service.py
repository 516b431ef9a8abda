"""The CLI commands of the worker service: poll, backfill, failed, retry, webhook, ready.

``worker/cli/main.py`` parses the command line and maps errors to exit codes; the
commands here talk to the broker, the ledger and Siro through a ``Runtime``.
Pages go to the workers as ``process_page`` tasks, or, with ``--in-process``,
through the pipeline right here (no broker needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.cli.exits import EXIT_FAILED, EXIT_OK
from worker.cli.render import render_report, summarize, terminal
from worker.errors import (
    NEEDS_A_FIX,
    BrokerUnavailable,
    ConfigError,
    Reason,
    WritebackError,
)
from worker.report import RecordingReport
from worker.runtime import Runtime
from worker.settings import Settings
from worker.siro.models import Recording


def run(args: argparse.Namespace, settings: Settings) -> int:
    from worker.service.celery_app import configure

    configure(settings)
    rt = Runtime(settings, redis_optional=args.command in ("poll", "backfill"), in_task=False)
    try:
        return _COMMANDS[args.command](args, rt)
    finally:
        rt.close()


class _Pages:
    """Where a pass's pages go: the queue, or the pipeline in this process."""

    def __init__(self, rt: Runtime, trigger: str, *, in_process: bool, dry_run: bool = False) -> None:
        self.rt = rt
        self.trigger = trigger
        self.in_process = in_process or dry_run
        self.dry_run = dry_run
        self.reports: list[RecordingReport] = []

    def __call__(self, page: Sequence[Recording]) -> int:
        if self.in_process:
            reports = self.rt.pipeline.process(page, dry_run=self.dry_run, trigger=self.trigger)
            self.reports.extend(reports)
            if not self.dry_run:
                self._dead_letter(reports)
            return 0
        from worker.service.tasks import enqueue_page

        try:
            return enqueue_page(page, self.trigger)
        except BrokerUnavailable as exc:
            raise WritebackError(
                f"{exc} (WRITEBACK_BROKER_URL); the watermark stays at the last page enqueued. "
                "--in-process runs the pages here"
            ) from None

    def _dead_letter(self, reports: Sequence[RecordingReport]) -> None:
        """No worker will retry a page run here, and the watermark moves on:
        what failed for a reason that may pass goes on the dead-letter list."""
        for report in reports:
            if report.code in NEEDS_A_FIX or report.transient:
                reason = report.code if report.code in NEEDS_A_FIX else Reason.RETRIES_EXHAUSTED
                errors = sorted({line.reason for line in report.fields if line.outcome == "failed" and line.reason})
                self.rt.ledger.add_dead_letter(report.recording_id, reason=reason,
                                               error="; ".join(errors)[:500] or reason, trigger=self.trigger,
                                               attempts=1, connection=report.connection)

    def summary(self) -> str:
        return summarize(self.reports) or "nothing planned"

    @property
    def failed(self) -> bool:
        return any(report.has_failures for report in self.reports)


def _poll(args: argparse.Namespace, rt: Runtime) -> int:
    from worker.service.polling import poll_pass

    pages = _Pages(rt, "poll", in_process=args.in_process)
    result = poll_pass(rt.siro, rt.ledger, rt.config.poll, pages)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        where = f"written here: {pages.summary()}" if pages.in_process else f"{result.enqueued} page task(s) enqueued"
        mark = result.watermark.isoformat() if result.watermark else "none yet"
        print(f"poll: {result.recordings} recording(s) in {result.pages} page(s); {where}; watermark {mark}")
    return EXIT_FAILED if pages.failed else EXIT_OK


def _backfill(args: argparse.Namespace, rt: Runtime) -> int:
    from worker.service.polling import backfill

    until = args.until or datetime.now(UTC)
    if args.since >= until:
        raise ConfigError("backfill: --since must be before --until")
    pages = _Pages(rt, "backfill", in_process=args.in_process, dry_run=args.dry_run)
    console = Console(stderr=True)
    with Progress(
        TextColumn("backfill"), BarColumn(), TextColumn("{task.fields[pages]} pages, {task.completed:.0f} recordings"),
        TimeElapsedColumn(), console=console, transient=True, disable=args.json or not console.is_terminal,
    ) as progress:
        task = progress.add_task("backfill", total=None, pages=0)

        def on_page(pages_done: int, recordings_done: int) -> None:
            progress.update(task, completed=recordings_done, pages=pages_done)

        result = backfill(rt.siro, pages, since=args.since, until=until, page_size=rt.config.poll.page_size,
                          on_page=on_page)
    body = result.to_json()
    body.pop("watermark", None)  # backfill never moves it
    _show_reports(pages.reports, as_json=args.json, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(body))
    else:
        if pages.in_process:
            verb = "planned (dry run)" if args.dry_run else "written here"
            done = f"{verb}: {pages.summary()}"
        else:
            done = f"{result.enqueued} page task(s) enqueued"
        print(f"backfill {args.since.isoformat()} .. {until.isoformat()}: "
              f"{result.recordings} recording(s) in {result.pages} page(s); {done}")
    return EXIT_FAILED if pages.failed else EXIT_OK


def _show_reports(reports: Sequence[RecordingReport], *, as_json: bool, dry_run: bool) -> None:
    """What a pass written (or planned) here did, recording by recording: a table each, or a JSON
    report a line (the pass's own summary object comes last)."""
    if as_json:
        for report in reports:
            print(json.dumps(report.to_json(), ensure_ascii=False))
        return
    console = terminal()
    for report in reports:
        render_report(console, report, dry_run=dry_run)


def _failed(args: argparse.Namespace, rt: Runtime) -> int:
    letters = rt.ledger.dead_letters()
    if args.json:
        print(json.dumps([row.to_json() for row in letters]))
        return EXIT_OK
    if not letters:
        print("the dead-letter list is empty")
        return EXIT_OK
    table = Table("recording", "connection", "reason", "attempts", "failures", "last failed", "trigger", "error")
    for row in letters:
        table.add_row(row.recording_id, row.connection or "", row.reason, str(row.attempts), str(row.failures),
                      _jsonable(row.last_failed_at), row.trigger, row.error or "")
    console = Console()
    if not console.is_terminal:
        console.width = 200
    console.print(table)
    return EXIT_OK


def _retry(args: argparse.Namespace, rt: Runtime) -> int:
    if args.all:
        ids = [row.recording_id for row in rt.ledger.dead_letters()]
        if not ids:
            print("the dead-letter list is empty")
            return EXIT_OK
    else:
        ids = [args.recording_id]
        if rt.ledger.dead_letter(args.recording_id) is None:
            print(f"note: {args.recording_id} is not on the dead-letter list; enqueueing it anyway", file=sys.stderr)
    for recording_id in ids:
        task_id = retry_dead_letter(rt, recording_id)
        print(f"{recording_id}: enqueued (task {task_id})")
    return EXIT_OK


def retry_dead_letter(rt: Runtime, recording_id: str) -> str:
    """Re-enqueue one recording (``writeback retry``, the console's Retry); the task id.

    Off the list before a worker can fail it again (and put it back), so that a
    new failure is never erased; back on it if the broker refuses (``WritebackError``).
    """
    from worker.service.tasks import enqueue_recording

    row = rt.ledger.dead_letter(recording_id)
    rt.ledger.remove_dead_letter(recording_id)
    try:
        return enqueue_recording(recording_id, trigger="retry")
    except BrokerUnavailable as exc:
        if row is not None:
            rt.ledger.add_dead_letter(recording_id, reason=row.reason, error=row.error,
                                      trigger=row.trigger, attempts=row.attempts, connection=row.connection)
        raise WritebackError(f"{exc} (WRITEBACK_BROKER_URL)") from None


def _webhook(args: argparse.Namespace, rt: Runtime) -> int:
    from worker.service.webhook import serve

    app = webhook_app(rt)
    serve(app, args.host, args.port)
    return EXIT_OK


def webhook_app(rt: Runtime):  # noqa: ANN201 - a FastAPI app
    """The webhook app wired to the broker, the shared dedupe store and the health checks."""
    from worker.limits.store import store_for
    from worker.service import tasks, webhook
    from worker.service.dedupe import Dedupe
    from worker.service.health import readiness

    if rt.settings.webhook_secret is None:
        raise ConfigError(
            "WRITEBACK_WEBHOOK_SECRET is not set (nor WRITEBACK_WEBHOOK_SECRET_FILE): "
            "the webhook app does not start without a secret"
        )

    return webhook.create_app(
        secret=rt.settings.webhook_secret.get_secret_value(),
        enqueue=lambda recording_id: tasks.enqueue_recording(recording_id, trigger="webhook"),
        dedupe=Dedupe(store_for(rt.redis)),
        ready=lambda: readiness(rt),
    )


def _ready(args: argparse.Namespace, rt: Runtime) -> int:
    from worker.service.health import readiness

    checks = readiness(rt)
    for name, problem in checks.items():
        print(f"{name}: {'ok' if problem is None else problem}")
    return EXIT_OK if all(problem is None for problem in checks.values()) else EXIT_FAILED


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


_COMMANDS = {
    "poll": _poll,
    "backfill": _backfill,
    "failed": _failed,
    "retry": _retry,
    "webhook": _webhook,
    "ready": _ready,
}
