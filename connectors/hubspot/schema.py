"""HubSpot properties → ``FieldSchema``: how the HubSpot connector sees an object's properties.

Pure functions, no I/O: ``object_fields`` takes the ``results`` of
``GET /crm/v3/properties/{objectType}`` (and, when a pipeline property is
among them, of ``GET /crm/v3/pipelines/{objectType}``) and maps each property
onto the CRM-neutral ``FieldSchema``. HubSpot's facts it encodes:

* Read-only means ``calculated`` or ``modificationMetadata.readOnlyValue``.
* ``dealstage``/``pipeline`` (and ``hs_pipeline``/``hs_pipeline_stage`` of
  leads and tickets) keep their options in the pipelines API: a stage ``id`` is
  the option value, its ``label`` the label. A stage belongs to one pipeline,
  and labels repeat across pipelines (every deal pipeline HubSpot creates has a
  "Closed Won" and a "Closed Lost", with numeric ids outside the default one),
  so the stage property is published with ``controller`` = the pipeline
  property and ``dependent_options`` per pipeline id; ``options`` is the union.
* Every option a property lists is a valid value, ``hidden`` ones included:
  ``hidden`` is a display flag (the client's model: "Hidden options will not
  be displayed in HubSpot"; it keeps them off pickers and forms), and records
  may hold, and the API may set, a hidden option. An option an admin removed
  is no longer listed at all (there is no "archived" option). So every listed
  option is ``active``, and HubSpot stays the judge: a value it refuses after
  all comes back as ``INVALID_OPTION``, pinned on its record like any other.
* Every enumeration is restricted, except referenced objects (owners) whose
  options cannot be listed.
"""

from __future__ import annotations

from typing import Any, Mapping

from connectors.base import FieldSchema, FieldType, Option

MAX_STRING_LENGTH = 65536

# Pipeline-backed enumerations: property name -> which half of the pipelines API holds its options.
PIPELINE_PROPERTIES = {"pipeline": "pipeline", "hs_pipeline": "pipeline", "dealstage": "stage",
                       "hs_pipeline_stage": "stage"}
# A stage property -> the pipeline property of the same object, whose value picks the allowed stages.
STAGE_CONTROLLERS = {"dealstage": "pipeline", "hs_pipeline_stage": "hs_pipeline"}

_SIMPLE_TYPES = {"number": FieldType.NUMBER, "date": FieldType.DATE, "datetime": FieldType.DATETIME}


def needs_pipelines(properties: list[Mapping[str, Any]]) -> bool:
    """Whether some property takes its options from the pipelines API."""
    return any(pipeline_kind(p) for p in properties)


def object_fields(properties: list[Mapping[str, Any]],
                  pipelines: list[dict[str, Any]] | None) -> dict[str, FieldSchema]:
    """Every property of an object, by its exact name."""
    names = {str(p.get("name")) for p in properties}
    fields = {}
    for prop in properties:
        schema = field_schema(prop, pipelines, names)
        fields[schema.name] = schema
    return fields


def pipeline_kind(prop: Mapping[str, Any]) -> str | None:
    """"pipeline" or "stage" for a pipeline-backed enumeration, else None."""
    if prop.get("type") != "enumeration" or not prop.get("externalOptions") or prop.get("options"):
        return None
    return PIPELINE_PROPERTIES.get(str(prop.get("name")))


def pipeline_options(kind: str, pipelines: list[dict[str, Any]]
                     ) -> tuple[tuple[Option, ...], dict[str, tuple[Option, ...]]]:
    """(options, options per pipeline id) of a pipeline or stage property.

    For ``pipeline`` the second item is empty. For ``stage`` the union is kept
    for records whose pipeline is unknown, but only the per-pipeline lists can
    tell "Closed Won" of one pipeline from "Closed Won" of another.
    """
    options: dict[str, Option] = {}
    per_pipeline: dict[str, tuple[Option, ...]] = {}
    for pipeline in sorted(pipelines, key=lambda p: p.get("displayOrder", 0)):
        pipeline_active = not pipeline.get("archived", False)
        pid = str(pipeline["id"])
        if kind == "pipeline":
            options[pid] = Option(pid, str(pipeline.get("label") or pid), pipeline_active)
            continue
        stages = []
        for stage in sorted(pipeline.get("stages") or [], key=lambda s: s.get("displayOrder", 0)):
            sid = str(stage["id"])
            # A stage of an archived pipeline cannot be set either.
            option = Option(sid, str(stage.get("label") or sid), pipeline_active and not stage.get("archived", False))
            stages.append(option)
            options.setdefault(sid, option)
        per_pipeline[pid] = tuple(stages)
    return tuple(options.values()), per_pipeline


def field_schema(prop: Mapping[str, Any], pipelines: list[dict[str, Any]] | None,
                 names: frozenset[str] | set[str] = frozenset()) -> FieldSchema:
    """One property as a ``FieldSchema``; ``names`` are the object's property names (for controllers)."""
    name = str(prop["name"])
    ptype = str(prop.get("type") or "")
    field_type = str(prop.get("fieldType") or "")
    common: dict[str, Any] = dict(name=name, label=str(prop.get("label") or name), crm_type=f"{ptype}/{field_type}",
                                  **_writability(prop))
    if ptype in ("string", "phone_number"):
        long_text = field_type in ("textarea", "html", "rich_text")
        return FieldSchema(type=FieldType.TEXT if long_text else FieldType.STRING, max_length=MAX_STRING_LENGTH,
                           **common)
    if ptype in _SIMPLE_TYPES:
        return FieldSchema(type=_SIMPLE_TYPES[ptype], **common)
    if ptype == "bool" or (ptype == "enumeration" and field_type == "booleancheckbox"):
        return FieldSchema(type=FieldType.BOOLEAN, **common)
    if ptype == "enumeration":
        return _enumeration(prop, pipelines, names, common)
    common["not_writable_reason"] = (common["not_writable_reason"]
                                     or f"HubSpot {ptype} properties are not written by this service")
    return FieldSchema(type=FieldType.OTHER, **{**common, "writable": False})


def _writability(prop: Mapping[str, Any]) -> dict[str, Any]:
    if prop.get("calculated"):
        return {"writable": False, "not_writable_reason": "calculated property"}
    if (prop.get("modificationMetadata") or {}).get("readOnlyValue"):
        return {"writable": False, "not_writable_reason": "read-only property (modificationMetadata.readOnlyValue)"}
    return {"writable": True, "not_writable_reason": None}


def _enumeration(prop: Mapping[str, Any], pipelines: list[dict[str, Any]] | None, names: frozenset[str] | set[str],
                 common: dict[str, Any]) -> FieldSchema:
    kind = pipeline_kind(prop)
    controller: str | None = None
    dependent: dict[str, tuple[Option, ...]] = {}
    if kind is not None:
        options, dependent = pipeline_options(kind, pipelines or [])
        restricted = True
        if kind == "stage" and STAGE_CONTROLLERS.get(common["name"]) in names:
            controller = STAGE_CONTROLLERS[common["name"]]
        else:
            dependent = {}
    elif prop.get("externalOptions") and not prop.get("options"):
        # Owners and other referenced objects: options we cannot list; HubSpot validates.
        options, restricted = (), False
    else:
        # Hidden options stay active: the API accepts them (see the module docstring).
        options = tuple(
            Option(str(o.get("value")), str(o.get("label") or o.get("value")))
            for o in sorted(prop.get("options") or [], key=lambda o: o.get("displayOrder", 0))
        )
        restricted = True
    kind_type = FieldType.MULTIPICKLIST if prop.get("fieldType") == "checkbox" else FieldType.PICKLIST
    # A record always sits in a pipeline and a stage: clearing either is never intended.
    return FieldSchema(type=kind_type, options=options, restricted=restricted, controller=controller,
                       dependent_options=dependent, nillable=kind is None, **common)


__all__ = ["MAX_STRING_LENGTH", "PIPELINE_PROPERTIES", "STAGE_CONTROLLERS", "field_schema", "needs_pipelines",
           "object_fields", "pipeline_kind", "pipeline_options"]
