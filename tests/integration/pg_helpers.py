"""Shared by the PostgreSQL integration tests: a prepared database on a stand-in server,
the collector's settings for it, and one source pass read back as plain samples."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from middleware_monitoring.config import PostgresSettings, load_settings
from middleware_monitoring.model import SourceFailure
from middleware_monitoring.postgres.source import PostgresSource
from tests.standins.postgres import PostgresServer

MONITOR = "mm_monitor"
MONITOR_PASSWORD = "monitor-pw-4711"
APP = "app"
APP_PASSWORD = "app-pw-0815"
APP_DB = "mm_app"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# SPEC 11 series any reachable server sends with the default PG_COLLECTORS and a login with
# pg_read_all_stats. The others need a situation: a waiting session (pg_wait_event_sessions),
# a replica, a slot, a table in PG_DBNAME (TABLE_NAMES), pg_stat_statements (DETAIL_NAMES).
HEALTH_NAMES = frozenset(
    {
        "pg_in_recovery",
        "pg_max_connections",
        "pg_autovacuum_freeze_max_age",
        "pg_autovacuum_multixact_freeze_max_age",
        "pg_database_xid_age",
        "pg_database_mxid_age",
        "pg_oldest_xact_seconds",
        "pg_idle_in_transaction_sessions",
        "pg_oldest_idle_in_transaction_seconds",
        "pg_blocked_sessions",
        "pg_blocking_sessions",
        "pg_oldest_blocked_seconds",
        "pg_database_deadlocks_total",
        "pg_database_temp_bytes_total",
        "pg_database_xact_commit_total",
        "pg_database_xact_rollback_total",
        "pg_database_blks_hit_total",
        "pg_database_blks_read_total",
    }
)
# And its index (the primary key of `items`).
TABLE_NAMES = frozenset(
    {
        "pg_table_dead_tuples",
        "pg_table_live_tuples",
        "pg_table_last_autovacuum_timestamp_seconds",
        "pg_index_scans_total",
        "pg_index_size_bytes",
    }
)
DETAIL_NAMES = frozenset(
    {
        "pg_query_shared_blks_hit",
        "pg_query_shared_blks_read",
        "pg_query_temp_blks_written",
        "pg_query_wal_bytes",
        "pg_query_total_plan_time",
    }
)


def prepare(server: PostgresServer) -> PostgresServer:
    """A monitoring login (pg_monitor, like on RDS), an application login and database with
    pg_stat_statements and a small table. Idempotent: the servers are shared by the session."""
    server.create_role(MONITOR, MONITOR_PASSWORD, monitor=True)
    server.create_role(APP, APP_PASSWORD, monitor=False)
    server.create_database(APP_DB)
    server.create_extension(database=APP_DB)
    server.execute_as_superuser(
        "CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text)"
        " WITH (autovacuum_enabled = false)",
        database=APP_DB,
    )
    server.execute_as_superuser(
        "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g"
        " ON CONFLICT DO NOTHING",
        database=APP_DB,
    )
    server.execute_as_superuser(f"GRANT ALL ON items TO {APP}", database=APP_DB)
    server.execute_as_superuser(f"GRANT CREATE ON SCHEMA public TO {APP}", database=APP_DB)
    return server


# With "postgres" and APP_DB: a server of 8 databases (SPEC 19's example of a typical one).
OTHER_DATABASES = tuple(f"mm_shop_{i}" for i in range(6))


def eight_databases() -> Iterator[PostgresServer]:
    """A server of its own (its databases and statements known to the test), prepared, with
    8 databases; for a module-scoped fixture."""
    with PostgresServer(17) as server:
        prepare(server)
        for name in OTHER_DATABASES:
            server.create_database(name)
        yield server


def settings_for(
    server: PostgresServer,
    *,
    password: str = MONITOR_PASSWORD,
    database: str = APP_DB,
    **extra: str,
) -> PostgresSettings:
    environ: dict[str, str] = {
        **server.collector_env(user=MONITOR, password=password, database=database),
        "PG_STATEMENTS_TOP_N": "1000",
        "PG_QPS_SAMPLE_SECONDS": "0",
        **extra,
    }
    settings = load_settings(environ).postgres
    assert settings is not None
    return settings


def run_pass(source: PostgresSource) -> tuple[Samples, SourceFailure | None]:
    """One collect(), as the runner does it: the families yielded, and the failure if any."""
    samples: Samples = {}
    failure: SourceFailure | None = None
    try:
        for family in source.collect():
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    except SourceFailure as caught:
        failure = caught
    return samples, failure


def ok_pass(source: PostgresSource) -> Samples:
    samples, failure = run_pass(source)
    assert failure is None, failure
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def series_of(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def labels_of(key: frozenset[tuple[str, str]]) -> Mapping[str, str]:
    return dict(key)


class ManualClock:
    """A source's clock and sleep (PostgresSource(clock=, sleep=)): time moves only when the
    test (or a sleep) moves it, so a rate is an exact number of statements over an exact
    window."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@contextlib.contextmanager
def held_vacuum(
    server: PostgresServer, database: str, table: str, connect: Callable[[], Any] | None = None
) -> Iterator[tuple[str, int, int]]:
    """A vacuum caught running: VACUUM (FREEZE) must freeze every row, so it waits for a
    cleanup lock on the page an open cursor keeps pinned, halfway through ``table`` (made
    here: 5,000 rows). Yields its phase, heap blocks scanned and total; on leaving, the
    cursor is closed and the vacuum finishes. ``connect`` opens the sessions (the table's
    owner may VACUUM it); the superuser by default."""
    connect = connect or (lambda: server.connect(database=database))
    setup = connect()
    setup.run(f"DROP TABLE IF EXISTS {table}")
    setup.run(f"CREATE TABLE {table} (id int, pad text) WITH (autovacuum_enabled = false)")
    setup.run(f"INSERT INTO {table} SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g")
    setup.close()
    holder, vacuumer = connect(), connect()
    done = threading.Event()

    def vacuum() -> None:
        with contextlib.suppress(Exception):
            vacuumer.run(f"VACUUM (FREEZE) {table}")
        done.set()

    thread = threading.Thread(target=vacuum, daemon=True)
    try:
        holder.run("BEGIN")
        holder.run(f"DECLARE held CURSOR FOR SELECT id FROM {table} WHERE id >= 2500")
        assert holder.run("FETCH 1 FROM held") == [[2500]]
        thread.start()
        waiting = (
            "SELECT p.phase, p.heap_blks_scanned, p.heap_blks_total FROM pg_stat_progress_vacuum p"
            " JOIN pg_stat_activity a ON a.pid = p.pid WHERE a.wait_event = 'BufferPin'"
            f" AND p.relid = '{table}'::regclass"
        )
        deadline = time.monotonic() + 20
        while not (rows := server.execute_as_superuser(waiting, database=database)):
            assert time.monotonic() < deadline, "the vacuum did not start waiting"
            time.sleep(0.05)
        [[phase, scanned, total]] = rows
        yield str(phase), int(scanned), int(total)
    finally:
        with contextlib.suppress(Exception):
            holder.run("COMMIT")
        holder.close()
        done.wait(20)
        thread.join(timeout=10)
        vacuumer.close()
