"""The pipeline: fetch, resolve, validate, diff, write, record (DESIGN §1).

Every trigger (``writeback sync``, and later the Celery tasks behind the
scheduler and the webhook) runs this same code. ``Pipeline.process`` takes
recordings already fetched (a list page carries them whole), so a batch of
recordings is written with batched CRM calls: per connection and object, one
schema lookup, one read of current values, and one write per CRM batch; when
several recordings of a batch write one field of one record, the newest
recording's value (by when the conversation was recorded) is the one written (the others are ``skipped_policy``,
superseded), so replaying a page never makes the CRM flip through history.

Outcomes are what the CRM answered, never what we meant to send: a field is
``written`` only when the connector reports the CRM accepted it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from connectors.base import (
    AuthError,
    Connector,
    ConnectorError,
    FieldError,
    FieldSchema,
    FieldType,
    ObjectSchema,
    RecordState,
    RecordWrite,
    RecordWriteResult,
    TransientError,
    UnknownObject,
)
from worker.errors import Reason
from worker.ledger import IntentRow, Ledger, LedgerUnavailable, OutcomeRow
from worker.limits.backoff import RetryPolicy
from worker.pipeline import coercion
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.plan import FieldWrite, RecordUpdate, WritePlan
from worker.pipeline.report import (
    FieldReport,
    Outcome,
    RecordingReport,
    Status,
    status_of,
)
from worker.pipeline.resolver import resolve
from worker.settings import ConnectionConfig, WritebackConfig
from worker.siro.client import RecordingNotFound, SiroClient
from worker.siro.models import Recording

log = logging.getLogger(__name__)


@dataclass
class _Field:
    """One planned field of one record as it moves through validate/diff/write."""

    update: RecordUpdate
    write: FieldWrite
    schema: FieldSchema | None = None
    value: Any = None  # canonical value once coerced
    previous: Any = None  # canonical current CRM value once read
    coerced: bool = False
    recency: tuple[Any, int] = (None, 0)  # (when the conversation was recorded, position): the newest wins
    reports: list[FieldReport] = field(default_factory=list)  # set once the outcome is known
    # Lines of contested values set aside before the outcome (empty ones: null_value).
    notes: list[FieldReport] = field(default_factory=list)
    extraction: str = ""  # who gave the value written; all the field's extractions unless some were set aside
    transient: bool = False  # failed for a reason that may pass: worth a later retry
    auth: bool = False  # failed because the CRM rejected the credentials
    retry_after: float | None = None

    @property
    def name(self) -> str:
        return self.schema.name if self.schema else self.write.field

    @property
    def done(self) -> bool:
        return bool(self.reports)

    @property
    def outcome(self) -> Outcome | None:
        return self.reports[0].outcome if self.reports else None

    def decide(self, outcome: Outcome, reason: str | None = None) -> None:
        if self.write.alternatives and not self.coerced and not self.notes:
            # Decided before the contested values were settled: show each of them.
            self.reports = [
                self.line(value, outcome, reason, ", ".join(group)) for value, group in self.write.alternatives
            ]
            return
        # Once coerced, the value shown is the one sent (or that would be).
        shown = self.value if self.coerced else self.write.value
        self.reports = [*self.notes, self.line(shown, outcome, reason, self.extraction or self.write.extraction)]

    def conflict(self, alternatives: Sequence[tuple[Any, tuple[str, ...]]]) -> None:
        """The extractions really disagree: one line per distinct value, nothing written."""
        names = ", ".join(name for _, group in alternatives for name in group)
        reason = f"extractions disagree on {self.update.object}.{self.name}: {names}"
        self.reports = [
            *self.notes,
            *(self.line(value, Outcome.CONFLICT, reason, ", ".join(group)) for value, group in alternatives),
        ]

    def line(self, value: Any, outcome: Outcome, reason: str | None, extraction: str) -> FieldReport:
        return FieldReport(
            connection=self.update.connection,
            object=self.update.object,
            record_id=self.update.record_id,
            field=self.name,
            value=value,
            previous=self.previous,
            outcome=outcome,
            reason=reason,
            extraction=extraction,
        )


@dataclass(frozen=True)
class _Batch:
    """One (connection, object): its fields go through the CRM together."""

    connection: ConnectionConfig
    object: str


class Pipeline:
    """Runs recordings through the stages; holds no state between calls but the
    connectors' schema caches, so any worker can process any recording."""

    # Unexpected errors in a batch that may pass on a later try: the fields
    # fail but are marked for a retry.
    transient_errors: tuple[type[BaseException], ...] = (LedgerUnavailable,)
    # Errors that end the whole run at once (a worker's soft time limit): the
    # task retries it; what was already written is ``unchanged`` next time.
    interrupts: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        config: WritebackConfig,
        *,
        connectors: ConnectorPool,
        siro: SiroClient | None = None,
        ledger: Ledger | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.connectors = connectors
        self.siro = siro
        self.ledger = ledger
        self.retry = retry or RetryPolicy(
            max_retries=config.retry.max_retries, base_s=config.retry.base_s, max_s=config.retry.max_s
        )

    # -- entry points -------------------------------------------------------

    def sync(self, recording_id: str, *, dry_run: bool = False, trigger: str = "cli") -> RecordingReport:
        """Fetch one recording from Siro and write it. Siro auth errors propagate."""
        if self.siro is None:
            raise RuntimeError("Pipeline.sync needs a Siro client")
        try:
            recording = self.siro.get_recording(recording_id)
        except RecordingNotFound:
            report = RecordingReport.because(recording_id, Status.FAILED, Reason.NOT_FOUND,
                                             "Siro has no recording with this id")
            self._record(report, trigger=trigger, dry_run=dry_run)
            return report
        return self.process([recording], dry_run=dry_run, trigger=trigger)[0]

    def process(
        self, recordings: Sequence[Recording], *, dry_run: bool = False, trigger: str = "cli"
    ) -> list[RecordingReport]:
        """Write recordings already fetched; one report per recording, in order."""
        newer = self._newer_versions(recordings)
        plans = [
            WritePlan(recording.id, None, skipped=Reason.STALE, detail=newer[recording.id])
            if recording.id in newer else self._plan(recording)
            for recording in recordings
        ]
        lines: dict[int, list[FieldReport]] = {index: list(plan.decided) for index, plan in enumerate(plans)}
        recency = {index: (_timestamp(recording), index) for index, recording in enumerate(recordings)}
        batched: list[list[tuple[int, _Field]]] = []
        for batch, fields in self._batches(plans):
            batched.append(fields)
            for index, item in fields:
                item.recency = recency[index]
            try:
                self._run_batch(batch, [item for _, item in fields], dry_run=dry_run)
            except Exception as exc:  # a bug or a ledger outage must not lose what was already written
                if isinstance(exc, self.interrupts):
                    raise
                log.exception("writing %s of connection %s failed", batch.object, batch.connection.display_name)
                for _, item in fields:
                    if not item.done:
                        item.decide(Outcome.FAILED, f"internal error: {type(exc).__name__}: {exc}")
                        item.transient = isinstance(exc, self.transient_errors)
            for index, item in fields:
                lines[index].extend(item.reports)

        reports = []
        transient: dict[int, list[_Field]] = {}
        auth: set[int] = set()
        for batch_fields in batched:
            for index, item in batch_fields:
                if item.transient:
                    transient.setdefault(index, []).append(item)
                if item.auth:
                    auth.add(index)
        for index, plan in enumerate(plans):
            report = self._report(plan, lines[index], auth=index in auth)
            version = recordings[index].updated_at
            if index in transient:
                report.transient = True
                waits = [item.retry_after for item in transient[index] if item.retry_after is not None]
                report.retry_after = max(waits) if waits else None
            self._record(report, trigger=trigger, dry_run=dry_run, version=version)
            reports.append(report)
        return reports

    # -- stages ---------------------------------------------------------------

    def _plan(self, recording: Recording) -> WritePlan:
        link_id = recording.crm.integration_connection_id if recording.crm else None
        connection = self.config.connection_for(link_id)
        model_map = self.connectors.model_map(connection) if connection else {}
        return resolve(recording, connection, model_map)

    def _batches(self, plans: list[WritePlan]) -> Iterable[tuple[_Batch, list[tuple[int, _Field]]]]:
        """Group every planned field by (connection, object), keeping plan order."""
        grouped: dict[tuple[str, str], tuple[_Batch, list[tuple[int, _Field]]]] = {}
        for index, plan in enumerate(plans):
            if plan.connection is None:
                continue
            connection = next(c for c in self.config.connections if c.display_name == plan.connection)
            for update in plan.updates:
                key = (plan.connection, update.object.casefold())
                if key not in grouped:
                    grouped[key] = (_Batch(connection, update.object), [])
                grouped[key][1].extend((index, _Field(update, write)) for write in update.fields.values())
        return grouped.values()

    def _run_batch(self, batch: _Batch, items: list[_Field], *, dry_run: bool) -> None:
        try:
            connector = self.connectors.get(batch.connection)
            schema = self.retry.call(lambda: connector.object_schema(batch.object), f"schema of {batch.object}")
        except UnknownObject as exc:
            for item in items:
                item.decide(Outcome.UNKNOWN_MODEL, f"the CRM has no object {batch.object!r}: {exc}")
            return
        except ConnectorError as exc:
            _fail_all(items, exc)
            return

        write_nulls = batch.connection.fields.write_nulls
        for update in {id(item.update): item.update for item in items}.values():
            # One spelling per record (Salesforce's 15 and 18 character ids), so
            # that recordings naming it differently still meet below.
            update.record_id = connector.canonical_id(batch.object, update.record_id)
        for item in items:
            _validate(item, schema)
            if not item.done and item.schema is not None and item.schema.controller is None:
                _coerce(item, item.schema, write_nulls=write_nulls)
        pending = [item for item in items if not item.done]
        if not pending:
            return

        # One read of every record and field of the batch (and of the fields
        # that decide a dependent field's options).
        record_ids = list(dict.fromkeys(item.update.record_id for item in pending))
        field_names = sorted({item.name for item in pending} | _controllers(pending, schema))
        try:
            states = self.retry.call(
                lambda: connector.read(batch.object, record_ids, field_names), f"read of {batch.object}"
            )
        except ConnectorError as exc:
            _fail_all(pending, exc)
            return
        current = _CurrentValues(states)
        ours: dict[tuple[str, str], list[Any]] = {}
        written: set[tuple[str, str]] = set()
        if self.ledger is not None and any(item.write.policy == "protect_edits" for item in pending):
            ours, written = self.ledger.protected_values(
                batch.connection.display_name, batch.object, record_ids, field_names
            )

        # Level by level, controllers before the fields whose options they
        # decide: a dependent field knows what its controller will hold.
        to_send: dict[str, dict[str, _Field]] = {}
        winners: dict[tuple[str, str], _Field] = {}  # (record, field) -> the write chosen for it
        for level in _levels(pending, schema):
            live = []
            for item in level:
                missing = current.missing(item.update.record_id)
                if missing is not None:
                    item.decide(Outcome.FAILED, missing)
                    continue
                assert item.schema is not None
                item.previous = current.get(item.update.record_id, item.schema)
                if not item.coerced:
                    _coerce_dependent(item, items, winners, schema, current, to_send, write_nulls=write_nulls)
                    if item.done:
                        continue
                live.append(item)
            _supersede(live)
            for item in live:
                if item.done:
                    continue
                winners[(item.update.record_id, item.name.casefold())] = item
                verdict = _diff(item, ours, written)
                if verdict is not None:
                    item.decide(*verdict)
                elif dry_run:
                    item.decide(Outcome.PLANNED)
                else:
                    to_send.setdefault(item.update.record_id, {})[item.name] = item
        if to_send:
            self._write(connector, batch, to_send)

    def _write(self, connector: Connector, batch: _Batch, to_send: dict[str, dict[str, _Field]]) -> None:
        writes = [
            RecordWrite(record_id, {name: connector.encode(item.schema, item.value) for name, item in fields.items()})
            for record_id, fields in to_send.items()
        ]
        size = max(1, connector.write_batch_size)
        for start in range(0, len(writes), size):
            chunk = writes[start : start + size]
            if self.ledger is not None:
                # Before the CRM can accept anything: a worker killed between its
                # answer and ``_record`` leaves no written attempt, and without
                # the intent protect_edits would take our value for a person's edit.
                self.ledger.record_intents(
                    [
                        IntentRow(
                            connection=batch.connection.display_name,
                            object=batch.object,
                            record_id=write.record_id,
                            field=name,
                            value=coercion.to_json(item.value),
                            recording_id=item.update.recording_id,
                        )
                        for write in chunk
                        for name, item in to_send[write.record_id].items()
                    ]
                )
            results, failure = self._write_chunk(connector, batch.object, chunk)
            for write in chunk:
                result = results.get(write.record_id)
                for name, item in to_send[write.record_id].items():
                    if result is not None and name in result.errors:  # an error outweighs a claim of success
                        error = result.errors[name]
                        item.decide(Outcome(error.outcome), error.reason)
                    elif result is not None and name in result.written:
                        item.decide(Outcome.WRITTEN)
                    elif failure is not None:
                        _fail_all([item], failure)
                    else:
                        item.decide(Outcome.FAILED, "the CRM's answer did not mention this field")

    def _write_chunk(
        self, connector: Connector, object_name: str, chunk: list[RecordWrite]
    ) -> tuple[dict[str, RecordWriteResult], ConnectorError | None]:
        """Write one CRM batch, retrying transient failures for what is still unanswered.

        A failure may come after part of the batch was answered (the connector
        split it, or re-sent a record without a rejected field): those answers
        are kept, per record and per field, and only the rest is sent again, so
        nothing the CRM accepted is reported as failed, nor sent twice.
        """
        written: dict[str, set[str]] = {write.record_id: set() for write in chunk}
        errors: dict[str, dict[str, FieldError]] = {write.record_id: {} for write in chunk}

        def absorb(results: Iterable[RecordWriteResult]) -> None:
            for result in results:
                if result.record_id in written:
                    written[result.record_id] |= set(result.written)
                    errors[result.record_id].update(result.errors)

        def unanswered() -> list[RecordWrite]:
            rest = []
            for write in chunk:
                answered = written[write.record_id] | set(errors[write.record_id])
                values = {name: value for name, value in write.values.items() if name not in answered}
                if values:
                    rest.append(RecordWrite(write.record_id, values))
            return rest

        def results() -> dict[str, RecordWriteResult]:
            return {
                write.record_id: RecordWriteResult(
                    write.record_id, frozenset(written[write.record_id]), errors[write.record_id]
                )
                for write in chunk
            }

        attempt = 0
        while True:
            pending = unanswered()
            if not pending:
                return results(), None
            try:
                absorb(connector.write(object_name, pending))
                return results(), None
            except TransientError as exc:
                absorb(exc.partial)
                if attempt >= self.retry.max_retries:
                    return results(), exc
                self.retry.sleep(self.retry.delay(attempt, exc.retry_after))
                attempt += 1
            except ConnectorError as exc:
                absorb(exc.partial)
                return results(), exc

    # -- reports and ledger -----------------------------------------------------

    def _report(self, plan: WritePlan, lines: list[FieldReport], *, auth: bool = False) -> RecordingReport:
        if plan.failed:
            return RecordingReport.because(plan.recording_id, Status.FAILED, plan.failed, plan.detail, lines)
        if plan.skipped:
            return RecordingReport.because(plan.recording_id, Status.SKIPPED, plan.skipped, plan.detail, lines)
        if auth:
            return RecordingReport.because(plan.recording_id, Status.FAILED, Reason.AUTH, None, lines)
        return RecordingReport(plan.recording_id, status_of(lines), lines)

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

    def _record(
        self, report: RecordingReport, *, trigger: str, dry_run: bool, version: datetime | None = None
    ) -> None:
        if self.ledger is None or dry_run:
            return
        run_id = self.ledger.start_run(
            report.recording_id, trigger=trigger, dry_run=dry_run, recording_updated_at=version
        )
        rows = [
            OutcomeRow(
                connection=line.connection,
                object=line.object,
                record_id=line.record_id,
                field=line.field,
                value=coercion.to_json(line.value),
                previous=coercion.to_json(line.previous),
                outcome=str(line.outcome),
                reason=line.reason,
                extraction=line.extraction,
            )
            for line in report.fields
        ]
        self.ledger.record(run_id, report.recording_id, rows)
        self.ledger.finish_run(run_id, report.status, report.reason)


class _CurrentValues:
    """The CRM's values of a batch's records, as read."""

    def __init__(self, states: dict[str, RecordState]) -> None:
        self._states = states

    def missing(self, record_id: str) -> str | None:
        """Why the CRM could not give this record, or None when it did."""
        state = self._states.get(record_id)
        if state is None:
            return "the CRM did not return this record"
        if state.values is None:
            return state.error.reason if state.error else "the CRM did not return this record"
        return None

    def get(self, record_id: str, field: FieldSchema) -> Any:
        return coercion.parse_current(_value_of(self._states[record_id], field.name), field)


def _validate(item: _Field, schema: ObjectSchema) -> None:
    """Settle the CRM field, or decide why it cannot be written."""
    found = schema.field(item.write.field)
    if found is None:
        item.decide(Outcome.UNKNOWN_FIELD, f"{schema.name} has no field {item.write.field!r}")
        return
    item.schema = found
    if not found.writable:
        item.decide(Outcome.NOT_WRITABLE, found.not_writable_reason or "the CRM does not allow updates")
        return
    if found.type is FieldType.OTHER:
        item.decide(Outcome.NOT_WRITABLE, f"fields of type {found.crm_type or 'other'} are not written")


def _coerce(item: _Field, field: FieldSchema, *, write_nulls: bool) -> None:
    """The canonical value for ``field``; settles contested values; or decides the outcome.

    Contested values (extractions that gave the field different raw values)
    are one write when they coerce to the same value ("yes" and true for a
    checkbox, "closed won" and "Closed Won" for a picklist), else a conflict.
    """
    if not item.write.alternatives:
        try:
            value = coercion.coerce(item.write.value, field)
        except coercion.InvalidValue as exc:
            item.decide(Outcome.INVALID_VALUE, str(exc))
            return
        if value is None and not coercion.is_null(item.write.value) and not write_nulls:
            # Only separators (" ; " for a multi-select): as empty as a null, and never a silent clear.
            item.decide(Outcome.NULL_VALUE, "the value is empty for this field")
            return
        item.value, item.coerced = value, True
        return
    kept: list[tuple[Any, tuple[str, ...]]] = []
    values: list[Any] = []
    for value, group in item.write.alternatives:
        try:
            coerced = coercion.coerce(value, field)
        except coercion.InvalidValue:
            item.conflict(item.write.alternatives)
            return
        if coerced is None and not coercion.is_null(value) and not write_nulls:
            # Only separators (" ; "): empty for this field, set aside like a null beside a value.
            item.notes.append(item.line(value, Outcome.NULL_VALUE, "the value is empty for this field", ", ".join(group)))
            continue
        kept.append((value, group))
        values.append(coerced)
    if not kept:
        item.reports = list(item.notes)
        return
    if all(coercion.same_value(values[0], other, field) for other in values[1:]):
        item.value, item.coerced = values[0], True
        item.extraction = ", ".join(name for _, group in kept for name in group)
    else:
        item.conflict(kept)


def _controllers(items: Iterable[_Field], schema: ObjectSchema) -> set[str]:
    """The fields whose values decide the options of dependent fields among ``items``."""
    names = set()
    for item in items:
        if item.schema is not None and item.schema.controller:
            controller = schema.field(item.schema.controller)
            names.add(controller.name if controller else item.schema.controller)
    return names


def _coerce_dependent(
    item: _Field,
    items: Iterable[_Field],
    winners: dict[tuple[str, str], _Field],
    schema: ObjectSchema,
    current: _CurrentValues,
    to_send: dict[str, dict[str, _Field]],
    *,
    write_nulls: bool,
) -> None:
    """Coerce a field whose options depend on another field of the record.

    The controller's value is the one the record will hold: the value of the
    write chosen for the controller (from any recording of the batch) when it
    is sent or already there, else the CRM's current value. A deal stage is
    never matched in a pipeline the deal will not be in; and when this
    recording's own controller value was refused, its dependent is refused too.
    """
    assert item.schema is not None and item.schema.controller is not None
    controller = schema.field(item.schema.controller)
    value = None
    if controller is not None:
        record = item.update.record_id
        winner = winners.get((record, controller.name.casefold()))
        refused = next(
            (
                other
                for other in items
                if other.update is item.update
                and other.name.casefold() == controller.name.casefold()
                and other.outcome in (Outcome.INVALID_VALUE, Outcome.CONFLICT, Outcome.NULL_VALUE)
            ),
            None,
        )
        if winner is not None and (
            winner.outcome in (Outcome.UNCHANGED, Outcome.PLANNED) or to_send.get(record, {}).get(winner.name) is winner
        ):
            value = winner.value
        elif refused is not None:
            item.decide(
                Outcome.INVALID_VALUE,
                f"depends on {controller.name}, whose value from this recording is not written ({refused.outcome})",
            )
            return
        else:  # no new value for the controller, or a policy kept the CRM's: the CRM's decides
            value = current.get(record, controller)
    _coerce(item, item.schema.for_controller(value), write_nulls=write_nulls)


def _levels(items: list[_Field], schema: ObjectSchema) -> list[list[_Field]]:
    """Items grouped by how many controllers stand above their field, shallowest first."""
    levels: dict[int, list[_Field]] = {}
    for item in items:
        levels.setdefault(_depth(item.schema, schema), []).append(item)
    return [levels[depth] for depth in sorted(levels)]


def _depth(field: FieldSchema | None, schema: ObjectSchema) -> int:
    """How many controllers stand above a field (0: none), so controllers settle first."""
    depth, seen = 0, set()
    while field is not None and field.controller and field.name not in seen:
        seen.add(field.name)
        field = schema.field(field.controller)
        depth += 1
    return depth


def _supersede(items: Iterable[_Field]) -> None:
    """Of several recordings writing one field of one record, only the newest writes it.

    A page is a window of history: applying its older values first would make
    the CRM flip through them (and fire its workflows) on every replay.
    """
    by_target: dict[tuple[str, str], list[_Field]] = {}
    for item in items:
        by_target.setdefault((item.update.record_id, item.name.casefold()), []).append(item)
    for group in by_target.values():
        if len(group) < 2:
            continue
        newest = max(group, key=lambda item: item.recency)
        for item in group:
            if item is not newest:
                item.decide(
                    Outcome.SKIPPED_POLICY,
                    f"superseded: the newer recording {newest.update.recording_id} writes this field",
                )


def _timestamp(recording: Recording) -> float:
    """When the conversation was recorded: the latest conversation is the latest truth
    (``updatedAt`` also moves when an old recording is re-linked or re-processed)."""
    moment = recording.created_at or recording.updated_at
    return moment.timestamp() if moment else float("-inf")


def _diff(
    item: _Field, ours: dict[tuple[str, str], list[Any]], written: set[tuple[str, str]] = frozenset()
) -> tuple[Outcome, str | None] | None:
    """The outcome decided by comparing with the CRM, or None to write.

    ``ours`` (``Ledger.our_values``): per (record, folded field), the values the
    CRM may hold because we sent them: the last written one and those sent
    since without a recorded outcome (a worker killed after the CRM accepted).
    ``written``: the pairs with a recorded ``written`` attempt. A field we only
    ever tried to write (a send that failed) and that is still empty was never
    ours to protect: it is written.
    """
    assert item.schema is not None
    if coercion.same_value(item.previous, item.value, item.schema):
        return Outcome.UNCHANGED, None
    policy = item.write.policy
    if policy == "fill_empty" and not coercion.is_empty(item.previous):
        return Outcome.SKIPPED_POLICY, "fill_empty: the CRM field already has a value"
    if policy == "protect_edits":
        key = (item.update.record_id, item.name.casefold())
        if key not in written and coercion.is_empty(item.previous):
            return None
        if key not in ours:
            if not coercion.is_empty(item.previous):
                return Outcome.SKIPPED_POLICY, "edited: the CRM field has a value we did not write"
        elif not any(
            coercion.same_value(item.previous, coercion.parse_current(value, item.schema), item.schema)
            for value in ours[key]
        ):
            return Outcome.SKIPPED_POLICY, "edited: the CRM field changed since our last write"
    return None


def _value_of(state: RecordState, name: str) -> Any:
    assert state.values is not None
    if name in state.values:
        return state.values[name]
    folded = name.casefold()
    for key, value in state.values.items():
        if key.casefold() == folded:
            return value
    return None


def _fail_all(items: Iterable[_Field], exc: ConnectorError) -> None:
    if isinstance(exc, AuthError):
        reason = Reason.AUTH.explain(str(exc))
    elif isinstance(exc, TransientError):
        reason = f"gave up after retries: {exc}"
    else:
        reason = str(exc)
    for item in items:
        item.decide(Outcome.FAILED, reason)
        item.auth = isinstance(exc, AuthError)
        if isinstance(exc, TransientError):
            item.transient, item.retry_after = True, exc.retry_after
