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
    health_of,
    key,
    observe,
)
from tests.faults.injectors import TcpFault
from tests.integration.pg_helpers import MONITOR_PASSWORD
from tests.standins.cloudwatch import Fleet, fleet_env, seed_cloudwatch

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
        in_flight = runtime.targets[0].in_flight["postgres"]
        # The worker logs before its result is set: once it is, every line it wrote is in.
        stuck = in_flight.result(timeout=60)
        late = fn.invoke_logs_since_last()
        recovered = fn.invoke(REMAINING_MILLIS)
        row.observed += (
            f"; stuck worker logged {len([x for x in late if x.get('level') == 'WARNING'])} "
            "more line(s); next pass " + ("recovered" if not recovered.problems() else "still down")
        )
    check_fault_pass(hung, want)
    assert (stuck.outcome.source, stuck.outcome.up) == ("postgres", False)
    assert [line for line in late if line.get("level") in ("WARNING", "ERROR")] == []
    check_recovered(
        recovered,
        Expect(job, {}, {**want.healthy, PG_TARGET: ({}, PG_NAMES)}, want.secrets),
    )


def test_hung_sql_keeps_the_same_instance_cloudwatch_values(
    row: Row, pg, pushgateway, job, clean_moto, function: Make
) -> None:
    """Issue 12.5: the PostgreSQL source of a target hangs past the deadline, then is busy on
    the next pass; the same target's RDS CloudWatch values (its CPU and memory, what matters
    most then) go out on both passes."""
    row.fault = "PostgreSQL hangs (deadline, then busy) on a target with RDS CloudWatch"
    row.expected = "postgres down deadline, then busy; that target's CloudWatch sent both times"
    fleet = Fleet(rds_instance="hung-rds", docdb_instances=(), docdb_clusters=(), elasticache=())
    expected = seed_cloudwatch(clean_moto.endpoint_url, fleet)
    cloudwatch = {
        key(declaration.output): expected[declaration.stat] for declaration in fleet.declarations()
    }
    with TcpFault(pg.host, pg.port) as proxy:
        fn = function(
            {
                **pg_env(
                    pg,
                    PG_PORT=str(proxy.port),
                    PG_CONNECT_TIMEOUT_SECONDS="30",
                    PG_STATEMENT_TIMEOUT_MS="30000",
                ),
                **clean_moto.env(),
                **fleet_env(fleet),
                **push_env(pushgateway.url, job),
                "PUSHGATEWAY_TIMEOUT_SECONDS": "1",
                "PUSHGATEWAY_RETRIES": "0",
            }
        )
        proxy.set("blackhole")
        passes = [fn.invoke(REMAINING_MILLIS), fn.invoke(REMAINING_MILLIS)]
        row.observed = "; ".join(observe(p, Expect(job, {}, {})) for p in passes)
        proxy.set("forward")
        fn.module._runtime.targets[0].in_flight["postgres"].result(timeout=60)
    for inv, reason in zip(passes, ("deadline", "busy"), strict=True):
        assert inv.error is None and inv.seconds < inv.deadline_seconds
        group = inv.pushed(PG_TARGET)
        assert {k: v for k, v in group.items() if k in cloudwatch} == cloudwatch
        assert health_of(group) == (
            {"postgres": 0.0, "cloudwatch": 1.0},
            {("postgres", reason): 1.0},
        )
        assert group[key("pg_up")] == 0.0
    row.observed += f"; CloudWatch values sent {len(cloudwatch)}/{len(cloudwatch)} both passes"
