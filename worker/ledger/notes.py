"""Summary notes: what the CRM holds of each recording's note, and each run's note outcome (DESIGN §7).

One row of ``notes`` per (recording, connection): the note's CRM id, a hash
of the content the CRM holds and the records it is attached to. The notes
stage (``worker.pipeline.notes``) reads them (:meth:`Notes.note_states`) to
send nothing for a summary the CRM already holds, and writes them in two
steps around the CRM call, as write intents do for fields:

* :meth:`Notes.claim_note` just before a call that may create a note: it sets
  ``intent_at`` and holds the note for this run (``claimed_until``, a task's
  hard time limit), so that two runs (a ``writeback sync`` beside a worker)
  never create it twice;
* :meth:`Notes.settle_note` with the CRM's answer (intent and claim cleared),
  or :meth:`Notes.release_note` when there is no answer to store.

An ``intent_at`` still set when a run claims the note belongs to a run that
died between the CRM's answer and the ledger write (or never got the
answer): the stage asks the CRM for that note (``Connector.find_note``,
excluding notes the ledger gives to other recordings: :meth:`Notes.note_owner`)
before it creates one.
:meth:`Notes.record_notes` keeps each run's ``NoteReport`` lines in
``note_attempts`` for ``writeback history``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from worker.report import NoteOutcome, NoteReport

from .engine import Database, chunks
from .rows import check_str
from .schema import Note, NoteAttempt, utcnow

__all__ = ["NoteClaim", "NoteState", "Notes"]

Target = tuple[str, str]  # (object, record id)


@dataclass(frozen=True)
class NoteClaim:
    """A run's hold on a note (``Notes.claim_note``)."""

    intent_at: datetime  # since when a create of this note may have happened unseen
    pending: datetime | None  # an earlier run's intent whose answer was never stored


@dataclass(frozen=True)
class NoteState:
    """What the ledger knows of one recording's note on one connection."""

    recording_id: str
    connection: str
    object: str
    note_id: str | None
    content_hash: str | None
    attached: frozenset[Target]
    refused: frozenset[Target]  # the CRM would not attach the note to these (deleted records)
    intent_at: datetime | None  # set: a call that may have created the note has no stored answer


class Notes(Database):
    """The notes the CRM holds for us, and each run's note outcomes."""

    def note_states(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], NoteState]:
        """The state of each (recording_id, connection) the ledger has a note row for."""
        wanted = set(keys)
        if not wanted:
            return {}
        found: dict[tuple[str, str], NoteState] = {}
        with self._read("reading notes") as conn:
            if not self._has_table(conn, Note.__tablename__):
                return {}
            for ids in chunks(sorted({recording_id for recording_id, _ in wanted})):
                stmt = select(*Note.__table__.c).where(Note.recording_id.in_(ids))
                for row in conn.execute(stmt):
                    if (row.recording_id, row.connection) in wanted:
                        found[(row.recording_id, row.connection)] = NoteState(
                            row.recording_id, row.connection, row.object, row.note_id, row.content_hash,
                            _pairs(row.attached), _pairs(row.refused), row.intent_at)
        return found

    def claim_note(self, recording_id: str, connection: str, object: str, lease_s: float) -> NoteClaim | None:
        """Take the note for one run, just before a call that may create it; None when another run
        holds it (until its lease ends: a task's hard time limit, so a dead worker's claim lapses).

        Sets ``intent_at`` when none is pending; one left by a run whose answer was never stored is
        kept, and returned as ``pending``: the caller asks the CRM for that note before creating.
        """
        for value, name in ((recording_id, "recording_id"), (connection, "connection"), (object, "object")):
            check_str(value, name)
        now = utcnow()
        key = (Note.recording_id == recording_id, Note.connection == connection)
        with self._write("claiming a note") as conn:
            row = conn.execute(select(Note.intent_at, Note.claimed_until).where(*key).with_for_update()).first()
            if row is None:
                inserted = conn.execute(
                    self._upsert(Note).values(recording_id=recording_id, connection=connection, object=object,
                                              note_id=None, content_hash=None, attached=[], refused=[],
                                              intent_at=now, claimed_until=now + timedelta(seconds=lease_s),
                                              updated_at=now)
                    .on_conflict_do_nothing(index_elements=[Note.recording_id, Note.connection]))
                return NoteClaim(now, None) if inserted.rowcount else None
            if row.claimed_until is not None and row.claimed_until > now:
                return None
            conn.execute(update(Note).where(*key).values(
                intent_at=row.intent_at or now, claimed_until=now + timedelta(seconds=lease_s), updated_at=now))
            return NoteClaim(row.intent_at or now, row.intent_at)

    def settle_note(self, recording_id: str, connection: str, object: str, note_id: str | None,
                    content_hash: str | None, attached: Iterable[Target], refused: Iterable[Target] = ()) -> None:
        """Store what the CRM holds now (``note_id`` None: it holds no note of ours), clear the intent
        and release the claim; ``refused``: the targets the CRM would not attach it to."""
        for value, name in ((recording_id, "recording_id"), (connection, "connection"), (object, "object")):
            check_str(value, name)
        now = utcnow()
        values = {"object": object, "note_id": note_id, "content_hash": content_hash,
                  "attached": _rows(attached), "refused": _rows(refused), "intent_at": None,
                  "claimed_until": None, "updated_at": now}
        stmt = self._upsert(Note).values(recording_id=recording_id, connection=connection, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[Note.recording_id, Note.connection], set_=values)
        with self._write("recording a note") as conn:
            conn.execute(stmt)

    def release_note(self, recording_id: str, connection: str, *, created_nothing: bool) -> None:
        """Release a claim without an answer to store. ``created_nothing``: the CRM refused the call as
        a whole, so the intent is cleared; otherwise it stays, and the next run looks the note up."""
        values: dict[str, Any] = {"claimed_until": None, "updated_at": utcnow()}
        if created_nothing:
            values["intent_at"] = None
        stmt = update(Note).where(Note.recording_id == recording_id, Note.connection == connection).values(**values)
        with self._write("releasing a note") as conn:
            conn.execute(stmt)

    def note_owner(self, connection: str, note_id: str) -> str | None:
        """The recording whose note ``note_id`` is on ``connection``, per the ledger (None: nobody's)."""
        stmt = select(Note.recording_id).where(Note.connection == connection, Note.note_id == note_id).limit(1)
        with self._read("reading a note's owner") as conn:
            return conn.execute(stmt).scalar()

    def record_notes(self, run_id: int, recording_id: str, lines: Sequence[NoteReport]) -> None:
        """Store a run's note outcomes (the report's ``notes``)."""
        if not lines:
            return
        now = utcnow()
        params = [
            {"run_id": run_id, "recording_id": recording_id, "connection": line.connection,
             "object": line.object, "note_id": line.note_id,
             "attached": [list(pair) for pair in line.attached_to], "outcome": str(line.outcome),
             "reason": line.reason, "created_at": now}
            for line in lines
        ]
        with self._write("recording note outcomes") as conn:
            if self._has_table(conn, NoteAttempt.__tablename__):
                conn.execute(insert(NoteAttempt), params)

    def note_lines(self, recording_id: str) -> dict[int, list[NoteReport]]:
        """Every recorded note outcome of ``recording_id``, by run id, in the order recorded."""
        check_str(recording_id, "recording_id")
        stmt = (select(*NoteAttempt.__table__.c).where(NoteAttempt.recording_id == recording_id)
                .order_by(NoteAttempt.id))
        by_run: dict[int, list[NoteReport]] = {}
        with self._read("reading note outcomes") as conn:
            if not self._has_table(conn, NoteAttempt.__tablename__):
                return {}
            for row in conn.execute(stmt):
                by_run.setdefault(row.run_id, []).append(NoteReport(
                    row.connection, row.object, row.note_id,
                    tuple((str(obj), str(record_id)) for obj, record_id in row.attached or ()),
                    NoteOutcome(row.outcome), row.reason))
        return by_run


def _pairs(stored: Any) -> frozenset[Target]:
    return frozenset((str(obj), str(record_id)) for obj, record_id in stored or ())


def _rows(targets: Iterable[Target]) -> list[list[str]]:
    return [list(pair) for pair in sorted({(str(obj), str(record_id)) for obj, record_id in targets})]
