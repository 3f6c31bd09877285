"""What the Grafana dashboards may reference, and how to read them, for the dashboard tests.

``EMITTED_METRICS`` is the one list of series names the product emits (with PostgreSQL,
DocumentDB and CloudWatch configured). The static test holds every dashboard to it; the
end-to-end test holds it to the names a real pass actually pushed, so the list cannot drift
from the code in either direction. ``SPEC_METRICS`` is the contract (SPEC section 3): each
must be on some panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GRAFANA_DIR = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
RULES_FILE = ROOT / "prometheus" / "middleware-monitoring.rules.yml"
POSTGRES_RULES_FILE = ROOT / "prometheus" / "postgresql.rules.yml"
DASHBOARD_FILES = (
    "postgresql.json",
    "documentdb.json",
    "elasticache.json",
    "collector-health.json",
    "fleet.json",
    "fleet-overview.json",
)
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}

SPEC_METRICS: dict[str, tuple[str, ...]] = {
    "3.1 PostgreSQL by SQL": (
        "pg_up",
        "pg_database_size_bytes",
        "pg_user_connection_count",
        "pg_total_connections",
        "pg_active_connections",
        "pg_idle_connections",
        "pg_uptime_seconds",
        "pg_qps_all",
        "pg_qps_read",
        "pg_qps_write",
        "pg_wait_session_sec",
        "pg_wait_session_five_sec",
    ),
    "3.2 PostgreSQL statements": (
        "pg_query_calls",
        "pg_query_total_exec_time",
        "pg_query_min_exec_time",
        "pg_query_max_exec_time",
        "pg_query_mean_exec_time",
        "pg_query_blk_read_time",
        "pg_query_blk_write_time",
        "pg_query_rows",
        "pg_query_hit_percent",
    ),
    "3.3 PostgreSQL from CloudWatch": (
        "pg_storage_disk_space",
        "pg_cpu_utilization",
        "pg_memory_utilization",
        "pg_network_throughput",
        "pg_read_iops",
    ),
    "3.4 DocumentDB serverStatus": (
        "mongo_up",
        "mongo_version_info",
        "mongo_uptime_seconds",
        "mongo_current_connections",
        "mongo_available_connections",
        "mongo_totalCreated_connections",
        "mongo_opcounters_insert",
        "mongo_opcounters_query",
        "mongo_opcounters_update",
        "mongo_opcounters_delete",
        "mongo_opcounters_getmore",
        "mongo_opcounters_command",
        "mongo_document_deleted",
        "mongo_document_inserted",
        "mongo_document_returned",
        "mongo_document_updated",
    ),
    "3.5 DocumentDB from CloudWatch": (
        "mongo_cpu_utilization",
        "mongo_freeable_memory",
        "mongo_network_throughput",
        "mongo_read_latency",
        "mongo_write_latency",
        "mongo_volume_bytesused",
        "mongo_volume_readiops",
        "mongo_volume_wriateiops",
    ),
    "3.6 ElastiCache from CloudWatch": (
        "redis_network_bandwidth_inallowance_exceeded",
        "redis_network_bandwidthOut_allowance_exceeded",
        "redis_network_conntrack_allowance_exceeded",
        "redis_network_packetsPerSecond_allowance_exceeded",
    ),
    "13 ElastiCache from CloudWatch": (
        "redis_engine_cpu_utilization",
        "redis_cpu_utilization",
        "redis_database_memory_usage_percentage",
        "redis_curr_connections",
        "redis_evictions",
        "redis_cache_hit_rate",
        "redis_replication_lag_seconds",
        "redis_freeable_memory_bytes",
        "redis_network_in_bytes",
        "redis_network_out_bytes",
    ),
    "13 ElastiCache engine (INFO)": ("redis_up",),
    "11 PostgreSQL health": (
        "pg_in_recovery",
        "pg_max_connections",
        "pg_database_xid_age",
        "pg_database_mxid_age",
        "pg_oldest_xact_seconds",
        "pg_idle_in_transaction_sessions",
        "pg_oldest_idle_in_transaction_seconds",
        "pg_blocked_sessions",
        "pg_blocking_sessions",
        "pg_oldest_blocked_seconds",
        "pg_wait_event_sessions",
        "pg_replication_slot_retained_wal_bytes",
        "pg_replica_lag_seconds",
        "pg_database_deadlocks_total",
        "pg_database_temp_bytes_total",
        "pg_database_xact_commit_total",
        "pg_database_xact_rollback_total",
        "pg_database_blks_hit_total",
        "pg_database_blks_read_total",
        "pg_table_dead_tuples",
        "pg_table_live_tuples",
        "pg_table_last_autovacuum_timestamp_seconds",
    ),
    "11 PostgreSQL statement details": (
        "pg_query_shared_blks_hit",
        "pg_query_shared_blks_read",
        "pg_query_temp_blks_written",
        "pg_query_wal_bytes",
        "pg_query_total_plan_time",
    ),
    "3.8 Collector health": (
        "middleware_collector_up",
        "middleware_collector_duration_seconds",
        "middleware_collector_failure",
        "middleware_collector_last_success_timestamp_seconds",
        "middleware_pass_duration_seconds",
        "middleware_pass_targets",
    ),
    "15 Freshness for every sink": (
        "middleware_pass_timestamp_seconds",
        "middleware_target_last_success_timestamp_seconds",
    ),
}
ALL_SPEC_METRICS = frozenset(name for names in SPEC_METRICS.values() for name in names)

# What a Redis 7.0 primary sends in any state (SPEC 13: redis_exporter's names for the INFO
# fields of middleware_monitoring/redis/info.py), written out so the code cannot drift.
REDIS_INFO_ALWAYS = frozenset(
    {
        "redis_up",
        "redis_instance_info",
        "redis_start_time_seconds",
        "redis_uptime_in_seconds",
        "redis_connected_clients",
        "redis_blocked_clients",
        "redis_max_clients",
        "redis_client_recent_max_input_buffer_bytes",
        "redis_client_recent_max_output_buffer_bytes",
        "redis_memory_used_bytes",
        "redis_memory_used_rss_bytes",
        "redis_memory_used_peak_bytes",
        "redis_memory_used_overhead_bytes",
        "redis_memory_used_dataset_bytes",
        "redis_memory_max_bytes",
        "redis_mem_fragmentation_ratio",
        "redis_mem_fragmentation_bytes",
        "redis_mem_not_counted_for_eviction_bytes",
        "redis_mem_clients_normal",
        "redis_mem_clients_slaves",
        "redis_mem_total_replication_buffers_bytes",
        "redis_loading_dump_file",
        "redis_rdb_changes_since_last_save",
        "redis_rdb_bgsave_in_progress",
        "redis_rdb_last_save_timestamp_seconds",
        "redis_rdb_last_bgsave_status",
        "redis_rdb_last_bgsave_duration_sec",
        "redis_rdb_last_cow_size_bytes",
        "redis_aof_enabled",
        "redis_aof_rewrite_in_progress",
        "redis_aof_last_bgrewrite_status",
        "redis_aof_last_write_status",
        "redis_connections_received_total",
        "redis_commands_processed_total",
        "redis_net_input_bytes_total",
        "redis_net_output_bytes_total",
        "redis_net_repl_input_bytes_total",
        "redis_net_repl_output_bytes_total",
        "redis_rejected_connections_total",
        "redis_replica_resyncs_full",
        "redis_replica_partial_resync_accepted",
        "redis_replica_partial_resync_denied",
        "redis_expired_keys_total",
        "redis_expired_stale_percentage",
        "redis_expired_time_cap_reached_total",
        "redis_evicted_keys_total",
        "redis_evicted_clients_total",
        "redis_eviction_exceeded_time_ms_total",
        "redis_current_eviction_exceeded_time_ms",
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "redis_pubsub_channels",
        "redis_pubsub_patterns",
        "redis_latest_fork_seconds",
        "redis_total_error_replies_total",
        "redis_connected_slaves",
        "redis_master_repl_offset",
        "redis_cpu_sys_seconds_total",
        "redis_cpu_user_seconds_total",
        "redis_cpu_sys_children_seconds_total",
        "redis_cpu_user_children_seconds_total",
        "redis_cpu_sys_main_thread_seconds_total",
        "redis_cpu_user_main_thread_seconds_total",
        "redis_cluster_enabled",
        # SPEC 18: the rest of what redis_exporter maps from a 7.0 primary's INFO, and the
        # slow log.
        "redis_process_id",
        "redis_io_threads_active",
        "redis_cluster_connections",
        "redis_tracking_clients",
        "redis_clients_in_timeout_table",
        "redis_memory_used_startup_bytes",
        "redis_memory_used_lua_bytes",
        "redis_memory_used_scripts_bytes",
        "redis_number_of_cached_scripts",
        "redis_total_system_memory_bytes",
        "redis_allocator_allocated_bytes",
        "redis_allocator_active_bytes",
        "redis_allocator_resident_bytes",
        "redis_allocator_frag_ratio",
        "redis_allocator_frag_bytes",
        "redis_allocator_rss_ratio",
        "redis_allocator_rss_bytes",
        "redis_active_defrag_running",
        "redis_lazyfree_pending_objects",
        "redis_rdb_current_bgsave_duration_sec",
        "redis_aof_rewrite_scheduled",
        "redis_aof_last_rewrite_duration_sec",
        "redis_aof_current_rewrite_duration_sec",
        "redis_aof_last_cow_size_bytes",
        "redis_module_fork_in_progress",
        "redis_module_fork_last_cow_size",
        "redis_migrate_cached_sockets_total",
        "redis_slave_expires_tracked_keys",
        "redis_defrag_hits",
        "redis_defrag_misses",
        "redis_defrag_key_hits",
        "redis_defrag_key_misses",
        "redis_tracking_total_keys",
        "redis_tracking_total_items",
        "redis_tracking_total_prefixes",
        "redis_unexpected_error_replies_total",
        "redis_dump_payload_sanitizations_total",
        "redis_total_reads_processed_total",
        "redis_total_writes_processed_total",
        "redis_io_threaded_reads_processed_total",
        "redis_io_threaded_writes_processed_total",
        "redis_second_repl_offset",
        "redis_repl_backlog_is_active",
        "redis_replication_backlog_bytes",
        "redis_repl_backlog_first_byte_offset",
        "redis_repl_backlog_history_bytes",
        "redis_slowlog_length",
        "redis_slowlog_last_id",
        "redis_last_slow_execution_duration_seconds",
    }
)
# ... and what keys, a replica (on both ends), an error reply and commands add.
REDIS_INFO_METRICS = REDIS_INFO_ALWAYS | {
    "redis_db_keys",
    "redis_db_keys_expiring",
    "redis_db_avg_ttl_seconds",
    "redis_connected_slave_offset_bytes",
    "redis_connected_slave_lag_seconds",
    "redis_master_link_up",
    "redis_master_last_io_seconds_ago",
    "redis_master_sync_in_progress",
    "redis_slave_repl_offset",
    "redis_slave_info",
    "redis_errors_total",
    "redis_slave_priority",
    "redis_commands_total",
    "redis_commands_duration_seconds_total",
    "redis_commands_rejected_calls_total",
    "redis_commands_failed_calls_total",
    "redis_latency_percentiles_usec",
    "redis_latency_percentiles_usec_count",
    "redis_latency_percentiles_usec_sum",
}

# SPEC 17 (ENHANCED_MONITORING, PERFORMANCE_INSIGHTS): what an RDS and an Aurora event and a
# Performance Insights answer make.
INSIGHTS_METRICS = frozenset(
    {
        "rds_os_vcpus",
        "rds_os_cpu_utilization_percent",
        "rds_os_load_average",
        "rds_os_memory_bytes",
        "rds_os_swap_bytes",
        "rds_os_tasks",
        "rds_os_network_bytes_per_second",
        "rds_os_disk_iops",
        "rds_os_disk_throughput_bytes_per_second",
        "rds_os_disk_utilization_percent",
        "rds_os_disk_queue_length",
        "rds_os_disk_await_seconds",
        "rds_os_disk_latency_seconds",
        "rds_os_aurora_storage_bytes_per_second",
        "rds_os_filesystem_size_bytes",
        "rds_os_filesystem_used_bytes",
        "rds_os_process_cpu_percent",
        "rds_os_process_memory_percent",
        "rds_os_sample_age_seconds",
        "pg_pi_load",
        "pg_pi_sql_load",
    }
)

# Emitted beyond the contract's tables: the Aurora cluster volume (Aurora has no
# FreeStorageSpace), the freeze settings the wraparound alerts compare with, the CloudWatch
# batch's pass-wide self-metrics, which collector deployment pushed each target's group, Redis
# INFO, and discovery's series (SPEC 10 names them).
EXTRA_METRICS = frozenset(
    {
        "pg_volume_bytes_used",
        # SPEC 18: what the RDS and DocumentDB alert rules read beside SPEC 3's series.
        "pg_burst_balance_percent",
        "mongo_replica_lag",
        # SPEC 18: the largest collections, their indexes and the operations in progress.
        "mongo_collection_size_bytes",
        "mongo_collection_documents",
        "mongo_collection_index_size_bytes",
        "mongo_collection_ops_total",
        "mongo_index_accesses_total",
        "mongo_current_ops",
        "mongo_oldest_op_seconds",
        "pg_autovacuum_freeze_max_age",
        "pg_autovacuum_multixact_freeze_max_age",
        # Custom SQL metrics (PG_QUERIES_FILE): each query's health.
        "pg_custom_query_up",
        "pg_custom_query_series_dropped",
        # DB load from CloudWatch (SPEC 16), while Performance Insights is on.
        "pg_db_load",
        "pg_db_load_cpu",
        "pg_db_load_non_cpu",
        # Per database (SPEC 16): index usage; a vacuum running now.
        "pg_index_scans_total",
        "pg_index_size_bytes",
        "pg_vacuum_running",
        "pg_vacuum_progress_ratio",
        "pg_vacuum_seconds",
        "pg_table_bloat_bytes",
        "middleware_cloudwatch_getmetricdata_calls",
        "middleware_cloudwatch_metrics_requested",
        "middleware_cloudwatch_metrics_missing",
        "middleware_cloudwatch_metrics_failed",
        *REDIS_INFO_METRICS,
        # Discovery (SPEC 10): each discovered resource's inventory and each unit's health.
        "aws_resource_info",
        "aws_rds_allocated_storage_bytes",
        "aws_rds_pending_maintenance_actions",
        "aws_rds_certificate_expiry_timestamp_seconds",
        "aws_rds_backup_retention_days",
        "middleware_discovery_up",
        "middleware_discovery_failure",
        "middleware_discovery_duration_seconds",
        "middleware_discovery_last_success_timestamp_seconds",
        "middleware_discovery_resources",
        "middleware_discovery_enrichment_up",
        # SPEC 19: every pass says how many series it sent.
        "middleware_series_sent",
        # Database Insights (SPEC 17): Enhanced Monitoring and Performance Insights.
        *INSIGHTS_METRICS,
    }
)
EMITTED_METRICS = ALL_SPEC_METRICS | EXTRA_METRICS
# Added by the Pushgateway to every pushed group; dashboards and rules use the collector's own
# middleware_pass_timestamp_seconds instead, which every sink has.
PUSHGATEWAY_METRICS = frozenset({"push_time_seconds", "push_failure_time_seconds"})
QUERYABLE_METRICS = EMITTED_METRICS | PUSHGATEWAY_METRICS

# `promtool check metrics` findings on a full pass: the older exporter's names and labels, kept
# so existing dashboards and alerts keep working (README, "Metric names and promtool").
_ABBREVIATED = "metric names should not contain abbreviated units"
_CAMEL_NAME = "metric names should be written in 'snake_case' not 'camelCase'"
_CAMEL_LABEL = "label names should be written in 'snake_case' not 'camelCase'"
_COUNT_SUFFIX = 'non-histogram and non-summary metrics should not have "_count" suffix'
PROMTOOL_ALLOWED_FINDINGS = frozenset(
    {
        ("pg_wait_session_sec", _ABBREVIATED),
        ("pg_wait_session_five_sec", _ABBREVIATED),
        ("pg_user_connection_count", _COUNT_SUFFIX),
        ("mongo_totalCreated_connections", _CAMEL_NAME),
        ("redis_network_bandwidthOut_allowance_exceeded", _CAMEL_NAME),
        ("redis_network_packetsPerSecond_allowance_exceeded", _CAMEL_NAME),
        # SPEC 10 names it in days (docs/discovery.md).
        ("aws_rds_backup_retention_days", 'use base unit "seconds" instead of "days"'),
        # The `DocDB` and `ElastiCache` labels.
        *(
            (name, _CAMEL_LABEL)
            for section in (
                "3.5 DocumentDB from CloudWatch",
                "3.6 ElastiCache from CloudWatch",
                "13 ElastiCache from CloudWatch",
            )
            for name in SPEC_METRICS[section]
        ),
        # The DocumentDB replica lag (SPEC 18) carries `DocDB` like SPEC 3.5's series.
        ("mongo_replica_lag", _CAMEL_LABEL),
    }
)

# Grafana's own variables, replaced with concrete values when a query is evaluated.
BUILTIN_VALUES = {"__rate_interval": "20s", "__interval": "15s", "__range": "5m"}


def load_dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text())
    return data


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included, rows themselves left out."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def panel_queries(name: str) -> list[PanelQuery]:
    dashboard = load_dashboard(name)
    return [
        PanelQuery(
            name, panel["title"], target["refId"], target["expr"], bool(target.get("instant"))
        )
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variables(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable: Mapping[str, Any]) -> str:
    query = variable.get("query")
    text = query.get("query", "") if isinstance(query, Mapping) else query
    return str(text or "")


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_]\w*)\s*\)$")


def parse_label_values(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> (selector, label); anything else is an error."""
    match = _LABEL_VALUES.match(query.strip())
    if match is None:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return match["selector"].strip(), match["label"]


# --- PromQL: which metric names does an expression read? ------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
    | (?P<variable>\$\{?\w+(?::\w+)?\}?)
    | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],])
    | (?P<space>\s+)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
)
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk"}
    | {"topk", "quantile", "limitk", "limit_ratio"}
)
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[pos:]!r} in {expr!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: bare names and ``{__name__=~"a|b"}`` matchers.

    Function names, keywords, label names (inside ``{}`` and ``by (...)`` lists), durations
    and Grafana variables are not metric names. A ``__name__`` regex must be a plain
    alternation of names, so that it can be checked.
    """
    tokens = _tokens(expr)
    names: set[str] = set()
    brace = bracket = 0
    label_list_depth: int | None = None
    paren = 0
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text == "{":
            brace += 1
        elif text == "}":
            brace -= 1
        elif text == "[":
            bracket += 1
        elif text == "]":
            bracket -= 1
        elif text == "(":
            paren += 1
        elif text == ")":
            paren -= 1
            if label_list_depth is not None and paren < label_list_depth:
                label_list_depth = None
        elif kind == "ident" and brace:
            if text == "__name__" and i + 2 < len(tokens) and tokens[i + 2][0] == "string":
                alternatives = tokens[i + 2][1][1:-1]
                if not re.fullmatch(
                    r"[a-zA-Z_:][a-zA-Z0-9_:]*(\|[a-zA-Z_:][a-zA-Z0-9_:]*)*", alternatives
                ):
                    raise ValueError(f"__name__ matcher is not a list of names in {expr!r}")
                names.update(alternatives.split("|"))
                i += 2
        elif kind == "ident" and not bracket and label_list_depth is None:
            if text in _LABEL_LIST_KEYWORDS and following == "(":
                label_list_depth = paren + 1
            elif text == "offset":
                i += 1
            elif text in _AGGREGATIONS and following in ("by", "without"):
                pass
            elif text not in _KEYWORDS and following != "(":
                names.add(text)
        i += 1
    return names


def interpolate(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` as Grafana would for single values (regex-escaped
    where the value sits in a ``=~`` matcher is the caller's concern); unknown names fail."""
    merged = {**BUILTIN_VALUES, **values}

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if name not in merged:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return merged[name]

    return re.sub(r"\$\{(?P<braced>\w+)\}|\$(?P<bare>\w+)", replace, expr)


def referenced_variables(expr: str) -> set[str]:
    return {m[0] or m[1] for m in re.findall(r"\$\{(\w+)\}|\$(\w+)", expr)}
