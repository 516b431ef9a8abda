"""The notes stage: a recording's summary as one note per connection in the CRM (DESIGN §7).

After the fields, ``Pipeline.process`` hands this stage the batch's
recordings. For each recording whose connection has ``[connections.notes]
enabled``, it builds the note (title, the chosen summary sections as escaped
HTML, the linked records of the ``attach_to`` slots) and decides from the
ledger what the CRM needs:

* the same content on the same records: ``unchanged``, no request;
* nothing known: create it; a changed summary: update it in place; a record
  linked since: attach the note to it (``updated``);
* no summary yet (``isSummaryDone`` false, or no section left): ``skipped``,
  ``no_summary``; the recording's next change brings it back.

What must be sent goes to ``note_sender``, which keeps it to exactly once
through the ledger (a claim per note, an intent before each call, a look-up
in the CRM before creating again after a lost answer or a killed worker). The
connector batches the notes of a page as its CRM allows (``connectors.notes``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from connectors.base import Connector
from connectors.notes import NoteTarget, NoteWrite, render_html
from worker.errors import (
    ConfigError,
    CredentialError,
    Reason,
    SoftTimeLimit,
    TransientError,
)
from worker.ledger.notes import NoteState
from worker.limits.backoff import RetryPolicy
from worker.logs import log_context
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.note_sender import NoteSender
from worker.pipeline.plan import WritePlan
from worker.report import NoteOutcome, NoteReport
from worker.settings import ConnectionConfig, WritebackConfig
from worker.siro.models import Recording

log = logging.getLogger(__name__)

#: Reasons that skip the whole recording, and its note with it.
_NO_NOTE = frozenset({Reason.DELETED, Reason.NOT_LINKED, Reason.STALE, Reason.REVERTED})
NO_SUMMARY = "no_summary"
NO_TARGETS = "no_targets"


@dataclass
class NoteJob:
    """One recording's note on one connection, from decision to report."""

    index: int  # the recording's place in the batch
    connection: ConnectionConfig
    note_object: str  # the CRM's name of a note, for the report
    write: NoteWrite
    content_hash: str
    full_html: str = ""  # the body, also when ``write.html`` is None (content unchanged)
    intent_at: datetime | None = None  # since when a create of this note may have happened unseen
    token: str | None = None  # the ledger's claim on the note, while this run holds it
    report: NoteReport | None = None
    transient: bool = False  # failed for a reason that may pass: the task retries the recording

    def decide(self, outcome: NoteOutcome, reason: str | None = None, note_id: str | None = None,
               attached: frozenset[NoteTarget] | None = None) -> None:
        targets = self.write.attached if attached is None else attached
        self.report = NoteReport(self.connection.display_name, self.note_object, note_id or self.write.note_id,
                                 tuple((t.object, t.record_id) for t in sorted(targets)), outcome, reason)


class NoteStage:
    """Writes the summary notes of a batch of recordings; see the module docstring."""

    def __init__(self, config: WritebackConfig, connectors: ConnectorPool, retry: RetryPolicy) -> None:
        self.config = config
        self.connectors = connectors
        self.retry = retry
        self.ledger = None  # worker.ledger.Ledger | None, set by the pipeline

    def run(self, recordings: Sequence[Recording], plans: Sequence[WritePlan], *, dry_run: bool = False,
            force: bool = False) -> tuple[list[list[NoteReport]], set[int]]:
        """The note lines of each recording, in order (empty where notes are off), and the indexes of
        the recordings whose note failed transiently (to be retried)."""
        lines: list[list[NoteReport]] = [[] for _ in recordings]
        transient: set[int] = set()
        jobs: dict[str, list[NoteJob]] = {}
        for index, (recording, plan) in enumerate(zip(recordings, plans, strict=True)):
            connection = self.connection_for(plan)
            if connection is None:
                continue
            line_or_job = self._job(index, recording, connection)
            if isinstance(line_or_job, NoteReport):
                lines[index].append(line_or_job)
            else:
                jobs.setdefault(connection.display_name, []).append(line_or_job)
        for name, batch in jobs.items():
            with log_context(connection=name):
                try:
                    self._settle(batch, dry_run=dry_run, force=force)
                except SoftTimeLimit:
                    raise
                except Exception as exc:  # a bug or a ledger outage fails this batch's notes, nothing else
                    log.exception("writing the summary notes of %s failed", name)
                    for job in batch:
                        if job.report is None:
                            job.transient = isinstance(exc, TransientError)
                            what = "unavailable" if job.transient else "internal error"
                            job.decide(NoteOutcome.FAILED, f"{what}: {type(exc).__name__}: {exc}")
            for job in batch:
                assert job.report is not None
                lines[job.index].append(job.report)
                if job.transient:
                    transient.add(job.index)
        return lines, transient

    # -- deciding -------------------------------------------------------------------

    def connection_for(self, plan: WritePlan) -> ConnectionConfig | None:
        """The connection that writes this recording's note; None when it gets none."""
        if plan.connection is None or plan.skipped in _NO_NOTE or plan.failed:
            return None
        connection = next((c for c in self.config.connections if c.display_name == plan.connection), None)
        return connection if connection is not None and connection.notes.enabled else None

    def _job(self, index: int, recording: Recording, connection: ConnectionConfig) -> NoteJob | NoteReport:
        name = connection.display_name
        try:
            connector = self.connectors.get(connection)
        except (ConfigError, CredentialError) as exc:
            return NoteReport(name, None, None, (), NoteOutcome.FAILED, str(exc))
        if not connector.notes_supported:
            return NoteReport(name, None, None, (), NoteOutcome.UNSUPPORTED,
                              f"connector {connector.name!r} does not write notes")
        if type(connector).find_note is Connector.find_note:  # fail closed: a lost answer would make two
            return NoteReport(name, connector.note_object, None, (), NoteOutcome.FAILED,
                              f"connector {connector.name!r} writes notes but cannot look one up (find_note), "
                              "so a lost answer could make two; nothing is sent")
        sections = [(section.name or "", section.content or "") for section in recording.summary or ()
                    if connection.notes.wants(section.name) and (section.content or "").strip()]
        if recording.is_summary_done is False or not sections:
            return NoteReport(name, connector.note_object, None, (), NoteOutcome.SKIPPED,
                              f"{NO_SUMMARY}: Siro has no summary for this recording yet")
        targets = _targets(recording, connection, connector)
        if not targets:
            return NoteReport(name, connector.note_object, None, (), NoteOutcome.SKIPPED,
                              f"{NO_TARGETS}: no record of {', '.join(connection.notes.attach_to)} is linked")
        title = f"Siro: {(recording.title or '').strip() or recording.id}"
        html = render_html(title, sections)
        content_hash = hashlib.sha256(f"{title}\0{html}".encode()).hexdigest()
        moment = recording.created_at or recording.updated_at or datetime.now(UTC)
        write = NoteWrite(recording.id, title, html, moment.astimezone(UTC), targets)
        return NoteJob(index, connection, connector.note_object, write, content_hash, full_html=html)

    def _settle(self, batch: list[NoteJob], *, dry_run: bool, force: bool) -> None:
        """Decide each job against the ledger; send what must be sent (``note_sender``)."""
        connection = batch[0].connection
        states = self.ledger.note_states([(job.write.key, connection.display_name) for job in batch]) \
            if self.ledger is not None else {}
        # Unchanged needs no claim: the CRM holds this content already, whoever else is at work.
        batch = [job for job in batch if _decide(job, states.get((job.write.key, connection.display_name)), force)]
        if dry_run or connection.mode == "shadow":
            for job in batch:
                job.decide(NoteOutcome.PLANNED, None if dry_run else "shadow mode: nothing is sent")
            return
        if batch:
            sender = NoteSender(self.connectors.get(connection), self.ledger, self.retry,
                                self.config.worker.time_limit_s)
            sender.send(batch, lambda job, state: _decide(job, state, force))


def _decide(job: NoteJob, state: NoteState | None, force: bool) -> bool:
    """Fit the job to what the ledger knows (its note id, its records, whether the content changed);
    False, with the job ``unchanged``, when the CRM already holds it all."""
    if state is None or state.note_id is None:
        return True
    attached = frozenset(NoteTarget(obj, record_id) for obj, record_id in state.attached)
    same = state.content_hash == job.content_hash and state.intent_at is None and not force
    # Unchanged content is not sent again (a Salesforce note would gain a version each time).
    job.write = replace(job.write, note_id=state.note_id, attached=attached, html=None if same else job.full_html)
    # A record the CRM refused (deleted) is asked again only with new content.
    refused = {NoteTarget(obj, record_id) for obj, record_id in state.refused}
    if same and set(job.write.targets) <= attached | refused:
        job.decide(NoteOutcome.UNCHANGED)
        return False
    return True


def _targets(recording: Recording, connection: ConnectionConfig, connector: Connector) -> tuple[NoteTarget, ...]:
    """The records the note goes on: the linked records of the ``attach_to`` slots the CRM can take."""
    found: dict[NoteTarget, None] = {}
    for slot in connection.notes.attach_to:
        object_name = connector.note_targets.get(slot)
        if object_name is None or recording.crm is None:
            continue
        for link in recording.crm.slot(slot):
            found[NoteTarget(object_name, connector.canonical_id(object_name, str(link.external_id)))] = None
    return tuple(found)
