"""The deployment files (Dockerfile, docker-compose.yml) checked against the code they run.

No Docker engine is needed: the files are read, and every command they run is
resolved the way its program would resolve it: ``celery -A worker`` through
Celery's own app lookup, ``writeback ...`` through the CLI's parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
EXAMPLE_CONFIG = ROOT / "config" / "writeback.example.toml"

APP_SERVICES = ("worker", "beat", "webhook")
SERVICES = {"redis", "postgres", *APP_SERVICES}
# DESIGN §3 "Environment" (and the README's table): the variables the service reads.
DOCUMENTED_ENV = {
    "SIRO_API_URL",
    "SIRO_API_TOKEN",
    "WRITEBACK_CONFIG",
    "WRITEBACK_BROKER_URL",
    "WRITEBACK_DATABASE_URL",
    "WRITEBACK_WEBHOOK_SECRET",
    "WRITEBACK_REDIS_URL",
}
# Secrets: in a deployment they may only arrive as NAME_FILE, never inline.
SECRET_ENV = {"SIRO_API_TOKEN", "WRITEBACK_DATABASE_URL", "WRITEBACK_WEBHOOK_SECRET"}
# DESIGN §3: the Celery tasks the deployed workers serve.
DOCUMENTED_TASKS = {"worker.tasks.process_recording", "worker.tasks.process_page", "worker.tasks.poll"}
SECRETS_DIR = "/run/secrets"

# Compose interpolation: $$ is a literal $, ${NAME...} and $NAME are variables.
_INTERPOLATION = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)[^}]*\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|)")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# -- helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def argv(command: str | list[Any]) -> list[str]:
    """A compose ``command`` as the argv the container runs (compose unescapes ``$$``)."""
    words = shlex.split(command) if isinstance(command, str) else [str(word) for word in command]
    return [word.replace("$$", "$") for word in words]


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return argv(test)
    kind, *rest = test
    if kind == "CMD-SHELL":
        (line,) = rest
        return argv(line)
    assert kind == "CMD", f"healthcheck test form {kind!r}"
    return argv(rest)


def commands(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    """Every command an app service runs: its main command and its health check."""
    for name in APP_SERVICES:
        yield f"{name}.command", argv(services[name]["command"])
        yield f"{name}.healthcheck", healthcheck_argv(services[name])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def mounted_secrets(service: dict[str, Any]) -> dict[str, str]:
    """Path inside the container -> secret name."""
    mounted = {}
    for entry in service.get("secrets") or []:
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        path = target if target.startswith("/") else f"{SECRETS_DIR}/{target}"
        mounted[path] = source
    return mounted


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Volumes in long form: ``{"source", "target", "read_only"}``."""
    found = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            source, target, *options = entry.split(":")
            found.append({"source": source, "target": target, "read_only": "ro" in options})
        else:
            found.append({"source": entry.get("source"), "target": entry["target"], "read_only": bool(entry.get("read_only"))})
    return found


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def interpolated_names(value: Any) -> set[str]:
    names = set()
    for text in strings(value):
        for match in _INTERPOLATION.finditer(text):
            if match["escaped"]:
                continue
            name = match["braced"] or match["bare"]
            assert name, f"a lone $ in {text!r}: compose would reject it (write $$ for a literal $)"
            names.add(name)
    return names


def seconds(duration: str | int) -> float:
    if isinstance(duration, int):
        return float(duration)
    parts = _DURATION.findall(duration)
    assert parts and "".join(f"{n}{u}" for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def allowed_env() -> set[str]:
    """DESIGN §3's variables, plus the ${VAR}s the shipped config references; each also as NAME_FILE."""
    config_vars = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", EXAMPLE_CONFIG.read_text(encoding="utf-8")))
    names = DOCUMENTED_ENV | config_vars
    return names | {f"{name}_FILE" for name in names}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


# Run in a fresh process, from a neutral directory and without the operator's
# variables, as in the image: `celery -A worker` looks the app up with Celery's
# own find_app, and nothing here configures (or finalises) this test
# process's copy of the app for the tests that run after.
_CELERY_PROBE = """
import json
from celery import Celery
from celery.app.utils import find_app

app = find_app("worker")
facts = {"app": repr(app), "is_celery": isinstance(app, Celery)}
if facts["is_celery"]:
    app.loader.import_default_modules()
    facts["tasks"] = sorted(app.tasks)
    facts["task_time_limit"] = app.conf.task_time_limit
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def celery_app(tmp_path_factory) -> dict[str, Any]:
    """What `celery -A worker` finds: ``{"app", "is_celery", "tasks", "task_time_limit"}``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WRITEBACK_", "SIRO_"))}
    probe = subprocess.run(
        [sys.executable, "-c", _CELERY_PROBE],
        cwd=tmp_path_factory.mktemp("celery-probe"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.fail(f"`celery -A worker` cannot load its app: {last}")
    facts = json.loads(probe.stdout.strip().splitlines()[-1])
    assert facts["is_celery"], f"`celery -A worker` resolves to {facts['app']}, not a Celery app"
    return facts


# -- docker-compose.yml ----------------------------------------------------


def test_compose_has_the_five_services(services):
    assert SERVICES <= set(services)


def test_every_service_has_a_health_check(services):
    for name in SERVICES:
        check = services[name].get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        assert healthcheck_argv(services[name]), f"{name}'s health check runs nothing"


def test_app_services_share_one_image_start_after_healthy_backends_and_restart(services):
    images = {services[name].get("image") for name in APP_SERVICES}
    assert len(images) == 1 and None not in images, f"one image for all processes, got {images}"
    for name in SERVICES:
        assert services[name].get("restart") == "unless-stopped", name
    for name in APP_SERVICES:
        depends = services[name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for backend in ("redis", "postgres"):
            assert depends.get(backend, {}).get("condition") == "service_healthy", f"{name} -> {backend}"


def test_celery_commands_name_the_worker_app(services):
    worker = argv(services["worker"]["command"])
    beat = argv(services["beat"]["command"])
    assert worker[:4] == ["celery", "-A", "worker", "worker"], worker
    assert beat[:4] == ["celery", "-A", "worker", "beat"], beat
    schedule = beat[beat.index("--schedule") + 1]
    assert any(
        PurePosixPath(schedule).parent == PurePosixPath(mount["target"]) for mount in mounts(services["beat"])
    ), "beat's schedule file should live on a volume"


def test_the_worker_health_check_pings_its_own_node(services):
    check = services["worker"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL", "$HOSTNAME needs a shell to expand"
    words = healthcheck_argv(services["worker"])
    assert words[:5] == ["celery", "-A", "worker", "inspect", "ping"], words
    assert words[words.index("--destination") + 1] == "celery@$HOSTNAME"


def test_celery_app_named_in_the_commands_resolves(celery_app):
    # Waits on the Celery app (worker.app) being written.
    assert celery_app["is_celery"]


def test_tasks_named_anywhere_exist_in_the_celery_app(compose, celery_app):
    # Waits on the Celery app and worker.service.tasks being written.
    named = {match for text in strings(compose) for match in re.findall(r"\bworker\.tasks\.\w+", text)}
    missing = sorted((named | DOCUMENTED_TASKS) - set(celery_app["tasks"]))
    assert not missing, f"not registered in the Celery app: {missing}"


def test_worker_stop_grace_period_outlasts_the_task_hard_time_limit(services, celery_app):
    grace = seconds(services["worker"].get("stop_grace_period", "10s"))
    assert grace >= 5 * 60, "the worker needs minutes for a warm shutdown"
    # Waits on the Celery app: its hard limit must fit inside the grace period.
    limit = celery_app["task_time_limit"]
    assert limit, "the Celery app sets no hard task_time_limit"
    assert grace > float(limit), f"stop_grace_period {grace}s <= task_time_limit {limit}s"


def test_writeback_commands_parse(services):
    # `webhook` and `ready` wait on the CLI's new subcommands.
    from worker.cli.parser import build_parser

    seen = {}
    for where, words in commands(services):
        if words[0] != "writeback":
            continue
        try:
            seen[where] = build_parser().parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"{where}: `{shlex.join(words)}` does not parse with worker.cli.parser.build_parser()")
    assert seen["webhook.command"].command == "webhook"
    assert seen["beat.healthcheck"].command == "ready"
    webhook = seen["webhook.command"]
    assert str(webhook.host) == "0.0.0.0" and int(webhook.port) == 8000


def test_webhook_publishes_its_port_and_checks_healthz_with_urllib(services):
    webhook = services["webhook"]
    words = argv(webhook["command"])
    port = words[words.index("--port") + 1]
    assert any(str(entry).split(":")[-1] == port for entry in webhook["ports"]), webhook["ports"]
    check = healthcheck_argv(webhook)
    assert check[:2] == ["python", "-c"], "no curl in the slim image"
    assert "urllib" in check[2] and f":{port}/healthz" in check[2]


@pytest.mark.e2e  # starts processes
def test_webhook_health_check_exits_by_the_answer(services):
    """Runs the health check's Python against a local server: 0 on 200, non-zero on 503."""
    code = healthcheck_argv(services["webhook"])[2]
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        local = code.replace("127.0.0.1:8000", f"127.0.0.1:{server.server_address[1]}")
        assert local != code
        run = [sys.executable, "-c", local]
        assert subprocess.run(run, capture_output=True, timeout=30).returncode == 0
        status["code"] = 503
        assert subprocess.run(run, capture_output=True, timeout=30).returncode != 0
    finally:
        server.shutdown()
        server.server_close()


def test_app_services_use_only_documented_variables(services):
    allowed = allowed_env()
    for name in APP_SERVICES:
        service = services[name]
        env = environment(service)
        unknown = sorted((set(env) | interpolated_names(service)) - allowed)
        assert not unknown, f"{name} uses variables DESIGN §3 does not document: {unknown}"
        inline = sorted(SECRET_ENV & set(env))
        assert not inline, f"{name} sets secrets inline; use {[f'{n}_FILE' for n in inline]}"


def test_file_variables_point_at_mounted_secrets(services):
    for name in (*APP_SERVICES, "postgres"):
        service = services[name]
        secrets = mounted_secrets(service)
        for key, value in environment(service).items():
            if key.endswith("_FILE"):
                assert value in secrets, f"{name}: {key}={value} is not a secret mounted in that service"


def test_app_services_get_the_settings_they_need(services):
    for name in APP_SERVICES:
        env = environment(services[name])
        for needed in ("SIRO_API_TOKEN_FILE", "WRITEBACK_BROKER_URL", "WRITEBACK_DATABASE_URL_FILE", "WRITEBACK_CONFIG"):
            assert needed in env, f"{name} lacks {needed}"
        assert env["WRITEBACK_BROKER_URL"].startswith("redis://redis:"), env["WRITEBACK_BROKER_URL"]
    assert "WRITEBACK_WEBHOOK_SECRET_FILE" in environment(services["webhook"])


def test_secrets_are_files_under_secrets_dir(compose, services):
    defined = compose.get("secrets") or {}
    assert defined, "no top-level secrets"
    for name, spec in defined.items():
        assert set(spec) == {"file"}, f"secret {name}: only file-based secrets, got {spec}"
        path = (ROOT / spec["file"]).resolve()
        assert path.is_relative_to(ROOT / "secrets"), f"secret {name}: {spec['file']} is not under ./secrets/"
    for name, service in services.items():
        for secret in mounted_secrets(service).values():
            assert secret in defined, f"{name} mounts undefined secret {secret}"
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert {"secrets/", "secrets", "/secrets/", "/secrets"} & set(gitignore), ".gitignore must list secrets/"


def test_config_file_is_mounted_read_only_where_writeback_config_points(services):
    assert EXAMPLE_CONFIG.is_file()
    for name in APP_SERVICES:
        service = services[name]
        target = environment(service)["WRITEBACK_CONFIG"]
        (mount,) = [m for m in mounts(service) if m["target"] == target]
        assert PurePosixPath(mount["source"]) == PurePosixPath("config/writeback.toml"), mount
        assert mount["read_only"], f"{name}: the config mount should be read-only"


def test_only_one_beat(services):
    beat = services["beat"]
    assert (beat.get("deploy") or {}).get("replicas", 1) == 1
    assert beat.get("scale", 1) == 1


def test_redis_persists_the_broker(services):
    redis = services["redis"]
    words = argv(redis["command"])
    assert words[0] == "redis-server"
    assert words[words.index("--appendonly") + 1] == "yes", "queued tasks must survive a restart"
    assert "/data" in {m["target"] for m in mounts(redis)}
    assert "redis-cli ping" in " ".join(healthcheck_argv(redis))


def test_postgres_takes_its_password_from_a_secret(services):
    postgres = services["postgres"]
    env = environment(postgres)
    assert env.get("POSTGRES_USER") == "writeback" and env.get("POSTGRES_DB") == "writeback"
    assert "POSTGRES_PASSWORD" not in env
    assert env.get("POSTGRES_PASSWORD_FILE", "").startswith(f"{SECRETS_DIR}/")
    assert "/var/lib/postgresql/data" in {m["target"] for m in mounts(postgres)}
    check = healthcheck_argv(postgres)
    assert check[0] == "pg_isready" and check[check.index("-U") + 1] == "writeback"


# -- Dockerfile --------------------------------------------------------------


def test_dockerfile_installs_the_postgres_extra_and_runs_as_non_root():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any("pip install" in run and "[postgres]" in run for run in runs), "the postgres extra is not installed"
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"runs as {users[-1]}"
    assert not [args for keyword, args in instructions if keyword == "ENTRYPOINT"]


def test_dockerfile_default_command_is_the_worker(services):
    (cmd,) = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    assert json.loads(cmd) == argv(services["worker"]["command"]), "exec-form CMD, the worker's command"


def test_dockerfile_copies_the_package_and_bakes_in_no_secret():
    instructions = dockerfile_instructions()
    copied = {source for keyword, args in instructions if keyword == "COPY" for source in args.split()[:-1]}
    assert {"pyproject.toml", "README.md", "worker", "connectors"} <= copied, copied
    assert not any("secret" in source for source in copied)
    for keyword, args in instructions:
        if keyword in {"ENV", "ARG"}:
            assert not re.search(r"TOKEN|SECRET|DATABASE_URL|PASSWORD", args), f"{keyword} {args}"
    # The package's metadata (and its extra) as pip will read it.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "postgres" in project["optional-dependencies"]


def test_dockerignore_keeps_secrets_and_local_state_out():
    entries = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    for needed in (".venv", ".git", "tests", "bench", "secrets"):
        assert needed in entries, f".dockerignore lacks {needed}"
    assert entries & {"*.db", "**/*.db"}
    assert entries & {"__pycache__", "**/__pycache__"}
