"""Salesforce describe → ``FieldSchema``: how the Salesforce connector sees an object's fields.

Pure functions, no I/O: ``object_fields`` takes the JSON of
``GET sobjects/{name}/describe`` and maps each field onto the CRM-neutral
``FieldSchema`` with Salesforce's own facts:

* datetimes keep whole seconds (``scale=0``), so a value we send compares
  equal to what the org stores;
* ``nillable`` is describe's (false for every checkbox and required field);
* ids, references and emails carry the pattern Salesforce refuses outright;
* dependent picklists get their controller and options per controller value
  from ``validFor``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Mapping

from connectors.base import FieldSchema, FieldType, Option

_STRING_TYPES = {"string", "email", "phone", "url", "id", "reference", "encryptedstring"}
# What Salesforce refuses outright (MALFORMED_ID, INVALID_EMAIL_ADDRESS); it may still refuse more.
_PATTERNS = {
    "id": r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?",
    "reference": r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?",
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
}
_NUMBER_TYPES = {"double", "currency", "percent"}


def object_fields(described: Mapping[str, Any]) -> dict[str, FieldSchema]:
    """Every field of a describe answer, by its exact name."""
    raw_fields = {str(raw["name"]): raw for raw in described.get("fields", [])}
    return {name: with_controller(field_schema(raw), raw, raw_fields) for name, raw in raw_fields.items()}


def field_schema(raw: Mapping[str, Any]) -> FieldSchema:
    """One describe field as a ``FieldSchema`` (without its controller: see ``with_controller``)."""
    sf_type = str(raw.get("type") or "")
    length = int(raw.get("length") or 0) or None
    common = _common(raw)
    if sf_type in _STRING_TYPES:
        return FieldSchema(type=FieldType.STRING, max_length=length, pattern=_PATTERNS.get(sf_type), **common)
    if sf_type == "textarea":
        return FieldSchema(type=FieldType.TEXT, max_length=length, **common)
    if sf_type == "boolean":
        return FieldSchema(type=FieldType.BOOLEAN, **common)
    if sf_type in ("int", "long"):
        digits = int(raw.get("digits") or 0) or None
        return FieldSchema(type=FieldType.INTEGER, precision=digits, scale=0, **common)
    if sf_type in _NUMBER_TYPES:
        precision = int(raw.get("precision") or 0) or None
        scale = int(raw.get("scale") or 0) if precision is not None else None
        return FieldSchema(type=FieldType.NUMBER, precision=precision, scale=scale, **common)
    if sf_type == "date":
        return FieldSchema(type=FieldType.DATE, **common)
    if sf_type == "datetime":
        # Salesforce keeps whole seconds (SOQL answers ``.000``): coercion truncates to match, or a value
        # with milliseconds would differ from the stored one and be re-sent on every sync.
        return FieldSchema(type=FieldType.DATETIME, scale=0, **common)
    if sf_type in ("picklist", "combobox", "multipicklist"):
        return _picklist(raw, sf_type, length, common)
    return FieldSchema(type=FieldType.OTHER, **common)


def _common(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The keys every field type shares: name, label, writability, nillability."""
    name = str(raw["name"])
    updateable = bool(raw.get("updateable"))
    reason = None
    if not updateable:
        reason = "calculated" if raw.get("calculated") or raw.get("autoNumber") else "not updateable"
    # describe says ``nillable: false`` for required fields (null is invalid_value before any request) and
    # for every checkbox (null means false, which is what Salesforce stores).
    return dict(name=name, label=str(raw.get("label") or name), writable=updateable, not_writable_reason=reason,
                crm_type=str(raw.get("type") or ""), nillable=bool(raw.get("nillable", True)))


def _picklist(raw: Mapping[str, Any], sf_type: str, length: int | None, common: dict[str, Any]) -> FieldSchema:
    options = tuple(
        Option(value=str(p["value"]), label=str(p.get("label") or p["value"]), active=bool(p.get("active", True)))
        for p in raw.get("picklistValues") or () if p.get("value") is not None)
    # A combobox takes any text; a picklist only its options when describe says it is restricted.
    restricted = sf_type != "combobox" and bool(raw.get("restrictedPicklist"))
    kind = FieldType.MULTIPICKLIST if sf_type == "multipicklist" else FieldType.PICKLIST
    return FieldSchema(type=kind, options=options, restricted=restricted, max_length=length, **common)


def with_controller(schema: FieldSchema, raw: Mapping[str, Any],
                    raw_fields: Mapping[str, Mapping[str, Any]]) -> FieldSchema:
    """A dependent picklist's options per value of its controlling field (describe's ``validFor``).

    ``validFor`` is base64 of a bitmap, most significant bit first, whose bit i
    is the controller's i-th picklist value as describe lists it (for a
    checkbox controller, bit 0 unchecked and bit 1 checked). Keys are the
    controller's canonical values as text (``str(True)`` for a checkbox), the
    form ``FieldSchema.for_controller`` looks up. A controller the describe
    does not show (no access) leaves the field without a dependency.
    """
    controller = raw_fields.get(str(raw.get("controllerName") or ""))
    if controller is None or schema.type not in (FieldType.PICKLIST, FieldType.MULTIPICKLIST):
        return schema
    if controller.get("type") == "boolean":
        keys = [str(False), str(True)]
    else:
        keys = [str(p["value"]) for p in controller.get("picklistValues") or () if p.get("value") is not None]
    allowed: dict[str, list[Option]] = {key: [] for key in keys}
    for entry, option in zip([p for p in raw.get("picklistValues") or () if p.get("value") is not None],
                             schema.options):
        try:
            bitmap = base64.b64decode(str(entry.get("validFor") or ""), validate=True)
        except (binascii.Error, ValueError):
            bitmap = b""  # unreadable: valid for nothing rather than for everything
        for index, key in enumerate(keys):
            if index >> 3 < len(bitmap) and bitmap[index >> 3] & (0x80 >> (index & 7)):
                allowed[key].append(option)
    return replace(schema, controller=str(controller["name"]),
                   dependent_options=MappingProxyType({key: tuple(found) for key, found in allowed.items()}))


__all__ = ["field_schema", "object_fields", "with_controller"]
