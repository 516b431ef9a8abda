"""The dead-letter list: recordings the workers gave up on, for ``writeback failed`` and ``retry``.

One row per recording (:class:`DeadLetterRow`). Adding is one atomic upsert,
race-free between processes: a recording already listed keeps its
``first_failed_at`` and counts one more failure.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select

from .engine import Database
from .rows import DeadLetterRow, check_str
from .schema import DeadLetter, utcnow

__all__ = ["DeadLetters"]

ERROR_MAX_CHARS = 1000  # a dead letter's error message, cut beyond this
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s,;\"']+")


def one_line(text: str, max_len: int = ERROR_MAX_CHARS) -> str:
    """``text`` with its whitespace collapsed, cut at ``max_len`` characters."""
    text = " ".join(text.split())
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text


def _check_arguments(recording_id: Any, reason: Any, error: Any, trigger: Any, attempts: Any) -> None:
    check_str(recording_id, "recording_id")
    check_str(reason, "reason", 64)
    check_str(trigger, "trigger", 32)
    if not isinstance(error, str):
        raise TypeError("error must be a str")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise TypeError(f"attempts must be a non-negative int, got {attempts!r}")


class DeadLetters(Database):
    """The dead-letter list."""

    def add_dead_letter(
        self, recording_id: str, *, reason: str, error: str, trigger: str, attempts: int,
        connection: str | None = None,
    ) -> None:
        """Put a recording on the dead-letter list, or count one more failure.

        ``reason`` is a short code (``retries_exhausted``, ``auth``, ...),
        ``error`` a message that becomes one line (whitespace collapsed, cut at
        1000 characters, ``Bearer`` tokens and the database password masked:
        still, pass messages that never held a secret), ``trigger`` what
        started the failed task, ``attempts`` how many task attempts it spent,
        ``connection`` the connection it failed on when known.
        A recording already listed keeps its ``first_failed_at``; its
        ``failures`` goes up by one and the other columns take the new values.
        One atomic upsert: concurrent calls from several processes all count.
        """
        _check_arguments(recording_id, reason, error, trigger, attempts)
        now = utcnow()
        stmt = self._upsert(DeadLetter).values(
            recording_id=recording_id, reason=reason, error=one_line(_BEARER.sub(r"\1***", self._redact(error))),
            trigger=trigger, attempts=attempts, failures=1, first_failed_at=now, last_failed_at=now,
            connection=connection,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[DeadLetter.recording_id],
            set_={
                "reason": stmt.excluded.reason,
                "error": stmt.excluded.error,
                "trigger": stmt.excluded.trigger,
                "attempts": stmt.excluded.attempts,
                "connection": stmt.excluded.connection,
                "failures": DeadLetter.failures + 1,
                "last_failed_at": stmt.excluded.last_failed_at,
            },
        )
        with self._write("adding a dead letter") as conn:
            conn.execute(stmt)

    def dead_letters(self, *, limit: int | None = None) -> list[DeadLetterRow]:
        """The dead-letter list, newest failure first."""
        stmt = select(*DeadLetter.__table__.c).order_by(
            DeadLetter.last_failed_at.desc(), DeadLetter.recording_id
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read("reading dead letters") as conn:
            return [DeadLetterRow.of(row) for row in conn.execute(stmt)]

    def dead_letter(self, recording_id: str) -> DeadLetterRow | None:
        """One recording's dead letter, or None."""
        stmt = select(*DeadLetter.__table__.c).where(DeadLetter.recording_id == recording_id)
        with self._read("reading a dead letter") as conn:
            row = conn.execute(stmt).first()
        return None if row is None else DeadLetterRow.of(row)

    def remove_dead_letter(self, recording_id: str) -> bool:
        """Take a recording off the list; False when it was not listed."""
        with self._write("removing a dead letter") as conn:
            result = conn.execute(delete(DeadLetter).where(DeadLetter.recording_id == recording_id))
            return result.rowcount > 0
