"""``InMemoryConnector`` beyond the contract: its request log, failure injection and strictness."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest

from connectors.base import (
    FieldSchema,
    FieldType,
    Option,
    RecordWrite,
    SoftTimeLimit,
    TransientError,
    UnknownObject,
)
from connectors.support import WriteResults
from connectors.testing import InMemoryConnector, Request
from tests.connectors.sample_crm import OPPORTUNITY, in_memory_crm

PIPELINES = (Option("sales", "Sales"), Option("renewals", "Renewals"))
SALES_STAGES = (Option("new", "New"), Option("won", "Won"))
RENEWAL_STAGES = (Option("due", "Due"), Option("renewed", "Renewed"))
DEALS = [
    FieldSchema("pipeline", FieldType.PICKLIST, options=PIPELINES, restricted=True),
    FieldSchema("stage", FieldType.PICKLIST, options=SALES_STAGES + RENEWAL_STAGES, restricted=True,
                controller="pipeline", dependent_options={"sales": SALES_STAGES, "renewals": RENEWAL_STAGES}),
    FieldSchema("email", FieldType.STRING, pattern=r"[^@\s]+@[^@\s]+"),
]


def opportunities(count: int) -> InMemoryConnector:
    crm = in_memory_crm(write_batch_size=2)
    for number in range(count):
        crm.add_record("Opportunity", f"O{number}", {"Name": f"Deal {number}"})
    return crm


def write_one(crm: InMemoryConnector, values: dict, record_id: str = "006A", object_name: str = "Opportunity"):
    [result] = crm.write(object_name, [RecordWrite(record_id, values)])
    return result


# ---------------------------------------------------------------------- requests


def test_requests_log_what_was_sent_schema_once():
    crm = opportunities(3)
    crm.read("Opportunity", ["O0", "O1"], ["Name"])
    crm.write("Opportunity", [RecordWrite(f"O{n}", {"NextStep": "go"}) for n in range(3)])
    crm.object_schema("Opportunity")
    assert [(r.kind, r.object) for r in crm.requests] == [("schema", "Opportunity"), ("read", "Opportunity"),
                                                          ("write", "Opportunity"), ("write", "Opportunity")]
    assert crm.requests[1].payload == {"ids": ["O0", "O1"], "fields": ["Name"]}
    assert crm.requests[3].payload == [RecordWrite("O2", {"NextStep": "go"})]
    crm.clear_requests()
    assert crm.requests == []


def test_an_update_without_values_sends_nothing():
    crm = in_memory_crm()
    crm.object_schema("Opportunity")
    [result] = crm.write("Opportunity", [RecordWrite("006A", {})])
    assert (result.written, dict(result.errors)) == (set(), {})
    assert [r.kind for r in crm.requests] == ["schema"]


def test_unknown_objects_raise_unknown_object_everywhere():
    crm = in_memory_crm()
    for call in (lambda: crm.object_schema("Nope"), lambda: crm.read("Nope", ["1"], ["x"]),
                 lambda: crm.write("Nope", [RecordWrite("1", {"x": 1})])):
        with pytest.raises(UnknownObject):
            call()


def test_the_backing_store_is_copied_in_and_out():
    records = {"Opportunity": {"X": {"Name": "x", "Competitors": "Gong"}}}
    crm = InMemoryConnector({"Opportunity": OPPORTUNITY}, records)
    crm.record("Opportunity", "X")["Name"] = "changed"
    records["Opportunity"]["X"]["Name"] = "changed too"
    assert crm.record("Opportunity", "X")["Name"] == "x"
    crm.set_values("Opportunity", "X", {"Name": "edited in the CRM"})
    assert crm.read("Opportunity", ["X"], ["Name", "NoSuchField"])["X"].values == {"Name": "edited in the CRM"}
    crm.delete_record("Opportunity", "X")
    assert crm.record("Opportunity", "X") is None
    assert crm.read("Opportunity", ["X"], ["Name"])["X"].error.outcome == "failed"


def test_check_and_default_models():
    crm = in_memory_crm()
    assert crm.check() == "in-memory CRM (1 objects, 2 records)"
    assert crm.default_models["deal"].object == "Opportunity"
    assert crm.default_models["meeting"].object == "Event"


# ---------------------------------------------------------------------- failure injection


def test_a_fault_hits_the_next_request_of_its_kind_once():
    crm = in_memory_crm()
    crm.fail_next("write", TransientError("busy", retry_after=3))
    assert crm.read("Opportunity", ["006A"], ["Name"])["006A"].values == {"Name": "Acme renewal"}
    with pytest.raises(TransientError) as caught:
        crm.write("Opportunity", [RecordWrite("006A", {"NextStep": "x"})])
    assert caught.value.retry_after == 3 and caught.value.partial == []
    assert crm.record("Opportunity", "006A")["NextStep"] == "Send proposal"
    assert write_one(crm, {"NextStep": "x"}).written == {"NextStep"}
    assert [r.kind for r in crm.requests] == ["schema", "read", "write", "write"]


def test_any_kind_fault_and_an_unknown_kind():
    crm = in_memory_crm()
    crm.fail_next(None, TransientError("down"))
    with pytest.raises(TransientError):
        crm.check()
    assert crm.check().startswith("in-memory CRM")
    with pytest.raises(ValueError, match="unknown request kind"):
        crm.fail_next("delete", TransientError())


def test_a_write_failing_part_way_carries_what_it_settled():
    crm = opportunities(5)  # batches of 2: O0 O1 | O2 O3 | O4
    updates = [RecordWrite(f"O{n}", {"NextStep": f"step {n}"}) for n in range(5)]
    updates[1] = RecordWrite("O1", {"NextStep": "ok", "StageName": "Legacy"})  # an inactive option
    crm.fail_next("write", TransientError("503 after applying one"), after=1, after_applying=1)
    answers = WriteResults(updates)
    with pytest.raises(TransientError) as caught:
        crm.write("Opportunity", updates)
    answers.absorb(caught.value.partial)
    assert [(r.record_id, r.written, set(r.errors)) for r in caught.value.partial] == [
        ("O0", {"NextStep"}, set()), ("O1", {"NextStep"}, {"StageName"}), ("O2", {"NextStep"}, set())]
    assert crm.record("Opportunity", "O2")["NextStep"] == "step 2"
    assert crm.record("Opportunity", "O3").get("NextStep") is None
    assert [u.record_id for u in answers.unanswered()] == ["O3", "O4"]
    assert [len(r.payload) for r in crm.requests if r.kind == "write"] == [2, 2]


def test_an_interrupt_part_way_leaves_applied_records_unreported():
    crm = opportunities(2)
    crm.fail_next("write", SoftTimeLimit(), after_applying=1)
    with pytest.raises(SoftTimeLimit):
        crm.write("Opportunity", [RecordWrite("O0", {"NextStep": "a"}), RecordWrite("O1", {"NextStep": "b"})])
    assert crm.record("Opportunity", "O0")["NextStep"] == "a"  # the CRM applied it; nobody was told
    assert crm.record("Opportunity", "O1").get("NextStep") is None


def test_concurrent_writes_all_land():
    crm = opportunities(40)
    crm.object_schema("Opportunity")

    def write(number: int) -> None:
        crm.write("Opportunity", [RecordWrite(f"O{number}", {"Seats": number})])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [crm.record("Opportunity", f"O{n}")["Seats"] for n in range(40)] == list(range(40))
    assert len([r for r in crm.requests if r.kind == "write"]) == 40


# ---------------------------------------------------------------------- strict validation


@pytest.mark.parametrize(("values", "reason"), [
    ({"Amount": Decimal("5")}, "not a JSON number"),  # never encoded
    ({"Amount": True}, "not a JSON number"),
    ({"Amount": 1e19}, "more than 16 digits"),
    ({"Seats": 2.5}, "not a whole number"),
    ({"NextStep": "x" * 256}, "256 characters, over the field's 255"),
    ({"NextStep": 12}, "not text"),
    ({"StageName": "closed won"}, "not an active option"),  # the value, exactly: labels and case are coercion's job
    ({"StageName": "Legacy"}, "not an active option"),
    ({"Competitors": "Gong;Outreach"}, "'Outreach' is not an active option"),
    ({"CloseDate": "2026-13-01"}, "not a date"),
    ({"CloseDate": "01/05/2026"}, "not a date"),
    ({"NextMeeting": "2026-05-01T10:00:00"}, "with an offset"),
    ({"BudgetConfirmed": "true"}, "not a JSON boolean"),
    ({"BudgetConfirmed": None}, "cannot be empty"),
])
def test_a_value_a_strict_crm_refuses_is_invalid_value(values, reason):
    result = write_one(in_memory_crm(), values)
    [(name, error)] = result.errors.items()
    assert name in values and error.outcome == "invalid_value" and reason in error.reason
    assert not result.written


def test_refusals_by_kind_and_the_good_fields_land():
    crm = in_memory_crm()
    result = write_one(crm, {"NextStep": "ok", "ExpectedRevenue": 5, "Nope": 1, "Description": None,
                             "Competitors": "Clari;Gong", "NextMeeting": "2026-05-01T10:00:00.000Z"})
    assert result.written == {"NextStep", "Description", "Competitors", "NextMeeting"}
    assert {name: error.outcome for name, error in result.errors.items()} == {
        "ExpectedRevenue": "not_writable", "Nope": "unknown_field"}
    assert "calculated" in result.errors["ExpectedRevenue"].reason
    stored = crm.record("Opportunity", "006A")
    assert (stored["NextStep"], stored["Description"], stored["Competitors"]) == ("ok", None, "Clari;Gong")


def test_a_dependent_picklist_follows_its_controller_in_the_record_and_in_the_update():
    crm = InMemoryConnector({"Deal": DEALS}, {"Deal": {"1": {"pipeline": "sales", "stage": "new"}}})
    assert write_one(crm, {"stage": "won"}, "1", "Deal").written == {"stage"}
    assert write_one(crm, {"stage": "renewed"}, "1", "Deal").errors["stage"].outcome == "invalid_value"
    assert write_one(crm, {"pipeline": "renewals", "stage": "renewed"}, "1", "Deal").written == {"pipeline", "stage"}


def test_a_pattern_is_enforced():
    crm = InMemoryConnector({"Deal": DEALS}, {"Deal": {"1": {}}})
    assert write_one(crm, {"email": "dana@acme.example"}, "1", "Deal").written == {"email"}
    assert "does not match" in write_one(crm, {"email": "dana at acme"}, "1", "Deal").errors["email"].reason


# ---------------------------------------------------------------------- encode


def test_encode_gives_json_values():
    crm = in_memory_crm()
    fields = crm.object_schema("Opportunity").fields
    moment = dt.datetime(2026, 5, 1, 23, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    assert crm.encode(fields["Amount"], Decimal("12500.00")) == 12500
    assert crm.encode(fields["Amount"], Decimal("0.25")) == 0.25
    assert crm.encode(fields["Seats"], 7) == 7
    assert crm.encode(fields["BudgetConfirmed"], False) is False
    assert crm.encode(fields["CloseDate"], dt.date(2026, 5, 1)) == "2026-05-01"
    assert crm.encode(fields["CloseDate"], moment) == "2026-05-02"  # its UTC date
    assert crm.encode(fields["NextMeeting"], moment) == "2026-05-02T03:30:15.123Z"
    assert crm.encode(fields["NextMeeting"], dt.datetime(2026, 5, 1, 10)) == "2026-05-01T10:00:00.000Z"
    assert crm.encode(fields["Competitors"], ("Gong", "Clari")) == "Gong;Clari"
    assert crm.encode(fields["Competitors"], frozenset({"Gong", "Clari"})) == "Clari;Gong"
    assert crm.encode(fields["NextStep"], None) is None
    with pytest.raises(TypeError, match="cannot encode a dict"):
        crm.encode(fields["NextStep"], {"a": 1})


def test_the_request_log_is_a_list_of_named_tuples():
    crm = in_memory_crm()
    crm.object_schema("Opportunity")
    [(kind, object_name, payload)] = crm.requests
    assert crm.requests == [Request("schema", "Opportunity", None)] and (kind, object_name, payload) == (
        "schema", "Opportunity", None)
