"""The default portal: deals with two pipelines whose closed stages share their labels, companies,
contacts, leads and meetings, with a few named records (``seed_default_portal``).

The portal is data: ``DEFAULT_TYPES`` (object types, their properties in
display order, their pipelines) and ``DEFAULT_RECORDS`` (created in order,
so their ids are stable: 10000000001, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulators.hubspot.notes import add_notes_type
from simulators.hubspot.state import HubSpotState

DEAL_STAGES_DEFAULT = [
    ("appointmentscheduled", "Appointment Scheduled", {"isClosed": "false", "probability": "0.2"}),
    ("qualifiedtobuy", "Qualified To Buy", {"isClosed": "false", "probability": "0.4"}),
    ("presentationscheduled", "Presentation Scheduled", {"isClosed": "false", "probability": "0.6"}),
    ("decisionmakerboughtin", "Decision Maker Bought-In", {"isClosed": "false", "probability": "0.8"}),
    ("contractsent", "Contract Sent", {"isClosed": "false", "probability": "0.9"}),
    ("closedwon", "Closed Won", {"isClosed": "true", "probability": "1.0"}),
    ("closedlost", "Closed Lost", {"isClosed": "true", "probability": "0.0"}),
]
RENEWALS_PIPELINE = "19826473"
# As in real portals: a pipeline created after the default one gets numeric
# stage ids, and HubSpot seeds it with "Closed Won" / "Closed Lost" stages, so
# those labels exist in every deal pipeline and only the deal's pipeline tells
# which stage a label means.
DEAL_STAGES_RENEWALS = [
    ("61342871", "Renewal Discovery", {"isClosed": "false", "probability": "0.3"}),
    ("61342872", "Renewal Proposal", {"isClosed": "false", "probability": "0.7"}),
    ("61342873", "Closed Won", {"isClosed": "true", "probability": "1.0"}),
    ("61342874", "Closed Lost", {"isClosed": "true", "probability": "0.0"}),
]
LEAD_STAGES = [
    ("new-stage-id", "New"),
    ("attempting-stage-id", "Attempting"),
    ("connected-stage-id", "Connected"),
    ("qualified-stage-id", "Qualified"),
    ("unqualified-stage-id", "Disqualified"),
]

_Property = tuple[str, str, str, dict[str, Any]]  # name, type, fieldType, the rest of add_property's arguments


def _prop(name: str, type: str, field_type: str, label: str, **rest: Any) -> _Property:
    return name, type, field_type, {"label": label, **rest}


_OWNER = _prop("hubspot_owner_id", "enumeration", "select", "Owner", external_options=True,
               referenced_object_type="OWNER")
_SIRO = {"hubspot_defined": False, "group_name": "siro"}  # custom properties the demo's mappings write

_DEAL_PROPERTIES = (
    _prop("dealname", "string", "text", "Deal Name", form_field=True),
    _prop("amount", "number", "number", "Amount"),
    # As in real portals, closedate is a datetime shown as a date picker.
    _prop("closedate", "datetime", "date", "Close Date"),
    _prop("contract_start_date", "date", "date", "Contract Start Date", **_SIRO),
    _prop("dealstage", "enumeration", "radio", "Deal Stage", external_options=True),
    _prop("pipeline", "enumeration", "select", "Pipeline", external_options=True),
    _prop("description", "string", "textarea", "Deal Description"),
    _prop("hs_next_step", "string", "textarea", "Next step"),
    _prop("dealtype", "enumeration", "radio", "Deal Type",
          options=[("newbusiness", "New Business"), ("existingbusiness", "Existing Business")]),
    _prop("hs_priority", "enumeration", "select", "Priority",
          options=[("low", "Low"), ("medium", "Medium"), ("high", "High")]),
    _prop("deal_temperature", "enumeration", "select", "Deal Temperature", **_SIRO,
          options=[("hot", "Hot"), ("warm", "Warm"), ("cold", "Cold"),
                   {"value": "frozen", "label": "Frozen", "hidden": True}]),
    _prop("competitors", "enumeration", "checkbox", "Competitors Mentioned", **_SIRO,
          options=[("acme_rival", "Acme Rival"), ("globex", "Globex"), ("initech", "Initech"),
                   ("umbrella", "Umbrella Corp")]),
    _prop("budget_confirmed", "bool", "booleancheckbox", "Budget Confirmed", **_SIRO,
          options=[("true", "Yes"), ("false", "No")]),
    _prop("next_meeting_at", "datetime", "date", "Next Meeting At", **_SIRO),
    _prop("decision_makers", "number", "number", "Decision Makers", **_SIRO),
    _prop("hs_deal_stage_probability", "number", "number", "Deal probability", read_only_value=True),
    _prop("hs_forecast_amount", "number", "calculation_equation", "Forecast amount", calculated=True),
    _prop("hs_is_closed", "bool", "booleancheckbox", "Is Deal Closed?", calculated=True,
          options=[("true", "True"), ("false", "False")]),
    _OWNER,
)
_COMPANY_PROPERTIES = (
    _prop("name", "string", "text", "Company name", form_field=True),
    _prop("domain", "string", "text", "Company Domain Name", form_field=True),
    _prop("industry", "enumeration", "select", "Industry",
          options=[("COMPUTER_SOFTWARE", "Computer Software"),
                   ("INFORMATION_TECHNOLOGY_AND_SERVICES", "Information Technology and Services"),
                   ("MARKETING_AND_ADVERTISING", "Marketing and Advertising"),
                   ("FINANCIAL_SERVICES", "Financial Services"),
                   ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
                   ("CONSTRUCTION", "Construction")]),
    _prop("type", "enumeration", "select", "Type",
          options=[("PROSPECT", "Prospect"), ("PARTNER", "Partner"), ("RESELLER", "Reseller"), ("VENDOR", "Vendor"),
                   ("OTHER", "Other")]),
    _prop("numberofemployees", "number", "number", "Number of Employees"),
    _prop("annualrevenue", "number", "number", "Annual Revenue"),
    _prop("description", "string", "textarea", "Description"),
    _prop("phone", "string", "phonenumber", "Phone Number"),
    _prop("city", "string", "text", "City"),
    _prop("country", "string", "text", "Country/Region"),
    _prop("num_associated_deals", "number", "number", "Number of Associated Deals", calculated=True),
    _OWNER,
)
_CONTACT_PROPERTIES = (
    _prop("firstname", "string", "text", "First Name", form_field=True),
    _prop("lastname", "string", "text", "Last Name", form_field=True),
    _prop("email", "string", "text", "Email", form_field=True, has_unique_value=False),
    _prop("phone", "string", "phonenumber", "Phone Number", form_field=True),
    _prop("mobilephone", "phone_number", "phonenumber", "Mobile Phone Number"),
    _prop("jobtitle", "string", "text", "Job Title", form_field=True),
    _prop("lifecyclestage", "enumeration", "radio", "Lifecycle Stage",
          options=[("subscriber", "Subscriber"), ("lead", "Lead"),
                   ("marketingqualifiedlead", "Marketing Qualified Lead"),
                   ("salesqualifiedlead", "Sales Qualified Lead"), ("opportunity", "Opportunity"),
                   ("customer", "Customer"), ("evangelist", "Evangelist"), ("other", "Other")]),
    _prop("hs_lead_status", "enumeration", "radio", "Lead Status",
          options=[("NEW", "New"), ("OPEN", "Open"), ("IN_PROGRESS", "In Progress"), ("OPEN_DEAL", "Open Deal"),
                   ("UNQUALIFIED", "Unqualified"), ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
                   ("CONNECTED", "Connected"), ("BAD_TIMING", "Bad Timing")]),
    _prop("pain_points", "string", "textarea", "Pain Points", **_SIRO),
    _prop("notes_last_contacted", "datetime", "date", "Last Contacted", read_only_value=True),
    _OWNER,
)
_LEAD_PROPERTIES = (
    _prop("hs_lead_name", "string", "text", "Lead name"),
    _prop("hs_pipeline", "enumeration", "select", "Pipeline", external_options=True),
    _prop("hs_pipeline_stage", "enumeration", "select", "Lead stage", external_options=True),
    _prop("hs_lead_type", "enumeration", "select", "Lead type",
          options=[("NEW_BUSINESS", "New Business"), ("UPSELL", "Upsell"), ("RE_ATTEMPTING", "Re-attempting")]),
    _prop("hs_lead_label", "enumeration", "select", "Lead label",
          options=[("COLD", "Cold"), ("WARM", "Warm"), ("HOT", "Hot")]),
    _OWNER,
)
_MEETING_PROPERTIES = (
    _prop("hs_meeting_title", "string", "text", "Meeting name"),
    _prop("hs_meeting_body", "string", "html", "Meeting description"),
    _prop("hs_internal_meeting_notes", "string", "html", "Internal meeting notes"),
    _prop("hs_meeting_outcome", "enumeration", "select", "Meeting outcome",
          options=[("SCHEDULED", "Scheduled"), ("COMPLETED", "Completed"), ("RESCHEDULED", "Rescheduled"),
                   ("NO_SHOW", "No Show"), ("CANCELED", "Canceled")]),
    _prop("hs_meeting_start_time", "datetime", "date", "Start Time"),
    _prop("hs_meeting_end_time", "datetime", "date", "End Time"),
    _prop("hs_timestamp", "datetime", "date", "Activity date"),
    _prop("hs_meeting_location", "string", "text", "Location"),
    _prop("hs_activity_type", "enumeration", "select", "Call and meeting type",
          options=[("Discovery call", "Discovery call"), ("Demo", "Demo"), ("Follow up", "Follow up")]),
    _OWNER,
)


@dataclass(frozen=True)
class _SeedType:
    """One object type of the default portal: ``add_object_type``'s arguments, properties, pipelines."""

    name: str
    type_id: str
    singular: str
    alias: str
    default_properties: tuple[str, ...]
    properties: tuple[_Property, ...]
    pipeline_property: str | None = None
    stage_property: str | None = None
    pipelines: tuple[tuple[str, str, list[Any]], ...] = ()  # (id, label, stages)


DEFAULT_TYPES = (
    _SeedType("deals", "0-3", "DEAL", "deal", ("dealname", "amount", "closedate", "pipeline", "dealstage"),
              _DEAL_PROPERTIES,
              pipeline_property="pipeline", stage_property="dealstage",
              pipelines=(("default", "Sales Pipeline", DEAL_STAGES_DEFAULT),
                         (RENEWALS_PIPELINE, "Enterprise Renewals", DEAL_STAGES_RENEWALS))),
    _SeedType("companies", "0-2", "COMPANY", "company", ("name", "domain"), _COMPANY_PROPERTIES),
    _SeedType("contacts", "0-1", "CONTACT", "contact", ("firstname", "lastname", "email"), _CONTACT_PROPERTIES),
    _SeedType("leads", "0-136", "LEAD", "lead", ("hs_lead_name",), _LEAD_PROPERTIES,
              pipeline_property="hs_pipeline", stage_property="hs_pipeline_stage",
              pipelines=(("lead-pipeline-id", "Lead pipeline", LEAD_STAGES),)),
    _SeedType("meetings", "0-47", "MEETING_EVENT", "meeting",
              ("hs_meeting_title", "hs_meeting_start_time"), _MEETING_PROPERTIES),
)

#: (object type, name in ``state.named``, property values), created in this order
DEFAULT_RECORDS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("companies", "company_acme", {"name": "Acme Corp", "domain": "acme.example", "industry": "COMPUTER_SOFTWARE",
                                   "numberofemployees": "250", "city": "Boston", "type": "PROSPECT"}),
    ("companies", "company_globex", {"name": "Globex", "domain": "globex.example", "industry": "FINANCIAL_SERVICES"}),
    ("contacts", "contact_jane", {"firstname": "Jane", "lastname": "Doe", "email": "jane@acme.example",
                                  "jobtitle": "VP Sales", "lifecyclestage": "opportunity"}),
    ("contacts", "contact_bob", {"firstname": "Bob", "lastname": "Smith", "email": "bob@acme.example"}),
    ("contacts", "contact_ana", {"firstname": "Ana", "lastname": "Lopez", "email": "ana@globex.example",
                                 "hs_lead_status": "OPEN"}),
    ("deals", "deal_acme", {"dealname": "Acme - Platform", "amount": "12500", "closedate": "2026-12-31T17:00:00.000Z",
                            "contract_start_date": "2026-12-31",
                            "pipeline": "default", "dealstage": "qualifiedtobuy", "dealtype": "newbusiness",
                            "hs_deal_stage_probability": "0.4", "hs_forecast_amount": "5000", "hs_is_closed": "false"}),
    ("deals", "deal_globex", {"dealname": "Globex - Expansion", "amount": "48000", "pipeline": "default",
                              "dealstage": "presentationscheduled", "deal_temperature": "warm",
                              "competitors": "initech", "hs_deal_stage_probability": "0.6",
                              "hs_forecast_amount": "28800", "hs_is_closed": "false"}),
    ("deals", "deal_initech", {"dealname": "Initech - Renewal 2027", "amount": "30000", "pipeline": RENEWALS_PIPELINE,
                               "dealstage": "61342871", "hs_is_closed": "false"}),
    ("deals", "deal_umbrella", {"dealname": "Umbrella - Pilot", "pipeline": "default",
                                "dealstage": "appointmentscheduled", "hs_is_closed": "false"}),
    ("leads", "lead_hooli", {"hs_lead_name": "Hooli inbound", "hs_pipeline": "lead-pipeline-id",
                             "hs_pipeline_stage": "new-stage-id", "hs_lead_label": "WARM"}),
    ("meetings", "meeting_acme_discovery", {"hs_meeting_title": "Acme discovery call",
                                            "hs_meeting_outcome": "SCHEDULED",
                                            "hs_meeting_start_time": "2026-11-20T15:00:00.000Z",
                                            "hs_meeting_end_time": "2026-11-20T15:30:00.000Z",
                                            "hs_timestamp": "2026-11-20T15:00:00.000Z"}),
    ("meetings", "meeting_globex_demo", {"hs_meeting_title": "Globex demo", "hs_meeting_outcome": "SCHEDULED",
                                         "hs_meeting_start_time": "2026-11-21T17:00:00.000Z",
                                         "hs_timestamp": "2026-11-21T17:00:00.000Z"}),
)


def seed_default_portal(state: HubSpotState | None = None) -> HubSpotState:
    """Fill ``state`` (or a new one) with a realistic portal; returns it.

    Named records (``state.named``): ``deal_acme``, ``deal_globex``,
    ``deal_initech`` (renewals pipeline), ``deal_umbrella``, ``company_acme``,
    ``company_globex``, ``contact_jane``, ``contact_bob``, ``contact_ana``,
    ``lead_hooli``, ``meeting_acme_discovery``, ``meeting_globex_demo``.
    """
    state = state or HubSpotState()
    for spec in DEFAULT_TYPES:
        _add_type(state, spec)
    add_notes_type(state)  # notes (0-46): no records, and associations to deals, companies and contacts
    for object_type, name, values in DEFAULT_RECORDS:
        state.add_record(object_type, values, name=name)
    return state


def _add_type(state: HubSpotState, spec: _SeedType) -> None:
    state.add_object_type(spec.name, spec.type_id, spec.singular, aliases=(spec.alias,),
                          pipeline_property=spec.pipeline_property, stage_property=spec.stage_property,
                          default_properties=spec.default_properties)
    for name, type, field_type, rest in spec.properties:
        state.add_property(spec.name, name, type, field_type, **rest)
    for pipeline_id, label, stages in spec.pipelines:
        state.add_pipeline(spec.name, pipeline_id, label, stages)
