"""The one redaction filter of ``worker.logs``: messages and tracebacks alike, wherever it is installed.

The exceptions here are raised by third-party code (httpx, the standard
library) with a secret in their text, as a client library raises them with
a token in a URL; the log line and its traceback must not carry it, as the
CLI installs the filter and as the Celery worker does.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import sys
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest
from celery.signals import after_setup_logger, after_setup_task_logger
from celery.utils.log import ColorFormatter
from pydantic import SecretStr

from worker.logs import MASK, RedactingFilter, install_redaction, redaction_for
from worker.runtime import Runtime, use_runtime
from worker.service import tasks
from worker.settings import Settings, parse_config

TOKEN = "siro-tok-5b1f0c9e2d7a4e11"
WEBHOOK_SECRET = "whsec|9f2 c^7d41e0b"  # characters a URL escapes: httpx writes "whsec|9f2%20c^7d41e0b"
CRM_TOKEN = "pat-na1-0c6b8e3f-crm"


def spellings(secret: str) -> list[str]:
    """Every way the secret may show: as is, percent-encoded wholly, and as httpx writes it in a URL."""
    in_url = str(httpx.URL(f"https://x.example/?s={secret}")).split("?s=", 1)[1]
    return [secret, urllib.parse.quote(secret, safe=""), in_url]


def assert_clean(text: str) -> None:
    for secret in (TOKEN, WEBHOOK_SECRET, CRM_TOKEN):
        for spelling in spellings(secret):
            assert spelling not in text, f"{spelling!r} leaked"


@pytest.fixture
def settings(tmp_path) -> Settings:  # noqa: ANN001
    config = parse_config({"connections": [{"connector": "hubspot", "access_token": CRM_TOKEN}]}, env={})
    return Settings(siro_api_token=SecretStr(TOKEN), webhook_secret=SecretStr(WEBHOOK_SECRET), config=config,
                    database_url=f"sqlite:///{tmp_path}/ledger.db", broker_url="memory://")


def fail_like_a_client_library() -> None:
    """httpx raising for a URL that carries the tokens (the text of its exception quotes the URL)."""
    url = f"https://api.example.com/v1/recordings?token={TOKEN}&hook={WEBHOOK_SECRET}&crm={CRM_TOKEN}"
    httpx.Response(401, request=httpx.Request("GET", url)).raise_for_status()


def fail_in_the_standard_library() -> None:
    try:
        ipaddress.ip_address(WEBHOOK_SECRET)
    except ValueError as exc:
        raise RuntimeError(f"could not reach the broker with {CRM_TOKEN}") from exc


def log_failures(log: logging.Logger) -> None:
    for fail in (fail_like_a_client_library, fail_in_the_standard_library):
        try:
            fail()
        except Exception as exc:
            log.exception("call failed: %s", exc)
            log.error(f"call failed again: {exc!r}", exc_info=True)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.limits.redaction")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_as_the_cli_installs_it(settings: Settings) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        installed = install_redaction(settings)
        assert installed in handler.filters
        log_failures(logging.getLogger("worker.cli.test"))
    finally:
        root.removeHandler(handler)
    output = stream.getvalue()
    assert_clean(output)
    assert "HTTPStatusError: Client error '401 Unauthorized' for url" in output  # the traceback is there
    assert "ValueError" in output and "does not appear to be an IPv4 or IPv6 address" in output
    assert "call failed: Client error" in output and MASK in output


@pytest.mark.parametrize("signal", [after_setup_logger, after_setup_task_logger], ids=["worker", "task"])
def test_as_the_celery_worker_installs_it(settings: Settings, captured, signal) -> None:  # noqa: ANN001
    logger, stream, handler = captured
    handler.setFormatter(ColorFormatter("[%(levelname)s/%(processName)s] %(message)s", use_color=False))
    rt = Runtime(settings)
    use_runtime(rt)
    try:
        # What Celery sends once it has set up the worker's (or the task) logger.
        answers = signal.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None, format="",
                              colorize=False)
    finally:
        use_runtime(None)
        rt.close()
    assert tasks._redact_logs in [receiver for receiver, _ in answers]
    assert [f for f in handler.filters if isinstance(f, RedactingFilter)]
    log_failures(logger)
    output = stream.getvalue()
    assert_clean(output)
    assert "Traceback (most recent call last)" in output and "raise_for_status" in output
    assert "The above exception was the direct cause" in output


def test_the_webhook_uses_the_one_filter_with_the_settings_secrets(settings: Settings) -> None:
    from worker.service.dedupe import Dedupe
    from worker.service.webhook import create_app

    redaction_for(settings)  # what the CLI's install_redaction does before it serves the webhook
    app = create_app(secret="another-webhook-secret", enqueue=lambda rid: "task", dedupe=Dedupe())
    redactor = app.state.redactor
    assert isinstance(redactor, RedactingFilter)
    text = f"GET /webhooks/siro/guess?x={TOKEN} another-webhook-secret {CRM_TOKEN}"
    assert redactor.redact(text) == f"GET /webhooks/siro/{MASK}?x={MASK} {MASK} {MASK}"


def test_args_stay_a_tuple_and_only_secret_ones_change() -> None:
    redactor = RedactingFilter([TOKEN])
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "POST", f"/webhooks/siro/x?t={TOKEN}", "1.1", 202), None, None)
    assert redactor.filter(record)
    assert record.args == ("127.0.0.1:5000", "POST", f"/webhooks/siro/{MASK}?t={MASK}", "1.1", 202)


def test_a_secret_only_the_formatted_message_shows_is_masked() -> None:
    class Holder:
        def __str__(self) -> str:
            return "holder"

        def __repr__(self) -> str:
            return f"Holder(token={TOKEN!r})"

    redactor = RedactingFilter([TOKEN])
    half = len(TOKEN) // 2
    for msg, args in (("%r", (Holder(),)), ("%s%s", (TOKEN[:half], TOKEN[half:]))):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)
        redactor.filter(record)
        assert TOKEN not in record.getMessage() and MASK in record.getMessage()


def test_dict_args_non_string_messages_and_stack_info() -> None:
    redactor = RedactingFilter([TOKEN])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%(url)s", ({"url": f"https://a/?t={TOKEN}"},), None)
    redactor.filter(record)
    assert record.getMessage() == f"https://a/?t={MASK}"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, ValueError(TOKEN), None, None, sinfo=f"at {TOKEN}")
    redactor.filter(record)
    assert record.getMessage() == MASK and record.stack_info == f"at {MASK}"


def test_a_traceback_already_formatted_is_masked_too() -> None:
    try:
        raise RuntimeError(TOKEN)
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    logging.Formatter().format(record)  # another handler formatted it first: exc_text is cached
    assert TOKEN in record.exc_text
    RedactingFilter([TOKEN]).filter(record)
    assert TOKEN not in logging.Formatter().format(record)


def test_short_and_empty_strings_are_not_secrets() -> None:
    redactor = RedactingFilter(["", "abc", "abcd"])
    assert redactor.redact("abc abcd") == f"abc {MASK}"
