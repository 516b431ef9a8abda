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

from rich.console import Console

from worker.plan import RecordingReport
from worker.report import report_table
from worker.simulators.local import serve_demo


def _summary(reports: list[RecordingReport]) -> str:
    tally: dict[str, int] = {}
    for report in reports:
        for outcome, count in report.counts().items():
            tally[outcome] = tally.get(outcome, 0) + count
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(tally.items()))


def run_demo(*, as_json: bool = False) -> int:
    console = Console()
    if not console.is_terminal:
        console.width = 160  # logs and pipes: no wrapping of the tables

    with serve_demo() as (local, recordings):
        pipeline = local.pipeline(local.demo_config())
        if not as_json:
            console.print(
                f"[bold]siro-writeback demo[/]: Siro {local.siro_url}, Salesforce {local.salesforce_url}, "
                f"HubSpot {local.hubspot_url}, ledger {local.folder}/ledger.db"
            )
        first = [pipeline.sync(recording_id, trigger="demo") for recording_id in recordings.all]
        siro_requests, crm_writes = pipeline.siro.request_count, local.crm_write_requests()
        local.clear_crm_logs()
        second = [pipeline.sync(recording_id, trigger="demo") for recording_id in recordings.all]

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
        console.print(f"first pass: {_summary(first)}")
        console.print(f"  {siro_requests} Siro requests, {crm_writes} CRM write requests")
        console.print(
            f"second pass (same recordings): {_summary(second)}; {local.crm_write_requests()} CRM write requests"
        )
        assert pipeline.ledger is not None
        console.print(
            f"ledger: {len(pipeline.ledger.attempts())} field outcomes recorded in {len(pipeline.ledger.runs())} runs"
        )
    return 0
