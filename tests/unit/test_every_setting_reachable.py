"""Every setting reachable through `sam deploy` (SPEC 14): each variable of
docs/configuration.md is set by a template parameter of its own, by Lambda itself, or through
the one parameter that carries the rest (ExtraSettings -> EXTRA_SETTINGS); docs/deploy.md's
parameter table is the one generated from the template; EXTRA_SETTINGS's rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from middleware_monitoring.config import ConfigError, load_settings
from middleware_monitoring.config.extra import apply_extra, parse_extra, with_extra
from tests.template_render import (
    TABLE_END,
    TABLE_START,
    load_template,
    parameter_table,
    parameter_variables,
    render,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
DEPLOY = ROOT / "docs" / "deploy.md"
TEMPLATE = load_template()
# Lambda sets these itself (the region, the execution role's credentials).
SET_BY_LAMBDA = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def documented() -> set[str]:
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", CONFIGURATION.read_text(), re.M))


def test_deploy_page_holds_the_parameter_table_generated_from_the_template():
    text = DEPLOY.read_text()
    assert TABLE_START in text and TABLE_END in text
    shown = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert shown == parameter_table(TEMPLATE), (
        "docs/deploy.md's parameter table differs from the template: regenerate it with "
        "`.venv/bin/python -m tests.template_render --write`"
    )


def test_every_parameter_of_the_environment_is_in_the_table_with_its_variable():
    table = parameter_table(TEMPLATE)
    for parameter, variables in parameter_variables(TEMPLATE).items():
        shown = ", ".join(f"`{v}`" for v in variables)
        assert f"| `{parameter}` | {shown} |" in table


def test_every_documented_variable_has_a_way_in():
    by_parameter = {v for names in parameter_variables(TEMPLATE).values() for v in names}
    no_way: list[str] = []
    for variable in sorted(documented() - by_parameter - SET_BY_LAMBDA):
        stack = render({"ExtraSettings": f"{variable}=1"}, template=TEMPLATE)
        merged, problems = with_extra(stack.environment)
        if problems or merged.get(variable) != "1":
            no_way.append(f"{variable}: {problems or 'not set'}")
    assert no_way == []


def test_a_variable_with_a_parameter_of_its_own_set_again_in_extra_settings_is_refused():
    stack = render({"ExtraSettings": "PUSHGATEWAY_JOB=other"}, template=TEMPLATE)
    with pytest.raises(ConfigError) as caught:
        load_settings({**stack.environment, "PUSHGATEWAY_URL": "http://pg:9091"})
    assert caught.value.problems == [
        "EXTRA_SETTINGS: PUSHGATEWAY_JOB is also set as its own variable, to another value (a "
        "template parameter or Lambda sets it); set it in one place: its own parameter when "
        "it has one"
    ]


def test_extra_settings_fill_variables_and_empty_parameters():
    settings = load_settings(
        {
            "PUSHGATEWAY_URL": "http://pg:9091",
            "DISCOVER_TAGS": "",  # a parameter left empty
            "EXTRA_SETTINGS": "PG_DATABASE=db.internal; PG_USER=monitor;"
            "PG_COLLECTORS=server,locks;PUSHGATEWAY_RETRIES=5;COLLECTOR_MAX_WORKERS=7",
        }
    )
    assert settings.postgres is not None
    assert (settings.postgres.host, settings.postgres.user) == ("db.internal", "monitor")
    assert settings.postgres.collectors == frozenset({"server", "locks"})
    assert (settings.pushgateway.retries, settings.max_workers) == (5, 7)


def test_json_form_carries_values_with_semicolons():
    pairs, problems = parse_extra('{"PG_ENV_NAME": "a;b", "PG_TABLES_TOP_N": 5}')
    assert (pairs, problems) == ({"PG_ENV_NAME": "a;b", "PG_TABLES_TOP_N": "5"}, [])


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        (
            "PG_USER=monitor;hunter2",
            [
                "EXTRA_SETTINGS: pair 2 is not KEY=VALUE (it has no =); expected pairs "
                "separated by ';', e.g. PG_COLLECTORS=server,locks;PUSHGATEWAY_RETRIES=3"
            ],
        ),
        (
            "pg_user=monitor",
            [
                "EXTRA_SETTINGS: pair 1 is not KEY=VALUE (it has a key that is not a variable "
                "name); expected pairs separated by ';', e.g. "
                "PG_COLLECTORS=server,locks;PUSHGATEWAY_RETRIES=3"
            ],
        ),
        ("PG_USER=a;PG_USER=b", ["EXTRA_SETTINGS: PG_USER is given twice; give it once"]),
        ("EXTRA_SETTINGS=x", ["EXTRA_SETTINGS: cannot set EXTRA_SETTINGS itself"]),
        (
            '{"PG_USER": ',
            [
                "EXTRA_SETTINGS: is not valid JSON (Expecting value at column 12); expected an "
                'object of strings, e.g. {"PG_COLLECTORS": "server,locks"}, or '
                "PG_COLLECTORS=server,locks;PUSHGATEWAY_RETRIES=3"
            ],
        ),
        ('{"PG_USER": ["a"]}', ["EXTRA_SETTINGS: PG_USER: expected a string or a number"]),
        *(
            (
                raw,
                [
                    f"EXTRA_SETTINGS: {key} holds a password and EXTRA_SETTINGS is shown in "
                    "clear (the ExtraSettings parameter); give it through its own parameter "
                    "(NoEcho) or a secret ARN"
                ],
            )
            for key, raw in (
                ("PG_PWD", "PG_USER=monitor;PG_PWD=hunter2"),
                ("PUSHGATEWAY_PASSWORD", '{"PUSHGATEWAY_PASSWORD": "hunter2"}'),
                ("MONGO_INFO", 'MONGO_INFO={"connect": {"pwd": "hunter2"}}'),
            )
        ),
    ],
)
def test_a_bad_pair_is_a_configuration_error_that_echoes_no_value(raw, problems):
    assert parse_extra(raw)[1] == problems
    with pytest.raises(ConfigError) as caught:
        load_settings({"EXTRA_SETTINGS": raw, "PUSHGATEWAY_URL": "http://pg:9091"})
    assert caught.value.problems[: len(problems)] == problems
    assert "hunter2" not in str(caught.value)


def test_start_up_puts_them_in_the_process_environment_for_boto3_and_logging():
    environ = {
        "AWS_REGION": "eu-west-1",
        "LOG_LEVEL": "",
        "EXTRA_SETTINGS": "LOG_LEVEL=DEBUG;AWS_ENDPOINT_URL_SSM=http://ssm.local;AWS_REGION=x",
    }
    apply_extra(environ)
    assert environ["LOG_LEVEL"] == "DEBUG"
    assert environ["AWS_ENDPOINT_URL_SSM"] == "http://ssm.local"
    # Lambda's own variables are not changed; load_settings reports the conflict.
    assert environ["AWS_REGION"] == "eu-west-1"
