"""The portal's schema: object types, their properties and pipelines, in CRM v3 JSON shapes.

``property_json`` gives the shape of ``GET /crm/v3/properties/{objectType}``
entries; ``pipeline_json`` that of ``GET /crm/v3/pipelines/{objectType}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool", "phone_number", "object_coordinates", "json"}

Option = Mapping[str, Any] | tuple[str, str] | str
Stage = tuple[str, str] | tuple[str, str, Mapping[str, str]] | Mapping[str, Any]


@dataclass
class ObjectType:
    name: str  # plural, as used in URLs: deals
    type_id: str  # 0-3
    singular: str  # DEAL, as used in messages
    aliases: tuple[str, ...]
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: list[dict[str, Any]] | None = None  # None: the object has no pipelines
    pipeline_property: str | None = None
    stage_property: str | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_properties: tuple[str, ...] = ()


def _options(options: Sequence[Option]) -> list[dict[str, Any]]:
    """``{"label", "value", "hidden"?}`` dicts, ``(value, label)`` pairs or plain values, as HubSpot lists them."""
    built = []
    for order, option in enumerate(options):
        if isinstance(option, str):
            option = {"value": option, "label": option}
        elif isinstance(option, tuple):
            option = {"value": option[0], "label": option[1]}
        built.append(
            {
                "label": option["label"],
                "value": option["value"],
                "displayOrder": option.get("displayOrder", order),
                "hidden": bool(option.get("hidden", False)),
                **({"description": option["description"]} if "description" in option else {}),
            }
        )
    return built


def property_json(obj: ObjectType, name: str, type: str, field_type: str, stamp: str, *, label: str | None,
                  options: Sequence[Option], calculated: bool, read_only_value: bool,
                  read_only_definition: bool | None, external_options: bool, hidden: bool, has_unique_value: bool,
                  form_field: bool, group_name: str | None, description: str, hubspot_defined: bool,
                  referenced_object_type: str | None) -> dict[str, Any]:
    """One property definition; ``displayOrder`` puts it after the object's current properties."""
    prop: dict[str, Any] = {
        "updatedAt": stamp,
        "createdAt": stamp,
        "name": name,
        "label": label if label is not None else name.replace("_", " ").title(),
        "type": type,
        "fieldType": field_type,
        "description": description,
        "groupName": group_name or f"{obj.singular.lower()}information",
        "options": _options(options),
        "displayOrder": len(obj.properties),
        "calculated": calculated,
        "externalOptions": external_options,
        "hasUniqueValue": has_unique_value,
        "hidden": hidden,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": read_only_definition if read_only_definition is not None else hubspot_defined,
            "readOnlyValue": read_only_value or calculated,
        },
        "formField": form_field,
        "dataSensitivity": "non_sensitive",
    }
    if referenced_object_type:
        prop["referencedObjectType"] = referenced_object_type
    if calculated and type == "number":
        prop["calculationFormula"] = "amount * hs_deal_stage_probability" if name == "hs_forecast_amount" else ""
    return prop


def _stage_json(order: int, stage: Stage, stamp: str) -> dict[str, Any]:
    if isinstance(stage, Mapping):
        sid, slabel, meta = stage["id"], stage["label"], dict(stage.get("metadata", {}))
        sarchived = bool(stage.get("archived", False))
    else:
        sid, slabel = stage[0], stage[1]
        meta = dict(stage[2]) if len(stage) > 2 else {}
        sarchived = False
    return {
        "label": slabel,
        "displayOrder": order,
        "metadata": meta,
        "id": sid,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": sarchived,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    }


def pipeline_json(pipeline_id: str, label: str, stages: Sequence[Stage], *, display_order: int, archived: bool,
                  stamp: str) -> dict[str, Any]:
    """One pipeline; ``stages`` are ``(id, label[, metadata])`` or dicts."""
    return {
        "label": label,
        "displayOrder": display_order,
        "id": pipeline_id,
        "stages": [_stage_json(order, stage, stamp) for order, stage in enumerate(stages)],
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": archived,
    }


def stage_ids(obj: ObjectType, pipeline_id: str | None) -> dict[str, str]:
    """stage id -> pipeline id, for one pipeline or all of them (active stages only)."""
    out = {}
    for pipeline in obj.pipelines or []:
        if pipeline["archived"] or (pipeline_id is not None and pipeline["id"] != pipeline_id):
            continue
        for stage in pipeline["stages"]:
            if not stage["archived"]:
                out[stage["id"]] = pipeline["id"]
    return out
