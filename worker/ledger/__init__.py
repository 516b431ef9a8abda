"""The ledger: every run and every planned field's outcome, durably; also write
intents, the dead-letter list and the poll watermark (DESIGN §1 "record", §5).

    from worker.ledger import IntentRow, Ledger
    from worker.report import FieldReport, Outcome, Status
    from worker.settings import DEFAULT_DATABASE_URL

    ledger = Ledger.open(os.environ.get("WRITEBACK_DATABASE_URL", DEFAULT_DATABASE_URL))
    # Just before the CRM write call: what we are about to send.
    ledger.record_intents([IntentRow("salesforce-main", "Opportunity", "006...", "StageName",
                                     "Closed Won", "rec-1")])
    run_id = ledger.start_run("rec-1", trigger="cli")
    ledger.record(run_id, "rec-1", [FieldReport("salesforce-main", "Opportunity", "006...",
                  "StageName", "Closed Won", "Prospecting", Outcome.WRITTEN, None, "Stage")])
    ledger.finish_run(run_id, Status.OK)
    ledger.last_written("salesforce-main", "Opportunity", ["006..."], ["stagename"])
    # {("006...", "stagename"): "Closed Won"}
    ledger.our_values("salesforce-main", "Opportunity", ["006..."], ["stagename"])
    # {("006...", "stagename"): ["Closed Won"]}: the written value, then any
    # intents sent since whose attempt was never recorded (the worker died)

    run = ledger.runs("rec-1")[0]          # RunRow: id, trigger, status (a Status), started_at, ...
    [attempt] = ledger.attempts("rec-1")   # AttemptRow: id, run_id, created_at, and .line,
    attempt.line.outcome                   # the FieldReport as recorded (values as JSON)

    ledger.add_dead_letter("rec-2", reason="retries_exhausted", error="Salesforce 503",
                           trigger="poll", attempts=9)
    ledger.dead_letters()        # [DeadLetterRow], newest failure first; .to_json() as
                                 # `writeback failed --json` prints it; remove_dead_letter("rec-2")
    ledger.advance_watermark("poll", datetime(2026, 1, 1, tzinfo=UTC))  # never backwards
    ledger.watermark("poll")

Modules: ``engine`` (URL, engine, availability, migrations), ``runs``,
``intents``, ``dead_letters``, ``watermarks``, ``proposals`` (one concern each), ``rows``
(the typed rows), ``ledger`` (``Ledger``, composed from the concerns),
``schema`` (the tables; ``migrations/`` owns them).
"""

from .engine import (
    LedgerError,
    LedgerUnavailable,
    create_ledger_engine,
    head_revision,
    normalize_url,
)
from .ledger import Ledger
from .rows import (
    AttemptRow,
    DeadLetterRow,
    IntentRow,
    ProposalRow,
    RunRow,
    StoredIntentRow,
)

__all__ = [
    "AttemptRow",
    "DeadLetterRow",
    "IntentRow",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "ProposalRow",
    "RunRow",
    "StoredIntentRow",
    "create_ledger_engine",
    "head_revision",
    "normalize_url",
]
