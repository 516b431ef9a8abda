"""Retries with exponential backoff and full jitter, honouring ``Retry-After``.

Used around connector calls by the pipeline (the CRM client libraries' own
retries are off: hubspot-api-client's urllib3 ``Retry`` does not retry POSTs
or 429s, and simple-salesforce has none). Only ``TransientError`` is retried.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from connectors.base import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class RetryPolicy:
    max_retries: int = 8
    base_s: float = 2.0
    max_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_s, self.base_s * (2**attempt))
        wait = random.uniform(0, ceiling)
        if retry_after is not None:
            # The server knows best, but never wait longer than we are allowed to.
            wait = max(wait, min(retry_after, self.max_s))
        return wait

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
