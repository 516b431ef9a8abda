"""Connector plugins are found through a real ``siro_writeback.connectors`` entry point.

The example plugin in ``tests/plugin_example`` is installed with pip into a
private folder, then loaded by name and driven through the real pipeline.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from connectors import registry
from worker.errors import ConfigError
from worker.limits.backoff import RetryPolicy
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.runner import Pipeline
from worker.settings import parse_config
from worker.siro.models import Recording


def test_the_built_in_connectors_are_registered_as_entry_points():
    names = {entry.name for entry in importlib.metadata.entry_points(group=registry.GROUP)}
    assert {"salesforce", "hubspot"} <= names


def test_an_installed_plugin_is_loaded_by_its_entry_point_name(installed_plugin):
    assert "memory-crm" in registry.available()
    cls = registry.load("memory-crm")
    assert cls.__name__ == "MemoryCrmConnector"
    assert Path(sys.modules[cls.__module__].__file__).is_relative_to(installed_plugin)


def test_an_unknown_connector_names_the_installed_ones():
    with pytest.raises(registry.UnknownConnector, match=r"unknown connector 'nope' \(installed: .*salesforce"):
        registry.load("nope")


def test_a_config_naming_an_unknown_connector_is_a_config_error():
    config = parse_config({"connections": [{"connector": "nope"}]}, env={})
    pool = ConnectorPool(config)
    with pytest.raises(ConfigError, match="unknown connector 'nope'"):
        pool.model_map(config.connections[0])


def test_the_pipeline_writes_through_a_plugin(installed_plugin, tmp_path):
    store = tmp_path / "crm.json"
    store.write_text(json.dumps({"Deal": {"D-1": {"amount": 10, "stage": "new"}}}))
    config = parse_config(
        {"connections": [{"connector": "memory-crm", "name": "memory", "path": str(store)}]}, env={}
    )
    recording = Recording.model_validate(
        {
            "id": "rec-1",
            "crm": {"integrationConnectionId": "ic-1", "opportunity": {"id": "o1", "externalId": "D-1"}},
            "entityExtractions": [
                {"name": "Deal size", "value": "12,500", "mappings": [{"crmModelName": "Deal", "crmFieldName": "amount"}]},
                {"name": "Stage", "value": "negotiation", "mappings": [{"crmModelName": "Opportunity", "crmFieldName": "Stage"}]},
                {"name": "Id", "value": "X", "mappings": [{"crmModelName": "Deal", "crmFieldName": "id"}]},
            ],
        }
    )
    pipeline = Pipeline(config, connectors=ConnectorPool(config), retry=RetryPolicy(max_retries=0))

    report = pipeline.process([recording])[0]
    outcomes = {line.field: (str(line.outcome), line.value, line.previous) for line in report.fields}
    assert report.status == "ok"
    assert outcomes["amount"][0] == "written"
    assert outcomes["stage"][:2] == ("written", "negotiation")
    assert outcomes["id"][0] == "not_writable"
    assert json.loads(store.read_text())["Deal"]["D-1"] == {"amount": 12500, "stage": "negotiation"}

    again = pipeline.process([recording])[0]
    assert {line.field: str(line.outcome) for line in again.fields} == {
        "amount": "unchanged",
        "stage": "unchanged",
        "id": "not_writable",
    }


def test_a_misspelt_connection_key_is_a_config_error_naming_it():
    config = parse_config(
        {"connections": [{"connector": "salesforce", "instance_url": "https://x.my.salesforce.com",
                          "access_token": "t0ken-value", "api_verison": "59.0"}]},
        env={},
    )
    with pytest.raises(ConfigError, match="unknown key 'api_verison'") as caught:
        ConnectorPool(config).get(config.connections[0])
    assert "t0ken-value" not in str(caught.value)
