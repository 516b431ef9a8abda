"""Siro payload models: the documented shapes parse, and bad data never crashes.

The OpenAPI document carries schemas but no examples, so examples are
generated from the schemas themselves (``_example``) when the spec is
reachable (``../shared/siro`` next to the repository, or ``SIRO_OPENAPI``);
a hand-written payload in the documented shape is always checked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from worker.siro.models import (
    CallerIdentity,
    CrmLinks,
    EntityExtraction,
    Recording,
    RecordingPage,
)

UTC = dt.UTC


def _spec_path() -> Path | None:
    candidates = [os.environ.get("SIRO_OPENAPI", "")]
    root = Path(__file__).resolve().parents[2]
    candidates += [
        str(root.parent / "shared" / "siro" / "siro-external-api.openapi.json"),
        str(root / "shared" / "siro" / "siro-external-api.openapi.json"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


SPEC_PATH = _spec_path()
needs_spec = pytest.mark.skipif(SPEC_PATH is None, reason="Siro OpenAPI document not found (set SIRO_OPENAPI)")


def _spec() -> dict[str, Any]:
    assert SPEC_PATH is not None
    return json.loads(SPEC_PATH.read_text())


def _response_schema(path: str) -> dict[str, Any]:
    return _spec()["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


def _example(schema: dict[str, Any], name: str = "value") -> Any:
    """A full instance of a JSON schema: every property present."""
    if "anyOf" in schema:
        return _example(schema["anyOf"][0], name)
    kind = schema.get("type")
    if kind == "object":
        return {key: _example(sub, key) for key, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example(schema.get("items", {}), name)]
    if kind == "string":
        if "enum" in schema:
            return schema["enum"][0]
        if name.endswith("At") or name == "dateCreated":
            return "2024-06-13T04:00:00.592Z"
        return f"{name}-1"
    if kind == "number":
        return 1500.5
    if kind == "boolean":
        return True
    return None


# A recording in the shape the API page documents (crm, extractions, summary).
DOCUMENTED = {
    "id": "rec_8f2c",
    "organizationId": "org_1",
    "userId": "user_7",
    "title": "Kitchen remodel - Smith",
    "durationInMilliseconds": 2712000,
    "latitude": 40.71,
    "longitude": -74.0,
    "result": "WON",
    "createdAt": "2024-06-13T04:00:00.592Z",
    "updatedAt": "2024-06-13T05:12:45.001Z",
    "rootDataPurgedAt": None,
    "deleted": False,
    "deletedAt": None,
    "links": {"web": {"self": "https://app.siro.ai/recordings/rec_8f2c"}},
    "isProcessingDone": True,
    "isEntityExtractionDone": True,
    "isSummaryDone": True,
    "crm": {
        "integrationConnectionId": "ic_sf_1",
        "users": [{"id": "u1", "externalId": "0055g00000AbCdE"}],
        "engagement": {"id": "e1", "externalId": "00U5g00000XyZ"},
        "opportunity": {"id": "o1", "externalId": "0065g00000Opp1"},
        "contacts": [{"id": "c1", "externalId": "0035g00000Con1"}, {"id": "c2", "externalId": "0035g00000Con2"}],
        "account": {"id": "a1", "externalId": "0015g00000Acc1"},
        "lead": {"id": "l1", "externalId": "00Q5g00000Lead"},
    },
    "summary": [{"id": "s1", "name": "Next steps", "content": "Send the quote by Friday."}],
    "entityExtractions": [
        {"name": "Budget", "value": 12500, "mappings": [{"crmModelName": "Opportunity", "crmFieldName": "Amount"}]},
        {"name": "Products", "value": ["Cabinets", "Counters"], "mappings": None},
        {"name": "Decision maker", "value": None, "mappings": []},
    ],
}


def test_documented_recording_parses() -> None:
    rec = Recording.model_validate(DOCUMENTED)
    assert rec.id == "rec_8f2c"
    assert rec.updated_at == dt.datetime(2024, 6, 13, 5, 12, 45, 1000, tzinfo=UTC)
    assert rec.crm is not None and rec.crm.integration_connection_id == "ic_sf_1"
    assert [link.external_id for link in rec.crm.slot("contacts")] == ["0035g00000Con1", "0035g00000Con2"]
    assert rec.crm.slot("opportunity")[0].external_id == "0065g00000Opp1"
    assert rec.crm.slot("users")[0].id == "u1"
    assert rec.entity_extractions is not None
    budget, products, decision = rec.entity_extractions
    assert budget.value == 12500 and budget.mappings is not None
    assert (budget.mappings[0].crm_model_name, budget.mappings[0].crm_field_name) == ("Opportunity", "Amount")
    assert products.value == ["Cabinets", "Counters"] and products.mappings is None
    assert decision.value is None and decision.mappings == []
    assert rec.summary is not None and rec.summary[0].content == "Send the quote by Friday."
    assert rec.duration_in_milliseconds == 2712000 and rec.result == "WON"
    assert rec.web_url == "https://app.siro.ai/recordings/rec_8f2c"
    assert rec.deleted is False and rec.deleted_at is None


@needs_spec
def test_openapi_recording_example_parses_and_aliases_match() -> None:
    schema = _response_schema("/v1/core/recordings/{id}")
    example = _example(schema)
    rec = Recording.model_validate(example)
    props = schema["properties"]
    # Every field we declare reads a property Siro documents (no typo'd alias).
    for name, info in Recording.model_fields.items():
        assert info.alias in props, f"Recording.{name} reads {info.alias!r}, not in the OpenAPI schema"
    # Everything documented is either a typed field or kept as an extra.
    declared = {info.alias for info in Recording.model_fields.values()}
    assert set(props) - declared == set(rec.model_extra or {})
    assert rec.model_extra and "followups" in rec.model_extra and "evaluationScore" in rec.model_extra
    assert rec.crm is not None
    for info in CrmLinks.model_fields.values():
        assert info.alias in props["crm"]["properties"]
    for slot in ("users", "engagement", "opportunity", "contacts", "account", "lead"):
        assert [link.external_id for link in rec.crm.slot(slot)] == ["externalId-1"]
    assert rec.entity_extractions is not None and rec.entity_extractions[0].mappings is not None
    assert rec.entity_extractions[0].mappings[0].crm_field_name == "crmFieldName-1"
    assert rec.summary is not None and rec.summary[0].name == "name-1"
    assert rec.created_at == dt.datetime(2024, 6, 13, 4, 0, 0, 592000, tzinfo=UTC)
    assert rec.deleted is True and rec.deleted_at is not None
    assert rec.web_url == "self-1"
    # A round trip by alias gives the API's own keys back.
    dumped = rec.model_dump(by_alias=True)
    assert {"isEntityExtractionDone", "entityExtractions", "durationInMilliseconds"} <= set(dumped)


@needs_spec
def test_openapi_list_and_identity_examples_parse() -> None:
    page_example = _example(_response_schema("/v1/core/recordings"))
    page = RecordingPage.model_validate(page_example)
    assert len(page.data) == 1 and page.data[0].id == "id-1"
    assert page.cursor == "cursor-1"
    assert page.data[0].model_extra and page.data[0].model_extra["followups"] == [{"id": "id-1", "score": 1500.5}]

    identity_schema = _response_schema("/v1/core/auth/caller-identity")
    identity = CallerIdentity.model_validate(_example(identity_schema))
    for name, info in CallerIdentity.model_fields.items():
        assert info.alias in identity_schema["properties"]
        assert getattr(identity, name) is not None
    assert set(identity_schema["properties"]) == {info.alias for info in CallerIdentity.model_fields.values()}


def test_recording_minimal_payload_defaults() -> None:
    rec = Recording.model_validate({"id": "r1"})
    assert rec.crm is None and rec.entity_extractions is None and rec.summary is None
    assert rec.deleted is False and rec.updated_at is None and rec.web_url is None


def test_unknown_fields_are_kept_everywhere() -> None:
    payload = json.loads(json.dumps(DOCUMENTED))
    payload["sentiment"] = {"score": 0.8}
    payload["crm"]["quote"] = {"id": "q1", "externalId": "0Q0"}
    payload["crm"]["opportunity"]["name"] = "Big deal"
    payload["entityExtractions"][0]["confidence"] = 0.93
    payload["entityExtractions"][0]["mappings"][0]["crmFieldType"] = "currency"
    rec = Recording.model_validate(payload)
    assert rec.model_extra == {"sentiment": {"score": 0.8}}
    assert rec.crm is not None and rec.crm.model_extra == {"quote": {"id": "q1", "externalId": "0Q0"}}
    assert rec.crm.opportunity is not None and rec.crm.opportunity.model_extra == {"name": "Big deal"}
    assert rec.entity_extractions is not None
    assert rec.entity_extractions[0].model_extra == {"confidence": 0.93}
    mapping = rec.entity_extractions[0].mappings[0]  # type: ignore[index]
    assert mapping.model_extra == {"crmFieldType": "currency"}
    assert rec.model_dump(by_alias=True)["sentiment"] == {"score": 0.8}


@pytest.mark.parametrize(
    ("mappings", "expected"),
    [
        ("Opportunity.Amount", None),
        ({"crmModelName": "Opportunity", "crmFieldName": "Amount"}, None),
        (42, None),
        (None, None),
        ([], []),
        ([None, 3, "x", {"crmModelName": "Opportunity"}], [("Opportunity", None)]),
        ([{"crmFieldName": "Amount"}], [(None, "Amount")]),
        ([{"crmModelName": 7, "crmFieldName": ["a"]}], [("7", None)]),
        ([{}], [(None, None)]),
    ],
)
def test_malformed_mappings_do_not_crash(mappings: Any, expected: Any) -> None:
    rec = Recording.model_validate({"id": "r", "entityExtractions": [{"name": "Budget", "value": 1, "mappings": mappings}]})
    assert rec.entity_extractions is not None
    got = rec.entity_extractions[0].mappings
    if expected is None:
        assert got is None
    else:
        assert [(m.crm_model_name, m.crm_field_name) for m in got or []] == expected


@pytest.mark.parametrize(
    ("extractions", "names"),
    [
        ([], []),
        (None, None),
        ("not a list", []),
        ({"name": "x"}, []),
        ([None, "x", 5, {"name": "Budget", "value": 3}], ["Budget"]),
        ([{"value": 3}], [""]),
        ([{"name": None, "value": 3}], [""]),
        ([{"name": 12, "value": 3}], ["12"]),
    ],
)
def test_malformed_extractions_do_not_crash(extractions: Any, names: Any) -> None:
    rec = Recording.model_validate({"id": "r", "entityExtractions": extractions})
    if names is None:
        assert rec.entity_extractions is None
    else:
        assert [e.name for e in rec.entity_extractions or []] == names


def test_extraction_values_of_every_documented_kind() -> None:
    values = ["text", ["a", "b"], 12.5, 3, True, None, ["a", 1, False, None]]
    rec = Recording.model_validate({"id": "r", "entityExtractions": [{"name": f"v{i}", "value": v} for i, v in enumerate(values)]})
    assert [e.value for e in rec.entity_extractions or []] == values
    assert EntityExtraction.model_validate({"name": "n", "value": {"nested": 1}}).value == {"nested": 1}


def test_crm_null_means_not_linked() -> None:
    assert Recording.model_validate({"id": "r", "crm": None}).crm is None
    for garbage in ("linked", 1, ["x"], True):
        assert Recording.model_validate({"id": "r", "crm": garbage}).crm is None


def test_malformed_crm_links_are_tolerated() -> None:
    rec = Recording.model_validate(
        {
            "id": "r",
            "crm": {
                "integrationConnectionId": 991,
                "users": None,
                "contacts": {"id": "c1", "externalId": "003A"},
                "engagement": "00U123",
                "opportunity": {"id": "o1", "externalId": 12345678901},
                "account": {"id": "a1"},
                "lead": [],
            },
        }
    )
    crm = rec.crm
    assert crm is not None
    assert crm.integration_connection_id == "991"
    assert crm.users == [] and crm.slot("users") == []
    assert [c.external_id for c in crm.slot("contacts")] == ["003A"]
    assert crm.engagement is None and crm.lead is None
    assert crm.slot("opportunity")[0].external_id == "12345678901"  # HubSpot ids may come as numbers
    assert crm.account is not None and crm.slot("account") == []  # no externalId: nothing to write to
    mixed = CrmLinks.model_validate({"contacts": [None, "003B", {"id": "c", "externalId": "003C"}, {"externalId": {"x": 1}}]})
    assert [c.external_id for c in mixed.contacts] == ["003C", None]
    assert [c.external_id for c in mixed.slot("contacts")] == ["003C"]
    assert mixed.slot("nonexistent") == []


def test_deleted_recordings() -> None:
    rec = Recording.model_validate({"id": "r", "deleted": True, "deletedAt": "2024-06-14T10:00:00.000Z"})
    assert rec.deleted is True and rec.deleted_at == dt.datetime(2024, 6, 14, 10, tzinfo=UTC)
    assert Recording.model_validate({"id": "r", "deleted": None}).deleted is False
    assert Recording.model_validate({"id": "r", "deleted": "false"}).deleted is False
    # An unreadable flag errs on the side of not writing.
    assert Recording.model_validate({"id": "r", "deleted": "perhaps"}).deleted is True


def test_malformed_scalars_and_timestamps() -> None:
    rec = Recording.model_validate(
        {
            "id": 42,
            "organizationId": 7,
            "title": {"x": 1},
            "createdAt": "yesterday",
            "updatedAt": "2024-06-13T04:00:00",  # no offset: UTC
            "deletedAt": "",
            "rootDataPurgedAt": 5,
            "durationInMilliseconds": "long",
            "latitude": "40.7",
            "result": ["WON"],
            "links": "https://example",
            "isProcessingDone": "nope",
            "isEntityExtractionDone": "true",
        }
    )
    assert rec.id == "42" and rec.organization_id == "7"
    assert rec.title is None and rec.result is None and rec.links is None and rec.web_url is None
    assert rec.created_at is None and rec.deleted_at is None and rec.root_data_purged_at is None
    assert rec.updated_at == dt.datetime(2024, 6, 13, 4, tzinfo=UTC)
    assert rec.duration_in_milliseconds is None and rec.latitude == 40.7
    assert rec.is_processing_done is None and rec.is_entity_extraction_done is True
    assert Recording.model_validate({"id": "r", "summary": [{"id": 1, "name": None, "content": 3}, "x"]}).summary[0].content == "3"  # type: ignore[index]


def test_recording_without_id_is_rejected_but_page_survives(caplog: pytest.LogCaptureFixture) -> None:
    for bad in ({}, {"id": None}, {"id": ""}, {"id": {"x": 1}}):
        with pytest.raises(ValidationError):
            Recording.model_validate(bad)
    caplog.set_level(logging.WARNING, logger="worker.siro.models")
    page = RecordingPage.model_validate({"data": [{"id": "a"}, {"title": "no id"}, None, "b", {"id": 5}], "cursor": "c1"})
    assert [r.id for r in page.data] == ["a", "5"]
    assert page.cursor == "c1"
    assert "no usable id" in caplog.text


@pytest.mark.parametrize(
    ("payload", "ids", "cursor"),
    [
        ({"data": [], "cursor": None}, [], None),
        ({"data": None, "cursor": ""}, [], None),
        ({"data": "x"}, [], None),
        ({"data": [{"id": "a"}], "cursor": 17, "total": 3}, ["a"], "17"),
    ],
)
def test_page_shapes(payload: dict[str, Any], ids: list[str], cursor: str | None) -> None:
    page = RecordingPage.model_validate(payload)
    assert [r.id for r in page.data] == ids
    assert page.cursor == cursor


def test_caller_identity_tolerant() -> None:
    identity = CallerIdentity.model_validate(
        {
            "tokenId": "t1",
            "tokenName": "writeback",
            "organizationId": "org",
            "authorizedOrgGroupId": None,
            "parentOrgGroupTokenId": None,
            "createdAt": "not a date",
            "createdBy": None,
            "scopes": ["recordings:read"],
        }
    )
    assert identity.token_id == "t1" and identity.created_at is None
    assert identity.model_extra == {"scopes": ["recordings:read"]}
