"""CloudWatch end to end against moto in server mode: datapoints put at known timestamps,
the collector's real client (endpoint, timeouts, retries) and the whole pass."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from middleware_monitoring.cloudwatch import CloudWatchBatch, declarations
from middleware_monitoring.cloudwatch.declarations import Stat
from middleware_monitoring.cloudwatch.fetch import window
from middleware_monitoring.config import load_settings
from middleware_monitoring.model import PassResult, Target
from middleware_monitoring.runner import run_pass
from middleware_monitoring.runtime import Runtime
from tests.helpers import Closer
from tests.standins.aws import MotoServer
from tests.standins.cloudwatch import Fleet, fleet_env, put, seed_cloudwatch
from tests.standins.postgres import PostgresServer
from tests.unit.cloudwatch_helpers import cloudwatch_targets

FLEET_ENV = {
    "AWS_MONGO_INSTANCE_INFO": (
        '{"DBInstanceIdentifier": ["docdb-1", "docdb-2"], "DBClusterIdentifier": ["docdb-c"]}'
    ),
    "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["redis-001"]}',
}
SELF = (
    "middleware_cloudwatch_getmetricdata_calls",
    "middleware_cloudwatch_metrics_requested",
    "middleware_cloudwatch_metrics_missing",
    "middleware_cloudwatch_metrics_failed",
)
NONE: frozenset[tuple[str, str]] = frozenset()
DOCDB1 = frozenset({("DocDB", "docdb-1")})
DOCDB2 = frozenset({("DocDB", "docdb-2")})
CLUSTER = frozenset({("DocDB", "docdb-c")})
REDIS = frozenset({("ElastiCache", "redis-001")})


@pytest.fixture
def aws(clean_moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Credentials come from boto3's usual chain (the process environment), as in Lambda."""
    for name, value in clean_moto.env().items():
        monkeypatch.setenv(name, value)
    return clean_moto


def _env(aws: MotoServer, **extra: str) -> dict[str, str]:
    return {**aws.env(), **FLEET_ENV, **extra}


def _series(result: PassResult) -> dict[tuple[str, str, frozenset[tuple[str, str]]], float]:
    return {
        (group.target, sample.name, frozenset(sample.labels.items())): sample.value
        for group in result.targets
        for family in group.families
        if not family.name.startswith(("middleware_collector_", "middleware_target_"))
        for sample in family.samples
    }


def _self(result: PassResult) -> dict[str, float]:
    return {f.name: f.samples[0].value for f in result.collector.families if f.name in SELF}


def _states(result: PassResult) -> dict[str, tuple[bool, str | None]]:
    return {
        t.target: (o.up, o.reason)
        for t in result.targets
        for o in t.outcomes
        if o.source == "cloudwatch"
    }


def _pass(batch: CloudWatchBatch, targets: list[Target]) -> PassResult:
    return run_pass(
        targets,
        deadline=time.monotonic() + 30,
        max_workers=4,
        collector_instance="collector",
        prefetches=[batch],
    )


@pytest.fixture
def now() -> float:
    return time.time()


def _minute_points(
    stat: Stat, newest_first: list[float], end: int
) -> list[tuple[Stat, float, float]]:
    """One point per minute bucket, the first given value in the newest complete minute."""
    return [(stat, end - 60 * (age + 1) + 7, value) for age, value in enumerate(newest_first)]


def _volume_points(
    stat: Stat, newest_first: list[float], end: int
) -> list[tuple[Stat, float, float]]:
    """One point per 5-minute mark, as AWS publishes the cluster-volume metrics."""
    newest = (end - 1) // 300 * 300
    return [(stat, newest - 300 * age, value) for age, value in enumerate(newest_first)]


def test_all_metrics_exact_values_and_labels(aws: MotoServer, now: float) -> None:
    settings = load_settings(_env(aws))
    assert settings.cloudwatch is not None
    batch = CloudWatchBatch(settings.cloudwatch, clock=lambda: now)
    targets = [
        Target("pg-1", [batch.source(declarations.rds("pg-1", "DBInstanceIdentifier"))]),
        *cloudwatch_targets(settings, batch),
    ]
    end = window(now, lookback=900, end_delay=60, periods={60, 300}).end
    # Newest first. Older points are larger where it matters: the newest must still win.
    minute_values: dict[tuple[str, str], list[float]] = {
        ("pg-1", "FreeStorageSpace"): [20_000_000_000.0, 30_000_000_000.0, 25_000_000_000.0],
        ("pg-1", "CPUUtilization"): [0.0, 95.0, 80.0],  # 0 is a value
        ("pg-1", "FreeableMemory"): [1_000_000_000.0, 2_000_000_000.0],
        ("pg-1", "NetworkTransmitThroughput"): [1234.5],
        ("pg-1", "ReadIOPS"): [3.0, 300.0, 30.0],
        ("pg-1", "BurstBalance"): [87.5, 10.0],
        ("docdb-1", "CPUUtilization"): [11.0, 99.0],
        ("docdb-1", "FreeableMemory"): [512.0, 4096.0],
        ("docdb-1", "NetworkThroughput"): [2048.0, 1.0],
        ("docdb-1", "ReadLatency"): [0.002, 0.5],
        ("docdb-1", "WriteLatency"): [0.003, 0.7],
        ("docdb-1", "DBInstanceReplicaLag"): [15.0, 9000.0],
        ("docdb-2", "CPUUtilization"): [22.0, 1.0],
        ("docdb-2", "FreeableMemory"): [256.0],
        ("docdb-2", "NetworkThroughput"): [0.0, 10.0],
        # docdb-2 ReadLatency: no datapoint at all -> absent and counted missing.
        ("docdb-2", "WriteLatency"): [0.004, 0.001],
        # docdb-2 DBInstanceReplicaLag: the primary has none -> absent and counted missing.
        ("redis-001", "NetworkBandwidthInAllowanceExceeded"): [5.0, 50.0],
        ("redis-001", "NetworkBandwidthOutAllowanceExceeded"): [6.0, 60.0],
        ("redis-001", "NetworkConntrackAllowanceExceeded"): [0.0, 70.0],
        ("redis-001", "NetworkPacketsPerSecondAllowanceExceeded"): [8.0, 80.0],
        ("redis-001", "EngineCPUUtilization"): [31.5, 99.0],
        ("redis-001", "CPUUtilization"): [7.25, 88.0],
        ("redis-001", "DatabaseMemoryUsagePercentage"): [64.0, 99.0],
        ("redis-001", "CurrConnections"): [42.0, 500.0],
        ("redis-001", "Evictions"): [0.0, 12.0],
        ("redis-001", "CacheHitRate"): [98.5, 10.0],
        # ReplicationLag: a primary has none -> absent and counted missing.
        ("redis-001", "FreeableMemory"): [2_147_483_648.0, 1.0],
        ("redis-001", "NetworkBytesIn"): [123_456.0, 1.0],
        ("redis-001", "NetworkBytesOut"): [654_321.0, 9e9],
    }
    volume_values: dict[str, list[float]] = {
        "VolumeBytesUsed": [10_000_000.0, 90_000_000.0],
        "VolumeReadIOPs": [1500.0, 9000.0, 100.0],
        "VolumeWriteIOPs": [0.0, 700.0],
    }
    points: list[tuple[Stat, float, float]] = []
    for stat in batch.stats:
        ident = stat.dimensions[0][1]
        if stat.period == 300:
            points += _volume_points(stat, volume_values[stat.metric], end)
        elif (ident, stat.metric) in minute_values:
            points += _minute_points(stat, minute_values[(ident, stat.metric)], end)
    # A point in the still-running minute (after the window's end) must not be taken.
    cpu = next(s for s in batch.stats if s.metric == "CPUUtilization" and s.namespace == "AWS/RDS")
    points.append((cpu, end + 5, 42.0))
    put(aws.client("cloudwatch"), points)

    result = _pass(batch, targets)

    assert _series(result) == {
        ("pg-1", "pg_storage_disk_space", NONE): 20_000_000_000.0,
        ("pg-1", "pg_cpu_utilization", NONE): 0.0,
        ("pg-1", "pg_memory_utilization", NONE): 1_000_000_000.0,
        ("pg-1", "pg_network_throughput", NONE): 1234.5,
        ("pg-1", "pg_read_iops", NONE): 3.0,
        ("pg-1", "pg_burst_balance_percent", NONE): 87.5,
        ("docdb:docdb-1", "mongo_cpu_utilization", DOCDB1): 11.0,
        ("docdb:docdb-1", "mongo_freeable_memory", DOCDB1): 512.0,
        ("docdb:docdb-1", "mongo_network_throughput", DOCDB1): 2048.0,
        ("docdb:docdb-1", "mongo_read_latency", DOCDB1): 0.002,
        ("docdb:docdb-1", "mongo_write_latency", DOCDB1): 0.003,
        ("docdb:docdb-1", "mongo_replica_lag", DOCDB1): 15.0,
        ("docdb:docdb-2", "mongo_cpu_utilization", DOCDB2): 22.0,
        ("docdb:docdb-2", "mongo_freeable_memory", DOCDB2): 256.0,
        ("docdb:docdb-2", "mongo_network_throughput", DOCDB2): 0.0,
        ("docdb:docdb-2", "mongo_write_latency", DOCDB2): 0.004,
        ("docdb-cluster:docdb-c", "mongo_volume_bytesused", CLUSTER): 10_000_000.0,
        ("docdb-cluster:docdb-c", "mongo_volume_readiops", CLUSTER): 1500.0,
        ("docdb-cluster:docdb-c", "mongo_volume_wriateiops", CLUSTER): 0.0,
        ("elasticache:redis-001", "redis_network_bandwidth_inallowance_exceeded", REDIS): 5.0,
        ("elasticache:redis-001", "redis_network_bandwidthOut_allowance_exceeded", REDIS): 6.0,
        ("elasticache:redis-001", "redis_network_conntrack_allowance_exceeded", REDIS): 0.0,
        ("elasticache:redis-001", "redis_network_packetsPerSecond_allowance_exceeded", REDIS): 8.0,
        ("elasticache:redis-001", "redis_engine_cpu_utilization", REDIS): 31.5,
        ("elasticache:redis-001", "redis_cpu_utilization", REDIS): 7.25,
        ("elasticache:redis-001", "redis_database_memory_usage_percentage", REDIS): 64.0,
        ("elasticache:redis-001", "redis_curr_connections", REDIS): 42.0,
        ("elasticache:redis-001", "redis_evictions", REDIS): 0.0,
        ("elasticache:redis-001", "redis_cache_hit_rate", REDIS): 98.5,
        ("elasticache:redis-001", "redis_freeable_memory_bytes", REDIS): 2_147_483_648.0,
        ("elasticache:redis-001", "redis_network_in_bytes", REDIS): 123_456.0,
        ("elasticache:redis-001", "redis_network_out_bytes", REDIS): 654_321.0,
    }
    assert _self(result) == {
        "middleware_cloudwatch_getmetricdata_calls": 1.0,
        # pg-1's DBLoad, DBLoadCPU and DBLoadNonCPU are asked too: absent without Performance
        # Insights, and not counted missing.
        "middleware_cloudwatch_metrics_requested": 38.0,
        "middleware_cloudwatch_metrics_missing": 3.0,
        "middleware_cloudwatch_metrics_failed": 0.0,
    }
    assert set(_states(result).values()) == {(True, None)}


def test_aurora_cluster_and_elasticache_node(aws: MotoServer, now: float) -> None:
    settings = load_settings(
        {
            **aws.env(),
            "AWS_ELASTICACHE_INSTANCE_INFO": (
                '{"CacheClusterId": [{"CacheClusterId": "redis-002", "CacheNodeId": "0001"}]}'
            ),
        }
    )
    assert settings.cloudwatch is not None
    batch = CloudWatchBatch(settings.cloudwatch, clock=lambda: now)
    targets = [
        Target("aurora-1", [batch.source(declarations.rds("aurora-1", "DBClusterIdentifier"))]),
        *cloudwatch_targets(settings, batch),
    ]
    end = window(now, lookback=900, end_delay=60, periods={60, 300}).end
    points: list[tuple[Stat, float, float]] = []
    for value, stat in enumerate(batch.stats, start=1):
        if stat.period == 300:
            points += _volume_points(stat, [float(value), 1e9], end)
        else:
            points += _minute_points(stat, [float(value), 1e9], end)
    # The same metric for the cluster as a whole must not be mixed into the node's series.
    cluster_wide = Stat(
        "AWS/ElastiCache",
        "NetworkBandwidthInAllowanceExceeded",
        (("CacheClusterId", "redis-002"),),
        "Sum",
        60,
    )
    points += _minute_points(cluster_wide, [999.0], end)
    put(aws.client("cloudwatch"), points)

    result = _pass(batch, targets)
    node = frozenset({("ElastiCache", "redis-002"), ("CacheNodeId", "0001")})
    assert _series(result) == {
        ("aurora-1", "pg_cpu_utilization", NONE): 1.0,
        ("aurora-1", "pg_memory_utilization", NONE): 2.0,
        ("aurora-1", "pg_network_throughput", NONE): 3.0,
        ("aurora-1", "pg_read_iops", NONE): 4.0,
        ("aurora-1", "pg_volume_bytes_used", NONE): 5.0,
        ("elasticache:redis-002:0001", "redis_network_bandwidth_inallowance_exceeded", node): 6.0,
        ("elasticache:redis-002:0001", "redis_network_bandwidthOut_allowance_exceeded", node): 7.0,
        ("elasticache:redis-002:0001", "redis_network_conntrack_allowance_exceeded", node): 8.0,
        (
            "elasticache:redis-002:0001",
            "redis_network_packetsPerSecond_allowance_exceeded",
            node,
        ): 9.0,
        ("elasticache:redis-002:0001", "redis_engine_cpu_utilization", node): 10.0,
        ("elasticache:redis-002:0001", "redis_cpu_utilization", node): 11.0,
        ("elasticache:redis-002:0001", "redis_database_memory_usage_percentage", node): 12.0,
        ("elasticache:redis-002:0001", "redis_curr_connections", node): 13.0,
        ("elasticache:redis-002:0001", "redis_evictions", node): 14.0,
        ("elasticache:redis-002:0001", "redis_cache_hit_rate", node): 15.0,
        ("elasticache:redis-002:0001", "redis_replication_lag_seconds", node): 16.0,
        ("elasticache:redis-002:0001", "redis_freeable_memory_bytes", node): 17.0,
        ("elasticache:redis-002:0001", "redis_network_in_bytes", node): 18.0,
        ("elasticache:redis-002:0001", "redis_network_out_bytes", node): 19.0,
    }


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


# The error body in each protocol botocore may pick for CloudWatch (it prefers JSON 1.0 in the
# pinned version; CBOR is the model's first choice): {"__type": "Throttling", ...}.
_THROTTLING = {
    "json": (
        b'{"__type": "Throttling", "message": "Rate exceeded"}',
        {"Content-Type": "application/x-amz-json-1.0"},
    ),
    "smithy-rpc-v2-cbor": (
        b"\xa2\x66__type\x6aThrottling\x67message\x6dRate exceeded",
        {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"},
    ),
}


def _throttle(client: Any, times: int | None, sent: list[int]) -> None:
    """Answer the first ``times`` attempts (all when None) of the client's GetMetricData with
    HTTP 400 Throttling before they leave, inside botocore's retry loop; the rest go to moto."""
    body, raw_headers = _THROTTLING[client.meta.service_model.resolved_protocol]
    headers = HTTPHeaders()
    for name, value in raw_headers.items():
        headers[name] = value

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        sent.append(1)
        if times is None or len(sent) <= times:
            return AWSResponse(request.url, 400, headers, _Body(body))
        return None

    client.meta.events.register_first("before-send.cloudwatch.GetMetricData", hook)


def _elasticache_batch(
    aws: MotoServer, now: float, **extra: str
) -> tuple[CloudWatchBatch, list[Target]]:
    settings = load_settings(
        {**aws.env(), "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["r"]}', **extra}
    )
    assert settings.cloudwatch is not None
    batch = CloudWatchBatch(settings.cloudwatch, clock=lambda: now)
    targets = cloudwatch_targets(settings, batch)
    end = window(now, lookback=900, end_delay=60, periods={60}).end
    put(
        aws.client("cloudwatch"),
        [p for stat in batch.stats for p in _minute_points(stat, [1.0], end)],
    )
    return batch, targets


def test_throttling_is_retried_by_botocore(aws: MotoServer, now: float) -> None:
    batch, targets = _elasticache_batch(aws, now)
    sent: list[int] = []
    _throttle(batch.client(), 2, sent)
    result = _pass(batch, targets)
    assert len(sent) == 3  # two throttled attempts, the third reached moto
    assert _states(result) == {"elasticache:r": (True, None)}
    assert len(_series(result)) == 14
    assert _self(result)["middleware_cloudwatch_getmetricdata_calls"] == 1.0


def test_throttling_beyond_the_retries_is_reported(aws: MotoServer, now: float) -> None:
    batch, targets = _elasticache_batch(aws, now, CLOUDWATCH_MAX_ATTEMPTS="2")
    sent: list[int] = []
    _throttle(batch.client(), None, sent)
    result = _pass(batch, targets)
    assert len(sent) == 2
    outcome = next(o for o in result.targets[0].outcomes if o.source == "cloudwatch")
    assert (outcome.up, outcome.reason, outcome.detail) == (
        False,
        "throttled",
        "14 of 14 CloudWatch metrics failed (NetworkBandwidthInAllowanceExceeded, "
        "NetworkBandwidthOutAllowanceExceeded, NetworkConntrackAllowanceExceeded, "
        "NetworkPacketsPerSecondAllowanceExceeded, EngineCPUUtilization, CPUUtilization, "
        "DatabaseMemoryUsagePercentage, CurrConnections, Evictions, CacheHitRate, "
        "ReplicationLag, FreeableMemory, NetworkBytesIn, NetworkBytesOut): GetMetricData "
        "failed after 2 attempts: Throttling: Rate exceeded",
    )
    assert _self(result)["middleware_cloudwatch_metrics_failed"] == 14.0


def test_cloudwatch_down_does_not_fail_the_pass(
    pg15: PostgresServer, monkeypatch: pytest.MonkeyPatch, moto_server: MotoServer, closer: Closer
) -> None:
    """Nothing listens on the endpoint: the CloudWatch sources are down, PostgreSQL is not."""
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    runtime = closer(
        Runtime.from_environ(
            {
                **pg15.collector_env(),
                "AWS_RDS_INSTANCE_ID": "pg-1",
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_CLOUDWATCH": "http://127.0.0.1:9",
                "CLOUDWATCH_MAX_ATTEMPTS": "1",
                "CLOUDWATCH_CONNECT_TIMEOUT_SECONDS": "1",
                "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["r"]}',
            }
        )
    )
    result = runtime.collect(20)
    outcomes = {(t.target, o.source): (o.up, o.reason) for t in result.targets for o in t.outcomes}
    assert outcomes == {
        ("pg-1", "postgres"): (True, None),
        ("pg-1", "cloudwatch"): (False, "unreachable"),
        ("elasticache:r", "cloudwatch"): (False, "unreachable"),
    }
    assert _self(result) == {
        "middleware_cloudwatch_getmetricdata_calls": 1.0,
        # pg-1: 6 + 3 DB load; the node: 14.
        "middleware_cloudwatch_metrics_requested": 23.0,
        "middleware_cloudwatch_metrics_missing": 0.0,
        "middleware_cloudwatch_metrics_failed": 23.0,
    }


def test_runtime_with_postgres_and_the_seeded_demo_fleet(
    aws: MotoServer, pg15: PostgresServer, closer: Closer
) -> None:
    """What `make demo` does: the seeding helper, Runtime.from_environ, one pass."""
    fleet = Fleet()
    expected = seed_cloudwatch(aws.endpoint_url, fleet)
    runtime = closer(
        Runtime.from_environ({**aws.env(), **pg15.collector_env(), **fleet_env(fleet)})
    )
    assert [t.name for t in runtime.targets] == [
        "demo-postgres",
        "docdb:demo-docdb-1",
        "docdb:demo-docdb-2",
        "docdb-cluster:demo-docdb",
        "elasticache:demo-redis-001",
    ]
    result = runtime.collect(20)
    got = _series(result)
    assert got[("demo-postgres", "pg_up", NONE)] == 1.0
    assert got[("demo-postgres", "pg_cpu_utilization", NONE)] == 12.5
    assert (
        got[
            (
                "docdb-cluster:demo-docdb",
                "mongo_volume_wriateiops",
                frozenset({("DocDB", "demo-docdb")}),
            )
        ]
        == 340.0
    )
    assert (
        got[
            (
                "elasticache:demo-redis-001",
                "redis_network_bandwidth_inallowance_exceeded",
                frozenset({("ElastiCache", "demo-redis-001")}),
            )
        ]
        == 0.0
    )
    outputs = {d.output for d in fleet.declarations()}
    assert len(expected) == 38
    assert sorted(v for k, v in got.items() if k[1] in outputs) == sorted(expected.values())
    assert _self(result)["middleware_cloudwatch_metrics_missing"] == 0.0
    assert _states(result) == {
        name: (True, None)
        for name in (
            "demo-postgres",
            "docdb:demo-docdb-1",
            "docdb:demo-docdb-2",
            "docdb-cluster:demo-docdb",
            "elasticache:demo-redis-001",
        )
    }
