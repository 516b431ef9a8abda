"""``writeback demo`` as a new user runs it: a subprocess, after the README's next step too.

The demo must read nothing of the user's setup (a ``config/writeback.toml``
whose ``${SALESFORCE_ACCESS_TOKEN}`` is unset, ``WRITEBACK_*`` and ``SIRO_*``
variables pointing at nothing), say what it waits for on stderr, print tables
that fit 80 and 120 columns without splitting a CRM id or cutting a reason,
and delete its ledger unless ``--keep`` keeps it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from tests.fixtures.cli import run

pytestmark = pytest.mark.e2e  # every test runs `writeback demo` as a subprocess

NOT_LISTENING = "127.0.0.1:9"  # the discard port: nothing answers there

USER_CONFIG = """
[[connections]]
integration_connection_id = "*"
connector = "salesforce"
instance_url = "https://acme.my.salesforce.com"
access_token = "${SALESFORCE_ACCESS_TOKEN}"
"""


def run_demo(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run("demo", *args, env=env, cwd=cwd, timeout=120)


def plain_env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **extra}


@pytest.fixture
def user_setup(tmp_path) -> tuple[Path, dict[str, str]]:
    """A folder after the README's "Running it against your CRM" step, and a shell whose
    WRITEBACK_* and SIRO_* variables would break the demo if it read any of them. The
    temporary folder is the test's own, to see what the demo leaves there."""
    home = tmp_path / "project"
    (home / "config").mkdir(parents=True)
    (home / "config" / "writeback.toml").write_text(USER_CONFIG)
    broken = home / "elsewhere.toml"
    broken.write_text("this is [not TOML\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = plain_env(
        home,
        TMPDIR=str(scratch),
        WRITEBACK_CONFIG=str(broken),
        WRITEBACK_BROKER_URL=f"redis://{NOT_LISTENING}/0",
        WRITEBACK_REDIS_URL=f"redis://{NOT_LISTENING}/1",
        WRITEBACK_DATABASE_URL=f"postgresql://nobody:nothing@{NOT_LISTENING}/ledger",
        WRITEBACK_WEBHOOK_SECRET="the-users-secret",
        SIRO_API_URL=f"http://{NOT_LISTENING}",
        SIRO_API_TOKEN="siro-token-of-the-user",
    )
    return home, env


@pytest.fixture(scope="module")
def demo_json(tmp_path_factory) -> list[dict]:
    """The reports of one ``writeback demo --json`` run (the ids and reasons every output shows)."""
    home = tmp_path_factory.mktemp("demo-json")
    result = run_demo("--json", cwd=home, env=plain_env(home))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_demo_runs_without_credentials(tmp_path):
    env = plain_env(tmp_path)

    result = run_demo(cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert "written" in result.stdout
    # The deployed path: webhooks in (one repeated, one forged), the worker, then a poll pass.
    assert result.stdout.count("HTTP 202 enqueued") == 4
    assert "the same event again: HTTP 200 duplicate; a wrong secret: HTTP 401" in result.stdout
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("poll pass"))
    audit = next(i for i, line in enumerate(lines) if line.startswith("writeback history"))
    poll_pass = lines[start:audit]
    assert poll_pass[0].endswith(", 0 CRM write requests, 0 for notes")
    assert " written" not in " ".join(poll_pass)
    # The summaries: one note per linked recording, shown as the CRM holds it, none added by the poll.
    notes = [line for line in lines if line.startswith("note ")]
    assert [line.split()[1] for line in notes] == ["created", "created"]
    flowing = " ".join(result.stdout.split())  # wrapped lines joined
    assert "· salesforce-demo (not attached to Contact" in flowing  # the contact deleted in Salesforce
    assert re.search(r"4 Siro requests, \d+ CRM write requests, 2 for the summary notes", result.stdout)
    assert "the summary note in Salesforce: ContentNote 069" in result.stdout
    assert "Soft decking near the chimney & two layers of shingles to strip." in flowing
    # It ends with what an operator audits with: the recording's runs, and what a revert would put back.
    audited = " ".join(" ".join(lines[audit:]).split())  # wrapped lines joined
    assert re.search(r"run \d+ · poll · [^·]+ · partial: [^·]*9 unchanged[^·]* run \d+ · webhook · [^·]+ · "
                     r"partial: [^·]*7 written", audited)
    assert "writeback revert rec_demo_salesforce --dry-run" in audited
    assert audited.count("planned") == 7 and "reverted" not in audited
    assert re.search(r"\d+ CRM read requests, 0 writes", audited)
    assert "Traceback" not in result.stderr


def test_the_demo_reads_nothing_of_the_users_setup(user_setup):
    home, env = user_setup

    result = run_demo(cwd=home, env=env)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "SALESFORCE_ACCESS_TOKEN" not in result.stderr
    assert result.stdout.count("HTTP 202 enqueued") == 4
    webhooks = result.stdout[result.stdout.index("webhooks:"):result.stdout.index("poll pass")]
    assert "17 written" in webhooks
    assert "  ledger     temporary, deleted on exit; --keep keeps it" in result.stdout
    # Progress on stderr, a line a step (stderr is not a terminal here).
    assert "writeback demo: starting the simulators" in result.stderr
    assert "writeback demo: stopping the embedded worker" in result.stderr
    # The temporary ledger (and every other temporary file) is gone.
    assert list(Path(env["TMPDIR"]).iterdir()) == []
    assert not (home / "writeback.db").exists()


@pytest.mark.parametrize("columns", [80, 120])
def test_the_tables_fit_the_terminal_whole(user_setup, demo_json, columns):
    home, env = user_setup

    result = run_demo(cwd=home, env=dict(env, COLUMNS=str(columns)))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in result.stdout
    fields = [field for report in demo_json for field in report["fields"]]
    record_ids = {field["recordId"] for field in fields if field["recordId"]}
    assert len(record_ids) >= 8
    for record_id in record_ids:  # never split: whole on one line
        assert any(record_id in line for line in lines), record_id
    words = set(re.sub(r"[│┃]", " ", result.stdout).split())
    for field in fields:  # every field name on one line; every reason and extraction whole, however it wraps
        assert any(field["field"] in line for line in lines), field["field"]
        for text in (field["reason"], field["extraction"]):
            assert set((text or "").split()) <= words, text


def test_json_is_one_report_a_line_with_the_full_reasons(demo_json):
    assert [report["recordingId"] for report in demo_json] == [
        "rec_demo_salesforce", "rec_demo_hubspot", "rec_demo_not_linked", "rec_demo_deleted"]
    reasons = [field["reason"] for report in demo_json for field in report["fields"] if field["reason"]]
    assert max(len(reason) for reason in reasons) > 70  # the old table cut reasons there
    assert not any("…" in reason for reason in reasons)
    assert any(reason.startswith("NOT_FOUND") and reason.endswith("(deleted or never existed)")
               for reason in reasons)
    assert all(field["extraction"] for report in demo_json for field in report["fields"])


def test_keep_leaves_a_readable_ledger_at_the_printed_path(user_setup):
    home, env = user_setup

    result = run_demo("--keep", cwd=home, env=env)

    assert result.returncode == 0, result.stderr
    kept = re.search(r"^ledger: (\d+) field outcomes in (\d+) runs, kept at (\S+)$", result.stdout, re.MULTILINE)
    assert kept, result.stdout
    outcomes, runs, path = int(kept[1]), int(kept[2]), Path(kept[3])
    assert path.parent == Path(env["TMPDIR"]) and path.is_file()
    assert f"WRITEBACK_DATABASE_URL=sqlite:///{path}" in result.stdout
    assert [entry.name for entry in Path(env["TMPDIR"]).iterdir()] == [path.name]  # closed, nothing else left
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("select count(*) from attempts").fetchone()[0] == outcomes == 70
        assert db.execute("select count(*) from runs").fetchone()[0] == runs == 8
        written = db.execute("select count(*) from attempts where outcome = 'written'").fetchone()[0]
    assert written == 17


def test_keep_at_a_path(user_setup, tmp_path):
    home, env = user_setup
    path = tmp_path / "demo-ledger.db"

    result = run_demo("--keep", str(path), "--json", cwd=home, env=env)

    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["recordingId"] for line in result.stdout.splitlines()][0] == "rec_demo_salesforce"
    assert f"kept at {path}" in result.stderr  # with --json, stdout is the reports alone
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("select count(*) from attempts").fetchone()[0] == 70

    again = run_demo("--keep", str(path), cwd=home, env=env)  # never mixed into an earlier ledger

    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr


def test_demo_json_carries_each_recordings_note(demo_json):
    notes = {report["recordingId"]: report["notes"] for report in demo_json}

    assert [note["outcome"] for note in notes["rec_demo_salesforce"]] == ["created"]
    assert notes["rec_demo_salesforce"][0]["object"] == "ContentNote"
    assert notes["rec_demo_salesforce"][0]["noteId"].startswith("069")
    assert {target["object"] for target in notes["rec_demo_hubspot"][0]["attachedTo"]} == {
        "deals", "companies", "contacts"}
    assert notes["rec_demo_not_linked"] == notes["rec_demo_deleted"] == []
