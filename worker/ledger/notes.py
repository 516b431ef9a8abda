"""Summary notes: what the CRM holds of each recording's note, and each run's note outcome (DESIGN §7).

One row of ``notes`` per (recording, connection): the note's CRM id, a hash
of the content the CRM holds and the records it is attached to. The notes
stage (``worker.pipeline.notes``) reads them (:meth:`Notes.note_states`) to
send nothing for a summary the CRM already holds, and writes them in two
steps around the CRM call, as write intents do for fields:

* :meth:`Notes.claim_note` holds the note for one run (``claimed_until``, a
  task's hard time limit; ``claim_token``, whose claim) and gives its state
  as it stands under the claim, so that two runs (a ``writeback sync``
  beside a worker) never both decide to create it;
* :meth:`Notes.mark_note_intent` just before each CRM call that may create
  the note (``intent_at``; the claim renewed, or found lost);
* :meth:`Notes.settle_note` with the CRM's answer (intent cleared, claim
  released), or :meth:`Notes.release_note` when there is no answer to store:
  the intent then stays, and only an answer ever clears it.

An ``intent_at`` still set when a run claims the note belongs to a run that
died between the CRM's answer and the ledger write (or never got the
answer): the stage asks the CRM for that note (``Connector.find_note``,
excluding notes the ledger gives to other recordings: :meth:`Notes.note_owner`)
before it creates one.
:meth:`Notes.record_notes` keeps each run's ``NoteReport`` lines in
``note_attempts`` for ``writeback history``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from worker.report import NoteOutcome, NoteReport

from .engine import Database, chunks
from .rows import check_str
from .schema import Note, NoteAttempt, utcnow

__all__ = ["NoteClaim", "NoteState", "Notes"]

Target = tuple[str, str]  # (object, record id)


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


@dataclass(frozen=True)
class NoteClaim:
    """A run's hold on a note (``Notes.claim_note``): the state as it stands under the claim."""

    token: str
    state: NoteState | None  # None: the ledger knew nothing of this note


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
                for row in conn.execute(select(*Note.__table__.c).where(Note.recording_id.in_(ids))):
                    if (row.recording_id, row.connection) in wanted:
                        found[(row.recording_id, row.connection)] = _state(row)
        return found

    def claim_note(self, recording_id: str, connection: str, object: str, lease_s: float) -> NoteClaim | None:
        """Hold the note for one run (until ``lease_s`` from now: a task's hard time limit, so a dead
        worker's claim lapses) and return its state as it stands under the claim; None when another
        run holds it. Decide from this state, never from one read before: another run may have
        written the note in between."""
        for value, name in ((recording_id, "recording_id"), (connection, "connection"), (object, "object")):
            check_str(value, name)
        now, token = utcnow(), secrets.token_hex(16)
        until = now + timedelta(seconds=lease_s)
        key = (Note.recording_id == recording_id, Note.connection == connection)
        with self._write("claiming a note") as conn:
            row = conn.execute(select(*Note.__table__.c).where(*key).with_for_update()).first()
            if row is None:
                inserted = conn.execute(
                    self._upsert(Note).values(recording_id=recording_id, connection=connection, object=object,
                                              note_id=None, content_hash=None, attached=[], refused=[],
                                              intent_at=None, claimed_until=until, claim_token=token,
                                              updated_at=now)
                    .on_conflict_do_nothing(index_elements=[Note.recording_id, Note.connection]))
                return NoteClaim(token, None) if inserted.rowcount else None
            if row.claimed_until is not None and row.claimed_until > now:
                return None
            conn.execute(update(Note).where(*key).values(claimed_until=until, claim_token=token, updated_at=now))
            return NoteClaim(token, _state(row))

    def mark_note_intent(self, recording_id: str, connection: str, token: str, lease_s: float) -> bool:
        """Just before a CRM call that may create the note: record the intent (an earlier one is kept:
        it is older) and renew the claim. False when the claim was lost (it lapsed and another run
        took the note): send nothing then."""
        now = utcnow()
        stmt = (update(Note)
                .where(Note.recording_id == recording_id, Note.connection == connection, Note.claim_token == token)
                .values(intent_at=func.coalesce(Note.intent_at, now),
                        claimed_until=now + timedelta(seconds=lease_s), updated_at=now))
        with self._write("recording a note intent") as conn:
            return bool(conn.execute(stmt).rowcount)

    def adopt_note(self, recording_id: str, connection: str, note_id: str) -> None:
        """A lookup found the note a lost answer had created: keep its id at once (content and links
        unknown, the intent kept until the CRM's answer to the next call is stored)."""
        stmt = (update(Note).where(Note.recording_id == recording_id, Note.connection == connection)
                .values(note_id=note_id, content_hash=None, attached=[], updated_at=utcnow()))
        with self._write("recording a found note") as conn:
            conn.execute(stmt)

    def settle_note(self, recording_id: str, connection: str, object: str, note_id: str,
                    content_hash: str | None, attached: Iterable[Target], refused: Iterable[Target] = (),
                    token: str | None = None) -> None:
        """Store what the CRM answered (the note, its content's hash, its targets) and clear the intent;
        the claim ``token`` holds is released (another run's, taken after ours lapsed, stays)."""
        for value, name in ((recording_id, "recording_id"), (connection, "connection"), (object, "object")):
            check_str(value, name)
        now = utcnow()
        values = {"object": object, "note_id": note_id, "content_hash": content_hash,
                  "attached": _rows(attached), "refused": _rows(refused), "intent_at": None, "updated_at": now}
        stmt = self._upsert(Note).values(recording_id=recording_id, connection=connection, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[Note.recording_id, Note.connection], set_=values)
        with self._write("recording a note") as conn:
            conn.execute(stmt)
            if token is not None:
                conn.execute(self._release(recording_id, connection, token))

    def release_note(self, recording_id: str, connection: str, token: str) -> None:
        """Release a claim without an answer to store; an intent stays, and the next run looks the note
        up before creating one."""
        with self._write("releasing a note") as conn:
            conn.execute(self._release(recording_id, connection, token))

    @staticmethod
    def _release(recording_id: str, connection: str, token: str) -> Any:
        return (update(Note)
                .where(Note.recording_id == recording_id, Note.connection == connection, Note.claim_token == token)
                .values(claimed_until=None, claim_token=None))

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


def _state(row: Any) -> NoteState:
    return NoteState(row.recording_id, row.connection, row.object, row.note_id, row.content_hash,
                     _pairs(row.attached), _pairs(row.refused), row.intent_at)


def _pairs(stored: Any) -> frozenset[Target]:
    return frozenset((str(obj), str(record_id)) for obj, record_id in stored or ())


def _rows(targets: Iterable[Target]) -> list[list[str]]:
    return [list(pair) for pair in sorted({(str(obj), str(record_id)) for obj, record_id in targets})]
