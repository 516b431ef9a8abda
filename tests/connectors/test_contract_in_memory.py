"""The connector contract, run against ``InMemoryConnector`` (the reference every other connector meets)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from connectors.base import AuthError, SoftTimeLimit, TransientError
from connectors.testing import (
    ConnectorContract,
    ContractSample,
    Failure,
    InMemoryConnector,
)
from tests.connectors.sample_crm import in_memory_crm


class TestInMemoryContract(ConnectorContract):
    @pytest.fixture
    def connector(self) -> InMemoryConnector:
        return in_memory_crm()

    @pytest.fixture
    def sample(self) -> ContractSample:
        return ContractSample(
            object_name="Opportunity", text_field="NextStep", number_field="Amount", picklist_field="StageName",
            record_id="006A", other_record_id="006B", missing_record_id="006-gone", read_only_field="ExpectedRevenue",
            more_fields=("Description", "Seats", "Competitors", "CloseDate", "NextMeeting", "BudgetConfirmed"),
        )

    @pytest.fixture
    def stored_value(self, connector: InMemoryConnector) -> Callable[[str, str, str], Any]:
        return lambda object_name, record_id, field: connector.record(object_name, record_id).get(field)

    @pytest.fixture
    def fail_next(self, connector: InMemoryConnector) -> Callable[[Failure], float | None]:
        def fail(failure: Failure) -> float | None:
            if failure is Failure.RATE_LIMIT:
                connector.fail_next(None, TransientError("429 rate limited", retry_after=7.0))
                return 7.0
            error = {Failure.SERVER_ERROR: TransientError("503 unavailable"),
                     Failure.CREDENTIALS: AuthError("401 token revoked"),
                     Failure.INTERRUPT: SoftTimeLimit()}[failure]
            connector.fail_next(None, error)
            return None

        return fail
