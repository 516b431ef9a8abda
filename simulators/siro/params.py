"""Query parameters, read strictly: unknown and repeated parameters are 400 (a typo such as
``updatedAt:ge`` must not silently widen a poll), flags are exactly ``"true"``
or ``"false"``, ``pageSize`` is an integer 1..100 (default 25), and time
filters take exactly ``YYYY-MM-DDTHH:mm:ss.sssZ`` (the documented format;
any ISO 8601 when the state's ``strict_timestamps`` is off).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

from starlette.requests import Request

from simulators.siro.errors import bad_request
from simulators.siro.recordings import ENRICHMENTS

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100

STATUS_FILTERS = ("isProcessingDone", "isEntityExtractionDone", "isSummaryDone")
TIME_FILTERS: dict[str, tuple[str, str]] = {
    "updatedAt:gte": ("updatedAt", "gte"),
    "updatedAt:gt": ("updatedAt", "gt"),
    "updatedAt:lt": ("updatedAt", "lt"),
    "updatedAt:lte": ("updatedAt", "lte"),
    "createdAt:gt": ("createdAt", "gt"),
    "createdAt:lt": ("createdAt", "lt"),
}
GET_PARAMS = frozenset(ENRICHMENTS)
LIST_PARAMS = frozenset(ENRICHMENTS) | frozenset(STATUS_FILTERS) | frozenset(TIME_FILTERS) | {"pageSize", "cursor"}

_STRICT_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

Bound = tuple[str, str, dt.datetime]  # field, operator (gt, gte, lt, lte), instant


def single_params(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            raise bad_request(f"unknown query parameter {key!r}")
        if key in params:
            raise bad_request(f"query parameter {key!r} given more than once")
        params[key] = value
    return params


def _boolean(params: dict[str, str], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise bad_request(f"{name} must be 'true' or 'false', got {value!r}")
    return value == "true"


def flags(params: dict[str, str]) -> dict[str, bool]:
    """The enrichment flags given, by name."""
    return {name: value for name in ENRICHMENTS if (value := _boolean(params, name)) is not None}


def status_filters(params: dict[str, str]) -> dict[str, bool]:
    """The processing status filters given, by recording field."""
    return {name: value for name in STATUS_FILTERS if (value := _boolean(params, name)) is not None}


def page_size(params: dict[str, str]) -> int:
    raw = params.get("pageSize")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not re.fullmatch(r"[0-9]+", raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad_request(f"pageSize must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def time_bounds(params: dict[str, str], strict: bool) -> list[Bound]:
    bounds: list[Bound] = []
    for name, (field_name, op) in TIME_FILTERS.items():
        value = params.get(name)
        if value is None:
            continue
        if strict and not _STRICT_TS.match(value):
            raise bad_request(f"{name} must be an ISO 8601 timestamp (YYYY-MM-DDTHH:mm:ss.sssZ)")
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"{name} is not a valid ISO 8601 timestamp") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        bounds.append((field_name, op, when))
    return bounds


def filter_fingerprint(params: dict[str, str]) -> str:
    """What a cursor is bound to: the time and status filters, as sent."""
    filter_keys = sorted(k for k in params if k in TIME_FILTERS or k in STATUS_FILTERS)
    return hashlib.sha256(
        json.dumps([[k, params[k]] for k in filter_keys], separators=(",", ":")).encode()
    ).hexdigest()[:16]
