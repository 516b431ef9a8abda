"""Benchmark: what each console page weighs (HTML + CSS + JS bytes), and how long it takes to render.

Builds the console in-process (``worker.console.app.create_app``, as
``writeback console`` serves it) on a fresh SQLite ledger filled in bulk with
``--runs`` runs (default 10,000) of 3 field attempts each, 20 dead letters
and 20 pending proposals, and the HubSpot simulator as the CRM (served on
loopback) so that the revert dry run and an approval are real. Signs in,
then fetches every page through Starlette's TestClient and reports, per page:
the HTML bytes, the stylesheet and scripts it loads (bytes, counted once per
page as a first visit would), the total, its gzip size, and the median
render time of ``--repeat`` fetches (after one untimed).

Usage::

    .venv/bin/python bench/console_weight.py [--runs 10000] [--repeat 10] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from simulators.hubspot import (  # noqa: E402
    DEFAULT_TOKEN,
    HubSpotState,
    create_app,
    seed_default_portal,
)
from simulators.server import ServedApp  # noqa: E402
from worker.console.app import create_app as console_app  # noqa: E402
from worker.console.operations import Operations  # noqa: E402
from worker.ledger.rows import ProposalRow  # noqa: E402
from worker.ledger.schema import Attempt, Run  # noqa: E402
from worker.logs import redaction_for  # noqa: E402
from worker.runtime import Runtime  # noqa: E402
from worker.settings import load_settings  # noqa: E402

TOKEN = "bench-console-token-0123456789"


def fill(ledger, runs: int, deal: str) -> None:  # noqa: ANN001 - a Ledger
    """``runs`` runs of 3 attempts each (in bulk), 20 dead letters, 20 pending proposals."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    run_rows, attempt_rows = [], []
    for i in range(1, runs + 1):
        at = start + timedelta(seconds=30 * i)
        recording = f"rec-{i:06d}"
        run_rows.append({"id": i, "recording_id": recording, "trigger": ("webhook", "poll")[i % 2], "dry_run": False,
                         "status": "ok", "reason": None, "started_at": at, "finished_at": at})
        for field, value, previous, outcome in (("amount", 1000 + i, 900, "written"),
                                                ("dealstage", "contractsent", "contractsent", "unchanged"),
                                                ("hs_next_step", f"Call back about quote {i}", None, "written")):
            attempt_rows.append({"run_id": i, "recording_id": recording, "connection": "hs", "object": "deals",
                                 "record_id": str(10_000_000 + i % 5000), "field": field, "value": value,
                                 "previous": previous, "outcome": outcome, "reason": None, "extraction": field.title(),
                                 "created_at": at})
    with ledger.engine.begin() as conn:
        conn.execute(insert(Run), run_rows)
        for chunk in range(0, len(attempt_rows), 5000):
            conn.execute(insert(Attempt), attempt_rows[chunk:chunk + 5000])
    for i in range(20):
        ledger.add_dead_letter(f"rec-{i:06d}", reason="retries_exhausted", trigger="poll", attempts=9,
                               error="gave up after retries: hubspot batch update of 1 deals: 503 SERVICE_UNAVAILABLE",
                               connection="hs")
        ledger.propose(ProposalRow("hs", "deals", str(20_000_000 + i), "amount", 5000 + i, 1000, f"rec-{i:06d}",
                                   "Deal size"))
    ledger.propose(ProposalRow("hs", "deals", deal, "amount", 18750, 12500, "rec-bench", "Deal size"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    hubspot = seed_default_portal(HubSpotState())
    with tempfile.TemporaryDirectory() as folder, ServedApp(create_app(hubspot)) as served:
        config = Path(folder) / "writeback.toml"
        config.write_text(f'[[connections]]\nintegration_connection_id = "*"\nconnector = "hubspot"\nname = "hs"\n'
                          f'api_url = "{served.url}"\naccess_token = "{DEFAULT_TOKEN}"\n')
        settings = load_settings({"WRITEBACK_CONFIG": str(config), "WRITEBACK_BROKER_URL": "memory://",
                                  "WRITEBACK_DATABASE_URL": f"sqlite:///{folder}/ledger.db"})
        ops = Operations(Runtime(settings, redis_optional=True, in_task=False, with_siro=False))
        deal = hubspot.named["deal_acme"]
        fill(ops.rt.ledger, args.runs, deal)
        client = TestClient(console_app(ops, TOKEN, redactor=redaction_for(settings, TOKEN)))
        client.post("/login", data={"token": TOKEN})
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/runs").text).group(1)
        [bench_proposal] = [row.id for row in ops.pending() if row.recording_id == "rec-bench"]
        ops.approve([bench_proposal])  # rec-bench wrote a field: something to revert
        older = args.runs - 49

        pages = {
            "login": lambda: TestClient(client.app).get("/login"),
            "runs": lambda: client.get("/runs"),
            "runs (older page)": lambda: client.get(f"/runs?before={older}"),
            "recording": lambda: client.get("/recording?id=rec-000042"),
            "CRM record": lambda: client.get("/record?connection=hs&object=deals&id=10000042"),
            "review (21 proposals)": lambda: client.get("/review"),
            "dead letters (20)": lambda: client.get("/dead-letters"),
            "revert dry run": lambda: client.post("/revert/preview", data={"csrf": csrf, "recording_id": "rec-bench"}),
        }
        rows = []
        for name, fetch in pages.items():
            first = fetch()
            assert first.status_code == 200, (name, first.status_code, first.text[:300])
            html = first.content
            assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', first.text)
            asset_bytes = {path: client.get(path).content for path in assets}
            css = sum(len(body) for path, body in asset_bytes.items() if path.endswith(".css"))
            js = sum(len(body) for path, body in asset_bytes.items() if path.endswith(".js"))
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                fetch()
                times.append(time.perf_counter() - started)
            total = len(html) + css + js
            gz = len(gzip.compress(html)) + sum(len(gzip.compress(body)) for body in asset_bytes.values())
            rows.append({"page": name, "html": len(html), "css": css, "js": js, "total": total, "gzip": gz,
                         "render_ms": round(statistics.median(times) * 1000, 1)})
        ops.close()

    if args.json:
        print(json.dumps({"runs": args.runs, "pages": rows}))
        return
    print(f"console pages on a ledger of {args.runs:,} runs ({args.runs * 3:,} attempts); "
          f"median of {args.repeat} renders")
    print(f"{'page':<24}{'HTML':>8}{'CSS':>7}{'JS':>5}{'total':>8}{'gzip':>7}{'render':>10}")
    for row in rows:
        print(f"{row['page']:<24}{row['html']:>8,}{row['css']:>7,}{row['js']:>5}{row['total']:>8,}"
              f"{row['gzip']:>7,}{row['render_ms']:>8} ms")


if __name__ == "__main__":
    main()
