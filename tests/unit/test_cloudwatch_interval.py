"""CLOUDWATCH_INTERVAL_SECONDS and the datapoints of a query: each metric is asked at most
that often and never more often than its own period; a query's points newer than the last
one handed out are the samples, each at its own time; between queries the newest known point
is offered again (the Pushgateway's group needs it; timestamp sinks send it once). Answers
come from botocore's Stubber (moto has the real points in tests/integration)."""

from __future__ import annotations

import time
from typing import Any

from middleware_monitoring.cloudwatch import CloudWatchBatch
from middleware_monitoring.model import PassResult
from tests.unit.cloudwatch_helpers import (
    NOW,
    REFERENCE_ENV,
    WINDOW_END,
    batch_pass,
    cloudwatch_targets,
    counts,
    metric_result,
    self_metrics,
    settings,
    stubbed_client,
)

Points = dict[tuple[str, str], list[tuple[float, float]]]
# The reference fleet's CloudWatch-only part: 2 DocumentDB instances x 6, a cluster x 3, an
# ElastiCache cluster x 14. Queries q12-q14 are the cluster's Volume* metrics (300 s).
QUERIES = 29
VOLUME = range(12, 15)


def points(result: PassResult) -> Points:
    """(instance, series) -> [(time, value)] of the pass, for one label set per series."""
    out: Points = {}
    for group in result.targets:
        for family in group.families:
            if family.name.startswith("middleware_"):
                continue
            for sample in family.samples:
                out.setdefault((group.target, sample.name), []).append(
                    (float(sample.timestamp or 0), sample.value)
                )
    return out


def batch_at(clock: list[float], env: dict[str, str], client: Any) -> tuple[CloudWatchBatch, Any]:
    loaded = settings(env)
    batch = CloudWatchBatch(
        loaded.cloudwatch, client_factory=lambda: client, clock=lambda: clock[0]
    )
    return batch, cloudwatch_targets(loaded, batch)


def test_five_minute_interval_asks_once_and_hands_out_every_new_point() -> None:
    client, stubber, calls = stubbed_client()
    clock = [NOW]
    batch, targets = batch_at(
        clock, {**REFERENCE_ENV, "CLOUDWATCH_INTERVAL_SECONDS": "300"}, client
    )
    first_points: list[tuple[float, float]] = [
        (WINDOW_END - 180, 1.0),
        (WINDOW_END - 60, 3.0),
        (WINDOW_END - 120, 2.0),
    ]
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, first_points) for i in range(QUERIES)]},
    )
    # Five minutes later: the point already handed out again, and five new minutes.
    later: list[tuple[float, float]] = [(WINDOW_END - 60, 3.0)] + [
        (float(WINDOW_END + 60 * k), 10.0 + k) for k in range(5)
    ]
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, later) for i in range(QUERIES)]},
    )
    with stubber:
        cold = batch_pass(targets, batch)
        clock[0] = NOW + 60
        between = batch_pass(targets, batch)
        clock[0] = NOW + 300
        due = batch_pass(targets, batch)
    stubber.assert_no_pending_responses()

    cpu = ("docdb:docdb-1", "mongo_cpu_utilization")
    # After a cold start: every point of the look-back, oldest first, at its own time.
    assert points(cold)[cpu] == [
        (WINDOW_END - 180, 1.0),
        (WINDOW_END - 120, 2.0),
        (WINDOW_END - 60, 3.0),
    ]
    assert self_metrics(cold) == counts(calls=1, requested=QUERIES, missing=0, failed=0)
    # A minute later nothing is asked; each series offers its newest known point again.
    assert points(between)[cpu] == [(WINDOW_END - 60, 3.0)]
    assert len(points(between)) == QUERIES
    assert self_metrics(between) == counts(calls=0, requested=0, missing=0, failed=0)
    # Five minutes on: one query, the five new points only.
    assert points(due)[cpu] == [(WINDOW_END + 60 * k, 10.0 + k) for k in range(5)]
    assert self_metrics(due) == counts(calls=1, requested=QUERIES, missing=0, failed=0)
    assert len(calls) == 2
    # The window reaches back over the interval at least (defaults: 900 s look-back).
    assert calls[1]["EndTime"].timestamp() - calls[1]["StartTime"].timestamp() >= 900


def test_a_metric_is_never_asked_more_often_than_its_period() -> None:
    client, stubber, calls = stubbed_client()
    clock = [NOW]
    batch, targets = batch_at(clock, REFERENCE_ENV, client)
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, [(WINDOW_END - 60, 1.0)]) for i in range(QUERIES)]},
    )
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, [(WINDOW_END, 2.0)]) for i in range(QUERIES - 3)]},
    )
    with stubber:
        batch_pass(targets, batch)
        clock[0] = NOW + 60
        result = batch_pass(targets, batch)
    asked = [q["MetricStat"]["Metric"]["MetricName"] for q in calls[1]["MetricDataQueries"]]
    # Every minute (the default interval) but the cluster's Volume* metrics (300 s).
    assert len(asked) == QUERIES - 3
    assert not {"VolumeBytesUsed", "VolumeReadIOPs", "VolumeWriteIOPs"} & set(asked)
    assert self_metrics(result) == counts(calls=1, requested=QUERIES - 3, missing=0, failed=0)
    # Their value is still there, the newest known.
    assert points(result)[("docdb-cluster:docdb-c", "mongo_volume_bytesused")] == [
        (WINDOW_END - 60, 1.0)
    ]


def test_a_pass_may_name_its_own_statistics_and_state_survives() -> None:
    client, stubber, calls = stubbed_client()
    clock = [NOW]
    batch, _ = batch_at(clock, REFERENCE_ENV, client)
    every = batch.stats
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, [(WINDOW_END - 60, 1.0)]) for i in range(5)]},
    )
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                metric_result(i, [(WINDOW_END - 60, 1.0)]) for i in range(QUERIES - 5)
            ]
        },
    )
    with stubber:
        batch.start(time.monotonic() + 30, stats=every[:5])
        batch.result()
        # The same minute, every statistic: the five asked a moment ago are not due.
        batch.start(time.monotonic() + 30)
        current = batch.result()
    assert [len(c["MetricDataQueries"]) for c in calls] == [5, QUERIES - 5]
    assert {stat: pts for stat, pts in current.points.items() if stat in every[:5]} == {
        stat: [(WINDOW_END - 60, 1.0)] for stat in every[:5]
    }


def test_a_metric_without_a_datapoint_is_asked_again_after_its_period() -> None:
    """CloudWatch late for one metric: with a 5-minute interval it is asked again a minute
    later (its own period), the others keep to the interval."""
    client, stubber, calls = stubbed_client()
    clock = [NOW]
    batch, targets = batch_at(
        clock, {**REFERENCE_ENV, "CLOUDWATCH_INTERVAL_SECONDS": "300"}, client
    )
    answers = [metric_result(i, [(WINDOW_END - 60, 1.0)]) for i in range(QUERIES)]
    answers[0] = metric_result(0, [])
    stubber.add_response("get_metric_data", {"MetricDataResults": answers})
    stubber.add_response(
        "get_metric_data", {"MetricDataResults": [metric_result(0, [(WINDOW_END, 4.0)])]}
    )
    with stubber:
        first = batch_pass(targets, batch)
        clock[0] = NOW + 60
        second = batch_pass(targets, batch)
    assert self_metrics(first) == counts(calls=1, requested=QUERIES, missing=1, failed=0)
    assert [q["MetricStat"]["Metric"]["MetricName"] for q in calls[1]["MetricDataQueries"]] == [
        "CPUUtilization"
    ]
    assert self_metrics(second) == counts(calls=1, requested=1, missing=0, failed=0)
    assert points(second)[("docdb:docdb-1", "mongo_cpu_utilization")] == [(WINDOW_END, 4.0)]
