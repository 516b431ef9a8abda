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

Exactly once: before a call that may create a note, the ledger marks an
intent (``Ledger.mark_note_intent``); the CRM's answer settles it. An intent
left by a worker that died between the two makes the next run ask the CRM
(``Connector.find_note``) for the note before creating one. A call that
failed transiently is retried here the same way (look up, then create), never
by sending the create again blind. The connector batches the notes of a page
as its CRM allows (``connectors.notes``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from connectors.base import Connector
from connectors.notes import NoteResult, NoteTarget, NoteWrite, render_html
from worker.errors import (
    ConfigError,
    CredentialError,
    Reason,
    SoftTimeLimit,
    TransientError,
    WritebackError,
)
from worker.limits.backoff import RetryPolicy
from worker.logs import log_context
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.plan import WritePlan
from worker.report import NoteOutcome, NoteReport
from worker.settings import ConnectionConfig, WritebackConfig
from worker.siro.models import Recording

log = logging.getLogger(__name__)

#: How far before a note intent a CRM's clock may put the note's creation.
CLOCK_SKEW = timedelta(minutes=5)
#: The records a crash recovery asks for the note on, at most (one request each, a rare path).
MAX_LOOKUPS = 3
#: Reasons that skip the whole recording, and its note with it.
_NO_NOTE = frozenset({Reason.DELETED, Reason.NOT_LINKED, Reason.STALE, Reason.REVERTED})
NO_SUMMARY = "no_summary"
NO_TARGETS = "no_targets"


@dataclass
class NoteJob:
    """One recording's note on one connection, from decision to report."""

    index: int  # the recording's place in the batch
    connection: ConnectionConfig
    write: NoteWrite
    content_hash: str
    full_html: str = ""  # the body, also when ``write.html`` is None (content unchanged)
    intent_at: datetime | None = None  # since when a create of this note may have happened unseen
    report: NoteReport | None = None
    transient: bool = False  # failed for a reason that may pass: the task retries the recording

    def decide(self, outcome: NoteOutcome, reason: str | None = None, note_id: str | None = None,
               attached: frozenset[NoteTarget] | None = None) -> None:
        targets = self.write.attached if attached is None else attached
        self.report = NoteReport(self.connection.display_name, None, note_id or self.write.note_id,
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
                lines[job.index].append(replace(job.report, object=self._note_object(job.connection)))
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
        return NoteJob(index, connection, write, content_hash, full_html=html)

    def _settle(self, batch: list[NoteJob], *, dry_run: bool, force: bool) -> None:
        """Decide each job against the ledger, then send what must be sent in one connector call."""
        states = self.ledger.note_states([(job.write.key, job.connection.display_name) for job in batch]) \
            if self.ledger is not None else {}
        connection = batch[0].connection
        to_send: list[NoteJob] = []
        for job in batch:
            state = states.get((job.write.key, connection.display_name))
            if state is not None and state.note_id is not None:
                attached = frozenset(NoteTarget(obj, record_id) for obj, record_id in state.attached)
                same = state.content_hash == job.content_hash and state.intent_at is None and not force
                # Unchanged content is not sent again (a Salesforce note would gain a version each time).
                job.write = replace(job.write, note_id=state.note_id, attached=attached,
                                    html=None if same else job.write.html)
                # A record the CRM refused (deleted) is asked again only with new content.
                refused = {NoteTarget(obj, record_id) for obj, record_id in state.refused}
                if same and set(job.write.targets) <= attached | refused:
                    job.decide(NoteOutcome.UNCHANGED)
                    continue
            if dry_run or connection.mode == "shadow":
                job.decide(NoteOutcome.PLANNED, None if dry_run else "shadow mode: nothing is sent")
                continue
            to_send.append(job)
        if to_send:
            self._send(connection, self._claim(to_send))

    # -- sending --------------------------------------------------------------------

    def _claim(self, jobs: list[NoteJob]) -> list[NoteJob]:
        """Hold each note for this run (``Ledger.claim_note``); a note another run holds waits."""
        if self.ledger is None:
            return jobs
        held = []
        lease = self.config.worker.time_limit_s
        for job in jobs:
            claim = self.ledger.claim_note(job.write.key, job.connection.display_name, self._note_object(
                job.connection) or "note", lease)
            if claim is None:
                job.decide(NoteOutcome.FAILED, "busy: another run is writing this note now; retried later")
                job.transient = True
                continue
            job.intent_at = claim.pending  # a run that died may have created it: looked up first
            held.append(job)
        return held

    def _send(self, connection: ConnectionConfig, jobs: list[NoteJob]) -> None:
        """Send the jobs' notes; a transient failure is retried after looking up what was created."""
        connector = self.connectors.get(connection)
        attempt, started = 0, datetime.now(UTC)
        while jobs:
            try:
                self._recover(connector, jobs)
                results = connector.write_notes([job.write for job in jobs])
            except SoftTimeLimit:
                raise  # the claims lapse and the intents stay: the task's retry looks the notes up
            except WritebackError as exc:
                jobs = self._take_partial(connector, jobs, exc)
                if not isinstance(exc, TransientError) or attempt >= self.retry.max_retries:
                    self._fail(jobs, exc, created_nothing=not isinstance(exc, TransientError))
                    return
                wait = self.retry.delay(attempt, exc.retry_after)
                log.warning("notes of %s failed (%s); retry %d/%d in %.1fs", connection.display_name, exc,
                            attempt + 1, self.retry.max_retries, wait)
                self.retry.sleep(wait)
                attempt += 1
                for job in jobs:  # whatever the lost answer created or re-created is looked up first
                    job.intent_at = job.intent_at or started
                continue
            for job, result in zip(jobs, results, strict=True):
                self._settle_result(connector, job, result)
            return

    def _take_partial(self, connector: Connector, jobs: list[NoteJob], exc: WritebackError) -> list[NoteJob]:
        """Settle the notes a failed call had answered (``exc.partial``); the jobs still to send."""
        answered = {result.key: result for result in exc.partial if isinstance(result, NoteResult)}
        for job in jobs:
            if job.write.key in answered:
                self._settle_result(connector, job, answered[job.write.key])
        return [job for job in jobs if job.write.key not in answered]

    def _recover(self, connector: Connector, jobs: list[NoteJob]) -> None:
        """For each job whose create may have happened unseen, ask the CRM for the note (on each of its
        records in turn, never taking another recording's note) before anything is created."""
        for job in jobs:
            if job.intent_at is None:
                continue
            found = self._find(connector, job)
            if found is not None and found != job.write.note_id:
                log.info("note of recording %s on %s was created before its answer was stored: %s",
                         job.write.key, job.connection.display_name, found)
                # Its content and links are not known for sure: send both again, in place.
                job.write = replace(job.write, note_id=found, attached=frozenset(), html=job.full_html)
            job.intent_at = None

    def _find(self, connector: Connector, job: NoteJob) -> str | None:
        since = job.intent_at - CLOCK_SKEW  # type: ignore[operator]
        name = job.connection.display_name
        exclude: set[str] = set()
        for first in job.write.targets[:MAX_LOOKUPS]:
            targets = (first, *(t for t in job.write.targets if t != first))
            while True:
                found = connector.find_note(replace(job.write, targets=targets), since, frozenset(exclude))
                owner = self.ledger.note_owner(name, found) if found and self.ledger is not None else None
                if found is None or owner in (None, job.write.key):
                    break
                exclude.add(found)  # another recording's note with the same title
            if found is not None:
                return found
        return None

    def _settle_result(self, connector: Connector, job: NoteJob, result: NoteResult) -> None:
        refused = "; ".join(f"{target.object} {target.record_id}: {why}"
                            for target, why in sorted(result.refused.items()))
        failed = result.outcome == "failed"
        if failed:
            job.decide(NoteOutcome.FAILED, result.reason or "the CRM refused the note", result.note_id,
                       result.attached)
        else:
            job.decide(NoteOutcome(result.outcome), f"not attached to {refused}" if refused else None,
                       result.note_id, result.attached)
        if self.ledger is None:
            return
        name = job.connection.display_name
        if result.note_id is None:
            # No note the CRM confirmed (it may have made one and not said so): the intent stays.
            self.ledger.release_note(job.write.key, name, created_nothing=False)
            return
        # A failed change leaves no hash: the content is sent again next time.
        self.ledger.settle_note(job.write.key, name, connector.note_object, result.note_id,
                                None if failed else job.content_hash,
                                [(t.object, t.record_id) for t in result.attached],
                                [(t.object, t.record_id) for t in result.refused])

    def _fail(self, jobs: list[NoteJob], exc: WritebackError, *, created_nothing: bool) -> None:
        """``created_nothing``: the CRM refused the call as a whole; a job whose earlier intent was not
        looked up yet keeps it all the same."""
        transient = isinstance(exc, TransientError)
        what = "unavailable" if transient else type(exc).__name__
        for job in jobs:
            job.decide(NoteOutcome.FAILED, f"{what}: {exc}")
            job.transient = transient
            if self.ledger is not None:
                self.ledger.release_note(job.write.key, job.connection.display_name,
                                         created_nothing=created_nothing and job.intent_at is None)

    def _note_object(self, connection: ConnectionConfig) -> str | None:
        try:
            return self.connectors.get(connection).note_object
        except WritebackError:
            return None


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
