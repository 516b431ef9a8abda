"""Salesforce reads: SOQL by id, in chunks, with the ids and columns that spoil a query set apart.

One query per object and chunk of up to ``READ_CHUNK`` ids (fewer when the
URL-encoded query would be too long), following ``nextRecordsUrl``. A chunk
the org rejects because of one id is split until that id is isolated; a
column describe listed but the query refuses is dropped and the chunk re-read.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

from connectors.base import FieldError, ObjectSchema, PermanentError, RecordState
from connectors.salesforce.ids import salesforce_id18
from connectors.salesforce.session import _NO_SUCH_COLUMN, SessionMixin, _Rejected

# One logger for the whole connector, whichever of its modules logs.
log = logging.getLogger("connectors.salesforce")

READ_CHUNK = 200  # ids per SOQL query
MAX_QUERY_CHARS = 12000  # URL-encoded SOQL per GET; Salesforce rejects URIs over 16,384 bytes


class ReadMixin(SessionMixin):
    """``SalesforceConnector.read`` and its queries."""

    # The connector's own (connector.py): describe, and the local check of an id against it.
    object_schema: Callable[[str], ObjectSchema]
    _check_id: Callable[[str, str], tuple[str | None, FieldError | None]]

    def read(self, object_name: str, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, RecordState]:
        schema = self.object_schema(object_name)
        columns: dict[str, str] = {}  # canonical name -> first requested spelling
        requested: list[tuple[str, str]] = []  # (requested name, canonical)
        for name in fields:
            found = schema.field(name)
            if found is None:
                continue  # not on the object: the pipeline reports unknown_field from the schema
            columns.setdefault(found.name, name)
            requested.append((name, found.name))
        out: dict[str, RecordState] = {}
        keys: dict[str, list[str]] = {}  # canonical id -> ids as given
        for record_id in record_ids:
            key, error = self._check_id(object_name, record_id)
            if error is not None or key is None:
                out[record_id] = RecordState(record_id, None, error)
            else:
                keys.setdefault(key, []).append(record_id)
        rows: dict[str, Mapping[str, Any]] = {}
        failures: dict[str, FieldError] = {}
        names = [c for c in columns if c != "Id"]
        for chunk in self._chunks(schema.name, names, list(keys)):
            self._read_chunk(schema.name, names, chunk, rows, failures)
        for key, given in keys.items():
            for record_id in given:
                if key in failures:
                    out[record_id] = RecordState(record_id, None, failures[key])
                elif key in rows:
                    row = rows[key]
                    values = {asked: row.get(canonical) for asked, canonical in requested if canonical in row}
                    out[record_id] = RecordState(record_id, values)
                else:
                    out[record_id] = RecordState(record_id, None, FieldError(
                        "failed", f"NOT_FOUND: no {schema.name} with id {record_id} (deleted or never existed)"))
        return {record_id: out[record_id] for record_id in record_ids}

    @staticmethod
    def _soql(object_name: str, names: Sequence[str], keys: Sequence[str]) -> str:
        columns = ", ".join(["Id", *names])
        if len(keys) == 1:
            return f"SELECT {columns} FROM {object_name} WHERE Id = '{keys[0]}'"
        quoted = ", ".join("'" + key + "'" for key in keys)
        return f"SELECT {columns} FROM {object_name} WHERE Id IN ({quoted})"

    def _chunks(self, object_name: str, names: Sequence[str], keys: list[str]) -> list[list[str]]:
        chunks: list[list[str]] = []
        start = 0
        while start < len(keys):
            size = min(READ_CHUNK, len(keys) - start)
            while size > 1 and len(quote(self._soql(object_name, names, keys[start:start + size]))) > MAX_QUERY_CHARS:
                size = max(1, size // 2)
            chunks.append(keys[start:start + size])
            start += size
        return chunks

    def _read_chunk(self, object_name: str, names: list[str], keys: list[str], rows: dict[str, Mapping[str, Any]],
                    failures: dict[str, FieldError]) -> None:
        if not keys:
            return
        soql = self._soql(object_name, names, keys)
        try:
            result = self._call(f"query {object_name}", lambda sf: sf.query(soql, timeout=self._timeout))
        except _Rejected as exc:
            if "INVALID_FIELD" in exc.codes:
                match = _NO_SUCH_COLUMN.search(str(exc))
                if match and match.group(1) in names:  # describe and query disagree: read without it
                    log.warning("salesforce query: %s is not readable on %s", match.group(1), object_name)
                    names.remove(match.group(1))
                    self._read_chunk(object_name, names, keys, rows, failures)
                    return
            about_ids = exc.status == 414 or "INVALID_QUERY_FILTER_OPERATOR" in exc.codes or "MALFORMED_ID" in exc.codes
            if len(keys) == 1 or not about_ids:  # splitting only helps when one id spoils the query
                for key in keys:
                    failures[key] = FieldError("failed", str(exc))
                return
            half = len(keys) // 2
            self._read_chunk(object_name, names, keys[:half], rows, failures)
            self._read_chunk(object_name, names, keys[half:], rows, failures)
            return
        while True:
            for record in result.get("records", []):
                key = salesforce_id18(str(record.get("Id", "")))
                if key is not None:
                    rows[key] = {k: v for k, v in record.items() if k != "attributes"}
            if result.get("done", True) or not result.get("nextRecordsUrl"):
                break
            next_url = result["nextRecordsUrl"]
            try:
                result = self._call(f"query {object_name}",
                                    lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True,
                                                                           timeout=self._timeout))
            except _Rejected as exc:
                raise PermanentError(f"salesforce query {object_name} (next page): {exc}") from None


__all__ = ["MAX_QUERY_CHARS", "READ_CHUNK", "ReadMixin"]
