"""The ledger: every run and every planned field's outcome, durably.

    from worker.ledger import IntentRow, Ledger, OutcomeRow

    ledger = Ledger.open(os.environ.get("WRITEBACK_DATABASE_URL", "sqlite:///writeback.db"))
    # Just before the CRM write call: what we are about to send.
    ledger.record_intents([IntentRow("salesforce-main", "Opportunity", "006...", "StageName",
                                     "Closed Won", "rec-1")])
    run_id = ledger.start_run("rec-1", trigger="cli")
    ledger.record(run_id, "rec-1", [OutcomeRow("salesforce-main", "Opportunity",
                  "006...", "StageName", "Closed Won", "Prospecting", "written")])
    ledger.finish_run(run_id, "ok")
    ledger.last_written("salesforce-main", "Opportunity", ["006..."], ["stagename"])
    # {("006...", "stagename"): "Closed Won"}
    ledger.our_values("salesforce-main", "Opportunity", ["006..."], ["stagename"])
    # {("006...", "stagename"): ["Closed Won"]}: the written value, then any
    # intents sent since whose attempt was never recorded (the worker died)

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
    IntentRow,
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
    "IntentRow",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "OutcomeRow",
    "create_ledger_engine",
    "head_revision",
    "normalize_url",
]
