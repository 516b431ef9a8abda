"""Benchmark: how long a Prometheus scrape of each ``/metrics`` takes with 10,000 runs in the ledger.

* worker: what a worker's main process serves on ``[worker] metrics_port``
  (``worker.service.observe``): prometheus-client's multiprocess files of two
  pool processes, each having recorded half of ``--runs`` reports (two fields
  each, over 2 connections x 3 objects x 6 outcomes, with their CRM and Siro
  requests and task timings), merged at scrape time, plus the ledger's gauges
  (``LedgerCollector``: COUNTs of dead letters and pending proposals, the
  watermark) on a ledger holding ``--runs`` runs, twice as many attempts, 500
  dead letters and 1,000 proposals (half pending);
* webhook: the webhook app's ``GET /metrics`` (one process, its default
  registry) after 1,000 deliveries, served by uvicorn in its own process.

Each is the median (and p95) of ``--scrapes`` HTTP GETs over loopback, after
three untimed ones. SQLite, and PostgreSQL when ``--postgres-url`` (default
``WRITEBACK_TEST_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/postgres``)
answers: a fresh database, dropped afterwards.

Usage::

    .venv/bin/python bench/metrics_scrape.py [--runs 10000] [--scrapes 50] [--backend both|sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

OUTCOMES = ("written", "unchanged", "skipped_policy", "invalid_value", "failed", "unlinked")
OBJECTS = ("Opportunity", "Account", "Contact")


def fill_ledger(url: str, runs: int) -> None:
    from sqlalchemy import insert

    from worker.ledger import Ledger
    from worker.ledger.schema import Attempt, DeadLetter, Proposal, Run

    now = datetime.now(UTC)
    ledger = Ledger.open(url)
    try:
        with ledger.engine.begin() as conn:
            conn.execute(insert(Run), [
                {"id": i + 1, "recording_id": f"rec-{i}", "trigger": "webhook", "dry_run": False, "status": "ok",
                 "started_at": now - timedelta(seconds=runs - i), "finished_at": now} for i in range(runs)])
            conn.execute(insert(Attempt), [
                {"run_id": i // 2 + 1, "recording_id": f"rec-{i // 2}", "connection": "sf", "object": "Opportunity",
                 "record_id": f"006{i // 2:012d}", "field": ("Amount", "StageName")[i % 2], "value": 1,
                 "previous": 0, "outcome": OUTCOMES[i % len(OUTCOMES)], "created_at": now} for i in range(2 * runs)])
            conn.execute(insert(DeadLetter), [
                {"recording_id": f"rec-{i}", "reason": "retries_exhausted", "error": "HTTP 503", "trigger": "poll",
                 "attempts": 9, "failures": 1, "first_failed_at": now, "last_failed_at": now} for i in range(500)])
            conn.execute(insert(Proposal), [
                {"connection": "sf", "object": "Opportunity", "record_id": f"006{i:012d}", "field": "StageName",
                 "value": "Closed Won", "previous": "Prospecting", "recording_id": f"rec-{i}",
                 "status": "pending" if i % 2 else "rejected", "created_at": now} for i in range(1000)])
        ledger.advance_watermark("poll", now - timedelta(minutes=3))
    finally:
        ledger.close()


def count_in_pool_processes(runs: int) -> None:
    """Two forked processes record ``runs`` reports between them, as a worker's pool does."""
    from worker import metrics
    from worker.report import FieldReport, Outcome, RecordingReport, Status

    children = []
    for half in range(2):
        pid = os.fork()
        if pid == 0:
            for i in range(half, runs, 2):
                connection = ("sf", "hs")[i % 2]
                obj = OBJECTS[i % 3]
                lines = [FieldReport(connection, obj, "1", f, 1, 0, Outcome(OUTCOMES[(i + k) % 6]), None, "x")
                         for k, f in enumerate(("a", "b"))]
                metrics.recorded(RecordingReport(f"rec-{i}", Status.OK, lines))
                metrics.crm_request(connection, ("read", "write", "schema")[i % 3], (200, 207, 429)[i % 3])
                metrics.siro_request(200)
                metrics.task_seconds("worker.tasks.process_recording", 0.05 * (i % 40))
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def timed(url: str, scrapes: int) -> tuple[float, float, int]:
    """(median ms, p95 ms, body bytes) of ``scrapes`` GETs."""
    with httpx.Client(timeout=30) as client:
        for _ in range(3):
            body = client.get(url).raise_for_status().content
        times = []
        for _ in range(scrapes):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], len(body)


WEBHOOK_SERVER = textwrap.dedent("""
    import sys, uvicorn
    from fastapi.testclient import TestClient
    from worker.limits.store import store_for
    from worker.service.dedupe import Dedupe
    from worker.service.webhook import create_app
    app = create_app(secret="bench-secret-0123456789", enqueue=lambda rid: "task-" + rid,
                     dedupe=Dedupe(store_for(None)))
    client = TestClient(app)
    for i in range(1000):
        body = {"recordingId": f"rec-{i % 700}", "recordingProcessed": True, "recordingLinked": False,
                "eventType": "integrations.recordingProcessed"}
        client.post("/webhooks/siro", json=body, headers={"Authorization": "Bearer bench-secret-0123456789"})
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
""")


@contextmanager
def webhook_app() -> Iterator[str]:
    from simulators.server import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen([sys.executable, "-c", WEBHOOK_SERVER, str(port)], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the webhook app did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def worker_endpoint(database_url: str) -> Iterator[str]:
    from prometheus_client import start_http_server

    from simulators.server import free_port
    from worker import metrics
    from worker.ledger import Ledger

    ledger = Ledger.open(database_url)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1",
                                  registry=metrics.registry(metrics.LedgerCollector(lambda: ledger)))
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--backend", choices=("both", "sqlite", "postgresql"), default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("WRITEBACK_TEST_POSTGRES_URL")
                        or "postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    with webhook_app() as url:
        median, p95, size = timed(url, args.scrapes)
        print(f"webhook /metrics: median {median:.2f} ms, p95 {p95:.2f} ms, {size} bytes")

    from history import (
        postgres_database,  # bench/history.py: a fresh database, dropped after
    )

    from worker import metrics

    with tempfile.TemporaryDirectory(prefix="writeback-bench-") as folder:
        metrics.use_multiprocess_dir(os.path.join(folder, "multiproc"))
        count_in_pool_processes(args.runs)
        backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
        for backend in backends:
            database = _just(f"sqlite:///{folder}/ledger.db") if backend == "sqlite" else \
                postgres_database(args.postgres_url)
            with database as database_url:
                if database_url is None:
                    continue
                fill_ledger(database_url, args.runs)
                with worker_endpoint(database_url) as url:
                    median, p95, size = timed(url, args.scrapes)
                print(f"worker /metrics ({backend}, {args.runs} runs, 2 pool processes): "
                      f"median {median:.2f} ms, p95 {p95:.2f} ms, {size} bytes")


@contextmanager
def _just(value: str) -> Iterator[str]:
    yield value


if __name__ == "__main__":
    main()
