"""Named high-water marks (``poll``): how far a polling pass has handed recordings over.

:meth:`Watermarks.advance_watermark` only ever moves one forwards, in one
atomic upsert, race-free between threads and processes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, select

from .engine import Database
from .rows import check_str
from .schema import Watermark, utcnow

__all__ = ["Watermarks"]


def _check_aware(value: Any, what: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")


class Watermarks(Database):
    """Named watermarks."""

    def watermark(self, name: str) -> datetime | None:
        """The stored value of watermark ``name`` (aware UTC), None if never set."""
        with self._read("reading a watermark") as conn:
            return conn.execute(select(Watermark.value).where(Watermark.name == name)).scalar()

    def advance_watermark(self, name: str, value: datetime) -> datetime:
        """Move watermark ``name`` forward to ``value``; never backwards.

        The stored value becomes ``max(stored, value)`` in one atomic upsert
        (race-free between threads and processes), and is returned (aware
        UTC). ``updated_at`` changes only when the value does. The value is
        kept to the microsecond.
        """
        check_str(name, "name", 64)
        _check_aware(value, "value")
        value = value.astimezone(UTC)
        stmt = self._upsert(Watermark).values(name=name, value=value, updated_at=utcnow())
        newer = stmt.excluded.value > Watermark.value
        stmt = stmt.on_conflict_do_update(
            index_elements=[Watermark.name],
            set_={
                "value": case((newer, stmt.excluded.value), else_=Watermark.value),
                "updated_at": case((newer, stmt.excluded.updated_at), else_=Watermark.updated_at),
            },
        )
        with self._write("advancing a watermark") as conn:
            conn.execute(stmt)
            # Same transaction: the row is ours until commit (SQLite's write
            # lock, PostgreSQL's row lock), so this is the value we left.
            stored = conn.execute(select(Watermark.value).where(Watermark.name == name)).scalar_one()
        return stored
