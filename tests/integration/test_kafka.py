"""The query-statistics stream against a real Kafka-compatible broker (tansu), real
PostgreSQL and the real Pushgateway."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from middleware_monitoring.kafka_stream import (
    MESSAGES_SENT,
    QUERY_VALUES,
    QueryStream,
    push_and_stream,
)
from middleware_monitoring.model import PassResult
from middleware_monitoring.runtime import Runtime
from middleware_monitoring.sinks import PushgatewaySink
from tests.helpers import child_env, close
from tests.standins.kafka import KafkaBroker
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

DB = "mm_kafka"
JOB = "mm-kafka-test"
ENV_NAME = "staging-eu"
PROBE_CALLS = 7
MESSAGE_FIELDS = {
    "timestamp",
    "env_name",
    "target",
    "tags",
    "query",
    "queryid",
    "database",
    "user",
    *QUERY_VALUES,
}


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with KafkaBroker() as kafka:
        yield kafka


@pytest.fixture(scope="module")
def pg(pg17: PostgresServer) -> PostgresServer:
    pg17.create_database(DB)
    pg17.create_extension(database=DB)
    pg17.execute_as_superuser(
        "CREATE TABLE IF NOT EXISTS kafka_probe (id int PRIMARY KEY)", database=DB
    )
    pg17.execute_as_superuser(
        "INSERT INTO kafka_probe SELECT generate_series(1, 50) ON CONFLICT DO NOTHING",
        database=DB,
    )
    # Only this database's entries: the server is shared by the whole session.
    pg17.execute_as_superuser(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
        " WHERE datname = current_database()), 0)",
        database=DB,
    )
    # The top N is server-wide and the session's other statements share it: the probe's
    # 0.7 s of total time keeps it among the top 200 whatever ran before.
    conn = pg17.connect(database=DB)
    try:
        for i in range(PROBE_CALLS):
            conn.run("SELECT count(*), pg_sleep(0.1) FROM kafka_probe WHERE id > :n", n=i)
    finally:
        conn.close()
    return pg17


def _environ(pg: PostgresServer, gateway: Pushgateway, **extra: str) -> dict[str, str]:
    return {
        **pg.collector_env(database=DB),
        "PG_TARGET_NAME": "orders-db",
        "PG_SSLMODE": "disable",
        "PG_QPS_SAMPLE_SECONDS": "0",
        "PG_STATEMENTS_TOP_N": "200",
        "PUSHGATEWAY_URL": gateway.url,
        "PUSHGATEWAY_JOB": JOB,
        "PG_ENV_NAME": ENV_NAME,
        **extra,
    }


StatementKey = tuple[str, str, str]


def _key(labels: dict[str, Any]) -> StatementKey:
    # One queryid can be several statements: the same text run in other databases or by
    # other users is an entry of its own.
    return (labels["queryid"], labels["database"], labels["user"])


def _expected_statements(result: PassResult) -> dict[StatementKey, dict[str, Any]]:
    """(queryid, database, user) -> labels and every pg_query_* value, from the pass."""
    (target,) = result.targets
    expected: dict[StatementKey, dict[str, Any]] = {}
    for family in target.families:
        if family.name.startswith("pg_query_"):
            for sample in family.samples:
                entry = expected.setdefault(
                    _key(sample.labels), {**sample.labels, **dict.fromkeys(QUERY_VALUES)}
                )
                entry[sample.name] = sample.value
    return expected


def test_messages_carry_the_pass_values_field_by_field(
    pg: PostgresServer, broker: KafkaBroker, clean_pushgateway: Pushgateway
) -> None:
    environ = _environ(pg, clean_pushgateway, KAFKA_SERVER=broker.bootstrap)
    runtime = Runtime.from_environ(environ)
    assert runtime.settings.kafka is not None
    stream = QueryStream(runtime.settings.kafka)
    try:
        result = runtime.collect(30.0)
        outcome = push_and_stream(PushgatewaySink(runtime.settings.pushgateway), stream, result)
    finally:
        stream.close()
        close(runtime)  # the session's PostgreSQL is shared: leave no session behind
    assert outcome is not None and outcome.up, outcome

    expected = _expected_statements(result)
    messages = broker.read_json("pgsql_query_message")
    assert len(messages) == len(expected) > 1
    for message in messages:
        assert set(message) == MESSAGE_FIELDS
        assert message["env_name"] == ENV_NAME
        assert message["target"] == "orders-db"
        assert message["tags"] == ["pgsql"]
        assert message["timestamp"].endswith("Z")
        want = expected[_key(message)]
        assert message["query"] == want["query"]
        for name in QUERY_VALUES:
            assert message[name] == want[name], name
    probe = [m for m in messages if "kafka_probe WHERE id >" in m["query"]]
    assert len(probe) == 1
    assert probe[0]["query"] == "SELECT count(*), pg_sleep($2) FROM kafka_probe WHERE id > $1"
    assert probe[0]["database"] == DB
    assert probe[0]["user"] == pg.superuser
    assert probe[0]["pg_query_calls"] == PROBE_CALLS
    assert type(probe[0]["pg_query_calls"]) is int
    assert probe[0]["pg_query_rows"] == PROBE_CALLS

    # The metrics went out too, and the stream's health among the collector's own series.
    pushed = clean_pushgateway.samples(JOB, "orders-db")
    assert pushed[("pg_up", frozenset())] == 1.0
    health = clean_pushgateway.samples(JOB, "collector")
    assert health[("middleware_collector_up", frozenset({("source", "kafka")}))] == 1.0
    assert health[(MESSAGES_SENT, frozenset())] == float(len(expected))
    assert [name for name, _ in health if name == "middleware_collector_failure"] == []


def test_broker_down_metrics_still_pushed_and_failure_reported(
    pg: PostgresServer, clean_pushgateway: Pushgateway
) -> None:
    gone = KafkaBroker().start()
    address = gone.bootstrap
    gone.stop()  # nothing listens there any more
    environ = child_env(
        _environ(pg, clean_pushgateway, KAFKA_SERVER=address, KAFKA_TIMEOUT_SECONDS="1")
    )
    done = subprocess.run(
        [sys.executable, "-m", "middleware_monitoring", "collect", "--push", "--budget", "20"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    pushed = clean_pushgateway.samples(JOB, "orders-db")
    assert pushed[("pg_up", frozenset())] == 1.0
    calls = {
        dict(labels)["query"]: value
        for (name, labels), value in pushed.items()
        if name == "pg_query_calls" and dict(labels)["database"] == DB
    }
    assert calls["SELECT count(*), pg_sleep($2) FROM kafka_probe WHERE id > $1"] == PROBE_CALLS
    assert (
        clean_pushgateway.samples(JOB, "collector")[
            ("middleware_pass_targets", frozenset({("state", "up")}))
        ]
        == 1.0
    )

    health = clean_pushgateway.samples(JOB, "collector")
    assert health[("middleware_collector_up", frozenset({("source", "kafka")}))] == 0.0
    assert (
        health[
            (
                "middleware_collector_failure",
                frozenset({("source", "kafka"), ("reason", "unreachable")}),
            )
        ]
        == 1.0
    )
    assert health[(MESSAGES_SENT, frozenset())] == 0.0

    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    down = [entry for entry in logged if entry["message"] == "query stream down"]
    assert len(down) == 1
    assert down[0]["reason"] == "unreachable"
    assert f"not delivered to {address} topic pgsql_query_message" in down[0]["detail"]


def test_broker_lost_while_warm_then_back(
    pg: PostgresServer, clean_pushgateway: Pushgateway
) -> None:
    """A warm producer whose broker goes away: that pass is reported down, the push is not
    affected, and a later pass against a broker that is back delivers again."""
    kafka = KafkaBroker().start()
    environ = _environ(
        pg, clean_pushgateway, KAFKA_SERVER=kafka.bootstrap, KAFKA_TIMEOUT_SECONDS="1"
    )
    runtime = Runtime.from_environ(environ)
    assert runtime.settings.kafka is not None
    stream = QueryStream(runtime.settings.kafka)
    sink = PushgatewaySink(runtime.settings.pushgateway)
    try:
        first = push_and_stream(sink, stream, runtime.collect(30.0))
        assert first is not None and first.up

        kafka.stop()
        clean_pushgateway.wipe()
        second = push_and_stream(sink, stream, runtime.collect(30.0))
        assert second is not None and not second.up
        # The warm producer cannot tell a dead broker from a slow one: not acknowledged in time.
        assert second.reason == "timeout"
        assert clean_pushgateway.samples(JOB, "orders-db")[("pg_up", frozenset())] == 1.0
        down = clean_pushgateway.samples(JOB, "collector")
        assert down[("middleware_collector_up", frozenset({("source", "kafka")}))] == 0.0

        kafka.start(port=kafka.port)  # back, on the same address
        third = push_and_stream(sink, stream, runtime.collect(30.0))
        assert third is not None and third.up, third
    finally:
        stream.close()
        close(runtime)
        kafka.stop()
