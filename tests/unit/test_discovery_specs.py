"""Discovery without AWS: Describe answers (as boto3 returns them) read into resources, and
resources turned into targets: names, logins, inventory series."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from middleware_monitoring.config import (
    AwsLocation,
    CloudWatchTarget,
    DiscoveredSpec,
    DocDBSettings,
    ResourceKey,
    load_settings,
)
from middleware_monitoring.config.discovery import DiscoverySettings
from middleware_monitoring.discovery.resources import (
    GIB,
    Resource,
    cache_nodes,
    clusters_and_members,
    pending_counts,
    rds_instances,
)
from middleware_monitoring.discovery.source import InventorySource, inventory_families
from middleware_monitoring.discovery.specs import kind_prefixed, make_spec, target_name
from middleware_monitoring.model import SourceFailure

ACCOUNT, REGION = "123456789012", "eu-west-1"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:monitoring/orders-AbCdEf"
VALID_TILL = dt.datetime(2027, 8, 22, 17, 8, 50, tzinfo=dt.UTC)
BASE = load_settings(
    {
        "DISCOVER": "rds,aurora,docdb,elasticache",
        "AWS_REGION": REGION,
        "PG_CONNECT_TIMEOUT_SECONDS": "2",
    }
)
assert BASE.discovery is not None and BASE.postgres_defaults is not None
SETTINGS: DiscoverySettings = BASE.discovery
DEFAULTS = BASE.postgres_defaults
HERE = AwsLocation(REGION, None, ACCOUNT)


def everything(_: object) -> bool:
    return True


def rds_answer(identifier: str, **extra: object) -> dict[str, object]:
    return {
        "DBInstanceIdentifier": identifier,
        "DBInstanceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{identifier}",
        "DBInstanceClass": "db.t4g.medium",
        "Engine": "postgres",
        "EngineVersion": "16.4",
        "Endpoint": {"Address": f"{identifier}.abc.{REGION}.rds.amazonaws.com", "Port": 5432},
        "AllocatedStorage": 100,
        "BackupRetentionPeriod": 7,
        "IAMDatabaseAuthenticationEnabled": True,
        "CertificateDetails": {"CAIdentifier": "rds-ca-rsa2048-g1", "ValidTill": VALID_TILL},
        "TagList": [{"Key": "team", "Value": "payments"}],
        **extra,
    }


def orders_db(**changes: object) -> Resource:
    [resource] = rds_instances(
        [rds_answer("orders-db")],
        {f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders-db": 2},
        ACCOUNT,
        REGION,
        everything,
    )
    return replace(resource, **changes)  # type: ignore[arg-type]


def test_rds_instance_from_its_describe_answer() -> None:
    assert orders_db() == Resource(
        key=ResourceKey(ACCOUNT, REGION, "rds_instance", "orders-db"),
        arn=f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders-db",
        engine="postgres",
        engine_version="16.4",
        instance_class="db.t4g.medium",
        cluster="",
        role="",
        tags=(("team", "payments"),),
        host=f"orders-db.abc.{REGION}.rds.amazonaws.com",
        port=5432,
        iam_auth=True,
        allocated_storage_bytes=100 * GIB,
        backup_retention_days=7.0,
        certificate_expiry=VALID_TILL.timestamp(),
        pending_maintenance=2,
    )


def test_the_tag_filter_decides() -> None:
    answers = [rds_answer("a"), rds_answer("b", TagList=[{"Key": "team", "Value": "other"}])]
    kept = rds_instances(answers, {}, ACCOUNT, REGION, lambda tags: tags.get("team") == "payments")
    assert [r.key.identifier for r in kept] == ["a"]
    assert kept[0].pending_maintenance == 0


def test_pending_actions_are_counted_per_arn() -> None:
    answers: list[dict[str, Any]] = [
        {"ResourceIdentifier": "arn:1", "PendingMaintenanceActionDetails": [{"Action": "a"}] * 3},
        {"ResourceIdentifier": "arn:2", "PendingMaintenanceActionDetails": []},
        {"ResourceIdentifier": "arn:1", "PendingMaintenanceActionDetails": [{"Action": "b"}]},
    ]
    assert pending_counts(answers) == {"arn:1": 4, "arn:2": 0}


def test_a_cluster_brings_its_instances_with_their_role() -> None:
    cluster = {
        "DBClusterIdentifier": "billing",
        "DBClusterArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:billing",
        "Engine": "aurora-postgresql",
        "EngineVersion": "15.4",
        "Endpoint": f"billing.cluster-xyz.{REGION}.rds.amazonaws.com",
        "Port": 5432,
        "BackupRetentionPeriod": 14,
        "IAMDatabaseAuthenticationEnabled": False,
        "DBClusterMembers": [
            {"DBInstanceIdentifier": "billing-1", "IsClusterWriter": True},
            {"DBInstanceIdentifier": "billing-2", "IsClusterWriter": False},
        ],
        "TagList": [{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}],
    }
    other = {**cluster, "DBClusterIdentifier": "other", "TagList": []}

    def member(name: str, cluster_id: str, tags: list[dict[str, str]]) -> dict[str, object]:
        return {
            "DBInstanceIdentifier": name,
            "DBInstanceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{name}",
            "DBInstanceClass": "db.r6g.large",
            "Engine": "aurora-postgresql",
            "EngineVersion": "15.4",
            "Endpoint": {"Address": f"{name}.xyz.{REGION}.rds.amazonaws.com", "Port": 5432},
            "DBClusterIdentifier": cluster_id,
            "CertificateDetails": {"ValidTill": VALID_TILL},
            "TagList": tags,
        }

    instances = [
        member("billing-1", "billing", []),
        member("billing-2", "billing", [{"Key": "env", "Value": "prod-replica"}]),
        member("other-1", "other", [{"Key": "team", "Value": "payments"}]),
    ]
    found = clusters_and_members(
        "aurora",
        [cluster, other],
        instances,
        {f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:billing": 1},
        ACCOUNT,
        REGION,
        lambda tags: tags.get("team") == "payments",
    )
    assert [(r.key.kind, r.key.identifier, r.cluster, r.role) for r in found] == [
        ("aurora_cluster", "billing", "billing", ""),
        ("aurora_instance", "billing-1", "billing", "writer"),
        ("aurora_instance", "billing-2", "billing", "reader"),
    ]
    cluster_resource, writer, reader = found
    assert (cluster_resource.host, cluster_resource.port) == (cluster["Endpoint"], 5432)
    assert (cluster_resource.backup_retention_days, cluster_resource.pending_maintenance) == (14, 1)
    assert cluster_resource.certificate_expiry is None
    assert (writer.certificate_expiry, writer.pending_maintenance) == (VALID_TILL.timestamp(), 0)
    # An instance's own tags win over its cluster's.
    assert reader.tags == (("env", "prod-replica"), ("team", "payments"))
    assert writer.tags == (("env", "prod"), ("team", "payments"))


def test_cache_nodes_with_and_without_node_details() -> None:
    clusters: list[dict[str, Any]] = [
        {
            "CacheClusterId": "orders-cache-001",
            "ARN": f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:orders-cache-001",
            "Engine": "redis",
            "EngineVersion": "7.1.0",
            "CacheNodeType": "cache.r7g.large",
            "ReplicationGroupId": "orders-cache",
            "TransitEncryptionEnabled": True,
            "CacheNodes": [
                {"CacheNodeId": "0001", "Endpoint": {"Address": "orders-cache-001.x", "Port": 6379}}
            ],
        },
        {
            "CacheClusterId": "sessions",
            "ARN": f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:sessions",
            "Engine": "valkey",
            "CacheNodeType": "cache.t4g.small",
            "NumCacheNodes": 2,
        },
        {
            "CacheClusterId": "memcached-1",
            "ARN": f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:memcached-1",
            "Engine": "memcached",
            "NumCacheNodes": 1,
        },
    ]
    tags = {f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:orders-cache-001": {"team": "a"}}
    found = cache_nodes(clusters, [], tags, ACCOUNT, REGION, everything)
    assert [(r.key.identifier, r.key.node, r.engine, r.cluster, r.host, r.port) for r in found] == [
        ("orders-cache-001", "0001", "redis", "orders-cache", "orders-cache-001.x", 6379),
        ("sessions", "0001", "valkey", "", None, None),
        ("sessions", "0002", "valkey", "", None, None),
    ]
    assert found[0].tags == (("team", "a"),) and found[1].tags == ()
    assert [r.tls for r in found] == [True, False, False]
    only_tagged = cache_nodes(clusters, [], tags, ACCOUNT, REGION, lambda t: t.get("team") == "a")
    assert [r.key.identifier for r in only_tagged] == ["orders-cache-001"]


def _group(
    identifier: str, shards: dict[str, dict[str, str]], *, cluster_mode: bool
) -> dict[str, Any]:
    """A replication group as DescribeReplicationGroups answers it (botocore's model):
    ``shards``: NodeGroupId -> member cache cluster -> CurrentRole. AWS gives CurrentRole
    and ReadEndpoint only with cluster mode off."""

    def member(cluster: str, role: str) -> dict[str, Any]:
        answer: dict[str, Any] = {"CacheClusterId": cluster, "CacheNodeId": "0001"}
        if not cluster_mode:
            answer["ReadEndpoint"] = {"Address": f"{cluster}.x", "Port": 6379}
            answer["CurrentRole"] = role
        return answer

    return {
        "ReplicationGroupId": identifier,
        "ARN": f"arn:aws:elasticache:{REGION}:{ACCOUNT}:replicationgroup:{identifier}",
        "ClusterEnabled": cluster_mode,
        "CacheNodeType": "cache.r7g.large",
        "TransitEncryptionEnabled": True,
        "Engine": "valkey",
        "NodeGroups": [
            {
                "NodeGroupId": shard,
                "NodeGroupMembers": [member(c, role) for c, role in members.items()],
            }
            for shard, members in shards.items()
        ],
    }


def test_every_node_of_a_replication_group_with_its_shard_and_role() -> None:
    sharded = _group(
        "carts",
        {
            "0001": {"carts-0001-001": "", "carts-0001-002": ""},
            "0002": {"carts-0002-001": "", "carts-0002-002": ""},
        },
        cluster_mode=True,
    )
    plain = _group(
        "sessions",
        {"0001": {"sessions-001": "primary", "sessions-002": "replica"}},
        cluster_mode=False,
    )
    # DescribeCacheClusters knows one sharded member (its endpoint and version win) and a
    # cluster of no group.
    clusters: list[dict[str, Any]] = [
        {
            "CacheClusterId": "carts-0002-002",
            "ARN": f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:carts-0002-002",
            "Engine": "valkey",
            "EngineVersion": "8.0",
            "CacheNodeType": "cache.r7g.large",
            "ReplicationGroupId": "carts",
            "CacheNodes": [
                {"CacheNodeId": "0001", "Endpoint": {"Address": "carts-0002-002.x", "Port": 6380}}
            ],
        },
        {
            "CacheClusterId": "solo",
            "ARN": f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:solo",
            "Engine": "redis",
            "NumCacheNodes": 1,
        },
    ]
    tags = {
        f"arn:aws:elasticache:{REGION}:{ACCOUNT}:replicationgroup:carts": {"team": "a"},
        f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:carts-0001-001": {"env": "prod"},
    }
    found = cache_nodes(clusters, [sharded, plain], tags, ACCOUNT, REGION, everything)
    assert [
        (
            r.key.identifier,
            r.key.node,
            r.replication_group,
            r.shard,
            r.role,
            r.host,
            r.port,
            r.engine_version,
        )
        for r in found
    ] == [
        ("carts-0001-001", "0001", "carts", "0001", "", None, None, ""),
        ("carts-0001-002", "0001", "carts", "0001", "", None, None, ""),
        ("carts-0002-001", "0001", "carts", "0002", "", None, None, ""),
        ("carts-0002-002", "0001", "carts", "0002", "", "carts-0002-002.x", 6380, "8.0"),
        ("sessions-001", "0001", "sessions", "0001", "primary", "sessions-001.x", 6379, ""),
        ("sessions-002", "0001", "sessions", "0001", "replica", "sessions-002.x", 6379, ""),
        ("solo", "0001", None, None, "", None, None, ""),
    ]
    # A node carries its group's tags and its own cache cluster's.
    assert found[0].tags == (("env", "prod"), ("team", "a"))
    assert found[1].tags == (("team", "a"),)
    assert {r.cluster for r in found[:4]} == {"carts"}
    assert [r.tls for r in found] == [True] * 6 + [False]
    assert found[0].arn == f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:carts-0001-001"
    # The tag filter sees the group's tags on every node of it.
    team_a = cache_nodes(clusters, [sharded, plain], tags, ACCOUNT, REGION, lambda t: "team" in t)
    assert [r.key.identifier for r in team_a] == [
        "carts-0001-001",
        "carts-0001-002",
        "carts-0002-001",
        "carts-0002-002",
    ]


def test_a_cache_node_info_series_names_its_group_shard_and_role() -> None:
    plain = _group("sessions", {"0001": {"sessions-001": "replica"}}, cluster_mode=False)
    (node,) = cache_nodes([], [plain], {}, ACCOUNT, REGION, everything)
    (info,) = [f for f in inventory_families(node, ()) if f.name == "aws_resource_info"]
    assert [s.labels for s in info.samples] == [
        {
            "kind": "elasticache_node",
            "engine": "valkey",
            "engine_version": "",
            "instance_class": "cache.r7g.large",
            "region": REGION,
            "account": ACCOUNT,
            "cluster": "sessions",
            "role": "replica",
            "replication_group": "sessions",
            "shard": "0001",
        }
    ]


def test_names_here_and_elsewhere() -> None:
    rds = ResourceKey(ACCOUNT, REGION, "rds_instance", "orders-db")
    node = ResourceKey("210987654321", "us-east-1", "elasticache_node", "cache-001", "0001")
    docdb = ResourceKey(ACCOUNT, REGION, "docdb_cluster", "sessions")
    assert target_name(rds, elsewhere=False) == "orders-db"
    assert target_name(rds, elsewhere=True) == f"orders-db@{ACCOUNT}.{REGION}"
    assert target_name(node, elsewhere=True) == "elasticache:cache-001:0001@210987654321.us-east-1"
    assert target_name(docdb, elsewhere=False) == "docdb-cluster:sessions"
    aurora = ResourceKey(ACCOUNT, REGION, "aurora_cluster", "orders-db")
    assert kind_prefixed(aurora, "orders-db") == "aurora-cluster:orders-db"


def test_a_secret_tag_gives_sql_over_verified_tls() -> None:
    resource = orders_db(tags=(("middleware-monitoring:secret-arn", SECRET),))
    spec, note = make_spec(resource, "orders-db", HERE, SETTINGS, DEFAULTS)
    origin = f"DISCOVER (rds_instance orders-db in {ACCOUNT} {REGION})"
    postgres = replace(
        DEFAULTS,
        target_name="orders-db",
        host=f"orders-db.abc.{REGION}.rds.amazonaws.com",
        port=5432,
        sslmode="verify-full",
        sslrootcert="global-bundle.pem",
        rds_id="orders-db",
        rds_type="DBInstanceIdentifier",
        secret_arn=SECRET,
        from_secret=frozenset({"dbname"}),
        aws=HERE,
        origin=origin,
    )
    assert (spec, note) == (DiscoveredSpec("orders-db", resource.key, (postgres,), origin), None)
    assert postgres.connect_timeout_seconds == 2.0  # the PG_* options every target shares


def test_the_iam_user_logs_in_where_iam_auth_is_on_and_no_secret_tag() -> None:
    settings = replace(SETTINGS, pg_iam_user="monitor")
    spec, note = make_spec(orders_db(), "orders-db", HERE, settings, DEFAULTS)
    [postgres] = spec.specs
    assert note is None
    assert isinstance(postgres, type(DEFAULTS))
    assert (postgres.user, postgres.iam_auth, postgres.secret_arn) == ("monitor", True, None)
    assert (postgres.sslmode, postgres.sslrootcert) == ("verify-full", "global-bundle.pem")
    # The secret tag wins over the IAM user.
    tagged = orders_db(tags=(("middleware-monitoring:secret-arn", SECRET),))
    [postgres] = make_spec(tagged, "orders-db", HERE, settings, DEFAULTS)[0].specs
    assert isinstance(postgres, type(DEFAULTS))
    assert (postgres.user, postgres.iam_auth, postgres.secret_arn) == ("", False, SECRET)


@pytest.mark.parametrize(
    ("iam_user", "iam_auth", "tags", "why"),
    [
        (
            None,
            True,
            (),
            "no login known; tag it middleware-monitoring:secret-arn=<Secrets Manager ARN of "
            "the monitoring login>, or set DISCOVER_PG_IAM_USER and enable IAM database "
            "authentication on it",
        ),
        (
            "monitor",
            False,
            (),
            "no login known; tag it middleware-monitoring:secret-arn=<Secrets Manager ARN of "
            "the monitoring login>, or enable IAM database authentication on it "
            "(DISCOVER_PG_IAM_USER is set)",
        ),
        (
            None,
            False,
            (("middleware-monitoring:secret-arn", "hunter2"),),
            "its middleware-monitoring:secret-arn tag is not a Secrets Manager ARN "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>); tag it "
            "middleware-monitoring:secret-arn=<Secrets Manager ARN of the monitoring login>, or "
            "set DISCOVER_PG_IAM_USER and enable IAM database authentication on it",
        ),
    ],
)
def test_without_a_login_cloudwatch_only_and_why(
    iam_user: str | None, iam_auth: bool, tags: tuple[tuple[str, str], ...], why: str
) -> None:
    resource = orders_db(iam_auth=iam_auth, tags=tags)
    spec, note = make_spec(
        resource, "orders-db", HERE, replace(SETTINGS, pg_iam_user=iam_user), DEFAULTS
    )
    origin = f"DISCOVER (rds_instance orders-db in {ACCOUNT} {REGION})"
    assert spec.specs == (
        CloudWatchTarget("orders-db", "rds_instance", "orders-db", None, HERE, origin),
    )
    assert note == f"CloudWatch only, no SQL: {why}"


def test_documentdb_cluster_with_its_secret_gets_server_status_over_tls() -> None:
    resource = Resource(
        key=ResourceKey(ACCOUNT, REGION, "docdb_cluster", "sessions"),
        arn="arn",
        engine="docdb",
        engine_version="5.0.0",
        instance_class="",
        cluster="sessions",
        role="",
        tags=(("middleware-monitoring:secret-arn", SECRET),),
        host="sessions.cluster-x.docdb.amazonaws.com",
        port=27017,
    )
    spec, note = make_spec(resource, "docdb-cluster:sessions", HERE, SETTINGS, DEFAULTS)
    origin = f"DISCOVER (docdb_cluster sessions in {ACCOUNT} {REGION})"
    assert note is None
    assert spec.specs == (
        DocDBSettings(
            target_name="docdb-cluster:sessions",
            variable=origin,
            address="sessions.cluster-x.docdb.amazonaws.com",
            port=27017,
            user=None,
            password=None,
            parameters=(
                ("tls", "true"),
                ("replicaSet", "rs0"),
                ("readPreference", "secondaryPreferred"),
                ("retryWrites", "false"),
                ("tlsCAFile", "global-bundle.pem"),
            ),
            secret_arn=SECRET,
        ),
        CloudWatchTarget("docdb-cluster:sessions", "docdb_cluster", "sessions", None, HERE, origin),
    )
    untagged, note = make_spec(
        replace(resource, tags=()), "docdb-cluster:sessions", HERE, SETTINGS, DEFAULTS
    )
    assert [type(s) for s in untagged.specs] == [CloudWatchTarget]
    assert note == (
        "CloudWatch only, no serverStatus: no login known; tag it "
        "middleware-monitoring:secret-arn=<Secrets Manager ARN of the monitoring login>"
    )


def test_instances_of_clusters_and_cache_nodes_are_cloudwatch_only_without_a_note() -> None:
    node = Resource(
        key=ResourceKey(ACCOUNT, REGION, "elasticache_node", "cache-001", "0002"),
        arn="arn",
        engine="redis",
        engine_version="7.1",
        instance_class="cache.t4g.small",
        cluster="",
        role="",
        tags=(("middleware-monitoring:secret-arn", SECRET),),
    )
    spec, note = make_spec(node, "elasticache:cache-001:0002", HERE, SETTINGS, DEFAULTS)
    origin = f"DISCOVER (elasticache_node cache-001 node 0002 in {ACCOUNT} {REGION})"
    assert (spec.specs, note) == (
        (
            CloudWatchTarget(
                "elasticache:cache-001:0002", "elasticache", "cache-001", "0002", HERE, origin
            ),
        ),
        None,
    )


def test_inventory_series_exactly() -> None:
    resource = orders_db(
        tags=(("cost-center", "42"), ("team", "payments")),
        role="",
    )
    labels = (("team", "tag_team"), ("cost-center", "tag_cost_center"), ("owner", "tag_owner"))
    known: dict[ResourceKey, Resource] = {resource.key: resource}
    source = InventorySource(resource.key, known.get, labels)
    families = {family.name: family for family in source.collect()}
    assert [(s.labels, s.value) for s in families.pop("aws_resource_info").samples] == [
        (
            {
                "kind": "rds_instance",
                "engine": "postgres",
                "engine_version": "16.4",
                "instance_class": "db.t4g.medium",
                "region": REGION,
                "account": ACCOUNT,
                "cluster": "",
                "role": "",
                "tag_team": "payments",
                "tag_cost_center": "42",
                "tag_owner": "",
            },
            1.0,
        )
    ]
    assert {name: [(s.labels, s.value) for s in f.samples] for name, f in families.items()} == {
        "aws_rds_allocated_storage_bytes": [({}, 100.0 * GIB)],
        "aws_rds_pending_maintenance_actions": [({}, 2.0)],
        "aws_rds_certificate_expiry_timestamp_seconds": [({}, VALID_TILL.timestamp())],
        "aws_rds_backup_retention_days": [({}, 7.0)],
    }


def test_an_inventory_the_cache_no_longer_holds_is_down() -> None:
    known: dict[ResourceKey, Resource] = {}
    source = InventorySource(ResourceKey(ACCOUNT, REGION, "rds_instance", "gone"), known.get, ())
    with pytest.raises(SourceFailure) as failure:
        list(source.collect())
    assert (failure.value.reason, failure.value.detail) == (
        "not_discovered",
        "the resource is no longer discovered",
    )


def test_a_cache_node_with_its_secret_tag_gets_info_and_without_one_a_note() -> None:
    from middleware_monitoring.config import RedisSettings

    node = Resource(
        key=ResourceKey(ACCOUNT, REGION, "elasticache_node", "cache-001", "0002"),
        arn="arn",
        engine="redis",
        engine_version="7.1",
        instance_class="cache.t4g.small",
        cluster="cache",
        role="",
        tags=(("middleware-monitoring:secret-arn", SECRET),),
        host="cache-001-002.abc.euw1.cache.amazonaws.com",
        port=6379,
        tls=True,
    )
    origin = f"DISCOVER (elasticache_node cache-001 node 0002 in {ACCOUNT} {REGION})"
    defaults = RedisSettings(target_name="", host="", read_timeout_seconds=2.0)
    spec, note = make_spec(node, "elasticache:cache-001:0002", HERE, SETTINGS, DEFAULTS, defaults)
    assert (spec.specs, note) == (
        (
            RedisSettings(
                target_name="elasticache:cache-001:0002",
                host="cache-001-002.abc.euw1.cache.amazonaws.com",
                origin=origin,
                port=6379,
                tls=True,
                secret_arn=SECRET,
                read_timeout_seconds=2.0,
                cache_cluster_id="cache-001",
                cache_node_id="0002",
                aws=HERE,
            ),
        ),
        None,
    )
    untagged, note = make_spec(
        replace(node, tags=()), "elasticache:cache-001:0002", HERE, SETTINGS, DEFAULTS
    )
    assert [type(s) for s in untagged.specs] == [CloudWatchTarget]
    assert note == (
        "CloudWatch only, no INFO: no login known; tag it middleware-monitoring:secret-arn="
        "<Secrets Manager ARN of the node's AUTH token or user>"
    )
