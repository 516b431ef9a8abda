"""What tests turn and read besides the portal: the request log, injected faults, held answers and the
per-token rolling rate limit (429 ``TEN_SECONDLY_ROLLING`` with ``X-HubSpot-RateLimit-*`` headers).

None of these classes locks: ``HubSpotState`` calls them under its own lock.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoggedRequest:
    """One request the simulator received (never its credentials)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # parsed JSON, or None
    status: int = 0  # the status answered, filled in when the answer is known
    authenticated: bool = False
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)

    def __repr__(self) -> str:  # short, for assertion messages
        return f"<{self.method} {self.path} -> {self.status}>"


@dataclass
class Fault:
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    path_contains: str | None
    after: int = 0  # matching requests still let through before the fault starts


@dataclass
class _Hold:
    path_contains: str
    seconds: float
    times: int


class Faults:
    """Injected faults and held answers, each matched by a path substring."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._holds: list[_Hold] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def hold(self, path_contains: str, seconds: float, times: int) -> None:
        self._holds.append(_Hold(path_contains, seconds, times))

    def clear(self) -> None:
        self._faults.clear()
        self._holds.clear()

    def take(self, path: str) -> Fault | None:
        """The fault this request gets; a fault still counting down ``after`` lets it through."""
        for fault in self._faults:
            if fault.path_contains is None or fault.path_contains in path:
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def take_hold(self, path: str) -> float:
        """Seconds to wait before answering this request (0.0: none)."""
        for hold in self._holds:
            if hold.path_contains in path:
                hold.times -= 1
                if hold.times <= 0:
                    self._holds.remove(hold)
                return hold.seconds
        return 0.0


class RollingRateLimit:
    """At most ``max_requests`` per token per rolling ``interval_s`` (None: no limit)."""

    def __init__(self) -> None:
        self.max_requests: int | None = None
        self.interval_s = 10.0
        self.retry_after: float | None = None
        self._hits: dict[str, deque[float]] = {}

    def configure(self, max_requests: int | None, interval_s: float, retry_after: float | None) -> None:
        self.max_requests = max_requests
        self.interval_s = interval_s
        self.retry_after = retry_after
        self._hits.clear()

    def check(self, token: str) -> tuple[bool, dict[str, str]]:
        """(allowed, headers) for one request of ``token``; a refused request does not count."""
        if self.max_requests is None:
            return True, {}
        now = time.monotonic()
        hits = self._hits.setdefault(token, deque())
        while hits and hits[0] <= now - self.interval_s:
            hits.popleft()
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.interval_s * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.max_requests),
        }
        if len(hits) >= self.max_requests:
            headers["X-HubSpot-RateLimit-Remaining"] = "0"
            if self.retry_after is not None:
                headers["Retry-After"] = str(self.retry_after)
            return False, headers
        hits.append(now)
        headers["X-HubSpot-RateLimit-Remaining"] = str(self.max_requests - len(hits))
        return True, headers
