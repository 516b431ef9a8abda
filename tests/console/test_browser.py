"""The console in a real browser (Chromium through Playwright), on a ledger a real worker filled.

The deployed pieces as compose runs them: ``celery -A worker worker`` and
``writeback webhook`` on a private Redis, the Siro and HubSpot simulators,
then ``writeback console``. An operator signs in, sees the worker's runs,
approves a proposal, reverts a recording (dry run first), retries a dead
letter; what they would check is checked: the page, and the CRM's values.
The pages' screenshots go to docs/console/ for the README when
``WRITEBACK_SCREENSHOTS=docs/console`` is set (else to a temporary folder).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from simulators.siro import SiroState
from tests.fixtures.browser import CONSOLE_TOKEN, screenshot, start_console
from tests.fixtures.processes import wait_for
from tests.fixtures.service import CONNECTION_ID, World, post

X = SiroState.extraction


def stage_recording(world: World, recording_id: str, stage: str) -> str:
    """A deal at stage ``appointmentscheduled`` and a recording linked to it that sets only its stage."""
    deal = world.hubspot.add_record("deals", {"dealname": f"Deal of {recording_id}", "amount": "1000",
                                              "pipeline": "default", "dealstage": "appointmentscheduled"})
    world.siro.add_recording(recording_id, entity_extractions=[X("Stage", stage, ("Deal", "dealstage"))])
    world.siro.link(recording_id, integration_connection_id=CONNECTION_ID, opportunity=deal)
    return deal


def deal(world: World, deal_id: str) -> dict[str, Any]:
    return world.hubspot.get_record("deals", deal_id)


def filled_by_a_worker(world: World) -> dict[str, str]:
    """A dead letter (HubSpot down), a proposal waiting (amount under review), a written stage."""
    processes = world.processes
    processes.start_worker()
    webhook = processes.start_webhook()
    deals = {"dead": stage_recording(world, "rec-dead", "Contract Sent")}
    world.hubspot.fail_next(503, times=1000, path_contains="batch/update")
    assert post(webhook, world.siro.webhook_payload("rec-dead")).status_code == 202
    wait_for(lambda: world.ledger.dead_letters(), 60, "rec-dead never reached the dead-letter list")
    world.hubspot.clear_faults()

    deals["review"] = world.deal_recording("rec-review", 42000)
    deals["revert"] = stage_recording(world, "rec-revert", "Closed Won")
    for recording_id in ("rec-review", "rec-revert"):
        assert post(webhook, world.siro.webhook_payload(recording_id)).status_code == 202
    world.wait_for_runs(["rec-review", "rec-revert"])
    assert world.outcomes("rec-review") == {"amount": "pending_review", "dealstage": "written"}
    assert deal(world, deals["revert"])["dealstage"] == "closedwon"
    return deals


def test_an_operator_session_in_the_browser(world_factory, browser_page) -> None:
    world = world_factory(connection={"fields": {"policy": {"deals.amount": "review"}}},
                          retry={"max_retries": 1, "base_s": 0.1, "max_s": 0.3})
    refused = world.processes.cli("console", "--port", "1")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "writeback: WRITEBACK_CONSOLE_TOKEN is not set (nor WRITEBACK_CONSOLE_TOKEN_FILE): "
        "the console does not start without a token"]
    deals = filled_by_a_worker(world)
    url = start_console(world.processes)
    page = browser_page

    # Sign in: a wrong token is refused, with no hint.
    page.goto(f"{url}/runs")
    assert page.url == f"{url}/login"
    page.fill("#token", CONSOLE_TOKEN[:-1] + "x")
    page.click("form.login button")
    assert page.locator(".error").inner_text() == "Login refused."
    assert page.url == f"{url}/login" and page.context.cookies() == []
    page.fill("#token", CONSOLE_TOKEN)
    page.click("form.login button")
    assert page.url == f"{url}/runs"
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and CONSOLE_TOKEN not in cookie["value"]

    # The worker's runs, newest first.
    rows = page.locator("table.runs tbody tr")
    assert rows.count() >= 3
    assert "rec-revert" in rows.nth(0).inner_text() or "rec-review" in rows.nth(0).inner_text()
    review_row = page.locator("table.runs tbody tr", has_text="rec-review")
    assert "webhook" in review_row.inner_text() and "1 pending_review" in review_row.inner_text()
    assert "1 written" in review_row.inner_text()
    screenshot(page, "runs.png")

    # One recording's history.
    page.click("text=rec-review")
    assert page.locator("h1").inner_text() == "Recording rec-review"
    assert "pending_review" in page.inner_text("main") and "contractsent" in page.inner_text("main")
    screenshot(page, "recording.png")
    page.click(f"text=deals {deals['review']}")  # the CRM record's history
    assert page.locator("h1").inner_text() == f"deals {deals['review']}"
    assert page.locator("table.fields tbody tr").count() == 2
    screenshot(page, "record.png")

    # Review: approve, and the CRM holds the value.
    page.click("nav >> text=Review")
    proposal = page.locator("table.fields tbody tr", has_text="rec-review")
    assert "42000" in proposal.inner_text() and "1000" in proposal.inner_text()
    screenshot(page, "review.png")
    assert deal(world, deals["review"])["amount"] == "1000"
    proposal.locator("button", has_text="Approve").click()
    assert "Approved proposal" in page.locator(".notice").inner_text()
    assert "written" in page.locator("section.result").inner_text()
    assert "No proposal waits for review." in page.inner_text("main")
    assert deal(world, deals["review"])["amount"] == "42000"

    # Revert: the dry run first (nothing sent), then the confirmed revert.
    page.goto(f"{url}/recording?id=rec-revert")
    page.click("text=Revert…")
    main = page.inner_text("main")
    assert "Dry run" in main and "planned" in main and "appointmentscheduled" in main
    screenshot(page, "revert.png")
    assert deal(world, deals["revert"])["dealstage"] == "closedwon"
    page.click("text=Confirm revert")
    assert "reverted" in page.locator("table.fields").inner_text()
    assert deal(world, deals["revert"])["dealstage"] == "appointmentscheduled"
    assert world.ledger.runs("rec-revert")[0].trigger == "revert"

    # Dead letters: retry, the recording leaves the list and the worker writes it.
    page.click("nav >> text=Dead letters")
    letter = page.locator("table.letters tbody tr", has_text="rec-dead")
    assert "retries_exhausted" in letter.inner_text()
    screenshot(page, "dead-letters.png")
    letter.locator("button", has_text="Retry").click()
    assert re.search(r"rec-dead: enqueued for the workers \(task [\w-]+\)", page.locator(".notice").inner_text())
    assert page.locator("table.letters tbody tr", has_text="rec-dead").count() == 0
    wait_for(lambda: deal(world, deals["dead"])["dealstage"] == "contractsent", 60, "the retry was not written")
    assert world.ledger.dead_letters() == [] and world.ledger.runs("rec-dead")[0].trigger == "retry"
    page.reload()
    assert "The dead-letter list is empty." in page.inner_text("main")

    # An action without the CSRF token (or with a wrong one) is refused, though signed in.
    for form in ({"recording_id": "rec-review"}, {"recording_id": "rec-review", "csrf": "forged"}):
        answer = page.context.request.post(f"{url}/revert", form=form)
        assert answer.status == 403 and "CSRF token is missing or wrong" in answer.text()
    assert world.ledger.runs("rec-review")[0].trigger == "review"  # no revert ran
    assert httpx.get(f"{url}/runs", follow_redirects=False).status_code == 303  # no cookie, no page

    # Sign out: the session is over.
    page.click("text=Sign out")
    assert page.url == f"{url}/login"
    page.goto(f"{url}/review")
    assert page.url == f"{url}/login"
