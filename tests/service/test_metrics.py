"""Prometheus metrics (DESIGN §8): what each one-line observation counts, the ledger's gauges, and
both ``/metrics`` endpoints of the deployed service checked against the ledger.

The unit tests read this process's default registry (deltas: the counters are
process-wide) and a real SQLite ledger; no server. The end-to-end test runs a
real Celery worker (prefork, two pool processes) and the webhook app on a
private Redis with the Siro and HubSpot simulators, sends webhooks, scrapes
both endpoints over HTTP and compares what they say with what the ledger and
the simulators hold.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from simulators.server import free_port
from tests.fixtures.processes import WEBHOOK_SECRET, wait_for
from tests.fixtures.service import post
from worker import metrics
from worker.ledger import Ledger, ProposalRow
from worker.report import (
    FieldReport,
    NoteOutcome,
    NoteReport,
    Outcome,
    RecordingReport,
    Status,
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def line(outcome: Outcome, connection: str | None = "hs", obj: str | None = "deals") -> FieldReport:
    return FieldReport(connection, obj, "1", "amount", 1, 0, outcome, None, "Deal size")


# --------------------------------------------------------------------------- observations


def test_a_recorded_report_counts_each_field_and_note_by_its_labels() -> None:
    written = ("writeback_field_outcomes_total", {"connection": "hs", "object": "deals", "outcome": "written"})
    unlinked = ("writeback_field_outcomes_total", {"connection": "none", "object": "none", "outcome": "unlinked"})
    created = ("writeback_note_outcomes_total", {"connection": "hs", "outcome": "created"})
    before = [sample(name, **labels) for name, labels in (written, unlinked, created)]
    report = RecordingReport("rec-1", Status.OK, [line(Outcome.WRITTEN), line(Outcome.WRITTEN),
                                                  line(Outcome.UNLINKED, None, None)],
                             notes=[NoteReport("hs", "notes", "n1", (("deals", "1"),), NoteOutcome.CREATED)])

    metrics.recorded(report)

    after = [sample(name, **labels) for name, labels in (written, unlinked, created)]
    assert [a - b for a, b in zip(after, before)] == [2, 1, 1]


def test_the_webhook_to_write_time_is_observed_once_and_only_when_a_value_was_written() -> None:
    count = ("writeback_webhook_to_write_seconds_count", {"trigger": "webhook"})
    total = ("writeback_webhook_to_write_seconds_sum", {"trigger": "webhook"})
    before = sample(*count[:1], **count[1]), sample(*total[:1], **total[1])
    token = metrics.webhook_received_at.set(datetime.now(UTC).timestamp() - 3.0)
    try:
        metrics.recorded(RecordingReport("rec-2", Status.OK, [line(Outcome.UNCHANGED)]))
        assert sample(*count[:1], **count[1]) == before[0]  # nothing written: nothing to time
        metrics.recorded(RecordingReport("rec-2", Status.OK, [line(Outcome.WRITTEN)]))
        metrics.recorded(RecordingReport("rec-2", Status.OK, [line(Outcome.WRITTEN)]))  # same webhook
    finally:
        metrics.webhook_received_at.reset(token)
    assert sample(*count[:1], **count[1]) == before[0] + 1
    assert 3.0 <= sample(*total[:1], **total[1]) - before[1] < 60
    metrics.recorded(RecordingReport("rec-3", Status.OK, [line(Outcome.WRITTEN)]))  # no webhook (poll)
    assert sample(*count[:1], **count[1]) == before[0] + 1


def test_crm_and_siro_requests_keep_their_labels_bounded() -> None:
    labels = {"connection": "sf", "kind": "other", "status": "error"}
    before = sample("writeback_crm_requests_total", **labels)
    metrics.crm_request("sf", "/services/data/v60.0/query?q=rec-9", None)  # not a kind: counted as other
    assert sample("writeback_crm_requests_total", **labels) == before + 1
    before = sample("writeback_siro_requests_total", status="error"), sample("writeback_siro_requests_total",
                                                                             status="429")
    metrics.siro_request(None)
    metrics.siro_request(429)
    assert (sample("writeback_siro_requests_total", status="error"),
            sample("writeback_siro_requests_total", status="429")) == (before[0] + 1, before[1] + 1)


def test_the_gate_counts_what_a_connector_tells_it() -> None:
    from worker.limits.rate import RequestGate

    before = sample("writeback_crm_requests_total", connection="hs-main", kind="write", status="207")
    RequestGate("hs-main").observe_response("write", 207)
    assert sample("writeback_crm_requests_total", connection="hs-main", kind="write", status="207") == before + 1


def test_connectors_tell_their_gate_what_each_request_was_for() -> None:
    from connectors.hubspot.api import _kind as hubspot_kind
    from connectors.salesforce.session import _kind as salesforce_kind

    base = "https://acme.my.salesforce.com/services"
    assert salesforce_kind("POST", f"{base}/Soap/u/60.0") == "auth"
    assert salesforce_kind("POST", "https://login.salesforce.com/services/oauth2/token") == "auth"
    assert salesforce_kind("GET", f"{base}/data/v60.0/sobjects/Opportunity/describe") == "schema"
    assert salesforce_kind("GET", f"{base}/data/v60.0/query?q=SELECT+Id+FROM+Opportunity") == "read"
    assert salesforce_kind("PATCH", f"{base}/data/v60.0/composite/sobjects") == "write"
    api = "https://api.hubapi.com/crm/v3"
    assert hubspot_kind("GET", f"{api}/properties/deals/") == "schema"
    assert hubspot_kind("GET", f"{api}/pipelines/deals/") == "schema"
    assert hubspot_kind("POST", f"{api}/objects/deals/batch/read") == "read"
    assert hubspot_kind("POST", f"{api}/objects/deals/batch/update") == "write"


# --------------------------------------------------------------------------- ledger gauges


def gauges(collector: metrics.LedgerCollector) -> dict[str, float]:
    return {family.name: family.samples[0].value for family in collector.collect()}


def test_the_ledger_gauges_are_read_at_scrape_time(sqlite_url: str) -> None:
    ledger = Ledger.open(sqlite_url)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    collector = metrics.LedgerCollector(lambda: ledger, clock=lambda: now)
    try:
        assert gauges(collector) == {"writeback_ledger_up": 1, "writeback_dead_letters": 0,
                                     "writeback_pending_reviews": 0}  # no watermark yet: no lag
        for rid in ("rec-a", "rec-b"):
            ledger.add_dead_letter(rid, reason="auth", error="refused", trigger="webhook", attempts=1)
        ledger.add_dead_letter("rec-a", reason="auth", error="again", trigger="retry", attempts=1)  # one row
        for record_id in ("1", "2", "3"):
            ledger.propose(ProposalRow("hs", "deals", record_id, "dealstage", "closedwon", "qualified", "rec-a",
                                       "Stage"))
        ledger.decide_proposals([ledger.proposals()[0].id], "rejected")
        ledger.advance_watermark("poll", now - timedelta(minutes=5))

        assert gauges(collector) == {"writeback_ledger_up": 1, "writeback_dead_letters": 2,
                                     "writeback_pending_reviews": 2, "writeback_poll_lag_seconds": 300}
        ledger.remove_dead_letter("rec-b")
        assert gauges(collector)["writeback_dead_letters"] == 1  # the next scrape sees it at once
    finally:
        ledger.close()


def test_a_ledger_that_does_not_answer_gives_ledger_up_0_and_the_scrape_goes_on() -> None:
    def broken() -> Any:
        raise ConnectionError("database down")

    scraped = metrics.registry(metrics.LedgerCollector(broken))
    text = metrics.exposition(scraped).decode()
    assert "writeback_ledger_up 0.0" in text
    assert "\nwriteback_dead_letters " not in text
    assert "writeback_crm_requests_total" in text  # the counters still come through


# --------------------------------------------------------------------------- end to end


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``name -> [(labels, value)]`` of every sample a ``/metrics`` answer holds."""
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/plain")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for item in family.samples:
            found.setdefault(item.name, []).append((dict(item.labels), item.value))
    return found


def total(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(value for have, value in found.get(name, []) if all(have.get(k) == v for k, v in labels.items()))


@pytest.mark.slow
def test_both_endpoints_agree_with_the_ledger_after_webhooks(world_factory) -> None:
    port = free_port()
    world = world_factory(worker={"metrics_port": port})
    world.processes.env["WRITEBACK_LOG_FORMAT"] = "json"
    world.deal_recording("rec-m1", 42000)                       # written, written
    world.deal_recording("rec-m2", "1000", stage="No such stage")  # unchanged, invalid_value
    world.deal_recording("rec-m3", 7)                           # written, written
    world.deal_recording("rec-dead", 9)                         # Siro refuses the token: a dead letter
    world.siro.fail_next(401, path="/v1/core/recordings/rec-dead")
    # rec-m1's fetch is slow: one pool process waits on it while the other takes the rest,
    # so both processes count and one scrape must add them up.
    world.siro.fail_next(None, path="/v1/core/recordings/rec-m1", delay=2.0)
    world.processes.start_worker(concurrency=2)
    url = world.processes.start_webhook()

    ids = ["rec-m1", "rec-m2", "rec-m3", "rec-dead"]
    assert [post(url, world.siro.webhook_payload(rid)).status_code for rid in ids] == [202] * 4
    assert post(url, world.siro.webhook_payload("rec-m2")).status_code == 200  # duplicate
    assert post(url, world.siro.webhook_payload("rec-m2"), secret="wrong-secret").status_code == 401
    world.wait_for_runs(["rec-m1", "rec-m2", "rec-m3"])
    wait_for(lambda: world.ledger.dead_letters(), 30, "rec-dead is not dead-lettered")

    attempts = [row.line for rid in ids for row in world.ledger.attempts(rid)]
    expected = Counter((a.connection, a.object, str(a.outcome)) for a in attempts)
    assert expected == Counter({("hs", "deals", "written"): 4, ("hs", "deals", "unchanged"): 1,
                                ("hs", "deals", "invalid_value"): 1})
    worker_url = f"http://127.0.0.1:{port}/metrics"

    def worker_counts() -> Counter:
        found = scrape(worker_url)
        return Counter({(labels["connection"], labels["object"], labels["outcome"]): int(value)
                        for labels, value in found.get("writeback_field_outcomes_total", []) if value})

    wait_for(lambda: worker_counts() == expected, 20, "the worker's field outcomes do not match the ledger")
    worker = scrape(worker_url)
    webhook = scrape(f"{url}/metrics")

    # Both pool processes did work (the slow fetch saw to it), and the one scrape added them up.
    log = (world.processes.folder / "w1.log").read_text()
    lines = [json.loads(text) for text in log.splitlines() if text.startswith("{")]
    writers = {entry["process"] for entry in lines if " succeeded in " in entry["message"]}
    assert len(writers) == 2, writers

    # The webhook app: each delivery by its answer.
    assert total(webhook, "writeback_webhook_deliveries_total", answer="enqueued") == 4
    assert total(webhook, "writeback_webhook_deliveries_total", answer="duplicate") == 1
    assert total(webhook, "writeback_webhook_deliveries_total", answer="unauthorized") == 1

    # The CRM and Siro: every request the simulators received, counted once, by what answered.
    hubspot = world.hubspot.requests
    assert total(worker, "writeback_crm_requests_total", connection="hs") == len(hubspot) > 0
    updates = world.hubspot.requests_to("POST", "batch/update")
    assert total(worker, "writeback_crm_requests_total", connection="hs", kind="write") == len(updates) > 0
    assert total(worker, "writeback_crm_requests_total", connection="hs", kind="read") > 0
    assert total(worker, "writeback_crm_requests_total", connection="hs", kind="schema") > 0
    recordings = world.siro.requests_to("/v1/core/recordings")
    assert total(worker, "writeback_siro_requests_total") == len(world.siro.requests) >= len(recordings) == 4
    assert total(worker, "writeback_siro_requests_total", status="401") == 1

    # Gauges from the ledger; tasks timed; the webhook-to-write time of the two recordings written.
    assert total(worker, "writeback_dead_letters") == len(world.ledger.dead_letters()) == 1
    assert total(worker, "writeback_pending_reviews") == 0
    assert total(worker, "writeback_ledger_up") == 1
    assert total(worker, "writeback_task_seconds_count", task="worker.tasks.process_recording") >= 4
    assert total(worker, "writeback_webhook_to_write_seconds_count") == 2
    # Bounded labels: no recording id anywhere.
    assert "rec-" not in httpx.get(worker_url).text + httpx.get(f"{url}/metrics").text

    # WRITEBACK_LOG_FORMAT=json: one object a line, the task's ids on its lines, no secret anywhere.
    assert lines and all({"time", "level", "logger", "process", "message"} <= set(entry) for entry in lines)
    assert any(entry.get("recording_id") == "rec-m2" and entry.get("task_id") for entry in lines)
    hook_log = (world.processes.folder / "webhook.log").read_text()
    assert any(json.loads(text)["logger"].startswith("uvicorn") for text in hook_log.splitlines()
               if text.startswith("{"))
    assert WEBHOOK_SECRET not in world.processes.logs()


def test_celery_sends_task_events_for_flower_and_celery_exporter(tmp_path) -> None:  # noqa: ANN001
    from worker.service.celery_app import celery_config
    from worker.settings import Settings, parse_config

    config = parse_config({"connections": [{"connector": "hubspot", "access_token": "x"}],
                           "worker": {"metrics_port": 9100}}, env={})
    settings = Settings(config=config, database_url=f"sqlite:///{tmp_path}/l.db", broker_url="memory://")
    conf = celery_config(settings)
    assert conf["worker_send_task_events"] is True and conf["task_send_sent_event"] is True
    assert settings.config.worker.metrics_port == 9100
