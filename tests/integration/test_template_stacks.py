"""Stacks as deployed (SPEC 14): template.yaml resolved as CloudFormation resolves it for
one parameter set (tests/template_render.py), and the handler of the artifact `sam build`
made run with exactly that environment, once per schedule with that schedule's own event, in
a fresh process each (a cold start), against the local servers. Every target of the stack
lands where the stack sends its values, the collector's own series carry the stack's name
(the deployment identity), and nothing the template sets by default turns a kind on.

Lambda's own variables (region, credentials) are added; so are the endpoints of the local
AWS stand-ins, which is how these tests reach moto instead of AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.deployed import FILE_TARGETS, SamArtifact, cold_start
from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD
from tests.standins.aws_front import AwsFront
from tests.standins.discovered import create_rds_instance, declarations_of, seed
from tests.standins.docdb import DocDBServer
from tests.standins.postgres import PostgresServer
from tests.standins.prometheus import Prometheus
from tests.standins.pushgateway import Pushgateway
from tests.standins.redis import TOKEN, RedisServer
from tests.template_render import Stack, render

pytestmark = pytest.mark.integration

# Kept quick: the cold start's QPS sample window is not what these tests are about.
QUICK = "PG_QPS_SAMPLE_SECONDS=0"

Series = dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]


def job_series(pushgateway: Pushgateway, job: str) -> Series:
    """The job's series as Prometheus would scrape them (honor_labels), by ``instance``,
    whatever the grouping of the Pushgateway's groups."""
    out: Series = {}
    for family in text_string_to_metric_families(pushgateway.metrics_text()):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.pop("job", None) != job or sample.name.startswith("push_"):
                continue
            instance = labels.pop("instance", "")
            # The labels of the Pushgateway's grouping key beside job (docs/sinks.md).
            labels.pop("collector", None)
            labels.pop("shard", None)
            out.setdefault(instance, {})[(sample.name, frozenset(labels.items()))] = float(
                sample.value
            )
    return out


def assert_landed(series: Series, stack: Stack, targets: set[str]) -> None:
    """Every target with every source up, and the collector's own series under the stack's
    name (each shard's)."""
    for target in targets:
        assert target in series, f"{target} not in {sorted(series)}"
        up = {labels: v for (name, labels), v in series[target].items() if name == "pg_up"}
        sources = {
            dict(labels)["source"]: value
            for (name, labels), value in series[target].items()
            if name == "middleware_collector_up"
        }
        assert sources and set(sources.values()) == {1.0}, (target, sources, up)
    collector = {
        instance
        for instance, samples in series.items()
        if any(name == "middleware_pass_duration_seconds" for name, _ in samples)
    }
    # The deployment identity: the stack's name (each shard's, when sharded).
    assert any(
        instance == stack.name or instance.startswith(f"{stack.name}-shard-")
        for instance in collector
    ), f"no collector series of {stack.name!r} in {sorted(collector)}"


def deploy(artifact: SamArtifact, stack: Stack, lambda_env: dict[str, str]) -> None:
    """Each schedule fires once, each on a new function instance."""
    assert stack.events, "the stack has no schedule"
    for event in stack.events:
        invocation = cold_start(artifact, stack.environment, [event], lambda_env=lambda_env)
        (outcome,) = invocation.outcomes
        assert outcome["targets_down"] == [], invocation.log
        assert invocation.outside == [], invocation.outside
        assert invocation.compiled == [], invocation.compiled


@pytest.fixture
def gateway(pushgateway: Pushgateway, request: pytest.FixtureRequest) -> Iterator[str]:
    """A job of this test's own on the session Pushgateway, removed afterwards."""
    job = "stack-" + request.node.name.removeprefix("test_")[:40].replace("[", "-").rstrip("]")
    yield job
    pushgateway.delete_job(job)


def pushing(pushgateway: Pushgateway, job: str, **parameters: str) -> dict[str, str]:
    return {
        "PushgatewayUrl": pushgateway.url,
        "PushgatewayJob": job,
        "ExtraSettings": QUICK,
        **parameters,
    }


def pg_parameters(pg: PostgresServer, name: str) -> dict[str, str]:
    return {
        "PgHost": pg.host,
        "PgPort": str(pg.port),
        "PgUser": MONITOR,
        "PgPassword": MONITOR_PASSWORD,
        "PgDbName": APP_DB,
        "PgSslMode": "disable",
        "PgTargetName": name,
    }


def targets_document(pg: PostgresServer, redis: RedisServer, prefix: str, pgs: int = 1) -> str:
    return json.dumps(
        {
            "postgres": [
                {
                    "name": f"{prefix}-pg-{i}",
                    "host": pg.host,
                    "port": pg.port,
                    "dbname": APP_DB,
                    "user": MONITOR,
                    "password": MONITOR_PASSWORD,
                    "sslmode": "disable",
                }
                for i in range(pgs)
            ],
            "elasticache": [
                {
                    "name": f"{prefix}-redis",
                    "host": redis.host,
                    "port": redis.port,
                    "password": TOKEN,
                }
            ],
        }
    )


def test_pg_host_only(sam_artifact, fleet_servers, pushgateway, gateway):
    pg, _ = fleet_servers
    stack = render(pushing(pushgateway, gateway, **pg_parameters(pg, "host-pg")), stack_name="pg")
    deploy(sam_artifact, stack, {"AWS_REGION": "eu-west-1"})
    series = job_series(pushgateway, gateway)
    assert_landed(series, stack, {"host-pg"})
    assert series["host-pg"][("pg_up", frozenset())] == 1.0


def test_targets_file_only(sam_artifact, fleet_servers, pushgateway, gateway):
    stack = render(pushing(pushgateway, gateway, TargetsFile="targets.yaml"), stack_name="file")
    assert "PG_IAM_AUTH" not in stack.environment
    deploy(sam_artifact, stack, {"AWS_REGION": "eu-west-1"})
    series = job_series(pushgateway, gateway)
    assert_landed(series, stack, set(FILE_TARGETS))
    assert series["file-redis"][("redis_up", frozenset())] == 1.0


def test_targets_parameter_only(sam_artifact, fleet_servers, clean_moto, pushgateway, gateway):
    pg, redis = fleet_servers
    # A SecureString encrypted with a customer-managed key (SecretsKmsKeyArn grants its use).
    key = clean_moto.client("kms").create_key(Description="monitoring")["KeyMetadata"]
    clean_moto.client("ssm").put_parameter(
        Name="/mm/targets",
        Type="SecureString",
        KeyId=key["KeyId"],
        Value=targets_document(pg, redis, "param"),
    )
    stack = render(
        pushing(pushgateway, gateway, TargetsParameter="/mm/targets", SecretsKmsKeyArn=key["Arn"]),
        stack_name="param",
        region=clean_moto.region,
    )
    deploy(sam_artifact, stack, clean_moto.env())
    assert_landed(job_series(pushgateway, gateway), stack, {"param-pg-0", "param-redis"})


def test_s3_targets_only(sam_artifact, fleet_servers, clean_moto, pushgateway, gateway):
    pg, redis = fleet_servers
    s3 = clean_moto.client("s3")
    s3.create_bucket(Bucket="fleet-config")
    s3.put_object(
        Bucket="fleet-config",
        Key="mm/targets.json",
        Body=targets_document(pg, redis, "s3").encode(),
    )
    stack = render(
        pushing(pushgateway, gateway, TargetsS3Uri="s3://fleet-config/mm/targets.json"),
        stack_name="objects",
        region=clean_moto.region,
    )
    deploy(sam_artifact, stack, clean_moto.env())
    series = job_series(pushgateway, gateway)
    assert_landed(series, stack, {"s3-pg-0", "s3-redis"})
    source = frozenset({("source", "s3://fleet-config/mm/targets.json")})
    assert series["objects"][("middleware_targets_source_up", source)] == 1.0


def test_discovery_only(clean_moto, sam_artifact, pushgateway, gateway):
    with AwsFront(clean_moto.endpoint_url) as front:
        create_rds_instance(clean_moto.client("rds"), "found-db")
        seed(clean_moto.client("cloudwatch"), declarations_of("rds_instance", "found-db"))
        stack = render(
            pushing(pushgateway, gateway, Discover="rds"),
            stack_name="disc",
            region=clean_moto.region,
        )
        deploy(sam_artifact, stack, {**clean_moto.env(), **front.env()})
    series = job_series(pushgateway, gateway)
    assert_landed(series, stack, {"found-db"})
    assert series["found-db"][("middleware_collector_up", frozenset({("source", "cloudwatch")}))]


def test_documentdb_only(sam_artifact, pushgateway, gateway):
    with DocDBServer() as docdb:
        info = {**docdb.mongo_info(), "name": "orders-docdb"}
        stack = render(
            pushing(pushgateway, gateway, MongoInfo=json.dumps(info)), stack_name="docdb"
        )
        deploy(sam_artifact, stack, {"AWS_REGION": "eu-west-1"})
    series = job_series(pushgateway, gateway)
    assert_landed(series, stack, {"orders-docdb"})
    assert series["orders-docdb"][("mongo_up", frozenset())] == 1.0


def test_elasticache_ids_only(clean_moto, sam_artifact, pushgateway, gateway):
    seed(clean_moto.client("cloudwatch"), declarations_of("elasticache", "cache-001"))
    stack = render(
        pushing(pushgateway, gateway, ElastiCacheInstanceInfo='{"CacheClusterId": ["cache-001"]}'),
        stack_name="cache",
        region=clean_moto.region,
    )
    deploy(sam_artifact, stack, clean_moto.env())
    assert_landed(job_series(pushgateway, gateway), stack, {"elasticache:cache-001"})


def test_remote_write(sam_artifact, fleet_servers, remote_write_receiver: Prometheus):
    pg, _ = fleet_servers
    stack = render(
        {
            "MetricsSink": "remote_write",
            "RemoteWriteUrl": remote_write_receiver.remote_write_url,
            "PushgatewayJob": "stack-remote-write",
            "ExtraSettings": QUICK,
            **pg_parameters(pg, "rw-pg"),
        },
        stack_name="rw",
    )
    deploy(sam_artifact, stack, {"AWS_REGION": "eu-west-1"})
    up = remote_write_receiver.wait_for('pg_up{job="stack-remote-write", instance="rw-pg"}')
    assert [sample["value"][1] for sample in up] == ["1"]
    own = remote_write_receiver.wait_for(
        'middleware_pass_duration_seconds{job="stack-remote-write"}'
    )
    assert {sample["metric"]["instance"] for sample in own} == {"rw"}


def test_four_shards_collect_every_target_once(
    sam_artifact, fleet_servers, clean_moto, pushgateway, gateway
):
    pg, redis = fleet_servers
    clean_moto.client("ssm").put_parameter(
        Name="/fleet/targets", Type="String", Value=targets_document(pg, redis, "fleet", pgs=7)
    )
    stack = render(
        pushing(pushgateway, gateway, TargetsParameter="/fleet/targets", Shards="4"),
        stack_name="fleet",
        region=clean_moto.region,
    )
    assert stack.events == [{"shard": i, "shards": 4} for i in range(4)]
    deploy(sam_artifact, stack, clean_moto.env())
    series = job_series(pushgateway, gateway)
    assert_landed(series, stack, {*(f"fleet-pg-{i}" for i in range(7)), "fleet-redis"})


def test_two_stacks_on_one_pushgateway_and_job_keep_each_others_targets(
    sam_artifact, fleet_servers, clean_moto, pushgateway, gateway
):
    """dev and prod (their own targets parameter each) push to one job; each cold-starts
    twice, in turn: neither overwrites nor deletes the other's series."""
    pg, redis = fleet_servers
    ssm = clean_moto.client("ssm")
    stacks = {}
    for name in ("dev", "prod"):
        ssm.put_parameter(
            Name=f"/{name}/targets", Type="String", Value=targets_document(pg, redis, name)
        )
        stacks[name] = render(
            pushing(pushgateway, gateway, TargetsParameter=f"/{name}/targets"),
            stack_name=name,
            region=clean_moto.region,
        )
    assert (
        stacks["dev"].environment["PUSHGATEWAY_JOB"]
        == stacks["prod"].environment["PUSHGATEWAY_JOB"]
    )
    for _ in range(2):
        for stack in stacks.values():
            deploy(sam_artifact, stack, clean_moto.env())
    series = job_series(pushgateway, gateway)
    for name, stack in stacks.items():
        assert_landed(series, stack, {f"{name}-pg-0", f"{name}-redis"})


def test_emf_stale_alarms_watch_what_each_shard_prints(sam_artifact, fleet_servers):
    """Each shard's stale alarm (no Prometheus rule reads CloudWatch) names exactly the
    namespace, metric and dimension set of the pass timestamp that shard's pass prints: an
    alarm on any other dimension set would watch a metric nobody writes, and alarm forever."""
    pg, _ = fleet_servers
    stack = render(
        {
            "MetricsSink": "emf",
            "EmfNamespace": "Fleet",
            "Shards": "2",
            "ExtraSettings": QUICK,
            **pg_parameters(pg, "emf-pg"),
        },
        stack_name="emf-fleet",
    )
    alarms = {
        name: resource["Properties"]
        for name, resource in stack.resources.items()
        if name.endswith("StaleAlarm")
    }
    watched = {
        (
            alarm["Namespace"],
            alarm["MetricName"],
            frozenset((d["Name"], d["Value"]) for d in alarm["Dimensions"]),
        )
        for alarm in alarms.values()
    }
    printed = set()
    for event in stack.events:
        invocation = cold_start(
            sam_artifact, stack.environment, [event], lambda_env={"AWS_REGION": "eu-west-1"}
        )
        for line in invocation.log.splitlines():
            if not line.startswith("{") or "_aws" not in line:
                continue
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                names = {metric["Name"] for metric in directive["Metrics"]}
                if "middleware_pass_timestamp_seconds" not in names:
                    continue
                for dimensions in directive["Dimensions"]:
                    printed.add(
                        (
                            directive["Namespace"],
                            "middleware_pass_timestamp_seconds",
                            frozenset((name, document[name]) for name in dimensions),
                        )
                    )
    assert len(alarms) == 2
    assert (
        printed
        == watched
        == {
            (
                "Fleet",
                "middleware_pass_timestamp_seconds",
                frozenset({("instance", "emf-fleet"), ("shard", str(shard))}),
            )
            for shard in range(2)
        }
    )
