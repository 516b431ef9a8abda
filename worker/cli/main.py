"""The ``writeback`` command line (DESIGN §3).

Exit codes: 0 nothing failed; 1 some field ``failed`` or ``invalid_value``, or
the recording does not exist; 2 usage, config or credential error, with one
line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Sequence

from rich.console import Console

from connectors.base import ConnectorError, UnknownObject
from worker import __version__
from worker.cli.render import render_report
from worker.errors import ConfigError, CredentialError, Reason, WritebackError
from worker.logs import install_redaction
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.report import RecordingReport, Status
from worker.pipeline.runner import Pipeline
from worker.runtime import Runtime, siro_client
from worker.settings import ConnectionConfig, Settings, load_settings
from worker.siro.client import SiroAuthError, SiroError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="writeback", description="Write Siro's extracted values back into your CRM.")
    parser.add_argument("--version", action="version", version=f"siro-writeback {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser("sync", help="run the pipeline for one recording and print every field's outcome")
    sync.add_argument("recording_id", metavar="RECORDING_ID")
    sync.add_argument("--dry-run", action="store_true", help="read and plan, write nothing")
    sync.add_argument("--json", action="store_true", help="print one JSON object")

    commands.add_parser("check", help="validate the config and credentials (Siro, each CRM's schema)")

    poll = commands.add_parser("poll", help="one polling pass from the stored watermark: a task per page")
    poll.add_argument("--json", action="store_true", help='print {"pages", "recordings", "enqueued", "watermark"}')
    poll.add_argument("--in-process", action="store_true", help="write the pages here instead of enqueueing them")

    backfill = commands.add_parser("backfill", help="re-process an updatedAt window (never moves the watermark)")
    backfill.add_argument("--since", required=True, type=_timestamp, metavar="T", help="ISO 8601; UTC unless an offset is given")
    backfill.add_argument("--until", type=_timestamp, metavar="T", help="ISO 8601 (default: now)")
    backfill.add_argument("--dry-run", action="store_true", help="plan here and write nothing (implies --in-process)")
    backfill.add_argument("--in-process", action="store_true", help="write the pages here instead of enqueueing them")
    backfill.add_argument("--json", action="store_true", help="print the pass as one JSON object")

    failed = commands.add_parser("failed", help="the dead-letter list: recordings given up on")
    failed.add_argument("--json", action="store_true", help="print a JSON array")

    retry = commands.add_parser("retry", help="re-enqueue recordings from the dead-letter list")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("recording_id", nargs="?", metavar="RECORDING_ID")
    which.add_argument("--all", action="store_true", help="every recording on the list")

    webhook = commands.add_parser("webhook", help="serve the webhook app (POST /webhooks/siro)")
    webhook.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    webhook.add_argument("--port", type=int, default=8000, help="port (default 8000)")

    commands.add_parser("ready", help="exit 0 when the broker and the database answer (a health check)")

    demo = commands.add_parser("demo", help="the whole service on local simulators, no credentials")
    demo.add_argument("--json", action="store_true", help="print the reports as JSON lines")
    return parser


def _timestamp(text: str) -> datetime:
    """ISO 8601, UTC unless an offset is given (a date alone is its midnight UTC)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`writeback demo --json | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "demo":
            from worker.cli.demo import run_demo

            return run_demo(as_json=args.json)
        settings = load_settings()
        install_redaction(settings)
        if args.command == "sync":
            return _sync(settings, args.recording_id, dry_run=args.dry_run, as_json=args.json)
        if args.command == "check":
            return _check(settings)
        from worker.cli import service as service_commands

        return service_commands.run(args, settings)
    except (ConfigError, CredentialError) as exc:
        print(f"writeback: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SiroAuthError as exc:
        print(f"writeback: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (WritebackError, SiroError) as exc:  # Siro down for a poll or backfill, the ledger, the broker
        print(f"writeback: {exc}", file=sys.stderr)
        return EXIT_FAILED
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def open_pipeline(settings: Settings, stack: ExitStack) -> Pipeline:
    """A pipeline wired from settings for this process; ``stack`` closes what it opens.

    Its rate limits are the workers' when their Redis answers, so a CLI run
    counts against the same budget; retries are ``[retry]``'s, in-process.
    """
    rt = Runtime(settings, redis_optional=True, in_task=False)
    stack.callback(rt.close)
    return rt.pipeline


def exit_code(report: RecordingReport) -> int:
    if report.code is Reason.AUTH:
        return EXIT_USAGE
    return EXIT_FAILED if report.has_failures else EXIT_OK


def _sync(settings: Settings, recording_id: str, *, dry_run: bool, as_json: bool) -> int:
    with ExitStack() as stack:
        pipeline = open_pipeline(settings, stack)
        try:
            report = pipeline.sync(recording_id, dry_run=dry_run)
        except SiroAuthError:
            raise
        except SiroError as exc:
            report = RecordingReport.because(recording_id, Status.FAILED, Reason.SIRO, str(exc))
    if as_json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        console = Console()
        if not console.is_terminal:
            console.width = 160
        render_report(console, report, dry_run=dry_run)
    if report.code is Reason.AUTH:
        print("writeback: the CRM rejected the credentials (see reason `auth` above)", file=sys.stderr)
    return exit_code(report)


def _check(settings: Settings) -> int:
    console = Console()
    problems = 0
    with siro_client(settings) as siro:
        try:
            who = siro.caller_identity()
            console.print(f"[green]ok[/]   siro {settings.siro_api_url}: token {who.token_name!r} of organization {who.organization_id}")
        except SiroError as exc:
            console.print(f"[red]FAIL[/] siro {settings.siro_api_url}: {exc}")
            problems += 1
    if not settings.config.connections:
        console.print("[red]FAIL[/] no [[connections]] configured")
        return EXIT_USAGE
    pool = ConnectorPool(settings.config)
    try:
        for connection in settings.config.connections:
            problems += _check_connection(console, pool, connection)
    finally:
        pool.close()
    return EXIT_USAGE if problems else EXIT_OK


def _check_connection(console: Console, pool: ConnectorPool, connection: ConnectionConfig) -> int:
    """Check one connection's credentials and the schema of every object its model map names."""
    name = connection.display_name
    try:
        connector = pool.get(connection)
        console.print(f"[green]ok[/]   {name}: {connector.check()}")
    except (ConnectorError, ConfigError, NotImplementedError) as exc:
        console.print(f"[red]FAIL[/] {name}: {exc}")
        return 1
    problems = 0
    objects = sorted({target.object for target in pool.model_map(connection).values() if target.object})
    for object_name in objects:
        try:
            schema = connector.object_schema(object_name)
            writable = sum(1 for f in schema.fields.values() if f.writable)
            console.print(f"[green]ok[/]   {name}: {object_name} ({len(schema.fields)} fields, {writable} writable)")
        except UnknownObject:
            # Not every org has every object (HubSpot leads, say): mappings to it will be unknown_model.
            console.print(f"[yellow]warn[/] {name}: the CRM has no {object_name} object")
        except ConnectorError as exc:
            console.print(f"[red]FAIL[/] {name}: {object_name}: {exc}")
            problems += 1
    return problems


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
