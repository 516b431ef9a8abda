"""The pipeline run: fetch, resolve, validate, diff, write, record (DESIGN §1).

Every trigger (``writeback sync``, the Celery tasks behind the scheduler and
the webhook) runs this same code. ``Pipeline.process`` takes recordings
already fetched (a list page carries them whole), resolves each (``resolver``,
pure), groups every planned field by (connection, object) and hands each
group to the one ``writer`` with the pipeline's ``decide.ExtractionDecision``;
so a batch of recordings is written with batched CRM calls: per connection and
object, one schema lookup, one read of current values, and one write per CRM
batch. When several recordings of a batch write one field of one record, the
newest conversation's value is the one written (the others are
``skipped_policy``, superseded), so replaying a page never makes the CRM flip
through history.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

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
from worker.pipeline import review
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.decide import ExtractionDecision, PlannedChange
from worker.pipeline.notes import NoteStage
from worker.pipeline.plan import WritePlan
from worker.pipeline.resolver import resolve
from worker.pipeline.rules import unknown_entries
from worker.pipeline.writer import SHADOW, Writer
from worker.report import (
    FieldReport,
    NoteOutcome,
    NoteReport,
    Outcome,
    RecordingReport,
    Status,
    status_of,
)
from worker.settings import ConnectionConfig, WritebackConfig
from worker.siro.client import RecordingNotFound, SiroClient
from worker.siro.models import Recording

log = logging.getLogger(__name__)

Batch = tuple[ConnectionConfig, str, list[tuple[int, PlannedChange]]]  # connection, object, (plan index, change)


class Pipeline:
    """Runs recordings through the stages; holds no state between calls but the
    connectors' schema caches, so any worker can process any recording."""

    def __init__(
        self,
        config: WritebackConfig,
        *,
        connectors: ConnectorPool,
        siro: SiroClient | None = None,
        ledger=None,  # noqa: ANN001 - worker.ledger.Ledger | None
        retry: RetryPolicy | None = None,
        log_refusals: bool = True,
    ) -> None:
        """``log_refusals``: log a connection refused for its config as an error (a worker's log is
        where an operator looks; the CLI says it in its own one line instead)."""
        self.config = config
        self.connectors = connectors
        self.siro = siro
        self.retry = retry or RetryPolicy(
            max_retries=config.retry.max_retries, base_s=config.retry.base_s, max_s=config.retry.max_s
        )
        self.writer = Writer(connectors, ledger, self.retry)
        self.notes = NoteStage(config, connectors, self.retry)
        self.notes.ledger = ledger
        self._rule_problems: dict[str, list[str]] = {}  # per connection, once checked (``rules``)
        self.log_refusals = log_refusals

    @property
    def ledger(self):  # noqa: ANN201 - worker.ledger.Ledger | None
        """The ledger the writer records in (None: nothing is recorded)."""
        return self.writer.ledger

    @ledger.setter
    def ledger(self, value) -> None:  # noqa: ANN001
        self.writer.ledger = value
        self.notes.ledger = value

    # -- entry points -------------------------------------------------------

    def sync(self, recording_id: str, *, dry_run: bool = False, trigger: str = "cli",
             force: bool = False) -> RecordingReport:
        """Fetch one recording from Siro and write it. Siro auth errors propagate.

        ``force``: write it even when this version was reverted (``writeback sync --force``)."""
        if self.siro is None:
            raise RuntimeError("Pipeline.sync needs a Siro client")
        try:
            recording = self.siro.get_recording(recording_id, summary=self.config.wants_summaries)
        except RecordingNotFound:
            report = RecordingReport.because(recording_id, Status.FAILED, Reason.NOT_FOUND,
                                             "Siro has no recording with this id")
            self.writer.record(report, trigger=trigger, dry_run=dry_run)
            return report
        return self.process([recording], dry_run=dry_run, trigger=trigger, force=force)[0]

    def process(
        self, recordings: Sequence[Recording], *, dry_run: bool = False, trigger: str = "cli", force: bool = False
    ) -> list[RecordingReport]:
        """Write recordings already fetched; one report per recording, in order."""
        plans = self._plans(recordings, force=force)
        changes: list[list[PlannedChange]] = [[] for _ in plans]  # per plan, in batch order
        for connection, object_name, batch in self._batches(plans, recordings):
            with log_context(connection=connection.display_name):
                self._write_batch(connection, object_name, [change for _, change in batch], dry_run=dry_run)
            for index, change in batch:
                changes[index].append(change)
        notes, notes_transient = self._notes(recordings, plans, dry_run=dry_run, force=force)
        reports = []
        for index, plan in enumerate(plans):
            report = self._report(plan, changes[index])
            _add_notes(report, notes[index], transient=index in notes_transient)
            self.writer.record(report, trigger=trigger, dry_run=dry_run, version=recordings[index].updated_at)
            reports.append(report)
        return reports

    # -- stages ---------------------------------------------------------------

    def _plans(self, recordings: Sequence[Recording], *, force: bool = False) -> list[WritePlan]:
        """Each recording's write plan; an older snapshot of one already written is skipped (stale),
        and so is a version that was reverted (unless ``force``)."""
        reverted = {} if force else self._reverted(recordings)
        newer = self._newer_versions(recordings)
        plans = []
        for recording in recordings:
            if recording.id in reverted:
                plans.append(WritePlan(recording.id, None, skipped=Reason.REVERTED, detail=reverted[recording.id]))
            elif recording.id in newer:
                plans.append(WritePlan(recording.id, None, skipped=Reason.STALE, detail=newer[recording.id]))
            else:
                plans.append(self._plan(recording))
        return plans

    def _plan(self, recording: Recording) -> WritePlan:
        link_id = recording.crm.integration_connection_id if recording.crm else None
        connection = self.config.connection_for(link_id)
        model_map = self.connectors.model_map(connection) if connection else {}
        return resolve(recording, connection, model_map)

    def _batches(self, plans: list[WritePlan], recordings: Sequence[Recording]) -> Iterable[Batch]:
        """Every planned field grouped by (connection, object), keeping plan order."""
        grouped: dict[tuple[str, str], Batch] = {}
        for index, plan in enumerate(plans):
            if plan.connection is None:
                continue
            connection = next(c for c in self.config.connections if c.display_name == plan.connection)
            recording = recordings[index]
            recency = (_timestamp(recording), index)
            for update in plan.updates:
                key = (plan.connection, update.object.casefold())
                if key not in grouped:
                    grouped[key] = (connection, update.object, [])
                grouped[key][2].extend(
                    (index, PlannedChange.of(update, write, recency, version=recording.updated_at,
                                             recorded_at=recording.created_at or recording.updated_at))
                    for write in update.fields.values()
                )
        return grouped.values()

    def _write_batch(self, connection: ConnectionConfig, object_name: str, changes: list[PlannedChange], *,
                     dry_run: bool) -> None:
        decision = ExtractionDecision(write_nulls=connection.fields.write_nulls)
        shadow = connection.mode == "shadow"
        try:
            if self._refused(connection, changes):
                return
            self.writer.write(connection, object_name, changes, decision, dry_run=dry_run or shadow,
                              unsent=SHADOW if shadow and not dry_run else None)
            review.hold(self.ledger, changes, dry_run=dry_run, shadow=shadow)
        except SoftTimeLimit:
            raise  # the task retries the recording; what was written is ``unchanged`` next time
        except (ConfigError, CredentialError) as exc:  # the connector could not be built or asked
            for change in changes:
                if not change.done:
                    change.fail(exc)
        except Exception as exc:  # a bug or a ledger outage must not lose what was already written
            log.exception("writing %s of connection %s failed", object_name, connection.display_name)
            transient = isinstance(exc, TransientError)  # the ledger, Redis: retried later
            for change in changes:
                if not change.done:
                    what = "unavailable" if transient else "internal error"
                    change.decide(Outcome.FAILED, f"{what}: {type(exc).__name__}: {exc}")
                    change.transient = transient

    def _notes(self, recordings: Sequence[Recording], plans: list[WritePlan], *, dry_run: bool,
               force: bool) -> tuple[list[list[NoteReport]], set[int]]:
        """The summary notes (``notes``), after the fields; a failure of the stage fails only the notes."""
        try:
            return self.notes.run(recordings, plans, dry_run=dry_run, force=force)
        except SoftTimeLimit:
            raise
        except Exception as exc:  # a bug before any note was sent must not lose the fields' outcomes
            log.exception("writing the summary notes failed")
            failed = NoteReport("", None, None, (), NoteOutcome.FAILED, f"internal error: {type(exc).__name__}: {exc}")
            return [[replace(failed, connection=plan.connection)] if self.notes.connection_for(plan) else []
                    for plan in plans], set()

    def _refused(self, connection: ConnectionConfig, changes: list[PlannedChange]) -> bool:
        """Fail closed: a connection whose rules name what the CRM lacks writes nothing (``rules``).

        Checked once per connection and process; a transient failure of the
        check fails the changes transiently (retried), and is checked again.
        """
        name = connection.display_name
        if name not in self._rule_problems:
            try:
                connector = self.connectors.get(connection)
                problems = self.retry.call(
                    lambda: unknown_entries(connection, connector, self.connectors.model_map(connection)),
                    f"the schema behind the rules of {name}")
            except (TransientError, CredentialError) as exc:  # may pass, or a person fixes the credentials
                for change in changes:
                    change.fail(exc)
                return True
            except WritebackError as exc:
                # The rules cannot be held against the CRM (a connector refused, a 403 on an object
                # they name): unverified rules are not trusted, the connection writes nothing.
                problems = [f"the rules could not be checked against the CRM: {exc}"]
            if problems and self.log_refusals:
                log.error("connection %r: %s; nothing is written on it until the config is fixed", name,
                          "; ".join(problems))
            self._rule_problems[name] = problems
        problems = self._rule_problems[name]
        for change in changes if problems else ():
            change.decide(Outcome.FAILED, Reason.CONFIG.explain("; ".join(problems)))
            change.cause = Reason.CONFIG
        return bool(problems)

    # -- reports ------------------------------------------------------------------

    def _report(self, plan: WritePlan, changes: Sequence[PlannedChange]) -> RecordingReport:
        lines: list[FieldReport] = [*plan.decided, *(line for change in changes for line in change.reports)]
        if plan.failed:
            report = RecordingReport.because(plan.recording_id, Status.FAILED, plan.failed, plan.detail, lines)
        elif plan.skipped:
            report = RecordingReport.because(plan.recording_id, Status.SKIPPED, plan.skipped, plan.detail, lines)
        elif any(change.cause for change in changes):
            cause = next(change for change in changes if change.cause)
            detail = cause.reports[0].reason if cause.cause is Reason.CONFIG else None
            report = RecordingReport(plan.recording_id, Status.FAILED, lines, reason=detail or str(cause.cause),
                                     code=cause.cause)
        else:
            report = RecordingReport(plan.recording_id, status_of(lines), lines)
        transient = [change for change in changes if change.transient]
        if transient:
            report.transient = True
            waits = [change.retry_after for change in transient if change.retry_after is not None]
            report.retry_after = max(waits) if waits else None
        return report

    def _reverted(self, recordings: Sequence[Recording]) -> dict[str, str]:
        """Why each recording whose version was reverted (``writeback revert``) is skipped."""
        if self.ledger is None:
            return {}
        reverted = self.ledger.reverted_versions([recording.id for recording in recordings])
        return {
            recording.id: f"this version (updatedAt {reverted[recording.id].isoformat()}) was reverted; "
            "writeback sync --force writes it again"
            for recording in recordings
            if recording.id in reverted and (recording.updated_at is None
                                             or recording.updated_at <= reverted[recording.id])
        }

    def _newer_versions(self, recordings: Sequence[Recording]) -> dict[str, str]:
        """Why each recording whose newer version was already written is skipped.

        A page task carries recordings as they were listed; a webhook may have
        written a newer version since. Writing the older snapshot would put its
        values back over the newer ones.
        """
        if self.ledger is None:
            return {}
        stamped = [recording for recording in recordings if recording.updated_at is not None]
        if not stamped:
            return {}
        done = self.ledger.newest_versions([recording.id for recording in stamped])
        return {
            recording.id: f"a newer version of this recording (updatedAt {done[recording.id].isoformat()}) "
            "was already processed"
            for recording in stamped
            if recording.id in done and recording.updated_at < done[recording.id]
        }


def _add_notes(report: RecordingReport, notes: list[NoteReport], *, transient: bool) -> None:
    """Put the note lines in the report: a failed note makes an ``ok`` recording ``partial``, and a
    recording skipped only because no field was mapped ``ok`` when its note was written."""
    if not notes:
        return
    report.notes = notes
    failed = any(note.outcome is NoteOutcome.FAILED for note in notes)
    if report.status is Status.SKIPPED and report.code is Reason.NOTHING_MAPPED and not failed and any(
            note.outcome not in (NoteOutcome.SKIPPED, NoteOutcome.UNSUPPORTED) for note in notes):
        report.status, report.reason, report.code = Status.OK, None, None
    if failed and report.status in (Status.OK, Status.SKIPPED):
        report.status = Status.PARTIAL
    if transient:
        report.transient = True


def _timestamp(recording: Recording) -> float:
    """When the conversation was recorded: the latest conversation is the latest truth
    (``updatedAt`` also moves when an old recording is re-linked or re-processed)."""
    moment: datetime | None = recording.created_at or recording.updated_at
    return moment.timestamp() if moment else float("-inf")
