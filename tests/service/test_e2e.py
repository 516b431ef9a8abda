
"""End to end, the deployed service: Siro webhook or beat → Redis → Celery worker → CRM.

Real processes (``celery -A worker worker``/``beat``, ``writeback webhook``,
``writeback poll``) on a private ``redis-server``, the Siro and HubSpot
simulators over HTTP, hubspot-api-client, and the ledger on SQLite and on
PostgreSQL. What a user would check: what the CRM holds, how many write
requests it received for each field, what the ledger and ``writeback failed``
say, and the HTTP answers of the webhook.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.siro import SiroState
from tests.fixtures.processes import WEBHOOK_SECRET, ServiceProcesses, wait_for
from tests.fixtures.service import CONNECTION_ID, RATE, World, post

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # real Celery workers, beat and the webhook app

X = SiroState.extraction

# --------------------------------------------------------------------------- webhook


def test_a_webhook_leads_to_the_crm_write_once(world: World) -> None:
    deal = world.deal_recording("rec-hook", 42000)
    world.processes.start_worker()
    url = world.processes.start_webhook()
    payload = world.siro.webhook_payload("rec-hook")

    assert post(url, payload, secret=None).status_code == 401
    assert post(url, payload, secret="wrong-secret").status_code == 401
    assert post(url, payload, secret=None, path="/wrong-secret").status_code == 401

    started = time.monotonic()
    answers = [post(url, payload) for _ in range(5)]
    assert [a.status_code for a in answers] == [202, 200, 200, 200, 200]
    assert [a.json()["status"] for a in answers] == ["enqueued"] + ["duplicate"] * 4
    assert {a.json()["taskId"] for a in answers} == {answers[0].json()["taskId"]}

    world.wait_for_runs(["rec-hook"])
    writes = world.hubspot.requests_to("POST", "batch/update")
    print(f"webhook to CRM write: {writes[0].at - started:.3f} s")  # the figure for the closing note
    assert world.hubspot.get_record("deals", deal)["amount"] == "42000"
    assert world.hubspot.get_record("deals", deal)["dealstage"] == "contractsent"
    assert world.applied_writes() == Counter({(deal, "amount"): 1, (deal, "dealstage"): 1})
    assert world.outcomes("rec-hook") == {"amount": "written", "dealstage": "written"}
    # One task, one fetch: the refused and the repeated deliveries fetched nothing.
    assert len(world.siro.requests_to("/v1/core/recordings/rec-hook")) == 1
    assert world.ledger.runs("rec-hook")[0].trigger == "webhook"

    # The secret as the last path segment works too; a new event (new links) is a new task.
    world.hubspot.set_values("deals", deal, amount="1")
    world.siro.update_recording("rec-hook", title="re-processed")
    again = post(url, {**payload, "eventType": "integrations.recordingLinked"}, secret=None,
                 path=f"/{WEBHOOK_SECRET}")
    assert again.status_code == 202, again.text
    world.wait_for_runs(["rec-hook"], count=2)
    assert world.hubspot.get_record("deals", deal)["amount"] == "42000"
    assert world.outcomes("rec-hook") == {"amount": "written", "dealstage": "unchanged"}
    assert WEBHOOK_SECRET not in world.processes.logs()


def test_a_webhook_leads_to_the_salesforce_write_once(world_factory, salesforce_server, salesforce_state,
                                                     salesforce_ids, salesforce_token) -> None:
    world = world_factory(connections=[{
        "integration_connection_id": "ic_sf", "connector": "salesforce", "name": "sf",
        "instance_url": salesforce_server.url, "access_token": salesforce_token,
    }])
    opportunity = salesforce_ids.opportunity
    world.siro.add_recording("rec-sf", entity_extractions=[X("Deal size", "18,750", ("Opportunity", "Amount")),
                                                          X("Next step", "Send the quote", ("Opportunity", "NextStep"))])
    world.siro.link("rec-sf", integration_connection_id="ic_sf", opportunity=opportunity)
    world.processes.start_worker()
    url = world.processes.start_webhook()

    answers = [post(url, world.siro.webhook_payload("rec-sf")).status_code for _ in range(5)]

    assert answers == [202, 200, 200, 200, 200]
    world.wait_for_runs(["rec-sf"])
    assert salesforce_state.get_record("Opportunity", opportunity)["Amount"] == 18750
    assert salesforce_state.get_record("Opportunity", opportunity)["NextStep"] == "Send the quote"
    patches = salesforce_state.requests_matching("PATCH", "composite/sobjects")
    assert [sorted(record) for patch in patches for record in patch.body["records"]] == [
        ["Amount", "NextStep", "attributes", "id"]]
    assert world.outcomes("rec-sf") == {"Amount": "written", "NextStep": "written"}


def test_a_dead_broker_gets_503_and_the_retried_delivery_is_taken(world_factory, tmp_path: Path) -> None:
    world = world_factory()
    world.deal_recording("rec-503", 7)
    dead = ServiceProcesses(tmp_path / "dead", {**world.processes.env, "WRITEBACK_BROKER_URL":
                                                 "redis://127.0.0.1:1/0", "WRITEBACK_REDIS_URL":
                                                 world.processes.env["WRITEBACK_BROKER_URL"]})
    (tmp_path / "dead").mkdir()
    try:
        url = dead.start_webhook()
        started = time.monotonic()
        answer = post(url, world.siro.webhook_payload("rec-503"))
        assert answer.status_code == 503
        assert time.monotonic() - started < 10
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
    finally:
        dead.stop()
    # The same delivery, retried once the broker is back, is enqueued (no dedupe key was stored).
    url = world.processes.start_webhook()
    assert post(url, world.siro.webhook_payload("rec-503")).status_code == 202
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200


# --------------------------------------------------------------------------- polling


def test_poll_writes_new_recordings_then_nothing_then_only_what_changed(world: World) -> None:
    deals = {rid: world.deal_recording(rid, 2000 + i) for i, rid in enumerate(["rec-p1", "rec-p2", "rec-p3"])}
    world.processes.start_worker()

    first = world.processes.cli("poll", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["recordings"] == 3 and json.loads(first.stdout)["enqueued"] == 1
    world.wait_for_runs(list(deals))
    for i, (rid, deal) in enumerate(deals.items()):
        assert world.hubspot.get_record("deals", deal)["amount"] == str(2000 + i)
        assert world.outcomes(rid) == {"amount": "written", "dealstage": "written"}
    # One page: one batch read and one batch update for the three deals.
    assert len(world.hubspot.requests_to("POST", "batch/update")) == 1

    world.hubspot.clear_requests()
    second = world.processes.cli("poll", "--json")
    assert second.returncode == 0, second.stderr
    world.wait_for_runs(list(deals), count=2)
    assert world.hubspot.requests_to("POST", "batch/update") == []
    assert all(set(world.outcomes(rid).values()) == {"unchanged"} for rid in deals)

    world.siro.set_extractions("rec-p2", [X("Deal size", 9999, ("Deal", "amount")),
                                          X("Stage", "Contract Sent", ("Deal", "dealstage"))])
    third = world.processes.cli("poll", "--json")
    assert third.returncode == 0, third.stderr
    world.wait_for_runs(["rec-p2"], count=3)
    updates = world.hubspot.requests_to("POST", "batch/update")
    assert [request.body["inputs"] for request in updates] == [
        [{"id": deals["rec-p2"], "properties": {"amount": "9999"}}]
    ]
    assert world.applied_writes() == Counter({(deals["rec-p2"], "amount"): 1})


def test_beat_polls_on_its_schedule_and_a_recording_linked_later_is_written(world_factory) -> None:
    world = world_factory()
    world.siro.add_recording("rec-late", entity_extractions=[X("Deal size", 321, ("Deal", "amount"))])
    world.processes.start_worker()
    world.processes.start_beat()
    # Not linked yet: processed and skipped, nothing fails.
    world.wait_for_runs(["rec-late"])
    assert world.finished_runs("rec-late")[0].status == "skipped"
    assert world.ledger.watermark("poll") is not None

    deal = world.hubspot.add_record("deals", {"dealname": "Late", "amount": "5"})
    world.siro.link("rec-late", integration_connection_id=CONNECTION_ID, opportunity=deal)
    wait_for(lambda: world.hubspot.get_record("deals", deal)["amount"] == "321", 60, "the linked recording was not written")
    assert world.applied_writes() == Counter({(deal, "amount"): 1})


# --------------------------------------------------------------------------- crashes and outages


def test_a_worker_killed_mid_task_is_redelivered_and_writes_nothing_twice(world: World) -> None:
    deal = world.deal_recording("rec-kill", 77000)
    # The CRM applies the update, then takes 30 s to answer: the worker dies in between.
    world.hubspot.hold_answers("batch/update", 30)
    first = world.processes.start_worker("w1")
    url = world.processes.start_webhook()
    assert post(url, world.siro.webhook_payload("rec-kill")).status_code == 202
    wait_for(lambda: world.hubspot.requests_to("POST", "batch/update"), 60, "the write never reached the CRM")
    world.processes.kill(first, signal.SIGKILL)
    assert world.finished_runs("rec-kill") == []

    world.processes.start_worker("w2")
    world.wait_for_runs(["rec-kill"], timeout=90)
    assert world.hubspot.get_record("deals", deal)["amount"] == "77000"
    assert world.applied_writes() == Counter({(deal, "amount"): 1, (deal, "dealstage"): 1})
    # The second worker read the CRM first and found the values there.
    assert world.outcomes("rec-kill") == {"amount": "unchanged", "dealstage": "unchanged"}


def test_two_events_for_one_recording_at_once_write_each_field_once(world: World) -> None:
    """Siro sends recordingProcessed and recordingLinked for one change: two tasks, one write."""
    deal = world.deal_recording("rec-twice", 31337)
    world.hubspot.hold_answers("batch/read", 1.0, times=2)  # both tasks would read before either writes
    world.processes.start_worker(concurrency=2)
    url = world.processes.start_webhook()
    processed = world.siro.webhook_payload("rec-twice")
    linked = {**processed, "eventType": "integrations.recordingLinked"}

    assert [post(url, processed).status_code, post(url, linked).status_code] == [202, 202]

    world.wait_for_runs(["rec-twice"], count=2, timeout=90)
    assert world.applied_writes() == Counter({(deal, "amount"): 1, (deal, "dealstage"): 1})
    assert world.hubspot.get_record("deals", deal)["amount"] == "31337"


def test_crm_outage_and_rate_limit_every_field_lands_once_within_the_rate(world_factory) -> None:
    world = world_factory(connection={"rate_limit": {"requests": RATE, "per_s": 1.0}})
    ids = [f"rec-r{i}" for i in range(6)]
    deals = {rid: world.deal_recording(rid, 500 + i) for i, rid in enumerate(ids)}
    world.hubspot.rate_limit(RATE, 1.0)  # the portal enforces the same limit: a burst earns a 429
    world.hubspot.fail_next(503, times=3, path_contains="batch/update")
    world.hubspot.fail_next(429, {"status": "error", "message": "You have reached your secondly limit.",
                                  "errorType": "RATE_LIMIT", "correlationId": "", "policyName": "SECONDLY"},
                            times=2, path_contains="batch/read", headers={"Retry-After": "1"})
    world.processes.start_worker("w1", concurrency=2)
    world.processes.start_worker("w2", concurrency=2)
    url = world.processes.start_webhook()
    for rid in ids:
        assert post(url, world.siro.webhook_payload(rid)).status_code == 202

    world.wait_for_runs(ids, timeout=120)
    wait_for(lambda: all(world.hubspot.get_record("deals", deal)["amount"] == str(500 + i)
                         for i, deal in enumerate(deals.values())), 120, "not every field landed")
    writes = world.applied_writes()
    assert all(writes[(deal, "amount")] == 1 and writes[(deal, "dealstage")] == 1 for deal in deals.values())
    assert world.ledger.dead_letters() == []

    arrivals = sorted(request.at for request in world.hubspot.requests)
    # The limiter counts by Redis' clock, the portal by arrival: allow 50 ms of transit jitter.
    busiest = max(sum(1 for t in arrivals if start <= t < start + 0.95) for start in arrivals)
    assert busiest <= RATE, f"{busiest} requests within a second"
    rate_limited = [r for r in world.hubspot.requests if r.status == 429 and r.authenticated]
    assert rate_limited == [], "the portal's own limit was hit"


def test_retries_spent_go_to_the_dead_letter_list_and_retry_replays(world_factory) -> None:
    world = world_factory(retry={"max_retries": 2, "base_s": 0.1, "max_s": 0.5})
    deal = world.deal_recording("rec-dead", 123)
    world.hubspot.fail_next(503, times=1000, path_contains="batch/update")
    world.processes.start_worker()
    url = world.processes.start_webhook()
    assert post(url, world.siro.webhook_payload("rec-dead")).status_code == 202

    def listed() -> list[dict[str, Any]]:
        shown = world.processes.cli("failed", "--json")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)

    letters = wait_for(listed, 60, "the recording never reached the dead-letter list")
    assert [(row["recording_id"], row["reason"], row["attempts"]) for row in letters] == [
        ("rec-dead", "retries_exhausted", 3)]
    assert "503" in letters[0]["error"] or "unavailable" in letters[0]["error"].lower()
    assert world.hubspot.get_record("deals", deal)["amount"] == "1000"

    world.hubspot.clear_faults()
    replay = world.processes.cli("retry", "--all")
    assert replay.returncode == 0, replay.stderr
    wait_for(lambda: world.hubspot.get_record("deals", deal)["amount"] == "123", 60, "the retry did not write")
    assert listed() == []
    assert world.ledger.runs("rec-dead")[0].trigger == "retry"
