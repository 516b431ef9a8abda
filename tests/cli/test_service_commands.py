
"""End to end, the operator's commands around the deployed service.

``writeback backfill``, ``poll --in-process``, ``failed``/``retry``, ``ready``
and ``webhook`` run as real processes next to real Celery workers on a private
``redis-server``, against the Siro and HubSpot simulators over HTTP. What a
user would check: exit codes and what the commands print, what the CRM holds,
the poll watermark, the dead-letter list, and that no secret shows up in any
output or log.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulators.hubspot import DEFAULT_TOKEN
from simulators.server import free_port
from tests.fixtures.processes import WEBHOOK_SECRET, ServiceProcesses, wait_for
from tests.fixtures.service import World, post
from worker.ledger import RunRow

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # the service commands as subprocesses

DEAD_BROKER = "redis://127.0.0.1:1/0"


class Cli:
    """``writeback`` as the operator runs it, with every output kept for the secrets check."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.outputs: list[str] = []

    def __call__(self, *args: str, env: dict[str, str | None] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        processes = self.world.processes
        if env:
            merged = {**processes.env, **env}
            processes = ServiceProcesses(processes.folder, {k: v for k, v in merged.items() if v is not None})
        result = processes.cli(*args, timeout=timeout)
        self.outputs += [result.stdout, result.stderr]
        print(f"$ writeback {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}")
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def failed(self) -> list[dict[str, Any]]:
        shown = self("failed", "--json")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)

    def assert_no_secrets(self) -> None:
        """Neither the webhook secret, the Siro token nor the HubSpot token in any output or log."""
        logs = [log.read_text(errors="replace") for log in sorted(self.world.processes.folder.glob("*.log"))]
        siro_token = self.world.processes.env["SIRO_API_TOKEN"]
        for secret in (WEBHOOK_SECRET, siro_token, DEFAULT_TOKEN):
            assert not any(secret in text for text in self.outputs + logs), "a secret leaked"


def error_lines(stderr: str) -> list[str]:
    """stderr without argparse's usage synopsis (``usage: ...`` and its indented continuation)."""
    lines = stderr.strip().splitlines()
    return [line for line in lines if not line.startswith("usage:") and not line.startswith(" ")]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def backfill_runs(world: World, recording_id: str) -> list[RunRow]:
    return [run for run in world.finished_runs(recording_id) if run.trigger == "backfill" and not run.dry_run]


# --------------------------------------------------------------------------- backfill


def test_backfill_dry_run_then_enqueued_writes_only_the_window_and_leaves_the_watermark(world: World) -> None:
    cli = Cli(world)
    stamps = {
        "rec-bf-early": "2024-03-01T00:00:00.000Z",  # before the window
        "rec-bf-since": "2024-03-05T00:00:00.000Z",  # on --since: inside
        "rec-bf-mid": "2024-03-12T08:30:00.000Z",  # inside
        "rec-bf-until": "2024-03-20T00:00:00.000Z",  # on --until: outside
    }
    deals = {}
    for i, (rid, stamp) in enumerate(stamps.items()):
        deals[rid] = world.deal_recording(rid, 3000 + i)
        world.siro.update_recording(rid, updated_at=stamp)
    deals["rec-bf-now"] = world.deal_recording("rec-bf-now", 3999)  # updated now: outside
    inside = ["rec-bf-since", "rec-bf-mid"]
    mark = world.ledger.advance_watermark("poll", datetime(2024, 3, 8, tzinfo=UTC))
    # The same instant as 2024-03-20T00:00:00Z, given with an offset.
    window = ["--since", "2024-03-05T00:00:00Z", "--until", "2024-03-20T01:00:00+01:00"]

    planned = cli("backfill", *window, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "2 recording(s) in 1 page(s)" in planned.stdout, planned.stdout
    assert "planned (dry run): 4 planned" in planned.stdout, planned.stdout
    assert all(backfill_runs(world, rid) == [] for rid in stamps)
    assert world.hubspot.requests_to("POST", "batch/update") == []
    assert all(world.hubspot.get_record("deals", deal)["amount"] == "1000" for deal in deals.values())
    assert world.ledger.watermark("poll") == mark

    world.processes.start_worker()
    enqueued = cli("backfill", *window, "--json")
    assert enqueued.returncode == 0, enqueued.stderr
    assert json.loads(enqueued.stdout) == {"pages": 1, "recordings": 2, "enqueued": 1}
    wait_for(lambda: all(backfill_runs(world, rid) for rid in inside), 60, "the backfill page was not written")
    for rid in inside:
        amount = str(3000 + list(stamps).index(rid))
        assert world.hubspot.get_record("deals", deals[rid])["amount"] == amount
        assert world.outcomes(rid) == {"amount": "written", "dealstage": "written"}
    assert world.applied_writes() == Counter({(deals[rid], prop): 1 for rid in inside
                                              for prop in ("amount", "dealstage")})
    for rid in ("rec-bf-early", "rec-bf-until", "rec-bf-now"):
        assert world.hubspot.get_record("deals", deals[rid])["amount"] == "1000"
        assert backfill_runs(world, rid) == []
    assert world.ledger.watermark("poll") == mark
    cli.assert_no_secrets()


def test_backfill_rejects_a_malformed_or_empty_window(world_factory) -> None:
    world = world_factory()
    cli = Cli(world)

    malformed = cli("backfill", "--since", "last tuesday")
    assert malformed.returncode == 2
    assert len(error_lines(malformed.stderr)) == 1, malformed.stderr
    assert "--since" in malformed.stderr and "last tuesday" in malformed.stderr

    backwards = cli("backfill", "--since", "2024-03-20T00:00:00Z", "--until", "2024-03-05T00:00:00Z")
    assert backwards.returncode == 2
    assert len(backwards.stderr.strip().splitlines()) == 1, backwards.stderr
    assert "--since" in backwards.stderr and "--until" in backwards.stderr
    assert backwards.stdout == ""
    assert world.siro.requests == []  # refused before anything was listed
    assert world.ledger.watermark("poll") is None
    cli.assert_no_secrets()


# --------------------------------------------------------------------------- failures


def test_rejected_crm_credentials_dead_letter_at_once_and_retry_writes_after_restoring(world: World) -> None:
    cli = Cli(world)
    deal = world.deal_recording("rec-auth", 31000)
    world.hubspot.expire_token(DEFAULT_TOKEN)
    world.processes.start_worker()
    url = world.processes.start_webhook()
    assert post(url, world.siro.webhook_payload("rec-auth")).status_code == 202

    letters = wait_for(cli.failed, 60, "the recording never reached the dead-letter list")
    assert [(row["recording_id"], row["reason"], row["attempts"]) for row in letters] == [("rec-auth", "auth", 1)]
    table = cli("failed")
    assert table.returncode == 0 and "rec-auth" in table.stdout and "auth" in table.stdout, table.stdout
    # One task attempt: one fetch from Siro, each CRM call once, all refused, nothing written.
    assert len(world.siro.requests_to("/v1/core/recordings/rec-auth")) == 1
    calls = world.hubspot.requests
    assert calls and all(r.status == 401 and not r.authenticated for r in calls), calls
    assert max(Counter((r.method, r.path) for r in calls).values()) == 1, calls
    assert world.hubspot.requests_to("POST", "batch/update") == []
    assert world.hubspot.get_record("deals", deal)["amount"] == "1000"
    assert [(run.status, run.reason) for run in world.finished_runs("rec-auth")] == [("failed", "auth")]

    world.hubspot.add_token(DEFAULT_TOKEN)  # the operator renewed the token
    replay = cli("retry", "rec-auth")
    assert replay.returncode == 0, replay.stderr
    assert "rec-auth" in replay.stdout and "not on the dead-letter list" not in replay.stderr
    world.wait_for_runs(["rec-auth"], count=2)
    assert world.hubspot.get_record("deals", deal)["amount"] == "31000"
    assert world.outcomes("rec-auth") == {"amount": "written", "dealstage": "written"}
    assert world.ledger.runs("rec-auth")[0].trigger == "retry"
    assert cli.failed() == []
    cli.assert_no_secrets()


def test_siro_unavailable_for_a_while_the_webhook_task_retries_and_writes_once(world_factory) -> None:
    world = world_factory()
    cli = Cli(world)
    deal = world.deal_recording("rec-siro", 8800)
    # More 503s than the client's in-task retries (3 requests per task attempt): the task itself retries.
    world.siro.fail_next(503, times=5, path="/v1/core/recordings/rec-siro")
    world.processes.start_worker()
    url = world.processes.start_webhook()
    assert post(url, world.siro.webhook_payload("rec-siro")).status_code == 202

    world.wait_for_runs(["rec-siro"])
    assert world.hubspot.get_record("deals", deal)["amount"] == "8800"
    assert world.applied_writes() == Counter({(deal, "amount"): 1, (deal, "dealstage"): 1})
    assert [r.status for r in world.siro.requests_to("/v1/core/recordings/rec-siro")] == [503] * 5 + [200]
    runs = world.finished_runs("rec-siro")
    assert [(run.status, run.trigger) for run in runs] == [("ok", "webhook")]
    assert world.outcomes("rec-siro") == {"amount": "written", "dealstage": "written"}
    assert cli.failed() == []
    cli.assert_no_secrets()


# --------------------------------------------------------------------------- poll


def test_poll_in_process_needs_no_broker_and_a_second_run_writes_nothing(world: World) -> None:
    cli = Cli(world)
    deals = {rid: world.deal_recording(rid, 6000 + i) for i, rid in enumerate(["rec-ip1", "rec-ip2", "rec-ip3"])}
    dead = {"WRITEBACK_BROKER_URL": DEAD_BROKER}

    first = cli("poll", "--in-process", "--json", env=dead)
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert set(body) == {"pages", "recordings", "enqueued", "watermark"}
    assert (body["pages"], body["recordings"], body["enqueued"]) == (1, 3, 0)
    newest = max(at(world.siro.recording(rid)["updatedAt"]) for rid in deals)
    assert at(body["watermark"]) == newest == world.ledger.watermark("poll")
    for i, (rid, deal) in enumerate(deals.items()):
        assert world.hubspot.get_record("deals", deal)["amount"] == str(6000 + i)
        assert world.outcomes(rid) == {"amount": "written", "dealstage": "written"}
        assert world.finished_runs(rid)[0].trigger == "poll"
    assert len(world.hubspot.requests_to("POST", "batch/update")) == 1

    second = cli("poll", "--in-process", "--json", env=dead)
    assert second.returncode == 0, second.stderr
    assert set(json.loads(second.stdout)) == {"pages", "recordings", "enqueued", "watermark"}
    assert len(world.hubspot.requests_to("POST", "batch/update")) == 1
    assert world.applied_writes() == Counter({(deal, prop): 1 for deal in deals.values()
                                              for prop in ("amount", "dealstage")})
    assert world.ledger.watermark("poll") == newest
    cli.assert_no_secrets()


def test_poll_in_process_puts_what_failed_transiently_on_the_dead_letter_list(world_factory) -> None:
    """No worker retries a page run here and the watermark moves on: nothing may be left behind."""
    world = world_factory(retry={"max_retries": 1, "base_s": 0.05, "max_s": 0.1})
    cli = Cli(world)
    deal = world.deal_recording("rec-ip-503", 4321)
    world.hubspot.fail_next(503, times=1000, path_contains="batch/update")

    result = cli("poll", "--in-process", "--json", env={"WRITEBACK_BROKER_URL": DEAD_BROKER})

    assert result.returncode == 1
    assert [(row["recording_id"], row["reason"]) for row in cli.failed()] == [("rec-ip-503", "retries_exhausted")]
    world.hubspot.clear_faults()
    world.processes.start_worker()
    assert cli("retry", "--all").returncode == 0
    wait_for(lambda: world.hubspot.get_record("deals", deal)["amount"] == "4321", 60, "the retry did not write")
    cli.assert_no_secrets()


def test_poll_with_a_dead_broker_exits_1_and_keeps_the_watermark(world_factory) -> None:
    world = world_factory()
    cli = Cli(world)
    deal = world.deal_recording("rec-nobroker", 4400)
    mark = world.ledger.advance_watermark("poll", datetime.now(UTC) - timedelta(minutes=10))

    result = cli("poll", "--json", env={"WRITEBACK_BROKER_URL": DEAD_BROKER})
    assert result.returncode == 1, (result.stdout, result.stderr)
    messages = [line for line in result.stderr.splitlines() if line.startswith("writeback:")]
    assert len(messages) == 1 and "WRITEBACK_BROKER_URL" in messages[0], result.stderr
    assert result.stdout == ""
    assert world.ledger.watermark("poll") == mark
    assert world.hubspot.get_record("deals", deal)["amount"] == "1000"
    cli.assert_no_secrets()


# --------------------------------------------------------------------------- webhook, ready


def test_webhook_without_a_secret_does_not_start_and_ready_reports_the_broker(world_factory) -> None:
    world = world_factory()
    cli = Cli(world)

    unsecured = cli("webhook", "--port", str(free_port()), timeout=30,
                    env={"WRITEBACK_WEBHOOK_SECRET": None, "WRITEBACK_WEBHOOK_SECRET_FILE": None})
    assert unsecured.returncode == 2
    assert len(unsecured.stderr.strip().splitlines()) == 1, unsecured.stderr
    assert "WRITEBACK_WEBHOOK_SECRET" in unsecured.stderr

    ready = cli("ready")
    assert ready.returncode == 0, (ready.stdout, ready.stderr)
    not_ready = cli("ready", env={"WRITEBACK_BROKER_URL": DEAD_BROKER})
    assert not_ready.returncode == 1, (not_ready.stdout, not_ready.stderr)
    assert "broker: unreachable" in not_ready.stdout and "database: ok" in not_ready.stdout
    cli.assert_no_secrets()


# --------------------------------------------------------------------------- failed, retry


def test_failed_and_retry_on_an_empty_list(world_factory) -> None:
    world = world_factory()
    cli = Cli(world)

    empty = cli("failed")
    assert empty.returncode == 0, empty.stderr
    assert "empty" in empty.stdout

    world.processes.start_worker()
    unknown = cli("retry", "rec-unknown")
    assert unknown.returncode == 0, unknown.stderr
    assert "rec-unknown" in unknown.stdout and "enqueued" in unknown.stdout
    assert "not on the dead-letter list" in unknown.stderr
    # A worker took it: Siro has no such recording, which is recorded, not retried.
    world.wait_for_runs(["rec-unknown"])
    assert [(run.status, run.trigger) for run in world.finished_runs("rec-unknown")] == [("failed", "retry")]
    assert cli.failed() == []

    bare = cli("retry")
    assert bare.returncode == 2
    assert len(error_lines(bare.stderr)) == 1, bare.stderr
    cli.assert_no_secrets()
