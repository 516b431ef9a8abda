"""The ledger: the durable record of every planned field's outcome.

``Ledger(url)`` takes any SQLAlchemy URL (``WRITEBACK_DATABASE_URL``):

* ``postgresql://`` and ``postgres://`` are used through psycopg 3
  (``postgresql+psycopg://``);
* SQLite gets WAL journalling, a 30 s busy timeout and foreign keys on every
  connection, and SQLAlchemy emits the transactions' ``BEGIN`` itself (writes
  use ``BEGIN IMMEDIATE``), so several worker processes can write one file.

Before each CRM write call the pipeline records its *intents*
(:meth:`Ledger.record_intents`): the values it is about to send. A worker
killed between the CRM's accepting a write and :meth:`Ledger.record` leaves
no ``written`` attempt, but the intent still says the CRM's value is ours;
:meth:`Ledger.our_values` gives ``protect_edits`` both.

Besides runs and attempts it keeps the dead-letter list
(:meth:`Ledger.add_dead_letter`, :meth:`~Ledger.dead_letters`,
:meth:`~Ledger.dead_letter`, :meth:`~Ledger.remove_dead_letter`) and named
watermarks (:meth:`Ledger.watermark`, :meth:`~Ledger.advance_watermark`, which
never moves one backwards). Both are upserts, race-free between processes.

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
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    Engine,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url

from worker.errors import Unavailable, WritebackError

from .schema import Attempt, DeadLetter, Run, Watermark, WriteIntent, utcnow

__all__ = [
    "DEFAULT_DATABASE_URL",
    "OUTCOMES",
    "RUN_STATUSES",
    "IntentRow",
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
_ERROR_MAX_CHARS = 1000  # a dead letter's error message, cut beyond this

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


class LedgerUnavailable(LedgerError, Unavailable):
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


@dataclass(frozen=True, slots=True)
class IntentRow:
    """A field value about to be sent to the CRM (see :meth:`Ledger.record_intents`).

    ``value`` is the canonical JSON value, as an :class:`OutcomeRow` of the
    same write would carry it.
    """

    connection: str
    object: str
    record_id: str
    field: str
    value: Any
    recording_id: str

    def __post_init__(self) -> None:
        for name in ("connection", "object", "record_id", "field", "recording_id"):
            _check_str(getattr(self, name), f"IntentRow.{name}")
        _check_json(self.value, "IntentRow.value")


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


_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s,;\"']+")


def _one_line(text: str, max_len: int = _ERROR_MAX_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text


def _check_aware(value: Any, what: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")


class Ledger:
    """Runs and field attempts, dead letters and watermarks in a SQL database.

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
        self._intents_table = False  # known to exist (revision 0004); see _has_intents

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

    def _has_intents(self, conn: Connection) -> bool:
        """Whether the database has ``write_intents`` (revision 0004).

        A database not yet migrated that far still takes runs and attempts,
        without intents. Only a yes is remembered: a migration (maybe by
        another process) can add the table at any time.
        """
        if not self._intents_table:
            from sqlalchemy import inspect

            self._intents_table = inspect(conn).has_table(WriteIntent.__tablename__)
        return self._intents_table

    # -- writes ------------------------------------------------------------ #

    def start_run(
        self, recording_id: str, *, trigger: str, dry_run: bool = False, recording_updated_at: datetime | None = None
    ) -> int:
        """Open a run (status ``running``) and return its id.

        ``recording_updated_at``: the recording's ``updatedAt`` as processed
        (see :meth:`newest_versions`).
        """
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
                    # Named only when known: a run without it stays writable on a 0002 schema.
                    **({"recording_updated_at": recording_updated_at} if recording_updated_at else {}),
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
        # Fields that get a written attempt: their intents are settled (below).
        written: dict[tuple[str, str], dict[str, set[str]]] = {}
        for r in rows:
            if r.outcome == "written" and r.connection and r.object and r.record_id and r.field:
                fields = written.setdefault((r.connection, r.object), {}).setdefault(r.record_id, set())
                fields.add(r.field.lower())
        with self._write("recording attempts") as conn:
            owner = conn.execute(select(Run.recording_id).where(Run.id == run_id)).scalar()
            if owner is None:
                raise LookupError(f"no run {run_id} in the ledger")
            if owner != recording_id:
                raise ValueError(
                    f"run {run_id} belongs to recording {owner!r}, not {recording_id!r}"
                )
            conn.execute(insert(Attempt), params)
            if written and self._has_intents(conn):
                self._settle_intents(conn, written)

    def _settle_intents(self, conn: Connection, written: dict[tuple[str, str], dict[str, set[str]]]) -> None:
        """Delete the intents of fields that a newer ``written`` attempt replaces.

        Same transaction as the attempts: every intent left in the table was
        inserted after the newest ``written`` attempt of its field, so
        :meth:`our_values` never needs an older one. Only ``written`` settles:
        an ``unchanged`` attempt is what a redelivered task records after a
        crash (the CRM already holds the value we sent and never recorded), and
        the intent is then the only evidence that the value is ours.
        """
        for (connection, object), targets in written.items():
            ids = list(targets)
            for chunk in _chunks(ids, _IN_CHUNK):
                stmt = select(WriteIntent.id, WriteIntent.record_id, WriteIntent.field).where(
                    WriteIntent.connection == connection,
                    WriteIntent.object == object,
                    WriteIntent.record_id.in_(chunk),
                )
                # Fields compare case-insensitively, folded here (SQLite's lower() is ASCII-only).
                stale = [
                    row.id for row in conn.execute(stmt) if row.field.lower() in targets.get(row.record_id, ())
                ]
                for ids_chunk in _chunks(stale, _IN_CHUNK):
                    conn.execute(delete(WriteIntent).where(WriteIntent.id.in_(ids_chunk)))

    def record_intents(self, rows: Sequence[IntentRow]) -> None:
        """Store the values about to be sent to the CRM, all or nothing.

        Called just before each CRM write call (never for dry runs), so that a
        value the CRM accepted is known to be ours even if the worker dies
        before :meth:`record` stores its attempt. See :meth:`our_values`.
        """
        rows = list(rows)
        for i, row in enumerate(rows):
            if not isinstance(row, IntentRow):
                raise TypeError(f"rows[{i}] is not an IntentRow")
        if not rows:
            return
        now = utcnow()
        params = [
            {
                "connection": r.connection,
                "object": r.object,
                "record_id": r.record_id,
                "field": r.field,
                "value": r.value,
                "recording_id": r.recording_id,
                "created_at": now,
            }
            for r in rows
        ]
        with self._write("recording write intents") as conn:
            if not self._has_intents(conn):
                log.warning("ledger %s predates write intents: run migrate()", self.display_url)
                return
            conn.execute(insert(WriteIntent), params)

    def intents(self) -> list[dict[str, Any]]:
        """Every stored intent, newest first. Keys: id, connection, object,
        record_id, field, value, recording_id, created_at (aware UTC)."""
        stmt = select(*WriteIntent.__table__.c).order_by(WriteIntent.id.desc())
        with self._read("reading write intents") as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

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
        best: dict[tuple[str, str], tuple[int, datetime, Any]] = {}
        with self._read("reading last written values") as conn:
            for chunk in _chunks(ids, _IN_CHUNK):
                self._newest_written(conn, connection, object, chunk, wanted, best)
        return {key: value for key, (_, _, value) in best.items()}

    def our_values(
        self,
        connection: str,
        object: str | None,
        record_ids: Sequence[str],
        fields: Sequence[str],
    ) -> dict[tuple[str, str], list[Any]]:
        """The values each field may hold because we put them there, for ``protect_edits``.

        For every ``(record_id, field.lower())`` (keys as :meth:`last_written`):
        the value of the newest ``written`` attempt (when there is one) first,
        then the values of the intents recorded since that attempt (by
        ``created_at``), oldest first: sends whose attempt was never recorded
        (the worker died after the CRM accepted them) or not yet recorded.
        Pairs with neither are absent: we never wrote them.
        """
        return self.protected_values(connection, object, record_ids, fields)[0]

    def protected_values(
        self,
        connection: str,
        object: str | None,
        record_ids: Sequence[str],
        fields: Sequence[str],
    ) -> tuple[dict[tuple[str, str], list[Any]], set[tuple[str, str]]]:
        """:meth:`our_values`, and the pairs among them with a ``written`` attempt,
        in one read (what ``protect_edits`` needs)."""
        wanted = {f.lower() for f in fields}
        ids = list(dict.fromkeys(record_ids))
        if not wanted or not ids:
            return {}, set()
        best: dict[tuple[str, str], tuple[int, datetime, Any]] = {}
        pending: dict[tuple[str, str], list[tuple[int, datetime, Any]]] = {}
        with self._read("reading our values") as conn:
            for chunk in _chunks(ids, _IN_CHUNK):
                # Intents first: one that a concurrent ``record`` settles
                # between the two reads then shows up as the written attempt.
                if object is not None and self._has_intents(conn):
                    stmt = select(
                        WriteIntent.id, WriteIntent.record_id, WriteIntent.field, WriteIntent.value,
                        WriteIntent.created_at,
                    ).where(
                        WriteIntent.connection == connection,
                        WriteIntent.object == object,
                        WriteIntent.record_id.in_(chunk),
                    )
                    for row in conn.execute(stmt):
                        key = (row.record_id, row.field.lower())
                        if key[1] in wanted:
                            pending.setdefault(key, []).append((row.id, row.created_at, row.value))
                self._newest_written(conn, connection, object, chunk, wanted, best)
        found: dict[tuple[str, str], list[Any]] = {}
        for key in best.keys() | pending.keys():
            values = []
            since = None
            if key in best:
                _, since, value = best[key]
                values.append(value)
            # ``record`` deletes the intents a written attempt replaces; the
            # time check also drops those that a worker without intents
            # (before revision 0004) left when it wrote the field.
            values.extend(
                value for _, at, value in sorted(pending.get(key, ()), key=lambda item: item[0])
                if since is None or at >= since
            )
            found[key] = values
        return found, set(best)

    @staticmethod
    def _newest_written(
        conn: Connection,
        connection: str,
        object: str | None,
        record_ids: Sequence[str],
        wanted: set[str],
        best: dict[tuple[str, str], tuple[int, datetime, Any]],
    ) -> None:
        """Into ``best``: (id, created_at, value) of the newest written attempt per wanted field."""
        scope = [
            Attempt.connection == connection,
            Attempt.object.is_(None) if object is None else Attempt.object == object,
            Attempt.record_id.in_(record_ids),
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
        stmt = select(Attempt.id, Attempt.record_id, Attempt.field, Attempt.value, Attempt.created_at).join(
            newest, Attempt.id == newest.c.id
        )
        for row in conn.execute(stmt):
            key = (row.record_id, row.field.lower())
            if key[1] in wanted and (key not in best or row.id > best[key][0]):
                best[key] = (row.id, row.created_at, row.value)

    def newest_versions(self, recording_ids: Sequence[str]) -> dict[str, datetime]:
        """The newest ``updatedAt`` of each recording that a finished, real (not
        dry) run processed; recordings never processed are absent."""
        ids = list(dict.fromkeys(recording_ids))
        found: dict[str, datetime] = {}
        with self._read("reading processed versions") as conn:
            for chunk in _chunks(ids, _IN_CHUNK):
                stmt = (
                    select(Run.recording_id, func.max(Run.recording_updated_at))
                    # A failed run counts too: its version is retried or on the dead-letter
                    # list, and an older snapshot must not be written in the meantime.
                    .where(Run.recording_id.in_(chunk), Run.status != RUNNING,
                           Run.dry_run.is_(False), Run.recording_updated_at.is_not(None))
                    .group_by(Run.recording_id)
                )
                for recording_id, newest in conn.execute(stmt):
                    if newest is not None:
                        # max() keeps the column's type on PostgreSQL; SQLite may hand back text.
                        if isinstance(newest, str):
                            newest = datetime.fromisoformat(newest)
                        found[recording_id] = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        return found

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


    # -- dead letters ------------------------------------------------------ #

    def _upsert(self, table: Any) -> Any:
        """The dialect's INSERT with ``on_conflict_do_update`` (SQLite, PostgreSQL)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            raise LedgerError(f"the ledger supports SQLite and PostgreSQL, not {self.dialect}")
        return dialect_insert(table)

    def add_dead_letter(
        self, recording_id: str, *, reason: str, error: str, trigger: str, attempts: int
    ) -> None:
        """Put a recording on the dead-letter list, or count one more failure.

        ``reason`` is a short code (``retries_exhausted``, ``auth``, ...),
        ``error`` a message that becomes one line (whitespace collapsed, cut at
        1000 characters, ``Bearer`` tokens and the database password masked:
        still, pass messages that never held a secret), ``trigger`` what
        started the failed task, ``attempts`` how many task attempts it spent.
        A recording already listed keeps its ``first_failed_at``; its
        ``failures`` goes up by one and the other columns take the new values.
        One atomic upsert: concurrent calls from several processes all count.
        """
        _check_str(recording_id, "recording_id")
        _check_str(reason, "reason", 64)
        _check_str(trigger, "trigger", 32)
        if not isinstance(error, str):
            raise TypeError("error must be a str")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise TypeError(f"attempts must be a non-negative int, got {attempts!r}")
        error = _one_line(_BEARER.sub(r"\1***", self._redact(error)))
        now = utcnow()
        stmt = self._upsert(DeadLetter).values(
            recording_id=recording_id,
            reason=reason,
            error=error,
            trigger=trigger,
            attempts=attempts,
            failures=1,
            first_failed_at=now,
            last_failed_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[DeadLetter.recording_id],
            set_={
                "reason": stmt.excluded.reason,
                "error": stmt.excluded.error,
                "trigger": stmt.excluded.trigger,
                "attempts": stmt.excluded.attempts,
                "failures": DeadLetter.failures + 1,
                "last_failed_at": stmt.excluded.last_failed_at,
            },
        )
        with self._write("adding a dead letter") as conn:
            conn.execute(stmt)

    def dead_letters(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The dead-letter list, newest failure first.

        Keys: recording_id, reason, error, trigger, attempts, failures,
        first_failed_at, last_failed_at (aware UTC).
        """
        stmt = select(*DeadLetter.__table__.c).order_by(
            DeadLetter.last_failed_at.desc(), DeadLetter.recording_id
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read("reading dead letters") as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    def dead_letter(self, recording_id: str) -> dict[str, Any] | None:
        """One recording's dead letter (keys as :meth:`dead_letters`), or None."""
        stmt = select(*DeadLetter.__table__.c).where(DeadLetter.recording_id == recording_id)
        with self._read("reading a dead letter") as conn:
            row = conn.execute(stmt).first()
        return None if row is None else dict(row._mapping)

    def remove_dead_letter(self, recording_id: str) -> bool:
        """Take a recording off the list; False when it was not listed."""
        with self._write("removing a dead letter") as conn:
            result = conn.execute(delete(DeadLetter).where(DeadLetter.recording_id == recording_id))
            return result.rowcount > 0

    # -- watermarks -------------------------------------------------------- #

    def watermark(self, name: str) -> datetime | None:
        """The stored value of watermark ``name`` (aware UTC), None if never set."""
        with self._read("reading a watermark") as conn:
            return conn.execute(select(Watermark.value).where(Watermark.name == name)).scalar()

    def advance_watermark(self, name: str, value: datetime) -> datetime:
        """Move watermark ``name`` forward to ``value``; never backwards.

        The stored value becomes ``max(stored, value)`` in one atomic upsert
        (race-free between threads and processes), and is returned (aware
        UTC). ``updated_at`` changes only when the value does. The value is
        kept to the microsecond.
        """
        _check_str(name, "name", 64)
        _check_aware(value, "value")
        value = value.astimezone(UTC)
        now = utcnow()
        stmt = self._upsert(Watermark).values(name=name, value=value, updated_at=now)
        newer = stmt.excluded.value > Watermark.value
        stmt = stmt.on_conflict_do_update(
            index_elements=[Watermark.name],
            set_={
                "value": case((newer, stmt.excluded.value), else_=Watermark.value),
                "updated_at": case((newer, stmt.excluded.updated_at), else_=Watermark.updated_at),
            },
        )
        with self._write("advancing a watermark") as conn:
            conn.execute(stmt)
            # Same transaction: the row is ours until commit (SQLite's write
            # lock, PostgreSQL's row lock), so this is the value we left.
            stored = conn.execute(select(Watermark.value).where(Watermark.name == name)).scalar_one()
        return stored
