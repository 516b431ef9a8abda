"""The one error tree of the service, and the reason codes it reports.

Every error siro-writeback raises descends from ``WritebackError`` and sits
in one of four categories, which decide what happens to the work::

    WritebackError(message, partial=())            connectors/base.py (the plugin seam)
    ├── ConfigError                                the config or environment is unusable: exit 2, nothing runs
    ├── CredentialError                            a credential was rejected: exit 2; dead letter at once
    │   ├── AuthError                              connectors: the CRM's
    │   └── SiroAuthError (+ SiroError)            worker/siro/client.py: Siro's token
    ├── TransientError(retry_after)                may pass: retried with backoff, then a dead letter
    │   ├── LimiterBusy                            worker/limits: no rate-limit turn within the wait
    │   └── Unavailable                            a service we depend on did not answer
    │       ├── SiroUnavailable (+ SiroError)      worker/siro/client.py
    │       ├── LedgerUnavailable (+ LedgerError)  worker/ledger
    │       ├── BrokerUnavailable                  here: the broker did not take a task (webhook 503)
    │       ├── DedupeUnavailable                  worker/service/dedupe.py (webhook 503)
    │       ├── LimiterUnavailable                 worker/limits: Redis, for the rate limits
    │       └── LocksUnavailable                   worker/limits: Redis, for the per-recording locks
    └── PermanentError                             retrying will not help: recorded, not retried
        ├── UnknownObject                          connectors: the CRM has no such object
        └── RecordingNotFound, SiroRequestError, SiroProtocolError (+ SiroError)

    SiroError, LedgerError                          families by origin, each member also in a category above

Celery's soft time limit is not ours (it is raised into the task by
billiard): it is ``SoftTimeLimit`` everywhere, and ``RETRY_LATER`` is what a
task retries. A connector lets it through untouched (``connectors.base.INTERRUPTS``).

``Reason`` holds the codes a run, a recording or a dead letter is reported
with; code compares codes, never the text of a message.
"""

from __future__ import annotations

from enum import StrEnum

from connectors.base import (
    AuthError,
    ConfigError,
    CredentialError,
    PermanentError,
    SoftTimeLimit,
    TransientError,
    UnknownObject,
    WritebackError,
)

try:  # the hard limit: Celery kills the process and reports this to the task's on_failure
    from billiard.exceptions import TimeLimitExceeded as TimeLimit
except ImportError:  # pragma: no cover - celery brings billiard

    class TimeLimit(Exception):  # type: ignore[no-redef]
        """Stands in for Celery's hard time limit where Celery is not installed (never raised)."""


class Unavailable(TransientError):
    """A service this one depends on (Siro, the ledger, the broker, Redis) did not answer."""


class BrokerUnavailable(Unavailable):
    """The broker did not take a task (the webhook answers 503, the CLI exits 1)."""


#: How a process ends (DESIGN §3): nothing failed; something failed (a field, a dependency); a usage,
#: config or credential error, said in one line. The CLI, ``celery -A worker`` and the worker's start check.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: What a task retries later: a transient failure, or its soft time limit (what was written is
#: ``unchanged`` next time).
RETRY_LATER: tuple[type[BaseException], ...] = (TransientError, SoftTimeLimit)


class Reason(StrEnum):
    """Why a recording was not written as planned, or why it went on the dead-letter list."""

    # a recording's report (status skipped or failed)
    NOT_LINKED = "not_linked"  # crm: null, nothing to write yet
    DELETED = "deleted"
    NOTHING_MAPPED = "nothing_mapped"
    NO_CONNECTION = "no_connection"  # no [[connections]] entry serves its integrationConnectionId
    NOT_FOUND = "not_found"  # Siro has no recording with this id
    STALE = "stale"  # a newer version of the recording was already processed
    REVERTED = "reverted"  # this version was reverted (writeback revert); ``sync --force`` writes it again
    NOTHING_WRITTEN = "nothing_written"  # writeback revert: the recording never wrote a field
    AUTH = "auth"  # the CRM rejected the credentials (also a dead-letter reason)
    CONFIG = "config"  # the config names what the CRM does not have (also a dead-letter reason)
    SIRO = "siro"  # Siro could not serve the recording (the CLI's report)
    # the dead-letter list
    SIRO_AUTH = "siro_auth"
    SIRO_ERROR = "siro_error"
    RETRIES_EXHAUSTED = "retries_exhausted"
    TIME_LIMIT = "time_limit"
    TASK_FAILED = "task_failed"

    def explain(self, detail: str | None) -> str:
        """The reason as a report shows it: ``"stale: a newer version ..."``."""
        return f"{self.value}: {detail}" if detail else self.value


#: Reasons that stop a recording until a person fixes something (credentials, the config): it goes
#: on the dead-letter list at once without spending retries, and ``writeback sync`` exits 2.
NEEDS_A_FIX = frozenset({Reason.AUTH, Reason.CONFIG})


__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "NEEDS_A_FIX",
    "RETRY_LATER",
    "AuthError",
    "BrokerUnavailable",
    "ConfigError",
    "CredentialError",
    "PermanentError",
    "Reason",
    "SoftTimeLimit",
    "TimeLimit",
    "TransientError",
    "Unavailable",
    "UnknownObject",
    "WritebackError",
]
