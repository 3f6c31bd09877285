"""A fleet for discovery to find in the moto stand-in: tagged RDS PostgreSQL instances, Aurora
PostgreSQL clusters with their instances, ElastiCache clusters (DocumentDB's answers come
from ``aws_front.AwsFront``), and CloudWatch datapoints for what the collector then asks.
(``tests.rds_names`` resolves moto's RDS endpoint names to this machine.)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from middleware_monitoring.cloudwatch import declarations
from middleware_monitoring.cloudwatch.declarations import Declaration, Stat

ACCOUNT = "123456789012"  # moto's account for the test credentials
REGION = "us-east-1"  # tests.standins.aws.DEFAULT_REGION
SECRET_TAG = "middleware-monitoring:secret-arn"


def tag_list(tags: Mapping[str, str] | None) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in (tags or {}).items()]


def create_rds_instance(
    rds: Any,
    identifier: str,
    *,
    tags: Mapping[str, str] | None = None,
    port: int = 5432,
    iam: bool = False,
    storage_gib: int = 20,
    backup_days: int = 7,
    instance_class: str = "db.t4g.medium",
) -> dict[str, Any]:
    answer: dict[str, Any] = rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        Engine="postgres",
        EngineVersion="16.4",
        DBInstanceClass=instance_class,
        AllocatedStorage=storage_gib,
        MasterUsername="master",
        MasterUserPassword="master-password-1",
        Port=port,
        EnableIAMDatabaseAuthentication=iam,
        BackupRetentionPeriod=backup_days,
        Tags=tag_list(tags),
    )["DBInstance"]
    return answer


def create_aurora_cluster(
    rds: Any,
    identifier: str,
    *,
    members: tuple[str, ...],
    tags: Mapping[str, str] | None = None,
    port: int = 5432,
    iam: bool = False,
    backup_days: int = 1,
) -> dict[str, Any]:
    """The cluster, then its instances (the first one created is the writer)."""
    rds.create_db_cluster(
        DBClusterIdentifier=identifier,
        Engine="aurora-postgresql",
        EngineVersion="15.4",
        MasterUsername="master",
        MasterUserPassword="master-password-1",
        Port=port,
        EnableIAMDatabaseAuthentication=iam,
        BackupRetentionPeriod=backup_days,
        Tags=tag_list(tags),
    )
    for member in members:
        rds.create_db_instance(
            DBInstanceIdentifier=member,
            DBClusterIdentifier=identifier,
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
        )
    cluster: dict[str, Any] = rds.describe_db_clusters(DBClusterIdentifier=identifier)[
        "DBClusters"
    ][0]
    return cluster


def create_cache_cluster(
    elasticache: Any, identifier: str, *, tags: Mapping[str, str] | None = None
) -> None:
    elasticache.create_cache_cluster(
        CacheClusterId=identifier,
        Engine="redis",
        CacheNodeType="cache.t4g.small",
        NumCacheNodes=1,
        Tags=tag_list(tags),
    )


def declarations_of(kind: str, identifier: str, node: str | None = None) -> list[Declaration]:
    """What the collector asks CloudWatch for a discovered resource of ``kind``."""
    if kind == "rds_instance":
        return declarations.rds(identifier, "DBInstanceIdentifier")
    if kind == "aurora_cluster":
        return declarations.rds(identifier, "DBClusterIdentifier")
    if kind == "aurora_instance":
        return declarations.aurora_instance(identifier)
    if kind == "docdb_instance":
        return declarations.docdb_instance(identifier)
    if kind == "docdb_cluster":
        return declarations.docdb_cluster(identifier)
    return declarations.elasticache(identifier, node)


def seed(cloudwatch: Any, made: list[Declaration], now: float | None = None) -> dict[Stat, float]:
    """One datapoint per statistic, two minutes back (inside a pass's window), the demo's
    value for its metric; returns the values the collector must report."""
    from tests.standins.cloudwatch import DEMO_VALUES, put

    now = time.time() if now is None else now
    minute = int(now) // 60 * 60
    values: dict[Stat, float] = {}
    for declaration in made:
        stat = declaration.stat
        values[stat] = DEMO_VALUES[stat.metric]
    points: list[tuple[Stat, float, float]] = [
        (
            stat,
            minute - 115 if stat.period == 60 else (minute - 120) // 300 * 300,
            value,
        )
        for stat, value in values.items()
    ]
    put(cloudwatch, points)
    return values
