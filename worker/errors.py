"""Errors that end a command with a clear one-line message.

``UsageError`` (exit 2) covers configuration and credential problems; the CLI
prints ``str(error)`` and never a traceback. Messages name the offending key
or variable, never a secret's value.
"""

from __future__ import annotations


class WritebackError(Exception):
    """Base of the service's own errors."""


class ConfigError(WritebackError):
    """The configuration or environment is unusable (exit code 2)."""


class CredentialError(WritebackError):
    """A credential was rejected (exit code 2)."""


class BrokerUnavailable(WritebackError):
    """The broker did not take a task (the webhook answers 503, the CLI exits 1)."""
