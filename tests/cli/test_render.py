"""The report tables (``worker.cli.render``) at the widths people read them: 80, 120 and a log's 160."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from worker.cli.render import fit, report_table, terminal
from worker.report import FieldReport, Outcome, RecordingReport, Status

OPPORTUNITY = "0065g000000DuAdAAK"
CONTACT = "0035g000000GyssAAC"
LONG_REASON = (
    f"NOT_FOUND: no Contact with id {CONTACT} (deleted or never existed); the CRM answered "
    "ENTITY_IS_DELETED for the whole batch, so the other fields of this record were not sent either"
)
LONG_VALUE = "Walked the roof; two layers of shingles, soft decking near the chimney, gutters to replace " * 2


def line(field: str, value, outcome: Outcome, *, record: str | None = OPPORTUNITY, obj: str = "Opportunity",
         previous=None, reason: str | None = None, extraction: str = "Deal stage",
         connection: str = "salesforce-main") -> FieldReport:
    return FieldReport(connection, obj, record, field, value, previous, outcome, reason, extraction)


def sample_report() -> RecordingReport:
    return RecordingReport("rec-1", Status.PARTIAL, [
        line("StageName", "Closed Won", Outcome.WRITTEN, previous="Prospecting", extraction="Deal stage"),
        line("Budget_Confirmed__c", True, Outcome.WRITTEN, previous=False, extraction="Budget confirmed"),
        line("Competitors__c", ["Gong", "Clari"], Outcome.WRITTEN, extraction="Competitors mentioned"),
        line("Description", LONG_VALUE, Outcome.WRITTEN, extraction="Visit notes"),
        line("Title", "Homeowner", Outcome.FAILED, obj="Contact", record=CONTACT, reason=LONG_REASON,
             extraction="Homeowner role"),
        line("LeadSource", "Partner Referral", Outcome.UNLINKED, obj="Lead", record=None,
             reason="no lead linked to the recording", extraction="Lead source"),
    ])


def rendered(report: RecordingReport, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(report_table(report))
    return console.export_text()


def words_of(text: str) -> set[str]:
    return set(re.sub(r"[│┃]", " ", text).split())


@pytest.mark.parametrize("width", [80, 120, 160])
def test_a_table_fits_its_width_and_shows_everything_whole(width):
    report = sample_report()

    text = rendered(report, width)

    lines = text.splitlines()
    assert max(len(row) for row in lines) <= width
    assert "…" not in text
    for record_id in (OPPORTUNITY, CONTACT):  # never split mid-id
        assert any(record_id in row for row in lines), record_id
    words = words_of(text)
    for field in report.fields:
        assert any(field.field in row for row in lines), field.field  # field names whole, on one line
        for whole in (field.reason, field.extraction, field.value if isinstance(field.value, str) else None):
            assert set((whole or "").split()) <= words, whole  # wrapped, never cut
    assert "salesforce-main" in lines[0]  # one connection: in the title


def test_narrow_tables_stack_extraction_previous_and_reason():
    text = rendered(sample_report(), 80)

    assert "field / extraction" in text and "outcome / reason" in text
    assert "from Deal stage" in text and "was Prospecting" in text
    assert "Lead.LeadSource" in text and "(no record)" in text  # sent to no record: named Object.Field


def test_wide_tables_give_each_its_column():
    text = rendered(sample_report(), 160)

    header = next(row for row in text.splitlines() if "extraction" in row)
    assert re.findall(r"\w+", header) == ["field", "extraction", "value", "previous", "outcome", "reason"]
    assert any("StageName" in row and "Deal stage" in row and "Closed Won" in row and "Prospecting" in row
               for row in text.splitlines())


def test_records_are_grouped_under_their_heading():
    text = rendered(sample_report(), 120)

    lines = text.splitlines()
    opportunity = next(i for i, row in enumerate(lines) if OPPORTUNITY in row)
    contact = next(i for i, row in enumerate(lines) if CONTACT in row and "NOT_FOUND" not in row)
    stage = next(i for i, row in enumerate(lines) if "StageName" in row)
    title = next(i for i, row in enumerate(lines) if "Title" in row and "recording" not in row)
    assert opportunity < stage < contact < title


def test_several_connections_are_named_on_each_record():
    report = sample_report()
    report.fields.append(line("amount", 14200, Outcome.WRITTEN, obj="deals", record="10000000006",
                              connection="hubspot-main"))

    text = rendered(report, 80)

    assert "hubspot-main" in text and "salesforce-main" in text
    assert "salesforce-main" not in text.splitlines()[0]


def test_fit_narrows_the_widest_first_and_never_below_a_word():
    assert fit([10, 20], [5, 5], 40) == [10, 20]  # all fit: as they are
    widths = fit([10, 90, 60], [8, 18, 12], 70)
    assert sum(widths) <= 70 and widths[0] == 10  # the short column keeps its width
    assert all(width >= shortest for width, shortest in zip(widths, [8, 18, 12]))
    assert fit([10, 90, 60], [8, 18, 12], 70, [1, 1, 2])[2] > widths[2]  # weight: more for prose
    assert sum(fit([30, 30], [30, 30], 40)) <= 40  # words longer than the room: shrink in proportion


def test_a_report_without_fields_still_renders():
    text = rendered(RecordingReport("rec-2", Status.SKIPPED, [], reason="not_linked"), 80)

    assert "rec-2" in text


def test_terminal_width_follows_columns_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert terminal().width == 160  # logs and pipes: no guessed 80
    monkeypatch.setenv("COLUMNS", "80")
    assert terminal().width == 80


def test_reasons_and_titles_are_printed_as_written_never_as_markup():
    """A reason is text from a CRM or a config entry: ``[/x]`` or ``[bold]`` in it is shown, not
    interpreted (it raised MarkupError with a traceback, or was silently dropped)."""
    from rich.console import Console

    from worker.cli.render import render_report
    from worker.report import FieldReport, Outcome, RecordingReport, Status

    reason = "config: deny entry '[/x]Opp.[bold]Amount'"
    line = FieldReport("crm", "Opportunity", "006A", "Amount", 1, None, Outcome.FAILED, "[red]refused[/red]", None)
    console = Console(width=120, record=True)
    render_report(console, RecordingReport("rec-1", Status.FAILED, [], reason=reason))
    render_report(console, RecordingReport("rec-2", Status.FAILED, [line], reason=reason))
    text = console.export_text()
    assert text.count("[/x]Opp.[bold]Amount") == 2 and "[red]refused[/red]" in text


@pytest.mark.parametrize("width", [140, 160, 200])
def test_a_record_id_is_never_split_when_its_fields_have_short_names(width):
    """The heading's id is wider than every field name under it: the first column takes the id's width."""
    report = RecordingReport("rec-1", Status.OK, [line("Amount", 18750, Outcome.WRITTEN, previous=12500,
                                                       extraction="Deal size")])

    text = rendered(report, width)

    assert OPPORTUNITY in words_of(text)
    assert max(len(row) for row in text.splitlines()) <= width
