"""From a discovered resource to its target: the name, and what is collected from it.

Every resource gets its CloudWatch metrics. A PostgreSQL instance or Aurora cluster (its
writer endpoint) also gets SQL when a login is known: a Secrets Manager ARN in its
DISCOVER_PG_SECRET_TAG tag, or DISCOVER_PG_IAM_USER with IAM authentication enabled on it
(the secret wins when both apply). A DocumentDB cluster gets serverStatus (through its
cluster endpoint) when its secret tag is set. TLS is always verified: verify-full against
DISCOVER_CA_BUNDLE (the CA layer's global-bundle.pem).

Names: the resource id, as the environment's CloudWatch ids name theirs
(``cloudwatch_target_name``: ``orders-db``, ``docdb:orders-1``, ``docdb-cluster:orders``,
``elasticache:orders-cache-001:0001``, ``docdb-elastic:orders``). A DocumentDB Elastic
cluster is CloudWatch only. A resource found with another account's role or in
another region than the function's gets ``@<account>.<region>`` appended: ids are unique
only within one account and region, and ``@`` is in no AWS id, so two never collide.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Final

from ..config import (
    AwsLocation,
    CloudWatchTarget,
    DiscoveredSpec,
    DiscoverySettings,
    DocDBSettings,
    PostgresSettings,
    RedisSettings,
    ResourceKey,
)
from ..config.cloudwatch import cloudwatch_target_name
from ..config.elasticache import NODE_DEFAULTS
from .resources import Resource

SECRET_ARN: Final = re.compile(
    r"arn:aws(-[a-z]+)*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[\w/+=.@-]+"
)
# The CloudWatch-only kind (its series and dimension) of each discovered kind.
CLOUDWATCH_KIND: Final = {
    "rds_instance": "rds_instance",
    "aurora_cluster": "aurora_cluster",
    "aurora_instance": "aurora_instance",
    "docdb_cluster": "docdb_cluster",
    "docdb_instance": "docdb_instance",
    "elasticache_node": "elasticache",
    "docdb_elastic_cluster": "docdb_elastic",
}
# Kinds that may be logged in to (SQL, serverStatus), and the dimension of their RDS id.
POSTGRES_KINDS: Final = {
    "rds_instance": "DBInstanceIdentifier",
    "aurora_cluster": "DBClusterIdentifier",
}
DOCDB_OPTIONS: Final = (
    ("tls", "true"),
    ("replicaSet", "rs0"),
    ("readPreference", "secondaryPreferred"),
    ("retryWrites", "false"),
)


def target_name(key: ResourceKey, elsewhere: bool) -> str:
    base = cloudwatch_target_name(CLOUDWATCH_KIND[key.kind], key.identifier, key.node)
    return f"{base}@{key.account}.{key.region}" if elsewhere else base


def kind_prefixed(key: ResourceKey, name: str) -> str:
    """The name of a resource whose id another resource of the same place already uses
    (an Aurora cluster and an RDS instance may share an id): prefixed with its kind."""
    return f"{key.kind.replace('_', '-')}:{name}"


def origin(key: ResourceKey) -> str:
    node = f" node {key.node}" if key.node else ""
    return f"DISCOVER ({key.kind} {key.identifier}{node} in {key.account} {key.region})"


def make_spec(
    resource: Resource,
    name: str,
    location: AwsLocation,
    settings: DiscoverySettings,
    defaults: PostgresSettings,
    redis_defaults: RedisSettings = NODE_DEFAULTS,
) -> tuple[DiscoveredSpec, str | None]:
    """The resource's spec, and for one that could be logged in to but has no login, the
    sentence saying so (logged once per resource)."""
    key = resource.key
    where = origin(key)
    cloudwatch = CloudWatchTarget(
        name,
        CLOUDWATCH_KIND[key.kind],
        key.identifier,
        key.node,
        location,
        where,
        cluster_id=resource.cloudwatch_id,
    )
    if key.kind in POSTGRES_KINDS:
        postgres, note = _postgres(resource, name, location, settings, defaults, where)
        # The PostgreSQL spec carries the RDS id: its CloudWatch metrics come with it.
        specs = (postgres,) if postgres is not None else (cloudwatch,)
        return DiscoveredSpec(name, key, specs, where), note
    if key.kind == "docdb_cluster":
        docdb, note = _docdb(resource, name, settings, where)
        return DiscoveredSpec(name, key, (*([docdb] if docdb else []), cloudwatch), where), note
    if key.kind == "elasticache_node":
        node, note = _redis(resource, name, location, settings, redis_defaults, where)
        # The node's spec carries its CloudWatch ids: its metrics come with it.
        return DiscoveredSpec(name, key, (node,) if node else (cloudwatch,), where), note
    return DiscoveredSpec(name, key, (cloudwatch,), where), None


def _secret(resource: Resource, settings: DiscoverySettings) -> tuple[str | None, str | None]:
    """The secret ARN of the resource's secret tag, or why it cannot be used."""
    value = resource.tag(settings.pg_secret_tag)
    if value is None:
        return None, None
    if not SECRET_ARN.fullmatch(value.strip()):
        # The value is not echoed: a tag meant for an ARN may hold something else entirely.
        return None, (
            f"its {settings.pg_secret_tag} tag is not a Secrets Manager ARN "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)"
        )
    return value.strip(), None


def _postgres(
    resource: Resource,
    name: str,
    location: AwsLocation,
    settings: DiscoverySettings,
    defaults: PostgresSettings,
    where: str,
) -> tuple[PostgresSettings | None, str | None]:
    if resource.host is None or resource.port is None:
        return None, None  # being created: no endpoint yet, the next refresh brings it
    secret_arn, problem = _secret(resource, settings)
    iam = settings.pg_iam_user is not None and resource.iam_auth and secret_arn is None
    if secret_arn is None and not iam:
        how = (
            "enable IAM database authentication on it (DISCOVER_PG_IAM_USER is set)"
            if settings.pg_iam_user
            else "set DISCOVER_PG_IAM_USER and enable IAM database authentication on it"
        )
        return None, (
            f"CloudWatch only, no SQL: {problem or 'no login known'}; tag it "
            f"{settings.pg_secret_tag}=<Secrets Manager ARN of the monitoring login>, or {how}"
        )
    spec = replace(
        defaults,
        target_name=name,
        host=resource.host,
        port=resource.port,
        user=settings.pg_iam_user if iam and settings.pg_iam_user else "",
        password="",
        sslmode="verify-full",
        sslrootcert=settings.ca_bundle,
        rds_id=resource.key.identifier,
        rds_type=POSTGRES_KINDS[resource.key.kind],
        secret_arn=secret_arn,
        # Host and port are the Describe answer's; the secret may name the database.
        from_secret=frozenset({"dbname"}) if secret_arn else frozenset(),
        iam_auth=iam,
        aws=location,
        origin=where,
    )
    return spec, None


def _docdb(
    resource: Resource, name: str, settings: DiscoverySettings, where: str
) -> tuple[DocDBSettings | None, str | None]:
    if resource.host is None or resource.port is None:
        return None, None
    secret_arn, problem = _secret(resource, settings)
    if secret_arn is None:
        return None, (
            f"CloudWatch only, no serverStatus: {problem or 'no login known'}; tag it "
            f"{settings.pg_secret_tag}=<Secrets Manager ARN of the monitoring login>"
        )
    spec = DocDBSettings(
        target_name=name,
        variable=where,
        address=resource.host,
        port=resource.port,
        user=None,
        password=None,
        parameters=(*DOCDB_OPTIONS, ("tlsCAFile", settings.ca_bundle)),
        secret_arn=secret_arn,
    )
    return spec, None


def _redis(
    resource: Resource,
    name: str,
    location: AwsLocation,
    settings: DiscoverySettings,
    defaults: RedisSettings,
    where: str,
) -> tuple[RedisSettings | None, str | None]:
    """An ElastiCache node's INFO when its secret tag names the login (an AUTH token, or an
    RBAC user and password): ElastiCache presents an Amazon-issued certificate, verified
    against the system trust store."""
    if resource.host is None or resource.port is None:
        return None, None
    secret_arn, problem = _secret(resource, settings)
    if secret_arn is None:
        return None, (
            f"CloudWatch only, no INFO: {problem or 'no login known'}; tag it "
            f"{settings.pg_secret_tag}=<Secrets Manager ARN of the node's AUTH token or user>"
        )
    spec = replace(
        defaults,
        target_name=name,
        host=resource.host,
        origin=where,
        port=resource.port,
        tls=resource.tls,
        secret_arn=secret_arn,
        cache_cluster_id=resource.key.identifier,
        cache_node_id=resource.key.node,
        aws=location,
    )
    return spec, None
