"""Attempts indexes that end in ``id``, for ``writeback history``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

``writeback history`` lists attempts newest first, by recording and by CRM
record (and field). The indexes of 0001 found those rows but not in that
order; each is replaced by the same columns followed by ``id``, so the rows
come off the index in id order (PostgreSQL sorts nothing; SQLite already
ends every index with the rowid, so there it changes nothing but the name):

* ``ix_attempts_recording_id`` (recording_id) becomes
  ``ix_attempts_recording_history`` (recording_id, id);
* ``ix_attempts_target`` (connection, object, record_id, field) becomes
  ``ix_attempts_record_history`` (connection, object, record_id, field, id),
  the old columns first, so it serves every lookup the old one did.

Replaced, not added: the attempts table, the one every run inserts into,
keeps three secondary indexes. Building them takes about 2.5 s per million
attempts (``bench/history.py``), during which PostgreSQL holds writes to
``attempts``.
"""
from typing import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TARGET = ["connection", "object", "record_id", "field"]


def upgrade() -> None:
    op.create_index("ix_attempts_recording_history", "attempts", ["recording_id", "id"], unique=False)
    op.create_index("ix_attempts_record_history", "attempts", [*_TARGET, "id"], unique=False)
    op.drop_index("ix_attempts_recording_id", table_name="attempts")
    op.drop_index("ix_attempts_target", table_name="attempts")


def downgrade() -> None:
    op.create_index("ix_attempts_recording_id", "attempts", ["recording_id"], unique=False)
    op.create_index("ix_attempts_target", "attempts", _TARGET, unique=False)
    op.drop_index("ix_attempts_recording_history", table_name="attempts")
    op.drop_index("ix_attempts_record_history", table_name="attempts")
