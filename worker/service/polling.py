"""Polling and backfill passes over Siro's list endpoint (no Celery here).

A pass walks ``GET /v1/core/recordings`` page by page (``pageSize``, the
``cursor``, every enrichment flag: CRM links, entity extractions, summary, so a
page carries everything the pipeline needs) and hands each non-empty page to
``submit(recordings)``. The caller decides what submitting means: enqueue one
Celery task carrying the page (``process_page``), or process it in-process.
``submit`` returns how many tasks it enqueued (0 or 1) and raises when the page
could not be committed (broker down): the pass stops there and the exception
propagates.

``poll_pass`` keeps a watermark in the ledger (``Ledger.advance_watermark``,
which never moves it backwards):

- it lists ``updatedAt:gte`` the stored watermark minus ``overlap_s``, or
  ``now - lookback_h`` on the very first pass (older history is
  ``backfill``'s job);
- Siro documents the listing as cursor-paginated only. When every recording
  of the pass so far came in non-decreasing ``updatedAt`` order (the
  simulator's and, as far as we can tell, Siro's order), the watermark moves
  after each committed page to the newest ``updatedAt`` seen, so a pass
  interrupted on page N resumes from page N-1's newest recording. Once the
  order is broken the watermark stays put for the rest of the pass and moves
  to the newest ``updatedAt`` seen only when the whole pass was committed;
- the watermark is only ever an ``updatedAt`` Siro sent, never our clock, so
  clock skew between us and Siro cannot skip a recording; recordings without
  ``updatedAt`` do not move it, an empty pass leaves it as it was.

A recording that is not linked yet, or whose extractions are not done, is
handed over like any other (the pipeline reports it as not linked / nothing
mapped). Linking it or finishing its extractions moves its ``updatedAt`` in
Siro, so a later pass lists it again.

``backfill`` walks an explicit ``updatedAt`` window the same way and never
touches the watermark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from worker.settings import PollConfig
from worker.siro.models import Recording, RecordingPage

if TYPE_CHECKING:
    from worker.ledger import Ledger
    from worker.siro.client import SiroClient

__all__ = ["POLL_WATERMARK", "PassResult", "backfill", "poll_pass", "utc_now"]

log = logging.getLogger(__name__)

#: The ledger watermark a default ``poll_pass`` keeps.
POLL_WATERMARK = "poll"

Submit = Callable[[list[Recording]], int]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)  # naive means UTC, as on the command line
    return value.astimezone(UTC)


@dataclass
class PassResult:
    """What a pass did.

    ``pages``: non-empty pages handed to ``submit`` (and committed);
    ``recordings``: recordings in them (a recording updated during the walk
    may be listed, and counted, twice); ``enqueued``: the sum of what
    ``submit`` returned; ``watermark``: for ``poll_pass`` the stored watermark
    after the pass (None if never set), for ``backfill`` the newest
    ``updatedAt`` handed over (None if none).
    """

    pages: int = 0
    recordings: int = 0
    enqueued: int = 0
    watermark: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"pages", "recordings", "enqueued", "watermark"}``; watermark ISO 8601 UTC or null."""
        return {
            "pages": self.pages,
            "recordings": self.recordings,
            "enqueued": self.enqueued,
            "watermark": _iso(self.watermark),
        }


class _OrderTracker:
    """Newest ``updatedAt`` seen, and whether the listing has stayed ascending."""

    def __init__(self) -> None:
        self.newest: datetime | None = None
        self.ordered = True

    def see(self, recordings: Iterable[Recording]) -> None:
        for recording in recordings:
            when = recording.updated_at
            if when is None:
                continue
            if self.newest is not None and when < self.newest:
                if self.ordered:
                    log.warning(
                        "Siro listed recording %s (updatedAt %s) after one updated at %s: the listing "
                        "is not in updatedAt order; the watermark moves only when this pass completes",
                        recording.id,
                        _iso(when),
                        _iso(self.newest),
                    )
                self.ordered = False
            else:
                self.newest = when


def _submit(submit: Submit, recordings: list[Recording]) -> int:
    count = submit(recordings)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise TypeError(f"submit must return the number of tasks it enqueued, got {count!r}")
    return count


def poll_pass(
    siro: SiroClient,
    ledger: Ledger,
    config: PollConfig,
    submit: Submit,
    *,
    now: Callable[[], datetime] = utc_now,
    name: str = POLL_WATERMARK,
) -> PassResult:
    """One polling pass from the stored watermark ``name`` (see the module doc).

    Of ``siro`` only ``iter_pages`` is used, of ``ledger`` only
    ``watermark``/``advance_watermark``. Exceptions from Siro,
    the ledger or ``submit`` propagate; the watermark then stays where the
    last committed page put it.
    """
    stored = ledger.watermark(name)
    if stored is None:
        since = _aware(now(), "now()") - timedelta(hours=config.lookback_h)
        log.info("poll %s: first pass, listing recordings updated since %s", name, _iso(since))
    else:
        since = stored - timedelta(seconds=config.overlap_s)
        log.info("poll %s: listing recordings updated since %s (watermark %s)", name, _iso(since), _iso(stored))

    result = PassResult(watermark=stored)
    order = _OrderTracker()
    pages = siro.iter_pages(updated_gte=since, page_size=config.page_size, summary=True)
    for _ in _hand_over(pages, submit, result, order):
        if order.ordered and order.newest is not None:
            result.watermark = ledger.advance_watermark(name, order.newest)
    if not order.ordered and order.newest is not None:
        result.watermark = ledger.advance_watermark(name, order.newest)
    log.info(
        "poll %s: %d recordings in %d pages, %d tasks enqueued; watermark %s",
        name,
        result.recordings,
        result.pages,
        result.enqueued,
        _iso(result.watermark),
    )
    return result


def _hand_over(pages: Iterable[RecordingPage], submit: Submit, result: PassResult,
               order: _OrderTracker) -> Iterator[None]:
    """Submit each non-empty page, counting it; yields once a page is committed."""
    for page in pages:
        recordings = list(page.data)
        if not recordings:
            continue
        result.enqueued += _submit(submit, recordings)
        result.pages += 1
        result.recordings += len(recordings)
        order.see(recordings)
        yield


def backfill(
    siro: SiroClient,
    submit: Submit,
    *,
    since: datetime,
    until: datetime | None = None,
    page_size: int = 100,
    on_page: Callable[[int, int], None] | None = None,
) -> PassResult:
    """Hand over every recording with ``since <= updatedAt < until`` (``until``
    None: no upper bound), page by page; the poll watermark is not touched.

    Naive datetimes are taken as UTC. ``on_page(pages_done, recordings_done)``
    is called after each committed page (a progress bar). Exceptions propagate.
    """
    since = _aware(since, "since")
    if until is not None:
        until = _aware(until, "until")
        if until <= since:
            raise ValueError(f"backfill window is empty: until ({_iso(until)}) is not after since ({_iso(since)})")
    result = PassResult()
    order = _OrderTracker()
    pages = siro.iter_pages(updated_gte=since, updated_lt=until, page_size=page_size, summary=True)
    for _ in _hand_over(pages, submit, result, order):
        if on_page is not None:
            on_page(result.pages, result.recordings)
    result.watermark = order.newest
    log.info(
        "backfill %s..%s: %d recordings in %d pages, %d tasks enqueued",
        _iso(since),
        _iso(until) or "now",
        result.recordings,
        result.pages,
        result.enqueued,
    )
    return result
