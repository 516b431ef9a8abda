"""The ``writeback`` command as an operator runs it: a subprocess, real environment, real exit codes."""

from __future__ import annotations

import json

import pytest

from simulators.siro import SiroState
from tests.fixtures.cli import SF_SECRET_VAR, run, salesforce_config

pytestmark = pytest.mark.e2e  # every test runs `writeback` as a subprocess

X = SiroState.extraction


def test_sync_json_writes_and_reports_every_field(cli_env, linked_recording, salesforce_state, salesforce_ids):
    result = run("sync", linked_recording, "--json", env=cli_env)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["recordingId"] == linked_recording and report["status"] == "ok"
    assert {tuple(sorted(line)) for line in report["fields"]} == {
        ("connection", "extraction", "field", "object", "outcome", "previous", "reason", "recordId", "value")
    }
    by_field = {line["field"]: line for line in report["fields"]}
    assert by_field["Amount"] | {} == {
        "connection": "sf", "object": "Opportunity", "recordId": salesforce_ids.opportunity, "field": "Amount",
        "value": 21000, "previous": 12500, "outcome": "written", "reason": None, "extraction": "Deal size",
    }
    assert by_field["StageName"]["value"] == "Closed Won"
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["Amount"] == 21000

    again = run("sync", linked_recording, "--json", env=cli_env)
    assert again.returncode == 0
    assert {line["outcome"] for line in json.loads(again.stdout)["fields"]} == {"unchanged"}


def test_sync_dry_run_prints_a_table_and_writes_nothing(cli_env, linked_recording, salesforce_state, salesforce_ids):
    result = run("sync", linked_recording, "--dry-run", env=cli_env)

    assert result.returncode == 0, result.stderr
    assert "planned" in result.stdout and "Amount" in result.stdout
    assert salesforce_state.requests_matching("PATCH") == []
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["Amount"] == 12500


def test_sync_exits_1_when_a_field_is_invalid(cli_env, siro_server, salesforce_ids):
    siro_server.state.add_recording("rec-bad", entity_extractions=[X("Stage", "Signed", ("Opportunity", "StageName"))])
    siro_server.state.link("rec-bad", opportunity=salesforce_ids.opportunity)

    result = run("sync", "rec-bad", "--json", env=cli_env)

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "partial"
    assert [line["outcome"] for line in report["fields"]] == ["invalid_value"]


def test_sync_exits_1_for_a_recording_siro_does_not_have(cli_env, salesforce_ids):
    result = run("sync", "rec-missing", "--json", env=cli_env)

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["status"], report["fields"]) == ("failed", [])
    assert report["reason"].startswith("not_found")


def test_an_expired_crm_session_exits_2_and_reports_auth(cli_env, linked_recording, salesforce_state):
    salesforce_state.expire_all_tokens()

    result = run("sync", linked_recording, "--json", env=cli_env)

    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert (report["status"], report["reason"]) == ("failed", "auth")
    assert {line["outcome"] for line in report["fields"]} == {"failed"}
    assert "Traceback" not in result.stderr


def test_an_unset_config_variable_is_one_line_naming_it(cli_env, linked_recording):
    env = dict(cli_env)
    del env[SF_SECRET_VAR]

    result = run("sync", linked_recording, env=env)

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert SF_SECRET_VAR in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_siro_token_is_a_usage_error(cli_env, linked_recording):
    env = dict(cli_env)
    del env["SIRO_API_TOKEN"]

    result = run("sync", linked_recording, env=env)

    assert result.returncode == 2
    assert "SIRO_API_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_a_rejected_siro_token_exits_2_without_echoing_it(cli_env, linked_recording):
    env = dict(cli_env, SIRO_API_TOKEN="siro-wrong-token-9f8e7d6c5b")

    result = run("sync", linked_recording, env=env)

    assert result.returncode == 2
    assert "siro-wrong-token-9f8e7d6c5b" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_secrets_from_files_and_never_in_output(cli_env, linked_recording, tmp_path, salesforce_token, siro_server):
    token_file = tmp_path / "siro-token"
    token_file.write_text(siro_server.token + "\n")
    env = dict(cli_env)
    del env["SIRO_API_TOKEN"]
    env["SIRO_API_TOKEN_FILE"] = str(token_file)

    result = run("-v", "sync", linked_recording, "--json", env=env)

    assert result.returncode == 0, result.stderr
    for secret in (siro_server.token, salesforce_token):
        assert secret not in result.stdout + result.stderr


def test_usage_errors_exit_2(cli_env):
    assert run("sync", env=cli_env).returncode == 2
    assert run("frobnicate", env=cli_env).returncode == 2


def test_check_validates_siro_and_each_crm(cli_env, salesforce_ids):
    result = run("check", env=cli_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "siro" in result.stdout and "Opportunity" in result.stdout
    assert "FAIL" not in result.stdout


def test_check_says_where_summary_notes_go(cli_env, salesforce_server, tmp_path):
    config = tmp_path / "notes.toml"
    config.write_text(salesforce_config(salesforce_server.url, fields='[connections.notes]\nenabled = true\n'
                                        'attach_to = ["opportunity", "contacts"]\n'))

    result = run("check", env={**cli_env, "WRITEBACK_CONFIG": str(config)})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "sf: summary notes as ContentNote on opportunity (Opportunity), contacts (Contact)" in result.stdout


def test_check_exits_2_when_the_crm_rejects_the_token(cli_env, salesforce_state, salesforce_ids):
    salesforce_state.expire_all_tokens()

    result = run("check", env=cli_env)

    assert result.returncode == 2
    assert "FAIL" in result.stdout
    assert cli_env[SF_SECRET_VAR] not in result.stdout + result.stderr
