"""The inventory of a discovered resource as series of its own target: ``aws_resource_info``
and the RDS inventory values (SPEC 10).

A passive source: it makes no call, it reads the resource as the discovery cache holds it
when the target is collected. So a new engine version, a changed tag or a new pending
maintenance action shows up without the target being rebuilt (its connections and QPS
state stay).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..config import ResourceKey
from ..model import SourceFailure
from .resources import Resource

SOURCE_NAME: Final = "inventory"
INFO: Final = "aws_resource_info"
ALLOCATED_STORAGE: Final = "aws_rds_allocated_storage_bytes"
PENDING_MAINTENANCE: Final = "aws_rds_pending_maintenance_actions"
CERTIFICATE_EXPIRY: Final = "aws_rds_certificate_expiry_timestamp_seconds"
BACKUP_RETENTION: Final = "aws_rds_backup_retention_days"
INFO_LABELS: Final = (
    "kind",
    "engine",
    "engine_version",
    "instance_class",
    "region",
    "account",
    "cluster",
    "role",
)
# An ElastiCache node's info series also names its replication group and shard (NodeGroupId),
# "" for a cache cluster of no group; ``role`` is then primary / replica (SPEC 18).
CACHE_NODE_LABELS: Final = ("replication_group", "shard")


def inventory_families(
    resource: Resource, tag_labels: tuple[tuple[str, str], ...]
) -> Iterator[Metric]:
    key = resource.key
    cache_node = key.kind == "elasticache_node"
    info = GaugeMetricFamily(
        INFO,
        "1 for each discovered AWS resource, labelled with what its Describe answer says.",
        labels=[
            *INFO_LABELS,
            *(CACHE_NODE_LABELS if cache_node else ()),
            *(label for _, label in tag_labels),
        ],
    )
    info.add_metric(
        [
            key.kind,
            resource.engine,
            resource.engine_version,
            resource.instance_class,
            key.region,
            key.account,
            resource.cluster,
            resource.role,
            *((resource.replication_group or "", resource.shard or "") if cache_node else ()),
            *(resource.tag(tag) or "" for tag, _ in tag_labels),
        ],
        1.0,
    )
    yield info
    values = (
        (
            ALLOCATED_STORAGE,
            "Storage allocated to the RDS instance, bytes.",
            resource.allocated_storage_bytes,
        ),
        (
            PENDING_MAINTENANCE,
            "Maintenance actions pending for the resource (DescribePendingMaintenanceActions).",
            resource.pending_maintenance,
        ),
        (
            CERTIFICATE_EXPIRY,
            "Unix time the instance's server certificate expires (CertificateDetails.ValidTill).",
            resource.certificate_expiry,
        ),
        (
            BACKUP_RETENTION,
            "Days automated backups are kept (0: backups off).",
            resource.backup_retention_days,
        ),
    )
    for name, documentation, value in values:
        if value is not None:
            yield GaugeMetricFamily(name, documentation, value=float(value))


class InventorySource:
    name = SOURCE_NAME
    # Reads the discovery cache: no worker thread of its own (runner.is_passive).
    passive = True

    def __init__(
        self,
        key: ResourceKey,
        lookup: Callable[[ResourceKey], Resource | None],
        tag_labels: tuple[tuple[str, str], ...],
    ) -> None:
        self._key = key
        self._lookup = lookup
        self._tag_labels = tag_labels

    def ready(self) -> bool:
        """The cache is read as it is: never a wait (runner.is_ready)."""
        return True

    def collect(self) -> Iterator[Metric]:
        resource = self._lookup(self._key)
        if resource is None:  # only between a refresh and the next reconcile
            raise SourceFailure("not_discovered", "the resource is no longer discovered")
        yield from inventory_families(resource, self._tag_labels)
