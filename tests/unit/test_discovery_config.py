"""DISCOVER_* (SPEC 10): a good environment gives typed settings, a bad one the project's
one message naming each variable with the shape expected."""

from __future__ import annotations

import pytest

from middleware_monitoring.config import ConfigError, DiscoverySettings, load_settings
from middleware_monitoring.config.discovery import tag_label

ROLE = "arn:aws:iam::210987654321:role/monitoring-discovery"


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    return caught.value.problems


def test_off_unless_discover_is_set() -> None:
    assert load_settings({"AWS_REGION": "eu-west-1"}).discovery is None


def test_defaults() -> None:
    settings = load_settings({"DISCOVER": "rds", "AWS_REGION": "eu-west-1"}).discovery
    assert settings == DiscoverySettings(
        kinds=("rds",),
        tags=(),
        regions=("eu-west-1",),
        role_arns=(),
        own_account=True,
        max_age_seconds=300,
        tag_labels=(),
        pg_secret_tag="middleware-monitoring:secret-arn",
        pg_iam_user=None,
        ca_bundle="global-bundle.pem",
    )


def test_every_variable() -> None:
    settings = load_settings(
        {
            "DISCOVER": " elasticache, rds ,docdb,aurora",
            "DISCOVER_TAGS": "team=payments, monitored ,env = prod",
            "DISCOVER_REGIONS": "eu-west-1,us-gov-west-1,eu-west-1",
            "DISCOVER_ROLE_ARNS": ROLE,
            "DISCOVER_OWN_ACCOUNT": "false",
            "DISCOVER_MAX_AGE_SECONDS": "0",
            "DISCOVER_TAG_LABELS": "team,cost-center,aws:cloudformation:stack-name",
            "DISCOVER_PG_SECRET_TAG": "monitoring/secret",
            "DISCOVER_PG_IAM_USER": "monitor",
            "DISCOVER_CA_BUNDLE": "/opt/us-gov-west-1-bundle.pem",
        }
    ).discovery
    assert settings == DiscoverySettings(
        # Always in the one order units are refreshed and reported in.
        kinds=("rds", "aurora", "docdb", "elasticache"),
        tags=(("team", "payments"), ("monitored", None), ("env", "prod")),
        regions=("eu-west-1", "us-gov-west-1"),
        role_arns=(ROLE,),
        own_account=False,
        max_age_seconds=0,
        tag_labels=(
            ("team", "tag_team"),
            ("cost-center", "tag_cost_center"),
            ("aws:cloudformation:stack-name", "tag_aws_cloudformation_stack_name"),
        ),
        pg_secret_tag="monitoring/secret",
        pg_iam_user="monitor",
        ca_bundle="/opt/us-gov-west-1-bundle.pem",
    )


def test_tag_filter_needs_every_tag_and_a_bare_key_only_its_presence() -> None:
    settings = load_settings(
        {"DISCOVER": "rds", "AWS_REGION": "eu-west-1", "DISCOVER_TAGS": "team=a,monitored"}
    ).discovery
    assert settings is not None
    assert settings.matches({"team": "a", "monitored": ""}) is True
    assert settings.matches({"team": "a", "monitored": "no", "other": "x"}) is True
    assert settings.matches({"team": "b", "monitored": ""}) is False
    assert settings.matches({"team": "a"}) is False
    assert settings.matches({}) is False


def test_tag_labels_are_valid_label_names() -> None:
    assert tag_label("cost-center") == "tag_cost_center"
    assert tag_label("Team Name") == "tag_Team_Name"
    assert tag_label("a.b/c=d+e@f:g") == "tag_a_b_c_d_e_f_g"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"DISCOVER": "rds,redis,aurora"},
            "DISCOVER: expected a comma list of rds, aurora, docdb, elasticache, docdb-elastic, "
            "got 'rds,redis,aurora' ('redis' unknown)",
        ),
        (
            {"DISCOVER": ","},
            "DISCOVER: expected a comma list of rds, aurora, docdb, elasticache, docdb-elastic, "
            "got ','",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_TAGS": "team=a,=b"},
            "DISCOVER_TAGS: expected key=value pairs or bare keys, comma separated (e.g. "
            "team=payments,monitored), got '=b'",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_TAGS": "team=a,team=b"},
            "DISCOVER_TAGS: names the tag 'team' twice; a resource carries one value per tag, "
            "so both can never match",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_REGIONS": "eu-west-1,Frankfurt"},
            "DISCOVER_REGIONS: expected a comma list of AWS regions like eu-west-1, got "
            "'Frankfurt'",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_ROLE_ARNS": "arn:aws:iam::123:role/x"},
            "DISCOVER_ROLE_ARNS: expected a comma list of IAM role ARNs like "
            "arn:aws:iam::123456789012:role/monitoring-discovery, got 'arn:aws:iam::123:role/x'",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_OWN_ACCOUNT": "false"},
            "DISCOVER_OWN_ACCOUNT: is false and DISCOVER_ROLE_ARNS is empty: no account would "
            "be searched",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_OWN_ACCOUNT": "maybe"},
            "DISCOVER_OWN_ACCOUNT: expected true or false, got 'maybe'",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_MAX_AGE_SECONDS": "-1"},
            "DISCOVER_MAX_AGE_SECONDS: expected a whole number from 0 to 86400, got '-1'",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_TAG_LABELS": "cost-center,cost_center"},
            "DISCOVER_TAG_LABELS: tag keys 'cost-center' and 'cost_center' both become the "
            "label tag_cost_center; keep one",
        ),
        (
            {"DISCOVER": "rds", "DISCOVER_PG_SECRET_TAG": "secret,arn"},
            "DISCOVER_PG_SECRET_TAG: expected a tag key, got 'secret,arn'",
        ),
        (
            {"DISCOVER_TAGS": "team=a", "DISCOVER_PG_IAM_USER": "monitor"},
            "DISCOVER: is required when DISCOVER_TAGS, DISCOVER_PG_IAM_USER are set (the kinds "
            "to find: rds, aurora, docdb, elasticache, docdb-elastic)",
        ),
    ],
)
def test_bad_discovery_setting(environ: dict[str, str], expected: str) -> None:
    assert problems_of({"AWS_REGION": "eu-west-1", **environ}) == [expected]


def test_regions_are_required_without_aws_region() -> None:
    assert problems_of({"DISCOVER": "rds"}) == [
        "DISCOVER_REGIONS: is required when AWS_REGION is not set (the regions to search, "
        "e.g. eu-west-1,eu-central-1)"
    ]


def test_every_problem_in_one_message() -> None:
    problems = problems_of(
        {
            "DISCOVER": "rds,mysql",
            "DISCOVER_REGIONS": "moon-1",
            "DISCOVER_ROLE_ARNS": "not-an-arn",
            "DISCOVER_MAX_AGE_SECONDS": "soon",
        }
    )
    assert [problem.split(":")[0] for problem in problems] == [
        "DISCOVER",
        "DISCOVER_ROLE_ARNS",
        "DISCOVER_REGIONS",
        "DISCOVER_MAX_AGE_SECONDS",
    ]
