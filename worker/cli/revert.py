"""``writeback revert RECORDING_ID [--dry-run] [--json]``: undo what one recording wrote (DESIGN §6).

Runs in this process, from the ledger and the CRM (no Siro token, no broker):
``worker.pipeline.revert`` decides field by field and the one writer sends.
The report and exit codes are ``sync``'s; a recording the ledger has no write
of is one line and exit 1.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from worker.cli.exits import EXIT_FAILED, exit_code
from worker.cli.render import render_report, terminal
from worker.errors import Reason
from worker.pipeline.revert import revert
from worker.runtime import Runtime
from worker.settings import Settings


def run(args: Any, settings: Settings) -> int:
    rt = Runtime(settings, redis_optional=True, in_task=False, with_siro=False)
    try:
        report = revert(rt.pipeline, args.recording_id.strip(), dry_run=args.dry_run)
    finally:
        rt.close()
    if report.code is Reason.NOTHING_WRITTEN:
        print(f"writeback: nothing to revert: recording {report.recording_id} never wrote a field "
              "(writeback history shows its runs)", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        render_report(terminal(), report, dry_run=args.dry_run)
    if report.code is Reason.AUTH:
        print("writeback: the CRM rejected the credentials (see reason `auth` above)", file=sys.stderr)
    return exit_code(report)
