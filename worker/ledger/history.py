"""The history an operator reads (``writeback history``, DESIGN §6): by recording, and by CRM record.

Both reads stay index lookups however long the ledger grows (revision 0006;
``bench/history.py`` times them on a million attempts):

* :meth:`History.history` (one recording): its runs through an index of
  ``runs.recording_id`` (a handful of rows, sorted), then its attempts
  through ``ix_attempts_recording_history`` (``recording_id, id``) in id
  order, handed to their runs in Python, with each run's note outcomes
  (``Notes.note_lines``, an index of ``note_attempts.recording_id``);
* :meth:`History.recent_runs` (every recording, a page at a time, for the
  console): the runs by primary key, keyset-paged on the id, then their
  attempts through the index on ``attempts.run_id``, counted in the database;
* :meth:`History.record_history` (one CRM record, maybe one field): its
  attempts through ``ix_attempts_record_history`` (``connection, object,
  record_id, field, id``), joined to their runs for the trigger. With a
  field, the index's rows are already newest first; without one, the
  database sorts the record's own rows.

Fields are stored as the CRM spells them (or as a Siro mapping did, for a
field the CRM lacks) and compared case-insensitively, as everywhere in the
ledger: the record's stored spellings are read first (an index-only scan, a
handful of names), folded here (SQLite's ``lower()`` is ASCII-only), and the
attempts of the matching spellings are read by equality.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from .notes import Notes
from .rows import (
    AttemptRow,
    RecordHistoryRow,
    RunHistory,
    RunRow,
    RunsPage,
    RunSummary,
    check_str,
)
from .schema import Attempt, NoteAttempt, Run

__all__ = ["History"]

RUNS_PAGE = 50
MAX_RUNS_PAGE = 500


class History(Notes):
    """The two history reads: every run of a recording, every outcome on a CRM record."""

    def history(self, recording_id: str) -> list[RunHistory]:
        """Every run of ``recording_id``, newest first, each with its attempts in the order they
        were recorded. A recording the ledger never saw has no runs (``[]``)."""
        check_str(recording_id, "recording_id")
        runs_stmt = select(*Run.__table__.c).where(Run.recording_id == recording_id).order_by(Run.id.desc())
        attempts_stmt = (
            select(*Attempt.__table__.c).where(Attempt.recording_id == recording_id).order_by(Attempt.id)
        )
        with self._read("reading a recording's history") as conn:
            runs = [RunRow.of(row) for row in conn.execute(runs_stmt)]
            if not runs:
                return []
            by_run: dict[int, list[AttemptRow]] = {run.id: [] for run in runs}
            for row in conn.execute(attempts_stmt):
                # A run started after the runs were read is left out, with its attempts.
                if row.run_id in by_run:
                    by_run[row.run_id].append(AttemptRow.of(row))
        notes = self.note_lines(recording_id)
        return [RunHistory(run, tuple(by_run[run.id]), tuple(notes.get(run.id, ()))) for run in runs]

    def recent_runs(self, *, before: int | None = None, limit: int = RUNS_PAGE) -> RunsPage:
        """Runs of every recording, newest first, ``limit`` to a page (``before``: the last id of the
        previous page), each with its fields counted by outcome and the connections they were on."""
        limit = max(1, min(limit, MAX_RUNS_PAGE))
        stmt = select(*Run.__table__.c).order_by(Run.id.desc()).limit(limit + 1)
        if before is not None:
            stmt = stmt.where(Run.id < before)
        with self._read("reading recent runs") as conn:
            rows = [RunRow.of(row) for row in conn.execute(stmt)]
            page, more = rows[:limit], len(rows) > limit
            counts: dict[int, Counter] = {run.id: Counter() for run in page}
            notes: dict[int, Counter] = {}
            connections: dict[int, set[str]] = {run.id: set() for run in page}
            if page:
                count_stmt = (
                    select(Attempt.run_id, Attempt.outcome, Attempt.connection, func.count())
                    .where(Attempt.run_id.in_(list(counts)))
                    .group_by(Attempt.run_id, Attempt.outcome, Attempt.connection)
                )
                for run_id, outcome, connection, n in conn.execute(count_stmt):
                    counts[run_id][outcome] += n
                    if connection:
                        connections[run_id].add(connection)
                notes = self._note_counts(conn, list(counts))
        summaries = [RunSummary(run, counts[run.id], tuple(sorted(connections[run.id])), notes.get(run.id, Counter()))
                     for run in page]
        return RunsPage(summaries, page[-1].id if more else None)

    def _note_counts(self, conn: Connection, run_ids: list[int]) -> dict[int, Counter]:
        """Each run's summary notes by outcome (``note_attempts``, through its ``run_id`` index)."""
        if not self._has_table(conn, NoteAttempt.__tablename__):
            return {}
        stmt = (select(NoteAttempt.run_id, NoteAttempt.outcome, func.count())
                .where(NoteAttempt.run_id.in_(run_ids)).group_by(NoteAttempt.run_id, NoteAttempt.outcome))
        found: dict[int, Counter] = {}
        for run_id, outcome, n in conn.execute(stmt):
            found.setdefault(run_id, Counter())[outcome] += n
        return found

    def record_history(
        self, connection: str, object: str, record_id: str, field: str | None = None
    ) -> list[RecordHistoryRow]:
        """Every attempt on one CRM record (all recordings), newest first, each with its run's
        trigger; only those of ``field`` (any case) when given. Unknown records have none."""
        for value, name in ((connection, "connection"), (object, "object"), (record_id, "record_id")):
            check_str(value, name)
        if field is not None:
            check_str(field, "field")
        scope = [Attempt.connection == connection, Attempt.object == object, Attempt.record_id == record_id]
        with self._read("reading a record's history") as conn:
            if field is not None:
                spellings = _spellings(conn, scope, field)
                if not spellings:
                    return []
                scope.append(Attempt.field == spellings[0] if len(spellings) == 1 else Attempt.field.in_(spellings))
            stmt = (
                select(*Attempt.__table__.c, Run.trigger.label("run_trigger"))
                .join(Run, Run.id == Attempt.run_id)
                .where(*scope)
                .order_by(Attempt.id.desc())
            )
            return [RecordHistoryRow(AttemptRow.of(row), row.run_trigger) for row in conn.execute(stmt)]


def _spellings(conn: Connection, scope: list[Any], field: str) -> list[str]:
    """The spellings of ``field`` (compared case-insensitively) stored on the record in ``scope``."""
    wanted = field.casefold()
    stored = conn.execute(select(Attempt.field).where(*scope).distinct()).scalars()
    return sorted(name for name in stored if name is not None and name.casefold() == wanted)
