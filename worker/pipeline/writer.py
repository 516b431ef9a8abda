"""The one write path: read current values, record intents, write in batches, record outcomes.

Every caller that changes a CRM goes through ``Writer``: the pipeline (a
recording's extracted values), and revert, review approval and notes, which
differ only in what they decide to send. A caller hands ``Writer.write`` the
``FieldChange``s of one (connection, object) and a ``Decision``; the writer
does the rest, the same way for all of them::

    schema ─► decision.prepare ─► read current values ─► decision.decide ─► intents ─► write ─► outcomes
    (cached)  (no I/O: validate)  (one read per batch)   (diff, policies)   (ledger)   (CRM batches, partial
                                                                                          results, retries)

* One schema lookup and one read of every record and field of the batch;
* before each CRM write chunk, the values about to be sent are recorded as
  *intents* in the ledger, so a value the CRM accepted is known to be ours
  even when the process dies before its outcome is recorded;
* chunks of ``connector.write_batch_size``, transient failures retried for
  what is still unanswered (``connectors.support.WriteResults``): nothing the
  CRM accepted is reported as failed, nor sent twice;
* an outcome is what the CRM answered, never what we meant to send.

``Writer.record`` stores a recording's report as one run in the ledger.

A decision of one's own (a test's "put these values back")::

    class PutBack:
        def prepare(self, schema, changes):
            for change in changes:
                change.settle_schema(schema)     # unknown_field / not_writable, else the CRM's field
            return set()                         # no extra field to read
        def decide(self, schema, changes, context):
            send = []
            for change in changes:
                if coercion.same_value(change.previous, change.value, change.schema):
                    change.decide(Outcome.UNCHANGED)
                else:
                    send.append(change)
            return send

    writer.write(connection, "Opportunity", [FieldChange("sf", "Opportunity", "006...", "Amount", "rec-1",
                                                          value=Decimal(9000))], PutBack())
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from connectors.base import (
    AuthError,
    ConfigError,
    Connector,
    CredentialError,
    FieldSchema,
    FieldType,
    ObjectSchema,
    RecordState,
    RecordWrite,
    TransientError,
    UnknownObject,
    WritebackError,
)
from connectors.support import WriteResults
from worker import metrics
from worker.errors import Reason
from worker.limits.backoff import RetryPolicy
from worker.pipeline import coercion
from worker.pipeline.connector_pool import ConnectorPool
from worker.report import FieldReport, Outcome, RecordingReport, status_of, to_json

if TYPE_CHECKING:
    from worker.ledger import Ledger
    from worker.settings import ConnectionConfig

log = logging.getLogger(__name__)

#: The reason of a field a connection in shadow mode would have written.
SHADOW = 'shadow: mode = "shadow", nothing is sent'


@dataclass(eq=False)
class FieldChange:
    """One field of one record on its way to the CRM, and, once decided, its report lines.

    ``field`` is the caller's spelling until ``settle_schema`` finds the CRM's
    field; ``value`` is the canonical value to send (``worker.pipeline.coercion``);
    ``previous`` the CRM's value, once read.
    """

    connection: str
    object: str
    record_id: str
    field: str
    recording_id: str
    value: Any = None
    extraction: str | None = None
    schema: FieldSchema | None = None
    previous: Any = None
    reports: list[FieldReport] = field(default_factory=list)
    transient: bool = False  # failed for a reason that may pass: worth a later retry
    retry_after: float | None = None
    cause: Reason | None = None  # failed for the whole connection: auth (credentials), config

    @property
    def name(self) -> str:
        return self.schema.name if self.schema else self.field

    @property
    def done(self) -> bool:
        return bool(self.reports)

    @property
    def outcome(self) -> Outcome | None:
        return self.reports[0].outcome if self.reports else None

    def decide(self, outcome: Outcome, reason: str | None = None) -> None:
        self.reports = [self.line(self.value, outcome, reason, self.extraction)]

    def line(self, value: Any, outcome: Outcome, reason: str | None, extraction: str | None) -> FieldReport:
        return FieldReport(self.connection, self.object, self.record_id, self.name, value, self.previous,
                           outcome, reason, extraction)

    def settle_schema(self, schema: ObjectSchema) -> None:
        """Find the CRM's field, or decide why it cannot be written."""
        found = schema.field(self.field)
        if found is None:
            self.decide(Outcome.UNKNOWN_FIELD, f"{schema.name} has no field {self.field!r}")
            return
        self.schema = found
        if not found.writable:
            self.decide(Outcome.NOT_WRITABLE, found.not_writable_reason or "the CRM does not allow updates")
        elif found.type is FieldType.OTHER:
            self.decide(Outcome.NOT_WRITABLE, f"fields of type {found.crm_type or 'other'} are not written")

    def fail(self, error: WritebackError) -> None:
        """Failed with a whole call's error: transient ones are worth a later retry; rejected
        credentials and config errors stop the recording until a person fixes them."""
        self.cause = Reason.AUTH if isinstance(error, AuthError) else Reason.CONFIG if isinstance(
            error, ConfigError) else None
        if self.cause is not None:
            reason = self.cause.explain(str(error))
        elif isinstance(error, TransientError):
            reason = f"gave up after retries: {error}"
        else:
            reason = str(error)
        self.decide(Outcome.FAILED, reason)
        if isinstance(error, TransientError):
            self.transient, self.retry_after = True, error.retry_after


class CurrentValues:
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
        """The field's current value, canonical (``coercion.parse_current``)."""
        return coercion.parse_current(_value_of(self._states[record_id], field.name), field)


class Context:
    """What a decision may consult after the read: the CRM's values and our own history."""

    def __init__(self, current: CurrentValues, history: Callable[[Sequence[str], Sequence[str]], Any],
                 rejected: Callable[[Sequence[str]], set[tuple[Any, ...]]] | None = None) -> None:
        self.current = current
        self._history = history
        self._rejected = rejected
        self._ours: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}

    def rejected(self, record_ids: Sequence[str]) -> set[tuple[Any, ...]]:
        """``Ledger.rejected_values`` of these records: values a person rejected (one ledger read)."""
        return self._rejected(record_ids) if self._rejected is not None else set()

    def ours(self, record_ids: Sequence[str], fields: Sequence[str]) -> tuple[dict, set]:
        """``Ledger.protected_values`` for these records and fields (one ledger read, cached)."""
        key = (tuple(record_ids), tuple(fields))
        if key not in self._ours:
            self._ours[key] = self._history(record_ids, fields)
        return self._ours[key]


class Decision(Protocol):
    """What a caller decides; the writer does the I/O around it."""

    def prepare(self, schema: ObjectSchema, changes: Sequence[FieldChange]) -> set[str]:
        """Before the read, without I/O: settle each change's field and value (or decide its
        outcome); return the names of other fields the read must include."""

    def decide(self, schema: ObjectSchema, changes: Sequence[FieldChange], context: Context) -> list[FieldChange]:
        """After the read (``change.previous`` is set, missing records already failed): decide
        each change's outcome, or return it among those to send (at most one per record field)."""


class Writer:
    """The one write path (see the module docstring). Holds no state between calls."""

    def __init__(self, connectors: ConnectorPool, ledger: Ledger | None, retry: RetryPolicy) -> None:
        self.connectors = connectors
        self.ledger = ledger
        self.retry = retry

    def write(self, connection: ConnectionConfig, object_name: str, changes: Sequence[FieldChange],
              decision: Decision, *, dry_run: bool = False, unsent: str | None = None) -> None:
        """Settle every change of one (connection, object): each ends with its report lines.

        ``dry_run``: read and decide, send nothing (``planned``, with ``unsent`` as the reason).
        """
        connector = self.connectors.get(connection)
        schema = self._schema(connector, object_name, changes)
        if schema is None:
            return
        for change in changes:
            # One spelling per record (Salesforce's 15 and 18 character ids) and per object and
            # connection, so that callers naming them differently still meet, and the outcomes,
            # the intents and the history read for protect_edits all name them alike.
            change.record_id = connector.canonical_id(object_name, change.record_id)
            change.connection, change.object = connection.display_name, object_name
        extra = decision.prepare(schema, changes)
        pending = [change for change in changes if not change.done]
        current = self._read(connector, object_name, pending, extra) if pending else None
        if current is None:
            return
        for change in pending:
            missing = current.missing(change.record_id)
            if missing is not None:
                change.decide(Outcome.FAILED, missing)
            elif change.schema is not None:
                change.previous = current.get(change.record_id, change.schema)
        live = [change for change in pending if not change.done]
        history = self._history(connection.display_name, object_name)
        rejected = self._rejected(connection.display_name, object_name)
        to_send = decision.decide(schema, live, Context(current, history, rejected))
        if dry_run:
            for change in to_send:
                change.decide(Outcome.PLANNED, unsent)
        elif to_send:
            self._send(connector, connection.display_name, object_name, to_send)

    def write_each(self, connections: Sequence[ConnectionConfig], changes: Sequence[FieldChange],
                   decision: Callable[[], Decision], *, dry_run: bool = False) -> None:
        """``write`` changes of any connections and objects, one batch per (connection, object).

        For callers that start from the ledger (revert, review approval): a change names its
        connection by its config name; one the config no longer has fails. A connection in shadow
        mode sends nothing (``planned``). Rejected credentials and config errors fail their batch.
        """
        by_name = {connection.display_name: connection for connection in connections}
        groups: dict[tuple[str, str], list[FieldChange]] = {}
        for change in changes:
            if change.connection not in by_name:
                change.decide(Outcome.FAILED, f"the config has no connection {change.connection!r} any more")
            else:
                groups.setdefault((change.connection, change.object.casefold()), []).append(change)
        for (name, _), batch in groups.items():
            connection = by_name[name]
            shadow = connection.mode == "shadow"
            try:
                self.write(connection, batch[0].object, batch, decision(), dry_run=dry_run or shadow,
                           unsent=SHADOW if shadow and not dry_run else None)
            except (ConfigError, CredentialError, TransientError) as exc:
                for change in batch:
                    if not change.done:
                        change.fail(exc)

    def record(self, report: RecordingReport, *, trigger: str, dry_run: bool = False,
               version: datetime | None = None) -> None:
        """Store a recording's report as one run (nothing for a dry run, or without a ledger)."""
        if self.ledger is None or dry_run:
            return
        run_id = self.ledger.start_run(report.recording_id, trigger=trigger, dry_run=dry_run,
                                       recording_updated_at=version)
        self.ledger.record(run_id, report.recording_id, report.fields)
        self.ledger.record_notes(run_id, report.recording_id, report.notes)
        self.ledger.finish_run(run_id, report.status, report.reason)
        metrics.recorded(report)  # what the ledger now holds, counted for Prometheus

    # -- stages ------------------------------------------------------------------

    def _schema(self, connector: Connector, object_name: str, changes: Sequence[FieldChange]) -> ObjectSchema | None:
        try:
            return self.retry.call(lambda: connector.object_schema(object_name), f"schema of {object_name}")
        except UnknownObject as exc:
            for change in changes:
                change.decide(Outcome.UNKNOWN_MODEL, f"the CRM has no object {object_name!r}: {exc}")
        except WritebackError as exc:
            for change in changes:
                change.fail(exc)
        return None

    def _read(self, connector: Connector, object_name: str, changes: Sequence[FieldChange],
              extra: Iterable[str]) -> CurrentValues | None:
        """One read of every record and field of the batch (and of the ``extra`` fields)."""
        record_ids = list(dict.fromkeys(change.record_id for change in changes))
        names = sorted({change.name for change in changes} | set(extra))
        try:
            states = self.retry.call(lambda: connector.read(object_name, record_ids, names),
                                     f"read of {object_name}")
        except WritebackError as exc:
            for change in changes:
                change.fail(exc)
            return None
        return CurrentValues(states)

    def _history(self, connection: str, object_name: str) -> Callable[[Sequence[str], Sequence[str]], Any]:
        def read(record_ids: Sequence[str], fields: Sequence[str]) -> tuple[dict, set]:
            if self.ledger is None:
                return {}, set()
            return self.ledger.protected_values(connection, object_name, record_ids, fields)

        return read

    def _rejected(self, connection: str, object_name: str) -> Callable[[Sequence[str]], set[tuple[Any, ...]]]:
        def read(record_ids: Sequence[str]) -> set[tuple[Any, ...]]:
            return self.ledger.rejected_values(connection, object_name, record_ids) if self.ledger else set()

        return read

    def _send(self, connector: Connector, connection: str, object_name: str, to_send: Sequence[FieldChange]) -> None:
        by_record: dict[str, dict[str, FieldChange]] = {}
        for change in to_send:
            fields = by_record.setdefault(change.record_id, {})
            if change.name in fields:
                raise ValueError(f"two changes of {object_name}.{change.name} on record {change.record_id}")
            fields[change.name] = change
        writes = [
            RecordWrite(record_id, {name: connector.encode(change.schema, change.value)
                                    for name, change in fields.items()})
            for record_id, fields in by_record.items()
        ]
        size = max(1, connector.write_batch_size)
        for start in range(0, len(writes), size):
            chunk = writes[start:start + size]
            self._record_intents(connection, object_name, chunk, by_record)
            results, failure = self._write_chunk(connector, object_name, chunk)
            for result in results:
                for name, change in by_record[result.record_id].items():
                    _settle(change, result, failure)

    def _record_intents(self, connection: str, object_name: str, chunk: Sequence[RecordWrite],
                        by_record: dict[str, dict[str, FieldChange]]) -> None:
        """Before the CRM can accept anything: a process killed between its answer and ``record``
        leaves no written attempt, and without the intent protect_edits would take our value for a
        person's edit."""
        if self.ledger is None:
            return
        from worker.ledger import IntentRow

        self.ledger.record_intents([
            # Under the names the history is read by (``_history``): the batch's, whatever a change spells.
            IntentRow(connection, object_name, write.record_id, name, to_json(change.value),
                      change.recording_id)
            for write in chunk
            for name, change in by_record[write.record_id].items()
        ])

    def _write_chunk(self, connector: Connector, object_name: str,
                     chunk: list[RecordWrite]) -> tuple[list[Any], WritebackError | None]:
        """Write one CRM batch, retrying transient failures for what is still unanswered.

        A failure may come after part of the batch was answered (the connector
        split it, or re-sent a record without a rejected field): those answers
        are kept, per record and per field, and only the rest is sent again.
        """
        answers = WriteResults(chunk)
        attempt = 0
        while True:
            pending = answers.unanswered()
            if not pending:
                return answers.results(), None
            try:
                answers.absorb(connector.write(object_name, pending))
                return answers.results(), None
            except TransientError as exc:
                answers.absorb(exc.partial)
                if attempt >= self.retry.max_retries:
                    return answers.results(), exc
                self.retry.sleep(self.retry.delay(attempt, exc.retry_after))
                attempt += 1
            except WritebackError as exc:
                answers.absorb(exc.partial)
                return answers.results(), exc


def report_of(recording_id: str, changes: Sequence[FieldChange]) -> RecordingReport:
    """A recording's report from its changes, for callers that write without a plan (revert,
    review): ``code`` says when a whole connection failed for its credentials or config."""
    lines = [line for change in changes for line in change.reports]
    cause = next((change.cause for change in changes if change.cause), None)
    return RecordingReport(recording_id, status_of(lines), lines, code=cause)


def _settle(change: FieldChange, result: Any, failure: WritebackError | None) -> None:
    """A change's outcome from its record's result: an error outweighs a claim of success."""
    name = change.name
    if name in result.errors:
        error = result.errors[name]
        change.decide(Outcome(error.outcome), error.reason)
    elif name in result.written:
        change.decide(Outcome.WRITTEN)
    elif failure is not None:
        change.fail(failure)
    else:
        change.decide(Outcome.FAILED, "the CRM's answer did not mention this field")


def _value_of(state: RecordState, name: str) -> Any:
    assert state.values is not None
    if name in state.values:
        return state.values[name]
    folded = name.casefold()
    for key, value in state.values.items():
        if key.casefold() == folded:
            return value
    return None
