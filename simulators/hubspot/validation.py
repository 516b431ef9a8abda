"""Validation of property values sent to batch update and PATCH, as strict as HubSpot's.

Values must be strings (numbers and booleans are accepted and stringified);
an empty string clears a property. Read-only and calculated properties, and
unknown ones, are refused. Enumeration options marked ``hidden`` are valid
values (hidden only keeps them out of HubSpot's pickers and forms); only
options no longer listed are ``INVALID_OPTION``. A pipeline must exist, and
a stage must be an active stage of the record's (possibly new) pipeline.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from simulators.hubspot.schema import ObjectType, stage_ids
from simulators.hubspot.values import (
    DIGITS_RE,
    NUMBER_RE,
    iso,
    parse_date,
    parse_datetime,
)

MAX_STRING_LENGTH = 65536

Problem = dict[str, Any]  # name, code, message, value (as sent, JSON for non-strings)
Checked = tuple[str | None, Problem | None]  # the value to store, or the problem

_WHITESPACE_CODES = {"number": "INVALID_INTEGER", "date": "INVALID_DATE", "datetime": "INVALID_DATETIME",
                     "bool": "INVALID_BOOLEAN"}


def validate(obj: ObjectType, record: dict[str, Any] | None, values: Mapping[str, Any], *,
             strict_stage_pipeline: bool) -> tuple[dict[str, str], list[Problem]]:
    """(values to store, problems); ``record`` is None for a record that does not exist."""
    clean: dict[str, str] = {}
    problems: list[Problem] = []
    for name, raw in values.items():
        value, problem = _check(obj, name, raw)
        if problem is not None:
            problems.append(problem)
        elif value is not None:
            clean[name] = value
    if obj.pipelines is not None:
        problems.extend(_pipeline_problems(obj, record, clean, strict_stage_pipeline))
    return clean, problems


def _problem(name: str, code: str, message: str, value: Any) -> Problem:
    return {"name": name, "code": code, "message": message,
            "value": value if isinstance(value, str) else json.dumps(value)}


def _check(obj: ObjectType, name: str, raw: Any) -> Checked:
    prop = obj.properties.get(name)
    if prop is None:
        return None, _problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist', raw)
    if prop["calculated"] or prop["modificationMetadata"]["readOnlyValue"]:
        return None, _problem(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.',
                              raw)
    value = _wire_string(raw)
    if value is None:
        return None, _problem(name, "INVALID_PROPERTY_VALUE",
                              f"{json.dumps(raw)} is not a valid value for {name}: property values are strings "
                              "(an empty string clears the property)", raw)
    if value == "":
        return "", None
    ptype = prop["type"]
    if ptype not in ("string", "phone_number") and value != value.strip():
        return None, _problem(name, _WHITESPACE_CODES.get(ptype, "INVALID_OPTION"),
                              f"{value!r} has leading or trailing whitespace, which is not allowed for "
                              f"{ptype} properties", value)
    return _CHECKERS.get(ptype, _unsettable)(obj, name, prop, value)


def _wire_string(raw: Any) -> str | None:
    """The string a JSON value stands for (booleans as true/false), or None for lists, objects and null."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        return str(raw)
    if isinstance(raw, str):
        return raw
    return None


# ------------------------------------------------------------------ one checker per property type

def _string(obj: ObjectType, name: str, prop: dict[str, Any], value: str) -> Checked:
    if len(value) > MAX_STRING_LENGTH:
        return None, _problem(name, "MAX_LENGTH_EXCEEDED",
                              f"Property {name} value is {len(value)} characters long; the maximum is "
                              f"{MAX_STRING_LENGTH}", value[:100])
    return value, None


def _number(obj: ObjectType, name: str, prop: dict[str, Any], value: str) -> Checked:
    if not NUMBER_RE.match(value):
        return None, _problem(name, "INVALID_INTEGER", f"{value} was not a valid number.", value)
    return value, None


def _bool(obj: ObjectType, name: str, prop: dict[str, Any], value: str) -> Checked:
    if value not in ("true", "false"):
        return None, _problem(name, "INVALID_BOOLEAN", f"{value} was not a valid boolean, expected true or false.",
                              value)
    return value, None


def _date(obj: ObjectType, name: str, prop: dict[str, Any], value: str) -> Checked:
    parsed, message = parse_date(value)
    if parsed is None:
        return None, _problem(name, "INVALID_DATE", message, value)
    return parsed, None


def _datetime(obj: ObjectType, name: str, prop: dict[str, Any], value: str) -> Checked:
    parsed = parse_datetime(value)
    if parsed is None:
        return None, _problem(name, "INVALID_DATETIME",
                              f"{value} was not a valid datetime (ISO 8601 or epoch milliseconds).", value)
    return iso(parsed), None


def _enumeration(obj: ObjectType, name: str, prop: dict[str, Any], value: str) -> Checked:
    if name in (obj.pipeline_property, obj.stage_property) and prop["externalOptions"]:
        return value, None  # checked later, against the pipelines
    if prop["externalOptions"]:
        if not DIGITS_RE.match(value):  # owners and other referenced objects: ids
            return None, _problem(name, "INVALID_OPTION", f"{value} was not a valid id for {name}", value)
        return value, None
    allowed = [o["value"] for o in prop["options"]]
    parts = value.split(";") if prop["fieldType"] == "checkbox" else [value]
    bad = [p for p in parts if p not in allowed]
    if bad:
        return None, _problem(name, "INVALID_OPTION",
                              f"{bad[0]} was not one of the allowed options: [{', '.join(allowed)}]", value)
    return value, None


def _unsettable(obj: ObjectType, name: str, prop: dict[str, Any], value: str) -> Checked:
    return None, _problem(name, "INVALID_PROPERTY_VALUE",
                          f"Property {name} of type {prop['type']} cannot be set here", value)


_CHECKERS: dict[str, Callable[[ObjectType, str, dict[str, Any], str], Checked]] = {
    "string": _string,
    "phone_number": _string,
    "number": _number,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
    "enumeration": _enumeration,
}


# ------------------------------------------------------------------ pipelines and stages

def _pipeline_problems(obj: ObjectType, record: dict[str, Any] | None, clean: dict[str, str],
                       strict: bool) -> list[Problem]:
    """An unknown pipeline is dropped from ``clean``; the stage is checked against the effective pipeline."""
    problems = []
    pipeline_ids = [p["id"] for p in obj.pipelines or [] if not p["archived"]]
    new_pipeline = clean.get(obj.pipeline_property) if obj.pipeline_property else None
    if new_pipeline and new_pipeline not in pipeline_ids:
        problems.append(_problem(obj.pipeline_property, "INVALID_OPTION",
                                 f"{new_pipeline} was not one of the allowed options: [{', '.join(pipeline_ids)}]",
                                 new_pipeline))
        clean.pop(obj.pipeline_property, None)
        new_pipeline = None
    new_stage = clean.get(obj.stage_property) if obj.stage_property else None
    problem = None
    if new_stage:
        problem = _stage_problem(obj, record, new_stage, new_pipeline, strict)
    elif new_pipeline and record is not None and obj.stage_property:
        problem = _current_stage_problem(obj, record, new_pipeline)
    if problem is not None:
        problems.append(problem)
    return problems


def _stage_problem(obj: ObjectType, record: dict[str, Any] | None, new_stage: str, new_pipeline: str | None,
                   strict: bool) -> Problem | None:
    all_stages = stage_ids(obj, None)
    effective = new_pipeline or (record["properties"].get(obj.pipeline_property) if record else None)
    if new_stage not in all_stages:
        return _problem(obj.stage_property, "INVALID_OPTION",
                        f"{new_stage} was not one of the allowed options: [{', '.join(all_stages)}]", new_stage)
    if strict and effective and all_stages[new_stage] != effective:
        return _problem(obj.stage_property, "INVALID_OPTION",
                        f"{new_stage} is not a valid stage of pipeline {effective}: allowed options: "
                        f"[{', '.join(stage_ids(obj, effective))}]", new_stage)
    return None


def _current_stage_problem(obj: ObjectType, record: dict[str, Any], new_pipeline: str) -> Problem | None:
    """Moving a record to another pipeline needs a stage of that pipeline in the same update."""
    current = record["properties"].get(obj.stage_property)
    if current and current not in stage_ids(obj, new_pipeline):
        return _problem(obj.pipeline_property, "INVALID_OPTION",
                        f"The current {obj.stage_property} {current} is not a stage of pipeline {new_pipeline}; "
                        f"set {obj.stage_property} in the same update", new_pipeline)
    return None
