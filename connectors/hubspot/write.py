"""HubSpot writes: ``batch/update``, with each rejected input and property set apart from the rest.

``batch/update`` rejects the whole batch (400 ``VALIDATION_ERROR``) for one
bad property value without saying which input it was. So a refused batch
has the properties its error names dropped from the inputs they can be
pinned on, and the rest re-sent; when they cannot be pinned, the batch is
bisected. Missing records are reported per object (207 ``OBJECT_NOT_FOUND``).
What the call has answered so far is kept in ``connectors.support.WriteResults``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any, Mapping, Sequence

from connectors.base import (
    ConnectorError,
    FieldError,
    RecordWrite,
    RecordWriteResult,
    UnknownObject,
    iso_datetime,
)
from connectors.hubspot.api import _NUMERIC_ID, MAX_BATCH, ApiMixin, _HTTPFailure
from connectors.hubspot.schema import PIPELINE_PROPERTIES
from connectors.support import WriteResults

# HubSpot validation codes -> our outcome. Anything not listed is ``invalid_value``.
ERROR_OUTCOMES = {
    "PROPERTY_DOESNT_EXIST": "unknown_field",
    "READ_ONLY_VALUE": "not_writable",
    "READ_ONLY_PROPERTY": "not_writable",
    "CALCULATED_PROPERTY": "not_writable",
}


# One input of a batch update: (position in the caller's updates, record id, wire values).
_Item = tuple[int, str, dict[str, str]]


class WriteMixin(ApiMixin):
    """``HubSpotConnector.write``: batches, re-sends without refused properties, bisection."""

    def write(self, object_name: str, updates: Sequence[RecordWrite]) -> list[RecordWriteResult]:
        """One result per update, in order; see the module docstring for how rejections are isolated.

        A call may take several requests (batches of 100, bisection after a
        400, a re-send without rejected properties). When a later one fails
        transiently, the ``TransientError`` carries in ``partial`` the results
        of the records already settled (written, or refused by HubSpot or by
        us), so a retry re-sends only the others. The records of the failed
        request itself are not in ``partial``, not even the properties already
        dropped from them: after a 5xx or a timeout nobody knows whether
        HubSpot applied them, so such a record is retried whole.
        """
        results = WriteResults(updates)
        pending: list[_Item] = []
        for index, update in enumerate(updates):
            rid = str(update.record_id)
            values = {str(k): _as_wire(v) for k, v in update.values.items()}
            if not _NUMERIC_ID.match(rid):
                reason = f"malformed HubSpot record id {rid!r} (ids are numeric)"
                results.failed(index, values, FieldError("failed", reason))
            elif values:
                pending.append((index, rid, values))
        try:
            for chunk in _chunks(pending):
                self._write_batch(object_name, chunk, results)
        except ConnectorError as exc:  # transient, or a credential / permission refusal part-way
            exc.partial = results.settled(whole_records=True)
            raise exc from None
        return results.results(unanswered="HubSpot did not answer for this property")

    def _send(self, object_name: str, items: Sequence[_Item]) -> tuple[int, dict[str, Any]]:
        from hubspot.crm.objects import (
            BatchInputSimplePublicObjectBatchInput,
            SimplePublicObjectBatchInput,
        )

        request = BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=rid, properties=values) for _, rid, values in items]
        )
        status, body = self._call(f"batch update of {len(items)} {object_name}", self._api("batch").update,
                                  object_name, request)
        return status, body or {}

    def _write_batch(self, object_name: str, items: Sequence[_Item], results: WriteResults) -> None:
        """Send one batch (<=100 distinct ids), isolating rejected inputs and properties.

        Each answer goes into ``results`` as soon as a request decides it, so
        that a transient failure of a later request loses none of them.
        """
        try:
            _, body = self._send(object_name, items)
        except _HTTPFailure as caught:
            failure = caught
        else:
            self._interpret(items, body, results)
            return
        self._isolate(object_name, items, failure, results)

    def _isolate(self, object_name: str, items: Sequence[_Item], failure: _HTTPFailure, results: WriteResults) -> None:
        """A refused batch: the inputs and properties HubSpot refused, apart from the rest.

        A 400 names the rejected properties (and, in its message, their
        values) but not the inputs: properties that can be pinned on inputs
        are dropped with their outcome and the rest re-sent; otherwise the
        batch is bisected. Every step removes a property or halves a batch,
        so this ends.
        """
        if "infer object type" in failure.message.lower():
            raise UnknownObject(self._clean(f"hubspot: no object type {object_name!r} ({failure.message})")) from None
        if failure.status not in (400, 404, 409, 422):
            self._raise(f"batch update of {len(items)} {object_name}", failure)  # auth, scopes, rate limit, 5xx
        drops = self._pin_rejections(items, failure) if failure.status == 400 else {}
        if drops:
            self._drop_and_resend(object_name, items, drops, results)
        elif len(items) > 1:
            middle = len(items) // 2
            self._write_batch(object_name, items[:middle], results)
            self._write_batch(object_name, items[middle:], results)
        else:
            index, _, values = items[0]
            reason = self._clean(f"{failure.status} {failure.category or 'error'}: {failure.message}")
            results.failed(index, values, FieldError("failed", reason))

    def _pin_rejections(self, items: Sequence[_Item],
                        failure: _HTTPFailure) -> dict[int, dict[str, FieldError]]:
        """index -> {property: FieldError} for the rejections that can be pinned on inputs.

        Empty when any rejection cannot be pinned (then the caller bisects).
        """
        rejections = _rejections(failure.body, failure.message)
        if not rejections:
            return {}
        drops: dict[int, dict[str, FieldError]] = {}
        for name, code, message, value in rejections:
            error = FieldError(ERROR_OUTCOMES.get(code, "invalid_value"), self._clean(f"{code}: {message}"))
            if len(items) == 1:
                targets = [items[0]] if name in items[0][2] else []
            elif code in ERROR_OUTCOMES:  # unknown / read-only: whoever sends the property
                targets = [item for item in items if name in item[2]]
            elif value is not None:
                targets = [item for item in items if item[2].get(name) == value]
                if name in PIPELINE_PROPERTIES and len(targets) != 1:
                    return {}  # a stage may be valid on one record's pipeline and not another's
            else:
                return {}
            if not targets:
                return {}
            for index, _, _ in targets:
                drops.setdefault(index, {})[name] = error
        return drops

    def _drop_and_resend(self, object_name: str, items: Sequence[_Item], drops: Mapping[int, Mapping[str, FieldError]],
                         results: WriteResults) -> None:
        again = []
        for index, rid, values in items:
            dropped = drops.get(index, {})
            for name, error in dropped.items():
                results.failed(index, [name], error)
            remaining = {k: v for k, v in values.items() if k not in dropped}
            if remaining:  # a record whose every property was rejected is settled without another request
                again.append((index, rid, remaining))
        if again:
            self._write_batch(object_name, again, results)

    def _interpret(self, items: Sequence[_Item], body: Mapping[str, Any], results: WriteResults) -> None:
        done = {str(r.get("id")) for r in body.get("results") or []}
        failed: dict[str, str] = {}
        for error in body.get("errors") or []:
            reason = self._clean(f"{error.get('category') or 'ERROR'}: {error.get('message') or 'not updated'}")
            ids = (error.get("context") or {}).get("ids") or []
            for rid in ids:
                failed[str(rid)] = reason
        for index, rid, values in items:
            if rid in done and rid not in failed:
                results.written(index, values)
            else:
                reason = failed.get(rid, "HubSpot did not confirm the update")
                results.failed(index, values, FieldError("failed", reason))


def _as_wire(value: Any) -> str:
    """Values should already be encoded; tolerate canonical ones."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return iso_datetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return ";".join(str(v) for v in value)
    return str(value)


def _chunks(items: Sequence[_Item]) -> list[list[_Item]]:
    """Batches of at most 100 inputs with distinct ids (HubSpot rejects duplicates), in order."""
    batches: list[list[_Item]] = []
    ids: list[set[str]] = []
    first_open = 0  # batches before this one are full
    for item in items:
        for number in range(first_open, len(batches)):
            if len(batches[number]) < MAX_BATCH and item[1] not in ids[number]:
                batches[number].append(item)
                ids[number].add(item[1])
                break
        else:
            batches.append([item])
            ids.append({item[1]})
        while first_open < len(batches) and len(batches[first_open]) >= MAX_BATCH:
            first_open += 1
    return batches


def _rejections(body: Mapping[str, Any], message: str) -> list[tuple[str, str, str, str | None]]:
    """(property, code, message, rejected value or None) from a VALIDATION_ERROR answer.

    Reads the JSON list embedded in ``message`` ("Property values were not
    valid: [...]", which carries ``propertyValue``) and ``errors[]`` with
    ``code`` and ``context.propertyName`` (which does not).
    """
    found: list[tuple[str, str, str, str | None]] = []
    marker = message.find("[")
    if "not valid" in message and marker >= 0:
        try:
            entries = json.loads(message[marker:])
        except ValueError:
            entries = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("name"):
                value = entry.get("propertyValue")
                found.append((str(entry["name"]), str(entry.get("error") or "INVALID_VALUE"),
                              str(entry.get("message") or ""), None if value is None else str(value)))
    named = {f[0] for f in found}
    for error in body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        names = (error.get("context") or {}).get("propertyName") or []
        if isinstance(names, str):
            names = [names]
        for name in names:
            if str(name) not in named:
                found.append((str(name), str(error.get("code") or "INVALID_VALUE"), str(error.get("message") or ""), None))
    return found


__all__ = ["ERROR_OUTCOMES", "WriteMixin"]
