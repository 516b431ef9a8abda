"""The CRM v3 operations on one object type: properties, pipelines, single and batch reads and updates.

Each takes the state (for its settings) and the object type already looked
up, runs under the state's lock, and returns ``(status, body)``.

* batch read: 200, or 207 with an ``OBJECT_NOT_FOUND`` error listing the
  missing ids; more than 100 inputs is 400.
* batch update: more than 100 inputs or a duplicate id is 400; any invalid
  property value in any input rejects the whole batch with 400
  ``VALIDATION_ERROR`` and nothing is written; missing records (all values
  valid) give 207 with the others written.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import TYPE_CHECKING, Any, Sequence

from simulators.hubspot import errors
from simulators.hubspot.errors import Answer
from simulators.hubspot.schema import ObjectType
from simulators.hubspot.validation import validate
from simulators.hubspot.values import DIGITS_RE, iso, now

if TYPE_CHECKING:
    from simulators.hubspot.state import HubSpotState

MAX_BATCH = 100

_ALWAYS_SHOWN = ("hs_object_id", "createdate", "hs_lastmodifieddate")


def properties(state: HubSpotState, obj: ObjectType, name: str | None) -> Answer:
    if name is None:
        return 200, {"results": [copy.deepcopy(p) for p in obj.properties.values()]}
    prop = obj.properties.get(name)
    if prop is None:
        return 404, errors.error(f"Unable to find property {name} on object type {obj.type_id}", "OBJECT_NOT_FOUND",
                                 subCategory="PropertyNotFound")
    return 200, copy.deepcopy(prop)


def pipelines(state: HubSpotState, obj: ObjectType) -> Answer:
    if obj.pipelines is None:
        return errors.validation(f"Object type {obj.type_id} does not support pipelines.")
    return 200, {"results": copy.deepcopy(obj.pipelines)}


def get_one(state: HubSpotState, obj: ObjectType, record_id: str, wanted: Sequence[str]) -> Answer:
    record = obj.records.get(record_id)
    if record is None or record["archived"]:
        return errors.record_not_found(record_id)
    return 200, public(obj, record, wanted)


def update_one(state: HubSpotState, obj: ObjectType, record_id: str, body: Any) -> Answer:
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        return errors.validation("Invalid input JSON: 'properties' must be an object")
    record = obj.records.get(record_id)
    if record is None or record["archived"]:
        return errors.record_not_found(record_id)
    clean, problems = validate(obj, record, body["properties"], strict_stage_pipeline=state.strict_stage_pipeline)
    if problems:
        return 400, errors.invalid_values(problems, state.portal_id)
    _write(record, clean)
    return 200, public(obj, record, list(clean))


def batch_read(state: HubSpotState, obj: ObjectType, body: Any, started: dt.datetime) -> Answer:
    refused = _batch_shape_error(body)
    if refused:
        return refused
    wanted = body.get("properties") or []
    if not isinstance(wanted, list) or not all(isinstance(p, str) for p in wanted):
        return errors.validation("Invalid input JSON: 'properties' must be an array of strings")
    results, missing, seen = [], [], set()
    for item in body["inputs"]:
        rid = str(item["id"])
        if rid in seen:
            continue
        seen.add(rid)
        record = obj.records.get(rid)
        if record is None or record["archived"]:
            missing.append(rid)
        else:
            results.append(public(obj, record, wanted))
    return _batch_answer(obj, results, missing, started)


def batch_update(state: HubSpotState, obj: ObjectType, body: Any, started: dt.datetime) -> Answer:
    refused = _batch_shape_error(body) or _update_inputs_error(body["inputs"])
    if refused:
        return refused
    problems: list[dict[str, Any]] = []
    planned: list[tuple[dict[str, Any] | None, str, dict[str, str]]] = []
    for item in body["inputs"]:
        rid = str(item["id"])
        record = obj.records.get(rid)
        if record is not None and record["archived"]:
            record = None
        clean, errs = validate(obj, record, item["properties"], strict_stage_pipeline=state.strict_stage_pipeline)
        problems.extend(errs)
        planned.append((record, rid, clean))
    if problems:
        return 400, errors.invalid_values(problems, state.portal_id)
    results, missing = [], []
    for record, rid, clean in planned:
        if record is None:
            missing.append(rid)
        else:
            results.append(_updated(record, rid, clean))
    return _batch_answer(obj, results, missing, started)


def public(obj: ObjectType, record: dict[str, Any], wanted: Sequence[str] | None) -> dict[str, Any]:
    """A record as the API shows it: the asked-for (else default) properties plus the three always shown."""
    names = list(wanted) if wanted else list(obj.default_properties)
    for always in _ALWAYS_SHOWN:
        if always not in names:
            names.append(always)
    values = {}
    for name in names:
        if name in obj.properties:  # unknown properties are silently left out, as HubSpot does
            values[name] = record["properties"].get(name)
    return {
        "id": record["id"],
        "properties": values,
        "createdAt": iso(record["createdAt"]),
        "updatedAt": iso(record["updatedAt"]),
        "archived": False,
    }


def _write(record: dict[str, Any], clean: dict[str, str]) -> dt.datetime:
    stamp = now()
    record["properties"].update(clean)
    record["updatedAt"] = stamp
    record["properties"]["hs_lastmodifieddate"] = iso(stamp)
    return stamp


def _updated(record: dict[str, Any], rid: str, clean: dict[str, str]) -> dict[str, Any]:
    """Write one batch input; its result shows the written properties, not the defaults."""
    stamp = _write(record, clean)
    shown = {k: record["properties"].get(k) for k in clean}
    shown["hs_lastmodifieddate"] = record["properties"]["hs_lastmodifieddate"]
    shown["hs_object_id"] = rid
    return {"id": rid, "properties": shown, "createdAt": iso(record["createdAt"]), "updatedAt": iso(stamp),
            "archived": False}


def _batch_answer(obj: ObjectType, results: list[dict[str, Any]], missing: list[str],
                  started: dt.datetime) -> Answer:
    answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
    status = 200
    if missing:
        status = 207
        answer["numErrors"] = 1
        answer["errors"] = [errors.batch_not_found(obj.singular, missing)]
    answer["startedAt"] = iso(started)
    answer["completedAt"] = iso(now())
    return status, answer


def batch_inputs_error(body: Any) -> Answer | None:
    """The 400 of a batch body that is not ``{"inputs": [...]}`` with at most ``MAX_BATCH`` inputs."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return errors.validation("Invalid input JSON: 'inputs' is required and must be an array")
    if len(body["inputs"]) > MAX_BATCH:
        return errors.validation(f"Batch input must contain at most {MAX_BATCH} inputs; got {len(body['inputs'])}",
                                 context={"maxInputs": [str(MAX_BATCH)]})
    return None


def _batch_shape_error(body: Any) -> Answer | None:
    refused = batch_inputs_error(body)
    if refused is not None:
        return refused
    inputs = body["inputs"]
    bad = [i for i in inputs if not isinstance(i, dict) or not isinstance(i.get("id"), (str, int))
           or isinstance(i.get("id"), bool)]
    if bad:
        return errors.validation("Invalid input JSON: every input needs an 'id'")
    ids = [str(i["id"]) for i in inputs]
    malformed = [i for i in ids if not DIGITS_RE.match(i)]
    if malformed:
        return errors.validation(f"Invalid object ids: {malformed}. Object ids must be numeric.",
                                 context={"ids": malformed})
    return None


def _update_inputs_error(inputs: list[dict[str, Any]]) -> Answer | None:
    """Ids must be unique within an update batch, and every input needs a ``properties`` object."""
    ids = [str(i["id"]) for i in inputs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        return errors.validation(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique",
                                 context={"ids": duplicates})
    for item in inputs:
        if not isinstance(item.get("properties"), dict):
            return errors.validation("Invalid input JSON: 'properties' must be an object")
    return None
