"""Keeps secrets out of logs: a logging filter that masks every known secret.

Our own code never logs a secret, but third-party libraries may log URLs,
headers or bodies at DEBUG. ``install_redaction`` registers the secrets from
the settings and the config's connections and masks them in every record.
"""

from __future__ import annotations

import logging
from typing import Iterable

from worker.settings import looks_secret

MASK = "***"
_MIN_LENGTH = 6  # shorter strings would mask ordinary words


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = {s for s in secrets if s and len(s) >= _MIN_LENGTH}

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = self.redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def secrets_of(settings) -> list[str]:  # noqa: ANN001 - avoids an import cycle with settings
    found: list[str] = []
    for value in (settings.siro_api_token, settings.webhook_secret):
        if value is not None:
            found.append(value.get_secret_value())
    for connection in settings.config.connections:
        for key, value in connection.options.items():
            if isinstance(value, str) and looks_secret(key):
                found.append(value)
    return found


def install_redaction(settings) -> RedactingFilter:  # noqa: ANN001
    """Mask the settings' secrets in every log record of this process."""
    redactor = RedactingFilter(secrets_of(settings))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor
