"""The pg_stat_statements SQL follows the installed extension's version (its columns were
renamed in 1.8 and split in 1.11). The real servers cover 1.10/1.11/1.12
(tests/integration/test_postgres.py); the older column sets are covered here."""

from __future__ import annotations

import re

import pytest

from middleware_monitoring.postgres import connection, source, statements
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


COMMON = {"queryid", "dbid", "userid", "calls", "rows", "shared_blks_hit", "shared_blks_read"}


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.4", PRE_1_8),
        ("1.6", PRE_1_8),
        ("1.7", PRE_1_8),
        ("1.8", FROM_1_8),
        ("1.9", FROM_1_8),
        ("1.10", FROM_1_8),
        ("1.11", FROM_1_11),
        ("1.12", FROM_1_11),
        ("1.13", FROM_1_11),
        ("2.0", FROM_1_11),
    ],
)
def test_top_sql_columns_by_extension_version(version: str, expected: tuple[str, ...]) -> None:
    assert columns_used(top_sql(version)) == COMMON | set(expected)


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
    for sql in (top_sql("1.7"), top_sql("1.10"), top_sql("1.12"), statements.CALLS_SQL):
        assert "pg_stat_statements(false)" in sql
        assert "s.query " not in sql and "s.query," not in sql
    # Only the statements that need text read it, and only for the given queryids.
    for sql in (statements.TEXT_SQL, statements.CLASSIFY_SQL):
        assert "pg_stat_statements(true)" in sql
        assert "s.queryid = ANY(CAST(:queryids AS bigint[]))" in sql


def test_every_statement_of_the_collector_carries_the_marker() -> None:
    # The marker is how the collector's own statements are kept out of the top N and QPS;
    # a statement without it would be counted as the users' workload.
    texts = {
        "EXTENSION_VERSION_SQL": statements.EXTENSION_VERSION_SQL,
        "CALLS_SQL": statements.CALLS_SQL,
        "CLASSIFY_SQL": statements.CLASSIFY_SQL,
        "TEXT_SQL": statements.TEXT_SQL,
        "top_sql": top_sql("1.12"),
        "ACTIVITY_SQL": source.ACTIVITY_SQL,
        "CONNECTIONS_BY_USER_SQL": source.CONNECTIONS_BY_USER_SQL,
        "DATABASE_SIZES_SQL": source.DATABASE_SIZES_SQL,
        "ALIVE_SQL": connection.ALIVE_SQL,
    }
    # Right after the first keyword: PostgreSQL 18 drops leading comments from stored texts.
    marked = re.compile(rf"SELECT {re.escape(MARKER)}\s")
    assert [name for name, sql in texts.items() if not marked.match(sql)] == []
