"""ElastiCache engine faults injected for real against redis-server 7.0: the node stopped,
black-holed, a wrong password, TLS from another CA, INFO refused to the user. Alongside the
broken node: a healthy node and PostgreSQL, whose values must still go out.

The Redis nodes come from a targets file (``elasticache:`` entries), as users configure them.
Each test's expectations list the Redis passwords as secrets: one in a log line, a pushed
series or the error would fail it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from middleware_monitoring.config.elasticache import RedisSettings
from tests.dashboards import REDIS_INFO_ALWAYS
from tests.faults import harness
from tests.faults.conftest import PG_TARGET, Row, pg_env, push_env
from tests.faults.harness import PG_NAMES, Expect, LambdaFunction, Samples, key
from tests.faults.injectors import TcpFault
from tests.integration.pg_helpers import MONITOR_PASSWORD
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway
from tests.standins.redis import MONITOR, AclUser, RedisServer
from tests.standins.tls import TlsFiles, make_tls_files

Make = Callable[[Mapping[str, str]], LambdaFunction]
BROKEN, HEALTHY = "orders-cache-0001-001", "sessions-cache-0001-001"
# The healthy node holds two keys and nothing writes to it.
HEALTHY_EXACT: Samples = {
    key("redis_up"): 1.0,
    key("redis_db_keys", db="db0"): 2.0,
    key("redis_db_keys_expiring", db="db0"): 0.0,
    key("redis_connected_slaves"): 0.0,
    key("redis_memory_max_bytes"): 0.0,
    key("redis_cluster_enabled"): 0.0,
}
BACK: Mapping[str, tuple[Samples, frozenset[str]]] = {
    BROKEN: ({key("redis_up"): 1.0}, REDIS_INFO_ALWAYS)
}


@pytest.fixture(scope="module")
def healthy_redis() -> Iterator[RedisServer]:
    with RedisServer(users=[MONITOR]) as server:
        server.admin.set("session:1", "a")
        server.admin.set("session:2", "b")
        yield server


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, TlsFiles]:
    """The CA the collector trusts, and a server certificate from another CA."""
    base = tmp_path_factory.mktemp("redis-fault-tls")
    return make_tls_files(base / "trusted"), make_tls_files(base / "rogue")


@pytest.fixture
def broken() -> Iterator[RedisServer]:
    server = RedisServer(users=[MONITOR]).start()
    yield server
    server.stop()


def monitor(server: RedisServer, name: str, **changes: object) -> RedisSettings:
    return server.settings(name, user=MONITOR.name, password=MONITOR.password, **changes)


def nodes(directory: Path, healthy: RedisServer, broken: RedisSettings) -> dict[str, str]:
    """TARGETS_FILE with the healthy node and the one the test breaks."""
    entries = []
    for spec in (monitor(healthy, HEALTHY), broken):
        entry = {"name": spec.target_name, "host": spec.host, "port": spec.port, "tls": spec.tls}
        optional = {"tls_ca_file": spec.tls_ca_file, "user": spec.user, "password": spec.password}
        entries.append({**entry, **{k: v for k, v in optional.items() if v is not None}})
    path = directory / "targets.json"
    path.write_text(json.dumps({"elasticache": entries}))
    return {
        "TARGETS_FILE": str(path),
        "REDIS_CONNECT_TIMEOUT_SECONDS": "2",
        "REDIS_READ_TIMEOUT_SECONDS": "2",
    }


def origin(directory: Path) -> str:
    """How messages name the broken node: its place in the targets file."""
    return f"TARGETS_FILE ({directory / 'targets.json'}) elasticache[1] ({BROKEN})"


def make(
    function: Make, pg: PostgresServer, gw: Pushgateway, job: str, targets: Mapping[str, str]
) -> LambdaFunction:
    return function({**pg_env(pg), **push_env(gw.url, job), **targets})


def expect(job: str, reason: str, *secrets: str) -> Expect:
    return Expect(
        job=job,
        broken={(BROKEN, "redis"): reason},
        healthy={
            HEALTHY: (HEALTHY_EXACT, REDIS_INFO_ALWAYS),
            PG_TARGET: ({key("pg_up"): 1.0}, PG_NAMES),
        },
        secrets=(MONITOR_PASSWORD, MONITOR.password, *secrets),
    )


def run_fault(
    row: Row,
    fn: LambdaFunction,
    want: Expect,
    inject: Callable[[], None],
    heal: Callable[[], None],
) -> str:
    """Returns the detail of the broken node's log line."""
    failed = harness.run_fault(row, fn, want, inject, heal, back=BACK)
    # The broken node's own redis_up is pushed as 0, the series a dashboard shows.
    assert failed.pushed(BROKEN)[key("redis_up")] == 0
    (line,) = [x for x in failed.problems() if x.get("target") == BROKEN]
    return str(line["detail"])


def test_stopped(
    row: Row, pg, healthy_redis, broken, pushgateway, job, function: Make, tmp_path: Path
) -> None:
    row.fault = "Redis node stopped"
    row.expected = "redis down unreachable; others sent; 1 line; recovers"
    fn = make(
        function, pg, pushgateway, job, nodes(tmp_path, healthy_redis, monitor(broken, BROKEN))
    )
    # Warm first: the kept connection is found closed, and the node is really gone.
    assert fn.invoke().problems() == []
    detail = run_fault(row, fn, expect(job, "unreachable"), inject=broken.stop, heal=broken.start)
    assert detail == (
        f"{origin(tmp_path)}: Error 111 connecting to 127.0.0.1:{broken.port}. Connection refused."
    )


def test_black_hole(
    row: Row, pg, healthy_redis, broken, pushgateway, job, function: Make, tmp_path: Path
) -> None:
    row.fault = "Redis node black hole (accepts, never answers)"
    row.expected = "redis down timeout in the 2 s read timeout; others sent; 1 line; recovers"
    with TcpFault(broken.host, broken.port) as proxy:
        fn = make(
            function,
            pg,
            pushgateway,
            job,
            nodes(tmp_path, healthy_redis, monitor(broken, BROKEN, port=proxy.port)),
        )
        assert fn.invoke().problems() == []  # warm: the kept connection goes silent too
        detail = run_fault(
            row,
            fn,
            expect(job, "timeout"),
            inject=lambda: proxy.set("blackhole"),
            heal=lambda: proxy.set("forward"),
        )
    # The proxy accepts, so the connection is made; the reply is what never comes.
    assert detail == f"{origin(tmp_path)}: no answer in time: Timeout reading from socket"


def test_wrong_password(
    row: Row, pg, healthy_redis, pushgateway, job, function: Make, tmp_path: Path
) -> None:
    row.fault = "Redis wrong password (RBAC user)"
    row.expected = "redis down auth_failed; password in no line; recovers once it matches"
    configured, servers = "configured@:/%-redis-1", "the-nodes@:/%-redis-2"
    with RedisServer(users=[AclUser("app-monitor", servers)]) as server:
        settings = server.settings(BROKEN, user="app-monitor", password=configured)
        fn = make(function, pg, pushgateway, job, nodes(tmp_path, healthy_redis, settings))

        def heal() -> None:
            server.admin.execute_command("ACL", "SETUSER", "app-monitor", f">{configured}")

        detail = run_fault(
            row, fn, expect(job, "auth_failed", configured, servers), inject=lambda: None, heal=heal
        )
    assert detail == (
        f"{origin(tmp_path)}: login refused: invalid username-password pair or user is disabled."
    )


def test_tls_wrong_ca(
    row: Row, pg, healthy_redis, tls_pair, pushgateway, job, function: Make, tmp_path: Path
) -> None:
    row.fault = "Redis TLS certificate from another CA"
    row.expected = "redis down tls; others sent; 1 line; recovers once the certificate is right"
    trusted, rogue = tls_pair
    server = RedisServer(users=[MONITOR], tls=rogue).start()
    try:
        broken = monitor(server, BROKEN, tls=True, tls_ca_file=str(trusted.ca))
        fn = make(function, pg, pushgateway, job, nodes(tmp_path, healthy_redis, broken))

        def heal() -> None:
            server.stop()
            server.tls = trusted
            server.start()

        detail = run_fault(row, fn, expect(job, "tls"), inject=lambda: None, heal=heal)
    finally:
        server.stop()
    assert detail == (
        f"{origin(tmp_path)}: TLS failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
        "failed: self-signed certificate in certificate chain (_ssl.c:1000)"
    )


def test_info_refused(
    row: Row, pg, healthy_redis, broken, pushgateway, job, function: Make, tmp_path: Path
) -> None:
    row.fault = "Redis refuses INFO to the user (ACL -info)"
    row.expected = "redis down command_failed with the server's NOPERM; others sent; recovers"
    fn = make(
        function, pg, pushgateway, job, nodes(tmp_path, healthy_redis, monitor(broken, BROKEN))
    )

    def acl(rule: str) -> Callable[[], None]:
        return lambda: broken.admin.execute_command("ACL", "SETUSER", MONITOR.name, rule)

    detail = run_fault(
        row, fn, expect(job, "command_failed"), inject=acl("-info"), heal=acl("+info")
    )
    assert detail == (
        f"{origin(tmp_path)}: INFO refused: this user has no permissions to run the 'info' command"
        " (the user needs the INFO command: an ElastiCache access string like"
        " 'on -@all +info +ping +slowlog')"
    )
