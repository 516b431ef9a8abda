"""The default org: Opportunity, Account, Contact, Lead, Event and User as a typical org has them,
and a small, realistic set of records (``seed_default``).

The schema is a table (``DEFAULT_OBJECTS``); ``seed_default_schema`` copies it
into a state, so each state owns its fields and a test may change them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

from simulators.salesforce.notes import seed_notes_schema
from simulators.salesforce.schema import PicklistValue, SFField
from simulators.salesforce.state import SalesforceState


def _picklist(*values: str, inactive: Sequence[str] = ()) -> list[PicklistValue]:
    out = [PicklistValue(value, value) for value in values]
    out += [PicklistValue(value, value, active=False) for value in inactive]
    return out


OPPORTUNITY_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
                      "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost")

_AUDIT = (
    SFField("CreatedDate", "datetime", "Created Date", updateable=False, createable=False, nillable=False),
    SFField("LastModifiedDate", "datetime", "Last Modified Date", updateable=False, createable=False,
            nillable=False),
    SFField("SystemModstamp", "datetime", "System Modstamp", updateable=False, createable=False, nillable=False),
)
_OWNER = SFField("OwnerId", "reference", "Owner ID", nillable=False, length=18, reference_to=("User",))

_OPPORTUNITY = (
    SFField("Name", "string", "Name", nillable=False, length=120),
    SFField("AccountId", "reference", "Account ID", length=18, reference_to=("Account",)),
    SFField("StageName", "picklist", "Stage", nillable=False, length=255,
            picklist_values=_picklist(*OPPORTUNITY_STAGES, inactive=("Legacy Stage",)),
            restricted_picklist=True),
    SFField("Amount", "currency", "Amount", precision=18, scale=2),
    SFField("CloseDate", "date", "Close Date", nillable=False),
    SFField("Description", "textarea", "Description", length=32000),
    SFField("NextStep", "string", "Next Step", length=255),
    SFField("Type", "picklist", "Opportunity Type", length=255, picklist_values=_picklist(
        "Existing Customer - Upgrade", "Existing Customer - Replacement", "Existing Customer - Downgrade",
        "New Customer")),
    SFField("LeadSource", "picklist", "Lead Source", length=255,
            picklist_values=_picklist("Web", "Phone Inquiry", "Partner Referral", "Other")),
    SFField("Probability", "percent", "Probability (%)", precision=3, scale=0),
    SFField("ExpectedRevenue", "currency", "Expected Amount", updateable=False, createable=False,
            calculated=True, precision=18, scale=2),
    SFField("IsClosed", "boolean", "Closed", updateable=False, createable=False, nillable=False),
    SFField("Competitors__c", "multipicklist", "Competitors", length=4099,
            picklist_values=_picklist("Gong", "Chorus", "Clari", "Outreach", "Other", inactive=("Legacy",)),
            restricted_picklist=True),
    SFField("Budget_Confirmed__c", "boolean", "Budget Confirmed", nillable=False),
    SFField("Seats__c", "int", "Seats", digits=9),
    SFField("Next_Meeting__c", "datetime", "Next Meeting"),
    SFField("Pain_Points__c", "textarea", "Pain Points", length=1000),
    _OWNER,
    *_AUDIT,
)
_ACCOUNT = (
    SFField("Name", "string", "Account Name", nillable=False, length=255),
    SFField("Industry", "picklist", "Industry", length=255,
            picklist_values=_picklist("Agriculture", "Banking", "Construction", "Energy", "Retail", "Technology")),
    SFField("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
    SFField("NumberOfEmployees", "int", "Employees", digits=8),
    SFField("Website", "url", "Website", length=255),
    SFField("Phone", "phone", "Account Phone", length=40),
    SFField("Description", "textarea", "Account Description", length=32000),
    SFField("BillingCity", "string", "Billing City", length=40),
    SFField("BillingAddress", "address", "Billing Address", updateable=False, createable=False),
    SFField("Rating", "picklist", "Account Rating", length=255, picklist_values=_picklist("Hot", "Warm", "Cold")),
    SFField("Roofing_Material__c", "combobox", "Roofing Material", length=255,
            picklist_values=_picklist("Asphalt Shingle", "Metal", "Tile", "Slate")),
    _OWNER,
    *_AUDIT,
)
_CONTACT = (
    SFField("FirstName", "string", "First Name", length=40),
    SFField("LastName", "string", "Last Name", nillable=False, length=80),
    SFField("Name", "string", "Full Name", updateable=False, createable=False, nillable=False, length=121),
    SFField("AccountId", "reference", "Account ID", length=18, reference_to=("Account",)),
    SFField("Email", "email", "Email", length=80),
    SFField("Phone", "phone", "Business Phone", length=40),
    SFField("Title", "string", "Title", length=128),
    SFField("Department", "string", "Department", length=80),
    SFField("Description", "textarea", "Contact Description", length=32000),
    SFField("Birthdate", "date", "Birthdate"),
    SFField("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False),
    _OWNER,
    *_AUDIT,
)
_LEAD = (
    SFField("FirstName", "string", "First Name", length=40),
    SFField("LastName", "string", "Last Name", nillable=False, length=80),
    SFField("Company", "string", "Company", nillable=False, length=255),
    SFField("Email", "email", "Email", length=80),
    SFField("Phone", "phone", "Phone", length=40),
    SFField("Status", "picklist", "Lead Status", nillable=False, length=255, restricted_picklist=True,
            picklist_values=_picklist("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                                      "Closed - Not Converted")),
    SFField("Rating", "picklist", "Rating", length=255, picklist_values=_picklist("Hot", "Warm", "Cold")),
    SFField("NumberOfEmployees", "int", "Employees", digits=8),
    SFField("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
    SFField("Description", "textarea", "Description", length=32000),
    SFField("Address", "address", "Address", updateable=False, createable=False),
    _OWNER,
    *_AUDIT,
)
_EVENT = (
    SFField("Subject", "combobox", "Subject", length=255,
            picklist_values=_picklist("Call", "Email", "Meeting", "Send Letter/Quote", "Other")),
    SFField("StartDateTime", "datetime", "Start Date Time"),
    SFField("EndDateTime", "datetime", "End Date Time"),
    SFField("ActivityDate", "date", "Due Date Only"),
    SFField("DurationInMinutes", "int", "Duration", digits=8),
    SFField("Location", "string", "Location", length=255),
    SFField("Description", "textarea", "Description", length=32000),
    SFField("Type", "picklist", "Type", length=255,
            picklist_values=_picklist("Call", "Email", "Meeting", "Other")),
    SFField("WhatId", "reference", "Related To ID", length=18, reference_to=("Opportunity", "Account")),
    SFField("WhoId", "reference", "Name ID", length=18, reference_to=("Contact", "Lead")),
    _OWNER,
    *_AUDIT,
)
_USER = (
    SFField("Username", "string", "Username", nillable=False, length=80),
    SFField("FirstName", "string", "First Name", length=40),
    SFField("LastName", "string", "Last Name", nillable=False, length=80),
    SFField("Name", "string", "Full Name", updateable=False, createable=False, nillable=False, length=121),
    SFField("Email", "email", "Email", nillable=False, length=128),
    SFField("Title", "string", "Title", length=80),
    SFField("Department", "string", "Department", length=80),
    SFField("AboutMe", "textarea", "About Me", length=1000),
    SFField("IsActive", "boolean", "Active", nillable=False),
    *_AUDIT,
)

#: (object name = label, key prefix, fields), in the order describe lists them
DEFAULT_OBJECTS: tuple[tuple[str, str, tuple[SFField, ...]], ...] = (
    ("Opportunity", "006", _OPPORTUNITY),
    ("Account", "001", _ACCOUNT),
    ("Contact", "003", _CONTACT),
    ("Lead", "00Q", _LEAD),
    ("Event", "00U", _EVENT),
    ("User", "005", _USER),
)


def seed_default_schema(state: SalesforceState) -> None:
    """Opportunity, Account, Contact, Lead, Event and User as a typical org has them, and notes."""
    # One deep copy of the whole table: the state gets fields of its own (SFField is mutable), and
    # its objects still share one OwnerId and one set of audit fields, as they always have.
    for name, key_prefix, fields in copy.deepcopy(DEFAULT_OBJECTS):
        state.add_object(name, key_prefix, fields, label=name)
    seed_notes_schema(state)


@dataclass(frozen=True)
class SeededIds:
    """Ids (18-character) of the records ``seed_default`` creates."""

    opportunity: str
    opportunity2: str
    account: str
    contact: str
    contact2: str
    lead: str
    event: str
    user: str
    deleted_opportunity: str


def seed_default(state: SalesforceState) -> SeededIds:
    """The default schema plus a small, realistic set of records."""
    seed_default_schema(state)
    user = state.create_record("User", {"Username": "rep@acme.example", "FirstName": "Riley", "LastName": "Rep",
                                        "Name": "Riley Rep", "Email": "rep@acme.example", "IsActive": True})
    account = state.create_record("Account", {"Name": "Acme Roofing", "Industry": "Construction", "OwnerId": user,
                                              "NumberOfEmployees": 120, "BillingCity": "Austin"})
    opportunity = state.create_record("Opportunity", {
        "Name": "Acme Roofing - Renewal", "AccountId": account, "StageName": "Qualification", "Amount": 12500,
        "CloseDate": "2024-05-01", "NextStep": "Send proposal", "Probability": 20, "ExpectedRevenue": 2500,
        "Competitors__c": "Gong;Chorus", "Budget_Confirmed__c": False, "Seats__c": 25,
        "Next_Meeting__c": "2024-05-01T10:00:00.000+0000", "OwnerId": user})
    opportunity2 = state.create_record("Opportunity", {
        "Name": "Acme Roofing - Expansion", "AccountId": account, "StageName": "Prospecting",
        "CloseDate": "2024-09-30", "OwnerId": user})
    contact = state.create_record("Contact", {"FirstName": "Dana", "LastName": "Diaz", "Name": "Dana Diaz",
                                              "AccountId": account, "Email": "dana@acme.example", "OwnerId": user})
    contact2 = state.create_record("Contact", {"FirstName": "Sam", "LastName": "Lee", "Name": "Sam Lee",
                                               "AccountId": account, "OwnerId": user})
    lead = state.create_record("Lead", {"FirstName": "Pat", "LastName": "Moore", "Company": "Moore Homes",
                                        "Status": "Open - Not Contacted", "OwnerId": user})
    event = state.create_record("Event", {"Subject": "Meeting", "StartDateTime": "2024-04-20T15:00:00.000+0000",
                                          "EndDateTime": "2024-04-20T16:00:00.000+0000",
                                          "DurationInMinutes": 60, "WhatId": opportunity, "OwnerId": user})
    deleted = state.create_record("Opportunity", {"Name": "Old deal", "StageName": "Closed Lost",
                                                  "CloseDate": "2023-01-31", "OwnerId": user})
    state.delete_record("Opportunity", deleted)
    return SeededIds(opportunity=opportunity, opportunity2=opportunity2, account=account, contact=contact,
                     contact2=contact2, lead=lead, event=event, user=user, deleted_opportunity=deleted)
