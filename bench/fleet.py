"""The fleets the benchmark collects from, as plain data (JSON between the bench and its
worker processes), and how each side (the product, the baseline) is built from one.

A fleet of n targets repeats the reference fleet's mix, in this order: a PostgreSQL target
(with its RDS CloudWatch metrics), a DocumentDB target (serverStatus), two DocumentDB
instances, a DocumentDB cluster and an ElastiCache cluster (CloudWatch). n = 6 is the
reference fleet: 22 CloudWatch queries. ``rds_instances`` are CloudWatch-only RDS
ids (the floors' CloudWatch-only fleet), in the targets document's ``cloudwatch`` list.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("postgres", "docdb", "docdb-instance", "docdb-instance", "docdb-cluster", "elasticache")
REFERENCE_TARGETS = len(KINDS)
MAX_QUERIES_PER_CALL = 500


@dataclass(frozen=True)
class PgServerRef:
    host: str
    port: int
    user: str
    password: str
    database: str = "postgres"


@dataclass(frozen=True)
class DocServerRef:
    """A MONGO_INFO object (connect + parameter) reaching the stand-in."""

    mongo_info: dict[str, Any]


@dataclass
class FleetSpec:
    postgres: list[dict[str, Any]] = field(default_factory=list)
    docdb: list[dict[str, Any]] = field(default_factory=list)
    docdb_instances: list[str] = field(default_factory=list)
    docdb_clusters: list[str] = field(default_factory=list)
    elasticache: list[str] = field(default_factory=list)
    rds_instances: list[str] = field(default_factory=list)
    # AWS stand-in endpoint, region, credentials; anything else the collector reads.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def targets(self) -> int:
        return (
            len(self.postgres)
            + len(self.docdb)
            + len(self.docdb_instances)
            + len(self.docdb_clusters)
            + len(self.elasticache)
            + len(self.rds_instances)
        )

    @property
    def cloudwatch_queries(self) -> int:
        """Distinct statistics the product declares for the fleet (what one pass requests)."""
        return len({declaration.stat for declaration in cloudwatch_declarations(self)})

    @property
    def floor_calls(self) -> int:
        return math.ceil(self.cloudwatch_queries / MAX_QUERIES_PER_CALL)

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> FleetSpec:
        return cls(**json.loads(text))


def scaled(
    n: int, pg_servers: list[PgServerRef], doc_server: DocServerRef, env: dict[str, str]
) -> FleetSpec:
    """n targets in the reference mix; PostgreSQL targets take the servers in turn."""
    spec = FleetSpec(env=dict(env))
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "postgres":
            server = pg_servers[len(spec.postgres) % len(pg_servers)]
            spec.postgres.append({**asdict(server), "name": f"pg-{i}", "rds_id": f"bench-rds-{i}"})
        elif kind == "docdb":
            spec.docdb.append({**doc_server.mongo_info, "name": f"docdb-{i}"})
        elif kind == "docdb-instance":
            spec.docdb_instances.append(f"bench-docdb-{i}")
        elif kind == "docdb-cluster":
            spec.docdb_clusters.append(f"bench-docdb-cluster-{i}")
        else:
            spec.elasticache.append(f"bench-redis-{i}")
    return spec


def collector_env(spec: FleetSpec) -> dict[str, str]:
    """The environment that configures the product for the fleet: the first PostgreSQL
    target as PG_* (the older exporter's way), the others in a targets file (TARGETS_FILE)."""
    env = dict(spec.env)
    if spec.postgres:
        first = spec.postgres[0]
        env.update(
            PG_DATABASE=first["host"],
            PG_PORT=str(first["port"]),
            PG_USER=first["user"],
            PG_PWD=first["password"],
            PG_DBNAME=first["database"],
            PG_TARGET_NAME=first["name"],
        )
        if first.get("rds_id"):
            env.update(AWS_RDS_INSTANCE_ID=first["rds_id"], AWS_RDS_TYPE="DBInstanceIdentifier")
    document: dict[str, Any] = {}
    if len(spec.postgres) > 1:
        document["postgres"] = [
            {
                "name": pg["name"],
                "host": pg["host"],
                "port": pg["port"],
                "user": pg["user"],
                "password": pg["password"],
                "dbname": pg["database"],
                **({"rds_id": pg["rds_id"]} if pg.get("rds_id") else {}),
            }
            for pg in spec.postgres[1:]
        ]
    if spec.rds_instances:
        document["cloudwatch"] = {"rds_instances": list(spec.rds_instances)}
    if document:
        text = json.dumps(document, sort_keys=True)
        path = Path(tempfile.gettempdir()) / (
            f"bench-targets-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
        )
        path.write_text(text)
        env["TARGETS_FILE"] = str(path)
    if spec.docdb:
        env["MONGO_INFO"] = json.dumps(spec.docdb)
    if spec.docdb_instances or spec.docdb_clusters:
        env["AWS_MONGO_INSTANCE_INFO"] = json.dumps(
            {
                "DBInstanceIdentifier": spec.docdb_instances,
                "DBClusterIdentifier": spec.docdb_clusters,
            }
        )
    if spec.elasticache:
        env["AWS_ELASTICACHE_INSTANCE_INFO"] = json.dumps({"CacheClusterId": spec.elasticache})
    return env


def build_runtime(spec: FleetSpec) -> Any:
    """The product's Runtime for the fleet, built from the environment as in Lambda."""
    from middleware_monitoring.runtime import Runtime

    return Runtime.from_environ(collector_env(spec))


def close_runtime(runtime: Any) -> None:
    runtime.close()


def build_baseline(spec: FleetSpec, *, sleep: bool = True) -> Any:
    from bench.baseline_exporter import (
        BaselineExporter,
        CwMetric,
        DocTarget,
        PgTarget,
        older_metric,
    )

    metrics: list[CwMetric] = []

    def add(namespace: str, dims: tuple[tuple[str, str], ...], catalogue: Any) -> None:
        metrics.extend(
            CwMetric(
                namespace, older_metric(s.output, s.metric), dims, s.statistic, s.period, s.output
            )
            for s in catalogue
        )

    from middleware_monitoring.cloudwatch import declarations as d

    pg_targets = [
        PgTarget(p["name"], p["host"], p["port"], p["user"], p["password"], p["database"])
        for p in spec.postgres
    ]
    for rds_id in [p["rds_id"] for p in spec.postgres if p.get("rds_id")] + spec.rds_instances:
        add(d.RDS, (("DBInstanceIdentifier", rds_id),), d.RDS_INSTANCE_SERIES + d.DB_LOAD_SERIES)
    doc_targets = [
        DocTarget(
            doc["name"],
            doc["connect"]["address"],
            int(doc["connect"]["port"]),
            doc["connect"]["user"],
            doc["connect"]["pwd"],
            tuple(doc["parameter"].items()),
        )
        for doc in spec.docdb
    ]
    for i in spec.docdb_instances:
        add(d.DOCDB, (("DBInstanceIdentifier", i),), d.DOCDB_INSTANCE_SERIES)
    for i in spec.docdb_clusters:
        add(d.DOCDB, (("DBClusterIdentifier", i),), d.DOCDB_CLUSTER_SERIES)
    for i in spec.elasticache:
        add(d.ELASTICACHE, (("CacheClusterId", i),), d.ELASTICACHE_SERIES)
    return BaselineExporter(
        pg_targets,
        doc_targets,
        metrics,
        region=spec.env.get("AWS_REGION", "us-east-1"),
        endpoint_url=spec.env.get("AWS_ENDPOINT_URL"),
        sleep=sleep,
    )


def cloudwatch_declarations(spec: FleetSpec) -> list[Any]:
    """Everything the product declares for the fleet (what the stand-in gets seeded with)."""
    from middleware_monitoring.cloudwatch import declarations as d

    made: list[Any] = []
    for rds_id in [p["rds_id"] for p in spec.postgres if p.get("rds_id")] + spec.rds_instances:
        made += d.rds(rds_id, "DBInstanceIdentifier")
    for i in spec.docdb_instances:
        made += d.docdb_instance(i)
    for i in spec.docdb_clusters:
        made += d.docdb_cluster(i)
    for i in spec.elasticache:
        made += d.elasticache(i)
    return made
