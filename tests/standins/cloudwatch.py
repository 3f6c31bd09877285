"""CloudWatch data for the moto stand-in: a small fleet's metrics at known timestamps.

``seed_cloudwatch(endpoint_url, fleet)`` puts, for every metric the collector asks about for
that fleet, three datapoints into the last few minutes: the newest one carries the value the
collector must report (``expected`` values), the older ones are larger, so a collector that
took the largest or the first point instead of the newest would show it. ``fleet_env`` gives
the environment variables that make the collector ask for exactly that fleet.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from middleware_monitoring.cloudwatch import declarations
from middleware_monitoring.cloudwatch.declarations import Declaration, Stat
from tests.standins.aws import DEFAULT_REGION

# Plausible newest values per CloudWatch metric name (the demo shows these).
DEMO_VALUES: dict[str, float] = {
    "FreeStorageSpace": 18_253_611_008.0,
    "CPUUtilization": 12.5,
    "FreeableMemory": 1_342_177_280.0,
    "NetworkTransmitThroughput": 52_428.8,
    "ReadIOPS": 3.25,
    "VolumeBytesUsed": 5_368_709_120.0,
    "NetworkThroughput": 20_480.0,
    "ReadLatency": 0.52,  # DocumentDB publishes milliseconds
    "WriteLatency": 1.25,
    "VolumeReadIOPs": 1200.0,
    "VolumeWriteIOPs": 340.0,
    "NetworkBandwidthInAllowanceExceeded": 0.0,
    "NetworkBandwidthOutAllowanceExceeded": 4.0,
    "NetworkConntrackAllowanceExceeded": 0.0,
    "NetworkPacketsPerSecondAllowanceExceeded": 1.0,
    "EngineCPUUtilization": 23.5,
    "DatabaseMemoryUsagePercentage": 41.25,
    "CurrConnections": 57.0,
    "Evictions": 3.0,
    "CacheHitRate": 97.5,
    "ReplicationLag": 0.125,
    "NetworkBytesIn": 1_048_576.0,
    "NetworkBytesOut": 4_194_304.0,
    "BurstBalance": 98.5,
    "DBInstanceReplicaLag": 12.0,  # milliseconds
    # Average active sessions (Performance Insights on).
    "DBLoad": 1.75,
    "DBLoadCPU": 1.25,
    "DBLoadNonCPU": 0.5,
}


@dataclass(frozen=True)
class Fleet:
    """What the demo monitors: ids as a user would put them in the environment."""

    rds_instance: str | None = "demo-postgres"
    rds_type: str = "DBInstanceIdentifier"
    docdb_instances: tuple[str, ...] = ("demo-docdb-1", "demo-docdb-2")
    docdb_clusters: tuple[str, ...] = ("demo-docdb",)
    elasticache: tuple[str, ...] = ("demo-redis-001",)
    values: dict[str, float] = field(default_factory=lambda: dict(DEMO_VALUES))

    def declarations(self) -> list[Declaration]:
        made: list[Declaration] = []
        if self.rds_instance:
            made += declarations.rds(self.rds_instance, self.rds_type)
        for i in self.docdb_instances:
            made += declarations.docdb_instance(i)
        for i in self.docdb_clusters:
            made += declarations.docdb_cluster(i)
        for i in self.elasticache:
            made += declarations.elasticache(i)
        return made


def fleet_env(fleet: Fleet) -> dict[str, str]:
    """AWS_RDS_* (only used together with the PG_* variables), AWS_MONGO_INSTANCE_INFO and
    AWS_ELASTICACHE_INSTANCE_INFO for the fleet."""
    env: dict[str, str] = {}
    if fleet.rds_instance:
        env["AWS_RDS_INSTANCE_ID"] = fleet.rds_instance
        env["AWS_RDS_TYPE"] = fleet.rds_type
    if fleet.docdb_instances or fleet.docdb_clusters:
        env["AWS_MONGO_INSTANCE_INFO"] = json.dumps(
            {
                "DBInstanceIdentifier": list(fleet.docdb_instances),
                "DBClusterIdentifier": list(fleet.docdb_clusters),
            }
        )
    if fleet.elasticache:
        env["AWS_ELASTICACHE_INSTANCE_INFO"] = json.dumps(
            {"CacheClusterId": list(fleet.elasticache)}
        )
    return env


def datapoint(stat: Stat, at: float, value: float) -> dict[str, Any]:
    """One PutMetricData entry for ``stat`` at Unix time ``at``."""
    return {
        "MetricName": stat.metric,
        "Dimensions": [{"Name": n, "Value": v} for n, v in stat.dimensions],
        "Timestamp": dt.datetime.fromtimestamp(at, dt.UTC),
        "Value": value,
    }


def put(client: Any, points: list[tuple[Stat, float, float]]) -> None:
    """Put (stat, unix time, value) points, grouped per namespace."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for stat, at, value in points:
        by_namespace.setdefault(stat.namespace, []).append(datapoint(stat, at, value))
    for namespace, data in by_namespace.items():
        for i in range(0, len(data), 500):  # PutMetricData takes at most 1000 items
            client.put_metric_data(Namespace=namespace, MetricData=data[i : i + 500])


def seed_cloudwatch(
    endpoint_url: str,
    fleet: Fleet | None = None,
    *,
    now: float | None = None,
    region: str = DEFAULT_REGION,
) -> dict[Stat, float]:
    """Seed the stand-in at ``endpoint_url``; returns each statistic's expected value.

    The newest point lies two minutes back, inside the window of a pass run in the next few
    minutes with the default 60 s end delay; the 5-minute metrics sit on 5-minute marks.
    """
    import boto3  # deferred: ~125 ms import

    fleet = fleet or Fleet()
    now = time.time() if now is None else now
    client = boto3.client(
        "cloudwatch",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    minute = int(now) // 60 * 60
    expected: dict[Stat, float] = {}
    points: list[tuple[Stat, float, float]] = []
    for declaration in fleet.declarations():
        stat = declaration.stat
        if stat in expected:
            continue
        value = fleet.values[stat.metric]
        expected[stat] = value
        newest = minute - 120 + 5 if stat.period == 60 else (minute - 120) // 300 * 300
        for age, older_value in ((0, value), (stat.period, value + 100.0), (2 * stat.period, 7.0)):
            points.append((stat, newest - age, older_value))
    put(client, points)
    return expected
