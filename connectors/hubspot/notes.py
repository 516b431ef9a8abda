"""HubSpot notes (DESIGN §7): a recording's summary as one ``notes`` object, associated to its deals,
companies and contacts, in the fewest requests.

One ``write_notes`` call sends, in this order (each step batched, at most 100 inputs a request):

1. ``POST /crm/v3/objects/notes/batch/update`` for every note whose content changed. A note HubSpot no
   longer has (207 ``OBJECT_NOT_FOUND``: deleted by a person) is created again in step 3.
2. ``POST /crm/v4/associations/notes/{toObjectType}/batch/associate/default`` per target object type
   for the records linked since the note was written.
3. ``POST /crm/v3/objects/notes/batch/create`` for every new note, its default associations inline
   (note→deal 214, note→company 190, note→contact 202). HubSpot does not promise the input order of
   the results: each input carries an ``objectWriteTraceId`` that its result echoes.

Creates go last: updates and associations can be repeated harmlessly, while a create that is not
answered (a 5xx, a timeout) is found again by ``find_note``, the pipeline's guard against a second note.

HubSpot refuses a whole create or associate request for one association to a record it does not have
(400 ``One or more associations are invalid``, ``context.INVALID_OBJECT_IDS: ["CONTACT=42 is not
valid"]``). The named targets are dropped, reported in ``NoteResult.refused``, and the rest re-sent,
so the notes and their other associations still land; a refusal that names nothing is bisected. A note
left with no target at all is not created (a note on no record is visible nowhere): it fails.

The body is the title as a bold first line followed by the summary HTML, cut at a paragraph boundary
to HubSpot's 65,536 characters (counted in UTF-16 units, as HubSpot's Java does); ``hs_timestamp`` is
the conversation's time in epoch milliseconds.
"""

from __future__ import annotations

import datetime as dt
import functools
import html as html_lib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from connectors.hubspot.api import (
    _NUMERIC_ID,
    MAX_BATCH,
    ApiMixin,
    _HTTPFailure,
)
from connectors.notes import NoteResult, NoteTarget, NoteWrite

MAX_NOTE_BODY = 65536  # hs_note_body, in UTF-16 code units
NOTE_ASSOCIATION_TYPES: Mapping[str, int] = {"deals": 214, "companies": 190, "contacts": 202}
"""HubSpot's default (HUBSPOT_DEFINED) association type from a note to each object type."""
_OBJECT_NAMES = {"deals": "deals", "deal": "deals", "0-3": "deals",
                 "companies": "companies", "company": "companies", "0-2": "companies",
                 "contacts": "contacts", "contact": "contacts", "0-1": "contacts"}
_KINDS = {"DEAL": "deals", "COMPANY": "companies", "CONTACT": "contacts", "NOTE": "notes"}  # as errors name them
_INVALID_ID = re.compile(r"^\s*([A-Z_]+)=(\S+) is not valid")
_BLOCK_TAG = re.compile(r"<\s*/?\s*(p|div|br|li|ul|ol|h[1-6])\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_CUT_MARKER = "<p>[…]</p>"  # tells a reader the summary was cut to fit
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class _Note:
    """One ``NoteWrite`` while the call works on it."""

    write: NoteWrite
    note_id: str | None
    attached: set[NoteTarget]
    refused: dict[NoteTarget, str] = field(default_factory=dict)
    created: bool = False
    reason: str | None = None  # set: failed

    def open_targets(self) -> list[NoteTarget]:
        """Targets still to attach: neither attached nor refused, once each, in order."""
        return [t for t in dict.fromkeys(self.write.targets) if t not in self.attached and t not in self.refused]

    def result(self) -> NoteResult:
        outcome = "failed" if self.reason else "created" if self.created else "updated"
        return NoteResult(key=self.write.key, outcome=outcome, note_id=self.note_id,
                          attached=frozenset(self.attached), refused=dict(self.refused), reason=self.reason)


class NotesMixin(ApiMixin):
    """``HubSpotConnector.write_notes`` and ``find_note``."""

    def write_notes(self, notes: Sequence[NoteWrite]) -> list[NoteResult]:
        work = [_Note(n, n.note_id, set(n.attached) if n.note_id else set()) for n in notes]
        for note in work:
            for target in note.open_targets():
                problem = _target_problem(target)
                if problem:
                    note.refused[target] = problem
        self._update_notes([n for n in work if n.note_id and n.write.html is not None])
        self._attach([n for n in work if n.note_id and not n.reason])
        creates = [n for n in work if n.note_id is None and not n.reason]
        for note in creates:
            if note.write.html is None:  # only links were asked for, and the note is gone
                note.reason = "the note was deleted in HubSpot; it is created again when its content is sent"
        ready = []
        for note in creates:
            if not note.reason and not note.open_targets():
                note.reason = "no record to attach the note to: " + _refusals(note)
            elif not note.reason:
                ready.append(note)
        for start in range(0, len(ready), MAX_BATCH):
            self._create_batch(ready[start:start + MAX_BATCH])
        return [n.result() for n in work]

    def find_note(self, note: NoteWrite, since: dt.datetime, exclude: frozenset[str] = frozenset()) -> str | None:
        if not note.targets or _target_problem(note.targets[0]):
            return None
        target = note.targets[0]
        candidates = self._associated_notes(_OBJECT_NAMES[target.object.lower()], target.record_id)
        wanted, floor = _ms(note.timestamp), _ms(since)
        found: list[tuple[int, str]] = []
        for start in range(0, len(candidates), MAX_BATCH):
            for result in self._read_notes(candidates[start:start + MAX_BATCH]):
                values = result.get("properties") or {}
                created, stamp = _parse_ms(values.get("hs_createdate")), _parse_ms(values.get("hs_timestamp"))
                if (stamp == wanted and created is not None and created >= floor and str(result.get("id")) not in exclude
                        and _first_line(values.get("hs_note_body") or "") == note.title.strip()):
                    found.append((created, str(result.get("id"))))
        return min(found)[1] if found else None

    # ------------------------------------------------------------------ 1. content updates

    def _update_notes(self, notes: list[_Note]) -> None:
        from hubspot.crm.objects import (
            BatchInputSimplePublicObjectBatchInput,
            SimplePublicObjectBatchInput,
        )

        def send(chunk: list[_Note]) -> Mapping[str, Any]:
            request = BatchInputSimplePublicObjectBatchInput(inputs=[
                SimplePublicObjectBatchInput(id=n.note_id, properties=_properties(n.write)) for n in chunk])
            return self._call(f"batch update of {len(chunk)} notes", self._api("batch").update, "notes",
                              request)[1] or {}

        for start in range(0, len(notes), MAX_BATCH):
            self._bisected(notes[start:start + MAX_BATCH], send, self._take_updates, "batch update of notes")

    def _take_updates(self, chunk: list[_Note], body: Mapping[str, Any]) -> None:
        done = {str(r.get("id")) for r in body.get("results") or []}
        missing: dict[str, str] = {}
        for error in body.get("errors") or []:
            for rid in (error.get("context") or {}).get("ids") or []:
                missing[str(rid)] = str(error.get("category") or "ERROR")
        for note in chunk:
            if note.note_id in done:
                continue
            if missing.get(str(note.note_id)) == "OBJECT_NOT_FOUND":  # deleted in HubSpot: create it again
                note.note_id, note.attached = None, set()
            else:
                note.reason = "HubSpot did not confirm the update of the note"

    # ------------------------------------------------------------------ 2. later links

    def _attach(self, notes: list[_Note]) -> None:
        by_object: dict[str, list[tuple[_Note, NoteTarget]]] = {}
        for note in notes:
            for target in note.open_targets():
                by_object.setdefault(_OBJECT_NAMES[target.object.lower()], []).append((note, target))
        for object_name, pairs in by_object.items():
            for start in range(0, len(pairs), MAX_BATCH):
                self._attach_batch(object_name, pairs[start:start + MAX_BATCH])

    def _attach_batch(self, object_name: str, pairs: list[tuple[_Note, NoteTarget]]) -> None:
        from hubspot.crm.associations.v4 import (
            BatchInputPublicDefaultAssociationMultiPost,
            PublicDefaultAssociationMultiPost,
            PublicObjectId,
        )

        what = f"association of {len(pairs)} notes to {object_name}"
        while pairs:
            request = BatchInputPublicDefaultAssociationMultiPost(inputs=[
                PublicDefaultAssociationMultiPost(_from=PublicObjectId(id=n.note_id), to=PublicObjectId(id=t.record_id))
                for n, t in pairs])
            try:
                self._call(what, self._api("association_batch").create_default, "notes", object_name, request)
            except _HTTPFailure as failure:
                if failure.status != 400:
                    self._raise(what, failure)
                invalid = _invalid_ids(failure)
                gone = {n.note_id for n, _ in pairs if ("notes", str(n.note_id)) in invalid}
                kept = [(n, t) for n, t in pairs if not self._refuse_pair(n, t, gone, invalid, failure)]
                if len(kept) < len(pairs):
                    pairs = kept
                    continue
                if len(pairs) > 1:
                    middle = len(pairs) // 2
                    self._attach_batch(object_name, pairs[:middle])
                    self._attach_batch(object_name, pairs[middle:])
                else:
                    pairs[0][0].refused[pairs[0][1]] = self._reason(failure)
                return
            for note, target in pairs:
                note.attached.add(target)
            return

    def _refuse_pair(self, note: _Note, target: NoteTarget, gone: set[str | None], invalid: set[tuple[str, str]],
                     failure: _HTTPFailure) -> bool:
        """Whether a 400 named this pair's note (``gone``: created again) or target (refused)."""
        if note.note_id in gone or (note.note_id is None and not note.created):
            note.note_id, note.attached = None, set()
            return True
        if (_OBJECT_NAMES[target.object.lower()], target.record_id) in invalid:
            note.refused[target] = self._reason(failure, target)
            return True
        return False

    # ------------------------------------------------------------------ 3. creates

    def _create_batch(self, notes: list[_Note]) -> None:
        """One ``batch/create`` with inline associations; refused targets dropped, then bisection."""
        from hubspot.crm.objects import (
            AssociationSpec,
            BatchInputSimplePublicObjectBatchInputForCreate,
            PublicAssociationsForObject,
            PublicObjectId,
            SimplePublicObjectBatchInputForCreate,
        )

        what = f"batch create of {len(notes)} notes"
        while notes:
            sent = {i: n.open_targets() for i, n in enumerate(notes)}
            request = BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
                SimplePublicObjectBatchInputForCreate(
                    properties=_properties(note.write), object_write_trace_id=str(i),
                    associations=[PublicAssociationsForObject(
                        to=PublicObjectId(id=t.record_id),
                        types=[AssociationSpec(association_category="HUBSPOT_DEFINED",
                                               association_type_id=_type_id(t))]) for t in sent[i]])
                for i, note in enumerate(notes)])
            try:
                _, body = self._call(what, self._api("batch").create, "notes", request)
            except _HTTPFailure as failure:
                if failure.status != 400:
                    self._raise(what, failure)
                invalid = _invalid_ids(failure)
                pinned = False
                for note in notes:
                    for target in note.open_targets():
                        if (_OBJECT_NAMES[target.object.lower()], target.record_id) in invalid:
                            note.refused[target] = self._reason(failure, target)
                            pinned = True
                for note in notes:
                    if not note.open_targets():
                        note.reason = "no record to attach the note to: " + _refusals(note)
                if pinned:
                    notes = [n for n in notes if not n.reason]
                    continue
                if len(notes) > 1:
                    middle = len(notes) // 2
                    self._create_batch(notes[:middle])
                    self._create_batch(notes[middle:])
                else:
                    notes[0].reason = self._reason(failure)
                return
            by_trace = {str(r.get("objectWriteTraceId")): r for r in (body or {}).get("results") or []}
            for i, note in enumerate(notes):
                result = by_trace.get(str(i))
                if result is None:
                    note.reason = "HubSpot did not confirm the creation of the note"
                    continue
                note.note_id, note.created = str(result.get("id")), True
                note.attached = set(sent[i])
            return

    # ------------------------------------------------------------------ find_note's reads

    def _associated_notes(self, object_name: str, record_id: str) -> list[str]:
        """Every note associated to one record (``GET /crm/v4/objects/.../associations/notes``, 500 a page)."""
        what = f"notes of {object_name} {record_id}"
        ids: list[str] = []
        after: str | None = None
        while True:
            options: dict[str, Any] = {"limit": 500, **({"after": after} if after else {})}
            try:
                _, body = self._call(what, functools.partial(self._api("associations").get_page, **options),
                                     object_name, record_id, "notes")
            except _HTTPFailure as failure:
                self._raise(what, failure)
            body = body or {}
            ids += [str(r.get("toObjectId")) for r in body.get("results") or []]
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return list(dict.fromkeys(ids))

    def _read_notes(self, ids: list[str]) -> list[Mapping[str, Any]]:
        from hubspot.crm.objects import (
            BatchReadInputSimplePublicObjectId,
            SimplePublicObjectId,
        )

        request = BatchReadInputSimplePublicObjectId(
            properties=["hs_timestamp", "hs_note_body", "hs_createdate"], properties_with_history=[],
            inputs=[SimplePublicObjectId(id=i) for i in ids])
        what = f"batch read of {len(ids)} notes"
        try:
            _, body = self._call(what, self._api("batch").read, "notes", request)
        except _HTTPFailure as failure:
            self._raise(what, failure)
        return list((body or {}).get("results") or [])

    # ------------------------------------------------------------------ plumbing

    def _bisected(self, chunk: list[_Note], send: Callable[[list[_Note]], Mapping[str, Any]],
                  take: Callable[[list[_Note], Mapping[str, Any]], None], what: str) -> None:
        """Send a chunk; a 400 (which names no input) is bisected down to the note it fails."""
        try:
            body = send(chunk)
        except _HTTPFailure as failure:
            if failure.status != 400:
                self._raise(what, failure)
            if len(chunk) == 1:
                chunk[0].reason = self._reason(failure)
                return
            middle = len(chunk) // 2
            self._bisected(chunk[:middle], send, take, what)
            self._bisected(chunk[middle:], send, take, what)
            return
        take(chunk, body)

    def _reason(self, failure: _HTTPFailure, target: NoteTarget | None = None) -> str:
        if target is not None:
            return self._clean(f"{failure.category or 'error'}: HubSpot has no {target.object} {target.record_id}")
        return self._clean(f"{failure.status} {failure.category or 'error'}: {failure.message}")


# ---------------------------------------------------------------------- pure helpers

def _target_problem(target: NoteTarget) -> str | None:
    """Why a target cannot get a note without asking HubSpot, or None."""
    if target.object.lower() not in _OBJECT_NAMES:
        return f"HubSpot notes are not associated to {target.object} by default"
    if not _NUMERIC_ID.match(str(target.record_id)):
        return f"malformed HubSpot record id {target.record_id!r} (ids are numeric)"
    return None


def _type_id(target: NoteTarget) -> int:
    return NOTE_ASSOCIATION_TYPES[_OBJECT_NAMES[target.object.lower()]]


def _invalid_ids(failure: _HTTPFailure) -> set[tuple[str, str]]:
    """(object name, id) of every record a 400 ``INVALID_OBJECT_IDS`` names."""
    found = set()
    for text in (failure.body.get("context") or {}).get("INVALID_OBJECT_IDS") or []:
        match = _INVALID_ID.match(str(text))
        if match and match.group(1) in _KINDS:
            found.add((_KINDS[match.group(1)], match.group(2)))
    return found


def _refusals(note: _Note) -> str:
    return "; ".join(note.refused.values()) or "none linked"


def _properties(write: NoteWrite) -> dict[str, str]:
    return {"hs_note_body": note_body(write.title, write.html or ""), "hs_timestamp": str(_ms(write.timestamp))}


def note_body(title: str, html: str) -> str:
    """The title as a bold first line, then ``html``; cut to fit hs_note_body without breaking a tag or entity."""
    head = f"<p><b>{html_lib.escape(title.strip())}</b></p>"
    body = head + html
    if _units(body) <= MAX_NOTE_BODY:
        return body
    room = MAX_NOTE_BODY - _units(_CUT_MARKER)
    prefix = _prefix_within(body, room)
    end = prefix.rfind("</p>")
    if end >= len(head) - len("</p>"):  # the last whole paragraph that fits
        return prefix[:end + len("</p>")] + _CUT_MARKER
    # a first paragraph longer than the limit: cut its text outside any tag or entity, and close it
    text = _prefix_within(body, room - len("</p>"))
    if text.rfind("<") > text.rfind(">"):
        text = text[:text.rfind("<")]
    if text.rfind("&") > text.rfind(";"):
        text = text[:text.rfind("&")]
    return text + "</p>" + _CUT_MARKER


def _units(text: str) -> int:
    """Length in UTF-16 code units (what HubSpot counts)."""
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, units: int) -> str:
    """The longest prefix of ``text`` of at most ``units`` UTF-16 units."""
    if _units(text) <= units:
        return text
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return text[:index]
    return text


def _first_line(body: str) -> str:
    """The text of a note body's first non-empty block (its title)."""
    for line in html_lib.unescape(_TAG.sub("", _BLOCK_TAG.sub("\n", body))).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _ms(moment: dt.datetime) -> int:
    """Epoch milliseconds (a naive datetime is UTC), in integers: no float rounding."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return (aware - _EPOCH) // dt.timedelta(milliseconds=1)


def _parse_ms(value: Any) -> int | None:
    """Epoch milliseconds of a HubSpot datetime value (ISO 8601 or epoch ms), or None."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return _ms(dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError:
        return None


__all__ = ["MAX_NOTE_BODY", "NOTE_ASSOCIATION_TYPES", "NotesMixin", "note_body"]
