"""A newcomer's first hour at the command line: what each mistake prints now, and what it leaves alone.

Each test runs ``writeback`` as a subprocess against the Siro and Salesforce
simulators (``tests/fixtures/cli.py``), as a RevOps engineer following the
README would: one line on stderr and exit 2 for a config mistake, nothing
sent to the CRM, and the small things that used to trip them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.server import ServedApp
from tests.fixtures.cli import SF_SECRET_VAR, run, salesforce_config

pytestmark = pytest.mark.e2e


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def with_config(env: dict[str, str], tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "other.toml"
    path.write_text(text)
    return {**env, "WRITEBACK_CONFIG": str(path)}


def test_a_misspelt_connector_option_is_one_line_and_exit_2(cli_env, linked_recording, salesforce_server,
                                                           salesforce_state, tmp_path):
    """``instanceurl``: before, four tracebacks, fifteen fields failed and exit 1 from a dry run."""
    env = with_config(cli_env, tmp_path, salesforce_config(salesforce_server.url,
                                                             extra='instanceurl = "https://acme.my.salesforce.com"'))
    for command in (("sync", linked_recording, "--dry-run"), ("check",), ("failed",)):
        result = run(*command, env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "connection 'sf': unknown key 'instanceurl' for connector 'salesforce'" in one_line(result.stderr)
        assert result.stdout == ""
    assert salesforce_state.requests == []


def test_a_misspelt_deny_entry_is_named_by_check_and_sync_writes_nothing(cli_env, linked_recording,
                                                                        salesforce_server, salesforce_state,
                                                                        salesforce_ids, tmp_path):
    fields = '[connections.fields]\ndeny = ["Opportunty.Amount"]\n'
    env = with_config(cli_env, tmp_path, salesforce_config(salesforce_server.url, fields=fields))

    check = run("check", env=env)
    assert check.returncode == 2
    assert ("FAIL sf: deny entry 'Opportunty.Amount': the CRM has no object 'Opportunty' "
            "(did you mean 'Opportunity'?)") in " ".join(check.stdout.split())

    before = salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["Amount"]
    sync = run("sync", linked_recording, "--json", env=env)
    assert sync.returncode == 2
    assert one_line(sync.stderr).startswith("writeback: nothing written: config: deny entry 'Opportunty.Amount'")
    report = json.loads(sync.stdout)
    assert report["status"] == "failed" and {f["outcome"] for f in report["fields"]} == {"failed"}
    assert salesforce_state.requests_matching("PATCH") == []
    assert salesforce_state.get_record("Opportunity", salesforce_ids.opportunity)["Amount"] == before


def test_check_prints_the_config_mistake_as_written_and_as_json(cli_env, tmp_path):
    env = with_config(cli_env, tmp_path, "[retry]\nmax_retries = 1\n")  # no [[connections]]

    text = run("check", env=env)
    assert text.returncode == 2
    assert "FAIL config: no [[connections]] configured" in text.stdout  # rich markup ate "[[connections]]"

    as_json = run("check", "--json", env=env)
    assert as_json.returncode == 2
    body = json.loads(as_json.stdout)
    assert body["ok"] is False
    assert {"level": "fail", "subject": "config", "message": "no [[connections]] configured"} in body["findings"]
    assert next(f for f in body["findings"] if f["subject"].startswith("siro"))["level"] == "ok"


async def not_siro(scope, receive, send):  # noqa: ANN001 - a bare ASGI app: what a web server answers
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": b"<html><body>Not Found</body></html>"})


def test_a_siro_api_url_that_is_not_siro_is_a_config_error(cli_env, linked_recording):
    """A 404 that is not Siro's JSON error (the URL of a web server, a proxy, a path without
    ``/api-externalApi``): before, "Siro has no recording with this id" and exit 1."""
    with ServedApp(not_siro) as web:
        result = run("sync", linked_recording, env={**cli_env, "SIRO_API_URL": web.url})

    assert result.returncode == 2
    assert "SIRO_API_URL" in one_line(result.stderr) and "does not look like Siro's external API" in result.stderr


def test_config_is_a_global_option_and_verbose_goes_after_the_command_too(cli_env, linked_recording, tmp_path):
    config = cli_env["WRITEBACK_CONFIG"]
    env = {key: value for key, value in cli_env.items() if key != "WRITEBACK_CONFIG"}

    before = run("--config", config, "sync", linked_recording, "--dry-run", env=env)
    after = run("sync", linked_recording, "--dry-run", "-v", "--config", config, env=env)

    assert before.returncode == 0, before.stderr
    assert after.returncode == 0, after.stderr
    assert "INFO" in after.stderr  # -v after the command is taken
    assert run("sync", linked_recording, "--dry-run", env=env).returncode == 2  # and without it, no config


def test_sync_warns_about_redis_only_when_one_was_named(cli_env, linked_recording):
    unnamed = {key: value for key, value in cli_env.items() if key != "WRITEBACK_BROKER_URL"}
    named_dead = {**cli_env, "WRITEBACK_REDIS_URL": "redis://127.0.0.1:1/0"}

    quiet = run("sync", linked_recording, "--dry-run", env=unnamed)
    loud = run("sync", linked_recording, "--dry-run", env=named_dead)

    assert quiet.returncode == 0 and "Redis" not in quiet.stderr
    assert loud.returncode == 0 and "Redis (WRITEBACK_REDIS_URL) does not answer" in loud.stderr


def test_ready_names_a_missing_postgresql_driver(cli_env, tmp_path):
    shadow = tmp_path / "no-psycopg"
    (shadow / "psycopg").mkdir(parents=True)
    (shadow / "psycopg" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    env = {**cli_env, "PYTHONPATH": str(shadow),
           "WRITEBACK_DATABASE_URL": "postgresql://writeback:pw-123456@127.0.0.1:5432/writeback"}

    result = run("ready", env=env)

    assert result.returncode == 1
    database = next(line for line in result.stdout.splitlines() if line.startswith("database:"))
    assert "its driver 'psycopg' is not installed (pip install 'siro-writeback[postgres]')" in database
    assert "pw-123456" not in result.stdout + result.stderr


def test_backfill_dry_run_shows_what_it_would_write_recording_by_recording(cli_env, linked_recording,
                                                                          salesforce_state):
    text = run("backfill", "--since", "2000-01-01", "--dry-run", env=cli_env)
    as_json = run("backfill", "--since", "2000-01-01", "--dry-run", "--json", env=cli_env)

    assert text.returncode == 0, text.stderr
    assert f"recording {linked_recording}: ok (dry run)" in text.stdout and "Amount" in text.stdout
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    report, summary = lines
    assert report["recordingId"] == linked_recording
    assert {(f["field"], f["outcome"], f["value"]) for f in report["fields"]} == {
        ("Amount", "planned", 21000), ("StageName", "planned", "Closed Won")}
    assert summary == {"pages": 1, "recordings": 1, "enqueued": 0}
    assert salesforce_state.requests_matching("PATCH") == []


def test_the_crm_secret_is_not_needed_by_what_talks_to_no_crm(cli_env, linked_recording):
    env = {key: value for key, value in cli_env.items() if key != SF_SECRET_VAR}

    assert run("failed", env=env).returncode == 0  # reads the ledger only
    sync = run("sync", linked_recording, "--dry-run", env=env)
    assert sync.returncode == 2
    assert f"uses ${{{SF_SECRET_VAR}}} but {SF_SECRET_VAR} is not set" in one_line(sync.stderr)
