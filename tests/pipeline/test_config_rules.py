"""The connection's rules against the CRM, the allow-list and shadow mode, on the in-memory CRM.

``deny``/``allow``/``policy``/``models`` entries naming what the CRM lacks
refuse the whole connection (fail closed); ``allow`` writes only what it
names; ``mode = "shadow"`` runs everything, records ``planned`` and sends
nothing. No HTTP: the CRM is ``tests/fixtures/memory_crm.py``'s.
"""

from __future__ import annotations

from tests.fixtures.memory_crm import (
    OPPORTUNITY,
    extraction,
    memory_connection,
    recording,
)
from worker.errors import PermanentError, Reason, TransientError
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.rules import unknown_entries
from worker.pipeline.runner import SHADOW
from worker.report import Status
from worker.settings import parse_config

E = extraction


def deal(recording_id: str = "rec-1", **kwargs):
    # Both differ from what the CRM holds (Amount 12500, NextStep "Schedule demo").
    return recording(recording_id, [E("Deal size", "13,750", ("Opportunity", "Amount")),
                                    E("Next step", "Send the quote", ("Opportunity", "NextStep"))],
                     opportunity=OPPORTUNITY, **kwargs)


def outcomes(report) -> dict[str, tuple[str, str | None]]:
    return {line.field: (str(line.outcome), line.reason) for line in report.fields}


def test_every_rule_must_name_an_object_and_field_the_crm_has(memory_crm):
    connection = parse_config({"connections": [memory_connection(
        fields={"deny": ["Opportunty.Amount", "Deal.Amont", "Opportunity.OwnerId"],
                "allow": ["Account.Industry", "Account.Nope"],
                "policy": {"Contact.Title": "fill_empty", "Opportunity.Nxtstep": "fill_empty"}},
        models={"Appointment__c": {"slot": "engagement", "object": "Appointment__c"},
                "Owner": {"slot": "users", "object": None}},
    )]}, env={}).connections[0]
    pool = ConnectorPool(parse_config({"connections": [memory_connection()]}, env={}),
                         lambda conn, cls: memory_crm, classes={"in-memory": type(memory_crm)})

    problems = unknown_entries(connection, memory_crm, connection.model_map(type(memory_crm).default_models))

    assert problems == [
        "deny entry 'Opportunty.Amount': the CRM has no object 'Opportunty' (did you mean 'Opportunity'?)",
        "deny entry 'Deal.Amont': the CRM's Opportunity has no field 'Amont' (did you mean 'Amount'?)",
        "allow entry 'Account.Nope': the CRM's Account has no field 'Nope'",
        "policy entry 'Opportunity.Nxtstep': the CRM's Opportunity has no field 'Nxtstep' (did you mean 'NextStep'?)",
        "models entry 'Appointment__c': the CRM has no object 'Appointment__c'",
    ]
    pool.close()


def test_a_misspelt_deny_entry_refuses_the_connection_and_nothing_is_written(memory_crm, make_memory_pipeline):
    pipeline = make_memory_pipeline(memory_crm, fields={"deny": ["Opportunty.Amount"]})

    first, second = pipeline.process([deal("rec-1"), deal("rec-2")])

    for report in (first, second):
        assert (report.status, report.code) == (Status.FAILED, Reason.CONFIG)
        assert report.reason.startswith("config: deny entry 'Opportunty.Amount'")
        assert {outcome for outcome, _ in outcomes(report).values()} == {"failed"}
    assert memory_crm.writes() == [] and memory_crm.reads() == []  # no read, no write
    # Recorded like any run, so an operator sees why nothing was written.
    assert pipeline.ledger.runs("rec-1")[0].status == "failed"


def test_a_transient_failure_of_the_check_is_retried_not_remembered(memory_crm, make_memory_pipeline):
    pipeline = make_memory_pipeline(memory_crm, retries=0, fields={})
    memory_crm.fail_next("schema", TransientError("503 from the CRM"))

    report = pipeline.process([deal()])[0]
    assert report.transient and {o for o, _ in outcomes(report).values()} == {"failed"}

    again = pipeline.process([deal()])[0]
    assert outcomes(again)["Amount"][0] == "written"


def test_the_allow_list_writes_only_what_it_names(memory_crm, make_memory_pipeline):
    pipeline = make_memory_pipeline(memory_crm, fields={"allow": ["Deal.NextStep"]})  # a model alias works too

    report = pipeline.process([deal()])[0]

    assert outcomes(report) == {"Amount": ("skipped_policy", "not_allowed"), "NextStep": ("written", None)}
    assert memory_crm.writes() == [[(OPPORTUNITY, {"NextStep": "Send the quote"})]]  # Amount never sent


def test_an_empty_allow_list_writes_nothing(memory_crm, make_memory_pipeline):
    report = make_memory_pipeline(memory_crm, fields={"allow": []}).process([deal()])[0]
    assert {outcome for outcome, _ in outcomes(report).values()} == {"skipped_policy"}
    assert memory_crm.writes() == []


def test_shadow_mode_reads_decides_and_records_but_sends_nothing(memory_crm, make_memory_pipeline, tmp_path):
    database = f"sqlite:///{tmp_path}/shadow.db"
    shadow = make_memory_pipeline(memory_crm, database, mode="shadow", fields={})

    report = shadow.process([deal()])[0]

    assert report.status == Status.OK
    assert outcomes(report) == {"Amount": ("planned", SHADOW), "NextStep": ("planned", SHADOW)}
    assert memory_crm.writes() == [] and len(memory_crm.reads()) == 1
    (run,) = shadow.ledger.runs("rec-1")
    assert (run.status, run.dry_run) == ("ok", False)  # a real run, in the ledger like any other
    assert {a.line.outcome for a in shadow.ledger.attempts("rec-1")} == {"planned"}

    live = make_memory_pipeline(memory_crm, database, mode="live", fields={})
    again = live.process([deal()])[0]  # the same version: not stale, written now
    assert outcomes(again) == {"Amount": ("written", None), "NextStep": ("written", None)}


def test_rules_that_cannot_be_checked_are_not_trusted(memory_crm, make_memory_pipeline):
    """A permanent refusal while checking (a 403 on an object the rules name): nothing is written,
    the recording fails as ``config``, and the check is not repeated for every batch."""
    pipeline = make_memory_pipeline(memory_crm, fields={"deny": ["Account.Industry"]})
    memory_crm.fail_next("schema", PermanentError("403 MISSING_SCOPES for Account"))

    first, second = pipeline.process([deal("rec-1")]), pipeline.process([deal("rec-2")])

    for (report,) in (first, second):
        assert (report.status, report.code) == (Status.FAILED, Reason.CONFIG)
        assert "the rules could not be checked against the CRM: 403 MISSING_SCOPES" in report.reason
    assert memory_crm.writes() == []
    assert [r.kind for r in memory_crm.requests] == ["schema"]  # asked once, remembered
