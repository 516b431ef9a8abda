"""Counts the Siro and CRM requests of ``writeback sync`` and ``writeback revert`` for the demo's recordings.

Each command runs as a fresh process would (new Siro client, new connectors,
so schemas are fetched again), with the demo's own configuration, against the
shipped simulators. Prints one line per command with the requests by kind:
two syncs of each recording (its summary note created, then unchanged), a
third after its summary changed (the note updated in place), then two
reverts of it (the second finds nothing to put back).

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
from worker.pipeline.revert import revert  # noqa: E402


def main() -> None:
    with serve_demo() as (local, recordings):
        config = demo_config(local)
        ledger = Ledger.open(f"sqlite:///{local.folder}/ledger.db")
        try:
            for recording_id in (recordings.salesforce, recordings.hubspot):
                for attempt in ("first sync", "second sync", "summary changed"):
                    if attempt == "summary changed":
                        local.siro.update_recording(recording_id, summary=[
                            {"id": "s1", "name": "Overview", "content": "The customer asked for a second quote."}])
                    local.clear_crm_logs()
                    pipeline = local_pipeline(local, config, ledger=ledger)  # a new process: schemas fetched again
                    report = pipeline.sync(recording_id)
                    kinds = local.crm_requests()
                    notes = ", ".join(f"note {note.outcome}" for note in report.notes)
                    print(f"{recording_id} {attempt}: {pipeline.siro.request_count} Siro, {sum(kinds.values())} CRM "
                          f"{dict(sorted(kinds.items()))}; {report.counts().get('written', 0)} fields written; "
                          f"{notes} ({local.crm_note_requests()} note requests)")
                for attempt in ("revert", "second revert"):
                    local.clear_crm_logs()
                    pipeline = local_pipeline(local, config, ledger=ledger)
                    report = revert(pipeline, recording_id)
                    kinds = local.crm_requests()
                    print(f"{recording_id} {attempt}: {pipeline.siro.request_count} Siro, {sum(kinds.values())} CRM "
                          f"{dict(sorted(kinds.items()))}; {report.counts()}")
        finally:
            ledger.close()


if __name__ == "__main__":
    main()
