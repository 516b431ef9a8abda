"""An example connector plugin: a tiny CRM kept in a JSON file.

It is what the README's "Writing a connector plugin" section walks through,
and the test suite installs it with pip to prove that a plugin is found
through the ``siro_writeback.connectors`` entry point group; it passes the
connector contract (``connectors.testing.ConnectorContract``).

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
    Option,
    RecordState,
    RecordWriteResult,
    UnknownObject,
    json_number,
)

SCHEMA = {
    "Deal": {
        "amount": FieldSchema("amount", FieldType.NUMBER),
        "stage": FieldSchema("stage", FieldType.STRING, max_length=40),
        "priority": FieldSchema("priority", FieldType.PICKLIST, restricted=True,
                                options=(Option("low", "Low"), Option("high", "High"))),
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
            rid: RecordState(rid, {f: records[rid].get(f) for f in fields}) if rid in records
            else RecordState(rid, None, FieldError("failed", f"no {object_name} {rid}"))
            for rid in record_ids
        }

    def write(self, object_name, updates):
        fields = self.object_schema(object_name).fields
        data = self._load()
        records = data.setdefault(object_name, {})
        results = []
        for update in updates:
            if update.record_id not in records:  # one missing record fails alone
                error = FieldError("failed", f"no {object_name} {update.record_id}")
                results.append(RecordWriteResult(update.record_id, errors={f: error for f in update.values}))
                continue
            errors = {f: e for f, v in update.values.items() if (e := refusal(fields.get(f), v))}
            good = {f: v for f, v in update.values.items() if f not in errors}
            records[update.record_id].update(good)  # the good fields land beside the refused ones
            results.append(RecordWriteResult(update.record_id, frozenset(good), errors))
        Path(self.options["path"]).write_text(json.dumps(data))
        return results

    def encode(self, field, value):
        return json_number(value) if field.type is FieldType.NUMBER and value is not None else value

    def check(self):
        return f"memory-crm at {self.options['path']}"


def refusal(field, value):
    """Why this CRM refuses ``value`` for ``field``, or None."""
    if field is None:
        return FieldError("unknown_field", "no such field")
    if not field.writable:
        return FieldError("not_writable", field.not_writable_reason)
    if field.restricted and value is not None and value not in {o.value for o in field.options}:
        return FieldError("invalid_value", f"{value!r} is not an option")
    if field.max_length and isinstance(value, str) and len(value) > field.max_length:
        return FieldError("invalid_value", f"longer than {field.max_length} characters")
    return None
