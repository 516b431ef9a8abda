"""Benchmark: ``writeback history`` on a ledger of a million attempts, SQLite and PostgreSQL.

Fills a fresh ledger (the newest schema) with ``--attempts`` field attempts
spread as a deployment's would be: 100,000 recordings, each run 1 to 3 times
(webhook, poll, backfill), each run recording 3 fields on an opportunity and
2 on its account; 15,000 opportunities and 5,000 accounts (20,000 CRM
records), a fifth of the opportunities under 20 big accounts, so one account
is a "hot" record with thousands of attempts; a year of timestamps, ids in
time order. Rows go in in bulk (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), a minute or two per backend.

Then it times what ``writeback history`` runs:

* ``history RECORDING_ID``: ``Ledger.history``;
* ``history --record C:O:ID``: ``Ledger.record_history``, on a typical
  opportunity and on the hot account;
* ``... --field F``: the same with a field, asked in another case;
* an unknown recording: the fixed cost of the command (``--json`` on a
  ledger that answers ``runs: []``).

Each is timed warm (the ledger call the command makes, on an open ledger:
the median of ``--runs`` calls after three untimed) and cold (one fresh
``writeback history ...`` process, table output, start to exit: Python, the
imports, the ledger's schema check, the query and the rendering). Three index
states: ``0006`` (as migrated), ``0005`` (0006's own ``downgrade()``: the
indexes before it) and ``none`` (no attempts index but ``run_id``); re-running
0006's ``upgrade()`` in between times the migration itself on a full ledger.

Usage::

    .venv/bin/python bench/history.py [--attempts 1000000] [--runs 20] [--backend both|sqlite|postgresql]
                                      [--postgres-url URL] [--json]

PostgreSQL: ``--postgres-url`` (or ``WRITEBACK_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``) is an admin URL that may
create databases; a fresh ``writeback_bench_*`` database is created there and
dropped afterwards. When the server does not answer, PostgreSQL is skipped
with a message. SQLite's file lives in a temporary directory, removed after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.ledger import Ledger  # noqa: E402
from worker.ledger.engine import alembic_config  # noqa: E402
from worker.ledger.rows import RunHistory  # noqa: E402

WRITEBACK = str(Path(sys.executable).parent / "writeback")
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECTION = "salesforce-main"
RECORDINGS, OPPORTUNITIES, ACCOUNTS, BIG_ACCOUNTS = 100_000, 15_000, 5_000, 20
OPPORTUNITY_FIELDS = ("StageName", "Amount", "CloseDate", "NextStep", "Description", "Budget_Confirmed__c",
                      "Competitors__c", "Pain_Points__c")
ACCOUNT_FIELDS = ("Industry", "NumberOfEmployees", "Description", "Rating")
OUTCOMES = (("written", 45), ("unchanged", 35), ("skipped_policy", 8), ("invalid_value", 4), ("failed", 2),
            ("unknown_field", 3), ("planned", 3))
TRIGGERS = (("webhook", 60), ("poll", 30), ("backfill", 8), ("cli", 2))
START = datetime(2025, 12, 1, tzinfo=UTC)
ATTEMPT_COLUMNS = ("id", "run_id", "recording_id", "connection", "object", "record_id", "field", "value",
                   "previous", "outcome", "reason", "extraction", "created_at")
RUN_COLUMNS = ("id", "recording_id", "trigger", "dry_run", "status", "reason", "started_at", "finished_at",
               "recording_updated_at")
STATES = ("0006", "0005", "none")


def opportunity_id(i: int) -> str:
    return f"006{i:015d}"


def account_id(i: int) -> str:
    return f"001{i:015d}"


# --------------------------------------------------------------------------- #
# the data


@dataclass
class Spread:
    """What was generated, to pick the targets from."""

    attempts_per_record: Counter[str] = field(default_factory=Counter)
    runs_per_recording: Counter[str] = field(default_factory=Counter)


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> Callable[[], str]:
    names, weights = zip(*table)
    return lambda: rng.choices(names, weights)[0]


def plan_runs(rng: random.Random, attempts: int) -> list[tuple[datetime, str, int, int]]:
    """(started_at, recording id, opportunity, account) of every run, in time order."""
    accounts = [rng.randrange(BIG_ACCOUNTS) if rng.random() < 0.2 else rng.randrange(ACCOUNTS)
                for _ in range(OPPORTUNITIES)]
    runs = []
    for _ in range(RECORDINGS):
        recording = f"rec_{rng.getrandbits(64):016x}"
        opportunity = rng.randrange(OPPORTUNITIES)
        at = START + timedelta(seconds=rng.randrange(365 * 86400))
        for _ in range(1 + (rng.random() < 0.65) + (rng.random() < 0.45)):  # 2.1 runs on average
            runs.append((at, recording, opportunity, accounts[opportunity]))
            at += timedelta(minutes=rng.randrange(1, 600))
    runs.sort()
    return runs[: -(-attempts // 5)]  # five attempts a run


def generate(attempts: int, seed: int = 7) -> tuple[list[tuple[Any, ...]], Iterator[list[tuple[Any, ...]]], Spread]:
    """The runs' rows, the attempts' rows (in chunks) and what they spread over."""
    rng = random.Random(seed)
    planned = plan_runs(rng, attempts)
    outcome, trigger = _weighted(rng, OUTCOMES), _weighted(rng, TRIGGERS)
    spread = Spread()
    runs, fields_of = [], []
    for run_id, (at, recording, opportunity, account) in enumerate(planned, start=1):
        targets = [("Opportunity", opportunity_id(opportunity), f) for f in rng.sample(OPPORTUNITY_FIELDS, 3)]
        targets += [("Account", account_id(account), f) for f in rng.sample(ACCOUNT_FIELDS, 2)]
        outcomes = [outcome() for _ in targets]
        status = "partial" if {"failed", "invalid_value"} & set(outcomes) else "ok"
        runs.append((run_id, recording, trigger(), False, status, None, at, at + timedelta(seconds=2), at))
        fields_of.append((run_id, recording, at, list(zip(targets, outcomes))))
        spread.runs_per_recording[recording] += 1
        for (_, record_id, _), _ in zip(targets, outcomes):
            spread.attempts_per_record[record_id] += 1
    return runs, _attempt_chunks(rng, fields_of, attempts), spread


def _attempt_chunks(rng: random.Random, fields_of: list[Any], limit: int, size: int = 50_000
                    ) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    attempt_id = 0
    for run_id, recording, at, targets in fields_of:
        for (obj, record_id, name), outcome in targets:
            attempt_id += 1
            if attempt_id > limit:
                break
            value, previous = json.dumps(f"{name} value {rng.randrange(50)}"), json.dumps(rng.randrange(10**6))
            reason = "edited" if outcome == "skipped_policy" else ("NOT_FOUND" if outcome == "failed" else None)
            chunk.append((attempt_id, run_id, recording, CONNECTION, obj, record_id, name, value, previous,
                          outcome, reason, f"{name} extraction", at + timedelta(seconds=1)))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --------------------------------------------------------------------------- #
# the databases


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="writeback-bench-") as folder:
        yield f"sqlite:///{folder}/ledger.db"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str | None]:
    """A fresh database on the server (None, with a message, when it does not answer)."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url).set(drivername="postgresql")
    try:
        conn = psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"PostgreSQL skipped: {admin.render_as_string()} does not answer ({' '.join(str(exc).split())})")
        yield None
        return
    name = f"writeback_bench_{uuid.uuid4().hex[:12]}"
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.close()


def fill(ledger: Ledger, url: str, attempts: int) -> Spread:
    runs, chunks, spread = generate(attempts)
    raw = ledger.engine.raw_connection()
    try:
        if ledger.dialect == "sqlite":
            _fill_sqlite(raw.driver_connection, runs, chunks)
        else:
            _fill_postgres(raw.driver_connection, runs, chunks)
    finally:
        raw.close()
    return spread


def _sqlite_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # as the ledger's UTCDateTime stores it


def _fill_sqlite(conn: Any, runs: list[tuple[Any, ...]], chunks: Iterator[list[tuple[Any, ...]]]) -> None:
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                     [(*r[:3], int(r[3]), r[4], r[5], *map(_sqlite_time, r[6:])) for r in runs])
    insert = f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
    for chunk in chunks:
        conn.executemany(insert, [(*row[:-1], _sqlite_time(row[-1])) for row in chunk])
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as the autocheckpoint leaves a ledger written over time


def _fill_postgres(conn: Any, runs: list[tuple[Any, ...]], chunks: Iterator[list[tuple[Any, ...]]]) -> None:
    with conn.cursor() as cur:
        with cur.copy(f"COPY runs ({', '.join(RUN_COLUMNS)}) FROM STDIN") as copy:
            for row in runs:
                copy.write_row(row)
        with cur.copy(f"COPY attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN") as copy:
            for chunk in chunks:
                for row in chunk:
                    copy.write_row(row)
        for table in ("runs", "attempts"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE runs")  # what autovacuum does after a load: statistics, visibility map
    conn.execute("VACUUM ANALYZE attempts")
    conn.autocommit = False


# --------------------------------------------------------------------------- #
# index states


def migration_step(ledger: Ledger, step: str) -> float:
    """Run 0006's ``upgrade`` or ``downgrade`` DDL (not the version table); seconds taken."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    module = ScriptDirectory.from_config(alembic_config()).get_revision("0006").module
    started = time.perf_counter()
    with ledger.engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        getattr(module, step)()
    return time.perf_counter() - started


def drop_history_indexes(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        for name in ("ix_attempts_recording_history", "ix_attempts_record_history"):
            conn.exec_driver_sql(f"DROP INDEX {name}")


# --------------------------------------------------------------------------- #
# timing


@dataclass(frozen=True)
class Query:
    label: str
    args: tuple[str, ...]  # the command line after ``writeback history``
    call: Callable[[Ledger], list[Any]]


def queries(spread: Spread) -> list[Query]:
    recording = next(rid for rid, n in spread.runs_per_recording.most_common() if n == 2)
    hot, _ = spread.attempts_per_record.most_common(1)[0]
    counts = sorted(spread.attempts_per_record.items(), key=lambda item: item[1])
    typical = next(rid for rid, n in counts[len(counts) // 2:] if rid.startswith("006"))
    result = [Query("unknown recording (--json)", ("rec_unknown", "--json"), lambda l: l.history("rec_unknown")),
              Query("history RECORDING_ID", (recording,), lambda l: l.history(recording))]
    for name, record, obj, fld in (("typical", typical, "Opportunity", "stagename"),
                                   ("hot", hot, "Account", "industry")):
        result.append(Query(f"--record ({name})", ("--record", f"{CONNECTION}:{obj}:{record}"),
                            lambda l, o=obj, r=record: l.record_history(CONNECTION, o, r)))
        result.append(Query(f"--record ({name}) --field", ("--record", f"{CONNECTION}:{obj}:{record}", "--field", fld),
                            lambda l, o=obj, r=record, f=fld: l.record_history(CONNECTION, o, r, f)))
    return result


def lines(result: list[Any]) -> int:
    """The field lines a history call returned (a run's are its attempts)."""
    return sum(len(item.attempts) if isinstance(item, RunHistory) else 1 for item in result)


def warm(ledger: Ledger, query: Query, runs: int) -> tuple[float, int]:
    """The median seconds of ``runs`` calls (after three untimed), and the lines returned."""
    rows = lines(query.call(ledger))
    query.call(ledger), query.call(ledger)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        query.call(ledger)
        times.append(time.perf_counter() - started)
    return statistics.median(times), rows


def cold(url: str, query: Query, folder: str) -> float:
    """One fresh ``writeback history`` process, start to exit."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": folder, "COLUMNS": "120",
           "WRITEBACK_DATABASE_URL": url}
    started = time.perf_counter()
    done = subprocess.run([WRITEBACK, "history", *query.args], env=env, cwd=folder, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"writeback history {' '.join(query.args)} exited {done.returncode}: {done.stderr}")
    return elapsed


def time_state(ledger: Ledger, url: str, spread: Spread, runs: int) -> dict[str, dict[str, float]]:
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for query in queries(spread):
            seconds, rows = warm(ledger, query, runs)
            figures[query.label] = {"rows": rows, "warm_ms": seconds * 1000, "cold_s": cold(url, query, folder)}
    return figures


def bench(url: str, attempts: int, runs: int) -> dict[str, Any]:
    ledger = Ledger.open(url)
    try:
        started = time.perf_counter()
        spread = fill(ledger, url, attempts)
        result: dict[str, Any] = {"backend": ledger.dialect, "attempts": attempts, "records": len(
            spread.attempts_per_record), "fill_s": time.perf_counter() - started, "states": {}}
        result["states"]["0006"] = time_state(ledger, url, spread, runs)
        migration_step(ledger, "downgrade")
        result["states"]["0005"] = time_state(ledger, url, spread, runs)
        result["upgrade_0006_s"] = migration_step(ledger, "upgrade")
        drop_history_indexes(ledger)
        result["states"]["none"] = time_state(ledger, url, spread, runs)
        return result
    finally:
        ledger.close()


# --------------------------------------------------------------------------- #
# output


def show(result: dict[str, Any], runs: int) -> None:
    print(f"\n{result['backend']}: {result['attempts']:,} attempts on {result['records']:,} CRM records, "
          f"filled in {result['fill_s']:.0f} s; migration 0006 on it: {result['upgrade_0006_s']:.1f} s")
    print(f"warm: median of {runs} ledger calls; cold: one `writeback history` process, table output")
    states = result["states"]
    header = f"{'query':32} {'lines':>6} " + " ".join(f"{'warm ' + s:>11}" for s in STATES)
    header += " " + " ".join(f"{'cold ' + s:>10}" for s in STATES)
    print(header)
    print("-" * len(header))
    for label, figures in states["0006"].items():
        cells = [f"{states[s][label]['warm_ms']:>8.2f} ms" for s in STATES]
        cells += [f"{states[s][label]['cold_s']:>8.2f} s" for s in STATES]
        print(f"{label:32} {figures['rows']:>6} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20, help="warm calls per query (the median is shown)")
    parser.add_argument("--backend", choices=("both", "sqlite", "postgresql"), default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("WRITEBACK_TEST_POSTGRES_URL") or DEFAULT_ADMIN_URL)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object as well")
    args = parser.parse_args()
    results = []
    if args.backend in ("both", "sqlite"):
        with sqlite_database() as url:
            results.append(bench(url, args.attempts, args.runs))
            show(results[-1], args.runs)
    if args.backend in ("both", "postgresql"):
        with postgres_database(args.postgres_url) as url:
            if url is not None:
                results.append(bench(url, args.attempts, args.runs))
                show(results[-1], args.runs)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
