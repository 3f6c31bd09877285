"""The families each health group makes of its JSON column (shaped as the SQL returns it; the
real servers are in tests/integration/test_postgres_health.py), their names as Prometheus
and CloudWatch see them, and that every PostgreSQL series has a CloudWatch unit."""

from __future__ import annotations

from typing import Any

from middleware_monitoring.emf import UNITS
from middleware_monitoring.postgres import health
from middleware_monitoring.postgres.source import STATEMENT_SERIES

# One column per group, as pg8000 hands the JSON over.
COLUMNS: dict[str, Any] = {
    "server": [True, 100],
    "wraparound": [200000000, 400000000, [["postgres", 1234, 56], ["app", 2345, 67]]],
    "transactions": [12.5, 2, 3.25],
    "locks": [2, 1, 4.5],
    "wait_events": [["Lock", "relation", 2], ["IO", "DataFileRead", 1]],
    "replication": [
        ["walreceiver", "10.0.0.5", 40112, 101, 1.5, None],
        ["walreceiver", "10.0.0.6", 40113, 102, None, "standby_2"],
        ["orders-2", None, None, None, 0.02, None],
    ],
    "replication_slots": [["standby_1", "physical", True, 16384], ["cdc", "logical", False, None]],
    "database_stats": [["app", 1, 2048, 300, 4, 5000, 60]],
    "tables": [["app", "public", "orders", 250, 750, None], ["app", "s", "t", 0, 9, 1.7e9]],
}


ORDERS = (("database_name", "app"), ("schema", "public"), ("table", "orders"))
T = (("database_name", "app"), ("schema", "s"), ("table", "t"))


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for group in health.GROUPS:
        for family in group.families(COLUMNS[group.name]):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_families_of_each_group() -> None:
    assert samples() == {
        ("pg_in_recovery", ()): 1,
        ("pg_max_connections", ()): 100,
        ("pg_autovacuum_freeze_max_age", ()): 200000000,
        ("pg_autovacuum_multixact_freeze_max_age", ()): 400000000,
        ("pg_database_xid_age", (("database_name", "postgres"),)): 1234,
        ("pg_database_xid_age", (("database_name", "app"),)): 2345,
        ("pg_database_mxid_age", (("database_name", "postgres"),)): 56,
        ("pg_database_mxid_age", (("database_name", "app"),)): 67,
        ("pg_oldest_xact_seconds", ()): 12.5,
        ("pg_idle_in_transaction_sessions", ()): 2,
        ("pg_oldest_idle_in_transaction_seconds", ()): 3.25,
        ("pg_blocked_sessions", ()): 2,
        ("pg_blocking_sessions", ()): 1,
        ("pg_oldest_blocked_seconds", ()): 4.5,
        ("pg_wait_event_sessions", (("wait_event", "relation"), ("wait_event_type", "Lock"))): 2,
        (
            "pg_wait_event_sessions",
            (("wait_event", "DataFileRead"), ("wait_event_type", "IO")),
        ): 1,
        # Two replicas of one application_name get their slot or address; one with no lag
        # known (not caught up, no replay_lag yet) has no series.
        ("pg_replica_lag_seconds", (("replica", "walreceiver@10.0.0.5"),)): 1.5,
        ("pg_replica_lag_seconds", (("replica", "orders-2"),)): 0.02,
        (
            "pg_replication_slot_retained_wal_bytes",
            (("active", "true"), ("slot_name", "standby_1"), ("slot_type", "physical")),
        ): 16384,
        ("pg_database_deadlocks_total", (("database_name", "app"),)): 1,
        ("pg_database_temp_bytes_total", (("database_name", "app"),)): 2048,
        ("pg_database_xact_commit_total", (("database_name", "app"),)): 300,
        ("pg_database_xact_rollback_total", (("database_name", "app"),)): 4,
        ("pg_database_blks_hit_total", (("database_name", "app"),)): 5000,
        ("pg_database_blks_read_total", (("database_name", "app"),)): 60,
        (
            "pg_table_dead_tuples",
            (("database_name", "app"), ("schema", "public"), ("table", "orders")),
        ): 250,
        (
            "pg_table_live_tuples",
            (("database_name", "app"), ("schema", "public"), ("table", "orders")),
        ): 750,
        # Never autovacuumed: 0, so the table keeps its series.
        (
            "pg_table_last_autovacuum_timestamp_seconds",
            (("database_name", "app"), ("schema", "public"), ("table", "orders")),
        ): 0,
        ("pg_table_dead_tuples", (("database_name", "app"), ("schema", "s"), ("table", "t"))): 0,
        ("pg_table_live_tuples", (("database_name", "app"), ("schema", "s"), ("table", "t"))): 9,
        (
            "pg_table_last_autovacuum_timestamp_seconds",
            (("database_name", "app"), ("schema", "s"), ("table", "t")),
        ): 1.7e9,
    }


def test_every_postgres_series_has_a_cloudwatch_unit() -> None:
    families = [f for group in health.GROUPS for f in group.families(COLUMNS[group.name])]
    names = {family.name for family in families} | {name for name, _ in STATEMENT_SERIES}
    assert names - set(UNITS) == set()
    assert {f.name for f in families if f.type == "counter"} == {
        "pg_database_deadlocks",
        "pg_database_temp_bytes",
        "pg_database_xact_commit",
        "pg_database_xact_rollback",
        "pg_database_blks_hit",
        "pg_database_blks_read",
    }
    assert {UNITS[n].value for n in ("pg_replica_lag_seconds", "pg_query_wal_bytes")} == {
        "Seconds",
        "Bytes",
    }
