"""End to end, a newcomer's first hour with the deployed service: config mistakes fail closed, shadow mode.

Real processes (``celery -A worker worker|beat``, ``writeback webhook``, the
CLI) on a private ``redis-server``, the Siro and HubSpot simulators over HTTP.
What a user would meet and check: which process refuses to start and the one
line it prints, what the dead-letter list says, what the CRM holds and what
requests reached it, what the ledger recorded.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures.processes import ServiceProcesses, wait_for
from tests.fixtures.service import World, post

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def one_line(output: str) -> str:
    """The process's own message: the last line, without Celery's root-user warning before it."""
    lines = [line for line in output.strip().splitlines() if line.startswith("writeback:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output, output
    return lines[0]


def test_a_misspelt_connector_key_stops_every_process_before_any_work(world_factory) -> None:
    """``apiurl`` for ``api_url``: before, the worker started and every task "succeeded" as partial."""
    world: World = world_factory(connection={"apiurl": "https://api.hubapi.com"})
    deal = world.deal_recording("rec-typo", "2500")

    for name in ("worker", "beat", "webhook"):
        code, output = world.processes.exit_of(name)
        assert code == 2, output
        assert "unknown key 'apiurl' for connector 'hubspot'" in one_line(output)
    for command in (("ready",), ("poll",), ("sync", "rec-typo", "--dry-run")):
        result = world.processes.cli(*command)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "unknown key 'apiurl'" in one_line(result.stderr) and result.stdout == ""
    assert world.hubspot.requests == [] and world.siro.requests == []  # nothing started any work

    world.write_config()  # fixed
    world.processes.start_worker()
    assert world.processes.cli("poll").returncode == 0
    world.wait_for_runs(["rec-typo"])
    assert world.outcomes("rec-typo") == {"amount": "written", "dealstage": "written"}
    assert world.hubspot.get_record("deals", deal)["amount"] == "2500"


def test_a_worker_without_what_it_needs_to_work_does_not_start(world_factory) -> None:
    """No Siro token, or no [[connections]]: before, the worker started and failed every task."""
    world: World = world_factory()
    env = {key: value for key, value in world.processes.env.items() if key != "SIRO_API_TOKEN"}
    code, output = ServiceProcesses(world.processes.folder, env).exit_of("worker")
    assert code == 2 and "SIRO_API_TOKEN is not set" in one_line(output)

    world.write_config(connections=[])
    code, output = world.processes.exit_of("worker")
    assert code == 2 and "no [[connections]] configured" in one_line(output)


def test_a_misspelt_deny_entry_writes_nothing_until_fixed_and_says_which(world_factory) -> None:
    """``deny = ["deals.amont"]``: before, check passed and the real ``amount`` was written."""
    world: World = world_factory(connection={"fields": {"deny": ["deals.amont"]}})
    deal = world.deal_recording("rec-deny", "9999")

    check = world.processes.cli("check", "--json")
    assert check.returncode == 2, check.stdout + check.stderr
    failed = [f["message"] for f in json.loads(check.stdout)["findings"] if f["level"] == "fail"]
    assert failed == ["deny entry 'deals.amont': the CRM's deals has no field 'amont' (did you mean 'amount'?): "
                      "nothing is written on this connection until it is fixed"]

    world.processes.start_worker()
    url = world.processes.start_webhook()
    assert post(url, world.siro.webhook_payload("rec-deny")).status_code == 202
    wait_for(lambda: world.ledger.dead_letter("rec-deny"), 60, "the recording was not dead-lettered")
    letter = world.ledger.dead_letter("rec-deny")
    assert (letter.reason, letter.connection, letter.attempts) == ("config", "hs", 1)
    assert "deny entry 'deals.amont'" in letter.error
    assert world.hubspot.requests_to("POST", "batch/update") == []
    assert world.hubspot.get_record("deals", deal)["amount"] == "1000"
    assert "deny entry 'deals.amont'" in world.processes.logs()  # the worker said it, as an error

    sync = world.processes.cli("sync", "rec-deny")
    assert sync.returncode == 2
    assert one_line(sync.stderr).startswith("writeback: nothing written: config: deny entry 'deals.amont'")

    world.write_config(connection={"fields": {"deny": ["deals.amount"]}})  # what was meant
    world.processes.stop()
    world.processes.start_worker("w2")
    retried = world.processes.cli("retry", "--all")
    assert retried.returncode == 0, retried.stderr
    wait_for(lambda: world.ledger.dead_letter("rec-deny") is None and len(world.finished_runs("rec-deny")) >= 2,
             60, "the retried recording was not written")
    assert world.outcomes("rec-deny") == {"amount": "skipped_policy", "dealstage": "written"}
    assert world.hubspot.get_record("deals", deal)["amount"] == "1000"  # denied, as meant
    assert world.hubspot.get_record("deals", deal)["dealstage"] == "contractsent"


def test_shadow_mode_records_what_it_would_write_then_live_and_a_backfill_write_it(world_factory) -> None:
    world: World = world_factory(connection={"mode": "shadow"})
    started = datetime.now(UTC) - timedelta(minutes=5)
    deals = {rid: world.deal_recording(rid, amount) for rid, amount in (("rec-sh-1", "4100"), ("rec-sh-2", "4200"))}
    world.processes.start_worker()
    url = world.processes.start_webhook()
    for rid in deals:
        assert post(url, world.siro.webhook_payload(rid)).status_code == 202
    world.wait_for_runs(list(deals))

    assert world.hubspot.requests_to("POST", "batch/update") == []  # zero write requests
    assert world.hubspot.requests_to("POST", "batch/read")  # it did read the CRM
    for rid, deal in deals.items():
        assert world.outcomes(rid) == {"amount": "planned", "dealstage": "planned"}
        lines = [a.line for a in world.ledger.attempts(rid)]
        assert {line.reason for line in lines} == {'shadow: mode = "shadow", nothing is sent'}
        assert world.hubspot.get_record("deals", deal)["amount"] == "1000"
        assert world.finished_runs(rid)[0].status == "ok"

    world.write_config(connection={"mode": "live"})
    world.processes.stop()
    world.processes.start_worker("w2")
    backfill = world.processes.cli("backfill", "--since", started.isoformat(), "--json")
    assert backfill.returncode == 0, backfill.stderr
    wait_for(lambda: all(len(world.finished_runs(rid)) >= 2 for rid in deals), 60, "the backfill was not written")
    for rid, deal in deals.items():
        assert world.outcomes(rid) == {"amount": "written", "dealstage": "written"}
        assert world.hubspot.get_record("deals", deal)["amount"] == {"rec-sh-1": "4100", "rec-sh-2": "4200"}[rid]
    assert world.applied_writes() == Counter({(deal, prop): 1 for deal in deals.values()
                                              for prop in ("amount", "dealstage")})
