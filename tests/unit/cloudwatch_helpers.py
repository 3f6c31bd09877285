"""Shared by the CloudWatch unit tests: a stubbed client, a fixed clock, pass samples."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import botocore.session
from botocore.stub import Stubber

from middleware_monitoring.aws import AwsSessions
from middleware_monitoring.cloudwatch import CloudWatchBatch
from middleware_monitoring.cloudwatch.batches import CloudWatchBatches
from middleware_monitoring.config import (
    CloudWatchSettings,
    CloudWatchTarget,
    Settings,
    load_settings,
)
from middleware_monitoring.model import PassResult, Target
from middleware_monitoring.runner import run_pass
from middleware_monitoring.targets import TargetBuilder

# A fixed "now": 2027-01-15 08:00:30 UTC. Window with the defaults (900 s back, 60 s delay):
# end 07:59:00, start 07:40:00 (aligned to 5 minutes).
NOW = 1_800_000_030.0
WINDOW_END = 1_799_999_940
WINDOW_START = 1_799_998_800

REFERENCE_ENV = {
    "AWS_REGION": "eu-west-1",
    "AWS_MONGO_INSTANCE_INFO": (
        '{"DBInstanceIdentifier": ["docdb-1", "docdb-2"], "DBClusterIdentifier": ["docdb-c"]}'
    ),
    "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["redis-001"]}',
}

SELF_METRICS = (
    "middleware_cloudwatch_getmetricdata_calls",
    "middleware_cloudwatch_metrics_requested",
    "middleware_cloudwatch_metrics_missing",
    "middleware_cloudwatch_metrics_failed",
)


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def stubbed_client() -> tuple[Any, Stubber, list[dict[str, Any]]]:
    """A real botocore CloudWatch client whose calls are answered by a Stubber; the third
    element collects every GetMetricData request's parameters."""
    client = botocore.session.get_session().create_client(
        "cloudwatch",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    calls: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    client.meta.events.register("before-parameter-build.cloudwatch.GetMetricData", capture)
    return client, Stubber(client), calls


def settings(env: dict[str, str] | None = None) -> Any:
    return load_settings(env if env is not None else REFERENCE_ENV)


def batch_for(cw: CloudWatchSettings, client: Any) -> CloudWatchBatch:
    # Stubber answers in the order calls arrive: one call at a time keeps each answer with
    # its call (concurrent calls are shown against moto in test_cloudwatch_moto.py).
    return CloudWatchBatch(
        cw,
        client_factory=lambda: client,
        clock=lambda: NOW,
        monotonic=time.monotonic,
        concurrent_calls=1,
    )


def build_targets(
    loaded: Settings, batch: CloudWatchBatch, *, cloudwatch_only: bool = False
) -> list[Target]:
    """The targets of ``loaded`` as the function builds them, every CloudWatch source
    reading from ``batch`` (one stubbed or stand-in client)."""
    batches = CloudWatchBatches(
        loaded.cloudwatch, AwsSessions(loaded.cloudwatch.region), batch_factory=lambda _: batch
    )
    builder = TargetBuilder(loaded, cloudwatch=batches)
    return [
        builder.build(spec)
        for spec in loaded.targets
        if not cloudwatch_only or isinstance(spec, CloudWatchTarget)
    ]


def cloudwatch_targets(loaded: Settings, batch: CloudWatchBatch) -> list[Target]:
    return build_targets(loaded, batch, cloudwatch_only=True)


def cloudwatch_pass(env: dict[str, str], client: Any) -> tuple[PassResult, CloudWatchBatch]:
    """One pass over the CloudWatch targets the environment declares (no PostgreSQL)."""
    loaded = settings(env)
    batch = batch_for(loaded.cloudwatch, client)
    targets: list[Target] = build_targets(loaded, batch)
    return batch_pass(targets, batch), batch


def batch_pass(targets: list[Target], batch: CloudWatchBatch, *, seconds: float = 30) -> PassResult:
    """One pass as the function runs it, ``batch`` fetching before the targets read it; the
    deadline is ``seconds`` away (negative: already past)."""
    return run_pass(
        targets,
        deadline=time.monotonic() + seconds,
        max_workers=4,
        collector_instance="collector",
        prefetches=[batch],
    )


def series(result: PassResult) -> dict[tuple[str, str, frozenset[tuple[str, str]]], float]:
    """(instance, series name, labels) -> value, for every target series of the pass but
    the health ones (the collector's pass-wide group is ``self_metrics``)."""
    out = {}
    for group in result.targets:
        for family in group.families:
            if family.name.startswith(("middleware_collector_", "middleware_target_")):
                continue
            for sample in family.samples:
                out[(group.target, sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def outcomes(result: PassResult) -> dict[str, tuple[bool, str | None, str | None]]:
    return {
        t.target: (o.up, o.reason, o.detail)
        for t in result.targets
        for o in t.outcomes
        if o.source == "cloudwatch"
    }


def self_metrics(result: PassResult) -> dict[str, float]:
    return {f.name: f.samples[0].value for f in result.collector.families if f.name in SELF_METRICS}


def counts(*, calls: float, requested: float, missing: float, failed: float) -> dict[str, float]:
    """What ``self_metrics`` gives for a pass with these counts (all four, so a test that
    compares with it pins every one)."""
    return dict(zip(SELF_METRICS, map(float, (calls, requested, missing, failed)), strict=True))


def metric_result(
    i: int, points: list[tuple[float, float]], status: str = "Complete", **extra: Any
) -> dict[str, Any]:
    """One MetricDataResults entry for query ``q{i}``: (unix time, value) points as given."""
    return {
        "Id": f"q{i}",
        "Label": f"q{i}",
        "Timestamps": [at(t) for t, _ in points],
        "Values": [v for _, v in points],
        "StatusCode": status,
        **extra,
    }
