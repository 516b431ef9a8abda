"""The ledger's database: URL, engine, availability, schema revisions.

:class:`Database` holds what every concern of the ledger shares (``runs.py``,
``intents.py``, ``dead_letters.py``, ``watermarks.py``): one engine, its
transactions and the schema.

* ``postgres(ql)://`` is used through psycopg 3 (:func:`normalize_url`);
* SQLite gets WAL journalling, a 30 s busy timeout and foreign keys on every
  connection, and SQLAlchemy emits the transactions' ``BEGIN`` itself (writes
  use ``BEGIN IMMEDIATE``), so several worker processes can write one file;
* the engine is fork-aware (Celery prefork gets fresh connections);
* the URL's password never appears in messages (``display_url``, errors);
  database failures (server unreachable, SQLite locked past the timeout)
  surface as :class:`LedgerUnavailable`, in one line;
* ``migrate()`` upgrades to the newest Alembic revision in ``migrations/``,
  idempotent and serialised between processes (PostgreSQL advisory lock,
  SQLite write lock).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url

from worker.errors import Unavailable, WritebackError

__all__ = ["VERSION_TABLE", "Database", "LedgerError", "LedgerUnavailable", "chunks", "create_ledger_engine",
           "head_revision", "normalize_url"]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Our own version table, so the ledger can share a database with other
# Alembic-managed applications.
VERSION_TABLE = "writeback_alembic_version"
SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 10
# Key of the PostgreSQL advisory lock taken while migrating
# (first 8 bytes of sha256(b"siro-writeback:ledger:migrate"), signed).
_MIGRATE_LOCK_KEY = -9122134179708652089
IN_CHUNK = 500  # ids per IN (...) list


class LedgerError(WritebackError):
    """A ledger operation failed; the message never carries a password."""


class LedgerUnavailable(LedgerError, Unavailable):
    """The ledger database could not be reached or used (transient)."""


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``size``, for ``IN (...)`` lists."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------- #
# URL and engine


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; ``postgres(ql)://`` (no driver) becomes ``postgresql+psycopg://``."""
    u = make_url(url)
    backend, _, driver = u.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        u = u.set(drivername=f"postgresql+{driver or 'psycopg'}")
    return u


_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def redactor(url: str | URL | None) -> Callable[[str], str]:
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


# --------------------------------------------------------------------------- #
# schema revisions


def alembic_config(connection: Connection | None = None) -> Any:
    """Alembic's configuration for ``migrations/`` (on ``connection`` when given)."""
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

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


# --------------------------------------------------------------------------- #
# the shared engine holder


class Database:
    """One ledger database: its engine, transactions and schema. Thread-safe and fork-aware."""

    def __init__(self, url: str | URL, **engine_options: Any) -> None:
        try:
            self._url = normalize_url(url)
        except Exception as exc:  # the URL itself may be what leaks
            raise LedgerError(f"invalid ledger database URL: {redactor(None)(str(exc))}") from None
        self._redact = redactor(self._url)
        self.display_url = self._url.render_as_string(hide_password=True)
        self.dialect_name = self._url.get_backend_name()
        try:
            self._engine = create_ledger_engine(self._url, **engine_options)
        except ImportError as exc:  # the database's driver is not installed
            extra = " (pip install 'siro-writeback[postgres]')" if self.dialect_name == "postgresql" else ""
            driver = getattr(exc, "name", None) or self._url.get_driver_name()
            raise LedgerError(f"cannot use ledger database {self.display_url}: its driver {driver!r} "
                              f"is not installed{extra}") from None
        except Exception as exc:
            raise LedgerError(
                f"cannot use ledger database {self.display_url}: "
                f"{type(exc).__name__}: {self._redact(str(exc))}"
            ) from None
        self._writer = self._engine.execution_options(ledger_sqlite_begin="IMMEDIATE")
        self._pid = os.getpid()
        self._tables: set[str] = set()  # known to exist; see _has_table

    @classmethod
    def open(cls, url: str | URL, **engine_options: Any) -> Self:
        """Construct and migrate to the newest schema."""
        ledger = cls(url, **engine_options)
        try:
            ledger.migrate()
        except BaseException:
            ledger.close()
            raise
        return ledger

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
        return f"{type(self).__name__}({self.display_url!r})"

    def close(self) -> None:
        """Close the pooled connections. The object may be used again later."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Database failures as :class:`LedgerUnavailable`, in one line, without the password."""
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
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``), committed on success."""
        _ = self.engine  # the property re-creates the engine after a fork
        with self._guard(action), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with self._guard(action), self.engine.connect() as conn:
            yield conn

    def _upsert(self, table: Any) -> Any:
        """The dialect's INSERT with ``on_conflict_do_update`` (SQLite, PostgreSQL)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            raise LedgerError(f"the ledger supports SQLite and PostgreSQL, not {self.dialect}")
        return dialect_insert(table)

    # -- schema ------------------------------------------------------------ #

    def _has_table(self, conn: Connection, name: str) -> bool:
        """Whether the database has table ``name`` (a later revision's, say).

        Only a yes is remembered: a migration (maybe by another process) can
        add the table at any time.
        """
        if name not in self._tables and inspect(conn).has_table(name):
            self._tables.add(name)
        return name in self._tables

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
                command.upgrade(alembic_config(conn), "head")
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
