"""What the tasks do with failures our code never sees raised (no broker needed).

The hard time limit kills the pool process and Celery acknowledges the
message; an unexpected error fails the task. Either way its recordings must
not be lost: they go on the dead-letter list, where ``writeback retry``
finds them.
"""

from __future__ import annotations

from celery.exceptions import TimeLimitExceeded

from worker.ledger import Ledger
from worker.runtime import Runtime, use_runtime
from worker.service.tasks import process_page, process_recording
from worker.settings import Settings


def test_a_task_killed_by_its_hard_time_limit_goes_on_the_dead_letter_list(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    rt = Runtime(Settings(database_url=url, broker_url="memory://"))
    use_runtime(rt)
    try:
        process_recording.on_failure(TimeLimitExceeded(45), "task-1", ["rec-slow"], {"trigger": "webhook"}, None)
        process_page.on_failure(RuntimeError("a bug"), "task-2", [],
                                {"recordings": [{"id": "rec-a"}, {"id": "rec-b"}], "trigger": "poll"}, None)
        process_page.on_failure(RuntimeError("a bug"), "task-3", [], {"recording_ids": ["rec-c"]}, None)
    finally:
        use_runtime(None)
        rt.close()
    with Ledger.open(url) as ledger:
        letters = {row.recording_id: (row.reason, row.trigger) for row in ledger.dead_letters()}
        error = ledger.dead_letter("rec-slow").error
    assert letters == {
        "rec-slow": ("time_limit", "webhook"),
        "rec-a": ("task_failed", "poll"),
        "rec-b": ("task_failed", "poll"),
        "rec-c": ("task_failed", "unknown"),
    }
    assert "TimeLimitExceeded" in error


def test_a_request_siro_will_never_accept_goes_on_the_dead_letter_list(tmp_path, siro_server, hubspot_url):
    from pydantic import SecretStr

    from simulators.hubspot import DEFAULT_TOKEN
    from worker.settings import parse_config

    url = f"sqlite:///{tmp_path}/ledger.db"
    config = parse_config({"connections": [{"connector": "hubspot", "api_url": hubspot_url,
                                            "access_token": DEFAULT_TOKEN}]}, env={})
    rt = Runtime(Settings(siro_api_url=siro_server.url, siro_api_token=SecretStr(siro_server.token),
                          database_url=url, broker_url="memory://", config=config))
    siro_server.state.fail_next(400, body={"error": "bad_request", "message": "recording id is malformed"})
    use_runtime(rt)
    try:
        # Run in this process (no broker): the task's own code, its retry and failure handling.
        result = process_recording.apply(args=["rec-bad"], kwargs={"trigger": "webhook"})
    finally:
        use_runtime(None)
        rt.close()

    assert result.result == {"recordingId": "rec-bad", "status": "failed", "reason": "siro_error"}
    with Ledger.open(url) as ledger:
        letter = ledger.dead_letter("rec-bad")
    assert (letter.reason, letter.attempts) == ("siro_error", 1)
    assert "400" in letter.error
