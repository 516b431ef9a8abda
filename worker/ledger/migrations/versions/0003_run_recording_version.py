"""Runs remember which version of the recording they wrote.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

A page task carries the recordings as they were listed; by the time it runs, a
webhook may already have written a newer version. ``runs.recording_updated_at``
(the recording's ``updatedAt`` as processed) lets the pipeline skip the older
snapshot instead of writing its values over the newer ones.
"""
from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("recording_updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_runs_recording_version", "runs", ["recording_id", "recording_updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_recording_version", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("recording_updated_at")
