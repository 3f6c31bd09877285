"""What discovery knows of one resource, read from the Describe answers already fetched:
identity, endpoint, labels of the info series and the RDS inventory values. Plain data, no
AWS call here: ``describe`` fetches, this module reads the answers.

DocumentDB Elastic clusters (their own API, docdb-elastic) are one resource each, CloudWatch
only: no instances are listed by that API.

Aurora and DocumentDB instances follow their cluster: a cluster the tag filter keeps brings
all its instances (their own tags are not consulted for the filter), each with its role
(writer or reader) from the cluster's member list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..config import ResourceKey

GIB: Final = 2**30
# ElastiCache engines whose nodes are discovered (their CloudWatch series are redis_*).
CACHE_ENGINES: Final = ("redis", "valkey")


@dataclass(frozen=True)
class Resource:
    key: ResourceKey
    arn: str
    engine: str
    engine_version: str
    instance_class: str
    # The Aurora/DocumentDB cluster (or ElastiCache replication group) it belongs to; a
    # cluster's own id for a cluster; "" for a standalone instance.
    cluster: str
    role: str  # writer / reader for Aurora and DocumentDB instances, else ""
    tags: tuple[tuple[str, str], ...]
    # Where SQL, serverStatus or Redis INFO would connect; None while being created.
    host: str | None = None
    port: int | None = None
    iam_auth: bool = False
    allocated_storage_bytes: float | None = None
    backup_retention_days: float | None = None
    certificate_expiry: float | None = None  # Unix time of the server certificate's ValidTill
    pending_maintenance: int | None = None  # None: not an RDS API resource
    # ElastiCache: in-transit encryption on (what a direct Redis connection would need).
    tls: bool = False
    # An RDS, Aurora or DocumentDB instance's DbiResourceId: its Enhanced Monitoring log
    # stream and its Performance Insights identifier. None for clusters and cache nodes.
    resource_id: str | None = None
    # ElastiCache nodes of a replication group (DescribeReplicationGroups): the group, and
    # the shard (NodeGroupId) the node serves; None for every other resource.
    replication_group: str | None = None
    shard: str | None = None
    # DocumentDB Elastic clusters: the CloudWatch ClusterId dimension (the ARN's last part).
    cloudwatch_id: str | None = None

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


Matches = Callable[[Mapping[str, str]], bool]


def tag_dict(tag_list: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in tag_list or [] if "Key" in t}


def pending_counts(answers: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """DescribePendingMaintenanceActions items: ARN -> number of actions pending."""
    counts: dict[str, int] = {}
    for item in answers:
        arn = str(item.get("ResourceIdentifier", ""))
        counts[arn] = counts.get(arn, 0) + len(item.get("PendingMaintenanceActionDetails", []))
    return counts


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _expiry(instance: Mapping[str, Any]) -> float | None:
    valid_till = instance.get("CertificateDetails", {}).get("ValidTill")
    return valid_till.timestamp() if isinstance(valid_till, dt.datetime) else None


def _resource_id(instance: Mapping[str, Any]) -> str | None:
    value = instance.get("DbiResourceId")
    return str(value) if value else None


def _endpoint(instance: Mapping[str, Any]) -> tuple[str | None, int | None]:
    endpoint = instance.get("Endpoint") or {}
    address, port = endpoint.get("Address"), endpoint.get("Port")
    return (str(address) if address else None), (int(port) if isinstance(port, int) else None)


def _pending(pending: Mapping[str, int] | None, arn: str) -> int | None:
    """Actions pending for ``arn``; None (no series) when DescribePendingMaintenanceActions
    failed: 0 would say "nothing pending" without knowing."""
    return None if pending is None else pending.get(arn, 0)


def rds_instances(
    instances: Iterable[Mapping[str, Any]],
    pending: Mapping[str, int] | None,
    account: str,
    region: str,
    matches: Matches,
) -> list[Resource]:
    """RDS PostgreSQL instances (DescribeDBInstances filtered to engine postgres)."""
    found: list[Resource] = []
    for instance in instances:
        tags = tag_dict(instance.get("TagList"))
        if not matches(tags):
            continue
        host, port = _endpoint(instance)
        arn = str(instance.get("DBInstanceArn", ""))
        storage = _number(instance.get("AllocatedStorage"))
        found.append(
            Resource(
                key=ResourceKey(account, region, "rds_instance", instance["DBInstanceIdentifier"]),
                arn=arn,
                engine=str(instance.get("Engine", "")),
                engine_version=str(instance.get("EngineVersion", "")),
                instance_class=str(instance.get("DBInstanceClass", "")),
                cluster="",
                role="",
                tags=tuple(sorted(tags.items())),
                host=host,
                port=port,
                iam_auth=bool(instance.get("IAMDatabaseAuthenticationEnabled")),
                allocated_storage_bytes=None if storage is None else storage * GIB,
                backup_retention_days=_number(instance.get("BackupRetentionPeriod")),
                certificate_expiry=_expiry(instance),
                pending_maintenance=_pending(pending, arn),
                resource_id=_resource_id(instance),
            )
        )
    return found


def clusters_and_members(
    prefix: str,
    clusters: Iterable[Mapping[str, Any]],
    instances: Iterable[Mapping[str, Any]],
    pending: Mapping[str, int] | None,
    account: str,
    region: str,
    matches: Matches,
) -> list[Resource]:
    """Aurora (``prefix`` aurora) or DocumentDB (docdb) clusters the filter keeps, each
    followed by its instances."""
    kept: dict[str, tuple[Mapping[str, Any], dict[str, str]]] = {}
    found: list[Resource] = []
    for cluster in clusters:
        tags = tag_dict(cluster.get("TagList"))
        if not matches(tags):
            continue
        identifier = str(cluster["DBClusterIdentifier"])
        kept[identifier] = (cluster, tags)
        arn = str(cluster.get("DBClusterArn", ""))
        endpoint, port = cluster.get("Endpoint"), cluster.get("Port")
        found.append(
            Resource(
                key=ResourceKey(account, region, f"{prefix}_cluster", identifier),
                arn=arn,
                engine=str(cluster.get("Engine", "")),
                engine_version=str(cluster.get("EngineVersion", "")),
                instance_class=str(cluster.get("DBClusterInstanceClass", "")),
                cluster=identifier,
                role="",
                tags=tuple(sorted(tags.items())),
                host=str(endpoint) if endpoint else None,  # the writer endpoint
                port=int(port) if isinstance(port, int) else None,
                iam_auth=bool(cluster.get("IAMDatabaseAuthenticationEnabled")),
                backup_retention_days=_number(cluster.get("BackupRetentionPeriod")),
                pending_maintenance=_pending(pending, arn),
            )
        )
    for instance in instances:
        identifier = str(instance.get("DBClusterIdentifier", ""))
        if identifier not in kept:
            continue
        cluster, cluster_tags = kept[identifier]
        writers = {
            str(m.get("DBInstanceIdentifier")): bool(m.get("IsClusterWriter"))
            for m in cluster.get("DBClusterMembers", [])
        }
        name = str(instance["DBInstanceIdentifier"])
        role = "" if name not in writers else "writer" if writers[name] else "reader"
        host, port = _endpoint(instance)
        arn = str(instance.get("DBInstanceArn", ""))
        tags = {**cluster_tags, **tag_dict(instance.get("TagList"))}
        found.append(
            Resource(
                key=ResourceKey(account, region, f"{prefix}_instance", name),
                arn=arn,
                engine=str(instance.get("Engine", "")),
                engine_version=str(instance.get("EngineVersion", "")),
                instance_class=str(instance.get("DBInstanceClass", "")),
                cluster=identifier,
                role=role,
                tags=tuple(sorted(tags.items())),
                host=host,
                port=port,
                certificate_expiry=_expiry(instance),
                pending_maintenance=_pending(pending, arn),
                resource_id=_resource_id(instance),
            )
        )
    return found


@dataclass(frozen=True)
class GroupMember:
    """A node of a replication group, as DescribeReplicationGroups names it."""

    group: Mapping[str, Any]
    shard: str  # NodeGroupId
    role: str  # CurrentRole: primary / replica; "" where AWS does not say (cluster mode on)
    read_endpoint: Mapping[str, Any] | None


def group_members(groups: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], GroupMember]:
    """(CacheClusterId, CacheNodeId) -> its group, shard and role, for every node of every
    replication group (NodeGroups -> NodeGroupMembers). AWS documents CurrentRole and
    ReadEndpoint for cluster-mode-disabled groups only: a cluster-mode-enabled group's nodes
    come with their shard and no role."""
    members: dict[tuple[str, str], GroupMember] = {}
    for group in groups:
        for node_group in group.get("NodeGroups") or []:
            shard = str(node_group.get("NodeGroupId", ""))
            for member in node_group.get("NodeGroupMembers") or []:
                cluster, node = member.get("CacheClusterId"), member.get("CacheNodeId")
                if not cluster or not node:
                    continue
                role = str(member.get("CurrentRole") or "")
                members[(str(cluster), str(node))] = GroupMember(
                    group, shard, role, member.get("ReadEndpoint")
                )
    return members


def cache_nodes(
    clusters: Iterable[Mapping[str, Any]],
    groups: Iterable[Mapping[str, Any]],
    tags_by_arn: Mapping[str, dict[str, str]],
    account: str,
    region: str,
    matches: Matches,
) -> list[Resource]:
    """Redis/Valkey nodes: every node of every replication group (DescribeReplicationGroups,
    with its group, shard and role), completed by its cache cluster's DescribeCacheClusters
    (ShowCacheNodeInfo) answer where there is one, then the nodes of cache clusters of no
    group. Tags come from the Resource Groups Tagging API (the Describe answers have none):
    a group's node carries its group's tags and its own cache cluster's."""
    members = group_members(groups)
    by_id = {str(c["CacheClusterId"]): c for c in clusters if c.get("CacheClusterId")}
    found: list[Resource] = []
    seen: set[tuple[str, str]] = set()
    for (identifier, node_id), member in members.items():
        group = member.group
        cluster = by_id.get(identifier, {})
        engine = str(cluster.get("Engine") or group.get("Engine") or "redis")
        arn = str(cluster.get("ARN") or _cluster_arn(group, identifier))
        tags = {**tags_by_arn.get(str(group.get("ARN", "")), {}), **tags_by_arn.get(arn, {})}
        seen.add((identifier, node_id))
        if engine not in CACHE_ENGINES or not matches(tags):
            continue
        node: Mapping[str, Any] = next(
            (n for n in cluster.get("CacheNodes") or [] if str(n.get("CacheNodeId")) == node_id),
            {},
        )
        # The node's own endpoint (DescribeCacheClusters), else the member's ReadEndpoint
        # (cluster mode off): a cluster-mode-enabled member has none in the group's answer.
        host, port = _endpoint(node if node.get("Endpoint") else {"Endpoint": member.read_endpoint})
        found.append(
            Resource(
                key=ResourceKey(account, region, "elasticache_node", identifier, node_id),
                arn=arn,
                engine=engine,
                engine_version=str(cluster.get("EngineVersion", "")),
                instance_class=str(cluster.get("CacheNodeType") or group.get("CacheNodeType", "")),
                cluster=str(group.get("ReplicationGroupId", "")),
                role=member.role,
                tags=tuple(sorted(tags.items())),
                host=host,
                port=port,
                tls=bool(
                    cluster.get("TransitEncryptionEnabled", group.get("TransitEncryptionEnabled"))
                ),
                replication_group=str(group.get("ReplicationGroupId", "")),
                shard=member.shard,
            )
        )
    for cluster in clusters:
        engine = str(cluster.get("Engine", ""))
        arn = str(cluster.get("ARN", ""))
        tags = tags_by_arn.get(arn, {})
        if engine not in CACHE_ENGINES or not matches(tags):
            continue
        identifier = str(cluster["CacheClusterId"])
        nodes = cluster.get("CacheNodes")
        if not nodes:
            # No node details in the answer: ElastiCache numbers a cluster's nodes 0001...
            nodes = [
                {"CacheNodeId": f"{n:04d}"}
                for n in range(1, int(cluster.get("NumCacheNodes", 1)) + 1)
            ]
        for node in nodes:
            if (identifier, str(node["CacheNodeId"])) in seen:
                continue  # a replication group's node, found above with its shard and role
            host, port = _endpoint(node)
            found.append(
                Resource(
                    key=ResourceKey(
                        account, region, "elasticache_node", identifier, str(node["CacheNodeId"])
                    ),
                    arn=arn,
                    engine=engine,
                    engine_version=str(cluster.get("EngineVersion", "")),
                    instance_class=str(cluster.get("CacheNodeType", "")),
                    cluster=str(cluster.get("ReplicationGroupId", "")),
                    role="",
                    tags=tuple(sorted(tags.items())),
                    host=host,
                    port=port,
                    tls=bool(cluster.get("TransitEncryptionEnabled")),
                )
            )
    return found


def _cluster_arn(group: Mapping[str, Any], identifier: str) -> str:
    """A member cache cluster's ARN, from its group's (same partition, region, account)."""
    prefix, sep, _ = str(group.get("ARN", "")).rpartition(":replicationgroup:")
    return f"{prefix}:cluster:{identifier}" if sep else ""


def elastic_clusters(
    clusters: Iterable[tuple[Mapping[str, Any], Mapping[str, str]]],
    account: str,
    region: str,
) -> list[Resource]:
    """DocumentDB Elastic clusters: GetCluster answers with the tags ListTagsForResource
    gave (the filter already applied). CloudWatch names a cluster by its ClusterName and
    its ClusterId, the last part of its ARN (``...:cluster/<id>``)."""
    found: list[Resource] = []
    for cluster, tags in clusters:
        arn = str(cluster.get("clusterArn", ""))
        name = str(cluster["clusterName"])
        endpoint = cluster.get("clusterEndpoint")
        found.append(
            Resource(
                key=ResourceKey(account, region, "docdb_elastic_cluster", name),
                arn=arn,
                engine="docdb-elastic",
                engine_version="",  # GetCluster names none
                instance_class="",  # no instance class: shards of shardCapacity vCPUs
                cluster=name,
                role="",
                tags=tuple(sorted((str(k), str(v)) for k, v in tags.items())),
                host=str(endpoint) if endpoint else None,
                cloudwatch_id=arn.rpartition("/")[2] or None,
            )
        )
    return found
