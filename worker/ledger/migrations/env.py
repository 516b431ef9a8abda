"""Alembic environment for the ledger.

Normally run through :meth:`worker.ledger.Ledger.migrate`, which hands over an
open connection (``config.attributes["connection"]``) already inside a locked
transaction. From a checkout, developers may also use the Alembic CLI::

    WRITEBACK_DATABASE_URL=sqlite:///writeback.db \\
        alembic -c worker/ledger/alembic.ini revision --autogenerate --rev-id 0002 -m "..."

in which case the engine is built here from ``sqlalchemy.url`` (``-x url=...``)
or ``WRITEBACK_DATABASE_URL``, with the same options as the service.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from worker.ledger.engine import VERSION_TABLE, create_ledger_engine, normalize_url
from worker.ledger.schema import metadata
from worker.settings import DEFAULT_DATABASE_URL

config = context.config


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite needs copy-and-move for most ALTERs
        compare_type=True,
        **kwargs,
    )


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("WRITEBACK_DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )


def run_offline() -> None:
    _configure(url=normalize_url(_url()), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    # transactional_ddl: the ledger's SQLite engine emits its own BEGIN, so DDL
    # is transactional there too (an interrupted upgrade leaves nothing half done).
    _configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_ledger_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
