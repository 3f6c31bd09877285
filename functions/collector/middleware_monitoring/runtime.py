"""What lives as long as a function instance: settings, targets (with their connections
and state) and the sink. Built once on the first invocation, reused while warm."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .cloudwatch import CloudWatchBatch, declarations
from .config import ConfigError, Settings, load_settings
from .credentials import SecretStore, docdb_secret_login, pg_secret_login
from .model import PassResult, Prefetch, Source, Target
from .postgres.connection import PgConnection
from .postgres.source import PostgresSource
from .runner import run_pass
from .sinks import PushgatewaySink, Sink, StdoutSink

logger = logging.getLogger(__name__)


def build_targets(
    settings: Settings,
    cloudwatch: CloudWatchBatch | None = None,
    secrets: SecretStore | None = None,
) -> list[Target]:
    """``cloudwatch`` is the pass's CloudWatch batch; without it no CloudWatch source is made."""
    targets: list[Target] = []
    secrets = secrets or SecretStore(settings.secret_store)
    if settings.postgres is not None:
        pg_connection = None
        if settings.postgres.secret_arn is not None:
            pg_connection = PgConnection(
                settings.postgres, login=pg_secret_login(settings.postgres, secrets)
            )
        pg_sources: list[Source] = [PostgresSource(settings.postgres, pg_connection)]
        if cloudwatch is not None and settings.postgres.rds_id:
            pg_sources.append(
                cloudwatch.source(
                    declarations.rds(settings.postgres.rds_id, settings.postgres.rds_type)
                )
            )
        targets.append(Target(settings.postgres.target_name, pg_sources))
    if settings.docdb:
        # Imported here: pymongo is a heavy import (0.3 s measured on 3.12), paid only when
        # DocumentDB is used.
        from .docdb.source import DocumentDBSource

        for docdb in settings.docdb:
            login = docdb_secret_login(docdb, secrets) if docdb.secret_arn else None
            targets.append(Target(docdb.target_name, [DocumentDBSource(docdb, login=login)]))
    if cloudwatch is not None:
        targets.extend(cloudwatch_targets(settings, cloudwatch))
    _check_unique_names(targets, settings.collector_instance)
    return targets


def _check_unique_names(targets: list[Target], collector_instance: str) -> None:
    """Each name is a Pushgateway group: two targets of one name would overwrite each other."""
    seen: dict[str, int] = {}
    for name in [collector_instance, *(target.name for target in targets)]:
        seen[name] = seen.get(name, 0) + 1
    repeated = sorted(name for name, count in seen.items() if count > 1)
    if repeated:
        raise ConfigError(
            [
                f"target names: {', '.join(map(repr, repeated))} used more than once "
                "(PG_TARGET_NAME, AWS_RDS_INSTANCE_ID, MONGO_INFO name/address, "
                "COLLECTOR_INSTANCE_NAME); each target is one Pushgateway group and needs "
                "its own name"
            ]
        )


def cloudwatch_targets(settings: Settings, cloudwatch: CloudWatchBatch) -> list[Target]:
    """One target per DocumentDB / ElastiCache id; the kind prefix keeps a DocumentDB
    instance and cluster of the same name (a common naming) in separate groups."""
    config = settings.cloudwatch
    if config is None:
        return []
    rds = config.rds_only
    made = [
        *([(rds.identifier, declarations.rds(rds.identifier, rds.dimension))] if rds else []),
        *((f"docdb:{i}", declarations.docdb_instance(i)) for i in config.docdb_instances),
        *((f"docdb-cluster:{i}", declarations.docdb_cluster(i)) for i in config.docdb_clusters),
        *(
            (
                f"elasticache:{e.cluster}" + (f":{e.node}" if e.node else ""),
                declarations.elasticache(e.cluster, e.node),
            )
            for e in config.elasticache
        ),
    ]
    return [Target(name, [cloudwatch.source(declared)]) for name, declared in made]


def build_sink(settings: Settings, secrets: SecretStore | None = None) -> Sink:
    if settings.sink == "emf":
        from .emf import EmfSink

        return EmfSink(settings.emf_namespace)
    if settings.sink == "remote_write":
        from .remote_write import RemoteWriteSink

        store = None
        if settings.remote_write.secret_arn is not None:
            store = secrets or SecretStore(settings.secret_store)
        return RemoteWriteSink(settings.remote_write, settings.pushgateway.job, secrets=store)
    return PushgatewaySink(settings.pushgateway)


@dataclass
class Runtime:
    settings: Settings
    targets: list[Target]
    # Per-pass work shared by several targets (the CloudWatch batch).
    prefetches: list[Prefetch] = field(default_factory=list)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Runtime:
        settings = load_settings(environ)
        cloudwatch = CloudWatchBatch(settings.cloudwatch) if settings.cloudwatch else None
        return cls(
            settings, build_targets(settings, cloudwatch), [cloudwatch] if cloudwatch else []
        )

    def collect(self, budget_seconds: float) -> PassResult:
        return run_pass(
            self.targets,
            deadline=time.monotonic() + budget_seconds,
            max_workers=self.settings.max_workers,
            collector_instance=self.settings.collector_instance,
            prefetches=self.prefetches,
        )


def collection_budget(remaining_seconds: float, reserve_seconds: float) -> float:
    """Time the pass may collect: what is left before the deadline less what the push may
    take. A reserve above half the time left would leave collection (almost) nothing, every
    target down by deadline; then half is kept for each, and the log says which settings
    to change."""
    if reserve_seconds <= remaining_seconds / 2:
        return remaining_seconds - reserve_seconds
    logger.warning(
        "push reserve too large for the function timeout",
        extra={
            "detail": f"the push may take {reserve_seconds:.1f} s with every attempt timing out, "
            f"of {remaining_seconds:.1f} s left: collecting for half of it. Lower "
            "PUSHGATEWAY_TIMEOUT_SECONDS / PUSHGATEWAY_RETRIES (REMOTE_WRITE_TIMEOUT_SECONDS / "
            "REMOTE_WRITE_RETRIES, KAFKA_TIMEOUT_SECONDS) or raise the function timeout",
        },
    )
    return remaining_seconds / 2


def stdout_sink() -> Sink:
    return StdoutSink(sys.stdout.buffer.write)


def summary(result: PassResult) -> dict[str, object]:
    """What an invocation returns and logs: short enough to read in the Lambda console."""
    down = [t.target for t in result.targets if not t.up]
    return {
        "targets_up": len(result.targets) - len(down),
        "targets_down": down,
        "series": result.series_count(),
        "duration_seconds": round(result.duration_seconds, 3),
    }
