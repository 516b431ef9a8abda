"""Human-readable rendering of recording reports (``rich`` tables)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from worker.report import Outcome, RecordingReport, Status

_STYLE = {
    Outcome.WRITTEN: "green",
    Outcome.PLANNED: "cyan",
    Outcome.UNCHANGED: "dim",
    Outcome.FAILED: "bold red",
    Outcome.INVALID_VALUE: "red",
    Outcome.CONFLICT: "yellow",
}


def terminal(width: int = 160) -> Console:
    """The console of a command's output: ``width`` columns when it is not a terminal
    (logs and pipes), so tables are not wrapped to a guessed 80."""
    console = Console()
    if not console.is_terminal:
        console.width = width
    return console


def _cell(value: Any, limit: int = 40) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_table(report: RecordingReport, *, title: str | None = None) -> Table:
    """One recording's outcomes: a row per planned field."""
    if title is None:
        title = f"recording {report.recording_id}: {report.status}" + (f" ({report.reason})" if report.reason else "")
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("connection", "record", "field", "value", "previous", "outcome", "reason"):
        table.add_column(column, overflow="fold")
    for line in report.fields:
        shown = line.to_json()
        style = _STYLE.get(line.outcome, "")
        table.add_row(
            line.connection or "",
            f"{line.object or ''} {line.record_id or ''}".strip(),
            line.field or "",
            _cell(shown["value"]),
            _cell(shown["previous"]),
            f"[{style}]{line.outcome}[/]" if style else str(line.outcome),
            _cell(line.reason, 70),
        )
    return table


def render_report(console: Console, report: RecordingReport, *, dry_run: bool = False) -> None:
    title = f"recording {report.recording_id}: {report.status}" + (" (dry run)" if dry_run else "")
    if report.reason:
        title += f" ({report.reason})"
    if report.fields:
        console.print(report_table(report, title=title))
    else:
        console.print(title)
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(report.counts().items()))
    console.print(counts or "no fields planned")


def summarize(reports: Iterable[RecordingReport]) -> str:
    """``"2 conflict, 17 written, ..."``: every field outcome of ``reports``, counted."""
    tally: dict[str, int] = {}
    for report in reports:
        for outcome, count in report.counts().items():
            tally[outcome] = tally.get(outcome, 0) + count
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(tally.items()))


def report_from_ledger(ledger: Any, recording_id: str) -> RecordingReport:
    """The report of a recording's latest finished run, as the ledger recorded it
    (what a worker did, read back by the demo and by operators)."""
    runs = [run for run in ledger.runs(recording_id) if run.status != Status.RUNNING]
    if not runs:
        return RecordingReport(recording_id, Status.FAILED, reason="no finished run in the ledger")
    run = runs[0]
    lines = [
        row.line
        for row in reversed(ledger.attempts(recording_id))  # oldest first: the order they were planned
        if row.run_id == run.id
    ]
    return RecordingReport(recording_id, run.status, lines, reason=run.reason)
