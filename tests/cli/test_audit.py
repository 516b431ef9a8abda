"""Revert and review before write, end to end: the ``writeback`` command on the simulators (DESIGN §6).

Through the real client libraries (simple-salesforce, hubspot-api-client)
against the Salesforce and HubSpot simulators, with the Siro simulator and a
ledger on SQLite and on PostgreSQL. Each test does what an operator does,
command by command, and checks what they would: the JSON the command prints,
its exit code, the CRM's values, and the requests that reached the CRM.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from simulators.hubspot import DEFAULT_TOKEN as HUBSPOT_TOKEN
from simulators.siro import SiroState
from simulators.tls import local_tls
from tests.fixtures.cli import SF_SECRET_VAR, run, salesforce_config

pytestmark = pytest.mark.e2e  # every test runs `writeback` as a subprocess

X = SiroState.extraction
HS_SECRET_VAR = "HS_TOKEN_FOR_TESTS"


@dataclass
class Deployment:
    """A deployment on one CRM's simulator: the environment of ``writeback``, and the CRM seen from outside."""

    env: dict[str, str]
    siro: SiroState
    record_id: str  # the opportunity / deal the recordings link to
    fields: dict[str, str]  # "amount", "notes", "next" -> the CRM's field name
    value: Callable[[str], Any]  # the CRM's value of a field ("amount"...) of the record, as the CRM stores it
    edit: Callable[[str, Any], None]  # a person sets a field in the CRM
    requests: Callable[[], list[tuple[str, str]]]  # (read|write, path) of every record request so far
    empty: Any  # what a cleared field reads as

    def writeback(self, *args: str, code: int | None = 0) -> Any:
        """Run ``writeback ARGS``; its JSON (when ``--json``) or its result, after checking the exit code."""
        done = run(*args, env=self.env)
        if code is not None:
            assert done.returncode == code, (done.stdout, done.stderr)
        return json.loads(done.stdout) if "--json" in args and done.stdout.strip() else done

    def add_recording(self, recording_id: str, *, created_at: str = "2026-11-01T09:00:00.000Z",
                      **values: Any) -> None:
        names = {"amount": "Deal size", "notes": "Notes", "next": "Next step"}
        self.siro.add_recording(recording_id, created_at=created_at, entity_extractions=[
            X(names[key], value, ("Opportunity", self.fields[key])) for key, value in values.items()])
        self.siro.link(recording_id, integration_connection_id="ic-any", opportunity=self.record_id)


def _config(connection: str, policy: str) -> str:
    return f"""{connection}
[connections.fields.policy]
{policy}
[retry]
max_retries = 1
base_s = 0.01
max_s = 0.05
"""


@pytest.fixture(params=["salesforce", "hubspot"])
def deployment(request, tmp_path, database_url, siro_server, redis_url) -> Callable[..., Deployment]:
    """``deployment(review=[...])``: a config whose listed fields ("amount", ...) are under ``review``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "SIRO_API_URL": siro_server.url, "SIRO_API_TOKEN": siro_server.token,
           "WRITEBACK_CONFIG": str(tmp_path / "writeback.toml"), "WRITEBACK_DATABASE_URL": database_url,
           "WRITEBACK_BROKER_URL": redis_url}
    if request.param == "salesforce":
        server, ids = request.getfixturevalue("salesforce_server"), request.getfixturevalue("salesforce_ids")
        state = server.state
        env.update({SF_SECRET_VAR: request.getfixturevalue("salesforce_token"),
                    "REQUESTS_CA_BUNDLE": local_tls().ca_bundle})
        connection = salesforce_config(server.url).split("[retry]")[0]
        fields = {"amount": "Amount", "notes": "Description", "next": "NextStep"}
        made = dict(
            record_id=ids.opportunity, fields=fields, empty=None,
            value=lambda key: state.get_record("Opportunity", ids.opportunity).get(fields[key]),
            edit=lambda key, value: state.set_values("Opportunity", ids.opportunity, {fields[key]: value}),
            requests=lambda: [("write" if r.method == "PATCH" else "read", r.path)
                              for r in state.requests_matching() if r.method == "PATCH" or "/query" in r.path
                              or "/composite/sobjects/Opportunity" in r.path],
        )
        obj = "Opportunity"
    else:
        state = request.getfixturevalue("hubspot_state")
        deal = state.named["deal_acme"]
        env[HS_SECRET_VAR] = HUBSPOT_TOKEN
        connection = f"""[[connections]]
integration_connection_id = "*"
connector = "hubspot"
name = "hs"
api_url = "{request.getfixturevalue('hubspot_url')}"
access_token = "${{{HS_SECRET_VAR}}}"
"""
        fields = {"amount": "amount", "notes": "description", "next": "hs_next_step"}
        made = dict(
            record_id=deal, fields=fields, empty="",
            value=lambda key: state.get_record("deals", deal).get(fields[key]),
            edit=lambda key, value: state.set_values("deals", deal, **{fields[key]: value}),
            requests=lambda: [("write" if r.path.endswith("batch/update") else "read", r.path)
                              for r in state.requests_to() if r.path.endswith(("batch/update", "batch/read"))],
        )
        obj = "deals"

    def make(review: tuple[str, ...] = ()) -> Deployment:
        policy = "\n".join(f'"{obj}.{fields[key]}" = "review"' for key in review)
        (tmp_path / "writeback.toml").write_text(_config(connection, policy))
        return Deployment(env=env, siro=siro_server.state, **made)

    return make


def outcomes(report: dict[str, Any]) -> dict[str, tuple[str, Any, Any]]:
    return {line["field"]: (line["outcome"], line["value"], line["previous"]) for line in report["fields"]}


def same(crm_value: Any, expected: Any) -> bool:
    """HubSpot stores every value as text."""
    return crm_value == expected or (crm_value is not None and str(crm_value) == str(expected))


# --------------------------------------------------------------------------- #
# revert


def test_revert_restores_previous_values_leaves_a_persons_edit_and_is_not_undone_by_a_poll(deployment):
    crm = deployment()
    crm.add_recording("rec-a", amount="18,750", notes="Two layers of shingles", next="Call Tuesday")
    before = {key: crm.value(key) for key in ("amount", "notes", "next")}
    synced = crm.writeback("sync", "rec-a", "--json")
    assert {outcome for outcome, _, _ in outcomes(synced).values()} == {"written"}
    crm.edit("next", "Rep's own next step")  # a person, after us
    sent = len(crm.requests())

    reverted = crm.writeback("revert", "rec-a", "--json")

    got = outcomes(reverted)
    assert got[crm.fields["amount"]][0] == got[crm.fields["notes"]][0] == "reverted"
    assert got[crm.fields["amount"]][1] == 12500 and got[crm.fields["notes"]][1] is None  # null: cleared
    assert got[crm.fields["next"]][0] == "skipped_policy"
    assert [line["reason"] for line in reverted["fields"] if line["field"] == crm.fields["next"]][0].startswith(
        "edited_since")
    assert same(crm.value("amount"), before["amount"]) and crm.value("notes") in (None, "")
    assert crm.value("next") == "Rep's own next step"
    assert [kind for kind, _ in crm.requests()[sent:]] == ["read", "write"]  # batched: one of each

    again = crm.writeback("revert", "rec-a", "--json")
    assert {outcome for outcome, _, _ in outcomes(again).values()} == {"unchanged", "skipped_policy"}
    assert "write" not in [kind for kind, _ in crm.requests()[sent + 2:]]  # the second time sends nothing

    polled = crm.writeback("poll", "--in-process", "--json")
    assert polled["recordings"] >= 1
    history = crm.writeback("history", "rec-a", "--json")
    assert [(run["trigger"], run["status"]) for run in history["runs"]][:3] == [
        ("poll", "skipped"), ("revert", "ok"), ("revert", "ok")]
    assert history["runs"][0]["reason"].startswith("reverted: ")
    assert "write" not in [kind for kind, _ in crm.requests()[sent + 2:]]
    assert same(crm.value("amount"), before["amount"])

    forced = crm.writeback("sync", "rec-a", "--force", "--json")
    assert outcomes(forced)[crm.fields["amount"]][0] == "written"
    assert same(crm.value("amount"), 18750)


def test_revert_of_a_recording_never_written_is_one_line_and_exit_1(deployment):
    crm = deployment()
    crm.add_recording("rec-none", amount=12500)  # equal to the CRM's: unchanged, nothing written
    crm.writeback("sync", "rec-none")

    done = crm.writeback("revert", "rec-none", code=1)

    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "writeback: nothing to revert: recording rec-none never wrote a field (writeback history shows its runs)"]
    assert crm.writeback("revert", "rec-unknown", code=1).stderr.count("\n") == 1


# --------------------------------------------------------------------------- #
# review


def test_review_holds_approval_writes_or_finds_it_done_and_rejection_sticks(deployment):
    crm = deployment(review=("amount", "notes"))
    crm.add_recording("rec-r", amount="18,750", notes="Two layers of shingles", next="Call Tuesday")
    sent = len(crm.requests())

    synced = crm.writeback("sync", "rec-r", "--json")

    got = outcomes(synced)
    assert got[crm.fields["amount"]] == ("pending_review", 18750, 12500)
    assert got[crm.fields["notes"]][0] == "pending_review" and got[crm.fields["next"]][0] == "written"
    assert same(crm.value("amount"), 12500) and crm.value("notes") in (None, "")
    waiting = crm.writeback("review", "--json")["proposals"]
    assert [(p["field"], p["value"], p["previous"], p["recordingId"], p["recordId"]) for p in waiting] == [
        (crm.fields["amount"], 18750, 12500, "rec-r", crm.record_id),
        (crm.fields["notes"], "Two layers of shingles", None, "rec-r", crm.record_id)]
    assert set(waiting[0]) == {"id", "connection", "object", "recordId", "field", "value", "previous",
                               "recordingId", "extraction", "createdAt"}

    crm.edit("notes", "Two layers of shingles")  # a person already typed it in
    before_approval = len(crm.requests())
    approved = crm.writeback("review", "approve", "--all", "--json")

    assert {(line["proposalId"], line["field"], line["outcome"]) for line in approved["fields"]} == {
        (waiting[0]["id"], crm.fields["amount"], "written"), (waiting[1]["id"], crm.fields["notes"], "unchanged")}
    assert same(crm.value("amount"), 18750)
    assert [kind for kind, _ in crm.requests()[before_approval:]] == ["read", "write"]
    assert crm.writeback("review", "--json") == {"proposals": []}
    assert crm.writeback("history", "rec-r", "--json")["runs"][0]["trigger"] == "review"
    assert len([kind for kind, _ in crm.requests()[sent:] if kind == "write"]) == 2  # next step, then amount

    # Rejection sticks: the same value from the same version is not proposed again.
    crm.add_recording("rec-x", amount=99000, created_at="2026-11-02T09:00:00.000Z")
    crm.writeback("sync", "rec-x")
    [proposal] = crm.writeback("review", "--json")["proposals"]
    assert crm.writeback("review", "reject", str(proposal["id"]), "--json") == {"rejected": [proposal["id"]]}
    again = crm.writeback("sync", "rec-x", "--json")
    assert [(line["outcome"], line["reason"].split(":")[0]) for line in again["fields"]
            if line["field"] == crm.fields["amount"]] == [("skipped_policy", "rejected")]
    assert crm.writeback("review", "--json") == {"proposals": []}
    assert same(crm.value("amount"), 18750)

    # Acting on what is not pending: one line, exit 1.
    done = crm.writeback("review", "approve", str(proposal["id"]), "424242", code=1)
    assert done.stderr.strip() == f"writeback: no proposal 424242; not pending: {proposal['id']} (rejected)"


def test_a_newer_recording_supersedes_a_proposal(deployment):
    crm = deployment(review=("amount",))
    crm.add_recording("rec-old", amount=20000, created_at="2026-11-01T09:00:00.000Z")
    crm.add_recording("rec-new", amount=30000, created_at="2026-11-03T09:00:00.000Z")

    crm.writeback("sync", "rec-old")
    crm.writeback("sync", "rec-new")
    late = crm.writeback("sync", "rec-old", "--json")  # the older one, re-run after

    [proposal] = crm.writeback("review", "--json")["proposals"]
    assert (proposal["recordingId"], proposal["value"]) == ("rec-new", 30000)
    assert [(line["outcome"], line["reason"].split(":")[0]) for line in late["fields"]
            if line["field"] == crm.fields["amount"]] == [("skipped_policy", "superseded")]
    crm.writeback("review", "approve", str(proposal["id"]))
    assert same(crm.value("amount"), 30000)
