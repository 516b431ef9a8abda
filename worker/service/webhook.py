"""The Siro webhook receiver (DESIGN §3 "Webhook"): a small FastAPI app.

``POST /webhooks/siro`` (secret as ``Authorization: Bearer <secret>``) and
``POST /webhooks/siro/<secret>`` (for senders that only take a URL) take
Siro's ``RecordingEventWebhookPayload`` and enqueue one task per event through
the ``enqueue`` callable; Celery stays outside this module (the caller's glue
maps broker errors to ``BrokerUnavailable``). The payload is only a hint: the
worker re-fetches the recording, so all we need from it is the recording id.

Answers, checked in this order: 401 missing or wrong secret, 413 body over
64 KiB, 422 malformed, then 200 ignored (unknown ``eventType`` or neither
flag true), 200 duplicate (the same body within 10 minutes), 202 enqueued,
503 when the broker or the dedupe store cannot be reached (the sender
retries). ``GET /healthz`` answers while serving, ``GET /readyz`` runs the
caller's checks, ``GET /metrics`` is Prometheus's (``worker.metrics``: every
delivery counted by its answer; the arrival time travels with the task).

The secret never reaches a log line or a response: ``serve`` runs uvicorn
with the redaction filter of ``worker.logs``, which masks
``/webhooks/siro/<secret>`` as ``/webhooks/siro/***`` (and every known secret
anywhere else, tracebacks included), and error bodies never quote the request.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker import metrics
from worker.errors import BrokerUnavailable
from worker.logs import install, redaction_for, use_log_format
from worker.service.dedupe import Dedupe

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DEDUPE_TTL_S = 600  # "repeated deliveries ... within 10 minutes enqueue one task"
# How long a claim may stay "pending" while its enqueue runs. A dead broker
# answers within a few seconds (DESIGN §3); should a webhook process die
# between claim and confirm, the event is taken again after this.
PENDING_TTL_S = 30
EVENT_TYPES = frozenset({"integrations.recordingProcessed", "integrations.recordingLinked"})
WEBHOOK_PATH = "/webhooks/siro"

Ready = Callable[[], dict[str, str | None]]


# -- payload ------------------------------------------------------------------


class _Payload(BaseModel):
    # Tolerant of what Siro adds later (extra fields are kept), strict about the
    # types of what the schema documents: "true" for a boolean is malformed.
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)


class LinkPayload(_Payload):
    id: StrictStr
    external_id: StrictStr


class CrmPayload(_Payload):
    integration_connection_id: StrictStr
    users: list[LinkPayload] | None = None
    engagement: LinkPayload | None = None
    opportunity: LinkPayload | None = None
    contacts: list[LinkPayload] | None = None
    account: LinkPayload | None = None
    lead: LinkPayload | None = None


class RecordingEventPayload(_Payload):
    """Siro's ``RecordingEventWebhookPayload``.

    Optional properties may also be null (``crm: null`` is "not linked yet").
    """

    # The ledger keeps recording ids in 255 characters; Siro's are far shorter.
    recording_id: StrictStr = Field(min_length=1, max_length=255)
    siro_user_id: StrictStr | None = None
    recording_processed: StrictBool
    recording_linked: StrictBool
    event_type: StrictStr
    crm: CrmPayload | None = None

    @field_validator("recording_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("recordingId is blank")
        return value

    @property
    def actionable(self) -> bool:
        """Whether the event asks for a write-back at all."""
        return self.event_type in EVENT_TYPES and (self.recording_processed or self.recording_linked)


def dedupe_key(payload: Any) -> str:
    """sha256 of the canonical JSON of a parsed body: key order and spacing do not matter."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a lone "\ud800" escape is valid JSON but not encodable UTF-8.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


# -- log redaction --------------------------------------------------------------

# The loggers a served webhook writes to. Logger filters see only records
# created on that very logger, so each one (and each of its handlers) gets the
# one redaction filter of ``worker.logs``.
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "fastapi", __name__)


def _log_targets() -> list[logging.Filterer]:
    targets: list[logging.Filterer] = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        targets.append(logger)
        targets.extend(logger.handlers)
    return targets


# -- responses ----------------------------------------------------------------


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _answer(status: int, outcome: str, recording_id: str | None, task_id: str | None) -> JSONResponse:
    return JSONResponse({"status": outcome, "recordingId": recording_id, "taskId": task_id}, status_code=status)


def _validation_message(exc: ValidationError) -> str:
    # Locations and messages only: pydantic's ``input`` would quote the body.
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        location = ".".join(str(part) for part in error["loc"]) or "(body)"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes as it streams in.

    Content-Length is only a shortcut: a chunked body (or a lying header) is
    counted as it arrives, and nothing past the limit is kept.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _TooLarge
        except ValueError:
            pass  # the server has already refused an unreadable Content-Length
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; json.loads would take them.
    raise ValueError(f"{name} is not valid JSON")


# -- the app ------------------------------------------------------------------


def create_app(
    *,
    secret: str,
    enqueue: Callable[[str], str],
    dedupe: Dedupe,
    ready: Ready | None = None,
) -> FastAPI:
    """The webhook app. ``enqueue(recording_id)`` returns a task id or raises
    ``BrokerUnavailable``; ``ready()`` maps check names to None (fine) or a short error."""
    receiver = _Receiver(secret, enqueue, dedupe)
    # No interactive docs: the receiver has nothing to show a browser, and the
    # schema would advertise the secret-in-path route.
    app = FastAPI(title="siro-writeback webhook", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.redactor = receiver.redactor  # ``serve`` installs it on uvicorn's loggers

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> JSONResponse:
        return await receiver.guarded(request, None)

    @app.post(WEBHOOK_PATH + "/{secret}")
    async def webhook_with_secret(request: Request) -> JSONResponse:
        # Read from the scope rather than as a typed parameter: nothing FastAPI
        # validates (and could echo in a 422) ever holds the secret.
        return await receiver.guarded(request, request.path_params.get("secret"))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return await _readiness(ready, receiver.redactor)

    scraped = metrics.registry()

    @app.get("/metrics")
    async def prometheus() -> Response:
        body = await run_in_threadpool(metrics.exposition, scraped)
        return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)

    _answer_errors_in_our_shape(app)
    return app


class _Receiver:
    """One delivery, checked in the order 401, 413, 422, then ignored, duplicate or enqueued."""

    def __init__(self, secret: str, enqueue: Callable[[str], str], dedupe: Dedupe) -> None:
        if not secret:
            raise ValueError("the webhook app needs a secret (WRITEBACK_WEBHOOK_SECRET)")
        if len(secret) < 16:
            log.warning("the webhook secret is shorter than 16 characters: use a long random one")
        self.secret = secret.encode("utf-8")
        self.enqueue = enqueue
        self.dedupe = dedupe
        # The secret, and the settings' secrets when the process registered them (the CLI does).
        self.redactor = redaction_for(None, secret)

    async def guarded(self, request: Request, path_secret: str | None) -> JSONResponse:
        metrics.webhook_received_at.set(time.time())  # this request's context: its enqueue carries it
        try:
            response = await self.receive(request, path_secret)
        except Exception as exc:  # noqa: BLE001
            # Answer here rather than let the server print a traceback of its own.
            # The traceback is formatted and masked here, so the secret stays out
            # even where no redaction filter is installed (tests, embedding).
            trace = self.redactor.redact("".join(traceback.format_exception(exc)))
            log.error("webhook failed: %s\n%s", type(exc).__name__, trace.rstrip())
            response = _error(500, "internal_error", "unexpected error; retry later")
        metrics.webhook_delivery(_answer_name(response))
        return response

    async def receive(self, request: Request, path_secret: str | None) -> JSONResponse:
        if not self.authorized(request, path_secret):
            return _error(401, "unauthorized", "missing or wrong webhook secret", {"WWW-Authenticate": "Bearer"})
        try:
            body = await _read_body(request, MAX_BODY_BYTES)
        except _TooLarge:
            return _error(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        parsed = self.parse(body)
        if isinstance(parsed, JSONResponse):
            return parsed
        raw, payload = parsed
        if not payload.actionable:
            log.info("webhook ignored: recording %s, eventType %r, processed=%s linked=%s", payload.recording_id,
                     payload.event_type[:80], payload.recording_processed, payload.recording_linked)
            return _answer(200, "ignored", payload.recording_id, None)
        return await self.enqueue_once(dedupe_key(raw), payload.recording_id)

    def authorized(self, request: Request, path_secret: str | None) -> bool:
        candidates: list[bytes] = []
        if path_secret is not None:
            candidates.append(path_secret.encode("utf-8", "surrogateescape"))
        for name, value in request.headers.raw:
            # Raw bytes: Starlette decodes header values as latin-1, which would
            # garble a non-ASCII secret.
            if name == b"authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"bearer" and token.strip():
                    candidates.append(token.strip())
        # Every candidate is compared (no short-circuit) so timing says nothing about which matched.
        results = [hmac.compare_digest(candidate, self.secret) for candidate in candidates]
        return any(results)

    def parse(self, body: bytes) -> tuple[dict[str, Any], RecordingEventPayload] | JSONResponse:
        """The body as JSON and as a payload, or the 422 that says why not."""
        try:
            raw = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            return _error(422, "malformed", "the body is not valid JSON")
        if not isinstance(raw, dict):
            return _error(422, "malformed", "the body is not a JSON object")
        try:
            return raw, RecordingEventPayload.model_validate(raw)
        except ValidationError as exc:
            return _error(422, "malformed", self.redactor.redact(_validation_message(exc)))

    async def enqueue_once(self, key: str, recording_id: str) -> JSONResponse:
        """Enqueue unless this event was enqueued already; the key is kept only once the broker took it."""
        try:
            claimed = await run_in_threadpool(self.dedupe.claim, key, PENDING_TTL_S)
            existing = None if claimed else await run_in_threadpool(self.dedupe.task_id, key)
        except Exception as exc:  # noqa: BLE001 - any store failure: the sender retries
            log.warning("webhook dedupe store unavailable (%s): answered 503", type(exc).__name__)
            return _error(503, "dedupe_unavailable", "the dedupe store is unreachable; retry later")
        if not claimed:
            log.info("webhook duplicate: recording %s (task %s)", recording_id, existing or "pending")
            return _answer(200, "duplicate", recording_id, existing)
        try:
            task_id = await run_in_threadpool(self.enqueue, recording_id)
        except BrokerUnavailable as exc:
            await _release(self.dedupe, key)
            log.warning("webhook enqueue failed for recording %s (%s): answered 503", recording_id,
                        self.redactor.redact(str(exc))[:200] or type(exc).__name__)
            return _error(503, "broker_unavailable", "the task queue is unreachable; retry later")
        except BaseException:
            await _release(self.dedupe, key)
            raise
        await self.confirm(key, task_id, recording_id)
        log.info("webhook enqueued: recording %s, task %s", recording_id, task_id)
        return _answer(202, "enqueued", recording_id, task_id)

    async def confirm(self, key: str, task_id: str, recording_id: str) -> None:
        try:
            await run_in_threadpool(self.dedupe.confirm, key, task_id, DEDUPE_TTL_S)
        except Exception as exc:  # noqa: BLE001
            # The task is enqueued, which is what the sender cares about; the
            # pending claim still covers PENDING_TTL_S, and a later duplicate
            # costs one harmless re-read (the worker diffs against the CRM).
            log.warning("webhook dedupe confirm failed (%s) for recording %s", type(exc).__name__, recording_id)


def _answer_name(response: JSONResponse) -> str:
    """The answer as a metric label: the body's ``status`` (enqueued, ignored, duplicate) or ``error``."""
    try:
        body = json.loads(bytes(response.body))
        return str(body.get("status") or body.get("error") or response.status_code)
    except (ValueError, AttributeError):
        return str(response.status_code)


async def _readiness(ready: Ready | None, redactor: Any) -> JSONResponse:
    if ready is None:
        return JSONResponse({"status": "ready", "checks": {}})
    try:
        checks = dict(await run_in_threadpool(ready))
    except Exception as exc:  # noqa: BLE001
        checks = {"ready": f"check failed: {type(exc).__name__}"}
    fine = all(problem is None for problem in checks.values())
    # "ok" for a check that passed, as `writeback ready` prints it; the problem's short reason otherwise.
    checks = {name: "ok" if problem is None else redactor.redact(str(problem)) for name, problem in checks.items()}
    body = {"status": "ready" if fine else "unready", "checks": checks}
    return JSONResponse(body, status_code=200 if fine else 503)


def _answer_errors_in_our_shape(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default body quotes the offending input; ours never does.
        return _error(422, "malformed", "the request is malformed")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 404/405 and friends in the same small shape, never quoting the path.
        names = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, names.get(exc.status_code, "http_error"), str(exc.detail)[:100],
                      dict(exc.headers) if exc.headers else None)


async def _release(dedupe: Dedupe, key: str) -> None:
    try:
        await run_in_threadpool(dedupe.release, key)
    except Exception as exc:  # noqa: BLE001
        # The claim then lapses after PENDING_TTL_S; until then a retry is answered "duplicate".
        log.warning("webhook dedupe release failed (%s)", type(exc).__name__)


# -- serving ------------------------------------------------------------------


def server_config(app: FastAPI, host: str = "0.0.0.0", port: int = 8000, **options: Any):  # noqa: ANN201
    """The uvicorn config ``serve`` runs: uvicorn's own logging plus the redaction filter.

    Building it configures logging (uvicorn applies its log config here), so
    the filter goes on afterwards.
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    options.setdefault("log_config", copy.deepcopy(LOGGING_CONFIG))
    options.setdefault("access_log", True)
    options.setdefault("lifespan", "off")
    config = uvicorn.Config(app, host=host, port=port, **options)
    redactor = getattr(app.state, "redactor", None)
    if redactor is None:
        raise ValueError("serve() takes an app made by worker.service.webhook.create_app")
    install(redactor, _log_targets())
    handlers = {handler for name in ("", *LOGGERS) for handler in logging.getLogger(name).handlers}
    use_log_format(handlers)  # WRITEBACK_LOG_FORMAT=json: uvicorn's lines too
    return config


def serve(app: FastAPI, host: str = "0.0.0.0", port: int = 8000) -> None:
    """Serve the webhook app until interrupted, with access logs that never carry the secret."""
    import uvicorn

    uvicorn.Server(server_config(app, host, port)).run()
