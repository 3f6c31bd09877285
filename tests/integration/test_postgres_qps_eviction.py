"""QPS never comes from a count that went down. pg_stat_statements keeps one entry per
(userid, dbid, queryid, toplevel) and evicts the least used when pg_stat_statements.max is
reached; a login without pg_read_all_stats sees other users' entries without queryid. Summing
entries that are not one entry (a statement run at top level and nested; every hidden
statement of a user) made an eviction or a reset of one member read as a reset of all, and
the whole remaining sum counted as new calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from middleware_monitoring.postgres.source import PostgresSource
from tests.helpers import Closer
from tests.integration.pg_helpers import (
    APP,
    APP_DB,
    APP_PASSWORD,
    ManualClock,
    ok_pass,
    prepare,
    settings_for,
    value,
)
from tests.standins.postgres import PostgresServer

PLAIN_LOGIN, PLAIN_PASSWORD = "mm_plain_qps", "plain-qps-pw-52"
REPEATED = "SELECT count(*) FROM items WHERE id > 0"
NESTED_FUNCTION = (
    "CREATE OR REPLACE FUNCTION nested_probe() RETURNS bigint LANGUAGE plpgsql AS $$"
    " DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM items WHERE id > 0; RETURN n; END $$"
)
# By queryid: the nested entry's text is plpgsql's (without the INTO), the queryid the same.
ENTRIES_OF_REPEATED = (
    "SELECT toplevel, calls FROM pg_stat_statements WHERE queryid = (SELECT queryid"
    " FROM pg_stat_statements WHERE query = 'SELECT count(*) FROM items WHERE id > $1')"
    " ORDER BY toplevel"
)


@pytest.fixture(scope="module")
def small_pg() -> Iterator[PostgresServer]:
    """pg_stat_statements.max at its minimum (100), every statement tracked (nested too)."""
    server = PostgresServer(
        17, settings={"pg_stat_statements.max": 100, "pg_stat_statements.track": "all"}
    )
    server.start()
    try:
        yield prepare(server)
    finally:
        server.cleanup()


def test_eviction_of_a_nested_entry_invents_no_calls(
    small_pg: PostgresServer, closer: Closer
) -> None:
    pg = small_pg
    pg.execute_as_superuser(NESTED_FUNCTION, database=APP_DB)
    pg.execute_as_superuser(f"GRANT EXECUTE ON FUNCTION nested_probe() TO {APP}", database=APP_DB)
    pg.execute_as_superuser("SELECT pg_stat_statements_reset()", database=APP_DB)
    app = pg.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
    try:
        for _ in range(3000):
            app.run(REPEATED)
        app.run("SELECT nested_probe()")
        # One statement, two entries: 3,000 calls at top level, one nested.
        assert pg.execute_as_superuser(ENTRIES_OF_REPEATED, database=APP_DB) == [
            [False, 1],
            [True, 3000],
        ]
        clock = ManualClock()
        source = closer(PostgresSource(settings_for(pg), clock=clock, sleep=clock.sleep))
        ok_pass(source)
        # 300 new statements (a CTE's name is part of the queryid) into a table of 100.
        for i in range(300):
            app.run(f"WITH probe_{i} AS (SELECT 1) SELECT * FROM probe_{i}")
        clock.now += 10
        samples = ok_pass(source)
    finally:
        app.close()
    # The nested entry, used once, was evicted; the top-level one is still there, unchanged.
    assert pg.execute_as_superuser(ENTRIES_OF_REPEATED, database=APP_DB) == [[True, 3000]]
    rows = pg.execute_as_superuser(
        "SELECT count(*) FROM pg_stat_statements WHERE query LIKE 'WITH probe\\_%'",
        database=APP_DB,
    )
    assert rows is not None
    [[surviving]] = rows
    assert 0 < surviving < 300
    # Each probe that survived ran once since the first pass; the others were evicted with
    # their calls. Nothing else of the application ran: the 3,000 calls are not new.
    calls = value(samples, "pg_qps_all") * 10
    assert surviving <= calls <= 300
    assert value(samples, "pg_qps_read") * 10 == calls


def test_hidden_entries_stay_out_of_the_rate(small_pg: PostgresServer, closer: Closer) -> None:
    """A login without pg_read_all_stats: other users' entries come with queryid NULL. When
    one of them is reset, the others' calls are not new."""
    pg = small_pg
    pg.create_role(PLAIN_LOGIN, PLAIN_PASSWORD, monitor=False)
    pg.execute_as_superuser(f"GRANT CONNECT ON DATABASE {APP_DB} TO {PLAIN_LOGIN}")
    pg.execute_as_superuser("SELECT pg_stat_statements_reset()", database=APP_DB)
    app = pg.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
    try:
        for _ in range(200):
            app.run("SELECT name FROM items WHERE id = 1")
        for _ in range(130):
            app.run("SELECT count(*) FROM items")
    finally:
        app.close()
    clock = ManualClock()
    settings = replace(settings_for(pg), user=PLAIN_LOGIN, password=PLAIN_PASSWORD)
    source = closer(PostgresSource(settings, clock=clock, sleep=clock.sleep))
    ok_pass(source)
    # One of the application's entries reset (by its queryid, as the superuser), nothing run.
    pg.execute_as_superuser(
        "SELECT pg_stat_statements_reset(s.userid, s.dbid, s.queryid) FROM pg_stat_statements s"
        " WHERE s.query = 'SELECT count(*) FROM items'",
        database=APP_DB,
    )
    clock.now += 10
    samples = ok_pass(source)
    # The reset call is the superuser's, hidden from the login like the application's:
    # hidden entries cannot be paired and are no part of any rate.
    assert {name: value(samples, name) for name in ("pg_qps_all", "pg_qps_read")} == {
        "pg_qps_all": 0.0,
        "pg_qps_read": 0.0,
    }
