"""Write intents: what a worker is about to send, recorded before it sends.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

An attempt is recorded after the CRM answered. A worker killed in between
leaves the CRM holding a value that no ``written`` attempt names, and
``protect_edits`` would take our own value for a person's edit. An intent row,
written just before each CRM write call, names that value: ``Ledger.our_values``
counts it as ours until a newer ``written`` attempt of the field replaces it
(``Ledger.record`` then deletes it).
"""
from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained on purpose: a migration must not change when schema.py does.
_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# JSON on PostgreSQL; JSON text with TEXT affinity on SQLite (see 0001).
_json = sa.JSON(none_as_null=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "write_intents",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(length=255), nullable=False),
        sa.Column("object", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("value", _json, nullable=True),
        sa.Column("recording_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_write_intents")),
    )
    op.create_index(
        "ix_write_intents_target",
        "write_intents",
        ["connection", "object", "record_id", "field"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_write_intents_target", table_name="write_intents")
    op.drop_table("write_intents")
