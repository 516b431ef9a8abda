"""Benchmark: requests, time and memory of writing recordings back, per trigger path.

Runs the real pipeline, connectors and client libraries against the shipped
simulators (in this process, on loopback) with N synthetic recordings, half
linked through Salesforce and half through HubSpot, each carrying 8 mapped
extractions over an opportunity/deal, its account/company and two contacts.

Two paths are measured, each followed by a second pass over the same
recordings (which must send no write):

* ``sync``: ``Pipeline.sync`` per recording, what ``writeback sync`` does
  (one Siro GET, then per object a schema lookup once per process, one read,
  one write);
* ``page``: list pages of 100 recordings (every enrichment flag) and
  ``Pipeline.process`` per page, what the poll/backfill page task does:
  CRM reads and writes batched across the page's recordings.

Usage::

    .venv/bin/python bench/bench_sync.py [--recordings 200] [--json]

The simulators share the process and its two cores with the code under test,
so the times are an upper bound of the service's own cost; the request counts
are exact.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators import hubspot, salesforce, siro  # noqa: E402
from simulators.local import serve_local  # noqa: E402
from worker.cli.demo import local_pipeline  # noqa: E402
from worker.settings import parse_config  # noqa: E402

X = siro.SiroState.extraction


def seed(count: int, siro_state, sf_state, hs_state) -> list[str]:
    """``count`` linked recordings with fresh CRM records; returns their ids."""
    account = sf_state.create_record("Account", {"Name": "Bench Account"})
    company = hs_state.add_record("companies", {"name": "Bench Co"})
    ids = []
    for n in range(count):
        recording_id = f"rec_bench_{n:05d}"
        if n % 2 == 0:
            opp = sf_state.create_record("Opportunity", {"Name": f"Deal {n}", "StageName": "Prospecting",
                                                         "CloseDate": "2026-01-31", "AccountId": account})
            contacts = [sf_state.create_record("Contact", {"LastName": f"C{n}-{i}", "Name": f"C{n}-{i}"})
                        for i in range(2)]
            extractions = [
                X("Deal size", f"{10000 + n}", ("Opportunity", "Amount")),
                X("Stage", "negotiation/review", ("Opportunity", "StageName")),
                X("Close", "2026-12-15", ("Opportunity", "CloseDate")),
                X("Next step", f"Follow up #{n}", ("Opportunity", "NextStep")),
                X("Competitors", ["Gong", "Clari"], ("Opportunity", "Competitors__c")),
                X("Industry", "Construction", ("Account", "Industry")),
                X("Role", "Homeowner", ("Contact", "Title")),
                X("Notes", f"Visit notes {n}", ("Contact", "Description")),
            ]
            siro_state.add_recording(recording_id, entity_extractions=extractions)
            siro_state.link(recording_id, integration_connection_id="ic_sf", opportunity=opp, account=account,
                            contacts=contacts)
        else:
            deal = hs_state.add_record("deals", {"dealname": f"Deal {n}", "pipeline": "default",
                                                 "dealstage": "appointmentscheduled"})
            contacts = [hs_state.add_record("contacts", {"lastname": f"C{n}-{i}"}) for i in range(2)]
            extractions = [
                X("Deal size", 10000 + n, ("Deal", "amount")),
                X("Stage", "Contract Sent", ("Deal", "dealstage")),
                X("Close", "2026-12-15", ("Deal", "closedate")),
                X("Next step", f"Follow up #{n}", ("Deal", "hs_next_step")),
                X("Competitors", ["Globex", "Initech"], ("Deal", "competitors")),
                X("Industry", "Construction", ("Company", "industry")),
                X("Role", "Homeowner", ("Contact", "jobtitle")),
                X("Notes", f"Visit notes {n}", ("Contact", "pain_points")),
            ]
            siro_state.add_recording(recording_id, entity_extractions=extractions)
            siro_state.link(recording_id, integration_connection_id="ic_hs", opportunity=deal, account=company,
                            contacts=contacts)
        ids.append(recording_id)
    return ids


def run(count: int) -> dict:
    results: dict = {"recordings": count, "fields_per_recording": 8, "paths": {}}
    for path in ("sync", "page"):
        siro_state = siro.SiroState(rate_limit_per_minute=1_000_000)
        token = siro_state.add_token(name="bench")
        sf_state = salesforce.SalesforceState(api_limit=10_000_000)
        salesforce.seed_default_schema(sf_state)
        sf_token = sf_state.issue_token()
        hs_state = hubspot.seed_default_portal()
        recording_ids = seed(count, siro_state, sf_state, hs_state)
        with serve_local(siro_state, sf_state, hs_state, siro_token=token, salesforce_token=sf_token,
                         hubspot_token=hubspot.DEFAULT_TOKEN) as local:
            config = parse_config({"connections": [
                {"integration_connection_id": "ic_sf", "connector": "salesforce", "name": "sf",
                 "instance_url": local.salesforce_url, "access_token": sf_token},
                {"integration_connection_id": "ic_hs", "connector": "hubspot", "name": "hs",
                 "api_url": local.hubspot_url, "access_token": hubspot.DEFAULT_TOKEN},
            ]}, env={})
            pipeline = local_pipeline(local, config, requests_per_minute=1_000_000)
            client = pipeline.siro
            assert client is not None

            passes = []
            for attempt in ("first", "second"):
                local.clear_crm_logs()
                siro_before = client.request_count
                started = time.perf_counter()
                latencies = []
                outcomes: Counter = Counter()
                if path == "sync":
                    for recording_id in recording_ids:
                        t0 = time.perf_counter()
                        report = pipeline.sync(recording_id, trigger="bench")
                        latencies.append(time.perf_counter() - t0)
                        outcomes.update(report.counts())
                else:
                    for page in client.iter_pages(updated_gte="2000-01-01T00:00:00Z", page_size=100):
                        t0 = time.perf_counter()
                        for report in pipeline.process(page.data, trigger="bench"):
                            outcomes.update(report.counts())
                        latencies.append(time.perf_counter() - t0)
                elapsed = time.perf_counter() - started
                crm = local.crm_requests()
                latencies.sort()
                passes.append({
                    "pass": attempt,
                    "seconds": round(elapsed, 3),
                    "recordings_per_s": round(count / elapsed, 1),
                    "units": len(latencies),  # recordings (sync) or pages (page)
                    "unit_latency_ms_p50": round(latencies[(len(latencies) - 1) // 2] * 1000, 1),
                    "unit_latency_ms_p95": round(latencies[max(0, math.ceil(len(latencies) * 0.95) - 1)] * 1000, 1),
                    "siro_requests": client.request_count - siro_before,
                    "crm_requests": sum(crm.values()),
                    "crm_requests_per_recording": round(sum(crm.values()) / count, 3),
                    "crm_write_requests": local.crm_write_requests(),
                    "crm_requests_by_kind": dict(sorted(crm.items())),
                    "outcomes": dict(sorted(outcomes.items())),
                })
            results["paths"][path] = passes
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.recordings)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.recordings} recordings x 8 mapped fields (half Salesforce, half HubSpot); "
          f"peak RSS {results['peak_rss_mib']} MiB")
    for path, passes in results["paths"].items():
        for p in passes:
            print(f"{path:>4} {p['pass']:>6}: {p['seconds']:7.2f} s  {p['recordings_per_s']:6.1f} rec/s  "
                  f"p50 {p['unit_latency_ms_p50']:7.1f} ms  p95 {p['unit_latency_ms_p95']:7.1f} ms  "
                  f"siro {p['siro_requests']:4d}  crm {p['crm_requests']:4d} "
                  f"({p['crm_requests_per_recording']:.2f}/rec, {p['crm_write_requests']} writes)  {p['outcomes']}")


if __name__ == "__main__":
    main()
