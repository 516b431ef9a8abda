"""Pure tests of worker.pipeline.resolver: a recording and a connection in, a write plan out (DESIGN §2)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import ModelTarget
from worker.pipeline.plan import FieldWrite, RecordUpdate, WritePlan
from worker.pipeline.resolver import resolve
from worker.report import FieldReport, Outcome
from worker.settings import ConnectionConfig
from worker.siro.models import Recording

# The default model maps of DESIGN §2, as the connectors declare them (keys lower-case).
SALESFORCE_MODELS = {
    "opportunity": ModelTarget("opportunity", "Opportunity"),
    "deal": ModelTarget("opportunity", "Opportunity"),
    "account": ModelTarget("account", "Account"),
    "company": ModelTarget("account", "Account"),
    "contact": ModelTarget("contacts", "Contact"),
    "lead": ModelTarget("lead", "Lead"),
    "engagement": ModelTarget("engagement", "Event"),
    "event": ModelTarget("engagement", "Event"),
    "appointment": ModelTarget("engagement", "Event"),
    "meeting": ModelTarget("engagement", "Event"),
    "user": ModelTarget("users", "User"),
    "owner": ModelTarget("users", "User"),
}
HUBSPOT_MODELS = {
    "opportunity": ModelTarget("opportunity", "deals"),
    "deal": ModelTarget("opportunity", "deals"),
    "account": ModelTarget("account", "companies"),
    "company": ModelTarget("account", "companies"),
    "contact": ModelTarget("contacts", "contacts"),
    "lead": ModelTarget("lead", "leads"),
    "engagement": ModelTarget("engagement", "meetings"),
    "event": ModelTarget("engagement", "meetings"),
    "appointment": ModelTarget("engagement", "meetings"),
    "meeting": ModelTarget("engagement", "meetings"),
    "user": ModelTarget("users", None),
    "owner": ModelTarget("users", None),
}

FULL_CRM = {
    "integrationConnectionId": "conn-1",
    "opportunity": {"id": "s-opp", "externalId": "006A"},
    "account": {"id": "s-acc", "externalId": "001A"},
    "contacts": [{"id": "s-c1", "externalId": "003A"}, {"id": "s-c2", "externalId": "003B"}],
    "lead": {"id": "s-lead", "externalId": "00QA"},
    "engagement": {"id": "s-ev", "externalId": "00UA"},
    "users": [{"id": "s-u1", "externalId": "005A"}],
}


def connection(**kwargs: Any) -> ConnectionConfig:
    return ConnectionConfig.model_validate({"connector": "salesforce", "name": "sf", **kwargs})


def extraction(name: str, value: Any, *targets: tuple[str | None, str | None]) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "mappings": [{"crmModelName": model, "crmFieldName": field} for model, field in targets],
    }


def recording(*extractions: dict[str, Any], crm: Any = FULL_CRM, **extra: Any) -> Recording:
    body = {"id": "rec-1", "crm": crm, "entityExtractions": list(extractions), **extra}
    return Recording.model_validate(body)


def plan_of(*extractions: dict[str, Any], conn: ConnectionConfig | None = None, crm: Any = FULL_CRM,
            models: dict[str, ModelTarget] | None = None, **extra: Any) -> WritePlan:
    conn = conn if conn is not None else connection()
    model_map = conn.model_map(SALESFORCE_MODELS if models is None else models)
    return resolve(recording(*extractions, crm=crm, **extra), conn, model_map)


def only_decided(plan: WritePlan) -> FieldReport:
    assert len(plan.decided) == 1, plan.decided
    return plan.decided[0]


def update_for(plan: WritePlan, object_name: str, record_id: str) -> RecordUpdate:
    matches = [u for u in plan.updates if u.object == object_name and u.record_id == record_id]
    assert len(matches) == 1, plan.updates
    return matches[0]


def written(plan: WritePlan) -> set[tuple[str, str, str, Any]]:
    return {(u.object, u.record_id, w.field, w.value) for u in plan.updates for w in u.fields.values()}


# -- a plain write ----------------------------------------------------------------


def test_one_mapping_becomes_one_update_with_provenance():
    plan = plan_of(extraction("Deal amount", 12500, ("Opportunity", "Amount")))
    assert plan.skipped is None and plan.failed is None and plan.decided == []
    assert plan.recording_id == "rec-1" and plan.connection == "sf"
    update = update_for(plan, "Opportunity", "006A")
    assert update.recording_id == "rec-1" and update.connection == "sf"
    assert update.fields == {"amount": FieldWrite("Amount", 12500, ("Deal amount",), "overwrite")}
    assert update.fields["amount"].extraction == "Deal amount"


def test_connection_name_defaults_to_the_connector():
    conn = ConnectionConfig.model_validate({"connector": "hubspot"})
    plan = resolve(recording(extraction("x", 1, ("Deal", "amount"))), conn, conn.model_map(HUBSPOT_MODELS))
    assert plan.connection == "hubspot"
    assert update_for(plan, "deals", "006A").connection == "hubspot"


# -- unknown_model and unsupported -------------------------------------------------------


def test_unknown_model():
    report = only_decided(plan_of(extraction("Budget", 5, ("Quote", "Budget__c"))))
    assert report.outcome is Outcome.UNKNOWN_MODEL
    assert report.field == "Budget__c" and report.extraction == "Budget" and report.value == 5
    assert "Quote" in report.reason
    assert report.connection == "sf" and report.record_id is None


@pytest.mark.parametrize("model", [None, ""])
def test_mapping_without_model_name_is_unknown_model(model):
    report = only_decided(plan_of(extraction("Budget", 5, (model, "Budget__c"))))
    assert report.outcome is Outcome.UNKNOWN_MODEL and "crmModelName" in report.reason


def test_mapping_with_missing_model_key_is_unknown_model():
    body = {"name": "Budget", "value": 5, "mappings": [{"crmFieldName": "Budget__c"}]}
    report = only_decided(plan_of(body))
    assert report.outcome is Outcome.UNKNOWN_MODEL


def test_mapping_without_field_name_is_unknown_field():
    report = only_decided(plan_of(extraction("Budget", 5, ("Opportunity", " "))))
    assert report.outcome is Outcome.UNKNOWN_FIELD and report.object == "Opportunity"


@pytest.mark.parametrize("model", ["User", "Owner", "owner"])
def test_hubspot_users_are_unsupported(model):
    conn = ConnectionConfig.model_validate({"connector": "hubspot"})
    plan = resolve(recording(extraction("Rep", "Ann", (model, "firstname"))), conn, conn.model_map(HUBSPOT_MODELS))
    report = only_decided(plan)
    assert report.outcome is Outcome.UNSUPPORTED and plan.updates == []
    assert report.field == "firstname" and report.extraction == "Rep"


def test_unsupported_wins_over_unlinked():
    conn = ConnectionConfig.model_validate({"connector": "hubspot"})
    crm = {"integrationConnectionId": "conn-1"}
    plan = resolve(recording(extraction("Rep", "Ann", ("User", "firstname")), crm=crm), conn,
                   conn.model_map(HUBSPOT_MODELS))
    assert only_decided(plan).outcome is Outcome.UNSUPPORTED


def test_unknown_model_wins_over_unlinked_and_null():
    report = only_decided(plan_of(extraction("x", None, ("Quote", "F")), crm={"integrationConnectionId": "c"}))
    assert report.outcome is Outcome.UNKNOWN_MODEL


# -- the model map ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,object_name,record_id",
    [("Opportunity", "Opportunity", "006A"), ("Deal", "Opportunity", "006A"), ("DEAL", "Opportunity", "006A"),
     ("opportunity", "Opportunity", "006A"), ("Company", "Account", "001A"), ("account", "Account", "001A"),
     ("Lead", "Lead", "00QA"), ("Event", "Event", "00UA"), ("Appointment", "Event", "00UA"),
     ("meeting", "Event", "00UA"), ("Engagement", "Event", "00UA"), ("Owner", "User", "005A"),
     (" Deal ", "Opportunity", "006A")],
)
def test_model_aliases_case_insensitive(model, object_name, record_id):
    plan = plan_of(extraction("x", "v", (model, "Description")))
    assert written(plan) == {(object_name, record_id, "Description", "v")}


def test_hubspot_aliases():
    conn = ConnectionConfig.model_validate({"connector": "hubspot"})
    rec = recording(
        extraction("a", 1, ("Deal", "amount")),
        extraction("b", "Acme", ("Company", "name")),
        extraction("c", "Note", ("Meeting", "hs_meeting_body")),
    )
    plan = resolve(rec, conn, conn.model_map(HUBSPOT_MODELS))
    assert written(plan) == {("deals", "006A", "amount", 1), ("companies", "001A", "name", "Acme"),
                             ("meetings", "00UA", "hs_meeting_body", "Note")}


def test_config_adds_a_custom_object():
    conn = connection(models={"Appointment__c": {"slot": "engagement", "object": "Appointment__c"}})
    plan = plan_of(extraction("When", "2024-05-01", ("appointment__C", "Date__c")), conn=conn)
    assert written(plan) == {("Appointment__c", "00UA", "Date__c", "2024-05-01")}


def test_config_overrides_an_alias():
    conn = connection(models={"Appointment": {"slot": "engagement", "object": "Appointment__c"}})
    plan = plan_of(
        extraction("When", "2024-05-01", ("Appointment", "Date__c")),
        extraction("Where", "Office", ("Event", "Location")),
        conn=conn,
    )
    assert written(plan) == {("Appointment__c", "00UA", "Date__c", "2024-05-01"), ("Event", "00UA", "Location", "Office")}


def test_config_can_make_a_model_unsupported():
    conn = connection(models={"user": {"slot": "users"}})  # object omitted: not writable
    report = only_decided(plan_of(extraction("Rep", "Ann", ("User", "FirstName")), conn=conn))
    assert report.outcome is Outcome.UNSUPPORTED


def test_model_map_with_folded_keys_is_matched_case_insensitively_even_if_not_prefolded():
    conn = connection()
    plan = resolve(recording(extraction("x", 1, ("deal", "Amount"))), conn, {"Deal": ModelTarget("opportunity", "Opportunity")})
    assert written(plan) == {("Opportunity", "006A", "Amount", 1)}


# -- deny (skipped_policy) ----------------------------------------------------------------


@pytest.mark.parametrize("entry", ["Opportunity.OwnerId", "opportunity.ownerid", "OPPORTUNITY.OWNERID"])
def test_deny_list_is_case_insensitive(entry):
    conn = connection(fields={"deny": [entry]})
    plan = plan_of(
        extraction("Owner", "005X", ("Deal", "ownerId")),
        extraction("Amount", 1, ("Opportunity", "Amount")),
        conn=conn,
    )
    report = only_decided(plan)
    assert report.outcome is Outcome.SKIPPED_POLICY and report.reason == "deny"
    assert report.object == "Opportunity" and report.extraction == "Owner"
    assert written(plan) == {("Opportunity", "006A", "Amount", 1)}


def test_deny_wins_over_unlinked():
    conn = connection(fields={"deny": ["Lead.Status"]})
    report = only_decided(plan_of(extraction("s", "Open", ("Lead", "Status")), conn=conn,
                                  crm={"integrationConnectionId": "c"}))
    assert report.outcome is Outcome.SKIPPED_POLICY


# -- unlinked --------------------------------------------------------------------------------


def test_unlinked_slot():
    crm = {"integrationConnectionId": "conn-1", "opportunity": {"externalId": "006A"}}
    plan = plan_of(extraction("Title", "CFO", ("Contact", "Title")), extraction("A", 1, ("Deal", "Amount")), crm=crm)
    report = only_decided(plan)
    assert report.outcome is Outcome.UNLINKED and report.object == "Contact" and "contacts" in report.reason
    assert written(plan) == {("Opportunity", "006A", "Amount", 1)}


@pytest.mark.parametrize("link", [{"id": "s-opp", "externalId": ""}, {"id": "s-opp", "externalId": None},
                                  {"id": "s-opp"}, {"id": "s-opp", "externalId": "  "}])
def test_links_with_empty_external_id_are_ignored(link):
    crm = {"integrationConnectionId": "conn-1", "opportunity": link}
    report = only_decided(plan_of(extraction("A", 1, ("Deal", "Amount")), crm=crm))
    assert report.outcome is Outcome.UNLINKED


def test_contacts_with_empty_external_id_are_skipped_others_written():
    crm = {"integrationConnectionId": "c", "contacts": [{"externalId": ""}, {"externalId": "003B"}]}
    plan = plan_of(extraction("Title", "CFO", ("Contact", "Title")), crm=crm)
    assert plan.decided == []
    assert written(plan) == {("Contact", "003B", "Title", "CFO")}


def test_numeric_external_ids_become_strings():
    crm = {"integrationConnectionId": "c", "opportunity": {"externalId": 987654321}}
    plan = plan_of(extraction("A", 1, ("Deal", "amount")), crm=crm)
    assert plan.updates[0].record_id == "987654321"


# -- slots with many records --------------------------------------------------------------------


def test_contacts_slot_writes_every_contact():
    plan = plan_of(extraction("Title", "CFO", ("Contact", "Title")))
    assert written(plan) == {("Contact", "003A", "Title", "CFO"), ("Contact", "003B", "Title", "CFO")}
    assert len(plan.updates) == 2


def test_contacts_slot_first():
    plan = plan_of(extraction("Title", "CFO", ("Contact", "Title")), conn=connection(slots={"contacts": "first"}))
    assert written(plan) == {("Contact", "003A", "Title", "CFO")}


def test_first_skips_links_without_external_id():
    crm = {"integrationConnectionId": "c", "contacts": [{"externalId": ""}, {"externalId": "003B"}]}
    plan = plan_of(extraction("Title", "CFO", ("Contact", "Title")), crm=crm, conn=connection(slots={"contacts": "first"}))
    assert written(plan) == {("Contact", "003B", "Title", "CFO")}


def test_slot_first_applies_only_to_its_slot():
    conn = connection(slots={"users": "first"})
    plan = plan_of(extraction("Title", "CFO", ("Contact", "Title")), conn=conn)
    assert len(plan.updates) == 2


def test_a_contact_linked_twice_is_written_once():
    crm = {"integrationConnectionId": "c", "contacts": [{"externalId": "003A"}, {"externalId": "003A"}]}
    plan = plan_of(extraction("Title", "CFO", ("Contact", "Title")), crm=crm)
    assert [(u.record_id, list(u.fields)) for u in plan.updates] == [("003A", ["title"])]
    assert plan.decided == []


def test_null_value_on_many_contacts_is_reported_per_contact():
    plan = plan_of(extraction("Title", None, ("Contact", "Title")))
    assert sorted((r.record_id, r.outcome) for r in plan.decided) == [
        ("003A", Outcome.NULL_VALUE), ("003B", Outcome.NULL_VALUE)]


# -- null_value ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  ", [], [None, " "]])
def test_null_is_not_written(value):
    plan = plan_of(extraction("Next step", value, ("Opportunity", "NextStep")))
    report = only_decided(plan)
    assert report.outcome is Outcome.NULL_VALUE
    assert report.object == "Opportunity" and report.record_id == "006A" and report.field == "NextStep"
    assert report.extraction == "Next step"
    assert plan.updates == []


def test_null_beside_a_value_is_null_value_and_the_value_is_written():
    plan = plan_of(
        extraction("Amount A", None, ("Opportunity", "Amount")),
        extraction("Amount B", 12500, ("opportunity", "amount")),
    )
    report = only_decided(plan)
    assert report.outcome is Outcome.NULL_VALUE and report.extraction == "Amount A"
    assert written(plan) == {("Opportunity", "006A", "amount", 12500)}
    assert plan.updates[0].fields["amount"].extractions == ("Amount B",)


def test_write_nulls_plans_a_lone_null():
    conn = connection(fields={"write_nulls": True})
    plan = plan_of(extraction("Next step", "  ", ("Opportunity", "NextStep")), conn=conn)
    assert plan.decided == []
    write = update_for(plan, "Opportunity", "006A").fields["nextstep"]
    assert write.field == "NextStep" and write.extractions == ("Next step",)
    assert write.value is None  # the null clears the field, whatever blank spelled it


def test_write_nulls_two_kinds_of_null_are_one_write_not_a_conflict():
    conn = connection(fields={"write_nulls": True})
    plan = plan_of(
        extraction("A", None, ("Opportunity", "NextStep")),
        extraction("B", "", ("Opportunity", "NextStep")),
        extraction("C", [], ("Opportunity", "NextStep")),
        conn=conn,
    )
    assert plan.decided == []
    assert update_for(plan, "Opportunity", "006A").fields["nextstep"].extractions == ("A", "B", "C")


def test_write_nulls_a_null_beside_a_value_is_still_null_value():
    conn = connection(fields={"write_nulls": True})
    plan = plan_of(
        extraction("A", None, ("Opportunity", "NextStep")),
        extraction("B", "Call back", ("Opportunity", "NextStep")),
        conn=conn,
    )
    assert only_decided(plan).outcome is Outcome.NULL_VALUE
    assert written(plan) == {("Opportunity", "006A", "NextStep", "Call back")}


# -- conflicts and merges -----------------------------------------------------------------------


def test_different_values_make_one_contested_write_naming_each_value():
    plan = plan_of(
        extraction("Amount A", 12500, ("Opportunity", "Amount")),
        extraction("Amount B", 13000, ("Opportunity", "Amount")),
        extraction("Stage", "Closed Won", ("Opportunity", "StageName")),
    )
    assert plan.decided == []  # settled against the field's type by the pipeline
    write = update_for(plan, "Opportunity", "006A").fields["amount"]
    assert write.alternatives == ((12500, ("Amount A",)), (13000, ("Amount B",)))
    assert write.extractions == ("Amount A", "Amount B")
    # the other field of the record is an ordinary write
    assert update_for(plan, "Opportunity", "006A").fields["stagename"].alternatives == ()


def test_contested_values_group_the_extractions_that_agree():
    plan = plan_of(
        extraction("A", "x", ("Opportunity", "NextStep")),
        extraction("B", "x", ("Opportunity", "NextStep")),
        extraction("C", "y", ("Opportunity", "NextStep")),
    )
    write = update_for(plan, "Opportunity", "006A").fields["nextstep"]
    assert write.alternatives == (("x", ("A", "B")), ("y", ("C",)))


def test_contested_field_names_matched_case_insensitively():
    plan = plan_of(
        extraction("A", "x", ("Opportunity", "NextStep")),
        extraction("B", "y", ("Deal", "NEXTSTEP")),
    )
    assert list(update_for(plan, "Opportunity", "006A").fields) == ["nextstep"]
    assert len(update_for(plan, "Opportunity", "006A").fields["nextstep"].alternatives) == 2


def test_raw_values_that_only_a_field_type_makes_equal_are_contested_not_merged():
    plan = plan_of(
        extraction("A", "yes", ("Opportunity", "Budget_Confirmed__c")),
        extraction("B", True, ("Opportunity", "Budget_Confirmed__c")),
    )
    write = update_for(plan, "Opportunity", "006A").fields["budget_confirmed__c"]
    assert write.alternatives == (("yes", ("A",)), (True, ("B",)))


def test_equal_values_from_two_extractions_are_one_write_naming_both():
    plan = plan_of(
        extraction("Amount A", 12500, ("Opportunity", "Amount")),
        extraction("Amount B", 12500, ("Deal", "amount")),
    )
    assert plan.decided == []
    update = update_for(plan, "Opportunity", "006A")
    assert list(update.fields) == ["amount"]
    write = update.fields["amount"]
    assert write.extractions == ("Amount A", "Amount B")
    assert write.extraction == "Amount A, Amount B"
    assert write.field == "Amount"  # the first mapping's spelling


@pytest.mark.parametrize("a,b", [("12500", 12500), (12500, 12500.0), (" 12500.00 ", "12500"), ("12,500", 12500),
                                 (" CFO ", "CFO"), (["a", "b"], ["a", "b"])])
def test_equivalent_values_are_not_a_conflict(a, b):
    plan = plan_of(extraction("A", a, ("Opportunity", "Amount")), extraction("B", b, ("Opportunity", "Amount")))
    assert plan.decided == []
    assert update_for(plan, "Opportunity", "006A").fields["amount"].extractions == ("A", "B")


def test_one_extraction_mapped_twice_to_one_field_is_one_write():
    plan = plan_of(extraction("A", 5, ("Opportunity", "Amount"), ("Deal", "Amount")))
    assert plan.decided == []
    assert update_for(plan, "Opportunity", "006A").fields["amount"].extractions == ("A",)


def test_same_field_on_different_records_never_conflicts():
    plan = plan_of(
        extraction("A", "x", ("Opportunity", "Description")),
        extraction("B", "y", ("Account", "Description")),
    )
    assert plan.decided == []
    assert written(plan) == {("Opportunity", "006A", "Description", "x"), ("Account", "001A", "Description", "y")}


# -- one update per record ---------------------------------------------------------------------


def test_two_fields_from_two_extractions_on_one_record_are_one_update():
    plan = plan_of(
        extraction("Amount", 12500, ("Opportunity", "Amount")),
        extraction("Stage", "Closed Won", ("Deal", "StageName")),
    )
    assert len(plan.updates) == 1
    update = plan.updates[0]
    assert (update.object, update.record_id) == ("Opportunity", "006A")
    assert {k: (w.field, w.value, w.extractions) for k, w in update.fields.items()} == {
        "amount": ("Amount", 12500, ("Amount",)),
        "stagename": ("StageName", "Closed Won", ("Stage",)),
    }


def test_one_extraction_with_several_mappings_writes_several_records():
    plan = plan_of(extraction("Company", "Acme", ("Account", "Name"), ("Lead", "Company"), ("Contact", "Department")))
    assert written(plan) == {("Account", "001A", "Name", "Acme"), ("Lead", "00QA", "Company", "Acme"),
                             ("Contact", "003A", "Department", "Acme"), ("Contact", "003B", "Department", "Acme")}
    assert len(plan.updates) == 4


def test_field_names_are_trimmed():
    plan = plan_of(extraction("A", 1, ("Opportunity", " Amount ")))
    assert update_for(plan, "Opportunity", "006A").fields == {"amount": FieldWrite("Amount", 1, ("A",), "overwrite")}


# -- policies -------------------------------------------------------------------------------------


def test_policy_per_object_field_is_carried_on_the_write():
    conn = connection(fields={"policy": {"opportunity.stagename": "fill_empty", "Opportunity.Amount": "protect_edits"}})
    plan = plan_of(
        extraction("Stage", "Closed Won", ("Deal", "StageName")),
        extraction("Amount", 1, ("Opportunity", "Amount")),
        extraction("Next", "Call", ("Opportunity", "NextStep")),
        extraction("Title", "CFO", ("Contact", "StageName")),
        conn=conn,
    )
    opp = update_for(plan, "Opportunity", "006A")
    assert {k: w.policy for k, w in opp.fields.items()} == {
        "stagename": "fill_empty", "amount": "protect_edits", "nextstep": "overwrite"}
    assert update_for(plan, "Contact", "003A").fields["stagename"].policy == "overwrite"


# -- whole-recording outcomes ---------------------------------------------------------------------


def test_crm_null_is_skipped_not_linked_with_no_fields():
    plan = plan_of(extraction("A", 1, ("Opportunity", "Amount")), crm=None)
    assert plan.skipped == "not_linked" and plan.failed is None
    assert plan.updates == [] and plan.decided == []


def test_crm_null_without_connection_is_still_just_skipped():
    rec = recording(extraction("A", 1, ("Opportunity", "Amount")), crm=None)
    plan = resolve(rec, None, {})
    assert plan.skipped == "not_linked" and plan.failed is None and plan.decided == []


def test_deleted_recording_is_skipped():
    plan = plan_of(extraction("A", 1, ("Opportunity", "Amount")), deleted=True)
    assert plan.skipped == "deleted" and plan.updates == [] and plan.decided == []


def test_deleted_recording_without_connection_is_skipped_not_failed():
    plan = resolve(recording(extraction("A", 1, ("Opportunity", "Amount")), deleted=True), None, {})
    assert plan.skipped == "deleted" and plan.failed is None


@pytest.mark.parametrize(
    "extractions",
    [[], [extraction("A", 1)], [{"name": "A", "value": 1, "mappings": None}], [{"name": "A", "value": 1}]],
)
def test_nothing_mapped(extractions):
    plan = plan_of(*extractions)
    assert plan.skipped == "nothing_mapped" and plan.updates == [] and plan.decided == []


def test_entity_extractions_null_is_nothing_mapped():
    rec = Recording.model_validate({"id": "rec-1", "crm": FULL_CRM, "entityExtractions": None})
    conn = connection()
    assert resolve(rec, conn, conn.model_map(SALESFORCE_MODELS)).skipped == "nothing_mapped"


def test_no_connection_fails_every_pair():
    rec = recording(
        extraction("Amount", 1, ("Opportunity", "Amount"), ("Account", "AnnualRevenue")),
        extraction("Title", "CFO", ("Contact", "Title")),
    )
    plan = resolve(rec, None, {})
    assert plan.failed == "no_connection" and plan.skipped is None and plan.updates == []
    assert [(r.field, r.outcome, r.extraction) for r in plan.decided] == [
        ("Amount", Outcome.FAILED, "Amount"),
        ("AnnualRevenue", Outcome.FAILED, "Amount"),
        ("Title", Outcome.FAILED, "Title"),
    ]
    assert all(r.reason.startswith("no_connection") and "conn-1" in r.reason for r in plan.decided)


def test_all_outcomes_together_account_for_every_pair():
    conn = connection(fields={"deny": ["Account.Name"]})
    crm = {"integrationConnectionId": "c", "opportunity": {"externalId": "006A"}, "account": {"externalId": "001A"}}
    plan = plan_of(
        extraction("ok", 1, ("Opportunity", "Amount")),
        extraction("unknown", 1, ("Quote", "X")),
        extraction("denied", "Acme", ("Account", "Name")),
        extraction("unlinked", "Open", ("Lead", "Status")),
        extraction("null", None, ("Opportunity", "NextStep")),
        conn=conn,
        crm=crm,
    )
    assert {r.extraction: r.outcome for r in plan.decided} == {
        "unknown": Outcome.UNKNOWN_MODEL,
        "denied": Outcome.SKIPPED_POLICY,
        "unlinked": Outcome.UNLINKED,
        "null": Outcome.NULL_VALUE,
    }
    assert written(plan) == {("Opportunity", "006A", "Amount", 1)}


def test_absurd_numbers_merge_without_crashing():
    plan = plan_of(
        extraction("A", "1e999999999", ("Opportunity", "Amount")),
        extraction("B", "1E+999999999", ("Opportunity", "Amount")),
        extraction("C", "0." + "1" * 40, ("Opportunity", "Probability")),
        extraction("D", "0." + "1" * 39, ("Opportunity", "Probability")),
    )
    assert update_for(plan, "Opportunity", "006A").fields["amount"].extractions == ("A", "B")
    # numbers that differ only past 28 digits still differ
    assert [group for _, group in update_for(plan, "Opportunity", "006A").fields["probability"].alternatives] == [
        ("C",), ("D",)]


def test_non_finite_values_agree_with_themselves():
    plan = plan_of(extraction("A", float("nan"), ("Opportunity", "Amount")),
                   extraction("B", float("nan"), ("Opportunity", "Amount")))
    assert plan.decided == []  # one planned write; validation then rejects NaN as invalid_value
    assert update_for(plan, "Opportunity", "006A").fields["amount"].extractions == ("A", "B")


def test_the_shipped_connectors_declare_the_design_model_maps():
    # The maps above are DESIGN §2's table; the connectors must agree with it.
    from connectors.hubspot import HubSpotConnector
    from connectors.salesforce import SalesforceConnector

    assert dict(SalesforceConnector.default_models) == SALESFORCE_MODELS
    assert dict(HubSpotConnector.default_models) == HUBSPOT_MODELS


def test_deny_and_policy_entries_may_name_the_object_by_a_model_alias():
    connection = ConnectionConfig.model_validate({
        "connector": "hubspot",
        "fields": {"deny": ["Deal.amount"], "policy": {"deal.dealname": "fill_empty"}},
    })
    models = {"deal": ModelTarget("opportunity", "deals"), "opportunity": ModelTarget("opportunity", "deals")}
    recording = Recording.model_validate({
        "id": "r", "crm": {"integrationConnectionId": "c", "opportunity": {"id": "o", "externalId": "42"}},
        "entityExtractions": [
            {"name": "A", "value": 5, "mappings": [{"crmModelName": "Opportunity", "crmFieldName": "amount"}]},
            {"name": "N", "value": "x", "mappings": [{"crmModelName": "Opportunity", "crmFieldName": "dealname"}]},
        ],
    })
    plan = resolve(recording, connection, models)
    assert [(r.field, r.outcome, r.reason) for r in plan.decided] == [("amount", Outcome.SKIPPED_POLICY, "deny")]
    assert plan.updates[0].fields["dealname"].policy == "fill_empty"
