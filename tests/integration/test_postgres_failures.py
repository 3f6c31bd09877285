"""PostgreSQL failure paths on real servers: each pass still completes, reports the source
down (or partly down) with a reason, and pushes to the real Pushgateway."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from middleware_monitoring.logs import PACKAGE_LOGGER, setup_logging
from middleware_monitoring.postgres.connection import PgConnection, QueryFailure
from middleware_monitoring.postgres.source import PostgresSource
from middleware_monitoring.runtime import Runtime, build_sink
from tests.integration.pg_helpers import (
    APP_DB,
    HEALTH_NAMES,
    MONITOR,
    MONITOR_PASSWORD,
    TABLE_NAMES,
    names,
    ok_pass,
    prepare,
    run_pass,
    settings_for,
    value,
)
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

HINT = "CREATE EXTENSION pg_stat_statements;"
PG_QUERY = {
    "pg_query_calls",
    "pg_query_total_exec_time",
    "pg_query_min_exec_time",
    "pg_query_max_exec_time",
    "pg_query_mean_exec_time",
    "pg_query_blk_read_time",
    "pg_query_blk_write_time",
    "pg_query_rows",
    "pg_query_hit_percent",
}
QPS = {"pg_qps_all", "pg_qps_read", "pg_qps_write"}
# What a reachable server always yields, with or without pg_stat_statements.
# (pg_user_connection_count has no series while the collector is the only session.)
BASIC = {
    "pg_up",
    "pg_total_connections",
    "pg_active_connections",
    "pg_idle_connections",
    "pg_wait_session_sec",
    "pg_wait_session_five_sec",
    "pg_uptime_seconds",
    "pg_database_size_bytes",
}


@pytest.fixture(scope="module")
def lonely() -> Iterator[PostgresServer]:
    """A server of this module's own: these tests stop, restart and lock it."""
    with PostgresServer(17) as server:
        prepare(server)
        yield server


@pytest.fixture
def server(lonely: PostgresServer) -> PostgresServer:
    lonely.start()  # a test that stopped it may have failed before starting it again
    return lonely


Logs = Callable[[], list[dict[str, object]]]


@pytest.fixture
def json_logs() -> Iterator[Logs]:
    """The package's JSON log lines of this test, parsed."""
    buffer = io.StringIO()
    package = logging.getLogger(PACKAGE_LOGGER)
    saved = (list(package.handlers), package.level, package.propagate)
    setup_logging(stream=buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        package.handlers, level, package.propagate = saved
        package.setLevel(level)


def push_one_pass(
    server: PostgresServer, pushgateway: Pushgateway, **extra: str
) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """The real pipeline: settings from the environment, one pass, one push. Returns the
    job and what the Pushgateway now holds for the target."""
    job = f"failures-{uuid.uuid4().hex[:8]}"
    environ = {
        **server.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": "orders-db",
        "PG_QPS_SAMPLE_SECONDS": "0",
        "PUSHGATEWAY_URL": pushgateway.url,
        "PUSHGATEWAY_JOB": job,
        "PUSHGATEWAY_RETRIES": "0",
        **extra,
    }
    runtime = Runtime.from_environ(environ)
    try:
        result = runtime.collect(30)
        build_sink(runtime.settings).send(result)
    finally:
        for target in runtime.targets:
            for source in target.sources:
                if isinstance(source, PostgresSource):
                    source.close()
    return job, pushgateway.samples(job, "orders-db")


def health(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
    """The postgres source's health series, by name (reason folded into the failure name)."""
    out: dict[str, float] = {}
    for (name, labels), v in samples.items():
        label = dict(labels)
        if name.startswith("middleware_collector_") and label.get("source") == "postgres":
            reason = label.get("reason")
            out[f"{name}{{{reason}}}" if reason else name] = v
    return out


def test_server_stopped(server: PostgresServer, pushgateway: Pushgateway, json_logs: Logs) -> None:
    server.stop()
    try:
        job, samples = push_one_pass(server, pushgateway)
    finally:
        server.start()
    assert names(samples) == {
        "pg_up",
        "middleware_collector_up",
        "middleware_collector_duration_seconds",
        "middleware_collector_failure",
    }
    assert value(samples, "pg_up") == 0
    got = health(samples)
    assert got["middleware_collector_up"] == 0
    assert got["middleware_collector_failure{unreachable}"] == 1
    assert (
        pushgateway.samples(job, "collector")[
            ("middleware_pass_targets", frozenset({("state", "down")}))
        ]
        == 1
    )
    down = [line for line in json_logs() if line["message"] == "source down"]
    assert [(line["target"], line["source"], line["reason"]) for line in down] == [
        ("orders-db", "postgres", "unreachable")
    ]


def test_wrong_password(server: PostgresServer, pushgateway: Pushgateway, json_logs: Logs) -> None:
    wrong = "wrong-password-31337"
    # The scrubber is not told about this password: the code itself must not log it.
    _, samples = push_one_pass(server, pushgateway, PG_PWD=wrong)
    assert value(samples, "pg_up") == 0
    assert health(samples)["middleware_collector_failure{auth_failed}"] == 1
    lines = json_logs()
    down = [line for line in lines if line["message"] == "source down"]
    assert [line["reason"] for line in down] == ["auth_failed"]
    assert down[0]["detail"] == (
        f'authentication failed: password authentication failed for user "{MONITOR}"'
    )
    assert wrong not in json.dumps(lines)
    assert wrong not in pushgateway.metrics_text()


def test_statement_timeout_keeps_the_other_values(
    server: PostgresServer, pushgateway: Pushgateway, json_logs: Logs
) -> None:
    # Another session holds the catalog the extension lookup reads: that statement times
    # out, the sections before it have delivered.
    holder = server.connect(database=APP_DB)
    try:
        holder.run("BEGIN")
        holder.run("LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE")
        _, samples = push_one_pass(server, pushgateway, PG_STATEMENT_TIMEOUT_MS="200")
    finally:
        holder.run("ROLLBACK")
        holder.close()
    assert value(samples, "pg_up") == 1
    assert value(samples, "pg_user_connection_count", username="postgres") == 1  # the holder
    # The health groups ran before the extension lookup: they do not read its catalog.
    assert names(samples) - BASIC - HEALTH_NAMES - TABLE_NAMES == {
        "pg_user_connection_count",
        "middleware_collector_up",
        "middleware_collector_duration_seconds",
        "middleware_collector_failure",
    }
    assert value(samples, "pg_database_size_bytes", database_name=APP_DB) > 0
    got = health(samples)
    assert got["middleware_collector_up"] == 0
    assert got["middleware_collector_failure{statement_timeout}"] == 1
    down = [line for line in json_logs() if line["message"] == "source down"]
    assert [line["reason"] for line in down] == ["statement_timeout"]
    assert down[0]["detail"] == "statement cancelled: canceling statement due to statement timeout"


def test_a_lock_wait_fails_that_pass_and_drops_no_health_group(server: PostgresServer) -> None:
    """SQLSTATE 55P03 (lock_not_available) is class 55 like "object not in the required
    state", but it passes: a catalog locked for a moment must not drop a health group for
    as long as the connection lives."""
    settings = settings_for(server, PG_STATEMENT_TIMEOUT_MS="5000")
    connection = PgConnection(settings)
    source = PostgresSource(settings, connection)
    holder = server.connect(database=APP_DB)
    try:
        assert "pg_database_xid_age" in names(ok_pass(source))
        # The collector sets lock_timeout equal to statement_timeout, so which of the two
        # cancels a lock wait is a matter of timing; a shorter lock_timeout on its session
        # makes PostgreSQL answer with 55P03 every time.
        connection.run("SET lock_timeout = '100ms'")
        holder.run("BEGIN")
        holder.run("LOCK TABLE pg_catalog.pg_database IN ACCESS EXCLUSIVE MODE")
        locked, failure = run_pass(source)
        holder.run("ROLLBACK")
        after = ok_pass(source)
        assert connection.opened == 1  # the same connection throughout
    finally:
        holder.close()
        source.close()
    assert failure is not None
    assert failure.reason == "statement_timeout"
    assert "canceling statement due to lock timeout" in failure.detail
    assert value(locked, "pg_up") == 1
    # The wraparound and database groups read pg_database: absent that pass, back the next.
    assert "pg_database_xid_age" not in names(locked)
    assert names(after) >= HEALTH_NAMES
    # However it reaches a health group, 55P03 is never taken for "unsupported".
    lock_wait = QueryFailure("55P03", "canceling statement due to lock timeout")
    assert (lock_wait.unsupported, QueryFailure("55000", "not loaded").unsupported) == (
        False,
        True,
    )


def test_restart_between_passes_reopens_the_connection(server: PostgresServer) -> None:
    source = PostgresSource(settings_for(server))
    try:
        ok_pass(source)
        started = time.monotonic()
        server.restart()
        second, failure = run_pass(source)
        between = time.monotonic() - started
    finally:
        source.close()
    assert failure is None
    assert value(second, "pg_up") == 1
    assert names(second) >= BASIC | PG_QUERY
    # A new postmaster, started after the stop: the second pass read it over a new connection.
    assert value(second, "pg_uptime_seconds") <= between


def test_database_without_the_extension(server: PostgresServer, json_logs: Logs) -> None:
    server.create_database("mm_noext")
    source = PostgresSource(settings_for(server, database="mm_noext"))
    try:
        passes = [ok_pass(source) for _ in range(3)]
    finally:
        source.close()
    for samples in passes:
        # No table in the database: no pg_table_* series.
        assert names(samples) == BASIC | HEALTH_NAMES
        assert value(samples, "pg_up") == 1
    hints = [line for line in json_logs() if HINT in str(line["message"])]
    assert [line["message"] for line in hints] == [
        "pg_stat_statements is not available in database mm_noext: pg_query_* and pg_qps_* are "
        "not collected. To enable it add pg_stat_statements to shared_preload_libraries (on "
        "RDS and Aurora: in the DB parameter group, then reboot) and run CREATE EXTENSION "
        "pg_stat_statements; in database mm_noext."
    ]


def test_extension_created_but_not_preloaded(json_logs: Logs) -> None:
    with PostgresServer(18, preload_pg_stat_statements=False) as bare:
        prepare(bare)  # CREATE EXTENSION succeeds; reading it fails without the preload
        source = PostgresSource(settings_for(bare))
        try:
            passes = [ok_pass(source) for _ in range(2)]
        finally:
            source.close()
    for samples in passes:
        assert names(samples) == BASIC | HEALTH_NAMES | TABLE_NAMES
        assert value(samples, "pg_up") == 1
    lines = json_logs()
    hints = [line for line in lines if HINT in str(line["message"])]
    assert len(hints) == 1
    assert str(hints[0]["message"]).startswith(
        f"pg_stat_statements is not available in database {APP_DB}:"
    )
    # The snapshot header fails for the extension, not for pg_control_system().
    assert [line for line in lines if "pg_control_system" in str(line["message"])] == []
