"""The SOQL subset: ``SELECT f, ... FROM Obj [WHERE Id = '..' | Id IN (..)] [LIMIT n]`` and its paging.

Unknown objects and fields fail as Salesforce fails them (``INVALID_TYPE``,
``INVALID_FIELD``, with the query echoed and a caret under the column); a
malformed id in the filter is ``INVALID_QUERY_FILTER_OPERATOR``. Results past
``query_batch_size`` rows are paged with ``nextRecordsUrl``.
"""

from __future__ import annotations

import copy
import re
import secrets
from typing import TYPE_CHECKING, Any, Mapping

from simulators.salesforce.errors import RequestError, api_error, no_such_column
from simulators.salesforce.ids import to_id18
from simulators.salesforce.notes_query import link_query
from simulators.salesforce.schema import SFField, SFObject

if TYPE_CHECKING:
    from simulators.salesforce.state import SalesforceState

_SOQL_RE = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL)
_WHERE_EQ = re.compile(r"^Id\s*=\s*'(?P<id>[^']*)'$", re.IGNORECASE)
_WHERE_IN = re.compile(r"^Id\s+IN\s*\((?P<ids>.*)\)$", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(r"\s*'([^']*)'\s*(?:,|$)")


def query_resource(state: SalesforceState, version: str, rest: list[str],
                   params: Mapping[str, str]) -> tuple[int, Any]:
    """``GET .../query/?q=`` (``rest`` empty) or the next page ``GET .../query/{cursor}-{start}``."""
    if len(rest) == 1:
        cursor = rest[0].rsplit("-", 1)[0]
        rows = state._cursors.get(cursor)
        if rows is None:
            return 400, api_error("INVALID_QUERY_LOCATOR", "invalid query locator")
        return 200, query_page(state, version, cursor, rows, int(rest[0].rsplit("-", 1)[1]))
    q = params.get("q")
    if not q:
        return 400, api_error("MALFORMED_QUERY", "A query string has to be specified")
    try:
        rows = run_query(state, q, version)
    except RequestError as exc:
        return 400, exc.body()
    return 200, query_page(state, version, None, rows, 0)


def query_page(state: SalesforceState, version: str, cursor: str | None, rows: list[dict[str, Any]],
               start: int) -> dict[str, Any]:
    size = state.query_batch_size
    page = rows[start : start + size]
    out: dict[str, Any] = {"totalSize": len(rows), "done": start + size >= len(rows), "records": page}
    if not out["done"]:
        if cursor is None:
            cursor = "01g5g00000" + secrets.token_hex(4)
            state._cursors[cursor] = rows
        out["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{start + size}"
    return out


def run_query(state: SalesforceState, query: str, version: str) -> list[dict[str, Any]]:
    """The rows of one query, or RequestError as Salesforce would refuse it."""
    match = _SOQL_RE.match(query)
    if not match:
        raise RequestError("MALFORMED_QUERY", f"unexpected token: {query.split()[0] if query.split() else query!r}")
    obj = _queried_object(state, query, match)
    if obj.name == "ContentDocumentLink":  # relationship columns and its own filter rules
        return link_query(state, query, version)
    selected = _selected_fields(obj, query, match)
    records = state.records.get(obj.name, {})
    chosen = list(records.values()) if match["where"] is None else _filtered(records, query, match)
    if match["limit"] is not None:
        chosen = chosen[: int(match["limit"])]
    return [_row(obj, record, selected, version) for record in chosen]


def _soql_error(query: str, column: int, text: str, code: str) -> RequestError:
    pointer = " " * max(column - 1, 0) + "^"
    return RequestError(code, f"\n{query}\n{pointer}\nERROR at Row:1:Column:{column}\n{text}")


def _queried_object(state: SalesforceState, query: str, match: re.Match[str]) -> SFObject:
    obj = state.object(match["object"])
    if obj is None:
        name = match["object"]
        raise _soql_error(query, match.start("object") + 1,
                          f"sObject type '{name}' is not supported. If you are attempting to use a custom object, "
                          "be sure to append the '__c' after the entity name. Please reference your WSDL or the "
                          "describe call for the appropriate names.", "INVALID_TYPE")
    return obj


def _selected_fields(obj: SFObject, query: str, match: re.Match[str]) -> list[SFField]:
    selected: list[SFField] = []
    offset = match.start("fields")
    seen: set[str] = set()
    for raw in match["fields"].split(","):
        name = raw.strip()
        column = offset + len(raw) - len(raw.lstrip()) + 1
        offset += len(raw) + 1
        item = obj.field(name) if re.fullmatch(r"\w+", name) else None
        if item is None:
            raise _soql_error(query, column, no_such_column(name, obj.name), "INVALID_FIELD")
        if item.name in seen:
            raise RequestError("MALFORMED_QUERY", f"duplicate field selected: {item.name}")
        seen.add(item.name)
        selected.append(item)
    return selected


def _wanted_ids(where: str) -> list[str]:
    """The ids a WHERE clause names; only ``Id = '..'`` and ``Id IN ('..', ...)`` are simulated."""
    eq = _WHERE_EQ.match(where)
    within = _WHERE_IN.match(where)
    if eq:
        return [eq["id"]]
    if within:
        body = within["ids"]
        if re.sub(r"\s*'[^']*'\s*(,|$)", "", body).strip():
            raise RequestError("MALFORMED_QUERY", f"unexpected token in IN list: {body[:40]}")
        return [m.group(1) for m in _QUOTED.finditer(body)]
    raise RequestError("MALFORMED_QUERY", "only Id = '..' and Id IN ('..') filters are simulated")


def _filtered(records: dict[str, dict[str, Any]], query: str, match: re.Match[str]) -> list[dict[str, Any]]:
    """The records the WHERE clause names, once each, in the order named; unknown ids are left out."""
    chosen = []
    picked: set[str] = set()
    for raw_id in _wanted_ids(match["where"].strip()):
        canonical = to_id18(raw_id)
        if canonical is None:
            column = match.start("where") + 1 + query[match.start("where"):].find(raw_id)
            raise _soql_error(query, column, f"invalid ID field: {raw_id}", "INVALID_QUERY_FILTER_OPERATOR")
        record = records.get(canonical)
        if record is not None and canonical not in picked:
            picked.add(canonical)
            chosen.append(record)
    return chosen


def _row(obj: SFObject, record: dict[str, Any], selected: list[SFField], version: str) -> dict[str, Any]:
    row: dict[str, Any] = {"attributes": {"type": obj.name,
                                          "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}"}}
    for item in selected:
        row[item.name] = copy.deepcopy(record.get(item.name))
    return row
