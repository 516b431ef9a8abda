"""``GET /v1/core/recordings``: filtering and keyset paging.

Listings are ordered by ``updatedAt`` then ``id``; the cursor is a keyset
position, so a recording updated mid-walk moves to the end instead of
shifting the pages (nothing is skipped). The cursor is opaque and signed,
bound to the filters it was issued for: a tampered cursor, or one sent with
other filters, is 400; the filters must be sent again with every cursor.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from simulators.siro.errors import bad_request
from simulators.siro.params import (
    Bound,
    filter_fingerprint,
    flags,
    page_size,
    status_filters,
    time_bounds,
)
from simulators.siro.recordings import parse_ts, render

if TYPE_CHECKING:
    from simulators.siro.state import SiroState

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_COMPARE = {
    "gte": lambda value, when: value >= when,
    "gt": lambda value, when: value > when,
    "lt": lambda value, when: value < when,
    "lte": lambda value, when: value <= when,
}


def list_recordings(state: SiroState, params: dict[str, str], org: str | None) -> dict[str, Any]:
    """One page of the organization's recordings matching the filters, and the cursor to the next."""
    shown = flags(params)
    size = page_size(params)
    bounds = time_bounds(params, state.strict_timestamps)
    statuses = status_filters(params)
    fingerprint = filter_fingerprint(params)
    after = _cursor_position(state, params, fingerprint)

    def keep(record: dict[str, Any]) -> bool:
        return (record.get("organizationId", state.organization_id) == org
                and _within(record, bounds) and _has_statuses(record, statuses))

    page = state._select(keep, _position, after, size + 1)
    more = len(page) > size
    page = page[:size]
    cursor = state._make_cursor(page[-1], fingerprint) if more and page else None
    return {"data": [render(r, shown) for r in page], "cursor": cursor}


def _position(record: dict[str, Any]) -> tuple[dt.datetime, str]:
    return (parse_ts(record.get("updatedAt")) or _EPOCH, str(record.get("id")))


def _cursor_position(state: SiroState, params: dict[str, str], fingerprint: str) -> tuple[dt.datetime, str] | None:
    if "cursor" not in params:
        return None
    data = state._read_cursor(params["cursor"])
    if data is None:
        raise bad_request("invalid cursor")
    if data.get("f") != fingerprint:
        raise bad_request("cursor does not match the filters it was issued for")
    position = parse_ts(data.get("u"))
    if position is None:
        raise bad_request("invalid cursor")
    return (position, str(data.get("i")))


def _within(record: dict[str, Any], bounds: list[Bound]) -> bool:
    """Every time filter holds; a recording without a usable timestamp matches none."""
    for field_name, op, when in bounds:
        value = parse_ts(record.get(field_name))
        if value is None or not _COMPARE[op](value, when):
            return False
    return True


def _has_statuses(record: dict[str, Any], statuses: dict[str, bool]) -> bool:
    return all(bool(record.get(name)) == wanted for name, wanted in statuses.items())
