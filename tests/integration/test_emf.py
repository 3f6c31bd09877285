"""METRICS_SINK=emf over a real PostgreSQL pass: the EMF lines CloudWatch would receive,
parsed back and compared series by series with what the pass collected."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

import pytest

from middleware_monitoring.emf import HIGH_CARDINALITY_LABELS
from middleware_monitoring.model import PassResult
from middleware_monitoring.runtime import Runtime, build_sink
from tests.helpers import closing
from tests.integration.pg_helpers import (
    APP,
    APP_DB,
    APP_PASSWORD,
    MONITOR,
    MONITOR_PASSWORD,
    prepare,
)
from tests.standins.postgres import PostgresServer

NAMESPACE = "Test/MiddlewareMonitoring"
TARGET = "orders-db"
STATEMENT = "SELECT count(*) FROM items WHERE id < 40"

Key = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture(scope="module")
def pg(pg17: PostgresServer) -> PostgresServer:
    server = prepare(pg17)
    app = server.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
    try:
        for _ in range(3):
            app.run(STATEMENT)
    finally:
        app.close()
    return server


def emf_lines(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def one_pass(pg: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> PassResult:
    # In Lambda the template sets the service name for the logger; it must not become a
    # dimension of every metric.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "middleware-monitoring")
    environ = {
        **pg.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": TARGET,
        "PG_QPS_SAMPLE_SECONDS": "0",
        "PG_STATEMENTS_TOP_N": "1000",
        "METRICS_SINK": "emf",
        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        # Every series a CloudWatch metric: the default set is test_emf_cost.py's.
        "EMF_METRICS": "*",
    }
    with closing(Runtime.from_environ(environ)) as runtime:
        result = runtime.collect(20.0)
        build_sink(runtime.settings).send(result)
    return result


def test_with_emf_metrics_star_every_series_of_the_pass_is_an_emf_metric(pg, monkeypatch, capsys):
    result = one_pass(pg, monkeypatch)
    lines = emf_lines(capsys.readouterr().out)
    assert lines

    expected: dict[Key, list[float]] = defaultdict(list)
    for group in result.groups():
        for family in group.families:
            for sample in family.samples:
                if not math.isfinite(sample.value) or sample.name.endswith("_created"):
                    continue
                dims = {k: v or "none" for k, v in sample.labels.items()}
                for label in HIGH_CARDINALITY_LABELS:
                    dims.pop(label, None)
                dims["instance"] = group.target
                if group is result.collector:  # each shard's own pass-wide series
                    dims["shard"] = "0"
                expected[(sample.name, frozenset(dims.items()))].append(sample.value)

    emitted: dict[Key, list[float]] = defaultdict(list)
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        (dimension_names,) = directive["Dimensions"]
        assert "service" not in dimension_names
        assert not HIGH_CARDINALITY_LABELS & set(dimension_names)
        assert len(directive["Metrics"]) <= 100
        line_dims = frozenset((name, line[name]) for name in dimension_names)
        for metric in directive["Metrics"]:
            values = line[metric["Name"]]
            emitted[(metric["Name"], line_dims)].extend(
                values if isinstance(values, list) else [values]
            )
    assert {k: sorted(v) for k, v in emitted.items()} == {k: sorted(v) for k, v in expected.items()}


def test_units_dimensions_and_values_of_postgres_series(pg, monkeypatch, capsys):
    result = one_pass(pg, monkeypatch)
    lines = emf_lines(capsys.readouterr().out)
    units: dict[str, str] = {}
    for line in lines:
        for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            units[metric["Name"]] = metric["Unit"]
    assert {
        name: units[name]
        for name in (
            "pg_up",
            "pg_total_connections",
            "pg_uptime_seconds",
            "pg_database_size_bytes",
            "pg_query_calls",
            "pg_query_mean_exec_time",
            "pg_query_hit_percent",
            "middleware_collector_up",
            "middleware_collector_duration_seconds",
            "middleware_pass_duration_seconds",
        )
    } == {
        "pg_up": "None",
        "pg_total_connections": "Count",
        "pg_uptime_seconds": "Seconds",
        "pg_database_size_bytes": "Bytes",
        "pg_query_calls": "Count",
        "pg_query_mean_exec_time": "Milliseconds",
        "pg_query_hit_percent": "Percent",
        "middleware_collector_up": "None",
        "middleware_collector_duration_seconds": "Seconds",
        "middleware_pass_duration_seconds": "Seconds",
    }

    (core,) = [line for line in lines if "pg_up" in line]
    assert core["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["instance"]]
    # Powertools writes every value as a list (EMF allows several samples per line).
    assert (core["instance"], core["pg_up"]) == (TARGET, [1.0])

    (health,) = [line for line in lines if line.get("source") == "postgres"]
    assert health["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["instance", "source"]]
    assert health["middleware_collector_up"] == [1.0]

    (target,) = result.targets
    sizes = {
        s.labels["database_name"]: s.value
        for f in target.families
        if f.name == "pg_database_size_bytes"
        for s in f.samples
    }
    size_lines = {
        line["database_name"]: line["pg_database_size_bytes"][0]
        for line in lines
        if "pg_database_size_bytes" in line
    }
    assert size_lines == sizes
    assert APP_DB in size_lines


def test_statements_are_properties_of_their_own_line_not_dimensions(pg, monkeypatch, capsys):
    result = one_pass(pg, monkeypatch)
    lines = emf_lines(capsys.readouterr().out)
    (target,) = result.targets
    # One queryid can be several statements (other databases, other users).
    calls = {
        (s.labels["queryid"], s.labels["database"], s.labels["user"]): s
        for f in target.families
        if f.name == "pg_query_calls"
        for s in f.samples
    }
    statement_lines = [line for line in lines if "pg_query_calls" in line]
    assert len(statement_lines) == len(calls)
    ours = [line for line in statement_lines if line["query"] == STATEMENT.replace("40", "$1")]
    assert len(ours) == 1
    (line,) = ours
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["database", "instance", "user"]]
    assert (line["database"], line["user"], line["instance"]) == (APP_DB, APP, TARGET)
    sample = calls[(line["queryid"], line["database"], line["user"])]
    assert line["pg_query_calls"] == [sample.value] == [3.0]
    assert line["query"] == sample.labels["query"]
    names = {m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {
        "pg_query_calls",
        "pg_query_total_exec_time",
        "pg_query_min_exec_time",
        "pg_query_max_exec_time",
        "pg_query_mean_exec_time",
        "pg_query_blk_read_time",
        "pg_query_blk_write_time",
        "pg_query_rows",
        "pg_query_hit_percent",
        "pg_query_shared_blks_hit",
        "pg_query_shared_blks_read",
        "pg_query_temp_blks_written",
        "pg_query_wal_bytes",
        "pg_query_total_plan_time",
    }
