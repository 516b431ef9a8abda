"""Sample recordings and CRM records for ``writeback demo`` and the benchmark.

Two in-person sales conversations, one linked through a Salesforce connection
and one through a HubSpot connection, chosen so that a single run shows most
outcomes: values written, values the CRM already holds, a restricted picklist
matched by label, a value the CRM cannot take, a calculated field, a
conflict, an unlinked slot, a deleted contact, and so on. Two more recordings
show the "not linked yet" and "deleted" cases.

Siro also lists four integration connections: the two the recordings are
linked through (served by the demo's config), an inactive one, and an active
one that no entry of the demo's config serves (``writeback connections``
and ``writeback check`` point it out).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.hubspot import HubSpotState
from simulators.salesforce import SalesforceState, SeededIds
from simulators.siro import SiroState

SALESFORCE_CONNECTION_ID = "ic_demo_salesforce"
HUBSPOT_CONNECTION_ID = "ic_demo_hubspot"
INACTIVE_CONNECTION_ID = "ic_demo_servicetitan"
UNSERVED_CONNECTION_ID = "ic_demo_spotio"


@dataclass(frozen=True)
class DemoRecordings:
    salesforce: str
    hubspot: str
    not_linked: str
    deleted: str

    @property
    def all(self) -> list[str]:
        return [self.salesforce, self.hubspot, self.not_linked, self.deleted]


def _x(name: str, value: object, *mappings: tuple[str, str]) -> dict:
    return SiroState.extraction(name, value, *mappings)


def seed_salesforce_recording(siro: SiroState, sf: SalesforceState, ids: SeededIds, recording_id: str) -> str:
    # A contact linked in Siro that was since deleted in Salesforce: its
    # fields fail with the CRM's reason; the other contact is still written.
    gone = sf.create_record("Contact", {"FirstName": "Old", "LastName": "Contact", "Name": "Old Contact"})
    sf.delete_record("Contact", gone)
    siro.add_recording(
        recording_id,
        title="Roof replacement - Acme Roofing (in-home visit)",
        entity_extractions=[
            _x("Project budget", "18,750", ("Opportunity", "Amount")),
            _x("Deal stage", "proposal/price quote", ("Opportunity", "StageName")),
            _x("Decision date", "2026-12-15T17:00:00-06:00", ("Opportunity", "CloseDate")),
            _x("Next step", "Send the revised quote by Friday", ("Opportunity", "NextStep")),
            _x("Budget confirmed", "yes", ("Opportunity", "Budget_Confirmed__c")),
            _x("Competitors mentioned", ["gong", "Clari"], ("Opportunity", "Competitors__c")),
            _x("Opportunity type", "New Customer", ("Deal", "Type")),
            _x("Opportunity type (recap)", "Existing Customer - Upgrade", ("Deal", "Type")),
            _x("Expected revenue", 15000, ("Opportunity", "ExpectedRevenue")),
            _x("Owner", "Riley Rep", ("Opportunity", "OwnerId")),
            _x("Homeowner role", "Homeowner", ("Contact", "Title")),
            _x("Spouse name", None, ("Contact", "Department")),
            _x("Industry", "construction", ("Account", "Industry")),
            _x("Employees", 120, ("Account", "NumberOfEmployees")),
            _x("Roof age", "22 years", ("Account", "Roof_Age__c")),
            _x("Lead source", "Partner Referral", ("Lead", "LeadSource")),
            _x("Visit notes", "Walked the roof; two layers of shingles, soft decking near the chimney.",
               ("Appointment", "Description")),
            _x("Financing", "interested", ("Financing__c", "Status__c")),
        ],
        summary=[
            {"id": "sum_sf_1", "name": "Overview",
             "content": "In-home visit with the homeowner about replacing a 22-year-old roof. Budget of "
                        "$18,750 confirmed; the decision is due by December 15."},
            {"id": "sum_sf_2", "name": "Concerns",
             "content": "Soft decking near the chimney & two layers of shingles to strip.\n"
                        "Compared quotes from Gong Roofing and Clari Exteriors."},
            {"id": "sum_sf_3", "name": "Next steps", "content": "Send the revised quote by Friday."},
        ],
    )
    siro.link(
        recording_id,
        integration_connection_id=SALESFORCE_CONNECTION_ID,
        opportunity=ids.opportunity,
        account=ids.account,
        contacts=[ids.contact, gone],
        engagement=ids.event,
        users=[ids.user],
    )
    return recording_id


def seed_hubspot_recording(siro: SiroState, hs: HubSpotState, recording_id: str) -> str:
    named = hs.named
    siro.add_recording(
        recording_id,
        title="Platform walkthrough - Acme Corp",
        entity_extractions=[
            _x("Project budget", 14200, ("Deal", "amount")),
            _x("Deal stage", "Contract Sent", ("Deal", "dealstage")),
            _x("Decision date", "2026-12-20T15:00:00-05:00", ("Deal", "closedate")),
            _x("Temperature", "hot", ("Deal", "deal_temperature")),
            _x("Competitors mentioned", "Globex;Initech", ("Deal", "competitors")),
            _x("Budget confirmed", "Y", ("Deal", "budget_confirmed")),
            _x("Forecast", 9000, ("Deal", "hs_forecast_amount")),
            _x("Priority", "urgent", ("Deal", "hs_priority")),
            _x("Job title", "VP Sales", ("Contact", "jobtitle")),
            _x("Pain points", "Reps forget to log visits; no view of field activity.", ("Contact", "pain_points")),
            _x("Meeting outcome", "completed", ("Meeting", "hs_meeting_outcome")),
            _x("Employees", "250", ("Company", "numberofemployees")),
            _x("Rep", "Jordan", ("User", "firstname")),
        ],
        summary=[
            {"id": "sum_hs_1", "name": "Overview",
             "content": "Walkthrough of the platform with the VP Sales of Acme Corp; the deal moves to "
                        "contract sent at $14,200."},
            {"id": "sum_hs_2", "name": "Next steps", "content": "Legal review of the contract; decision by December 20."},
        ],
    )
    siro.link(
        recording_id,
        integration_connection_id=HUBSPOT_CONNECTION_ID,
        opportunity=named["deal_acme"],
        account=named["company_acme"],
        contacts=[named["contact_jane"], named["contact_bob"]],
        engagement=named["meeting_acme_discovery"],
        users=["90210"],
    )
    return recording_id


def seed_connections(siro: SiroState) -> list[str]:
    """Siro's integration connections of the demo's organization (fixed dates: stable output).

    Salesforce is Siro's direct integration (``SALESFORCE``, a value of the
    spec's filter enum); HubSpot comes through Merge (``MERGE``).
    """
    seeded = [
        (SALESFORCE_CONNECTION_ID, "Acme Roofing Salesforce", "SALESFORCE", True, "00D5e000000AcmeEAA"),
        (HUBSPOT_CONNECTION_ID, "Acme Corp HubSpot", "MERGE", True, "merge_acct_acme_hubspot"),
        (INACTIVE_CONNECTION_ID, "ServiceTitan (retired)", "SERVICE_TITAN", False, "st_tenant_4471"),
        (UNSERVED_CONNECTION_ID, "Spotio canvassing team", "SPOTIO", True, "spotio_org_2290"),
    ]
    for day, (ident, name, platform, active, account) in enumerate(seeded, start=1):
        siro.add_connection(ident, name=name, integration_platform=platform, is_active=active,
                            external_account_id=account, created_at=f"2025-01-{day:02d}T09:00:00.000Z")
    return [ident for ident, *_ in seeded]


def seed_demo(siro: SiroState, sf: SalesforceState, sf_ids: SeededIds, hs: HubSpotState) -> DemoRecordings:
    """Add the demo's connections and recordings to ``siro`` (the CRMs must be seeded already)."""
    seed_connections(siro)
    salesforce = seed_salesforce_recording(siro, sf, sf_ids, "rec_demo_salesforce")
    hubspot = seed_hubspot_recording(siro, hs, "rec_demo_hubspot")
    siro.add_recording(
        "rec_demo_not_linked",
        title="Gutter estimate (not linked to the CRM yet)",
        entity_extractions=[_x("Project budget", 3200, ("Opportunity", "Amount"))],
    )
    siro.add_recording(
        "rec_demo_deleted",
        title="Deleted in Siro",
        entity_extractions=[_x("Project budget", 999, ("Opportunity", "Amount"))],
    )
    siro.link("rec_demo_deleted", integration_connection_id=SALESFORCE_CONNECTION_ID, opportunity=sf_ids.opportunity)
    siro.delete_recording("rec_demo_deleted")
    return DemoRecordings(salesforce, hubspot, "rec_demo_not_linked", "rec_demo_deleted")
