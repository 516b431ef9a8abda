"""Benchmark: the deployed path, webhook or poll → Redis → Celery worker → CRM.

Starts everything itself and stops it at the end (also on Ctrl-C or an error):
a private ``redis-server`` on a free port (no persistence), the Siro,
Salesforce (TLS) and HubSpot simulators in this process (``serve_local``), a
SQLite ledger and a config TOML for both connections in a temporary folder,
then the real service processes: ``celery -A worker worker --concurrency 2``
and ``writeback webhook`` (see ``tests/service.py``).

Recordings are seeded as ``bench/bench_sync.py`` does: half linked to
Salesforce records, half to HubSpot records, 8 mapped fields each.

1. **Poll mode** (run first, on a cold worker): N recordings,
   ``writeback poll --json`` (enqueue mode), wait until the ledger has a
   finished run for each; Siro requests (the Siro simulator's log), CRM
   requests by CRM and kind (``LocalService.crm_requests``), CRM writes, wall
   time from the poll command's start to the last run's ``finished_at``. Then
   a second pass over the same recordings, which must write nothing.
2. **Webhook → CRM write**: M other recordings (``updatedAt`` set back three
   days, so no poll lists them), one webhook at a time, each awaited until its
   run finished. HubSpot: POST sent → the simulator logged the first
   ``batch/update`` carrying the recording's deal (``LoggedRequest.at``).
   Salesforce: POST sent → the simulator's state holds the new
   ``Opportunity.Amount`` (polled every millisecond, nothing added to the
   simulator). Both, and the ledger run's ``finished_at``, as p50/p95/max.
3. Peak RSS (``VmHWM``) of the worker's main process and its pool children.

Usage::

    .venv/bin/python bench/bench_service.py [--recordings 200] [--webhooks 20]

The simulators share the machine with the service, so times are upper bounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.bench_sync import seed
from simulators import hubspot, salesforce, siro
from simulators.local import serve_local
from simulators.server import free_port
from simulators.tls import local_tls
from tests.fixtures.processes import (
    WEBHOOK_SECRET,
    service_env,
    service_processes,
    wait_for,
    write_config,
)
from worker.ledger import Ledger


def start_redis(stack: ExitStack, folder: Path) -> str:
    """A private redis-server without persistence, terminated when the stack closes."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()

    stack.callback(stop)
    import redis

    client = redis.Redis(port=port)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return process.poll() is not None

    wait_for(up, 10, "redis-server did not start")
    client.close()
    if process.poll() is not None:
        sys.exit(f"redis-server exited: see {folder / 'redis.log'}")
    return f"redis://127.0.0.1:{port}/0"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q) - 1)]


def peak_rss_mib(pid: int) -> list[float]:
    """VmHWM of a process and of its children, from /proc (empty where unreadable)."""
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        status = [Path(f"/proc/{p}/status").read_text() for p in (pid, *kids)]
    except OSError:
        return []
    return [int(line.split()[1]) / 1024 for text in status for line in text.splitlines()
            if line.startswith("VmHWM:")]


def finished(ledger: Ledger) -> dict[str, list[dt.datetime]]:
    """recording id -> finished_at of its finished runs."""
    runs: dict[str, list[dt.datetime]] = {}
    for run in ledger.runs():
        if run.status != "running" and run.finished_at is not None:
            runs.setdefault(run.recording_id, []).append(run.finished_at)
    return runs


def poll_pass(local, ledger: Ledger, ids: list[str], count: int, processes) -> dict:
    """One ``writeback poll --json``, awaited until every recording has ``count`` finished runs."""
    local.clear_crm_logs()
    local.siro.clear_requests()
    started = dt.datetime.now(dt.UTC)
    done = processes.cli("poll", "--json")
    if done.returncode != 0:
        raise RuntimeError(f"writeback poll exited {done.returncode}: {done.stderr}")

    def all_done() -> dict[str, list[dt.datetime]] | None:
        runs = finished(ledger)
        return runs if all(len(runs.get(i, ())) >= count for i in ids) else None

    try:
        runs = wait_for(all_done, 300, "the poll's runs did not finish", interval=0.05)
    except AssertionError:
        print(processes.logs(), file=sys.stderr)
        raise
    last = max(max(runs[i]) for i in ids)
    outcomes = Counter(str(a.line.outcome) for a in ledger.attempts() if a.created_at >= started)
    crm = local.crm_requests()
    return {"poll": done.stdout.strip(), "seconds": (last - started).total_seconds(),
            "siro": len(local.siro.requests), "crm": crm, "writes": local.crm_write_requests(),
            "outcomes": dict(sorted(outcomes.items()))}


def webhook_latencies(local, ledger: Ledger, url: str, ids: list[str]) -> dict[str, list[float]]:
    """One webhook at a time; seconds from the POST to the CRM write and to the run's finished_at."""
    result: dict[str, list[float]] = {"hubspot": [], "salesforce": [], "run": []}
    with httpx.Client(timeout=10) as client:
        for rid in ids:
            crm = local.siro.recording(rid)["crm"]
            record = crm["opportunity"]["externalId"]
            is_sf = crm["integrationConnectionId"] == "ic_sf"
            before = local.salesforce.get_record("Opportunity", record) if is_sf else None
            local.clear_crm_logs()
            payload = local.siro.webhook_payload(rid)
            wall, t0 = time.time(), time.monotonic()
            answer = client.post(f"{url}/webhooks/siro", json=payload,
                                 headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"})
            if answer.status_code != 202:
                raise RuntimeError(f"webhook for {rid} answered {answer.status_code}: {answer.text}")
            deadline = t0 + 60
            while time.monotonic() < deadline:
                if is_sf:
                    now = local.salesforce.get_record("Opportunity", record)
                    if now.get("Amount") != before.get("Amount"):
                        result["salesforce"].append(time.monotonic() - t0)
                        break
                else:
                    writes = [r for r in local.hubspot.requests_to("POST", "deals/batch/update")
                              if any(item.get("id") == record for item in (r.body or {}).get("inputs", []))]
                    if writes:
                        result["hubspot"].append(writes[0].at - t0)
                        break
                time.sleep(0.001)
            else:
                raise RuntimeError(f"no CRM write for {rid} within 60 s")
            ends = wait_for(lambda rid=rid: finished(ledger).get(rid), 60, f"the run of {rid} did not finish", 0.02)
            result["run"].append(ends[0].timestamp() - wall)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=200, help="recordings for the poll passes")
    parser.add_argument("--webhooks", type=int, default=20, help="webhooks sent one at a time")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the processes on SIGTERM too
    n, m = args.recordings, args.webhooks

    siro_state = siro.SiroState(rate_limit_per_minute=1_000_000)
    siro_token = siro_state.add_token(name="bench")
    sf_state = salesforce.SalesforceState(api_limit=10_000_000)
    salesforce.seed_default_schema(sf_state)
    sf_token = sf_state.issue_token()
    hs_state = hubspot.seed_default_portal()
    ids = seed(n + m, siro_state, sf_state, hs_state)
    poll_ids, hook_ids = ids[:n], ids[n:]
    three_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    for rid in hook_ids:  # outside the first poll's 24 h lookback
        siro_state.update_recording(rid, updated_at=three_days_ago)

    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-service-")))
        broker = start_redis(stack, folder)
        local = stack.enter_context(serve_local(siro_state, sf_state, hs_state, siro_token=siro_token,
                                                salesforce_token=sf_token, hubspot_token=hubspot.DEFAULT_TOKEN))
        config = write_config(folder / "writeback.toml", {"connections": [
            {"integration_connection_id": "ic_sf", "connector": "salesforce", "name": "sf",
             "instance_url": local.salesforce_url, "access_token": sf_token},
            {"integration_connection_id": "ic_hs", "connector": "hubspot", "name": "hs",
             "api_url": local.hubspot_url, "access_token": hubspot.DEFAULT_TOKEN},
        ]})
        database_url = f"sqlite:///{folder}/ledger.db"
        env = service_env(config=config, broker_url=broker, database_url=database_url, siro_url=local.siro_url,
                          siro_token=siro_token, ca_bundle=local_tls().ca_bundle)
        processes = stack.enter_context(service_processes(folder, env))
        worker = processes.start_worker("bench", concurrency=2)
        url = processes.start_webhook()
        ledger = Ledger.open(database_url)
        stack.callback(ledger.close)

        passes = [poll_pass(local, ledger, poll_ids, count, processes) for count in (1, 2)]
        hooks = webhook_latencies(local, ledger, url, hook_ids) if m else {}
        rss = peak_rss_mib(worker.pid)

    report(n, m, passes, hooks, rss)


def report(n: int, m: int, passes: list[dict], hooks: dict[str, list[float]], rss: list[float]) -> None:
    print("siro-writeback deployed path: 1 worker (--concurrency 2), writeback webhook, private redis-server, "
          "SQLite ledger; recordings half Salesforce, half HubSpot, 8 mapped fields each")
    if hooks:
        print(f"\nWebhook -> CRM write ({m} webhooks, one at a time, after the poll passes)")
        print(f"  {'measured':60} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        rows = [("HubSpot: POST -> first deals batch/update logged (.at)", hooks["hubspot"]),
                ("Salesforce: POST -> Opportunity.Amount in state (1 ms poll)", hooks["salesforce"]),
                ("all: POST -> ledger run finished_at", hooks["run"])]
        for label, values in rows:
            if values:
                print(f"  {label:60} {len(values):>3} {quantile(values, .5) * 1000:8.1f} "
                      f"{quantile(values, .95) * 1000:8.1f} {max(values) * 1000:8.1f}")
    print(f"\nPoll mode ({n} recordings; writeback poll --json, enqueue mode)")
    for i, p in enumerate(passes):
        print(f"  pass {i + 1} printed: {p['poll']}")
    print(f"  {'':44} {'first pass':>12} {'second pass':>12}")
    kinds = sorted(set(passes[0]["crm"]) | set(passes[1]["crm"]))
    rows = [("wall s: poll start -> last run finished_at", [p["seconds"] for p in passes], "{:.2f}"),
            ("Siro requests / recording", [p["siro"] / n for p in passes], "{:.3f}"),
            ("CRM requests / recording", [sum(p["crm"].values()) / n for p in passes], "{:.3f}"),
            *((f"  {kind}", [p["crm"].get(kind, 0) for p in passes], "{}") for kind in kinds),
            ("CRM write requests", [p["writes"] for p in passes], "{}")]
    for label, values, fmt in rows:
        print(f"  {label:44} " + " ".join(f"{fmt.format(v):>12}" for v in values))
    for i, p in enumerate(passes):
        print(f"  pass {i + 1} ledger outcomes: {p['outcomes']}")
    if rss:
        print(f"\nPeak RSS (VmHWM): worker main {rss[0]:.1f} MiB, pool children "
              + (", ".join(f"{mib:.1f}" for mib in rss[1:]) or "-") + " MiB")


if __name__ == "__main__":
    main()
