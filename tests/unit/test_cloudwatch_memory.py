"""What a CloudWatch batch keeps in a long-lived function instance: only the statistics of
targets still in use, and state only for statistics a pass has had in the last hour."""

from __future__ import annotations

import gc
import time
from typing import Any

from middleware_monitoring.cloudwatch import CloudWatchBatch
from middleware_monitoring.cloudwatch.source import FORGET_AFTER_SECONDS
from tests.unit.cloudwatch_helpers import (
    NOW,
    WINDOW_END,
    build_targets,
    metric_result,
    settings,
    stubbed_client,
)

ONE = {"AWS_REGION": "eu-west-1", "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["a"]}'}
OTHER = {"AWS_REGION": "eu-west-1", "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["b"]}'}


def cluster_ids(stats: Any) -> set[str]:
    return {value for stat in stats for _, value in stat.dimensions}


def test_statistics_and_their_state_go_with_the_target() -> None:
    client, stubber, _ = stubbed_client()
    clock = [NOW]
    loaded = settings(ONE)
    batch = CloudWatchBatch(
        loaded.cloudwatch,
        client_factory=lambda: client,
        clock=lambda: clock[0],
        monotonic=time.monotonic,
        concurrent_calls=1,
    )
    first = build_targets(loaded, batch)
    stats = batch.stats
    assert cluster_ids(stats) == {"a"}
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, [(WINDOW_END, 1.0)]) for i in range(len(stats))]},
    )
    with stubber:
        batch.start(time.monotonic() + 30, stats)
        batch.result()
    assert cluster_ids(batch._state) == {"a"}

    # Target "a" leaves and "b" comes: "a"'s statistics are no longer declared.
    del first
    gc.collect()
    second = build_targets(settings(OTHER), batch)
    assert cluster_ids(batch.stats) == {"b"}
    # "a"'s state is kept for a while (a function instance serves shards in turn), then
    # forgotten once no pass has had it for FORGET_AFTER_SECONDS.
    others = batch.stats
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, []) for i in range(len(others))]},
    )
    clock[0] = NOW + 60
    with stubber:
        batch.start(time.monotonic() + 30, others)
        batch.result()
    assert cluster_ids(batch._state) == {"a", "b"}
    clock[0] = NOW + FORGET_AFTER_SECONDS + 61
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, []) for i in range(len(others))]},
    )
    with stubber:
        batch.start(time.monotonic() + 30, others)
        batch.result()
    assert cluster_ids(batch._state) == {"b"}
    assert len(second) == 1
