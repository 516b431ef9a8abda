"""``writeback demo [--json] [--keep [PATH]]``: the deployed path on embedded defaults, no credentials.

Starts local simulators of Siro (HTTP), Salesforce (HTTPS with a throwaway
CA) and HubSpot seeded with sample recordings and CRM records, a Celery
worker on an embedded in-memory broker, and the webhook app on loopback. Then
it does what Siro does: posts a webhook per recording (one of them twice, and
one with a wrong secret). The worker fetches each recording, writes it
through the real connectors and client libraries, and records it in the
ledger; the demo prints what the ledger says was written, and why the rest
was not (``worker.cli.render``'s tables; ``--json``: the reports as JSON
lines, nothing else on stdout). Then one polling pass sends the same
recordings through the queue again as a page task, to show that a second
pass writes nothing. Last, what an operator audits and undoes with (DESIGN
§6): the runs ``writeback history`` lists for the Salesforce recording, and
what ``writeback revert --dry-run`` would put back (not in ``--json``).

Nothing of the user's setup is read: the settings are built here, the config
is the packaged ``demo.toml`` (never ``config/writeback.toml``, no
``WRITEBACK_*`` or ``SIRO_*`` variable), and the Celery app is configured
from these settings alone. The ledger is a fresh SQLite file in a temporary
folder deleted on exit; ``--keep`` keeps it (at PATH, or at a new file in the
temporary folder) and prints where. While nothing prints (the simulators and
the worker starting, the worker writing, the worker stopping) a spinner on
stderr says what the demo waits for when stderr is a terminal, else a line
per step does.

The heavy imports (Celery, the simulators, the pipeline) happen inside the
functions, so the first progress line shows at once.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import textwrap
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from worker.cli.render import (
    note_lines,
    report_from_ledger,
    report_table,
    summarize,
    terminal,
)
from worker.errors import ConfigError, WritebackError
from worker.report import RecordingReport

if TYPE_CHECKING:
    from simulators.local import LocalService
    from simulators.sample_data import DemoRecordings
    from worker.ledger import Ledger
    from worker.pipeline.runner import Pipeline
    from worker.runtime import Runtime
    from worker.settings import Settings, WritebackConfig

WAIT_S = 120.0


def demo_config(local: LocalService) -> WritebackConfig:
    """The packaged ``demo.toml``, pointed at these simulators (nothing of the user's config)."""
    from worker.settings import parse_config

    raw = tomllib.loads(resources.files("worker.cli").joinpath("demo.toml").read_text())
    env = {
        "DEMO_SALESFORCE_URL": local.salesforce_url,
        "DEMO_SALESFORCE_TOKEN": local.salesforce_token,
        "DEMO_HUBSPOT_URL": local.hubspot_url,
        "DEMO_HUBSPOT_TOKEN": local.hubspot_token,
    }
    return parse_config(raw, env, source="demo.toml")


def demo_settings(local: LocalService, ledger_url: str) -> Settings:
    """The demo's settings, every one of them from here: nothing of the environment."""
    from pydantic import SecretStr

    from worker.settings import Settings

    return Settings(
        siro_api_url=local.siro_url,
        siro_api_token=SecretStr(local.siro_token),
        broker_url="memory://",  # the embedded broker: the queue lives in this process
        redis_url="memory://",  # so rate limits and webhook dedupe are this process's own
        database_url=ledger_url,
        webhook_secret=SecretStr(secrets.token_urlsafe(24)),
        config=demo_config(local),
    )


def local_pipeline(local: LocalService, config: WritebackConfig, *, ledger: Ledger | None = None,
                   **client: Any) -> Pipeline:
    """A pipeline on the local simulators (the benchmarks'); what it opens closes with them.

    Without ``ledger``, a fresh SQLite ledger in the simulators' folder.
    """
    from worker.ledger import Ledger
    from worker.pipeline.connector_pool import ConnectorPool
    from worker.pipeline.runner import Pipeline
    from worker.siro.client import SiroClient

    if ledger is None:
        ledger = Ledger.open(f"sqlite:///{local.folder}/ledger.db")
        local.callback(ledger.close)
    siro = SiroClient(local.siro_url, local.siro_token, **client)
    local.callback(siro.close)
    pool = ConnectorPool(config)
    local.callback(pool.close)
    return Pipeline(config, connectors=pool, siro=siro, ledger=ledger)


# -- what the demo shows while it waits, and what it prints ----------------------------------


class Progress:
    """The step the demo is waiting on, on stderr: a spinner when stderr is a terminal, else a
    line per step (``writeback demo: ...``). Stdout carries only the results."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._spinner: Spinner | None = None
        self._live: Live | None = None

    def step(self, text: str) -> None:
        """A new step: the spinner's text, or a line of its own."""
        if self.console.is_terminal:
            self.update(text)
        else:
            print(f"writeback demo: {text}", file=sys.stderr, flush=True)

    def update(self, text: str) -> None:
        """The spinner's text (a step's detail, such as a count: no line of its own)."""
        if not self.console.is_terminal:
            return
        if self._live is None:
            self._spinner = Spinner("dots", text)
            self._live = Live(self._spinner, console=self.console, transient=True,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        else:
            self._spinner.update(text=text)

    def pause(self) -> None:
        """Take the spinner off the terminal (before anything is printed there)."""
        if self._live is not None:
            self._live.stop()
            self._live = self._spinner = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pause()


class Output:
    """The demo's results on stdout: text and tables, or with ``--json`` JSON lines only."""

    def __init__(self, progress: Progress, as_json: bool) -> None:
        self.progress = progress
        self.as_json = as_json
        self.console = terminal()

    def print(self, *things: Any, **options: Any) -> None:
        if not self.as_json:
            self.progress.pause()
            self.console.print(*things, **options)

    def indented(self, text: str) -> None:
        """``text`` two columns in, wrapped lines too."""
        width = max(20, self.console.width)
        self.print(textwrap.fill(text, width, initial_indent="  ", subsequent_indent="  ", break_long_words=False,
                                 break_on_hyphens=False), highlight=False, markup=False)

    def json_lines(self, reports: list[RecordingReport]) -> None:
        if self.as_json:
            for report in reports:
                print(json.dumps(report.to_json(), ensure_ascii=False), flush=True)


# -- the ledger ----------------------------------------------------------------------


@dataclass(frozen=True)
class DemoLedger:
    """The demo's ledger file: in a temporary folder deleted on exit, or kept (``--keep``)."""

    path: Path
    kept: bool

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    @classmethod
    @contextmanager
    def opened(cls, keep: str | None) -> Iterator[DemoLedger]:
        """``keep`` None: temporary; ``""`` (``--keep``): a new file in the temporary folder,
        kept; else that path, which must not exist yet (the demo starts from an empty ledger)."""
        if keep is None:
            with tempfile.TemporaryDirectory(prefix="writeback-demo-") as folder:
                yield cls(Path(folder) / "ledger.db", kept=False)
            return
        if not keep:
            handle, name = tempfile.mkstemp(prefix="writeback-demo-", suffix=".db")
            os.close(handle)  # an empty file is an empty SQLite database
            yield cls(Path(name), kept=True)
            return
        path = Path(keep).expanduser().absolute()
        if path.exists():
            raise ConfigError(f"--keep {keep}: {path} already exists; the demo starts from an empty ledger "
                              "(remove it, or give another path)")
        if not path.parent.is_dir():
            raise ConfigError(f"--keep {keep}: there is no folder {path.parent}")
        yield cls(path, kept=True)


# -- the service -------------------------------------------------------------------------


@dataclass
class DemoService:
    local: LocalService
    recordings: DemoRecordings
    settings: Settings
    rt: Runtime
    webhook_url: str


@contextmanager
def demo_service(ledger_url: str, progress: Progress) -> Iterator[DemoService]:
    """The simulators, the embedded worker and the webhook app, on the demo's own settings."""
    progress.step("starting the simulators: Siro, Salesforce (TLS, throwaway CA), HubSpot")
    from celery.contrib.testing.worker import start_worker

    from simulators.local import serve_demo
    from simulators.server import ServedApp
    from worker.cli.service import webhook_app
    from worker.runtime import Runtime, use_runtime
    from worker.service.celery_app import celery_config, configure

    with serve_demo() as (local, recordings):
        settings = demo_settings(local, ledger_url)
        progress.step("starting the embedded worker and the webhook app")
        # Only these settings: the Celery app reads nothing of the environment. The in-memory
        # queue is polled every 50 ms (kombu's default is a second).
        transport = dict(celery_config(settings)["broker_transport_options"], polling_interval=0.05)
        app = configure(settings, broker_transport_options=transport)
        rt = Runtime(settings)
        use_runtime(rt)
        try:
            with start_worker(app, pool="solo", perform_ping_check=False, loglevel="ERROR"), \
                    ServedApp(webhook_app(rt)) as hook:
                try:
                    yield DemoService(local, recordings, settings, rt, f"{hook.url}/webhooks/siro")
                finally:
                    progress.step("stopping the embedded worker and the simulators")
                    _stop_soon(app)
        finally:
            use_runtime(None)
            rt.close()


def _stop_soon(app: Any) -> None:
    """Let the embedded worker stop at once rather than in up to 4 s: Celery's loop for this
    broker looks for a shutdown between 2 s waits for a message, and waits once more after
    it; a message ends a wait. So: the flag ``start_worker`` sets on exit, set now, and two
    no-op tasks (Celery's own ``celery.accumulate``)."""
    from celery.worker import state

    state.should_terminate = 0
    for _ in range(2):
        app.send_task("celery.accumulate")


def wait_for_runs(ledger: Ledger, recording_ids: list[str], at_least: int, progress: Progress) -> None:
    """Until every recording has ``at_least`` finished runs (the worker is asynchronous)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        runs = ledger.runs()
        done = {rid: sum(1 for run in runs if run.recording_id == rid and run.status != "running")
                for rid in recording_ids}
        finished = sum(count >= at_least for count in done.values())
        progress.update(f"waiting for the worker: {finished} of {len(recording_ids)} recordings done")
        if finished == len(recording_ids):
            return
        if time.monotonic() > deadline:
            raise WritebackError(f"the demo's worker did not finish within {WAIT_S:.0f} s: {done}")
        time.sleep(0.05)


# -- the passes ---------------------------------------------------------------------------


@dataclass
class Posted:
    """What the webhook app answered: (recording, HTTP status, body status) a recording, the
    same event again, and one with a wrong secret."""

    answers: list[tuple[str, int, str | None]]
    repeat: tuple[int, str | None]
    forged: int
    started: float


def post_webhooks(service: DemoService, progress: Progress) -> Posted:
    """A webhook per sample recording as Siro sends it, one again, and one with a wrong secret."""
    import httpx

    progress.step("posting a webhook per sample recording")
    secret = service.settings.webhook_secret.get_secret_value()

    def post(http: httpx.Client, recording_id: str, token: str) -> tuple[int, str | None]:
        answer = http.post(service.webhook_url, json=service.local.siro.webhook_payload(recording_id),
                           headers={"Authorization": f"Bearer {token}"})
        try:
            return answer.status_code, answer.json().get("status")
        except (ValueError, AttributeError):
            return answer.status_code, None

    started = time.monotonic()
    with httpx.Client(timeout=30) as http:
        answers = [(rid, *post(http, rid, secret)) for rid in service.recordings.all]
        first = service.recordings.all[0]
        return Posted(answers, post(http, first, secret), post(http, first, "not-the-secret")[0], started)


@dataclass
class Pass:
    reports: list[RecordingReport]
    crm_writes: int  # CRM write requests during the pass
    note_requests: int = 0  # CRM requests that wrote summary notes during the pass
    siro_requests: int = 0  # all so far
    elapsed: float = 0.0
    recordings: int = 0  # the poll pass's
    enqueued: int = 0
    outcomes: int = 0  # in the ledger, after the pass
    runs: int = 0


def worker_pass(service: DemoService, posted: Posted, progress: Progress) -> Pass:
    """What the worker wrote for the webhooks, read back from the ledger."""
    rt, ids = service.rt, service.recordings.all
    wait_for_runs(rt.ledger, ids, 1, progress)
    elapsed = time.monotonic() - posted.started
    reports = [report_from_ledger(rt.ledger, recording_id) for recording_id in ids]
    return Pass(reports, service.local.crm_write_requests(), service.local.crm_note_requests(),
                rt.siro.request_count, elapsed)


def poll_pass(service: DemoService, progress: Progress) -> Pass:
    """One polling pass: the same recordings through the queue again, as a page task."""
    from worker.service.polling import poll_pass as run_pass
    from worker.service.tasks import enqueue_page

    rt, ids = service.rt, service.recordings.all
    service.local.clear_crm_logs()
    progress.step("one polling pass: the same recordings again, as one page task")
    passed = run_pass(rt.siro, rt.ledger, service.settings.config.poll, lambda page: enqueue_page(page, "poll"))
    wait_for_runs(rt.ledger, ids, 2, progress)
    reports = [report_from_ledger(rt.ledger, recording_id) for recording_id in ids]
    return Pass(reports, service.local.crm_write_requests(), service.local.crm_note_requests(),
                recordings=passed.recordings, enqueued=passed.enqueued,
                outcomes=len(rt.ledger.attempts()), runs=len(rt.ledger.runs()))


# -- what it prints ------------------------------------------------------------------------


def print_intro(out: Output, service: DemoService, ledger: DemoLedger) -> None:
    local = service.local
    where = f"{ledger.path} (kept after the demo)" if ledger.kept else "temporary, deleted on exit; --keep keeps it"
    out.print("[bold]siro-writeback demo[/]: the whole service on local simulators, no credentials")
    for name, text in (("Siro", f"{local.siro_url} (simulator)"),
                       ("Salesforce", f"{local.salesforce_url} (simulator, TLS with a throwaway CA)"),
                       ("HubSpot", f"{local.hubspot_url} (simulator)"),
                       ("webhook", service.webhook_url),
                       ("queue", "an embedded in-memory broker; a Celery worker in this process"),
                       ("ledger", where)):
        out.print(f"  {name:<11}{text}", highlight=False)


def print_webhooks(out: Output, posted: Posted) -> None:
    for recording_id, status, answer in posted.answers:
        out.print(f"webhook for {recording_id}: HTTP {status} {answer}", highlight=False)
    out.print(f"the same event again: HTTP {posted.repeat[0]} {posted.repeat[1]}; "
              f"a wrong secret: HTTP {posted.forged}", highlight=False)


def print_written(out: Output, written: Pass) -> None:
    out.json_lines(written.reports)
    out.print("[bold]written by the worker[/]: what was written, and why the rest was not")
    for report in written.reports:
        if report.fields:
            out.print(report_table(report))
        else:
            out.print(Text(f"recording {report.recording_id}: {report.status} ({report.reason}): nothing to write"))
        for line in note_lines(report.notes):
            out.print(line)
    out.print(f"webhooks: {written.elapsed:.2f} s from the first webhook to the last recording written",
              highlight=False)
    out.indented(f"{written.siro_requests} Siro requests, {written.crm_writes} CRM write requests, "
                 f"{written.note_requests} for the summary notes")
    out.indented(f"outcomes: {summarize(written.reports)}")


def print_note(out: Output, service: DemoService) -> None:
    """The Salesforce recording's summary note, as the CRM holds it."""
    if out.as_json:
        return
    from simulators.salesforce.notes import note_text

    report = report_from_ledger(service.rt.ledger, service.recordings.salesforce)
    note = next((note for note in report.notes if note.note_id), None)
    text = note_text(service.local.salesforce, note.note_id) if note and note.note_id else None
    if note is None or text is None:
        return
    out.print(f"[bold]the summary note in Salesforce[/]: ContentNote {note.note_id}, "
              f"on {len(note.attached_to)} records", highlight=False)
    for number, line in enumerate(text):
        out.indented(("" if number == 0 else "  ") + line)


def print_polled(out: Output, polled: Pass) -> None:
    tasks = "page task" if polled.enqueued == 1 else "page tasks"
    out.print(f"poll pass: {polled.recordings} recordings in {polled.enqueued} {tasks}, "
              f"{polled.crm_writes} CRM write requests, {polled.note_requests} for notes", highlight=False)
    out.indented(f"outcomes: {summarize(polled.reports)}")


def print_audit(out: Output, service: DemoService) -> None:
    """``writeback history`` of the Salesforce recording (its runs), and ``writeback revert --dry-run``."""
    if out.as_json:
        return
    from worker.cli.history import when
    from worker.pipeline.revert import revert

    recording_id = service.recordings.salesforce
    out.print(f"[bold]writeback history {recording_id}[/]: every run of it, newest first", highlight=False)
    for entry in service.rt.ledger.history(recording_id):
        run = entry.run
        counts = summarize([RecordingReport(run.recording_id, run.status, [a.line for a in entry.attempts])])
        out.indented(f"run {run.id} · {run.trigger} · {when(run.started_at)} · {run.status}: {counts}")
    service.local.clear_crm_logs()
    report = revert(service.rt.pipeline, recording_id, dry_run=True)
    out.print(f"[bold]writeback revert {recording_id} --dry-run[/]: what undoing it would put back",
              highlight=False)
    out.print(report_table(report, title=f"recording {recording_id}: revert (dry run)"))
    reads = sum(service.local.crm_requests().values()) - service.local.crm_write_requests()
    out.indented(f"{reads} CRM read requests, {service.local.crm_write_requests()} writes; a field a person "
                 "changed since would be left alone (edited_since)")


def print_ledger(out: Output, ledger: DemoLedger, polled: Pass) -> None:
    recorded = f"ledger: {polled.outcomes} field outcomes in {polled.runs} runs"
    if not ledger.kept:
        out.print(f"{recorded}, deleted with the demo (--keep keeps it)", highlight=False)
        return
    if out.as_json:  # stdout is the JSON lines alone
        print(f"writeback demo: {recorded}, kept at {ledger.path}", file=sys.stderr)
        return
    # One line each, never wrapped: a path and commands to copy.
    plain = {"soft_wrap": True, "highlight": False, "markup": False}
    out.print(f"{recorded}, kept at {ledger.path}", **plain)
    if shutil.which("sqlite3"):
        out.print(f"  sqlite3 {ledger.path} 'select recording_id, field, outcome, reason from attempts'", **plain)
    out.print(f"  writeback commands read it with WRITEBACK_DATABASE_URL={ledger.url}", **plain)


def run_demo(*, as_json: bool = False, keep: str | None = None) -> int:
    """Run the demo (see the module); ``keep``: ``--keep``'s value (None: not given)."""
    with Progress() as progress:
        out = Output(progress, as_json)
        with DemoLedger.opened(keep) as ledger:
            with demo_service(ledger.url, progress) as service:
                print_intro(out, service, ledger)
                posted = post_webhooks(service, progress)
                print_webhooks(out, posted)
                print_written(out, worker_pass(service, posted, progress))
                print_note(out, service)
                polled = poll_pass(service, progress)
                print_polled(out, polled)
                print_audit(out, service)
        print_ledger(out, ledger, polled)
    return 0
