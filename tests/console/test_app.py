"""The console app in-process (Starlette's TestClient): sign-in, sessions, CSRF, headers, escaping, secrets.

The app runs on a real ledger (SQLite) and the HubSpot simulator (served in
this process); what a page shows is checked as an operator's browser gets it:
status codes, the HTML, the cookie's flags and the response headers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from simulators.hubspot import DEFAULT_TOKEN as HUBSPOT_TOKEN
from simulators.hubspot import HubSpotState
from worker.console.app import COOKIE, create_app
from worker.console.auth import Sessions, console_token
from worker.console.operations import Operations
from worker.errors import ConfigError
from worker.ledger.rows import ProposalRow
from worker.logs import redaction_for
from worker.report import FieldReport, NoteOutcome, NoteReport, Outcome, Status
from worker.runtime import Runtime
from worker.settings import load_settings

TOKEN = "console-token-for-tests-0123456789"
SCRIPT = "<script>alert('x')</script>"
PAGES = ["/runs", "/recording?id=rec-1", "/recording?id=" + SCRIPT, "/review", "/dead-letters",
         "/record?connection=hs&object=deals&id=D1", "/record?connection=hs&object=deals&id=D1&field=amount"]


@pytest.fixture
def console(tmp_path: Path, hubspot_url: str, hubspot_state: HubSpotState):
    config = tmp_path / "writeback.toml"
    config.write_text(f"""[[connections]]
integration_connection_id = "*"
connector = "hubspot"
name = "hs"
api_url = "{hubspot_url}"
access_token = "${{HS_TOKEN}}"
""")
    settings = load_settings({"WRITEBACK_CONFIG": str(config), "HS_TOKEN": HUBSPOT_TOKEN,
                              "WRITEBACK_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db",
                              "WRITEBACK_BROKER_URL": "memory://"})
    ops = Operations(Runtime(settings, redis_optional=True, in_task=False, with_siro=False))
    app = create_app(ops, TOKEN, redactor=redaction_for(settings, TOKEN))
    with TestClient(app) as client:
        client.ledger = ops.rt.ledger
        client.hubspot = hubspot_state
        yield client
    ops.close()


def sign_in(client: TestClient) -> str:
    """Sign in; the CSRF token of the session."""
    answer = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/runs"
    return csrf_of(client.get("/runs").text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def add_run(ledger: Any, recording_id: str, lines: list[FieldReport], trigger: str = "webhook") -> int:
    run_id = ledger.start_run(recording_id, trigger=trigger)
    ledger.record(run_id, recording_id, lines)
    ledger.finish_run(run_id, Status.OK)
    return run_id


def line(field: str, value: Any, outcome: Outcome = Outcome.WRITTEN, reason: str | None = None,
         extraction: str = "Deal size") -> FieldReport:
    return FieldReport("hs", "deals", "D1", field, value, "1000", outcome, reason, extraction)


# --------------------------------------------------------------------------- access


def test_the_console_does_not_start_without_a_long_enough_token():
    with pytest.raises(ConfigError, match="WRITEBACK_CONSOLE_TOKEN is not set"):
        console_token({})
    with pytest.raises(ConfigError, match="shorter than 16"):
        console_token({"WRITEBACK_CONSOLE_TOKEN": "short"})
    assert console_token({"WRITEBACK_CONSOLE_TOKEN": f" {TOKEN}\n"}) == TOKEN


def test_writeback_console_without_a_token_exits_2_in_one_line(tmp_path, monkeypatch, capsys):
    from worker.cli.main import main

    for name in ("WRITEBACK_CONSOLE_TOKEN", "WRITEBACK_CONSOLE_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WRITEBACK_DATABASE_URL", f"sqlite:///{tmp_path}/ledger.db")
    monkeypatch.setenv("WRITEBACK_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")

    assert main(["console", "--port", "1"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "writeback: WRITEBACK_CONSOLE_TOKEN is not set (nor WRITEBACK_CONSOLE_TOKEN_FILE): "
        "the console does not start without a token"]


def test_pages_need_a_session_and_a_wrong_token_is_refused_without_a_hint(console):
    for path in PAGES:
        answer = console.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login"), path

    refused = console.post("/login", data={"token": TOKEN + "x"}, follow_redirects=False)
    assert refused.status_code == 401 and COOKIE not in refused.cookies
    assert "Login refused." in refused.text and TOKEN[:8] not in refused.text
    assert console.post("/login", data={}, follow_redirects=False).status_code == 401
    assert console.get("/runs", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_signed_httponly_strict_and_not_the_token(console):
    answer = console.post("/login", data={"token": TOKEN}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and TOKEN not in cookie
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags and "secure" not in flags  # plain http here
    assert console.get("/runs").status_code == 200

    value = console.cookies[COOKIE]
    session_id, expiry, signature = value.split(".")
    console.cookies.set(COOKIE, f"{session_id}x.{expiry}.{signature}")
    assert console.get("/runs", follow_redirects=False).status_code == 303  # tampered
    console.cookies.set(COOKIE, f"{session_id}.{int(expiry) + 3600}.{signature}")
    assert console.get("/runs", follow_redirects=False).status_code == 303  # expiry moved


def test_secure_cookie_over_https(console):
    console.base_url = "https://testserver"
    answer = console.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert "secure" in answer.headers["set-cookie"].lower()


def test_sessions_expire_and_logout_ends_one():
    now = [1_000_000.0]
    sessions = Sessions(TOKEN, ttl_s=60, clock=lambda: now[0])
    cookie = sessions.issue()
    session_id = sessions.session_id(cookie)
    assert session_id and sessions.csrf_matches(session_id, sessions.csrf_token(session_id))
    token = sessions.csrf_token(session_id)
    assert not sessions.csrf_matches(session_id, token[:-1] + ("B" if token.endswith("A") else "A"))
    assert Sessions(TOKEN + "-new").session_id(cookie) is None  # a new token ends every session
    now[0] += 61
    assert sessions.session_id(cookie) is None
    now[0] -= 61
    sessions.revoke(cookie)
    assert sessions.session_id(cookie) is None


def test_logout_needs_csrf_and_ends_the_session(console):
    csrf = sign_in(console)
    assert console.post("/logout", data={}, follow_redirects=False).status_code == 403
    old_cookie = console.cookies[COOKIE]
    answer = console.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    console.cookies.set(COOKIE, old_cookie)  # a copy kept from before logging out
    assert console.get("/runs", follow_redirects=False).status_code == 303


def test_every_action_without_or_with_a_wrong_csrf_token_is_403_and_does_nothing(console):
    console.ledger.add_dead_letter("rec-dead", reason="retries_exhausted", error="HubSpot 503", trigger="poll",
                                   attempts=3)
    _, proposal_id = console.ledger.propose(ProposalRow("hs", "deals", "D1", "amount", 5, 1000, "rec-1"))
    add_run(console.ledger, "rec-1", [line("amount", 5)])
    csrf = sign_in(console)
    other = Sessions(TOKEN).csrf_token("another-session")
    actions = [("/dead-letters/retry", {"recording_id": "rec-dead"}),
               ("/review/decide", {"proposal_id": str(proposal_id), "decision": "reject"}),
               ("/revert/preview", {"recording_id": "rec-1"}), ("/revert", {"recording_id": "rec-1"})]
    for path, form in actions:
        for bad in ({}, {"csrf": ""}, {"csrf": csrf[:-2]}, {"csrf": other}):
            answer = console.post(path, data={**form, **bad})
            assert answer.status_code == 403, (path, bad)
            assert "CSRF token is missing or wrong" in answer.text
    assert [row.recording_id for row in console.ledger.dead_letters()] == ["rec-dead"]
    assert [row.id for row in console.ledger.proposals()] == [proposal_id]
    assert [run.trigger for run in console.ledger.runs("rec-1")] == ["webhook"]  # no revert, not even a dry run
    assert console.get("/review").status_code == 200 and csrf  # still signed in


def test_actions_refuse_gets(console):
    sign_in(console)
    assert console.get("/revert").status_code == 405
    assert console.get("/review/decide").status_code == 405


# --------------------------------------------------------------------------- what pages show


def test_headers_forbid_framing_scripts_and_caching(console):
    sign_in(console)
    for path in ["/login", *PAGES]:
        answer = console.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script" not in answer.text.lower() and " style=" not in answer.text  # nothing inline
    css = console.get("/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_untrusted_values_are_escaped(console):
    add_run(console.ledger, SCRIPT, [line("amount", SCRIPT, extraction=SCRIPT)])
    console.ledger.propose(ProposalRow("hs", "deals", "D1", "description", SCRIPT, None, SCRIPT, SCRIPT))
    console.ledger.add_dead_letter(SCRIPT, reason="retries_exhausted", error=SCRIPT, trigger="poll", attempts=1)
    sign_in(console)
    for path in PAGES:
        html = console.get(path).text
        assert "<script" not in html.lower(), path
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in console.get("/recording?id=" + SCRIPT).text
    assert "&lt;script&gt;" in console.get("/review").text and "&lt;script&gt;" in console.get("/dead-letters").text


def test_no_page_shows_a_secret(console):
    leaky = f"HubSpot said: 401 for token {HUBSPOT_TOKEN} (console {TOKEN})"
    add_run(console.ledger, "rec-1", [line("amount", 5, Outcome.FAILED, leaky)])
    console.ledger.add_dead_letter("rec-1", reason="auth", error=leaky, trigger="poll", attempts=1)
    console.ledger.propose(ProposalRow("hs", "deals", "D1", "description", leaky, None, "rec-1"))
    sign_in(console)
    for path in PAGES:
        html = console.get(path).text
        assert HUBSPOT_TOKEN not in html and TOKEN not in html, path
    assert "token ***" in console.get("/recording?id=rec-1").text


def test_runs_are_paged_newest_first_with_their_outcomes(console):
    ids = [add_run(console.ledger, f"rec-{i}", [line("amount", i), line("dealstage", "x", Outcome.UNCHANGED)])
           for i in range(60)]
    sign_in(console)
    first = console.get("/runs").text
    shown = [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", first)]
    assert shown == ids[::-1][:50]
    assert "1 written" in first and "1 unchanged" in first
    older = re.search(r'href="/runs\?before=(\d+)"', first).group(1)
    second = console.get(f"/runs?before={older}").text
    assert [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", second)] == ids[::-1][50:]
    assert "before=" not in second.split("Newest")[1]  # the last page links to no older one
    assert console.get("/runs?before=abc").status_code == 400


def test_find_goes_to_a_recording_or_a_record(console):
    sign_in(console)
    to_recording = console.get("/find?q=rec 1", follow_redirects=False)
    assert to_recording.headers["location"] == "/recording?id=rec+1"
    to_record = console.get("/find?q=eu:hs:deals:D1", follow_redirects=False)
    assert to_record.headers["location"] == "/record?connection=eu%3Ahs&object=deals&id=D1"


def test_approve_and_reject_from_the_review_page(console):
    deal = console.hubspot.named["deal_acme"]
    _, approve_id = console.ledger.propose(ProposalRow("hs", "deals", deal, "amount", 18750, 12500, "rec-r"))
    _, reject_id = console.ledger.propose(ProposalRow("hs", "deals", deal, "description", "Notes", None, "rec-r"))
    csrf = sign_in(console)

    approved = console.post("/review/decide", data={"csrf": csrf, "proposal_id": approve_id, "decision": "approve"})
    assert approved.status_code == 200 and f"Approved proposal {approve_id}" in approved.text
    assert str(console.hubspot.get_record("deals", deal)["amount"]) == "18750"
    rejected = console.post("/review/decide", data={"csrf": csrf, "proposal_id": reject_id, "decision": "reject"})
    assert f"Rejected proposal {reject_id}" in rejected.text and "No proposal waits for review." in rejected.text
    again = console.post("/review/decide", data={"csrf": csrf, "proposal_id": reject_id, "decision": "approve"})
    assert again.status_code == 409 and f"not pending: {reject_id} (rejected)" in again.text
    assert console.ledger.runs("rec-r")[0].trigger == "review"


def test_a_recordings_summary_note_shows_on_its_page_and_in_the_run_list(console):
    sign_in(console)
    run_id = add_run(console.ledger, "rec-note", [line("amount", "42000")])
    console.ledger.record_notes(run_id, "rec-note", [NoteReport("hs", "notes", "9001", (("deals", "D1"),),
                                                                NoteOutcome.CREATED)])

    page = console.get("/recording", params={"id": "rec-note"}).text
    runs = console.get("/runs").text

    assert re.search(r"summary note\s*<span class=\"outcome o-created\">created</span>\s*notes 9001\s*on deals D1",
                     page)
    assert '<span class="count o-created">created</span>' in runs
