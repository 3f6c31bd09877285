"""A value the template accepts is one the function accepts (SPEC 14): for every parameter
that reaches the function's environment with an AllowedPattern, AllowedValues or a range,
values the template lets through (every allowed value, the ends of each range, a few that
each pattern matches) render a stack whose environment the configuration takes without a
problem. And every shard count up to 64 gives schedules whose events the handler takes, with
no resource written once per shard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from middleware_monitoring.config import ConfigError, load_settings
from middleware_monitoring.shards import MAX_SHARDS, shard_from_event
from tests.template_render import (
    ParameterError,
    check_parameter,
    expand_language_extensions,
    load_template,
    render,
)

TEMPLATE = load_template()
BASE = {"PushgatewayUrl": "http://pushgateway.internal:9091"}
PG = {"PgHost": "db.internal", "PgUser": "monitor"}
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1-AbCdEf"
AMP = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1a2b/api/v1/remote_write"
REMOTE = {"MetricsSink": "remote_write", "RemoteWriteUrl": AMP}
ROLES = "arn:aws:iam::210987654321:role/discovery"

# parameter -> (the other parameters a value needs to mean something, the values tried).
CASES: dict[str, tuple[dict[str, str], list[str]]] = {
    "CollectorInstanceName": ({}, ["", "prod-eu", "a.b:c_d", "x" * 128]),
    "LogLevel": ({}, ["DEBUG", "INFO", "WARNING", "ERROR"]),
    "TargetsFile": ({}, ["targets.yaml", "fleet_1.json"]),
    "TargetsParameter": ({}, ["/mm/targets", "/team/a.b-c_d/targets"]),
    "Discover": (
        {},
        ["rds", "rds,aurora,docdb,elasticache", "elasticache,rds", "docdb-elastic,docdb"],
    ),
    "DiscoverRegions": ({"Discover": "rds"}, ["eu-west-1", "us-gov-west-1,ap-southeast-2"]),
    "DiscoverOwnAccount": ({"Discover": "rds", "DiscoverRoleArns": ROLES}, ["true", "false"]),
    "DiscoverMaxAgeSeconds": ({"Discover": "rds"}, ["0", "86400"]),
    "MetricsSink": ({"RemoteWriteUrl": AMP}, ["pushgateway", "emf", "remote_write"]),
    "PushgatewayUrl": (
        {},
        ["http://pushgateway.internal:9091", "https://push.example/base", "http://10.0.0.7:1"],
    ),
    "EmfNamespace": ({"MetricsSink": "emf"}, ["MiddlewareMonitoring", "Team/Mw", "a.b-c_d#e:f"]),
    "RemoteWriteUrl": (
        {"MetricsSink": "remote_write"},
        [AMP, "http://127.0.0.1:9090/api/v1/write", "https://mimir.example/api/v1/push"],
    ),
    "RemoteWriteSigV4Region": (REMOTE, ["eu-west-1", "us-gov-west-1", ""]),
    "RemoteWriteSecretArn": (
        {**REMOTE, "RemoteWriteUrl": "https://mimir.example/api/v1/push"},
        ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:mimir-login-AbC123"],
    ),
    "CloudWatchIntervalSeconds": ({}, [str(v) for v in (60, 120, 180, 300, 600, 900, 1800, 3600)]),
    "PgPort": (PG, ["", "1", "5432", "65535"]),
    "PgSecretArn": (
        {"PgTargetName": "orders"},
        [SECRET, "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x"],
    ),
    "PgIamAuth": (PG, ["false", "true"]),
    "PgSslMode": (PG, ["disable", "prefer", "require", "verify-ca", "verify-full"]),
    "PgStatementsTopN": (PG, ["0", "1000"]),
    "RdsType": ({"RdsInstanceId": "orders"}, ["DBInstanceIdentifier", "DBClusterIdentifier"]),
    "MongoSecretArn": (
        {"MongoInfo": '{"connect": {"address": "docdb.internal", "port": "27017"}}'},
        [SECRET],
    ),
    "SecretsMaxAgeSeconds": ({}, ["0", "86400"]),
    "EnhancedMonitoring": ({}, ["true", "false"]),
    "PerformanceInsights": ({}, ["true", "false"]),
    "EmfMetrics": ({"MetricsSink": "emf"}, ["", "pg_up", "pg_*,redis_up", "pg_[ab]?"]),
    "SeriesBudget": ({}, ["", "1", "20000"]),
    "ScheduleMinutes": ({}, ["1", "5", "480"]),
    "TargetsS3Uri": ({}, ["s3://fleet-config/targets.yaml", "s3://a.b-c/d/e f.json"]),
    "TargetsMaxAgeSeconds": ({"TargetsParameter": "/mm/targets"}, ["0", "86400"]),
    "EnhancedMonitoringProcesses": ({"EnhancedMonitoring": "true"}, ["0", "100"]),
}
# Values each pattern must refuse: the function would.
REFUSED: dict[str, list[str]] = {
    "PgPort": ["0", "65536", "99999", "54a"],
    "CollectorInstanceName": ["has space", "x" * 129, "a/b"],
}


def constrained_environment_parameters() -> set[str]:
    variables = TEMPLATE["Resources"]["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    names: set[str] = set()

    def refs(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"Ref"}:
                names.add(node["Ref"])
            for value in node.values():
                refs(value)
        elif isinstance(node, list):
            for value in node:
                refs(value)

    refs(variables)
    return {
        name
        for name in names & set(TEMPLATE["Parameters"])
        if set(TEMPLATE["Parameters"][name])
        & {"AllowedPattern", "AllowedValues", "MinValue", "MaxValue"}
    }


def test_every_constrained_parameter_of_the_environment_is_tried():
    assert constrained_environment_parameters() - set(CASES) == set()


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, (_, values) in CASES.items() for value in values]
)
def test_a_value_the_template_accepts_is_one_the_function_accepts(
    name: str, value: str, tmp_path: Path
) -> None:
    context, _ = CASES[name]
    check_parameter(TEMPLATE, name, value)  # the template's own check lets it through
    stack = render({**BASE, **context, name: value}, template=TEMPLATE)
    environment = stack.environment
    if environment.get("TARGETS_FILE"):
        (tmp_path / environment["TARGETS_FILE"]).write_text("{}\n")
    try:
        load_settings({**environment, "AWS_REGION": "eu-west-1"}, search_dirs=[tmp_path])
    except ConfigError as error:
        pytest.fail(f"{name}={value!r} passes the template but not the function: {error}")


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in REFUSED.items() for value in values]
)
def test_the_template_refuses_what_the_function_would(name: str, value: str) -> None:
    with pytest.raises(ParameterError):
        check_parameter(TEMPLATE, name, value)


def test_every_shard_count_gives_events_the_handler_takes():
    spec = TEMPLATE["Parameters"]["Shards"]
    assert (spec["MinValue"], spec["MaxValue"]) == (1, MAX_SHARDS)
    for count in range(1, MAX_SHARDS + 1):
        events = render({**BASE, "Shards": str(count)}, template=TEMPLATE).events
        assert [shard_from_event(event) for event in events] == [
            shard_from_event({"shard": i, "shards": count}) for i in range(count)
        ]


def test_shard_flags_say_which_shards_exist_for_each_count():
    flags = TEMPLATE["Mappings"]["ShardFlags"]
    assert set(flags) == {str(n) for n in range(1, MAX_SHARDS + 1)}
    for n, entry in flags.items():
        assert entry["Flags"].split(",") == ["1" if i < int(n) else "0" for i in range(64)]


def test_no_resource_is_written_once_per_shard():
    """One Fn::ForEach writes the schedules; no ShardNSchedule resource of its own."""
    assert not [name for name in TEMPLATE["Resources"] if name.startswith("Shard")]
    assert "AWS::LanguageExtensions" in TEMPLATE["Transform"]


def test_each_shard_condition_is_used_by_its_schedule_and_its_stale_alarm():
    expanded = expand_language_extensions(TEMPLATE)
    shard_resources = {
        name: resource.get("Condition")
        for name, resource in expanded["Resources"].items()
        if name.startswith("Shard")
    }
    assert shard_resources == {
        **{f"Shard{i}Schedule": f"Shard{i}" for i in range(MAX_SHARDS)},
        **{f"Shard{i}StaleAlarm": f"Shard{i}Emf" for i in range(MAX_SHARDS)},
    }
    shard_conditions = {name for name in expanded["Conditions"] if name.startswith("Shard")}
    assert shard_conditions == set(shard_resources.values())
