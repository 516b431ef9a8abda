"""Salesforce writes: sObject Collections updates, split until each refusal lands on its own record or field.

Partial success is the rule (``allOrNone: false``):

* Salesforce drops a whole record for one bad field: the record is re-sent
  once without the fields its errors named, so good sibling fields land;
* a whole-request ``JSON_PARSER_ERROR`` splits the batch in halves, and then a
  single record's fields, until the bad field is isolated;
* when a later request of a call fails transiently (429, 5xx, timeout), the
  ``TransientError`` carries in ``partial`` the results of every record already
  settled, so the caller retries only the others.

What the call has answered so far is kept in ``connectors.support.WriteResults``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from connectors.base import (
    ConnectorError,
    FieldError,
    ObjectSchema,
    PermanentError,
    RecordWrite,
    RecordWriteResult,
    iso_datetime,
    json_number,
)
from connectors.salesforce.session import _NO_SUCH_COLUMN, SessionMixin, _Rejected
from connectors.support import WriteResults

BATCH_SIZE = 200  # sObject Collections limit

# per-record error codes -> outcome
_INVALID_VALUE_CODES = {
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "STRING_TOO_LONG", "NUMBER_OUTSIDE_VALID_RANGE",
    "INVALID_EMAIL_ADDRESS", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "FIELD_INTEGRITY_EXCEPTION",
    "INVALID_TYPE_ON_FIELD_IN_RECORD", "REQUIRED_FIELD_MISSING", "JSON_PARSER_ERROR", "INVALID_FIELD_VALUE",
    "FIELD_FILTER_VALIDATION_EXCEPTION", "INVALID_CROSS_REFERENCE_KEY_ON_FIELD", "DUPLICATE_VALUE",
    "INVALID_MULTIPICKLIST_VALUE", "TOO_MANY_ENUM_VALUE", "MAXIMUM_SIZE_OF_ATTACHMENT",
}
_NOT_WRITABLE_CODES = {"INVALID_FIELD_FOR_INSERT_UPDATE", "FIELD_NOT_UPDATEABLE", "READ_ONLY_FIELD"}
_RECORD_CODES = {  # about the record even when they name a field
    "ENTITY_IS_DELETED", "NOT_FOUND", "MISSING_ARGUMENT", "ENTITY_IS_LOCKED", "UNABLE_TO_LOCK_ROW",
    "INSUFFICIENT_ACCESS_OR_READONLY", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "ENTITY_FAILED_IFLASTMODIFIED_ON_UPDATE",
}
# Codes such as MALFORMED_ID or INVALID_CROSS_REFERENCE_KEY concern the record when they name no field of
# the update (the record's own id) and the value of a lookup field when they name one.


def _outcome_for(code: str) -> str:
    if code == "INVALID_FIELD":
        return "unknown_field"
    if code in _NOT_WRITABLE_CODES:
        return "not_writable"
    return "invalid_value"


@dataclass
class _Pending:
    index: int  # position in the caller's updates
    record_id: str  # as the caller gave it (sent as is: Salesforce takes 15 or 18)
    key: str  # canonical 18-character id
    values: dict[str, Any]


def _json_default(value: Any) -> Any:
    """Canonical values that reached ``write`` without ``encode``."""
    if isinstance(value, Decimal):
        return json_number(value)
    if isinstance(value, dt.datetime):
        return iso_datetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (tuple, set, frozenset)):
        return ";".join(str(v) for v in value)
    raise TypeError(f"cannot send a {type(value).__name__} to Salesforce")


class WriteMixin(SessionMixin):
    """``SalesforceConnector.write``: batches, re-sends and splits."""

    # The connector's own (connector.py): describe, and the local check of an id against it.
    object_schema: Callable[[str], ObjectSchema]
    _check_id: Callable[[str, str], tuple[str | None, FieldError | None]]

    def write(self, object_name: str, updates: Sequence[RecordWrite]) -> list[RecordWriteResult]:
        schema = self.object_schema(object_name)
        results = WriteResults(updates)
        batches = self._batches(object_name, updates, results)
        # A transient failure (429, 5xx, timeout) may cut the call short after earlier requests (other
        # batches, halves of a split, a re-send) were answered: those answers travel with the error, so the
        # caller retries only the records still open and never reports an accepted write as failed. The
        # records of the failed request itself stay out: Salesforce may or may not have applied them.
        failure: ConnectorError | None = None
        try:
            for batch in batches:
                self._send(schema.name, batch, results, resend=True)
        except ConnectorError as exc:  # transient, or an expired session / refusal part-way
            failure = exc
        if failure is not None:  # raised outside the except block: no __context__ pinning a response
            failure.partial = results.settled()
            raise failure.with_traceback(None)  # its old frames would pin the response open
        return results.results(unanswered="no result from Salesforce for this field")

    def _batches(self, object_name: str, updates: Sequence[RecordWrite], results: WriteResults) -> list[list[_Pending]]:
        """The updates as sObject Collections requests; malformed ids are answered here, unsent."""
        batches: list[list[_Pending]] = [[]]
        in_batch: set[str] = set()
        for index, update in enumerate(updates):
            if not update.values:
                continue
            key, error = self._check_id(object_name, update.record_id)
            if error is not None or key is None:
                results.failed(index, update.values, error or FieldError("failed", "malformed id"))
                continue
            # one record entry per id and call: a second update of the same record goes in the next call
            if len(batches[-1]) >= BATCH_SIZE or key in in_batch:
                batches.append([])
                in_batch = set()
            batches[-1].append(_Pending(index, update.record_id, key, dict(update.values)))
            in_batch.add(key)
        return [batch for batch in batches if batch]

    def _patch(self, object_name: str, batch: Sequence[_Pending]) -> list[Any]:
        body = {"allOrNone": False, "records": [
            {"attributes": {"type": object_name}, "id": p.record_id, **p.values} for p in batch]}
        payload = json.dumps(body, default=_json_default)
        answer = self._call(f"update {object_name}", lambda sf: sf.restful(
            "composite/sobjects", method="PATCH", data=payload, timeout=self._timeout))
        if not isinstance(answer, list) or len(answer) != len(batch):
            raise PermanentError(f"salesforce update {object_name}: unexpected response shape")
        return answer

    def _send(self, object_name: str, batch: list[_Pending], results: WriteResults, *, resend: bool) -> None:
        try:
            answer = self._patch(object_name, batch)
        except _Rejected as exc:
            self._split(object_name, batch, results, exc, resend=resend)
            return
        again = [rest for pending, item in zip(batch, answer)
                 if (rest := self._settle(pending, item, results, resend=resend)) is not None]
        if again:
            self._send(object_name, again, results, resend=False)

    def _settle(self, pending: _Pending, item: Mapping[str, Any], results: WriteResults, *,
                resend: bool) -> _Pending | None:
        """Record one record's answer; returns what is left to re-send without its refused fields."""
        if item.get("success"):
            results.written(pending.index, pending.values)
            return None
        errors = [e for e in item.get("errors") or [] if isinstance(e, dict)]
        if not errors:
            results.failed(pending.index, pending.values, FieldError("failed", "Salesforce gave no reason"))
            return None
        named, record_level = self._classify(pending, errors)
        if record_level:
            results.failed(pending.index, pending.values, FieldError("failed", "; ".join(record_level)))
            return None
        for name, error in named.items():
            results.failed(pending.index, [name], error)
        remaining = {k: v for k, v in pending.values.items() if k not in named}
        if not remaining:
            return None
        if resend:
            return _Pending(pending.index, pending.record_id, pending.key, remaining)
        results.failed(pending.index, remaining, FieldError(
            "failed", "not written: Salesforce rejected the record again after its bad fields were removed"))
        return None

    def _classify(self, pending: _Pending, errors: list[dict[str, Any]]) -> tuple[dict[str, FieldError], list[str]]:
        """(errors of the fields they name, reasons that concern the whole record) of a refused record."""
        named: dict[str, FieldError] = {}
        record_level: list[str] = []
        for error in errors:
            code = str(error.get("statusCode") or "UNKNOWN")
            message = str(error.get("message") or "").strip()
            reason = f"{code}: {message}"
            fields = [str(f) for f in error.get("fields") or []]
            if code == "INVALID_FIELD" and not fields:
                match = _NO_SUCH_COLUMN.search(message)
                fields = [match.group(1)] if match else []
            hits = [h for h in (self._match_field(pending.values, f) for f in fields) if h is not None]
            if code in _RECORD_CODES or not hits:
                record_level.append(reason)
                continue
            for name in hits:
                named.setdefault(name, FieldError(_outcome_for(code), reason))
        return named, record_level

    @staticmethod
    def _match_field(values: Mapping[str, Any], name: str) -> str | None:
        if name in values:
            return name
        folded = name.casefold()
        for key in values:
            if key.casefold() == folded:
                return key
        return None

    def _split(self, object_name: str, batch: list[_Pending], results: WriteResults, exc: _Rejected, *,
               resend: bool) -> None:
        """A whole request was rejected: halve the batch, then a single record's fields."""
        if len(batch) > 1:
            half = len(batch) // 2
            self._send(object_name, batch[:half], results, resend=resend)
            self._send(object_name, batch[half:], results, resend=resend)
            return
        pending = batch[0]
        names = list(pending.values)
        if "EXCEEDED_ID_LIMIT" in exc.codes:  # cannot happen with <= 200 records; never loop on it
            results.failed(pending.index, names, FieldError("failed", f"{exc}"))
            return
        if len(names) == 1:
            code = next(iter(exc.codes), "")
            outcome = _outcome_for(code) if code else "invalid_value"
            if code in _RECORD_CODES or code in ("INVALID_TYPE", "MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY"):
                outcome = "failed"
            results.failed(pending.index, names, FieldError(outcome, str(exc)))
            return
        half = len(names) // 2
        for part in (names[:half], names[half:]):
            piece = _Pending(pending.index, pending.record_id, pending.key, {n: pending.values[n] for n in part})
            self._send(object_name, [piece], results, resend=resend)


__all__ = ["BATCH_SIZE", "WriteMixin"]
