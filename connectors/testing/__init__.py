"""A test kit for connector authors: an in-memory CRM, and the contract every connector passes.

``InMemoryConnector``
    A complete, strict CRM kept in memory: for a plugin author's first steps,
    and for tests of the pipeline that are not about a wire protocol::

        from connectors.base import FieldSchema, FieldType, Option, TransientError
        from connectors.testing import InMemoryConnector

        crm = InMemoryConnector(
            {"Opportunity": [FieldSchema("NextStep", FieldType.STRING, max_length=255),
                             FieldSchema("StageName", FieldType.PICKLIST, restricted=True,
                                         options=(Option("Prospecting", "Prospecting"),))]},
            {"Opportunity": {"006A": {"NextStep": "Call", "StageName": "Prospecting"}}},
        )
        crm.fail_next("write", TransientError("busy", retry_after=2))   # the next write request fails
        ...                                                              # run the code under test
        assert crm.record("Opportunity", "006A")["NextStep"] == "Send the quote"
        assert [r.kind for r in crm.requests] == ["schema", "read", "write", "write"]

    Records hold wire values (what ``encode`` returns); ``write`` refuses, field
    by field, what a strict CRM would refuse (see ``InMemoryConnector.write``).

``ConnectorContract``
    The behaviour the pipeline relies on, as pytest tests. A connector's test
    module subclasses it and provides three fixtures (and a fourth, optional,
    for the error tests); every test then runs against that connector::

        import pytest
        import requests
        from connectors.base import SoftTimeLimit
        from connectors.testing import ConnectorContract, ContractSample, Failure, raise_once
        from writeback_pipedrive import PipedriveConnector

        class TestPipedriveContract(ConnectorContract):
            @pytest.fixture
            def connector(self, sandbox):            # a connector on a freshly seeded backend
                connector = PipedriveConnector({"api_url": sandbox.url, "api_token": "t0ken"})
                yield connector
                connector.close()

            @pytest.fixture
            def sample(self, sandbox):               # what the tests write to and read from
                return ContractSample(object_name="deals", text_field="title", number_field="value",
                                      picklist_field="status", record_id="1", other_record_id="2",
                                      missing_record_id="404", read_only_field="add_time")

            @pytest.fixture
            def stored_value(self, sandbox):         # straight from the backend, not through the connector
                return lambda object_name, record_id, field: sandbox.record(object_name, record_id)[field]

            @pytest.fixture
            def fail_next(self, sandbox, monkeypatch):   # optional: without it the error tests are skipped
                def fail(failure: Failure) -> float | None:
                    if failure is Failure.SERVER_ERROR:
                        sandbox.fail_next(503)
                    elif failure is Failure.RATE_LIMIT:
                        sandbox.fail_next(429, headers={"Retry-After": "7"})
                        return 7.0                   # the retry_after the connector must report
                    elif failure is Failure.CREDENTIALS:
                        sandbox.revoke_tokens()
                    else:                            # INTERRUPT
                        raise_once(monkeypatch, requests.Session, "send", SoftTimeLimit())
                    return None
                return fail

    Add ``pytest.register_assert_rewrite("connectors.testing")`` to your
    ``conftest.py`` for pytest's detailed assertion messages.

The modules: ``memory`` (``InMemoryConnector``, ``Request``), ``contract``
(``ConnectorContract``, ``ContractSample``, ``Failure``, ``raise_once``) and
``values`` (``comparable``, ``sample_value``); import them all from here.

Imports nothing from ``worker``: like ``connectors.base``, it is the plugin
seam. It imports pytest: it belongs in tests, never in a deployed process.
"""

from connectors.testing.contract import (
           ConnectorContract,
           ContractSample,
           Failure,
           raise_once,
)
from connectors.testing.memory import InMemoryConnector, Request
from connectors.testing.values import comparable, sample_value

__all__ = ["ConnectorContract", "ContractSample", "Failure", "InMemoryConnector", "Request", "comparable",
           "raise_once", "sample_value"]
