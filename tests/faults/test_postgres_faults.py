"""PostgreSQL faults injected for real: the server stopped, its port closed, a black hole,
a wrong password, pg_stat_statements missing, a statement blocked by another session's lock,
a restart between passes. A healthy DocumentDB target runs alongside in every pass."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

import pytest

from middleware_monitoring.model import SourceFailure
from middleware_monitoring.postgres.source import PostgresSource
from tests.faults import harness
from tests.faults.conftest import (
    DOCDB_HEALTHY,
    PG_TARGET,
    Row,
    docdb_info,
    pg_env,
    push_env,
)
from tests.faults.harness import (
    DOCDB_EXACT,
    PG_NAMES,
    Expect,
    LambdaFunction,
    check_fault_pass,
    check_recovered,
)
from tests.faults.injectors import TcpFault
from tests.helpers import Closer
from tests.integration.pg_helpers import APP_DB, MONITOR_PASSWORD, settings_for
from tests.standins.docdb import DocDBServer
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

Make = Callable[[Mapping[str, str]], LambdaFunction]


@pytest.fixture
def proxy(pg: PostgresServer) -> Iterator[TcpFault]:
    with TcpFault(pg.host, pg.port) as fault:
        yield fault


def environ(
    pg: PostgresServer, docdb: DocDBServer, gw: Pushgateway, job: str, **pg_extra: str
) -> dict[str, str]:
    return {
        **pg_env(pg, **pg_extra),
        "MONGO_INFO": json.dumps([docdb_info(docdb, DOCDB_HEALTHY)]),
        **push_env(gw.url, job),
    }


def expect(job: str, reason: str | None, *secrets: str) -> Expect:
    return Expect(
        job=job,
        broken={(PG_TARGET, "postgres"): reason} if reason else {},
        healthy={DOCDB_HEALTHY: (DOCDB_EXACT, frozenset())},
        secrets=(MONITOR_PASSWORD, *secrets),
    )


def run_fault(
    row: Row,
    fn: LambdaFunction,
    gw: Pushgateway,
    want: Expect,
    inject: Callable[[], None],
    heal: Callable[[], None],
) -> None:
    """Inject, one invocation, heal, one more: the common shape of these tests."""
    back = {PG_TARGET: (dict[tuple[str, frozenset[tuple[str, str]]], float](), PG_NAMES)}
    harness.run_fault(row, fn, want, inject, heal, back=back)


def test_server_stopped(row: Row, pg, healthy_docdb, pushgateway, job, function: Make) -> None:
    row.fault = "PostgreSQL stopped"
    row.expected = "postgres down unreachable; DocumentDB sent; 1 line; recovers"
    fn = function(environ(pg, healthy_docdb, pushgateway, job))
    run_fault(row, fn, pushgateway, expect(job, "unreachable"), inject=pg.stop, heal=pg.start)


def test_port_closed(row: Row, pg, proxy, healthy_docdb, pushgateway, job, function: Make) -> None:
    row.fault = "PostgreSQL port closed (refused)"
    row.expected = "postgres down unreachable; DocumentDB sent; 1 line; recovers"
    fn = function(environ(pg, healthy_docdb, pushgateway, job, PG_PORT=str(proxy.port)))
    run_fault(
        row,
        fn,
        pushgateway,
        expect(job, "unreachable"),
        inject=lambda: proxy.set("refused"),
        heal=lambda: proxy.set("forward"),
    )


def test_black_hole(row: Row, pg, proxy, healthy_docdb, pushgateway, job, function: Make) -> None:
    row.fault = "PostgreSQL black hole (accepts, never answers)"
    row.expected = "postgres down timeout within the deadline; DocumentDB sent; 1 line; recovers"
    fn = function(environ(pg, healthy_docdb, pushgateway, job, PG_PORT=str(proxy.port)))
    # Warm first: the kept connection goes silent too, not only new ones.
    assert fn.invoke().problems() == []
    run_fault(
        row,
        fn,
        pushgateway,
        expect(job, "timeout"),
        inject=lambda: proxy.set("blackhole"),
        heal=lambda: proxy.set("forward"),
    )


def test_wrong_password(row: Row, pg, healthy_docdb, pushgateway, job, function: Make) -> None:
    row.fault = "PostgreSQL wrong password"
    row.expected = "postgres down auth_failed; password in no line; recovers once it matches"
    login, configured = "mm_fault_login", "configured-Pw-90210"
    pg.create_role(login, "the-servers-Pw-4242", monitor=True)
    fn = function(environ(pg, healthy_docdb, pushgateway, job, PG_USER=login, PG_PWD=configured))
    want = expect(job, "auth_failed", configured, "the-servers-Pw-4242")
    run_fault(
        row,
        fn,
        pushgateway,
        want,
        inject=lambda: None,
        # The operator fixes the login on the server side; the function is not redeployed.
        heal=lambda: pg.execute_as_superuser(f"ALTER ROLE {login} PASSWORD '{configured}'"),
    )


def test_pg_stat_statements_missing(
    row: Row, pg, healthy_docdb, pushgateway, job, function: Make
) -> None:
    row.fault = "pg_stat_statements missing"
    row.expected = "postgres up without pg_query_*; 1 hint line; statements back once created"
    fn = function(environ(pg, healthy_docdb, pushgateway, job))
    pg.execute_as_superuser("DROP EXTENSION pg_stat_statements", database=APP_DB)
    try:
        missing = fn.invoke()
        again = fn.invoke()
    finally:
        pg.create_extension(database=APP_DB)
    samples = missing.pushed(PG_TARGET)
    names = {name for name, _ in samples}
    hints = [line for line in missing.logs if "CREATE EXTENSION pg_stat_statements" in str(line)]
    recovered = fn.invoke()
    after = {name for name, _ in recovered.pushed(PG_TARGET)}
    row.observed = (
        f"pg_up={samples.get(('pg_up', frozenset()))}; pg_query_* "
        f"{'absent' if 'pg_query_calls' not in names else 'present'}; {len(hints)} hint line(s) "
        f"then {len([1 for line in again.logs if 'CREATE EXTENSION' in str(line)])}; "
        f"{missing.seconds:.1f}s; next pass pg_query_* "
        f"{'back' if 'pg_query_calls' in after else 'absent'}"
    )
    base = expect(job, None)
    without = PG_NAMES - {"pg_query_calls", "pg_query_total_exec_time"}
    hint = (
        f"pg_stat_statements is not available in database {APP_DB}: pg_query_* and pg_qps_* are "
        "not collected. To enable it add pg_stat_statements to shared_preload_libraries (on "
        "RDS and Aurora: in the DB parameter group, then reboot) and run CREATE EXTENSION "
        f"pg_stat_statements; in database {APP_DB}."
    )
    want = Expect(
        job,
        {},
        {**base.healthy, PG_TARGET: ({("pg_up", frozenset()): 1.0}, without)},
        base.secrets,
        also_logged=(hint,),
    )
    check_fault_pass(missing, want)
    assert samples[("pg_up", frozenset())] == 1
    assert PG_NAMES - names == {"pg_query_calls", "pg_query_total_exec_time"}
    assert len(hints) == 1
    assert [line for line in again.logs if "CREATE EXTENSION" in str(line)] == []
    check_recovered(recovered, base)
    assert after >= PG_NAMES


def test_statement_blocked_by_a_lock(
    row: Row, pg, healthy_docdb, pushgateway, job, function: Make, closer: Closer
) -> None:
    row.fault = "statement blocked by another session's lock"
    row.expected = "postgres down statement_timeout, other values sent; 1 line; recovers"
    fn = function(environ(pg, healthy_docdb, pushgateway, job, PG_STATEMENT_TIMEOUT_MS="300"))
    holder = closer(pg.connect(database=APP_DB))

    def lock() -> None:
        holder.run("BEGIN")
        holder.run("LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE")

    def release() -> None:
        holder.run("ROLLBACK")

    run_fault(row, fn, pushgateway, expect(job, "statement_timeout"), inject=lock, heal=release)


def test_restart_between_passes(
    row: Row, pg, healthy_docdb, pushgateway, job, function: Make
) -> None:
    row.fault = "PostgreSQL restarted between passes (stale kept connection)"
    row.expected = "next pass up: the stale connection is replaced; no line"
    fn = function(environ(pg, healthy_docdb, pushgateway, job))
    first = fn.invoke()
    restarted = time.monotonic()
    pg.restart()
    second = fn.invoke()
    since_restart = time.monotonic() - restarted
    up = second.pushed(PG_TARGET).get(("pg_up", frozenset()))
    row.observed = (
        f"pass after restart: pg_up={up}; {len(second.problems())} log line(s); "
        f"{second.seconds:.1f}s of {second.deadline_seconds:.0f}s"
    )
    assert first.problems() == []
    want_pg = {PG_TARGET: (dict[tuple[str, frozenset[tuple[str, str]]], float](), PG_NAMES)}
    want = expect(job, None)
    check_recovered(second, Expect(job, {}, {**want.healthy, **want_pg}, want.secrets))
    # The values came from the new postmaster (a replaced connection), not an old session.
    assert second.pushed(PG_TARGET)[("pg_uptime_seconds", frozenset())] <= since_restart


def test_a_kept_connection_that_went_silent_costs_one_timeout_not_two(
    pg: PostgresServer, proxy: TcpFault
) -> None:
    # A timeout means the server is there but not answering: re-opening at once would only
    # wait a second time. (A connection that broke is re-opened: test_restart_between_passes.)
    settings = replace(
        settings_for(pg, PG_CONNECT_TIMEOUT_SECONDS="1", PG_STATEMENT_TIMEOUT_MS="1000"),
        port=proxy.port,
    )
    source = PostgresSource(settings)
    try:
        assert [f.samples[0].value for f in source.collect() if f.name == "pg_up"] == [1.0]
        accepted = proxy.accepted
        proxy.set("blackhole")
        with pytest.raises(SourceFailure) as failure:
            list(source.collect())
        assert failure.value.reason == "timeout"
        assert proxy.accepted == accepted  # no second connection in the same pass
        proxy.set("forward")
        assert [f.samples[0].value for f in source.collect() if f.name == "pg_up"] == [1.0]
    finally:
        proxy.set("forward")
        source.close()
