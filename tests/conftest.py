"""Suite-wide fixtures (each module under tests/fixtures serves one party) and the test markers.

Tests mirror the packages (tests/pipeline, tests/ledger, ...). Unit tests need
no server; the others carry markers, so that a fast loop and the full run are
each one command (``pytest -m "not e2e"``, ``pytest``):

* ``e2e``: starts processes of ours (the CLI, Celery workers, pip, ...);
* ``redis``: a private ``redis-server`` (tests/fixtures/redis.py);
* ``postgres``: a fresh PostgreSQL database (skipped when none answers);
* ``slow``: tens of seconds or more.

A test is marked by what it uses: the fixtures below that start a process
or a server mark it themselves, and a test that starts one in its own body
says so with ``@pytest.mark.e2e``.
"""

import pytest

# Before any import of it: the contract suite's assertions give pytest's detailed messages.
pytest.register_assert_rewrite("connectors.testing")

pytest_plugins = [
    "tests.fixtures.salesforce",
    "tests.fixtures.hubspot",
    "tests.fixtures.siro",
    "tests.fixtures.databases",
    "tests.fixtures.redis",
    "tests.fixtures.service",
    "tests.fixtures.memory_crm",
    "tests.fixtures.plugins",
    "tests.fixtures.cli",
]

# Fixtures whose use makes a test an end-to-end one: they start processes.
_PROCESS_FIXTURES = frozenset({"world", "world_factory", "celery_app", "installed_plugin"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if "redis_server" in used:
            item.add_marker(pytest.mark.redis)
        if "postgres_url" in used:
            item.add_marker(pytest.mark.postgres)
        if used & _PROCESS_FIXTURES:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _a_process_needs_a_marker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that starts a process without the ``e2e`` marker fails, naming the marker, so the fast
    loop stays free of processes without anyone having to remember (a ``redis`` test may start its
    private ``redis-server``, nothing else)."""
    if request.node.get_closest_marker("e2e"):
        return
    import subprocess

    original = subprocess.Popen.__init__
    redis_allowed = request.node.get_closest_marker("redis") is not None

    def guarded(self: subprocess.Popen, args: object, *more: object, **kwargs: object) -> None:
        program = str(args[0] if isinstance(args, (list, tuple)) and args else args)
        if redis_allowed and program.endswith("redis-server"):
            return original(self, args, *more, **kwargs)
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it @pytest.mark.e2e")

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)
