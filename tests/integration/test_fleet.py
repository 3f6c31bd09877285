"""A fleet through the Lambda handler on real servers (SPEC 9, 15): targets from a file and
from an SSM parameter (moto), one Pushgateway group per collector and shard, the migration
from the per-target layout, and last success times that survive a cold start, all checked at
the real Pushgateway."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from middleware_monitoring.shards import shard_of
from tests.faults.harness import Invocation, LambdaFunction, key, pushed, restore_logging
from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD, prepare
from tests.standins.aws import MotoServer
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

pytestmark = pytest.mark.integration

LAST_SUCCESS = "middleware_collector_last_success_timestamp_seconds"
TARGET_SUCCESS = "middleware_target_last_success_timestamp_seconds"
Make = Callable[[Mapping[str, str]], LambdaFunction]


@pytest.fixture
def job(pushgateway: Pushgateway) -> Iterator[str]:
    """A job of the test's own; its groups are deleted afterwards."""
    name = f"fleet-{uuid.uuid4().hex[:8]}"
    yield name
    pushgateway.delete_job(name)


@pytest.fixture
def function(monkeypatch: pytest.MonkeyPatch, pushgateway: Pushgateway) -> Iterator[Make]:
    made: list[LambdaFunction] = []

    def make(environ: Mapping[str, str]) -> LambdaFunction:
        fn = LambdaFunction(monkeypatch, environ, pushgateway)
        made.append(fn)
        return fn

    yield make
    for fn in made:
        fn.close()
    restore_logging()


@pytest.fixture(scope="module")
def fleet_pg(pg17: PostgresServer) -> PostgresServer:
    return prepare(pg17)


def pg_entry(server: PostgresServer, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "host": server.host,
        "port": server.port,
        "dbname": APP_DB,
        "user": MONITOR,
        "password": MONITOR_PASSWORD,
        "sslmode": "disable",
        **extra,
    }


def environ(
    directory: Path, document: Mapping[str, Any], gw: Pushgateway, job: str
) -> dict[str, str]:
    (directory / "targets.yaml").write_text(json.dumps(document))
    return {
        "TARGETS_FILE": str(directory / "targets.yaml"),
        "PUSHGATEWAY_URL": gw.url,
        "PUSHGATEWAY_JOB": job,
        "PUSHGATEWAY_TIMEOUT_SECONDS": "2",
        "PUSHGATEWAY_RETRIES": "0",
        "PG_QPS_SAMPLE_SECONDS": "0",
        "PG_CONNECT_TIMEOUT_SECONDS": "2",
    }


def invoke(fn: LambdaFunction, event: dict[str, Any] | None = None) -> Invocation:
    """One invocation through lambda_handler that must succeed; the job's groups after it
    are ``.pushed``."""
    inv = fn.invoke(event=event)
    assert inv.error is None, inv.error
    return inv


def group_keys(gw: Pushgateway, job: str) -> list[dict[str, str]]:
    """The grouping keys the Pushgateway holds for ``job`` (its own JSON API)."""
    return sorted(
        (
            {k: v for k, v in g["labels"].items() if k != "job"}
            for g in gw.groups()
            if g["labels"].get("job") == job
        ),
        key=lambda labels: sorted(labels.items()),
    )


def test_a_fleet_from_a_file_is_one_group_whose_series_keep_their_instance(
    tmp_path: Path, fleet_pg: PostgresServer, pushgateway: Pushgateway, job: str, function: Make
) -> None:
    names = [f"orders-{i}" for i in range(5)]
    document = {"postgres": [pg_entry(fleet_pg, name) for name in names]}
    inv = invoke(function(environ(tmp_path, document, pushgateway, job)))
    # One group, keyed by collector and shard, never by instance.
    assert group_keys(pushgateway, job) == [{"collector": "collector", "shard": "0"}]
    (only,) = inv.pushed.by_group
    assert only == ("collector", "0")
    groups = inv.pushed.by_group[only]
    assert sorted(groups) == sorted([*names, "collector"])
    for name in names:
        assert groups[name][key("pg_up")] == 1.0
        assert groups[name][key("middleware_collector_up", source="postgres")] == 1.0
        assert groups[name][key(TARGET_SUCCESS)] > 0
    assert groups["collector"][key("middleware_pass_targets", state="up")] == 5.0
    assert groups["collector"][key("middleware_pass_timestamp_seconds")] > 0
    # Per-target ownership lines are gone: the grouping key says whose the group is.
    assert "middleware_collector_info" not in inv.pushed.text


def test_a_target_removed_from_the_file_disappears_with_the_next_put(
    tmp_path: Path, fleet_pg: PostgresServer, pushgateway: Pushgateway, job: str, function: Make
) -> None:
    document = {"postgres": [pg_entry(fleet_pg, name) for name in ("a", "b", "c")]}
    invoke(function(environ(tmp_path, document, pushgateway, job)))
    # A deploy with the new file: a new function instance (a cold start) reads it.
    document["postgres"] = [entry for entry in document["postgres"] if entry["name"] != "b"]
    fn = function(environ(tmp_path, document, pushgateway, job))
    assert sorted(pushed(pushgateway, job).groups) == ["a", "b", "c", "collector"]
    after = invoke(fn)
    assert sorted(after.pushed.groups) == ["a", "c", "collector"]
    # No DELETE was needed: nothing about groups in the log.
    assert [(line["message"], line.get("groups")) for line in after.logs if not passed(line)] == [
        # A cold start's first pass says what it costs (test_series_budget.py).
        ("projected cost", None),
    ]
    assert group_keys(pushgateway, job) == [{"collector": "collector", "shard": "0"}]


def costed(line: Mapping[str, Any]) -> bool:
    """A cold start's first pass says what it costs (test_series_budget.py)."""
    return bool(line["message"] == "projected cost")


def passed(line: Mapping[str, Any]) -> bool:
    """The handler's own "pass done" line (whether the harness sees it depends on which
    Powertools Logger of the session was made first)."""
    return bool(line["message"] == "pass done")


def pushgateway_push(
    gw: Pushgateway, job: str, grouping_key: Mapping[str, str], text: str = ""
) -> None:
    """A group pushed as another deployment, or an earlier version, would push it."""
    from urllib.request import Request, urlopen

    from middleware_monitoring.pushgateway_groups import group_path

    body = text or "# TYPE standin_value gauge\nstandin_value 1\n"
    url = f"{gw.url}/metrics/{group_path(job, tuple(grouping_key.items()))}"
    with urlopen(Request(url, data=body.encode(), method="PUT"), timeout=5) as answer:
        answer.read()


def test_each_shard_replaces_its_own_group_and_shard_0_retires_the_others(
    tmp_path: Path, fleet_pg: PostgresServer, pushgateway: Pushgateway, job: str, function: Make
) -> None:
    # Names for both shards of two, two of each.
    names: dict[int, list[str]] = {0: [], 1: []}
    for i in range(40):
        name = f"db-{i}"
        if len(names[shard_of(name, 2)]) < 2:
            names[shard_of(name, 2)].append(name)
    everything = [*names[0], *names[1]]
    document = {"postgres": [pg_entry(fleet_pg, name) for name in everything]}
    fn = function(environ(tmp_path, document, pushgateway, job))
    invoke(fn, {"shard": 0, "shards": 2})
    by_group = invoke(fn, {"shard": 1, "shards": 2}).pushed.by_group
    assert {group: sorted(instances) for group, instances in by_group.items()} == {
        ("collector", "0"): sorted([*names[0], "collector"]),
        ("collector", "1"): sorted([*names[1], "collector"]),
    }
    # Each shard's pass-wide series stay apart: same instance, their own shard label.
    assert by_group["collector", "0"]["collector"][key("middleware_pass_targets", state="up")] == 2

    # Each shard's second target leaves the fleet; each shard's next PUT drops it.
    kept = [names[0][0], names[1][0]]
    document = {"postgres": [pg_entry(fleet_pg, name) for name in kept]}
    fn = function(environ(tmp_path, document, pushgateway, job))
    by_group = invoke(fn, {"shard": 0, "shards": 2}).pushed.by_group
    assert sorted(by_group["collector", "0"]) == sorted([kept[0], "collector"])
    assert sorted(by_group["collector", "1"]) == sorted([*names[1], "collector"])
    by_group = invoke(fn, {"shard": 1, "shards": 2}).pushed.by_group
    assert sorted(by_group["collector", "1"]) == sorted([kept[1], "collector"])

    # Back to one shard: shard 0 of 1 retires shard 1's group, once.
    one = invoke(fn, {})
    assert group_keys(pushgateway, job) == [{"collector": "collector", "shard": "0"}]
    assert sorted(one.pushed.groups) == sorted([*kept, "collector"])
    assert [(line["message"], line["groups"]) for line in one.logs if not passed(line)] == [
        ("leftover groups deleted", ["collector=collector,shard=1"])
    ]


def test_the_per_target_layout_is_migrated_once_and_another_collectors_groups_stay(
    tmp_path: Path, fleet_pg: PostgresServer, pushgateway: Pushgateway, job: str, function: Make
) -> None:
    """What the earlier version left in a real Pushgateway: one group per target with its
    owner line, the collector's own groups (plain, per shard, Kafka's), and another
    deployment's groups of both layouts under the same job."""
    old_target = (
        "# TYPE pg_up gauge\npg_up 1\n"
        "# TYPE middleware_collector_info gauge\n"
        'middleware_collector_info{{collector="{owner}"}} 1\n'
        "# TYPE middleware_collector_last_success_timestamp_seconds gauge\n"
        'middleware_collector_last_success_timestamp_seconds{{source="postgres"}} 1.7e+09\n'
    )
    for instance, owner in (("orders", "collector"), ("gone", "collector"), ("theirs", "eu")):
        pushgateway_push(pushgateway, job, {"instance": instance}, old_target.format(owner=owner))
    for own in ("collector", "collector-shard-1", "collector-kafka", "eu"):
        pushgateway_push(pushgateway, job, {"instance": own})
    pushgateway_push(pushgateway, job, {"collector": "eu", "shard": "0"})
    pushgateway_push(pushgateway, job, {"collector": "eu", "shard": "5"})

    # The first pass of the new version, its database down: the last success time comes
    # from the old layout's group.
    broken = {"postgres": [pg_entry(fleet_pg, "orders", port=closed_port())]}
    fn = function(environ(tmp_path, broken, pushgateway, job))
    first = invoke(fn)
    assert (
        first.pushed.by_group["collector", "0"]["orders"][key(LAST_SUCCESS, source="postgres")]
        == 1.7e9
    )
    assert [
        (line["message"], line.get("groups"))
        for line in first.logs
        if line["level"] == "INFO" and not passed(line) and not costed(line)
    ] == [
        (
            "leftover groups deleted",
            [
                "instance=collector",
                "instance=collector-kafka",
                "instance=collector-shard-1",
                "instance=gone",
                "instance=orders",
            ],
        )
    ]
    assert group_keys(pushgateway, job) == [
        {"collector": "collector", "shard": "0"},
        {"collector": "eu", "shard": "0"},
        {"collector": "eu", "shard": "5"},
        {"instance": "eu"},
        {"instance": "theirs"},
    ]
    # Once: the warm instance does not read or delete again.
    assert [
        line
        for line in invoke(fn).logs
        if line["level"] == "INFO" and not passed(line) and not costed(line)
    ] == []


def test_last_success_survives_a_cold_start_with_the_target_down(
    tmp_path: Path, fleet_pg: PostgresServer, pushgateway: Pushgateway, job: str, function: Make
) -> None:
    """Issue 12.4: the series stays with its true value exactly when it matters."""
    good = {"postgres": [pg_entry(fleet_pg, "orders")]}
    first = invoke(function(environ(tmp_path, good, pushgateway, job))).pushed("orders")
    succeeded = first[key(LAST_SUCCESS, source="postgres")]
    target_succeeded = first[key(TARGET_SUCCESS)]
    # A new function instance, the database now refusing connections (a closed port).
    broken = {"postgres": [pg_entry(fleet_pg, "orders", port=closed_port())]}
    down = invoke(function(environ(tmp_path, broken, pushgateway, job))).pushed("orders")
    assert down[key("pg_up")] == 0.0
    assert down[key("middleware_collector_failure", source="postgres", reason="unreachable")] == 1
    assert down[key(LAST_SUCCESS, source="postgres")] == succeeded
    assert down[key(TARGET_SUCCESS)] == target_succeeded


def closed_port() -> int:
    from tests.standins._process import free_port

    return free_port()


def test_targets_from_an_ssm_parameter_follow_it_while_warm(
    tmp_path: Path,
    fleet_pg: PostgresServer,
    pushgateway: Pushgateway,
    job: str,
    function: Make,
    clean_moto: MotoServer,
) -> None:
    ssm = clean_moto.client("ssm")
    name = f"/mm/{job}/targets"

    def put(document: Any) -> None:
        value = document if isinstance(document, str) else json.dumps(document)
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

    put({"postgres": [pg_entry(fleet_pg, n) for n in ("p1", "p2")]})
    fn = function(
        {
            **clean_moto.env(),
            "TARGETS_PARAMETER": name,
            "TARGETS_MAX_AGE_SECONDS": "0",
            "PUSHGATEWAY_URL": pushgateway.url,
            "PUSHGATEWAY_JOB": job,
            "PG_QPS_SAMPLE_SECONDS": "0",
        }
    )
    assert sorted(invoke(fn).pushed.groups) == ["collector", "p1", "p2"]
    # The parameter changes: the next warm pass follows it; p2 is gone with the PUT.
    put({"postgres": [pg_entry(fleet_pg, "p1")]})
    assert sorted(invoke(fn).pushed.groups) == ["collector", "p1"]
    # A document whose names collide, or take the collector's own name, is wrong too: the
    # last good targets are kept (one p1, no target pushed as "collector").
    put({"postgres": [pg_entry(fleet_pg, n) for n in ("p1", "p1", "collector")]})
    clash = invoke(fn)
    assert sorted(clash.pushed.groups) == ["collector", "p1"]
    assert clash.pushed("p1")[key("pg_up")] == 1.0
    put({"postgres": [pg_entry(fleet_pg, "p1")]})
    assert sorted(invoke(fn).pushed.groups) == ["collector", "p1"]
    # A wrong document keeps the last good targets.
    put({"postgres": [pg_entry(fleet_pg, "p1"), {"name": "p3"}]})
    wrong = invoke(fn)
    assert sorted(wrong.pushed.groups) == ["collector", "p1"]
    # An unreadable parameter too; it says so once, not every pass.
    ssm.delete_parameter(Name=name)
    unreadable = [invoke(fn), invoke(fn)]
    assert sorted(unreadable[-1].pushed.groups) == ["collector", "p1"]
    errors = [
        line["detail"]
        for inv in (clash, wrong, *unreadable)
        for line in inv.logs
        if line["level"] == "ERROR"
    ]
    where = f"TARGETS_PARAMETER ({name}) postgres"
    assert errors == [
        f"{where}[1] (p1): target name 'p1' is already used by {where}[0] (p1); each target "
        f"needs its own name (the instance label of its series); {where}[2] (collector): target "
        "name 'collector' is a name the collector uses for its own series "
        "(COLLECTOR_INSTANCE_NAME='collector'); give the target another name: the last good "
        "targets are kept",
        f"TARGETS_PARAMETER ({name}): postgres[1] (p3).host: is required (the endpoint's host "
        f"name); TARGETS_PARAMETER ({name}): postgres[1] (p3).user: is required (the login, "
        "unless secret_arn): the last good targets are kept",
    ]


def test_an_unreadable_or_wrong_parameter_at_a_cold_start_is_a_configuration_error(
    function: Make, clean_moto: MotoServer, pushgateway: Pushgateway, job: str
) -> None:
    from middleware_monitoring.config import ConfigError

    base = {**clean_moto.env(), "PUSHGATEWAY_URL": pushgateway.url, "PUSHGATEWAY_JOB": job}
    missing = function({**base, "TARGETS_PARAMETER": "/mm/missing"}).invoke()
    assert isinstance(missing.error, ConfigError)
    assert missing.error.problems == [
        "TARGETS_PARAMETER (/mm/missing): cannot be read: ParameterNotFound"
    ]
    clean_moto.client("ssm").put_parameter(
        Name="/mm/bad", Value="postgres: {name: x}", Type="String"
    )
    wrong = function({**base, "TARGETS_PARAMETER": "/mm/bad"}).invoke()
    assert isinstance(wrong.error, ConfigError)
    assert wrong.error.problems == [
        "TARGETS_PARAMETER (/mm/bad): postgres: expected a list of entries, got a mapping"
    ]
    # Each is logged as the configuration error it is, naming the parameter.
    assert [(line["message"], line["problems"]) for line in wrong.problems()] == [
        ("configuration error", wrong.error.problems)
    ]


def test_a_target_no_pass_collected_for_five_minutes_is_disconnected(
    tmp_path: Path, fleet_pg: PostgresServer, pushgateway: Pushgateway, job: str
) -> None:
    """A function instance that serves two shards keeps each shard's connections while it
    collects them; those of a shard it has not collected for IDLE_CLOSE_SECONDS (by the
    wall clock: Lambda may freeze monotonic clocks between invocations) are closed."""
    from middleware_monitoring.postgres.connection import APPLICATION_NAME
    from middleware_monitoring.runtime import IDLE_CLOSE_SECONDS, Runtime
    from middleware_monitoring.shards import Shard
    from tests.helpers import closing

    database = f"mm_idle_{uuid.uuid4().hex[:8]}"
    fleet_pg.create_database(database)
    names: dict[int, list[str]] = {0: [], 1: []}
    for i in range(12):
        if len(names[shard_of(f"idle-{i}", 2)]) < 2:
            names[shard_of(f"idle-{i}", 2)].append(f"idle-{i}")
    document = {
        "postgres": [pg_entry(fleet_pg, n, dbname=database) for n in [*names[0], *names[1]]]
    }

    def held() -> int:
        rows = fleet_pg.execute_as_superuser(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND application_name = :app",
            db=database,
            app=APPLICATION_NAME,
        )
        assert rows is not None
        return int(rows[0][0])

    from middleware_monitoring.config import load_settings

    now = [1_800_000_000.0]
    settings = load_settings(environ(tmp_path, document, pushgateway, job))
    with closing(Runtime(settings, clock=lambda: now[0])) as runtime:
        runtime.collect(20.0, Shard(0, 2))
        runtime.collect(20.0, Shard(1, 2))
        assert held() == 4
        # Shard 0 alone for a while: shard 1's connections stay until the idle age is past.
        now[0] += IDLE_CLOSE_SECONDS
        runtime.collect(20.0, Shard(0, 2))
        assert held() == 4
        now[0] += 1
        runtime.collect(20.0, Shard(0, 2))
        assert held() == 2
        # Shard 1 comes back: its targets connect again.
        runtime.collect(20.0, Shard(1, 2))
        assert held() == 4
    assert held() == 0


def test_a_push_the_pushgateway_refuses_names_the_series_and_its_reason(
    tmp_path: Path, fleet_pg: PostgresServer, pushgateway: Pushgateway, job: str, function: Make
) -> None:
    # A Pushgateway of its own: the session's holds other tests' pg_up as a gauge.
    with Pushgateway() as own:
        # Another deployment pushed pg_up as a counter: the Pushgateway refuses a gauge of it.
        pushgateway_push(
            own,
            job,
            {"collector": "eu", "shard": "0"},
            '# TYPE pg_up counter\npg_up{instance="theirs"} 1\n',
        )
        document = {"postgres": [pg_entry(fleet_pg, "orders")]}
        inv = function(environ(tmp_path, document, own, job)).invoke()
        group = f"{own.url}/metrics/job/{job}/collector/collector/shard/0"
    assert str(inv.error).startswith(f"Pushgateway {group} did not accept the pass (")
    # Which side of the clash it names depends on the order it checks in: ours or theirs.
    ours = (
        f'pg_up{{collector="collector",instance="orders",job="{job}",shard="0"}} is not a COUNTER'
    )
    theirs = f'pg_up{{collector="eu",instance="theirs",job="{job}",shard="0"}} is not a GAUGE'
    assert any(
        str(inv.error).endswith(
            f"targets): HTTP 400 Bad Request: series {named} (pushed metrics are invalid or "
            "inconsistent with existing metrics)"
        )
        for named in (ours, theirs)
    ), inv.error


def test_a_pass_sent_in_pieces_is_what_the_pushgateway_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large pass goes to the Pushgateway while it is written (chunked, pieces of whole
    family blocks): the Pushgateway takes it as one PUT of the group, every series with its
    value; and a refused one still names the series."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from middleware_monitoring import sinks
    from middleware_monitoring.config import PushgatewaySettings
    from middleware_monitoring.model import PassResult, TargetResult

    monkeypatch.setattr(sinks, "PUSH_PIECE_BYTES", 300)
    groups = []
    for t in range(20):
        sizes = GaugeMetricFamily("pg_database_size_bytes", "Size.", labels=["database_name"])
        for d in range(10):
            sizes.add_metric([f"app{d}"], 1000.0 * t + d)
        deadlocks = CounterMetricFamily("pg_deadlocks", "Deadlocks.", labels=["database_name"])
        deadlocks.add_metric(["app0"], t)
        groups.append(TargetResult(f"db{t}", [sizes, deadlocks], []))
    result = PassResult(groups, 0.1, TargetResult("collector", [], []))
    assert len(sinks.exposition(result)) > 10 * 300  # more than ten pieces
    with Pushgateway() as own:
        sink = sinks.PushgatewaySink(PushgatewaySettings(own.url, "pieces", None, None, 10.0, 0))
        sink.send(result)
        assert [group["labels"] for group in own.groups()] == [
            {"job": "pieces", "collector": "collector", "shard": "0"}
        ]
        for t in range(20):
            assert own.samples("pieces", f"db{t}") == {
                **{
                    ("pg_database_size_bytes", frozenset({("database_name", f"app{d}")})): (
                        1000.0 * t + d
                    )
                    for d in range(10)
                },
                ("pg_deadlocks_total", frozenset({("database_name", "app0")})): float(t),
            }
        # Another deployment holds pg_deadlocks_total as a gauge: the push is refused.
        own.wipe()
        pushgateway_push(
            own,
            "pieces",
            {"collector": "eu", "shard": "0"},
            '# TYPE pg_deadlocks_total gauge\npg_deadlocks_total{instance="theirs"} 1\n',
        )
        with pytest.raises(sinks.PushError) as caught:
            sink.send(result)
    assert "targets): HTTP 400 Bad Request: series pg_deadlocks_total{" in str(caught.value)
