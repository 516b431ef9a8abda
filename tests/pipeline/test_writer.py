"""The writer is the one write path: any caller's decision goes through it.

These tests drive ``Writer.write`` with a decision of their own, "put these
values back" (what revert and review approval will be), against the
in-memory CRM and a real SQLite ledger: one read and one write per batch,
outcomes as the CRM answered them, intents recorded before the CRM call,
partial results and retries of only what is unanswered.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from connectors.base import (
    AuthError,
    FieldSchema,
    FieldType,
    ObjectSchema,
    Option,
    TransientError,
)
from connectors.testing import InMemoryConnector
from worker.ledger import Ledger
from worker.limits.backoff import RetryPolicy
from worker.pipeline import coercion
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.writer import Context, FieldChange, Writer
from worker.report import Outcome, RecordingReport, Status
from worker.settings import parse_config

SCHEMA = {
    "Opportunity": [
        FieldSchema("Amount", FieldType.NUMBER, precision=18, scale=2),
        FieldSchema("NextStep", FieldType.STRING, max_length=20),
        FieldSchema("StageName", FieldType.PICKLIST, restricted=True,
                    options=(Option("Prospecting", "Prospecting"), Option("Closed Won", "Closed Won"))),
        FieldSchema("IsWon", FieldType.BOOLEAN, writable=False, not_writable_reason="calculated"),
    ]
}
RECORDS = {"Opportunity": {
    "006A": {"Amount": 12500, "NextStep": "Send the quote", "StageName": "Closed Won", "IsWon": True},
    "006B": {"Amount": 900, "NextStep": None, "StageName": "Prospecting", "IsWon": False},
}}


class PutBack:
    """A decision of this test's own: put the given values back where the CRM differs."""

    def __init__(self) -> None:
        self.prepared: list[str] = []

    def prepare(self, schema: ObjectSchema, changes: list[FieldChange]) -> set[str]:
        for change in changes:
            self.prepared.append(change.field)
            change.settle_schema(schema)
            if not change.done:
                try:
                    change.value = coercion.coerce(change.value, change.schema)
                except coercion.InvalidValue as exc:
                    change.decide(Outcome.INVALID_VALUE, str(exc))
        return set()

    def decide(self, schema: ObjectSchema, changes: list[FieldChange], context: Context) -> list[FieldChange]:
        send = []
        for change in changes:
            if coercion.same_value(change.previous, change.value, change.schema):
                change.decide(Outcome.UNCHANGED)
            else:
                send.append(change)
        return send


def put_back(record_id: str, field: str, value: Any) -> FieldChange:
    return FieldChange("crm", "Opportunity", record_id, field, "rec-1", value=value, extraction="revert")


@pytest.fixture
def crm() -> InMemoryConnector:
    return InMemoryConnector(SCHEMA, RECORDS)


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db")
    yield ledger
    ledger.close()


@pytest.fixture
def connection():
    return parse_config({"connections": [{"connector": "in-memory", "name": "crm"}]}, env={}).connections[0]


def writer_for(crm: InMemoryConnector, ledger: Ledger | None, connection, retries: int = 2) -> Writer:
    config = parse_config({"connections": [connection.model_dump()]}, env={})
    pool = ConnectorPool(config, lambda conn, cls: crm, classes={"in-memory": InMemoryConnector})
    return Writer(pool, ledger, RetryPolicy(max_retries=retries, base_s=0, max_s=0, sleep=lambda s: None))


def outcomes(changes: list[FieldChange]) -> dict[tuple[str, str], tuple[str, Any, Any]]:
    return {(c.record_id, c.name): (str(c.outcome), c.reports[0].value, c.reports[0].previous) for c in changes}


def test_a_decision_of_ones_own_puts_values_back_with_one_read_and_one_write(crm, ledger, connection):
    changes = [put_back("006A", "Amount", "9000"), put_back("006A", "nextstep", "Call back"),
               put_back("006B", "Amount", 900), put_back("006B", "NextStep", None)]
    decision = PutBack()

    writer_for(crm, ledger, connection).write(connection, "Opportunity", changes, decision)

    assert decision.prepared == ["Amount", "nextstep", "Amount", "NextStep"]
    assert outcomes(changes) == {
        ("006A", "Amount"): ("written", Decimal("9000"), Decimal("12500")),
        ("006A", "NextStep"): ("written", "Call back", "Send the quote"),  # the CRM's spelling of the field
        ("006B", "Amount"): ("unchanged", Decimal("900"), Decimal("900")),
        ("006B", "NextStep"): ("unchanged", None, None),
    }
    assert crm.record("Opportunity", "006A")["Amount"] == 9000
    assert crm.record("Opportunity", "006A")["NextStep"] == "Call back"
    assert [request.kind for request in crm.requests] == ["schema", "read", "write"]
    (write,) = [request for request in crm.requests if request.kind == "write"]
    assert [(w.record_id, dict(w.values)) for w in write.payload] == [("006A", {"Amount": 9000,
                                                                                "NextStep": "Call back"})]
    # The intents were recorded before the CRM call; recording the run settles them.
    assert {(i.intent.record_id, i.intent.field, i.intent.value) for i in ledger.intents()} == {
        ("006A", "Amount", 9000), ("006A", "NextStep", "Call back")}
    report = RecordingReport("rec-1", Status.OK, [line for change in changes for line in change.reports])
    writer_for(crm, ledger, connection).record(report, trigger="revert")
    assert ledger.intents() == []
    (run,) = ledger.runs("rec-1")
    assert (run.trigger, run.status) == ("revert", Status.OK)
    assert [a.line for a in reversed(ledger.attempts("rec-1"))] == report.fields


def test_the_crm_refusing_one_field_leaves_its_sibling_written(crm, connection):
    crm_stage = put_back("006A", "StageName", "Closed Won")  # unchanged
    bad = FieldChange("crm", "Opportunity", "006B", "NextStep", "rec-1", value="x" * 25)  # over max_length
    good = put_back("006B", "Amount", 1000)
    read_only = put_back("006B", "IsWon", True)
    unknown = put_back("006B", "Nope", "1")

    class SendAsIs(PutBack):
        def prepare(self, schema, changes):  # no local validation: the CRM is the judge
            for change in changes:
                change.schema = schema.field(change.field) or FieldSchema(change.field, FieldType.STRING)
            return set()

    writer_for(crm, None, connection).write(connection, "Opportunity", [crm_stage, bad, good, read_only, unknown],
                                            SendAsIs())

    assert crm_stage.outcome == "unchanged" and good.outcome == "written"
    assert bad.outcome == "invalid_value" and "over the field's 20" in bad.reports[0].reason
    assert read_only.outcome == "not_writable" and unknown.outcome == "unknown_field"
    assert crm.record("Opportunity", "006B")["Amount"] == 1000


def test_a_transient_failure_part_way_resends_only_what_was_not_answered(crm, connection):
    changes = [put_back("006A", "Amount", 1), put_back("006B", "Amount", 2)]
    # The CRM applies 006A, then the call fails (a timeout on the rest of the batch).
    crm.fail_next("write", TransientError("timeout", retry_after=0), after_applying=1)

    writer_for(crm, None, connection).write(connection, "Opportunity", changes, PutBack())

    assert outcomes(changes) == {("006A", "Amount"): ("written", Decimal("1"), Decimal("12500")),
                                 ("006B", "Amount"): ("written", Decimal("2"), Decimal("900"))}
    sent = [[(w.record_id, dict(w.values)) for w in r.payload] for r in crm.requests if r.kind == "write"]
    assert sent == [[("006A", {"Amount": 1}), ("006B", {"Amount": 2})], [("006B", {"Amount": 2})]]


def test_a_failure_after_part_of_a_call_landed_keeps_what_landed(crm, connection):
    changes = [put_back("006A", "Amount", 1), put_back("006B", "Amount", 2)]
    crm.fail_next("write", TransientError("timeout"), after_applying=1)

    writer_for(crm, None, connection, retries=0).write(connection, "Opportunity", changes, PutBack())

    first, second = changes
    assert first.outcome == "written" and not first.transient
    assert second.outcome == "failed" and second.transient and "gave up after retries" in second.reports[0].reason
    assert crm.record("Opportunity", "006B")["Amount"] == 900


def test_dry_run_reads_and_plans_and_sends_nothing(crm, ledger, connection):
    changes = [put_back("006A", "Amount", 1)]
    writer_for(crm, ledger, connection).write(connection, "Opportunity", changes, PutBack(), dry_run=True)
    assert changes[0].outcome == "planned"
    assert [request.kind for request in crm.requests] == ["schema", "read"]
    assert ledger.intents() == []


def test_a_missing_record_fails_with_the_crms_reason_and_gets_no_write(crm, connection):
    changes = [put_back("006Z", "Amount", 1), put_back("006A", "Amount", 12500)]
    writer_for(crm, None, connection).write(connection, "Opportunity", changes, PutBack())
    assert changes[0].outcome == "failed" and "NOT_FOUND" in changes[0].reports[0].reason
    assert changes[1].outcome == "unchanged"
    assert [request.kind for request in crm.requests] == ["schema", "read"]


def test_rejected_credentials_fail_every_change_as_auth(crm, connection):
    changes = [put_back("006A", "Amount", 1)]
    crm.fail_next("read", AuthError("INVALID_SESSION_ID"))
    writer_for(crm, None, connection).write(connection, "Opportunity", changes, PutBack())
    assert changes[0].outcome == "failed" and changes[0].cause == "auth"
    assert changes[0].reports[0].reason == "auth: INVALID_SESSION_ID"


def test_an_unknown_object_is_unknown_model(crm, connection):
    changes = [FieldChange("crm", "Invoice", "1", "Total", "rec-1", value=1)]
    writer_for(crm, None, connection).write(connection, "Invoice", changes, PutBack())
    assert changes[0].outcome == "unknown_model"
