"""``InMemoryConnector``: a complete, strict CRM kept in memory, with failures on demand.

For a plugin author's first steps, and for tests of the pipeline that are
not about a wire protocol (the ``connectors.testing`` docstring has an
example). Records hold wire values (what ``encode`` returns); ``write``
refuses, field by field, what a strict CRM would refuse; ``fail_next``
makes a request fail as a real CRM's can; ``requests`` logs each request.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from connectors.base import (
    Connector,
    FieldError,
    FieldSchema,
    FieldType,
    ObjectSchema,
    RecordState,
    RecordWrite,
    RecordWriteResult,
    UnknownObject,
    WritebackError,
    iso_temporal,
    json_number,
    models_for,
)
from connectors.support import WriteResults
from connectors.testing.memory_notes import InMemoryNotes
from connectors.testing.values import NUMERIC_TYPES, TEXT_TYPES

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Request(NamedTuple):
    """One request ``InMemoryConnector`` answered (or failed on purpose).

    ``kind``: "schema", "read", "write" or "check"; ``payload``: for a read
    ``{"ids": [...], "fields": [...]}``, for a write the ``RecordWrite``\\ s of
    that request, else None.
    """

    kind: str
    object: str
    payload: Any


@dataclass
class _Fault:
    kind: str | None
    error: BaseException
    after: int  # matching requests still let through
    after_applying: int


class InMemoryConnector(InMemoryNotes, Connector):
    """A strict CRM in memory, thread-safe. See the ``connectors.testing`` docstring for an example.

    ``schema``: object name -> its ``FieldSchema``\\ s (a list, or a mapping by
    name). ``records``: object name -> record id -> field -> wire value;
    copied, so the caller's dicts are never changed. Default models are
    Salesforce's object names (subclass and set ``default_models`` for others).

    Like a real connector it caches each object's schema after the first
    request; it sends one request per ``read`` call and one per
    ``write_batch_size`` updates of a ``write`` call, and logs each in
    ``requests`` (failed ones included).
    """

    name = "in-memory"
    default_models = models_for({"opportunity": "Opportunity", "account": "Account", "contacts": "Contact",
                                 "lead": "Lead", "engagement": "Event", "users": "User"})

    def __init__(self, schema: Mapping[str, Iterable[FieldSchema] | Mapping[str, FieldSchema]],
                 records: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None, *,
                 options: Mapping[str, Any] | None = None, write_batch_size: int | None = None) -> None:
        super().__init__(options or {})
        self._lock = threading.RLock()
        self._objects: dict[str, ObjectSchema] = {}
        for object_name, fields in schema.items():
            listed = fields.values() if isinstance(fields, Mapping) else fields
            self._objects[object_name] = ObjectSchema(object_name, {f.name: f for f in listed})
        self._records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self._objects}
        for object_name, by_id in (records or {}).items():
            for record_id, values in by_id.items():
                self.add_record(object_name, record_id, values)
        if write_batch_size is not None:
            self.write_batch_size = write_batch_size
        self._described: set[str] = set()
        self._faults: list[_Fault] = []
        self._log: list[Request] = []

    # -- the backing store, for tests (no request, no validation) -------------------
    def record(self, object_name: str, record_id: str) -> dict[str, Any] | None:
        """A copy of a record's stored values, or None when it does not exist."""
        with self._lock:
            found = self._records.get(object_name, {}).get(record_id)
            return copy.deepcopy(found) if found is not None else None

    def add_record(self, object_name: str, record_id: str, values: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._store(object_name)[record_id] = copy.deepcopy(dict(values or {}))

    def set_values(self, object_name: str, record_id: str, values: Mapping[str, Any]) -> None:
        """Change a record behind the connector's back, as a person in the CRM would."""
        with self._lock:
            self._store(object_name)[record_id].update(copy.deepcopy(dict(values)))

    def delete_record(self, object_name: str, record_id: str) -> None:
        with self._lock:
            self._store(object_name).pop(record_id, None)

    @property
    def requests(self) -> list[Request]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def fail_next(self, kind: str | None, error: BaseException, *, after: int = 0, after_applying: int = 0) -> None:
        """Make the next request of ``kind`` raise ``error``, once.

        ``kind``: "schema", "read", "write", "check", "notes" or "find_note"; None for whichever
        request comes next. ``after``: let that many such requests through
        first (to fail the second batch of a write). For a write,
        ``after_applying`` updates of the failing request are applied first;
        when ``error`` is a ``WritebackError`` its ``partial`` holds what the
        call had settled, as a real connector reports a failure part-way.
        """
        if kind not in (None, "schema", "read", "write", "check", "notes", "find_note"):
            raise ValueError(f"unknown request kind {kind!r}")
        with self._lock:
            self._faults.append(_Fault(kind, error, after, after_applying))

    def _store(self, object_name: str) -> dict[str, dict[str, Any]]:
        if object_name not in self._objects:
            raise UnknownObject(f"in-memory CRM has no object {object_name!r}")
        return self._records[object_name]

    def _request(self, kind: str, object_name: str, payload: Any = None) -> _Fault | None:
        """Log a request; the fault it must fail with, if one was injected."""
        with self._lock:
            self._log.append(Request(kind, object_name, payload))
            for fault in self._faults:
                if fault.kind in (None, kind):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    self._faults.remove(fault)
                    return fault
            return None

    # -- Connector ----------------------------------------------------------------
    def object_schema(self, object_name: str) -> ObjectSchema:
        with self._lock:
            if object_name in self._described:
                return self._objects[object_name]
            fault = self._request("schema", object_name)
            if fault is None and object_name in self._objects:
                self._described.add(object_name)
        if fault is not None:
            raise fault.error
        if object_name not in self._objects:
            raise UnknownObject(f"in-memory CRM has no object {object_name!r}")
        return self._objects[object_name]

    def read(self, object_name: str, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, RecordState]:
        """Each id's stored values of ``fields``; fields the object does not have are left out."""
        schema = self.object_schema(object_name)
        fault = self._request("read", object_name, {"ids": list(record_ids), "fields": list(fields)})
        if fault is not None:
            raise fault.error
        known = [name for name in fields if name in schema.fields]
        out: dict[str, RecordState] = {}
        with self._lock:
            for record_id in record_ids:
                stored = self._records[object_name].get(record_id)
                if stored is None:
                    out[record_id] = RecordState(record_id, None, _missing(object_name, record_id))
                else:
                    out[record_id] = RecordState(record_id, {n: copy.deepcopy(stored.get(n)) for n in known})
        return out

    def write(self, object_name: str, updates: Sequence[RecordWrite]) -> list[RecordWriteResult]:
        """One result per update, in order, every field in ``written`` or ``errors``.

        A field fails as a strict CRM fails it: ``unknown_field`` (not on the
        object), ``not_writable``, ``invalid_value`` (a value of the wrong wire
        type, e.g. a ``Decimal`` that was never encoded; text over
        ``max_length`` or not matching ``pattern``; a value outside a restricted
        picklist's active options; a number beyond ``precision``; an empty
        value for a non-nillable field); a missing record fails all its fields
        (``failed``). The good fields of a record land.
        """
        schema = self.object_schema(object_name)
        results = WriteResults(updates)
        to_send = [(index, update) for index, update in enumerate(updates) if update.values]
        size = max(1, self.write_batch_size)
        for start in range(0, len(to_send), size):
            self._write_request(schema, to_send[start:start + size], results)
        return results.results()

    def _write_request(self, schema: ObjectSchema, batch: list[tuple[int, RecordWrite]],
                       results: WriteResults) -> None:
        sent = [RecordWrite(update.record_id, dict(update.values)) for _, update in batch]
        fault = self._request("write", schema.name, sent)
        applying = batch if fault is None else batch[:fault.after_applying]
        with self._lock:
            for index, update in applying:
                self._apply(schema, index, update, results)
        if fault is not None:
            if isinstance(fault.error, WritebackError):
                fault.error.partial = results.settled()
            raise fault.error

    def _apply(self, schema: ObjectSchema, index: int, update: RecordWrite, results: WriteResults) -> None:
        stored = self._records[schema.name].get(update.record_id)
        if stored is None:
            results.failed(index, update.values, _missing(schema.name, update.record_id))
            return
        accepted = {}
        for name, value in update.values.items():
            refusal = _refusal(schema.fields.get(name), name, value, {**stored, **update.values})
            if refusal is None:
                accepted[name] = value
            else:
                results.failed(index, [name], refusal)
        stored.update(copy.deepcopy(accepted))
        results.written(index, accepted)

    def encode(self, field: FieldSchema, value: Any) -> Any:
        """Canonical value -> JSON value: numbers as JSON numbers, dates and datetimes as ISO 8601
        text (a datetime for a DATE field as its UTC date), multi-selects joined with ``;``."""
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, Decimal):
            return json_number(value)
        if isinstance(value, dt.date):  # datetimes too
            return iso_temporal(field, value)
        if isinstance(value, (tuple, list, set, frozenset)):
            items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
            return ";".join(str(item) for item in items)
        raise TypeError(f"in-memory CRM: cannot encode a {type(value).__name__} for {field.name}")

    def check(self) -> str:
        fault = self._request("check", "")
        if fault is not None:
            raise fault.error
        with self._lock:
            count = sum(len(by_id) for by_id in self._records.values())
        return f"in-memory CRM ({len(self._objects)} objects, {count} records)"


def _missing(object_name: str, record_id: str) -> FieldError:
    return FieldError("failed", f"NOT_FOUND: no {object_name} with id {record_id!r} (deleted or never existed)")


def _refusal(field: FieldSchema | None, name: str, value: Any, record: Mapping[str, Any]) -> FieldError | None:
    """Why a strict CRM refuses ``value`` for field ``name`` of ``record`` (its values after the
    update, for a dependent picklist's controller), or None."""
    if field is None:
        return FieldError("unknown_field", f"UNKNOWN_FIELD: no field {name!r}")
    if not field.writable:
        return FieldError("not_writable", f"NOT_WRITABLE: {field.not_writable_reason or 'read-only field'}")
    if value is None:
        return None if field.nillable else FieldError("invalid_value", f"REQUIRED: {name} cannot be empty")
    if field.controller is not None:
        field = field.for_controller(record.get(field.controller))
    problem = _wire_problem(field, value)
    return FieldError("invalid_value", f"INVALID_VALUE: {problem}") if problem else None


def _wire_problem(field: FieldSchema, value: Any) -> str | None:
    """What is wrong with a non-null wire value for ``field``, or None."""
    kind = field.type
    if kind is FieldType.BOOLEAN:
        return None if isinstance(value, bool) else f"{value!r} is not a JSON boolean"
    if kind in NUMERIC_TYPES:
        return _number_problem(field, value)
    if kind is FieldType.OTHER:
        return None
    if not isinstance(value, str):
        return f"{value!r} is not text (was it encoded?)"
    if kind is FieldType.DATE:
        return None if _DATE.match(value) and _parses(dt.date.fromisoformat, value) else f"{value!r} is not a date"
    if kind is FieldType.DATETIME:
        return None if _aware_datetime(value) else f"{value!r} is not an ISO 8601 datetime with an offset"
    if field.max_length is not None and len(value) > field.max_length:
        return f"{len(value)} characters, over the field's {field.max_length}"
    if field.pattern is not None and kind in TEXT_TYPES and not re.fullmatch(field.pattern, value):
        return f"{value!r} does not match {field.pattern}"
    if field.restricted and kind in (FieldType.PICKLIST, FieldType.MULTIPICKLIST):
        active = {option.value for option in field.options if option.active}
        parts = value.split(";") if kind is FieldType.MULTIPICKLIST else [value]
        bad = [part for part in parts if part not in active]
        if bad:
            return f"{bad[0]!r} is not an active option of {field.name}"
    return None


def _number_problem(field: FieldSchema, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a JSON number (was it encoded?)"
    if field.type is FieldType.INTEGER and not isinstance(value, int):
        return f"{value!r} is not a whole number"
    if field.precision is not None:
        whole_digits = field.precision - (field.scale or 0)
        if abs(value) >= 10 ** whole_digits:
            return f"{value!r} has more than {whole_digits} digits before the point"
    return None


def _parses(parse: Callable[[str], Any], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _aware_datetime(text: str) -> bool:
    try:
        return dt.datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


__all__ = ["InMemoryConnector", "Request"]
