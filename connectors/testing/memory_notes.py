"""Notes for ``InMemoryConnector``: a strict note store, as a CRM keeps them (``connectors.notes``).

One request per ``write_notes`` call (kind ``notes``) and per ``find_note``
(kind ``find_note``), logged and failable like the connector's other
requests (``fail_next``); ``after_applying`` lets that many notes of the
failing call be applied first, as a CRM that answered but whose answer was
lost. A target record the store lacks is refused (the note and its other
targets stand); a note deleted with ``delete_note`` is created again when it
is next updated.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

from connectors.base import WritebackError
from connectors.notes import NoteResult, NoteTarget, NoteWrite


@dataclass
class StoredNote:
    """A note as the in-memory CRM holds it."""

    id: str
    title: str
    html: str
    timestamp: dt.datetime
    created_at: dt.datetime
    targets: set[NoteTarget] = field(default_factory=set)


class InMemoryNotes:
    """The notes half of ``InMemoryConnector`` (mixed in; uses its lock, store and request log)."""

    notes_supported = True
    note_object = "Note"
    note_targets = {"opportunity": "Opportunity", "account": "Account", "contacts": "Contact", "lead": "Lead"}

    _lock: Any
    _records: dict[str, dict[str, dict[str, Any]]]

    def _notes(self) -> dict[str, StoredNote]:
        if not hasattr(self, "_note_store"):
            self._note_store: dict[str, StoredNote] = {}
            self._note_ids = itertools.count(1)
        return self._note_store

    # -- the backing store, for tests ----------------------------------------------
    @property
    def notes(self) -> dict[str, StoredNote]:
        """Every note the CRM holds, by id (live objects: do not change them)."""
        with self._lock:
            return dict(self._notes())

    def delete_note(self, note_id: str) -> None:
        """Delete a note behind the connector's back, as a person in the CRM would."""
        with self._lock:
            self._notes().pop(note_id, None)

    # -- Connector -------------------------------------------------------------------
    def write_notes(self, notes: Sequence[NoteWrite]) -> list[NoteResult]:
        with self._lock:
            fault = self._request("notes", self.note_object, list(notes))  # type: ignore[attr-defined]
            applying = len(notes) if fault is None else fault.after_applying
            results = [self._apply_note(note) for note in notes[:applying]]
            if fault is not None:
                error = fault.error
                if isinstance(error, WritebackError):
                    error.partial = []
                raise error
            return results

    def find_note(self, note: NoteWrite, since: dt.datetime, exclude: frozenset[str] = frozenset()) -> str | None:
        with self._lock:
            fault = self._request("find_note", self.note_object, note.key)  # type: ignore[attr-defined]
            if fault is not None:
                raise fault.error
            first = note.targets[0] if note.targets else None
            for stored in self._notes().values():
                if (stored.title == note.title and first in stored.targets and stored.created_at >= since
                        and stored.id not in exclude):
                    return stored.id
            return None

    def _apply_note(self, note: NoteWrite) -> NoteResult:
        store = self._notes()
        stored = store.get(note.note_id) if note.note_id else None
        outcome = "updated"
        if stored is None:
            if note.html is None and note.note_id is not None:
                # The note was deleted and only links were asked: its content is the caller's to resend.
                return NoteResult(note.key, "failed", None, frozenset(), reason=f"note {note.note_id} is deleted")
            stored = StoredNote(f"NOTE{next(self._note_ids):05d}", note.title, note.html or "", note.timestamp,
                                dt.datetime.now(dt.UTC))
            store[stored.id] = stored
            outcome = "created"
        elif note.html is not None:
            stored.title, stored.html = note.title, note.html
        refused: dict[NoteTarget, str] = {}
        for target in note.targets:
            if target in stored.targets:
                continue
            if target.record_id not in self._records.get(target.object, {}):
                refused[target] = f"{target.object} {target.record_id} does not exist"
                continue
            stored.targets.add(target)
        return NoteResult(note.key, outcome, stored.id, frozenset(stored.targets), refused)
