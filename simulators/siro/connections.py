"""``GET /v1/core/integrations/connections``: the organization's integration connections.

The published API names one query parameter, ``integrationPlatform`` (an enum
filter), and answers ``{"data": [...], "cursor": <opaque string or null>}``
without naming how the cursor is sent back or how big a page is. The
simulator takes the stricter reading, as the recordings listing does it:

- the only parameters are ``integrationPlatform`` and ``cursor`` (the
  recordings listing's name for it); anything else, ``pageSize`` included,
  and any repeated parameter is 400;
- ``integrationPlatform`` must be one of the documented values, exactly
  (case matters), else 400;
- pages hold ``SiroState.connection_page_size`` items (25 by default, the
  recordings listing's default), ordered by ``createdAt`` then ``id``; the
  cursor is a signed keyset position bound to the filter it was issued for:
  a tampered cursor, one from the recordings listing, or one sent with
  another (or without its) ``integrationPlatform`` is 400, so the filter
  must be sent again with every cursor;
- connections are scoped to the token's organization.

Connections are stored in the API's shape (``connection`` builds one); the
items are answered as stored, so a test can seed odd values with
``SiroState.put_connection``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Any

from simulators.siro.errors import bad_request
from simulators.siro.recordings import parse_ts, ts_value

if TYPE_CHECKING:
    from simulators.siro.state import SiroState

#: ``integrationPlatform``, the query filter's documented values.
PLATFORMS = (
    "MERGE", "SIRO_CUSTOM_INPUT", "SERVICE_TITAN", "COMPANY_CAM", "INGAGE", "LEAD_PERFECTION", "SPOTIO",
    "SALESFORCE", "SOLUTION_VIEW", "CALENDAR_ONLY", "AUTHENTICOM", "FORTELLIS", "YARDI_SENIOR_HOUSING",
    "FUNNEL", "KNOCK",
)
CONNECTION_PARAMS = frozenset({"integrationPlatform", "cursor"})
CONNECTION_PAGE_SIZE = 25
SYNC_STATUSES = ("SYNCING", "UP_TO_DATE", "ERROR")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_KIND = "connections"


def connection(connection_id: str, *, name: str, integration_platform: str, organization_id: str,
               now: dt.datetime, is_active: bool = True, external_account_id: str | None = None,
               created_at: dt.datetime | str | None = None, updated_at: dt.datetime | str | None = None,
               sync_status: list[dict[str, Any]] | None = None, sync_transcript: bool | None = None,
               **extra: Any) -> dict[str, Any]:
    """A connection in the API's shape; ``syncStatus`` defaults to one up-to-date entry per
    core CRM model, and ``syncTranscript`` is left out unless given (it is optional)."""
    created = ts_value(created_at, now)
    item: dict[str, Any] = {
        "id": connection_id,
        "name": name,
        "externalAccountId": external_account_id or f"acct_{connection_id}",
        "organizationId": organization_id,
        "integrationPlatform": integration_platform,
        "createdAt": created,
        "updatedAt": ts_value(updated_at, now) if updated_at is not None else created,
        "isActive": is_active,
        "syncStatus": sync_status if sync_status is not None else _sync_status(connection_id, created, is_active),
    }
    if sync_transcript is not None:
        item["syncTranscript"] = sync_transcript
    item.update(extra)
    return item


def _sync_status(connection_id: str, created: str, active: bool) -> list[dict[str, Any]]:
    return [
        {"id": f"ss_{connection_id}_{model.lower()}", "modelName": model,
         "modelSyncStatus": "UP_TO_DATE" if active else "ERROR", "modelModifiedAfter": None,
         "createdAt": created, "updatedAt": created}
        for model in ("Account", "Contact", "Opportunity")
    ]


def list_connections(state: SiroState, params: dict[str, str], org: str | None) -> dict[str, Any]:
    """One page of the organization's connections (filtered by platform) and the cursor to the next."""
    platform = _platform(params)
    fingerprint = _fingerprint(platform)
    after = _cursor_position(state, params, fingerprint)

    def keep(item: dict[str, Any]) -> bool:
        return (item.get("organizationId", state.organization_id) == org
                and (platform is None or item.get("integrationPlatform") == platform))

    size = state.connection_page_size
    page = state._select(keep, _position, after, size + 1, kind=_KIND)
    more = len(page) > size
    page = page[:size]
    cursor = None
    if more and page:
        last = page[-1]
        cursor = state._sign_cursor({"k": _KIND, "c": last.get("createdAt"), "i": str(last.get("id")),
                                     "f": fingerprint})
    return {"data": page, "cursor": cursor}


def _platform(params: dict[str, str]) -> str | None:
    value = params.get("integrationPlatform")
    if value is not None and value not in PLATFORMS:
        raise bad_request(f"integrationPlatform must be one of {', '.join(PLATFORMS)}; got {value!r}")
    return value


def _fingerprint(platform: str | None) -> str:
    """What a connections cursor is bound to: the listing and its filter, as sent."""
    return hashlib.sha256(json.dumps([_KIND, platform]).encode()).hexdigest()[:16]


def _position(item: dict[str, Any]) -> tuple[dt.datetime, str]:
    return (parse_ts(item.get("createdAt")) or _EPOCH, str(item.get("id")))


def _cursor_position(state: SiroState, params: dict[str, str], fingerprint: str) -> tuple[dt.datetime, str] | None:
    if "cursor" not in params:
        return None
    data = state._read_cursor(params["cursor"])
    if data is None or data.get("k") != _KIND:
        raise bad_request("invalid cursor")
    if data.get("f") != fingerprint:
        raise bad_request("cursor does not match the filters it was issued for")
    return (parse_ts(data.get("c")) or _EPOCH, str(data.get("i")))
