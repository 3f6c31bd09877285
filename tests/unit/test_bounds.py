"""SPEC 19's bounds without servers: EMF_METRICS and what the EMF sink makes a metric of."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from middleware_monitoring.config import ConfigError, load_settings
from middleware_monitoring.emf import EmfSelection, EmfSink
from middleware_monitoring.model import PassResult, TargetResult


def printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_emf_metrics_is_a_list_of_names_or_patterns() -> None:
    settings = load_settings({"EMF_METRICS": " pg_table_*, pg_database_xact_commit ,"})
    assert settings.emf_metrics == ("pg_table_*", "pg_database_xact_commit")
    assert load_settings({}).emf_metrics == ()


@pytest.mark.parametrize("raw", ["pg_table_* pg_x", "pg_query_calls;", ",", "a/b"])
def test_a_wrong_emf_metrics_names_the_variable_and_the_shape(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"EMF_METRICS": raw})
    assert caught.value.problems == [
        "EMF_METRICS: expected series names or glob patterns, comma separated (e.g. "
        f"pg_database_xact_commit,pg_table_*), got {raw!r}"
    ]


def test_selection_of_dimensions() -> None:
    default = EmfSelection()
    labels = {"database_name": "app"}
    assert (
        default.kept_labels("pg_database_size_bytes", "pg_database_size_bytes", labels)
        == frozenset()
    )
    assert default.kept_labels("pg_cpu_utilization", "pg_cpu_utilization", {"x": "1"}) == frozenset(
        {"x"}
    )
    assert default.kept_labels(
        "middleware_collector_up", "middleware_collector_up", {"source": "pg"}
    ) == frozenset({"source"})
    assert default.kept_labels("middleware_collector_info", "middleware_collector_info", {}) is None
    assert (
        default.kept_labels("pg_database_xact_commit", "pg_database_xact_commit_total", labels)
        is None
    )
    opted = EmfSelection(("pg_database_xact_commit_total", "pg_query_*"))
    assert opted.kept_labels(
        "pg_database_xact_commit", "pg_database_xact_commit_total", labels
    ) == frozenset({"database_name"})
    assert opted.kept_labels(
        "pg_query_calls", "pg_query_calls", {"query": "q", "queryid": "1", "user": "u"}
    ) == frozenset({"user"})
    # Opting a default series in gives it all its labels as dimensions.
    assert EmfSelection(("pg_database_size_bytes",)).kept_labels(
        "pg_database_size_bytes", "pg_database_size_bytes", labels
    ) == frozenset({"database_name"})


def test_a_series_that_is_no_metric_is_a_plain_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    commits = CounterMetricFamily("pg_database_xact_commit", "d", labels=["database_name"])
    commits.add_metric(["app"], 12)
    deadlocks = CounterMetricFamily("pg_database_deadlocks", "d", labels=["database_name"])
    deadlocks.add_metric(["app"], 0)
    up = GaugeMetricFamily("pg_up", "d", value=1)
    result = PassResult(
        [TargetResult("db", [up, commits, deadlocks], [])], 0.1, TargetResult("c", [], [])
    )
    sink = EmfSink("NS")
    sink.send(result)
    (metric, logged) = printed(capsys)
    assert metric["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "pg_up", "Unit": "None"}]
    assert logged == {
        "instance": "db",
        "database_name": "app",
        "pg_database_xact_commit_total": 12.0,
        "pg_database_deadlocks_total": 0.0,
    }
    assert sink.last_custom_metrics == 1
