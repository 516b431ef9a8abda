"""Counts the Siro and CRM requests of ``writeback sync`` for the demo's sample recordings.

Each sync runs as a fresh process would (new Siro client, new connectors, so
schemas are fetched again), with the demo's own configuration, against the
shipped simulators. Prints one line per sync with the requests by kind.

Usage::

    .venv/bin/python bench/requests_one_recording.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.local import serve_demo  # noqa: E402
from worker.cli.demo import demo_config, local_pipeline  # noqa: E402
from worker.ledger import Ledger  # noqa: E402


def main() -> None:
    with serve_demo() as (local, recordings):
        config = demo_config(local)
        ledger = Ledger.open(f"sqlite:///{local.folder}/ledger.db")
        try:
            for recording_id in (recordings.salesforce, recordings.hubspot):
                for attempt in ("first sync", "second sync"):
                    local.clear_crm_logs()
                    pipeline = local_pipeline(local, config, ledger=ledger)  # a new process: schemas fetched again
                    report = pipeline.sync(recording_id)
                    kinds = local.crm_requests()
                    print(f"{recording_id} {attempt}: {pipeline.siro.request_count} Siro, {sum(kinds.values())} CRM "
                          f"{dict(sorted(kinds.items()))}; {report.counts().get('written', 0)} fields written")
        finally:
            ledger.close()


if __name__ == "__main__":
    main()
