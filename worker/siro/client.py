"""Client of Siro's external API (the org-scoped recordings endpoints).

``SiroClient`` is synchronous (httpx) and is what the pipeline, the poller and
``writeback check`` use to read Siro:

- ``get_recording(id)``: ``GET /v1/core/recordings/{id}`` with CRM links and
  entity extractions (and the summary on request);
- ``list_recordings(...)`` / ``iter_pages(...)``: ``GET /v1/core/recordings``
  with the ``updatedAt``/``createdAt`` filters, ``pageSize`` and ``cursor``;
- ``list_connections(...)`` / ``iter_connections(...)``: every page of
  ``GET /v1/core/integrations/connections`` (optionally one
  ``integrationPlatform``);
- ``caller_identity()``: ``GET /v1/core/auth/caller-identity``.

Reliability: 429, 408, 5xx, timeouts and network errors are retried with
exponential backoff and full jitter (``Retry-After`` is honoured when Siro
sends one, up to ``retry_after_max`` seconds; a longer one is handed back
at once as ``SiroUnavailable.retry_after`` for the task queue to schedule) up
to ``max_retries`` times, then ``SiroUnavailable`` is raised.
Permanent errors map to ``SiroAuthError`` (401/403), ``RecordingNotFound``
(404 on a recording), ``SiroRequestError`` (other 4xx) and
``SiroProtocolError`` (a 2xx that is not the JSON we expect). All derive from
``SiroError``.

Pacing: Siro allows 1000 requests per minute per token and sends no rate-limit
headers, so the client paces itself through a ``RateLimiter`` (an in-process
sliding window by default; a shared, cross-worker limiter can be passed as
``rate_limiter``). Every attempt, retries included, is paced and counted in
``request_count``.

The token is never logged, never part of an exception message and never part
of a repr: it lives in a ``_Secret`` and is attached by an ``httpx.Auth``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from connectors.support import parse_retry_after
from worker import metrics
from worker.limits.backoff import full_jitter
from worker.limits.limiters import SlidingWindowRateLimiter
from worker.siro.errors import (  # noqa: F401 - the client's errors, importable from here too
    RecordingNotFound,
    SiroAuthError,
    SiroEndpointError,
    SiroError,
    SiroProtocolError,
    SiroRequestError,
    SiroUnavailable,
)
from worker.siro.models import (
    CallerIdentity,
    ConnectionPage,
    IntegrationConnection,
    Recording,
    RecordingPage,
)
from worker.siro.pacing import RateLimiter

log = logging.getLogger(__name__)

USER_AGENT = "siro-writeback/0.1 (+httpx)"
CALLER_IDENTITY = "/v1/core/auth/caller-identity"
CONNECTIONS = "/v1/core/integrations/connections"
MAX_PAGE_SIZE = 100
_EXCERPT_CHARS = 200


# --------------------------------------------------------------------------
# helpers


class _Secret:
    """Holds the token; shows up as ``***`` in any repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("the Siro token is not picklable")


class _BearerAuth(httpx.Auth):
    def __init__(self, secret: _Secret) -> None:
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self._secret.reveal()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


def format_siro_datetime(value: dt.datetime | str, *, round_up: bool = False) -> str:
    """A datetime as Siro's filters want it: ``YYYY-MM-DDTHH:mm:ss.sssZ`` in UTC.

    Naive datetimes (and strings without an offset) are taken as UTC. Siro's
    format has millisecond precision: sub-millisecond parts are cut, or, with
    ``round_up``, rounded up to the next millisecond (used for upper bounds so
    that the window only ever widens).
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    millis, micros = divmod(value.microsecond, 1000)
    if micros and round_up:
        value = value.replace(microsecond=0) + dt.timedelta(milliseconds=millis + 1)
        millis = value.microsecond // 1000
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{millis:03d}Z"
    )


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


# --------------------------------------------------------------------------
# the client


class SiroClient:
    """Synchronous client of Siro's external API. Thread-safe (httpx.Client is)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30,
        requests_per_minute: int = 1000,
        transport: httpx.BaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        retry_after_max: float = 60.0,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Siro API URL must be an http(s) URL, got {base_url!r}")
        token = (token or "").strip()
        # A token with whitespace or control characters would make the HTTP
        # layer fail with an error quoting the header value: refuse it here.
        if not token or any(ch.isspace() or not ch.isprintable() or ord(ch) > 126 for ch in token):
            raise ValueError("Siro API token is empty or malformed (check SIRO_API_TOKEN)")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.rate_limiter: RateLimiter = rate_limiter or SlidingWindowRateLimiter(requests_per_minute, 60.0)
        self._token = _Secret(token)
        self._count = 0
        self._count_lock = threading.Lock()
        self._is_siro: bool | None = None  # does base_url answer as Siro's API? asked once, on a doubt
        self._sleep: Callable[[float], None] = time.sleep
        self._http = httpx.Client(
            auth=_BearerAuth(self._token),
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            event_hooks={"request": [self._log_request], "response": [self._log_response]},
        )

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SiroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SiroClient(base_url={self.base_url!r}, token=***, requests={self.request_count})"

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (every attempt, retries included)."""
        return self._count

    # -- endpoints ---------------------------------------------------------

    def get_recording(self, recording_id: str, *, summary: bool = False) -> Recording:
        """``GET /v1/core/recordings/{id}`` with CRM links and entity extractions."""
        recording_id = str(recording_id)
        if not recording_id:
            raise ValueError("recording_id must not be empty")
        path = f"/v1/core/recordings/{quote(recording_id, safe='')}"
        payload = self._get_json(path, self._enrichment(summary), recording_id=recording_id)
        if not isinstance(payload, dict):
            raise SiroProtocolError("Siro returned a recording that is not a JSON object", path)
        try:
            return Recording.model_validate(payload)
        except ValidationError as exc:
            raise SiroProtocolError(f"Siro returned an unusable recording ({exc.error_count()} errors)", path) from None

    def list_recordings(
        self,
        *,
        updated_gte: dt.datetime | str | None = None,
        updated_gt: dt.datetime | str | None = None,
        updated_lt: dt.datetime | str | None = None,
        updated_lte: dt.datetime | str | None = None,
        created_gt: dt.datetime | str | None = None,
        created_lt: dt.datetime | str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
        summary: bool = False,
        is_processing_done: bool | None = None,
        is_entity_extraction_done: bool | None = None,
        is_summary_done: bool | None = None,
    ) -> RecordingPage:
        """One page of ``GET /v1/core/recordings`` (``page.cursor`` is None on the last)."""
        params = self._list_params(
            updated_gte=updated_gte,
            updated_gt=updated_gt,
            updated_lt=updated_lt,
            updated_lte=updated_lte,
            created_gt=created_gt,
            created_lt=created_lt,
            page_size=page_size,
            summary=summary,
            is_processing_done=is_processing_done,
            is_entity_extraction_done=is_entity_extraction_done,
            is_summary_done=is_summary_done,
        )
        if cursor is not None:
            params["cursor"] = cursor
        path = "/v1/core/recordings"
        payload = self._get_json(path, params)
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise SiroProtocolError("Siro returned a recording list without a 'data' array", path)
        try:
            return RecordingPage.model_validate(payload)
        except ValidationError as exc:
            raise SiroProtocolError(f"Siro returned an unusable recording page ({exc.error_count()} errors)", path) from None

    def iter_pages(self, *, cursor: str | None = None, **filters: Any) -> Iterator[RecordingPage]:
        """Every page of a listing, following ``cursor`` until Siro returns null.

        Takes the keyword arguments of ``list_recordings``; the filters are sent
        again with every cursor.
        """
        seen: set[str] = set()
        while True:
            page = self.list_recordings(cursor=cursor, **filters)
            yield page
            if not page.cursor:
                return
            if page.cursor in seen:
                raise SiroProtocolError("Siro returned a pagination cursor twice (loop)", "/v1/core/recordings")
            seen.add(page.cursor)
            cursor = page.cursor

    def iter_recordings(self, **filters: Any) -> Iterator[Recording]:
        """Every recording of a listing (``iter_pages`` flattened)."""
        for page in self.iter_pages(**filters):
            yield from page.data

    def list_connections(self, *, integration_platform: str | None = None) -> list[IntegrationConnection]:
        """Every integration connection of the organization (all pages), optionally of one platform."""
        return list(self.iter_connections(integration_platform=integration_platform))

    def iter_connections(self, *, integration_platform: str | None = None) -> Iterator[IntegrationConnection]:
        """``GET /v1/core/integrations/connections``, following ``cursor`` until Siro returns null.

        The spec names no page size for this endpoint, so none is sent; the
        filter is sent again with every cursor (as for recordings).
        """
        params: dict[str, str] = {}
        if integration_platform is not None:
            if not isinstance(integration_platform, str) or not integration_platform.strip():
                raise ValueError(f"integration_platform must be a platform name, got {integration_platform!r}")
            params["integrationPlatform"] = integration_platform.strip()
        seen: set[str] = set()
        while True:
            page = self._connection_page(params)
            yield from page.data
            if not page.cursor:
                return
            if page.cursor in seen:
                raise SiroProtocolError("Siro returned a pagination cursor twice (loop)", CONNECTIONS)
            seen.add(page.cursor)
            params = {**params, "cursor": page.cursor}

    def _connection_page(self, params: dict[str, str]) -> ConnectionPage:
        payload = self._get_json(CONNECTIONS, params)
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise SiroProtocolError("Siro returned a connection list without a 'data' array", CONNECTIONS)
        try:
            return ConnectionPage.model_validate(payload)
        except ValidationError as exc:
            raise SiroProtocolError(f"Siro returned an unusable connection page ({exc.error_count()} errors)",
                                    CONNECTIONS) from None

    def caller_identity(self) -> CallerIdentity:
        """``GET /v1/core/auth/caller-identity``: what the token is (for ``writeback check``)."""
        path = CALLER_IDENTITY
        payload = self._get_json(path, {})
        if not isinstance(payload, dict):
            raise SiroProtocolError("Siro returned a caller identity that is not a JSON object", path)
        return CallerIdentity.model_validate(payload)

    # -- internals ---------------------------------------------------------

    @staticmethod
    def _enrichment(summary: bool) -> dict[str, str]:
        params = {"showCrmLinks": "true", "showEntityExtractions": "true"}
        if summary:
            params["showSummary"] = "true"
        return params

    def _list_params(
        self,
        *,
        updated_gte: Any,
        updated_gt: Any,
        updated_lt: Any,
        updated_lte: Any,
        created_gt: Any,
        created_lt: Any,
        page_size: int,
        summary: bool,
        is_processing_done: bool | None,
        is_entity_extraction_done: bool | None,
        is_summary_done: bool | None,
    ) -> dict[str, str]:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
        params: dict[str, str] = {}
        # Lower bounds are cut to the millisecond, upper bounds rounded up:
        # the requested window can only widen, never lose a recording.
        bounds = [
            ("updatedAt:gte", updated_gte, False),
            ("updatedAt:gt", updated_gt, False),
            ("updatedAt:lt", updated_lt, True),
            ("updatedAt:lte", updated_lte, True),
            ("createdAt:gt", created_gt, False),
            ("createdAt:lt", created_lt, True),
        ]
        for name, value, upper in bounds:
            if value is not None:
                params[name] = format_siro_datetime(value, round_up=upper)
        for name, value in (
            ("isProcessingDone", is_processing_done),
            ("isEntityExtractionDone", is_entity_extraction_done),
            ("isSummaryDone", is_summary_done),
        ):
            flag = _flag(value)
            if flag is not None:
                params[name] = flag
        params["pageSize"] = str(page_size)
        params.update(self._enrichment(summary))
        return params

    def _backoff(self, attempt: int) -> float:
        return full_jitter(attempt, self.backoff_base, self.backoff_max)

    def _get_json(self, path: str, params: dict[str, str], *, recording_id: str | None = None) -> Any:
        url = self.base_url + path
        attempt = 0
        while True:
            self.rate_limiter.acquire()
            with self._count_lock:
                self._count += 1
            status: int | None = None
            try:
                response = self._http.get(url, params=params)
            except httpx.TimeoutException as exc:
                reason, retry_after = f"timeout ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                detail = " ".join(str(exc).split())[:120].replace(self._token.reveal(), "***")
                reason = f"network error ({type(exc).__name__}{': ' + detail if detail else ''})"
                retry_after = None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._json(response, path)
                reason, retry_after = self._refusal(response, path, recording_id)
            finally:
                metrics.siro_request(status)  # None: no answer
            self._wait_to_retry(attempt, reason, status, retry_after, path)
            attempt += 1

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            self._check_base_url(path, response)
            raise SiroProtocolError(f"Siro answered HTTP {response.status_code} with a body that is not JSON: "
                                    f"{self._excerpt(response)!r}", path) from None

    def _refusal(self, response: httpx.Response, path: str, recording_id: str | None) -> tuple[str, float | None]:
        """Raise for an answer retrying will not change; else (reason, Retry-After) to retry after."""
        status = response.status_code
        if status in (401, 403):
            raise SiroAuthError(status, path)
        if status in (408, 429) or status >= 500:
            return f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After"))
        # A 404, a redirect, a refusal: Siro's own answer, or is SIRO_API_URL not Siro at all?
        self._check_base_url(path, response)
        if status == 404 and recording_id is not None:
            raise RecordingNotFound(recording_id)
        raise SiroRequestError(status, self._excerpt(response), path)

    def _check_base_url(self, path: str, response: httpx.Response) -> None:
        """Raise ``SiroEndpointError`` when ``base_url`` does not answer as Siro's external API.

        Asked once per client, on the first answer that could mean either (an
        unknown recording and a wrong URL both answer 404): the caller-identity
        endpoint answers every valid token with its JSON identity.
        """
        if path == CALLER_IDENTITY:
            raise SiroEndpointError(self.base_url, path, response.status_code, self._excerpt(response))  # the probe itself answered oddly
        if self._is_siro is None:
            try:
                self.caller_identity()
                self._is_siro = True
            except SiroEndpointError:
                self._is_siro = False
            except ValueError:  # JSON, but not a caller identity
                self._is_siro = False
            except SiroError:  # Siro answered, if not well (a refusal, an outage): it is Siro
                self._is_siro = True
        if not self._is_siro:
            raise SiroEndpointError(self.base_url, path, response.status_code, self._excerpt(response))

    def _wait_to_retry(self, attempt: int, reason: str, status: int | None, retry_after: float | None,
                       path: str) -> None:
        """Sleep before the next attempt, or raise ``SiroUnavailable`` when none is left (or the wait
        Siro asks for is the caller's to schedule)."""
        if attempt >= self.max_retries:
            raise SiroUnavailable(reason, attempts=attempt + 1, status=status, retry_after=retry_after, url=path)
        if retry_after is not None and retry_after > self.retry_after_max:
            # Sleeping this long inside a worker would block it: hand
            # the wait to the caller (the task queue schedules it).
            raise SiroUnavailable(f"{reason}, Retry-After {retry_after:g}s exceeds retry_after_max",
                                  attempts=attempt + 1, status=status, retry_after=retry_after, url=path)
        delay = retry_after if retry_after is not None else self._backoff(attempt)
        log.info("Siro %s on %s (attempt %d of %d); retrying in %.2fs", reason, path, attempt + 1,
                 self.max_retries + 1, delay)
        self._sleep(delay)

    def _excerpt(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except Exception:  # undecodable body
            text = repr(response.content[:_EXCERPT_CHARS])
        text = " ".join(text.split())
        text = text.replace(self._token.reveal(), "***")
        if len(text) > _EXCERPT_CHARS:
            text = text[:_EXCERPT_CHARS] + "…"
        return text

    # event hooks: method, URL and status only (never headers)
    @staticmethod
    def _log_request(request: httpx.Request) -> None:
        log.debug("Siro request %s %s", request.method, request.url)

    @staticmethod
    def _log_response(response: httpx.Response) -> None:
        log.debug("Siro response %s %s -> %d", response.request.method, response.request.url, response.status_code)
