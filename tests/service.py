"""The deployed service for end-to-end tests: real processes on a private Redis.

``ServiceProcesses`` writes a config file, then starts the real entry points
as subprocesses, exactly as docker-compose does: ``celery -A worker worker``,
``celery -A worker beat`` and ``writeback webhook``, with the environment of
DESIGN §3 pointing at the test's simulators, its private ``redis-server`` and
its ledger database. Each process gets its own session (process group), so a
test can SIGKILL a whole worker, pool children included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from simulators.server import free_port

WEBHOOK_SECRET = "whsec-e2e-0123456789abcdef"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """A TOML file from a dict shaped like the config (tables of tables as inline tables)."""
    lines: list[str] = []
    for connection in config.get("connections", []):
        lines.append("[[connections]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in connection.items()]
    for section in ("poll", "retry", "worker"):
        if section in config:
            lines.append(f"[{section}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in config[section].items()]
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # a broken file here would be the test's bug
    return path


class ServiceProcesses:
    def __init__(self, folder: Path, env: Mapping[str, str]) -> None:
        self.folder = folder
        self.env = dict(env)
        self.processes: list[subprocess.Popen] = []

    def _start(self, name: str, command: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.folder / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=self.folder,
        )
        handle.close()
        self.processes.append(process)
        return process, log

    def start_worker(self, name: str = "w1", *, concurrency: int = 1, timeout: float = 60) -> subprocess.Popen:
        process, log = self._start(name, [
            sys.executable, "-m", "celery", "-A", "worker", "worker", "-n", f"{name}@%h", "--concurrency",
            str(concurrency), "--loglevel", "INFO", "--without-mingle", "--without-gossip",
        ])
        wait_for(lambda: " ready." in log.read_text(errors="replace") or process.poll() is not None, timeout,
                 f"worker {name} did not start")
        if process.poll() is not None:
            raise AssertionError(f"worker {name} exited {process.returncode}:\n{log.read_text()[-3000:]}")
        return process

    def start_beat(self, timeout: float = 30) -> subprocess.Popen:
        process, log = self._start("beat", [
            sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO",
            "--schedule", str(self.folder / "celerybeat-schedule"),
        ])
        wait_for(lambda: "beat: Starting" in log.read_text(errors="replace") or process.poll() is not None,
                 timeout, "beat did not start")
        return process

    def start_webhook(self, timeout: float = 30) -> str:
        port = free_port()
        process, log = self._start("webhook", [sys.executable, "-m", "worker.cli.main", "webhook", "--port", str(port)])
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if process.poll() is not None:
                return True
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, "the webhook app did not start")
        if process.poll() is not None:
            raise AssertionError(f"webhook exited {process.returncode}:\n{log.read_text()[-3000:]}")
        return url

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], env=self.env, cwd=self.folder,
                              capture_output=True, text=True, timeout=timeout)

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Celery worker and its pool children)."""
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(30)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
                         for log in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    self.kill(process)


def wait_for(predicate: Callable[[], Any], timeout: float, message: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (after {timeout:.0f} s)")
        time.sleep(interval)


@contextmanager
def service_processes(folder: Path, env: Mapping[str, str]) -> Iterator[ServiceProcesses]:
    service = ServiceProcesses(folder, env)
    try:
        yield service
    finally:
        service.stop()


def service_env(*, config: Path, broker_url: str, database_url: str, siro_url: str, siro_token: str,
                ca_bundle: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of DESIGN §3 for the service processes, nothing inherited that could leak in."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WRITEBACK_", "SIRO_", "REQUESTS_CA_BUNDLE"))}
    env.update(
        WRITEBACK_CONFIG=str(config),
        WRITEBACK_BROKER_URL=broker_url,
        WRITEBACK_DATABASE_URL=database_url,
        WRITEBACK_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SIRO_API_URL=siro_url,
        SIRO_API_TOKEN=siro_token,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    if ca_bundle:
        env["REQUESTS_CA_BUNDLE"] = ca_bundle
    return env
