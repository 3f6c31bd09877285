"""CloudWatch settings: the DocumentDB and ElastiCache ids (AWS_MONGO_INSTANCE_INFO,
AWS_ELASTICACHE_INSTANCE_INFO), an RDS id without PostgreSQL, the client's timeouts and
retries, the look-back window and how often each metric is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .aws import HERE, AwsLocation
from .env import EnvReader
from .postgres import PG_VARIABLES


@dataclass(frozen=True)
class ElastiCacheId:
    cluster: str
    # Set for clusters whose metrics are read per node (CacheClusterId + CacheNodeId).
    node: str | None = None


@dataclass(frozen=True)
class CloudWatchSettings:
    region: str | None
    # boto3's own override variables (AWS_ENDPOINT_URL_CLOUDWATCH, AWS_ENDPOINT_URL), read
    # from the same mapping as everything else: a local stand-in outside Lambda.
    endpoint_url: str | None
    lookback_seconds: int
    end_delay_seconds: int
    connect_timeout_seconds: float
    read_timeout_seconds: float
    max_attempts: int
    retry_mode: str
    docdb_instances: tuple[str, ...] = ()
    docdb_clusters: tuple[str, ...] = ()
    elasticache: tuple[ElastiCacheId, ...] = ()
    # AWS_RDS_INSTANCE_ID set without PostgreSQL: CloudWatch values only.
    rds_only: RdsId | None = None
    # CLOUDWATCH_INTERVAL_SECONDS: each metric is asked for at most this often (and never
    # more often than its own period); a whole number of minutes.
    interval_seconds: int = 60


@dataclass(frozen=True)
class RdsId:
    identifier: str
    dimension: str  # one of RDS_TYPES


@dataclass(frozen=True)
class CloudWatchTarget:
    """A target whose values all come from CloudWatch: the plain spec of one."""

    target_name: str
    # What it is, which sets its series and dimension (cloudwatch.declarations): rds_instance,
    # aurora_cluster, aurora_instance (discovered only: an Aurora cluster's member, without
    # FreeStorageSpace), docdb_instance, docdb_cluster, elasticache or docdb_elastic
    # (discovered only: a DocumentDB Elastic cluster).
    kind: str
    identifier: str
    # ElastiCache: read per node (CacheClusterId + CacheNodeId).
    node: str | None = None
    aws: AwsLocation = HERE
    origin: str = ""
    # DocumentDB Elastic (kind docdb_elastic, discovered only): the ClusterId dimension (the
    # last part of the cluster's ARN); ``identifier`` is its name (ClusterName).
    cluster_id: str | None = None


def cloudwatch_target_name(kind: str, identifier: str, node: str | None = None) -> str:
    """The instance of a CloudWatch-only target. The kind prefix keeps a DocumentDB instance
    and cluster of the same name (a common naming) in separate groups; an RDS id is named as
    AWS_RDS_INSTANCE_ID names the PostgreSQL target, so both forms agree."""
    if kind in ("rds_instance", "aurora_cluster", "aurora_instance"):
        return identifier
    prefix = {"docdb_instance": "docdb", "docdb_cluster": "docdb-cluster"}.get(kind, kind)
    return f"{prefix.replace('_', '-')}:{identifier}" + (f":{node}" if node else "")


def env_cloudwatch_targets(settings: CloudWatchSettings) -> list[CloudWatchTarget]:
    """The CloudWatch-only targets of AWS_RDS_INSTANCE_ID (without PG_*),
    AWS_MONGO_INSTANCE_INFO and AWS_ELASTICACHE_INSTANCE_INFO."""
    ids: list[tuple[str, str, str | None, str]] = []
    if settings.rds_only is not None:
        rds = settings.rds_only
        kind = "aurora_cluster" if rds.dimension == "DBClusterIdentifier" else "rds_instance"
        ids.append((kind, rds.identifier, None, "AWS_RDS_INSTANCE_ID"))
    mongo = "AWS_MONGO_INSTANCE_INFO"
    ids += [("docdb_instance", i, None, mongo) for i in settings.docdb_instances]
    ids += [("docdb_cluster", i, None, mongo) for i in settings.docdb_clusters]
    cache = "AWS_ELASTICACHE_INSTANCE_INFO"
    ids += [("elasticache", e.cluster, e.node, cache) for e in settings.elasticache]
    return [
        CloudWatchTarget(
            cloudwatch_target_name(kind, identifier, node), kind, identifier, node, origin=origin
        )
        for kind, identifier, node, origin in ids
    ]


RETRY_MODES: Final = ("standard", "adaptive")
_MONGO_IDS_EXAMPLE: Final = (
    '{"DBInstanceIdentifier": ["docdb-1", "docdb-2"], "DBClusterIdentifier": ["docdb-cluster"]}'
)
_ELASTICACHE_IDS_EXAMPLE: Final = (
    '{"CacheClusterId": ["staging-001", {"CacheClusterId": "prod-001", "CacheNodeId": "0001"}]}'
)


def _id_list(value: Any) -> list[Any] | None:
    """A JSON list of ids, or None when the value is not a list."""
    return value if isinstance(value, list) else None


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _mongo_ids(env: EnvReader) -> tuple[tuple[str, ...], tuple[str, ...]]:
    name = "AWS_MONGO_INSTANCE_INFO"
    value = env.json_value(name, _MONGO_IDS_EXAMPLE)
    if value is None:
        return (), ()
    keys = ("DBInstanceIdentifier", "DBClusterIdentifier")
    lists = {key: _id_list(value.get(key, [])) for key in keys} if isinstance(value, dict) else {}
    if (
        not isinstance(value, dict)
        or set(value) - set(keys)
        or any(ids is None or not all(_is_id(i) for i in ids) for ids in lists.values())
    ):
        env.problem(
            name,
            "expected an object with DBInstanceIdentifier and/or DBClusterIdentifier, each a "
            f"list of id strings, e.g. {_MONGO_IDS_EXAMPLE}",
        )
        return (), ()
    instances, clusters = (
        tuple(dict.fromkeys(i.strip() for i in lists[key] or [])) for key in keys
    )
    return instances, clusters


def _elasticache_ids(env: EnvReader) -> tuple[ElastiCacheId, ...]:
    name = "AWS_ELASTICACHE_INSTANCE_INFO"
    value = env.json_value(name, _ELASTICACHE_IDS_EXAMPLE)
    if value is None:
        return ()
    items = _id_list(value.get("CacheClusterId")) if isinstance(value, dict) else None
    ids: list[ElastiCacheId] = []
    for item in items or []:
        if _is_id(item):
            ids.append(ElastiCacheId(item.strip()))
        elif (
            isinstance(item, dict)
            and set(item) == {"CacheClusterId", "CacheNodeId"}
            and all(_is_id(v) for v in item.values())
        ):
            ids.append(ElastiCacheId(item["CacheClusterId"].strip(), item["CacheNodeId"].strip()))
        else:
            items = None
            break
    if items is None or set(value) != {"CacheClusterId"}:
        env.problem(
            name,
            "expected an object with CacheClusterId, a list of cluster ids (or of "
            '{"CacheClusterId": ..., "CacheNodeId": ...} objects for per-node metrics), '
            f"e.g. {_ELASTICACHE_IDS_EXAMPLE}",
        )
        return ()
    return tuple(dict.fromkeys(ids))


def _interval(env: EnvReader) -> int:
    name = "CLOUDWATCH_INTERVAL_SECONDS"
    value = env.integer(name, 60, 60, 3600)
    if value % 60:
        env.problem(name, f"expected whole minutes in seconds (60, 120, 300, ...), got {value}")
        return 60
    return value


def load_cloudwatch(env: EnvReader, rds_type: str) -> CloudWatchSettings:
    """The CloudWatch client's settings (every target kind may need them: the PG_* target's
    RDS id, targets files, discovery) and the CloudWatch-only ids of the environment.
    ``rds_type`` is AWS_RDS_TYPE, already checked."""
    # Without the PG_* variables the instance still gets its CloudWatch values, as a target
    # of its own; with them, the PostgreSQL settings carry the id.
    rds_only = None
    if env.has("AWS_RDS_INSTANCE_ID") and not any(env.has(name) for name in PG_VARIABLES):
        rds_only = RdsId(env.text("AWS_RDS_INSTANCE_ID") or "", rds_type)
    docdb_instances, docdb_clusters = _mongo_ids(env)
    elasticache = _elasticache_ids(env)
    endpoint_url = None
    for variable in ("AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL"):
        endpoint_url = env.http_url(variable)
        if endpoint_url is not None:
            break
    return CloudWatchSettings(
        region=env.aws_region(),
        endpoint_url=endpoint_url,
        lookback_seconds=env.integer("CLOUDWATCH_LOOKBACK_SECONDS", 900, 300, 86400),
        end_delay_seconds=env.integer("CLOUDWATCH_END_DELAY_SECONDS", 60, 0, 900),
        connect_timeout_seconds=env.number("CLOUDWATCH_CONNECT_TIMEOUT_SECONDS", 3.0, 0.1, 60.0),
        read_timeout_seconds=env.number("CLOUDWATCH_READ_TIMEOUT_SECONDS", 10.0, 0.5, 120.0),
        max_attempts=env.integer("CLOUDWATCH_MAX_ATTEMPTS", 3, 1, 10),
        interval_seconds=_interval(env),
        retry_mode=env.choice("CLOUDWATCH_RETRY_MODE", RETRY_MODES, "standard"),
        docdb_instances=docdb_instances,
        docdb_clusters=docdb_clusters,
        elasticache=elasticache,
        rds_only=rds_only,
    )
