"""The history: runs, and the outcome of every planned field in each run (attempts).

A run is one pipeline pass over one recording (a ``writeback sync``, a
webhook task, a poll page's pass over that recording): :meth:`Runs.start_run`
opens it (``running``), :meth:`Runs.record` stores its field outcomes, the
pipeline's own ``FieldReport`` lines (values through ``to_json``), and
:meth:`Runs.finish_run` closes it with a :class:`Status`. Reads give
:class:`RunRow` and :class:`AttemptRow` (which carries its ``FieldReport``),
newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from worker.report import FieldReport, Outcome, Status, to_json

from .engine import Database, chunks
from .intents import settle_intents, written_fields
from .rows import AttemptRow, RunRow, check_json, check_str
from .schema import Attempt, Run, WriteIntent, utcnow

__all__ = ["Runs"]

#: The statuses ``finish_run`` takes (``running`` is only ever the start).
FINAL_STATUSES = tuple(status for status in Status if status is not Status.RUNNING)
_TEXT_COLUMNS = ("connection", "object", "record_id", "field", "reason", "extraction")


class Runs(Database):
    """Runs and their field attempts."""

    def start_run(
        self, recording_id: str, *, trigger: str, dry_run: bool = False, recording_updated_at: datetime | None = None
    ) -> int:
        """Open a run (status ``running``) and return its id.

        ``recording_updated_at``: the recording's ``updatedAt`` as processed
        (see :meth:`newest_versions`).
        """
        check_str(recording_id, "recording_id")
        check_str(trigger, "trigger", 32)
        if not isinstance(dry_run, bool):
            raise TypeError("dry_run must be a bool")
        values: dict[str, Any] = {
            "recording_id": recording_id, "trigger": trigger, "dry_run": dry_run,
            "status": Status.RUNNING.value, "reason": None, "started_at": utcnow(), "finished_at": None,
        }
        if recording_updated_at:  # named only when known: a run without it stays writable on a 0002 schema
            values["recording_updated_at"] = recording_updated_at
        with self._write("starting a run") as conn:
            return int(conn.execute(insert(Run).values(**values)).inserted_primary_key[0])

    def record(self, run_id: int, recording_id: str, lines: Sequence[FieldReport]) -> None:
        """Store the outcomes of a run's fields, all or nothing.

        Every line is checked before anything is written: a ``FieldReport``
        whose ``outcome`` is an :class:`Outcome`, whose text columns are str
        or None and whose ``value`` and ``previous`` are JSON values once
        through ``to_json``. ``recording_id`` must be the run's recording
        (``LookupError`` if the run does not exist, ``ValueError`` if it is
        another recording's). A ``written`` line settles its field's intents.
        """
        check_str(recording_id, "recording_id")
        lines = list(lines)
        params = [_attempt_values(i, line) for i, line in enumerate(lines)]
        if not params:
            return
        now = utcnow()
        for values in params:
            values.update(run_id=run_id, recording_id=recording_id, created_at=now)
        written = written_fields(lines)
        with self._write("recording attempts") as conn:
            _check_owner(conn, run_id, recording_id)
            conn.execute(insert(Attempt), params)
            if written and self._has_table(conn, WriteIntent.__tablename__):
                settle_intents(conn, written)

    def finish_run(self, run_id: int, status: Status | str, reason: str | None = None) -> None:
        """Close a run with ``ok``/``partial``/``skipped``/``failed`` (again: overwrites)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"unknown run status {status!r}; one of {[str(s) for s in FINAL_STATUSES]}")
        if reason is not None and not isinstance(reason, str):
            raise TypeError("reason must be a str or None")
        with self._write("finishing a run") as conn:
            result = conn.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(status=Status(status).value, reason=reason, finished_at=utcnow())
            )
            if result.rowcount == 0:
                raise LookupError(f"no run {run_id} in the ledger")

    # -- reads ------------------------------------------------------------- #

    def runs(self, recording_id: str | None = None, *, limit: int | None = None) -> list[RunRow]:
        """Runs, newest first (all recordings unless one is given)."""
        return [RunRow.of(row) for row in self._newest_first(Run, "runs", recording_id, limit)]

    def attempts(self, recording_id: str | None = None, *, limit: int | None = None) -> list[AttemptRow]:
        """Field attempts, newest first (all recordings unless one is given)."""
        return [AttemptRow.of(row) for row in self._newest_first(Attempt, "attempts", recording_id, limit)]

    def _newest_first(self, table: Any, what: str, recording_id: str | None, limit: int | None) -> list[Any]:
        stmt = select(*table.__table__.c).order_by(table.id.desc())
        if recording_id is not None:
            stmt = stmt.where(table.recording_id == recording_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read(f"reading {what}") as conn:
            return list(conn.execute(stmt))

    def newest_versions(self, recording_ids: Sequence[str]) -> dict[str, datetime]:
        """The newest ``updatedAt`` of each recording that a finished, real (not
        dry) run processed; recordings never processed are absent."""
        found: dict[str, datetime] = {}
        with self._read("reading processed versions") as conn:
            for chunk in chunks(list(dict.fromkeys(recording_ids))):
                stmt = (
                    select(Run.recording_id, func.max(Run.recording_updated_at))
                    # A failed run counts too: its version is retried or on the dead-letter
                    # list, and an older snapshot must not be written in the meantime.
                    .where(Run.recording_id.in_(chunk), Run.status != Status.RUNNING.value,
                           Run.dry_run.is_(False), Run.recording_updated_at.is_not(None))
                    .group_by(Run.recording_id)
                )
                for recording_id, newest in conn.execute(stmt):
                    if newest is not None:
                        found[recording_id] = _aware(newest)
        return found


def _aware(value: datetime | str) -> datetime:
    """max() keeps the column's type on PostgreSQL; SQLite may hand back naive text (UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _attempt_values(i: int, line: Any) -> dict[str, Any]:
    """The ``attempts`` columns of report line ``i``, checked (``TypeError``/``ValueError``)."""
    if not isinstance(line, FieldReport):
        raise TypeError(f"lines[{i}] is not a FieldReport")
    for name in _TEXT_COLUMNS:
        text = getattr(line, name)
        if text is not None and not isinstance(text, str):
            raise TypeError(f"lines[{i}].{name} must be a str or None, got {text!r}")
    try:
        outcome = Outcome(line.outcome)
    except ValueError:
        raise ValueError(f"lines[{i}]: unknown outcome {line.outcome!r}") from None
    values = {name: getattr(line, name) for name in _TEXT_COLUMNS}
    values.update(value=to_json(line.value), previous=to_json(line.previous), outcome=outcome.value)
    check_json(values["value"], f"lines[{i}].value")
    check_json(values["previous"], f"lines[{i}].previous")
    return values


def _check_owner(conn: Connection, run_id: int, recording_id: str) -> None:
    owner = conn.execute(select(Run.recording_id).where(Run.id == run_id)).scalar()
    if owner is None:
        raise LookupError(f"no run {run_id} in the ledger")
    if owner != recording_id:
        raise ValueError(f"run {run_id} belongs to recording {owner!r}, not {recording_id!r}")
