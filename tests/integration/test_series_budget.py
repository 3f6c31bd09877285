"""SERIES_BUDGET and the cold start's projected cost (SPEC 19) through the Lambda handler, on
a real PostgreSQL server of 8 databases and a real Pushgateway: what the gateway holds after
a pass that exceeds the budget, counted series by series."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from middleware_monitoring.bounds import CORE_SERIES
from tests.faults.harness import LambdaFunction, Samples, key, restore_logging
from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD, eight_databases
from tests.standins.postgres import PostgresServer
from tests.standins.prometheus import Prometheus
from tests.standins.pushgateway import Pushgateway

TARGET = "orders-db"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    yield from eight_databases()


@pytest.fixture
def functions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LambdaFunction]]:
    made: list[LambdaFunction] = []
    yield made
    for fn in made:
        fn.close()
    restore_logging()


def environ(server: PostgresServer, gw: Pushgateway, job: str, **extra: str) -> dict[str, str]:
    return {
        **server.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": TARGET,
        # A rate on the cold pass too, so that both passes have the same series.
        "PG_QPS_SAMPLE_SECONDS": "0.2",
        "PG_STATEMENTS_TOP_N": "3",
        "PUSHGATEWAY_URL": gw.url,
        "PUSHGATEWAY_JOB": job,
        **extra,
    }


def everything(gw: Pushgateway, job: str) -> tuple[Samples, Samples]:
    """The target's group and the collector's."""
    return gw.samples(job, TARGET), gw.samples(job, "collector")


def said(logs: list[dict[str, Any]], message: str) -> list[dict[str, Any]]:
    return [
        {
            k: v
            for k, v in line.items()
            if k not in ("level", "location", "timestamp", "service", "cold_start", "xray_trace_id")
            and not k.startswith("function_")
        }
        for line in logs
        if line["message"] == message
    ]


def test_a_pass_over_the_budget_sends_the_collectors_series_then_a_stable_choice(
    server: PostgresServer,
    pushgateway: Pushgateway,
    monkeypatch: pytest.MonkeyPatch,
    functions: list[LambdaFunction],
) -> None:
    free_job, job = f"budget-{uuid.uuid4().hex[:8]}", f"budget-{uuid.uuid4().hex[:8]}"
    try:
        unbounded = LambdaFunction(monkeypatch, environ(server, pushgateway, free_job))
        functions.append(unbounded)
        assert unbounded.invoke().error is None
        target, collector = everything(pushgateway, free_job)
        total = len(target) + len(collector)
        assert collector[key("middleware_series_sent", sink="pushgateway")] == total
        assert ("middleware_series_dropped", frozenset()) not in collector
        own = len(collector) + sum(1 for name, _ in target if name.startswith("middleware_"))
        core_series = {series for series in target if series[0] in CORE_SERIES}
        core = len(core_series)
        # Room for the collector's series (with middleware_series_dropped, new with a
        # budget), the older exporter's, and 4 more.
        budget = own + 1 + core + 4
        # Its session would be a connection (a series) the next function sees.
        unbounded.close()

        bounded = LambdaFunction(
            monkeypatch,
            environ(server, pushgateway, job, SERIES_BUDGET=str(budget), SCHEDULE_MINUTES="5"),
        )
        functions.append(bounded)
        first = bounded.invoke()
        assert first.error is None
        target, collector = everything(pushgateway, job)
        assert len(target) + len(collector) == budget
        assert collector[key("middleware_series_sent", sink="pushgateway")] == budget
        dropped = total + 1 - budget
        assert collector[key("middleware_series_dropped")] == dropped
        # The older exporter's series all there; of the rest, the first 4 by family name.
        assert {series for series in target if series[0] in CORE_SERIES} == core_series
        rest = sorted(
            name
            for name, _ in target
            if name not in CORE_SERIES and not name.startswith("middleware_")
        )
        assert rest == [
            "pg_autovacuum_freeze_max_age",
            "pg_autovacuum_multixact_freeze_max_age",
            "pg_blocked_sessions",
            "pg_blocking_sessions",
        ]
        # Said once, naming what was left out.
        (exceeded,) = said(first.logs, "series budget exceeded")
        assert (exceeded["budget"], exceeded["series"], exceeded["dropped"]) == (
            budget,
            total + 1,
            dropped,
        )
        assert exceeded["left_out"]["pg_query_calls"] == 3
        assert sum(exceeded["left_out"].values()) == dropped
        # The cold start's projection: 30 days of a pass every 5 minutes.
        assert said(first.logs, "projected cost") == [
            {
                "message": "projected cost",
                "sink": "pushgateway",
                "series_per_pass": budget,
                "passes_per_month": 8640,
            }
        ]

        second = bounded.invoke()
        assert second.error is None
        # The same choice, not said again; no second projection while warm.
        again_target, again_collector = everything(pushgateway, job)
        assert (set(again_target), set(again_collector)) == (set(target), set(collector))
        assert said(second.logs, "series budget exceeded") == []
        assert said(second.logs, "projected cost") == []
    finally:
        pushgateway.delete_job(free_job)
        pushgateway.delete_job(job)


def test_the_cold_start_projects_the_custom_metrics_its_emf_lines_make(
    server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    functions: list[LambdaFunction],
) -> None:
    env = {
        **server.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": TARGET,
        "PG_QPS_SAMPLE_SECONDS": "0",
        "METRICS_SINK": "emf",
    }
    fn = LambdaFunction(monkeypatch, env)
    functions.append(fn)
    capsys.readouterr()
    first = fn.invoke()
    assert first.error is None
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    (sent,) = [line for line in lines if "middleware_series_sent" in line]
    assert sent["sink"] == "emf"
    metrics = {
        (metric["Name"], tuple((name, line[name]) for name in dimensions))
        for line in lines
        if "_aws" in line
        for directive in line["_aws"]["CloudWatchMetrics"]
        for dimensions in directive["Dimensions"]
        for metric in directive["Metrics"]
    }
    assert said(first.logs, "projected cost") == [
        {
            "message": "projected cost",
            "sink": "emf",
            "series_per_pass": sent["middleware_series_sent"][0],
            "passes_per_month": 43200,
            "monthly_custom_metrics": len(metrics),
        }
    ]
    # test_emf_cost.py's 20 less QPS (no rate on a cold pass without sampling) and
    # pg_user_connection_count (no client connected), with middleware_series_sent{sink}.
    assert len(metrics) == 20 - 3 - 1 + 1


def test_the_cold_start_projects_the_samples_remote_write_sends(
    server: PostgresServer,
    remote_write_receiver: Prometheus,
    monkeypatch: pytest.MonkeyPatch,
    functions: list[LambdaFunction],
) -> None:
    job = f"budget-rw-{uuid.uuid4().hex[:8]}"
    env = {
        **server.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": TARGET,
        "PG_QPS_SAMPLE_SECONDS": "0",
        "METRICS_SINK": "remote_write",
        "REMOTE_WRITE_URL": remote_write_receiver.remote_write_url,
        "PUSHGATEWAY_JOB": job,
        "SCHEDULE_MINUTES": "2",
    }
    fn = LambdaFunction(monkeypatch, env)
    functions.append(fn)
    first = fn.invoke()
    assert first.error is None
    # What the receiver holds of this pass: every series the pass sent, this count among them.
    (sent,) = remote_write_receiver.wait_for(f'middleware_series_sent{{job="{job}"}}')
    series = int(float(sent["value"][1]))
    assert sent["metric"]["sink"] == "remote_write"
    # Less the sink's own health request after the pass (source="remote_write", the samples
    # it sent, the points it dropped).
    pass_only = (
        f'count({{job="{job}", source!="remote_write", '
        '__name__!~"middleware_remote_write_.*|middleware_sink_.*"})'
    )
    held = remote_write_receiver.wait_for(
        pass_only, predicate=lambda result: bool(result) and int(result[0]["value"][1]) >= series
    )
    assert int(held[0]["value"][1]) == series
    assert said(first.logs, "projected cost") == [
        {
            "message": "projected cost",
            "sink": "remote_write",
            "series_per_pass": series,
            "passes_per_month": 21600,
            "monthly_samples": series * 21600,
        }
    ]
