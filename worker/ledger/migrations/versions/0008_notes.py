"""Notes: a recording's summary as one CRM note per connection (DESIGN §7).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

``notes`` keeps, per (recording, connection), the CRM id of the note, a hash
of the content the CRM holds and the records it is attached to, so the same
summary sends nothing and a changed one updates the note in place (``refused``:
the records the CRM would not attach it to, tried again only with new content);
``intent_at`` is set before a call that may create the note, so a worker
killed before the answer is stored looks the note up instead of creating a
second one, and ``claimed_until`` keeps two runs from writing one note at once. ``note_attempts`` keeps each run's note outcome for the history.
"""
from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained on purpose: a migration must not change when schema.py does.
_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_json = sa.JSON(none_as_null=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("recording_id", sa.String(length=255), nullable=False),
        sa.Column("connection", sa.String(length=255), nullable=False),
        sa.Column("object", sa.String(length=255), nullable=False),
        sa.Column("note_id", sa.String(length=255), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("attached", _json, nullable=True),
        sa.Column("refused", _json, nullable=True),
        sa.Column("intent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("recording_id", "connection", name=op.f("pk_notes")),
    )
    op.create_index("ix_notes_note_id", "notes", ["connection", "note_id"])
    op.create_table(
        "note_attempts",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("run_id", _id, nullable=False),
        sa.Column("recording_id", sa.String(length=255), nullable=False),
        sa.Column("connection", sa.String(length=255), nullable=False),
        sa.Column("object", sa.String(length=255), nullable=True),
        sa.Column("note_id", sa.String(length=255), nullable=True),
        sa.Column("attached", _json, nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_note_attempts_run_id_runs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_note_attempts")),
    )
    op.create_index(op.f("ix_note_attempts_run_id"), "note_attempts", ["run_id"])
    op.create_index(op.f("ix_note_attempts_recording_id"), "note_attempts", ["recording_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_note_attempts_recording_id"), table_name="note_attempts")
    op.drop_index(op.f("ix_note_attempts_run_id"), table_name="note_attempts")
    op.drop_table("note_attempts")
    op.drop_index("ix_notes_note_id", table_name="notes")
    op.drop_table("notes")
