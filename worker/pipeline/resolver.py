"""The resolver: a recording and a connection in, a write plan out (DESIGN §2).

Pure: no I/O, no clock, no CRM. Every ``(extraction, mapping)`` pair becomes
either a planned field write on each CRM record its model points at, or a
``FieldReport`` saying why not. Checks run in this order for each pair:

1. ``unknown_model``: the model is not in the connector's map (nor the config's);
2. ``unsupported``: the connector knows the model but cannot write it
   (``unknown_field`` when the mapping names no field);
3. ``skipped_policy`` (reason ``deny``): the object's field is on the deny list;
4. ``unlinked``: the model's slot holds no record (no non-blank ``externalId``);
5. ``null_value``: the value is null and ``write_nulls`` is off, or another
   extraction gives the same field a value;
6. extractions that give one field of one record different raw values make
   one *contested* write (``FieldWrite.alternatives``): the pipeline settles
   it against the field's type, ``conflict`` when the values really differ.

Equal values from several extractions make one write that names them all;
with ``write_nulls`` every null (None, "", []) is the same "clear the field".
Field names are matched case-insensitively (Salesforce's are; HubSpot's are
lower-case), the CRM's exact spelling is settled at validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from connectors.base import ModelTarget
from worker.errors import Reason
from worker.pipeline.coercion import comparable, is_null
from worker.pipeline.plan import FieldWrite, RecordUpdate, WritePlan
from worker.report import FieldReport, Outcome
from worker.settings import ConnectionConfig
from worker.siro.models import CrmLinks, EntityExtraction, FieldMapping, Recording


@dataclass(frozen=True)
class _Candidate:
    object: str
    record_id: str
    field: str
    value: Any
    extraction: str
    policy: str


def resolve(
    recording: Recording,
    connection: ConnectionConfig | None,
    model_map: Mapping[str, ModelTarget],
) -> WritePlan:
    """Plan the writes of one recording for one connection.

    ``model_map`` is the connector's default map merged with the connection's
    overrides (``ConnectionConfig.model_map``), keyed by folded model name.
    """
    pairs = [
        (extraction, mapping)
        for extraction in recording.entity_extractions or []
        for mapping in extraction.mappings or []
    ]
    whole = _whole_recording(recording, connection, pairs)
    if whole is not None:
        return whole
    assert connection is not None and recording.crm is not None
    plan = WritePlan(recording.id, connection.display_name)
    # Folded here too: a connector's map is documented lower-case, but a
    # mixed-case key must not silently make its model unknown.
    models = {alias.strip().casefold(): target for alias, target in model_map.items()}
    candidates: list[_Candidate] = []
    for extraction, mapping in pairs:
        found = _candidates(recording.crm, connection, models, extraction, mapping)
        if isinstance(found, FieldReport):
            plan.decided.append(found)
        else:
            candidates += found
    _merge(plan, candidates, write_nulls=connection.fields.write_nulls)
    return plan


def _whole_recording(recording: Recording, connection: ConnectionConfig | None,
                     pairs: list[tuple[EntityExtraction, FieldMapping]]) -> WritePlan | None:
    """The plan of a recording that is skipped or fails as a whole, else None."""
    if recording.deleted:
        return WritePlan(recording.id, None, skipped=Reason.DELETED)
    if recording.crm is None:
        return WritePlan(recording.id, None, skipped=Reason.NOT_LINKED)
    if not pairs:
        return WritePlan(recording.id, connection.display_name if connection else None, skipped=Reason.NOTHING_MAPPED)
    if connection is not None:
        return None
    reason = f"no connection is configured for integrationConnectionId {recording.crm.integration_connection_id!r}"
    plan = WritePlan(recording.id, None, failed=Reason.NO_CONNECTION)
    for extraction, mapping in pairs:
        plan.decided.append(
            FieldReport(None, mapping.crm_model_name, None, mapping.crm_field_name, extraction.value, None,
                        Outcome.FAILED, Reason.NO_CONNECTION.explain(reason), extraction.name)
        )
    return plan


def _candidates(crm: CrmLinks, connection: ConnectionConfig, models: Mapping[str, ModelTarget],
                extraction: EntityExtraction, mapping: FieldMapping) -> list[_Candidate] | FieldReport:
    """One (extraction, mapping) pair: a candidate write per linked record, or why none."""
    model, field_name = mapping.crm_model_name, mapping.crm_field_name

    def decided(object_name: str | None, outcome: Outcome, reason: str) -> FieldReport:
        return FieldReport(connection.display_name, object_name, None, field_name, extraction.value, None,
                           outcome, reason, extraction.name)

    if not model:
        return decided(None, Outcome.UNKNOWN_MODEL, "mapping has no crmModelName")
    target = models.get(model.strip().casefold())
    if target is None:
        return decided(None, Outcome.UNKNOWN_MODEL, f"model {model!r} is not in the {connection.connector} model map")
    if target.object is None:
        return decided(None, Outcome.UNSUPPORTED, f"{connection.connector} cannot write model {model!r}")
    if not field_name or not field_name.strip():
        return decided(target.object, Outcome.UNKNOWN_FIELD, "mapping has no crmFieldName")
    field_name = field_name.strip()
    aliases = _aliases(models, target.object)
    if connection.fields.denies(target.object, field_name, aliases):
        return decided(target.object, Outcome.SKIPPED_POLICY, "deny")
    if not connection.fields.allows(target.object, field_name, aliases):
        return decided(target.object, Outcome.SKIPPED_POLICY, "not_allowed")
    record_ids = _record_ids(crm, target.slot)
    if connection.slots.get(target.slot) == "first":
        record_ids = record_ids[:1]
    if not record_ids:
        return decided(target.object, Outcome.UNLINKED, f"no {target.slot} linked to the recording")
    policy = connection.fields.policy_for(target.object, field_name, aliases)
    return [_Candidate(target.object, record_id, field_name, extraction.value, extraction.name, policy)
            for record_id in record_ids]


def _aliases(models: Mapping[str, ModelTarget], object_name: str) -> list[str]:
    """The model names that point at ``object_name`` (deny and policy entries may use them)."""
    return [alias for alias, target in models.items() if target.object and target.object.casefold() == object_name.casefold()]


def _record_ids(crm: CrmLinks, slot: str) -> list[str]:
    """The CRM ids linked in ``slot``, in order, without blanks or repeats.

    A blank ``externalId`` is no link at all; a record linked twice (say, one
    contact listed twice) is still one record to write.
    """
    ids = (str(link.external_id).strip() for link in crm.slot(slot))
    return list(dict.fromkeys(record_id for record_id in ids if record_id))


def _merge(plan: WritePlan, candidates: list[_Candidate], *, write_nulls: bool) -> None:
    """Group candidates by record and field: one write each, contested when raw values differ."""
    groups: dict[tuple[str, str, str], list[_Candidate]] = {}
    for candidate in candidates:
        key = (candidate.object.casefold(), candidate.record_id, candidate.field.casefold())
        groups.setdefault(key, []).append(candidate)
    updates: dict[tuple[str, str], RecordUpdate] = {}
    for (object_key, record_id, field_key), group in groups.items():
        chosen = _set_nulls_aside(plan, group, write_nulls=write_nulls)
        if not chosen:
            continue
        update = updates.get((object_key, record_id))
        if update is None:
            update = RecordUpdate(plan.recording_id, plan.connection or "", group[0].object, record_id)
            updates[(object_key, record_id)] = update
            plan.updates.append(update)
        update.fields[field_key] = _field_write(chosen, group[0].policy)


def _set_nulls_aside(plan: WritePlan, group: list[_Candidate], *, write_nulls: bool) -> list[_Candidate]:
    """The candidates whose values are written; nulls beside a value (or any null without
    ``write_nulls``) are decided ``null_value`` here."""
    valued = [c for c in group if not is_null(c.value)]
    nulls = [c for c in group if is_null(c.value)]
    if not valued and write_nulls:
        return nulls  # write_nulls: a lone null clears the field
    for c in nulls:
        reason = "another extraction gives this field a value" if valued else "the extracted value is null"
        plan.decided.append(FieldReport(plan.connection, c.object, c.record_id, c.field, c.value, None,
                                        Outcome.NULL_VALUE, reason, c.extraction))
    return valued


def _field_write(chosen: list[_Candidate], policy: str) -> FieldWrite:
    """One write of the chosen candidates; contested when their raw values differ."""
    # Every null means "clear the field": None, "" and [] agree with each other.
    by_value: dict[Any, list[_Candidate]] = {}
    for c in chosen:
        by_value.setdefault(None if is_null(c.value) else comparable(c.value), []).append(c)
    extractions = tuple(dict.fromkeys(c.extraction for c in chosen))
    value = None if is_null(chosen[0].value) else chosen[0].value
    alternatives: tuple[tuple[Any, tuple[str, ...]], ...] = ()
    if len(by_value) > 1:
        alternatives = tuple(
            (group[0].value, tuple(dict.fromkeys(c.extraction for c in group))) for group in by_value.values()
        )
    # Spelled as the mapping whose value is written (not a null's beside it).
    return FieldWrite(chosen[0].field, value, extractions, policy, alternatives)
