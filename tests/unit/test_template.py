"""template.yaml as CloudFormation will see it: SAM's own transform renders it, a small
evaluator resolves its conditions for given parameters, and the tests read the result.

The offline tools (cfn-lint, sam validate --lint, sam build) run in
tests/integration/test_sam_build.py and in `make lint-template`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse  # type: ignore[import-untyped]
from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

from tests.template_render import expand_language_extensions

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

PG_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-AbCdEf"
MONGO_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docdb-login-XyZ123"
KMS_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# SPEC section 2 variables that Lambda itself reserves (the execution role replaces the keys)
# or that only pull mode reads.
NOT_IN_LAMBDA = {"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SERVER_PORT"}
SPEC_VARIABLES = {
    "PG_DATABASE",
    "PG_PORT",
    "PG_USER",
    "PG_PWD",
    "PG_DBNAME",
    "AWS_RDS_INSTANCE_ID",
    "AWS_RDS_TYPE",
    "MONGO_INFO",
    "AWS_MONGO_INSTANCE_INFO",
    "AWS_ELASTICACHE_INSTANCE_INFO",
    "KAFKA_SERVER",
    "PG_ENV_NAME",
}

_NO_VALUE = object()
# Where _resolve finds the template's Mappings (beside the parameters).
_MAPPINGS = "::Mappings"


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    # AWS::LanguageExtensions first (Fn::ForEach), as `sam build --language-extensions` and
    # CloudFormation do, then SAM's own transform.
    template = expand_language_extensions(yaml_parse(TEMPLATE.read_text()))
    # What `sam package` does: local paths become S3 locations before the transform.
    template["Resources"]["CollectorFunction"]["Properties"]["CodeUri"] = "s3://bucket/fn.zip"
    template["Resources"]["CaBundleLayer"]["Properties"]["ContentUri"] = "s3://bucket/layer.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        result: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return result


def _resolve(node: Any, params: dict[str, str], conditions: dict[str, Any]) -> Any:
    """Fn::If / Condition / Equals / Not / Or / And / Join / Ref (parameters) / Sub; GetAtt and
    Refs to resources are left as readable strings."""

    def cond(name: str) -> bool:
        return bool(_resolve(conditions[name], params, conditions))

    if isinstance(node, list):
        items = [_resolve(item, params, conditions) for item in node]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, value),) = node.items()
        if key == "Ref":
            if value == "AWS::NoValue":
                return _NO_VALUE
            if value in params:
                return params[value]
            return f"Ref:{value}"
        if key == "Fn::GetAtt":
            return "GetAtt:" + ".".join(value)
        if key == "Fn::If":
            name, then, otherwise = value
            return _resolve(then if cond(name) else otherwise, params, conditions)
        if key == "Condition":
            return cond(value)
        if key == "Fn::Equals":
            left, right = (_resolve(v, params, conditions) for v in value)
            # CloudFormation compares parameter values as strings.
            return str(left) == str(right)
        if key == "Fn::Not":
            return not _resolve(value[0], params, conditions)
        if key == "Fn::Or":
            return any(_resolve(v, params, conditions) for v in value)
        if key == "Fn::And":
            return all(_resolve(v, params, conditions) for v in value)
        if key == "Fn::Split":
            separator, text = value
            return str(_resolve(text, params, conditions)).split(separator)
        if key == "Fn::Select":
            index, items = value
            return _resolve(items, params, conditions)[int(_resolve(index, params, conditions))]
        if key == "Fn::FindInMap":
            map_name, top, second = (str(_resolve(v, params, conditions)) for v in value)
            mappings: Any = params[_MAPPINGS]
            return mappings[map_name][top][second]
        if key == "Fn::Join":
            separator, parts = value
            resolved = _resolve(parts, params, conditions)
            return separator.join(resolved if isinstance(resolved, list) else [resolved])
        if key == "Fn::Sub":
            text, names = (value, {}) if isinstance(value, str) else value
            known = {**params, **_resolve(names, params, conditions)}
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(known.get(m.group(1), m.group(0))), text)
    out = {key: _resolve(value, params, conditions) for key, value in node.items()}
    return {key: value for key, value in out.items() if value is not _NO_VALUE}


def _deployed(rendered: dict[str, Any], **overrides: str) -> dict[str, Any]:
    """The resources as deployed with these parameter values (others at their defaults)."""
    params = {name: str(spec.get("Default", "")) for name, spec in rendered["Parameters"].items()}
    params.update(overrides)
    params["AWS::Region"] = "eu-west-1"
    params["AWS::StackName"] = "mm"
    params["AWS::Partition"] = "aws"
    params["AWS::AccountId"] = "123456789012"
    # CommaDelimitedList parameters arrive as lists.
    resolved: dict[str, Any] = dict(params)
    for name, spec in rendered["Parameters"].items():
        if spec["Type"] == "CommaDelimitedList":
            resolved[name] = [item for item in params[name].split(",") if item]
    resolved[_MAPPINGS] = rendered.get("Mappings", {})
    conditions = rendered["Conditions"]
    # A resource with a Condition that is false is not created.
    kept = {
        name: resource
        for name, resource in rendered["Resources"].items()
        if "Condition" not in resource
        or _resolve({"Condition": resource["Condition"]}, resolved, conditions)
    }
    resources: dict[str, Any] = _resolve(kept, resolved, conditions)
    return resources


def _statements(resources: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    role = resources["CollectorRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    return {p["PolicyName"]: p["PolicyDocument"]["Statement"] for p in role["Policies"]}


BASE_POLICIES = {
    "logs": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "GetAtt:CollectorLogGroup.Arn",
        }
    ],
    "cloudwatch-read": [{"Effect": "Allow", "Action": "cloudwatch:GetMetricData", "Resource": "*"}],
}
VPC_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]


def test_default_role_reads_metrics_and_writes_its_own_log_group_only(rendered):
    assert _statements(_deployed(rendered)) == BASE_POLICIES


def test_fleet_permissions_only_for_what_is_configured(rendered):
    parameter = "/monitoring/targets"
    user = "arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-ABCDEFGHIJKL01234/monitor"
    secrets = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:monitoring/*"
    policies = _statements(
        _deployed(
            rendered, TargetsParameter=parameter, IamDbUserArns=user, TargetSecretArns=secrets
        )
    )
    assert policies == {
        **BASE_POLICIES,
        "secrets-read": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [secrets]}
        ],
        "targets-parameter-read": [
            {
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": "arn:aws:ssm:eu-west-1:123456789012:parameter" + parameter,
            }
        ],
        "rds-iam-connect": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": [user]}],
    }
    variables = _deployed(rendered, TargetsFile="targets.yaml", PgIamAuth="true")[
        "CollectorFunction"
    ]["Properties"]["Environment"]["Variables"]
    assert (variables["TARGETS_FILE"], variables["PG_IAM_AUTH"]) == ("targets.yaml", "true")


def test_secret_read_is_limited_to_the_given_arns(rendered):
    policies = _statements(_deployed(rendered, PgSecretArn=PG_ARN))
    assert policies == {
        **BASE_POLICIES,
        "secrets-read": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [PG_ARN]}
        ],
    }
    both = _statements(_deployed(rendered, PgSecretArn=PG_ARN, MongoSecretArn=MONGO_ARN))
    assert both["secrets-read"][0]["Resource"] == [PG_ARN, MONGO_ARN]
    only_mongo = _statements(_deployed(rendered, MongoSecretArn=MONGO_ARN))
    assert only_mongo["secrets-read"][0]["Resource"] == [MONGO_ARN]


def test_kms_decrypt_only_for_a_given_key_and_only_through_secrets_manager(rendered):
    policies = _statements(_deployed(rendered, PgSecretArn=PG_ARN, SecretsKmsKeyArn=KMS_ARN))
    assert policies["secrets-decrypt"] == [
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": KMS_ARN,
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": [
                        "secretsmanager.eu-west-1.amazonaws.com",
                        "ssm.eu-west-1.amazonaws.com",
                        "s3.eu-west-1.amazonaws.com",
                    ]
                }
            },
        }
    ]


def test_vpc_permissions_and_config_only_with_subnets(rendered):
    plain = _deployed(rendered)
    assert "VpcConfig" not in plain["CollectorFunction"]["Properties"]
    assert "vpc-access" not in _statements(plain)

    in_vpc = _deployed(rendered, SubnetIds="subnet-1,subnet-2", SecurityGroupIds="sg-1")
    assert in_vpc["CollectorFunction"]["Properties"]["VpcConfig"] == {
        "SubnetIds": ["subnet-1", "subnet-2"],
        "SecurityGroupIds": ["sg-1"],
    }
    assert _statements(in_vpc)["vpc-access"] == [
        {"Effect": "Allow", "Action": VPC_ACTIONS, "Resource": "*"}
    ]


def test_no_wildcard_action_in_any_configuration(rendered):
    everything = _deployed(
        rendered,
        PgSecretArn=PG_ARN,
        MongoSecretArn=MONGO_ARN,
        SecretsKmsKeyArn=KMS_ARN,
        SubnetIds="subnet-1",
        SecurityGroupIds="sg-1",
    )
    for name, resource in everything.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                for action in [actions] if isinstance(actions, str) else actions:
                    assert "*" not in action, (name, action)


def _schedules(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Scheduler::Schedule"
    }


def test_schedule_is_parameterised_and_never_retries(rendered):
    every_minute = _schedules(_deployed(rendered))
    assert list(every_minute) == ["Shard0Schedule"]
    schedule = every_minute["Shard0Schedule"]
    assert "Name" not in schedule  # generated: two stacks may share an account
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert schedule["State"] == "ENABLED"
    assert schedule["Target"] == {
        "Arn": "GetAtt:CollectorFunction.Arn",
        "RoleArn": "GetAtt:SchedulerRole.Arn",
        "Input": '{"shard": 0, "shards": 1}',
        "RetryPolicy": {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60},
    }
    five = _schedules(_deployed(rendered, ScheduleMinutes="5", ScheduleState="DISABLED"))
    assert five["Shard0Schedule"]["ScheduleExpression"] == "rate(5 minutes)"
    assert five["Shard0Schedule"]["State"] == "DISABLED"
    # Lambda's own retries of asynchronous invocations are off too.
    invoke = _deployed(rendered)["CollectorFunctionEventInvokeConfig"]["Properties"]
    assert (invoke["MaximumRetryAttempts"], invoke["MaximumEventAgeInSeconds"]) == (0, 60)
    # The scheduler may invoke this function and nothing else.
    role = _deployed(rendered)["SchedulerRole"]["Properties"]
    assert role["Policies"] == [
        {
            "PolicyName": "invoke-collector",
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "lambda:InvokeFunction",
                        "Resource": "GetAtt:CollectorFunction.Arn",
                    }
                ],
            },
        }
    ]


@pytest.mark.parametrize("shards", [1, 2, 3, 8, 17, 63, 64])
def test_shards_make_one_schedule_each_with_its_input(rendered, shards):
    schedules = _schedules(_deployed(rendered, Shards=str(shards), ScheduleMinutes="2"))
    assert {name: s["Target"]["Input"] for name, s in schedules.items()} == {
        f"Shard{i}Schedule": f'{{"shard": {i}, "shards": {shards}}}' for i in range(shards)
    }
    assert {s["ScheduleExpression"] for s in schedules.values()} == {"rate(2 minutes)"}
    assert rendered["Parameters"]["Shards"]["MaxValue"] == 64


def test_timeout_stays_below_the_shortest_schedule_interval(rendered):
    timeout = rendered["Parameters"]["FunctionTimeout"]
    minutes = rendered["Parameters"]["ScheduleMinutes"]
    assert timeout["MaxValue"] < 60 * minutes["MinValue"]
    assert timeout["Default"] <= timeout["MaxValue"]
    function = _deployed(rendered, FunctionTimeout="45", MemorySize="512")["CollectorFunction"]
    assert (function["Properties"]["Timeout"], function["Properties"]["MemorySize"]) == (
        "45",
        "512",
    )


def test_function_runs_python312_with_the_ca_layer_and_its_own_log_group(rendered):
    resources = _deployed(rendered)
    function = resources["CollectorFunction"]["Properties"]
    (layer_id,) = (k for k, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion")
    assert function["Layers"] == [f"Ref:{layer_id}"]
    assert resources[layer_id]["Properties"]["LayerName"] == "mm-ca-bundle"
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "app.lambda_handler"
    assert function["LoggingConfig"] == {"LogGroup": "Ref:CollectorLogGroup", "LogFormat": "Text"}
    assert resources["CollectorFunction"]["Metadata"] == {"BuildMethod": "makefile"}


def test_every_spec_variable_is_a_parameter_and_secrets_are_hidden(rendered):
    variables = rendered["Resources"]["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    assert SPEC_VARIABLES - set(variables) == set()
    assert not NOT_IN_LAMBDA & set(variables)
    parameter_of = {name: value["Ref"] for name, value in variables.items() if "Ref" in value}
    hidden = {name for name, spec in rendered["Parameters"].items() if spec.get("NoEcho")}
    assert {name for name, param in parameter_of.items() if param in hidden} == {
        "PG_PWD",
        "PUSHGATEWAY_PASSWORD",
        "MONGO_INFO",
    }
    assert {"PG_SECRET_ARN", "MONGO_SECRET_ARN", "METRICS_SINK"} <= set(variables)
    assert "POWERTOOLS_METRICS_NAMESPACE" in variables


def test_errors_alarm_watches_the_function_and_notifies_the_optional_topic(rendered):
    topic = "arn:aws:sns:eu-west-1:123456789012:oncall"
    quiet = _deployed(rendered)["CollectorErrorsAlarm"]["Properties"]
    assert "AlarmActions" not in quiet
    alarm = _deployed(rendered, AlarmTopicArn=topic)["CollectorErrorsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/Lambda",
        "Errors",
        "Sum",
    )
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": "Ref:CollectorFunction"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert alarm["AlarmActions"] == [topic]


def _stale_alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in resources.items()
        if name.endswith("StaleAlarm")
    }


def test_a_stale_alarm_per_shard_only_with_emf(rendered):
    """No Prometheus rule reads CloudWatch: with EMF each shard's alarm sees it stop."""
    assert _stale_alarms(_deployed(rendered, Shards="3")) == {}
    assert _stale_alarms(_deployed(rendered, Shards="3", MetricsSink="remote_write")) == {}
    alarms = _stale_alarms(
        _deployed(
            rendered, Shards="3", MetricsSink="emf", EmfNamespace="Fleet", ScheduleMinutes="5"
        )
    )
    assert sorted(alarms) == ["Shard0StaleAlarm", "Shard1StaleAlarm", "Shard2StaleAlarm"]
    for shard, (name, alarm) in enumerate(sorted(alarms.items())):
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
            "Fleet",
            "middleware_pass_timestamp_seconds",
            "SampleCount",
        ), name
        assert alarm["Dimensions"] == [
            {"Name": "instance", "Value": "mm"},
            {"Name": "shard", "Value": str(shard)},
        ]
        # Three 5-minute intervals without a pass: 5 periods of 3 minutes, all empty.
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (
            180,
            "5",
            "5",
        )
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
            1,
            "LessThanThreshold",
            "breaching",
        )
        assert "AlarmActions" not in alarm
    named = _stale_alarms(
        _deployed(rendered, MetricsSink="emf", CollectorInstanceName="prod-collector")
    )
    assert named["Shard0StaleAlarm"]["Dimensions"][0] == {
        "Name": "instance",
        "Value": "prod-collector",
    }


AMP_URL = (
    "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1a2b3c4d/api/v1/remote_write"
)
RW_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mimir-login-AbC123"


def test_remote_write_to_amp_may_write_to_that_workspace_only(rendered):
    resources = _deployed(
        rendered,
        MetricsSink="remote_write",
        RemoteWriteUrl=AMP_URL,
        RemoteWriteSigV4Region="eu-west-1",
        CloudWatchIntervalSeconds="300",
    )
    assert _statements(resources) == {
        **BASE_POLICIES,
        "prometheus-remote-write": [
            {
                "Effect": "Allow",
                "Action": "aps:RemoteWrite",
                "Resource": "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1a2b3c4d",
            }
        ],
    }
    variables = resources["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    assert {
        name: variables[name] for name in variables if name.startswith(("REMOTE_", "CLOUDWATCH_"))
    } == {
        "REMOTE_WRITE_URL": AMP_URL,
        "REMOTE_WRITE_SIGV4_REGION": "eu-west-1",
        "REMOTE_WRITE_SECRET_ARN": "",
        "CLOUDWATCH_INTERVAL_SECONDS": "300",
    }
    assert variables["METRICS_SINK"] == "remote_write"


def test_no_remote_write_permission_unless_that_sink_is_chosen(rendered):
    # The same settings left behind with another sink grant nothing.
    other = _deployed(
        rendered,
        MetricsSink="pushgateway",
        RemoteWriteUrl=AMP_URL,
        RemoteWriteSigV4Region="eu-west-1",
        RemoteWriteSecretArn=RW_ARN,
    )
    assert _statements(other) == BASE_POLICIES
    # Remote write without SigV4 (a Prometheus or Mimir of one's own): no aps permission.
    plain = _deployed(
        rendered, MetricsSink="remote_write", RemoteWriteUrl="https://mimir.example/api/v1/push"
    )
    assert _statements(plain) == BASE_POLICIES


def test_remote_write_secret_may_be_read(rendered):
    policies = _statements(
        _deployed(
            rendered,
            MetricsSink="remote_write",
            RemoteWriteUrl="https://mimir.example/api/v1/push",
            RemoteWriteSecretArn=RW_ARN,
            PgSecretArn=PG_ARN,
        )
    )
    assert policies == {
        **BASE_POLICIES,
        "secrets-read": [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": [PG_ARN, RW_ARN],
            }
        ],
    }


def test_remote_write_parameters_refuse_a_login_in_the_url_and_odd_regions(rendered):
    parameters = rendered["Parameters"]
    url = re.compile(parameters["RemoteWriteUrl"]["AllowedPattern"])
    assert url.fullmatch(AMP_URL) and url.fullmatch("")
    assert not url.fullmatch("https://user:pa/ss@mimir.example/api/v1/push")
    region = re.compile(parameters["RemoteWriteSigV4Region"]["AllowedPattern"])
    assert region.fullmatch("eu-west-1") and region.fullmatch("us-gov-west-1")
    assert not region.fullmatch("Ireland")
    assert parameters["MetricsSink"]["AllowedValues"] == ["pushgateway", "emf", "remote_write"]
    assert parameters["CloudWatchIntervalSeconds"]["Default"] == 60


DISCOVERY_ACTIONS = [
    "rds:DescribeDBInstances",
    "rds:DescribeDBClusters",
    "rds:DescribePendingMaintenanceActions",
    "elasticache:DescribeCacheClusters",
    "tag:GetResources",
    "elasticache:DescribeReplicationGroups",
    "docdb-elastic:ListClusters",
    "docdb-elastic:GetCluster",
    "docdb-elastic:ListTagsForResource",
]
DISCOVERY_ROLES = (
    "arn:aws:iam::210987654321:role/monitoring-discovery,"
    "arn:aws:iam::310987654321:role/monitoring-discovery"
)


def _discovery_variables(resources: dict[str, Any]) -> dict[str, str]:
    variables = resources["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    return {name: value for name, value in variables.items() if name.startswith("DISCOVER")}


def test_discovery_permissions_only_when_discovery_is_on(rendered):
    # Roles given but discovery off: nothing to assume them for.
    off = _deployed(rendered, DiscoverRoleArns=DISCOVERY_ROLES)
    assert _statements(off) == BASE_POLICIES
    assert set(_discovery_variables(off).values()) == {""}

    on = _deployed(rendered, Discover="rds,elasticache")
    assert _statements(on) == {
        **BASE_POLICIES,
        "discovery": [{"Effect": "Allow", "Action": DISCOVERY_ACTIONS, "Resource": "*"}],
    }
    with_roles = _deployed(rendered, Discover="rds", DiscoverRoleArns=DISCOVERY_ROLES)
    assert _statements(with_roles)["discovery-assume-roles"] == [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": DISCOVERY_ROLES.split(",")}
    ]


def test_discovery_parameters_become_its_variables(rendered):
    resources = _deployed(
        rendered,
        Discover="rds,aurora",
        DiscoverTags="team=payments,monitored",
        DiscoverRegions="eu-west-1,eu-central-1",
        DiscoverRoleArns=DISCOVERY_ROLES,
        DiscoverOwnAccount="false",
        DiscoverMaxAgeSeconds="600",
        DiscoverTagLabels="team,cost-center",
        DiscoverPgIamUser="monitor",
    )
    assert _discovery_variables(resources) == {
        "DISCOVER": "rds,aurora",
        "DISCOVER_TAGS": "team=payments,monitored",
        "DISCOVER_REGIONS": "eu-west-1,eu-central-1",
        "DISCOVER_ROLE_ARNS": DISCOVERY_ROLES,
        "DISCOVER_OWN_ACCOUNT": "false",
        "DISCOVER_MAX_AGE_SECONDS": "600",
        "DISCOVER_TAG_LABELS": "team,cost-center",
        "DISCOVER_PG_SECRET_TAG": "middleware-monitoring:secret-arn",
        "DISCOVER_PG_IAM_USER": "monitor",
        "DISCOVER_CA_BUNDLE": "global-bundle.pem",
    }


@pytest.mark.parametrize("discover", ["", "rds,aurora,docdb,elasticache"])
def test_the_defaults_are_a_valid_configuration_with_discovery_off_and_on(rendered, discover):
    """Every DISCOVER_* option is empty while discovery is off: set alone, the collector
    would refuse them (they need DISCOVER)."""
    from middleware_monitoring.config import load_settings

    variables = _discovery_variables(_deployed(rendered, Discover=discover))
    settings = load_settings({**variables, "AWS_REGION": "eu-west-1"})
    assert (settings.discovery is not None) == bool(discover)


def test_queries_file_parameter_becomes_pg_queries_file(rendered):
    default = _deployed(rendered)["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    given = _deployed(rendered, PgQueriesFile="queries.yaml")["CollectorFunction"]["Properties"][
        "Environment"
    ]["Variables"]
    assert (default["PG_QUERIES_FILE"], given["PG_QUERIES_FILE"]) == ("", "queries.yaml")


def _variables(resources: dict[str, Any]) -> dict[str, str]:
    variables: dict[str, str] = resources["CollectorFunction"]["Properties"]["Environment"][
        "Variables"
    ]
    return variables


@pytest.mark.parametrize(
    "parameters",
    [{}, {"TargetsFile": "targets.yaml"}, {"TargetsParameter": "/mm/targets"}, {"Discover": "rds"}],
    ids=["defaults", "targets-file", "targets-parameter", "discovery"],
)
def test_no_default_turns_a_target_kind_on(rendered, parameters):
    """A fleet stack (no PgHost): the PG_* options with defaults are left out, so the
    environment configures no PostgreSQL, DocumentDB or CloudWatch target by itself."""
    from middleware_monitoring.config import load_settings

    variables = _variables(_deployed(rendered, **parameters))
    assert not {"PG_IAM_AUTH", "PG_SSLMODE", "PG_SSLROOTCERT"} & set(variables)
    environ = {name: value for name, value in variables.items() if name != "TARGETS_FILE"}
    settings = load_settings({**environ, "AWS_REGION": "eu-west-1"})
    assert (settings.postgres, settings.docdb, settings.targets) == (None, (), ())


def test_pg_options_arrive_with_any_pg_identity_parameter(rendered):
    for parameters in ({"PgHost": "db.example"}, {"PgSecretArn": PG_ARN}, {"PgIamAuth": "true"}):
        variables = _variables(_deployed(rendered, **parameters))
        assert (
            variables["PG_IAM_AUTH"],
            variables["PG_SSLMODE"],
            variables["PG_SSLROOTCERT"],
        ) == (parameters.get("PgIamAuth", "false"), "verify-full", "global-bundle.pem")


def test_collector_name_is_the_stack_name_unless_given(rendered):
    assert _variables(_deployed(rendered))["COLLECTOR_INSTANCE_NAME"] == "mm"
    named = _deployed(rendered, CollectorInstanceName="prod-eu")
    assert _variables(named)["COLLECTOR_INSTANCE_NAME"] == "prod-eu"


def test_enhanced_monitoring_reads_the_rdsosmetrics_log_group_only_when_on(rendered):
    off = _deployed(rendered)
    assert "enhanced-monitoring-read" not in _statements(off)
    variables = off["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ENHANCED_MONITORING"] == "false"
    on = _deployed(rendered, EnhancedMonitoring="true")
    assert _statements(on) == {
        **BASE_POLICIES,
        "enhanced-monitoring-read": [
            {
                "Effect": "Allow",
                "Action": ["logs:GetLogEvents", "logs:FilterLogEvents"],
                "Resource": [
                    "arn:aws:logs:*:123456789012:log-group:RDSOSMetrics",
                    "arn:aws:logs:*:123456789012:log-group:RDSOSMetrics:log-stream:*",
                ],
            },
            {"Effect": "Allow", "Action": "rds:DescribeDBInstances", "Resource": "*"},
        ],
    }
    variables = on["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ENHANCED_MONITORING"] == "true"


def test_performance_insights_reads_rds_metrics_only_when_on(rendered):
    assert "performance-insights-read" not in _statements(_deployed(rendered))
    on = _deployed(rendered, PerformanceInsights="true")
    assert _statements(on) == {
        **BASE_POLICIES,
        "performance-insights-read": [
            {
                "Effect": "Allow",
                "Action": "pi:GetResourceMetrics",
                "Resource": "arn:aws:pi:*:123456789012:metrics/rds/*",
            },
            {"Effect": "Allow", "Action": "rds:DescribeDBInstances", "Resource": "*"},
        ],
    }
    variables = on["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["PERFORMANCE_INSIGHTS"] == "true"


def test_kms_decrypt_through_the_services_of_the_keys_own_region(rendered):
    key = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policies = _statements(
        _deployed(rendered, TargetsParameter="/mm/targets", SecretsKmsKeyArn=key)
    )
    assert policies["secrets-decrypt"][0]["Condition"] == {
        "StringEquals": {
            "kms:ViaService": [
                "secretsmanager.eu-central-1.amazonaws.com",
                "ssm.eu-central-1.amazonaws.com",
                "s3.eu-central-1.amazonaws.com",
            ]
        }
    }


def test_databases_parameter_becomes_pg_databases(rendered):
    default = _variables(_deployed(rendered))
    given = _variables(_deployed(rendered, PgDatabases="all"))
    assert (default["PG_DATABASES"], given["PG_DATABASES"]) == ("", "all")
