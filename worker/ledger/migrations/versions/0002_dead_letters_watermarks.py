"""Dead letters and watermarks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

"""
from typing import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained on purpose: a migration must not change when schema.py does.


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("recording_id", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("recording_id", name=op.f("pk_dead_letters")),
    )
    op.create_index(
        op.f("ix_dead_letters_last_failed_at"), "dead_letters", ["last_failed_at"], unique=False
    )

    op.create_table(
        "watermarks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("watermarks")
    op.drop_index(op.f("ix_dead_letters_last_failed_at"), table_name="dead_letters")
    op.drop_table("dead_letters")
