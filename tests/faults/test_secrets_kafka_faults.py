"""Secrets Manager and Kafka faults. PG_SECRET_ARN naming a secret that does not exist (yet),
or Secrets Manager refusing the read (AccessDeniedException in its JSON wire format, over
real HTTP in front of moto): PostgreSQL is down with reason secret_unavailable, the healthy
DocumentDB target goes out. KAFKA_SERVER pointing at a broker that is down: the push is
neither delayed nor lost, the stream's own health says down."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

import pytest

from tests.faults import harness
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
from tests.faults.injectors import HttpAnswer, HttpFault
from tests.integration.pg_helpers import MONITOR, MONITOR_PASSWORD
from tests.standins.aws import MotoServer
from tests.standins.kafka import KafkaBroker

Make = Callable[[Mapping[str, str]], LambdaFunction]
SECRET_NAME = "rds!fault-db"


@pytest.fixture
def secrets_endpoint(clean_moto: MotoServer) -> Iterator[HttpFault]:
    with HttpFault(clean_moto.endpoint_url) as fault:
        yield fault


def secret_env(pg, docdb, moto: MotoServer, endpoint: HttpFault, gw, job: str) -> dict[str, str]:
    env = {
        **pg_env(pg, PG_SECRET_ARN=SECRET_NAME),
        "MONGO_INFO": json.dumps([docdb_info(docdb, DOCDB_HEALTHY)]),
        **push_env(gw.url, job),
        **moto.env(),
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint.url,
    }
    del env["PG_PWD"]  # the password comes from the secret
    return env


def create_secret(moto: MotoServer) -> None:
    moto.client("secretsmanager").create_secret(
        Name=SECRET_NAME,
        SecretString=json.dumps({"username": MONITOR, "password": MONITOR_PASSWORD}),
    )


def secret_expect(job: str) -> Expect:
    return Expect(
        job=job,
        broken={(PG_TARGET, "postgres"): "secret_unavailable"},
        healthy={DOCDB_HEALTHY: (DOCDB_EXACT, frozenset())},
        secrets=(MONITOR_PASSWORD,),
    )


def run_fault(
    row: Row, fn: LambdaFunction, want: Expect, inject: Callable[[], None], heal: Callable[[], None]
) -> None:
    harness.run_fault(row, fn, want, inject, heal, back={PG_TARGET: ({}, PG_NAMES)})


def test_secret_missing(
    row: Row, pg, healthy_docdb, clean_moto, secrets_endpoint, pushgateway, job, function: Make
) -> None:
    row.fault = "Secrets Manager: PG_SECRET_ARN secret missing"
    row.expected = "postgres down secret_unavailable; others sent; 1 line; recovers once created"
    fn = function(secret_env(pg, healthy_docdb, clean_moto, secrets_endpoint, pushgateway, job))
    run_fault(
        row, fn, secret_expect(job), inject=lambda: None, heal=lambda: create_secret(clean_moto)
    )


def test_secret_unreadable(
    row: Row, pg, healthy_docdb, clean_moto, secrets_endpoint, pushgateway, job, function: Make
) -> None:
    row.fault = "Secrets Manager: read refused (AccessDeniedException)"
    row.expected = "postgres down secret_unavailable; others sent; 1 line; recovers"
    create_secret(clean_moto)
    fn = function(secret_env(pg, healthy_docdb, clean_moto, secrets_endpoint, pushgateway, job))

    def inject() -> None:
        secrets_endpoint.answer = HttpAnswer(
            400, "AccessDeniedException", "not authorized to perform: GetSecretValue"
        )

    run_fault(row, fn, secret_expect(job), inject=inject, heal=secrets_endpoint.heal)


def test_kafka_broker_down(row: Row, pg, healthy_docdb, pushgateway, job, function: Make) -> None:
    row.fault = "Kafka broker down (KAFKA_SERVER set)"
    row.expected = "targets pushed anyway; kafka down in the collector's series; 1 line; recovers"
    broker = KafkaBroker()
    broker.start()
    port = broker.port
    try:
        fn = function(
            {
                **pg_env(pg, PG_STATEMENTS_TOP_N="5"),
                "MONGO_INFO": json.dumps([docdb_info(healthy_docdb, DOCDB_HEALTHY)]),
                **push_env(pushgateway.url, job),
                "KAFKA_SERVER": broker.bootstrap,
                "PG_ENV_NAME": "faults",
                "KAFKA_TIMEOUT_SECONDS": "1",
            }
        )
        broker.stop()
        failed = fn.invoke()
        broker.start(port=port)
        recovered = fn.invoke()
        recovered_again = recovered if not recovered.problems() else fn.invoke()
    finally:
        broker.stop()
    group = "collector"  # the stream's health is among the collector's own series
    want = Expect(
        job=job,
        broken={},
        healthy={
            DOCDB_HEALTHY: (DOCDB_EXACT, frozenset()),
            PG_TARGET: ({("pg_up", frozenset()): 1.0}, PG_NAMES),
        },
        secrets=(MONITOR_PASSWORD,),
        also_logged=("query stream down",),
    )
    up, failures = health_of(failed.pushed(group))
    row.observed = (
        observe(failed, want)
        + f"; kafka up={up.get('kafka')} {','.join(r for _, r in failures)}; next pass "
        + ("recovered" if not recovered.problems() else "recovered one pass later")
    )
    check_fault_pass(failed, want)
    assert up == {"kafka": 0.0}
    # A cold producer that never reached a broker.
    assert failures == {("kafka", "unreachable"): 1.0}
    assert failed.pushed(group)[key("middleware_query_stream_messages_sent")] == 0
    # A broker back on its port is used again without a redeploy; kafka-python may need the
    # first pass to find it (its reconnect backoff), never more.
    check_recovered(
        recovered_again,
        Expect(job, {}, want.healthy, want.secrets),
    )
    up_after, _ = health_of(recovered_again.pushed(group))
    assert up_after == {"kafka": 1.0}
    # One message per statement of the top N (PG_STATEMENTS_TOP_N=5; the server has more).
    assert recovered_again.pushed(group)[key("middleware_query_stream_messages_sent")] == 5
