"""Static checks of grafana/ and the alert rules: structure, datasource variable, units, and
that every metric a panel reads is one the product emits (tests/dashboards.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.dashboards import (
    BUILTIN_VALUES,
    DASHBOARD_DIR,
    DASHBOARD_FILES,
    DATASOURCE_REF,
    EMITTED_METRICS,
    GRAFANA_DIR,
    PROMTOOL_ALLOWED_FINDINGS,
    QUERYABLE_METRICS,
    ROOT,
    RULES_FILE,
    SPEC_METRICS,
    interpolate,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
    parse_label_values,
    referenced_variables,
    variable_query,
    variables,
)

# Grafana 11's dashboard schema; older Grafana versions refuse nothing here but migrate.
MIN_SCHEMA_VERSION = 39
UNITS = {"bytes", "percent", "ms", "ops", "s", "short", "none", "Bps", "iops"}
GRAFANA_DOC = ROOT / "docs" / "grafana.md"


def _grafana_section() -> str:
    """The Grafana page of the documentation."""
    return GRAFANA_DOC.read_text()


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


# --- the metric-name reader itself (the checks below are only as good as it is) ----------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('pg_up{job=~"$job",instance=~"$instance"}', {"pg_up"}),
        ('rate(pg_query_calls{a="b"}[$__rate_interval])', {"pg_query_calls"}),
        ("topk(10, rate(x[5m]))", {"x"}),
        ("count by (reason) (middleware_collector_failure)", {"middleware_collector_failure"}),
        ("max without (job) (a) / on (instance) group_left (source) b", {"a", "b"}),
        (
            "time() - max by (job, instance) (push_time_seconds and on (job, instance) up_x) > 300",
            {"push_time_seconds", "up_x"},
        ),
        (
            '{__name__=~"mongo_up|mongo_cpu_utilization",job="j"}',
            {"mongo_up", "mongo_cpu_utilization"},
        ),
        ("absent(a offset 5m) or b", {"a", "b"}),
        ("sum(a) by (job)", {"a"}),
    ],
)
def test_metric_names_reads_selectors_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_metric_names_refuses_a_name_regex_it_cannot_check() -> None:
    with pytest.raises(ValueError, match="__name__ matcher is not a list of names"):
        metric_names('{__name__=~"pg_.+"}')


def test_interpolate_replaces_variables_and_grafana_builtins() -> None:
    expr = 'rate(a{job=~"$job",instance=~"${instance}"}[$__rate_interval])'
    assert interpolate(expr, {"job": "j", "instance": "db1"}) == (
        f'rate(a{{job=~"j",instance=~"db1"}}[{BUILTIN_VALUES["__rate_interval"]}])'
    )
    with pytest.raises(KeyError, match=r"no value for \$instance"):
        interpolate('a{instance=~"$instance"}', {})


# --- dashboards -------------------------------------------------------------------------------


def test_the_four_dashboards_and_nothing_else() -> None:
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == sorted(DASHBOARD_FILES)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_dashboard_shape(name: str) -> None:
    dashboard = load_dashboard(name)
    assert dashboard["schemaVersion"] >= MIN_SCHEMA_VERSION
    assert dashboard["uid"].startswith("mm-") and dashboard["title"]
    assert "id" not in dashboard, "an exported id makes provisioning clash with existing dashboards"
    assert "__inputs" not in dashboard, "the datasource variable replaces import-time inputs"
    every = [*dashboard["panels"], *(c for p in dashboard["panels"] for c in p.get("panels", []))]
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_datasource_is_a_variable_never_a_fixed_uid(name: str) -> None:
    dashboard = load_dashboard(name)
    datasource = variables(dashboard)["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    for panel in panels(dashboard):
        if panel["type"] == "text":
            assert "targets" not in panel
            continue
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, panel["title"]
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE_REF, variable["name"]
    # No other datasource uid anywhere (the built-in annotation's "-- Grafana --" aside).
    uids = set(re.findall(r'"uid": "([^"]*)"', json.dumps(dashboard, indent=1)))
    assert uids == {"${datasource}", "-- Grafana --", dashboard["uid"]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("postgresql.json", ["datasource", "job", "instance", "database_name"]),
        ("documentdb.json", ["datasource", "job", "instance", "docdb_instance", "docdb_cluster"]),
        ("elasticache.json", ["datasource", "job", "instance", "elasticache"]),
        ("collector-health.json", ["datasource", "job", "instance", "source"]),
        ("fleet.json", ["datasource", "job", "account", "region", "kind"]),
        ("fleet-overview.json", ["datasource", "job", "top"]),
    ],
)
def test_template_variables(name: str, expected: list[str]) -> None:
    dashboard = load_dashboard(name)
    assert list(variables(dashboard)) == expected
    defined = set(variables(dashboard)) | set(BUILTIN_VALUES)
    for query in panel_queries(name):
        assert referenced_variables(query.expr) <= defined, str(query)
    for variable in variables(dashboard).values():
        if variable["type"] != "query":
            continue
        selector, label = parse_label_values(variable_query(variable))
        assert referenced_variables(selector) <= defined
        # Filtering by a variable must come from the same label the variable lists.
        assert label in {
            "job",
            "instance",
            "source",
            "DocDB",
            "ElastiCache",
            "account",
            "region",
            "kind",
            "database_name",
        }


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_panel_has_a_unit(name: str) -> None:
    for panel in panels(load_dashboard(name)):
        if panel["type"] in {"text", "state-timeline"}:
            continue
        config = panel["fieldConfig"]
        if panel["type"] == "table":
            units = [
                prop["value"]
                for override in config["overrides"]
                for prop in override["properties"]
                if prop["id"] == "unit"
            ]
            assert len(units) == len(panel["targets"]), panel["title"]
        else:
            units = [config["defaults"]["unit"]]
        assert set(units) <= UNITS, (panel["title"], units)


def test_units_match_what_the_values_are() -> None:
    """The unit of a panel reading a metric, for the metrics whose unit is not a plain count."""
    expected = {
        "pg_database_size_bytes": "bytes",
        "pg_uptime_seconds": "s",
        "pg_qps_all": "ops",
        "pg_cpu_utilization": "percent",
        "pg_memory_utilization": "bytes",
        "pg_storage_disk_space": "bytes",
        "pg_network_throughput": "Bps",
        "pg_read_iops": "iops",
        "pg_query_mean_exec_time": "ms",
        "pg_query_hit_percent": "percent",
        "pg_query_wal_bytes": "bytes",
        "pg_query_total_plan_time": "ms",
        "pg_database_xid_age": "percent",
        "pg_replica_lag_seconds": "s",
        "pg_replication_slot_retained_wal_bytes": "bytes",
        "pg_oldest_xact_seconds": "s",
        "pg_table_last_autovacuum_timestamp_seconds": "s",
        "pg_database_temp_bytes_total": "Bps",
        "mongo_cpu_utilization": "percent",
        "mongo_freeable_memory": "bytes",
        "mongo_read_latency": "ms",
        "mongo_volume_bytesused": "bytes",
        "mongo_opcounters_insert": "ops",
        "redis_memory_used_bytes": "bytes",
        "redis_memory_max_bytes": "bytes",
        "redis_database_memory_usage_percentage": "percent",
        "redis_freeable_memory_bytes": "bytes",
        "redis_cache_hit_rate": "percent",
        "redis_engine_cpu_utilization": "percent",
        "redis_replication_lag_seconds": "s",
        "redis_connected_slave_lag_seconds": "s",
        "redis_net_input_bytes_total": "Bps",
        "redis_network_in_bytes": "bytes",
        "middleware_pass_duration_seconds": "s",
        "middleware_pass_timestamp_seconds": "s",
        "middleware_target_last_success_timestamp_seconds": "s",
        "aws_rds_certificate_expiry_timestamp_seconds": "s",
        "aws_rds_allocated_storage_bytes": "bytes",
        "middleware_discovery_duration_seconds": "s",
    }
    seen: dict[str, set[str]] = {}
    for name in DASHBOARD_FILES:
        for panel in panels(load_dashboard(name)):
            for index, target in enumerate(panel.get("targets", [])):
                if panel["type"] == "table":
                    unit = panel["fieldConfig"]["overrides"][index]["properties"][0]["value"]
                else:
                    unit = panel["fieldConfig"]["defaults"].get("unit", "")
                for metric in metric_names(target["expr"]):
                    seen.setdefault(metric, set()).add(unit)
    for metric, unit in expected.items():
        assert seen[metric] == {unit}, metric


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_panels_read_only_metrics_the_product_emits(name: str) -> None:
    dashboard = load_dashboard(name)
    for query in panel_queries(name):
        unknown = metric_names(query.expr) - QUERYABLE_METRICS
        assert not unknown, f"{query}: not emitted by the product: {sorted(unknown)}"
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            selector, _ = parse_label_values(variable_query(variable))
            assert metric_names(selector) <= EMITTED_METRICS, variable["name"]


def test_every_contract_metric_is_on_a_panel() -> None:
    shown: set[str] = set()
    for name in DASHBOARD_FILES:
        for query in panel_queries(name):
            shown |= metric_names(query.expr)
    missing = {
        section: sorted(set(names) - shown)
        for section, names in SPEC_METRICS.items()
        if set(names) - shown
    }
    assert not missing
    assert EMITTED_METRICS - shown == set(), "emitted but shown nowhere"


def test_postgresql_dashboard_needs_nothing_from_postgres_exporter() -> None:
    names: set[str] = set()
    for query in panel_queries("postgresql.json"):
        names |= metric_names(query.expr)
    freshness = {"middleware_target_last_success_timestamp_seconds"}
    assert names <= EMITTED_METRICS
    # The product's own names: SQL and CloudWatch (pg_*), Enhanced Monitoring (rds_os_*).
    assert all(n.startswith(("pg_", "rds_os_")) for n in names - freshness)


def test_statements_are_a_sortable_table_of_every_pg_query_metric() -> None:
    dashboard = load_dashboard("postgresql.json")
    [table] = [p for p in panels(dashboard) if p["title"] == "Top statements"]
    exprs = [t["expr"] for t in table["targets"]]
    shown = set().union(*(metric_names(e) for e in exprs))
    assert shown == set(SPEC_METRICS["3.2 PostgreSQL statements"]) | set(
        SPEC_METRICS["11 PostgreSQL statement details"]
    )
    assert all(t["instant"] and t["format"] == "table" for t in table["targets"])
    assert table["transformations"][0]["id"] == "merge"
    assert table["options"]["sortBy"] == [{"displayName": "Total time", "desc": True}]
    columns = table["transformations"][1]["options"]["indexByName"]
    assert {"query", "database", "user", "queryid", "instance"} <= set(columns)


def test_collector_health_shows_up_down_duration_missing_values_and_staleness() -> None:
    exprs = [q.expr for q in panel_queries("collector-health.json")]
    joined = "\n".join(exprs)
    for needle in (
        "middleware_collector_up{",
        "middleware_collector_failure{",
        "middleware_pass_duration_seconds{",
        "middleware_cloudwatch_metrics_missing{",
        "time() - max_over_time(middleware_pass_timestamp_seconds{",
        "time() - middleware_target_last_success_timestamp_seconds{",
        "time() - middleware_collector_last_success_timestamp_seconds{",
    ):
        assert needle in joined, needle


def test_fleet_is_one_row_per_discovered_resource_with_its_inventory() -> None:
    """Issue 14: kind, engine version, role, up, certificate expiry, pending maintenance."""
    [fleet] = [p for p in panels(load_dashboard("fleet.json")) if p["title"] == "Fleet"]
    assert fleet["type"] == "table"
    assert all(t["instant"] and t["format"] == "table" for t in fleet["targets"])
    # Every value query is restricted to discovered resources of the selection.
    info = fleet["targets"][0]["expr"]
    assert metric_names(info) == {"aws_resource_info"}
    for target in fleet["targets"][1:]:
        assert target["expr"].endswith(f"and on (job, instance) {info}"), target["expr"]
    assert [metric_names(t["expr"]) - {"aws_resource_info"} for t in fleet["targets"][1:]] == [
        {"middleware_collector_up"},
        {"aws_rds_certificate_expiry_timestamp_seconds"},
        {"aws_rds_pending_maintenance_actions"},
    ]
    merge, organize = fleet["transformations"]
    assert merge["id"] == "merge"
    columns = organize["options"]["indexByName"]
    assert {
        "instance",
        "kind",
        "engine_version",
        "role",
        "Value #B",
        "Value #C",
        "Value #D",
    } <= set(columns)
    assert organize["options"]["renameByName"] == {
        "Value #A": "Info",
        "Value #B": "Up",
        "Value #C": "Certificate expires in",
        "Value #D": "Pending maintenance",
    }
    assert organize["options"]["excludeByName"]["Value #A"] is True


# --- alert rules ---------------------------------------------------------------------------


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (make install does)"
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_alert_rules_read_only_emitted_metrics_and_are_shown_where_users_look() -> None:
    [text_panel] = [
        p for p in panels(load_dashboard("collector-health.json")) if p["type"] == "text"
    ]
    section = _grafana_section()
    for rule in _rules():
        assert metric_names(rule["expr"]) <= QUERYABLE_METRICS, rule["alert"]
        assert f"`{rule['expr']}`" in text_panel["options"]["content"], rule["alert"]
        assert rule["expr"] in section, rule["alert"]


# --- provisioning and documentation -----------------------------------------------------------


def test_provisioning_files() -> None:
    [datasource_file] = (GRAFANA_DIR / "provisioning" / "datasources").glob("*.yaml")
    [dashboards_file] = (GRAFANA_DIR / "provisioning" / "dashboards").glob("*.yaml")
    [datasource] = yaml.safe_load(datasource_file.read_text())["datasources"]
    assert (datasource["type"], datasource["url"]) == ("prometheus", "${PROMETHEUS_URL}")
    [provider] = yaml.safe_load(dashboards_file.read_text())["providers"]
    path = provider["options"]["path"]
    assert (provider["type"], path) == ("file", "/etc/grafana/middleware-monitoring/dashboards")
    section = _grafana_section()
    # The documented mount instructions put grafana/ where the provider looks.
    assert "/etc/grafana/middleware-monitoring" in section
    assert "GF_PATHS_PROVISIONING=/etc/grafana/middleware-monitoring/provisioning" in section


def test_docs_describe_each_dashboard_and_the_promtool_findings() -> None:
    section = _grafana_section()
    for name in DASHBOARD_FILES:
        assert f"`{name}`" in section, name
    for metric, finding in PROMTOOL_ALLOWED_FINDINGS:
        if finding.startswith("label names"):
            label = "DocDB" if metric.startswith("mongo_") else "ElastiCache"
            assert f"the `{label}` label" in section, metric
        else:
            assert f"`{metric}`" in section, metric


def test_fleet_overview_shows_only_the_worst_and_links_each_to_its_dashboard() -> None:
    """Usable at 500 targets: every table is one instant topk/bottomk($top, ...) query (10
    rows by default, never every series), and each row's target opens its own dashboard."""
    dashboard = load_dashboard("fleet-overview.json")
    top = variables(dashboard)["top"]
    assert (top["type"], top["current"]["value"]) == ("custom", "10")
    own = {
        "pg_": "mm-postgresql",
        "rds_os_": "mm-postgresql",
        "redis_": "mm-elasticache",
        "mongo_": "mm-documentdb",
    }
    uids = {load_dashboard(name)["uid"] for name in DASHBOARD_FILES}
    tables = list(panels(dashboard))
    assert len(tables) == 10
    for panel in tables:
        [target] = panel["targets"]
        assert panel["type"] == "table" and target["instant"], panel["title"]
        assert re.match(r"(topk|bottomk)\(\$top, ", target["expr"]), panel["title"]
        [link_override] = [
            o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "instance"
        ]
        [link] = link_override["properties"][0]["value"]
        metric = sorted(metric_names(target["expr"]))[0]
        uid = next(uid for prefix, uid in own.items() if metric.startswith(prefix))
        assert uid in uids
        assert link["url"].startswith(
            f"/d/{uid}/?var-job=${{__data.fields.job}}&var-instance=${{__data.fields.instance}}"
        ), panel["title"]
    titles = [panel["title"] for panel in tables]
    assert titles == [
        "PostgreSQL CPU",
        "PostgreSQL DB load",
        "Connection saturation",
        "Transaction ID age",
        "Free storage",
        "Replica lag",
        "OS CPU (Enhanced Monitoring)",
        "Redis memory",
        "Redis evictions",
        "DocumentDB CPU",
    ]
