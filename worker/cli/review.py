"""``writeback review``: the proposals waiting for a person, and their approval or rejection (DESIGN §6).

* ``writeback review [--json]``: the pending proposals, oldest first;
  ``--json``: ``{"proposals": [{"id", "connection", "object", "recordId",
  "field", "value", "previous", "recordingId", "extraction", "createdAt"}]}``.
* ``writeback review approve ID...|--all [--json]``: writes the proposed
  values here (after a fresh read; no broker needed), recorded as runs with
  trigger ``review``; the table per recording, or ``{"fields": [<field
  objects + "proposalId">]}``; exit codes as ``sync``.
* ``writeback review reject ID...|--all [--json]``: sends nothing; prints the
  ids rejected (``{"rejected": [ids]}``).

An id that is unknown or no longer pending: one line, exit 1, nothing done.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from typing import Any

from rich.text import Text

from worker.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from worker.cli.render import GroupedTable, render_report, report_rows, terminal
from worker.errors import NEEDS_A_FIX
from worker.ledger.rows import ProposalRow
from worker.pipeline import review
from worker.report import FieldReport, Outcome
from worker.runtime import Runtime
from worker.settings import Settings


def run(args: Any, settings: Settings) -> int:
    decision = getattr(args, "decision", None)
    as_json = getattr(args, "json", False)
    rt = Runtime(settings, redis_optional=True, in_task=False, with_siro=False)
    try:
        if decision is None:
            _print_pending(review.pending(rt.ledger), as_json=as_json)
            return EXIT_OK
        ids = None if args.all else args.ids
        if decision == "reject":
            return _reject(rt, ids, as_json=as_json)
        return _approve(rt, ids, as_json=as_json)
    except review.NotPending as exc:
        print(f"writeback: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        rt.close()


def _approve(rt: Runtime, ids: list[int] | None, *, as_json: bool) -> int:
    approval = review.approve(rt.pipeline, ids)
    if as_json:
        print(json.dumps(approval.to_json(), ensure_ascii=False))
    elif not approval.reports:
        print("no proposal waits for review")
    else:
        console = terminal()
        for report in approval.reports:
            render_report(console, report)
    if any(report.code in NEEDS_A_FIX for report in approval.reports):
        return EXIT_USAGE
    return EXIT_FAILED if approval.has_failures else EXIT_OK


def _reject(rt: Runtime, ids: list[int] | None, *, as_json: bool) -> int:
    rejected = review.reject(rt.ledger, ids)
    if as_json:
        print(json.dumps({"rejected": rejected}))
    else:
        print(f"rejected {len(rejected)} proposal{'' if len(rejected) == 1 else 's'}"
              + (f": {', '.join(map(str, rejected))}" if rejected else ""))
    return EXIT_OK


def _print_pending(proposals: list[ProposalRow], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"proposals": [row.to_json() for row in proposals]}, ensure_ascii=False))
        return
    console = terminal()
    if not proposals:
        console.print(Text("no proposal waits for review"))
        return
    # As the sync report shows fields: under their CRM record, the value over the CRM's current one.
    lines = [FieldReport(row.connection, row.object, row.record_id, row.field, row.value, row.previous,
                         Outcome.PENDING_REVIEW, f"proposal {row.id}, from recording {row.recording_id}",
                         row.extraction) for row in proposals]
    several = len({row.connection for row in proposals}) > 1
    title = f"{len(proposals)} proposal{'' if len(proposals) == 1 else 's'} waiting for review"
    if not several:
        title += f" · {proposals[0].connection}"
    console.print(GroupedTable(partial(report_rows, lines, show_connection=several), title))
    console.print(Text("writeback review approve ID... | --all   writeback review reject ID... | --all"))
