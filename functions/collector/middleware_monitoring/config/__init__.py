"""Typed settings read once from environment variables.

Every problem found is collected and reported together in one ``ConfigError`` that names
each variable and the shape it expects. Secret values are never echoed. One module per
part: ``postgres``, ``docdb``, ``cloudwatch``, ``outputs`` (sinks, pull mode, Kafka,
Secrets Manager); ``env`` reads and checks single variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote_plus

from .cloudwatch import CloudWatchSettings, ElastiCacheId, RdsId, load_cloudwatch
from .docdb import DocDBSettings, load_docdb
from .env import LOG_LEVELS, ConfigError, EnvReader
from .outputs import (
    SINKS,
    KafkaSettings,
    PushgatewaySettings,
    RemoteWriteSettings,
    SecretStoreSettings,
    ServeSettings,
    load_emf_namespace,
    load_kafka,
    load_pushgateway,
    load_remote_write,
    load_secret_store,
    load_serve,
)
from .postgres import PG_SSLMODES, RDS_TYPES, PostgresSettings, load_postgres

__all__ = [
    "PG_SSLMODES",
    "RDS_TYPES",
    "SECRET_VARIABLES",
    "SINKS",
    "CloudWatchSettings",
    "ConfigError",
    "DocDBSettings",
    "ElastiCacheId",
    "EnvReader",
    "KafkaSettings",
    "PostgresSettings",
    "PushgatewaySettings",
    "RdsId",
    "RemoteWriteSettings",
    "SecretStoreSettings",
    "ServeSettings",
    "Settings",
    "load_settings",
]


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
    cloudwatch: CloudWatchSettings | None = None
    # METRICS_SINK=emf: the CloudWatch namespace (POWERTOOLS_METRICS_NAMESPACE).
    emf_namespace: str = "MiddlewareMonitoring"
    secret_store: SecretStoreSettings = field(default_factory=lambda: SecretStoreSettings(None))
    # METRICS_SINK=remote_write.
    remote_write: RemoteWriteSettings = field(
        default_factory=lambda: load_remote_write(EnvReader({}))
    )

    def secrets(self) -> list[str]:
        """Every secret value, so logging can scrub them."""
        values = [self.pushgateway.password]
        if self.postgres:
            values.append(self.postgres.password)
        for target in self.docdb:
            # The URI carries the escaped form; either may end up in a driver's message.
            values.extend((target.password, quote_plus(target.password or "")))
        return [value for value in values if value]


SECRET_VARIABLES: Final = ("PG_PWD", "PUSHGATEWAY_PASSWORD", "MONGO_INFO")


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate the whole environment once; raise ``ConfigError`` listing every problem."""
    env = EnvReader(environ, SECRET_VARIABLES)
    settings = Settings(
        postgres=load_postgres(env),
        pushgateway=load_pushgateway(env),
        sink=env.choice("METRICS_SINK", SINKS, "pushgateway"),
        max_workers=env.integer("COLLECTOR_MAX_WORKERS", 8, 1, 64),
        collector_instance=env.text("COLLECTOR_INSTANCE_NAME", "collector") or "collector",
        serve=load_serve(env),
        kafka=load_kafka(env),
        docdb=load_docdb(env),
        cloudwatch=load_cloudwatch(env),
        emf_namespace=load_emf_namespace(env),
        secret_store=load_secret_store(env),
        remote_write=load_remote_write(env),
    )
    log_level = env.text("LOG_LEVEL")
    if log_level is not None and log_level.upper() not in LOG_LEVELS:
        env.problem("LOG_LEVEL", f"expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    if env.problems:
        raise ConfigError(env.problems)
    return settings
