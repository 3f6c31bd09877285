"""What the collector asks CloudWatch for: one typed declaration per series.

A ``Stat`` is the CloudWatch side (namespace, metric, dimensions, statistic, period) and is
what gets fetched and billed; a ``Declaration`` adds how its value is exported (series name,
help text, labels). Two declarations with the same ``Stat`` cost one query.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import MetricStatTypeDef

RDS: Final = "AWS/RDS"
DOCDB: Final = "AWS/DocDB"
ELASTICACHE: Final = "AWS/ElastiCache"
DOCDB_ELASTIC: Final = "AWS/DocDB-Elastic"

# AWS publishes most of these once a minute; the cluster-volume metrics every 5 minutes.
MINUTE: Final = 60
FIVE_MINUTES: Final = 300


@dataclass(frozen=True)
class Stat:
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    period: int

    # A pass looks each statistic up a dozen times (planning, state, answers, settling,
    # reading back): its hash is computed once, not from its five fields each time.
    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.namespace, self.metric, self.dimensions, self.statistic, self.period))

    @functools.cached_property
    def metric_stat(self) -> MetricStatTypeDef:
        """The query's MetricStat, made once: every pass asks it again (botocore only reads
        it; nothing may change it)."""
        return {
            "Metric": {
                "Namespace": self.namespace,
                "MetricName": self.metric,
                "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
            },
            "Period": self.period,
            "Stat": self.statistic,
        }

    def describe(self) -> str:
        """For logs and error details: ``AWS/RDS CPUUtilization{DBInstanceIdentifier=db1}``."""
        dims = ",".join(f"{name}={value}" for name, value in self.dimensions)
        return f"{self.namespace} {self.metric}{{{dims}}}"


@dataclass(frozen=True)
class Declaration:
    stat: Stat
    output: str
    documentation: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Series:
    """One row of the catalogue below: a CloudWatch metric and the series it feeds."""

    output: str
    metric: str
    statistic: str
    period: int
    documentation: str


# SPEC 3.3. FreeStorageSpace exists for RDS instances only; Aurora has a cluster volume.
# BurstBalance (SPEC 18: an alert rule reads it) too, and only for gp2 storage: elsewhere it
# has no datapoint and is counted missing.
_FREE_STORAGE: Final = Series(
    "pg_storage_disk_space", "FreeStorageSpace", "Average", MINUTE, "Free storage, bytes."
)
_BURST_BALANCE: Final = Series(
    "pg_burst_balance_percent",
    "BurstBalance",
    "Average",
    MINUTE,
    "I/O burst credits left on gp2 storage, percent (no datapoint on gp3, io1/io2).",
)
RDS_INSTANCE_SERIES: Final = (
    _FREE_STORAGE,
    Series("pg_cpu_utilization", "CPUUtilization", "Average", MINUTE, "CPU utilization, percent."),
    Series(
        "pg_memory_utilization",
        "FreeableMemory",
        "Average",
        MINUTE,
        "Freeable memory, bytes (the name is historical: the value is free memory).",
    ),
    Series(
        "pg_network_throughput",
        "NetworkTransmitThroughput",
        "Average",
        MINUTE,
        "Outgoing network traffic, bytes per second.",
    ),
    Series("pg_read_iops", "ReadIOPS", "Average", MINUTE, "Disk read operations per second."),
    _BURST_BALANCE,
)
# SPEC 16: DB load (average active sessions), per instance, published only while
# Performance Insights is on: without it they are absent, not missing (OPTIONAL_METRICS).
DB_LOAD_SERIES: Final = (
    Series(
        "pg_db_load",
        "DBLoad",
        "Average",
        MINUTE,
        "DB load: average active sessions (Performance Insights on).",
    ),
    Series(
        "pg_db_load_cpu",
        "DBLoadCPU",
        "Average",
        MINUTE,
        "DB load waiting on or using CPU: average active sessions.",
    ),
    Series(
        "pg_db_load_non_cpu",
        "DBLoadNonCPU",
        "Average",
        MINUTE,
        "DB load waiting on anything but CPU: average active sessions.",
    ),
)
# Metrics whose absence says something about the resource (a feature off), not about the
# collector: not counted in middleware_cloudwatch_metrics_missing.
OPTIONAL_METRICS: Final = frozenset((RDS, series.metric) for series in DB_LOAD_SERIES)
# What an Aurora instance and cluster share with an RDS instance.
AURORA_INSTANCE_SERIES: Final = tuple(
    s for s in RDS_INSTANCE_SERIES if s not in (_FREE_STORAGE, _BURST_BALANCE)
)
AURORA_CLUSTER_SERIES: Final = (
    *AURORA_INSTANCE_SERIES,
    Series(
        "pg_volume_bytes_used",
        "VolumeBytesUsed",
        "Average",
        FIVE_MINUTES,
        "Aurora cluster volume used, bytes.",
    ),
)

# SPEC 3.5, label DocDB = the id.
DOCDB_INSTANCE_SERIES: Final = (
    Series("mongo_cpu_utilization", "CPUUtilization", "Average", MINUTE, "CPU utilization, %."),
    Series("mongo_freeable_memory", "FreeableMemory", "Average", MINUTE, "Freeable memory, bytes."),
    Series(
        "mongo_network_throughput",
        "NetworkThroughput",
        "Average",
        MINUTE,
        "Network traffic in and out, bytes per second.",
    ),
    Series(
        "mongo_read_latency",
        "ReadLatency",
        "Average",
        MINUTE,
        "Disk read latency, ms (as DocumentDB publishes it).",
    ),
    Series(
        "mongo_write_latency",
        "WriteLatency",
        "Average",
        MINUTE,
        "Disk write latency, ms (as DocumentDB publishes it).",
    ),
    # SPEC 18 (an alert rule reads it); published for replica instances only.
    Series(
        "mongo_replica_lag",
        "DBInstanceReplicaLag",
        "Average",
        MINUTE,
        "How far this replica is behind the primary, ms (no datapoint on the primary).",
    ),
)
DOCDB_CLUSTER_SERIES: Final = (
    Series(
        "mongo_volume_bytesused",
        "VolumeBytesUsed",
        "Average",
        FIVE_MINUTES,
        "Cluster volume used, bytes.",
    ),
    Series(
        "mongo_volume_readiops",
        "VolumeReadIOPs",
        "Average",
        FIVE_MINUTES,
        "Billed read I/O operations on the cluster volume per 5 minutes.",
    ),
    # The misspelt name is what existing dashboards query.
    Series(
        "mongo_volume_wriateiops",
        "VolumeWriteIOPs",
        "Average",
        FIVE_MINUTES,
        "Billed write I/O operations on the cluster volume per 5 minutes.",
    ),
)

# SPEC 3.6, label ElastiCache = the id. The allowance metrics count packets shaped or dropped
# in a minute, hence Sum. The older exporter exported the In metric under the Out name: each
# name below is paired with its own metric, and a regression test holds that.
ELASTICACHE_ALLOWANCE_SERIES: Final = (
    Series(
        "redis_network_bandwidth_inallowance_exceeded",
        "NetworkBandwidthInAllowanceExceeded",
        "Sum",
        MINUTE,
        "Packets shaped because inbound bandwidth exceeded the instance's allowance.",
    ),
    Series(
        "redis_network_bandwidthOut_allowance_exceeded",
        "NetworkBandwidthOutAllowanceExceeded",
        "Sum",
        MINUTE,
        "Packets shaped because outbound bandwidth exceeded the instance's allowance.",
    ),
    Series(
        "redis_network_conntrack_allowance_exceeded",
        "NetworkConntrackAllowanceExceeded",
        "Sum",
        MINUTE,
        "Packets shaped because connection tracking exceeded the instance's allowance.",
    ),
    Series(
        "redis_network_packetsPerSecond_allowance_exceeded",
        "NetworkPacketsPerSecondAllowanceExceeded",
        "Sum",
        MINUTE,
        "Packets shaped because packets per second exceeded the instance's allowance.",
    ),
)
# SPEC 13: the metrics ElastiCache operators alarm on, per node. Named so that none collides
# with a redis_exporter name the INFO source uses (redis/info.py); a unit test holds that.
# Counts per minute (Evictions, network bytes) are Sum; levels are Average.
ELASTICACHE_ENGINE_SERIES: Final = (
    Series(
        "redis_engine_cpu_utilization",
        "EngineCPUUtilization",
        "Average",
        MINUTE,
        "CPU utilization of the engine's main thread, percent.",
    ),
    Series(
        "redis_cpu_utilization",
        "CPUUtilization",
        "Average",
        MINUTE,
        "CPU utilization of the whole host, percent.",
    ),
    Series(
        "redis_database_memory_usage_percentage",
        "DatabaseMemoryUsagePercentage",
        "Average",
        MINUTE,
        "Memory used by the engine as a percentage of its maxmemory.",
    ),
    Series(
        "redis_curr_connections",
        "CurrConnections",
        "Average",
        MINUTE,
        "Client connections, replicas excluded.",
    ),
    Series("redis_evictions", "Evictions", "Sum", MINUTE, "Keys evicted in the minute."),
    Series(
        "redis_cache_hit_rate",
        "CacheHitRate",
        "Average",
        MINUTE,
        "Key lookups that hit, as a percentage of all lookups.",
    ),
    Series(
        "redis_replication_lag_seconds",
        "ReplicationLag",
        "Average",
        MINUTE,
        "How far a replica is behind its primary, seconds (published for replicas only).",
    ),
    Series(
        "redis_freeable_memory_bytes",
        "FreeableMemory",
        "Average",
        MINUTE,
        "Free memory on the host, bytes.",
    ),
    Series(
        "redis_network_in_bytes",
        "NetworkBytesIn",
        "Sum",
        MINUTE,
        "Bytes the host read from the network in the minute.",
    ),
    Series(
        "redis_network_out_bytes",
        "NetworkBytesOut",
        "Sum",
        MINUTE,
        "Bytes the host sent to the network in the minute.",
    ),
)
ELASTICACHE_SERIES: Final = (*ELASTICACHE_ALLOWANCE_SERIES, *ELASTICACHE_ENGINE_SERIES)
# SPEC 18: DocumentDB Elastic clusters, per cluster (dimensions ClusterId and ClusterName),
# label cluster = the name. AWS documents DocumentDB's metrics as applying to elastic
# clusters too; an elastic cluster's CPU is published for its shards' primaries.
DOCDB_ELASTIC_SERIES: Final = (
    Series(
        "mongo_elastic_primary_cpu_utilization",
        "PrimaryInstanceCPUUtilization",
        "Average",
        MINUTE,
        "CPU utilization of the cluster's primary (writer) instances, percent.",
    ),
    Series(
        "mongo_elastic_connections",
        "DatabaseConnections",
        "Average",
        MINUTE,
        "Open connections to the cluster.",
    ),
    Series(
        "mongo_elastic_cursors_timed_out",
        "DatabaseCursorsTimedOut",
        "Sum",
        MINUTE,
        "Cursors that timed out in the minute.",
    ),
    Series(
        "mongo_elastic_volume_bytes_used",
        "VolumeBytesUsed",
        "Average",
        FIVE_MINUTES,
        "Storage used by the cluster, bytes.",
    ),
    Series(
        "mongo_elastic_opcounters_insert",
        "OpcountersInsert",
        "Sum",
        MINUTE,
        "Insert operations in the minute.",
    ),
    Series(
        "mongo_elastic_opcounters_query",
        "OpcountersQuery",
        "Sum",
        MINUTE,
        "Queries in the minute.",
    ),
    Series(
        "mongo_elastic_opcounters_update",
        "OpcountersUpdate",
        "Sum",
        MINUTE,
        "Update operations in the minute.",
    ),
    Series(
        "mongo_elastic_opcounters_delete",
        "OpcountersDelete",
        "Sum",
        MINUTE,
        "Delete operations in the minute.",
    ),
    Series(
        "mongo_elastic_read_iops",
        "ReadIOPS",
        "Average",
        MINUTE,
        "Disk read I/O operations per second.",
    ),
    Series(
        "mongo_elastic_write_iops",
        "WriteIOPS",
        "Average",
        MINUTE,
        "Disk write I/O operations per second.",
    ),
)


def _declare(
    namespace: str,
    dimensions: tuple[tuple[str, str], ...],
    catalogue: tuple[Series, ...],
    labels: tuple[tuple[str, str], ...] = (),
) -> list[Declaration]:
    return [
        Declaration(
            Stat(namespace, s.metric, dimensions, s.statistic, s.period),
            s.output,
            s.documentation,
            labels,
        )
        for s in catalogue
    ]


def rds(identifier: str, rds_type: str) -> list[Declaration]:
    """``rds_type`` is the dimension name: DBInstanceIdentifier or DBClusterIdentifier."""
    catalogue = (
        AURORA_CLUSTER_SERIES
        if rds_type == "DBClusterIdentifier"
        else RDS_INSTANCE_SERIES + DB_LOAD_SERIES
    )
    return _declare(RDS, ((rds_type, identifier),), catalogue)


def aurora_instance(identifier: str) -> list[Declaration]:
    """An Aurora cluster's member: the instance metrics but FreeStorageSpace (the cluster
    volume is the cluster's, VolumeBytesUsed)."""
    return _declare(
        RDS, (("DBInstanceIdentifier", identifier),), AURORA_INSTANCE_SERIES + DB_LOAD_SERIES
    )


def docdb_instance(identifier: str) -> list[Declaration]:
    return _declare(
        DOCDB,
        (("DBInstanceIdentifier", identifier),),
        DOCDB_INSTANCE_SERIES,
        (("DocDB", identifier),),
    )


def docdb_cluster(identifier: str) -> list[Declaration]:
    return _declare(
        DOCDB,
        (("DBClusterIdentifier", identifier),),
        DOCDB_CLUSTER_SERIES,
        (("DocDB", identifier),),
    )


def elasticache(cluster: str, node: str | None = None) -> list[Declaration]:
    """Per node when ``node`` is given (CloudWatch also publishes CacheClusterId+CacheNodeId);
    the node then becomes a ``CacheNodeId`` label so two nodes of one cluster stay apart."""
    dimensions: tuple[tuple[str, str], ...] = (("CacheClusterId", cluster),)
    labels: tuple[tuple[str, str], ...] = (("ElastiCache", cluster),)
    if node is not None:
        dimensions += (("CacheNodeId", node),)
        labels += (("CacheNodeId", node),)
    return _declare(ELASTICACHE, dimensions, ELASTICACHE_SERIES, labels)


def docdb_elastic(name: str, cluster_id: str) -> list[Declaration]:
    """A DocumentDB Elastic cluster: CloudWatch names it by ClusterId and ClusterName both."""
    return _declare(
        DOCDB_ELASTIC,
        (("ClusterId", cluster_id), ("ClusterName", name)),
        DOCDB_ELASTIC_SERIES,
        (("cluster", name),),
    )
