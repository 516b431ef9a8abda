"""What the console reads and does, through the same functions as the CLI (DESIGN §6).

Every page and every action is one call here, and every call is the CLI's own:

=======================  ==========================================================
console                  CLI command and the function both call
=======================  ==========================================================
runs                     (none: ``Ledger.recent_runs``)
recording history        ``writeback history ID``: ``Ledger.history``
CRM record history       ``writeback history --record``: ``Ledger.record_history``
                         (``parse_record`` for the CONNECTION:OBJECT:ID text)
dead letters, retry      ``writeback failed`` / ``retry``: ``Ledger.dead_letters``,
                         ``worker.cli.service.retry_dead_letter``
review queue             ``writeback review [approve|reject]``:
                         ``worker.pipeline.review.pending``/``approve``/``reject``
revert                   ``writeback revert [--dry-run]``: ``worker.pipeline.revert.revert``
=======================  ==========================================================

One ``Runtime`` (``in_task=False``, no Siro client, Redis optional: as
``writeback review`` and ``revert`` build theirs) serves the console's life.
Actions run one at a time in this process (a lock): two clicks on Approve do
not race each other here, and the ledger's claims keep other processes out.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from worker.cli.history import RecordRef, parse_record
from worker.ledger.history import RUNS_PAGE
from worker.ledger.rows import (
    DeadLetterRow,
    ProposalRow,
    RecordHistoryRow,
    RunHistory,
    RunsPage,
)
from worker.pipeline import review
from worker.pipeline.revert import revert
from worker.report import RecordingReport

if TYPE_CHECKING:
    from worker.runtime import Runtime

__all__ = ["NotPending", "Operations", "RecordRef", "parse_record"]

NotPending = review.NotPending


class Operations:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._acting = threading.Lock()

    # -- reads -----------------------------------------------------------------

    def runs(self, before: int | None = None, limit: int = RUNS_PAGE) -> RunsPage:
        return self.rt.ledger.recent_runs(before=before, limit=limit)

    def history(self, recording_id: str) -> list[RunHistory]:
        return self.rt.ledger.history(recording_id)

    def record_history(self, record: RecordRef, field: str | None = None) -> list[RecordHistoryRow]:
        return self.rt.ledger.record_history(record.connection, record.object, record.record_id, field)

    def dead_letters(self) -> list[DeadLetterRow]:
        return self.rt.ledger.dead_letters()

    def pending(self) -> list[ProposalRow]:
        return review.pending(self.rt.ledger)

    # -- actions -----------------------------------------------------------------

    def retry(self, recording_id: str) -> str:
        """Re-enqueue a dead letter for the workers; the task id (``WritebackError``: the broker refused)."""
        from worker.cli.service import retry_dead_letter

        with self._acting:
            return retry_dead_letter(self.rt, recording_id)

    def approve(self, ids: list[int]) -> review.Approval:
        with self._acting:
            return review.approve(self.rt.pipeline, ids)

    def reject(self, ids: list[int]) -> list[int]:
        with self._acting:
            return review.reject(self.rt.ledger, ids)

    def revert(self, recording_id: str, *, dry_run: bool) -> RecordingReport:
        with self._acting:
            return revert(self.rt.pipeline, recording_id, dry_run=dry_run)

    def close(self) -> None:
        self.rt.close()
