"""Salesforce notes: a ``ContentNote`` per recording, linked to its records with ``ContentDocumentLink``.

``write_notes`` packs the notes' subrequests into as few Composite requests
(``POST composite``, at most 25 subrequests, one API call) as it can, in
order; each note's referenceIds carry its position (``note0``,
``note0_link1``, ``note0_content``), so every answer maps back to its note:

* create: the note (``note0``) and one link per target with
  ``ContentDocumentId`` ``@{note0.id}``;
* update: ``PATCH`` of the note's Title and Content (``note0_content``) when
  the content changed, then, for targets not yet attached, a ``GET`` of the
  note (``note0``) and the links referencing ``@{note0.Id}``; a note a person
  deleted answers 404 there and is created again (the re-creates of one
  composite share one more composite);
* a note whose own subrequests pass 25 goes alone: the note and 24 links,
  then composites of 25 links naming the note's id directly.

``allOrNone`` is false: one note's failure, or a link the org refuses for one
target, must not undo another note or the other links. Subrequests that
depend on a failed one (``@{note0.id}`` after a refused note) are not run by
Salesforce. ``DUPLICATE_VALUE`` means the link already exists, so that target
counts as attached. Only a permanent refusal (``PERMANENT_LINK_ERRORS``, an id
that is malformed here) goes to ``NoteResult.refused``, which the pipeline
does not ask again until the content changes; a link that failed for a
passing reason (a row lock, a 5xx inside the composite, a chunk that got no
answer) is in neither ``attached`` nor ``refused``, so the next pass sends it.

The body is sent as Salesforce wants a note's HTML: base64 of UTF-8, special
characters escaped with ``&amp; &lt; &gt; &quot;`` or numeric references
(the org refuses ``&apos;`` and other named entities), no line breaks (the
org strips them). ``find_note`` asks ContentDocumentLink by the first
target's id for a note of that exact Title created since then.
"""

from __future__ import annotations

import base64
import datetime as dt
import html.entities
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from simple_salesforce.format import format_soql

from connectors.base import INTERRUPTS, ConnectorError, PermanentError
from connectors.notes import NoteResult, NoteTarget, NoteWrite
from connectors.salesforce.ids import salesforce_id18
from connectors.salesforce.session import (
    SessionMixin,
    _codes,
    _describe_error,
    _Rejected,
)

MAX_SUBREQUESTS = 25  # per Composite request
TITLE_MAX = 255  # ContentNote.Title
SHARE_TYPE = "V"  # viewers of the record can view the note

#: A link refused for one of these stays refused however often it is sent (the record is gone or out of
#: reach, the id is wrong); any other failure is passing and the link is sent again next time.
PERMANENT_LINK_ERRORS = frozenset({"INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "ENTITY_IS_DELETED",
                                   "MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY", "INVALID_ID_FIELD"})

_NAMED_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_KEPT_ENTITIES = {"amp", "lt", "gt", "quot"}
_GONE = {"NOT_FOUND", "ENTITY_IS_DELETED"}
_MALFORMED = "MALFORMED_ID: not a Salesforce record id"


def note_content(markup: str) -> str:
    """``markup`` as a note body Salesforce accepts, base64-encoded."""
    def numeric(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _KEPT_ENTITIES:
            return match.group(0)
        code = html.entities.name2codepoint.get(name)
        return f"&#{code};" if code is not None else f"&amp;{name};"

    text = _NAMED_ENTITY.sub(numeric, markup)
    text = re.sub(r"&#[xX]([0-9A-Fa-f]+);", lambda m: f"&#{int(m.group(1), 16)};", text)
    text = re.sub(r"\r\n|\r|\n", " ", text)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def note_title(title: str) -> str:
    return title[:TITLE_MAX]


def _id18(raw: str) -> str | None:
    return salesforce_id18(raw.strip()) if isinstance(raw, str) else None


@dataclass
class _Progress:
    """What one ``NoteWrite`` has reached so far."""

    note: NoteWrite
    note_id: str | None
    attached: set[NoteTarget] = field(default_factory=set)
    refused: dict[NoteTarget, str] = field(default_factory=dict)

    def result(self, outcome: str, reason: str | None = None) -> NoteResult:
        # a target named twice (15- and 18-character id) shares the fate of the spelling that was sent
        linked = {_id18(t.record_id) for t in self.attached} - {None}
        attached = self.attached | {t for t in self.note.targets if _id18(t.record_id) in linked}
        return NoteResult(self.note.key, outcome, self.note_id, frozenset(attached), dict(self.refused), reason)


@dataclass
class _Plan:
    """One note's part of a composite: its subrequests, named ``{tag}...``, and the links it makes later."""

    position: int  # the note's place in ``write_notes``'s list
    tag: str  # note{position}: the note's subrequest (POST, or the GET of an update)
    progress: _Progress
    creating: bool
    subrequests: list[dict[str, Any]]
    first: dict[str, NoteTarget]  # link referenceId -> target, in this composite
    rest: dict[str, NoteTarget]  # targets linked after it, 25 per composite


class NotesMixin(SessionMixin):
    """``SalesforceConnector.write_notes`` and ``find_note``."""

    api_version: str

    def write_notes(self, notes: Sequence[NoteWrite]) -> list[NoteResult]:
        """The notes' subrequests packed into composites of up to 25, in order; then the re-creates of
        notes deleted in Salesforce, packed alike.

        A whole-call failure (auth, transient) is raised with the results of
        the notes already settled (in order, without the unsettled ones) in
        ``partial``, so none of them is lost.
        """
        results: dict[int, NoteResult] = {}
        failure: ConnectorError | None = None
        try:
            plans: list[_Plan] = []
            for position, note in enumerate(notes):
                planned = self._plan_note(position, note)
                if isinstance(planned, NoteResult):
                    results[position] = planned
                else:
                    plans.append(planned)
            while plans:  # a second round only for notes deleted in Salesforce, created again
                again: list[_Plan] = []
                for batch in _packed(plans):
                    answers = self._composite([sub for plan in batch for sub in plan.subrequests])
                    for plan in batch:
                        settled = self._settle_note(plan, answers)
                        if isinstance(settled, _Plan):
                            again.append(settled)
                        else:
                            results[plan.position] = settled
                plans = again
        except ConnectorError as exc:
            failure = exc
        if failure is not None:  # raised outside the except block: no __context__ pinning a response
            failure.partial = [results[p] for p in sorted(results)]  # type: ignore[assignment]
            raise failure.with_traceback(None)
        return [results[p] for p in range(len(notes))]

    def find_note(self, note: NoteWrite, since: dt.datetime, exclude: frozenset[str] = frozenset()) -> str | None:
        """The earliest note with this exact title on the first target created at or after ``since``,
        other than the notes in ``exclude`` (those the ledger gives to other recordings)."""
        if not note.targets:
            return None
        target = _id18(note.targets[0].record_id)
        if target is None:
            return None
        taken = {key for key in (_id18(raw) for raw in exclude) if key is not None}
        # CreatedDate has whole seconds: a note made in the second ``since`` falls in must still be found.
        floor = since.astimezone(dt.UTC).replace(microsecond=0) if since.tzinfo else since.replace(
            microsecond=0, tzinfo=dt.UTC)
        title = note_title(note.title)
        soql = format_soql(
            "SELECT ContentDocumentId, ContentDocument.Title, ContentDocument.CreatedDate FROM ContentDocumentLink "
            "WHERE LinkedEntityId = {} AND ContentDocument.FileType = 'SNOTE' AND ContentDocument.Title = {} "
            "AND ContentDocument.CreatedDate >= {}", target, title, floor)
        try:
            answer = self._call("find note", lambda sf: sf.query(soql, timeout=self._timeout))
        except _Rejected as exc:
            raise PermanentError(f"salesforce find note: {exc}") from None
        found: list[tuple[str, str]] = []
        for row in (answer or {}).get("records", []):
            document = row.get("ContentDocument") or {}
            note_id = str(row.get("ContentDocumentId") or "")
            # SOQL compares text case-insensitively; the note must carry exactly this title
            if document.get("Title") == title and note_id and _id18(note_id) not in taken:
                found.append((str(document.get("CreatedDate") or ""), note_id))
        return min(found)[1] if found else None

    # -- planning: one note's subrequests ------------------------------------------------
    def _plan_note(self, position: int, note: NoteWrite, *, create: bool = False) -> _Plan | NoteResult:
        """The note's subrequests (the first 25 if it needs more), or its result when it needs none."""
        tag = f"note{position}"
        targets = self._targets(note, tag)
        creating = create or note.note_id is None
        if not creating and _id18(note.note_id or "") is None:
            # not an id Salesforce could have given: one such url would fail the whole shared composite
            if note.html is None:
                return NoteResult(note.key, "failed", None, reason=f"{_MALFORMED} (the note's id)")
            creating = True
        progress = _Progress(note, None if creating else note.note_id, set() if creating else set(note.attached))
        for target in note.targets:
            if _id18(target.record_id) is None:
                progress.refused[target] = _MALFORMED
        subrequests: list[dict[str, Any]] = []
        if creating:
            subrequests.append(self._sub("POST", "sobjects/ContentNote", tag, {
                "Title": note_title(note.title), "Content": note_content(note.html or "")}))
            missing, document = targets, f"@{{{tag}.id}}"
        else:
            missing = {ref: target for ref, target in targets.items() if target not in progress.attached}
            if note.html is None and not missing:
                return progress.result("updated")
            if note.html is not None:
                subrequests.append(self._sub("PATCH", f"sobjects/ContentNote/{note.note_id}", f"{tag}_content",
                                             {"Title": note_title(note.title), "Content": note_content(note.html)}))
            if missing:
                subrequests.append(self._sub("GET", f"sobjects/ContentNote/{note.note_id}?fields=Id", tag))
            document = f"@{{{tag}.Id}}"
        first = dict(list(missing.items())[:MAX_SUBREQUESTS - len(subrequests)])
        rest = {ref: target for ref, target in missing.items() if ref not in first}
        return _Plan(position, tag, progress, creating, subrequests + self._links(first, document), first, rest)

    def _targets(self, note: NoteWrite, tag: str) -> dict[str, NoteTarget]:
        """The targets with a usable id, by their link's referenceId (one per record)."""
        out: dict[str, NoteTarget] = {}
        seen: set[str] = set()
        for target in note.targets:
            key = _id18(target.record_id)
            if key is None or key in seen:
                continue
            seen.add(key)
            out[f"{tag}_link{len(out)}"] = target
        return out

    # -- settling: one note's answers ------------------------------------------------------
    def _settle_note(self, plan: _Plan, answers: Mapping[str, tuple[int, Any]]) -> NoteResult | _Plan:
        """The note's result from its answers, or the plan that creates it again (deleted in Salesforce)."""
        progress, note = plan.progress, plan.progress.note
        if plan.creating:
            status, body = answers.get(plan.tag) or (0, None)
            if status != 201 or not isinstance(body, dict) or not body.get("id"):
                return progress.result("failed", _describe_error(body) if body else "no answer for the note")
            progress.note_id = str(body["id"])
            self._settle_links(progress, plan.first, answers)
            self._link_rest(progress, plan.rest)
            return progress.result("created")
        content, found = answers.get(f"{plan.tag}_content"), answers.get(plan.tag)
        if any(answer is not None and answer[0] == 404 and _codes(answer[1]) & _GONE for answer in (content, found)):
            if note.html is None:  # the content it had is not ours to re-create
                return NoteResult(note.key, "failed", None, reason="NOTE_DELETED: the note was deleted in Salesforce;"
                                  " its content is needed to create it again")
            recreate = self._plan_note(plan.position, note, create=True)
            assert isinstance(recreate, _Plan)  # a create always has its note to send
            return recreate
        self._settle_links(progress, plan.first, answers)
        self._link_rest(progress, plan.rest)
        if content is not None and content[0] >= 300:
            return progress.result("failed", _describe_error(content[1]))
        return progress.result("updated")

    def _links(self, targets: Mapping[str, NoteTarget], document: str) -> list[dict[str, Any]]:
        return [self._sub("POST", "sobjects/ContentDocumentLink", ref, {
            "ContentDocumentId": document, "LinkedEntityId": _id18(target.record_id),
            "ShareType": SHARE_TYPE}) for ref, target in targets.items()]

    def _link_rest(self, progress: _Progress, targets: Mapping[str, NoteTarget]) -> None:
        """Links past the first composite, 25 per request. The note exists by now: a failed request leaves
        its targets unattached (sent again next time), never raised, so the note's id is not lost."""
        items = list(targets.items())
        for start in range(0, len(items), MAX_SUBREQUESTS):
            chunk = dict(items[start:start + MAX_SUBREQUESTS])
            try:
                answers = self._composite(self._links(chunk, str(progress.note_id)))
            except INTERRUPTS:
                raise
            except ConnectorError:
                continue  # no answer: neither attached nor refused
            self._settle_links(progress, chunk, answers)

    @staticmethod
    def _settle_links(progress: _Progress, targets: Mapping[str, NoteTarget],
                      answers: Mapping[str, tuple[int, Any]]) -> None:
        for ref, target in targets.items():
            status, body = answers.get(ref) or (0, None)
            codes = _codes(body) if body else set()
            if status == 201 or (status == 400 and "DUPLICATE_VALUE" in codes):
                progress.attached.add(target)  # a duplicate: this link exists already
            elif 400 <= status < 500 and codes & PERMANENT_LINK_ERRORS:
                progress.refused[target] = _describe_error(body)
            # anything else (PROCESSING_HALTED, a row lock, a 5xx, no answer) passes: sent again next time

    # -- the composite request -----------------------------------------------------------
    def _sub(self, method: str, path: str, ref: str, body: Any = None) -> dict[str, Any]:
        sub: dict[str, Any] = {"method": method, "url": f"/services/data/v{self.api_version}/{path}",
                               "referenceId": ref}
        if body is not None:
            sub["body"] = body
        return sub

    def _composite(self, subrequests: list[dict[str, Any]]) -> dict[str, tuple[int, Any]]:
        """Send one Composite request (allOrNone false); (status, body) per referenceId."""
        payload = json.dumps({"allOrNone": False, "compositeRequest": subrequests})
        try:
            answer = self._call("notes", lambda sf: sf.restful("composite", method="POST", data=payload,
                                                              timeout=self._timeout))
        except _Rejected as exc:
            raise PermanentError(f"salesforce notes: {exc}") from None
        results = answer.get("compositeResponse") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise PermanentError("salesforce notes: unexpected composite response shape")
        out: dict[str, tuple[int, Any]] = {}
        for item in results:
            if isinstance(item, dict) and isinstance(item.get("referenceId"), str):
                out[item["referenceId"]] = (int(item.get("httpStatusCode") or 0), item.get("body"))
        return out


def _packed(plans: list[_Plan]) -> Iterator[list[_Plan]]:
    """The plans in order, grouped into composites of at most ``MAX_SUBREQUESTS`` subrequests."""
    batch: list[_Plan] = []
    size = 0
    for plan in plans:
        count = len(plan.subrequests)
        if batch and size + count > MAX_SUBREQUESTS:
            yield batch
            batch, size = [], 0
        batch.append(plan)
        size += count
    if batch:
        yield batch


__all__ = ["MAX_SUBREQUESTS", "NotesMixin", "PERMANENT_LINK_ERRORS", "TITLE_MAX", "note_content", "note_title"]
