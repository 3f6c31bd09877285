"""The CloudWatch sink: each pass as Embedded Metric Format log lines (Powertools Metrics).

CloudWatch turns the lines the function prints into metrics of ``namespace``; no API call,
no extra permission. Every series becomes an EMF metric named like the Prometheus series,
with a CloudWatch unit from ``UNITS`` and one dimension per label, plus ``instance`` (the
target, the Pushgateway's grouping key). EMF holds one dimension set per line, so series are
grouped into one line per distinct set of dimension values.

High-cardinality labels (``query``, ``queryid``) never become dimensions: every distinct
value would be a new billed CloudWatch metric and statement texts come and go. A statement's
``pg_query_*`` values go on a line of their own whose dimensions are the bounded labels
(instance, database, user) and whose ``query``/``queryid`` are plain log properties. In
CloudWatch each statement is then one sample of ``pg_query_*{instance, database, user}``
(Maximum = the worst statement of the top N, Sum = their total, SampleCount = how many),
and CloudWatch Logs Insights still reads each statement by its text or id.

What becomes a CloudWatch metric is bounded (SPEC 19): by default only ``bounds.CORE_SERIES``, the
older exporter's series (SPEC 3) and the collector's health, each with the dimensions listed
there, so one PostgreSQL target costs the same few dozen custom metrics however many databases
and users it has (their values become samples of one metric per target, each line naming its
database or user as a property). ``EMF_METRICS`` (names or glob patterns) opts more series in,
with every bounded label a dimension. Every other series still reaches CloudWatch Logs: as a
plain JSON line of properties (no ``_aws`` directive, so no metric), one per target and label
set, which Logs Insights reads by field name.

Samples with a timestamp of their own (CloudWatch datapoints: with CLOUDWATCH_INTERVAL_SECONDS
above 60 one query brings several 1-minute points per series) go on lines carrying that
timestamp, so CloudWatch files each point under its own minute; each point is printed once.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from prometheus_client import Metric
from prometheus_client.samples import Sample

from .bounds import CORE_SERIES, is_health
from .model import PassResult
from .redis import info as redis_info
from .resend import ResendBuffer
from .sinks import PRINT_RESERVE_SECONDS, SentTimestamps, SeriesKey

logger = logging.getLogger(__name__)

# Also the ids a Redis node gets anew at each restart (redis_instance_info): as dimensions
# they would make a new billed CloudWatch metric per restart.
HIGH_CARDINALITY_LABELS: Final = frozenset(
    {"query", "queryid", "run_id", "master_replid", "process_id"}
)
INSTANCE_DIMENSION: Final = "instance"
# On the collector's own series: each shard's pass-wide values (its pass timestamp) apart.
SHARD_DIMENSION: Final = "shard"
# CloudWatch refuses empty dimension values and values over 1024 characters.
EMPTY_VALUE: Final = "none"
MAX_DIMENSION_VALUE: Final = 1024

_S, _MS, _B = MetricUnit.Seconds, MetricUnit.Milliseconds, MetricUnit.Bytes
_PCT, _N = MetricUnit.Percent, MetricUnit.Count
_NPS, _BPS = MetricUnit.CountPerSecond, MetricUnit.BytesPerSecond

# The unit of each series as SPEC section 3 defines it. Up/info/state series are unitless.
UNITS: Final[Mapping[str, MetricUnit]] = {
    "pg_database_size_bytes": _B,
    "pg_user_connection_count": _N,
    "pg_total_connections": _N,
    "pg_active_connections": _N,
    "pg_idle_connections": _N,
    "pg_uptime_seconds": _S,
    "pg_qps_all": _NPS,
    "pg_qps_read": _NPS,
    "pg_qps_write": _NPS,
    "pg_wait_session_sec": _N,
    "pg_wait_session_five_sec": _N,
    "pg_query_calls": _N,
    "pg_query_total_exec_time": _MS,
    "pg_query_min_exec_time": _MS,
    "pg_query_max_exec_time": _MS,
    "pg_query_mean_exec_time": _MS,
    "pg_query_blk_read_time": _MS,
    "pg_query_blk_write_time": _MS,
    "pg_query_rows": _N,
    "pg_query_hit_percent": _PCT,
    "pg_query_shared_blks_hit": _N,
    "pg_query_shared_blks_read": _N,
    "pg_query_temp_blks_written": _N,
    "pg_query_wal_bytes": _B,
    "pg_query_total_plan_time": _MS,
    # SPEC 11 health. Counters by their family name (prometheus_client drops "_total").
    "pg_in_recovery": MetricUnit.NoUnit,  # a state, 1 or 0
    "pg_max_connections": _N,
    "pg_autovacuum_freeze_max_age": _N,  # transactions
    "pg_autovacuum_multixact_freeze_max_age": _N,
    "pg_database_xid_age": _N,
    "pg_database_mxid_age": _N,
    "pg_oldest_xact_seconds": _S,
    "pg_idle_in_transaction_sessions": _N,
    "pg_oldest_idle_in_transaction_seconds": _S,
    "pg_blocked_sessions": _N,
    "pg_blocking_sessions": _N,
    "pg_oldest_blocked_seconds": _S,
    "pg_wait_event_sessions": _N,
    "pg_replication_slot_retained_wal_bytes": _B,
    "pg_replica_lag_seconds": _S,
    "pg_database_deadlocks": _N,
    "pg_database_temp_bytes": _B,
    "pg_database_xact_commit": _N,
    "pg_database_xact_rollback": _N,
    "pg_database_blks_hit": _N,
    "pg_database_blks_read": _N,
    "pg_table_dead_tuples": _N,
    "pg_table_live_tuples": _N,
    "pg_table_last_autovacuum_timestamp_seconds": _S,
    "pg_storage_disk_space": _B,
    "pg_cpu_utilization": _PCT,
    "pg_memory_utilization": _B,  # FreeableMemory, bytes free (the name is historical)
    "pg_network_throughput": _BPS,
    "pg_read_iops": _NPS,
    "pg_burst_balance_percent": _PCT,
    "pg_volume_bytes_used": _B,
    # SPEC 16: DB load (average active sessions); per database; custom queries' health.
    "pg_db_load": _N,
    "pg_db_load_cpu": _N,
    "pg_db_load_non_cpu": _N,
    "pg_index_scans": _N,
    "pg_index_size_bytes": _B,
    "pg_table_bloat_bytes": _B,
    "pg_vacuum_running": _N,
    "pg_vacuum_progress_ratio": MetricUnit.NoUnit,
    "pg_vacuum_seconds": _S,
    "pg_custom_query_up": MetricUnit.NoUnit,
    "pg_custom_query_series_dropped": _N,
    "mongo_uptime_seconds": _S,
    "mongo_current_connections": _N,
    "mongo_available_connections": _N,
    "mongo_totalCreated_connections": _N,
    "mongo_cpu_utilization": _PCT,
    "mongo_freeable_memory": _B,
    "mongo_network_throughput": _BPS,
    "mongo_read_latency": _MS,
    "mongo_write_latency": _MS,
    "mongo_replica_lag": _MS,
    "mongo_volume_bytesused": _B,
    "mongo_volume_readiops": _N,  # a count per 5-minute period, as AWS/DocDB reports it
    "mongo_volume_wriateiops": _N,
    "redis_network_bandwidth_inallowance_exceeded": _N,
    "redis_network_bandwidthOut_allowance_exceeded": _N,
    "redis_network_conntrack_allowance_exceeded": _N,
    "redis_network_packetsPerSecond_allowance_exceeded": _N,
    # ElastiCache from CloudWatch (SPEC 13), with the units AWS/ElastiCache publishes.
    "redis_engine_cpu_utilization": _PCT,
    "redis_cpu_utilization": _PCT,
    "redis_database_memory_usage_percentage": _PCT,
    "redis_curr_connections": _N,
    "redis_evictions": _N,
    "redis_cache_hit_rate": _PCT,
    "redis_replication_lag_seconds": _S,
    "redis_freeable_memory_bytes": _B,
    "redis_network_in_bytes": _B,
    "redis_network_out_bytes": _B,
    # ElastiCache INFO (SPEC 13): the unit is in each row of the table there.
    **{name: MetricUnit(unit) for name, unit in redis_info.units().items()},
    "middleware_collector_duration_seconds": _S,
    "middleware_collector_last_success_timestamp_seconds": _S,
    "middleware_pass_duration_seconds": _S,
    "middleware_pass_targets": _N,
    "middleware_remote_write_samples_sent": _N,
    # Discovery (SPEC 10): the inventory of each discovered resource, each unit's health.
    "aws_resource_info": MetricUnit.NoUnit,
    "aws_rds_allocated_storage_bytes": _B,
    "aws_rds_pending_maintenance_actions": _N,
    "aws_rds_certificate_expiry_timestamp_seconds": _S,
    "aws_rds_backup_retention_days": _N,  # CloudWatch has no unit of days
    "middleware_discovery_up": MetricUnit.NoUnit,
    "middleware_discovery_failure": MetricUnit.NoUnit,
    "middleware_discovery_duration_seconds": _S,
    "middleware_discovery_last_success_timestamp_seconds": _S,
    "middleware_discovery_resources": _N,
}
# Families named by pattern (one per serverStatus counter) and the fallback by suffix.
_PREFIX_UNITS: Final = (("mongo_opcounters_", _N), ("mongo_document_", _N))
_SUFFIX_UNITS: Final = (("_seconds", _S), ("_bytes", _B), ("_total", _N))


def unit_for(family: Metric) -> MetricUnit:
    if family.name in UNITS:
        return UNITS[family.name]
    for prefix, unit in _PREFIX_UNITS:
        if family.name.startswith(prefix):
            return unit
    for suffix, unit in _SUFFIX_UNITS:
        if family.name.endswith(suffix):
            return unit
    if family.type == "counter":
        return MetricUnit.Count
    return MetricUnit.NoUnit


@dataclass(frozen=True)
class EmfSelection:
    """Which series are CloudWatch metrics and with which dimensions: ``CORE_SERIES`` and
    the collector's health, plus what ``patterns`` (EMF_METRICS: names or fnmatch globs,
    matched against the family name and the sample name, e.g. ``pg_database_*``) opt in."""

    patterns: tuple[str, ...] = ()

    def kept_labels(self, family: str, sample: str, labels: Iterable[str]) -> frozenset[str] | None:
        """The sample's labels that are dimensions (beside instance), or None: not a metric."""
        bounded = frozenset(labels) - HIGH_CARDINALITY_LABELS
        if any(
            fnmatch.fnmatchcase(family, p) or fnmatch.fnmatchcase(sample, p) for p in self.patterns
        ):
            return bounded
        if family in CORE_SERIES:
            kept = CORE_SERIES[family]
            return bounded if kept is None else bounded & kept
        if is_health(family):
            return bounded
        return None


def _dimension_value(value: str) -> str:
    return value[:MAX_DIMENSION_VALUE] if value else EMPTY_VALUE


# (dimensions, properties, timestamp ms or None for "now") -> metric name -> (unit, values)
_Line = dict[str, tuple[MetricUnit, list[float]]]
_LineKey = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], int | None]


@dataclass
class _Lines:
    """A pass as EMF lines (``metrics``) and lines of properties only (``logged``: the series
    that are no CloudWatch metric, same key, name -> value), and the timestamped samples
    among them (to mark as sent)."""

    metrics: dict[_LineKey, _Line]
    logged: dict[_LineKey, dict[str, float]]
    stamped: list[tuple[SeriesKey, float]]


def _lines(
    result: PassResult, sent: SentTimestamps | None = None, selection: EmfSelection | None = None
) -> _Lines:
    out = _Lines({}, {}, [])
    selection = selection or EmfSelection()
    for group in result.groups():
        extra = {SHARD_DIMENSION: str(result.shard)} if group is result.collector else {}
        for family in group.families:
            unit = unit_for(family)
            for sample in family.samples:
                if sample.name.endswith("_created") or not math.isfinite(sample.value):
                    continue
                millis: int | None = None
                if sample.timestamp is not None:
                    series: SeriesKey = (
                        sample.name,
                        frozenset({**sample.labels, INSTANCE_DIMENSION: group.target}.items()),
                    )
                    when = float(sample.timestamp)
                    if sent is not None and not sent.is_new(series, when):
                        continue  # printed on an earlier pass
                    out.stamped.append((series, when))
                    millis = int(when * 1000)
                kept = selection.kept_labels(family.name, sample.name, sample.labels)
                dimensions = {INSTANCE_DIMENSION: _dimension_value(group.target), **extra}
                properties: dict[str, str] = {}
                for label, value in sample.labels.items():
                    if kept is not None and label in kept:
                        dimensions[label] = _dimension_value(value)
                    else:
                        properties[label] = value
                key = (
                    tuple(sorted(dimensions.items())),
                    tuple(sorted(properties.items())),
                    millis,
                )
                if kept is None:
                    out.logged.setdefault(key, {})[sample.name] = float(sample.value)
                    continue
                line = out.metrics.setdefault(key, {})
                line.setdefault(sample.name, (unit, []))[1].append(float(sample.value))
    return out


def _series_key(target: str, sample: Sample) -> SeriesKey:
    """How ``_lines`` names a timestamped sample's series for SentTimestamps."""
    return sample.name, frozenset({**sample.labels, INSTANCE_DIMENSION: target}.items())


def custom_metrics(lines: _Lines) -> int:
    """Distinct CloudWatch metrics the lines make (name x dimension values): what is billed."""
    return len({(name, key[0]) for key, line in lines.metrics.items() for name in line})


def count_custom_metrics(result: PassResult, patterns: tuple[str, ...] = ()) -> int:
    """Distinct CloudWatch metrics ``result`` makes through the EMF sink with EMF_METRICS =
    ``patterns``, without printing it."""
    return custom_metrics(_lines(result, None, EmfSelection(patterns)))


class EmfSink:
    """Prints the pass as EMF lines on stdout, where Lambda sends them to CloudWatch Logs."""

    def __init__(self, namespace: str, metrics: tuple[str, ...] = ()) -> None:
        self._namespace = namespace
        self._selection = EmfSelection(metrics)
        self._sent = SentTimestamps()
        self._resend = ResendBuffer(self._sent, _series_key)
        # Distinct CloudWatch metrics of the last pass sent (the projected cost's figure).
        self.last_custom_metrics = 0

    def reserve_seconds(self) -> float:
        """Printing needs no network: no Pushgateway timeouts to keep back."""
        return PRINT_RESERVE_SECONDS

    def send(self, result: PassResult, deadline: float | None = None) -> None:
        """CloudWatch points of an earlier pass whose printing failed go out with this one
        (resend.py); they count as delivered once printed."""
        if not result.targets:  # the Kafka stream's health group alone
            self._print(result)
            return
        merged = self._resend.merge(result)
        if self._resend.has_dropped():
            families = [*merged.collector.families, self._resend.dropped_family("emf")]
            merged = replace(merged, collector=replace(merged.collector, families=families))
        try:
            self._print(merged)
        finally:
            self._resend.keep(merged)

    def _print(self, result: PassResult) -> None:
        """Printing is not cut short by ``deadline``: a line half printed is lost."""
        lines = _lines(result, self._sent, self._selection)
        for (dimensions, properties, millis), metrics in lines.metrics.items():
            # A provider of its own per line: Powertools' ``Metrics`` shares one metric set
            # per process, and each line needs its own dimensions. ``service=""`` keeps the
            # Powertools service name out of the dimensions: ``instance`` already says it.
            provider = AmazonCloudWatchEMFProvider(namespace=self._namespace, service="")
            for name, value in dimensions:
                provider.add_dimension(name=name, value=value)
            for name, value in properties:
                provider.add_metadata(key=name, value=value)
            if millis is not None:
                provider.set_timestamp(millis)
            for name, (unit, values) in metrics.items():
                for number in values:
                    # Powertools prints a line by itself at 100 metrics (EMF's limit).
                    provider.add_metric(name=name, unit=unit, value=number)
            provider.flush_metrics()
        for (dimensions, properties, millis), logged in lines.logged.items():
            # No ``_aws`` directive: CloudWatch Logs keeps the line (Logs Insights reads its
            # fields), CloudWatch makes no metric of it.
            record: dict[str, object] = {**dict(dimensions), **dict(properties), **logged}
            if millis is not None:
                record["timestamp"] = millis
            print(json.dumps(record, separators=(",", ":")))
        self._sent.mark(lines.stamped, time.time())
        self.last_custom_metrics = custom_metrics(lines)
        logger.debug("emf lines written", extra={"namespace": self._namespace})
