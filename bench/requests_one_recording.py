"""Counts the Siro and CRM requests of ``writeback sync`` for the demo's sample recordings.

Each sync runs as a fresh process would (new Siro client, new connectors, so
schemas are fetched again), with the demo's own configuration, against the
shipped simulators. Prints one line per sync with the requests by kind.

Usage::

    .venv/bin/python bench/requests_one_recording.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from collections import Counter
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.connector_pool import ConnectorPool  # noqa: E402
from worker.ledger import Ledger  # noqa: E402
from worker.pipeline import Pipeline  # noqa: E402
from worker.settings import parse_config  # noqa: E402
from worker.simulators import hubspot, salesforce, siro  # noqa: E402
from worker.simulators.sample_data import seed_demo  # noqa: E402
from worker.simulators.server import ServedApp  # noqa: E402
from worker.simulators.tls import local_tls  # noqa: E402
from worker.siro_client import SiroClient  # noqa: E402


def crm_requests(sf: salesforce.SalesforceState, hs: hubspot.HubSpotState) -> Counter:
    kinds: Counter = Counter()
    for request in sf.requests:
        kinds[f"salesforce {request.method} {request.path.split('/v59.0/')[-1].split('/')[0]}"] += 1
    for request in hs.requests:
        kinds[f"hubspot {request.method} {request.path.removeprefix('/crm/v3/')}"] += 1
    return kinds


def main() -> None:
    os.environ["REQUESTS_CA_BUNDLE"] = local_tls().ca_bundle
    siro_state = siro.SiroState()
    token = siro_state.add_token(name="count")
    sf_state = salesforce.SalesforceState()
    sf_ids = salesforce.seed_default(sf_state)
    hs_state = hubspot.seed_default_portal()
    recordings = seed_demo(siro_state, sf_state, sf_ids, hs_state)
    with ExitStack() as stack:
        siro_app = stack.enter_context(ServedApp(siro.create_app(siro_state)))
        sf_app = stack.enter_context(ServedApp(salesforce.create_app(sf_state), tls=True))
        hs_app = stack.enter_context(ServedApp(hubspot.create_app(hs_state)))
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        raw = tomllib.loads(resources.files("worker.defaults").joinpath("demo.toml").read_text())
        config = parse_config(raw, {
            "DEMO_SALESFORCE_URL": sf_app.url, "DEMO_SALESFORCE_TOKEN": sf_state.issue_token(),
            "DEMO_HUBSPOT_URL": hs_app.url, "DEMO_HUBSPOT_TOKEN": hubspot.DEFAULT_TOKEN,
        })
        ledger = Ledger.open(f"sqlite:///{folder}/ledger.db")
        stack.callback(ledger.close)
        for recording_id in (recordings.salesforce, recordings.hubspot):
            for attempt in ("first sync", "second sync"):
                sf_state.clear_log()
                hs_state.clear_requests()
                with SiroClient(siro_app.url, token) as client:
                    pool = ConnectorPool(config)
                    report = Pipeline(config, connectors=pool, siro=client, ledger=ledger).sync(recording_id)
                    pool.close()
                    kinds = crm_requests(sf_state, hs_state)
                    print(f"{recording_id} {attempt}: {client.request_count} Siro, {sum(kinds.values())} CRM "
                          f"{dict(sorted(kinds.items()))}; {report.counts().get('written', 0)} fields written")


if __name__ == "__main__":
    main()
