"""The schema model: sObjects, their fields and picklist values, in Salesforce describe terms.

``SFObject.describe`` and ``SFField.describe`` give the JSON of
``GET .../sobjects/{name}/describe``; ``SFObject.summary`` the shorter entry of
``GET .../sobjects/``. Field names are case-insensitive, as in Salesforce.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Sequence

STRING_TYPES = {"string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone", "url", "id",
                "reference", "encryptedstring"}
NUMBER_TYPES = {"double", "currency", "percent"}
INT_TYPES = {"int", "long"}
SOAP_TYPES = {
    "string": "xsd:string", "textarea": "xsd:string", "picklist": "xsd:string", "multipicklist": "xsd:string",
    "combobox": "xsd:string", "email": "xsd:string", "phone": "xsd:string", "url": "xsd:string", "id": "tns:ID",
    "reference": "tns:ID", "encryptedstring": "xsd:string", "boolean": "xsd:boolean", "int": "xsd:int",
    "long": "xsd:long", "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
    "date": "xsd:date", "datetime": "xsd:dateTime", "time": "xsd:time", "address": "urn:address",
    "location": "urn:location", "base64": "xsd:base64Binary", "anyType": "xsd:anyType",
}


@dataclass
class PicklistValue:
    value: str
    label: str | None = None
    active: bool = True
    default_value: bool = False
    # For a dependent picklist: the controller's values this one is valid for (option values of a
    # picklist controller, True / False of a checkbox controller).
    valid_for: tuple[Any, ...] = ()

    def describe(self, controller: SFField | None = None) -> dict[str, Any]:
        return {"active": self.active, "defaultValue": self.default_value, "label": self.label or self.value,
                "validFor": _valid_for(self.valid_for, controller) if controller is not None else None,
                "value": self.value}


def _valid_for(valid: Sequence[Any], controller: SFField) -> str:
    """Salesforce's ``validFor``: base64 of a bitmap over the controller's values, most significant bit
    first; bit i is the controller's i-th picklist value as describe lists it, or for a checkbox bit 0
    unchecked and bit 1 checked."""
    if controller.type == "boolean":
        index = {False: 0, True: 1}
        size = 2
    else:
        index = {p.value: i for i, p in enumerate(controller.picklist_values)}
        size = len(controller.picklist_values)
    bitmap = bytearray(max(3, -(-((size + 7) // 8) // 3) * 3))  # whole groups of 3 bytes, as Salesforce sends
    for value in valid:
        position = index.get(value)
        if position is not None:
            bitmap[position >> 3] |= 0x80 >> (position & 7)
    return base64.b64encode(bytes(bitmap)).decode("ascii")


@dataclass
class SFField:
    """One field of a simulated sObject, in Salesforce describe terms."""

    name: str
    type: str
    label: str | None = None
    updateable: bool = True
    createable: bool = True
    calculated: bool = False
    nillable: bool = True
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    picklist_values: list[PicklistValue] = field(default_factory=list)
    restricted_picklist: bool = False
    reference_to: tuple[str, ...] = ()
    custom: bool | None = None
    # A dependent picklist names its controlling field (a picklist or checkbox of the same object); its
    # values say what they are valid for. Writes do not check the dependency (the REST API is known not to).
    controller: str | None = None

    def describe(self, obj: SFObject | None = None) -> dict[str, Any]:
        controller = obj.field(self.controller) if obj is not None and self.controller else None
        return {
            "aggregatable": self.type not in ("textarea", "multipicklist", "address", "location"),
            "autoNumber": False,
            "byteLength": self.length * 3,
            "calculated": self.calculated,
            "calculatedFormula": "Amount * Probability / 100" if self.calculated else None,
            "caseSensitive": False,
            "controllerName": controller.name if controller is not None else None,
            "createable": self.createable,
            "custom": self.name.endswith("__c") if self.custom is None else self.custom,
            "defaultValue": None,
            "defaultedOnCreate": self.type == "boolean",
            "dependentPicklist": controller is not None,
            "digits": self.digits,
            "externalId": False,
            "filterable": self.type not in ("textarea", "address", "location"),
            "htmlFormatted": False,
            "idLookup": self.type == "id",
            "label": self.label or self.name,
            "length": self.length,
            "name": self.name,
            "nameField": self.name == "Name",
            "nillable": self.nillable and self.type != "boolean",  # a checkbox is never null
            "picklistValues": [value.describe(controller) for value in self.picklist_values],
            "precision": self.precision,
            "referenceTo": list(self.reference_to),
            "relationshipName": (self.name[:-2] if self.type == "reference" and self.name.endswith("Id") else None),
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "soapType": SOAP_TYPES.get(self.type, "xsd:anyType"),
            "sortable": self.type not in ("textarea", "multipicklist", "address", "location"),
            "type": self.type,
            "unique": False,
            "updateable": self.updateable,
        }


@dataclass
class SFObject:
    name: str
    key_prefix: str
    label: str
    fields: dict[str, SFField] = field(default_factory=dict)
    custom: bool = False

    def field(self, name: str) -> SFField | None:
        """Field names are case-insensitive in Salesforce."""
        found = self.fields.get(name)
        if found is not None:
            return found
        folded = name.casefold()
        for key, value in self.fields.items():
            if key.casefold() == folded:
                return value
        return None

    def describe(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "activateable": False, "createable": True, "custom": self.custom, "customSetting": False,
            "deletable": True, "deprecatedAndHidden": False, "feedEnabled": False, "keyPrefix": self.key_prefix,
            "label": self.label, "labelPlural": self.label + "s", "layoutable": True, "mergeable": False,
            "name": self.name, "queryable": True, "replicateable": True, "retrieveable": True,
            "searchable": True, "triggerable": True, "undeletable": True, "updateable": True,
            "fields": [f.describe(self) for f in self.fields.values()],
            "childRelationships": [], "recordTypeInfos": [],
            "urls": {"describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}", "sobject": base},
        }

    def summary(self, version: str) -> dict[str, Any]:
        full = self.describe(version)
        full.pop("fields")
        full.pop("childRelationships")
        full.pop("recordTypeInfos")
        return full
