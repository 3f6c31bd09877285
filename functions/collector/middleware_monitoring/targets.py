"""From plain specs to targets: one builder per kind of spec turns it into its sources.

Specs come from three places (environment variables, a targets file or parameter,
discovery) and are the same dataclasses whichever the place, so nothing here knows where a
spec came from, and the runtime does not grow a branch per kind and place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .aws import AwsSessions
from .cloudwatch import declarations
from .cloudwatch.batches import CloudWatchBatches
from .cloudwatch.declarations import Declaration
from .config import (
    HERE,
    AwsLocation,
    CloudWatchTarget,
    DiscoveredSpec,
    DocDBSettings,
    PostgresSettings,
    RedisSettings,
    Settings,
    TargetSpec,
)
from .config.env import EnvReader
from .config.postgres import postgres_defaults
from .credentials import (
    SecretStore,
    docdb_secret_login,
    iam_token_login,
    pg_secret_login,
    redis_secret_login,
)
from .discovery import Discovery, InventorySource
from .insights.enhanced_monitoring import EnhancedMonitoring, ResourceId, ResourceIds
from .insights.performance_insights import PerformanceInsights
from .insights.reads import InstanceReads
from .model import Source, Target
from .postgres.connection import PgConnection
from .postgres.source import PostgresSource

# Discovered and CloudWatch-only kinds that are one RDS/Aurora/DocumentDB instance, and the
# engine each runs.
INSTANCE_KINDS: Final = {
    "rds_instance": "postgres",
    "aurora_instance": "postgres",
    "docdb_instance": "docdb",
}


def cloudwatch_declarations(spec: CloudWatchTarget) -> list[Declaration]:
    if spec.kind == "rds_instance":
        return declarations.rds(spec.identifier, "DBInstanceIdentifier")
    if spec.kind == "aurora_cluster":
        return declarations.rds(spec.identifier, "DBClusterIdentifier")
    if spec.kind == "aurora_instance":
        return declarations.aurora_instance(spec.identifier)
    if spec.kind == "docdb_instance":
        return declarations.docdb_instance(spec.identifier)
    if spec.kind == "docdb_cluster":
        return declarations.docdb_cluster(spec.identifier)
    if spec.kind == "docdb_elastic":
        return declarations.docdb_elastic(spec.identifier, spec.cluster_id or "")
    return declarations.elasticache(spec.identifier, spec.node)


class TargetBuilder:
    """Lives as long as the function instance: the clients and caches every target shares
    (Secrets Manager, AWS sessions per role, one CloudWatch batch per location, what
    discovery found)."""

    def __init__(
        self,
        settings: Settings,
        *,
        secrets: SecretStore | None = None,
        sessions: AwsSessions | None = None,
        cloudwatch: CloudWatchBatches | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions or AwsSessions(settings.cloudwatch.region)
        self.secrets = secrets or SecretStore(settings.secret_store)
        self.cloudwatch = cloudwatch or CloudWatchBatches(settings.cloudwatch, self.sessions)
        self.discovery = discovery
        if discovery is None and settings.discovery is not None:
            self.discovery = Discovery(
                settings.discovery,
                self.sessions,
                here_region=settings.cloudwatch.region,
                postgres_defaults=settings.postgres_defaults or postgres_defaults(EnvReader({})),
                redis_defaults=settings.redis_defaults,
            )
        # SPEC 17: per-instance reads (Enhanced Monitoring, Performance Insights), each the
        # pass's prefetch when on; instance ids of configured targets found by Describe.
        self.resource_ids = ResourceIds(self.sessions)
        self.enhanced_monitoring: EnhancedMonitoring | None = None
        if settings.insights.enhanced_monitoring:
            self.enhanced_monitoring = EnhancedMonitoring(settings.insights, self.sessions)
        self.performance_insights: PerformanceInsights | None = None
        if settings.insights.performance_insights:
            self.performance_insights = PerformanceInsights(self.sessions)
        self._builders: dict[type, Callable[[Any], list[Source]]] = {
            PostgresSettings: self._postgres,
            DocDBSettings: self._docdb,
            RedisSettings: self._redis,
            CloudWatchTarget: self._cloudwatch,
            DiscoveredSpec: self._discovered,
        }

    def build(self, spec: TargetSpec) -> Target:
        sources = self._builders[type(spec)](spec)
        return Target(spec.target_name, [*sources, *self._insights(spec)])

    def insight_reads(self) -> list[InstanceReads]:
        """The per-instance reads that are on (each plans its own sources per pass)."""
        return [r for r in (self.enhanced_monitoring, self.performance_insights) if r is not None]

    def _instance(self, spec: TargetSpec) -> tuple[ResourceId, AwsLocation, str] | None:
        """How to find the DbiResourceId of the RDS/Aurora/DocumentDB instance a target
        is, its location and kind (``postgres`` or ``docdb``); None for anything else (a
        cluster, a cache node, a server outside RDS)."""
        if isinstance(spec, DiscoveredSpec):
            key = spec.resource
            if key.kind not in INSTANCE_KINDS:
                return None
            location = next((s.aws for s in spec.specs if not isinstance(s, DocDBSettings)), HERE)
            discovery = self.discovery

            def discovered() -> str | None:
                resource = discovery.resource(key) if discovery is not None else None
                return resource.resource_id if resource is not None else None

            return discovered, location, INSTANCE_KINDS[key.kind]
        identifier, location, kind = None, HERE, ""
        if isinstance(spec, PostgresSettings) and spec.rds_type == "DBInstanceIdentifier":
            identifier, location, kind = spec.rds_id, spec.aws, "postgres"
        elif isinstance(spec, CloudWatchTarget) and spec.kind in INSTANCE_KINDS:
            identifier, location, kind = spec.identifier, spec.aws, INSTANCE_KINDS[spec.kind]
        if not identifier:
            return None
        ids, rds_id, where = self.resource_ids, identifier, location
        return (lambda: ids.of(rds_id, where)), location, kind

    def _insights(self, spec: TargetSpec) -> list[Source]:
        if self.enhanced_monitoring is None and self.performance_insights is None:
            return []
        instance = self._instance(spec)
        if instance is None:
            return []
        resource_id, location, engine = instance
        sources: list[Source] = []
        if self.enhanced_monitoring is not None:
            sources.append(self.enhanced_monitoring.source(spec.target_name, resource_id, location))
        if self.performance_insights is not None and engine == "postgres":
            sources.append(
                self.performance_insights.source(
                    spec.target_name, resource_id, location, self._statement_length(spec)
                )
            )
        return sources

    def _statement_length(self, spec: TargetSpec) -> int:
        """PG_QUERY_MAX_LENGTH of the target (its statements are cut as pg_query_*'s)."""
        inner = spec.specs if isinstance(spec, DiscoveredSpec) else (spec,)
        for one in inner:
            if isinstance(one, PostgresSettings):
                return one.query_max_length
        defaults = self.settings.postgres_defaults or postgres_defaults(EnvReader({}))
        return defaults.query_max_length

    def _postgres(self, spec: PostgresSettings) -> list[Source]:
        login = None
        if spec.secret_arn is not None:
            login = pg_secret_login(spec, self.secrets)
        elif spec.iam_auth:
            login = iam_token_login(spec, self.sessions)
        sources: list[Source] = [PostgresSource(spec, PgConnection(spec, login=login))]
        if spec.rds_id:
            sources.append(
                self.cloudwatch.source(declarations.rds(spec.rds_id, spec.rds_type), spec.aws)
            )
        return sources

    def _docdb(self, spec: DocDBSettings) -> list[Source]:
        # Imported here: pymongo is a heavy import (0.3 s measured on 3.12), paid only when
        # DocumentDB is used.
        from .docdb.source import DocumentDBSource

        login = docdb_secret_login(spec, self.secrets) if spec.secret_arn else None
        return [DocumentDBSource(spec, login=login, bounds=self.settings.mongo_collections)]

    def _redis(self, spec: RedisSettings) -> list[Source]:
        # Imported here: the Redis client is paid for only when an ElastiCache node is.
        from .redis.source import RedisSource

        login = redis_secret_login(spec, self.secrets) if spec.secret_arn else None
        sources: list[Source] = [RedisSource(spec, login=login)]
        if spec.cache_cluster_id:
            declared = declarations.elasticache(spec.cache_cluster_id, spec.cache_node_id)
            sources.append(self.cloudwatch.source(declared, spec.aws))
        return sources

    def _cloudwatch(self, spec: CloudWatchTarget) -> list[Source]:
        return [self.cloudwatch.source(cloudwatch_declarations(spec), spec.aws)]

    def _discovered(self, spec: DiscoveredSpec) -> list[Source]:
        """Its inventory, read from the discovery cache at collect time, and the sources of
        what is collected from it (the same builders as configured targets')."""
        assert self.discovery is not None
        inventory = InventorySource(
            spec.resource, self.discovery.resource, self.discovery.settings.tag_labels
        )
        return [inventory, *(s for inner in spec.specs for s in self._builders[type(inner)](inner))]
