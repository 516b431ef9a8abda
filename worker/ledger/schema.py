"""Ledger tables (SQLAlchemy 2 declarative).

Five tables:

``runs``
    One row per pipeline run of one recording (a ``writeback sync``, a webhook
    task, a poll page's pass over that recording). ``status`` is ``running``
    from :meth:`Ledger.start_run` until :meth:`Ledger.finish_run` sets one of
    ``ok`` / ``partial`` / ``skipped`` / ``failed``.

``attempts``
    One row per planned field and run: what we meant to write, what the CRM
    held before (``previous``) and the outcome the CRM gave us.

``dead_letters`` (revision 0002)
    One row per recording that the workers gave up on (retries exhausted, or a
    permanent error such as an expired CRM session: ``reason`` ``auth``),
    keyed by ``recording_id``. ``error`` is a one-line message without
    secrets; ``trigger`` is what started the last failed task (``webhook`` /
    ``poll`` / ``backfill`` / ``cli`` / ``retry``); ``attempts`` how many task
    attempts it spent; ``failures`` how many times it was dead-lettered
    (an upsert increments it and keeps ``first_failed_at``). ``writeback
    failed`` lists them, ``writeback retry`` re-enqueues and removes them.

``watermarks`` (revision 0002)
    Named high-water marks (``poll``): the newest ``updatedAt`` a polling
    pass has fully handed over. :meth:`Ledger.advance_watermark` only ever
    moves ``value`` forwards; ``updated_at`` is when it was last advanced.

``write_intents`` (revision 0004)
    One row per field a worker is about to send, written just before the CRM
    write call (:meth:`Ledger.record_intents`): the value we may have put in
    the CRM even when the worker dies before its attempt is recorded.
    :meth:`Ledger.our_values` counts it as ours for ``protect_edits``;
    :meth:`Ledger.record` deletes a field's intents when it records a
    ``written`` attempt of that field, so the table holds only the few sends
    whose outcome never became a ``written`` row.

The schema is owned by the Alembic migrations in ``migrations/versions``; these
classes describe it for queries, and ``tests/test_ledger.py`` checks that the
two agree. A change adds its tables here *and* in a new migration.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Attempt",
    "Base",
    "DeadLetter",
    "Proposal",
    "Run",
    "UTCDateTime",
    "Watermark",
    "WriteIntent",
    "metadata",
    "utcnow",
]

# Deterministic constraint names, so later migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware UTC.

    PostgreSQL stores ``timestamp with time zone``; SQLite stores text without
    an offset and returns naive datetimes, which are UTC by construction here.
    Naive datetimes are refused on the way in: their zone is a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("ledger timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite keeps the wall-clock fields only: hand it UTC, naive.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# BIGINT identities on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the
# auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

class JSONValue(TypeDecorator[Any]):
    """A JSON value that reads back exactly as written, on every backend.

    PostgreSQL: SQLAlchemy's ``JSON`` (``json``, which keeps the text as sent).
    SQLite: JSON text in a ``TEXT`` column. SQLAlchemy's ``JSON`` would declare
    the column ``JSON``, which SQLite gives NUMERIC affinity: the text
    ``12500.0`` would come back as the integer ``12500`` and ``2**70`` as a
    rounded float.

    ``None`` is stored as SQL NULL (not the JSON text ``null``).
    """

    impl = JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return None if value is None else json.dumps(value, allow_nan=False)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if dialect.name == "sqlite" and value is not None:
            return json.loads(value)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(String(255), index=True)
    trigger: Mapped[str] = mapped_column(String(32))
    dry_run: Mapped[bool] = mapped_column(Boolean(create_constraint=False), default=False)
    status: Mapped[str] = mapped_column(String(16), default="running")
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The recording's updatedAt as processed (null when unknown, e.g. not found).
    recording_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_runs_recording_version", "recording_id", "recording_updated_at"),)


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    recording_id: Mapped[str] = mapped_column(String(255))
    # Null when no connection matched the recording (outcome failed, no_connection).
    connection: Mapped[str | None] = mapped_column(String(255))
    object: Mapped[str | None] = mapped_column(String(255))
    record_id: Mapped[str | None] = mapped_column(String(255))
    # Null only for a Siro mapping that named no field.
    field: Mapped[str | None] = mapped_column(String(255))
    value: Mapped[Any] = mapped_column(JSONValue(), nullable=True)
    previous: Mapped[Any] = mapped_column(JSONValue(), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    extraction: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # Revision 0006: ending in id, so history reads them newest first off the index.
        Index("ix_attempts_record_history", "connection", "object", "record_id", "field", "id"),
        Index("ix_attempts_recording_history", "recording_id", "id"),
    )


class DeadLetter(Base):
    __tablename__ = "dead_letters"

    recording_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64))
    # The connection it failed on (revision 0005); null when never known.
    connection: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(Integer)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Watermark(Base):
    __tablename__ = "watermarks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WriteIntent(Base):
    __tablename__ = "write_intents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    connection: Mapped[str] = mapped_column(String(255))
    object: Mapped[str] = mapped_column(String(255))
    record_id: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(255))
    # The canonical JSON value about to be sent (null: a write_nulls clear).
    value: Mapped[Any] = mapped_column(JSONValue(), nullable=True)
    recording_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_write_intents_target", "connection", "object", "record_id", "field"),)


class Proposal(Base):
    """A field value held for a person's review (revision 0007); see ``worker.ledger.proposals``."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    connection: Mapped[str] = mapped_column(String(255))
    object: Mapped[str] = mapped_column(String(255))
    record_id: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(255))
    value: Mapped[Any] = mapped_column(JSONValue(), nullable=True)  # the coerced value, as JSON
    previous: Mapped[Any] = mapped_column(JSONValue(), nullable=True)  # the CRM's value when proposed
    recording_id: Mapped[str] = mapped_column(String(255))
    recording_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the recording version
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when the conversation was recorded
    extraction: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | rejected | superseded
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_proposals_target", "connection", "object", "record_id", "field", "status"),
        Index("ix_proposals_status", "status", "id"),
        Index("ux_proposals_pending", "connection", "object", "record_id", "field", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )


class Note(Base):
    """A recording's summary note on one connection (revision 0008); see ``worker.ledger.notes``."""

    __tablename__ = "notes"

    recording_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    connection: Mapped[str] = mapped_column(String(255), primary_key=True)
    object: Mapped[str] = mapped_column(String(255))  # the CRM's note object (ContentNote, notes)
    note_id: Mapped[str | None] = mapped_column(String(255))  # null until the CRM has answered a create
    content_hash: Mapped[str | None] = mapped_column(String(64))  # of the title and body the CRM holds
    attached: Mapped[Any] = mapped_column(JSONValue(), nullable=True)  # [[object, record_id], ...]
    # Records the CRM would not attach the note to (deleted): not asked again until the content changes.
    refused: Mapped[Any] = mapped_column(JSONValue(), nullable=True)
    # Set just before a CRM call that may create the note; cleared when its answer is stored. A note
    # whose intent is still set was maybe created by a worker that died: look it up before creating.
    intent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A run writing the note holds it until then (a task's hard time limit): a second run waits.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(32))  # whose claim it is
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_notes_note_id", "connection", "note_id"),)


class NoteAttempt(Base):
    """One run's outcome for a recording's note (revision 0008): the report's ``notes`` line, kept."""

    __tablename__ = "note_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    recording_id: Mapped[str] = mapped_column(String(255), index=True)
    connection: Mapped[str] = mapped_column(String(255))
    object: Mapped[str | None] = mapped_column(String(255))
    note_id: Mapped[str | None] = mapped_column(String(255))
    attached: Mapped[Any] = mapped_column(JSONValue(), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
