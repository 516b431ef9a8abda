"""The connector contract, run against the example plugin (tests/plugin_example) as pip installs it.

The plugin is found through its ``siro_writeback.connectors`` entry point, as
the service finds it; it cannot inject failures, so the error tests are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from connectors import registry
from connectors.base import Connector
from connectors.testing import ConnectorContract, ContractSample


@pytest.fixture(scope="module")
def plugin_class(installed_plugin: Path) -> type[Connector]:
    """The plugin's connector class, found through its entry point."""
    return registry.load("memory-crm")


class TestExamplePluginContract(ConnectorContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Path:
        path = tmp_path / "crm.json"
        path.write_text(json.dumps({"Deal": {"D-1": {"amount": 10, "stage": "new", "priority": "low"},
                                             "D-2": {"amount": 20, "stage": "won"}}}))
        return path

    @pytest.fixture
    def connector(self, plugin_class: type[Connector], store: Path) -> Connector:
        return plugin_class({"path": str(store)})

    @pytest.fixture
    def sample(self) -> ContractSample:
        return ContractSample(object_name="Deal", text_field="stage", number_field="amount",
                              picklist_field="priority", record_id="D-1", other_record_id="D-2",
                              missing_record_id="D-404", read_only_field="id")

    @pytest.fixture
    def stored_value(self, store: Path) -> Callable[[str, str, str], Any]:
        return lambda object_name, record_id, field: json.loads(store.read_text())[object_name][record_id].get(field)
