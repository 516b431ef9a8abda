"""HubSpot reads: ``batch/read`` of up to ``MAX_BATCH`` records per request, one answer per id asked.

A malformed id is answered without a request; a record HubSpot reports
missing (207 ``OBJECT_NOT_FOUND``) or leaves out fails alone, with the
reason HubSpot gave.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from connectors.base import FieldError, RecordState, UnknownObject
from connectors.hubspot.api import _NUMERIC_ID, MAX_BATCH, ApiMixin, _HTTPFailure


class ReadMixin(ApiMixin):
    """``HubSpotConnector.read``."""

    def read(self, object_name: str, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, RecordState]:
        out: dict[str, RecordState] = {}
        wanted = _wanted_ids(record_ids, out)
        properties = list(dict.fromkeys(str(f) for f in fields))
        for start in range(0, len(wanted), MAX_BATCH):
            chunk = wanted[start:start + MAX_BATCH]
            body = self._read_batch(object_name, chunk, properties)
            self._take_states(body, chunk, properties, out)
        return {str(rid): out[str(rid)] for rid in record_ids}

    def _read_batch(self, object_name: str, chunk: list[str], properties: list[str]) -> Mapping[str, Any]:
        """The answer of one ``batch/read``."""
        from hubspot.crm.objects import (
            BatchReadInputSimplePublicObjectId,
            SimplePublicObjectId,
        )

        request = BatchReadInputSimplePublicObjectId(
            properties=properties, properties_with_history=[],
            inputs=[SimplePublicObjectId(id=rid) for rid in chunk],
        )
        what = f"batch read of {len(chunk)} {object_name}"
        try:
            _, body = self._call(what, self._api("batch").read, object_name, request)
        except _HTTPFailure as failure:
            if failure.status == 404 or "infer object type" in failure.message.lower():
                raise UnknownObject(self._clean(f"hubspot: no object type {object_name!r} ({failure.message})")) from None
            self._raise(what, failure)
        return body or {}

    def _take_states(self, body: Mapping[str, Any], chunk: list[str], properties: list[str],
                     out: dict[str, RecordState]) -> None:
        """A state in ``out`` for each id of ``chunk``: its values, HubSpot's error, or a failure."""
        for result in body.get("results") or []:
            rid = str(result.get("id"))
            if rid in chunk:
                values = dict(result.get("properties") or {})
                for name in properties:
                    values.setdefault(name, None)
                out[rid] = RecordState(rid, values)
        for error in body.get("errors") or []:
            reason = f"{error.get('category') or 'ERROR'}: {error.get('message') or 'not returned'}"
            ids = ((error.get("context") or {}).get("ids")) or []
            for rid in ids:
                rid = str(rid)
                if rid in chunk and rid not in out:
                    out[rid] = RecordState(rid, None, FieldError("failed", self._clean(reason)))
        for rid in chunk:
            if rid not in out:
                out[rid] = RecordState(rid, None, FieldError("failed", "HubSpot returned neither the record nor an error"))


def _wanted_ids(record_ids: Sequence[str], out: dict[str, RecordState]) -> list[str]:
    """The well-formed ids, each once, in order; a malformed one is answered in ``out`` right away."""
    wanted: list[str] = []
    seen: set[str] = set()
    for rid in record_ids:
        key = str(rid)
        if key in seen:
            continue
        seen.add(key)
        if not _NUMERIC_ID.match(key):
            out[key] = RecordState(key, None, FieldError("failed", f"malformed HubSpot record id {key!r} (ids are numeric)"))
        else:
            wanted.append(key)
    return wanted


__all__ = ["ReadMixin"]
