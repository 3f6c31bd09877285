"""A health group the server or the login cannot serve is dropped with one log line per
function instance, never the target: a login without pg_read_all_stats, a revoked function,
a view the server does not have. And aurora_replica_status() is used where it exists.

Aurora cannot run here. Its detection and the SQL chosen for it are tested with a stand-in
``aurora_replica_status()`` created in a test database, returning the documented columns
(https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora_replica_status.html).
It is faithful in what the collector relies on: the function's name and argument list (how it
is detected), and the names and meaning of the three columns read (server_id, session_id =
'MASTER_SESSION_ID' for the writer, replica_lag_in_msec). It is not faithful in anything
else: the real one is in pg_catalog, its values come from the storage layer, and whether it
needs a privilege is not documented.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from middleware_monitoring.postgres.capabilities import CapabilityCache
from middleware_monitoring.postgres.connection import PgConnection
from middleware_monitoring.postgres.source import PostgresSource
from tests.helpers import Closer
from tests.integration.pg_helpers import (
    APP,
    APP_DB,
    APP_PASSWORD,
    HEALTH_NAMES,
    TABLE_NAMES,
    ManualClock,
    names,
    ok_pass,
    prepare,
    series_of,
    settings_for,
    value,
)
from tests.standins.postgres import PG_VERSIONS, PostgresServer

PLAIN, PLAIN_PASSWORD = "mm_no_stats", "no-stats-pw-77"
NO_SLOTS_DB = "mm_no_slots"
SESSION_NAMES = frozenset(
    {
        "pg_oldest_xact_seconds",
        "pg_idle_in_transaction_sessions",
        "pg_oldest_idle_in_transaction_seconds",
        "pg_blocked_sessions",
        "pg_blocking_sessions",
        "pg_oldest_blocked_seconds",
    }
)
LOCK_NAMES = frozenset({"pg_blocked_sessions", "pg_blocking_sessions", "pg_oldest_blocked_seconds"})


@pytest.fixture(scope="module", params=PG_VERSIONS, ids=[f"pg{v}" for v in PG_VERSIONS])
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    with PostgresServer(request.param) as pg:
        yield prepare(pg)


def group_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("PG_COLLECTORS")]


def test_login_without_read_all_stats(
    server: PostgresServer, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    server.create_role(PLAIN, PLAIN_PASSWORD, monitor=False)
    settings = replace(settings_for(server), user=PLAIN, password=PLAIN_PASSWORD)
    source = closer(PostgresSource(settings))
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    first = ok_pass(source)
    second = ok_pass(source)
    source.close()  # a new connection asks again what the login may do
    third = ok_pass(source)
    hint = (
        "PG_COLLECTORS group {} is not collected: PostgreSQL hides other users' sessions and "
        f"replication positions from {PLAIN}, so it would count zeros. "
        f"GRANT pg_monitor TO {PLAIN}; (or pg_read_all_stats)"
    )
    assert group_lines(caplog) == [
        hint.format(group) for group in ("transactions", "locks", "wait_events", "replication")
    ]
    for samples in (first, second, third):
        assert value(samples, "pg_up") == 1
        # Groups that do not read other sessions still come (the login sees no statement
        # but its own: no top N).
        assert (
            names(samples) & (HEALTH_NAMES | TABLE_NAMES)
            == (HEALTH_NAMES - SESSION_NAMES) | TABLE_NAMES
        )


def test_revoked_function_drops_its_group_only(
    server: PostgresServer, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    # Catalogs are per database: in the one the collector connects to.
    server.execute_as_superuser(
        "REVOKE EXECUTE ON FUNCTION pg_blocking_pids(int) FROM PUBLIC", database=APP_DB
    )
    try:
        source = closer(PostgresSource(settings_for(server)))  # MONITOR: pg_monitor
        first = ok_pass(source)
        second = ok_pass(source)
        source.close()  # after a reconnect the group is tried again, and not logged again
        third = ok_pass(source)
    finally:
        server.execute_as_superuser(
            "GRANT EXECUTE ON FUNCTION pg_blocking_pids(int) TO PUBLIC", database=APP_DB
        )
    assert group_lines(caplog) == [
        "PG_COLLECTORS group locks is not collected: this server or login cannot run it "
        "(SQLSTATE 42501: permission denied for function pg_blocking_pids); the other groups "
        "still are"
    ]
    for samples in (first, second, third):
        assert (
            names(samples) & (HEALTH_NAMES | TABLE_NAMES)
            == (HEALTH_NAMES - LOCK_NAMES) | TABLE_NAMES
        )
        assert value(samples, "pg_idle_in_transaction_sessions") == 0
    # Granted again: the next function instance (or connection) has the group back.
    source = closer(PostgresSource(settings_for(server)))
    assert names(ok_pass(source)) >= LOCK_NAMES


def test_missing_view_drops_its_group_only(
    server: PostgresServer, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    # System views live in each database's catalog: a database of its own without
    # pg_replication_slots is what a server without the view looks like to the collector.
    server.create_database(NO_SLOTS_DB)
    server.create_extension(database=NO_SLOTS_DB)
    server.execute_as_superuser(
        "SET allow_system_table_mods = on;"
        " DROP VIEW IF EXISTS pg_catalog.pg_replication_slots CASCADE",
        database=NO_SLOTS_DB,
    )
    server.execute_as_superuser("SELECT pg_create_physical_replication_slot('mm_unseen', true)")
    try:
        source = closer(PostgresSource(settings_for(server, database=NO_SLOTS_DB)))
        passes = [ok_pass(source) for _ in range(2)]
        # The same slot, seen from a database that has the view.
        elsewhere = ok_pass(closer(PostgresSource(settings_for(server))))
    finally:
        server.execute_as_superuser("SELECT pg_drop_replication_slot('mm_unseen')")
    assert group_lines(caplog) == [
        "PG_COLLECTORS group replication_slots is not collected: this server or login cannot "
        'run it (SQLSTATE 42P01: relation "pg_replication_slots" does not exist); the other '
        "groups still are"
    ]
    for samples in passes:
        assert names(samples) >= HEALTH_NAMES
        assert series_of(samples, "pg_replication_slot_retained_wal_bytes") == {}
    assert set(series_of(elsewhere, "pg_replication_slot_retained_wal_bytes")) == {
        frozenset({("slot_name", "mm_unseen"), ("slot_type", "physical"), ("active", "false")})
    }


# --- Aurora ----------------------------------------------------------------------------------

AURORA_DB = "mm_aurora"
# The documented columns, in order; the rows: the writer and two readers, one of which has no
# lag value yet.
FAKE_AURORA_REPLICA_STATUS = """
CREATE OR REPLACE FUNCTION aurora_replica_status()
RETURNS TABLE (
  server_id text, session_id text, durable_lsn bigint, highest_lsn_rcvd bigint,
  current_read_lsn bigint, cur_replay_latency_in_usec bigint, active_txns bigint,
  is_current boolean, last_transport_error int, last_error_timestamp timestamptz,
  last_update_timestamp timestamptz, feedback_xmin bigint, feedback_epoch int,
  replica_lag_in_msec real, log_stream_speed_in_kib_per_second real,
  log_buffer_sequence_number bigint, oldest_read_view_trx_id bigint,
  oldest_read_view_lsn bigint, pending_read_ios int, read_ios bigint, iops int, cpu real
) LANGUAGE sql AS $$
  VALUES
    ('orders-1', 'MASTER_SESSION_ID', 1, 1, 1, 0, 2, true, 0, NULL::timestamptz, now(),
     NULL::bigint, NULL::int, NULL::real, 10, 1, NULL::bigint, NULL::bigint, 0, 0, 0, 3),
    ('orders-2', '2f1e6a2c-0e0b-4c4b-9d6f-0d5f1b2c3a4e', 1, 1, 1, 900, 0, true, 0,
     NULL::timestamptz, now(), 700, 0, 20.5, 10, 1, NULL::bigint, 1, 0, 12, 0, 2),
    ('orders-3', '7a0c9f55-6a8b-4f0a-8b1c-2e3d4f5a6b7c', 1, 1, 1, 900, 0, true, 0,
     NULL::timestamptz, now(), 700, 0, 1500, 10, 1, NULL::bigint, 1, 0, 12, 0, 2),
    ('orders-4', '0b5a4c3d-2e1f-4a6b-9c8d-7e6f5a4b3c2d', 1, 1, 1, 900, 0, true, 0,
     NULL::timestamptz, now(), 700, 0, NULL::real, 10, 1, NULL::bigint, 1, 0, 12, 0, 2)
$$
"""


def poll_caught_up(server: PostgresServer, name: str) -> None:
    deadline = time.monotonic() + 30
    while not server.execute_as_superuser(
        "SELECT 1 FROM pg_stat_replication WHERE application_name = :name"
        " AND state = 'streaming' AND replay_lsn = sent_lsn",
        name=name,
    ):
        assert time.monotonic() < deadline, f"replica {name} never caught up"
        time.sleep(0.05)


def test_aurora_replica_status_where_it_exists(server: PostgresServer, closer: Closer) -> None:
    server.create_database(AURORA_DB)
    server.create_extension(database=AURORA_DB)
    server.execute_as_superuser(FAKE_AURORA_REPLICA_STATUS, database=AURORA_DB)
    # Detection: by the function, per database (the stand-in lives in one).
    for database, aurora in ((AURORA_DB, True), (APP_DB, False)):
        db = closer(PgConnection(settings_for(server, database=database)))
        assert CapabilityCache(db).get().aurora is aurora
    # A real streaming replica of the same server is there too: on Aurora the lag comes from
    # aurora_replica_status() only (pg_stat_replication is not asked).
    replica = server.start_replica(settings={"cluster_name": "mm_streaming"})
    try:
        poll_caught_up(server, "mm_streaming")
        with_fake = ok_pass(closer(PostgresSource(settings_for(server, database=AURORA_DB))))
        without = ok_pass(closer(PostgresSource(settings_for(server, database=APP_DB))))
    finally:
        replica.cleanup()
    assert series_of(with_fake, "pg_replica_lag_seconds") == {
        frozenset({("replica", "orders-2")}): 20.5 / 1000,
        frozenset({("replica", "orders-3")}): 1.5,
    }
    assert set(series_of(without, "pg_replica_lag_seconds")) == {
        frozenset({("replica", "mm_streaming")})
    }


# --- the server's identity without pg_control_system() ---------------------------------------

REFUSING_DB = "mm_refusing"
# What Aurora answers for several control and WAL functions it has but does not run: a
# function of that name ahead of pg_catalog in the database's search_path, raising the same
# SQLSTATE (feature_not_supported). The capability probe asks for pg_catalog's, which is
# there and granted, as it is on Aurora.
REFUSING_PG_CONTROL_SYSTEM = """
CREATE OR REPLACE FUNCTION public.pg_control_system()
RETURNS TABLE (pg_control_version int, catalog_version_no int, system_identifier bigint,
               pg_control_last_modified timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'Function pg_control_system() is currently not supported for Aurora'
    USING ERRCODE = 'feature_not_supported';
END $$
"""


def rated_twice(server: PostgresServer, database: str, closer: Closer) -> list[float]:
    """pg_qps_read of two warm passes around 20 and 30 reads, 10 s apart (manual clock)."""
    clock = ManualClock()
    source = closer(
        PostgresSource(settings_for(server, database=database), clock=clock, sleep=clock.sleep)
    )
    ok_pass(source)
    rates = []
    for count in (20, 30):
        app = server.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
        try:
            for i in range(count):
                app.run("SELECT name AS identity_read FROM items WHERE id = :id", id=i + 1)
        finally:
            app.close()
        clock.now += 10
        rates.append(value(ok_pass(source), "pg_qps_read"))
    return rates


def test_pg_control_system_refused_when_run(
    server: PostgresServer, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    server.create_database(REFUSING_DB)
    server.create_extension(database=REFUSING_DB)
    server.execute_as_superuser(REFUSING_PG_CONTROL_SYSTEM, database=REFUSING_DB)
    server.execute_as_superuser(
        f"ALTER DATABASE {REFUSING_DB} SET search_path = public, pg_catalog"
    )
    caplog.set_level(logging.INFO, logger="middleware_monitoring")
    assert rated_twice(server, REFUSING_DB, closer) == [2.0, 3.0]
    assert [r.getMessage() for r in caplog.records if "pg_control_system" in r.getMessage()] == [
        "pg_control_system() refused (SQLSTATE 0A000: Function pg_control_system() is currently "
        "not supported for Aurora): the server is told apart from another by its start time only"
    ]


def test_pg_control_system_not_granted(
    server: PostgresServer, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    revoke = "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC"
    server.execute_as_superuser(revoke, database=APP_DB)
    caplog.set_level(logging.INFO, logger="middleware_monitoring")
    try:
        db = closer(PgConnection(settings_for(server)))
        assert CapabilityCache(db).get().control_readable is False
        assert rated_twice(server, APP_DB, closer) == [2.0, 3.0]
    finally:
        server.execute_as_superuser(
            "GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC", database=APP_DB
        )
    # Not granted is known before anything runs: nothing to say.
    assert [r for r in caplog.records if "pg_control_system" in r.getMessage()] == []
