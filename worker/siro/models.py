"""Typed, tolerant models of Siro's recording and integration connection payloads.

Checked against ``shared/siro/siro-external-api.openapi.json`` (GET
``/v1/core/recordings/{id}``, the list endpoint, and
``/v1/core/integrations/connections``). Tolerant by design: fields
Siro adds later are kept (``extra="allow"``), and fields we rely on but that a
payload lacks get safe defaults instead of a crash. A malformed mapping (no
model or field name) is kept as it came so the resolver can report it rather
than drop it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

log = logging.getLogger(__name__)


def _id_string(value: Any) -> Any:
    """Ids and names as strings: numbers (HubSpot ids often are) become text.

    Anything that cannot sensibly be an id (objects, lists, booleans) becomes
    None instead of failing the whole recording.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def _or_none(value: Any, handler: Any) -> Any:
    """Wrap-validator body: a malformed optional value becomes None."""
    try:
        return handler(value)
    except ValidationError:
        return None


def _parse_timestamp(value: Any) -> dt.datetime | None:
    if value in ("", None) or isinstance(value, bool):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    # Siro's timestamps are UTC; one without an offset is read as UTC.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


class SiroModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)


class Link(SiroModel):
    """A linked CRM record: Siro's own id and the CRM's id (``externalId``)."""

    id: str | None = None
    external_id: str | None = None

    @field_validator("id", "external_id", mode="before")
    @classmethod
    def _as_id(cls, value: Any) -> Any:
        return _id_string(value)


class CrmLinks(SiroModel):
    integration_connection_id: str | None = None
    users: list[Link] = Field(default_factory=list)
    engagement: Link | None = None
    opportunity: Link | None = None
    contacts: list[Link] = Field(default_factory=list)
    account: Link | None = None
    lead: Link | None = None

    @field_validator("users", "contacts", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        # None, a non-list or non-object items: what is usable is kept.
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            return []
        return [item for item in value if isinstance(item, dict)]

    @field_validator("engagement", "opportunity", "account", "lead", mode="before")
    @classmethod
    def _object_or_none(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None

    @field_validator("integration_connection_id", mode="before")
    @classmethod
    def _as_id(cls, value: Any) -> Any:
        return _id_string(value)

    def slot(self, name: str) -> list[Link]:
        """The linked records of a slot, as a list (empty when unlinked)."""
        value = getattr(self, name, None)
        if value is None:
            return []
        links = value if isinstance(value, list) else [value]
        return [link for link in links if link.external_id]


class FieldMapping(SiroModel):
    crm_model_name: str | None = None
    crm_field_name: str | None = None

    @field_validator("crm_model_name", "crm_field_name", mode="before")
    @classmethod
    def _as_name(cls, value: Any) -> Any:
        return _id_string(value)


class EntityExtraction(SiroModel):
    name: str = ""
    value: Any = None
    mappings: list[FieldMapping] | None = None

    @field_validator("mappings", mode="before")
    @classmethod
    def _tolerate_bad_mappings(cls, value: Any) -> Any:
        # Anything that is not a list of objects becomes "no mappings" rather
        # than failing the whole recording.
        if not isinstance(value, list):
            return None
        return [item for item in value if isinstance(item, dict)]

    @field_validator("name", mode="before")
    @classmethod
    def _name_text(cls, value: Any) -> Any:
        # A missing or null name is "" (the resolver reports it), never a crash.
        return _id_string(value) or ""


class SummarySection(SiroModel):
    id: str | None = None
    name: str | None = None
    content: str | None = None

    @field_validator("id", "name", "content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value if isinstance(value, str) else None


class Recording(SiroModel):
    id: str
    organization_id: str | None = None
    user_id: str | None = None
    title: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    deleted: bool = False
    deleted_at: dt.datetime | None = None
    is_processing_done: bool | None = None
    is_entity_extraction_done: bool | None = None
    is_summary_done: bool | None = None
    crm: CrmLinks | None = None
    entity_extractions: list[EntityExtraction] | None = None
    summary: list[SummarySection] | None = None
    # Core fields we do not act on but keep typed; malformed values become None.
    duration_in_milliseconds: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    result: str | None = None
    root_data_purged_at: dt.datetime | None = None
    links: dict[str, Any] | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        # Still required: a recording without a usable id cannot be processed.
        value = _id_string(value)
        if value == "":
            raise ValueError("empty recording id")
        return value

    @field_validator("organization_id", "user_id", mode="before")
    @classmethod
    def _as_id(cls, value: Any) -> Any:
        return _id_string(value)

    @field_validator(
        "title",
        "result",
        "duration_in_milliseconds",
        "latitude",
        "longitude",
        "links",
        "is_processing_done",
        "is_entity_extraction_done",
        "is_summary_done",
        mode="wrap",
    )
    @classmethod
    def _lenient(cls, value: Any, handler: Any) -> Any:
        return _or_none(value, handler)

    @field_validator("created_at", "updated_at", "deleted_at", "root_data_purged_at", mode="before")
    @classmethod
    def _tolerate_bad_timestamp(cls, value: Any) -> Any:
        return _parse_timestamp(value)

    @field_validator("crm", mode="before")
    @classmethod
    def _crm_object(cls, value: Any) -> Any:
        # ``crm: null`` means "not linked yet"; anything that is not an object
        # is treated the same way rather than failing the recording.
        return value if isinstance(value, dict) else None

    @field_validator("entity_extractions", "summary", mode="before")
    @classmethod
    def _only_objects(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list):
            return []
        return [item for item in value if isinstance(item, dict)]

    @field_validator("deleted", mode="wrap")
    @classmethod
    def _null_is_false(cls, value: Any, handler: Any) -> Any:
        if value is None:
            return False
        try:
            return handler(value)
        except ValidationError:
            # Unreadable deletion flag: err on the side of not writing.
            return True

    @property
    def web_url(self) -> str | None:
        """``links.web.self``: the recording in Siro's web app, when given."""
        web = (self.links or {}).get("web")
        value = web.get("self") if isinstance(web, dict) else None
        return value if isinstance(value, str) else None


class RecordingPage(SiroModel):
    """One page of ``GET /v1/core/recordings``; ``cursor`` is None on the last."""

    data: list[Recording] = Field(default_factory=list)
    cursor: str | None = None

    @field_validator("data", mode="before")
    @classmethod
    def _usable_recordings(cls, value: Any) -> list[Any]:
        return _items_with_ids(value, "recording")

    @field_validator("cursor", mode="before")
    @classmethod
    def _cursor_text(cls, value: Any) -> str | None:
        return _id_string(value) or None


def _items_with_ids(value: Any, what: str) -> list[Any]:
    """A page's ``data``: one unusable item (not an object, or without an id) must not sink the
    page; it is dropped with a warning, the rest is processed."""
    if not isinstance(value, list):
        if value is not None:
            log.warning("Siro %s page: 'data' is not a list (%s); treated as empty", what, type(value).__name__)
        return []
    kept = []
    for index, item in enumerate(value):
        if isinstance(item, dict) and _id_string(item.get("id")):
            kept.append(item)
        else:
            log.warning("Siro %s page: item %d has no usable id; skipped", what, index)
    return kept


class CallerIdentity(SiroModel):
    token_id: str | None = None
    token_name: str | None = None
    organization_id: str | None = None
    authorized_org_group_id: str | None = None
    parent_org_group_token_id: str | None = None
    created_at: dt.datetime | None = None
    created_by: str | None = None

    @field_validator(
        "token_id",
        "token_name",
        "organization_id",
        "authorized_org_group_id",
        "parent_org_group_token_id",
        "created_by",
        mode="before",
    )
    @classmethod
    def _as_id(cls, value: Any) -> Any:
        return _id_string(value)

    @field_validator("created_at", mode="before")
    @classmethod
    def _tolerate_bad_timestamp(cls, value: Any) -> Any:
        return _parse_timestamp(value)


# --------------------------------------------------------------------------
# integration connections (GET /v1/core/integrations/connections)


class SyncStatus(SiroModel):
    """One model's sync state on a connection (``modelSyncStatus``: SYNCING, UP_TO_DATE, ERROR, ...)."""

    id: str | None = None
    model_name: str | None = None
    model_sync_status: str | None = None
    model_modified_after: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @field_validator("id", "model_name", "model_sync_status", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _id_string(value)

    @field_validator("model_modified_after", "created_at", "updated_at", mode="before")
    @classmethod
    def _tolerate_bad_timestamp(cls, value: Any) -> Any:
        return _parse_timestamp(value)


class IntegrationConnection(SiroModel):
    """A Siro integration connection: what a recording's ``crm.integrationConnectionId`` names.

    ``integrationPlatform`` is kept as any string (the spec's response enum lags
    its filter's: SALESFORCE, KNOCK, ... are listed there only); an unreadable
    ``isActive`` is None (unknown), never a crash.
    """

    id: str
    name: str | None = None
    external_account_id: str | None = None
    organization_id: str | None = None
    integration_platform: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    is_active: bool | None = None
    sync_status: list[SyncStatus] = Field(default_factory=list)
    sync_transcript: bool | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        value = _id_string(value)
        if value == "":
            raise ValueError("empty connection id")
        return value

    @field_validator("name", "external_account_id", "organization_id", "integration_platform", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _id_string(value)

    @field_validator("created_at", "updated_at", mode="before")
    @classmethod
    def _tolerate_bad_timestamp(cls, value: Any) -> Any:
        return _parse_timestamp(value)

    @field_validator("is_active", "sync_transcript", mode="before")
    @classmethod
    def _boolean(cls, value: Any) -> Any:
        return value if isinstance(value, bool) else None

    @field_validator("sync_status", mode="before")
    @classmethod
    def _only_objects(cls, value: Any) -> Any:
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


class ConnectionPage(SiroModel):
    """One page of ``GET /v1/core/integrations/connections``; ``cursor`` is None on the last."""

    data: list[IntegrationConnection] = Field(default_factory=list)
    cursor: str | None = None

    @field_validator("data", mode="before")
    @classmethod
    def _usable_connections(cls, value: Any) -> list[Any]:
        return _items_with_ids(value, "connection")

    @field_validator("cursor", mode="before")
    @classmethod
    def _cursor_text(cls, value: Any) -> str | None:
        return _id_string(value) or None
