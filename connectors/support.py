"""What every connector (and the pipeline's writer) shares: ``Retry-After``, and write-result bookkeeping.

* ``parse_retry_after``: the seconds a ``Retry-After`` header asks for, as
  delay-seconds or an HTTP-date (RFC 9110 §10.2.3), for every client that
  talks HTTP (both CRMs and Siro).
* ``WriteResults``: what the CRM answered so far, field by field, for the
  updates of one write call. A call may take several requests (batches, a
  split after a whole-request rejection, a re-send without refused fields);
  each answer is recorded as it comes, so that a failure part-way hands back
  exactly what was settled (``settled()``, for ``WritebackError.partial``)
  and a retry re-sends exactly what was not (``unanswered()``). An error
  outweighs a claim of success for the same field.

Imports nothing from ``worker``: plugins use it as they use ``connectors.base``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
from collections.abc import Iterable, Mapping, Sequence

from connectors.base import FieldError, RecordWrite, RecordWriteResult


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value; None when absent or unreadable.

    Delay-seconds (``"3"``, tolerated as a decimal) or an HTTP-date; a
    negative delay or a date already past means "now" (0).
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def retry_after_of(headers: Mapping[str, str] | None) -> float | None:
    """``parse_retry_after`` of a header mapping, whatever the case of its keys."""
    if not headers:
        return None
    return parse_retry_after(next((v for k, v in headers.items() if k.lower() == "retry-after"), None))


class WriteResults:
    """The answers to the updates of one write call, per update (by position) and per field."""

    def __init__(self, updates: Sequence[RecordWrite]) -> None:
        self.updates = list(updates)
        self._written: list[set[str]] = [set() for _ in self.updates]
        self._errors: list[dict[str, FieldError]] = [{} for _ in self.updates]
        self._index: dict[str, int] = {}
        for index, update in enumerate(self.updates):
            self._index.setdefault(update.record_id, index)

    def written(self, index: int, names: Iterable[str]) -> None:
        """The CRM accepted these fields of update ``index``."""
        self._written[index].update(names)

    def failed(self, index: int, names: Iterable[str], error: FieldError) -> None:
        """These fields of update ``index`` were refused (or cannot be sent) for ``error``."""
        for name in names:
            self._errors[index][name] = error

    def absorb(self, results: Iterable[RecordWriteResult]) -> None:
        """Take in a connector's results (a call's answer, or a failure's ``partial``), by record id."""
        for result in results:
            index = self._index.get(result.record_id)
            if index is not None:
                self._written[index] |= set(result.written)
                self._errors[index].update(result.errors)

    def unanswered(self) -> list[RecordWrite]:
        """Each update with only its fields that have no answer yet (updates fully answered left out)."""
        rest = []
        for index, update in enumerate(self.updates):
            answered = self._written[index] | set(self._errors[index])
            values = {name: value for name, value in update.values.items() if name not in answered}
            if values:
                rest.append(RecordWrite(update.record_id, values))
        return rest

    def settled(self, *, whole_records: bool = False) -> list[RecordWriteResult]:
        """What is answered so far, for ``WritebackError.partial``: per update, only its fields with a
        final answer; unanswered fields are left out, never guessed.

        ``whole_records``: only the updates whose every field is answered (an update without fields
        counts as answered), for a connector whose retry must re-send a record whole.
        """
        found = []
        for index, update in enumerate(self.updates):
            result = self._result(index)
            if whole_records:
                if set(update.values) <= result.written | set(result.errors):
                    found.append(result)
            elif result.written or result.errors:
                found.append(result)
        return found

    def results(self, *, unanswered: str | None = None) -> list[RecordWriteResult]:
        """One result per update, in order. ``unanswered``: the reason a field without an answer
        fails with (``Connector.write`` must account for every field); None leaves such fields out."""
        found = []
        for index, update in enumerate(self.updates):
            result = self._result(index)
            if unanswered is not None:
                errors = dict(result.errors)
                for name in update.values:
                    if name not in result.written and name not in errors:
                        errors[name] = FieldError("failed", unanswered)
                result = RecordWriteResult(result.record_id, result.written, errors)
            found.append(result)
        return found

    def _result(self, index: int) -> RecordWriteResult:
        errors = dict(self._errors[index])
        written = frozenset(self._written[index] - set(errors))  # an error outweighs a claim of success
        return RecordWriteResult(self.updates[index].record_id, written, errors)


__all__ = ["WriteResults", "parse_retry_after", "retry_after_of"]
