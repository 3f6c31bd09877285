"""SPEC 19's bounds without servers: EMF_METRICS and what the EMF sink makes a metric of."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from middleware_monitoring.bounds import SeriesBudget, projected_cost
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


def gauge(name: str, labels: dict[str, str] | None = None, value: float = 1.0) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, "d", labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def a_pass() -> PassResult:
    statement = gauge("pg_query_calls", {"queryid": "1", "query": "SELECT 1", "user": "u"})
    table = gauge("pg_table_dead_tuples", {"table": "items"})
    health = gauge("middleware_collector_up", {"source": "postgres"})
    sizes = GaugeMetricFamily("pg_database_size_bytes", "d", labels=["database_name"])
    for name in ("b", "a"):
        sizes.add_metric([name], 10)
    b = TargetResult("b", [statement, table, gauge("pg_max_connections"), health, sizes], [])
    a = TargetResult("a", [gauge("pg_max_connections"), gauge("pg_up"), health], [])
    return PassResult([b, a], 0.1, TargetResult("collector", [gauge("middleware_pass_x")], []))


def series_of(result: PassResult) -> list[tuple[str, str, dict[str, str]]]:
    return [
        (group.target, s.name, s.labels)
        for group in result.groups()
        for f in group.families
        for s in f.samples
    ]


def test_without_a_budget_every_series_goes_and_is_counted() -> None:
    whole = a_pass()
    result, sent = SeriesBudget(None).apply(whole, "pushgateway")
    assert sent == 11
    assert series_of(result)[-1] == ("collector", "middleware_series_sent", {"sink": "pushgateway"})
    assert result.collector.families[-1].samples[0].value == 11
    # The pass collected is left as it was (the Kafka stream reads it).
    assert len(series_of(whole)) == 10


def test_without_a_budget_series_are_counted_once_and_not_ranked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No budget: nothing is ranked (series_class is per series, and was a fifth of a warm
    invocation's CPU); a series given twice (two CloudWatch points, the same labels in
    another order, two families of one name) still counts once; empty families go."""
    ranked: list[str] = []

    def series_class(family: str, labels: dict[str, str]) -> int:
        ranked.append(family)
        return 3

    monkeypatch.setattr("middleware_monitoring.bounds.series_class", series_class)
    points = GaugeMetricFamily("pg_cpu_utilization", "d", labels=["id"])
    points.add_metric(["db-1"], 10.0, timestamp=100.0)
    points.add_metric(["db-1"], 12.0, timestamp=160.0)
    again = GaugeMetricFamily("pg_x", "d", labels=["a", "b"])
    again.add_metric(["1", "2"], 1.0)
    reordered = GaugeMetricFamily("pg_x", "d", labels=["b", "a"])
    reordered.add_metric(["2", "1"], 1.0)
    empty = GaugeMetricFamily("pg_user_connection_count", "d", labels=["username"])
    other = gauge("pg_x", {"a": "1", "b": "2"})  # another target: another series
    whole = PassResult(
        [
            TargetResult("t", [points, again, reordered, empty], []),
            TargetResult("u", [other], []),
        ],
        0.1,
        TargetResult("collector", [], []),
    )
    result, sent = SeriesBudget(None).apply(whole, "pushgateway")
    # db-1's CPU, pg_x{a,b} of t, pg_x{a,b} of u, and middleware_series_sent.
    assert sent == 4
    assert ranked == []
    assert [f.name for f in result.targets[0].families] == ["pg_cpu_utilization", "pg_x", "pg_x"]
    assert result.targets[0].families[0] is points  # not copied: nothing was cut
    assert [f.name for f in whole.targets[0].families][-1] == "pg_user_connection_count"


SIZE = "pg_database_size_bytes"


@pytest.mark.parametrize(
    ("budget", "kept"),
    [
        # Own: 2 x middleware_collector_up, middleware_pass_x, sent, dropped = 5. Then the
        # ups, the older exporter's (by family name, target, labels), the rest, tables,
        # statements.
        (1, []),
        (5, []),
        (6, [("a", "pg_up", {})]),
        (7, [("a", "pg_up", {}), ("b", SIZE, {"database_name": "a"})]),
        (
            9,
            [
                ("a", "pg_up", {}),
                ("b", SIZE, {"database_name": "a"}),
                ("b", SIZE, {"database_name": "b"}),
                ("a", "pg_max_connections", {}),
            ],
        ),
        (
            11,
            [
                ("a", "pg_up", {}),
                ("b", SIZE, {"database_name": "a"}),
                ("b", SIZE, {"database_name": "b"}),
                ("a", "pg_max_connections", {}),
                ("b", "pg_max_connections", {}),
                ("b", "pg_table_dead_tuples", {"table": "items"}),
            ],
        ),
    ],
)
def test_a_budget_keeps_the_collectors_series_then_classes_in_a_stable_order(
    budget: int, kept: list[tuple[str, str, dict[str, str]]]
) -> None:
    whole = a_pass()
    result, sent = SeriesBudget(budget).apply(whole, "emf")
    assert len(series_of(whole)) == 10
    series = series_of(result)
    own = [s for s in series if s[1].startswith("middleware_")]
    assert len(own) == 5
    assert sorted(repr(s) for s in series if s not in own) == sorted(map(repr, kept))
    assert sent == len(series) == max(budget, 5)
    dropped = result.collector.families[-1]
    assert (dropped.name, dropped.samples[0].value) == ("middleware_series_dropped", 12 - sent)


def test_what_is_left_out_is_said_once_and_again_when_it_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = SeriesBudget(10)
    caplog.set_level("INFO", logger="middleware_monitoring.bounds")
    for _ in range(2):
        budget.apply(a_pass(), "pushgateway")
    (line,) = [
        (r.getMessage(), r.__dict__["left_out"], r.__dict__["dropped"]) for r in caplog.records
    ]
    assert line == ("series budget exceeded", {"pg_query_calls": 1, "pg_table_dead_tuples": 1}, 2)
    caplog.clear()
    budget.budget = 100
    budget.apply(a_pass(), "pushgateway")
    budget.apply(a_pass(), "pushgateway")
    assert [r.getMessage() for r in caplog.records] == ["series budget met again"]


def test_series_budget_and_schedule_settings() -> None:
    settings = load_settings({"SERIES_BUDGET": "5000", "SCHEDULE_MINUTES": "5"})
    assert (settings.series_budget, settings.schedule_minutes) == (5000, 5)
    assert (load_settings({}).series_budget, load_settings({}).schedule_minutes) == (None, 1)
    with pytest.raises(ConfigError) as caught:
        load_settings({"SERIES_BUDGET": "0", "SCHEDULE_MINUTES": "daily"})
    assert caught.value.problems == [
        "SERIES_BUDGET: expected a whole number from 1 to 100000000, got '0'",
        "SCHEDULE_MINUTES: expected a whole number from 1 to 1440, got 'daily'",
    ]


def test_projected_cost_per_sink() -> None:
    assert projected_cost("remote_write", 640, 1, None) == {
        "sink": "remote_write",
        "series_per_pass": 640,
        "passes_per_month": 43200,
        "monthly_samples": 27_648_000,
    }
    assert projected_cost("emf", 300, 5, 40) == {
        "sink": "emf",
        "series_per_pass": 300,
        "passes_per_month": 8640,
        "monthly_custom_metrics": 40,
    }
    assert projected_cost("pushgateway", 300, 1, None) == {
        "sink": "pushgateway",
        "series_per_pass": 300,
        "passes_per_month": 43200,
    }
