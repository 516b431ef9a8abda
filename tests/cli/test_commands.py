"""The ``writeback`` command as an operator runs it: a subprocess, real environment, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.siro import SiroState
from simulators.tls import local_tls

pytestmark = pytest.mark.e2e  # every test runs `writeback` as a subprocess

X = SiroState.extraction
WRITEBACK = str(Path(sys.executable).parent / "writeback")
SF_SECRET_VAR = "SF_ACCESS_TOKEN_FOR_TESTS"


def run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WRITEBACK, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli_env(tmp_path, siro_server, salesforce_server, salesforce_token, salesforce_ids, redis_url):
    config = tmp_path / "writeback.toml"
    config.write_text(
        f"""
[[connections]]
integration_connection_id = "*"
connector = "salesforce"
name = "sf"
instance_url = "{salesforce_server.url}"
access_token = "${{{SF_SECRET_VAR}}}"

[retry]
max_retries = 1
base_s = 0.01
max_s = 0.05
"""
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SIRO_API_URL": siro_server.url,
        "SIRO_API_TOKEN": siro_server.token,
        "WRITEBACK_CONFIG": str(config),
        "WRITEBACK_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db",
        "WRITEBACK_BROKER_URL": redis_url,  # the private one: shared rate limits live there
        "REQUESTS_CA_BUNDLE": local_tls().ca_bundle,
        SF_SECRET_VAR: salesforce_token,
    }
    return env


@pytest.fixture
def linked_recording(siro_server, salesforce_ids):
    siro = siro_server.state
    siro.add_recording("rec-cli", entity_extractions=[
        X("Deal size", "21000", ("Opportunity", "Amount")),
        X("Stage", "closed won", ("Opportunity", "StageName")),
    ])
    siro.link("rec-cli", integration_connection_id="ic-any", opportunity=salesforce_ids.opportunity)
    return "rec-cli"


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


def test_check_exits_2_when_the_crm_rejects_the_token(cli_env, salesforce_state, salesforce_ids):
    salesforce_state.expire_all_tokens()

    result = run("check", env=cli_env)

    assert result.returncode == 2
    assert "FAIL" in result.stdout
    assert cli_env[SF_SECRET_VAR] not in result.stdout + result.stderr


def test_demo_runs_without_credentials(tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}

    result = subprocess.run([WRITEBACK, "demo"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "written" in result.stdout
    # The deployed path: webhooks in (one repeated, one forged), the worker, then a poll pass.
    assert result.stdout.count("HTTP 202 enqueued") == 4
    assert "the same event again: HTTP 200 duplicate; a wrong secret: HTTP 401" in result.stdout
    poll_line = next(line for line in result.stdout.splitlines() if line.startswith("poll pass"))
    assert " written" not in poll_line and poll_line.endswith("; 0 CRM write requests")
    assert "Traceback" not in result.stderr
