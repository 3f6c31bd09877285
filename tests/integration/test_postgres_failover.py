"""Issue 12 item 1: QPS never rates across two servers or an unexplained reset. The endpoint
the collector is configured for is a TCP forwarder in front of two real PostgreSQL servers,
switched between passes (what an Aurora failover, a promoted replica or a moved DNS name
look like from the collector); and an extension upgraded between passes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest

from middleware_monitoring.config import PostgresSettings
from middleware_monitoring.postgres.source import PostgresSource
from tests.faults.injectors import TcpFault
from tests.helpers import Closer
from tests.integration.pg_helpers import (
    APP,
    APP_DB,
    APP_PASSWORD,
    ManualClock,
    names,
    ok_pass,
    prepare,
    run_pass,
    settings_for,
    value,
)
from tests.standins.postgres import PostgresServer

QPS_NAMES = {"pg_qps_all", "pg_qps_read", "pg_qps_write"}
# Calls server B recorded before the collector ever reached it.
HISTORY = 3000


def reads(server: PostgresServer, count: int) -> None:
    app = server.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
    try:
        for i in range(count):
            app.run("SELECT name AS failover_read FROM items WHERE id = :id", id=i % 100 + 1)
    finally:
        app.close()


# The extension's version on PostgreSQL 17 (CREATE EXTENSION without a version).
PG_STAT_STATEMENTS = "1.11"


def identity(server: PostgresServer, extversion: str = PG_STAT_STATEMENTS) -> str:
    """How the log names the server a snapshot was taken on."""
    system_identifier, started_at = server.execute_as_superuser(
        "SELECT (SELECT system_identifier FROM pg_control_system()),"
        " extract(epoch FROM pg_postmaster_start_time())::float8"
    )[0]  # type: ignore[index]
    return (
        f"system identifier {system_identifier}, started at {started_at:.3f}, "
        f"pg_stat_statements {extversion}"
    )


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    """Two servers of this module's own, set up alike (same roles, database, table: the same
    entry keys may well exist on both)."""
    with PostgresServer(17) as a, PostgresServer(17) as b:
        prepare(a)
        prepare(b)
        reads(b, HISTORY)
        yield a, b


@pytest.fixture
def endpoint(servers: tuple[PostgresServer, PostgresServer]) -> Iterator[TcpFault]:
    a, _ = servers
    with TcpFault(a.host, a.port) as forwarder:
        yield forwarder


def through(endpoint: TcpFault, server: PostgresServer, **extra: str) -> PostgresSettings:
    return replace(settings_for(server, **extra), host=endpoint.host, port=endpoint.port)


def moved(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("pg_stat_statements: no rate")
    ]


def test_no_rate_across_an_endpoint_moved_to_another_server(
    servers: tuple[PostgresServer, PostgresServer],
    endpoint: TcpFault,
    closer: Closer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = servers
    # Asked before the passes: the statements asking are calls on the servers too.
    identities = identity(a), identity(b)
    clock = ManualClock()
    caplog.set_level(logging.INFO, logger="middleware_monitoring")
    source = closer(PostgresSource(through(endpoint, a), clock=clock, sleep=clock.sleep))
    ok_pass(source)  # on A, cold: PG_QPS_SAMPLE_SECONDS=0, no rate
    reads(a, 10)
    clock.now += 10
    assert value(ok_pass(source), "pg_qps_read") == 1.0  # warm on A: 10 reads in 10 s
    endpoint.redirect(b.host, b.port)
    clock.now += 10
    moved_pass, failure = run_pass(source)
    # The kept connection was cut; the pass reconnected, to B. B's calls since its own reset
    # (3000 and more) are not 300 statements per second of the last 10 s: no rate.
    assert failure is None
    assert names(moved_pass) & QPS_NAMES == set()
    assert moved(caplog) == [
        "pg_stat_statements: no rate against the previous pass: the server changed "
        f"({identities[0]} -> {identities[1]})"
    ]
    # From then on, B's own calls.
    reads(b, 30)
    clock.now += 10
    after = ok_pass(source)
    assert {name: value(after, name) for name in QPS_NAMES} == {
        "pg_qps_read": 3.0,
        "pg_qps_write": 0.0,
        "pg_qps_all": 3.0,
    }
    endpoint.redirect(a.host, a.port)


def test_moved_endpoint_samples_anew_in_the_pass(
    servers: tuple[PostgresServer, PostgresServer], endpoint: TcpFault, closer: Closer
) -> None:
    a, b = servers
    clock = ManualClock()

    def sleep_with_reads(seconds: float) -> None:
        reads(b, 25)
        clock.sleep(seconds)

    settings = through(endpoint, a, PG_QPS_SAMPLE_SECONDS="0.5")
    source = closer(PostgresSource(settings, clock=clock, sleep=sleep_with_reads))
    ok_pass(source)  # cold on A: a 0.5 s window
    endpoint.redirect(b.host, b.port)
    clock.now += 10
    samples = ok_pass(source)
    # The warm pass found another server: a window of its own on B, 25 reads in 0.5 s.
    assert clock.slept == [0.5, 0.5]
    assert {name: value(samples, name) for name in QPS_NAMES} == {
        "pg_qps_read": 50.0,
        "pg_qps_write": 0.0,
        "pg_qps_all": 50.0,
    }
    endpoint.redirect(a.host, a.port)


def test_no_rate_across_an_extension_upgrade(
    servers: tuple[PostgresServer, PostgresServer],
    closer: Closer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = servers
    # Extension objects are per database: one at 1.8 (no pg_stat_statements_info yet).
    a.create_database("mm_ext_old")
    a.execute_as_superuser(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements VERSION '1.8'", database="mm_ext_old"
    )
    # Asked before the passes: the statements asking are calls on the server too.
    before_upgrade, after_upgrade = identity(a, "1.8"), identity(a, "1.9")
    clock = ManualClock()
    caplog.set_level(logging.INFO, logger="middleware_monitoring")
    source = closer(
        PostgresSource(settings_for(a, database="mm_ext_old"), clock=clock, sleep=clock.sleep)
    )
    ok_pass(source)
    reads(a, 20)
    clock.now += 10
    assert value(ok_pass(source), "pg_qps_read") == 2.0
    a.execute_as_superuser(
        "ALTER EXTENSION pg_stat_statements UPDATE TO '1.9'", database="mm_ext_old"
    )
    clock.now += 10
    upgraded = ok_pass(source)
    # 1.9 brings a stats_reset the previous snapshot did not have: every entry would have
    # looked reset and every call since the server started new.
    assert names(upgraded) & QPS_NAMES == set()
    # The same server, started once: only the extension version differs.
    assert moved(caplog) == [
        "pg_stat_statements: no rate against the previous pass: the server changed "
        f"({before_upgrade} -> {after_upgrade})"
    ]
    reads(a, 40)
    clock.now += 10
    assert value(ok_pass(source), "pg_qps_read") == 4.0
