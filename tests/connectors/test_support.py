"""``connectors.support``: Retry-After parsing and the bookkeeping of one write call's answers."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from connectors.base import FieldError, RecordWrite, RecordWriteResult
from connectors.support import WriteResults, parse_retry_after, retry_after_of

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


# ---------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(("header", "seconds"), [("3", 3.0), (" 120 ", 120.0), ("1.5", 1.5), ("0", 0.0),
                                                 ("-4", 0.0)])
def test_delay_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_an_http_date_in_the_future_is_the_seconds_until_then():
    header = email.utils.format_datetime(NOW + dt.timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 90.0


def test_an_http_date_in_the_past_means_now():
    header = email.utils.format_datetime(NOW - dt.timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


@pytest.mark.parametrize("header", [None, "", "   ", "soon", "3 seconds", "nan", "inf", "Mon, 99 Foo 2026"])
def test_absent_or_unreadable_is_none(header):
    assert parse_retry_after(header) is None


def test_retry_after_of_headers_ignores_the_case_of_the_name():
    assert retry_after_of({"retry-after": "5"}) == 5.0
    assert retry_after_of({"Content-Type": "application/json", "RETRY-AFTER": "2"}) == 2.0
    assert retry_after_of({"Content-Type": "application/json"}) is None
    assert retry_after_of(None) is None


# ---------------------------------------------------------------------- WriteResults

REFUSED = FieldError("invalid_value", "INVALID_OPTION: not an option")
GONE = FieldError("failed", "NOT_FOUND: deleted")


def updates():
    return [RecordWrite("A", {"x": 1, "y": 2}), RecordWrite("B", {"x": 3}), RecordWrite("C", {"z": 4})]


def test_absorb_takes_a_connectors_results_by_record_id():
    answers = WriteResults(updates())
    answers.absorb([RecordWriteResult("B", frozenset({"x"})),
                    RecordWriteResult("A", frozenset({"x"}), {"y": REFUSED}),
                    RecordWriteResult("unknown-id", frozenset({"x"}))])
    a, b, c = answers.results()
    assert (a.written, dict(a.errors)) == ({"x"}, {"y": REFUSED})
    assert (b.written, dict(b.errors)) == ({"x"}, {})
    assert (c.written, dict(c.errors)) == (set(), {})


def test_unanswered_keeps_only_the_fields_without_an_answer():
    answers = WriteResults(updates())
    answers.written(0, ["x"])
    answers.failed(1, ["x"], GONE)
    assert answers.unanswered() == [RecordWrite("A", {"y": 2}), RecordWrite("C", {"z": 4})]
    answers.absorb([RecordWriteResult("A", frozenset({"y"})), RecordWriteResult("C", frozenset({"z"}))])
    assert answers.unanswered() == []


def test_settled_names_only_answered_fields_of_answered_updates():
    answers = WriteResults(updates())
    answers.written(0, ["x"])
    answers.failed(1, ["x"], GONE)
    settled = answers.settled()
    assert [(r.record_id, r.written, dict(r.errors)) for r in settled] == [("A", {"x"}, {}), ("B", set(), {"x": GONE})]


def test_settled_whole_records_leaves_out_an_update_with_a_field_still_open():
    answers = WriteResults([*updates(), RecordWrite("D", {})])
    answers.failed(0, ["y"], REFUSED)  # x still in flight
    answers.written(1, ["x"])
    assert [r.record_id for r in answers.settled()] == ["A", "B"]
    assert [r.record_id for r in answers.settled(whole_records=True)] == ["B", "D"]  # D has nothing to send


def test_an_error_outweighs_a_claim_of_success():
    answers = WriteResults(updates())
    answers.written(0, ["x", "y"])
    answers.failed(0, ["y"], REFUSED)
    answers.absorb([RecordWriteResult("B", frozenset({"x"}), {"x": GONE})])
    a, b, _ = answers.results()
    assert (a.written, dict(a.errors)) == ({"x"}, {"y": REFUSED})
    assert (b.written, dict(b.errors)) == (set(), {"x": GONE})
    assert answers.settled()[0].written == {"x"}


def test_results_fail_unanswered_fields_only_when_asked():
    answers = WriteResults(updates())
    answers.written(0, ["x"])
    plain = answers.results()
    assert [(r.record_id, r.written, dict(r.errors)) for r in plain] == [("A", {"x"}, {}), ("B", set(), {}),
                                                                           ("C", set(), {})]
    a, b, c = answers.results(unanswered="no answer")
    assert a.written == {"x"} and a.errors == {"y": FieldError("failed", "no answer")}
    assert b.errors == {"x": FieldError("failed", "no answer")} and c.errors == {"z": FieldError("failed", "no answer")}


def test_an_update_of_a_record_given_twice_is_answered_by_position():
    answers = WriteResults([RecordWrite("A", {"x": 1}), RecordWrite("A", {"x": 2})])
    answers.written(1, ["x"])
    first, second = answers.results()
    assert (first.written, second.written) == (set(), {"x"})
    assert answers.unanswered() == [RecordWrite("A", {"x": 1})]
