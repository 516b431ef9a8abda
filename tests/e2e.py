"""Helpers for the end-to-end tests: a pipeline wired to the simulators, report lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from worker.ledger import Ledger
from worker.limits.backoff import RetryPolicy
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.runner import Pipeline
from worker.report import RecordingReport
from worker.settings import parse_config
from worker.siro.client import SiroClient


class Outcomes(NamedTuple):
    """One report line as a user reads it; compare ``[:3]`` to leave the reason out."""

    outcome: str
    value: Any
    previous: Any
    reason: str | None = None


def outcomes_of(report: RecordingReport) -> dict[tuple[str | None, str | None, str | None], Outcomes]:
    """The report's lines keyed by (object, record id, field), JSON values as a user sees them."""
    found: dict[tuple[str | None, str | None, str | None], Outcomes] = {}
    for line in report.fields:
        shown = line.to_json()
        found[(line.object, line.record_id, line.field)] = Outcomes(
            shown["outcome"], shown["value"], shown["previous"], shown["reason"]
        )
    return found


class WiredPipeline(Pipeline):
    def close(self) -> None:
        self.connectors.close()
        if self.siro is not None:
            self.siro.close()
        if self.ledger is not None:
            self.ledger.close()


def make_pipeline(config: dict[str, Any], siro_server: Any, tmp_path: Path, *, salesforce_session: Any = None,
                  database_url: str | None = None) -> WiredPipeline:
    """A pipeline on the Siro simulator, the given connections and a fresh SQLite ledger."""
    parsed = parse_config(config, env={})

    def build(connection, cls):
        if connection.connector == "salesforce" and salesforce_session is not None:
            return cls(connection.options, session=salesforce_session)
        return cls(connection.options)

    siro = SiroClient(siro_server.url, siro_server.token, max_retries=1, backoff_base=0.001, backoff_max=0.01)
    ledger = Ledger.open(database_url or f"sqlite:///{tmp_path}/ledger.db")
    return WiredPipeline(
        parsed,
        connectors=ConnectorPool(parsed, build),
        siro=siro,
        ledger=ledger,
        retry=RetryPolicy(max_retries=2, base_s=0.01, max_s=0.05),
    )
