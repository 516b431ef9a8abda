"""SOQL on ContentDocumentLink: its filter restriction, ``ContentDocument.<field>`` columns, AND-ed conditions.

A query must filter on ``ContentDocumentId`` or ``LinkedEntityId`` with
``=`` or ``IN`` (else ``MALFORMED_QUERY`` "Implementation restriction: ...",
as an org answers a user without "Query All Files"); it may select and
filter fields of the linked ``ContentDocument``; text compares without case,
datetimes take unquoted literals (a quoted one is ``INVALID_FIELD``), ids
their 15- or 18-character form. ``OR`` is not simulated.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any, Mapping

from simulators.salesforce.errors import RequestError, no_such_column
from simulators.salesforce.ids import to_id18
from simulators.salesforce.schema import SFField, SFObject
from simulators.salesforce.values import _parse_datetime

if TYPE_CHECKING:
    from simulators.salesforce.state import SalesforceState


_SOQL = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
                   r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.IGNORECASE | re.DOTALL)
_CONDITION = re.compile(r"^(?P<field>[\w.]+)\s*(?P<op>=|!=|>=|<=|>|<|\bIN\b)\s*(?P<value>.+)$",
                        re.IGNORECASE | re.DOTALL)
_STRING = r"'(?:[^'\\]|\\.)*'"
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_RESTRICTION = ("Implementation restriction: ContentDocumentLink requires a filter by a single Id on "
                "ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN "
                "operator.")


def link_query(state: SalesforceState, query: str, version: str) -> list[dict[str, Any]]:
    """The rows of a SOQL query on ContentDocumentLink, or RequestError as the org refuses it."""
    match = _SOQL.match(query)
    if match is None:
        raise RequestError("MALFORMED_QUERY", "unexpected token")
    link, document = state.objects["ContentDocumentLink"], state.objects["ContentDocument"]
    selected = [_column(link, document, raw.strip()) for raw in match["fields"].split(",")]
    conditions = [_condition(link, document, part) for part in _and_parts(match["where"] or "")]
    if not any(f.name in ("ContentDocumentId", "LinkedEntityId") and not relation and op in ("=", "IN")
               for relation, f, op, _ in conditions):
        raise RequestError("MALFORMED_QUERY", _RESTRICTION)
    rows = []
    for record in state.records["ContentDocumentLink"].values():
        parent = state.records["ContentDocument"].get(record["ContentDocumentId"], {})
        if all(_holds(parent if relation else record, f, op, value) for relation, f, op, value in conditions):
            rows.append(_link_row(record, parent, selected, version))
    return rows[: int(match["limit"])] if match["limit"] else rows


def _column(link: SFObject, document: SFObject, name: str) -> tuple[bool, SFField]:
    """(is a ContentDocument field, the field) of a selected or filtered column."""
    relation, _, field_name = name.rpartition(".")
    obj = document if relation.casefold() == "contentdocument" else link if not relation else None
    item = obj.field(field_name) if obj is not None and re.fullmatch(r"\w+", field_name) else None
    if item is None:
        raise RequestError("INVALID_FIELD", no_such_column(name, "ContentDocumentLink"))
    return bool(relation), item


def _and_parts(where: str) -> list[str]:
    """The conditions of a WHERE clause joined by AND (outside quotes); OR is not simulated."""
    parts, current, quoted, i = [], "", False, 0
    while i < len(where):
        char = where[i]
        if char == "\\" and quoted:
            current += where[i:i + 2]
            i += 2
            continue
        if char == "'":
            quoted = not quoted
        if not quoted and re.match(r"\s+AND\s+", where[i:], re.IGNORECASE) and where[i].isspace():
            parts.append(current)
            current = ""
            i += re.match(r"\s+AND\s+", where[i:], re.IGNORECASE).end()  # type: ignore[union-attr]
            continue
        if not quoted and re.match(r"\s+OR\s+", where[i:], re.IGNORECASE):
            raise RequestError("MALFORMED_QUERY", "only AND is simulated in ContentDocumentLink filters")
        current += char
        i += 1
    return [p.strip() for p in parts + [current] if p.strip()]


def _condition(link: SFObject, document: SFObject, text: str) -> tuple[bool, SFField, str, Any]:
    match = _CONDITION.match(text)
    if match is None:
        raise RequestError("MALFORMED_QUERY", f"unexpected token: {text[:40]}")
    relation, item = _column(link, document, match["field"])
    op, value = match["op"].upper(), match["value"].strip()
    if op == "IN":
        inner = re.fullmatch(rf"\(\s*({_STRING}(?:\s*,\s*{_STRING})*)\s*\)", value)
        if inner is None:
            raise RequestError("MALFORMED_QUERY", f"unexpected token in IN list: {value[:40]}")
        return relation, item, op, [_typed(item, v) for v in re.findall(_STRING, inner[1])]
    return relation, item, op, _typed(item, value)


def _typed(item: SFField, literal: str) -> Any:
    """A SOQL literal as the value it compares with: id18, UTC datetime, or text."""
    quoted = literal.startswith("'") and literal.endswith("'") and len(literal) >= 2
    if item.type == "datetime":
        parsed = None if quoted else _parse_datetime(literal)
        if parsed is None:
            raise RequestError("INVALID_FIELD", f"value of filter criterion for field '{item.name}' must be of type "
                                                "dateTime and should not be enclosed in quotes")
        return parsed
    if not quoted:
        raise RequestError("MALFORMED_QUERY", f"unexpected token: {literal[:40]}")
    text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), literal[1:-1])
    if item.type in ("id", "reference"):
        key = to_id18(text)
        if key is None:
            raise RequestError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}")
        return key
    return text


def _holds(record: Mapping[str, Any], item: SFField, op: str, wanted: Any) -> bool:
    value = record.get(item.name)
    if item.type == "datetime":
        value = _parse_datetime(value) if isinstance(value, str) else None
    elif isinstance(value, str) and item.type not in ("id", "reference"):
        value = value.casefold()  # SOQL compares text case-insensitively
        wanted = [w.casefold() for w in wanted] if isinstance(wanted, list) else str(wanted).casefold()
    if op == "IN":
        return value in wanted
    if op == "=":
        return value == wanted
    if op == "!=":
        return value != wanted
    if value is None:
        return False
    return {">": value > wanted, "<": value < wanted, ">=": value >= wanted, "<=": value <= wanted}[op]


def _link_row(record: Mapping[str, Any], parent: Mapping[str, Any], selected: list[tuple[bool, SFField]],
              version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects"
    row: dict[str, Any] = {"attributes": {"type": "ContentDocumentLink",
                                          "url": f"{base}/ContentDocumentLink/{record['Id']}"}}
    for relation, item in selected:
        if relation:
            nested = row.setdefault("ContentDocument", {"attributes": {
                "type": "ContentDocument", "url": f"{base}/ContentDocument/{record['ContentDocumentId']}"}})
            nested[item.name] = copy.deepcopy(parent.get(item.name))
        else:
            row[item.name] = copy.deepcopy(record.get(item.name))
    return row
