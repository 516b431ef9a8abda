"""Keeps secrets out of logs: one redaction filter for every process, messages and tracebacks alike.

Our own code never logs a secret, but third-party libraries may log URLs,
headers or bodies at DEBUG, and their exceptions may quote a URL holding a
token: the traceback of a ``log.exception`` then carries it. ``RedactingFilter``
masks, in each record:

* every known secret: the Siro token, the webhook secret, each connection's
  secret-looking option values (``worker.settings.looks_secret``), whether
  written plainly or percent-encoded (as a URL holds it, wholly or in part);
* the ``/webhooks/siro/<secret>`` path segment, always: a wrong guess at the
  secret is someone's secret too;

in the message, in the args one by one (uvicorn's access formatter unpacks
``record.args``, so they must stay a tuple), in the formatted traceback
(``exc_text``, formatted here when the record has ``exc_info`` but no text
yet: formatters use ``exc_text`` when it is set) and in ``stack_info``.

Where it is installed: ``install_redaction(settings)`` on the root handlers
(the CLI), ``worker.service.tasks`` on the Celery worker's handlers (its
``after_setup_logger`` hook), and ``worker.service.webhook.serve`` on
uvicorn's loggers. The settings given to ``redaction_for`` become the
process's: a filter made later from a secret alone (the webhook app's) masks
the settings' secrets too.

Formats: text by default; ``WRITEBACK_LOG_FORMAT=json`` gives one JSON object
a line (``JsonFormatter``: ``time``, ``level``, ``logger``, ``process``, ``message``, and
``recording_id``, ``task_id``, ``connection`` where known, ``exc_info`` for a
traceback), put on a process's handlers by ``use_log_format`` (the CLI, the
Celery worker and beat through ``worker.service.observe``, the webhook app in
``worker.service.webhook.server_config``). The formatter masks the process's
secrets in the message and the traceback itself, so a JSON line is clean even
on a handler without the filter. What is "known" comes from ``log_context``
(a task binds its task and recording ids, ``worker.service.observe``), from
a record's ``extra`` of the same names, and from Celery's current task.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from worker.settings import looks_secret

__all__ = ["CONTEXT_KEYS", "LOG_FORMAT_ENV", "MASK", "JsonFormatter", "RedactingFilter", "bind_log_context",
           "install", "install_redaction", "json_logs", "log_context", "redaction_for", "secrets_of",
           "unbind_log_context", "use_log_format"]

MASK = "***"
_MIN_LENGTH = 4  # shorter strings would mask ordinary words
_SECRET_PATH = re.compile(r"(/webhooks/siro/)[^\s?#\"']+")
# Characters a URL never needs to escape: they appear as themselves.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# The secrets of the settings this process runs with (the last given to redaction_for).
_process_secrets: tuple[str, ...] = ()


def _spelling(secret: str) -> str:
    """A pattern for ``secret`` as written, or percent-encoded in whole or in part (``%7C`` or ``|``)."""
    parts = []
    for char in secret:
        if char in _UNRESERVED:
            parts.append(re.escape(char))
            continue
        encoded = "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        options = [re.escape(char), "(?i:" + re.escape(encoded) + ")"] + (["\\+"] if char == " " else [])
        parts.append("(?:" + "|".join(options) + ")")
    return "".join(parts)


class RedactingFilter(logging.Filter):
    """Masks ``secrets`` (and the webhook's secret path) in every record it sees; see the module docstring."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: frozenset[str] = frozenset(s for s in secrets if s and len(s) >= _MIN_LENGTH)
        # Longest first: a secret containing another is masked whole.
        spellings = [_spelling(s) for s in sorted(self.secrets, key=len, reverse=True)]
        self._pattern = re.compile("|".join(spellings)) if spellings else None

    def redact(self, text: str) -> str:
        """``text`` with every secret and the webhook's secret path masked."""
        text = _SECRET_PATH.sub(r"\1" + MASK, text)
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def filter(self, record: logging.LogRecord) -> bool:
        self._redact_message(record)
        self._redact_traceback(record)
        return True

    def _redact_value(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        text = value if isinstance(value, str) else str(value)
        cleaned = self.redact(text)
        return value if cleaned == text else cleaned

    def _redact_message(self, record: logging.LogRecord) -> None:
        record.msg = self._redact_value(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact_value(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: self._redact_value(arg) for key, arg in record.args.items()}
        if not record.args:
            return
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself
            return
        cleaned = self.redact(message)
        if cleaned != message:
            # A secret only the formatted message shows (split across args, or in an arg's repr):
            # give up the args rather than the secret.
            record.msg, record.args = cleaned, None

    def _redact_traceback(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)


def secrets_of(settings) -> list[str]:  # noqa: ANN001 - avoids an import cycle with settings
    """The settings' secrets: the Siro token, the webhook secret, the passwords of the database,
    broker and Redis URLs, and each connection's secret-looking options."""
    found: list[str] = []
    for value in (settings.siro_api_token, settings.webhook_secret):
        if value is not None:
            found.append(value.get_secret_value())
    for url in (settings.database_url, settings.broker_url, settings.redis_url):
        password = urlsplit(url).password if "://" in url else None
        if password:
            found += [password, unquote(password)]
    for connection in settings.config.connections:
        for key, value in connection.options.items():
            if isinstance(value, str) and looks_secret(key):
                found.append(value)
    return found


def redaction_for(settings=None, *secrets: str) -> RedactingFilter:  # noqa: ANN001
    """A filter for ``settings``' secrets and ``secrets``.

    ``settings`` become the process's: a filter made later without them (the
    webhook app's, from its secret alone) masks their secrets too.
    """
    global _process_secrets
    if settings is not None:
        _process_secrets = tuple(secrets_of(settings))
    return RedactingFilter([*_process_secrets, *secrets])


def install(redactor: RedactingFilter, targets: Iterable[logging.Filterer]) -> RedactingFilter:
    """Put ``redactor`` on each logger or handler of ``targets``, replacing a redacting filter put there before.

    A logger's filters see only the records created on that very logger, a
    handler's every record it emits: callers pick their targets accordingly.
    """
    for target in targets:
        for old in [f for f in target.filters if isinstance(f, RedactingFilter)]:
            target.removeFilter(old)
        target.addFilter(redactor)
    return redactor


def install_redaction(settings) -> RedactingFilter:  # noqa: ANN001
    """Mask the settings' secrets in every log record of this process (the root logger's handlers)."""
    return install(redaction_for(settings), list(logging.getLogger().handlers))


# -- context and formats ---------------------------------------------------------------

LOG_FORMAT_ENV = "WRITEBACK_LOG_FORMAT"
#: What a JSON line says about the work it belongs to, where known.
CONTEXT_KEYS = ("recording_id", "task_id", "connection")

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("writeback_log_context", default={})


def bind_log_context(**values: Any) -> contextvars.Token:
    """Add ``values`` (of ``CONTEXT_KEYS``; None ones are left out) to this context's log lines;
    give the token back to ``unbind_log_context``."""
    unknown = set(values) - set(CONTEXT_KEYS)
    if unknown:
        raise TypeError(f"unknown log context key {sorted(unknown)[0]!r}")
    bound = {key: str(value) for key, value in values.items() if value is not None}
    return _context.set({**_context.get(), **bound})


def unbind_log_context(token: contextvars.Token) -> None:
    _context.reset(token)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """``with log_context(recording_id=..., connection=...):`` every line logged inside names them."""
    token = bind_log_context(**values)
    try:
        yield
    finally:
        unbind_log_context(token)


def json_logs(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``WRITEBACK_LOG_FORMAT`` asks for JSON lines (anything else, or unset: text)."""
    return (env if env is not None else os.environ).get(LOG_FORMAT_ENV, "").strip().lower() == "json"


_formatter_redactor: tuple[tuple[str, ...], RedactingFilter] | None = None


def _redactor() -> RedactingFilter:
    """A filter for the process's secrets, made again only when they change."""
    global _formatter_redactor
    if _formatter_redactor is None or _formatter_redactor[0] != _process_secrets:
        _formatter_redactor = (_process_secrets, RedactingFilter(_process_secrets))
    return _formatter_redactor[1]


def _celery_task_id() -> str | None:
    if "celery" not in sys.modules:  # never import Celery for a log line
        return None
    from celery import current_task

    try:
        return current_task.request.id if current_task else None
    except Exception:  # noqa: BLE001 - outside a task, or a half-built request
        return None


class JsonFormatter(logging.Formatter):
    """One JSON object a line; secrets masked in the message and the traceback (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        redactor = _redactor()
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record still gives a line
            message = f"{record.msg!r} {record.args!r}"
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,  # a Celery pool process: ForkPoolWorker-N
            "message": redactor.redact(message),
        }
        context = dict(_context.get())
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                context[key] = str(value)
        if "task_id" not in context:
            task_id = _celery_task_id()
            if task_id:
                context["task_id"] = task_id
        for key in CONTEXT_KEYS:
            if key in context:
                body[key] = redactor.redact(context[key])
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            body["exc_info"] = redactor.redact(record.exc_text)
        if record.stack_info:
            body["stack_info"] = redactor.redact(self.formatStack(record.stack_info))
        return json.dumps(body, ensure_ascii=False, default=str)


def use_log_format(handlers: Iterable[logging.Handler], env: Mapping[str, str] | None = None) -> bool:
    """Give ``handlers`` the JSON formatter when ``WRITEBACK_LOG_FORMAT=json``; True when it did."""
    if not json_logs(env):
        return False
    formatter = JsonFormatter()
    for handler in handlers:
        handler.setFormatter(formatter)
    return True
