"""Poll and backfill passes against the Siro simulator (real HTTP, real SiroClient)
and a real SQLite ledger."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulators.siro import SiroState, iso
from tests.fixtures.siro import SIRO_TEST_TOKEN, SiroServer
from worker.ledger import Ledger
from worker.service.polling import PassResult, backfill, poll_pass
from worker.settings import PollConfig
from worker.siro.client import SiroClient, SiroUnavailable
from worker.siro.models import Recording, RecordingPage

T = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # "now", for us and for the simulator
LIST = "/v1/core/recordings"
FLAGS = {"showCrmLinks": "true", "showEntityExtractions": "true", "showSummary": "true"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T)


@pytest.fixture
def siro_state(clock: Clock) -> SiroState:
    """Overrides the suite's: the simulator runs on the test's clock."""
    state = SiroState(clock=clock)
    state.add_token(SIRO_TEST_TOKEN, name="writeback-tests")
    return state


@pytest.fixture
def siro(make_siro_client: Callable[..., SiroClient]) -> SiroClient:
    return make_siro_client()


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    with Ledger.open(sqlite_url) as ledger:
        yield ledger


class Collector:
    """A ``submit`` that keeps the pages; ``fail_on`` makes the n-th call (1-based) raise."""

    def __init__(self, fail_on: int | None = None, before: Callable[[int], None] | None = None) -> None:
        self.pages: list[list[Recording]] = []
        self.calls = 0
        self.fail_on = fail_on
        self.before = before

    def __call__(self, recordings: list[Recording]) -> int:
        self.calls += 1
        if self.before is not None:
            self.before(self.calls)
        if self.calls == self.fail_on:
            raise ConnectionError("broker unreachable")
        self.pages.append(list(recordings))
        return 1

    @property
    def ids(self) -> list[str]:
        return [r.id for page in self.pages for r in page]


def add(state: SiroState, recording_id: str, at: datetime, **kw: Any) -> dict[str, Any]:
    return state.add_recording(recording_id, created_at=at, updated_at=at, **kw)


def list_queries(state: SiroState) -> list[dict[str, str]]:
    return [r.query for r in state.requests_to(LIST) if r.status == 200]


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- #
# poll


def test_first_pass_starts_lookback_back_and_walks_pages(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    state = siro_server.state
    add(state, "too-old", T - timedelta(hours=24, milliseconds=1))
    add(state, "edge", T - timedelta(hours=24))  # exactly lookback_h back: listed (gte)
    for i in range(6):
        add(state, f"rec-{i}", T - timedelta(hours=5 - i))
    config = PollConfig(lookback_h=24, overlap_s=60, page_size=3)
    submit = Collector()

    result = poll_pass(siro, ledger, config, submit, now=clock)

    assert submit.ids == ["edge", "rec-0", "rec-1", "rec-2", "rec-3", "rec-4", "rec-5"]
    assert [len(p) for p in submit.pages] == [3, 3, 1]
    assert result == PassResult(pages=3, recordings=7, enqueued=3, watermark=T)  # rec-5's updatedAt
    assert ledger.watermark("poll") == T
    assert result.to_json() == {"pages": 3, "recordings": 7, "enqueued": 3, "watermark": "2026-03-01T12:00:00Z"}
    json.dumps(result.to_json())

    queries = list_queries(state)
    assert len(queries) == 3
    for n, query in enumerate(queries):
        assert query["pageSize"] == "3"
        assert query["updatedAt:gte"] == "2026-02-28T12:00:00.000Z"  # now - 24 h
        assert {k: query[k] for k in FLAGS} == FLAGS
        assert ("cursor" in query) == (n > 0)
        assert set(query) <= {"pageSize", "updatedAt:gte", "cursor", *FLAGS}
    # The page carries every enrichment: nothing to fetch again.
    first = submit.pages[0][0]
    assert first.entity_extractions == [] and first.summary == [] and first.crm is None


def test_second_pass_lists_only_the_overlap_window(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    state = siro_server.state
    add(state, "a", T - timedelta(hours=2))
    add(state, "b", T - timedelta(seconds=90))
    add(state, "c", T - timedelta(seconds=30))
    config = PollConfig(lookback_h=24, overlap_s=60, page_size=100)
    poll_pass(siro, ledger, config, Collector(), now=clock)
    assert ledger.watermark("poll") == T - timedelta(seconds=30)

    clock.now = T + timedelta(minutes=5)
    add(state, "d", T + timedelta(minutes=4))
    state.clear_requests()
    submit = Collector()
    result = poll_pass(siro, ledger, config, submit, now=clock)

    # watermark (T-30s) minus the 60 s overlap: c again, and the new d; a and b not.
    (query,) = list_queries(state)
    assert query["updatedAt:gte"] == iso(T - timedelta(seconds=90))
    assert query["pageSize"] == "100"
    assert submit.ids == ["b", "c", "d"]  # b sits exactly on the window's lower bound (gte)
    assert result.watermark == ledger.watermark("poll") == T + timedelta(minutes=4)

    # Nothing new: the same window again, the watermark stays.
    submit = Collector()
    result = poll_pass(siro, ledger, config, submit, now=clock)
    assert submit.ids == ["d"]
    assert result.watermark == T + timedelta(minutes=4)


def test_a_submit_failure_on_page_2_keeps_page_1s_watermark_and_nothing_is_missed(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    state = siro_server.state
    times = [T - timedelta(minutes=10 - i) for i in range(5)]
    for i, at in enumerate(times):
        add(state, f"rec-{i}", at)
    config = PollConfig(lookback_h=1, overlap_s=0, page_size=2)

    failing = Collector(fail_on=2)
    with pytest.raises(ConnectionError):
        poll_pass(siro, ledger, config, failing, now=clock)
    assert failing.ids == ["rec-0", "rec-1"]
    assert ledger.watermark("poll") == times[1]  # page 1's newest updatedAt

    state.clear_requests()
    submit = Collector()
    result = poll_pass(siro, ledger, config, submit, now=clock)
    assert list_queries(state)[0]["updatedAt:gte"] == iso(times[1])
    # rec-1 sits exactly on the watermark: listed again (overlap 0 still means gte).
    assert submit.ids == ["rec-1", "rec-2", "rec-3", "rec-4"]
    assert set(failing.ids) | set(submit.ids) == {f"rec-{i}" for i in range(5)}
    assert result.watermark == times[4]


def test_siro_failing_mid_pass_keeps_the_committed_pages_watermark(
    siro_server: SiroServer, make_siro_client: Callable[..., SiroClient], ledger: Ledger, clock: Clock
) -> None:
    state = siro_server.state
    for i in range(4):
        add(state, f"rec-{i}", T - timedelta(minutes=10 - i))
    siro = make_siro_client(max_retries=0)

    def break_siro(call: int) -> None:
        if call == 1:  # page 2's request will fail
            state.fail_next(503, path=LIST)

    with pytest.raises(SiroUnavailable):
        poll_pass(siro, ledger, PollConfig(page_size=2), Collector(before=break_siro), now=clock)
    assert ledger.watermark("poll") == T - timedelta(minutes=9)


def test_a_recording_updated_exactly_at_the_watermark_is_listed_again(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    state = siro_server.state
    add(state, "first", T - timedelta(minutes=1))
    config = PollConfig(overlap_s=0)
    poll_pass(siro, ledger, config, Collector(), now=clock)
    watermark = ledger.watermark("poll")
    assert watermark == T - timedelta(minutes=1)

    # Another recording committed late in Siro with the very same updatedAt.
    add(state, "same-instant", watermark)
    submit = Collector()
    poll_pass(siro, ledger, config, submit, now=clock)
    assert submit.ids == ["first", "same-instant"]

    # With the default minute of overlap, a late commit a bit older is caught too.
    add(state, "late", watermark - timedelta(seconds=45))
    submit = Collector()
    poll_pass(siro, ledger, PollConfig(overlap_s=60), submit, now=clock)
    assert submit.ids == ["late", "first", "same-instant"]
    assert ledger.watermark("poll") == watermark


def test_an_unlinked_recording_is_submitted_again_once_linked(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    state = siro_server.state
    add(state, "rec-1", T - timedelta(minutes=2), crm=None, entity_extractions=[],
        is_entity_extraction_done=False)
    config = PollConfig()
    first = Collector()
    poll_pass(siro, ledger, config, first, now=clock)
    (handed,) = first.pages[0]
    assert handed.id == "rec-1" and handed.crm is None and handed.entity_extractions == []

    # Newer recordings move the watermark on: rec-1 falls out of the overlap window.
    clock.now = T + timedelta(minutes=10)
    add(state, "newer", T + timedelta(minutes=5))
    poll_pass(siro, ledger, config, Collector(), now=clock)
    quiet = Collector()
    poll_pass(siro, ledger, config, quiet, now=clock)
    assert quiet.ids == ["newer"]  # the overlap re-lists only the newest

    # Siro links it and finishes its extractions: updatedAt moves, listed again.
    clock.now = T + timedelta(minutes=20)
    state.link("rec-1", opportunity="006A000001")
    clock.now = T + timedelta(minutes=21)
    state.set_extractions("rec-1", [state.extraction("Amount", 12500, ("Opportunity", "Amount"))])
    state.update_recording("rec-1", isEntityExtractionDone=True, updatedAt=iso(clock.now))
    clock.now = T + timedelta(minutes=22)
    again = Collector()
    poll_pass(siro, ledger, config, again, now=clock)
    assert again.ids == ["newer", "rec-1"]
    handed = again.pages[0][1]
    assert handed.crm is not None and handed.crm.opportunity is not None
    assert handed.crm.opportunity.external_id == "006A000001"
    assert [e.name for e in handed.entity_extractions or []] == ["Amount"]
    assert ledger.watermark("poll") == T + timedelta(minutes=21)


def test_an_empty_pass_leaves_the_watermark(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    submit = Collector()
    result = poll_pass(siro, ledger, PollConfig(), submit, now=clock)
    assert result == PassResult(0, 0, 0, None)
    assert result.to_json() == {"pages": 0, "recordings": 0, "enqueued": 0, "watermark": None}
    assert ledger.watermark("poll") is None and submit.calls == 0

    add(siro_server.state, "rec-1", T - timedelta(minutes=1))
    poll_pass(siro, ledger, PollConfig(), submit, now=clock)
    siro_server.state.remove_recording("rec-1")  # nothing left in the overlap window
    result = poll_pass(siro, ledger, PollConfig(), Collector(), now=clock)
    assert result.pages == 0 and result.watermark == T - timedelta(minutes=1)
    assert ledger.watermark("poll") == T - timedelta(minutes=1)


def test_the_watermark_follows_siros_clock_not_ours(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    # Our clock runs two hours ahead of Siro's.
    ours = Clock(T + timedelta(hours=2))
    state = siro_server.state
    add(state, "rec-1", T - timedelta(minutes=5))
    poll_pass(siro, ledger, PollConfig(), Collector(), now=ours)
    assert ledger.watermark("poll") == T - timedelta(minutes=5)  # never our "now"

    clock.now = T + timedelta(minutes=1)
    add(state, "rec-2", clock.now)  # Siro's now: hours before ours
    submit = Collector()
    ours.now += timedelta(minutes=1)
    poll_pass(siro, ledger, PollConfig(), submit, now=ours)
    assert submit.ids == ["rec-1", "rec-2"]  # rec-1: the overlap
    assert ledger.watermark("poll") == clock.now


def test_watermarks_are_per_name(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    add(siro_server.state, "rec-1", T - timedelta(minutes=1))
    poll_pass(siro, ledger, PollConfig(), Collector(), now=clock, name="poll-org-2")
    assert ledger.watermark("poll") is None
    assert ledger.watermark("poll-org-2") == T - timedelta(minutes=1)


def test_submit_must_report_what_it_enqueued(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    add(siro_server.state, "rec-1", T - timedelta(minutes=1))
    with pytest.raises(TypeError, match="submit"):
        poll_pass(siro, ledger, PollConfig(), lambda recordings: None, now=clock)  # type: ignore[arg-type,return-value]
    assert ledger.watermark("poll") is None
    result = poll_pass(siro, ledger, PollConfig(), lambda recordings: 0, now=clock)  # processed in-process
    assert (result.pages, result.enqueued) == (1, 0)


# --------------------------------------------------------------------------- #
# a listing out of updatedAt order (the simulator always sorts: a fake Siro)


def rec(recording_id: str, at: datetime | None) -> Recording:
    return Recording.model_validate({"id": recording_id, "updatedAt": iso(at) if at else None})


class FakeSiro:
    def __init__(self, pages: list[list[Recording]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def iter_pages(self, **filters: Any) -> Iterator[RecordingPage]:
        self.calls.append(filters)
        for n, page in enumerate(self.pages):
            # Built from JSON, as the client does (RecordingPage keeps only dict items).
            yield RecordingPage.model_validate({
                "data": [r.model_dump(mode="json", by_alias=True) for r in page],
                "cursor": None if n == len(self.pages) - 1 else f"c{n}",
            })

    def list_recordings(self, **filters: Any) -> RecordingPage:  # pragma: no cover - not used
        raise AssertionError("poll_pass walks iter_pages")


def test_out_of_order_listing_keeps_the_watermark_until_the_pass_ends(ledger: Ledger) -> None:
    t = [T - timedelta(minutes=10 - i) for i in range(6)]
    siro = FakeSiro([
        [rec("a", t[1]), rec("b", t[3])],
        [rec("c", t[2]), rec("d", t[4]), rec("no-ts", None)],
        [rec("e", t[0])],
        [rec("f", None)],
    ])
    seen: list[datetime | None] = []

    def submit(recordings: list[Recording]) -> int:
        seen.append(ledger.watermark("poll"))
        return 1

    result = poll_pass(siro, ledger, PollConfig(lookback_h=1, page_size=2), submit, now=lambda: T)  # type: ignore[arg-type]
    # Before page 2: page 1 committed in order -> t3. From then on the order is
    # broken: nothing moves until the pass is complete, then the newest seen.
    assert seen == [None, t[3], t[3], t[3]]
    assert result.watermark == ledger.watermark("poll") == t[4]
    assert result.pages == 4 and result.recordings == 7
    assert siro.calls == [{"updated_gte": T - timedelta(hours=1), "page_size": 2, "summary": True}]


def test_out_of_order_listing_that_fails_keeps_the_last_ordered_watermark(ledger: Ledger) -> None:
    t = [T - timedelta(minutes=10 - i) for i in range(6)]
    siro = FakeSiro([[rec("a", t[1])], [rec("b", t[0]), rec("c", t[5])], [rec("d", t[2])]])
    with pytest.raises(ConnectionError):
        poll_pass(siro, ledger, PollConfig(), Collector(fail_on=3), now=lambda: T)  # type: ignore[arg-type]
    assert ledger.watermark("poll") == t[1]  # not t5: the order broke on page 2


def test_recordings_without_updated_at_do_not_move_the_watermark(ledger: Ledger) -> None:
    siro = FakeSiro([[rec("x", None), rec("y", None)]])
    result = poll_pass(siro, ledger, PollConfig(), Collector(), now=lambda: T)  # type: ignore[arg-type]
    assert result.pages == 1 and result.watermark is None
    assert ledger.watermark("poll") is None


# --------------------------------------------------------------------------- #
# backfill


def test_backfill_takes_the_window_and_never_touches_the_watermark(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger
) -> None:
    state = siro_server.state
    since, until = T - timedelta(days=30), T - timedelta(days=20)
    add(state, "before", since - timedelta(milliseconds=1))
    add(state, "at-since", since)
    add(state, "middle", since + timedelta(days=5))
    add(state, "last-in", until - timedelta(milliseconds=1))
    add(state, "at-until", until)
    add(state, "recent", T - timedelta(minutes=1))
    ledger.advance_watermark("poll", T - timedelta(hours=1))
    progress: list[tuple[int, int]] = []
    submit = Collector()

    result = backfill(siro, submit, since=since, until=until, page_size=2, on_page=lambda *a: progress.append(a))

    assert submit.ids == ["at-since", "middle", "last-in"]
    assert progress == [(1, 2), (2, 3)]
    assert result == PassResult(pages=2, recordings=3, enqueued=2, watermark=until - timedelta(milliseconds=1))
    assert ledger.watermark("poll") == T - timedelta(hours=1)
    queries = list_queries(state)
    assert len(queries) == 2
    for query in queries:
        assert query["updatedAt:gte"] == iso(since)
        assert query["updatedAt:lt"] == iso(until)
        assert query["pageSize"] == "2"
        assert {k: query[k] for k in FLAGS} == FLAGS

    # Open-ended, and naive datetimes are UTC.
    state.clear_requests()
    submit = Collector()
    result = backfill(siro, submit, since=(until - timedelta(milliseconds=1)).replace(tzinfo=None))
    assert submit.ids == ["last-in", "at-until", "recent"]
    (query,) = list_queries(state)
    assert "updatedAt:lt" not in query and query["pageSize"] == "100"
    assert ledger.watermark("poll") == T - timedelta(hours=1)

    with pytest.raises(ValueError, match="empty"):
        backfill(siro, Collector(), since=until, until=since)


def test_backfill_stops_when_a_page_cannot_be_committed(siro_server: SiroServer, siro: SiroClient) -> None:
    for i in range(5):
        add(siro_server.state, f"rec-{i}", T - timedelta(days=1, minutes=i))
    progress: list[tuple[int, int]] = []
    with pytest.raises(ConnectionError):
        backfill(siro, Collector(fail_on=2), since=T - timedelta(days=2), page_size=2,
                 on_page=lambda *a: progress.append(a))
    assert progress == [(1, 2)]


# --------------------------------------------------------------------------- #
# pages travel inside task messages as JSON


def test_recordings_round_trip_through_json(
    siro_server: SiroServer, siro: SiroClient, ledger: Ledger, clock: Clock
) -> None:
    state = siro_server.state
    add(state, "plain", T - timedelta(minutes=3))
    add(
        state, "rich", T - timedelta(minutes=2),
        crm={"integrationConnectionId": "conn-1", "opportunity": {"id": "so-1", "externalId": "006A",
             "crmUrl": "https://x"}, "contacts": [{"id": "sc-1", "externalId": 3}], "users": [],
             "futureSlot": {"id": "z"}},
        entity_extractions=[
            state.extraction("Amount", 12500.0, ("Opportunity", "Amount")),
            {"name": "Notes", "value": {"text": "Ünïcødé ✓", "n": [1, 2.5, None, True]},
             "mappings": [{"crmModelName": "Deal", "crmFieldName": "notes", "confidence": 0.9}],
             "extractedAt": "2026-03-01T11:58:00.000Z"},
            {"name": None, "value": None, "mappings": None},
        ],
        summary=[{"id": "s1", "name": "Next steps", "content": "call back", "order": 2}],
        sentiment={"score": 0.71, "label": "positive"},  # fields Siro may add later
        tags=["a", "b"],
        deletedAt=None,
    )
    page = siro.list_recordings(updated_gte=T - timedelta(hours=1), summary=True)
    assert [r.id for r in page.data] == ["plain", "rich"]
    rich = page.data[1]
    assert rich.model_extra is not None and rich.model_extra["sentiment"] == {"score": 0.71, "label": "positive"}
    assert rich.crm is not None and rich.crm.model_extra == {"futureSlot": {"id": "z"}}

    weird = Recording.model_validate({
        "id": 42, "updatedAt": "2026-03-01T12:00:00+02:00", "createdAt": "not a time", "deleted": None,
        "latitude": "north", "crm": {"integrationConnectionId": 7, "contacts": {"externalId": 5}, "lead": "x"},
        "entityExtractions": [{"name": 3, "value": "x", "mappings": [{"crmModelName": None}, "junk"]}, "junk"],
        "summary": "text", "links": {"web": {"self": "https://app.siro.ai/recordings/42"}}, "unknown": [{"k": 1}],
    })
    for recording in [*page.data, weird]:
        message = json.loads(json.dumps(recording.model_dump(mode="json", by_alias=True)))
        back = Recording.model_validate(message)
        assert back == recording
        assert back.model_extra == recording.model_extra
        assert back.model_dump(mode="json", by_alias=True) == message
