"""``WRITEBACK_LOG_FORMAT=json`` (``worker.logs.JsonFormatter``): one JSON object a line, the work's
ids where known, and no secret in the message or the traceback, even when a third-party exception
quotes a token and no redaction filter sits on the handler.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from worker.logs import MASK, JsonFormatter, log_context, redaction_for, use_log_format
from worker.settings import Settings, parse_config

TOKEN = "siro-tok-5b1f0c9e2d7a4e11"
CRM_TOKEN = "pat-na1-0c6b8e3f-crm"
WEBHOOK_SECRET = "whsec-json-0123456789abcdef"


@pytest.fixture
def logged(tmp_path) -> Iterator[tuple[logging.Logger, io.StringIO]]:  # noqa: ANN001
    config = parse_config({"connections": [{"connector": "hubspot", "access_token": CRM_TOKEN}]}, env={})
    settings = Settings(siro_api_token=SecretStr(TOKEN), webhook_secret=SecretStr(WEBHOOK_SECRET), config=config,
                        database_url=f"sqlite:///{tmp_path}/ledger.db", broker_url="memory://")
    redaction_for(settings)  # the process's secrets, as the CLI and the worker register them
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    assert use_log_format([handler], env={"WRITEBACK_LOG_FORMAT": "json"})
    logger = logging.getLogger("tests.log_format")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        redaction_for(None)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(text) for text in stream.getvalue().splitlines()]


def test_a_third_party_exception_carrying_tokens_leaves_no_token_in_the_json_line(logged) -> None:  # noqa: ANN001
    logger, stream = logged
    url = f"https://api.example.com/v1/recordings?token={TOKEN}&crm={CRM_TOKEN}"
    try:
        httpx.Response(401, request=httpx.Request("GET", url, headers={"Authorization": f"Bearer {TOKEN}"})
                       ).raise_for_status()
    except httpx.HTTPStatusError as exc:
        logger.exception("Siro call failed: %s", exc)

    text = stream.getvalue()
    for secret in (TOKEN, CRM_TOKEN):
        assert secret not in text
    (entry,) = lines(stream)
    assert entry["level"] == "ERROR" and entry["logger"] == "tests.log_format"
    assert entry["message"].startswith("Siro call failed: Client error '401 Unauthorized'") and MASK in entry["message"]
    assert "httpx.HTTPStatusError" in entry["exc_info"] and MASK in entry["exc_info"]
    assert entry["time"].endswith("Z")


def test_the_webhook_secret_path_and_a_secret_in_a_nested_exception_are_masked(logged) -> None:  # noqa: ANN001
    logger, stream = logged
    try:
        try:
            raise ValueError(f"POST /webhooks/siro/{WEBHOOK_SECRET} refused")
        except ValueError as inner:
            raise RuntimeError(f"broker said no to {CRM_TOKEN}") from inner
    except RuntimeError:
        logger.error("enqueue failed", exc_info=True, stack_info=True)
    text = stream.getvalue()
    assert WEBHOOK_SECRET not in text and CRM_TOKEN not in text
    (entry,) = lines(stream)
    assert "/webhooks/siro/***" in entry["exc_info"] and "stack_info" in entry


def test_lines_name_the_recording_task_and_connection_where_known(logged) -> None:  # noqa: ANN001
    logger, stream = logged
    logger.info("outside")
    with log_context(recording_id="rec-1", task_id="t-1"):
        logger.info("inside")
        logger.info("written", extra={"connection": "hs"})
        with log_context(connection="sf"):
            logger.info("nested")
    first, inside, written, nested = lines(stream)
    assert not {"recording_id", "task_id", "connection"} & set(first)
    assert (inside["recording_id"], inside["task_id"], "connection" in inside) == ("rec-1", "t-1", False)
    assert written["connection"] == "hs"
    assert (nested["recording_id"], nested["connection"]) == ("rec-1", "sf")


def test_text_stays_the_default_format() -> None:
    handler = logging.StreamHandler(io.StringIO())
    assert not use_log_format([handler], env={})
    assert not use_log_format([handler], env={"WRITEBACK_LOG_FORMAT": "text"})
    assert not isinstance(handler.formatter, JsonFormatter)
    assert use_log_format([handler], env={"WRITEBACK_LOG_FORMAT": "JSON"})
    assert isinstance(handler.formatter, JsonFormatter)
