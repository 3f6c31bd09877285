"""The CloudWatch catalogue, the plan (500 queries per call) and the time window."""

from __future__ import annotations

import pytest

from middleware_monitoring.cloudwatch import declarations
from middleware_monitoring.cloudwatch.declarations import Stat
from middleware_monitoring.cloudwatch.fetch import Window, plan, queries, window
from middleware_monitoring.emf import UNITS
from middleware_monitoring.redis import info as redis_info

# SPEC 3.3, 3.5, 3.6, 13, 18 plus the documented Aurora extra: series -> (namespace, metric, stat,
# period). Written out by hand so a change to the catalogue has to change this table too.
CONTRACT = {
    "pg_storage_disk_space": ("AWS/RDS", "FreeStorageSpace", "Average", 60),
    "pg_cpu_utilization": ("AWS/RDS", "CPUUtilization", "Average", 60),
    "pg_memory_utilization": ("AWS/RDS", "FreeableMemory", "Average", 60),
    "pg_network_throughput": ("AWS/RDS", "NetworkTransmitThroughput", "Average", 60),
    "pg_read_iops": ("AWS/RDS", "ReadIOPS", "Average", 60),
    "mongo_cpu_utilization": ("AWS/DocDB", "CPUUtilization", "Average", 60),
    "mongo_freeable_memory": ("AWS/DocDB", "FreeableMemory", "Average", 60),
    "mongo_network_throughput": ("AWS/DocDB", "NetworkThroughput", "Average", 60),
    "mongo_read_latency": ("AWS/DocDB", "ReadLatency", "Average", 60),
    "mongo_write_latency": ("AWS/DocDB", "WriteLatency", "Average", 60),
    "mongo_volume_bytesused": ("AWS/DocDB", "VolumeBytesUsed", "Average", 300),
    # SPEC 18: read by the RDS and DocumentDB alert rules.
    "pg_burst_balance_percent": ("AWS/RDS", "BurstBalance", "Average", 60),
    "mongo_replica_lag": ("AWS/DocDB", "DBInstanceReplicaLag", "Average", 60),
    "mongo_volume_readiops": ("AWS/DocDB", "VolumeReadIOPs", "Average", 300),
    "mongo_volume_wriateiops": ("AWS/DocDB", "VolumeWriteIOPs", "Average", 300),
    "redis_network_bandwidth_inallowance_exceeded": (
        "AWS/ElastiCache",
        "NetworkBandwidthInAllowanceExceeded",
        "Sum",
        60,
    ),
    "redis_network_bandwidthOut_allowance_exceeded": (
        "AWS/ElastiCache",
        "NetworkBandwidthOutAllowanceExceeded",
        "Sum",
        60,
    ),
    "redis_network_conntrack_allowance_exceeded": (
        "AWS/ElastiCache",
        "NetworkConntrackAllowanceExceeded",
        "Sum",
        60,
    ),
    "redis_network_packetsPerSecond_allowance_exceeded": (
        "AWS/ElastiCache",
        "NetworkPacketsPerSecondAllowanceExceeded",
        "Sum",
        60,
    ),
    # SPEC 16: DB load, per instance (absent without Performance Insights).
    "pg_db_load": ("AWS/RDS", "DBLoad", "Average", 60),
    "pg_db_load_cpu": ("AWS/RDS", "DBLoadCPU", "Average", 60),
    "pg_db_load_non_cpu": ("AWS/RDS", "DBLoadNonCPU", "Average", 60),
    # SPEC 13.
    "redis_engine_cpu_utilization": ("AWS/ElastiCache", "EngineCPUUtilization", "Average", 60),
    "redis_cpu_utilization": ("AWS/ElastiCache", "CPUUtilization", "Average", 60),
    "redis_database_memory_usage_percentage": (
        "AWS/ElastiCache",
        "DatabaseMemoryUsagePercentage",
        "Average",
        60,
    ),
    "redis_curr_connections": ("AWS/ElastiCache", "CurrConnections", "Average", 60),
    "redis_evictions": ("AWS/ElastiCache", "Evictions", "Sum", 60),
    "redis_cache_hit_rate": ("AWS/ElastiCache", "CacheHitRate", "Average", 60),
    "redis_replication_lag_seconds": ("AWS/ElastiCache", "ReplicationLag", "Average", 60),
    "redis_freeable_memory_bytes": ("AWS/ElastiCache", "FreeableMemory", "Average", 60),
    "redis_network_in_bytes": ("AWS/ElastiCache", "NetworkBytesIn", "Sum", 60),
    "redis_network_out_bytes": ("AWS/ElastiCache", "NetworkBytesOut", "Sum", 60),
}


def _table(made: list[declarations.Declaration]) -> dict[str, tuple[str, str, str, int]]:
    return {
        d.output: (d.stat.namespace, d.stat.metric, d.stat.statistic, d.stat.period) for d in made
    }


def test_all_32_contract_series_with_metric_statistic_and_period() -> None:
    made = [
        *declarations.rds("pg-1", "DBInstanceIdentifier"),
        *declarations.docdb_instance("docdb-1"),
        *declarations.docdb_cluster("docdb-c"),
        *declarations.elasticache("redis-001"),
    ]
    assert len(made) == 32
    assert _table(made) == CONTRACT


def test_aurora_instance_has_neither_free_storage_nor_burst_balance() -> None:
    assert [d.output for d in declarations.aurora_instance("aurora-1-a")] == [
        "pg_cpu_utilization",
        "pg_memory_utilization",
        "pg_network_throughput",
        "pg_read_iops",
        "pg_db_load",
        "pg_db_load_cpu",
        "pg_db_load_non_cpu",
    ]


def test_elasticache_cloudwatch_names_never_collide_with_the_info_names() -> None:
    """Both kinds of series can sit on one target (a node's INFO and its CloudWatch
    metrics): a shared name would mix two meanings under one series."""
    cloudwatch = {d.output for d in declarations.elasticache("redis-001", "0001")}
    assert len(cloudwatch) == 14
    assert cloudwatch & redis_info.series_names() == set()


def test_elasticache_cloudwatch_units_are_the_ones_aws_publishes() -> None:
    by_metric = {
        d.stat.metric: UNITS[d.output].value for d in declarations.elasticache("redis-001")
    }
    assert {m: u for m, u in by_metric.items() if "Allowance" not in m} == {
        "EngineCPUUtilization": "Percent",
        "CPUUtilization": "Percent",
        "DatabaseMemoryUsagePercentage": "Percent",
        "CurrConnections": "Count",
        "Evictions": "Count",
        "CacheHitRate": "Percent",
        "ReplicationLag": "Seconds",
        "FreeableMemory": "Bytes",
        "NetworkBytesIn": "Bytes",
        "NetworkBytesOut": "Bytes",
    }


def test_in_and_out_allowance_are_not_swapped() -> None:
    """The older exporter exported NetworkBandwidthInAllowanceExceeded under the Out name."""
    by_output = {d.output: d.stat.metric for d in declarations.elasticache("redis-001")}
    assert by_output["redis_network_bandwidth_inallowance_exceeded"] == (
        "NetworkBandwidthInAllowanceExceeded"
    )
    assert by_output["redis_network_bandwidthOut_allowance_exceeded"] == (
        "NetworkBandwidthOutAllowanceExceeded"
    )


def test_dimensions_and_labels() -> None:
    rds = declarations.rds("pg-1", "DBInstanceIdentifier")[0]
    assert rds.stat.dimensions == (("DBInstanceIdentifier", "pg-1"),)
    assert rds.labels == ()
    instance = declarations.docdb_instance("docdb-1")[0]
    assert instance.stat.dimensions == (("DBInstanceIdentifier", "docdb-1"),)
    assert instance.labels == (("DocDB", "docdb-1"),)
    cluster = declarations.docdb_cluster("docdb-c")[0]
    assert cluster.stat.dimensions == (("DBClusterIdentifier", "docdb-c"),)
    assert cluster.labels == (("DocDB", "docdb-c"),)
    cache = declarations.elasticache("redis-001")[0]
    assert cache.stat.dimensions == (("CacheClusterId", "redis-001"),)
    assert cache.labels == (("ElastiCache", "redis-001"),)
    node = declarations.elasticache("redis-001", "0002")[0]
    assert node.stat.dimensions == (("CacheClusterId", "redis-001"), ("CacheNodeId", "0002"))
    assert node.labels == (("ElastiCache", "redis-001"), ("CacheNodeId", "0002"))


def test_aurora_cluster_has_no_free_storage_but_its_volume() -> None:
    made = declarations.rds("aurora-1", "DBClusterIdentifier")
    assert [d.output for d in made] == [
        "pg_cpu_utilization",
        "pg_memory_utilization",
        "pg_network_throughput",
        "pg_read_iops",
        "pg_volume_bytes_used",
    ]
    assert {d.stat.dimensions for d in made} == {(("DBClusterIdentifier", "aurora-1"),)}
    volume = made[-1].stat
    assert (volume.metric, volume.statistic, volume.period) == ("VolumeBytesUsed", "Average", 300)


def _stats(n: int) -> list[Stat]:
    return [
        Stat("AWS/ElastiCache", "M", (("CacheClusterId", f"c{i}"),), "Sum", 60) for i in range(n)
    ]


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(1, [1]), (22, [22]), (500, [500]), (501, [500, 1]), (600, [500, 100]), (1000, [500, 500])],
)
def test_plan_sends_at_most_500_queries_per_call(count: int, sizes: list[int]) -> None:
    assert [len(chunk) for chunk in plan(_stats(count))] == sizes


def test_plan_asks_once_for_a_statistic_declared_twice() -> None:
    stats = _stats(3)
    assert plan([stats[0], stats[1], stats[0], stats[2], stats[1]]) == [stats]
    assert plan([]) == []


def test_query_ids_are_positions_and_carry_no_user_text() -> None:
    built = queries(
        [Stat("AWS/DocDB", "CPUUtilization", (("DBInstanceIdentifier", "a-b.c"),), "Average", 60)]
    )
    assert built == [
        {
            "Id": "q0",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/DocDB",
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "a-b.c"}],
                },
                "Period": 60,
                "Stat": "Average",
            },
            "ReturnData": True,
        }
    ]


@pytest.mark.parametrize(
    ("now", "delay", "periods", "expected"),
    [
        # 08:00:30 with a 60 s delay: the newest whole minute is 07:58-07:59.
        (1_800_000_030, 60, {60, 300}, Window(1_799_998_800, 1_799_999_940)),
        # On the minute: the minute that just ended is complete, so it is included.
        (1_800_000_000, 0, {60}, Window(1_799_999_100, 1_800_000_000)),
        # Mid-minute without delay: the running minute is never asked for.
        (1_800_000_059, 0, {60}, Window(1_799_999_100, 1_800_000_000)),
    ],
)
def test_window_ends_on_a_whole_minute_and_starts_on_the_coarsest_period(
    now: float, delay: int, periods: set[int], expected: Window
) -> None:
    assert window(now, lookback=900, end_delay=delay, periods=periods) == expected
