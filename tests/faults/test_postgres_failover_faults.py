"""The PostgreSQL endpoint moves to another server between passes (an Aurora failover, a
promoted replica, a DNS name moved): the function keeps its configuration, a TCP forwarder
in front of two real servers switches, and QPS is never rated across the two."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

import pytest

from tests.faults.conftest import DOCDB_HEALTHY, PG_TARGET, Row, docdb_info, pg_env, push_env
from tests.faults.harness import (
    DOCDB_EXACT,
    PG_NAMES,
    Expect,
    LambdaFunction,
    Samples,
    check_recovered,
)
from tests.faults.injectors import TcpFault
from tests.integration.pg_helpers import APP, APP_DB, APP_PASSWORD, prepare
from tests.standins.docdb import DocDBServer
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

Make = Callable[[Mapping[str, str]], LambdaFunction]
QPS = ("pg_qps_all", "pg_qps_read", "pg_qps_write")
HISTORY = 2000  # calls the other server recorded before the endpoint moved to it


@pytest.fixture
def other_pg() -> Iterator[PostgresServer]:
    with PostgresServer(17) as server:
        prepare(server)
        app = server.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
        try:
            for i in range(HISTORY):
                app.run("SELECT name FROM items WHERE id = :id", id=i % 100 + 1)
        finally:
            app.close()
        yield server


def test_endpoint_moved_to_another_server(
    row: Row,
    pg: PostgresServer,
    other_pg: PostgresServer,
    healthy_docdb: DocDBServer,
    pushgateway: Pushgateway,
    job: str,
    function: Make,
) -> None:
    row.fault = "PostgreSQL endpoint moved to another server between passes"
    row.expected = (
        "postgres up, no pg_qps_* that pass (never rated across servers); no line; "
        "next pass 0/s (only the collector ran there)"
    )
    with TcpFault(pg.host, pg.port) as endpoint:
        fn = function(
            {
                **pg_env(pg, PG_PORT=str(endpoint.port)),
                "MONGO_INFO": json.dumps([docdb_info(healthy_docdb, DOCDB_HEALTHY)]),
                **push_env(pushgateway.url, job),
            }
        )
        fn.invoke()  # cold: PG_QPS_SAMPLE_SECONDS=0, no rate
        warm = fn.invoke()
        endpoint.redirect(other_pg.host, other_pg.port)
        moved = fn.invoke()
        after = fn.invoke()
    moved_pg = moved.pushed(PG_TARGET)
    rates = {name: moved_pg.get((name, frozenset())) for name in QPS}
    next_rates = {name: after.pushed(PG_TARGET).get((name, frozenset())) for name in QPS}
    row.observed = (
        f"pg_up={moved_pg.get(('pg_up', frozenset()))}; pg_qps_* "
        f"{'absent' if rates == dict.fromkeys(QPS) else rates}; "
        f"{len(moved.problems())} log line(s); {moved.seconds:.1f}s of "
        f"{moved.deadline_seconds:.0f}s; next pass pg_qps_all={next_rates['pg_qps_all']}"
    )
    assert set(warm.pushed(PG_TARGET)) >= {(name, frozenset()) for name in QPS}
    healthy: dict[str, tuple[Samples, frozenset[str]]] = {
        DOCDB_HEALTHY: (DOCDB_EXACT, frozenset()),
        PG_TARGET: ({("pg_up", frozenset()): 1.0}, PG_NAMES),
    }
    check_recovered(moved, Expect(job, {}, healthy))
    assert rates == dict.fromkeys(QPS)
    # Between the last two passes nothing but the collector ran on the new server.
    check_recovered(after, Expect(job, {}, healthy))
    assert next_rates == dict.fromkeys(QPS, 0.0)
