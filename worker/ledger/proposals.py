"""Proposals: field values held for a person's review (the ``review`` policy, DESIGN §6).

One pending proposal per CRM record field (a partial unique index). Proposing
again for that field:

* from the same recording (a re-run): the proposal is kept, its value and
  version updated, never a second one;
* from a recording of a later conversation (``recorded_at``): the older
  proposal is ``superseded`` and the new one pending;
* from an earlier conversation: nothing is proposed (``Proposed.LATER_WAITS``).

``decide_proposals`` marks pending ones ``approved`` or ``rejected``; a
rejected value is remembered (``rejected_values``) so that the same value from
the same recording version is not proposed again. The CLI's ``writeback
review`` and the web console use these same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from .engine import Database, chunks
from .rows import ProposalRow
from .schema import Proposal, utcnow

__all__ = ["PENDING", "Proposals", "Proposed"]

PENDING, APPROVED, REJECTED, SUPERSEDED = "pending", "approved", "rejected", "superseded"


class Proposed(StrEnum):
    """What ``propose`` did with one value."""

    NEW = "new"  # a pending proposal now holds it (a new one, or a newer recording's superseding the old)
    KEPT = "kept"  # the same recording's pending proposal, updated (a re-run adds none)
    LATER_WAITS = "later_waits"  # a later conversation's proposal for that field is pending: left alone


class Proposals(Database):
    """Pending, approved, rejected and superseded proposals."""

    def propose(self, proposal: ProposalRow) -> tuple[Proposed, int]:
        """Hold ``proposal`` (its ``id``, ``status`` and times are ignored) for review; what was
        done, and the id of the pending proposal that holds the field now."""
        target = (Proposal.connection == proposal.connection, Proposal.object == proposal.object,
                  Proposal.record_id == proposal.record_id, Proposal.field == proposal.field)
        with self._write("holding a proposal") as conn:
            pending = conn.execute(select(Proposal).where(*target, Proposal.status == PENDING)).first()
            if pending is None:
                return Proposed.NEW, _insert(conn, proposal)
            if pending.recording_id == proposal.recording_id:
                conn.execute(update(Proposal).where(Proposal.id == pending.id).values(**_content(proposal)))
                return Proposed.KEPT, pending.id
            if _earlier(proposal.recorded_at, pending.recorded_at):
                return Proposed.LATER_WAITS, pending.id
            conn.execute(update(Proposal).where(Proposal.id == pending.id).values(
                status=SUPERSEDED, decided_at=utcnow(),
                reason=f"superseded by recording {proposal.recording_id}"))
            return Proposed.NEW, _insert(conn, proposal)

    def proposals(self, *, status: str | None = PENDING, ids: Sequence[int] | None = None) -> list[ProposalRow]:
        """Proposals with ``status`` (None: any), oldest first; only ``ids`` when given."""
        stmt = select(Proposal).order_by(Proposal.id)
        if status is not None:
            stmt = stmt.where(Proposal.status == status)
        found: list[ProposalRow] = []
        with self._read("reading proposals") as conn:
            if ids is None:
                return [ProposalRow.of(row) for row in conn.execute(stmt)]
            for chunk in chunks(list(dict.fromkeys(ids)), 500):
                found += [ProposalRow.of(row) for row in conn.execute(stmt.where(Proposal.id.in_(chunk)))]
        return sorted(found, key=lambda row: row.id)

    def decide_proposals(self, ids: Iterable[int], status: str, reason: str | None = None) -> list[int]:
        """Mark the pending ones among ``ids`` ``approved`` or ``rejected``; the ids it changed."""
        if status not in (APPROVED, REJECTED):
            raise ValueError(f"a proposal is approved or rejected, not {status!r}")
        wanted = list(dict.fromkeys(ids))
        changed: list[int] = []
        with self._write(f"marking proposals {status}") as conn:
            for chunk in chunks(wanted, 500):
                rows = conn.execute(select(Proposal.id).where(Proposal.id.in_(chunk), Proposal.status == PENDING))
                mine = [row.id for row in rows]
                if mine:
                    conn.execute(update(Proposal).where(Proposal.id.in_(mine)).values(
                        status=status, reason=reason, decided_at=utcnow()))
                changed += mine
        return changed

    def rejected_values(self, connection: str, object: str, record_ids: Sequence[str]) -> set[tuple[Any, ...]]:
        """``(record_id, field folded, recording_id, recording version, value)`` of every rejected
        proposal on these records: what is not proposed again."""
        found: set[tuple[Any, ...]] = set()
        with self._read("reading rejected proposals") as conn:
            for chunk in chunks(list(dict.fromkeys(record_ids)), 500):
                stmt = select(Proposal).where(Proposal.connection == connection, Proposal.object == object,
                                              Proposal.record_id.in_(chunk), Proposal.status == REJECTED)
                for row in conn.execute(stmt):
                    found.add(rejection_key(row.record_id, row.field, row.recording_id,
                                            row.recording_updated_at, row.value))
        return found


def rejection_key(record_id: str, field: str, recording_id: str, version: datetime | None,
                  value: Any) -> tuple[Any, ...]:
    """The identity of a rejected value (JSON values compared by their canonical text)."""
    import json

    stamp = version.isoformat() if version is not None else None
    return record_id, field.casefold(), recording_id, stamp, json.dumps(value, sort_keys=True, default=str)


def _content(proposal: ProposalRow) -> dict[str, Any]:
    return {"value": proposal.value, "previous": proposal.previous,
            "recording_updated_at": proposal.recording_updated_at, "recorded_at": proposal.recorded_at,
            "extraction": proposal.extraction}


def _insert(conn: Connection, proposal: ProposalRow) -> int:
    values = {"connection": proposal.connection, "object": proposal.object, "record_id": proposal.record_id,
              "field": proposal.field, "recording_id": proposal.recording_id, "status": PENDING, "reason": None,
              "created_at": utcnow(), "decided_at": None, **_content(proposal)}
    return int(conn.execute(insert(Proposal).values(**values)).inserted_primary_key[0])


def _earlier(new: datetime | None, pending: datetime | None) -> bool:
    """Whether the new proposal's conversation is earlier than the pending one's (unknown: not)."""
    return new is not None and pending is not None and new < pending
