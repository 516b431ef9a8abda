"""What a revert needs from the history, and which recording versions stand reverted (DESIGN §6).

``writeback revert`` is a run like any other (trigger ``revert``, its lines
``reverted``); these reads interpret the runs and attempts already stored, so
a revert needs no table of its own:

* :meth:`Reverts.revert_targets`: every field a recording wrote, with the value
  the CRM held before the recording's first write, the value the recording
  last put there, and whether another recording wrote the field since;
* :meth:`Reverts.reverted_versions`: the version (``updatedAt``) at which each
  recording was reverted, while no later pass has written it again. The
  pipeline skips those versions (``skipped``, reason ``reverted``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from worker.report import SENT, Outcome, Status

from .engine import Database, chunks
from .rows import RevertTarget
from .runs import _aware
from .schema import Attempt, Run

__all__ = ["REVERT", "REVIEW", "Reverts"]

#: Triggers of runs that are not a pass of the pipeline over the recording: ``writeback revert``,
#: and ``writeback review approve`` (which writes a proposal's value).
REVERT, REVIEW = "revert", "review"
_WROTE = (Status.OK.value, Status.PARTIAL.value)
#: A revert that put a field back, found it back already, or left a later change: it stands.
_SETTLED = (Outcome.REVERTED.value, Outcome.UNCHANGED.value, Outcome.SKIPPED_POLICY.value)

Key = tuple[str, str, str, str]  # connection, object, record_id, field folded


class Reverts(Database):
    """Reads for ``writeback revert`` and for the pipeline's reverted-version check."""

    def revert_targets(self, recording_id: str) -> list[RevertTarget]:
        """Every field ``recording_id`` wrote (in the order first written); none if it never wrote."""
        first: dict[Key, Any] = {}  # the ``previous`` of the first written attempt
        last: dict[Key, tuple[int, Any, str, str]] = {}  # (attempt id, value, outcome, field as stored)
        extraction: dict[Key, str | None] = {}  # of the last written attempt
        stmt = (
            select(Attempt.id, Attempt.connection, Attempt.object, Attempt.record_id, Attempt.field,
                   Attempt.value, Attempt.previous, Attempt.outcome, Attempt.extraction)
            .join(Run, Run.id == Attempt.run_id)
            .where(Attempt.recording_id == recording_id, Attempt.outcome.in_(sorted(SENT)),
                   Run.dry_run.is_(False))
            .order_by(Attempt.id)
        )
        with self._read("reading what a recording wrote") as conn:
            for row in conn.execute(stmt):
                if not (row.connection and row.object and row.record_id and row.field):
                    continue
                key = (row.connection, row.object, row.record_id, row.field.casefold())
                if row.outcome == Outcome.WRITTEN.value:
                    first.setdefault(key, row.previous)
                    extraction[key] = row.extraction
                last[key] = (row.id, row.value, row.outcome, row.field)
            later = self._written_since(conn, recording_id, {key: last[key][0] for key in first})
        return [
            RevertTarget(key[0], key[1], key[2], last[key][3], previous, last[key][1],
                         last[key][2] == Outcome.REVERTED.value, later.get(key), extraction.get(key))
            for key, previous in first.items()
        ]

    @staticmethod
    def _written_since(conn: Any, recording_id: str, since: dict[Key, int]) -> dict[Key, str]:
        """For each field, another recording whose value it holds since attempt ``since[key]``: one
        whose newest put on the field after ours is a write (not its own revert)."""
        newest: dict[tuple[Key, str], tuple[int, str]] = {}  # (field, other recording) -> (attempt id, outcome)
        by_object: dict[tuple[str, str], list[str]] = {}
        for connection, object_name, record_id, _ in since:
            by_object.setdefault((connection, object_name), []).append(record_id)
        for (connection, object_name), record_ids in by_object.items():
            for chunk in chunks(list(dict.fromkeys(record_ids))):
                stmt = select(Attempt.id, Attempt.record_id, Attempt.field, Attempt.recording_id,
                              Attempt.outcome).where(
                    Attempt.connection == connection, Attempt.object == object_name,
                    Attempt.record_id.in_(chunk), Attempt.outcome.in_(sorted(SENT)),
                    Attempt.recording_id != recording_id,
                )
                for row in conn.execute(stmt):
                    key = (connection, object_name, row.record_id, (row.field or "").casefold())
                    mine = (key, row.recording_id)
                    if key in since and row.id > since[key] and (mine not in newest or row.id > newest[mine][0]):
                        newest[mine] = (row.id, row.outcome)
        found: dict[Key, str] = {}
        for (key, other), (_, outcome) in sorted(newest.items(), key=lambda item: item[1][0]):
            if outcome == Outcome.WRITTEN.value:
                found[key] = other  # the latest such writer names the field
        return found

    def reverted_versions(self, recording_ids: Sequence[str]) -> dict[str, datetime]:
        """The version (``updatedAt``) each recording was reverted at, while the revert stands.

        A finished, real run with trigger ``revert`` that settled a field (``reverted``, already
        ``unchanged``, or left ``edited_since``; not one that only failed, or planned in shadow
        mode) counts until a later pass of the pipeline writes the recording again (``sync
        --force``, or a newer version: status ``ok`` or ``partial``). A revert run without a known
        version stands for every version up to its start. Recordings never reverted, or written
        again since, are absent.
        """
        found: dict[str, datetime] = {}
        with self._read("reading reverted versions") as conn:
            for chunk in chunks(list(dict.fromkeys(recording_ids))):
                stmt = (
                    select(Run.id, Run.recording_id, Run.trigger, Run.recording_updated_at, Run.started_at)
                    .where(Run.recording_id.in_(chunk), Run.dry_run.is_(False), Run.status.in_(_WROTE))
                    .order_by(Run.id)
                )
                runs = list(conn.execute(stmt))
                settled = self._settling_runs(conn, [run.id for run in runs if run.trigger == REVERT])
                for run in runs:
                    if run.trigger == REVERT and run.id in settled:
                        found[run.recording_id] = _aware(run.recording_updated_at or run.started_at)
                    elif run.trigger not in (REVERT, REVIEW):  # the pipeline wrote the recording again since
                        found.pop(run.recording_id, None)
        return found

    @staticmethod
    def _settling_runs(conn: Any, run_ids: list[int]) -> set[int]:
        """The revert runs among ``run_ids`` that settled at least one field."""
        settled: set[int] = set()
        for chunk in chunks(run_ids):
            stmt = select(Attempt.run_id).where(Attempt.run_id.in_(chunk), Attempt.outcome.in_(_SETTLED)).distinct()
            settled.update(conn.execute(stmt).scalars())
        return settled
