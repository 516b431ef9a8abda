"""Record updates: sObject Collections (``PATCH .../composite/sobjects``) and single-record PATCH.

A collection holds at most 200 records. A body the JSON parser refuses
(``JSON_PARSER_ERROR``, a value of the wrong kind for its field, an unknown
type) fails the whole request with 400; every other error is reported per
record in a 200 answer, and the valid records are written, unless
``allOrNone`` is set, in which case nothing is written and the valid records
report ``ALL_OR_NONE_OPERATION_ROLLED_BACK``. A single-record PATCH answers
204, or 400 with the record's errors.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

from simulators.salesforce.errors import (
    ENTITY_IS_DELETED_BODY,
    NOT_FOUND_BODY,
    RequestError,
    api_error,
    parser_error,
    record_error,
)
from simulators.salesforce.ids import to_id18
from simulators.salesforce.schema import SFObject
from simulators.salesforce.values import (
    ParseError,
    deserialize,
    field_errors,
    json_kind,
)

if TYPE_CHECKING:
    from simulators.salesforce.state import SalesforceState

MAX_COLLECTION_RECORDS = 200

_Parsed = tuple[SFObject, Any, dict[str, Any]]  # object, id as sent, values by field name as sent
_Staged = tuple[SFObject, str, dict[str, Any]]  # object, id18, validated values to store


class _WholeRequestRefused(Exception):
    """The collection cannot be read at all: 400 with ``body``."""

    def __init__(self, body: list[dict[str, Any]]) -> None:
        super().__init__(body)
        self.body = body


# ------------------------------------------------------------------ validation of one update

def record_update_errors(state: SalesforceState, obj: SFObject, record_id: Any,
                         values: Mapping[str, Any]) -> tuple[str | None, dict[str, Any], list[dict[str, Any]]]:
    """Validate one update: (id18, field values to store, errors)."""
    canonical, error = _update_target(state, obj, record_id)
    if error is not None:
        return None, {}, [error]
    changes, errors = _field_changes(state, obj, values)
    return canonical, changes, errors


def _update_target(state: SalesforceState, obj: SFObject, record_id: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The id18 of the live record an update names, or the error that stops the update."""
    if record_id is None:
        return None, record_error("MISSING_ARGUMENT", "Id not specified in an update call", [])
    canonical = to_id18(record_id)
    if canonical is None:
        return None, record_error("MALFORMED_ID", f"malformed id {record_id}", [])
    if not canonical.startswith(obj.key_prefix):
        return None, record_error("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {record_id}", ["Id"])
    if canonical in state.deleted:
        return None, record_error("ENTITY_IS_DELETED", "entity is deleted", [])
    if canonical not in state.records.get(obj.name, {}):
        return None, record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
    return canonical, None


def _field_changes(state: SalesforceState, obj: SFObject,
                   values: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validated values by field name, and the errors; read-only fields are reported together, last."""
    changes: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    not_updateable: list[str] = []
    for key, value in values.items():
        item = obj.field(key)
        if item is None:
            errors.append(record_error("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", []))
            continue
        if not item.updateable:
            not_updateable.append(item.name)
            continue
        stored, error = field_errors(item, value, state)
        if error is not None:
            errors.append(error)
        else:
            changes[item.name] = stored
    if not_updateable:
        errors.append(record_error(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(not_updateable)}. Please check the security settings of "
            "this field and verify that it is read/write for your profile or permission set.",
            not_updateable))
    return changes, errors


def deserialize_record(state: SalesforceState, record: Any) -> _Parsed:
    """Type-check one collection record as Salesforce's JSON parser does."""
    if not isinstance(record, dict):
        raise ParseError(f"Cannot deserialize instance of SObject from {json_kind(record)} value")
    attributes = record.get("attributes")
    if not isinstance(attributes, dict) or not isinstance(attributes.get("type"), str):
        raise RequestError("INVALID_TYPE", "Must send a concrete entity type.")
    obj = state.object(attributes["type"])
    if obj is None:
        raise RequestError("INVALID_TYPE", f"sObject type '{attributes['type']}' is not supported.")
    record_id = None
    values: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if key.casefold() == "id":
            if value is not None and not isinstance(value, str):
                raise ParseError(f"Cannot deserialize instance of id from {json_kind(value)} value {value}")
            record_id = value
            continue
        item = obj.field(key)
        if item is None:
            # unknown fields are reported per record later, but must still be JSON scalars
            if isinstance(value, (list, dict)):
                raise ParseError(f"Cannot deserialize instance of string from {json_kind(value)} value")
            values[key] = value
            continue
        values[key] = deserialize(item, value)
    return obj, record_id, values


def _store(state: SalesforceState, obj: SFObject, canonical: str, changes: dict[str, Any]) -> None:
    record = state.records[obj.name][canonical]
    record.update(changes)
    state._touch(obj, record)


# ------------------------------------------------------------------ sObject Collections

def collection_update(state: SalesforceState, raw_text: str) -> tuple[int, Any]:
    try:
        all_or_none, parsed = _read_collection(state, raw_text)
    except _WholeRequestRefused as exc:
        return 400, exc.body
    results, staged = _validate_collection(state, parsed)
    if all_or_none and any(not r["success"] for r in results):
        return 200, _rolled_back(results)
    for obj, canonical, changes in staged:
        _store(state, obj, canonical, changes)
    return 200, results


def _read_collection(state: SalesforceState, raw_text: str) -> tuple[bool, list[_Parsed]]:
    """``allOrNone`` and the deserialised records, or _WholeRequestRefused."""
    try:
        body = json.loads(raw_text)
    except ValueError as exc:
        message = f"Unexpected character: {exc.msg} at [line:{exc.lineno}, column:{exc.colno}]"
        raise _WholeRequestRefused(api_error("JSON_PARSER_ERROR", message)) from None
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        kind = json_kind(body.get("records") if isinstance(body, dict) else body)
        raise _WholeRequestRefused(parser_error(raw_text, f"Cannot deserialize instance of SObjectCollection from "
                                                          f"{kind} value"))
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise _WholeRequestRefused(parser_error(
            raw_text, f"Cannot deserialize instance of boolean from {json_kind(all_or_none)} value {all_or_none}",
            all_or_none))
    records = body["records"]
    if len(records) > MAX_COLLECTION_RECORDS:
        raise _WholeRequestRefused(api_error(
            "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"))
    return all_or_none, [_deserialize_or_refuse(state, raw_text, record) for record in records]


def _deserialize_or_refuse(state: SalesforceState, raw_text: str, record: Any) -> _Parsed:
    try:
        return deserialize_record(state, record)
    except ParseError as exc:
        raise _WholeRequestRefused(parser_error(raw_text, str(exc), exc.value)) from None
    except RequestError as exc:
        raise _WholeRequestRefused(exc.body()) from None


def _validate_collection(state: SalesforceState, parsed: list[_Parsed]) -> tuple[list[dict[str, Any]], list[_Staged]]:
    """One result per record, in order, and the updates to apply; an id named twice fails the second time."""
    results: list[dict[str, Any]] = []
    staged: list[_Staged] = []
    seen: set[str] = set()
    for obj, record_id, values in parsed:
        canonical, changes, errors = record_update_errors(state, obj, record_id, values)
        if canonical is not None and canonical in seen:
            errors = [record_error("DUPLICATE_VALUE", f"Duplicate id in list: {canonical}", [])]
        if canonical is not None:
            seen.add(canonical)
        if errors:
            results.append({"success": False, "errors": errors})
        else:
            results.append({"id": canonical, "success": True, "errors": []})
            staged.append((obj, canonical, changes))
    return results, staged


def _rolled_back(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rolled = record_error("ALL_OR_NONE_OPERATION_ROLLED_BACK",
                          "Record rolled back because not all records were valid and the request was using "
                          "AllOrNone header", [])
    return [r if not r["success"] else {"id": r["id"], "success": False, "errors": [rolled]} for r in results]


# ------------------------------------------------------------------ single record

def patch_record(state: SalesforceState, obj: SFObject, raw_id: str, raw: bytes) -> tuple[int, Any]:
    """``PATCH .../sobjects/{name}/{id}``: 204, or the errors of that one record."""
    canonical = to_id18(raw_id)
    if canonical is None:
        return 404, NOT_FOUND_BODY
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return 400, api_error("JSON_PARSER_ERROR", f"Unexpected character: {exc.msg}")
    if not isinstance(body, dict):
        return 400, parser_error(raw.decode(),
                                 f"Cannot deserialize instance of {obj.name} from {json_kind(body)} value")
    try:
        _, record_id, values = deserialize_record(state, {"attributes": {"type": obj.name}, **body, "Id": raw_id})
    except ParseError as exc:
        return 400, parser_error(raw.decode(), str(exc))
    except RequestError as exc:
        return 400, exc.body()
    if canonical in state.deleted:
        return 404, ENTITY_IS_DELETED_BODY
    if canonical not in state.records[obj.name]:
        return 404, NOT_FOUND_BODY
    _, changes, errors = record_update_errors(state, obj, record_id, values)
    if errors:
        return 400, [{"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]} for e in errors]
    _store(state, obj, canonical, changes)
    return 204, None
