"""``writeback demo``: the deployed path on embedded defaults, no credentials.

Starts local simulators of Siro (HTTP), Salesforce (HTTPS with a throwaway
CA) and HubSpot seeded with sample recordings and CRM records, a Celery
worker on an embedded in-memory broker, and the webhook app on loopback. Then
it does what Siro does: posts a webhook per recording (one of them twice, and
one with a wrong secret). The worker fetches each recording, writes it
through the real connectors and client libraries, and records it in a fresh
temporary SQLite ledger; the demo prints what the ledger says was written.
Finally one polling pass sends the same recordings through the queue again as
a page task, to show that a second pass writes nothing.
"""

from __future__ import annotations

import json
import secrets
import time
import tomllib
from importlib import resources
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console

from simulators.local import LocalService, serve_demo
from simulators.server import ServedApp
from worker.cli.render import report_from_ledger, report_table, summarize
from worker.ledger import Ledger
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.runner import Pipeline
from worker.runtime import Runtime, use_runtime
from worker.settings import Settings, WritebackConfig, parse_config
from worker.siro.client import SiroClient

WAIT_S = 120.0


def demo_config(local: LocalService) -> WritebackConfig:
    """The packaged ``demo.toml``, pointed at these simulators (nothing of the user's config)."""
    raw = tomllib.loads(resources.files("worker.cli").joinpath("demo.toml").read_text())
    env = {
        "DEMO_SALESFORCE_URL": local.salesforce_url,
        "DEMO_SALESFORCE_TOKEN": local.salesforce_token,
        "DEMO_HUBSPOT_URL": local.hubspot_url,
        "DEMO_HUBSPOT_TOKEN": local.hubspot_token,
    }
    return parse_config(raw, env, source="demo.toml")


def local_pipeline(local: LocalService, config: WritebackConfig, *, ledger: Ledger | None = None,
                   **client: Any) -> Pipeline:
    """A pipeline on the local simulators (the benchmarks'); what it opens closes with them.

    Without ``ledger``, a fresh SQLite ledger in the simulators' folder.
    """
    if ledger is None:
        ledger = Ledger.open(f"sqlite:///{local.folder}/ledger.db")
        local.callback(ledger.close)
    siro = SiroClient(local.siro_url, local.siro_token, **client)
    local.callback(siro.close)
    pool = ConnectorPool(config)
    local.callback(pool.close)
    return Pipeline(config, connectors=pool, siro=siro, ledger=ledger)


def _wait_for_runs(ledger: Ledger, recording_ids: list[str], at_least: int) -> None:
    """Until every recording has ``at_least`` finished runs (the worker is asynchronous)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        runs = ledger.runs()
        done = {rid: sum(1 for run in runs if run.recording_id == rid and run.status != "running")
                for rid in recording_ids}
        if all(count >= at_least for count in done.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not finish within {WAIT_S:.0f} s: {done}")
        time.sleep(0.05)


def run_demo(*, as_json: bool = False) -> int:
    from celery.contrib.testing.worker import start_worker

    from worker.cli.service import webhook_app
    from worker.service.celery_app import configure
    from worker.service.polling import poll_pass
    from worker.service.tasks import enqueue_page

    console = Console()
    if not console.is_terminal:
        console.width = 160  # logs and pipes: no wrapping of the tables

    with serve_demo() as (local, recordings):
        secret = secrets.token_urlsafe(24)
        settings = Settings(
            siro_api_url=local.siro_url,
            siro_api_token=SecretStr(local.siro_token),
            broker_url="memory://",  # the embedded broker: the queue lives in this process
            redis_url="memory://",  # so rate limits and webhook dedupe are this process's own
            database_url=f"sqlite:///{local.folder}/ledger.db",
            webhook_secret=SecretStr(secret),
            config=demo_config(local),
        )
        app = configure(settings)
        rt = Runtime(settings)
        use_runtime(rt)
        try:
            with start_worker(app, pool="solo", perform_ping_check=False, loglevel="ERROR"), \
                    ServedApp(webhook_app(rt)) as hook, httpx.Client(timeout=30) as http:
                if not as_json:
                    console.print(
                        f"[bold]siro-writeback demo[/]: Siro {local.siro_url}, Salesforce {local.salesforce_url}, "
                        f"HubSpot {local.hubspot_url}; webhook {hook.url}/webhooks/siro; embedded broker; "
                        f"ledger {local.folder}/ledger.db"
                    )
                url = f"{hook.url}/webhooks/siro"
                answers = []
                started = time.monotonic()
                for recording_id in recordings.all:
                    payload = local.siro.webhook_payload(recording_id)
                    answer = http.post(url, json=payload, headers={"Authorization": f"Bearer {secret}"})
                    answers.append((recording_id, answer.status_code, answer.json().get("status")))
                repeat = http.post(url, json=local.siro.webhook_payload(recordings.all[0]),
                                   headers={"Authorization": f"Bearer {secret}"})
                forged = http.post(url, json=local.siro.webhook_payload(recordings.all[0]),
                                   headers={"Authorization": "Bearer not-the-secret"})
                _wait_for_runs(rt.ledger, recordings.all, 1)
                elapsed = time.monotonic() - started
                first = [report_from_ledger(rt.ledger, recording_id) for recording_id in recordings.all]
                siro_requests, crm_writes = rt.siro.request_count, local.crm_write_requests()

                local.clear_crm_logs()
                passed = poll_pass(rt.siro, rt.ledger, settings.config.poll, lambda page: enqueue_page(page, "poll"))
                _wait_for_runs(rt.ledger, recordings.all, 2)
                second = [report_from_ledger(rt.ledger, recording_id) for recording_id in recordings.all]
                outcomes, runs = len(rt.ledger.attempts()), len(rt.ledger.runs())
        finally:
            use_runtime(None)
            rt.close()

        if as_json:
            for report in first:
                print(json.dumps(report.to_json(), ensure_ascii=False))
            return 0
        for recording_id, status, outcome in answers:
            console.print(f"webhook for {recording_id}: HTTP {status} {outcome}")
        console.print(f"the same event again: HTTP {repeat.status_code} {repeat.json().get('status')}; "
                      f"a wrong secret: HTTP {forged.status_code}")
        console.print("[bold]written by the worker[/]: what was written, and why the rest was not")
        for report in first:
            if report.fields:
                console.print(report_table(report))
            else:
                console.print(f"recording {report.recording_id}: {report.status} ({report.reason}): nothing to write")
        console.print(f"webhooks: {summarize(first)}", soft_wrap=True)
        console.print(f"  {siro_requests} Siro requests, {crm_writes} CRM write requests, "
                      f"{elapsed:.2f} s from the first webhook to the last recording written", soft_wrap=True)
        console.print(
            f"poll pass ({passed.recordings} recordings in {passed.enqueued} page task): "
            f"{summarize(second)}; {local.crm_write_requests()} CRM write requests", soft_wrap=True
        )
        console.print(f"ledger: {outcomes} field outcomes recorded in {runs} runs", soft_wrap=True)
    return 0
