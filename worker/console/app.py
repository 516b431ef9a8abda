"""The operator console: a small Starlette app of server-rendered pages (DESIGN §6, issue 10).

Pages (GET, after login): ``/runs`` (recent runs, newest first, paged with
``?before=RUN_ID``), ``/recording?id=`` (one recording's history),
``/record?connection=&object=&id=[&field=]`` (one CRM record's history),
``/dead-letters``, ``/review``; ``/find?q=`` goes to a recording or, for
``CONNECTION:OBJECT:ID``, to a record.

Actions (POST, each with the session's CSRF token): ``/dead-letters/retry``,
``/review/decide`` (approve or reject one proposal), ``/revert/preview`` (the
dry run: what would be put back) then ``/revert`` (the revert itself),
``/logout``. Each calls ``worker.console.operations``, which calls what the
CLI calls. ``/login`` takes the token.

What every response carries: a Content-Security-Policy allowing this site's
stylesheet and nothing else (no script at all), ``X-Frame-Options: DENY``,
``nosniff``, no referrer, and ``Cache-Control: no-store`` on every page.
Templates are autoescaped, and every value they print goes through the
process's redaction filter (``worker.logs``): a secret that reached the ledger
(a CRM error quoting a token) is masked on the page too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.cli.history import MAX_ID, UsageError, when
from worker.cli.render import show
from worker.errors import Reason, WritebackError
from worker.logs import RedactingFilter

from .auth import Sessions
from .operations import NotPending, Operations, RecordRef, parse_record

log = logging.getLogger(__name__)

__all__ = ["COOKIE", "create_app"]

HERE = Path(__file__).resolve().parent
COOKIE = "writeback_console"
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class Refused(Exception):
    """Ends a request with an error page: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(ops: Operations, token: str, *, redactor: RedactingFilter | None = None) -> Starlette:
    """The console on ``ops``, guarded by ``token``; ``redactor`` masks secrets in every printed value."""
    sessions = Sessions(token)
    redactor = redactor or RedactingFilter([token])
    templates = _templates(redactor)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session_id = sessions.session_id(request.cookies.get(COOKIE))
        csrf = sessions.csrf_token(session_id) if session_id else ""
        html = templates.get_template(name).render(csrf=csrf, signed_in=bool(session_id), path=request.url.path,
                                                   **context)
        return HTMLResponse(html, status_code=status)

    def reads(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """A page: the login page first without a session."""

        async def endpoint(request: Request) -> Response:
            if sessions.session_id(request.cookies.get(COOKIE)) is None:
                return RedirectResponse("/login", status_code=303)
            return await _answer(request, handler)

        return endpoint

    def acts(handler: Callable[[Request, dict[str, str]], Any]) -> Callable[[Request], Any]:
        """An action: a POST with a session and its CSRF token, else a 403 page."""

        async def endpoint(request: Request) -> Response:
            session_id = sessions.session_id(request.cookies.get(COOKIE))
            if session_id is None:
                return page(request, "error.html", 403, title="Not signed in",
                            message="Your session has ended: sign in again.")
            form = await _form(request)
            if not sessions.csrf_matches(session_id, form.get("csrf")):
                return page(request, "error.html", 403, title="Refused",
                            message="The form's CSRF token is missing or wrong: reload the page and try again.")
            return await _answer(request, lambda req: handler(req, form))

        return endpoint

    async def _answer(request: Request, handler: Callable[[Request], Any]) -> Response:
        try:
            result = handler(request)
            return await result if hasattr(result, "__await__") else result
        except Refused as exc:
            return page(request, "error.html", exc.status, title="Not possible", message=str(exc))
        except WritebackError as exc:  # the ledger, the broker, the CRM's credentials: said in one line
            return page(request, "error.html", 503, title="Not available", message=str(exc))

    # -- pages -----------------------------------------------------------------

    async def runs(request: Request) -> Response:
        before = _int(request.query_params.get("before"), "before")
        found = await run_in_threadpool(ops.runs, before)
        return page(request, "runs.html", title="Recent runs", page=found, before=before)

    async def recording(request: Request) -> Response:
        recording_id = _text(request.query_params.get("id"), "recording id")
        runs = await run_in_threadpool(ops.history, recording_id)
        return page(request, "recording.html", title=f"Recording {recording_id}", recording_id=recording_id,
                    runs=runs)

    async def record(request: Request) -> Response:
        params = request.query_params
        ref = RecordRef(_text(params.get("connection"), "connection"), _text(params.get("object"), "object"),
                        _text(params.get("id"), "record id"))
        field = params.get("field", "").strip() or None
        if field is not None:
            field = _text(field, "field")
        entries = await run_in_threadpool(ops.record_history, ref, field)
        return page(request, "record.html", title=f"{ref.object} {ref.record_id}", ref=ref, field=field,
                    entries=entries)

    async def find(request: Request) -> Response:
        query = _text(request.query_params.get("q"), "recording id or CONNECTION:OBJECT:ID")
        if query.count(":") >= 2:
            try:
                ref = parse_record(query)
            except UsageError as exc:
                raise Refused(400, str(exc)) from None
            target = "/record?" + urlencode({"connection": ref.connection, "object": ref.object,
                                             "id": ref.record_id})
        else:
            target = "/recording?" + urlencode({"id": query})
        return RedirectResponse(target, status_code=303)

    async def dead_letters(request: Request) -> Response:
        letters = await run_in_threadpool(ops.dead_letters)
        return page(request, "dead_letters.html", title="Dead letters", letters=letters)

    async def review_queue(request: Request) -> Response:
        proposals = await run_in_threadpool(ops.pending)
        return page(request, "review.html", title="Review", proposals=proposals)

    # -- actions -----------------------------------------------------------------

    async def retry(request: Request, form: dict[str, str]) -> Response:
        recording_id = _text(form.get("recording_id"), "recording id")
        task_id = await run_in_threadpool(ops.retry, recording_id)
        letters = await run_in_threadpool(ops.dead_letters)
        return page(request, "dead_letters.html", title="Dead letters", letters=letters,
                    notice=f"{recording_id}: enqueued for the workers (task {task_id})")

    async def decide(request: Request, form: dict[str, str]) -> Response:
        proposal_id = _int(form.get("proposal_id"), "proposal id")
        decision = form.get("decision")
        if proposal_id is None or decision not in ("approve", "reject"):
            raise Refused(400, "a decision is approve or reject, on one proposal id")
        try:
            if decision == "reject":
                rejected = await run_in_threadpool(ops.reject, [proposal_id])
                approval, notice = None, f"Rejected proposal {', '.join(map(str, rejected))}: nothing was sent."
            else:
                approval = await run_in_threadpool(ops.approve, [proposal_id])
                notice = f"Approved proposal {proposal_id}: the CRM's answer is below."
        except NotPending as exc:
            raise Refused(409, str(exc)) from None
        proposals = await run_in_threadpool(ops.pending)
        return page(request, "review.html", title="Review", proposals=proposals, notice=notice, approval=approval)

    async def revert_preview(request: Request, form: dict[str, str]) -> Response:
        recording_id = _text(form.get("recording_id"), "recording id")
        report = await run_in_threadpool(lambda: ops.revert(recording_id, dry_run=True))
        return page(request, "revert.html", title=f"Revert {recording_id}", recording_id=recording_id,
                    report=report, dry_run=True, nothing=report.code is Reason.NOTHING_WRITTEN)

    async def revert_confirm(request: Request, form: dict[str, str]) -> Response:
        recording_id = _text(form.get("recording_id"), "recording id")
        report = await run_in_threadpool(lambda: ops.revert(recording_id, dry_run=False))
        return page(request, "revert.html", title=f"Reverted {recording_id}", recording_id=recording_id,
                    report=report, dry_run=False, nothing=report.code is Reason.NOTHING_WRITTEN)

    # -- login -----------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        if sessions.session_id(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse("/runs", status_code=303)
        return page(request, "login.html", title="Sign in")

    async def login(request: Request) -> Response:
        form = await _form(request)
        if not sessions.token_matches(form.get("token", "")):
            return page(request, "login.html", 401, title="Sign in", refused=True)
        response = RedirectResponse("/runs", status_code=303)
        response.set_cookie(COOKIE, sessions.issue(), max_age=int(sessions.ttl_s), path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    async def logout(request: Request, form: dict[str, str]) -> Response:
        sessions.revoke(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return page(request, "error.html", status, title="Not found" if status == 404 else "Not possible",
                    message="No such page." if status == 404 else "This request is not one the console takes.")

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("console page %s failed", request.url.path, exc_info=exc)
        return page(request, "error.html", 500, title="Error",
                    message="Something went wrong; the console's log says what.")

    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", acts(logout), methods=["POST"]),
        Route("/runs", reads(runs)),
        Route("/recording", reads(recording)),
        Route("/record", reads(record)),
        Route("/find", reads(find)),
        Route("/dead-letters", reads(dead_letters)),
        Route("/dead-letters/retry", acts(retry), methods=["POST"]),
        Route("/review", reads(review_queue)),
        Route("/review/decide", acts(decide), methods=["POST"]),
        Route("/revert/preview", acts(revert_preview), methods=["POST"]),
        Route("/revert", acts(revert_confirm), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found, Exception: server_error})
    app.add_middleware(SecurityHeaders)
    app.state.redactor = redactor  # worker.service.webhook.serve puts it on uvicorn's loggers
    return app


class SecurityHeaders:
    """The headers of the module docstring on every response; ``no-store`` on all but static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                headers += SECURITY_HEADERS
                headers.append((b"cache-control", b"private, max-age=3600" if static else b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _templates(redactor: RedactingFilter) -> Environment:
    def finalize(value: Any) -> Any:
        """Every ``{{ value }}``: nothing for None, and secrets masked (autoescaping follows)."""
        if value is None:
            return ""
        if isinstance(value, Markup):
            return Markup(redactor.redact(str(value)))
        if isinstance(value, str):
            return redactor.redact(value)
        return value

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, finalize=finalize, trim_blocks=True, lstrip_blocks=True)
    env.filters["show"] = show
    env.filters["when"] = when
    return env


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first of each name); a body over 16 KiB is refused."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


def _text(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if not text or len(text) > MAX_ID:
        raise Refused(400, f"not a {what}: give 1 to {MAX_ID} characters")
    return text


def _int(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise Refused(400, f"not a {what}: {value[:40]!r}") from None
    if not 0 < number < 2**63:
        raise Refused(400, f"not a {what}: {number}")
    return number
