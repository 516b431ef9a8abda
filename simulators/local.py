"""The three simulators served together on loopback, with request counters over the CRMs' logs.

``writeback demo`` and the benchmarks run the whole service against them:
Siro (HTTP), Salesforce (HTTPS with the throwaway CA) and HubSpot. The
simulators know nothing of the service: ``worker.cli.demo`` wires a config
and a pipeline to them.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from simulators import hubspot, salesforce, siro
from simulators.sample_data import DemoRecordings, seed_demo
from simulators.server import ServedApp
from simulators.tls import local_tls

# The kinds of CRM request, by a marker in the path, for the counters.
_KINDS = ("composite/sobjects", "describe", "query", "notes/batch/create", "notes/batch/update", "associations",
          "batch/read", "batch/update", "properties", "pipelines", "composite")
_WRITES = ("composite/sobjects", "batch/update")  # field writes (``notes/batch/update`` is a note's)
_NOTE_WRITES = ("composite", "notes/batch/create", "notes/batch/update", "associations")


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

    def callback(self, close: Callable[[], Any]) -> None:
        """Run ``close`` when the service stops, before the servers do (clients of the simulators)."""
        self._stack.callback(close)

    def crm_requests(self) -> Counter:
        """Requests the CRMs received since the last ``clear_crm_logs``, by CRM, method and kind."""
        tally: Counter = Counter()
        for name, requests in (("salesforce", self.salesforce.requests), ("hubspot", self.hubspot.requests)):
            for request in requests:
                kind = next((marker for marker in _KINDS if marker in request.path), request.path)
                tally[f"{name} {request.method} {kind}"] += 1
        return tally

    def crm_write_requests(self) -> int:
        """Field write requests (sObject Collections, HubSpot batch updates), notes not counted."""
        return sum(count for kind, count in self.crm_requests().items()
                   if kind.endswith(_WRITES) and not kind.endswith(_NOTE_WRITES))

    def crm_note_requests(self) -> int:
        """Requests that wrote notes (Salesforce Composite, HubSpot notes and associations)."""
        return sum(count for kind, count in self.crm_requests().items() if kind.endswith(_NOTE_WRITES))

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
        with service._stack:  # closes the clients of the simulators before the servers stop
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
