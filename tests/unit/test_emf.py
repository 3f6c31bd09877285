"""EMF sink details that a real pass rarely shows: EMF's 100-metric limit, empty and NaN
values, units of series the unit table does not name."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from middleware_monitoring.emf import EmfSink, unit_for
from middleware_monitoring.model import PassResult, TargetResult


def lines(capsys) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def result_of(*families) -> PassResult:
    return PassResult([TargetResult("db", list(families), [])], 0.5, TargetResult("c", [], []))


def test_more_than_100_metrics_of_one_dimension_set_are_split(capsys):
    families = [GaugeMetricFamily(f"g{i:03}", "doc", value=float(i)) for i in range(250)]
    EmfSink("NS", ("*",)).send(result_of(*families))
    emitted = lines(capsys)
    assert [len(line["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for line in emitted] == [
        100,
        100,
        50,
    ]
    values = {name: line[name] for line in emitted for name in line if name.startswith("g")}
    assert values == {f"g{i:03}": [float(i)] for i in range(250)}


def test_empty_label_is_a_none_dimension_and_nan_is_left_out(capsys):
    family = GaugeMetricFamily("pg_user_connection_count", "doc", labels=["username"])
    family.add_metric([""], 2)
    family.add_metric(["app"], float("nan"))
    EmfSink("NS", ("*",)).send(result_of(family))
    (line,) = lines(capsys)
    assert (line["username"], line["instance"], line["pg_user_connection_count"]) == (
        "none",
        "db",
        [2.0],
    )


def test_counter_total_series_and_unknown_names(capsys):
    counter = CounterMetricFamily("middleware_query_stream_messages_sent", "doc", value=7)
    EmfSink("NS", ("*",)).send(result_of(counter))
    (line,) = lines(capsys)
    (metric,) = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    assert (metric["Name"], metric["Unit"], line[metric["Name"]]) == (
        "middleware_query_stream_messages_sent_total",
        "Count",
        [7.0],
    )
    assert unit_for(GaugeMetricFamily("mongo_opcounters_insert", "d")).value == "Count"
    assert unit_for(GaugeMetricFamily("x_bytes", "d")).value == "Bytes"
    assert unit_for(GaugeMetricFamily("mongo_up", "d")).value == "None"


def test_the_collectors_own_series_carry_their_shard(capsys):
    collector = TargetResult(
        "c", [GaugeMetricFamily("middleware_pass_timestamp_seconds", "doc", value=1.8e9)], []
    )
    up = GaugeMetricFamily("pg_up", "doc", value=1)
    EmfSink("NS").send(PassResult([TargetResult("db", [up], [])], 0.5, collector, 3))
    by_metric = {
        name: line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        for line in lines(capsys)
        for name in line
        if name in ("pg_up", "middleware_pass_timestamp_seconds")
    }
    # Each shard's pass timestamp is a metric of its own; a target's series stay as they were.
    assert by_metric == {
        "pg_up": [["instance"]],
        "middleware_pass_timestamp_seconds": [["instance", "shard"]],
    }


def test_points_whose_printing_failed_are_printed_with_the_next_pass(capsys, monkeypatch):
    """A CloudWatch point counts as delivered once printed: when a pass's printing fails,
    its points go out with the next pass, where CloudWatch offers only the newest."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch

    def cpu(*points: tuple[float, float]) -> GaugeMetricFamily:
        family = GaugeMetricFamily("pg_cpu_utilization", "CPU.", labels=[])
        for when, value in points:
            family.add_metric([], value, timestamp=when)
        return family

    now = float(int(time.time()))  # EMF timestamps must be recent
    three = ((now - 180, 10.0), (now - 120, 11.0), (now - 60, 12.0))
    sink = EmfSink("NS", ("pg_cpu_utilization",))
    original = cloudwatch.AmazonCloudWatchEMFProvider.flush_metrics

    def broken(self, *args, **kwargs):
        raise OSError("stdout closed")

    monkeypatch.setattr(cloudwatch.AmazonCloudWatchEMFProvider, "flush_metrics", broken)
    with pytest.raises(OSError):
        sink.send(result_of(cpu(*three)))
    monkeypatch.setattr(cloudwatch.AmazonCloudWatchEMFProvider, "flush_metrics", original)
    capsys.readouterr()
    sink.send(result_of(cpu(three[-1])))
    printed = sorted(
        (line["_aws"]["Timestamp"], line["pg_cpu_utilization"])
        for line in lines(capsys)
        if "pg_cpu_utilization" in line
    )
    assert printed == [(int(when * 1000), [value]) for when, value in three]
    sink.send(result_of(cpu(three[-1])))
    assert [line for line in lines(capsys) if "pg_cpu_utilization" in line] == []
