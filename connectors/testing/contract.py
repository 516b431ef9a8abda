"""``ConnectorContract``: the behaviour the pipeline relies on, as pytest tests every connector passes.

A connector's test module subclasses ``ConnectorContract`` and provides the
fixtures ``connector``, ``sample`` (a ``ContractSample``), ``stored_value``
and, for the error tests, ``fail_next`` (which makes the backend's next
request fail as a ``Failure`` says; ``raise_once`` helps with
``Failure.INTERRUPT``). The ``connectors.testing`` docstring has an example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Mapping, Sequence

import pytest

from connectors.base import (
    AuthError,
    Connector,
    FieldSchema,
    FieldType,
    ObjectSchema,
    RecordWrite,
    SoftTimeLimit,
    TransientError,
    UnknownObject,
)
from connectors.testing.values import (
    NUMERIC_TYPES,
    TEXT_TYPES,
    comparable,
    sample_value,
)


def raise_once(monkeypatch: Any, owner: Any, name: str, error: BaseException) -> None:
    """Make ``owner.name`` (a transport's send method, say) raise ``error`` on its next call only.

    For ``Failure.INTERRUPT``: ``raise_once(monkeypatch, requests.Session, "send", SoftTimeLimit())``
    fails the next request at the transport, inside the connector's own error handling.
    """
    original = getattr(owner, name)

    def once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(owner, name, original)
        raise error

    monkeypatch.setattr(owner, name, once)


class Failure(StrEnum):
    """What a contract's ``fail_next`` hook makes the next request do."""

    SERVER_ERROR = "server_error"  # a 5xx answer
    RATE_LIMIT = "rate_limit"  # a 429; the hook returns the Retry-After it sent (seconds), or None
    CREDENTIALS = "credentials"  # the CRM rejects the connection's credentials (401, revoked token)
    INTERRUPT = "interrupt"  # ``connectors.base.SoftTimeLimit()`` raised inside the transport (see ``raise_once``)


@dataclass(frozen=True)
class ContractSample:
    """The records and fields of one object that the contract tests read and write.

    Fields are names of ``object_name``'s fields: ``text_field`` a writable,
    nillable text field; ``number_field`` a writable number or integer;
    ``picklist_field`` a writable restricted picklist whose options do not
    depend on another field; ``read_only_field`` one the CRM refuses to write
    (None: those tests are skipped); ``more_fields`` further writable fields
    whose types ``encode`` must round-trip (date, datetime, boolean,
    multi-select...). ``record_id`` and ``other_record_id`` are existing
    records (best with values in the sample fields), ``missing_record_id`` an
    id the CRM has no record for (deleted, or never existed). The last three
    name what the CRM does not have: change them only if the defaults are
    real names in your CRM, or not even valid names there.
    """

    object_name: str
    text_field: str
    number_field: str
    picklist_field: str
    record_id: str
    other_record_id: str
    missing_record_id: str
    read_only_field: str | None = None
    more_fields: tuple[str, ...] = ()
    unknown_object: str = "NoSuchObject"
    unknown_field: str = "no_such_field_x9"
    invalid_option: str = "not-an-option-x9"

    @property
    def round_trip_fields(self) -> tuple[str, ...]:
        return (self.text_field, self.number_field, self.picklist_field, *self.more_fields)


_CALLS = ("object_schema", "read", "write", "check")


class ConnectorContract:
    """The contract every connector passes, as pytest tests (see the ``connectors.testing`` docstring).

    Subclass it in a test module named ``Test...`` and override the fixtures
    ``connector``, ``sample`` and ``stored_value``; override ``fail_next`` to
    run the error tests (by default they are skipped). Each test gets a fresh
    ``connector`` and may change the sample records.
    """

    # -- what a subclass provides -----------------------------------------------------
    @pytest.fixture
    def connector(self) -> Connector:
        """The connector under test, on a backend seeded for ``sample``."""
        pytest.fail(f"{type(self).__name__} must override the 'connector' fixture")

    @pytest.fixture
    def sample(self) -> ContractSample:
        pytest.fail(f"{type(self).__name__} must override the 'sample' fixture")

    @pytest.fixture
    def stored_value(self) -> Callable[[str, str, str], Any]:
        """``(object_name, record_id, field) -> value`` straight from the backing CRM."""
        pytest.fail(f"{type(self).__name__} must override the 'stored_value' fixture")

    @pytest.fixture
    def fail_next(self) -> Callable[[Failure], float | None]:
        """``(failure) -> retry_after or None``: make the backend's next request fail so.

        Call ``pytest.skip`` for a failure the backend cannot produce.
        """
        def cannot(failure: Failure) -> float | None:
            pytest.skip(f"{type(self).__name__} injects no failures")
        return cannot

    # -- schema -------------------------------------------------------------------
    def test_schema_describes_the_sample_fields(self, connector: Connector, sample: ContractSample) -> None:
        schema = connector.object_schema(sample.object_name)
        assert all(key == field.name for key, field in schema.fields.items()), "fields are keyed by their names"
        text, number, picklist = (_field(schema, name) for name in
                                  (sample.text_field, sample.number_field, sample.picklist_field))
        assert text.type in TEXT_TYPES and text.writable and text.nillable
        assert number.type in NUMERIC_TYPES and number.writable
        assert picklist.type is FieldType.PICKLIST and picklist.writable and picklist.restricted
        assert any(option.active for option in picklist.options), "a restricted picklist lists its options"

    def test_schema_marks_a_read_only_field_not_writable(self, connector: Connector, sample: ContractSample) -> None:
        if sample.read_only_field is None:
            pytest.skip("the sample names no read-only field")
        field = _field(connector.object_schema(sample.object_name), sample.read_only_field)
        assert not field.writable and field.not_writable_reason

    def test_schema_of_an_unknown_object_raises_unknown_object(self, connector: Connector,
                                                               sample: ContractSample) -> None:
        with pytest.raises(UnknownObject):
            connector.object_schema(sample.unknown_object)

    # -- read ---------------------------------------------------------------------
    def test_read_returns_the_stored_values(self, connector: Connector, sample: ContractSample,
                                            stored_value: Callable[[str, str, str], Any]) -> None:
        schema = connector.object_schema(sample.object_name)
        names = [sample.text_field, sample.number_field, sample.picklist_field]
        states = connector.read(sample.object_name, [sample.record_id], names)
        assert list(states) == [sample.record_id]
        state = states[sample.record_id]
        assert state.record_id == sample.record_id and state.error is None and state.values is not None
        for name in names:
            field, expected = schema.fields[name], stored_value(sample.object_name, sample.record_id, name)
            assert comparable(state.values[name], field) == comparable(expected, field), name

    def test_read_of_a_missing_record_fails_only_that_record(self, connector: Connector,
                                                             sample: ContractSample) -> None:
        ids = [sample.missing_record_id, sample.record_id]
        states = connector.read(sample.object_name, ids, [sample.text_field])
        assert set(states) == set(ids)
        missing = states[sample.missing_record_id]
        assert missing.values is None and missing.error is not None
        assert missing.error.outcome == "failed" and missing.error.reason.strip()
        assert states[sample.record_id].values is not None and states[sample.record_id].error is None

    def test_read_of_an_id_given_twice_answers_it_once(self, connector: Connector, sample: ContractSample) -> None:
        states = connector.read(sample.object_name, [sample.record_id, sample.record_id], [sample.text_field])
        assert list(states) == [sample.record_id] and states[sample.record_id].values is not None

    def test_canonical_id_is_stable_and_reads_the_same_record(self, connector: Connector,
                                                              sample: ContractSample) -> None:
        canonical = connector.canonical_id(sample.object_name, sample.record_id)
        assert connector.canonical_id(sample.object_name, canonical) == canonical
        states = connector.read(sample.object_name, [sample.record_id, canonical], [sample.text_field])
        assert states[canonical].values == states[sample.record_id].values

    # -- write --------------------------------------------------------------------
    def test_write_lands_the_values(self, connector: Connector, sample: ContractSample,
                                    stored_value: Callable[[str, str, str], Any]) -> None:
        schema = connector.object_schema(sample.object_name)
        values = _sample_values(connector, sample, [sample.text_field, sample.number_field])
        update = RecordWrite(sample.record_id, _encoded(connector, schema, values))
        [result] = connector.write(sample.object_name, [update])
        assert (result.record_id, result.written, dict(result.errors)) == (sample.record_id, set(values), {})
        for name, value in values.items():
            field = schema.fields[name]
            landed = stored_value(sample.object_name, sample.record_id, name)
            assert comparable(landed, field) == comparable(value, field), name

    def test_write_answers_each_update_in_order(self, connector: Connector, sample: ContractSample) -> None:
        schema = connector.object_schema(sample.object_name)
        field = schema.fields[sample.text_field]
        ids = [sample.other_record_id, sample.missing_record_id, sample.record_id]
        updates = [RecordWrite(rid, {field.name: connector.encode(field, sample_value(field))}) for rid in ids]
        results = connector.write(sample.object_name, updates)
        assert [result.record_id for result in results] == ids
        assert [bool(result.written) for result in results] == [True, False, True]

    def test_write_accounts_for_every_field_once(self, connector: Connector, sample: ContractSample) -> None:
        schema = connector.object_schema(sample.object_name)
        text, number = schema.fields[sample.text_field], schema.fields[sample.number_field]
        updates = [
            RecordWrite(sample.record_id, {text.name: connector.encode(text, sample_value(text)),
                                           sample.picklist_field: sample.invalid_option}),
            RecordWrite(sample.missing_record_id, {text.name: connector.encode(text, sample_value(text))}),
            RecordWrite(sample.other_record_id, {number.name: connector.encode(number, sample_value(number)),
                                                 sample.unknown_field: "x"}),
        ]
        for update, result in zip(updates, connector.write(sample.object_name, updates), strict=True):
            assert not result.written & set(result.errors), f"{update.record_id}: written and failed"
            assert result.written | set(result.errors) == set(update.values), f"{update.record_id}: fields unanswered"

    def test_an_invalid_value_fails_its_field_and_its_sibling_lands(
            self, connector: Connector, sample: ContractSample,
            stored_value: Callable[[str, str, str], Any]) -> None:
        before = stored_value(sample.object_name, sample.record_id, sample.picklist_field)
        self._assert_refused_beside_a_landed_sibling(connector, sample, stored_value, sample.picklist_field,
                                                     sample.invalid_option, "invalid_value")
        assert stored_value(sample.object_name, sample.record_id, sample.picklist_field) == before

    def test_an_unknown_field_fails_as_unknown_field_and_its_sibling_lands(
            self, connector: Connector, sample: ContractSample,
            stored_value: Callable[[str, str, str], Any]) -> None:
        self._assert_refused_beside_a_landed_sibling(connector, sample, stored_value, sample.unknown_field, "x",
                                                     "unknown_field")

    def test_a_read_only_field_fails_as_not_writable_and_its_sibling_lands(
            self, connector: Connector, sample: ContractSample,
            stored_value: Callable[[str, str, str], Any]) -> None:
        if sample.read_only_field is None:
            pytest.skip("the sample names no read-only field")
        field = connector.object_schema(sample.object_name).fields[sample.read_only_field]
        value = connector.encode(field, sample_value(field))
        self._assert_refused_beside_a_landed_sibling(connector, sample, stored_value, field.name, value,
                                                     "not_writable")

    def test_a_missing_record_is_a_failed_result_not_an_exception(
            self, connector: Connector, sample: ContractSample,
            stored_value: Callable[[str, str, str], Any]) -> None:
        field = connector.object_schema(sample.object_name).fields[sample.text_field]
        value = sample_value(field)
        updates = [RecordWrite(rid, {field.name: connector.encode(field, value)})
                   for rid in (sample.missing_record_id, sample.record_id)]
        missing, landed = connector.write(sample.object_name, updates)
        assert not missing.written and missing.errors[field.name].outcome == "failed"
        assert missing.errors[field.name].reason.strip()
        assert landed.written == {field.name}
        assert comparable(stored_value(sample.object_name, sample.record_id, field.name), field) == comparable(
            value, field)

    def _assert_refused_beside_a_landed_sibling(self, connector: Connector, sample: ContractSample,
                                                stored_value: Callable[[str, str, str], Any], name: str,
                                                wire_value: Any, outcome: str) -> None:
        text = connector.object_schema(sample.object_name).fields[sample.text_field]
        value = sample_value(text)
        update = RecordWrite(sample.record_id, {text.name: connector.encode(text, value), name: wire_value})
        [result] = connector.write(sample.object_name, [update])
        assert set(result.errors) == {name} and result.errors[name].outcome == outcome, result.errors
        assert result.errors[name].reason.strip()
        assert result.written == {text.name}
        assert comparable(stored_value(sample.object_name, sample.record_id, text.name), text) == comparable(
            value, text)

    # -- encode -------------------------------------------------------------------
    def test_encode_round_trips_each_field_type(self, connector: Connector, sample: ContractSample,
                                                stored_value: Callable[[str, str, str], Any]) -> None:
        schema = connector.object_schema(sample.object_name)
        values = _sample_values(connector, sample, sample.round_trip_fields)
        wire = _encoded(connector, schema, values)
        for name, encoded in wire.items():
            json.dumps(encoded)  # raises unless a JSON value, what a CRM's API takes
        [result] = connector.write(sample.object_name, [RecordWrite(sample.record_id, wire)])
        assert result.written == set(values) and not result.errors, result.errors
        [state] = connector.read(sample.object_name, [sample.record_id], list(values)).values()
        for name, value in values.items():
            field = schema.fields[name]
            assert comparable(state.values[name], field) == comparable(value, field), f"{name} ({field.type})"
            assert comparable(stored_value(sample.object_name, sample.record_id, name), field) == comparable(
                value, field), f"{name} ({field.type}) in the CRM"

    def test_encode_none_clears_the_field(self, connector: Connector, sample: ContractSample,
                                          stored_value: Callable[[str, str, str], Any]) -> None:
        field = connector.object_schema(sample.object_name).fields[sample.text_field]
        connector.write(sample.object_name, [RecordWrite(sample.record_id,
                                                         {field.name: connector.encode(field, sample_value(field))})])
        [result] = connector.write(sample.object_name, [RecordWrite(sample.record_id,
                                                                    {field.name: connector.encode(field, None)})])
        assert result.written == {field.name}
        assert comparable(stored_value(sample.object_name, sample.record_id, field.name), field) is None

    # -- errors -------------------------------------------------------------------
    @pytest.mark.parametrize("call", _CALLS)
    def test_a_server_error_is_a_transient_error(self, connector: Connector, sample: ContractSample,
                                                 fail_next: Callable[[Failure], float | None], call: str) -> None:
        run = _prepare(connector, sample, call)
        fail_next(Failure.SERVER_ERROR)
        with pytest.raises(TransientError):
            run()

    @pytest.mark.parametrize("call", _CALLS)
    def test_a_rate_limit_is_a_transient_error_with_its_retry_after(
            self, connector: Connector, sample: ContractSample,
            fail_next: Callable[[Failure], float | None], call: str) -> None:
        run = _prepare(connector, sample, call)
        asked = fail_next(Failure.RATE_LIMIT)
        with pytest.raises(TransientError) as caught:
            run()
        if asked is not None:
            assert caught.value.retry_after == pytest.approx(asked)

    @pytest.mark.parametrize("call", _CALLS)
    def test_a_rejected_credential_is_an_auth_error(self, connector: Connector, sample: ContractSample,
                                                    fail_next: Callable[[Failure], float | None], call: str) -> None:
        run = _prepare(connector, sample, call)
        fail_next(Failure.CREDENTIALS)
        with pytest.raises(AuthError):
            run()

    @pytest.mark.parametrize("call", _CALLS)
    def test_a_soft_time_limit_in_the_transport_passes_through(
            self, connector: Connector, sample: ContractSample,
            fail_next: Callable[[Failure], float | None], call: str) -> None:
        run = _prepare(connector, sample, call)
        fail_next(Failure.INTERRUPT)
        with pytest.raises(SoftTimeLimit) as caught:
            run()
        assert caught.type is SoftTimeLimit, "raised as it came, not wrapped"


def _field(schema: ObjectSchema, name: str) -> FieldSchema:
    found = schema.fields.get(name)
    assert found is not None, f"{schema.name} has no field {name!r}"
    return found


def _sample_values(connector: Connector, sample: ContractSample, names: Sequence[str]) -> dict[str, Any]:
    """A new canonical value for each field, unlike what the sample record holds now."""
    schema = connector.object_schema(sample.object_name)
    [state] = connector.read(sample.object_name, [sample.record_id], list(names)).values()
    assert state.values is not None, f"{sample.record_id} cannot be read: {state.error}"
    return {name: sample_value(_field(schema, name), state.values.get(name)) for name in names}


def _encoded(connector: Connector, schema: ObjectSchema, values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: connector.encode(schema.fields[name], value) for name, value in values.items()}


def _prepare(connector: Connector, sample: ContractSample, call: str) -> Callable[[], Any]:
    """The request ``call`` makes, ready to run: anything it needs first (the schema) is fetched now,
    so that a failure injected next hits that request."""
    if call == "object_schema":
        return lambda: connector.object_schema(sample.object_name)
    if call == "check":
        return connector.check
    field = connector.object_schema(sample.object_name).fields[sample.text_field]
    if call == "read":
        return lambda: connector.read(sample.object_name, [sample.record_id], [field.name])
    update = RecordWrite(sample.record_id, {field.name: connector.encode(field, sample_value(field))})
    return lambda: connector.write(sample.object_name, [update])


__all__ = ["ConnectorContract", "ContractSample", "Failure", "raise_once"]
