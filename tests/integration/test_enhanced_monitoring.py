"""Enhanced Monitoring (SPEC 17) against moto's CloudWatch Logs and RDS in server mode: with
discovery, every instance's rds_os_* series are exactly what its newest event says (RDS
PostgreSQL, Aurora PostgreSQL, DocumentDB); an instance without a stream is one log line and
not a failure; an old event sends only its age; a malformed one fails this source alone.
A configured id gets its DbiResourceId from one DescribeDBInstances, kept. One GetLogEvents
per instance and pass."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest

from middleware_monitoring.config import load_settings
from middleware_monitoring.insights.os_metrics import parse_event
from middleware_monitoring.model import PassResult, TargetResult
from middleware_monitoring.runtime import Runtime
from tests.helpers import Closer, log_records
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront
from tests.standins.discovered import ACCOUNT, REGION, create_aurora_cluster, create_rds_instance
from tests.standins.rdsosmetrics import aurora_postgres_event, put_event, rds_postgres_event
from tests.unit.test_os_metrics import series

pytestmark = pytest.mark.integration

# CloudWatch Logs refuses events older than 14 days: the events are of this run's time.
TAKEN = float(int(time.time()))
NOW = TAKEN + 30


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    with log_records(logging.INFO) as records:
        yield records


def runtime_of(closer: Closer, moto: MotoServer, front: AwsFront, **env: str) -> Runtime:
    settings = load_settings({**moto.env(), **front.env(), "ENHANCED_MONITORING": "true", **env})
    runtime = closer(Runtime(settings))
    assert runtime.builder.enhanced_monitoring is not None
    runtime.builder.enhanced_monitoring.clock = lambda: NOW
    return runtime


def result_of(result: PassResult, target: str) -> TargetResult:
    return next(t for t in result.targets if t.target == target)


def os_series(
    result: PassResult, target: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = result_of(result, target)
    return {key: value for key, value in series_of(found).items() if key[0].startswith("rds_os_")}


def series_of(found: TargetResult) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in found.families
        for s in family.samples
    }


def outcome(result: PassResult, target: str) -> tuple[bool, str | None]:
    found = result_of(result, target)
    em = next(o for o in found.outcomes if o.source == "enhanced_monitoring")
    return em.up, em.reason


def expected(event: dict[str, object]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The series the parser makes of ``event`` (its exact values are tests/unit's)."""
    return series(parse_event(json.dumps(event), now=NOW, processes=10))


def test_discovered_instances_carry_exactly_what_their_newest_event_says(
    clean_moto: MotoServer, front: AwsFront, closer: Closer, records: list[logging.LogRecord]
) -> None:
    rds, logs = clean_moto.client("rds"), clean_moto.client("logs")
    for name in ("orders-db", "billing-db", "audit-db"):
        create_rds_instance(rds, name)
    create_aurora_cluster(rds, "ledger", members=("ledger-1", "ledger-2"))
    # moto gives every instance one DbiResourceId: the front answers each its own.
    ids = {
        name: f"db-{name.upper().replace('-', '')}"
        for name in ("orders-db", "billing-db", "audit-db", "ledger-1", "ledger-2")
    }
    front.resource_ids.update(ids)
    orders, audit = ids["orders-db"], ids["audit-db"]
    front.add_docdb_cluster(
        "sessions", "sessions-1", account=ACCOUNT, region=REGION, resource_id="db-SESSIONS1"
    )
    # An older event first: the newest one is what counts.
    put_event(logs, orders, rds_postgres_event(orders, "orders-db", TAKEN - 60), TAKEN - 60)
    put_event(logs, orders, rds_postgres_event(orders, "orders-db", TAKEN), TAKEN)
    put_event(logs, audit, rds_postgres_event(audit, "audit-db", TAKEN - 600), TAKEN - 600)
    ledger1 = aurora_postgres_event(ids["ledger-1"], "ledger-1", TAKEN)
    put_event(logs, ids["ledger-1"], ledger1, TAKEN)
    put_event(logs, ids["ledger-2"], "RDS OS metrics", TAKEN)
    sessions = rds_postgres_event("db-SESSIONS1", "sessions-1", TAKEN)
    put_event(logs, "db-SESSIONS1", sessions, TAKEN)

    runtime = runtime_of(closer, clean_moto, front, DISCOVER="rds,aurora,docdb")
    em = runtime.builder.enhanced_monitoring
    assert em is not None
    result = runtime.collect(30.0)

    assert os_series(result, "orders-db") == expected(
        rds_postgres_event(orders, "orders-db", TAKEN)
    )
    assert os_series(result, "ledger-1") == expected(ledger1)
    assert os_series(result, "docdb:sessions-1") == expected(sessions)
    assert os_series(result, "audit-db") == {("rds_os_sample_age_seconds", ()): 630.0}
    assert os_series(result, "billing-db") == {}
    assert os_series(result, "ledger-2") == {}
    # Clusters are no instances: no Enhanced Monitoring source at all.
    assert [o.source for o in result_of(result, "ledger").outcomes] == ["inventory", "cloudwatch"]
    assert {name: outcome(result, name) for name in ids | {"docdb:sessions-1": ""}} == {
        "orders-db": (True, None),
        "billing-db": (True, None),
        "audit-db": (True, None),
        "ledger-1": (True, None),
        "ledger-2": (False, "malformed_event"),
        "docdb:sessions-1": (True, None),
    }
    failure = next(
        o for o in result_of(result, "ledger-2").outcomes if o.source == "enhanced_monitoring"
    )
    assert failure.detail == (
        f"the newest event of log stream {ids['ledger-2']} is not an Enhanced Monitoring event: "
        "not JSON (Expecting value at character 0)"
    )
    # One GetLogEvents per instance.
    assert em.calls == 6

    said = [(r.getMessage(), getattr(r, "target", None)) for r in records]
    assert said.count(("Enhanced Monitoring off", "billing-db")) == 1
    assert said.count(("Enhanced Monitoring event too old", "audit-db")) == 1
    detail = next(r for r in records if r.getMessage() == "Enhanced Monitoring off").__dict__
    assert detail["detail"] == (
        f"no events in log stream {ids['billing-db']} of log group RDSOSMetrics: turn Enhanced "
        "Monitoring on for the instance (MonitoringInterval) to get rds_os_* series"
    )

    # A second pass: one more read each, nothing said again.
    runtime.collect(30.0)
    assert em.calls == 12
    said = [(r.getMessage(), getattr(r, "target", None)) for r in records]
    assert said.count(("Enhanced Monitoring off", "billing-db")) == 1
    assert said.count(("Enhanced Monitoring event too old", "audit-db")) == 1


def test_a_configured_id_is_described_once_and_an_unknown_one_fails_alone(
    clean_moto: MotoServer, front: AwsFront, closer: Closer
) -> None:
    rds, logs = clean_moto.client("rds"), clean_moto.client("logs")
    create_rds_instance(rds, "orders-db")
    orders = front.resource_ids["orders-db"] = "db-ORDERSDB"
    put_event(logs, orders, rds_postgres_event(orders, "orders-db", TAKEN), TAKEN)
    runtime = runtime_of(
        closer,
        clean_moto,
        front,
        AWS_RDS_INSTANCE_ID="orders-db",
        AWS_MONGO_INSTANCE_INFO='{"DBInstanceIdentifier": ["gone-docdb"]}',
    )
    first = runtime.collect(30.0)
    second = runtime.collect(30.0)
    want = expected(rds_postgres_event(orders, "orders-db", TAKEN))
    assert os_series(first, "orders-db") == want
    assert os_series(second, "orders-db") == want
    # One Describe per configured instance, kept; the unknown one is asked again next pass.
    assert front.calls_snapshot()["DescribeDBInstances"] == 3
    assert runtime.builder.resource_ids.calls == 3
    assert outcome(second, "docdb:gone-docdb") == (False, "not_found")
    gone = next(
        o
        for o in result_of(second, "docdb:gone-docdb").outcomes
        if o.source == "enhanced_monitoring"
    )
    assert gone.detail == (
        "DescribeDBInstances knows no instance 'gone-docdb' (region us-east-1): check its id"
    )


def test_off_by_default_and_only_for_instances(
    clean_moto: MotoServer, front: AwsFront, closer: Closer
) -> None:
    settings = load_settings({**clean_moto.env(), "AWS_RDS_INSTANCE_ID": "orders-db"})
    runtime = closer(Runtime(settings))
    assert runtime.builder.enhanced_monitoring is None
    assert [s.name for t in runtime.targets for s in t.sources] == ["cloudwatch"]
    runtime = runtime_of(
        closer,
        clean_moto,
        front,
        AWS_RDS_INSTANCE_ID="ledger",
        AWS_RDS_TYPE="DBClusterIdentifier",
    )
    assert [s.name for t in runtime.targets for s in t.sources] == ["cloudwatch"]
