"""The exit codes of ``writeback`` (DESIGN §3; defined once, in ``worker.errors``) and a report's code.

0 nothing failed; 1 some field ``failed`` or ``invalid_value``, the recording
does not exist, or a dependency (Siro, the broker, the ledger) is down; 2 a
usage, config or credential error, with one line on stderr and no traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE  # noqa: F401 - defined once, with the error tree

if TYPE_CHECKING:
    from worker.report import RecordingReport


def exit_code(report: RecordingReport) -> int:
    """A recording's exit code: rejected credentials or a config naming what the CRM lacks is 2."""
    from worker.errors import NEEDS_A_FIX

    if report.code in NEEDS_A_FIX:
        return EXIT_USAGE
    return EXIT_FAILED if report.has_failures else EXIT_OK
