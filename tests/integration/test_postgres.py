"""The PostgreSQL source against real PostgreSQL 15, 17 and 18 (pg_stat_statements 1.10,
1.11, 1.12): known sessions and statements give exact values."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pg8000.native
import pytest
from pg8000.exceptions import DatabaseError
from prometheus_client import Metric

from middleware_monitoring.model import Later, Source, Target, pass_deadline, seconds_left
from middleware_monitoring.postgres import source as pg_source
from middleware_monitoring.postgres import statements
from middleware_monitoring.postgres.source import SNAPSHOT_MARGIN_SECONDS, PostgresSource
from middleware_monitoring.runner import run_pass
from tests.helpers import Closer
from tests.integration.pg_helpers import (
    APP,
    APP_DB,
    APP_PASSWORD,
    MONITOR,
    ManualClock,
    Samples,
    labels_of,
    names,
    ok_pass,
    prepare,
    series_of,
    settings_for,
    value,
)
from tests.standins.postgres import PG_STAT_STATEMENTS_VERSION, PostgresServer

QPS_NAMES = {"pg_qps_all", "pg_qps_read", "pg_qps_write"}


@pytest.fixture(scope="module")
def pg(pg_server: PostgresServer) -> PostgresServer:
    return prepare(pg_server)


@pytest.fixture
def source(pg: PostgresServer) -> Iterator[PostgresSource]:
    src = PostgresSource(settings_for(pg))
    yield src
    src.close()


def app_connection(pg: PostgresServer) -> pg8000.native.Connection:
    return pg.connect(user=APP, password=APP_PASSWORD, database=APP_DB)


def query_series(samples: Samples, name: str = "pg_query_calls") -> list[dict[str, str]]:
    return [dict(labels_of(key)) for key in series_of(samples, name)]


# --- connections ------------------------------------------------------------------------


def poll(conn: pg8000.native.Connection, sql: str, what: str, **params: object) -> None:
    """Until ``sql`` returns a row (on a connection that stays open: a fresh one per probe
    would itself linger in pg_stat_activity for a moment after closing)."""
    deadline = time.monotonic() + 10
    while not conn.run(sql, **params):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


OTHER_SESSIONS = (
    "SELECT pid, usename, application_name, state FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def test_connection_counts(pg: PostgresServer, source: PostgresSource) -> None:
    observer = pg.connect()
    apps: list[pg8000.native.Connection] = []
    busy = pg.connect()
    busy_pid = busy.run("SELECT pg_backend_pid()")[0][0]

    def sleep() -> None:
        with contextlib.suppress(DatabaseError):  # cancelled below
            busy.run("SELECT pg_sleep(60)")

    thread = threading.Thread(target=sleep, daemon=True)
    try:
        # Collector sessions that earlier tests on this shared server left to the garbage
        # collector would be counted as clients here: end them. Sessions closed by earlier
        # tests take a moment to leave pg_stat_activity.
        observer.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'middleware-monitoring' AND pid <> pg_backend_pid()"
        )
        deadline = time.monotonic() + 10
        while others := observer.run(OTHER_SESSIONS + " AND pid <> :busy", busy=busy_pid):
            assert time.monotonic() < deadline, f"sessions of someone else stay open: {others}"
            time.sleep(0.02)
        apps.extend(app_connection(pg) for _ in range(3))
        thread.start()
        poll(
            observer,
            "SELECT 1 FROM pg_stat_activity WHERE pid = :pid AND wait_event = 'PgSleep'",
            "the busy session sleeps",
            pid=busy_pid,
        )
        samples = ok_pass(source)
    finally:
        observer.run("SELECT pg_cancel_backend(:pid)", pid=busy_pid)
        thread.join(timeout=10)
        for conn in (*apps, busy, observer):
            conn.close()

    # The collector's own session is left out of every count: observer and busy (postgres),
    # three idle app sessions.
    assert series_of(samples, "pg_user_connection_count") == {
        frozenset({("username", APP)}): 3,
        frozenset({("username", "postgres")}): 2,
    }
    assert value(samples, "pg_total_connections") == 5
    assert value(samples, "pg_idle_connections") == 4
    assert value(samples, "pg_active_connections") == 1
    assert value(samples, "pg_uptime_seconds") > 0


# --- statements -------------------------------------------------------------------------


def queryid_of(pg: PostgresServer, text: str, user: str = APP) -> int:
    rows = pg.execute_as_superuser(
        "SELECT DISTINCT s.queryid FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
        " JOIN pg_database d ON d.oid = s.dbid"
        " WHERE s.query = :text AND r.rolname = :user AND d.datname = :db",
        database=APP_DB,
        text=text,
        user=user,
        db=APP_DB,
    )
    assert rows is not None and len(rows) == 1, rows
    return int(rows[0][0])


def test_statement_run_seven_times(pg: PostgresServer, source: PostgresSource) -> None:
    app = app_connection(pg)
    try:
        for i in range(7):
            app.run("SELECT   count(*)  AS seven_calls\n FROM items WHERE id > :v", v=i * 10)
    finally:
        app.close()
    text = "SELECT count(*) AS seven_calls FROM items WHERE id > $1"
    queryid = queryid_of(pg, "SELECT   count(*)  AS seven_calls\n FROM items WHERE id > $1")

    samples = ok_pass(source)
    labels = {"query": text, "queryid": str(queryid), "database": APP_DB, "user": APP}
    assert [s for s in query_series(samples) if "seven_calls" in s["query"]] == [labels]
    assert value(samples, "pg_query_calls", **labels) == 7
    assert value(samples, "pg_query_rows", **labels) == 7  # count(*) returns one row each
    total = value(samples, "pg_query_total_exec_time", **labels)
    assert value(samples, "pg_query_mean_exec_time", **labels) == pytest.approx(total / 7)
    minimum = value(samples, "pg_query_min_exec_time", **labels)
    maximum = value(samples, "pg_query_max_exec_time", **labels)
    assert 0 < minimum <= total / 7 <= maximum <= total
    # The table is in shared buffers after the first call.
    assert 0 < value(samples, "pg_query_hit_percent", **labels) <= 100
    # track_io_timing is off on the stand-ins, so no time is measured: exactly 0.
    assert value(samples, "pg_query_blk_read_time", **labels) == 0.0
    assert value(samples, "pg_query_blk_write_time", **labels) == 0.0


def test_statement_run_nested_and_top_level_is_one_series(
    pg: PostgresServer, source: PostgresSource
) -> None:
    # With pg_stat_statements.track = all (the stand-ins' setting), a statement run inside a
    # function has its own entry (toplevel false) beside the top-level one: same queryid,
    # database and user, so one series whose values are the two entries' sums.
    pg.execute_as_superuser(
        "CREATE OR REPLACE FUNCTION nested_and_top() RETURNS bigint LANGUAGE sql AS "
        "'SELECT count(*) AS nested_and_top FROM items WHERE id > 2'",
        database=APP_DB,
    )
    pg.execute_as_superuser("GRANT EXECUTE ON FUNCTION nested_and_top() TO PUBLIC", database=APP_DB)
    app = app_connection(pg)
    try:
        for _ in range(3):
            app.run("SELECT nested_and_top()")
        for _ in range(2):
            app.run("SELECT count(*) AS nested_and_top FROM items WHERE id > 2")
    finally:
        app.close()
    text = "SELECT count(*) AS nested_and_top FROM items WHERE id > $1"
    entries = pg.execute_as_superuser(
        "SELECT toplevel, calls FROM pg_stat_statements WHERE query = :text ORDER BY toplevel",
        database=APP_DB,
        text=text,
    )
    assert entries == [[False, 3], [True, 2]]
    samples = ok_pass(source)
    [labels] = [s for s in query_series(samples) if s["query"] == text]
    assert labels["user"] == APP and labels["database"] == APP_DB
    assert value(samples, "pg_query_calls", **labels) == 5
    assert value(samples, "pg_query_rows", **labels) == 5


def test_query_text_is_capped(pg: PostgresServer) -> None:
    app = app_connection(pg)
    try:
        app.run("SELECT name AS capped_text_column_with_a_long_name FROM items WHERE id = 1")
    finally:
        app.close()
    src = PostgresSource(settings_for(pg, PG_QUERY_MAX_LENGTH="30"))
    try:
        samples = ok_pass(src)
    finally:
        src.close()
    queries = [s["query"] for s in query_series(samples) if s["user"] == APP]
    assert "SELECT name AS capped_text_col" in queries
    assert all(len(q) <= 30 for q in queries)


def test_top_n_limits_and_orders_by_total_time(pg: PostgresServer) -> None:
    # Statements of earlier tests (any database: the top N is server-wide) are forgotten.
    pg.execute_as_superuser("SELECT pg_stat_statements_reset()", database=APP_DB)
    app = app_connection(pg)
    try:
        app.run("SELECT name FROM items WHERE id = 3")
        app.run("SELECT pg_sleep(0.2) AS slowest FROM items WHERE id = 1")
    finally:
        app.close()
    src = PostgresSource(settings_for(pg, PG_STATEMENTS_TOP_N="1"))
    try:
        samples = ok_pass(src)
    finally:
        src.close()
    assert [s["query"] for s in query_series(samples)] == [
        "SELECT pg_sleep($1) AS slowest FROM items WHERE id = $2"
    ]


def test_own_statements_never_in_top_n(pg: PostgresServer, source: PostgresSource) -> None:
    # The collector logs in as MONITOR and nothing else does: every entry of that user is
    # the collector's own. Several passes, so every statement it runs has an entry; only this
    # test's (the server is shared by the session).
    pg.execute_as_superuser(
        "SELECT pg_stat_statements_reset((SELECT oid FROM pg_roles WHERE rolname = :user), 0, 0)",
        database=APP_DB,
        user=MONITOR,
    )
    for _ in range(3):
        samples = ok_pass(source)
    own_users = {s["user"] for s in query_series(samples)}
    assert MONITOR not in own_users
    assert [s["query"] for s in query_series(samples) if statements.MARKER in s["query"]] == []
    # ...and yet the collector's statements are in pg_stat_statements: they were excluded.
    rows = pg.execute_as_superuser(
        "SELECT s.query FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
        " WHERE r.rolname = :user",
        database=APP_DB,
        user=MONITOR,
    )
    assert rows is not None
    # The thirteen statements of a pass (liveness, what the connection allows, activity, users,
    # sizes, health, extension version, snapshot header, calls, top N, texts,
    # classification, the database's own: tables, indexes, vacuums), each marked as the
    # collector's.
    assert len(rows) == 13
    assert [query for (query,) in rows if statements.MARKER not in query] == []


def test_statements_are_classified_once_each_in_one_packed_row(pg: PostgresServer) -> None:
    """A cold target classifies every entry of pg_stat_statements: in one statement whose
    answer is one row (queryids and kinds packed), not a row per entry, which cost the
    collector about 60 ms of CPU for 5,000 entries. Warm passes classify only what is new:
    nothing once the collector's own statements have their entries."""
    from middleware_monitoring.postgres.connection import PgConnection

    classified: list[tuple[int, int]] = []  # (queryids asked about, rows answered)

    class Counting(PgConnection):
        def run(self, sql: str, **params: object) -> list[list[object]]:
            rows = super().run(sql, **params)
            if sql == statements.CLASSIFY_SQL:
                asked = str(params["queryids"])
                classified.append((asked.count(",") + 1, len(rows)))
            return rows

    conn = app_connection(pg)
    try:
        for n in range(1, 61):  # 60 statements of their own (aliases and constants are not)
            conn.run(f"SELECT {', '.join(['id'] * n)} FROM items WHERE id = 1")
    finally:
        conn.close()
    counted = pg.execute_as_superuser(
        "SELECT count(DISTINCT queryid) FROM pg_stat_statements", database=APP_DB
    )
    assert counted is not None
    entries = counted[0][0]
    settings = settings_for(pg)
    source = PostgresSource(settings, Counting(settings))
    try:
        ok_pass(source)
        # The snapshot's entries in one statement, then the top N's newcomers (the
        # collector's statements of this pass since its snapshot) in another, each one row.
        assert len(classified) <= 2
        assert classified[0][0] >= entries >= 60
        assert {rows for _, rows in classified} == {1}
        ok_pass(source)
        classified.clear()
        ok_pass(source)
        assert classified == []
    finally:
        source.close()


def test_warm_passes_convert_no_statement_parameters_again(
    pg: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg8000 converts a statement's :name parameters by walking its text a character at a
    time (0.3 ms of CPU for the top-N statement, on every run): the conversion is kept per
    statement text, so a warm pass converts none, and answers as pg8000's own run does."""
    import pg8000.native

    from middleware_monitoring.postgres import connection

    converted: list[str] = []
    original = pg8000.native.to_statement

    def counting(sql: str) -> Any:
        converted.append(sql)
        return original(sql)

    monkeypatch.setattr(pg8000.native, "to_statement", counting)
    connection.native_statement.cache_clear()
    src = PostgresSource(settings_for(pg))
    try:
        ok_pass(src)
        # The top N with its parameters, at least, was converted in the first pass.
        assert statements.top_sql(src._extension_version() or "") in converted
        converted.clear()
        samples = ok_pass(src)
        assert converted == []
        assert query_series(samples)  # the top N was read all the same
    finally:
        src.close()
    plain = pg.connect(database=APP_DB)
    kept = connection.NativeConnection(
        user=pg.superuser, password=pg.password, host=pg.host, port=pg.port, database=APP_DB
    )
    try:
        sql = "SELECT :b::int + :a::int, :a::text"
        assert kept.run(sql, a=1, b=2) == plain.run(sql, a=1, b=2) == [[3, "1"]]
        assert kept.run(sql, a=5, b=2) == [[7, "5"]]
    finally:
        kept.close()
        plain.close()


def test_a_warm_pass_over_the_same_entries_builds_no_set_of_their_queryids(
    pg: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Classifying and trimming against the snapshot's entries (sets of thousands of
    queryids) is done when the entries changed since the last snapshot, not in every pass;
    the entries' keys cross the wire only then (their calls every pass); and the top N's
    samples of one statement share one label dict (made once, not once per sample).
    Counted, not timed."""
    from middleware_monitoring.postgres.qps import PackedCalls

    sets: list[int] = []
    original = PackedCalls.queryids

    def counting(self: PackedCalls) -> set[int]:
        made = original(self)
        sets.append(len(made))
        return made

    monkeypatch.setattr(PackedCalls, "queryids", counting)
    # Entries whose keys came over the wire (not only their calls).
    keyed: list[int] = []
    from_columns = PackedCalls.from_columns

    def counting_keys(keys: bytes | None, calls: bytes | None, digest: str | None) -> PackedCalls:
        made = from_columns(keys, calls, digest)
        keyed.append(len(made))
        return made

    monkeypatch.setattr(PackedCalls, "from_columns", counting_keys)
    src = PostgresSource(settings_for(pg))
    try:
        ok_pass(src)  # the first pass classifies every entry
        assert sets and sets[0] > 0
        # The collector's own statements get their entries in the first passes.
        for _ in range(3):
            ok_pass(src)
        sets.clear()
        keyed.clear()
        families = list(src.collect())
        assert sets == []
        assert keyed == []  # the same entries: only their calls were sent
        statement_families = [f for f in families if f.name.startswith("pg_query_")]
        samples = [s for f in statement_families for s in f.samples]
        statements_sent = {s.labels["queryid"] for s in samples}
        assert len(statements_sent) > 1
        assert len({id(s.labels) for s in samples}) == len(statements_sent)
        # A new entry: the next pass classifies against the snapshot again.
        app = app_connection(pg)
        try:
            app.run("SELECT count(*) AS a_new_statement_of_this_test FROM items")
        finally:
            app.close()
        ok_pass(src)
        assert len(sets) == 1
        assert len(keyed) == 1 and keyed[0] >= sets[0]
    finally:
        src.close()


def test_trivial_and_password_statements_never_in_top_n(
    pg: PostgresServer, source: PostgresSource
) -> None:
    conn = pg.connect(database=APP_DB)
    try:
        for sql in (
            "BEGIN",
            "SAVEPOINT sp1",
            "SET LOCAL work_mem = '8MB'",
            "RELEASE SAVEPOINT sp1",
            "COMMIT",
            "SET work_mem = '16MB'",
            "SHOW work_mem",
            "RESET work_mem",
            "START TRANSACTION",
            "ROLLBACK",
            "DISCARD ALL",
            "DROP ROLE IF EXISTS mm_tmp_role",
            "CREATE ROLE mm_tmp_role LOGIN PASSWORD 'role-secret-one'",
            "ALTER ROLE mm_tmp_role PASSWORD 'role-secret-two'",
            "ALTER USER mm_tmp_role WITH PASSWORD 'role-secret-three'",
            # connect = false: the subscription is only recorded, no publisher is needed.
            "DROP SUBSCRIPTION IF EXISTS mm_tmp_sub",
            "CREATE SUBSCRIPTION mm_tmp_sub CONNECTION 'host=db.invalid password=role-secret-four'"
            " PUBLICATION p WITH (connect = false, slot_name = NONE, enabled = false)",
            "DROP SUBSCRIPTION mm_tmp_sub",
            "SELECT id, name AS kept_in_top FROM items WHERE id = 42 ORDER BY id",
        ):
            conn.run(sql)
    finally:
        conn.close()
    samples = ok_pass(source)
    queries = [s["query"] for s in query_series(samples) if s["user"] == "postgres"]
    assert "SELECT id, name AS kept_in_top FROM items WHERE id = $1 ORDER BY id" in queries
    trivial = (
        "begin",
        "savepoint",
        "set ",
        "release",
        "commit",
        "show",
        "reset",
        "start",
        "rollback",
        "discard",
        "create role",
        "alter role",
        "alter user",
        "create subscription",
    )
    assert [q for q in queries if q.lower().startswith(trivial)] == []
    everything = repr(samples)
    assert "role-secret" not in everything


def test_database_size(pg: PostgresServer, source: PostgresSource) -> None:
    pg.create_database("mm_sized")
    pg.execute_as_superuser(
        "CREATE TABLE IF NOT EXISTS known (id int, payload text) WITH (autovacuum_enabled = false)",
        database="mm_sized",
    )
    pg.execute_as_superuser("TRUNCATE known", database="mm_sized")
    pg.execute_as_superuser(
        "INSERT INTO known SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g",
        database="mm_sized",
    )
    # VACUUM now creates the visibility and free-space maps, so the size stays put.
    pg.execute_as_superuser("VACUUM known", database="mm_sized")
    expected = pg.execute_as_superuser("SELECT pg_database_size('mm_sized')")
    samples = ok_pass(source)
    assert expected is not None
    assert value(samples, "pg_database_size_bytes", database_name="mm_sized") == expected[0][0]
    databases = pg.execute_as_superuser("SELECT datname FROM pg_database WHERE NOT datistemplate")
    assert databases is not None
    assert {
        labels_of(k)["database_name"] for k in series_of(samples, "pg_database_size_bytes")
    } == {row[0] for row in databases}


# --- QPS --------------------------------------------------------------------------------


def workload(pg: PostgresServer, reads: int, inserts: int, updates: int, tag: str) -> None:
    app = app_connection(pg)
    try:
        for i in range(reads):
            if i % 2:
                app.run(f"SELECT name AS {tag}_a FROM items WHERE id = :id", id=i % 100 + 1)
            else:
                app.run(f"WITH x AS (SELECT id FROM items) SELECT count(*) AS {tag}_b FROM x")
        if inserts or updates:
            app.run(f"CREATE TABLE IF NOT EXISTS {tag}_log (n int)")
            app.run(f"TRUNCATE {tag}_log")
        for i in range(inserts):
            app.run(f"INSERT INTO {tag}_log VALUES (:n)", n=i)
        for i in range(updates):
            app.run(f"UPDATE {tag}_log SET n = n + 1 WHERE n = :n", n=i)
    finally:
        app.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clocked(pg: PostgresServer, clock: ManualClock, closer: Closer) -> PostgresSource:
    return closer(PostgresSource(settings_for(pg), clock=clock, sleep=clock.sleep))


def test_qps_between_warm_passes(
    pg: PostgresServer, clocked: PostgresSource, clock: ManualClock
) -> None:
    first = ok_pass(clocked)
    # PG_QPS_SAMPLE_SECONDS=0: the first pass of a cold instance has no rate.
    assert names(first) & QPS_NAMES == set()
    reads, inserts, updates = 30, 12, 5
    # Plus CREATE TABLE (kind "other": in all, not in read or write) and TRUNCATE (a write).
    workload(pg, reads, inserts, updates, "warm")
    clock.now += 10
    second = ok_pass(clocked)

    rates = {name: value(second, name) for name in ("pg_qps_read", "pg_qps_write", "pg_qps_all")}
    # 30 reads, 18 writes and the CREATE TABLE over the 10 s between the passes.
    assert rates == {"pg_qps_read": 3.0, "pg_qps_write": 1.8, "pg_qps_all": 4.9}
    assert clock.slept == []


def test_qps_cold_start_window(pg: PostgresServer, clock: ManualClock, closer: Closer) -> None:
    reads = 25

    def sleep_with_workload(seconds: float) -> None:
        workload(pg, reads, 0, 0, "cold")
        clock.sleep(seconds)

    src = closer(
        PostgresSource(
            settings_for(pg, PG_QPS_SAMPLE_SECONDS="0.5"), clock=clock, sleep=sleep_with_workload
        )
    )
    samples = ok_pass(src)
    # No time passed on the clock before the sleep: the whole window is slept.
    assert clock.slept == [0.5]
    rates = {name: value(samples, name) for name in ("pg_qps_read", "pg_qps_write", "pg_qps_all")}
    # 25 reads in the 0.5 s window (a binary fraction: the rate is exact).
    assert rates == {"pg_qps_read": 50.0, "pg_qps_write": 0.0, "pg_qps_all": 50.0}


class WindowSeen:
    """PostgreSQL sources in a real pass whose cold-start windows the test sees: the first
    window to end (the runner submits its second step) waits until every source's window
    has begun, runs the workload, and moves the sources' clock over the window; then every
    second snapshot is taken. So each rate is the workload over one exact window."""

    def __init__(self, sources: list[PostgresSource], clock: ManualClock, work: Any) -> None:
        self.sources = sources
        self.clock = clock
        self.work = work
        self.begun = threading.Semaphore(0)
        self.ended = False
        self.lock = threading.Lock()

    def wrapped(self, source: PostgresSource) -> Source:
        seen = self

        class Seen:
            name = source.name

            def collect(self) -> Iterator[Metric]:
                raise AssertionError("the runner takes the steps")

            def steps(self) -> Iterator[Metric | Later]:
                for step in source.steps():
                    if isinstance(step, Later):
                        seen.begun.release()
                        yield Later(step.delay, partial(seen.end, step), step.dropped)
                    else:
                        yield step

        return Seen()

    def end(self, step: Later) -> Iterator[Metric | Later]:
        with self.lock:
            if not self.ended:
                for _ in self.sources:  # every window has begun (a condition, not a time)
                    assert self.begun.acquire(timeout=30)
                self.work()
                self.clock.sleep(step.delay)
                self.ended = True
        yield from step.then()


def test_cold_start_windows_of_many_targets_in_one_pass(
    pg: PostgresServer, clock: ManualClock, closer: Closer
) -> None:
    """8 cold targets, 2 workers: every window overlaps the others' (the runner holds no
    worker while one runs) and each target gets the exact rates over its own window."""
    reads, inserts, updates = 20, 6, 4
    sources = [
        closer(PostgresSource(settings_for(pg, PG_QPS_SAMPLE_SECONDS="0.25"), clock=clock))
        for _ in range(8)
    ]
    seen = WindowSeen(sources, clock, lambda: workload(pg, reads, inserts, updates, "many"))
    targets = [Target(f"pg{i}", [seen.wrapped(src)]) for i, src in enumerate(sources)]
    result = run_pass(
        targets, deadline=time.monotonic() + 60, max_workers=2, collector_instance="collector"
    )
    assert seen.ended
    assert clock.slept == [0.25]
    for group in result.targets:
        got = {
            s.name: s.value
            for family in group.families
            for s in family.samples
            if s.name.startswith("pg_qps_") or s.name in ("pg_up", "middleware_collector_up")
        }
        # 20 reads, 10 writes (6 inserts, 4 updates) and TRUNCATE (a write) and CREATE TABLE
        # (other: in all only) over the 0.25 s window.
        assert got == {
            "pg_up": 1.0,
            "middleware_collector_up": 1.0,
            "pg_qps_read": 80.0,
            "pg_qps_write": 44.0,
            "pg_qps_all": 128.0,
        }, group.target


def test_a_cold_start_window_without_a_worker_before_the_deadline(
    pg: PostgresServer, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    """The only worker is held by a server gone silent until after the deadline: the
    window's second snapshot never runs. The target's other series go out, pg_qps_* are
    absent (the same debug line as when no window fits), and the next pass rates from the
    first snapshot."""
    caplog.set_level(logging.DEBUG, logger="middleware_monitoring")
    src = closer(PostgresSource(settings_for(pg, PG_QPS_SAMPLE_SECONDS="0.25")))
    release = threading.Event()

    class Silent:
        name = "silent"

        def collect(self) -> Iterator[Metric]:
            release.wait(30)
            yield from ()

    targets = [Target("pg", [src]), Target("silent", [Silent()])]
    try:
        result = run_pass(
            targets, deadline=time.monotonic() + 3, max_workers=1, collector_instance="c"
        )
    finally:
        release.set()
    targets[1].in_flight["silent"].result(timeout=30)
    group = result.targets[0]
    got = {s.name for family in group.families for s in family.samples}
    assert {"pg_up", "pg_total_connections", "pg_query_calls"} <= got
    assert got & QPS_NAMES == set()
    assert group.up
    [line] = [r for r in caplog.records if r.getMessage().startswith("no QPS sampling window")]
    assert line.levelno == logging.DEBUG
    assert re.fullmatch(
        r"no QPS sampling window this pass: 0\.000 s left before the pass deadline, "
        r"0\.\d{3} s kept for the second snapshot",
        line.getMessage(),
    )
    warm = ok_pass(src)
    assert names(warm) & QPS_NAMES == QPS_NAMES


def test_cold_start_window_ends_before_the_pass_deadline(
    pg: PostgresServer, clock: ManualClock, closer: Closer
) -> None:
    reads = 20

    def sleep_with_workload(seconds: float) -> None:
        workload(pg, reads, 0, 0, "capped")
        clock.sleep(seconds)

    src = closer(
        PostgresSource(
            settings_for(pg, PG_QPS_SAMPLE_SECONDS="5"), clock=clock, sleep=sleep_with_workload
        )
    )
    # 2 s left in the pass, a 5 s window asked for: the window ends before the deadline with
    # time kept for the second snapshot.
    started = clock.now
    with pass_deadline(time.monotonic() + 2.0):
        samples = ok_pass(src)
    [window] = clock.slept
    assert 0 < window <= 2.0 - SNAPSHOT_MARGIN_SECONDS
    # The rate is over the window actually slept (as the clock adds it up).
    assert value(samples, "pg_qps_read") == reads / ((started + window) - started)


def test_no_qps_when_the_pass_has_no_time_for_a_window(
    pg: PostgresServer, clock: ManualClock, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    src = closer(
        PostgresSource(settings_for(pg, PG_QPS_SAMPLE_SECONDS="1"), clock=clock, sleep=clock.sleep)
    )
    caplog.set_level(logging.DEBUG, logger="middleware_monitoring")
    with pass_deadline(time.monotonic() + SNAPSHOT_MARGIN_SECONDS / 2):
        samples = ok_pass(src)
    assert clock.slept == []
    assert names(samples) & QPS_NAMES == set()
    [line] = [r for r in caplog.records if r.getMessage().startswith("no QPS sampling window")]
    assert line.levelno == logging.DEBUG
    assert re.fullmatch(
        r"no QPS sampling window this pass: 0\.0\d\d s left before the pass deadline, "
        r"0\.\d{3} s kept for the second snapshot",
        line.getMessage(),
    )


def test_no_second_snapshot_when_the_window_ends_too_late(
    pg: PostgresServer, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    """A window that ends late (its workers were busy) with less time left than the second
    snapshot may take is not closed: no pg_qps_*, the same debug line, the rest goes out."""
    slept: list[float] = []

    def late(seconds: float) -> None:
        slept.append(seconds)
        while seconds_left() != 0.0:  # until the pass deadline has come
            time.sleep(0.01)

    src = closer(PostgresSource(settings_for(pg, PG_QPS_SAMPLE_SECONDS="0.2"), sleep=late))
    caplog.set_level(logging.DEBUG, logger="middleware_monitoring")
    with pass_deadline(time.monotonic() + 1.5):
        samples = ok_pass(src)
    [window] = slept  # a window was granted (less the time since the first snapshot)
    assert 0 < window <= 0.2
    assert names(samples) & QPS_NAMES == set()
    assert {"pg_up", "pg_total_connections", "pg_query_calls"} <= names(samples)
    [line] = [r for r in caplog.records if r.getMessage().startswith("no QPS sampling window")]
    assert re.fullmatch(
        r"no QPS sampling window this pass: 0\.000 s left before the pass deadline, "
        r"0\.\d{3} s kept for the second snapshot",
        line.getMessage(),
    )


def test_qps_disabled_cold_start_does_not_sleep(pg: PostgresServer) -> None:
    slept: list[float] = []
    src = PostgresSource(settings_for(pg, PG_QPS_SAMPLE_SECONDS="0"), sleep=slept.append)
    try:
        first = ok_pass(src)
        second = ok_pass(src)
    finally:
        src.close()
    assert slept == []
    assert names(first) & QPS_NAMES == set()
    assert names(second) & QPS_NAMES == QPS_NAMES


def test_qps_after_pg_stat_statements_reset(
    pg: PostgresServer, clocked: PostgresSource, clock: ManualClock
) -> None:
    ok_pass(clocked)
    workload(pg, 40, 20, 0, "reset")
    clock.now += 10
    ok_pass(clocked)
    # A statement of its own (not the plain reset call other tests make), so it is a new
    # entry here whatever ran before.
    pg.execute_as_superuser("SELECT count(*) FROM pg_stat_statements_reset()", database=APP_DB)
    workload(pg, 3, 0, 0, "reset")
    clock.now += 10
    after = ok_pass(clocked)

    rates = {name: value(after, name) for name in ("pg_qps_read", "pg_qps_write", "pg_qps_all")}
    # Since the reset: 3 reads (entries whose count went down from 20 each) and the reset
    # call itself (a SELECT, a new entry), over 10 s.
    assert rates == {"pg_qps_read": 0.4, "pg_qps_write": 0.0, "pg_qps_all": 0.4}


def test_qps_after_reset_when_counts_climb_past_old_ones(
    pg: PostgresServer, clocked: PostgresSource, clock: ManualClock
) -> None:
    ok_pass(clocked)
    workload(pg, 5, 0, 0, "climb")
    clock.now += 10
    ok_pass(clocked)
    pg.execute_as_superuser("SELECT count(*) FROM pg_stat_statements_reset()", database=APP_DB)
    # More calls than before the reset: only stats_reset tells they all happened since.
    workload(pg, 12, 0, 0, "climb")
    clock.now += 10
    after = ok_pass(clocked)
    # 12 reads and the reset call over 10 s; per-entry deltas alone would have seen 12 - 5 = 7.
    assert value(after, "pg_qps_read") == 1.3


def test_another_clients_copy_of_a_collector_statement_counts(
    pg: PostgresServer, clocked: PostgresSource, clock: ManualClock
) -> None:
    """Issue 12 item 8: the collector's statements are its own by queryid; an application
    running the same text (without the marker) is the application's workload."""
    copy = pg_source.CONNECTIONS_BY_USER_SQL.removeprefix(f"{statements.MARKER} ")
    assert copy.startswith("SELECT coalesce(usename, '')")
    pg.execute_as_superuser(
        "SELECT pg_stat_statements_reset((SELECT oid FROM pg_roles WHERE rolname = :user), 0, 0)",
        database=APP_DB,
        user=APP,
    )
    ok_pass(clocked)
    app = app_connection(pg)
    try:
        for _ in range(7):
            app.run(copy)
    finally:
        app.close()
    clock.now += 10
    samples = ok_pass(clocked)
    rates = {name: value(samples, name) for name in ("pg_qps_read", "pg_qps_write", "pg_qps_all")}
    assert rates == {"pg_qps_read": 0.7, "pg_qps_write": 0.0, "pg_qps_all": 0.7}
    copies = [s for s in query_series(samples) if s["user"] == APP]
    assert [s["query"] for s in copies] == [
        "SELECT coalesce(usename, $1), count(*) FROM pg_stat_activity"
        " WHERE backend_type = $2 AND pid <> pg_backend_pid() GROUP BY 1"
    ]
    assert value(samples, "pg_query_calls", **copies[0]) == 7


def test_with_select_for_update_is_a_read(
    pg: PostgresServer, clocked: PostgresSource, clock: ManualClock
) -> None:
    ok_pass(clocked)
    app = app_connection(pg)
    try:
        for _ in range(4):
            app.run(
                "WITH x AS (SELECT id FROM items WHERE id <= 2)"
                " SELECT i.id FROM items i JOIN x USING (id) FOR UPDATE OF i"
            )
        for _ in range(2):
            app.run("SELECT id FROM items WHERE id = 3 FOR NO KEY UPDATE")
    finally:
        app.close()
    clock.now += 10
    samples = ok_pass(clocked)
    rates = {name: value(samples, name) for name in ("pg_qps_read", "pg_qps_write", "pg_qps_all")}
    # Reads that lock rows: reads, with or without a WITH in front.
    assert rates == {"pg_qps_read": 0.6, "pg_qps_write": 0.0, "pg_qps_all": 0.6}


# --- extension versions -----------------------------------------------------------------


def test_extension_version_and_its_sql(pg: PostgresServer, source: PostgresSource) -> None:
    conn = pg.connect(database=APP_DB)
    try:
        version = conn.run(statements.EXTENSION_VERSION_SQL)[0][0]
        assert version == PG_STAT_STATEMENTS_VERSION[pg.version]
        params = {"excluded": [], "limit": 5}
        # One row: the entries as one JSON array.
        [[entries]] = conn.run(statements.top_sql(version), **params)
        assert len(entries) == 5
        # The other layouts do not run here: the choice by version is what makes it work.
        wrong, missing = (
            ("1.11", "shared_blk_read_time")
            if pg.version == 15
            else (
                "1.10",
                "blk_read_time",
            )
        )
        with pytest.raises(DatabaseError, match=rf"column s\.{missing} does not exist"):
            conn.run(statements.top_sql(wrong), **params)
        with pytest.raises(DatabaseError, match=r"column s\.total_time does not exist"):
            conn.run(statements.top_sql("1.7"), **params)
    finally:
        conn.close()
    samples = ok_pass(source)
    assert len(series_of(samples, "pg_query_blk_read_time")) == len(
        series_of(samples, "pg_query_calls")
    )
    assert len(series_of(samples, "pg_query_blk_write_time")) == len(
        series_of(samples, "pg_query_calls")
    )


# --- waiting sessions (real time: the thresholds are 1 s and 5 s) --------------------------


def test_wait_sessions(pg15: PostgresServer, pg17: PostgresServer, pg18: PostgresServer) -> None:
    """All three versions at once, so the 6 s wait is paid once."""
    servers = [prepare(server) for server in (pg15, pg17, pg18)]
    holders: list[pg8000.native.Connection] = []
    idles: list[pg8000.native.Connection] = []
    waiters: list[tuple[pg8000.native.Connection, int, threading.Thread]] = []
    sources = [PostgresSource(settings_for(server)) for server in servers]
    early: list[Samples] = []

    def block(conn: pg8000.native.Connection) -> threading.Thread:
        def blocked() -> None:
            with contextlib.suppress(DatabaseError):  # cancelled (retry, end of the test)
                conn.run("SELECT count(*) FROM items")

        thread = threading.Thread(target=blocked, daemon=True)
        thread.start()
        return thread

    try:
        baseline = [ok_pass(src) for src in sources]
        for server in servers:
            holder = server.connect(database=APP_DB)
            holder.run("BEGIN")
            holder.run("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            holders.append(holder)
            # Idle sessions wait on ClientRead; they must not count.
            idle = app_connection(server)
            idle.run("SELECT 1")
            idles.append(idle)
            waiter = app_connection(server)
            pid = waiter.run("SELECT pg_backend_pid()")[0][0]
            waiters.append((waiter, pid, block(waiter)))

        def age(server: PostgresServer, pid: int) -> float:
            """How long the waiter has been blocked on the lock (0 when it is not)."""
            rows = server.execute_as_superuser(
                "SELECT extract(epoch FROM clock_timestamp() - state_change)::float8"
                " FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = 'Lock'",
                pid=pid,
            )
            return float(rows[0][0]) if rows else 0.0

        def poll(server: PostgresServer, pid: int, seconds: float) -> None:
            deadline = time.monotonic() + seconds + 30
            while age(server, pid) < seconds:
                assert time.monotonic() < deadline, "session never got blocked"
                time.sleep(0.05)

        for n, (server, src) in enumerate(zip(servers, sources, strict=True)):
            # The early pass must see the waiter blocked for 1 s and not yet 5: its age read
            # after the pass bounds it. A slow machine gets a fresh blocked statement again.
            for _ in range(5):
                waiter, pid, thread = waiters[n]
                poll(server, pid, 1.0)
                sample = ok_pass(src)
                if age(server, pid) < 5.0:
                    break
                server.execute_as_superuser("SELECT pg_cancel_backend(:pid)", pid=pid)
                thread.join(timeout=30)
                waiters[n] = (waiter, pid, block(waiter))
            else:
                pytest.fail(f"no pass within 4 s of a 1 s wait on {server}")
            early.append(sample)
        for server, (_, pid, _) in zip(servers, waiters, strict=True):
            poll(server, pid, 6.0)
        late = [ok_pass(src) for src in sources]
    finally:
        for server, (_, pid, _) in zip(servers, waiters, strict=False):
            server.execute_as_superuser("SELECT pg_cancel_backend(:pid)", pid=pid)
        # The blocked statements end cancelled before the lock goes, so none of them
        # completes with a long time that would top other tests' statements.
        for waiter, _, thread in waiters:
            thread.join(timeout=10)
            waiter.close()
        for holder in holders:
            holder.run("ROLLBACK")
            holder.close()
        for conn in idles:
            conn.close()
        for src in sources:
            src.close()

    for server, base, one, six in zip(servers, baseline, early, late, strict=True):
        assert (value(base, "pg_wait_session_sec"), value(base, "pg_wait_session_five_sec")) == (
            0,
            0,
        ), server
        assert (value(one, "pg_wait_session_sec"), value(one, "pg_wait_session_five_sec")) == (
            1,
            0,
        ), server
        assert (value(six, "pg_wait_session_sec"), value(six, "pg_wait_session_five_sec")) == (
            1,
            1,
        ), server
