"""The AWS calls of discovery for one account in one region, each kind's failure its own.

Calls per refresh of an account/region (every call paged, PAGE_SIZE per page):

- rds: DescribeDBInstances (engine postgres).
- aurora: DescribeDBClusters and DescribeDBInstances (engine aurora-postgresql).
- docdb: the same with engine docdb. DocumentDB is managed through the RDS API; asked with
  the RDS client its answers carry TagList, which the DocumentDB client's model drops (tags
  would then cost a tagging call per page).
- rds, aurora and docdb together: one DescribePendingMaintenanceActions (all resources of
  the region in one list), shared by the kinds that need it. It only enriches what the
  lists found: when it fails (denied to a role whose policy lacks it, throttled, not
  implemented), the resources are still found, without the pending-maintenance series, and
  ``enrichment`` says why (middleware_discovery_enrichment_up{call}).
- elasticache: DescribeCacheClusters (ShowCacheNodeInfo: every node, a replication group's
  members included, with endpoints and versions), DescribeReplicationGroups (each group's
  nodes with their shard and, cluster mode off, their role: a failover shows at the next
  refresh) and the Resource Groups Tagging API's GetResources for ElastiCache, always (a
  node's login is in its secret tag): the Describe answers have no tags, and
  ListTagsForResource would be one call per cluster. DescribeReplicationGroups enriches:
  when it fails (say, denied to a role whose policy predates it) the nodes are still found,
  without their shard and role.

- docdb-elastic: ListClusters (its own API), then per cluster ListTagsForResource (the list
  has no tags) and, for a cluster the tag filter keeps, GetCluster (its endpoint). Two
  calls per cluster: elastic clusters are few (a handful per region).

The tag filter is applied to the answers here (TagList, GetResources' tags), not by AWS:
the RDS API filters by engine or id only.

Only the calls that list resources fail a unit: an enrichment call (ENRICHMENT_CALLS) that
fails degrades the series it feeds, never what is found.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..aws import AwsFailure, aws_error_code, classify_failure
from ..config import DiscoverySettings
from .resources import (
    Resource,
    cache_nodes,
    clusters_and_members,
    elastic_clusters,
    pending_counts,
    rds_instances,
)

PAGE_SIZE: Final = 100  # the most DescribeDB*, DescribeCacheClusters and GetResources return
ENGINES: Final = {"rds": "postgres", "aurora": "aurora-postgresql", "docdb": "docdb"}
PENDING_MAINTENANCE_CALL: Final = "DescribePendingMaintenanceActions"
REPLICATION_GROUPS_CALL: Final = "DescribeReplicationGroups"
# Calls that add to what the list calls found. (Tags are not among them: the RDS lists carry
# TagList, and ElastiCache's GetResources is what its tag filter and logins are read from.)
ENRICHMENT_CALLS: Final = (PENDING_MAINTENANCE_CALL, REPLICATION_GROUPS_CALL)


class DeadlinePassed(Exception):
    """The pass that started the refresh is over: the rest waits for the next one."""


def classify(exc: BaseException) -> AwsFailure:
    if isinstance(exc, DeadlinePassed):
        return AwsFailure("deadline", "not finished before the pass deadline")
    return classify_failure(exc, service_error="aws_error")


@dataclass
class Location:
    """One account in one region, as the calls see it. ``client(service)`` gives a client
    of that account and region (the role's session for another account)."""

    account: str
    region: str
    client: Callable[[str], Any]
    settings: DiscoverySettings
    # The deadline of the latest pass: a refresh that outlasts the pass that started it goes
    # on while passes follow, and stops asking once the last one is over.
    deadline: Callable[[], float]
    page_size: int = PAGE_SIZE
    monotonic: Callable[[], float] = time.monotonic
    # Each enrichment call made in this refresh: None when it answered, else why not.
    enrichment: dict[str, AwsFailure | None] = field(default_factory=dict)
    _pending: dict[str, int] | None = field(default=None, repr=False)

    def pages(self, service: str, operation: str, **params: Any) -> Iterator[Mapping[str, Any]]:
        """Every item of every page (botocore's paginator), stopping at the deadline."""
        paginator = self.client(service).get_paginator(operation)
        result_key = paginator.result_keys[0].expression
        for page in paginator.paginate(**params, PaginationConfig={"PageSize": self.page_size}):
            yield from page.get(result_key, [])
            # The next page is not asked for once the pass is over.
            self.check()

    def engine_filter(self, kind: str) -> list[dict[str, Any]]:
        return [{"Name": "engine", "Values": [ENGINES[kind]]}]

    def pending(self) -> dict[str, int] | None:
        """Pending maintenance actions by ARN: one paged call shared by the RDS kinds; None
        when it failed (asked once per refresh either way). The pass deadline still ends
        the refresh: that is no failure of the call."""
        if PENDING_MAINTENANCE_CALL not in self.enrichment:
            try:
                self._pending = pending_counts(
                    self.pages("rds", "describe_pending_maintenance_actions")
                )
            except DeadlinePassed:
                raise
            except Exception as exc:
                self.enrichment[PENDING_MAINTENANCE_CALL] = classify(exc)
            else:
                self.enrichment[PENDING_MAINTENANCE_CALL] = None
        return self._pending

    def replication_groups(self) -> list[Mapping[str, Any]]:
        """Every replication group of the region; [] when the call failed (the nodes are
        then found by DescribeCacheClusters alone, without shard and role)."""
        try:
            groups = list(self.pages("elasticache", "describe_replication_groups"))
        except DeadlinePassed:
            raise
        except Exception as exc:
            self.enrichment[REPLICATION_GROUPS_CALL] = classify(exc)
            return []
        self.enrichment[REPLICATION_GROUPS_CALL] = None
        return groups

    def check(self) -> None:
        if self.monotonic() >= self.deadline():
            raise DeadlinePassed


def describe_rds(where: Location) -> list[Resource]:
    where.check()
    instances = list(
        where.pages("rds", "describe_db_instances", Filters=where.engine_filter("rds"))
    )
    return rds_instances(
        instances, where.pending(), where.account, where.region, where.settings.matches
    )


def _describe_clusters(where: Location, kind: str) -> list[Resource]:
    where.check()
    clusters = list(where.pages("rds", "describe_db_clusters", Filters=where.engine_filter(kind)))
    instances = list(where.pages("rds", "describe_db_instances", Filters=where.engine_filter(kind)))
    return clusters_and_members(
        kind,
        clusters,
        instances,
        where.pending(),
        where.account,
        where.region,
        where.settings.matches,
    )


def describe_aurora(where: Location) -> list[Resource]:
    return _describe_clusters(where, "aurora")


def describe_docdb(where: Location) -> list[Resource]:
    return _describe_clusters(where, "docdb")


def describe_elasticache(where: Location) -> list[Resource]:
    where.check()
    clusters = list(where.pages("elasticache", "describe_cache_clusters", ShowCacheNodeInfo=True))
    groups = where.replication_groups()
    settings = where.settings
    # Asked whether or not tags filter: a node's login is in its secret tag. One call per
    # 100 tagged resources; AWS filters here already (AND over the filters), and the local
    # filter then agrees.
    filters = [{"Key": k, "Values": [v]} if v is not None else {"Key": k} for k, v in settings.tags]
    tags = {
        str(item["ResourceARN"]): {str(t["Key"]): str(t.get("Value", "")) for t in item["Tags"]}
        for item in where.pages(
            "resourcegroupstaggingapi",
            "get_resources",
            ResourceTypeFilters=["elasticache"],
            TagFilters=filters,
        )
    }
    return cache_nodes(clusters, groups, tags, where.account, where.region, settings.matches)


def describe_docdb_elastic(where: Location) -> list[Resource]:
    where.check()
    client = where.client("docdb-elastic")
    kept: list[tuple[Mapping[str, Any], Mapping[str, str]]] = []
    for listed in where.pages("docdb-elastic", "list_clusters"):
        arn = str(listed["clusterArn"])
        try:
            tags = client.list_tags_for_resource(resourceArn=arn).get("tags") or {}
            where.check()
            if not where.settings.matches(tags):
                continue
            kept.append((client.get_cluster(clusterArn=arn)["cluster"], tags))
        except Exception as exc:
            # Deleted between the list and this call: gone, not a failure of the unit. The
            # code is read from the reply, not by botocore's class: this module is imported
            # on every pass, AWS or not, and botocore is imported only when AWS is called.
            if aws_error_code(exc) != "ResourceNotFoundException":
                raise
        where.check()
    return elastic_clusters(kept, where.account, where.region)


DESCRIBE: Final[Mapping[str, Callable[[Location], list[Resource]]]] = {
    "rds": describe_rds,
    "aurora": describe_aurora,
    "docdb": describe_docdb,
    "elasticache": describe_elasticache,
    "docdb-elastic": describe_docdb_elastic,
}
