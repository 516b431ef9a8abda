"""The pipeline's decision: a planned field of a recording → an outcome, or a value to send.

``ExtractionDecision`` is the ``writer.Decision`` the pipeline hands the
writer for each (connection, object) batch of planned fields:

* before the read (``prepare``): **validate** each field against the CRM's
  schema (unknown, not writable) and **coerce** its value (``coercion``):
  invalid values, and nulls that are not written, are decided here; values
  that extractions gave differently are settled against the field's type
  ("yes" and true are one value for a checkbox), else ``conflict``;
* after the read (``decide``), level by level, controllers before the fields
  whose options they decide: **dependents** are coerced against the value
  their controller will hold (a deal stage among its own pipeline's stages);
  **supersede**: of several recordings writing one field of one record, only
  the newest conversation's value is written; **diff** and **policies**
  (``policies``): equal values are ``unchanged``, a write policy may skip the
  field; what is left is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import FieldSchema, ObjectSchema
from worker.ledger.proposals import rejection_key
from worker.pipeline import coercion, policies
from worker.pipeline.plan import FieldWrite, RecordUpdate
from worker.pipeline.writer import Context, FieldChange
from worker.report import FieldReport, Outcome, to_json

# Outcomes of a controller that refuse its dependent from the same recording.
_REFUSED = (Outcome.INVALID_VALUE, Outcome.CONFLICT, Outcome.NULL_VALUE)


@dataclass(eq=False)
class PlannedChange(FieldChange):
    """A resolver's planned field write (``FieldWrite``) on its way through the writer."""

    write: FieldWrite = field(default=None)  # type: ignore[assignment]
    update: RecordUpdate = field(default=None)  # type: ignore[assignment]
    coerced: bool = False
    recency: tuple[Any, int] = (None, 0)  # (when the conversation was recorded, position): the newest wins
    version: datetime | None = None  # the recording's updatedAt (a rejected value is per version)
    recorded_at: datetime | None = None  # when the conversation was recorded (a newer proposal supersedes)
    held_with: str | None = None  # the controller field held for review that this dependent waits with
    # Lines of contested values set aside before the outcome (empty ones: null_value).
    notes: list[FieldReport] = field(default_factory=list)

    @classmethod
    def of(cls, update: RecordUpdate, write: FieldWrite, recency: tuple[Any, int], *,
           version: datetime | None = None, recorded_at: datetime | None = None) -> PlannedChange:
        return cls(update.connection, update.object, update.record_id, write.field, update.recording_id,
                   extraction=write.extraction, write=write, update=update, recency=recency, version=version,
                   recorded_at=recorded_at)

    @property
    def policy(self) -> str:
        return self.write.policy

    def decide(self, outcome: Outcome, reason: str | None = None) -> None:
        if self.write.alternatives and not self.coerced and not self.notes:
            # Decided before the contested values were settled: show each of them.
            self.reports = [self.line(value, outcome, reason, ", ".join(group))
                            for value, group in self.write.alternatives]
            return
        # Once coerced, the value shown is the one sent (or that would be).
        shown = self.value if self.coerced else self.write.value
        self.reports = [*self.notes, self.line(shown, outcome, reason, self.extraction)]

    def conflict(self, alternatives: Sequence[tuple[Any, tuple[str, ...]]]) -> None:
        """The extractions really disagree: one line per distinct value, nothing written."""
        names = ", ".join(name for _, group in alternatives for name in group)
        reason = f"extractions disagree on {self.object}.{self.name}: {names}"
        lines = [self.line(value, Outcome.CONFLICT, reason, ", ".join(group)) for value, group in alternatives]
        self.reports = [*self.notes, *lines]


class ExtractionDecision:
    """Validate, coerce, dependents, supersede, diff: see the module docstring."""

    def __init__(self, *, write_nulls: bool) -> None:
        self.write_nulls = write_nulls
        self.batch: list[PlannedChange] = []  # every change of the batch, refused ones included
        self._rejections: set[tuple[Any, ...]] | None = None

    def prepare(self, schema: ObjectSchema, changes: Sequence[FieldChange]) -> set[str]:
        self.batch = _planned(changes)
        for change in self.batch:
            change.settle_schema(schema)
            if not change.done and change.schema is not None and change.schema.controller is None:
                coerce(change, change.schema, write_nulls=self.write_nulls)
        return _controllers((change for change in changes if not change.done), schema)

    def decide(self, schema: ObjectSchema, changes: Sequence[FieldChange], context: Context) -> list[FieldChange]:
        pending = _planned(changes)
        ours, written = self._history(pending, context)
        to_send: dict[tuple[str, str], PlannedChange] = {}
        winners: dict[tuple[str, str], PlannedChange] = {}  # (record, field) -> the write chosen for it
        for level in _levels(pending, schema):
            live = [change for change in level
                    if change.coerced or self._dependent(change, winners, to_send, schema, context)]
            supersede(live)
            for change in live:
                if change.done:
                    continue
                key = (change.record_id, change.name.casefold())
                winners[key] = change
                verdict = policies.verdict(change.policy, change.previous, change.value, change.schema,
                                           ours.get(key), key in written)
                if verdict is None and change.held_with:
                    verdict = (Outcome.PENDING_REVIEW, f"review: waits with {change.held_with}, held for a person")
                if verdict is not None and verdict[0] is Outcome.PENDING_REVIEW and self._was_rejected(
                        change, context):
                    verdict = (Outcome.SKIPPED_POLICY, "rejected: a person rejected this value (writeback review)")
                if verdict is not None:
                    change.decide(*verdict)
                else:
                    to_send[key] = change
        return list(to_send.values())

    def _was_rejected(self, change: PlannedChange, context: Context) -> bool:
        """Whether a person rejected this value of this field from this recording version."""
        if self._rejections is None:  # one ledger read per batch
            self._rejections = context.rejected([c.record_id for c in self.batch])
        return rejection_key(change.record_id, change.name, change.recording_id, change.version,
                             to_json(change.value)) in self._rejections

    @staticmethod
    def _history(changes: Sequence[PlannedChange], context: Context) -> tuple[dict, set]:
        """Our values and written pairs, read once, when a field is under ``protect_edits``."""
        protected = [change for change in changes if change.policy == "protect_edits"]
        if not protected:
            return {}, set()
        record_ids = list(dict.fromkeys(change.record_id for change in changes))
        names = sorted({change.name for change in changes})
        return context.ours(record_ids, names)

    def _dependent(self, change: PlannedChange, winners: dict[tuple[str, str], PlannedChange],
                   to_send: dict[tuple[str, str], PlannedChange], schema: ObjectSchema, context: Context) -> bool:
        """Coerce a field whose options depend on another field of the record; True when still live.

        The controller's value is the one the record will hold: the value of
        the write chosen for the controller (from any recording of the batch)
        when it is sent or already there, else the CRM's current value. A deal
        stage is never matched in a pipeline the deal will not be in; and when
        this recording's own controller value was refused, its dependent is
        refused too.
        """
        assert change.schema is not None and change.schema.controller is not None
        controller = schema.field(change.schema.controller)
        value = None
        if controller is not None:
            key = (change.record_id, controller.name.casefold())
            winner = winners.get(key)
            refused = next((other for other in self.batch if other.update is change.update
                            and other.name.casefold() == key[1] and other.outcome in _REFUSED), None)
            if winner is not None and (winner.outcome in (Outcome.UNCHANGED, Outcome.PLANNED)
                                       or to_send.get(key) is winner):
                value = winner.value
            elif winner is not None and winner.outcome is Outcome.PENDING_REVIEW:
                # The controller waits for a person: its dependent waits with it, matched in the
                # controller's proposed value (approving both writes them together).
                value, change.held_with = winner.value, controller.name
            elif refused is not None:
                change.decide(Outcome.INVALID_VALUE, f"depends on {controller.name}, whose value from this "
                                                     f"recording is not written ({refused.outcome})")
                return False
            else:  # no new value for the controller, or a policy kept the CRM's: the CRM's decides
                value = context.current.get(change.record_id, controller)
        coerce(change, change.schema.for_controller(value), write_nulls=self.write_nulls)
        return not change.done


def coerce(change: PlannedChange, field: FieldSchema, *, write_nulls: bool) -> None:
    """The canonical value for ``field``; settles contested values; or decides the outcome.

    Contested values (extractions that gave the field different raw values)
    are one write when they coerce to the same value ("yes" and true for a
    checkbox, "closed won" and "Closed Won" for a picklist), else a conflict.
    """
    if change.write.alternatives:
        _coerce_contested(change, field, write_nulls=write_nulls)
        return
    try:
        value = coercion.coerce(change.write.value, field)
    except coercion.InvalidValue as exc:
        change.decide(Outcome.INVALID_VALUE, str(exc))
        return
    if value is None and not coercion.is_null(change.write.value) and not write_nulls:
        # Only separators (" ; " for a multi-select): as empty as a null, and never a silent clear.
        change.decide(Outcome.NULL_VALUE, "the value is empty for this field")
        return
    change.value, change.coerced = value, True


def _coerce_contested(change: PlannedChange, field: FieldSchema, *, write_nulls: bool) -> None:
    kept: list[tuple[Any, tuple[str, ...]]] = []
    values: list[Any] = []
    for value, group in change.write.alternatives:
        try:
            coerced = coercion.coerce(value, field)
        except coercion.InvalidValue:
            change.conflict(change.write.alternatives)
            return
        if coerced is None and not coercion.is_null(value) and not write_nulls:
            # Only separators (" ; "): empty for this field, set aside like a null beside a value.
            change.notes.append(change.line(value, Outcome.NULL_VALUE, "the value is empty for this field",
                                            ", ".join(group)))
            continue
        kept.append((value, group))
        values.append(coerced)
    if not kept:
        change.reports = list(change.notes)
        return
    if all(coercion.same_value(values[0], other, field) for other in values[1:]):
        change.value, change.coerced = values[0], True
        change.extraction = ", ".join(name for _, group in kept for name in group)
    else:
        change.conflict(kept)


def supersede(changes: Iterable[PlannedChange]) -> None:
    """Of several recordings writing one field of one record, only the newest writes it.

    A page is a window of history: applying its older values first would make
    the CRM flip through them (and fire its workflows) on every replay.
    """
    by_target: dict[tuple[str, str], list[PlannedChange]] = {}
    for change in changes:
        if not change.done:
            by_target.setdefault((change.record_id, change.name.casefold()), []).append(change)
    for group in by_target.values():
        if len(group) < 2:
            continue
        newest = max(group, key=lambda change: change.recency)
        for change in group:
            if change is not newest:
                change.decide(Outcome.SKIPPED_POLICY,
                              f"superseded: the newer recording {newest.recording_id} writes this field")


def _planned(changes: Sequence[FieldChange]) -> list[PlannedChange]:
    if not all(isinstance(change, PlannedChange) for change in changes):
        raise TypeError("ExtractionDecision decides PlannedChange objects only")
    return list(changes)  # type: ignore[arg-type]


def _controllers(changes: Iterable[FieldChange], schema: ObjectSchema) -> set[str]:
    """The fields whose values decide the options of dependent fields among ``changes``."""
    names = set()
    for change in changes:
        if change.schema is not None and change.schema.controller:
            controller = schema.field(change.schema.controller)
            names.add(controller.name if controller else change.schema.controller)
    return names


def _levels(changes: list[PlannedChange], schema: ObjectSchema) -> list[list[PlannedChange]]:
    """Changes grouped by how many controllers stand above their field, shallowest first."""
    levels: dict[int, list[PlannedChange]] = {}
    for change in changes:
        levels.setdefault(_depth(change.schema, schema), []).append(change)
    return [levels[depth] for depth in sorted(levels)]


def _depth(field: FieldSchema | None, schema: ObjectSchema) -> int:
    """How many controllers stand above a field (0: none), so controllers settle first."""
    depth, seen = 0, set()
    while field is not None and field.controller and field.name not in seen:
        seen.add(field.name)
        field = schema.field(field.controller)
        depth += 1
    return depth
