"""Bloat estimate (PG_COLLECTORS group `bloat`, SPEC 16) against pgstattuple on the same
table: real bloat made by updates without vacuum; the estimate moves the right way and stays
within the documented error (10% of the table's size)."""

from __future__ import annotations

import pytest

from middleware_monitoring.postgres.source import PostgresSource
from tests.integration.pg_helpers import (
    APP_DB,
    MONITOR,
    ok_pass,
    prepare,
    series_of,
    settings_for,
)
from tests.standins.postgres import PostgresServer

TABLE = "bloat_made"
KEY = frozenset({("database_name", APP_DB), ("schema", "public"), ("table", TABLE)})


def measured(server: PostgresServer) -> tuple[float, float]:
    """pgstattuple's wasted bytes (dead tuples and free space) and the table's size."""
    [[dead, free, size]] = server.execute_as_superuser(
        f"SELECT dead_tuple_len, free_space, table_len FROM pgstattuple('{TABLE}')",
        database=APP_DB,
    ) or [[0, 0, 0]]
    return float(dead + free), float(size)


def estimate(server: PostgresServer) -> float:
    source = PostgresSource(settings_for(server, PG_COLLECTORS="bloat"))
    try:
        samples = ok_pass(source)
    finally:
        source.close()
    return series_of(samples, "pg_table_bloat_bytes")[KEY]


def test_estimate_follows_real_bloat_within_ten_percent(pg_server: PostgresServer) -> None:
    prepare(pg_server)
    pg_server.execute_as_superuser("CREATE EXTENSION IF NOT EXISTS pgstattuple", database=APP_DB)
    pg_server.execute_as_superuser(f"DROP TABLE IF EXISTS {TABLE}", database=APP_DB)
    pg_server.execute_as_superuser(
        f"CREATE TABLE {TABLE} (id bigint, qty int, label text, note text)"
        " WITH (autovacuum_enabled = false)",
        database=APP_DB,
    )
    pg_server.execute_as_superuser(
        f"INSERT INTO {TABLE} SELECT g, g % 100, 'label-' || g,"
        " CASE WHEN g % 4 = 0 THEN NULL ELSE repeat('n', 40) END"
        " FROM generate_series(1, 20000) g",
        database=APP_DB,
    )
    # pg_stats shows a table's columns only to a login that may read it.
    pg_server.execute_as_superuser(f"GRANT SELECT ON {TABLE} TO {MONITOR}", database=APP_DB)
    pg_server.execute_as_superuser(f"VACUUM ANALYZE {TABLE}", database=APP_DB)
    fresh = estimate(pg_server)
    fresh_wasted, fresh_size = measured(pg_server)
    # Every row updated twice, no vacuum: two dead versions of each row.
    for _ in range(2):
        pg_server.execute_as_superuser(f"UPDATE {TABLE} SET qty = qty + 1", database=APP_DB)
    pg_server.execute_as_superuser(f"ANALYZE {TABLE}", database=APP_DB)
    bloated = estimate(pg_server)
    wasted, size = measured(pg_server)
    assert abs(fresh - fresh_wasted) <= 0.10 * fresh_size, (fresh, fresh_wasted, fresh_size)
    assert abs(bloated - wasted) <= 0.10 * size, (bloated, wasted, size)
    # The right way, and by about what was made: two thirds of the table is dead rows.
    assert bloated > fresh + 0.5 * size
    assert size >= 2.5 * fresh_size


def test_a_table_without_statistics_is_left_out(pg_server: PostgresServer) -> None:
    prepare(pg_server)
    pg_server.execute_as_superuser("DROP TABLE IF EXISTS bloat_unread", database=APP_DB)
    pg_server.execute_as_superuser(
        "CREATE TABLE bloat_unread (id int) WITH (autovacuum_enabled = false)", database=APP_DB
    )
    pg_server.execute_as_superuser(
        "INSERT INTO bloat_unread SELECT generate_series(1, 1000)", database=APP_DB
    )
    # Analyzed, but the login may not read it: pg_stats hides its columns from the login.
    pg_server.execute_as_superuser("ANALYZE bloat_unread", database=APP_DB)
    source = PostgresSource(settings_for(pg_server, PG_COLLECTORS="bloat"))
    try:
        samples = ok_pass(source)
    finally:
        source.close()
    tables = {dict(k)["table"] for k in series_of(samples, "pg_table_bloat_bytes")}
    assert "bloat_unread" not in tables


@pytest.mark.parametrize("collectors", ["", "-tables"])
def test_bloat_is_off_by_default(pg_server: PostgresServer, collectors: str) -> None:
    prepare(pg_server)
    extra = {"PG_COLLECTORS": collectors} if collectors else {}
    source = PostgresSource(settings_for(pg_server, **extra))
    try:
        samples = ok_pass(source)
    finally:
        source.close()
    assert series_of(samples, "pg_table_bloat_bytes") == {}
