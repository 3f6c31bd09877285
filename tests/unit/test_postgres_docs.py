"""docs/postgresql.md against the code: every PG_* variable the configuration reads, every
PostgreSQL series the source can send, every PG_COLLECTORS group and every PostgreSQL alert
(with a runbook paragraph) is documented; the alert table matches the rules file; every
alert has a firing case in the promtool tests."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from middleware_monitoring.config.postgres import PG_COLLECTOR_GROUPS
from tests.dashboards import (
    POSTGRES_RULES_FILE,
    QUERYABLE_METRICS,
    ROOT,
    SPEC_METRICS,
    metric_names,
)

DOC = (ROOT / "docs" / "postgresql.md").read_text()
CONFIG_DIR = ROOT / "functions" / "collector" / "middleware_monitoring" / "config"
RULES_TESTS = ROOT / "prometheus" / "tests" / "postgresql.rules.test.yml"


def table_names(text: str) -> set[str]:
    """The first cell of every table row: | `NAME` | ..."""
    return set(re.findall(r"^\| `([^`]+)` \|", text, re.M))


def rules() -> list[dict[str, str]]:
    data = yaml.safe_load(POSTGRES_RULES_FILE.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_every_pg_variable_is_in_the_variables_table() -> None:
    read = {
        name
        for path in CONFIG_DIR.glob("*.py")
        for name in re.findall(r'"(PG_[A-Z_]+)"', Path(path).read_text())
        if name not in {"PG_SSLMODES", "PG_VARIABLES"}
    }
    assert read - table_names(DOC) == set()


def test_every_postgres_series_is_in_a_series_table() -> None:
    pg_series = {
        name
        for section, names in SPEC_METRICS.items()
        if section.startswith(("3.1", "3.2", "11"))
        for name in names
    } | {"pg_autovacuum_freeze_max_age", "pg_autovacuum_multixact_freeze_max_age"}
    assert pg_series - table_names(DOC) == set()


def test_every_group_is_documented() -> None:
    assert set(PG_COLLECTOR_GROUPS) <= table_names(DOC)


def test_alert_table_is_the_rules_file_and_every_alert_has_a_runbook() -> None:
    documented = dict(re.findall(r"^\| `(Postgres\w+)` \| \w+ \| `(.+)` \| \w+ \|$", DOC, re.M))
    assert documented == {rule["alert"]: rule["expr"] for rule in rules()}
    runbooks = set(re.findall(r"^#### (\w+)$", DOC, re.M))
    assert runbooks == set(documented)


def test_rules_read_only_emitted_metrics() -> None:
    for rule in rules():
        assert metric_names(rule["expr"]) <= QUERYABLE_METRICS, rule["alert"]


def test_every_alert_has_a_firing_case_in_the_promtool_tests() -> None:
    tests = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert firing == {rule["alert"] for rule in rules()}
