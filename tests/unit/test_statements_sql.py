"""The pg_stat_statements SQL follows the installed extension's version (its columns were
renamed in 1.8 and split in 1.11). The real servers cover 1.10/1.11/1.12
(tests/integration/test_postgres.py); the older column sets are covered here."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from middleware_monitoring.config import PostgresSettings, load_settings
from middleware_monitoring.postgres import capabilities, connection, health, source, statements
from middleware_monitoring.postgres.capabilities import Capabilities
from middleware_monitoring.postgres.statements import MARKER, columns_for, parse_version, top_sql

PRE_1_8 = ("total_time", "min_time", "max_time", "blk_read_time", "blk_write_time")
FROM_1_8 = ("total_exec_time", "min_exec_time", "max_exec_time", "blk_read_time", "blk_write_time")
FROM_1_11 = (
    "total_exec_time",
    "min_exec_time",
    "max_exec_time",
    "shared_blk_read_time",
    "local_blk_read_time",
    "shared_blk_write_time",
    "local_blk_write_time",
)


def columns_used(sql: str) -> set[str]:
    """The pg_stat_statements columns an SQL text reads (``s.<column>``)."""
    return set(re.findall(r"\bs\.(\w+)", sql))


COMMON = {
    "queryid",
    "dbid",
    "userid",
    "calls",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "temp_blks_written",
}
# WAL and planning statistics came with 1.8 (PostgreSQL 13).
WAL_AND_PLAN = ("wal_bytes", "total_plan_time")


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.4", PRE_1_8),
        ("1.6", PRE_1_8),
        ("1.7", PRE_1_8),
        ("1.8", FROM_1_8 + WAL_AND_PLAN),
        ("1.9", FROM_1_8 + WAL_AND_PLAN),
        ("1.10", FROM_1_8 + WAL_AND_PLAN),
        ("1.11", FROM_1_11 + WAL_AND_PLAN),
        ("1.12", FROM_1_11 + WAL_AND_PLAN),
        ("1.13", FROM_1_11 + WAL_AND_PLAN),
        ("2.0", FROM_1_11 + WAL_AND_PLAN),
    ],
)
def test_top_sql_columns_by_extension_version(version: str, expected: tuple[str, ...]) -> None:
    assert columns_used(top_sql(version)) == COMMON | set(expected)


def test_calls_are_read_per_entry_with_toplevel_from_1_9() -> None:
    # From 1.9 pg_stat_statements keys an entry by toplevel too; before it the column does
    # not exist and each queryid has one entry. Never a sum of entries (GROUP BY).
    assert "s.toplevel" in statements.calls_sql("1.9")
    assert "toplevel" not in statements.calls_sql("1.8")
    assert "GROUP BY" not in statements.calls_sql("1.12")
    assert "FILTER (WHERE s.queryid IS NOT NULL)" in statements.calls_sql("1.12")


def test_versions_compare_as_numbers_not_text() -> None:
    # "1.10" < "1.8" as text; as a version it is newer.
    assert parse_version("1.10") == (1, 10)
    assert columns_for("1.10") == columns_for("1.8")
    assert columns_for("1.9") != columns_for("1.11")


def test_blk_times_from_1_11_add_shared_and_local() -> None:
    c = columns_for("1.11")
    assert c.blk_read_time == "sum(s.shared_blk_read_time + s.local_blk_read_time)"
    assert c.blk_write_time == "sum(s.shared_blk_write_time + s.local_blk_write_time)"
    assert columns_for("1.10").blk_read_time == "sum(s.blk_read_time)"
    assert columns_for("1.7").total_time == "sum(s.total_time)"


def test_statistics_are_read_without_query_text() -> None:
    calls = (statements.calls_sql("1.8"), statements.calls_sql("1.12"))
    for sql in (top_sql("1.7"), top_sql("1.10"), top_sql("1.12"), *calls):
        assert "pg_stat_statements(false)" in sql
        assert "s.query " not in sql and "s.query," not in sql
    # Only the statements that need text read it, and only for the given queryids.
    for sql in (statements.TEXT_SQL, statements.CLASSIFY_SQL):
        assert "pg_stat_statements(true)" in sql
        assert "s.queryid = ANY(CAST(:queryids AS bigint[]))" in sql


def _settings() -> PostgresSettings:
    settings = load_settings({"PG_DATABASE": "db", "PG_USER": "u"}).postgres
    assert settings is not None
    return settings


PG14 = Capabilities(
    server_version=140010, reads_all_stats=True, control_readable=True, aurora=False
)
PG13 = Capabilities(
    server_version=130014, reads_all_stats=True, control_readable=True, aurora=False
)
AURORA = Capabilities(
    server_version=160004, reads_all_stats=True, control_readable=False, aurora=True
)


def test_every_statement_of_the_collector_carries_the_marker() -> None:
    # The marker is how the collector's own statements are kept out of the top N and QPS;
    # a statement without it would be counted as the users' workload.
    texts = {
        "EXTENSION_VERSION_SQL": statements.EXTENSION_VERSION_SQL,
        "calls_sql": statements.calls_sql("1.12"),
        "calls_sql 1.8": statements.calls_sql("1.8"),
        "CLASSIFY_SQL": statements.CLASSIFY_SQL,
        "TEXT_SQL": statements.TEXT_SQL,
        "top_sql": top_sql("1.12"),
        "snapshot_header_sql": statements.snapshot_header_sql("1.12", control_readable=True),
        "snapshot_header_sql 1.8": statements.snapshot_header_sql("1.8", control_readable=False),
        "ACTIVITY_SQL": source.ACTIVITY_SQL,
        "CONNECTIONS_BY_USER_SQL": source.CONNECTIONS_BY_USER_SQL,
        "BASICS_SQL": source.BASICS_SQL,
        "DATABASE_SIZES_SQL": source.DATABASE_SIZES_SQL,
        "ALIVE_SQL": connection.ALIVE_SQL,
        "CAPABILITIES_SQL": capabilities.CAPABILITIES_SQL,
        **{
            f"health {group.name}": health.health_sql([group], PG14, _settings())
            for group in health.GROUPS
        },
        "health, all groups": health.health_sql(list(health.GROUPS), PG14, _settings()),
    }
    # In front, as a common table expression: its name is part of the queryid (a comment is
    # not), and from PostgreSQL 18 the stored text starts at the first token.
    marked = re.compile(rf"{re.escape(MARKER)}[\s,]")
    assert [name for name, sql in texts.items() if not marked.match(sql)] == []


def test_statement_kinds_treat_row_locks_as_reads() -> None:
    # FOR UPDATE / FOR NO KEY UPDATE are taken out before looking for a data-modifying CTE.
    assert "regexp_replace(body, '\\mfor\\s+(no\\s+key\\s+)?update\\M', '', 'g')" in (
        statements.CLASSIFY_SQL
    )
    assert "starts_with(s.query, 'WITH middleware_monitoring AS (SELECT)') AS own" in (
        statements.CLASSIFY_SQL
    )


def test_snapshot_header_follows_version_and_privilege() -> None:
    with_reset = statements.snapshot_header_sql("1.9", control_readable=True)
    assert "FROM pg_stat_statements_info" in with_reset
    assert "FROM pg_control_system()" in with_reset
    without = statements.snapshot_header_sql("1.8", control_readable=False)
    assert "pg_stat_statements_info" not in without
    assert "pg_control_system" not in without
    assert "NULL::bigint" in without and "NULL::float8" in without


def test_health_sql_has_only_the_groups_asked_for_and_their_ctes() -> None:
    by_name = {group.name: group for group in health.GROUPS}
    sql = health.health_sql([by_name["server"], by_name["tables"]], PG14, _settings())
    assert "sessions AS" not in sql and "blocked AS" not in sql
    assert "pg_is_in_recovery()" in sql and "LIMIT 20)" in sql
    locks = health.health_sql([by_name["locks"]], PG14, _settings())
    assert locks.index("sessions AS") < locks.index("blocked AS")


def test_lock_wait_age_from_waitstart_from_14() -> None:
    by_name = {group.name: group for group in health.GROUPS}
    assert "l.waitstart" in health.health_sql([by_name["locks"]], PG14, _settings())
    assert "waitstart" not in health.health_sql([by_name["locks"]], PG13, _settings())


def test_replica_lag_from_aurora_replica_status_on_aurora() -> None:
    by_name = {group.name: group for group in health.GROUPS}
    aurora = health.health_sql([by_name["replication"]], AURORA, _settings())
    assert "FROM aurora_replica_status()" in aurora
    assert "pg_stat_replication" not in aurora
    plain = health.health_sql([by_name["replication"]], PG14, _settings())
    assert "FROM pg_stat_replication" in plain and "aurora" not in plain


def test_replicas_without_the_slots_view_are_still_read() -> None:
    # The slot only names a replica: a server without pg_replication_slots loses the
    # replication_slots group, not the replicas' lag.
    by_name = {group.name: group for group in health.GROUPS}
    with_view = health.health_sql([by_name["replication"]], PG14, _settings())
    assert "FROM pg_replication_slots s WHERE s.active_pid = r.pid" in with_view
    without = health.health_sql(
        [by_name["replication"]], replace(PG14, slots_view=False), _settings()
    )
    assert "pg_replication_slots" not in without
    assert "FROM pg_stat_replication r" in without and "NULL::name)" in without


def test_replica_names_are_unique_and_stay_across_reconnects() -> None:
    rows: list[list[Any]] = [
        ["walreceiver", "10.0.0.5", 40112, 101, 1.5, "standby_a"],
        ["walreceiver", "10.0.0.6", 40113, 102, 0.0, None],
        ["orders-replica", "10.0.0.7", 40114, 103, 0.2, "orders_slot"],
        ["", "10.0.0.8", 40115, 104, None, None],
        ["", None, None, 105, None, None],
        # Two without slots on one host: only the port tells them apart.
        ["walreceiver", "10.0.0.9", 40116, 106, 0.1, None],
        ["walreceiver", "10.0.0.9", 40117, 107, 0.1, None],
    ]
    assert health.replica_names(rows) == [
        "walreceiver@standby_a",
        "walreceiver@10.0.0.6",
        "orders-replica",
        "10.0.0.8",
        "local",
        "walreceiver@10.0.0.9:40116",
        "walreceiver@10.0.0.9:40117",
    ]
    # The same replicas reconnected (new walsender pids, new client ports): the same labels
    # wherever something stable names them.
    again = [[*row[:2], row[2] and row[2] + 1000, row[3] + 1000, *row[4:]] for row in rows]
    assert health.replica_names(again)[:5] == health.replica_names(rows)[:5]
