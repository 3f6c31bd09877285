"""Every database of a server (PG_DATABASES), targets sharing a server (server-wide read
once, by the target first by name), index usage and vacuum progress (SPEC 16), on real
servers: databases created and dropped between passes, a vacuum caught while it waits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from middleware_monitoring.config import load_settings
from middleware_monitoring.postgres.source import PostgresSource
from middleware_monitoring.runtime import Runtime
from tests.integration.pg_helpers import (
    APP_DB,
    MONITOR,
    MONITOR_PASSWORD,
    held_vacuum,
    ok_pass,
    prepare,
    series_of,
    settings_for,
)
from tests.standins.postgres import PostgresServer

DB_A, DB_B, DB_C = "mm_every_a", "mm_every_b", "mm_every_c"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def make_database(server: PostgresServer, name: str) -> None:
    """A database with one table, two indexes: `_pkey` scanned twice, `_note` never."""
    drop_database(server, name)
    server.create_database(name)
    server.execute_as_superuser(
        "CREATE TABLE things (id int PRIMARY KEY, note text)", database=name
    )
    server.execute_as_superuser("CREATE INDEX things_note ON things (note)", database=name)
    server.execute_as_superuser(f"GRANT SELECT ON things TO {MONITOR}", database=name)
    # Not ON CONFLICT: its checks would count as scans of the primary key.
    server.execute_as_superuser(
        "INSERT INTO things SELECT g, 'n' || g FROM generate_series(1, 500) g", database=name
    )
    server.execute_as_superuser("ANALYZE things", database=name)
    conn = server.connect(database=name)
    try:
        conn.run("SET enable_seqscan = off")
        conn.run("SELECT note FROM things WHERE id = 5")
        conn.run("SELECT note FROM things WHERE id = 6")
    finally:
        conn.close()  # a backend's statistics are flushed when it exits
    stats = "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'things_pkey'"
    wait_for(
        lambda: server.execute_as_superuser(stats, database=name) == [[2]], "index scans counted"
    )


def drop_database(server: PostgresServer, name: str) -> None:
    server.execute_as_superuser(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def collector_sessions(server: PostgresServer) -> dict[str, int]:
    rows = server.execute_as_superuser(
        "SELECT datname, count(*) FROM pg_stat_activity WHERE usename = :u "
        "AND application_name = 'middleware-monitoring' GROUP BY datname",
        u=MONITOR,
    )
    return {str(name): int(count) for name, count in rows or []}


@pytest.fixture
def every(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    prepare(pg_server)
    for name in (DB_A, DB_B):
        make_database(pg_server, name)
    drop_database(pg_server, DB_C)
    yield pg_server
    for name in (DB_A, DB_B, DB_C):
        drop_database(pg_server, name)


def by_database(samples: dict, name: str) -> dict[str, dict[tuple[str, ...], float]]:  # type: ignore[type-arg]
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for labels, value in series_of(samples, name).items():
        label = dict(labels)
        key = tuple(v for k, v in sorted(label.items()) if k != "database_name")
        out.setdefault(label["database_name"], {})[key] = value
    return out


def test_every_database_is_read_and_followed(every: PostgresServer) -> None:
    source = PostgresSource(settings_for(every, PG_DATABASES="all", PG_DATABASE_CONNECTIONS="1"))
    try:
        first = ok_pass(source)
        sessions = collector_sessions(every)
        drop_database(every, DB_B)
        make_database(every, DB_C)
        second = ok_pass(source)
    finally:
        source.close()
    scans = by_database(first, "pg_index_scans_total")
    sizes = by_database(first, "pg_index_size_bytes")
    # The database's two indexes: (index, schema, table) -> scans; never scanned is 0.
    for name in (DB_A, DB_B):
        assert scans[name] == {
            ("things_note", "public", "things"): 0.0,
            ("things_pkey", "public", "things"): 2.0,
        }
        assert all(size >= 8192 for size in sizes[name].values())
        assert by_database(first, "pg_table_live_tuples")[name] == {("public", "things"): 500.0}
    seen = set(by_database(first, "pg_table_live_tuples")) | set(scans)
    assert {DB_A, DB_B, APP_DB} <= seen
    assert not {"template0", "template1"} & seen
    # One connection to PG_DBNAME, one kept (PG_DATABASE_CONNECTIONS=1): the first other
    # database by name; the others were closed after their read.
    assert sum(sessions.values()) == 2
    assert sessions[APP_DB] == 1
    second_seen = set(by_database(second, "pg_index_scans_total"))
    assert DB_C in second_seen and DB_B not in second_seen
    # Closed: every connection gone (a backend leaves pg_stat_activity just after its client).
    wait_for(lambda: sum(collector_sessions(every).values()) == 0, "the sessions to end")


def test_a_list_of_databases_and_custom_queries_per_database(
    every: PostgresServer, tmp_path: Path
) -> None:
    queries = tmp_path / "q.yaml"
    queries.write_text(
        "shop_things:\n  query: SELECT count(*) AS rows FROM things\n"
        "  metrics: [{rows: {usage: GAUGE, description: rows}}]\n"
        "shop_server:\n  query: SELECT 1 AS one\n  master: true\n"
        "  metrics: [{one: {usage: GAUGE, description: one}}]\n"
    )
    source = PostgresSource(
        settings_for(every, PG_DATABASES=f"{DB_A}, {DB_B}", PG_QUERIES_FILE=str(queries))
    )
    try:
        samples = ok_pass(source)
    finally:
        source.close()
    assert set(by_database(samples, "pg_index_scans_total")) == {APP_DB, DB_A, DB_B}
    # Not in mm_app (no table `things` there: that query is down there only).
    assert series_of(samples, "shop_things_rows") == {
        frozenset({("database_name", DB_A)}): 500.0,
        frozenset({("database_name", DB_B)}): 500.0,
    }
    assert series_of(samples, "shop_server_one") == {frozenset({("database_name", APP_DB)}): 1.0}
    up = {
        (dict(k)["query"], dict(k)["database_name"]): v
        for k, v in series_of(samples, "pg_custom_query_up").items()
    }
    assert up == {
        ("shop_things", APP_DB): 0.0,
        ("shop_server", APP_DB): 1.0,
        ("shop_things", DB_A): 1.0,
        ("shop_things", DB_B): 1.0,
    }


def test_a_database_that_cannot_be_read_costs_its_series_only(every: PostgresServer) -> None:
    source = PostgresSource(settings_for(every, PG_DATABASES=f"{DB_A},mm_no_such_db"))
    try:
        samples = ok_pass(source)
    finally:
        source.close()
    assert set(by_database(samples, "pg_index_scans_total")) == {APP_DB, DB_A}
    assert series_of(samples, "pg_up") == {frozenset(): 1.0}


SERVER_WIDE = {
    "pg_total_connections",
    "pg_database_size_bytes",
    "pg_max_connections",
    "pg_database_xact_commit_total",
    "pg_query_calls",
}


def test_targets_sharing_a_server_read_it_once(every: PostgresServer, tmp_path: Path) -> None:
    every.create_extension(database=DB_A)
    entry = (
        "{{name: {name}, host: {host}, port: {port}, dbname: {db}, user: {user}, password: {pw}}}"
    )
    targets = [
        entry.format(
            name=name, host="127.0.0.1", port=every.port, db=db, user=MONITOR, pw=MONITOR_PASSWORD
        )
        for name, db in (("shared-b", DB_B), ("shared-a", DB_A))
    ]
    (tmp_path / "targets.yaml").write_text("postgres:\n" + "".join(f"  - {t}\n" for t in targets))
    settings = load_settings(
        {
            "TARGETS_FILE": str(tmp_path / "targets.yaml"),
            "PG_QPS_SAMPLE_SECONDS": "0",
        }
    )
    with closing(Runtime(settings)) as runtime:
        result = runtime.collect(30.0)
    by_target = {
        t.target: {s.name: s for f in t.families for s in f.samples} for t in result.targets
    }
    assert [t.target for t in result.targets] == ["shared-b", "shared-a"]
    assert all(t.up for t in result.targets), [t.outcomes for t in result.targets]
    carried, other = set(by_target["shared-a"]), set(by_target["shared-b"])
    assert carried >= SERVER_WIDE
    assert not SERVER_WIDE & other
    assert {"pg_up", "pg_table_live_tuples", "pg_index_scans_total"} <= other
    tables_b = {
        s.labels["database_name"]
        for f in result.targets[0].families
        for s in f.samples
        if s.name == "pg_table_live_tuples"
    }
    assert tables_b == {DB_B}


def test_targets_sharing_a_server_with_every_database_read_each_once(
    every: PostgresServer, tmp_path: Path
) -> None:
    """Both targets say `databases: all`: each database's series go out once, its own
    database's with each target, every other database's with the first target by name."""
    entry = (
        "{{name: {name}, host: 127.0.0.1, port: {port}, dbname: {db}, user: {user}, "
        "password: {pw}, databases: all}}"
    )
    (tmp_path / "targets.yaml").write_text(
        "postgres:\n"
        + "".join(
            "  - "
            + entry.format(name=name, port=every.port, db=db, user=MONITOR, pw=MONITOR_PASSWORD)
            + "\n"
            for name, db in (("every-b", DB_B), ("every-a", DB_A))
        )
    )
    settings = load_settings(
        {"TARGETS_FILE": str(tmp_path / "targets.yaml"), "PG_QPS_SAMPLE_SECONDS": "0"}
    )
    with closing(Runtime(settings)) as runtime:
        result = runtime.collect(30.0)
    assert all(t.up for t in result.targets), [t.outcomes for t in result.targets]
    read_by = {
        t.target: sorted(
            {
                s.labels["database_name"]
                for f in t.families
                for s in f.samples
                if s.name == "pg_table_live_tuples"
            }
        )
        for t in result.targets
    }
    # Every database the login may read (other tests' databases too): all but every-b's own
    # are every-a's; those without a table (postgres) send no table series.
    readable = every.execute_as_superuser(
        "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn "
        "AND has_database_privilege(:login, oid, 'CONNECT')",
        login=MONITOR,
    )
    assert readable is not None
    every_database = {str(row[0]) for row in readable}
    assert {DB_A, DB_B, APP_DB} <= every_database
    assert read_by["every-b"] == [DB_B]
    assert {DB_A, APP_DB} <= set(read_by["every-a"]) <= every_database - {DB_B}


# --- vacuum progress ---------------------------------------------------------------------


def test_a_vacuum_in_progress_is_seen(pg_server: PostgresServer) -> None:
    prepare(pg_server)
    source = PostgresSource(settings_for(pg_server, PG_COLLECTORS="vacuum"))
    try:
        with held_vacuum(pg_server, APP_DB, "vac_held") as (phase, scanned, total):
            held = ok_pass(source)
        after = ok_pass(source)
    finally:
        source.close()
    assert phase == "scanning heap" and 0 < scanned < total
    assert series_of(held, "pg_vacuum_running") == {
        frozenset({("database_name", APP_DB), ("table", "vac_held"), ("phase", phase)}): 1.0
    }
    key = frozenset({("database_name", APP_DB), ("table", "vac_held")})
    assert series_of(held, "pg_vacuum_progress_ratio") == {key: scanned / total}
    assert series_of(held, "pg_vacuum_seconds")[key] > 0
    # Finished: gone.
    assert series_of(after, "pg_vacuum_running") == {}
