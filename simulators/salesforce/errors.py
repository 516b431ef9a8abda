"""Salesforce's error bodies, exactly as the REST API sends them.

Request-level errors are a JSON list of ``{"message", "errorCode"}`` (some
with ``fields``); per-record errors inside a collection result are
``{"statusCode", "message", "fields"}``. Key order follows Salesforce's.
"""

from __future__ import annotations

import copy
import json
from typing import Any

NOT_FOUND_BODY = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
INVALID_SESSION_BODY = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
ENTITY_IS_DELETED_BODY = [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}]

_REQUEST_LIMIT_BODY = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
_SERVER_UNAVAILABLE_BODY = [{"message": "Server unavailable, please try again later.",
                             "errorCode": "SERVER_UNAVAILABLE"}]


class RequestError(Exception):
    """A request-level error: the whole request is answered with ``errorCode`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> list[dict[str, Any]]:
        return api_error(self.code, self.message)


def api_error(code: str, message: str) -> list[dict[str, Any]]:
    """The usual request-level error body."""
    return [{"message": message, "errorCode": code}]


def record_error(code: str, message: str, fields: list[str]) -> dict[str, Any]:
    """One error of one record (in a collection result, or a single-record PATCH)."""
    return {"statusCode": code, "message": message, "fields": fields}


def fault_body(status: int) -> list[dict[str, Any]]:
    """What an injected fault answers by default: Salesforce's body for that status."""
    body = {403: _REQUEST_LIMIT_BODY, 429: _REQUEST_LIMIT_BODY, 401: INVALID_SESSION_BODY}.get(
        status, _SERVER_UNAVAILABLE_BODY)
    return copy.deepcopy(body)


def parser_error(raw_text: str, message: str, probe: Any = None) -> list[dict[str, Any]]:
    """``JSON_PARSER_ERROR``, pointing at the column where ``probe`` appears in the request body."""
    column = 1
    if probe is not None:
        found = raw_text.find(json.dumps(probe)[:20])
        column = found + 1 if found >= 0 else 1
    return [{"message": f"{message} or request may be missing a required field at [line:1, column:{column}]",
             "errorCode": "JSON_PARSER_ERROR"}]


def no_such_column(name: str, entity: str) -> str:
    """The message for an unknown field in a query or a record read."""
    return (f"No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure "
            "to append the '__c' after the custom field name. Please reference your WSDL or the describe call "
            "for the appropriate names.")
