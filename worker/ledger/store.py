"""The ledger: the durable record of every planned field's outcome.

``Ledger(url)`` takes any SQLAlchemy URL (``WRITEBACK_DATABASE_URL``):

* ``postgresql://`` and ``postgres://`` are used through psycopg 3
  (``postgresql+psycopg://``);
* SQLite gets WAL journalling, a 30 s busy timeout and foreign keys on every
  connection, and SQLAlchemy emits the transactions' ``BEGIN`` itself (writes
  use ``BEGIN IMMEDIATE``), so several worker processes can write one file.

``migrate()`` upgrades the schema to the newest Alembic revision shipped in
``worker/ledger/migrations``; it is idempotent and serialised between processes
(PostgreSQL advisory lock, SQLite write lock). ``Ledger.open(url)`` constructs
and migrates.

The URL's password never appears in messages: errors and ``repr`` use
``engine.url.render_as_string(hide_password=True)``. Database failures (server
unreachable, SQLite locked past the timeout) surface as
:class:`LedgerUnavailable`, a :class:`LedgerError`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url

from worker.errors import WritebackError

from .schema import Attempt, Run, utcnow

__all__ = [
    "DEFAULT_DATABASE_URL",
    "OUTCOMES",
    "RUN_STATUSES",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "OutcomeRow",
    "create_ledger_engine",
    "head_revision",
    "normalize_url",
]

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///writeback.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Our own version table, so the ledger can share a database with other
# Alembic-managed applications.
VERSION_TABLE = "writeback_alembic_version"
SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 10
# Key of the PostgreSQL advisory lock taken while migrating
# (first 8 bytes of sha256(b"siro-writeback:ledger:migrate"), signed).
_MIGRATE_LOCK_KEY = -9122134179708652089
_IN_CHUNK = 500  # record ids per IN (...) list

#: Outcomes of a planned field (DESIGN.md §2).
OUTCOMES = frozenset(
    {
        "written",
        "unchanged",
        "skipped_policy",
        "unlinked",
        "unknown_model",
        "unknown_field",
        "not_writable",
        "invalid_value",
        "conflict",
        "failed",
        "null_value",
        "unsupported",
        "planned",
    }
)
#: Final statuses of a run; a run reads ``running`` until it is finished.
RUN_STATUSES = frozenset({"ok", "partial", "skipped", "failed"})
RUNNING = "running"


class LedgerError(WritebackError):
    """A ledger operation failed; the message never carries a password."""


class LedgerUnavailable(LedgerError):
    """The ledger database could not be reached or used (transient)."""


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """The outcome of one planned field, as recorded.

    ``value`` is what we wrote or meant to write (after coercion) and
    ``previous`` the CRM's value before; both are JSON values (str, int,
    float, bool, None, list, dict; tuples come back as lists). ``record_id``
    is the CRM id as a string.
    """

    connection: str | None
    object: str | None
    record_id: str | None
    field: str | None
    value: Any
    previous: Any
    outcome: str
    reason: str | None = None
    extraction: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.outcome, str) or not self.outcome:
            raise TypeError(f"OutcomeRow.outcome must be a non-empty str, got {self.outcome!r}")
        for name in ("connection", "object", "record_id", "field", "reason", "extraction"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise TypeError(f"OutcomeRow.{name} must be a str or None, got {v!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")


# --------------------------------------------------------------------------- #
# engine


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; ``postgres(ql)://`` (no driver) becomes ``postgresql+psycopg://``."""
    u = make_url(url)
    backend, _, driver = u.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        u = u.set(drivername=f"postgresql+{driver or 'psycopg'}")
    return u


_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def _redactor(url: str | URL | None) -> Any:
    """A function removing ``url``'s password (raw and %-encoded) from a text."""
    secrets: list[str] = []
    if isinstance(url, URL) and url.password:
        secrets = [str(url.password), quote(str(url.password), safe="")]

    def redact(text: str) -> str:
        for s in secrets:
            if s:
                text = text.replace(s, "***")
        return _USERINFO.sub(r"\1***@", text)

    return redact


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (see _sqlite_on_begin): the sqlite3
    # module's legacy transaction handling would skip it for SELECT and DDL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")  # 'memory' for :memory:, fine
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Writers take the write lock up front (and wait for it, busy timeout):
    # a deferred transaction that reads and then writes could fail at once
    # with SQLITE_BUSY instead of waiting.
    mode = conn.get_execution_options().get("ledger_sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_ledger_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine configured as the ledger needs it (also used by migrations/env.py)."""
    u = normalize_url(url)
    options: dict[str, Any] = {
        # NaN/Infinity are not JSON; PostgreSQL would refuse them, so refuse everywhere.
        "json_serializer": partial(json.dumps, allow_nan=False),
    }
    backend = u.get_backend_name()
    if backend == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        options["pool_pre_ping"] = True
        if backend == "postgresql" and u.get_driver_name() in ("psycopg", "psycopg2"):
            if "connect_timeout" not in u.query:
                options["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    options.update(kwargs)
    engine = create_engine(u, **options)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    # ConfigParser interpolates '%': escape it in the path.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest migration shipped with the package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


# --------------------------------------------------------------------------- #
# the ledger


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not a JSON value: {exc}") from None


def _check_str(value: Any, what: str, max_len: int = 255) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty str, got {value!r}")
    if len(value) > max_len:
        raise ValueError(f"{what} is longer than {max_len} characters")


class Ledger:
    """Runs and field attempts in a SQL database.

    Thread-safe (one engine, pooled connections) and fork-aware: a process
    forked after the ledger was opened (Celery prefork) gets fresh connections.
    """

    def __init__(self, url: str | URL, **engine_options: Any) -> None:
        try:
            self._url = normalize_url(url)
        except Exception as exc:  # the URL itself may be what leaks
            redact = _redactor(None)
            raise LedgerError(
                f"invalid ledger database URL: {redact(str(exc))}"
            ) from None
        self._redact = _redactor(self._url)
        self.display_url = self._url.render_as_string(hide_password=True)
        try:
            self._engine = create_ledger_engine(self._url, **engine_options)
        except Exception as exc:
            raise LedgerError(
                f"cannot use ledger database {self.display_url}: "
                f"{type(exc).__name__}: {self._redact(str(exc))}"
            ) from None
        self._writer = self._engine.execution_options(ledger_sqlite_begin="IMMEDIATE")
        self._pid = os.getpid()

    @classmethod
    def open(cls, url: str | URL, **engine_options: Any) -> Ledger:
        """Construct and migrate to the newest schema."""
        ledger = cls(url, **engine_options)
        try:
            ledger.migrate()
        except BaseException:
            ledger.close()
            raise
        return ledger

    # -- plumbing ---------------------------------------------------------- #

    @property
    def engine(self) -> Engine:
        if os.getpid() != self._pid:  # forked: never share the parent's sockets
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"Ledger({self.display_url!r})"

    def close(self) -> None:
        """Close the pooled connections. The object may be used again later."""
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa_exc.DBAPIError as exc:
            if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or (
                exc.connection_invalidated
            ):
                raise LedgerUnavailable(
                    f"ledger database {self.display_url} unavailable while {action}: "
                    f"{' '.join(self._redact(str(exc.orig)).split())}"
                ) from None
            raise

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        _ = self.engine  # the property re-creates the engine after a fork
        with self._guard(action), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with self._guard(action), self.engine.connect() as conn:
            yield conn

    # -- schema ------------------------------------------------------------ #

    def migrate(self) -> None:
        """Upgrade to the newest schema; idempotent, serialised between processes."""
        from alembic import command
        from alembic.util import CommandError

        try:
            with self._write("migrating") as conn:
                if self.dialect == "postgresql":
                    # Held until this transaction ends; a stuck migration
                    # elsewhere fails this one after lock_timeout, no hang.
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '120s'")
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK_KEY})")
                # SQLite: BEGIN IMMEDIATE already holds the write lock.
                command.upgrade(_alembic_config(conn), "head")
        except CommandError as exc:  # e.g. the database is newer than this code
            raise LedgerError(
                f"cannot migrate ledger database {self.display_url}: {self._redact(str(exc))}"
            ) from None
        log.info("ledger %s migrated to the newest schema", self.display_url)

    def current_revision(self) -> str | None:
        """The schema revision of the database (None before the first migrate)."""
        from alembic.runtime.migration import MigrationContext

        with self._read("reading the schema revision") as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()

    # -- writes ------------------------------------------------------------ #

    def start_run(self, recording_id: str, *, trigger: str, dry_run: bool = False) -> int:
        """Open a run (status ``running``) and return its id."""
        _check_str(recording_id, "recording_id")
        _check_str(trigger, "trigger", 32)
        if not isinstance(dry_run, bool):
            raise TypeError("dry_run must be a bool")
        with self._write("starting a run") as conn:
            result = conn.execute(
                insert(Run).values(
                    recording_id=recording_id,
                    trigger=trigger,
                    dry_run=dry_run,
                    status=RUNNING,
                    reason=None,
                    started_at=utcnow(),
                    finished_at=None,
                )
            )
            return int(result.inserted_primary_key[0])

    def record(self, run_id: int, recording_id: str, rows: Sequence[OutcomeRow]) -> None:
        """Store the outcomes of a run's fields, all or nothing.

        ``recording_id`` must be the run's recording (``LookupError`` if the
        run does not exist, ``ValueError`` if it is another recording's).
        """
        _check_str(recording_id, "recording_id")
        rows = list(rows)
        for i, row in enumerate(rows):
            if not isinstance(row, OutcomeRow):
                raise TypeError(f"rows[{i}] is not an OutcomeRow")
            _check_json(row.value, f"rows[{i}].value")
            _check_json(row.previous, f"rows[{i}].previous")
        if not rows:
            return
        now = utcnow()
        params = [
            {
                "run_id": run_id,
                "recording_id": recording_id,
                "connection": r.connection,
                "object": r.object,
                "record_id": r.record_id,
                "field": r.field,
                "value": r.value,
                "previous": r.previous,
                "outcome": r.outcome,
                "reason": r.reason,
                "extraction": r.extraction,
                "created_at": now,
            }
            for r in rows
        ]
        with self._write("recording attempts") as conn:
            owner = conn.execute(select(Run.recording_id).where(Run.id == run_id)).scalar()
            if owner is None:
                raise LookupError(f"no run {run_id} in the ledger")
            if owner != recording_id:
                raise ValueError(
                    f"run {run_id} belongs to recording {owner!r}, not {recording_id!r}"
                )
            conn.execute(insert(Attempt), params)

    def finish_run(self, run_id: int, status: str, reason: str | None = None) -> None:
        """Close a run with ``ok``/``partial``/``skipped``/``failed`` (again: overwrites)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; one of {sorted(RUN_STATUSES)}")
        if reason is not None and not isinstance(reason, str):
            raise TypeError("reason must be a str or None")
        with self._write("finishing a run") as conn:
            result = conn.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(status=status, reason=reason, finished_at=utcnow())
            )
            if result.rowcount == 0:
                raise LookupError(f"no run {run_id} in the ledger")

    # -- reads ------------------------------------------------------------- #

    def last_written(
        self,
        connection: str,
        object: str | None,
        record_ids: Sequence[str],
        fields: Sequence[str],
    ) -> dict[tuple[str, str], Any]:
        """The value we last wrote to each field, for ``protect_edits``.

        For every ``(record_id, field)`` among ``record_ids`` x ``fields`` that
        has an attempt with outcome ``written`` on this connection and object,
        the value of the newest such attempt (highest id, i.e. inserted last).
        Fields compare case-insensitively (``str.lower``); **keys are
        ``(record_id, field.lower())``** whatever the spelling asked or stored.
        Pairs never written are absent.
        """
        wanted = {f.lower() for f in fields}
        ids = list(dict.fromkeys(record_ids))
        if not wanted or not ids:
            return {}
        best: dict[tuple[str, str], tuple[int, Any]] = {}
        with self._read("reading last written values") as conn:
            for chunk in _chunks(ids, _IN_CHUNK):
                scope = [
                    Attempt.connection == connection,
                    Attempt.object.is_(None) if object is None else Attempt.object == object,
                    Attempt.record_id.in_(chunk),
                    Attempt.outcome == "written",
                ]
                # Newest written attempt per record and stored field spelling;
                # case folding happens here in Python (SQLite's lower() is
                # ASCII-only), over a handful of rows per record.
                newest = (
                    select(func.max(Attempt.id).label("id"))
                    .where(*scope)
                    .group_by(Attempt.record_id, Attempt.field)
                    .subquery()
                )
                stmt = select(Attempt.id, Attempt.record_id, Attempt.field, Attempt.value).join(
                    newest, Attempt.id == newest.c.id
                )
                for row in conn.execute(stmt):
                    key = (row.record_id, row.field.lower())
                    if key[1] in wanted and (key not in best or row.id > best[key][0]):
                        best[key] = (row.id, row.value)
        return {key: value for key, (_, value) in best.items()}

    def attempts(
        self, recording_id: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Field attempts, newest first (all recordings unless one is given).

        Keys: id, run_id, recording_id, connection, object, record_id, field,
        value, previous, outcome, reason, extraction, created_at (aware UTC).
        """
        stmt = select(*Attempt.__table__.c).order_by(Attempt.id.desc())
        if recording_id is not None:
            stmt = stmt.where(Attempt.recording_id == recording_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read("reading attempts") as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    def runs(
        self, recording_id: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Runs, newest first. Keys: id, recording_id, trigger, dry_run, status
        (``running`` until finished), reason, started_at, finished_at (aware UTC)."""
        stmt = select(*Run.__table__.c).order_by(Run.id.desc())
        if recording_id is not None:
            stmt = stmt.where(Run.recording_id == recording_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read("reading runs") as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

