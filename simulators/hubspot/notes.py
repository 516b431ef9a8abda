"""Notes and associations: ``POST /crm/v3/objects/notes`` (single and batch create with inline associations),
``DELETE``, ``batch/archive``, and the associations v4 API (default associations, one or in batch, and the
paged list of a record's associations).

As strict as HubSpot where it matters to an integration that writes notes:

* A note needs ``hs_timestamp``: without it the create is 400 ``VALIDATION_ERROR`` ``Error creating NOTE.
  Some required properties were not set.`` with ``context.properties``; property values are validated
  like any update (``hs_note_body`` at most 65,536 characters).
* Each inline association names ``to.id`` and ``types[{associationCategory, associationTypeId}]``. An
  unknown type id is 400 ``One or more associations are invalid`` (``INVALID_ASSOCIATION_TYPE_ID``); a
  type id of another object pair is 400 ``invalid from object type 0-46 for associations to be created.
  expected: 0-1``; a record that does not exist (or is archived) is 400 ``One or more associations are
  invalid`` with ``context.INVALID_OBJECT_IDS: ["CONTACT=424242 is not valid"]``. Any of these refuses
  the whole request (a batch too): nothing is created.
* ``batch/create`` takes at most 100 inputs, answers 201 and does not keep the input order (HubSpot
  does not promise it): a caller matches results by ``objectWriteTraceId``, which is echoed.
* Associations v4 ``default`` uses HubSpot's default (unlabeled) type of the object pair (note→deal 214,
  note→contact 202, note→company 190, and their inverses); a pair without one is 400. A batch with any
  missing record is refused whole, like a create. Listing (``GET
  /crm/v4/objects/{type}/{id}/associations/{toType}``) pages at most 500 results with an opaque
  ``after`` cursor and leaves archived records out.
* Object types are accepted as HubSpot spells them: ``notes``, ``note``, ``0-46``, ``deals``, ``deal``,
  ``0-3``, ...; anything else is 400 ``Unable to infer object type from: ...``.

Deleting (``DELETE /crm/v3/objects/{type}/{id}``, ``batch/archive``) moves a record to the recycle bin:
it answers 204 and reads, updates and association lists no longer see it.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Mapping

from simulators.hubspot import api, errors
from simulators.hubspot.errors import Answer
from simulators.hubspot.routes import (
    BATCH_CREATE,
    CREATE,
    ONE,
    V4_BATCH_DEFAULT,
    V4_DEFAULT,
    V4_LIST,
)
from simulators.hubspot.schema import ObjectType
from simulators.hubspot.validation import validate
from simulators.hubspot.values import DIGITS_RE, iso, now

if TYPE_CHECKING:
    from simulators.hubspot.state import HubSpotState

NOTES_TYPE_ID = "0-46"
MAX_ASSOCIATIONS_PAGE = 500

#: HubSpot-defined association types: id -> (from object type id, to object type id, name).
ASSOCIATION_TYPES: Mapping[int, tuple[str, str, str]] = {
    202: ("0-46", "0-1", "note_to_contact"), 201: ("0-1", "0-46", "contact_to_note"),
    190: ("0-46", "0-2", "note_to_company"), 189: ("0-2", "0-46", "company_to_note"),
    214: ("0-46", "0-3", "note_to_deal"), 213: ("0-3", "0-46", "deal_to_note"),
    279: ("0-1", "0-2", "contact_to_company_unlabeled"), 280: ("0-2", "0-1", "company_to_contact_unlabeled"),
    1: ("0-1", "0-2", "contact_to_company"), 2: ("0-2", "0-1", "company_to_contact"),
    3: ("0-3", "0-1", "deal_to_contact"), 4: ("0-1", "0-3", "contact_to_deal"),
    341: ("0-3", "0-2", "deal_to_company_unlabeled"), 342: ("0-2", "0-3", "company_to_deal_unlabeled"),
    5: ("0-3", "0-2", "deal_to_company"), 6: ("0-2", "0-3", "company_to_deal"),
    200: ("0-47", "0-1", "meeting_event_to_contact"), 199: ("0-1", "0-47", "contact_to_meeting_event"),
    188: ("0-47", "0-2", "meeting_event_to_company"), 187: ("0-2", "0-47", "company_to_meeting_event"),
    212: ("0-47", "0-3", "meeting_event_to_deal"), 211: ("0-3", "0-47", "deal_to_meeting_event"),
}
_INVERSE = {202: 201, 190: 189, 214: 213, 279: 280, 1: 2, 3: 4, 341: 342, 5: 6, 200: 199, 188: 187, 212: 211}
INVERSE_TYPES: Mapping[int, int] = {**_INVERSE, **{b: a for a, b in _INVERSE.items()}}
#: The default (unlabeled) type of each object pair, used by the v4 ``default`` calls.
DEFAULT_TYPES: Mapping[tuple[str, str], int] = {
    (f, t): type_id for type_id, (f, t, _) in ASSOCIATION_TYPES.items() if type_id not in (1, 2, 5, 6)
}
_CATEGORIES = ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED")

_NOTE_PROPERTIES = (
    ("hs_note_body", "string", "html", "Note body", {}),
    ("hs_timestamp", "datetime", "date", "Activity date", {}),
    ("hs_attachment_ids", "enumeration", "checkbox", "Attached file IDs", {"external_options": True}),
    ("hubspot_owner_id", "enumeration", "select", "Activity assigned to",
     {"external_options": True, "referenced_object_type": "OWNER"}),
    ("hs_createdate", "datetime", "date", "Created at", {"read_only_value": True}),
    ("hs_body_preview", "string", "html", "Body preview", {"calculated": True}),
)


class AssociationStore:
    """Associations between records, both directions: (type, id) -> (other type, other id) -> type ids.

    Types are the portal's plural names (``notes``, ``deals``). Not locked: the state's lock covers it.
    """

    def __init__(self) -> None:
        self._links: dict[tuple[str, str], dict[tuple[str, str], set[int]]] = defaultdict(dict)

    def add(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int) -> None:
        self._links[(from_type, from_id)].setdefault((to_type, to_id), set()).add(type_id)
        inverse = INVERSE_TYPES.get(type_id)
        if inverse is not None:
            self._links[(to_type, to_id)].setdefault((from_type, from_id), set()).add(inverse)

    def of(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        """to id -> type ids, for every ``to_type`` record associated to (``from_type``, ``from_id``)."""
        return {tid: set(types) for (ttype, tid), types in self._links.get((from_type, from_id), {}).items()
                if ttype == to_type}


def add_notes_type(state: HubSpotState) -> None:
    """The ``notes`` object type (``0-46``) with its properties; notes show ``hs_createdate``, not ``createdate``."""
    state.add_object_type("notes", NOTES_TYPE_ID, "NOTE", aliases=("note",), default_properties=("hs_createdate",))
    state.remove_property("notes", "createdate")
    for name, ptype, field_type, label, rest in _NOTE_PROPERTIES:
        state.add_property("notes", name, ptype, field_type, label=label, group_name="engagement", **rest)


def associated_ids(state: HubSpotState, from_type: str, from_id: str, to_type: str) -> list[str]:
    """The live ``to_type`` records associated to a record (a test helper), sorted by id."""
    with state._lock:
        source, target = state._require_type(from_type), state._require_type(to_type)
        return sorted((rid for rid in state.associations.of(source.name, str(from_id), target.name)
                       if _live(target, rid)), key=int)


# ---------------------------------------------------------------------- routing (called by the app)

def route(state: HubSpotState, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer | None:
    """The answer for a notes or associations call, or None when the path is not one of them."""
    if method == "POST" and (m := CREATE.match(path)):
        return _on_notes(state, m["type"], lambda obj: _create_one(state, obj, body))
    if method == "POST" and (m := BATCH_CREATE.match(path)):
        if m["op"] == "archive":
            return _on_type(state, m["type"], lambda obj: _batch_archive(obj, body))
        return _on_notes(state, m["type"], lambda obj: _batch_create(state, obj, body))
    if method == "DELETE" and (m := ONE.match(path)):
        return _on_type(state, m["type"], lambda obj: _archive(obj, m["id"]))
    if method == "PUT" and (m := V4_DEFAULT.match(path)):
        return _on_pair(state, m["type"], m["to_type"],
                        lambda a, b: _associate_default(state, a, b, [(m["id"], m["to_id"])]))
    if method == "POST" and (m := V4_BATCH_DEFAULT.match(path)):
        return _on_pair(state, m["type"], m["to_type"], lambda a, b: _batch_associate_default(state, a, b, body))
    if method == "GET" and (m := V4_LIST.match(path)):
        return _on_pair(state, m["type"], m["to_type"], lambda a, b: _list(state, a, m["id"], b, query))
    return None


def _on_type(state: HubSpotState, object_type: str, operation: Any) -> Answer:
    with state._lock:
        obj = state._type(object_type)
        return errors.unknown_type(object_type) if obj is None else operation(obj)


def _on_notes(state: HubSpotState, object_type: str, operation: Any) -> Answer | None:
    """Creates are served for notes only; other types keep the app's 404 (this simulator does not create them)."""
    with state._lock:
        obj = state._type(object_type)
        if obj is not None and obj.type_id != NOTES_TYPE_ID:
            return None
        return errors.unknown_type(object_type) if obj is None else operation(obj)


def _on_pair(state: HubSpotState, from_type: str, to_type: str, operation: Any) -> Answer:
    with state._lock:
        source, target = state._type(from_type), state._type(to_type)
        if source is None:
            return errors.unknown_type(from_type)
        if target is None:
            return errors.unknown_type(to_type)
        return operation(source, target)


# ---------------------------------------------------------------------- v3 create, archive

def _create_one(state: HubSpotState, obj: ObjectType, body: Any) -> Answer:
    planned, refused = _plan_create(state, obj, body)
    if refused:
        return refused
    return 201, _insert(state, obj, *planned)


def _batch_create(state: HubSpotState, obj: ObjectType, body: Any) -> Answer:
    started = now()
    refused = api.batch_inputs_error(body)
    if refused is not None:
        return refused
    inputs = body["inputs"]
    planned = []
    for item in inputs:  # every input is checked before any is created: a refusal creates nothing
        plan, refused = _plan_create(state, obj, item)
        if refused:
            return refused
        planned.append((plan, item.get("objectWriteTraceId")))
    results = []
    for plan, trace in planned:
        result = _insert(state, obj, *plan)
        if trace is not None:
            result["objectWriteTraceId"] = str(trace)
        results.append(result)
    results.reverse()  # HubSpot does not promise the input order; a caller must not rely on it
    return 201, {"status": "COMPLETE", "results": results, "startedAt": iso(started), "completedAt": iso(now())}


def _plan_create(state: HubSpotState, obj: ObjectType,
                 body: Any) -> tuple[tuple[dict[str, str], list[tuple[ObjectType, str, int]]], Answer | None]:
    """((clean values, links), None), or (_, the refusal) for one create input."""
    empty: tuple[dict[str, str], list[tuple[ObjectType, str, int]]] = ({}, [])
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        return empty, errors.validation("Invalid input JSON: 'properties' must be an object")
    clean, problems = validate(obj, None, body["properties"], strict_stage_pipeline=state.strict_stage_pipeline)
    if problems:
        return empty, (400, errors.invalid_values(problems, state.portal_id))
    if not clean.get("hs_timestamp"):
        return empty, errors.required_properties(obj.singular, ["hs_timestamp"])
    links, refused = _inline_links(state, obj, body.get("associations"))
    if refused:
        return empty, refused
    return (clean, links), None


def _inline_links(state: HubSpotState, obj: ObjectType, raw: Any) -> tuple[list[tuple[ObjectType, str, int]], Answer | None]:
    """The associations of a create input: [(target type, id, type id)], or the refusal."""
    if raw is None:
        return [], None
    if not isinstance(raw, list):
        return [], errors.validation("Invalid input JSON: 'associations' must be an array")
    links: list[tuple[ObjectType, str, int]] = []
    for item in raw:
        to = item.get("to") if isinstance(item, dict) else None
        types = item.get("types") if isinstance(item, dict) else None
        if not isinstance(to, dict) or not isinstance(to.get("id"), (str, int)) or isinstance(to.get("id"), bool):
            return [], errors.validation("Invalid input JSON: each association needs 'to' with an 'id'")
        if not isinstance(types, list) or not types:
            return [], errors.validation("Invalid input JSON: each association needs at least one type")
        for spec in types:
            category = spec.get("associationCategory") if isinstance(spec, dict) else None
            type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
            if category not in _CATEGORIES or not isinstance(type_id, int) or isinstance(type_id, bool):
                return [], errors.validation("Invalid input JSON: association types need an associationCategory "
                                             f"({', '.join(_CATEGORIES)}) and an integer associationTypeId")
            known = ASSOCIATION_TYPES.get(type_id) if category == "HUBSPOT_DEFINED" else None
            if known is None:
                return [], errors.invalid_association_type(f"{category}={type_id}")
            if known[0] != obj.type_id:
                return [], errors.validation(f"invalid from object type {obj.type_id} for associations to be "
                                             f"created. expected: {known[0]}")
            target = state._type(known[1])
            if target is None:
                return [], errors.invalid_association_type(f"{category}={type_id}")
            links.append((target, str(to["id"]), type_id))
    missing = [(target, rid) for target, rid, _ in links if not _live(target, rid)]
    if missing:
        return [], errors.invalid_object_ids(_unique(missing))
    return links, None


def _insert(state: HubSpotState, obj: ObjectType, clean: dict[str, str],
            links: list[tuple[ObjectType, str, int]]) -> dict[str, Any]:
    rid = state._new_id()
    created = now()
    values: dict[str, str | None] = dict(clean)
    values.update(hs_object_id=rid, hs_createdate=iso(created), hs_lastmodifieddate=iso(created))
    obj.records[rid] = {"id": rid, "properties": values, "createdAt": created, "updatedAt": created,
                        "archived": False}
    for target, to_id, type_id in links:
        state.associations.add(obj.name, rid, target.name, to_id, type_id)
    return api.public(obj, obj.records[rid], [*clean, "hs_createdate"])


def _archive(obj: ObjectType, record_id: str) -> Answer:
    record = obj.records.get(record_id)
    if record is not None:
        record["archived"] = True
    return 204, None  # type: ignore[return-value]  # HubSpot answers 204 whether or not the record existed


def _batch_archive(obj: ObjectType, body: Any) -> Answer:
    refused = api._batch_shape_error(body)
    if refused:
        return refused
    for item in body["inputs"]:
        _archive(obj, str(item["id"]))
    return 204, None  # type: ignore[return-value]


# ---------------------------------------------------------------------- associations v4

def _associate_default(state: HubSpotState, source: ObjectType, target: ObjectType,
                       pairs: list[tuple[str, str]]) -> Answer:
    started = now()
    type_id = DEFAULT_TYPES.get((source.type_id, target.type_id))
    if type_id is None:
        return errors.validation(f"No default association type between {source.singular} and {target.singular}")
    missing = [(source, f) for f, _ in pairs if not _live(source, f)]
    missing += [(target, t) for _, t in pairs if not _live(target, t)]
    if missing:
        return errors.invalid_object_ids(_unique(missing))
    results = []
    for from_id, to_id in pairs:
        state.associations.add(source.name, from_id, target.name, to_id, type_id)
        results.append(_default_result(from_id, to_id, type_id))
        results.append(_default_result(to_id, from_id, INVERSE_TYPES[type_id]))
    return 200, {"status": "COMPLETE", "results": results, "startedAt": iso(started), "completedAt": iso(now())}


def _batch_associate_default(state: HubSpotState, source: ObjectType, target: ObjectType, body: Any) -> Answer:
    refused = api.batch_inputs_error(body)
    if refused is not None:
        return refused
    inputs = body["inputs"]
    pairs = []
    for item in inputs:
        ends = [item.get(k) if isinstance(item, dict) else None for k in ("from", "to")]
        if not all(isinstance(e, dict) and isinstance(e.get("id"), (str, int)) for e in ends):
            return errors.validation("Invalid input JSON: every input needs 'from' and 'to' with an 'id'")
        pairs.append((str(ends[0]["id"]), str(ends[1]["id"])))
    return _associate_default(state, source, target, pairs)


def _default_result(from_id: str, to_id: str, type_id: int) -> dict[str, Any]:
    return {"from": {"id": from_id}, "to": {"id": to_id},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}}


def _list(state: HubSpotState, source: ObjectType, from_id: str, target: ObjectType,
          query: dict[str, list[str]]) -> Answer:
    try:
        limit = int((query.get("limit") or ["500"])[-1])
        offset = _offset((query.get("after") or [""])[-1])
    except ValueError:
        return errors.validation("Invalid paging parameters: 'limit' must be a number and 'after' a cursor "
                                 "returned by a previous page")
    if not 1 <= limit <= MAX_ASSOCIATIONS_PAGE:
        return errors.validation(f"limit must be between 1 and {MAX_ASSOCIATIONS_PAGE}")
    linked = state.associations.of(source.name, from_id, target.name) if _live(source, from_id) else {}
    ids = sorted((rid for rid in linked if _live(target, rid)), key=int)
    page = ids[offset:offset + limit]
    results = [{"toObjectId": int(rid),
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": t, "label": None}
                                     for t in sorted(linked[rid])]} for rid in page]
    answer: dict[str, Any] = {"results": results}
    if offset + limit < len(ids):
        after = base64.urlsafe_b64encode(f"offset:{offset + limit}".encode()).decode()
        answer["paging"] = {"next": {"after": after,
                                     "link": f"?after={after}"}}
    return 200, answer


def _offset(after: str) -> int:
    if not after:
        return 0
    text = base64.urlsafe_b64decode(after.encode()).decode()
    if not text.startswith("offset:"):
        raise ValueError(after)
    return int(text[len("offset:"):])


# ---------------------------------------------------------------------- helpers

def _live(obj: ObjectType, record_id: str) -> bool:
    record = obj.records.get(str(record_id)) if DIGITS_RE.match(str(record_id)) else None
    return record is not None and not record["archived"]


def _unique(missing: list[tuple[ObjectType, str]]) -> list[tuple[str, str]]:
    """(SINGULAR, id) once each, in order."""
    return list(dict.fromkeys((obj.singular, rid) for obj, rid in missing))

