"""The connector contract, run against the example plugin (tests/plugin_example) as pip installs it.

The plugin is found through its ``siro_writeback.connectors`` entry point, as
the service finds it; it cannot inject failures, so the error tests are skipped.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from connectors import registry
from connectors.base import Connector
from connectors.testing import ConnectorContract, ContractSample

PLUGIN_SOURCE = Path(__file__).parents[1] / "plugin_example"


@pytest.fixture(scope="module")
def plugin_class(tmp_path_factory: pytest.TempPathFactory) -> Iterator[type[Connector]]:
    """The plugin's connector class, pip-installed into a folder put on sys.path."""
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PLUGIN_SOURCE, work / "src")
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(work / "src")], check=True)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield registry.load("memory-crm")
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("writeback_memory_crm", None)
        importlib.invalidate_caches()


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
