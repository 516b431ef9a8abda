"""Notes in the simulated org: ``ContentNote``, its ``ContentDocument`` and ``ContentDocumentLink``.

A ContentNote is a ContentDocument (one id, prefix ``069``) whose body is
sent base64-encoded in ``Content``; ``ContentDocumentLink`` (prefix ``06A``)
attaches it to records. As strict as a real org where it matters to a client:

* ``POST .../sobjects/ContentNote`` ``{Title, Content}``: Title required
  (not blank, at most 255 characters), Content base64 (anything else fails
  the JSON parser: 400 ``JSON_PARSER_ERROR``) of UTF-8 text whose special
  characters are escaped (a bare ``&``, ``&apos;`` or any named entity other
  than ``&amp; &lt; &gt; &quot;`` is refused, as the org refuses "HTML tags
  or unescaped characters that are not allowed in a Note"); line breaks and
  ``<script>`` are stripped before the body is stored. ``GET``/``PATCH``
  (only Title and Content change, 204)/``DELETE`` by id; a deleted note
  answers 404 ``ENTITY_IS_DELETED``, an unknown one 404 ``NOT_FOUND``.
* ``POST .../sobjects/ContentDocumentLink`` ``{ContentDocumentId,
  LinkedEntityId, ShareType, Visibility}``: ShareType required, ``V``/``C``/``I``;
  Visibility ``AllUsers``/``InternalUsers``/``SharedUsers``; a second link
  between the same note and record is ``DUPLICATE_VALUE``; a record that is
  deleted or never existed is ``INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY``.
* SOQL on ContentDocumentLink lives in ``notes_query``.

Tests look at the org with ``note_html``, ``note_links`` and change it as a
person would with ``delete_note`` and ``set_note_created``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import html
import json
import re
from typing import TYPE_CHECKING, Any, Mapping

from simulators.salesforce.errors import (
    ENTITY_IS_DELETED_BODY,
    NOT_FOUND_BODY,
    api_error,
    no_such_column,
    parser_error,
    record_error,
)
from simulators.salesforce.ids import make_id, to_id18
from simulators.salesforce.schema import PicklistValue, SFField, SFObject
from simulators.salesforce.values import (
    field_errors,
    format_datetime,
    json_kind,
)

if TYPE_CHECKING:
    from simulators.salesforce.state import SalesforceState

NOTE_PREFIX = "069"
LINK_PREFIX = "06A"
TITLE_MAX = 255
NOTE_OBJECTS = ("ContentNote", "ContentDocument", "ContentDocumentLink")

_AUDIT = (
    SFField("OwnerId", "reference", "Owner ID", updateable=False, createable=False, length=18, reference_to=("User",)),
    SFField("CreatedDate", "datetime", "Created Date", updateable=False, createable=False, nillable=False),
    SFField("LastModifiedDate", "datetime", "Last Modified Date", updateable=False, createable=False, nillable=False),
)
_DOCUMENT = (
    SFField("Title", "string", "Title", nillable=False, length=TITLE_MAX),
    SFField("FileType", "string", "File Type", updateable=False, createable=False, length=20),
    SFField("FileExtension", "string", "File Extension", updateable=False, createable=False, length=40),
    SFField("ContentSize", "int", "Size", updateable=False, createable=False, digits=9),
    *_AUDIT,
)
_NOTE = (
    *_DOCUMENT,
    SFField("Content", "base64", "Content"),
    SFField("TextPreview", "string", "Text Preview", updateable=False, createable=False, length=300),
)
_LINK = (
    SFField("ContentDocumentId", "reference", "Content Document ID", nillable=False, updateable=False, length=18,
            reference_to=("ContentDocument",)),
    SFField("LinkedEntityId", "reference", "Linked Entity ID", nillable=False, updateable=False, length=18),
    SFField("ShareType", "picklist", "Share Type", nillable=False, length=40, restricted_picklist=True,
            picklist_values=[PicklistValue("V", "Viewer"), PicklistValue("C", "Collaborator"),
                             PicklistValue("I", "Inferred")]),
    SFField("Visibility", "picklist", "Visibility", length=40, restricted_picklist=True,
            picklist_values=[PicklistValue(v) for v in ("AllUsers", "InternalUsers", "SharedUsers")]),
    SFField("SystemModstamp", "datetime", "System Modstamp", updateable=False, createable=False, nillable=False),
)

_ALLOWED_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|#\d{1,7});")
_NOT_ALLOWED = "Note can't be saved because it contains HTML tags or unescaped characters that are not allowed in a Note."
_SCRIPT = re.compile(r"<script\b.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def seed_notes_schema(state: SalesforceState) -> None:
    """ContentNote, ContentDocument (one id space, prefix 069) and ContentDocumentLink."""
    for name, prefix, fields in (("ContentDocument", NOTE_PREFIX, _DOCUMENT), ("ContentNote", NOTE_PREFIX, _NOTE),
                                 ("ContentDocumentLink", LINK_PREFIX, _LINK)):
        state.add_object(name, prefix, copy.deepcopy(fields), label=name)


# ------------------------------------------------------------------ what tests look at and change

def note_html(state: SalesforceState, note_id: str) -> str | None:
    """The stored body of a live note (after the org stripped what it strips), or None."""
    with state.lock:
        key = to_id18(note_id) or ""
        if key not in state.records.get("ContentNote", {}):
            return None
        return state.note_bodies.get(key, b"").decode("utf-8")


def note_text(state: SalesforceState, note_id: str) -> list[str] | None:
    """A live note as a person reads it: its title, then each paragraph of its body as plain text."""
    body = note_html(state, note_id)
    if body is None:
        return None
    with state.lock:
        title = state.records["ContentNote"][to_id18(note_id) or ""]["Title"]
    paragraphs = re.findall(r"<p>(.*?)</p>", body, flags=re.S)
    return [title, *(html.unescape(re.sub(r"<[^>]+>", "", paragraph)) for paragraph in paragraphs)]


def note_links(state: SalesforceState, note_id: str) -> list[str]:
    """The ids of the records a note is linked to, in the order the links were made."""
    with state.lock:
        key = to_id18(note_id)
        return [link["LinkedEntityId"] for link in state.records.get("ContentDocumentLink", {}).values()
                if link["ContentDocumentId"] == key]


def delete_note(state: SalesforceState, note_id: str) -> None:
    """Delete a note (and its links) as a person in the UI would."""
    with state.lock:
        _delete_document(state, to_id18(note_id) or "")


def set_note_created(state: SalesforceState, note_id: str, when: dt.datetime) -> None:
    """Backdate (or postdate) a note's CreatedDate, as if it had been made then."""
    with state.lock:
        key = to_id18(note_id) or ""
        for name in ("ContentNote", "ContentDocument"):
            state.records[name][key]["CreatedDate"] = format_datetime(when)


# ------------------------------------------------------------------ REST: sobjects/{ContentNote|...}[/{id}]

def note_resource(state: SalesforceState, method: str, version: str, obj: SFObject, parts: list[str],
                  query: Mapping[str, str], raw: bytes) -> tuple[int, Any] | None:
    """``sobjects/{name}`` (POST) and ``sobjects/{name}/{id}`` (GET, PATCH, DELETE); None: not handled here."""
    if not parts and method == "POST":
        if obj.name == "ContentNote":
            return _create_note(state, raw)
        if obj.name == "ContentDocumentLink":
            return _create_link(state, raw)
        return 405, api_error("METHOD_NOT_ALLOWED", "HTTP Method 'POST' not allowed. Allowed are GET,HEAD")
    if len(parts) != 1 or parts[0] == "describe":
        return None
    key = to_id18(parts[0])
    records = state.records.get(obj.name, {})
    if key is None or key not in records:
        return 404, copy.deepcopy(ENTITY_IS_DELETED_BODY if key in state.deleted else NOT_FOUND_BODY)
    if method == "GET":
        return _get(obj, records[key], query, version)
    if method == "DELETE":
        if obj.name == "ContentDocumentLink":
            records.pop(key)
        else:
            _delete_document(state, key)
        return 204, None
    if method == "PATCH" and obj.name == "ContentNote":
        return _update_note(state, key, raw)
    allowed = "GET,HEAD,DELETE" + (",PATCH" if obj.name == "ContentNote" else "")
    return 405, api_error("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}")


def _get(obj: SFObject, record: Mapping[str, Any], query: Mapping[str, str], version: str) -> tuple[int, Any]:
    names = [n.strip() for n in query["fields"].split(",")] if query.get("fields") else list(obj.fields)
    url = f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}"
    out: dict[str, Any] = {"attributes": {"type": obj.name, "url": url}}
    for name in names:
        item = obj.field(name)
        if item is None:
            return 400, api_error("INVALID_FIELD", no_such_column(name, obj.name))
        # a base64 field is never inlined: the answer names the URL of its blob
        out[item.name] = f"{url}/{item.name}" if item.type == "base64" else copy.deepcopy(record.get(item.name))
    return 200, out


def _json_body(raw: bytes, entity: str) -> dict[str, Any] | list[dict[str, Any]]:
    """The request's JSON object, or the parser's error body (a list)."""
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text) if text else None
    except ValueError as exc:
        return api_error("JSON_PARSER_ERROR", f"Unexpected character: {exc.msg} at [line:{exc.lineno}, "
                                              f"column:{exc.colno}]")
    if not isinstance(body, dict):
        return parser_error(text, f"Cannot deserialize instance of {entity} from {json_kind(body)} value")
    return body


def _request_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-record errors as a single-record call answers them."""
    return [{"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]} for e in errors]


def _created(new_id: str) -> tuple[int, Any]:
    return 201, {"id": new_id, "success": True, "errors": []}


# ------------------------------------------------------------------ ContentNote

def _create_note(state: SalesforceState, raw: bytes) -> tuple[int, Any]:
    body = _json_body(raw, "ContentNote")
    if isinstance(body, list):
        return 400, body
    checked = _note_values(state, body, raw, creating=True)
    if not isinstance(checked, dict):
        return 400, checked
    now = format_datetime(dt.datetime.now(dt.UTC))
    key = make_id(NOTE_PREFIX, next(state._counter))
    record = {"Id": key, "FileType": "SNOTE", "FileExtension": "snote", "OwnerId": None, "CreatedDate": now,
              "LastModifiedDate": now, "Content": None}
    state.records["ContentNote"][key] = record
    _apply(state, key, checked)
    return _created(key)


def _update_note(state: SalesforceState, key: str, raw: bytes) -> tuple[int, Any]:
    body = _json_body(raw, "ContentNote")
    if isinstance(body, list):
        return 400, body
    checked = _note_values(state, body, raw, creating=False)
    if not isinstance(checked, dict):
        return 400, checked
    record = state.records["ContentNote"][key]
    record["LastModifiedDate"] = format_datetime(dt.datetime.now(dt.UTC))
    _apply(state, key, checked)
    return 204, None


def _note_values(state: SalesforceState, body: Mapping[str, Any], raw: bytes, *,
                 creating: bool) -> dict[str, Any] | list[dict[str, Any]]:
    """``{"Title": str, "Content": bytes}`` (what the body sets), or the error body."""
    obj = state.objects["ContentNote"]
    out: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, value in body.items():
        if name == "attributes":
            continue
        item = obj.field(name)
        if item is None:
            errors.append(record_error("INVALID_FIELD", f"No such column '{name}' on sobject of type ContentNote", []))
        elif item.name not in ("Title", "Content"):
            errors.append(record_error("INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: "
                                       f"{item.name}. Please check the security settings of this field and verify "
                                       "that it is read/write for your profile or permission set.", [item.name]))
        elif value is not None and not isinstance(value, str):
            return parser_error(raw.decode("utf-8", "replace"), f"Cannot deserialize instance of {item.type} from "
                                f"{json_kind(value)} value {value}", value)
        elif item.name == "Content":
            decoded = _decode(value or "")
            if decoded is None:
                return parser_error(raw.decode("utf-8", "replace"), "Cannot deserialize instance of base64 from "
                                    f"VALUE_STRING value {value[:40]}", value)
            out["Content"] = decoded
        else:
            out["Title"] = value
    title = out.get("Title") if "Title" in out or creating else "unchanged"
    if title is None or not str(title).strip():
        errors.append(record_error("REQUIRED_FIELD_MISSING", "Required fields are missing: [Title]", ["Title"]))
    elif "Title" in out:
        _, error = field_errors(obj.fields["Title"], title, state)
        if error is not None:
            errors.append(error)
    if "Content" in out:
        body_text = _note_body(out["Content"])
        if body_text is None:
            errors.append(record_error("FIELD_INTEGRITY_EXCEPTION", _NOT_ALLOWED, ["Content"]))
        else:
            out["Content"] = body_text
    return _request_errors(errors) if errors else out


def _decode(value: str) -> bytes | None:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _note_body(data: bytes) -> bytes | None:
    """What the org stores of a decoded body, or None when it refuses it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "&" in _ALLOWED_ENTITY.sub("", text):  # a bare '&', '&apos;', '&nbsp;', ...
        return None
    text = _SCRIPT.sub("", text).replace("\r", "").replace("\n", "")
    return text.encode("utf-8")


def _apply(state: SalesforceState, key: str, values: Mapping[str, Any]) -> None:
    """Store a note's new Title / Content and mirror it on its ContentDocument."""
    record = state.records["ContentNote"][key]
    if "Title" in values:
        record["Title"] = values["Title"]
    if "Content" in values:
        state.note_bodies[key] = values["Content"]
        record["ContentSize"] = len(values["Content"])
        record["TextPreview"] = _TAG.sub(" ", values["Content"].decode("utf-8")).strip()[:300] or None
    document = {name: record.get(name) for name in state.objects["ContentDocument"].fields}
    state.records["ContentDocument"][key] = document


def _delete_document(state: SalesforceState, key: str) -> None:
    for name in ("ContentNote", "ContentDocument"):
        state.records.get(name, {}).pop(key, None)
    state.note_bodies.pop(key, None)
    state.deleted[key] = "ContentNote"
    links = state.records.get("ContentDocumentLink", {})
    for link_id in [i for i, link in links.items() if link["ContentDocumentId"] == key]:
        links.pop(link_id)


# ------------------------------------------------------------------ ContentDocumentLink

def _create_link(state: SalesforceState, raw: bytes) -> tuple[int, Any]:
    body = _json_body(raw, "ContentDocumentLink")
    if isinstance(body, list):
        return 400, body
    obj = state.objects["ContentDocumentLink"]
    values: dict[str, Any] = {"Visibility": "AllUsers"}
    errors: list[dict[str, Any]] = []
    for name, value in body.items():
        if name == "attributes":
            continue
        item = obj.field(name)
        if item is None or not item.createable:
            errors.append(record_error("INVALID_FIELD", f"No such column '{name}' on sobject of type "
                                       "ContentDocumentLink", []) if item is None else record_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {item.name}.", [item.name]))
            continue
        if value is not None and not isinstance(value, str):
            return 400, parser_error(raw.decode("utf-8", "replace"), f"Cannot deserialize instance of "
                                     f"{item.type} from {json_kind(value)} value {value}", value)
        values[item.name] = value
    missing = [n for n in ("ContentDocumentId", "LinkedEntityId", "ShareType") if not values.get(n)]
    if missing:
        errors.append(record_error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                   missing))
    if not errors:
        for name in ("ShareType", "Visibility"):
            _, error = field_errors(obj.fields[name], values[name], state)
            if error is not None:
                errors.append(error)
    if not errors:
        errors += _link_target_errors(state, values)
    if errors:
        return 400, _request_errors(errors[:1])
    key = make_id(LINK_PREFIX, next(state._counter))
    state.records["ContentDocumentLink"][key] = {
        "Id": key, "ContentDocumentId": values["ContentDocumentId"], "LinkedEntityId": values["LinkedEntityId"],
        "ShareType": values["ShareType"], "Visibility": values["Visibility"],
        "SystemModstamp": format_datetime(dt.datetime.now(dt.UTC))}
    return _created(key)


def _link_target_errors(state: SalesforceState, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The note and the record must be live; a note links to a record once. Ids are stored as id18."""
    document = to_id18(values["ContentDocumentId"])
    if document is None or not document.startswith(NOTE_PREFIX):
        return [record_error("MALFORMED_ID", f"Content Document ID: id value of incorrect type: "
                             f"{values['ContentDocumentId']}", ["ContentDocumentId"])]
    entity = to_id18(values["LinkedEntityId"])
    if entity is None:
        return [record_error("MALFORMED_ID", f"Linked Entity ID: id value of incorrect type: "
                             f"{values['LinkedEntityId']}", ["LinkedEntityId"])]
    if document in state.deleted:
        return [record_error("ENTITY_IS_DELETED", "entity is deleted", [])]
    if document not in state.records["ContentDocument"]:
        return [record_error("INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                             f"insufficient access rights on cross-reference id: {document}", [])]
    if not any(entity in state.records[obj.name] for obj in state.objects.values()
               if entity.startswith(obj.key_prefix) and obj.name not in NOTE_OBJECTS):
        return [record_error("INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                             f"insufficient access rights on cross-reference id: {entity}", [])]
    if any(link["ContentDocumentId"] == document and link["LinkedEntityId"] == entity
           for link in state.records["ContentDocumentLink"].values()):
        return [record_error("DUPLICATE_VALUE", f"Document with ID: {document} is already linked with the entity "
                             f"with ID: {entity}", ["LinkedEntityId"])]
    values["ContentDocumentId"], values["LinkedEntityId"] = document, entity
    return []
