"""What the CRM may hold because we put it there: write intents and the values ``protect_edits`` counts as ours.

Before each CRM write call the pipeline records its *intents*
(:meth:`Intents.record_intents`): the values it is about to send. A worker
killed between the CRM's accepting a write and ``Ledger.record`` leaves no
``written`` attempt, but the intent still says the CRM's value is ours;
:meth:`Intents.protected_values` (and :meth:`~Intents.our_values`) give
``protect_edits`` both the last written value and the intents sent since.
``Ledger.record`` settles a field's intents (:func:`settle_intents`) in the
transaction that stores its ``written`` attempt.

A database before revision 0004 has no ``write_intents`` table: runs and
attempts are still recorded, intents are skipped with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from worker.report import SENT, FieldReport

from .engine import Database, chunks
from .rows import IntentRow, StoredIntentRow
from .schema import Attempt, WriteIntent, utcnow

__all__ = ["Intents", "settle_intents", "written_fields"]

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (record_id, field.lower())
Newest = dict[Key, tuple[int, datetime, Any]]  # the newest written attempt: (id, created_at, value)
#: Fields with a ``written`` line: (connection, object) -> record_id -> lower-cased fields.
Written = dict[tuple[str, str], dict[str, set[str]]]


class Intents(Database):
    """Write intents, and our values of CRM fields (written attempts and intents since)."""

    def _has_intents(self, conn: Connection) -> bool:
        """Whether the database has ``write_intents`` (revision 0004)."""
        return self._has_table(conn, WriteIntent.__tablename__)

    def record_intents(self, rows: Sequence[IntentRow]) -> None:
        """Store the values about to be sent to the CRM, all or nothing.

        Called just before each CRM write call (never for dry runs), so that a
        value the CRM accepted is known to be ours even if the worker dies
        before ``record`` stores its attempt. See :meth:`our_values`.
        """
        rows = list(rows)
        for i, row in enumerate(rows):
            if not isinstance(row, IntentRow):
                raise TypeError(f"rows[{i}] is not an IntentRow")
        if not rows:
            return
        now = utcnow()
        params = [
            {"connection": r.connection, "object": r.object, "record_id": r.record_id, "field": r.field,
             "value": r.value, "recording_id": r.recording_id, "created_at": now}
            for r in rows
        ]
        with self._write("recording write intents") as conn:
            if not self._has_intents(conn):
                log.warning("ledger %s predates write intents: run migrate()", self.display_url)
                return
            conn.execute(insert(WriteIntent), params)

    def intents(self) -> list[StoredIntentRow]:
        """Every stored intent, newest first."""
        stmt = select(*WriteIntent.__table__.c).order_by(WriteIntent.id.desc())
        with self._read("reading write intents") as conn:
            return [StoredIntentRow.of(row) for row in conn.execute(stmt)]

    def last_written(
        self, connection: str, object: str | None, record_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[Key, Any]:
        """The value we last wrote to each field, for ``protect_edits``.

        For every ``(record_id, field)`` among ``record_ids`` x ``fields`` that
        has an attempt with outcome ``written`` on this connection and object,
        the value of the newest such attempt (highest id, i.e. inserted last).
        Fields compare case-insensitively (``str.lower``); **keys are
        ``(record_id, field.lower())``** whatever the spelling asked or stored.
        Pairs never written are absent.
        """
        wanted = {f.lower() for f in fields}
        ids = list(dict.fromkeys(record_ids))
        if not wanted or not ids:
            return {}
        best: Newest = {}
        with self._read("reading last written values") as conn:
            for chunk in chunks(ids):
                _newest_written(conn, connection, object, chunk, wanted, best)
        return {key: value for key, (_, _, value) in best.items()}

    def our_values(
        self, connection: str, object: str | None, record_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[Key, list[Any]]:
        """The values each field may hold because we put them there, for ``protect_edits``.

        For every ``(record_id, field.lower())`` (keys as :meth:`last_written`):
        the value of the newest ``written`` attempt (when there is one) first,
        then the values of the intents recorded since that attempt (by
        ``created_at``), oldest first: sends whose attempt was never recorded
        (the worker died after the CRM accepted them) or not yet recorded.
        Pairs with neither are absent: we never wrote them.
        """
        return self.protected_values(connection, object, record_ids, fields)[0]

    def protected_values(
        self, connection: str, object: str | None, record_ids: Sequence[str], fields: Sequence[str]
    ) -> tuple[dict[Key, list[Any]], set[Key]]:
        """:meth:`our_values`, and the pairs among them with a ``written`` attempt,
        in one read (what ``protect_edits`` needs)."""
        wanted = {f.lower() for f in fields}
        ids = list(dict.fromkeys(record_ids))
        if not wanted or not ids:
            return {}, set()
        best: Newest = {}
        pending: dict[Key, list[tuple[int, datetime, Any]]] = {}
        with self._read("reading our values") as conn:
            for chunk in chunks(ids):
                # Intents first: one that a concurrent ``record`` settles
                # between the two reads then shows up as the written attempt.
                if object is not None and self._has_intents(conn):
                    _pending_intents(conn, connection, object, chunk, wanted, pending)
                _newest_written(conn, connection, object, chunk, wanted, best)
        return _ours(best, pending), set(best)


def _ours(best: Newest, pending: dict[Key, list[tuple[int, datetime, Any]]]) -> dict[Key, list[Any]]:
    """Per field: the newest written value, then the intents since it, oldest first."""
    found: dict[Key, list[Any]] = {}
    for key in best.keys() | pending.keys():
        values = []
        since = None
        if key in best:
            _, since, value = best[key]
            values.append(value)
        # ``record`` deletes the intents a written attempt replaces; the
        # time check also drops those that a worker without intents
        # (before revision 0004) left when it wrote the field.
        values.extend(
            value for _, at, value in sorted(pending.get(key, ()), key=lambda item: item[0])
            if since is None or at >= since
        )
        found[key] = values
    return found


def _pending_intents(
    conn: Connection, connection: str, object: str, record_ids: Sequence[str], wanted: set[str],
    pending: dict[Key, list[tuple[int, datetime, Any]]],
) -> None:
    """Into ``pending``: (id, created_at, value) of every stored intent of a wanted field."""
    stmt = select(
        WriteIntent.id, WriteIntent.record_id, WriteIntent.field, WriteIntent.value, WriteIntent.created_at,
    ).where(
        WriteIntent.connection == connection,
        WriteIntent.object == object,
        WriteIntent.record_id.in_(record_ids),
    )
    for row in conn.execute(stmt):
        key = (row.record_id, row.field.lower())
        if key[1] in wanted:
            pending.setdefault(key, []).append((row.id, row.created_at, row.value))


def _newest_written(
    conn: Connection, connection: str, object: str | None, record_ids: Sequence[str], wanted: set[str],
    best: Newest,
) -> None:
    """Into ``best``: (id, created_at, value) of the newest written attempt per wanted field."""
    scope = [
        Attempt.connection == connection,
        Attempt.object.is_(None) if object is None else Attempt.object == object,
        Attempt.record_id.in_(record_ids),
        Attempt.outcome.in_(sorted(SENT)),  # a value a revert put back is ours too
    ]
    # Newest written attempt per record and stored field spelling;
    # case folding happens here in Python (SQLite's lower() is
    # ASCII-only), over a handful of rows per record.
    newest = (
        select(func.max(Attempt.id).label("id"))
        .where(*scope)
        .group_by(Attempt.record_id, Attempt.field)
        .subquery()
    )
    stmt = select(Attempt.id, Attempt.record_id, Attempt.field, Attempt.value, Attempt.created_at).join(
        newest, Attempt.id == newest.c.id
    )
    for row in conn.execute(stmt):
        key = (row.record_id, row.field.lower())
        if key[1] in wanted and (key not in best or row.id > best[key][0]):
            best[key] = (row.id, row.created_at, row.value)


# --------------------------------------------------------------------------- #
# settling, inside Ledger.record's transaction


def written_fields(lines: Iterable[FieldReport]) -> Written:
    """The fields of ``lines`` recorded as ``written``: those whose intents :func:`settle_intents` deletes."""
    written: Written = {}
    for line in lines:
        if line.outcome in SENT and line.connection and line.object and line.record_id and line.field:
            fields = written.setdefault((line.connection, line.object), {}).setdefault(line.record_id, set())
            fields.add(line.field.lower())
    return written


def settle_intents(conn: Connection, written: Written) -> None:
    """Delete the intents of fields that a newer ``written`` attempt replaces.

    Same transaction as the attempts: every intent left in the table was
    inserted after the newest ``written`` attempt of its field, so
    ``our_values`` never needs an older one. Only ``written`` settles:
    an ``unchanged`` attempt is what a redelivered task records after a
    crash (the CRM already holds the value we sent and never recorded), and
    the intent is then the only evidence that the value is ours.
    """
    for (connection, object), targets in written.items():
        for chunk in chunks(list(targets)):
            stmt = select(WriteIntent.id, WriteIntent.record_id, WriteIntent.field).where(
                WriteIntent.connection == connection,
                WriteIntent.object == object,
                WriteIntent.record_id.in_(chunk),
            )
            # Fields compare case-insensitively, folded here (SQLite's lower() is ASCII-only).
            stale = [
                row.id for row in conn.execute(stmt) if row.field.lower() in targets.get(row.record_id, ())
            ]
            for ids in chunks(stale):
                conn.execute(delete(WriteIntent).where(WriteIntent.id.in_(ids)))
