"""The three simulators served together, and the pipeline wired to them.

``writeback demo`` and the benchmarks run the whole service on loopback: Siro
(HTTP), Salesforce (HTTPS with the throwaway CA) and HubSpot, a config pointing
at them, a fresh SQLite ledger, and request counters over the CRMs' logs.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from simulators import hubspot, salesforce, siro
from simulators.sample_data import DemoRecordings, seed_demo
from simulators.server import ServedApp
from simulators.tls import local_tls
from worker.ledger import Ledger
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.runner import Pipeline
from worker.settings import WritebackConfig, parse_config
from worker.siro.client import SiroClient

# The kinds of CRM request, by a marker in the path, for the counters.
_KINDS = ("composite/sobjects", "describe", "query", "batch/read", "batch/update", "properties", "pipelines")
_WRITES = ("composite/sobjects", "batch/update")


@dataclass
class LocalService:
    siro: siro.SiroState
    salesforce: salesforce.SalesforceState
    hubspot: hubspot.HubSpotState
    siro_url: str
    salesforce_url: str
    hubspot_url: str
    siro_token: str
    salesforce_token: str
    hubspot_token: str
    folder: str  # a temporary folder, gone when the service stops
    _stack: ExitStack = field(repr=False, default_factory=ExitStack)

    def demo_config(self) -> WritebackConfig:
        """The packaged ``defaults/demo.toml``, pointed at these simulators."""
        raw = tomllib.loads(resources.files("worker.cli").joinpath("demo.toml").read_text())
        env = {
            "DEMO_SALESFORCE_URL": self.salesforce_url,
            "DEMO_SALESFORCE_TOKEN": self.salesforce_token,
            "DEMO_HUBSPOT_URL": self.hubspot_url,
            "DEMO_HUBSPOT_TOKEN": self.hubspot_token,
        }
        return parse_config(raw, env, source="demo.toml")

    def pipeline(self, config: WritebackConfig, *, ledger: Ledger | None = None, **client: Any) -> Pipeline:
        """A pipeline on these simulators; what it opens closes with the service.

        Without ``ledger``, a fresh SQLite ledger in the service's folder.
        """
        if ledger is None:
            ledger = Ledger.open(f"sqlite:///{self.folder}/ledger.db")
            self._stack.callback(ledger.close)
        siro_client = self._stack.enter_context(SiroClient(self.siro_url, self.siro_token, **client))
        pool = ConnectorPool(config)
        self._stack.callback(pool.close)
        return Pipeline(config, connectors=pool, siro=siro_client, ledger=ledger)

    def crm_requests(self) -> Counter:
        """Requests the CRMs received since the last ``clear_crm_logs``, by CRM, method and kind."""
        tally: Counter = Counter()
        for name, requests in (("salesforce", self.salesforce.requests), ("hubspot", self.hubspot.requests)):
            for request in requests:
                kind = next((marker for marker in _KINDS if marker in request.path), request.path)
                tally[f"{name} {request.method} {kind}"] += 1
        return tally

    def crm_write_requests(self) -> int:
        return sum(count for kind, count in self.crm_requests().items() if kind.endswith(_WRITES))

    def clear_crm_logs(self) -> None:
        self.salesforce.clear_log()
        self.hubspot.clear_requests()


@contextmanager
def serve_local(
    siro_state: siro.SiroState,
    sf_state: salesforce.SalesforceState,
    hs_state: hubspot.HubSpotState,
    *,
    siro_token: str,
    salesforce_token: str,
    hubspot_token: str,
) -> Iterator[LocalService]:
    """Serve the three (already seeded) simulators until the block ends."""
    # simple-salesforce speaks HTTPS only; trust the simulators' CA in this process.
    os.environ["REQUESTS_CA_BUNDLE"] = local_tls().ca_bundle
    with ExitStack() as stack:
        siro_app = stack.enter_context(ServedApp(siro.create_app(siro_state)))
        sf_app = stack.enter_context(ServedApp(salesforce.create_app(sf_state), tls=True))
        hs_app = stack.enter_context(ServedApp(hubspot.create_app(hs_state)))
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="writeback-local-"))
        service = LocalService(siro_state, sf_state, hs_state, siro_app.url, sf_app.url, hs_app.url,
                               siro_token, salesforce_token, hubspot_token, folder)
        with service._stack:  # closes the pipelines' clients and ledgers before the servers stop
            yield service


@contextmanager
def serve_demo() -> Iterator[tuple[LocalService, DemoRecordings]]:
    """The simulators seeded with the demo's CRM records and sample recordings."""
    siro_state = siro.SiroState()
    siro_token = siro_state.add_token(name="writeback-demo")
    sf_state = salesforce.SalesforceState()
    sf_ids = salesforce.seed_default(sf_state)
    hs_state = hubspot.seed_default_portal()
    recordings = seed_demo(siro_state, sf_state, sf_ids, hs_state)
    with serve_local(siro_state, sf_state, hs_state, siro_token=siro_token,
                     salesforce_token=sf_state.issue_token(), hubspot_token=hubspot.DEFAULT_TOKEN) as service:
        yield service, recordings
