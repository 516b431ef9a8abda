"""The CRM v3 routes the simulator serves, and the granular scope each call needs.

Objects need ``crm.objects.{type}.read`` (batch read, single read, pipelines)
or ``.write`` (batch update, PATCH); properties need
``crm.schemas.{type}.read``.
"""

from __future__ import annotations

import re

PROPERTIES = re.compile(r"^/crm/v3/properties/(?P<type>[^/]+)(?:/(?P<name>[^/]+))?/?$")
PIPELINES = re.compile(r"^/crm/v3/pipelines/(?P<type>[^/]+)/?$")
BATCH = re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/batch/(?P<op>read|update)/?$")
ONE = re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/(?P<id>[^/]+)/?$")
# Notes and associations (``simulators.hubspot.notes``): create, batch create / archive, associations v4.
CREATE = re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/?$")
BATCH_CREATE = re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)/batch/(?P<op>create|archive)/?$")
V4_DEFAULT = re.compile(
    r"^/crm/v4/objects/(?P<type>[^/]+)/(?P<id>[^/]+)/associations/default/(?P<to_type>[^/]+)/(?P<to_id>[^/]+)/?$")
V4_BATCH_DEFAULT = re.compile(r"^/crm/v4/associations/(?P<type>[^/]+)/(?P<to_type>[^/]+)/batch/associate/default/?$")
V4_LIST = re.compile(r"^/crm/v4/objects/(?P<type>[^/]+)/(?P<id>[^/]+)/associations/(?P<to_type>[^/]+)/?$")

SCOPE_ACCESS = ("read", "write", "schemas")


def scope_name(object_name: str, access: str) -> str:
    """The granular scope of ``access`` (read/write/schemas) on an object type."""
    if access == "schemas":
        return f"crm.schemas.{object_name}.read"
    return f"crm.objects.{object_name}.{access}"


def needed_access(method: str, path: str) -> tuple[str, str] | None:
    """(access, object type as written in the path) that a call needs, or None for unknown routes."""
    if method == "GET" and (m := PROPERTIES.match(path)):
        return "schemas", m["type"]
    if method == "GET" and (m := PIPELINES.match(path)):
        return "read", m["type"]
    if method == "POST" and (m := BATCH.match(path)):
        return ("read" if m["op"] == "read" else "write"), m["type"]
    if m := ONE.match(path):
        return ("read" if method == "GET" else "write"), m["type"]
    if method == "POST" and (m := CREATE.match(path) or BATCH_CREATE.match(path) or V4_BATCH_DEFAULT.match(path)):
        return "write", m["type"]
    if method == "PUT" and (m := V4_DEFAULT.match(path)):
        return "write", m["type"]
    if method == "GET" and (m := V4_LIST.match(path)):
        return "read", m["type"]
    return None
