"""Proposals: field values held for a person's review (the ``review`` policy, DESIGN §6).

One pending proposal per CRM record field (a partial unique index). Proposing
again for that field:

* from the same recording (a re-run): the proposal is kept, its value and
  version updated, never a second one;
* from a recording of a later conversation (``recorded_at``): the older
  proposal is ``superseded`` and the new one pending;
* from an earlier conversation: nothing is proposed (``Proposed.LATER_WAITS``).

Two workers proposing one field at once: the database refuses the second
insert, and the second proposes again against what the first stored.

A person's decision: ``claim_proposals`` takes pending ones for approval
(status ``approving``, so a concurrent reject, supersede or second approver
cannot act on them), ``finish_approval`` marks each ``approved`` once its value
is in the CRM or puts it back to ``pending``; a claim older than
``STALE_CLAIM`` (a process that died mid-approval) may be claimed again.
``decide_proposals`` rejects; a rejected value is remembered
(``rejected_values``) so the same value from the same recording version is
not proposed again. ``withdraw_proposals`` supersedes what a revert or a newer
conversation made moot. The CLI's ``writeback review`` and the web console
use these same functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .engine import Database, chunks
from .rows import ProposalRow
from .schema import Proposal, utcnow

__all__ = ["PENDING", "STALE_CLAIM", "Claim", "Proposals", "Proposed"]

PENDING, APPROVING, APPROVED, REJECTED, SUPERSEDED = "pending", "approving", "approved", "rejected", "superseded"
#: An approval claim older than this was left by a process that died: the proposal is pending again.
STALE_CLAIM = timedelta(minutes=10)
_CHUNK = 500


class Proposed(StrEnum):
    """What ``propose`` did with one value."""

    NEW = "new"  # a pending proposal now holds it (a new one, or a newer recording's superseding the old)
    KEPT = "kept"  # the same recording's proposal, updated while pending (a re-run adds none)
    LATER_WAITS = "later_waits"  # a later conversation's proposal for that field is pending: left alone


class Claim(StrEnum):
    """Why ``claim_proposals`` refused an id."""

    UNKNOWN = "unknown"
    NOT_PENDING = "not pending"


class Proposals(Database):
    """Pending, approving, approved, rejected and superseded proposals."""

    def propose(self, proposal: ProposalRow) -> tuple[Proposed, int]:
        """Hold ``proposal`` (its ``id``, ``status`` and times are ignored) for review; what was
        done, and the id of the proposal that holds the field now."""
        for attempt in range(3):
            try:
                with self._write("holding a proposal") as conn:
                    return _propose(conn, proposal)
            except sa_exc.IntegrityError:  # another process proposed for the field meanwhile
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def proposals(self, *, status: str | None = PENDING, ids: Sequence[int] | None = None) -> list[ProposalRow]:
        """Proposals with ``status`` (None: any), oldest first; only ``ids`` when given. ``PENDING``
        includes claims gone stale (``STALE_CLAIM``): what a person can act on."""
        stmt = select(Proposal).order_by(Proposal.id)
        if status == PENDING:
            stmt = stmt.where(_actionable())
        elif status is not None:
            stmt = stmt.where(Proposal.status == status)
        found: list[ProposalRow] = []
        with self._read("reading proposals") as conn:
            if ids is None:
                return [ProposalRow.of(row) for row in conn.execute(stmt)]
            for chunk in chunks(list(dict.fromkeys(ids)), _CHUNK):
                found += [ProposalRow.of(row) for row in conn.execute(stmt.where(Proposal.id.in_(chunk)))]
        return sorted(found, key=lambda row: row.id)

    def claim_proposals(self, ids: Sequence[int] | None = None) -> tuple[list[ProposalRow], dict[int, Claim]]:
        """Claim pending proposals (``ids``, or all) for approval, all or nothing: the claimed rows,
        or none and why each refused id was refused."""
        with self._write("claiming proposals") as conn:
            if ids is None:
                rows = list(conn.execute(select(Proposal).where(_actionable()).order_by(Proposal.id)))
            else:
                wanted = list(dict.fromkeys(ids))
                rows = [row for chunk in chunks(wanted, _CHUNK)
                        for row in conn.execute(select(Proposal).where(Proposal.id.in_(chunk)))]
                found = {row.id: row for row in rows}
                refused = {i: Claim.UNKNOWN for i in wanted if i not in found}
                refused |= {row.id: Claim.NOT_PENDING for row in rows if not _is_actionable(row)}
                if refused:
                    return [], refused
                rows = [found[i] for i in wanted]
            now = utcnow()
            for chunk in chunks([row.id for row in rows], _CHUNK):
                conn.execute(update(Proposal).where(Proposal.id.in_(chunk)).values(status=APPROVING, decided_at=now))
        return [ProposalRow.of(row) for row in rows], {}

    def finish_approval(self, approved: Iterable[int], failed: Iterable[int]) -> None:
        """Close a claim: ``approved`` ones are in the CRM; ``failed`` ones are pending again (or
        superseded, when a newer proposal for the field came meanwhile)."""
        with self._write("finishing an approval") as conn:
            for chunk in chunks(list(approved), _CHUNK):
                conn.execute(update(Proposal).where(Proposal.id.in_(chunk), Proposal.status == APPROVING).values(
                    status=APPROVED, reason="approved by a person (writeback review approve)", decided_at=utcnow()))
            for proposal_id in failed:
                row = conn.execute(select(Proposal).where(Proposal.id == proposal_id,
                                                          Proposal.status == APPROVING)).first()
                if row is None:
                    continue
                newer = conn.execute(select(Proposal.id).where(*_target(row), Proposal.status == PENDING)).first()
                values = ({"status": SUPERSEDED, "reason": f"superseded by proposal {newer.id}",
                           "decided_at": utcnow()} if newer else {"status": PENDING, "decided_at": None})
                conn.execute(update(Proposal).where(Proposal.id == proposal_id).values(**values))

    def decide_proposals(self, ids: Iterable[int], status: str, reason: str | None = None) -> list[int]:
        """Mark the pending ones among ``ids`` ``rejected`` (or ``approved``); the ids it changed."""
        if status not in (APPROVED, REJECTED):
            raise ValueError(f"a proposal is approved or rejected, not {status!r}")
        changed: list[int] = []
        with self._write(f"marking proposals {status}") as conn:
            for chunk in chunks(list(dict.fromkeys(ids)), _CHUNK):
                mine = list(conn.execute(select(Proposal.id).where(Proposal.id.in_(chunk), _actionable())).scalars())
                if mine:
                    conn.execute(update(Proposal).where(Proposal.id.in_(mine)).values(
                        status=status, reason=reason, decided_at=utcnow()))
                changed += mine
        return changed

    def withdraw_proposals(self, reason: str, *, recording_id: str | None = None, connection: str | None = None,
                           object: str | None = None, fields: Iterable[tuple[str, str, datetime | None]] = ()) -> int:
        """Supersede pending proposals made moot: every one of ``recording_id`` (reverted), or on
        ``connection``/``object`` each (record id, field, recorded_at) of ``fields`` from an
        earlier conversation (a newer one found the CRM as it says). How many."""
        done = 0
        with self._write("withdrawing proposals") as conn:
            if recording_id is not None:
                done += conn.execute(update(Proposal).where(Proposal.recording_id == recording_id, _actionable())
                                     .values(status=SUPERSEDED, reason=reason, decided_at=utcnow())).rowcount
            wanted: dict[tuple[str, str], datetime | None] = {}
            for record_id, field, recorded_at in fields:
                wanted[(record_id, field.casefold())] = recorded_at
            for chunk in chunks(sorted({record for record, _ in wanted}), _CHUNK):
                stmt = select(Proposal.id, Proposal.record_id, Proposal.field, Proposal.recorded_at).where(
                    Proposal.connection == connection, Proposal.object == object, Proposal.record_id.in_(chunk),
                    Proposal.status == PENDING)
                moot = [row.id for row in conn.execute(stmt)
                        if (row.record_id, row.field.casefold()) in wanted
                        and _earlier(row.recorded_at, wanted[(row.record_id, row.field.casefold())])]
                if moot:
                    done += conn.execute(update(Proposal).where(Proposal.id.in_(moot)).values(
                        status=SUPERSEDED, reason=reason, decided_at=utcnow())).rowcount
        return done

    def rejected_values(self, connection: str, object: str, record_ids: Sequence[str]) -> set[tuple[Any, ...]]:
        """``(record_id, field folded, recording_id, recording version, value)`` of every rejected
        proposal on these records: what is not proposed again."""
        found: set[tuple[Any, ...]] = set()
        with self._read("reading rejected proposals") as conn:
            for chunk in chunks(list(dict.fromkeys(record_ids)), _CHUNK):
                stmt = select(Proposal).where(Proposal.connection == connection, Proposal.object == object,
                                              Proposal.record_id.in_(chunk), Proposal.status == REJECTED)
                for row in conn.execute(stmt):
                    found.add(rejection_key(row.record_id, row.field, row.recording_id,
                                            row.recording_updated_at, row.value))
        return found


def rejection_key(record_id: str, field: str, recording_id: str, version: datetime | None,
                  value: Any) -> tuple[Any, ...]:
    """The identity of a rejected value: versions compared as instants (Siro may send any offset),
    JSON values by their canonical text."""
    stamp = version.astimezone(UTC).isoformat() if version is not None else None
    return record_id, field.casefold(), recording_id, stamp, json.dumps(value, sort_keys=True, default=str)


def _propose(conn: Connection, proposal: ProposalRow) -> tuple[Proposed, int]:
    target = _target(proposal)
    held = conn.execute(select(Proposal).where(*target, Proposal.status.in_((PENDING, APPROVING)))
                        .order_by(Proposal.id.desc())).all()
    pending = next((row for row in held if row.status == PENDING), None)
    claimed = next((row for row in held if row.status == APPROVING and row.recording_id == proposal.recording_id),
                   None)
    if pending is None and claimed is not None:  # a person is approving this recording's value right now
        return Proposed.KEPT, claimed.id
    if pending is None:
        return Proposed.NEW, _insert(conn, proposal)
    if pending.recording_id == proposal.recording_id:
        conn.execute(update(Proposal).where(Proposal.id == pending.id).values(**_content(proposal)))
        return Proposed.KEPT, pending.id
    if _earlier(proposal.recorded_at, pending.recorded_at):
        return Proposed.LATER_WAITS, pending.id
    conn.execute(update(Proposal).where(Proposal.id == pending.id, Proposal.status == PENDING).values(
        status=SUPERSEDED, decided_at=utcnow(), reason=f"superseded by recording {proposal.recording_id}"))
    return Proposed.NEW, _insert(conn, proposal)


def _target(row: Any) -> tuple[Any, ...]:
    return (Proposal.connection == row.connection, Proposal.object == row.object,
            Proposal.record_id == row.record_id, Proposal.field == row.field)


def _actionable() -> Any:
    """Pending, or claimed by an approval that died (``STALE_CLAIM``)."""
    return or_(Proposal.status == PENDING,
               and_(Proposal.status == APPROVING, Proposal.decided_at < utcnow() - STALE_CLAIM))


def _is_actionable(row: Any) -> bool:
    if row.status == PENDING:
        return True
    claimed = row.decided_at if row.decided_at is None or row.decided_at.tzinfo else row.decided_at.replace(tzinfo=UTC)
    return row.status == APPROVING and claimed is not None and claimed < utcnow() - STALE_CLAIM


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
