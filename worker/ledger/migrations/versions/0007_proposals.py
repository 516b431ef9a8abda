"""Proposals: field values held for a person's review (policy ``review``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A field under the ``review`` policy whose value differs from the CRM's is not
sent: it becomes a proposal, which ``writeback review approve`` writes (after
a fresh read) or ``reject`` drops. One pending proposal per CRM record field
(a partial unique index); approved, rejected and superseded ones are kept, so
that a rejected value is not proposed again for the same recording version.
"""
from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained on purpose: a migration must not change when schema.py does.
_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_json = sa.JSON(none_as_null=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(length=255), nullable=False),
        sa.Column("object", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("value", _json, nullable=True),
        sa.Column("previous", _json, nullable=True),
        sa.Column("recording_id", sa.String(length=255), nullable=False),
        sa.Column("recording_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extraction", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposals")),
    )
    op.create_index("ix_proposals_target", "proposals", ["connection", "object", "record_id", "field", "status"])
    op.create_index("ix_proposals_status", "proposals", ["status", "id"])
    op.create_index("ux_proposals_pending", "proposals", ["connection", "object", "record_id", "field"],
                    unique=True, sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index("ux_proposals_pending", table_name="proposals")
    op.drop_index("ix_proposals_status", table_name="proposals")
    op.drop_index("ix_proposals_target", table_name="proposals")
    op.drop_table("proposals")
