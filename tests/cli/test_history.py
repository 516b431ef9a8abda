"""``writeback history`` as an operator runs it: a subprocess reading a real ledger (DESIGN §6)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import run
from worker.cli.history import RecordRef, UsageError, parse_record
from worker.ledger import Ledger
from worker.report import FieldReport, Outcome

pytestmark = pytest.mark.e2e  # every test runs `writeback` as a subprocess

SF = "salesforce-main"
OPP = "0065g000000DuAdAAK"
CONTACT = "0035g000000GyssAAC"
REC, OTHER = "rec_0123456789abcdef", "rec_fedcba9876543210"
MARKUP_REASON = f"NOT_FOUND: no Contact with id {CONTACT} [bold]deleted[/bold] or never existed"


def line(field: str, value: Any, outcome: str = "written", *, record_id: str = OPP, object: str = "Opportunity",
         connection: str = SF, previous: Any = None, reason: str | None = None) -> FieldReport:
    return FieldReport(connection, object, record_id, field, value, previous, Outcome(outcome), reason,
                       f"{field} extraction")


def record_run(ledger: Ledger, recording: str, trigger: str, lines: list[FieldReport], status: str = "ok",
               reason: str | None = None) -> int:
    run_id = ledger.start_run(recording, trigger=trigger)
    ledger.record(run_id, recording, lines)
    ledger.finish_run(run_id, status, reason)
    return run_id


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A deployment's environment for a command that reads only the ledger (no config, no secrets)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
            "WRITEBACK_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"}


@pytest.fixture
def runs(env: dict[str, str]) -> dict[str, int]:
    """Three runs of REC (a failed contact field among them, a skipped run last) and one of OTHER."""
    with Ledger.open(env["WRITEBACK_DATABASE_URL"]) as ledger:
        return {
            "first": record_run(ledger, REC, "webhook", [
                line("StageName", "Closed Won", previous="Prospecting"), line("Amount", 21000, previous=12500),
                line("Title", "Owner", "failed", object="Contact", record_id=CONTACT, reason=MARKUP_REASON),
            ], status="partial"),
            "revert": record_run(ledger, REC, "revert", [line("StageName", "Prospecting", "reverted",
                                                              previous="Closed Won")]),
            "other": record_run(ledger, OTHER, "poll", [line("stagename", "Negotiation", previous="Prospecting")]),
            "skipped": record_run(ledger, REC, "poll", [], status="skipped", reason="reverted"),
        }


def history(*args: str, env: dict[str, str], columns: int = 120) -> Any:
    return run("history", *args, env={**env, "COLUMNS": str(columns)}, cwd=Path(env["HOME"]))


# --------------------------------------------------------------------------- #
# by recording


def test_history_json_lists_every_run_newest_first(env, runs):
    result = history(REC, "--json", env=env)

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["recordingId"] == REC
    assert [(r["runId"], r["trigger"], r["status"]) for r in body["runs"]] == [
        (runs["skipped"], "poll", "skipped"), (runs["revert"], "revert", "ok"), (runs["first"], "webhook", "partial")]
    skipped, revert, first = body["runs"]
    assert skipped == {"runId": runs["skipped"], "trigger": "poll", "startedAt": skipped["startedAt"],
                       "status": "skipped", "fields": [], "notes": [], "reason": "reverted"}
    assert [f["field"] for f in first["fields"]] == ["StageName", "Amount", "Title"]  # as recorded
    assert first["fields"][1] == {"connection": SF, "object": "Opportunity", "recordId": OPP, "field": "Amount",
                                  "value": 21000, "previous": 12500, "outcome": "written", "reason": None,
                                  "extraction": "Amount extraction"}
    assert revert["fields"][0]["outcome"] == "reverted" and revert["startedAt"].endswith("Z")


def test_an_unknown_recording_has_no_runs_and_exits_0(env, runs):
    result = history("rec_never_seen", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"recordingId": "rec_never_seen", "runs": []}

    table = history("rec_never_seen", env=env)
    assert table.returncode == 0 and "no runs" in table.stdout


@pytest.mark.parametrize("width", [80, 120])
def test_history_tables_fit_and_keep_ids_whole(env, runs, width):
    result = history(REC, env=env, columns=width)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(row) for row in lines) <= width
    assert f"recording {REC}: 3 runs" in lines[0]
    for whole in (OPP, CONTACT, f"run {runs['first']} · webhook", "skipped (reverted)", "reverted", "was 12500"):
        assert any(whole in row for row in lines), whole
    assert "[bold]deleted[/bold]" in result.stdout  # a reason is text, never rich markup


# --------------------------------------------------------------------------- #
# by CRM record


def test_record_json_lists_every_recordings_outcomes_newest_first(env, runs):
    result = history("--record", f"{SF}:Opportunity:{OPP}", "--json", env=env)

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["record"] == {"connection": SF, "object": "Opportunity", "recordId": OPP}
    assert [(f["recordingId"], f["trigger"], f["field"], f["outcome"]) for f in body["fields"]] == [
        (OTHER, "poll", "stagename", "written"),
        (REC, "revert", "StageName", "reverted"),
        (REC, "webhook", "Amount", "written"),
        (REC, "webhook", "StageName", "written"),
    ]
    assert set(body["fields"][0]) == {"connection", "object", "recordId", "field", "value", "previous", "outcome",
                                      "reason", "extraction", "recordingId", "trigger", "at"}
    assert body["fields"][0]["at"].endswith("Z")


def test_record_field_matches_in_any_case(env, runs):
    result = history("--record", f"{SF}:Opportunity:{OPP}", "--field", "STAGENAME", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert [f["value"] for f in json.loads(result.stdout)["fields"]] == ["Negotiation", "Prospecting", "Closed Won"]


def test_a_connection_name_may_hold_a_colon(env):
    with Ledger.open(env["WRITEBACK_DATABASE_URL"]) as ledger:
        record_run(ledger, REC, "cli", [line("Amount", 5, connection="eu:sf")])

    result = history("--record", f"eu:sf:Opportunity:{OPP}", "--json", env=env)

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["record"] == {"connection": "eu:sf", "object": "Opportunity", "recordId": OPP}
    assert [f["value"] for f in body["fields"]] == [5]


@pytest.mark.parametrize("width", [80, 120])
def test_record_table_groups_by_run_and_keeps_ids_whole(env, runs, width):
    result = history("--record", f"{SF}:Opportunity:{OPP}", env=env, columns=width)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(row) for row in lines) <= width
    assert lines[0].startswith(f"{SF}:Opportunity:{OPP}: 4 outcomes, newest first")
    for whole in (REC, OTHER, "(webhook)", "(revert)", "Negotiation", "was Prospecting"):
        assert any(whole in row for row in lines), whole
    assert result.stdout.index(OTHER) < result.stdout.index(REC)  # newest first


def test_an_unknown_record_has_no_outcomes_and_exits_0(env, runs):
    result = history("--record", f"{SF}:Opportunity:006000000000000AAA", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fields"] == []
    table = history("--record", f"{SF}:Opportunity:{OPP}", "--field", "Description", env=env)
    assert table.returncode == 0 and "no outcomes recorded" in table.stdout


# --------------------------------------------------------------------------- #
# usage


@pytest.mark.parametrize("given", ["Opportunity:006A", "sf::006A", ":Opportunity:006A", "sf:Opportunity:",
                                   "006A", "sf:Opportunity: "])
def test_a_malformed_record_is_a_usage_error_in_one_line(env, given):
    result = history("--record", given, env=env)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "CONNECTION:OBJECT:ID" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("rec-1", "--field", "Amount"), ("--record", "sf:Opportunity:006A", "--field", " "),
                                  (" ",)])
def test_other_usage_errors_exit_2_in_one_line(env, args):
    result = history(*args, env=env)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("writeback: ")


def test_parse_record_splits_on_the_last_two_colons():
    assert parse_record("sf:Opportunity:006A") == RecordRef("sf", "Opportunity", "006A")
    assert parse_record("eu:sf:deals:123") == RecordRef("eu:sf", "deals", "123")
    assert str(parse_record(" sf : Account : 001A ")) == "sf:Account:001A"
    with pytest.raises(UsageError):
        parse_record("sf:" + "x" * 300 + ":1")


def test_history_shows_what_sync_reported(cli_env, linked_recording):
    synced = run("sync", linked_recording, "--json", env=cli_env)
    assert synced.returncode == 0, synced.stderr

    result = run("history", linked_recording, "--json", env=cli_env)

    assert result.returncode == 0, result.stderr
    (only,) = json.loads(result.stdout)["runs"]
    assert only["trigger"] == "cli" and only["status"] == "ok"
    assert only["fields"] == json.loads(synced.stdout)["fields"]
