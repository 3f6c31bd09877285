"""The stand-in servers themselves work, so other failures point at the collector."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from tests.standins._process import StandinError
from tests.standins.aws import MotoServer
from tests.standins.postgres import PG_STAT_STATEMENTS_VERSION, PostgresServer
from tests.standins.prometheus import Prometheus
from tests.standins.pushgateway import Pushgateway


def test_pg_stat_statements_version_and_counts(pg_server: PostgresServer) -> None:
    db = f"standin_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(db)
    assert (
        pg_server.create_extension("pg_stat_statements", database=db)
        == (PG_STAT_STATEMENTS_VERSION[pg_server.version])
    )
    pg_server.create_role("standin_monitor", "monitor-pw", monitor=True)

    conn = pg_server.connect(user="standin_monitor", password="monitor-pw", database=db)
    try:
        server_version = conn.run("SHOW server_version_num")[0][0]
        assert int(server_version) // 10000 == pg_server.version
        for i in range(7):
            conn.run("SELECT :v::int + 1 AS standin_marker", v=i)
        rows = conn.run(
            "SELECT calls FROM pg_stat_statements"
            " WHERE query LIKE '%standin_marker%' AND query NOT LIKE '%pg_stat_statements%'"
            " AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        conn.close()
    assert rows == [[7]]


def test_postgres_without_pg_stat_statements() -> None:
    with PostgresServer(15, preload_pg_stat_statements=False) as pg:
        assert pg.execute_as_superuser("SHOW shared_preload_libraries") == [[""]]
        # The extension can be created but not read: what users meet on a fresh RDS
        # parameter group before the preload change is applied.
        pg.create_extension("pg_stat_statements")
        with pytest.raises(Exception, match="pg_stat_statements must be loaded"):
            pg.execute_as_superuser("SELECT count(*) FROM pg_stat_statements")


def test_postgres_start_failure_shows_log_tail() -> None:
    pg = PostgresServer(18, settings={"shared_buffers": "not-a-size"}, start_timeout=10)
    try:
        with pytest.raises(StandinError, match=r"(?s)exited with status.*shared_buffers"):
            pg.start()
        assert pg.pid is None
    finally:
        pg.cleanup()


def test_postgres_restart_keeps_data_and_port() -> None:
    # A server of its own: restarting the session's would cut other tests' kept connections.
    with PostgresServer(17) as pg:
        pg.execute_as_superuser("CREATE TABLE standin_restart (x int)")
        pg.execute_as_superuser("INSERT INTO standin_restart VALUES (7)")
        port = pg.port
        pg.restart()
        assert pg.port == port
        assert pg.execute_as_superuser("SELECT x FROM standin_restart") == [[7]]


def test_pushgateway_push_and_samples(clean_pushgateway: Pushgateway) -> None:
    pushgateway = clean_pushgateway
    registry = CollectorRegistry()
    gauge = Gauge("standin_value", "test value", ["database_name"], registry=registry)
    gauge.labels(database_name="db1").set(42.5)
    push_to_gateway(
        pushgateway.url, job="standin", grouping_key={"instance": "target-a"}, registry=registry
    )

    samples = pushgateway.samples("standin", "target-a")
    assert samples == {("standin_value", frozenset({("database_name", "db1")})): 42.5}
    assert pushgateway.samples("standin", "other-target") == {}
    meta = pushgateway.samples("standin", "target-a", include_meta=True)
    assert ("push_time_seconds", frozenset()) in meta
    assert any(
        g["labels"] == {"job": "standin", "instance": "target-a"} for g in pushgateway.groups()
    )

    pushgateway.wipe()
    assert pushgateway.samples("standin", "target-a") == {}


def test_moto_cloudwatch_round_trip(clean_moto: MotoServer) -> None:
    moto_server = clean_moto
    cw = moto_server.client("cloudwatch")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    dims = [{"Name": "DBInstanceIdentifier", "Value": "standin-db"}]
    cw.put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {"MetricName": "CPUUtilization", "Dimensions": dims, "Value": 0.0, "Timestamp": now},
        ],
    )
    resp = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "cpu",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/RDS",
                        "MetricName": "CPUUtilization",
                        "Dimensions": dims,
                    },
                    "Period": 60,
                    "Stat": "Average",
                },
            }
        ],
        StartTime=now - dt.timedelta(minutes=5),
        EndTime=now + dt.timedelta(minutes=1),
    )
    (result,) = resp["MetricDataResults"]
    assert result["Values"] == [0.0]

    env = moto_server.env()
    assert env["AWS_ENDPOINT_URL"] == moto_server.endpoint_url


@pytest.mark.slow
def test_prometheus_scrapes_pushed_value(pushgateway: Pushgateway, prometheus: Prometheus) -> None:
    registry = CollectorRegistry()
    Gauge("standin_scraped", "test value", registry=registry).set(7)
    push_to_gateway(
        pushgateway.url, job="standin-prom", grouping_key={"instance": "t1"}, registry=registry
    )
    result = prometheus.wait_for('standin_scraped{job="standin-prom",instance="t1"}', timeout=60)
    assert [r["value"][1] for r in result] == ["7"]


def test_moto_env_points_plain_boto3_clients_at_moto(
    clean_moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    for key, value in clean_moto.env().items():
        monkeypatch.setenv(key, value)
    # No endpoint_url argument: code under test builds its clients this way.
    sm = boto3.session.Session().client("secretsmanager")
    arn = sm.create_secret(Name="standin/pg", SecretString='{"password": "x"}')["ARN"]
    assert clean_moto.client("secretsmanager").describe_secret(SecretId=arn)["Name"] == "standin/pg"
