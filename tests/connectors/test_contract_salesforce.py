"""The connector contract, run against ``SalesforceConnector`` on the Salesforce simulator (TLS)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
import requests

from connectors.base import SoftTimeLimit
from connectors.salesforce import SalesforceConnector
from connectors.testing import ConnectorContract, ContractSample, Failure, raise_once
from simulators.salesforce import SalesforceState, SeededIds


class TestSalesforceContract(ConnectorContract):
    @pytest.fixture
    def connector(self, salesforce_options: dict[str, Any],
                  salesforce_session: requests.Session) -> Iterator[SalesforceConnector]:
        connector = SalesforceConnector(salesforce_options, session=salesforce_session)
        yield connector
        connector.close()

    @pytest.fixture
    def sample(self, salesforce_ids: SeededIds) -> ContractSample:
        return ContractSample(
            object_name="Opportunity", text_field="NextStep", number_field="Amount", picklist_field="StageName",
            record_id=salesforce_ids.opportunity, other_record_id=salesforce_ids.opportunity2,
            missing_record_id=salesforce_ids.deleted_opportunity, read_only_field="ExpectedRevenue",
            more_fields=("Description", "Seats__c", "Competitors__c", "CloseDate", "Next_Meeting__c",
                         "Budget_Confirmed__c"),
        )

    @pytest.fixture
    def stored_value(self, salesforce_state: SalesforceState) -> Callable[[str, str, str], Any]:
        return lambda object_name, record_id, field: salesforce_state.get_record(object_name, record_id)[field]

    @pytest.fixture
    def fail_next(self, salesforce_state: SalesforceState, salesforce_token: str,
                  salesforce_session: requests.Session,
                  monkeypatch: pytest.MonkeyPatch) -> Callable[[Failure], float | None]:
        def fail(failure: Failure) -> float | None:
            if failure is Failure.SERVER_ERROR:
                salesforce_state.fail_next(503)
            elif failure is Failure.RATE_LIMIT:
                salesforce_state.fail_next(429, headers={"Retry-After": "7"})
                return 7.0
            elif failure is Failure.CREDENTIALS:
                salesforce_state.expire_token(salesforce_token)  # an access token cannot be renewed
            else:
                raise_once(monkeypatch, salesforce_session, "send", SoftTimeLimit())
            return None

        return fail
