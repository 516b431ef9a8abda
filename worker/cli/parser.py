"""The command line's grammar: every ``writeback`` command and option (DESIGN §3).

Only argparse is imported here, so ``writeback --help`` answers at once; each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from worker import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="writeback", description="Write Siro's extracted values back into your CRM.")
    parser.add_argument("--version", action="version", version=f"siro-writeback {__version__}")
    _common(parser, after_command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    _common(common, after_command=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[common])

    sync = add("sync", "run the pipeline for one recording and print every field's outcome")
    sync.add_argument("recording_id", metavar="RECORDING_ID")
    sync.add_argument("--dry-run", action="store_true", help="read and plan, write nothing")
    sync.add_argument("--json", action="store_true", help="print one JSON object")
    sync.add_argument("--force", action="store_true", help="write a version of the recording that was reverted")

    check = add("check", "validate the config and credentials (Siro; each CRM's schema and the config's rules)")
    check.add_argument("--json", action="store_true", help="print one JSON object")

    _service_commands(add)
    _operator_commands(add)

    demo = add("demo", "the whole service on local simulators, no credentials")
    demo.add_argument("--json", action="store_true", help="print the reports as JSON lines")
    demo.add_argument("--keep", nargs="?", const="", metavar="PATH",
                      help="keep the ledger (SQLite) at PATH, or at a new file in the temporary folder; "
                           "by default it is deleted on exit")
    return parser


def _common(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """``-v`` and ``--config``, accepted before the command and after it. After it, an option
    left out must not reset what was given before (argparse's SUPPRESS default)."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        default=argparse.SUPPRESS if after_command else False, help="log progress to stderr")
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS if after_command else None,
                        help="the TOML config file (instead of WRITEBACK_CONFIG or config/writeback.toml)")


def _service_commands(add) -> None:  # noqa: ANN001 - the subparser factory of build_parser
    poll = add("poll", "one polling pass from the stored watermark: a task per page")
    poll.add_argument("--json", action="store_true", help='print {"pages", "recordings", "enqueued", "watermark"}')
    poll.add_argument("--in-process", action="store_true", help="write the pages here instead of enqueueing them")

    backfill = add("backfill", "re-process an updatedAt window (never moves the watermark)")
    backfill.add_argument("--since", required=True, type=timestamp, metavar="T",
                          help="ISO 8601; UTC unless an offset is given")
    backfill.add_argument("--until", type=timestamp, metavar="T", help="ISO 8601 (default: now)")
    backfill.add_argument("--dry-run", action="store_true", help="plan here and write nothing (implies --in-process)")
    backfill.add_argument("--in-process", action="store_true", help="write the pages here instead of enqueueing them")
    backfill.add_argument("--json", action="store_true", help="print the pass as one JSON object")

    failed = add("failed", "the dead-letter list: recordings given up on")
    failed.add_argument("--json", action="store_true", help="print a JSON array")

    retry = add("retry", "re-enqueue recordings from the dead-letter list")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("recording_id", nargs="?", metavar="RECORDING_ID")
    which.add_argument("--all", action="store_true", help="every recording on the list")

    webhook = add("webhook", "serve the webhook app (POST /webhooks/siro)")
    webhook.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    webhook.add_argument("--port", type=int, default=8000, help="port (default 8000)")

    add("ready", "exit 0 when the broker and the database answer (a health check)")


def _operator_commands(add) -> None:  # noqa: ANN001 - the subparser factory of build_parser
    """DESIGN §6: see what was written and why, undo a recording, hold fields for a person."""
    history = add("history", "every run of a recording, or every outcome recorded on one CRM record")
    which = history.add_mutually_exclusive_group(required=True)
    which.add_argument("recording_id", nargs="?", metavar="RECORDING_ID")
    which.add_argument("--record", metavar="CONNECTION:OBJECT:ID", help="one CRM record, across recordings")
    history.add_argument("--field", metavar="F", help="with --record: only this field")
    history.add_argument("--json", action="store_true", help="print one JSON object")

    revert = add("revert", "put back what the CRM held before a recording's writes (never over a later change)")
    revert.add_argument("recording_id", metavar="RECORDING_ID")
    revert.add_argument("--dry-run", action="store_true", help="read and show what would be put back, send nothing")
    revert.add_argument("--json", action="store_true", help="print one JSON object")

    review = add("review", "the proposals waiting for a person (policy review); approve or reject them")
    review.add_argument("--json", action="store_true", help="print one JSON object")
    decisions = review.add_subparsers(dest="decision", metavar="{approve,reject}")
    for name, what in (("approve", "write the proposed values (after a fresh read)"),
                       ("reject", "drop the proposals; the same value is not proposed again")):
        decision = decisions.add_parser(name, help=what, description=what)
        chosen = decision.add_mutually_exclusive_group(required=True)
        chosen.add_argument("ids", nargs="*", default=[], type=int, metavar="ID")
        chosen.add_argument("--all", action="store_true", help="every pending proposal")
        decision.add_argument("--json", action="store_true", default=argparse.SUPPRESS,  # before or after
                              help="print one JSON object")

    connections = add("connections", "Siro's integration connections and the config entry serving each")
    connections.add_argument("--json", action="store_true", help="print one JSON object")

    console = add("console", "serve the operator web console (needs WRITEBACK_CONSOLE_TOKEN)")
    console.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    console.add_argument("--port", type=int, default=8090, help="port (default 8090)")


def timestamp(text: str) -> datetime:
    """ISO 8601, UTC unless an offset is given (a date alone is its midnight UTC)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
