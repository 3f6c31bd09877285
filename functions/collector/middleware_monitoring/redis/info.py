"""What one INFO reply becomes: redis_exporter's series names for the same fields (SPEC 13).

Names are redis_exporter's (its ``metricMapGauges`` / ``metricMapCounters`` and the series it
derives from keyspace, replication and error lines), so dashboards made for it work on this
data (SPEC 18: every INFO field redis_exporter maps). Adding a field is one ``Field`` row
(and a line in docs/elasticache.md).

Per-command statistics (``cmdstat_*``, bounded by the server's command table), latency
percentiles (``latency_percentiles_usec_*``, Redis 7+) and error statistics come from the
same reply; ``slowlog_families`` turns the SLOWLOG LEN / GET 1 replies into series.

The reply is parsed here rather than by the client library: valkey-py's parser guesses types
(a build id or run id that happens to look numeric would become a number), and labels need
the server's own strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

Kind = Literal["gauge", "counter", "summary"]
# CloudWatch units (the EMF sink's ``emf.UNITS``), by name as Powertools' MetricUnit spells them.
Unit = Literal["Seconds", "Milliseconds", "Bytes", "Count", "Percent", "None"]

UP: Final = "redis_up"
LATENCY_SUMMARY: Final = "redis_latency_percentiles_usec"
UP_HELP: Final = "1 if the node was reached and answered INFO this pass, else 0."
INFO_LABELS: Final = (
    "role",
    "redis_version",
    "redis_build_id",
    "redis_mode",
    "os",
    "maxmemory_policy",
    "tcp_port",
    "run_id",
    "process_id",
    "master_replid",
)
# Valkey adds these to INFO; redis_exporter adds them to the info series when present.
OPTIONAL_INFO_LABELS: Final = ("valkey_version", "valkey_release_stage", "availability_zone")
MASTER_LABELS: Final = ("master_host", "master_port")
REPLICA_LABELS: Final = ("slave_ip", "slave_port", "slave_state")


@dataclass(frozen=True)
class Field:
    """One INFO field exported as one series without labels."""

    info: str
    series: str
    kind: Kind
    unit: Unit
    help: str
    scale: float = 1.0


def _g(info: str, series: str, unit: Unit, help: str, scale: float = 1.0) -> Field:
    return Field(info, f"redis_{series}", "gauge", unit, help, scale)


def _c(info: str, series: str, unit: Unit, help: str) -> Field:
    return Field(info, f"redis_{series}", "counter", unit, help)


B: Final[Unit] = "Bytes"
S: Final[Unit] = "Seconds"
N: Final[Unit] = "Count"
PCT: Final[Unit] = "Percent"
NONE: Final[Unit] = "None"

# In INFO's own section order: every field redis_exporter 1.45 maps for Redis OSS and Valkey
# (its Tile38, KeyDB and storage-provider fields left out). redis_exporter 1.45 names a few
# counters without ``_total`` (total_error_replies, total_reads_processed...); a Prometheus
# counter's samples end in ``_total`` (SPEC 18: ``redis_total_error_replies_total``), so those
# are counters here under its name plus ``_total``. Its gauges keep its names, even the ones
# ending in ``_total`` (migrate_cached_sockets_total); expired_time_cap_reached_total is the
# counter that later redis_exporter releases made it.
FIELDS: Final[tuple[Field, ...]] = (
    # Server
    _g("uptime_in_seconds", "uptime_in_seconds", S, "Seconds since the server started."),
    _g("process_id", "process_id", NONE, "Process id of the server."),
    _g("io_threads_active", "io_threads_active", NONE, "1 while I/O threads are in use."),
    # Clients
    _g("connected_clients", "connected_clients", N, "Client connections (replicas excluded)."),
    _g("blocked_clients", "blocked_clients", N, "Clients waiting in a blocking command."),
    _g("cluster_connections", "cluster_connections", N, "Cluster bus connections."),
    _g("tracking_clients", "tracking_clients", N, "Clients with client-side caching on."),
    _g(
        "clients_in_timeout_table",
        "clients_in_timeout_table",
        N,
        "Blocked clients with a timeout.",
    ),
    _g(
        "client_longest_output_list",
        "client_longest_output_list",
        N,
        "Longest output list of a client (Redis before 5).",
    ),
    _g(
        "client_biggest_input_buf",
        "client_biggest_input_buf",
        B,
        "Biggest input buffer of a client (Redis before 5).",
    ),
    _g("maxclients", "max_clients", N, "The maxclients setting."),
    _g(
        "client_recent_max_input_buffer",
        "client_recent_max_input_buffer_bytes",
        B,
        "Largest client input buffer seen recently.",
    ),
    _g(
        "client_recent_max_output_buffer",
        "client_recent_max_output_buffer_bytes",
        B,
        "Largest client output buffer seen recently.",
    ),
    # Memory
    _g("used_memory", "memory_used_bytes", B, "Memory allocated by the server."),
    _g("used_memory_rss", "memory_used_rss_bytes", B, "Resident memory of the server process."),
    _g("used_memory_peak", "memory_used_peak_bytes", B, "Peak of used_memory."),
    _g("used_memory_overhead", "memory_used_overhead_bytes", B, "Memory not holding data."),
    _g("used_memory_dataset", "memory_used_dataset_bytes", B, "Memory holding data."),
    _g("used_memory_startup", "memory_used_startup_bytes", B, "Memory used at start-up."),
    _g("used_memory_lua", "memory_used_lua_bytes", B, "Memory of the Lua engine."),
    _g("used_memory_scripts", "memory_used_scripts_bytes", B, "Memory of cached scripts."),
    _g("number_of_cached_scripts", "number_of_cached_scripts", N, "Scripts cached."),
    _g("total_system_memory", "total_system_memory_bytes", B, "Memory of the host."),
    _g("allocator_allocated", "allocator_allocated_bytes", B, "Bytes the allocator handed out."),
    _g("allocator_active", "allocator_active_bytes", B, "Bytes in the allocator's active pages."),
    _g(
        "allocator_resident",
        "allocator_resident_bytes",
        B,
        "Bytes resident in the allocator.",
    ),
    _g(
        "allocator_frag_ratio",
        "allocator_frag_ratio",
        NONE,
        "allocator_active / allocator_allocated.",
    ),
    _g(
        "allocator_frag_bytes",
        "allocator_frag_bytes",
        B,
        "allocator_active minus allocator_allocated.",
    ),
    _g("allocator_rss_ratio", "allocator_rss_ratio", NONE, "allocator_resident / active."),
    _g("allocator_rss_bytes", "allocator_rss_bytes", B, "allocator_resident minus active."),
    _g("maxmemory", "memory_max_bytes", B, "The maxmemory limit (0: none)."),
    _g(
        "maxmemory_reservation",
        "memory_max_reservation_bytes",
        B,
        "Memory reserved (ElastiCache reserved-memory).",
    ),
    _g(
        "maxmemory_desired_reservation",
        "memory_max_reservation_desired_bytes",
        B,
        "Memory reservation asked for.",
    ),
    _g(
        "maxfragmentationmemory_reservation",
        "memory_max_fragmentation_reservation_bytes",
        B,
        "Memory reserved for fragmentation.",
    ),
    _g(
        "maxfragmentationmemory_desired_reservation",
        "memory_max_fragmentation_reservation_desired_bytes",
        B,
        "Memory reservation for fragmentation asked for.",
    ),
    _g("mem_fragmentation_ratio", "mem_fragmentation_ratio", NONE, "RSS / used_memory."),
    _g("mem_fragmentation_bytes", "mem_fragmentation_bytes", B, "RSS minus used_memory."),
    _g(
        "mem_not_counted_for_evict",
        "mem_not_counted_for_eviction_bytes",
        B,
        "Replication and AOF buffers, left out of the maxmemory check.",
    ),
    _g("mem_clients_normal", "mem_clients_normal", B, "Memory of ordinary clients' buffers."),
    _g("mem_clients_slaves", "mem_clients_slaves", B, "Memory of replica clients' buffers."),
    _g(
        "mem_total_replication_buffers",
        "mem_total_replication_buffers_bytes",
        B,
        "Memory of the replication buffers.",
    ),
    _g("active_defrag_running", "active_defrag_running", NONE, "1 while defragmentation runs."),
    _g(
        "lazyfree_pending_objects",
        "lazyfree_pending_objects",
        N,
        "Objects waiting to be freed in the background.",
    ),
    # Persistence
    _g("loading", "loading_dump_file", NONE, "1 while a dump is being loaded."),
    _g(
        "rdb_changes_since_last_save",
        "rdb_changes_since_last_save",
        N,
        "Writes since the last snapshot.",
    ),
    _g("rdb_bgsave_in_progress", "rdb_bgsave_in_progress", NONE, "1 while a snapshot runs."),
    _g("rdb_last_save_time", "rdb_last_save_timestamp_seconds", S, "Unix time of the last save."),
    _g("rdb_last_bgsave_status", "rdb_last_bgsave_status", NONE, "1 if the last save was ok."),
    _g(
        "rdb_last_bgsave_time_sec",
        "rdb_last_bgsave_duration_sec",
        S,
        "Duration of the last snapshot (-1: none yet).",
    ),
    _g(
        "rdb_current_bgsave_time_sec",
        "rdb_current_bgsave_duration_sec",
        S,
        "Duration of the running snapshot (-1: none).",
    ),
    _g("rdb_last_cow_size", "rdb_last_cow_size_bytes", B, "Copy-on-write memory of the last fork."),
    _g("aof_enabled", "aof_enabled", NONE, "1 if the append-only file is on."),
    _g("aof_rewrite_in_progress", "aof_rewrite_in_progress", NONE, "1 while the AOF is rewritten."),
    _g(
        "aof_rewrite_scheduled",
        "aof_rewrite_scheduled",
        NONE,
        "1 when an AOF rewrite waits for a snapshot to end.",
    ),
    _g(
        "aof_last_rewrite_time_sec",
        "aof_last_rewrite_duration_sec",
        S,
        "Duration of the last AOF rewrite (-1: none yet).",
    ),
    _g(
        "aof_current_rewrite_time_sec",
        "aof_current_rewrite_duration_sec",
        S,
        "Duration of the running AOF rewrite (-1: none).",
    ),
    _g(
        "aof_last_bgrewrite_status",
        "aof_last_bgrewrite_status",
        NONE,
        "1 if the last AOF rewrite was ok.",
    ),
    _g("aof_last_write_status", "aof_last_write_status", NONE, "1 if the last AOF write was ok."),
    _g(
        "aof_last_cow_size",
        "aof_last_cow_size_bytes",
        B,
        "Copy-on-write memory of the last AOF fork.",
    ),
    _g("aof_current_size", "aof_current_size_bytes", B, "Size of the append-only file."),
    _g("aof_base_size", "aof_base_size_bytes", B, "Size of the AOF at its last rewrite."),
    _g("aof_pending_rewrite", "aof_pending_rewrite", NONE, "1 when an AOF rewrite is waiting."),
    _g("aof_buffer_length", "aof_buffer_length", B, "Size of the AOF buffer."),
    _g("aof_rewrite_buffer_length", "aof_rewrite_buffer_length", B, "Size of the rewrite buffer."),
    _g("aof_pending_bio_fsync", "aof_pending_bio_fsync", N, "fsync jobs waiting."),
    _g("aof_delayed_fsync", "aof_delayed_fsync", N, "Delayed fsync calls."),
    _g("module_fork_in_progress", "module_fork_in_progress", NONE, "1 while a module's fork runs."),
    _g(
        "module_fork_last_cow_size",
        "module_fork_last_cow_size",
        B,
        "Copy-on-write memory of the last module fork.",
    ),
    # Stats
    _c(
        "total_connections_received",
        "connections_received_total",
        N,
        "Connections accepted.",
    ),
    _c("total_commands_processed", "commands_processed_total", N, "Commands processed."),
    _c("total_net_input_bytes", "net_input_bytes_total", B, "Bytes read from the network."),
    _c("total_net_output_bytes", "net_output_bytes_total", B, "Bytes written to the network."),
    _c(
        "total_net_repl_input_bytes",
        "net_repl_input_bytes_total",
        B,
        "Bytes read for replication.",
    ),
    _c(
        "total_net_repl_output_bytes",
        "net_repl_output_bytes_total",
        B,
        "Bytes written for replication.",
    ),
    _c(
        "rejected_connections",
        "rejected_connections_total",
        N,
        "Connections refused because of maxclients.",
    ),
    _g("sync_full", "replica_resyncs_full", N, "Full resynchronisations with replicas."),
    _g(
        "sync_partial_ok",
        "replica_partial_resync_accepted",
        N,
        "Partial resynchronisations accepted.",
    ),
    _g(
        "sync_partial_err",
        "replica_partial_resync_denied",
        N,
        "Partial resynchronisations denied.",
    ),
    _c("expired_keys", "expired_keys_total", N, "Keys expired."),
    _g(
        "expired_stale_perc",
        "expired_stale_percentage",
        PCT,
        "Estimated share of keys expired but not yet removed.",
    ),
    _c(
        "expired_time_cap_reached_count",
        "expired_time_cap_reached_total",
        N,
        "Active expiry cycles stopped early by their time limit.",
    ),
    _c("evicted_keys", "evicted_keys_total", N, "Keys evicted because of maxmemory."),
    _c("evicted_clients", "evicted_clients_total", N, "Clients evicted (maxmemory-clients)."),
    _c(
        "total_eviction_exceeded_time",
        "eviction_exceeded_time_ms_total",
        "Milliseconds",
        "Time used_memory spent above maxmemory.",
    ),
    _g(
        "current_eviction_exceeded_time",
        "current_eviction_exceeded_time_ms",
        "Milliseconds",
        "How long used_memory has been above maxmemory now (0: it is not).",
    ),
    _c("keyspace_hits", "keyspace_hits_total", N, "Key lookups that found the key."),
    _c("keyspace_misses", "keyspace_misses_total", N, "Key lookups that missed."),
    _g("pubsub_channels", "pubsub_channels", N, "Pub/sub channels with subscribers."),
    _g("pubsub_patterns", "pubsub_patterns", N, "Pub/sub pattern subscriptions."),
    _g("latest_fork_usec", "latest_fork_seconds", S, "Duration of the latest fork.", 1e-6),
    _g(
        "migrate_cached_sockets",
        "migrate_cached_sockets_total",
        N,
        "Sockets kept open for MIGRATE (a gauge, as redis_exporter types it).",
    ),
    _g(
        "slave_expires_tracked_keys",
        "slave_expires_tracked_keys",
        N,
        "Keys with an expiry tracked on a writable replica.",
    ),
    _g("active_defrag_hits", "defrag_hits", N, "Values moved by defragmentation."),
    _g("active_defrag_misses", "defrag_misses", N, "Values defragmentation skipped."),
    _g("active_defrag_key_hits", "defrag_key_hits", N, "Keys defragmented."),
    _g("active_defrag_key_misses", "defrag_key_misses", N, "Keys defragmentation skipped."),
    _g("tracking_total_keys", "tracking_total_keys", N, "Keys tracked for client-side caching."),
    _g("tracking_total_items", "tracking_total_items", N, "Client-key pairs tracked."),
    _g("tracking_total_prefixes", "tracking_total_prefixes", N, "Prefixes tracked (BCAST)."),
    _c(
        "unexpected_error_replies",
        "unexpected_error_replies_total",
        N,
        "Error replies of unexpected kinds (AOF load, replication).",
    ),
    _c("total_error_replies", "total_error_replies_total", N, "Error replies sent."),
    _c(
        "dump_payload_sanitizations",
        "dump_payload_sanitizations_total",
        N,
        "Deep checks of RESTORE payloads.",
    ),
    _c("total_reads_processed", "total_reads_processed_total", N, "Read events handled."),
    _c("total_writes_processed", "total_writes_processed_total", N, "Write events handled."),
    _c(
        "io_threaded_reads_processed",
        "io_threaded_reads_processed_total",
        N,
        "Read events handled by I/O threads.",
    ),
    _c(
        "io_threaded_writes_processed",
        "io_threaded_writes_processed_total",
        N,
        "Write events handled by I/O threads.",
    ),
    _c("acl_access_denied_auth", "acl_access_denied_auth_total", N, "Failed logins (7.2+)."),
    _c("acl_access_denied_cmd", "acl_access_denied_cmd_total", N, "Commands denied by ACL."),
    _c("acl_access_denied_key", "acl_access_denied_key_total", N, "Key accesses denied by ACL."),
    _c(
        "acl_access_denied_channel",
        "acl_access_denied_channel_total",
        N,
        "Channel accesses denied by ACL.",
    ),
    # Replication
    _g("connected_slaves", "connected_slaves", N, "Replicas connected to this node."),
    _g("master_repl_offset", "master_repl_offset", B, "Replication offset of this node."),
    _g(
        "second_repl_offset",
        "second_repl_offset",
        B,
        "Offset up to which the previous replication id is accepted (-1: none).",
    ),
    _g("repl_backlog_active", "repl_backlog_is_active", NONE, "1 while the backlog is kept."),
    _g("repl_backlog_size", "replication_backlog_bytes", B, "Size of the replication backlog."),
    _g(
        "repl_backlog_first_byte_offset",
        "repl_backlog_first_byte_offset",
        B,
        "Replication offset of the backlog's first byte.",
    ),
    _g("repl_backlog_histlen", "repl_backlog_history_bytes", B, "Bytes held in the backlog."),
    _g("slave_priority", "slave_priority", NONE, "This replica's priority for promotion."),
    # CPU
    _c("used_cpu_sys", "cpu_sys_seconds_total", S, "System CPU time of the server."),
    _c("used_cpu_user", "cpu_user_seconds_total", S, "User CPU time of the server."),
    _c(
        "used_cpu_sys_children",
        "cpu_sys_children_seconds_total",
        S,
        "System CPU time of forked children (snapshots).",
    ),
    _c(
        "used_cpu_user_children",
        "cpu_user_children_seconds_total",
        S,
        "User CPU time of forked children (snapshots).",
    ),
    _c(
        "used_cpu_sys_main_thread",
        "cpu_sys_main_thread_seconds_total",
        S,
        "System CPU time of the main thread.",
    ),
    _c(
        "used_cpu_user_main_thread",
        "cpu_user_main_thread_seconds_total",
        S,
        "User CPU time of the main thread.",
    ),
    # Cluster
    _g("cluster_enabled", "cluster_enabled", NONE, "1 in cluster mode."),
)


@dataclass(frozen=True)
class Derived:
    """A series made from several fields or from one line with several values."""

    series: str
    kind: Kind
    unit: Unit
    labels: tuple[str, ...]
    source: str  # the INFO field(s) it comes from, for docs/elasticache.md
    help: str


DERIVED: Final[tuple[Derived, ...]] = (
    Derived(UP, "gauge", NONE, (), "(a successful INFO)", UP_HELP),
    Derived(
        "redis_instance_info",
        "gauge",
        NONE,
        (*INFO_LABELS, *OPTIONAL_INFO_LABELS),
        ", ".join((*INFO_LABELS, *OPTIONAL_INFO_LABELS)) + " (the last three when present)",
        "Information about the node (value 1); role is master or slave.",
    ),
    Derived(
        "redis_start_time_seconds",
        "gauge",
        S,
        (),
        "uptime_in_seconds",
        "Unix time the server started (now - uptime).",
    ),
    Derived("redis_db_keys", "gauge", N, ("db",), "dbN: keys", "Keys in the database."),
    Derived(
        "redis_db_keys_expiring",
        "gauge",
        N,
        ("db",),
        "dbN: expires",
        "Keys with an expiry in the database.",
    ),
    Derived(
        "redis_db_avg_ttl_seconds",
        "gauge",
        S,
        ("db",),
        "dbN: avg_ttl",
        "Average time to live of the expiring keys.",
    ),
    Derived(
        "redis_connected_slave_offset_bytes",
        "gauge",
        B,
        REPLICA_LABELS,
        "slaveN: offset",
        "Replication offset of a connected replica (on the primary).",
    ),
    Derived(
        "redis_connected_slave_lag_seconds",
        "gauge",
        S,
        REPLICA_LABELS,
        "slaveN: lag",
        "Seconds since a connected replica last acknowledged (on the primary).",
    ),
    Derived(
        "redis_master_link_up",
        "gauge",
        NONE,
        MASTER_LABELS,
        "master_link_status",
        "1 if this replica's link to its primary is up, else 0.",
    ),
    Derived(
        "redis_master_last_io_seconds_ago",
        "gauge",
        S,
        MASTER_LABELS,
        "master_last_io_seconds_ago",
        "Seconds since this replica last heard from its primary (-1: link down).",
    ),
    Derived(
        "redis_master_sync_in_progress",
        "gauge",
        NONE,
        MASTER_LABELS,
        "master_sync_in_progress",
        "1 while this replica is synchronising from its primary.",
    ),
    Derived(
        "redis_slave_repl_offset",
        "gauge",
        B,
        MASTER_LABELS,
        "slave_repl_offset",
        "Replication offset of this replica.",
    ),
    Derived(
        "redis_slave_info",
        "gauge",
        NONE,
        (*MASTER_LABELS, "read_only"),
        "master_host, master_port, slave_read_only",
        "Information about this replica (value 1).",
    ),
    Derived(
        "redis_errors_total",
        "counter",
        N,
        ("err",),
        "errorstat_ERR: count",
        "Error replies by error prefix.",
    ),
    Derived(
        "redis_commands_total",
        "counter",
        N,
        ("cmd",),
        "cmdstat_CMD: calls",
        "Calls of the command (container commands per subcommand, e.g. config get).",
    ),
    Derived(
        "redis_commands_duration_seconds_total",
        "counter",
        S,
        ("cmd",),
        "cmdstat_CMD: usec",
        "Time spent executing the command.",
    ),
    Derived(
        "redis_commands_rejected_calls_total",
        "counter",
        N,
        ("cmd",),
        "cmdstat_CMD: rejected_calls",
        "Calls refused before execution (ACL, arity, OOM...; 6.2+).",
    ),
    Derived(
        "redis_commands_failed_calls_total",
        "counter",
        N,
        ("cmd",),
        "cmdstat_CMD: failed_calls",
        "Calls that failed during execution (6.2+).",
    ),
    Derived(
        LATENCY_SUMMARY,
        "summary",
        NONE,
        ("cmd", "quantile"),
        "latency_percentiles_usec_CMD: pN; cmdstat_CMD: calls, usec",
        "Latency percentiles of the command in microseconds (7.0+); _count calls, _sum usec.",
    ),
    Derived(
        "redis_slowlog_length",
        "gauge",
        N,
        (),
        "SLOWLOG LEN",
        "Entries in the slow log.",
    ),
    Derived(
        "redis_slowlog_last_id",
        "gauge",
        NONE,
        (),
        "SLOWLOG GET 1: id",
        "Id of the newest slow log entry (0: none).",
    ),
    Derived(
        "redis_last_slow_execution_duration_seconds",
        "gauge",
        S,
        (),
        "SLOWLOG GET 1: duration",
        "Execution time of the newest slow log entry (0: none).",
    ),
)
SLOWLOG_SERIES: Final = (
    "redis_slowlog_length",
    "redis_slowlog_last_id",
    "redis_last_slow_execution_duration_seconds",
)


def family_name(series: str, kind: Kind) -> str:
    """The family name prometheus_client gives a series: counters lose their ``_total``."""
    return series.removesuffix("_total") if kind == "counter" else series


def units() -> dict[str, Unit]:
    """CloudWatch unit of every family this module makes, by family name (the EMF sink's key)."""
    items: list[Field | Derived] = [*FIELDS, *DERIVED]
    return {family_name(item.series, item.kind): item.unit for item in items}


def series_names() -> frozenset[str]:
    """Every sample name this module can produce."""
    return frozenset({*(f.series for f in FIELDS), *(d.series for d in DERIVED)})


def parse(text: str) -> dict[str, str]:
    """``key:value`` lines of an INFO reply; section headers and blank lines skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value
    return fields


def _number(value: str) -> float | None:
    """A field's value as a number: statuses ok/err as 1/0 (as redis_exporter does)."""
    if value in ("ok", "true"):
        return 1.0
    if value in ("err", "fail", "false"):
        return 0.0
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _pairs(value: str) -> dict[str, str]:
    """``keys=1,expires=0,avg_ttl=0`` -> {"keys": "1", ...}; parts without ``=`` dropped."""
    pairs: dict[str, str] = {}
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if sep:
            pairs[key] = item
    return pairs


_DERIVED: Final = {item.series: item for item in DERIVED}


def _family(series: str) -> GaugeMetricFamily:
    """An empty labelled family of ``DERIVED``, its labels and help from there."""
    item = _DERIVED[series]
    return GaugeMetricFamily(series, item.help, labels=list(item.labels))


def families(fields: Mapping[str, str], now: float) -> Iterator[Metric]:
    """The series of one INFO reply, ``redis_up`` 1 first. ``now`` (Unix time) turns the
    uptime into a start time."""
    yield GaugeMetricFamily(UP, UP_HELP, value=1)
    yield from _instance(fields)
    for field in FIELDS:
        value = _number(fields[field.info]) if field.info in fields else None
        if value is None:
            continue
        value *= field.scale
        if field.kind == "counter":
            yield CounterMetricFamily(field.series, field.help, value=value)
        else:
            yield GaugeMetricFamily(field.series, field.help, value=value)
    uptime = _number(fields.get("uptime_in_seconds", ""))
    if uptime is not None:
        yield GaugeMetricFamily(
            "redis_start_time_seconds",
            _DERIVED["redis_start_time_seconds"].help,
            value=now - uptime,
        )
    yield from _keyspace(fields)
    yield from _replication(fields)
    yield from _errors(fields)
    yield from _commands(fields)


def _instance(fields: Mapping[str, str]) -> Iterator[Metric]:
    labels = [*INFO_LABELS, *(name for name in OPTIONAL_INFO_LABELS if fields.get(name))]
    if "redis_mode" not in fields and "server_mode" in fields:  # Valkey 8+
        fields = {**fields, "redis_mode": fields["server_mode"]}
    info = GaugeMetricFamily(
        "redis_instance_info", _DERIVED["redis_instance_info"].help, labels=labels
    )
    info.add_metric([fields.get(name, "") for name in labels], 1)
    yield info


def _keyspace(fields: Mapping[str, str]) -> Iterator[Metric]:
    keys, expiring = _family("redis_db_keys"), _family("redis_db_keys_expiring")
    ttl = _family("redis_db_avg_ttl_seconds")
    for db, value in fields.items():
        if not (db.startswith("db") and db[2:].isdigit()):
            continue
        pairs = _pairs(value)
        count, expires = _number(pairs.get("keys", "")), _number(pairs.get("expires", ""))
        if count is None or expires is None:
            continue
        keys.add_metric([db], count)
        expiring.add_metric([db], expires)
        avg_ttl = _number(pairs.get("avg_ttl", ""))
        if avg_ttl is not None:
            ttl.add_metric([db], avg_ttl / 1000)
    for family in (keys, expiring, ttl):
        if family.samples:
            yield family


def _replication(fields: Mapping[str, str]) -> Iterator[Metric]:
    """A primary's view of each replica (``slaveN`` lines); a replica's view of its primary."""
    offsets = _family("redis_connected_slave_offset_bytes")
    lags = _family("redis_connected_slave_lag_seconds")
    for key, value in fields.items():
        if not (key.startswith("slave") and key[5:].isdigit()):
            continue
        pairs = _pairs(value)
        offset = _number(pairs.get("offset", ""))
        if offset is None:
            continue
        labels = [pairs.get("ip", ""), pairs.get("port", ""), pairs.get("state", "")]
        offsets.add_metric(labels, offset)
        lag = _number(pairs.get("lag", ""))
        if lag is not None:
            lags.add_metric(labels, lag)
    for family in (offsets, lags):
        if family.samples:
            yield family
    if fields.get("role") != "slave":
        return
    master = [fields.get("master_host", ""), fields.get("master_port", "")]
    link = _family("redis_master_link_up")
    link.add_metric(master, 1.0 if fields.get("master_link_status") == "up" else 0.0)
    yield link
    for field in ("master_last_io_seconds_ago", "master_sync_in_progress", "slave_repl_offset"):
        number = _number(fields.get(field, ""))
        if number is not None:
            family = _family(f"redis_{field}")
            family.add_metric(master, number)
            yield family
    replica = _family("redis_slave_info")
    replica.add_metric([*master, fields.get("slave_read_only", "")], 1)
    yield replica


def _errors(fields: Mapping[str, str]) -> Iterator[Metric]:
    errors = CounterMetricFamily(
        "redis_errors_total", _DERIVED["redis_errors_total"].help, labels=["err"]
    )
    for key, value in fields.items():
        if key.startswith("errorstat_"):
            count = _number(_pairs(value).get("count", ""))
            if count is not None:
                errors.add_metric([key.removeprefix("errorstat_")], count)
    if errors.samples:
        yield errors


def _commands(fields: Mapping[str, str]) -> Iterator[Metric]:
    """``cmdstat_get:calls=21,usec=175,usec_per_call=8.33,rejected_calls=0,failed_calls=0``
    and ``latency_percentiles_usec_get:p50=1.003,p99=4.015,p99.9=8.031``. The summary is made
    as redis_exporter makes it: quantile labels are the percentile as INFO writes it ("99.9"),
    values, count and sum in microseconds and calls from the same command's cmdstat line."""
    names = (
        "redis_commands_total",
        "redis_commands_duration_seconds_total",
        "redis_commands_rejected_calls_total",
        "redis_commands_failed_calls_total",
    )
    calls, duration, rejected, failed = (
        CounterMetricFamily(name, _DERIVED[name].help, labels=["cmd"]) for name in names
    )
    totals: dict[str, tuple[float, float]] = {}
    for key, value in fields.items():
        if not key.startswith("cmdstat_"):
            continue
        cmd, pairs = key.removeprefix("cmdstat_"), _pairs(value)
        count, usec = _number(pairs.get("calls", "")), _number(pairs.get("usec", ""))
        if count is None or usec is None:
            continue
        totals[cmd] = (count, usec)
        calls.add_metric([cmd], count)
        duration.add_metric([cmd], usec / 1e6)
        for family, field in ((rejected, "rejected_calls"), (failed, "failed_calls")):
            number = _number(pairs.get(field, ""))
            if number is not None:  # before 6.2: absent
                family.add_metric([cmd], number)
    for family in (calls, duration, rejected, failed):
        if family.samples:
            yield family
    summary = Metric(LATENCY_SUMMARY, _DERIVED[LATENCY_SUMMARY].help, "summary")
    for key, value in fields.items():
        cmd = key.removeprefix("latency_percentiles_usec_")
        if cmd == key or cmd not in totals:
            continue
        quantiles = {
            name[1:]: number
            for name, text in _pairs(value).items()
            if name.startswith("p") and (number := _number(text)) is not None
        }
        if not quantiles:
            continue
        for quantile, number in quantiles.items():
            summary.add_sample(LATENCY_SUMMARY, {"cmd": cmd, "quantile": quantile}, number)
        count, usec = totals[cmd]
        summary.add_sample(f"{LATENCY_SUMMARY}_count", {"cmd": cmd}, count)
        summary.add_sample(f"{LATENCY_SUMMARY}_sum", {"cmd": cmd}, usec)
    if summary.samples:
        yield summary


def slowlog_families(length: int, newest: list[object] | None) -> Iterator[Metric]:
    """SLOWLOG LEN and the newest entry of SLOWLOG GET 1 (``[id, unix time, duration in
    microseconds, args, client address, client name]``); an empty log gives 0 and 0, as
    redis_exporter does."""
    last_id, duration = 0.0, 0.0
    if newest:
        if isinstance(newest[0], int):
            last_id = float(newest[0])
        if len(newest) > 2 and isinstance(newest[2], int):
            duration = newest[2] / 1e6
    for series, value in zip(SLOWLOG_SERIES, (float(length), last_id, duration), strict=True):
        yield GaugeMetricFamily(series, _DERIVED[series].help, value=value)
