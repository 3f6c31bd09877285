"""Typed settings read once from environment variables.

Every problem found is collected and reported together in one ``ConfigError`` that names
each variable and the shape it expects. Secret values are never echoed. One module per
part: ``postgres``, ``docdb``, ``elasticache``, ``cloudwatch``, ``discovery``, ``aws``
(where a target's AWS APIs are asked), ``outputs`` (sinks, pull mode, remote write, Kafka,
Secrets Manager); ``targets_file`` reads a targets document (TARGETS_FILE and
TARGETS_PARAMETER); ``env`` reads and checks single variables; ``extra`` expands
EXTRA_SETTINGS (other variables carried in one) before anything is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus

from ..paths import DEFAULT_SEARCH_DIRS
from .aws import HERE, AwsLocation
from .cloudwatch import (
    CloudWatchSettings,
    CloudWatchTarget,
    ElastiCacheId,
    RdsId,
    env_cloudwatch_targets,
    load_cloudwatch,
)
from .discovery import (
    DISCOVER_KINDS,
    DiscoveredSpec,
    DiscoverySettings,
    ResourceKey,
    load_discovery,
)
from .docdb import DocDBSettings, MongoCollectionBounds, load_docdb, load_mongo_collection_bounds
from .elasticache import NODE_DEFAULTS, RedisSettings, redis_defaults
from .env import LOG_LEVELS, SECRET_VARIABLES, ConfigError, EnvReader
from .extra import with_extra
from .insights import InsightsSettings, load_insights
from .outputs import (
    SINKS,
    KafkaSettings,
    PushgatewaySettings,
    RemoteWriteSettings,
    SecretStoreSettings,
    ServeSettings,
    load_emf_metrics,
    load_emf_namespace,
    load_kafka,
    load_pushgateway,
    load_remote_write,
    load_secret_store,
    load_serve,
)
from .postgres import (
    PG_SSLMODES,
    RDS_TYPES,
    PostgresSettings,
    load_postgres,
    postgres_defaults,
)
from .targets_file import TargetsDocument, parse_document, read_targets_file

__all__ = [
    "DISCOVER_KINDS",
    "HERE",
    "PG_SSLMODES",
    "RDS_TYPES",
    "SECRET_VARIABLES",
    "SINKS",
    "AwsLocation",
    "CloudWatchSettings",
    "CloudWatchTarget",
    "ConfigError",
    "DiscoveredSpec",
    "DiscoverySettings",
    "DocDBSettings",
    "ElastiCacheId",
    "EnvReader",
    "InsightsSettings",
    "KafkaSettings",
    "PostgresSettings",
    "PushgatewaySettings",
    "RdsId",
    "RedisSettings",
    "RemoteWriteSettings",
    "ResourceKey",
    "SecretStoreSettings",
    "ServeSettings",
    "Settings",
    "TargetSpec",
    "TargetsDocument",
    "duplicate_names",
    "load_settings",
    "parse_document",
    "reserved_names",
]

# One kind of plain spec per target kind, whichever place it comes from (environment,
# targets file or parameter, discovery); targets.TargetBuilder turns each into sources.
# Discovery wraps the others (DiscoveredSpec) to add the resource's inventory.
TargetSpec = PostgresSettings | DocDBSettings | RedisSettings | CloudWatchTarget | DiscoveredSpec


@dataclass(frozen=True)
class Settings:
    postgres: PostgresSettings | None
    pushgateway: PushgatewaySettings
    sink: str
    max_workers: int
    collector_instance: str
    # Defaults keep hand-built Settings (tests) working; load_settings always fills them.
    # Defaults from the loader itself, so they cannot drift from what an empty env gives.
    serve: ServeSettings = field(default_factory=lambda: load_serve(EnvReader({})))
    kafka: KafkaSettings | None = None
    docdb: tuple[DocDBSettings, ...] = ()
    # MONGO_COLLECTIONS_TOP_N / MONGO_COLLSTATS_PER_PASS: every DocumentDB target's bounds.
    mongo_collections: MongoCollectionBounds = field(default_factory=MongoCollectionBounds)
    cloudwatch: CloudWatchSettings = field(
        default_factory=lambda: load_cloudwatch(EnvReader({}), RDS_TYPES[0])
    )
    # METRICS_SINK=emf: the CloudWatch namespace (POWERTOOLS_METRICS_NAMESPACE).
    emf_namespace: str = "MiddlewareMonitoring"
    # EMF_METRICS: series opted in as CloudWatch metrics beside the default set (SPEC 19).
    emf_metrics: tuple[str, ...] = ()
    # SERIES_BUDGET: the series a pass may send (None: no limit); SCHEDULE_MINUTES: how often
    # the schedule runs a pass (the cold start's projected monthly cost).
    series_budget: int | None = None
    schedule_minutes: int = 1
    secret_store: SecretStoreSettings = field(default_factory=lambda: SecretStoreSettings(None))
    # Every configured target (environment and TARGETS_FILE), in that order.
    targets: tuple[TargetSpec, ...] = ()
    # TARGETS_PARAMETER: an SSM parameter holding a targets document, read by the runtime.
    targets_parameter: str | None = None
    # TARGETS_S3_URI: s3://bucket/key holding a targets document, read by the runtime.
    targets_s3_uri: str | None = None
    targets_max_age_seconds: int = 300
    # The options every PostgreSQL / ElastiCache target shares (for documents read later:
    # the parameter).
    postgres_defaults: PostgresSettings | None = None
    redis_defaults: RedisSettings = NODE_DEFAULTS
    # METRICS_SINK=remote_write.
    remote_write: RemoteWriteSettings = field(
        default_factory=lambda: load_remote_write(EnvReader({}))
    )
    # DISCOVER: resources found in AWS by tags (SPEC 10); None when off.
    discovery: DiscoverySettings | None = None
    # ENHANCED_MONITORING / PERFORMANCE_INSIGHTS (SPEC 17); both off by default.
    insights: InsightsSettings = field(default_factory=InsightsSettings)

    def secrets(self) -> list[str]:
        """Every secret value, so logging can scrub them."""
        values = [self.pushgateway.password]
        for spec in self.targets:
            password = getattr(spec, "password", None)
            values.append(password)
            if isinstance(spec, DocDBSettings):
                # The URI carries the escaped form; either may end up in a driver's message.
                values.append(quote_plus(password or ""))
        return list(dict.fromkeys(value for value in values if value))


def reserved_names(collector_instance: str) -> re.Pattern[str]:
    """Group names the collector's own series use: the pass-wide group, one per shard, and
    the Kafka stream's health beside each."""
    name = re.escape(collector_instance)
    return re.compile(rf"{name}(-shard-[0-9]+)?(-kafka)?")


def duplicate_names(specs: Iterable[TargetSpec], collector_instance: str) -> list[str]:
    """Each name is a Pushgateway group: two targets of one name would overwrite each other.
    Each problem is put at the later place and names the earlier ones."""
    places: dict[str, list[str]] = {}
    for spec in specs:
        places.setdefault(spec.target_name, []).append(spec.origin)
    problems = [
        f"{where[-1]}: target name {name!r} is already used by {' and by '.join(where[:-1])}; "
        "each target needs its own name (the instance label of its series)"
        for name, where in places.items()
        if len(where) > 1
    ]
    reserved = reserved_names(collector_instance)
    problems += [
        f"{where[0]}: target name {name!r} is a name the collector uses for its own series "
        f"(COLLECTOR_INSTANCE_NAME={collector_instance!r}); give the target another name"
        for name, where in places.items()
        if reserved.fullmatch(name)
    ]
    return problems


def _s3_uri(env: EnvReader) -> str | None:
    uri = env.text("TARGETS_S3_URI")
    if uri is None:
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key or " " in bucket:
        env.problem("TARGETS_S3_URI", f"expected s3://bucket/key, got {uri!r}")
        return None
    return uri


def load_settings(
    environ: Mapping[str, str], search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS
) -> Settings:
    """Validate the whole environment (and TARGETS_FILE) once; raise ``ConfigError`` listing
    every problem."""
    environ, extra_problems = with_extra(environ)
    env = EnvReader(environ, SECRET_VARIABLES)
    env.problems += extra_problems
    defaults = postgres_defaults(env, search_dirs)
    node_defaults = redis_defaults(env)
    # Checked whatever else is set: a typo here would otherwise surface only later.
    rds_type = env.choice("AWS_RDS_TYPE", RDS_TYPES, RDS_TYPES[0])
    postgres = load_postgres(env, defaults, rds_type)
    docdb = load_docdb(env)
    cloudwatch = load_cloudwatch(env, rds_type)
    collector_instance = env.text("COLLECTOR_INSTANCE_NAME", "collector") or "collector"
    targets: list[TargetSpec] = [
        *([postgres] if postgres else []),
        *docdb,
        *env_cloudwatch_targets(cloudwatch),
    ]
    targets_file = env.text("TARGETS_FILE")
    if targets_file is not None:
        document, problems = read_targets_file(targets_file, search_dirs, defaults, node_defaults)
        targets += document.specs()
        env.problems += problems
    env.problems += duplicate_names(targets, collector_instance)
    settings = Settings(
        postgres=postgres,
        pushgateway=load_pushgateway(env),
        sink=env.choice("METRICS_SINK", SINKS, "pushgateway"),
        # Sources wait on the network, not the CPU: enough workers that a few dozen hung
        # servers cannot hold all of them while the healthy ones wait (a cold start has no
        # "down last pass" to order by).
        max_workers=env.integer("COLLECTOR_MAX_WORKERS", 32, 1, 256),
        collector_instance=collector_instance,
        serve=load_serve(env),
        kafka=load_kafka(env),
        docdb=docdb,
        mongo_collections=load_mongo_collection_bounds(env),
        cloudwatch=cloudwatch,
        emf_namespace=load_emf_namespace(env),
        emf_metrics=load_emf_metrics(env),
        series_budget=(
            env.integer("SERIES_BUDGET", 0, 1, 100_000_000) or None
            if env.has("SERIES_BUDGET")
            else None
        ),
        schedule_minutes=env.integer("SCHEDULE_MINUTES", 1, 1, 1440),
        secret_store=load_secret_store(env),
        targets=tuple(targets),
        targets_parameter=env.text("TARGETS_PARAMETER"),
        targets_s3_uri=_s3_uri(env),
        targets_max_age_seconds=env.integer("TARGETS_MAX_AGE_SECONDS", 300, 0, 86400),
        postgres_defaults=defaults,
        redis_defaults=node_defaults,
        remote_write=load_remote_write(env),
        discovery=load_discovery(env),
        insights=load_insights(env),
    )
    log_level = env.text("LOG_LEVEL")
    if log_level is not None and log_level.upper() not in LOG_LEVELS:
        env.problem("LOG_LEVEL", f"expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    if env.problems:
        raise ConfigError(env.problems)
    return settings
