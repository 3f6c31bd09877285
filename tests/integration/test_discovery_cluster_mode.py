"""ElastiCache replication groups in discovery (SPEC 18), against moto in server mode behind
the AwsFront stand-in: every node of a cluster-mode-enabled group (per shard) and of a
cluster-mode-disabled one, with exact info labels (replication_group, shard, role), and a
failover (roles swapped) followed at the next refresh; DescribeReplicationGroups denied
degrades to the nodes DescribeCacheClusters lists."""

from __future__ import annotations

import pytest

from tests.helpers import Closer
from tests.integration.test_discovery import groups, named, runtime_of, settings_of
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront, Fault
from tests.standins.discovered import ACCOUNT, REGION, create_cache_cluster, tag_list

pytestmark = pytest.mark.integration

PAYMENTS = {"team": "payments"}


def make_groups(moto: MotoServer) -> None:
    elasticache = moto.client("elasticache")
    # Cluster mode on: 2 shards of a primary and a replica each.
    elasticache.create_replication_group(
        ReplicationGroupId="carts",
        ReplicationGroupDescription="carts",
        Engine="redis",
        CacheNodeType="cache.r7g.large",
        ClusterMode="enabled",
        NumNodeGroups=2,
        ReplicasPerNodeGroup=1,
        Tags=tag_list(PAYMENTS),
    )
    # Cluster mode off: one shard, a primary and a replica.
    elasticache.create_replication_group(
        ReplicationGroupId="sessions",
        ReplicationGroupDescription="sessions",
        Engine="redis",
        CacheNodeType="cache.t4g.small",
        ReplicasPerNodeGroup=1,
        Tags=tag_list(PAYMENTS),
    )
    # Another team's group: left out by the tag filter, all its nodes with it.
    elasticache.create_replication_group(
        ReplicationGroupId="search",
        ReplicationGroupDescription="search",
        Engine="redis",
        CacheNodeType="cache.t4g.small",
        ReplicasPerNodeGroup=1,
        Tags=tag_list({"team": "search"}),
    )


def node_info(
    klass: str, group: str, shard: str, role: str
) -> dict[frozenset[tuple[str, str]], float]:
    labels = {
        "kind": "elasticache_node",
        "engine": "redis",
        "engine_version": "",  # moto's answers carry no EngineVersion
        "instance_class": klass,
        "region": REGION,
        "account": ACCOUNT,
        "cluster": group,
        "role": role,
        "replication_group": group,
        "shard": shard,
        "tag_team": "payments",
    }
    return {frozenset(labels.items()): 1.0}


def test_every_node_of_a_replication_group_with_its_shard_and_role_and_a_failover(
    clean_moto: MotoServer, front: AwsFront, closer: Closer
) -> None:
    make_groups(clean_moto)
    settings = settings_of(
        clean_moto,
        front,
        DISCOVER="elasticache",
        DISCOVER_TAGS="team=payments",
        DISCOVER_TAG_LABELS="team",
        DISCOVER_MAX_AGE_SECONDS="0",
    )
    runtime = runtime_of(closer, settings)
    pushed = groups(runtime.collect(30.0))
    large, small = "cache.r7g.large", "cache.t4g.small"
    # AWS gives no CurrentRole to a cluster-mode-enabled group's nodes: their role is "".
    expected = {
        "elasticache:carts-0001-001:0001": node_info(large, "carts", "0001", ""),
        "elasticache:carts-0001-002:0001": node_info(large, "carts", "0001", ""),
        "elasticache:carts-0002-001:0001": node_info(large, "carts", "0002", ""),
        "elasticache:carts-0002-002:0001": node_info(large, "carts", "0002", ""),
        "elasticache:sessions-001:0001": node_info(small, "sessions", "0001", "primary"),
        "elasticache:sessions-002:0001": node_info(small, "sessions", "0001", "replica"),
    }
    assert sorted(pushed) == sorted([*expected, "collector"])
    assert {name: named(pushed[name], "aws_resource_info") for name in expected} == expected
    calls = front.calls_snapshot()
    assert (calls["DescribeReplicationGroups"], calls["DescribeCacheClusters"]) == (1, 1)
    call = {"account": ACCOUNT, "region": REGION, "call": "DescribeReplicationGroups"}
    assert named(pushed["collector"], "middleware_discovery_enrichment_up") == {
        frozenset(call.items()): 1.0
    }

    # A failover: the replica is promoted. The next refresh (max age 0) follows it, with
    # the same targets.
    before = list(runtime.targets)
    front.roles.update({"sessions-001": "replica", "sessions-002": "primary"})
    pushed = groups(runtime.collect(30.0))
    assert {
        name: named(pushed[name], "aws_resource_info")
        for name in ("elasticache:sessions-001:0001", "elasticache:sessions-002:0001")
    } == {
        "elasticache:sessions-001:0001": node_info(small, "sessions", "0001", "replica"),
        "elasticache:sessions-002:0001": node_info(small, "sessions", "0001", "primary"),
    }
    assert front.calls_snapshot()["DescribeReplicationGroups"] == 2
    assert runtime.targets == before


def test_replication_groups_denied_leaves_the_cache_clusters_found(
    clean_moto: MotoServer, front: AwsFront, closer: Closer
) -> None:
    """A role whose policy predates elasticache:DescribeReplicationGroups: the unit stays up
    with what DescribeCacheClusters lists (in AWS every group's members too; moto 5.2.5
    lists no group's member there, so only the cluster of no group shows here), and the
    enrichment series say which call failed and why."""
    make_groups(clean_moto)
    create_cache_cluster(clean_moto.client("elasticache"), "solo", tags=PAYMENTS)
    front.faults.append(
        Fault("AccessDenied", "not authorized", status=403, action="DescribeReplicationGroups")
    )
    settings = settings_of(clean_moto, front, DISCOVER="elasticache", DISCOVER_TAGS="team=payments")
    pushed = groups(runtime_of(closer, settings).collect(30.0))
    assert sorted(pushed) == ["collector", "elasticache:solo:0001"]
    [labels] = named(pushed["elasticache:solo:0001"], "aws_resource_info")
    assert (dict(labels)["replication_group"], dict(labels)["shard"]) == ("", "")
    collector = pushed["collector"]
    unit = {"account": ACCOUNT, "region": REGION}
    assert named(collector, "middleware_discovery_up") == {
        frozenset({**unit, "kind": "elasticache"}.items()): 1.0
    }
    call = {**unit, "call": "DescribeReplicationGroups"}
    assert named(collector, "middleware_discovery_enrichment_up") == {frozenset(call.items()): 0.0}
    assert named(collector, "middleware_discovery_enrichment_failure") == {
        frozenset({**call, "reason": "auth_failed"}.items()): 1.0
    }
