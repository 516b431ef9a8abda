"""``writeback demo``: the whole service on embedded defaults, no credentials.

Starts local simulators of Siro (HTTP), Salesforce (HTTPS with a throwaway CA)
and HubSpot, seeds them with sample recordings and CRM records, loads the
packaged ``defaults/demo.toml`` with the simulators' addresses, and syncs every
sample recording through the real pipeline, connectors and client libraries
into a fresh temporary SQLite ledger. Then it syncs again to show that a
second pass sends no write.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from contextlib import ExitStack
from importlib import resources

from rich.console import Console

from worker.connector_pool import ConnectorPool
from worker.ledger import Ledger
from worker.pipeline import Pipeline
from worker.plan import RecordingReport
from worker.report import report_table
from worker.settings import parse_config
from worker.simulators import hubspot, salesforce, siro
from worker.simulators.sample_data import seed_demo
from worker.simulators.server import ServedApp
from worker.simulators.tls import local_tls
from worker.siro_client import SiroClient


def _write_requests(sf: salesforce.SalesforceState, hs: hubspot.HubSpotState) -> int:
    sf_writes = sf.requests_matching("PATCH")
    hs_writes = [r for r in hs.requests if r.method in ("POST", "PATCH") and r.path.endswith("/batch/update")]
    return len(sf_writes) + len(hs_writes)


def _summary(reports: list[RecordingReport]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for report in reports:
        for outcome, count in report.counts().items():
            tally[outcome] = tally.get(outcome, 0) + count
    return tally


def run_demo(*, as_json: bool = False) -> int:
    console = Console()
    if not console.is_terminal:
        console.width = 160  # logs and pipes: no wrapping of the tables
    # simple-salesforce speaks HTTPS only; trust the demo's own CA in this process.
    os.environ["REQUESTS_CA_BUNDLE"] = local_tls().ca_bundle

    siro_state = siro.SiroState()
    siro_token = siro_state.add_token(name="writeback-demo")
    sf_state = salesforce.SalesforceState()
    sf_ids = salesforce.seed_default(sf_state)
    sf_token = sf_state.issue_token()
    hs_state = hubspot.seed_default_portal()
    hs_token = "demo-hubspot-private-app-token"
    hs_state.add_token(hs_token)
    recordings = seed_demo(siro_state, sf_state, sf_ids, hs_state)

    with ExitStack() as stack:
        siro_app = stack.enter_context(ServedApp(siro.create_app(siro_state)))
        sf_app = stack.enter_context(ServedApp(salesforce.create_app(sf_state), tls=True))
        hs_app = stack.enter_context(ServedApp(hubspot.create_app(hs_state)))
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="writeback-demo-"))

        raw = tomllib.loads(resources.files("worker.defaults").joinpath("demo.toml").read_text())
        env = {
            "DEMO_SALESFORCE_URL": sf_app.url,
            "DEMO_SALESFORCE_TOKEN": sf_token,
            "DEMO_HUBSPOT_URL": hs_app.url,
            "DEMO_HUBSPOT_TOKEN": hs_token,
        }
        config = parse_config(raw, env, source="demo.toml")
        ledger = Ledger.open(f"sqlite:///{folder}/demo-ledger.db")
        stack.callback(ledger.close)
        client = stack.enter_context(SiroClient(siro_app.url, siro_token))
        pool = ConnectorPool(config)
        stack.callback(pool.close)
        pipeline = Pipeline(config, connectors=pool, siro=client, ledger=ledger)

        if not as_json:
            console.print(
                f"[bold]siro-writeback demo[/]: Siro {siro_app.url}, Salesforce {sf_app.url}, "
                f"HubSpot {hs_app.url}, ledger {folder}/demo-ledger.db"
            )
        first = [pipeline.sync(recording_id, trigger="demo") for recording_id in recordings.all]
        siro_requests, crm_writes = client.request_count, _write_requests(sf_state, hs_state)

        sf_state.clear_log()
        hs_state.clear_requests()
        second = [pipeline.sync(recording_id, trigger="demo") for recording_id in recordings.all]
        second_writes = _write_requests(sf_state, hs_state)

        if as_json:
            for report in first:
                print(json.dumps(report.to_json(), ensure_ascii=False))
            return 0
        console.print("[bold]first pass[/]: what was written, and why the rest was not")
        for report in first:
            if report.fields:
                console.print(report_table(report))
            else:
                console.print(f"recording {report.recording_id}: {report.status} ({report.reason}): nothing to write")
        tally = ", ".join(f"{count} {outcome}" for outcome, count in sorted(_summary(first).items()))
        console.print(f"first pass: {tally}")
        console.print(f"  {siro_requests} Siro requests, {crm_writes} CRM write requests")
        again = ", ".join(f"{count} {outcome}" for outcome, count in sorted(_summary(second).items()))
        console.print(f"second pass (same recordings): {again}; {second_writes} CRM write requests")
        console.print(f"ledger: {len(ledger.attempts())} field outcomes recorded in {len(ledger.runs())} runs")
    return 0
