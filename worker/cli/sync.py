"""``writeback sync RECORDING_ID [--dry-run] [--json]``: one recording, in this process.

The pipeline is a ``Runtime``'s (the one place that wires the Siro client,
the connectors and their rate-limit gates, and the ledger): its rate limits
are the workers' when their Redis answers, so a CLI run counts against the
same budget; retries are ``[retry]``'s, in this process.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack

from worker.cli.exits import exit_code
from worker.cli.render import render_report, terminal
from worker.errors import ConfigError, CredentialError, Reason
from worker.pipeline.runner import Pipeline
from worker.report import RecordingReport, Status
from worker.runtime import Runtime
from worker.settings import Settings
from worker.siro.client import SiroError


def open_pipeline(settings: Settings, stack: ExitStack) -> Pipeline:
    """A pipeline wired from settings for this process; ``stack`` closes what it opens."""
    rt = Runtime(settings, redis_optional=True, in_task=False)
    stack.callback(rt.close)
    return rt.pipeline


def sync(settings: Settings, recording_id: str, *, dry_run: bool, as_json: bool, force: bool = False) -> int:
    """``force``: write the recording even when this version of it was reverted."""
    with ExitStack() as stack:
        pipeline = open_pipeline(settings, stack)
        try:
            report = pipeline.sync(recording_id, dry_run=dry_run, force=force)
        except (CredentialError, ConfigError):
            raise  # Siro rejected the token, or SIRO_API_URL is not Siro: exit 2
        except SiroError as exc:
            report = RecordingReport.because(recording_id, Status.FAILED, Reason.SIRO, str(exc))
    if as_json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        render_report(terminal(), report, dry_run=dry_run)
    if report.code is Reason.AUTH:
        print("writeback: the CRM rejected the credentials (see reason `auth` above)", file=sys.stderr)
    elif report.code is Reason.CONFIG:
        print(f"writeback: nothing written: {report.reason}", file=sys.stderr)
    return exit_code(report)
