"""The connector contract, run against ``HubSpotConnector`` on the HubSpot simulator."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import urllib3

from connectors.base import SoftTimeLimit
from connectors.hubspot import HubSpotConnector
from connectors.testing import ConnectorContract, ContractSample, Failure, raise_once
from simulators.hubspot import DEFAULT_TOKEN, HubSpotState


class TestHubSpotContract(ConnectorContract):
    @pytest.fixture
    def connector(self, hubspot_connector: HubSpotConnector) -> HubSpotConnector:
        return hubspot_connector

    @pytest.fixture
    def sample(self, hubspot_state: HubSpotState) -> ContractSample:
        return ContractSample(
            object_name="deals", text_field="dealname", number_field="amount", picklist_field="deal_temperature",
            record_id=hubspot_state.named["deal_acme"], other_record_id=hubspot_state.named["deal_globex"],
            missing_record_id="999999999", read_only_field="hs_forecast_amount", unknown_object="no_such_objects",
            more_fields=("hs_next_step", "decision_makers", "competitors", "contract_start_date", "next_meeting_at",
                         "budget_confirmed"),
        )

    @pytest.fixture
    def stored_value(self, hubspot_state: HubSpotState) -> Callable[[str, str, str], Any]:
        return lambda object_name, record_id, field: hubspot_state.get_record(object_name, record_id).get(field)

    @pytest.fixture
    def fail_next(self, hubspot_state: HubSpotState,
                  monkeypatch: pytest.MonkeyPatch) -> Callable[[Failure], float | None]:
        def fail(failure: Failure) -> float | None:
            if failure is Failure.SERVER_ERROR:
                hubspot_state.fail_next(503)
            elif failure is Failure.RATE_LIMIT:
                # As HubSpot does: no Retry-After, the rolling window in X-HubSpot-RateLimit-Interval-Milliseconds.
                hubspot_state.rate_limit(0, interval_s=7)
                return 7.0
            elif failure is Failure.CREDENTIALS:
                hubspot_state.expire_token(DEFAULT_TOKEN)
            else:
                # hubspot-api-client sends every request through a urllib3 pool manager
                raise_once(monkeypatch, urllib3.PoolManager, "urlopen", SoftTimeLimit())
            return None

        return fail
