"""Pushgateway faults, for real over HTTP: nothing listening, a 5xx, an answer slower than
PUSHGATEWAY_TIMEOUT_SECONDS, a 401, a black hole with a fleet of 200 targets to push.
Collection is fine; the push is what fails, so the invocation must fail (the platform's retry
and alarm see it) and say why, within its deadline. Once the gateway is healthy the next
invocation pushes every target."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

import pytest

from middleware_monitoring.sinks import PushError
from tests.faults.conftest import DOCDB_HEALTHY, PG_TARGET, Row, docdb_info, pg_env, push_env
from tests.faults.harness import (
    DOCDB_EXACT,
    PG_NAMES,
    Expect,
    Invocation,
    LambdaFunction,
    check_no_secret,
    check_recovered,
    counting_requests,
)
from tests.faults.injectors import HttpAnswer, HttpFault, TcpFault
from tests.integration.pg_helpers import MONITOR_PASSWORD
from tests.standins.docdb import DocDBServer
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway
from tests.standins.silent import SilentServer

Make = Callable[[Mapping[str, str]], LambdaFunction]
USER = "pusher"
CONFIGURED_PASSWORD = "configured-Push-pw-1234"
# The instances one pass pushes (one PUT of its shard's group): its two targets and the
# collector's own series.
GROUPS = sorted(["collector", DOCDB_HEALTHY, PG_TARGET])


@pytest.fixture
def http_fault(pushgateway: Pushgateway) -> Iterator[HttpFault]:
    with HttpFault(pushgateway.url) as fault:
        yield fault


def environ(
    pg: PostgresServer, docdb: DocDBServer, url: str, job: str, **extra: str
) -> dict[str, str]:
    return {
        **pg_env(pg),
        "MONGO_INFO": json.dumps([docdb_info(docdb, DOCDB_HEALTHY)]),
        **push_env(url, job),
        "PUSHGATEWAY_TIMEOUT_SECONDS": "1",
        **extra,
    }


def healthy(job: str, *secrets: str) -> Expect:
    return Expect(
        job=job,
        broken={},
        healthy={
            DOCDB_HEALTHY: (DOCDB_EXACT, frozenset()),
            PG_TARGET: ({("pg_up", frozenset()): 1.0}, PG_NAMES),
        },
        secrets=(MONITOR_PASSWORD, *secrets),
    )


def run_push_fault(
    row: Row,
    fn: LambdaFunction,
    want: Expect,
    cause: str,
    inject: Callable[[], None],
    heal: Callable[[], None],
) -> tuple[Invocation, Invocation]:
    inject()
    try:
        failed = fn.invoke()
    finally:
        heal()
    recovered = fn.invoke()
    row.observed = (
        f"raised {type(failed.error).__name__ if failed.error else 'nothing'}"
        + (f" ({cause} named)" if cause in str(failed.error) else f" ({cause} NOT named)")
        + f"; {len(failed.problems())} log line(s); {failed.seconds:.1f}s of "
        f"{failed.deadline_seconds:.0f}s; next pass "
        + ("pushed all" if recovered.error is None and not recovered.problems() else "failed")
    )
    # A failed push fails the invocation, says why, and within the deadline.
    assert isinstance(failed.error, PushError)
    assert cause in str(failed.error)
    assert failed.seconds < failed.deadline_seconds
    # The platform reports the raised error; the function adds no line of its own for it.
    assert failed.problems() == []
    check_no_secret(failed, want)
    check_recovered(recovered, want)
    return failed, recovered


def test_pushgateway_down(
    row: Row, pg, healthy_docdb, pushgateway: Pushgateway, job, function: Make
) -> None:
    row.fault = "Pushgateway down (connection refused)"
    row.expected = "invocation raises PushError naming the cause; next one pushes all"
    with TcpFault(pushgateway.host, pushgateway.port) as gate:
        fn = function(environ(pg, healthy_docdb, f"http://127.0.0.1:{gate.port}", job))
        run_push_fault(
            row,
            fn,
            healthy(job),
            "Connection refused",
            inject=lambda: gate.set("refused"),
            heal=lambda: gate.set("forward"),
        )


def test_pushgateway_5xx(
    row: Row, pg, healthy_docdb, http_fault: HttpFault, job, function: Make
) -> None:
    row.fault = "Pushgateway answers 503"
    row.expected = "retried, then PushError with HTTP 503 and the body; next one pushes all"
    fn = function(environ(pg, healthy_docdb, http_fault.url, job))

    def unavailable() -> None:
        http_fault.answer = HttpAnswer(503, message="maintenance window")

    inject, heal, requests = counting_requests(http_fault, unavailable, http_fault.heal)
    failed, recovered = run_push_fault(row, fn, healthy(job), "HTTP 503", inject, heal)
    assert "maintenance window" in str(failed.error)
    # The one PUT tried PUSHGATEWAY_RETRIES + 1 = 2 times, after the cold start's one read of
    # the groups (last success times, leftover groups).
    assert sorted(recovered.pushed.groups) == GROUPS
    assert requests == [1 + 2]


def test_pushgateway_slow(
    row: Row, pg, healthy_docdb, http_fault: HttpFault, job, function: Make
) -> None:
    row.fault = "Pushgateway slower than PUSHGATEWAY_TIMEOUT_SECONDS"
    row.expected = "each attempt times out, PushError says timed out; next one pushes all"
    fn = function(environ(pg, healthy_docdb, http_fault.url, job))

    def slow() -> None:
        # Answers (an error) only after the client has given up: it never reaches upstream.
        http_fault.answer = HttpAnswer(504, message="too late")
        http_fault.delay_seconds = 3.0

    inject, heal, requests = counting_requests(http_fault, slow, http_fault.heal)
    _, recovered = run_push_fault(row, fn, healthy(job), "timed out", inject, heal)
    assert sorted(recovered.pushed.groups) == GROUPS
    assert requests == [1 + 2]


def test_pushgateway_401(
    row: Row, pg, healthy_docdb, http_fault: HttpFault, job, function: Make
) -> None:
    row.fault = "Pushgateway 401 (wrong basic-auth password)"
    row.expected = "not retried, PushError with HTTP 401, password in no message; recovers"
    fn = function(
        environ(
            pg,
            healthy_docdb,
            http_fault.url,
            job,
            PUSHGATEWAY_USERNAME=USER,
            PUSHGATEWAY_PASSWORD=CONFIGURED_PASSWORD,
        )
    )
    server_password = "the-gateways-Pw-5678"

    def inject() -> None:
        http_fault.basic_auth = (USER, server_password)

    during: list[int] = []

    def heal() -> None:
        during.append(http_fault.requests)
        # The gateway's credentials are fixed to match; the function is not redeployed.
        http_fault.basic_auth = (USER, CONFIGURED_PASSWORD)

    def start() -> None:
        during.append(http_fault.requests)
        inject()

    run_push_fault(
        row,
        fn,
        healthy(job, CONFIGURED_PASSWORD, server_password),
        "HTTP 401",
        inject=start,
        heal=heal,
    )
    # A 4xx is not retried: one PUT for the pass, after the cold start's read of the groups.
    assert during[1] - during[0] == 1 + 1


# --- a fleet against a black hole -------------------------------------------------------------

FLEET_GROUPS = 200


@pytest.fixture(scope="module")
def docdb_servers() -> Iterator[list[DocDBServer]]:
    started = [DocDBServer().start() for _ in range(4)]
    yield started
    for server in started:
        server.stop()


def test_200_groups_against_a_black_holed_pushgateway(
    row: Row, docdb_servers, job, function: Make
) -> None:
    row.fault = f"Pushgateway black-holed, {FLEET_GROUPS} targets (one group)"
    row.expected = "PushError naming the group and the cause, before the deadline"
    names = [f"docdb-{i:03d}" for i in range(FLEET_GROUPS)]
    info = [docdb_info(docdb_servers[i % 4], name) for i, name in enumerate(names)]
    with SilentServer() as silent:
        fn = function(
            {
                "MONGO_INFO": json.dumps(info),
                "PUSHGATEWAY_URL": f"http://{silent.host}:{silent.port}",
                "PUSHGATEWAY_JOB": job,
                # 7.5 s for the PUT with every attempt timing out; the deadline is 20 s.
                "PUSHGATEWAY_TIMEOUT_SECONDS": "2",
                "PUSHGATEWAY_RETRIES": "2",
                "COLLECTOR_MAX_WORKERS": "32",
            }
        )
        inv = fn.invoke(20_000)
    row.observed = (
        f"raised {type(inv.error).__name__}; {inv.seconds:.1f}s of {inv.deadline_seconds:.0f}s"
    )
    assert isinstance(inv.error, PushError), inv.error
    assert inv.seconds < inv.deadline_seconds
    message = str(inv.error)
    group = f"http://{silent.host}:{silent.port}/metrics/job/{job}/collector/collector/shard/0"
    assert message.startswith(f"Pushgateway {group} did not accept the pass (")
    assert message.endswith(f" series of {FLEET_GROUPS} targets): TimeoutError: timed out")
