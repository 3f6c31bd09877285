"""DocumentDB faults injected for real against the wire-protocol stand-in: the server
stopped, black-holed, TLS with the wrong CA, a wrong password, serverStatus answering an
error. Alongside the broken cluster: a healthy DocumentDB target and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

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
    Invocation,
    LambdaFunction,
    health_of,
)
from tests.faults.injectors import TcpFault
from tests.integration.pg_helpers import MONITOR_PASSWORD
from tests.standins.docdb import DocDBServer
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway
from tests.standins.tls import TlsFiles, make_tls_files

Make = Callable[[Mapping[str, str]], LambdaFunction]
BROKEN = "orders-docdb"
USER = "monitor"


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, TlsFiles]:
    """The CA the collector trusts, and a server certificate from another CA."""
    base = tmp_path_factory.mktemp("docdb-tls")
    return make_tls_files(base / "trusted"), make_tls_files(base / "rogue")


@pytest.fixture
def broken() -> Iterator[DocDBServer]:
    # Standalone: a replica-set reply would send the driver to the server's own address,
    # around a fault proxy in front of it.
    server = DocDBServer(replica_set=None).start()
    yield server
    server.stop()


def environ(
    pg: PostgresServer,
    healthy: DocDBServer,
    info: dict[str, Any],
    gw: Pushgateway,
    job: str,
) -> dict[str, str]:
    return {
        **pg_env(pg),
        "MONGO_INFO": json.dumps([docdb_info(healthy, DOCDB_HEALTHY), {**info, "name": BROKEN}]),
        **push_env(gw.url, job),
    }


def expect(job: str, reason: str, *secrets: str) -> Expect:
    return Expect(
        job=job,
        broken={(BROKEN, "mongo"): reason},
        healthy={
            DOCDB_HEALTHY: (DOCDB_EXACT, frozenset()),
            PG_TARGET: ({("pg_up", frozenset()): 1.0}, PG_NAMES),
        },
        secrets=(MONITOR_PASSWORD, *secrets),
    )


def run_fault(
    row: Row,
    fn: LambdaFunction,
    want: Expect,
    inject: Callable[[], None],
    heal: Callable[[], None],
    accept: tuple[str, ...] = (),
) -> None:
    def settle(failed: Invocation, want: Expect) -> Expect:
        if not accept:
            return want
        # Which of these a black hole gives depends on whether pymongo's monitor or the
        # command's socket notices first; both are the truth, the pushed one must be either.
        _, failures = health_of(failed.pushed(BROKEN))
        reasons = [reason for source, reason in failures if source == "mongo"]
        assert len(reasons) == 1 and reasons[0] in accept, failures
        return replace(want, broken={(BROKEN, "mongo"): reasons[0]})

    back = {BROKEN: (DOCDB_EXACT, frozenset[str]())}
    failed = harness.run_fault(row, fn, want, inject, heal, back=back, settle=settle)
    # The broken cluster's own mongo_up is pushed as 0, the series a dashboard shows.
    assert failed.pushed(BROKEN)[("mongo_up", frozenset())] == 0


def test_stopped(row: Row, pg, healthy_docdb, broken, pushgateway, job, function: Make) -> None:
    row.fault = "DocumentDB stopped"
    row.expected = "mongo down unreachable; others sent; 1 line; recovers"
    fn = function(environ(pg, healthy_docdb, docdb_info(broken, BROKEN), pushgateway, job))
    run_fault(row, fn, expect(job, "unreachable"), inject=broken.stop, heal=broken.start)


def test_black_hole(row: Row, pg, healthy_docdb, broken, pushgateway, job, function: Make) -> None:
    row.fault = "DocumentDB black hole (accepts, never answers)"
    row.expected = "mongo down timeout|unreachable in ~1.5 s; others sent; 1 line; recovers"
    with TcpFault(broken.host, broken.port) as proxy:
        info = docdb_info(broken, BROKEN)
        info["connect"] = {**info["connect"], "port": str(proxy.port)}  # type: ignore[dict-item]
        fn = function(environ(pg, healthy_docdb, info, pushgateway, job))
        assert fn.invoke().problems() == []  # warm: the kept client's link goes silent too
        run_fault(
            row,
            fn,
            expect(job, "timeout"),
            inject=lambda: proxy.set("blackhole"),
            heal=lambda: proxy.set("forward"),
            accept=("timeout", "unreachable"),
        )


def test_tls_wrong_ca(
    row: Row, pg, healthy_docdb, tls_pair, pushgateway, job, function: Make
) -> None:
    row.fault = "DocumentDB TLS certificate from another CA"
    row.expected = "mongo down tls; others sent; 1 line; recovers once the certificate is right"
    trusted, rogue = tls_pair
    server = DocDBServer(tls=rogue, replica_set=None).start()
    try:
        info = docdb_info(server, BROKEN, tlsCAFile=str(trusted.ca))
        fn = function(environ(pg, healthy_docdb, info, pushgateway, job))

        def heal() -> None:
            server.stop()
            server.tls = trusted
            server.start()

        run_fault(row, fn, expect(job, "tls"), inject=lambda: None, heal=heal)
    finally:
        server.stop()


def test_wrong_password(row: Row, pg, healthy_docdb, pushgateway, job, function: Make) -> None:
    row.fault = "DocumentDB wrong password"
    row.expected = "mongo down auth_failed; password in no line; recovers once it matches"
    configured, servers = "configured-Mongo-pw-1", "the-clusters-Mongo-pw-2"
    server = DocDBServer(users={USER: servers}, replica_set=None).start()
    try:
        info = docdb_info(server, BROKEN, user=USER, password=configured)
        fn = function(environ(pg, healthy_docdb, info, pushgateway, job))
        assert server.scram is not None
        scram = server.scram

        def heal() -> None:
            scram.users[USER] = configured

        run_fault(
            row, fn, expect(job, "auth_failed", configured, servers), inject=lambda: None, heal=heal
        )
    finally:
        server.stop()


def test_server_status_error(
    row: Row, pg, healthy_docdb, broken, pushgateway, job, function: Make
) -> None:
    row.fault = "DocumentDB serverStatus answers an error"
    row.expected = "mongo down command_failed with the server's message; others sent; recovers"
    fn = function(environ(pg, healthy_docdb, docdb_info(broken, BROKEN), pushgateway, job))

    def inject() -> None:
        broken.status_error = (13, "not authorized on admin to execute command serverStatus")

    def heal() -> None:
        broken.status_error = None

    run_fault(row, fn, expect(job, "command_failed"), inject=inject, heal=heal)
