"""An example connector plugin: a tiny CRM kept in a JSON file.

It is what the README's "Writing a connector plugin" section walks through,
and the test suite installs it with pip to prove that a plugin is found
through the ``siro_writeback.connectors`` entry point group.

The file (option ``path``) holds ``{"Deal": {"D-1": {"amount": "10"}}}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from connectors.base import (
    Connector,
    FieldError,
    FieldSchema,
    FieldType,
    ModelTarget,
    ObjectSchema,
    RecordState,
    RecordWriteResult,
    UnknownObject,
    json_number,
)

SCHEMA = {
    "Deal": {
        "amount": FieldSchema("amount", FieldType.NUMBER),
        "stage": FieldSchema("stage", FieldType.STRING, max_length=40),
        "id": FieldSchema("id", FieldType.STRING, writable=False, not_writable_reason="read-only id"),
    }
}


class MemoryCrmConnector(Connector):
    name = "memory-crm"
    option_names = frozenset({"path"})
    default_models = {"opportunity": ModelTarget("opportunity", "Deal"), "deal": ModelTarget("opportunity", "Deal")}

    def _load(self) -> dict:
        path = Path(self.options["path"])
        return json.loads(path.read_text()) if path.exists() else {}

    def object_schema(self, object_name):
        if object_name not in SCHEMA:
            raise UnknownObject(object_name)
        return ObjectSchema(object_name, SCHEMA[object_name])

    def read(self, object_name, record_ids, fields):
        records = self._load().get(object_name, {})
        return {
            rid: RecordState(rid, records[rid]) if rid in records
            else RecordState(rid, None, FieldError("failed", f"no {object_name} {rid}"))
            for rid in record_ids
        }

    def write(self, object_name, updates):
        data = self._load()
        results = []
        for update in updates:
            data.setdefault(object_name, {}).setdefault(update.record_id, {}).update(update.values)
            results.append(RecordWriteResult(update.record_id, frozenset(update.values)))
        Path(self.options["path"]).write_text(json.dumps(data))
        return results

    def encode(self, field, value):
        return json_number(value) if field.type is FieldType.NUMBER else value

    def check(self):
        return f"memory-crm at {self.options['path']}"
