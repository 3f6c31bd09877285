"""The entry points as users run them: the command line as a subprocess and the Lambda
handler, against a real PostgreSQL and a real Pushgateway."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client.parser import text_string_to_metric_families

from middleware_monitoring.postgres.source import PostgresSource
from tests.helpers import PRODUCT_PREFIXES, child_env
from tests.integration.pg_helpers import (
    APP_DB,
    DETAIL_NAMES,
    HEALTH_NAMES,
    MONITOR,
    MONITOR_PASSWORD,
    TABLE_NAMES,
    prepare,
)
from tests.standins._process import free_port
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

ROOT = Path(__file__).resolve().parents[2]
APP_PY = ROOT / "functions" / "collector" / "app.py"
TARGET = "e2e-db"


# Variables of the product; the child process gets only the ones a test sets.
@pytest.fixture(scope="module")
def pg(pg17: PostgresServer) -> PostgresServer:
    return prepare(pg17)


def pg_env(pg: PostgresServer) -> dict[str, str]:
    return {
        **pg.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": TARGET,
        "PG_QPS_SAMPLE_SECONDS": "0.2",
    }


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "middleware_monitoring", *args],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def exposition_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_collect_prints_the_exposition(pg: PostgresServer) -> None:
    done = run_cli("collect", env=pg_env(pg))
    assert done.returncode == 0, done.stderr
    samples = exposition_samples(done.stdout)
    assert samples[key("pg_up", instance=TARGET)] == 1
    assert samples[key("middleware_collector_up", instance=TARGET, source="postgres")] == 1
    assert samples[key("middleware_pass_targets", instance="collector", state="up")] == 1
    assert samples[key("middleware_pass_targets", instance="collector", state="down")] == 0
    # The cold-start window (PG_QPS_SAMPLE_SECONDS) gives a rate in the only pass there is.
    assert {(name, dict(labels)["instance"]) for name, labels in samples if "qps" in name} == {
        ("pg_qps_all", TARGET),
        ("pg_qps_read", TARGET),
        ("pg_qps_write", TARGET),
    }
    # Nothing writes to the database: its size now is the size the pass read.
    rows = pg.execute_as_superuser("SELECT pg_database_size(:d)", d=APP_DB)
    assert rows is not None
    ((size,),) = rows
    assert samples[key("pg_database_size_bytes", instance=TARGET, database_name=APP_DB)] == size
    # Every series names its target; logs go to stderr, as JSON.
    assert all("instance" in dict(labels) for _, labels in samples)
    logs = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["message"] for line in logs] == ["pass done"]
    assert (logs[0]["targets_up"], logs[0]["targets_down"]) == (1, [])


PUSHED_NAMES = {
    "middleware_collector_duration_seconds",
    "middleware_collector_last_success_timestamp_seconds",
    "middleware_collector_up",
    "pg_active_connections",
    "pg_database_size_bytes",
    "pg_idle_connections",
    "pg_qps_all",
    "pg_qps_read",
    "pg_qps_write",
    "pg_query_blk_read_time",
    "pg_query_blk_write_time",
    "pg_query_calls",
    "pg_query_hit_percent",
    "pg_query_max_exec_time",
    "pg_query_mean_exec_time",
    "pg_query_min_exec_time",
    "pg_query_rows",
    "pg_query_total_exec_time",
    "pg_total_connections",
    "pg_up",
    "pg_uptime_seconds",
    "pg_wait_session_five_sec",
    "pg_wait_session_sec",
    "middleware_target_last_success_timestamp_seconds",
}


def test_collect_push(pg: PostgresServer, pushgateway: Pushgateway) -> None:
    job = f"e2e-{uuid.uuid4().hex[:8]}"
    done = run_cli(
        "collect",
        "--push",
        env={**pg_env(pg), "PUSHGATEWAY_URL": pushgateway.url, "PUSHGATEWAY_JOB": job},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    target = pushgateway.samples(job, TARGET)
    assert target[key("pg_up")] == 1
    assert target[key("middleware_collector_up", source="postgres")] == 1
    # Every family of a reachable PostgreSQL with pg_stat_statements and a table in PG_DBNAME
    # (per-user connection counts and wait events only while other sessions exist, or wait,
    # on the shared server; no replica, no slot there).
    situational = {"pg_user_connection_count", "pg_wait_event_sessions"}
    assert {name for name, _ in target} - situational == (
        PUSHED_NAMES | HEALTH_NAMES | TABLE_NAMES | DETAIL_NAMES
    )
    collector = pushgateway.samples(job, "collector")
    assert collector[key("middleware_pass_targets", state="up")] == 1
    # One group for the pass, keyed by collector and shard (its series keep their instance).
    assert [g["labels"] for g in pushgateway.groups() if g["labels"]["job"] == job] == [
        {"job": job, "collector": "collector", "shard": "0"}
    ]


def test_bad_environment_exits_2_with_the_problems(pg: PostgresServer) -> None:
    secret = "do-not-print-me-77"
    done = run_cli(
        "collect",
        env={**pg_env(pg), "PG_PORT": "abc", "PG_PWD": secret, "AWS_RDS_TYPE": "cluster"},
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "invalid configuration:\n"
        "  - AWS_RDS_TYPE: expected one of DBInstanceIdentifier, DBClusterIdentifier, "
        "got 'cluster'\n"
        "  - PG_PORT: expected a port number from 1 to 65535, got 'abc'\n"
    )


def test_pushgateway_down_exits_1(pg: PostgresServer) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = run_cli(
        "collect",
        "--push",
        env={**pg_env(pg), "PUSHGATEWAY_URL": url, "PUSHGATEWAY_RETRIES": "0"},
    )
    assert done.returncode == 1
    failed = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["message"] for line in failed] == ["push failed"]
    assert failed[0]["detail"] == (
        f"Pushgateway {url}/metrics/job/aws-middleware-monitoring/collector/collector/shard/0 "
        f"did not accept the pass ({failed[0]['detail'].split('(')[1].split(' ')[0]} series of "
        "1 targets): cannot reach the Pushgateway: [Errno 111] Connection refused"
    )


# --- Lambda -----------------------------------------------------------------------------


@dataclass
class FakeLambdaContext:
    """The attributes and method of the Lambda runtime's context object that are used."""

    remaining_millis: int = 60_000
    function_name: str = "middleware-monitoring"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:eu-west-1:123456789012:function:middleware-monitoring"
    )
    aws_request_id: str = "00000000-0000-0000-0000-000000000001"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@pytest.fixture
def app_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    for name in list(os.environ):
        if name.startswith(PRODUCT_PREFIXES):
            monkeypatch.delenv(name)
    spec = importlib.util.spec_from_file_location("lambda_app_under_test", APP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    runtime = module._runtime
    if runtime is not None:
        for target in runtime.targets:
            for source in target.sources:
                if isinstance(source, PostgresSource):
                    source.close()


def test_lambda_handler_pushes_and_returns_the_summary(
    pg: PostgresServer,
    pushgateway: Pushgateway,
    app_module: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = f"lambda-{uuid.uuid4().hex[:8]}"
    env = {
        **pg_env(pg),
        "PG_QPS_SAMPLE_SECONDS": "0",
        "PUSHGATEWAY_URL": pushgateway.url,
        "PUSHGATEWAY_JOB": job,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    first = app_module.lambda_handler({}, FakeLambdaContext())
    after_first = pushgateway.samples(job, TARGET)
    second = app_module.lambda_handler({}, FakeLambdaContext())
    after_second = pushgateway.samples(job, TARGET)

    for outcome in (first, second):
        assert set(outcome) == {"targets_up", "targets_down", "series", "duration_seconds"}
        assert (outcome["targets_up"], outcome["targets_down"]) == (1, [])
    # What the summary counts is what the Pushgateway holds (the PUT replaced the group).
    assert second["series"] == len(after_second) + len(pushgateway.samples(job, "collector"))
    assert after_first[key("pg_up")] == 1
    # PG_QPS_SAMPLE_SECONDS=0: the cold pass has no rate; the warm one (same function
    # instance, same source) has.
    assert key("pg_qps_all") not in after_first
    assert key("pg_qps_all") in after_second
