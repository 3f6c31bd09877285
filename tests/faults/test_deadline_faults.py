"""The Lambda deadline close: an invocation with a few seconds left while one target hangs
(a black hole with socket timeouts far longer than the time left). The handler must keep the
push's reserve, report the hung target down (reason deadline), push every healthy target and
return before the platform would kill it; the stuck worker must not log the same failure a
second time when it finally gives up, and the next invocation recovers by itself."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from tests.faults.conftest import DOCDB_HEALTHY, PG_TARGET, Row, docdb_info, pg_env, push_env
from tests.faults.harness import (
    DOCDB_EXACT,
    PG_NAMES,
    Expect,
    LambdaFunction,
    check_fault_pass,
    check_recovered,
    observe,
)
from tests.faults.injectors import TcpFault
from tests.integration.pg_helpers import MONITOR_PASSWORD

Make = Callable[[Mapping[str, str]], LambdaFunction]
# Room for the healthy targets and the push on a loaded 2-core machine; the hung target's
# timeouts (30 s) are far beyond it, so only the deadline can end its wait.
REMAINING_MILLIS = 8000


def test_lambda_deadline_close(
    row: Row, pg, healthy_docdb, pushgateway, job, function: Make
) -> None:
    row.fault = f"Lambda deadline close ({REMAINING_MILLIS / 1000:.0f} s left, a target hangs)"
    row.expected = "hung target down deadline; others sent; returns in time; 1 line; recovers"
    with TcpFault(pg.host, pg.port) as proxy:
        fn = function(
            {
                **pg_env(
                    pg,
                    PG_PORT=str(proxy.port),
                    PG_CONNECT_TIMEOUT_SECONDS="30",
                    PG_STATEMENT_TIMEOUT_MS="30000",
                ),
                "MONGO_INFO": json.dumps([docdb_info(healthy_docdb, DOCDB_HEALTHY)]),
                **push_env(pushgateway.url, job),
                "PUSHGATEWAY_TIMEOUT_SECONDS": "1",
                "PUSHGATEWAY_RETRIES": "0",
            }
        )
        want = Expect(
            job=job,
            broken={(PG_TARGET, "postgres"): "deadline"},
            healthy={DOCDB_HEALTHY: (DOCDB_EXACT, frozenset())},
            secrets=(MONITOR_PASSWORD,),
        )
        proxy.set("blackhole")
        hung = fn.invoke(REMAINING_MILLIS)
        row.observed = observe(hung, want)
        # The server comes back: the held connection is cut, the stuck worker ends.
        proxy.set("forward")
        runtime = fn.module._runtime
        in_flight = runtime.targets[0].in_flight
        # The worker logs before its result is set: once it is, every line it wrote is in.
        stuck = in_flight.result(timeout=60)
        late = fn.invoke_logs_since_last()
        recovered = fn.invoke(REMAINING_MILLIS)
        row.observed += (
            f"; stuck worker logged {len([x for x in late if x.get('level') == 'WARNING'])} "
            "more line(s); next pass " + ("recovered" if not recovered.problems() else "still down")
        )
    check_fault_pass(hung, want)
    assert (stuck.target, [(o.source, o.up) for o in stuck.outcomes]) == (
        PG_TARGET,
        [("postgres", False)],
    )
    assert [line for line in late if line.get("level") in ("WARNING", "ERROR")] == []
    check_recovered(
        recovered,
        Expect(job, {}, {**want.healthy, PG_TARGET: ({}, PG_NAMES)}, want.secrets),
    )
