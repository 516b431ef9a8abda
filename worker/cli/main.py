"""``writeback``: parse the command line, run one command, map errors to exit codes.

Each command family lives in its own module (``sync``, ``check``, ``service``,
``demo``) and is imported only when it runs. Errors end a command with one
line on stderr, never a traceback: configuration and credential errors exit 2,
any other error of ours (Siro, the broker or the ledger down) exits 1.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from worker.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from worker.cli.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`writeback demo --json | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if os.environ.get("WRITEBACK_LOG_FORMAT"):  # json: one object a line (worker.logs); imported only then
        from worker.logs import use_log_format

        use_log_format(logging.getLogger().handlers)
    from worker.errors import ConfigError, CredentialError, WritebackError

    try:
        return _run(args)
    except (ConfigError, CredentialError) as exc:
        print(f"writeback: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WritebackError as exc:  # Siro down for a poll or backfill, the ledger, the broker
        print(f"writeback: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _run(args) -> int:  # noqa: ANN001 - argparse.Namespace
    if args.command == "demo":
        from worker.cli.demo import run_demo

        return run_demo(as_json=args.json, keep=args.keep)
    from worker.logs import install_redaction
    from worker.runtime import load

    settings = load(config_path=args.config, talks_to_crm=_talks_to_crm(args))
    install_redaction(settings)
    if args.command == "sync":
        from worker.cli.sync import sync

        return sync(settings, args.recording_id, dry_run=args.dry_run, as_json=args.json, force=args.force)
    if args.command == "check":
        from worker.cli.check import check

        return check(settings, as_json=args.json)
    if args.command in _OPERATOR:
        from importlib import import_module

        return import_module(f"worker.cli.{args.command}").run(args, settings)
    from worker.cli import service

    return service.run(args, settings)


# One module each (worker/cli/<name>.py, ``run(args, settings) -> exit code``): DESIGN §6.
_OPERATOR = ("history", "revert", "review", "connections", "console")


def _talks_to_crm(args) -> bool:  # noqa: ANN001 - argparse.Namespace
    """Whether the command writes or reads a CRM here (else the CRM's secrets need not be set)."""
    if args.command in ("sync", "check", "revert", "console"):  # the console approves and reverts
        return True
    if args.command == "review":
        return getattr(args, "decision", None) == "approve"
    if args.command in ("poll", "backfill"):
        return bool(args.in_process or getattr(args, "dry_run", False))
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
