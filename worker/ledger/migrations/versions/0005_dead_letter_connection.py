"""Dead letters name their connection.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

An operator reading ``writeback failed`` needs to know which CRM connection a
recording failed on (credentials are per connection, and so are config
mistakes). Null for a recording whose connection was never known (Siro could
not serve it) and for rows written before this revision.
"""
from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("connection", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("connection")
