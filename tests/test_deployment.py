"""The deployment files (Dockerfile, docker-compose.yml) checked against the code they run.

No Docker engine is needed: the files are read, and every command they run is
resolved the way its program would resolve it: ``celery -A worker`` through
Celery's own app lookup, ``writeback ...`` through the CLI's parser. A first
start is simulated without Docker too: the README's "before `docker compose
up`" steps are followed into a temporary folder, and each app service's
settings are loaded from its compose environment and mounts the way its
process loads them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from datetime import UTC, datetime
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
        for needed in ("WRITEBACK_BROKER_URL", "WRITEBACK_DATABASE_URL_FILE", "WRITEBACK_CONFIG"):
            assert needed in env, f"{name} lacks {needed}"
        assert env["WRITEBACK_BROKER_URL"].startswith("redis://redis:"), env["WRITEBACK_BROKER_URL"]
        # Only the worker calls Siro (polling passes are its tasks): the webhook, facing the internet, and
        # beat hold no Siro token.
        assert ("SIRO_API_TOKEN_FILE" in env) == (name == "worker"), name
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


# -- first start: one image, CRM secrets on the worker only, loopback, shadow -----

README = ROOT / "README.md"
# The processes that talk to a CRM (and so load with talks_to_crm=True): the
# Celery worker builds its connections on worker_init. Beat and the webhook app
# (and their health checks) load the config with talks_to_crm=False.
TALKS_TO_CRM = {"worker": True, "beat": False, "webhook": False, "console": True}  # the console approves, reverts
_CONFIG_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Compose interpolation with its modifiers: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, $NAME.
_COMPOSE_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                          r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def crm_variables() -> set[str]:
    """The ${VAR}s the example config names, commented examples included, that DESIGN §3 does
    not document: the CRMs' credentials (SALESFORCE_ACCESS_TOKEN, HUBSPOT_ACCESS_TOKEN, ...)."""
    return set(_CONFIG_VAR.findall(EXAMPLE_CONFIG.read_text(encoding="utf-8"))) - DOCUMENTED_ENV


def active_crm_variables() -> set[str]:
    """The ${VAR}s of the example config's active [[connections]] tables: what a worker needs."""
    connections = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8")).get("connections", [])
    return {name for text in strings(connections) for name in _CONFIG_VAR.findall(text)}


def readme_first_start_steps() -> list[list[str]]:
    """The shell lines of README "docker-compose"'s "Before `docker compose up`" block, as words."""
    text = README.read_text(encoding="utf-8")
    assert "\n### docker-compose\n" in text, "README has no '### docker-compose' section"
    section = re.split(r"\n#{2,3} ", text.split("\n### docker-compose\n", 1)[1], maxsplit=1)[0]
    block = re.search(r"Before `docker compose up[^`]*`:\s*```sh\n(.*?)```", section, re.DOTALL)
    assert block, "README's docker-compose section has no 'Before `docker compose up`' sh block"
    return [words for line in block.group(1).splitlines() if (words := shlex.split(line, comments=True))]


def secret_files_written(steps: list[list[str]]) -> set[str]:
    """The files the ``printf ... > secrets/NAME`` steps write."""
    return {words[words.index(">") + 1] for words in steps if words[0] == "printf" and ">" in words}


def shell_value(name: str) -> str:
    """What the operator's shell variable ``$name`` holds in the simulated first start."""
    return f"first-start-{name.lower().replace('_', '-')}-0123456789"


def follow_readme_steps(project: Path, steps: list[list[str]]) -> None:
    """Run the README's steps in ``project`` (a stand-in for the checkout), in Python: no shell."""
    def expand(word: str) -> str:
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda match: shell_value(match.group(1)), word)

    for words in steps:
        command, *args = words
        if command == "cp":
            source, target = args
            (project / target).parent.mkdir(parents=True, exist_ok=True)
            (project / target).write_bytes((ROOT / source).read_bytes())
        elif command == "mkdir":
            mode = int(args[args.index("-m") + 1], 8) if "-m" in args else 0o777
            paths = [arg for i, arg in enumerate(args) if not arg.startswith("-") and args[i - 1] != "-m"]
            for path in paths:
                (project / path).mkdir(mode=mode, parents="-p" in args)
        elif command == "printf":
            assert args[:1] == ["%s"] and len(args) == 4 and args[2] == ">", f"printf step: {shlex.join(words)}"
            target = project / args[3]
            assert target.parent.is_dir(), f"`{shlex.join(words)}`: {args[3]}'s folder is not made by an earlier step"
            target.write_text(expand(args[1]), encoding="utf-8")
        elif command == "chmod":
            continue  # file modes: nothing to simulate for a load in this process
        else:
            pytest.fail(f"README step `{shlex.join(words)}`: teach follow_readme_steps what it does")


def interpolate(text: str, host: dict[str, str] | None = None) -> str:
    """Compose's interpolation of one value, with the operator's shell ``host`` environment."""
    host = host or {}

    def substitute(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        value, op, arg = host.get(name), match["op"], match["arg"]
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and not value:
            pytest.fail(f"compose needs ${name} set on the host: {arg}")
        if op in (":+", "+"):
            return arg if value else ""
        return value or ""

    parts = text.split("$$")
    return "$".join(_COMPOSE_VAR.sub(substitute, part) for part in parts)


def container_environment(compose: dict[str, Any], service: dict[str, Any], project: Path) -> dict[str, str]:
    """The service's environment as its process sees it, with the paths it reads mapped onto
    ``project``: a mounted ``/run/secrets/NAME`` to that secret's file, a bind mount's target
    (the config) to its source. A path nothing is mounted at stays as it is (and is missing)."""
    secrets = mounted_secrets(service)
    defined = compose.get("secrets") or {}
    binds = {m["target"]: m["source"] for m in mounts(service) if str(m["source"]).startswith((".", "/"))}
    env = {}
    for key, value in environment(service).items():
        value = interpolate(value)
        if value in secrets:
            value = str(project / defined[secrets[value]]["file"])
        elif value in binds:
            value = str(project / binds[value])
        env[key] = value
    return env


def load_as(name: str, env: dict[str, str]) -> Any:
    """Load the settings the way service ``name``'s process does (its config from WRITEBACK_CONFIG)."""
    from worker.runtime import load

    return load(config_path=None, env=env, talks_to_crm=TALKS_TO_CRM[name])


@pytest.fixture
def first_start(tmp_path) -> Path:
    """A project folder after the README's "before `docker compose up`" steps."""
    project = tmp_path / "checkout"
    project.mkdir()
    follow_readme_steps(project, readme_first_start_steps())
    return project


def _distinct_nodes(root: yaml.Node) -> Iterator[yaml.Node]:
    """Every node of a composed YAML document once: an alias is the node it names, not a copy."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def test_one_image_is_built_once_for_every_app_service(services):
    builders = sorted(name for name, service in services.items() if "build" in service)
    assert len(builders) == 1, f"the image is built by {builders}: one `build:`, or each builds it again"
    (builder,) = builders
    assert builder in APP_SERVICES, builder
    build = services[builder]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (ROOT / context).resolve() == ROOT and DOCKERFILE.is_file()
    image = services[builder].get("image")
    assert image, f"{builder} builds an image without naming it: the other services cannot run it"
    for name in APP_SERVICES:
        assert services[name].get("image") == image, f"{name} runs {services[name].get('image')}, not {image}"
        if name != builder:
            # Without it compose may pull a same-named image from a registry for this service.
            assert services[name].get("pull_policy") == "never", f"{name}: pull_policy: never (built by {builder})"


def test_each_crm_secret_is_declared_once_and_only_the_worker_gets_crm_secrets(compose, services):
    worker = services["worker"]
    worker_env = environment(worker)
    needed = active_crm_variables()
    assert needed, "the example config names no CRM credential"
    crm_secrets = set()
    for variable in sorted(needed):
        path = worker_env.get(f"{variable}_FILE")
        assert path, f"the worker lacks {variable}_FILE (the example config's ${{{variable}}})"
        assert path in mounted_secrets(worker), f"{variable}_FILE={path} is not mounted in the worker"
        crm_secrets.add(mounted_secrets(worker)[path])

    # Declared once: one mapping key per variable, one list entry and one definition per secret,
    # however many services an alias carries them into.
    nodes = list(_distinct_nodes(yaml.compose(COMPOSE_FILE.read_text(encoding="utf-8"))))
    keys = [key for node in nodes if isinstance(node, yaml.MappingNode) for key, _ in node.value]
    for variable in needed:
        found = [key for key in keys if key.value == f"{variable}_FILE"]
        assert len(found) == 1, f"{variable}_FILE is declared {len(found)} times (lines {[k.start_mark.line + 1 for k in found]})"
    secret_lists = [value for node in nodes if isinstance(node, yaml.MappingNode)
                    for key, value in node.value if key.value == "secrets" and isinstance(value, yaml.SequenceNode)]
    for secret in crm_secrets:
        entries = {id(entry) for sequence in secret_lists for entry in sequence.value
                   if (entry.value if isinstance(entry, yaml.ScalarNode) else
                       next((v.value for k, v in entry.value if k.value == "source"), None)) == secret}
        assert len(entries) == 1, f"secret {secret} is listed {len(entries)} times: declare it once (an x- anchor)"
        assert len([key for key in keys if key.value == secret]) == 1, f"secret {secret}: one definition"

    # Only the processes that talk to a CRM get a CRM's credentials, in any form.
    crm_names = crm_variables() | needed
    for name, service in services.items():
        if TALKS_TO_CRM.get(name):
            continue
        given = sorted(key for key in environment(service) if key.removesuffix("_FILE") in crm_names)
        assert not given, f"{name} talks to no CRM but gets {given}"
        mounted = sorted(crm_secrets & set(mounted_secrets(service).values()))
        assert not mounted, f"{name} talks to no CRM but mounts {mounted}"


def test_the_webhook_port_is_published_on_loopback_only(services):
    ports = services["webhook"].get("ports") or []
    assert ports, "the webhook publishes no port"
    for entry in ports:
        if isinstance(entry, dict):
            host = str(entry.get("host_ip", ""))
        else:
            parts = str(entry).rsplit(":", 2)
            host = parts[0] if len(parts) == 3 else ""
        assert host == "127.0.0.1", f"webhook port {entry!r} is published on {host or 'every interface'}"


def test_the_readme_steps_create_every_file_compose_reads(compose, services):
    steps = readme_first_start_steps()
    written = secret_files_written(steps)
    for name, spec in (compose.get("secrets") or {}).items():
        path = str(PurePosixPath(spec["file"]))
        assert path in written, f"secret {name}: the README's steps do not create {spec['file']}"
    copied = {words[2] for words in steps if words[0] == "cp"}
    for name in APP_SERVICES:
        for mount in mounts(services[name]):
            if str(mount["source"]).startswith("."):
                assert str(PurePosixPath(mount["source"])) in copied, f"{name} mounts {mount['source']}"
    # The compose file repeats the steps in its header comment: the same secret files.
    header = "\n".join(line.lstrip("# ") for line in COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
                       if line.startswith("#   printf "))
    assert secret_files_written([shlex.split(line) for line in header.splitlines()]) == written


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_starts_the_first_time(compose, services, first_start, name):
    """The README's steps, then the service's own environment and mounts: its settings load."""
    from worker.errors import ConfigError

    service = services[name]
    env = container_environment(compose, service, first_start)
    try:
        settings = load_as(name, env)
    except ConfigError as exc:
        pytest.fail(f"{name} would crash-loop on its first start: {exc}")
    assert settings.config_path and Path(settings.config_path).parent == first_start / "config"
    if name == "worker":  # the one process that calls Siro
        assert settings.siro_api_token and settings.siro_api_token.get_secret_value() == shell_value("SIRO_TOKEN")
    else:
        assert settings.siro_api_token is None
    assert settings.database_url == f"postgresql://writeback:{shell_value('PG_PASSWORD')}@postgres:5432/writeback"
    assert settings.broker_url.startswith("redis://redis:")
    if name == "webhook":
        assert settings.webhook_secret and settings.webhook_secret.get_secret_value() == shell_value("WEBHOOK_SECRET")
    modes = {connection.display_name: connection.mode for connection in settings.config.connections}
    assert modes and set(modes.values()) == {"shadow"}, f"{name} starts with {modes}, not in shadow mode"
    if TALKS_TO_CRM[name]:
        (salesforce,) = [c for c in settings.config.connections if c.connector == "salesforce"]
        assert salesforce.options["access_token"] == shell_value("SALESFORCE_TOKEN")


def test_without_the_crm_secret_only_the_worker_refuses_to_start(compose, services, first_start):
    from worker.errors import ConfigError

    worker = services["worker"]
    for variable in active_crm_variables():
        path = environment(worker).get(f"{variable}_FILE")
        assert path in mounted_secrets(worker), f"the worker mounts no secret for {variable}_FILE"
        (first_start / compose["secrets"][mounted_secrets(worker)[path]]["file"]).unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="SALESFORCE_ACCESS_TOKEN"):
        load_as("worker", container_environment(compose, services["worker"], first_start))
    for name in ("beat", "webhook"):
        settings = load_as(name, container_environment(compose, services[name], first_start))
        assert settings.config.connections, name


def test_the_example_config_and_so_compose_start_in_shadow_mode(services):
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    connections = tomllib.loads(text).get("connections", [])
    modes = {table.get("name", table.get("connector")): table.get("mode", "live") for table in connections}
    assert modes and set(modes.values()) == {"shadow"}, f"the example config starts {modes}"
    # The commented examples too: a user who uncomments one starts it in shadow mode.
    blocks = re.split(r"(?m)^#?[ \t]*\[\[connections\]\][^\n]*\n", text)[1:]
    assert len(blocks) > len(connections), "no commented connection example"
    for block in blocks:
        block = re.split(r"(?m)^#?[ \t]*\[(?!connections[.\]])", block)[0]
        assert re.search(r'(?m)^#?[ \t]*mode[ \t]*=[ \t]*"shadow"', block), f"no mode = \"shadow\" in:\n{block}"
    # What compose mounts is the copy the README's first step makes of this file.
    cp = [words for words in readme_first_start_steps() if words[0] == "cp"]
    assert [words[1:] for words in cp] == [["config/writeback.example.toml", "config/writeback.toml"]]
    for name in APP_SERVICES:
        assert any(PurePosixPath(m["source"]) == PurePosixPath("config/writeback.toml") for m in mounts(services[name]))


# -- observability: console, Flower, Prometheus, Grafana (DESIGN §8) -----------------

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"


def published_on_loopback(service: dict[str, Any]) -> list[str]:
    """The container ports a service publishes, each asserted to be on 127.0.0.1 only."""
    ports = []
    for entry in service.get("ports") or []:
        host, _, container = str(entry).rpartition(":")
        assert host.startswith("127.0.0.1:"), f"{entry!r} is published on {host or 'every interface'}"
        ports.append(container)
    return ports


def example_metrics_port() -> int:
    return tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["worker"]["metrics_port"]


def test_the_console_runs_the_image_with_its_token_the_ledger_and_the_crm(compose, services, first_start):
    from worker.cli.parser import build_parser

    console = services["console"]
    assert console["image"] == services["worker"]["image"] and console.get("pull_policy") == "never"
    words = argv(console["command"])
    assert words[0] == "writeback", words
    args = build_parser().parse_args(words[1:])
    assert (args.command, args.host, int(args.port)) == ("console", "0.0.0.0", 8090)
    assert published_on_loopback(console) == ["8090"]
    env = environment(console)
    assert env["WRITEBACK_CONSOLE_TOKEN_FILE"] in mounted_secrets(console)
    assert env["WRITEBACK_DATABASE_URL_FILE"] == environment(services["worker"])["WRITEBACK_DATABASE_URL_FILE"]
    assert "WRITEBACK_CONSOLE_TOKEN" not in env and "SIRO_API_TOKEN_FILE" not in env
    allowed = allowed_env() | {"WRITEBACK_CONSOLE_TOKEN_FILE"}
    assert not (set(env) | interpolated_names(console)) - allowed
    for key, value in env.items():
        if key.endswith("_FILE"):
            assert value in mounted_secrets(console), key
    check = healthcheck_argv(console)
    assert check[:2] == ["python", "-c"] and ":8090/" in check[2]
    # Approving and reverting write to the CRM: the console loads the CRM's credentials as the worker does.
    settings = load_as("console", container_environment(compose, console, first_start))
    (salesforce,) = [c for c in settings.config.connections if c.connector == "salesforce"]
    assert salesforce.options["access_token"] == shell_value("SALESFORCE_TOKEN")


def test_flower_is_the_official_image_on_the_broker_and_adds_no_dependency(services):
    flower = services["flower"]
    assert str(flower["image"]).startswith("mher/flower:")
    words = argv(flower["command"])
    assert words[0] == "celery" and "flower" in words
    broker = words[words.index("--broker") + 1]  # the YAML alias of the workers' own broker URL
    assert broker == environment(services["worker"])["WRITEBACK_BROKER_URL"]
    assert published_on_loopback(flower) == ["5555"]
    assert flower["depends_on"]["redis"]["condition"] == "service_healthy"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = [*pyproject["project"]["dependencies"],
                *(dep for extra in pyproject["project"].get("optional-dependencies", {}).values() for dep in extra)]
    assert not [dep for dep in declared if re.match(r"flower\b", dep)], "Flower runs from its own image"


def test_prometheus_scrapes_the_webhook_and_every_worker_on_its_metrics_port(services):
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    webhook_words = argv(services["webhook"]["command"])
    webhook_port = webhook_words[webhook_words.index("--port") + 1]
    assert jobs["writeback-webhook"]["static_configs"][0]["targets"] == [f"webhook:{webhook_port}"]
    (workers,) = jobs["writeback-worker"]["dns_sd_configs"]
    # Every worker of `--scale worker=N`, on the port the shipped config serves /metrics on.
    assert workers["names"] == ["worker"] and workers["port"] == example_metrics_port() > 0
    assert str(example_metrics_port()) in [str(port) for port in services["worker"]["expose"]]
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs.values())
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["observability"] and services["grafana"]["profiles"] == ["observability"]
    (rules,) = config["rule_files"]
    mount = next(m for m in mounts(prometheus) if PurePosixPath(rules).is_relative_to(m["target"]))
    assert (ROOT / mount["source"] / PurePosixPath(rules).relative_to(mount["target"])).is_file()


def test_the_alert_rules_watch_dead_letters_and_poll_lag():
    rules = {rule["alert"]: rule for group in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(
        encoding="utf-8"))["groups"] for rule in group["rules"]}
    assert re.fullmatch(r"max\(writeback_dead_letters\) > 0", rules["WritebackDeadLetters"]["expr"])
    assert seconds(rules["WritebackDeadLetters"]["for"]) == 600
    assert re.fullmatch(r"max\(writeback_poll_lag_seconds\) > \d+", rules["WritebackPollLag"]["expr"])
    promtool = shutil.which("promtool")
    if promtool:
        run = subprocess.run([promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr


def test_the_dashboard_and_alerts_name_only_metrics_the_service_exports(tmp_path):
    from worker import metrics
    from worker.ledger import Ledger

    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db")
    ledger.advance_watermark("poll", datetime.now(UTC))
    try:
        exported = {family.name for family in metrics.LedgerCollector(lambda: ledger).collect()}
    finally:
        ledger.close()
    for metric in (metrics.FIELD_OUTCOMES, metrics.NOTE_OUTCOMES, metrics.CRM_REQUESTS, metrics.SIRO_REQUESTS,
                   metrics.WEBHOOK_DELIVERIES):
        exported.add(metric._name + "_total")
    for metric in (metrics.TASK_SECONDS, metrics.WEBHOOK_TO_WRITE_SECONDS):
        exported |= {metric._name + suffix for suffix in ("_bucket", "_sum", "_count")}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    alerts = (PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8")
    named = set(re.findall(r"\bwriteback_[a-z_]+", " ".join(expressions) + alerts))
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    for needed in ("writeback_field_outcomes_total", "writeback_crm_requests_total",
                   "writeback_webhook_to_write_seconds_bucket", "writeback_dead_letters",
                   "writeback_pending_reviews", "writeback_poll_lag_seconds"):
        assert needed in named, f"the dashboard does not show {needed}"
    assert any("histogram_quantile(0.95" in e for e in expressions)
    assert any("histogram_quantile(0.5" in e for e in expressions)
    # Grafana loads it: the provisioning points at where compose mounts it.
    grafana = services_of_compose()["grafana"]
    target = next(m["target"] for m in mounts(grafana) if m["source"] == "./deploy/grafana/dashboard.json")
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/writeback.yml").read_text())
    assert PurePosixPath(target).parent == PurePosixPath(provider["providers"][0]["options"]["path"])


def services_of_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
