"""Performance Insights (SPEC 17) against the PI stand-in (every request checked against
botocore's model of the API) with discovery on moto: pg_pi_load and pg_pi_sql_load carry
exactly the newest minute of each group, the top 10 only, statements cut as pg_query_*'s;
one GetResourceMetrics per PostgreSQL instance and pass; an instance PI refuses fails this
source alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from middleware_monitoring.config import load_settings
from middleware_monitoring.model import PassResult, TargetResult
from middleware_monitoring.runtime import Runtime
from tests.helpers import Closer
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront
from tests.standins.discovered import ACCOUNT, REGION, create_aurora_cluster, create_rds_instance
from tests.standins.performance_insights import (
    PerformanceInsightsServer,
    Resource,
    Statement,
    WaitEvent,
)

pytestmark = pytest.mark.integration

NOW = 1_780_000_030.0  # 2026-05-28T20:27:10Z
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def pi() -> Iterator[PerformanceInsightsServer]:
    with PerformanceInsightsServer() as server:
        yield server


@pytest.fixture
def front(
    clean_moto: MotoServer, pi: PerformanceInsightsServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwsFront]:
    with AwsFront(clean_moto.endpoint_url) as made:
        for name, value in {**clean_moto.env(), **made.env(), **pi.env()}.items():
            monkeypatch.setenv(name, value)
        yield made


def series_of(found: TargetResult, prefix: str = "pg_pi_") -> Series:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in found.families
        for s in family.samples
        if s.name.startswith(prefix)
    }


def result_of(result: PassResult, target: str) -> TargetResult:
    return next(t for t in result.targets if t.target == target)


def wait(kind: str, name: str, value: float) -> Series:
    return {("pg_pi_load", (("wait_event", name), ("wait_event_type", kind))): value}


def sql(sql_id: str, statement: str, value: float) -> Series:
    return {("pg_pi_sql_load", (("sql_id", sql_id), ("statement", statement))): value}


def test_db_load_by_wait_event_and_statement_exact(
    clean_moto: MotoServer, front: AwsFront, pi: PerformanceInsightsServer, closer: Closer
) -> None:
    rds = clean_moto.client("rds")
    for name in ("orders-db", "billing-db"):
        create_rds_instance(rds, name)
    create_aurora_cluster(rds, "ledger", members=("ledger-1",))
    front.resource_ids.update(
        {"orders-db": "db-ORDERSDB", "billing-db": "db-BILLINGDB", "ledger-1": "db-LEDGER1"}
    )
    front.add_docdb_cluster(
        "sessions", "sessions-1", account=ACCOUNT, region=REGION, resource_id="db-SESSIONS1"
    )
    # Twelve wait events: only the ten largest are asked for and sent.
    quiet = [WaitEvent("Client", f"Event{n}", 0.01 * n) for n in range(1, 10)]
    pi.resources["db-ORDERSDB"] = Resource(
        wait_events=[
            WaitEvent("CPU", "CPU", 1.5),
            WaitEvent("IO", "DataFileRead", 0.75),
            WaitEvent("Lock", "transactionid", 0.25),
            *quiet,
        ],
        statements=[
            Statement("A1B2", "SELECT *\n  FROM orders\tWHERE id = ?", 1.25),
            Statement("C3D4", "UPDATE orders SET state = ? WHERE id = ? AND customer = ?", 0.5),
        ],
        # No load in the newest minute: the minute before is the value.
        quiet_now={"C3D4"},
    )
    pi.resources["db-LEDGER1"] = Resource(
        wait_events=[WaitEvent("LWLock", "WALWrite", 0.125)],
        statements=[Statement("E5F6", "INSERT INTO ledger VALUES (?, ?)", 0.0625)],
    )
    settings = load_settings(
        {
            **clean_moto.env(),
            **front.env(),
            **pi.env(),
            "PERFORMANCE_INSIGHTS": "true",
            "DISCOVER": "rds,aurora,docdb",
            "PG_QUERY_MAX_LENGTH": "40",
        }
    )
    runtime = closer(Runtime(settings))
    reads = runtime.builder.performance_insights
    assert reads is not None
    reads.clock = lambda: NOW
    result = runtime.collect(30.0)

    assert pi.refused == []
    assert series_of(result_of(result, "orders-db")) == {
        **wait("CPU", "CPU", 1.5),
        **wait("IO", "DataFileRead", 0.75),
        **wait("Lock", "transactionid", 0.25),
        **{k: v for e in quiet[2:] for k, v in wait("Client", e.name, e.load).items()},
        **sql("A1B2", "SELECT * FROM orders WHERE id = ?", 1.25),
        # Cut at PG_QUERY_MAX_LENGTH=40 after the whitespace is collapsed.
        **sql("C3D4", "UPDATE orders SET state = ? WHERE id = ?", 0.25),
    }
    assert series_of(result_of(result, "ledger-1")) == {
        **wait("LWLock", "WALWrite", 0.125),
        **sql("E5F6", "INSERT INTO ledger VALUES (?, ?)", 0.0625),
    }
    # DocumentDB and clusters: no Performance Insights source.
    for name in ("docdb:sessions-1", "ledger"):
        assert "performance_insights" not in [o.source for o in result_of(result, name).outcomes]
    billing = next(
        o for o in result_of(result, "billing-db").outcomes if o.source == "performance_insights"
    )
    assert (billing.up, billing.reason, billing.detail) == (
        False,
        "auth_failed",
        "GetResourceMetrics failed: NotAuthorizedException: The resource db-BILLINGDB is not "
        "authorized or does not exist",
    )
    # One call per PostgreSQL instance, both groupings in it, over the last five minutes.
    assert pi.calls == {"GetResourceMetrics": 3}
    assert reads.calls == 3
    asked = next(r for r in pi.requests if r["Identifier"] == "db-ORDERSDB")
    end = dt.datetime(2026, 5, 28, 20, 27, tzinfo=dt.UTC)
    assert asked == {
        "ServiceType": "RDS",
        "Identifier": "db-ORDERSDB",
        "MetricQueries": [
            {"Metric": "db.load.avg", "GroupBy": {"Group": "db.wait_event", "Limit": 10}},
            {"Metric": "db.load.avg", "GroupBy": {"Group": "db.sql_tokenized", "Limit": 10}},
        ],
        "StartTime": end - dt.timedelta(minutes=5),
        "EndTime": end,
        "PeriodInSeconds": 60,
    }


def test_the_stand_in_refuses_what_the_model_refuses(pi: PerformanceInsightsServer) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client(
        "pi",
        region_name="us-east-1",
        endpoint_url=pi.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    query = {"Metric": "db.load.avg", "GroupBy": {"Group": "db.wait_event", "Limit": 26}}
    with pytest.raises(ClientError) as raised:
        client.get_resource_metrics(
            ServiceType="RDS",
            Identifier="db-X",
            MetricQueries=[query],
            StartTime=dt.datetime(2026, 5, 28, tzinfo=dt.UTC),
            EndTime=dt.datetime(2026, 5, 28, 0, 5, tzinfo=dt.UTC),
        )
    assert raised.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert pi.refused == ["input.MetricQueries[0].GroupBy.Limit: 26, at most 25"]
