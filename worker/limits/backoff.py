"""Waiting before a retry: exponential backoff with full jitter, honouring ``Retry-After``.

``full_jitter`` is the one formula every retry of the service uses: the Siro
client's, the pipeline's around connector calls (``RetryPolicy``; the CRM
client libraries' own retries are off: hubspot-api-client's urllib3 ``Retry``
does not retry POSTs or 429s, and simple-salesforce has none) and the Celery
tasks' countdowns. Only a ``TransientError`` is retried.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from worker.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


def full_jitter(attempt: int, base_s: float, max_s: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    Uniform in ``[0, min(max_s, base_s * 2**attempt)]`` (full jitter: retries
    of many workers spread out instead of arriving together); at least what a
    ``Retry-After`` asked for, but never more than ``max_s`` (a longer wait is
    the caller's to schedule, not to sleep through).
    """
    wait = random.uniform(0, max(0.0, min(max_s, base_s * (2**attempt))))
    if retry_after is not None:
        wait = max(wait, min(retry_after, max_s))
    return wait


@dataclass
class RetryPolicy:
    max_retries: int = 8
    base_s: float = 2.0
    max_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        return full_jitter(attempt, self.base_s, self.max_s, retry_after)

    def call(self, fn: Callable[[], T], what: str = "call") -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except TransientError as exc:
                if attempt >= self.max_retries:
                    raise
                wait = self.delay(attempt, exc.retry_after)
                log.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt + 1, self.max_retries, wait)
                self.sleep(wait)
                attempt += 1
