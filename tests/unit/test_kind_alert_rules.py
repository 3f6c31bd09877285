"""The alert rules for Redis, DocumentDB, RDS and each target's freshness (SPEC 18): each
scoped to the collector's own series, with a description and a runbook section it links to,
reading only series the product sends, and unit-tested by promtool both firing and not."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboards import QUERYABLE_METRICS, ROOT, metric_names

PROMETHEUS = ROOT / "prometheus"
OPERATIONS = ROOT / "docs" / "operations.md"
# rules file -> the sources whose middleware_collector_up scopes its expressions
KIND_RULES = {
    "elasticache.rules.yml": {"redis"},
    "documentdb.rules.yml": {"cloudwatch", "mongo"},
    "rds.rules.yml": {"cloudwatch"},
    # The collector's own series: no other exporter sends them.
    "freshness.rules.yml": set(),
}


def _rules(name: str) -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS / name).read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _tests(name: str) -> Path:
    return PROMETHEUS / "tests" / name.replace(".rules.yml", ".rules.test.yml")


def _promtool() -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (make install does)"
    return promtool


@pytest.mark.parametrize("name", sorted(KIND_RULES))
def test_promtool_checks_the_rules_and_runs_their_unit_tests(name: str) -> None:
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(PROMETHEUS / name)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules(name))} rules found" in checked.stdout
    tested = subprocess.run(
        [_promtool(), "test", "rules", _tests(name).name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=_tests(name).parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize("name", sorted(KIND_RULES))
def test_every_alert_fires_and_does_not_in_its_unit_tests(name: str) -> None:
    cases = [
        case
        for test in yaml.safe_load(_tests(name).read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    alerts = {rule["alert"] for rule in _rules(name)}
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == alerts


@pytest.mark.parametrize("name", sorted(KIND_RULES))
def test_scoped_to_the_collector_described_and_with_a_runbook(name: str) -> None:
    scopes = tuple(
        f'and on (job, instance) middleware_collector_up{{source="{source}"}}'
        for source in KIND_RULES[name]
    )
    headings = set(re.findall(r"^### (\w+)$", OPERATIONS.read_text(), re.M))
    for rule in _rules(name):
        alert = rule["alert"]
        assert not scopes or rule["expr"].endswith(scopes), alert
        assert metric_names(rule["expr"]) <= QUERYABLE_METRICS, alert
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, alert
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{alert.lower()}"
        assert alert in headings, alert
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, alert


def test_alert_names_are_unique_across_every_rules_file() -> None:
    names = [
        rule.get("alert") or rule["record"]
        for path in sorted(PROMETHEUS.glob("*.rules.yml"))
        for rule in _rules(path.name)
    ]
    assert len(names) == len(set(names))
