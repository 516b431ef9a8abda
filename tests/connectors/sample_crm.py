"""An ``InMemoryConnector`` shaped like a Salesforce org's Opportunity: one field of every type."""

from __future__ import annotations

from typing import Any

from connectors.base import FieldSchema, FieldType, Option
from connectors.testing import InMemoryConnector

STAGES = tuple(Option(value, value) for value in ("Prospecting", "Qualification", "Closed Won"))
COMPETITORS = tuple(Option(value, value) for value in ("Gong", "Chorus", "Clari"))

OPPORTUNITY = [
    FieldSchema("Name", FieldType.STRING, max_length=120, nillable=False),
    FieldSchema("NextStep", FieldType.STRING, max_length=255),
    FieldSchema("Description", FieldType.TEXT, max_length=32000),
    FieldSchema("Amount", FieldType.NUMBER, precision=18, scale=2),
    FieldSchema("Seats", FieldType.INTEGER, precision=9, scale=0),
    FieldSchema("StageName", FieldType.PICKLIST, options=STAGES + (Option("Legacy", "Legacy", active=False),),
                restricted=True, nillable=False),
    FieldSchema("Competitors", FieldType.MULTIPICKLIST, options=COMPETITORS, restricted=True),
    FieldSchema("CloseDate", FieldType.DATE),
    FieldSchema("NextMeeting", FieldType.DATETIME, scale=0),
    FieldSchema("BudgetConfirmed", FieldType.BOOLEAN, nillable=False),
    FieldSchema("ExpectedRevenue", FieldType.NUMBER, writable=False, not_writable_reason="calculated"),
]
RECORDS = {
    "Opportunity": {
        "006A": {"Name": "Acme renewal", "NextStep": "Send proposal", "Amount": 12500, "StageName": "Qualification",
                 "BudgetConfirmed": False},
        "006B": {"Name": "Acme expansion", "StageName": "Prospecting", "BudgetConfirmed": False},
    }
}


def in_memory_crm(**kwargs: Any) -> InMemoryConnector:
    return InMemoryConnector({"Opportunity": OPPORTUNITY}, RECORDS, **kwargs)
