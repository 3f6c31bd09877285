"""SPEC 19 under EMF: one real PostgreSQL server with 8 databases, two passes (the second has
QPS) through the EMF sink. The CloudWatch custom metrics it creates are counted from the EMF
lines printed (metric name x dimension values), with the default set and with EMF_METRICS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from middleware_monitoring.emf import HIGH_CARDINALITY_LABELS, EmfSink
from middleware_monitoring.model import PassResult
from middleware_monitoring.runtime import Runtime, build_sink
from tests.helpers import closing
from tests.integration.pg_helpers import (
    APP,
    APP_DB,
    APP_PASSWORD,
    MONITOR,
    MONITOR_PASSWORD,
    OTHER_DATABASES,
    eight_databases,
)
from tests.standins.postgres import PostgresServer

TARGET = "orders-db"

Metric = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    yield from eight_databases()


def two_passes(
    server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    **extra: str,
) -> tuple[list[dict[str, Any]], PassResult]:
    """The lines printed by the second of two passes (the first has no QPS yet), parsed."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "middleware-monitoring")
    environ = {
        **server.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": TARGET,
        "PG_QPS_SAMPLE_SECONDS": "0",
        "PG_STATEMENTS_TOP_N": "1000",
        "METRICS_SINK": "emf",
        **extra,
    }
    app = server.connect(user=APP, password=APP_PASSWORD, database=APP_DB)
    try:
        with closing(Runtime.from_environ(environ)) as runtime:
            sink = build_sink(runtime.settings)
            assert isinstance(sink, EmfSink)
            sink.send(runtime.collect(20.0))
            app.run("SELECT count(*) FROM items")
            capsys.readouterr()
            result = runtime.collect(20.0)
            sink.send(result)
    finally:
        app.close()
    printed = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in printed if line.startswith("{")], result


def custom_metrics(lines: list[dict[str, Any]]) -> set[Metric]:
    metrics: set[Metric] = set()
    for line in lines:
        if "_aws" not in line:
            continue
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        (dimensions,) = directive["Dimensions"]
        key = frozenset((name, line[name]) for name in dimensions)
        metrics |= {(metric["Name"], key) for metric in directive["Metrics"]}
    return metrics


def on_target(*names: str) -> set[Metric]:
    return {(name, frozenset({("instance", TARGET)})) for name in names}


def health(source: str, *names: str) -> set[Metric]:
    return {(name, frozenset({("instance", TARGET), ("source", source)})) for name in names}


# The collector's own series carry their shard: each shard's pass timestamp its own metric.
COLLECTOR = frozenset({("instance", "collector"), ("shard", "0")})
DEFAULT_SET = (
    on_target(
        "pg_up",
        "pg_database_size_bytes",
        "pg_user_connection_count",
        "pg_total_connections",
        "pg_active_connections",
        "pg_idle_connections",
        "pg_uptime_seconds",
        "pg_qps_all",
        "pg_qps_read",
        "pg_qps_write",
        "pg_wait_session_sec",
        "pg_wait_session_five_sec",
        "middleware_target_last_success_timestamp_seconds",
    )
    | health(
        "postgres",
        "middleware_collector_up",
        "middleware_collector_duration_seconds",
        "middleware_collector_last_success_timestamp_seconds",
    )
    | {
        ("middleware_pass_duration_seconds", COLLECTOR),
        ("middleware_pass_timestamp_seconds", COLLECTOR),
        ("middleware_pass_targets", COLLECTOR | {("state", "up")}),
        ("middleware_pass_targets", COLLECTOR | {("state", "down")}),
    }
)


def test_eight_databases_make_the_default_set_of_custom_metrics_only(server, monkeypatch, capsys):
    lines, result = two_passes(server, monkeypatch, capsys)
    databases = {
        s.labels["database_name"]
        for f in result.targets[0].families
        if f.name == "pg_database_size_bytes"
        for s in f.samples
    }
    assert databases == {"postgres", APP_DB, *OTHER_DATABASES}

    metrics = custom_metrics(lines)
    assert metrics == DEFAULT_SET
    assert len(metrics) == 20 <= 40

    # Each database's size is a sample of the one metric, its name a property of the line.
    sizes = {
        line["database_name"]: line["pg_database_size_bytes"]
        for line in lines
        if "_aws" in line and "pg_database_size_bytes" in line
    }
    assert set(sizes) == databases
    # The rest are plain log lines, no metric: each database's counters, each statement.
    logged = [line for line in lines if "_aws" not in line]
    commits = {
        line["database_name"]: line["pg_database_xact_commit_total"]
        for line in logged
        if "pg_database_xact_commit_total" in line
    }
    # pg_stat_database also counts the templates.
    assert set(commits) == databases | {"template0", "template1"}
    assert all(line["instance"] == TARGET for line in logged)
    statement = [line for line in logged if line.get("query") == "SELECT count(*) FROM items"]
    assert [(s["database"], s["user"], s["pg_query_calls"]) for s in statement] == [
        (APP_DB, APP, 1.0)
    ]


def test_emf_metrics_opts_in_exactly_what_it_names(server, monkeypatch, capsys):
    lines, result = two_passes(
        server, monkeypatch, capsys, EMF_METRICS="pg_database_xact_commit, pg_table_*_tuples"
    )
    (target,) = result.targets
    named = {
        (s.name, frozenset({**s.labels, "instance": TARGET}.items()))
        for f in target.families
        if f.name in ("pg_database_xact_commit", "pg_table_dead_tuples", "pg_table_live_tuples")
        for s in f.samples
    }
    # 10 databases' commits (the 8 and the templates), and the dead and live tuples of
    # PG_DBNAME's one table.
    assert len(named) == 10 + 2
    assert custom_metrics(lines) == DEFAULT_SET | named
    logged = [line for line in lines if "_aws" not in line]
    assert not any("pg_database_xact_commit_total" in line for line in logged)
    assert any("pg_table_last_autovacuum_timestamp_seconds" in line for line in logged)


def test_every_series_is_a_metric_with_emf_metrics_star(server, monkeypatch, capsys):
    lines, result = two_passes(server, monkeypatch, capsys, EMF_METRICS="*")
    assert not [line for line in lines if "_aws" not in line]
    # The collector's own series carry their shard besides.
    expected = {
        (
            s.name,
            frozenset(
                {
                    **dimensions(s.labels),
                    "instance": group.target,
                    **({"shard": "0"} if group is result.collector else {}),
                }.items()
            ),
        )
        for group in result.groups()
        for f in group.families
        for s in f.samples
    }
    assert custom_metrics(lines) == expected
    # What the default set saves on this server.
    assert len(expected) > 100


def dimensions(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in HIGH_CARDINALITY_LABELS}
