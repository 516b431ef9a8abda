"""The ledger: every run and every planned field's outcome, durably.

    from worker.ledger import Ledger, OutcomeRow

    ledger = Ledger.open(os.environ.get("WRITEBACK_DATABASE_URL", "sqlite:///writeback.db"))
    run_id = ledger.start_run("rec-1", trigger="cli")
    ledger.record(run_id, "rec-1", [OutcomeRow("salesforce-main", "Opportunity",
                  "006...", "StageName", "Closed Won", "Prospecting", "written")])
    ledger.finish_run(run_id, "ok")
    ledger.last_written("salesforce-main", "Opportunity", ["006..."], ["stagename"])
    # {("006...", "stagename"): "Closed Won"}

    ledger.add_dead_letter("rec-2", reason="retries_exhausted", error="Salesforce 503",
                           trigger="poll", attempts=9)
    ledger.dead_letters()        # newest failure first; remove_dead_letter("rec-2")
    ledger.advance_watermark("poll", datetime(2026, 1, 1, tzinfo=UTC))  # never backwards
    ledger.watermark("poll")
"""

from .store import (
    DEFAULT_DATABASE_URL,
    OUTCOMES,
    RUN_STATUSES,
    Ledger,
    LedgerError,
    LedgerUnavailable,
    OutcomeRow,
    create_ledger_engine,
    head_revision,
    normalize_url,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "OUTCOMES",
    "RUN_STATUSES",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "OutcomeRow",
    "create_ledger_engine",
    "head_revision",
    "normalize_url",
]
