"""``writeback history``: every value the writer wrote or meant to, and why (DESIGN §6).

* ``writeback history RECORDING_ID [--json]``: every run of the recording,
  newest first, each with its fields in the order they were recorded (the
  sync report's table per run, titled with the run's id, trigger, start and
  status). ``--json``: ``{"recordingId", "runs": [{"runId", "trigger",
  "startedAt", "status", "fields": [...]}]}`` (a run's ``reason`` too, when
  it has one, as in the sync report). A recording the ledger never saw has
  ``runs: []``, exit 0.
* ``writeback history --record CONNECTION:OBJECT:ID [--field F] [--json]``:
  every outcome recorded on one CRM record by any recording, newest first;
  with ``--field``, that field's only (any case). The table groups them by
  run (when, which recording, its trigger). ``--json``: ``{"record":
  {"connection", "object", "recordId"}, "fields": [<field objects +
  "recordingId", "trigger", "at">]}``.

``--record`` is split on its *last two* colons: CRM object names and record
ids never contain one, a connection's ``name`` may (``eu:sf:Account:001...``
is connection ``eu:sf``). Anything but three non-empty parts, ``--field``
without ``--record``, or an empty id is a usage error: one line, exit 2.
Times are UTC. Only the ledger is read; no CRM or Siro call is made.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from rich.console import Console
from rich.text import Text

from worker.cli.exits import EXIT_OK, EXIT_USAGE
from worker.cli.render import GroupedTable, Row, note_lines, report_rows, terminal
from worker.ledger.rows import RecordHistoryRow, RunHistory
from worker.settings import Settings

MAX_ID = 255  # the ledger's column width: a longer id cannot be in it


@dataclass(frozen=True)
class RecordRef:
    """One CRM record, as ``--record`` names it."""

    connection: str
    object: str
    record_id: str

    def __str__(self) -> str:
        return f"{self.connection}:{self.object}:{self.record_id}"

    def to_json(self) -> dict[str, str]:
        return {"connection": self.connection, "object": self.object, "recordId": self.record_id}


class UsageError(ValueError):
    """A malformed command line, said in one line."""


def parse_record(text: str) -> RecordRef:
    """``CONNECTION:OBJECT:ID``, split on the last two colons (a connection's name may hold one)."""
    parts = [part.strip() for part in text.rsplit(":", 2)]
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"--record takes CONNECTION:OBJECT:ID (three non-empty parts), not {text!r}")
    if any(len(part) > MAX_ID for part in parts):
        raise UsageError(f"--record: each part is at most {MAX_ID} characters")
    return RecordRef(*parts)


def run(args: Any, settings: Settings) -> int:
    try:
        record, field = _target(args)
    except UsageError as exc:
        print(f"writeback: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from worker.runtime import Runtime

    rt = Runtime(settings, in_task=False)
    try:
        if record is None:
            recording_id = args.recording_id.strip()
            _print_runs(recording_id, rt.ledger.history(recording_id), as_json=args.json)
        else:
            entries = rt.ledger.record_history(record.connection, record.object, record.record_id, field)
            _print_record(record, field, entries, as_json=args.json)
    finally:
        rt.close()
    return EXIT_OK


def _target(args: Any) -> tuple[RecordRef | None, str | None]:
    """The record and field asked for (no record: ``args.recording_id``'s history)."""
    field = args.field
    if field is not None and (not field.strip() or len(field) > MAX_ID):
        raise UsageError(f"--field takes a field name, not {field!r}")
    if args.record is None:
        if field is not None:
            raise UsageError("--field goes with --record CONNECTION:OBJECT:ID")
        if not args.recording_id.strip() or len(args.recording_id) > MAX_ID:
            raise UsageError(f"not a recording id: {args.recording_id!r}")
        return None, None
    return parse_record(args.record), field.strip() if field else None


def when(at: datetime) -> str:
    """A ledger time as the tables show it (UTC, to the second; the titles say UTC)."""
    return at.strftime("%Y-%m-%d %H:%M:%S")


# -- by recording ------------------------------------------------------------------


def _print_runs(recording_id: str, runs: list[RunHistory], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"recordingId": recording_id, "runs": [run.to_json() for run in runs]},
                         ensure_ascii=False))
    else:
        render_runs(terminal(), recording_id, runs)


def render_runs(console: Console, recording_id: str, runs: list[RunHistory]) -> None:
    """A recording's runs, newest first: a title line per run, then its fields as the sync report's table."""
    if not runs:
        console.print(Text(f"recording {recording_id}: no runs in the ledger"))
        return
    count = f"{len(runs)} run{'s' * (len(runs) != 1)}"
    console.print(Text(f"recording {recording_id}: {count}, newest first (times UTC)", style="bold"))
    for entry in runs:
        run, lines = entry.run, [attempt.line for attempt in entry.attempts]
        connections = {line.connection for line in lines}
        title = f"run {run.id} · {run.trigger} · {when(run.started_at)} · {run.status}"
        title += " (dry run)" * run.dry_run + (f" ({run.reason})" if run.reason else "")
        title += f" · {next(iter(connections))}" if len(connections) == 1 and None not in connections else ""
        console.print()
        console.print(Text(title + ("" if lines else " · no fields")))
        if lines:  # the sync report's rows: a heading per CRM record, a row per field
            console.print(GroupedTable(partial(report_rows, lines, show_connection=len(connections) > 1)))
        for line in note_lines(entry.notes):
            console.print(line)


# -- by CRM record -----------------------------------------------------------------


def _print_record(record: RecordRef, field: str | None, entries: list[RecordHistoryRow], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"record": record.to_json(), "fields": [entry.to_json() for entry in entries]},
                         ensure_ascii=False))
        return
    what = f"{record}" + (f" · {field}" if field else "")
    console = terminal()
    if not entries:
        console.print(Text(f"{what}: no outcomes recorded"))
        return
    count = f"{len(entries)} outcome{'s' * (len(entries) != 1)}"
    console.print(Text(f"{what}: {count}, newest first (times UTC)", style="bold"))
    console.print(GroupedTable(partial(_record_rows, entries)))


def _record_rows(entries: list[RecordHistoryRow], columns: tuple[Any, ...]) -> Iterator[Row]:
    """Per run (consecutive entries of one run): a heading (when, which recording, its trigger),
    then a row per field."""
    groups: list[list[RecordHistoryRow]] = []
    for entry in entries:
        if groups and groups[-1][0].attempt.run_id == entry.attempt.run_id:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    for group in groups:
        first = group[0]
        # Spaces only: at 80 columns it wraps to the time, the recording, the trigger.
        heading = Text.assemble((when(first.at), "bold"), " ", (first.attempt.recording_id, "bold"),
                                " ", (f"({first.trigger})", "dim"))
        yield Row([heading, *(Text() for _ in columns[1:])], heading=True)
        for index, entry in enumerate(group):
            line = entry.attempt.line
            yield Row([column.cell(line, line.field or "") for column in columns], last=index == len(group) - 1)
