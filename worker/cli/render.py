"""Human-readable rendering of recording reports (``rich`` tables), readable from 80 columns up.

A report's table groups its fields by CRM record: a row naming the record
(object and id) heads that record's fields, and the fields sent to no record
(not linked, no model) come last, named ``Object.Field``. ``GroupedTable``
lays out any such rows under headings (``writeback history`` heads them by
run) for the width it is printed at: from ``WIDE`` columns
on, field, extraction, value, previous, outcome and reason each have a
column (when that splits no word); below, three columns stack them (the
field over the extraction it came from, the value over the CRM's previous
one, the outcome over its reason). Column widths never split a word that
fits a column (record ids, field names, an id inside a reason); values and
reasons wrap onto more lines, never cut. ``--json`` prints the same text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from worker.report import (
    FieldReport,
    NoteOutcome,
    NoteReport,
    Outcome,
    RecordingReport,
    Status,
)

_STYLE = {
    Outcome.WRITTEN: "green",
    Outcome.PLANNED: "cyan",
    Outcome.UNCHANGED: "dim",
    Outcome.FAILED: "bold red",
    Outcome.INVALID_VALUE: "red",
    Outcome.CONFLICT: "yellow",
    Outcome.REVERTED: "magenta",
    Outcome.PENDING_REVIEW: "yellow",
}

WIDE = 140  # from this many columns on, a column each for extraction, previous and reason (when they fit)
_LONGEST_WORD = 40  # a longer word (a URL in a value) may be folded rather than widen its column


def terminal(width: int = 160) -> Console:
    """The console of a command's output. When it is not a terminal (logs and pipes), ``width``
    columns, so tables are not wrapped to a guessed 80, unless ``COLUMNS`` says otherwise."""
    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = width
    return console


def show(value: Any) -> str:
    """A value as the table shows it: text as it is, anything else as JSON, nothing for null."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


# -- the table ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[FieldReport, str], Text]  # (line, its field's name as shown) -> the cell
    weight: float = 1.0  # prose (values, reasons) gets more of the width when it is short


def _outcome(line: FieldReport) -> Text:
    return Text(str(line.outcome), style=_STYLE.get(line.outcome, ""))


def _stacked(first: Text, second: str, prefix: str = "", style: str = "dim") -> Text:
    """``first``, and ``second`` (when there is one) on the line below it."""
    if not second:
        return first
    return Text.assemble(first, "\n", (prefix + second, style))


def _previous(line: FieldReport) -> str:
    """The CRM's value before, when it tells something (an unchanged field held the same value)."""
    return "" if line.outcome == Outcome.UNCHANGED else show(line.to_json()["previous"])


WIDE_COLUMNS = (
    _Column("field", lambda line, name: Text(name)),
    _Column("extraction", lambda line, name: Text(line.extraction or "")),
    _Column("value", lambda line, name: Text(show(line.to_json()["value"])), 1.25),
    _Column("previous", lambda line, name: Text(_previous(line))),
    _Column("outcome", lambda line, name: _outcome(line)),
    _Column("reason", lambda line, name: Text(line.reason or ""), 1.5),
)
NARROW_COLUMNS = (
    _Column("field / extraction", lambda line, name: _stacked(Text(name), line.extraction or "", "from ")),
    _Column("value / previous", lambda line, name: _stacked(Text(show(line.to_json()["value"])),
                                                              _previous(line), "was "), 1.25),
    _Column("outcome / reason", lambda line, name: _stacked(_outcome(line), line.reason or "", style=""), 1.5),
)


class GroupedTable:
    """Rows under headings (a CRM record, a run) in the report's columns, laid out for the width
    it is printed at (see the module). ``rows_for(columns)`` gives the rows for a column set."""

    def __init__(self, rows_for: Callable[[tuple[_Column, ...]], Iterable[Row]], title: str | None = None) -> None:
        self.rows_for = rows_for
        self.title = title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.table(options.max_width))

    def table(self, width: int) -> Table:
        """The wide layout when it fits ``width`` without splitting a word, else the narrow one."""
        for columns in (WIDE_COLUMNS, NARROW_COLUMNS) if width >= WIDE else (NARROW_COLUMNS,):
            rows = list(self.rows_for(columns))
            available = width - 3 * len(columns) - 1  # a border left of each column and one at the end; padding
            natural, shortest = _measure(columns, rows)
            if columns is NARROW_COLUMNS or sum(shortest) <= available:
                break
        # Titles carry reasons (text from a CRM, a config entry): never read as rich markup.
        table = Table(title=Text(self.title) if self.title else None, title_justify="left", expand=False)
        widths = fit(natural, shortest, available, [column.weight for column in columns])
        for column, column_width in zip(columns, widths):
            table.add_column(column.header, width=column_width, overflow="fold")
        for row in rows:
            table.add_row(*row.cells, end_section=row.last)
        return table


@dataclass(frozen=True)
class Row:
    cells: list[Text]
    last: bool = False  # the last row of its record
    heading: bool = False  # a record's heading: it may wrap between object and id


def report_rows(lines: list[FieldReport], columns: tuple[_Column, ...], *, show_connection: bool) -> Iterator[Row]:
    """A record's heading, then a row per field sent to it; the fields sent to no record last."""
    for (connection, object_name, record_id), group in _by_record(lines):
        if record_id is None:
            heading = Text("(no record)", style="italic")
        else:
            heading = Text(f"{object_name or ''} {record_id}".strip(), style="bold")
        if show_connection:
            heading.append(f" ({connection or 'no connection'})", style="dim")
        yield Row([heading, *(Text() for _ in columns[1:])], heading=True)
        for index, line in enumerate(group):
            name = line.field or ""
            if record_id is None and line.object:
                name = f"{line.object}.{name}"
            yield Row([column.cell(line, name) for column in columns], last=index == len(group) - 1)


def _by_record(lines: Iterable[FieldReport]) -> list[tuple[tuple[Any, Any, Any], list[FieldReport]]]:
    """Lines grouped by (connection, object, record id) in the order first planned; the lines
    sent to no record last, as one group."""
    groups: dict[tuple[Any, Any, Any], list[FieldReport]] = {}
    unsent: list[FieldReport] = []
    for line in lines:
        if line.record_id is None:
            unsent.append(line)
        else:
            groups.setdefault((line.connection, line.object, line.record_id), []).append(line)
    ordered = list(groups.items())
    if unsent:
        connections = {line.connection for line in unsent}
        ordered.append(((connections.pop() if len(connections) == 1 else None, None, None), unsent))
    return ordered


def _measure(columns: tuple[_Column, ...], rows: list[Row]) -> tuple[list[int], list[int]]:
    """Each column's natural width (unwrapped; headings wrap between their words, never inside
    one) and its shortest: the width under which it would split a word (up to ``_LONGEST_WORD``:
    a longer one may fold)."""
    natural, shortest = [], []
    for index, column in enumerate(columns):
        cells = [Text(column.header), *(row.cells[index] for row in rows)]
        unwrapped = [Text(column.header), *(row.cells[index] for row in rows if not row.heading)]
        words = [min(len(word), _LONGEST_WORD) for cell in cells for word in cell.plain.split()]
        longest_word = max(words, default=1) or 1
        lines = max((len(part) for cell in unwrapped for part in cell.plain.split("\n")), default=1) or 1
        natural.append(max(lines, longest_word))
        shortest.append(longest_word)
    return natural, shortest


def fit(natural: list[int], shortest: list[int], available: int, weights: list[float] | None = None) -> list[int]:
    """Column widths within ``available``: each its natural width when all fit; else every column
    narrower than a common cap (times its weight: prose gets more) keeps its width, the others
    take the cap, none below its ``shortest``; when even those do not fit, all shrink in proportion."""
    if sum(natural) <= available:
        return list(natural)
    if sum(shortest) > available:
        total = sum(shortest)
        return [max(1, width * available // total) for width in shortest]
    weights = weights or [1.0] * len(natural)

    def capped(cap: int) -> list[int]:
        return [max(s, min(n, int(cap * w))) for n, s, w in zip(natural, shortest, weights)]

    low, high = 0, max(natural) * 2
    while low < high:  # the highest cap at which the columns fit
        mid = (low + high + 1) // 2
        low, high = (mid, high) if sum(capped(mid)) <= available else (low, mid - 1)
    widths = capped(low)
    spare = available - sum(widths)
    for index in sorted(range(len(widths)), key=lambda i: -weights[i]):  # what the cap left over
        extra = min(spare, natural[index] - widths[index])
        widths[index] += extra
        spare -= extra
    return widths


def report_table(report: RecordingReport, *, title: str | None = None) -> GroupedTable:
    """One recording's outcomes: a heading row per CRM record, a row per planned field."""
    if title is None:
        title = f"recording {report.recording_id}: {report.status}" + (f" ({report.reason})" if report.reason else "")
    connections = {line.connection for line in report.fields}
    title += f" · {next(iter(connections))}" if len(connections) == 1 and None not in connections else ""
    return GroupedTable(partial(report_rows, report.fields, show_connection=len(connections) > 1), title)


def render_report(console: Console, report: RecordingReport, *, dry_run: bool = False) -> None:
    title = f"recording {report.recording_id}: {report.status}" + (" (dry run)" if dry_run else "")
    if report.reason:
        title += f" ({report.reason})"
    if report.fields:
        console.print(report_table(report, title=title))
    else:
        console.print(Text(title))
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(report.counts().items()))
    console.print(Text(counts or "no fields planned"))
    for line in note_lines(report.notes):
        console.print(line)


def note_lines(notes: Iterable[NoteReport]) -> list[Text]:
    """One line per summary note: ``note created 069… on Opportunity 006…, Contact 003… · sf``."""
    lines = []
    for note in notes:
        text = Text("note ")
        text.append(str(note.outcome), style=_NOTE_STYLES.get(note.outcome, ""))
        if note.note_id:
            text.append(f" {note.note_id}")
        if note.attached_to:
            text.append(" on " + ", ".join(f"{obj} {record_id}" for obj, record_id in note.attached_to))
        text.append(f" · {note.connection}", style="dim")
        if note.reason:
            text.append(f" ({note.reason})", style="dim")
        lines.append(text)
    return lines


_NOTE_STYLES = {NoteOutcome.CREATED: "green", NoteOutcome.UPDATED: "green", NoteOutcome.FAILED: "red",
                NoteOutcome.PLANNED: "cyan"}


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
    notes = ledger.note_lines(recording_id).get(run.id, [])
    return RecordingReport(recording_id, run.status, lines, reason=run.reason, notes=notes)
