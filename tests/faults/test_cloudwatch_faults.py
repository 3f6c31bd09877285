"""CloudWatch faults over real HTTP: botocore talks to a local endpoint in front of the moto
stand-in that answers throttling, access denied or a 5xx in CloudWatch's own wire format
(rpc-v2-cbor), answers too slowly, or passes through to a moto without datapoints (the
empty result). Two CloudWatch targets (a DocumentDB instance, an ElastiCache cluster) share
the one batched call; PostgreSQL and a DocumentDB cluster over serverStatus run alongside."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping

import pytest

from tests.faults import harness
from tests.faults.conftest import DOCDB_HEALTHY, PG_TARGET, Row, docdb_info, pg_env, push_env
from tests.faults.harness import (
    DOCDB_EXACT,
    PG_NAMES,
    Expect,
    LambdaFunction,
    Samples,
    key,
)
from tests.faults.injectors import HttpAnswer, HttpFault
from tests.integration.pg_helpers import MONITOR_PASSWORD
from tests.standins.aws import MotoServer
from tests.standins.cloudwatch import DEMO_VALUES, Fleet, fleet_env, seed_cloudwatch

Make = Callable[[Mapping[str, str]], LambdaFunction]
FLEET = Fleet(
    rds_instance=None,
    docdb_instances=("fault-docdb-1",),
    docdb_clusters=(),
    elasticache=("fault-redis-001",),
)
CW_DOCDB = "docdb:fault-docdb-1"
CW_REDIS = "elasticache:fault-redis-001"
CW_EXACT: dict[str, Samples] = {
    CW_DOCDB: {
        key("mongo_cpu_utilization", DocDB="fault-docdb-1"): DEMO_VALUES["CPUUtilization"],
        key("mongo_read_latency", DocDB="fault-docdb-1"): DEMO_VALUES["ReadLatency"],
    },
    CW_REDIS: {
        key(
            "redis_network_bandwidthOut_allowance_exceeded", ElastiCache="fault-redis-001"
        ): DEMO_VALUES["NetworkBandwidthOutAllowanceExceeded"],
        key(
            "redis_network_bandwidth_inallowance_exceeded", ElastiCache="fault-redis-001"
        ): DEMO_VALUES["NetworkBandwidthInAllowanceExceeded"],
    },
}


@pytest.fixture
def endpoint(clean_moto: MotoServer) -> Iterator[HttpFault]:
    with HttpFault(clean_moto.endpoint_url) as fault:
        yield fault


def environ(pg, docdb, moto: MotoServer, endpoint: HttpFault, gw, job: str) -> dict[str, str]:
    return {
        **pg_env(pg),
        "MONGO_INFO": json.dumps([docdb_info(docdb, DOCDB_HEALTHY)]),
        **push_env(gw.url, job),
        **moto.env(),
        **fleet_env(FLEET),
        "AWS_ENDPOINT_URL_CLOUDWATCH": endpoint.url,
        "CLOUDWATCH_MAX_ATTEMPTS": "2",
        "CLOUDWATCH_CONNECT_TIMEOUT_SECONDS": "1",
        "CLOUDWATCH_READ_TIMEOUT_SECONDS": "1",
    }


def expect(job: str, reason: str, also: tuple[str, ...]) -> Expect:
    return Expect(
        job=job,
        broken={(CW_DOCDB, "cloudwatch"): reason, (CW_REDIS, "cloudwatch"): reason},
        healthy={
            DOCDB_HEALTHY: (DOCDB_EXACT, frozenset()),
            PG_TARGET: ({("pg_up", frozenset()): 1.0}, PG_NAMES),
        },
        secrets=(MONITOR_PASSWORD, "testing-secret-key"),
        also_logged=also,
    )


def run_fault(
    row: Row,
    fn: LambdaFunction,
    want: Expect,
    inject: Callable[[], None],
    heal: Callable[[], None],
) -> None:
    # The CloudWatch targets come back with the exact values seeded into moto.
    back = {t: (v, frozenset[str]()) for t, v in CW_EXACT.items()}
    harness.run_fault(row, fn, want, inject, heal, back=back)


@pytest.fixture
def make_fn(pg, healthy_docdb, clean_moto, endpoint, pushgateway, job, function: Make, monkeypatch):
    def make(seed: bool = True) -> LambdaFunction:
        env = environ(pg, healthy_docdb, clean_moto, endpoint, pushgateway, job)
        env["AWS_SECRET_ACCESS_KEY"] = "testing-secret-key"
        if seed:
            seed_cloudwatch(clean_moto.endpoint_url, FLEET)
        return function(env)

    return make


CALL_FAILED = ("GetMetricData call failed",)
# GetMetricData requests of one pass over FLEET (one batch).
GET_METRIC_DATA_CALLS = 1


def test_throttling(row: Row, make_fn, endpoint: HttpFault, job) -> None:
    row.fault = "CloudWatch throttling (every attempt)"
    row.expected = "botocore retries; CloudWatch targets down throttled; others sent; recovers"
    fn = make_fn()

    def throttle() -> None:
        endpoint.answer = HttpAnswer(400, "Throttling", "Rate exceeded")

    inject, heal, requests = harness.counting_requests(endpoint, throttle, endpoint.heal)
    run_fault(row, fn, expect(job, "throttled", CALL_FAILED), inject, heal)
    # The pass's GetMetricData calls, each tried CLOUDWATCH_MAX_ATTEMPTS=2 times.
    assert requests == [GET_METRIC_DATA_CALLS * 2]


def test_access_denied(row: Row, make_fn, endpoint: HttpFault, job) -> None:
    row.fault = "CloudWatch access denied"
    row.expected = "CloudWatch targets down auth_failed; others sent; recovers"
    fn = make_fn()

    def inject() -> None:
        endpoint.answer = HttpAnswer(
            400, "AccessDenied", "not authorized to perform: cloudwatch:GetMetricData"
        )

    run_fault(row, fn, expect(job, "auth_failed", CALL_FAILED), inject, endpoint.heal)


def test_server_error(row: Row, make_fn, endpoint: HttpFault, job) -> None:
    row.fault = "CloudWatch 500"
    row.expected = "retried; CloudWatch targets down cloudwatch_error; others sent; recovers"
    fn = make_fn()

    def fail() -> None:
        endpoint.answer = HttpAnswer(500, "InternalServiceError", "internal failure")

    inject, heal, requests = harness.counting_requests(endpoint, fail, endpoint.heal)
    run_fault(row, fn, expect(job, "cloudwatch_error", CALL_FAILED), inject, heal)
    assert requests == [GET_METRIC_DATA_CALLS * 2]


def test_slow_endpoint(row: Row, make_fn, endpoint: HttpFault, job) -> None:
    row.fault = "CloudWatch slower than its read timeout"
    row.expected = "CloudWatch targets down timeout, within the deadline; others sent; recovers"
    fn = make_fn()

    def inject() -> None:
        endpoint.answer = HttpAnswer(504, "GatewayTimeout", "too late")
        endpoint.delay_seconds = 3.0

    run_fault(row, fn, expect(job, "timeout", CALL_FAILED), inject, endpoint.heal)


def test_empty_result(row: Row, make_fn, clean_moto: MotoServer, job) -> None:
    row.fault = "CloudWatch empty result (no datapoints)"
    row.expected = "CloudWatch targets down no_data (never a fake 0); others sent; recovers"
    fn = make_fn(seed=False)

    def heal() -> None:
        seed_cloudwatch(clean_moto.endpoint_url, FLEET)
        # The next pass comes a minute later, as on the schedule: within the same minute the
        # batch keeps that minute's answer (each metric is asked at most once a period).
        batch = fn.module._runtime.builder.cloudwatch.batch()
        batch._clock = lambda: time.time() + 60

    run_fault(row, fn, expect(job, "no_data", ()), inject=lambda: None, heal=heal)
