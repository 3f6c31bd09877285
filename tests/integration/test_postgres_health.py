"""SPEC 11 health series on real PostgreSQL 15, 17 and 18, each situation built for real: a
session idle in transaction, a lock holder and two waiters, a physical slot holding WAL, a
deadlock, dead tuples of deleted rows, transaction IDs consumed, a streaming replica with its
replay paused. The servers are this module's own (one version at a time): the tests lock,
deadlock, replicate and reconfigure them."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pg8000.native
import pytest
from pg8000.exceptions import DatabaseError

from middleware_monitoring.postgres.source import PostgresSource
from tests.helpers import Closer
from tests.integration.pg_helpers import (
    APP,
    APP_DB,
    APP_PASSWORD,
    MONITOR,
    Samples,
    labels_of,
    ok_pass,
    prepare,
    series_of,
    settings_for,
    value,
)
from tests.standins.postgres import PG_VERSIONS, PostgresServer

# Distinct from the defaults, so a value read from the server is known to be that setting.
SETTINGS: dict[str, str | int] = {
    "max_connections": 37,
    "autovacuum_freeze_max_age": 150_000_000,
    "autovacuum_multixact_freeze_max_age": 300_000_000,
    "deadlock_timeout": "100ms",
    "autovacuum_naptime": 1,
}
# Counters are per database: the collector's own transactions go to APP_DB, this one only
# sees what a test does in it.
COUNTED_DB = "mm_counted"


@pytest.fixture(scope="module", params=PG_VERSIONS, ids=[f"pg{v}" for v in PG_VERSIONS])
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    with PostgresServer(request.param, settings=SETTINGS) as pg:
        prepare(pg)
        pg.create_database(COUNTED_DB)
        # Autovacuum's own transactions and WAL would move the exact numbers; the test of
        # last_autovacuum turns it on for itself (not a command-line setting: those win).
        set_autovacuum(pg, "off")
        yield pg


def set_autovacuum(server: PostgresServer, setting: str) -> None:
    server.execute_as_superuser(f"ALTER SYSTEM SET autovacuum = {setting}")
    server.execute_as_superuser("SELECT pg_reload_conf()")


@pytest.fixture
def source(server: PostgresServer, closer: Closer) -> PostgresSource:
    return closer(PostgresSource(settings_for(server)))


def poll(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``check()`` until it returns something true (statistics reach other sessions late)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)
    return result


def scalar(server: PostgresServer, sql: str, database: str = "postgres", **params: Any) -> Any:
    rows = server.execute_as_superuser(sql, database=database, **params)
    assert rows is not None
    return rows[0][0]


def in_thread(run: Callable[[], object]) -> threading.Thread:
    """A statement that blocks, run until it ends (cancelled or granted)."""

    def guarded() -> None:
        with contextlib.suppress(DatabaseError):
            run()

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread


# --- settings, wraparound ---------------------------------------------------------------------


def test_server_settings_and_recovery(server: PostgresServer, source: PostgresSource) -> None:
    samples = ok_pass(source)
    assert value(samples, "pg_in_recovery") == 0
    assert value(samples, "pg_max_connections") == 37
    assert value(samples, "pg_autovacuum_freeze_max_age") == 150_000_000
    assert value(samples, "pg_autovacuum_multixact_freeze_max_age") == 300_000_000


def test_xid_age_is_the_servers_and_grows_by_the_transactions_used(
    server: PostgresServer, source: PostgresSource
) -> None:
    ages = "SELECT datname, age(datfrozenxid), mxid_age(datminmxid) FROM pg_database"

    def both() -> tuple[Samples, list[list[Any]]]:
        # The server's ages on either side of the pass; nothing else assigns transaction
        # IDs here but autovacuum, so a pass is retried until both sides agree.
        for _ in range(10):
            before = server.execute_as_superuser(ages)
            samples = ok_pass(source)
            after = server.execute_as_superuser(ages)
            if before == after and before is not None:
                return samples, before
        raise AssertionError("transaction IDs kept moving during every pass")

    first, expected = both()
    assert series_of(first, "pg_database_xid_age") == {
        frozenset({("database_name", name)}): xid for name, xid, _ in expected
    }
    assert series_of(first, "pg_database_mxid_age") == {
        frozenset({("database_name", name)}): mxid for name, _, mxid in expected
    }
    conn = server.connect(database=COUNTED_DB)
    try:
        for _ in range(25):
            conn.run("SELECT txid_current()")  # one transaction ID each
    finally:
        conn.close()
    second, _ = both()
    grown = {
        labels_of(key)["database_name"]: age - value(first, "pg_database_xid_age", **labels_of(key))
        for key, age in series_of(second, "pg_database_xid_age").items()
    }
    # Every database ages with the cluster's transaction counter (autovacuum may have frozen
    # one in between: then its age went down, never up by more).
    assert max(grown.values()) == 25


# --- transactions, locks, wait events -------------------------------------------------------


def test_idle_in_transaction_for_a_known_time(
    server: PostgresServer, source: PostgresSource
) -> None:
    idle = server.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
    aborted = server.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
    try:
        idle_pid = idle.run("SELECT pg_backend_pid()")[0][0]
        idle.run("BEGIN")
        idle.run("SELECT count(*) FROM items")
        aborted.run("BEGIN")
        with pytest.raises(DatabaseError, match="division by zero"):
            aborted.run("SELECT 1 / 0")
        ages = (
            "SELECT extract(epoch FROM clock_timestamp() - state_change)::float8,"
            " extract(epoch FROM clock_timestamp() - xact_start)::float8"
            " FROM pg_stat_activity WHERE pid = :pid"
        )
        poll(lambda: scalar(server, ages, pid=idle_pid) >= 1.0, "idle for 1 s")
        idle_before, xact_before = server.execute_as_superuser(ages, pid=idle_pid)[0]  # type: ignore[index]
        samples = ok_pass(source)
        idle_after, xact_after = server.execute_as_superuser(ages, pid=idle_pid)[0]  # type: ignore[index]
    finally:
        idle.close()
        aborted.close()
    assert value(samples, "pg_idle_in_transaction_sessions") == 2  # the aborted one too
    # The first session went idle first: its age is the oldest, read by the server during
    # the pass, between what the server said just before and just after.
    assert idle_before <= value(samples, "pg_oldest_idle_in_transaction_seconds") <= idle_after
    assert xact_before <= value(samples, "pg_oldest_xact_seconds") <= xact_after


def test_no_open_transaction_gives_zeros(server: PostgresServer, source: PostgresSource) -> None:
    samples = ok_pass(source)
    # The collector's own session (its statement is a transaction) is never counted.
    assert {
        name: value(samples, name)
        for name in (
            "pg_oldest_xact_seconds",
            "pg_idle_in_transaction_sessions",
            "pg_oldest_idle_in_transaction_seconds",
            "pg_blocked_sessions",
            "pg_blocking_sessions",
            "pg_oldest_blocked_seconds",
        )
    } == dict.fromkeys(
        (
            "pg_oldest_xact_seconds",
            "pg_idle_in_transaction_sessions",
            "pg_oldest_idle_in_transaction_seconds",
            "pg_blocked_sessions",
            "pg_blocking_sessions",
            "pg_oldest_blocked_seconds",
        ),
        0,
    )
    assert series_of(samples, "pg_wait_event_sessions") == {}


def test_one_lock_holder_and_two_waiters(server: PostgresServer, source: PostgresSource) -> None:
    holder = server.connect(database=APP_DB)
    waiters = [server.connect(user=APP, password=APP_PASSWORD, database=APP_DB) for _ in range(2)]
    pids = [conn.run("SELECT pg_backend_pid()")[0][0] for conn in waiters]
    threads: list[threading.Thread] = []
    # How long the first waiter has waited, as the server sees it.
    if server.version >= 14:
        waited = (
            "SELECT extract(epoch FROM clock_timestamp() - min(waitstart))::float8"
            " FROM pg_locks WHERE pid = :pid AND NOT granted"
        )
    else:
        waited = (
            "SELECT extract(epoch FROM clock_timestamp() - state_change)::float8"
            " FROM pg_stat_activity WHERE pid = :pid"
        )
    try:
        holder.run("BEGIN")
        holder.run("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        for conn in waiters:
            threads.append(in_thread(functools.partial(conn.run, "SELECT count(*) FROM items")))
            poll(
                lambda: (
                    scalar(
                        server,
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                    )
                    == len(threads)
                ),
                f"{len(threads)} sessions waiting for the lock",
            )
        before = scalar(server, waited, pid=pids[0])
        samples = ok_pass(source)
        after = scalar(server, waited, pid=pids[0])
    finally:
        for pid in pids:
            server.execute_as_superuser("SELECT pg_cancel_backend(:pid)", pid=pid)
        for thread in threads:
            thread.join(timeout=10)
        holder.run("ROLLBACK")
        for conn in (holder, *waiters):
            conn.close()
    assert value(samples, "pg_blocked_sessions") == 2
    assert value(samples, "pg_blocking_sessions") == 1
    assert before <= value(samples, "pg_oldest_blocked_seconds") <= after
    # Both waiters wait on the table's lock; the holder is idle in transaction, not waiting.
    assert series_of(samples, "pg_wait_event_sessions") == {
        frozenset({("wait_event_type", "Lock"), ("wait_event", "relation")}): 2
    }
    assert value(samples, "pg_idle_in_transaction_sessions") == 1


# --- counters of pg_stat_database -----------------------------------------------------------


def database_counter(samples: Samples, name: str) -> float:
    return value(samples, name, database_name=COUNTED_DB)


def test_a_deadlock_counts_once(server: PostgresServer, source: PostgresSource) -> None:
    server.execute_as_superuser(
        "CREATE TABLE IF NOT EXISTS pair (id int PRIMARY KEY, n int)", database=COUNTED_DB
    )
    server.execute_as_superuser(
        "INSERT INTO pair VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING", database=COUNTED_DB
    )
    before = database_counter(ok_pass(source), "pg_database_deadlocks_total")
    first, second = (server.connect(database=COUNTED_DB) for _ in range(2))
    errors: list[str] = []

    def take(conn: pg8000.native.Connection, ids: tuple[int, int]) -> None:
        try:
            conn.run("UPDATE pair SET n = n + 1 WHERE id = :id", id=ids[1])
        except DatabaseError as exc:
            errors.append(str(exc))
            conn.run("ROLLBACK")
            return
        conn.run("COMMIT")

    try:
        for conn, own in ((first, 1), (second, 2)):
            conn.run("BEGIN")
            conn.run("UPDATE pair SET n = n + 1 WHERE id = :id", id=own)
        threads = [
            threading.Thread(target=take, args=(first, (1, 2))),
            threading.Thread(target=take, args=(second, (2, 1))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        # A session's statistics reach the server at the latest when it ends.
        first.close()
        second.close()
    assert len(errors) == 1 and "deadlock detected" in errors[0]
    poll(
        lambda: (
            scalar(
                server, "SELECT deadlocks FROM pg_stat_database WHERE datname = :d", d=COUNTED_DB
            )
            == before + 1
        ),
        "the deadlock in pg_stat_database",
    )
    assert database_counter(ok_pass(source), "pg_database_deadlocks_total") == before + 1


def test_commits_rollbacks_and_temp_bytes(server: PostgresServer, source: PostgresSource) -> None:
    counters = (
        "SELECT xact_commit, xact_rollback, temp_bytes, blks_hit, blks_read"
        " FROM pg_stat_database WHERE datname = :d"
    )
    start = ok_pass(source)
    # The session's start commits one transaction (the server reads its catalogs).
    conn = server.connect(database=COUNTED_DB)
    try:
        for _ in range(5):
            conn.run("SELECT 1")  # a transaction committed each
        for _ in range(3):
            conn.run("BEGIN")
            conn.run("ROLLBACK")
        conn.run("SET work_mem = '64kB'")  # the 7th commit; then a sort spills to disk
        conn.run("SELECT g FROM generate_series(1, 100000) AS g ORDER BY g DESC")  # 8th
    finally:
        conn.close()
    (commits, rollbacks, temp_bytes, hit, read) = poll(
        lambda: (
            (rows := server.execute_as_superuser(counters, d=COUNTED_DB))
            and rows[0][0] == database_counter(start, "pg_database_xact_commit_total") + 8
            and rows[0]
        ),
        "the session's transactions in pg_stat_database",
    )
    samples = ok_pass(source)
    assert database_counter(samples, "pg_database_xact_commit_total") == commits
    assert (
        database_counter(samples, "pg_database_xact_rollback_total")
        == rollbacks
        == database_counter(start, "pg_database_xact_rollback_total") + 3
    )
    assert database_counter(samples, "pg_database_temp_bytes_total") == temp_bytes > 0
    assert database_counter(samples, "pg_database_blks_hit_total") == hit
    assert database_counter(samples, "pg_database_blks_read_total") == read


# --- tables ---------------------------------------------------------------------------------


def test_dead_tuples_of_deleted_rows(server: PostgresServer, closer: Closer) -> None:
    conn = server.connect(database=APP_DB)
    try:
        conn.run("CREATE TABLE IF NOT EXISTS churn (id int) WITH (autovacuum_enabled = false)")
        conn.run("TRUNCATE churn")
        conn.run("INSERT INTO churn SELECT generate_series(1, 1000)")
        conn.run("DELETE FROM churn WHERE id <= 250")
    finally:
        conn.close()
    stats = "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relname = 'churn'"
    poll(
        lambda: server.execute_as_superuser(stats, database=APP_DB) == [[250, 750]],
        "the deleted rows in pg_stat_user_tables",
    )
    # The top 1 by dead tuples: the table where 250 rows were deleted, autovacuum never ran.
    source = closer(PostgresSource(settings_for(server, PG_TABLES_TOP_N="1")))
    samples = ok_pass(source)
    churn = {"database_name": APP_DB, "schema": "public", "table": "churn"}
    assert series_of(samples, "pg_table_dead_tuples") == {frozenset(churn.items()): 250}
    assert value(samples, "pg_table_live_tuples", **churn) == 750
    assert value(samples, "pg_table_last_autovacuum_timestamp_seconds", **churn) == 0


@contextlib.contextmanager
def autovacuum_on(server: PostgresServer) -> Iterator[None]:
    set_autovacuum(server, "on")
    try:
        yield
    finally:
        set_autovacuum(server, "off")


def test_last_autovacuum_is_the_servers(server: PostgresServer, source: PostgresSource) -> None:
    with autovacuum_on(server):
        before, samples = vacuumed_table(server, source)
    table = {"database_name": APP_DB, "schema": "public", "table": "vacuumed"}
    assert value(samples, "pg_table_last_autovacuum_timestamp_seconds", **table) == before


def vacuumed_table(server: PostgresServer, source: PostgresSource) -> tuple[float, Samples]:
    conn = server.connect(database=APP_DB)
    try:
        # Thresholds of zero: autovacuum (every second here) takes the table at once.
        conn.run(
            "CREATE TABLE IF NOT EXISTS vacuumed (id int) WITH (autovacuum_vacuum_threshold = 0,"
            " autovacuum_vacuum_scale_factor = 0, autovacuum_analyze_threshold = 0)"
        )
        conn.run("INSERT INTO vacuumed SELECT generate_series(1, 100)")
        conn.run("DELETE FROM vacuumed WHERE id <= 10")
    finally:
        conn.close()
    last = (
        "SELECT extract(epoch FROM last_autovacuum)::float8 FROM pg_stat_user_tables"
        " WHERE relname = 'vacuumed'"
    )
    poll(lambda: scalar(server, last, database=APP_DB), "an autovacuum of the table", 60)
    for _ in range(10):  # autovacuum may come again during the pass
        before = scalar(server, last, database=APP_DB)
        samples = ok_pass(source)
        if scalar(server, last, database=APP_DB) == before:
            return before, samples
    raise AssertionError("autovacuum ran during every pass")


# --- replication slots and replicas -----------------------------------------------------------


def test_physical_slot_retains_the_wal_written_after_it(
    server: PostgresServer, source: PostgresSource
) -> None:
    server.execute_as_superuser("SELECT pg_create_physical_replication_slot('mm_held', true)")
    try:
        restart = scalar(
            server, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'mm_held'"
        )
        conn = server.connect(database=APP_DB)
        try:
            conn.run("CREATE TABLE IF NOT EXISTS wal_filler (payload text)")
            conn.run("INSERT INTO wal_filler SELECT repeat('x', 500) FROM generate_series(1, 5000)")
        finally:
            conn.close()
        retained = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :lsn)::float8"
        for _ in range(10):  # autovacuum writes WAL too: a pass with none written around it
            before = scalar(server, retained, lsn=restart)
            samples = ok_pass(source)
            if scalar(server, retained, lsn=restart) == before:
                break
    finally:
        server.execute_as_superuser("SELECT pg_drop_replication_slot('mm_held')")
    # 5000 rows of 500 bytes went into WAL after the slot reserved it.
    assert before >= 5000 * 500
    assert series_of(samples, "pg_replication_slot_retained_wal_bytes") == {
        frozenset(
            {("slot_name", "mm_held"), ("slot_type", "physical"), ("active", "false")}
        ): before
    }


def test_streaming_replica_with_replay_paused(server: PostgresServer, closer: Closer) -> None:
    replica = server.start_replica(
        slot="mm_replica_slot",
        settings={
            "cluster_name": "mm_replica",  # its application_name on the primary
            "wal_receiver_status_interval": 1,
            "max_connections": 41,
        },
    )
    writer = server.connect(database=APP_DB)
    stop = threading.Event()
    try:
        primary_source = closer(PostgresSource(settings_for(server)))
        replica_source = closer(PostgresSource(settings_for(replica)))
        replica.execute_as_superuser("SELECT pg_wal_replay_pause()")
        writer.run("CREATE TABLE IF NOT EXISTS lagging (n int)")

        def write() -> None:
            while not stop.wait(0.2):
                writer.run("INSERT INTO lagging VALUES (1)")

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        lag = (
            "SELECT extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication"
            " WHERE application_name = 'mm_replica'"
        )
        poll(lambda: (scalar(server, lag) or 0) > 0.5, "a replay lag")
        passes: list[tuple[float, float, Samples]] = []

        def grown(than: float) -> bool:
            return (scalar(server, lag) or 0) > than

        for _ in range(2):
            before = scalar(server, lag)
            samples = ok_pass(primary_source)
            after = scalar(server, lag)
            passes.append((before, after, samples))
            # The next pass must see a longer lag than this one did: wait for it to grow.
            poll(partial(grown, after), "the replay lag to grow")
        on_replica = ok_pass(replica_source)
    finally:
        stop.set()
        writer.close()
        replica.cleanup()
        server.execute_as_superuser(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = 'mm_replica_slot'"
        )
    lags = []
    for before, after, samples in passes:
        # The server's own replay_lag, read on either side of the pass.
        lagged = value(samples, "pg_replica_lag_seconds", replica="mm_replica")
        assert before <= lagged <= after
        lags.append(lagged)
        # The replica streams through its slot: active.
        assert {
            labels_of(key)["active"]
            for key in series_of(samples, "pg_replication_slot_retained_wal_bytes")
        } == {"true"}
    assert lags[0] < lags[1]
    assert value(on_replica, "pg_in_recovery") == 1
    assert value(passes[0][2], "pg_in_recovery") == 0
    # A replica has no replicas, and pg_current_wal_lsn() (which fails there) is not asked.
    assert series_of(on_replica, "pg_replica_lag_seconds") == {}
    assert value(on_replica, "pg_max_connections") == 41  # the replica's own


def test_series_budget_of_docs(server: PostgresServer, source: PostgresSource) -> None:
    """docs/postgresql.md, "Series budget": 20 scalars, 8 per database, one size per database
    the login may connect to, one per user with connections, at most 14 per statement, 3 per
    table, one per wait event pair, replica and slot (the source's own health is the
    runner's)."""
    ok_pass(source)
    samples = ok_pass(source)  # warm: with QPS
    databases = scalar(server, "SELECT count(*) FROM pg_database")
    sized = scalar(
        server,
        "SELECT count(*) FROM pg_database WHERE NOT datistemplate"
        " AND has_database_privilege(:user, oid, 'CONNECT')",
        user=MONITOR,
    )
    statements = len(series_of(samples, "pg_query_calls"))
    without_hit = statements - len(series_of(samples, "pg_query_hit_percent"))
    per_situation = sum(
        len(series_of(samples, name))
        for name in (
            "pg_user_connection_count",
            "pg_wait_event_sessions",
            "pg_replica_lag_seconds",
            "pg_replication_slot_retained_wal_bytes",
            "pg_vacuum_running",
            "pg_vacuum_progress_ratio",
            "pg_vacuum_seconds",
        )
    )
    tables = len(series_of(samples, "pg_table_dead_tuples"))
    indexes = len(series_of(samples, "pg_index_size_bytes"))
    assert statements > 0 and tables > 0 and indexes > 0
    assert len(samples) == (
        20
        + 8 * databases
        + sized
        + 14 * statements
        - without_hit
        + 3 * tables
        + 2 * indexes
        + per_situation
    )
