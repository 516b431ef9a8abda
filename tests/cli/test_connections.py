"""``writeback connections [--json]`` and ``check``'s warning about unserved Siro connections,
run as an operator runs them: the console script against the Siro (and Salesforce) simulators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.cli import SF_SECRET_VAR, run, salesforce_config

pytestmark = pytest.mark.e2e

PATH = "/v1/core/integrations/connections"
DOWN = {"Retry-After": "0"}  # Siro answering 503 at once, so the client's retries take no time


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def exact_config(env: dict[str, str], tmp_path: Path, salesforce_url: str) -> dict[str, str]:
    """The test config with its entry serving only ``ic_sf`` instead of ``"*"``."""
    path = tmp_path / "exact.toml"
    path.write_text(salesforce_config(salesforce_url).replace('"*"', '"ic_sf"'))
    return {**env, "WRITEBACK_CONFIG": str(path)}


@pytest.fixture
def connections(siro_server):
    siro = siro_server.state  # listed in the order they were created
    siro.add_connection("ic_sf", name="Acme Salesforce", integration_platform="SALESFORCE",
                        created_at="2025-01-01T09:00:00.000Z")
    siro.add_connection("ic_old", name="Old ServiceTitan", integration_platform="SERVICE_TITAN", is_active=False,
                        created_at="2025-01-02T09:00:00.000Z")
    siro.add_connection("ic_new", name="New Spotio", integration_platform="SPOTIO",
                        created_at="2025-01-03T09:00:00.000Z")
    return siro


def test_json_names_the_entry_serving_each_connection(cli_env, connections, salesforce_server, tmp_path):
    env = exact_config(cli_env, tmp_path, salesforce_server.url)

    result = run("connections", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"connections": [
        {"id": "ic_sf", "name": "Acme Salesforce", "integrationPlatform": "SALESFORCE", "isActive": True,
         "servedBy": "sf"},
        {"id": "ic_old", "name": "Old ServiceTitan", "integrationPlatform": "SERVICE_TITAN", "isActive": False,
         "servedBy": None},
        {"id": "ic_new", "name": "New Spotio", "integrationPlatform": "SPOTIO", "isActive": True, "servedBy": None},
    ]}
    assert result.stderr == ""


def test_a_star_entry_serves_every_connection(cli_env, connections):
    served = json.loads(run("connections", "--json", env=cli_env).stdout)["connections"]
    assert {row["id"]: row["servedBy"] for row in served} == {"ic_sf": "sf", "ic_old": "sf", "ic_new": "sf"}


def test_the_table(cli_env, connections, salesforce_server, tmp_path):
    env = {**exact_config(cli_env, tmp_path, salesforce_server.url), "COLUMNS": "120"}

    result = run("connections", env=env)

    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line.split("│") for line in result.stdout.splitlines() if "│ ic_" in line}
    assert [cell.strip() for cell in rows["ic_sf"][1:6]] == ["ic_sf", "Acme Salesforce", "SALESFORCE", "yes", "sf"]
    assert [cell.strip() for cell in rows["ic_old"][4:6]] == ["no", "none"]
    assert [cell.strip() for cell in rows["ic_new"][4:6]] == ["yes", "none"]
    assert ("3 connections, 2 active; 1 active one served by no [[connections]] entry (no_connection)"
            in " ".join(result.stdout.split()))


def test_every_page_is_listed_and_no_crm_secret_is_needed(cli_env, siro_server):
    siro = siro_server.state
    siro.connection_page_size = 2
    for i in range(5):
        siro.add_connection(f"ic_{i}")
    env = {key: value for key, value in cli_env.items() if key != SF_SECRET_VAR}

    result = run("connections", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert [row["id"] for row in json.loads(result.stdout)["connections"]] == [f"ic_{i}" for i in range(5)]
    assert len(siro.requests_to(PATH)) == 3


def test_no_connections(cli_env):
    assert json.loads(run("connections", "--json", env=cli_env).stdout) == {"connections": []}
    assert "Siro lists no integration connections" in run("connections", env=cli_env).stdout


def test_siro_errors_are_one_line(cli_env, connections):
    rejected = run("connections", env={**cli_env, "SIRO_API_TOKEN": "not-the-token"})
    assert rejected.returncode == 2 and rejected.stdout == ""
    assert "Siro rejected the API token" in one_line(rejected.stderr)
    assert "not-the-token" not in rejected.stderr

    connections.fail_next(503, times=20, headers=DOWN, path=PATH)
    down = run("connections", "--json", env=cli_env)
    assert down.returncode == 1 and down.stdout == ""
    assert one_line(down.stderr).startswith("writeback: Siro unavailable after 6 attempts")


# -- writeback check -----------------------------------------------------------------------


def findings(result) -> list[dict]:  # noqa: ANN001 - CompletedProcess
    return json.loads(result.stdout)["findings"]


def test_check_warns_about_an_active_connection_no_entry_serves(cli_env, connections, salesforce_server,
                                                                  salesforce_ids, tmp_path):
    env = exact_config(cli_env, tmp_path, salesforce_server.url)

    result = run("check", "--json", env=env)

    assert result.returncode == 0, result.stdout + result.stderr  # a warning, not a failure
    warned = [f for f in findings(result) if f["level"] == "warn"]
    assert warned == [{"level": "warn", "subject": "siro connection ic_new",
                       "message": "active connection 'New Spotio' (SPOTIO) is served by no [[connections]] entry: "
                                  "its recordings fail with reason no_connection"}]
    text = run("check", env=env)
    assert "warn siro connection ic_new: active connection 'New Spotio'" in " ".join(text.stdout.split())


def test_check_is_quiet_when_a_star_entry_serves_them_all(cli_env, connections, salesforce_ids):
    result = run("check", "--json", env=cli_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert [f for f in findings(result) if f["level"] != "ok"] == []
    assert {"level": "ok", "subject": "siro connections",
            "message": "3 listed; every active one is served by a [[connections]] entry"} in findings(result)


def test_check_reports_the_rest_when_siro_cannot_list_connections(cli_env, connections, salesforce_ids):
    connections.fail_next(503, times=20, headers=DOWN, path=PATH)

    result = run("check", "--json", env=cli_env)

    assert result.returncode == 0, result.stdout + result.stderr
    listed = [f for f in findings(result) if f["subject"] == "siro connections"]
    assert [f["level"] for f in listed] == ["warn"]
    assert listed[0]["message"].startswith("could not list Siro's integration connections: Siro unavailable")
    assert any(f["subject"] == "sf" and "Opportunity" in f["message"] for f in findings(result))
