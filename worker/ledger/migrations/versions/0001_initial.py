"""Initial ledger: runs and field attempts.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

"""
from typing import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained on purpose: a migration must not change when schema.py does.
_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# JSON on PostgreSQL; JSON text with TEXT affinity on SQLite (a column declared
# JSON gets NUMERIC affinity there, which turns '12500.0' into 12500).
_json = sa.JSON(none_as_null=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("recording_id", sa.String(length=255), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_recording_id"), "runs", ["recording_id"], unique=False)

    op.create_table(
        "attempts",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("run_id", _id, nullable=False),
        sa.Column("recording_id", sa.String(length=255), nullable=False),
        sa.Column("connection", sa.String(length=255), nullable=True),
        sa.Column("object", sa.String(length=255), nullable=True),
        sa.Column("record_id", sa.String(length=255), nullable=True),
        sa.Column("field", sa.String(length=255), nullable=True),
        sa.Column("value", _json, nullable=True),
        sa.Column("previous", _json, nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("extraction", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"],
            name=op.f("fk_attempts_run_id_runs"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
    )
    op.create_index(op.f("ix_attempts_run_id"), "attempts", ["run_id"], unique=False)
    op.create_index(op.f("ix_attempts_recording_id"), "attempts", ["recording_id"], unique=False)
    op.create_index(
        op.f("ix_attempts_target"),
        "attempts",
        ["connection", "object", "record_id", "field"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_attempts_target"), table_name="attempts")
    op.drop_index(op.f("ix_attempts_recording_id"), table_name="attempts")
    op.drop_index(op.f("ix_attempts_run_id"), table_name="attempts")
    op.drop_table("attempts")
    op.drop_index(op.f("ix_runs_recording_id"), table_name="runs")
    op.drop_table("runs")
