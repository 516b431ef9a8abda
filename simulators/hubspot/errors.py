"""HubSpot's error bodies, exactly as CRM v3 sends them (key order included).

Most are ``{"status": "error", "message", "correlationId", "category", ...}``;
a batch's partial failure lists ``{"status", "category", "message",
"context": {"ids"}}`` in ``errors``; a validation failure names every invalid
property twice, in ``message`` (a JSON list) and in ``errors[]``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from simulators.hubspot.values import iso

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: "
    "https://developers.hubspot.com/scopes."
)

Answer = tuple[int, dict[str, Any]]


def correlation_id() -> str:
    return str(uuid.uuid4())


def error(message: str, category: str, **extra: Any) -> dict[str, Any]:
    """The common shape; ``extra`` keys (``context``, ``subCategory``) follow ``category``."""
    return {"status": "error", "message": message, "correlationId": correlation_id(), "category": category,
            **extra}


def validation(message: str, **extra: Any) -> Answer:
    return 400, error(message, "VALIDATION_ERROR", **extra)


def unknown_type(object_type: str) -> Answer:
    return validation(f"Unable to infer object type from: {object_type}")


def record_not_found(record_id: str) -> Answer:
    return 404, {"status": "error", "message": "Object not found.  objectId are usually numeric.",
                 "correlationId": correlation_id(), "context": {"id": [record_id]}, "category": "OBJECT_NOT_FOUND"}


def batch_not_found(singular: str, ids: list[str]) -> dict[str, Any]:
    """The ``errors[]`` entry of a 207 batch answer for the ids not found."""
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"Could not get some {singular} objects, they may be deleted or not exist. "
                   "Check that ids are valid.",
        "context": {"ids": ids},
    }


def invalid_authentication() -> Answer:
    return 401, error(AUTH_MESSAGE, "INVALID_AUTHENTICATION")


def expired_authentication(expired: dt.datetime, now: dt.datetime) -> Answer:
    """401 saying how long ago the token expired, in HubSpot's largest whole unit."""
    ago = max(0, int((now - expired).total_seconds()))
    unit, amount = ("second(s)", ago)
    if ago >= 86400:
        unit, amount = "day(s)", ago // 86400
    elif ago >= 3600:
        unit, amount = "hour(s)", ago // 3600
    elif ago >= 60:
        unit, amount = "minute(s)", ago // 60
    return 401, error(f"The OAuth token used to make this call expired {amount} {unit} ago.",
                      "EXPIRED_AUTHENTICATION", context={"expire time": [iso(expired)]})


def missing_scopes(scope: str) -> Answer:
    return 403, {
        "status": "error",
        "message": SCOPES_MESSAGE,
        "correlationId": correlation_id(),
        "errors": [{"message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": [scope]}}],
        "links": {"scopes": "https://developers.hubspot.com/scopes"},
        "category": "MISSING_SCOPES",
    }


def rate_limited(portal_id: int) -> dict[str, Any]:
    return {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": "TEN_SECONDLY_ROLLING",
        "groupName": f"publicapi:private-app-ten-secondly:{portal_id}",
    }


def fault(status: int) -> dict[str, Any]:
    """An injected fault's default body; the empty correlationId is filled in when it is sent."""
    return {
        "status": "error",
        "message": "internal error" if status < 503 else "Service Unavailable",
        "correlationId": "",
        "category": "INTERNAL_ERROR" if status < 503 else "SERVICE_UNAVAILABLE",
    }


def invalid_values(problems: list[dict[str, Any]], portal_id: int) -> dict[str, Any]:
    """400 ``VALIDATION_ERROR`` for invalid property values: ``Property values were not valid: [...]``."""
    entries = [
        {
            "isValid": False,
            "message": p["message"],
            "error": p["code"],
            "name": p["name"],
            "localizedErrorMessage": p["message"],
            "propertyValue": p["value"],
            "portalId": portal_id,
        }
        for p in problems
    ]
    return {
        "status": "error",
        "message": "Property values were not valid: " + json.dumps(entries, separators=(",", ":")),
        "correlationId": correlation_id(),
        "errors": [
            {"message": p["message"], "code": p["code"], "context": {"propertyName": [p["name"]]}}
            for p in problems
        ],
        "category": "VALIDATION_ERROR",
    }


def required_properties(singular: str, names: list[str]) -> Answer:
    """400 for a create without a required property (a note's ``hs_timestamp``)."""
    return 400, {"status": "error", "message": f"Error creating {singular}.  Some required properties were not set.",
                 "correlationId": correlation_id(), "context": {"properties": names}, "category": "VALIDATION_ERROR"}


def invalid_association_type(spec: str) -> Answer:
    """400 for an association type id HubSpot does not know (``spec``: ``HUBSPOT_DEFINED=999``)."""
    return 400, {"status": "error", "message": "One or more associations are invalid",
                 "correlationId": correlation_id(),
                 "context": {"associationSpec": [spec],
                             "INVALID_ASSOCIATION_TYPE_ID": [f"{spec} is not a valid association definition id"]},
                 "category": "VALIDATION_ERROR"}


def invalid_object_ids(missing: list[tuple[str, str]]) -> Answer:
    """400 for associations to records that do not exist: ``missing`` is [(SINGULAR, id)]."""
    return 400, {"status": "error", "message": "One or more associations are invalid",
                 "correlationId": correlation_id(),
                 "context": {"INVALID_OBJECT_IDS": [f"{kind}={rid} is not valid" for kind, rid in missing],
                             "objectId": [rid for _, rid in missing],
                             "objectType": [kind for kind, _ in missing]},
                 "category": "VALIDATION_ERROR"}
