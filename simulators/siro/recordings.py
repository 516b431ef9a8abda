"""Recordings in the API's shape: timestamps, CRM links, entity extractions, and how a recording is
rendered with the enrichment flags.

The enrichment blocks ``crm``, ``entityExtractions``, ``summary`` (and
``evaluationScore``, ``followups``) appear only when their flag is exactly
``"true"``; then ``crm`` stays null when not linked and the lists are ``[]``
when empty.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

WEB_APP_URL = "https://app.siro.ai/recordings"

#: flag -> (key in the recording, value when the recording has none)
ENRICHMENTS: dict[str, tuple[str, Any]] = {
    "showCrmLinks": ("crm", None),
    "showEntityExtractions": ("entityExtractions", []),
    "showSummary": ("summary", []),
    "showEvaluationScore": ("evaluationScore", None),
    "showFollowups": ("followups", []),
}
ENRICHMENT_KEYS = {key for key, _ in ENRICHMENTS.values()}


def iso(value: dt.datetime) -> str:
    """A datetime in Siro's wire format, ``YYYY-MM-DDTHH:mm:ss.sssZ`` (UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_ts(value: Any) -> dt.datetime | None:
    """Lenient parse of a stored timestamp (str or datetime); None when unusable."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def ts_value(value: dt.datetime | str | None, default: dt.datetime) -> str:
    """A timestamp for storage: a datetime in wire format, a string as given, None as ``default``."""
    if value is None:
        return iso(default)
    if isinstance(value, dt.datetime):
        return iso(value)
    return value


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def lifecycle(now: dt.datetime, created_at: dt.datetime | str | None, updated_at: dt.datetime | str | None,
              deleted: bool, deleted_at: dt.datetime | str | None) -> dict[str, Any]:
    """The timestamp and deletion fields of a new recording (updatedAt defaults to createdAt)."""
    created = ts_value(created_at, now)
    return {
        "createdAt": created,
        "updatedAt": ts_value(updated_at, now) if updated_at is not None else created,
        "rootDataPurgedAt": None,
        "deleted": deleted,
        "deletedAt": (ts_value(deleted_at, now) if (deleted or deleted_at) else None),
    }


def link_value(value: Any, slot: str, index: int = 0) -> dict[str, Any] | None:
    """``"006..."`` / ``("siro-id", "006...")`` / ``{"id", "externalId"}`` -> a link."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return {"id": str(value[0]), "externalId": str(value[1])}
    external = str(value)
    digest = hashlib.sha1(f"{slot}:{external}:{index}".encode()).hexdigest()[:16]
    return {"id": f"sx_{slot}_{digest}", "externalId": external}


def extraction(name: str, value: Any, *mappings: tuple[str, str] | Mapping[str, Any]) -> dict[str, Any]:
    """Build an entity extraction: ``extraction("Amount", 12500, ("Opportunity", "Amount"))``."""
    return {
        "name": name,
        "value": value,
        "mappings": [
            dict(m) if isinstance(m, Mapping) else {"crmModelName": m[0], "crmFieldName": m[1]} for m in mappings
        ],
    }


def webhook_payload(record: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The ``RecordingEventWebhookPayload`` Siro would send for this recording."""
    crm = record.get("crm")
    payload: dict[str, Any] = {
        "recordingId": record["id"],
        "siroUserId": record.get("userId"),
        "recordingProcessed": bool(record.get("isProcessingDone")),
        "recordingLinked": crm is not None,
        "eventType": event_type,
    }
    if crm is not None:
        payload["crm"] = {key: value for key, value in crm.items() if value not in (None, [])}
    return payload


def render(record: dict[str, Any], flags: dict[str, bool]) -> dict[str, Any]:
    """A recording as the API answers it, with the enrichment blocks its flags ask for."""
    out = {k: copy.deepcopy(v) for k, v in record.items() if k not in ENRICHMENT_KEYS}
    for flag, (key, default) in ENRICHMENTS.items():
        if flags.get(flag):
            # crm stays null when not linked; the lists are [] when empty.
            value = record.get(key)
            out[key] = copy.deepcopy(default if value is None else value)
    return out
