"""Custom SQL metrics (SPEC 16): a file in postgres_exporter's queries.yaml format, so a
user's existing file works unchanged and gives the same series.

    pg_replication:                      # the namespace: series are <namespace>_<column>
      query: "SELECT ... AS lag"
      master: true                       # only on the target's own database
      cache_seconds: 30                  # reuse the result this long
      runonserver: ">=10.0.0"            # server versions it runs on (semver ranges)
      metrics:
        - lag:
            usage: "GAUGE"               # LABEL, GAUGE, COUNTER, DURATION, MAPPEDMETRIC, DISCARD
            description: "Replication lag behind master in seconds"

postgres_exporter's reading of a user file, kept here: DURATION names the series
``<namespace>_<column>_milliseconds`` and takes the column's number as it is; MAPPEDMETRIC
is a gauge (a user file cannot give the mapping); a column the file does not list is sent
untyped with the help "Unknown metric from <namespace>". HISTOGRAM is refused: the product's
series model has no histograms. Unlike postgres_exporter, an unknown ``usage`` or key is an
error (postgres_exporter silently discards the column), and ``runonserver`` is honoured
(postgres_exporter 0.11 parses it and ignores it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

USAGES: Final = ("LABEL", "GAUGE", "COUNTER", "DURATION", "MAPPEDMETRIC", "DISCARD")
REFUSED_USAGES: Final = {
    "HISTOGRAM": "HISTOGRAM columns are not supported (the product sends no histograms); "
    "send the buckets as a LABEL column and a GAUGE or COUNTER column instead",
}
QUERY_KEYS: Final = ("query", "metrics", "master", "cache_seconds", "runonserver")
COLUMN_KEYS: Final = ("usage", "description")
METRIC_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Labels the product adds to every series: a LABEL column of the same name would be overwritten.
RESERVED_LABELS: Final = frozenset({"instance", "job", "database_name"})
# Every series the product itself sends under pg_ (docs/metrics.md; a test holds the two
# equal): a custom series may not take one of these names. middleware_ is the product's own.
BUILTIN_PG_SERIES: Final = frozenset(
    [
        "pg_active_connections",
        "pg_autovacuum_freeze_max_age",
        "pg_autovacuum_multixact_freeze_max_age",
        "pg_blocked_sessions",
        "pg_blocking_sessions",
        "pg_burst_balance_percent",
        "pg_cpu_utilization",
        "pg_database_blks_hit_total",
        "pg_database_blks_read_total",
        "pg_database_deadlocks_total",
        "pg_database_mxid_age",
        "pg_database_size_bytes",
        "pg_database_temp_bytes_total",
        "pg_database_xact_commit_total",
        "pg_database_xact_rollback_total",
        "pg_database_xid_age",
        "pg_idle_connections",
        "pg_idle_in_transaction_sessions",
        "pg_in_recovery",
        "pg_max_connections",
        "pg_memory_utilization",
        "pg_network_throughput",
        "pg_oldest_blocked_seconds",
        "pg_oldest_idle_in_transaction_seconds",
        "pg_oldest_xact_seconds",
        "pg_pi_load",
        "pg_pi_sql_load",
        "pg_qps_all",
        "pg_qps_read",
        "pg_qps_write",
        "pg_query_blk_read_time",
        "pg_query_blk_write_time",
        "pg_query_calls",
        "pg_query_hit_percent",
        "pg_query_max_exec_time",
        "pg_query_mean_exec_time",
        "pg_query_min_exec_time",
        "pg_query_rows",
        "pg_query_shared_blks_hit",
        "pg_query_shared_blks_read",
        "pg_query_temp_blks_written",
        "pg_query_total_exec_time",
        "pg_query_total_plan_time",
        "pg_query_wal_bytes",
        "pg_read_iops",
        "pg_replica_lag_seconds",
        "pg_replication_slot_retained_wal_bytes",
        "pg_storage_disk_space",
        "pg_table_dead_tuples",
        "pg_table_last_autovacuum_timestamp_seconds",
        "pg_table_live_tuples",
        "pg_total_connections",
        "pg_up",
        "pg_uptime_seconds",
        "pg_user_connection_count",
        "pg_volume_bytes_used",
        "pg_wait_event_sessions",
        "pg_wait_session_five_sec",
        "pg_wait_session_sec",
        "pg_custom_query_up",
        "pg_db_load",
        "pg_db_load_cpu",
        "pg_db_load_non_cpu",
        "pg_index_scans_total",
        "pg_table_bloat_bytes",
        "pg_index_size_bytes",
        "pg_vacuum_running",
        "pg_vacuum_progress_ratio",
        "pg_vacuum_seconds",
        "pg_custom_query_series_dropped",
    ]
)
RESERVED_PREFIX: Final = "middleware_"
_CONDITION: Final = re.compile(r"(>=|<=|!=|==|>|<|=)?\s*v?(\d+)(?:\.(\d+|x))?(?:\.(\d+|x))?")


@dataclass(frozen=True)
class Column:
    name: str
    usage: str  # one of USAGES
    description: str


@dataclass(frozen=True)
class VersionRange:
    """A blang/semver range as postgres_exporter writes it: conditions joined by spaces
    (all must hold), alternatives by ``||``."""

    text: str
    # Alternatives of conditions (operator, (major, minor, patch)).
    alternatives: tuple[tuple[tuple[str, tuple[int, int, int]], ...], ...]

    def admits(self, version: tuple[int, int, int]) -> bool:
        return any(
            all(_holds(op, version, bound) for op, bound in conditions)
            for conditions in self.alternatives
        )


def _holds(op: str, version: tuple[int, int, int], bound: tuple[int, int, int]) -> bool:
    return {
        ">": version > bound,
        ">=": version >= bound,
        "<": version < bound,
        "<=": version <= bound,
        "!=": version != bound,
    }.get(op, version == bound)


def parse_range(text: str) -> VersionRange | None:
    alternatives: list[tuple[tuple[str, tuple[int, int, int]], ...]] = []
    for alternative in text.split("||"):
        # ">= 10.0.0" is one condition: glue an operator to the version after it.
        parts = re.sub(r"(>=|<=|!=|==|>|<|=)\s+", r"\1", alternative.strip()).split()
        conditions: list[tuple[str, tuple[int, int, int]]] = []
        for part in parts:
            match = _CONDITION.fullmatch(part)
            if match is None:
                return None
            op, major, minor, patch = match.groups()
            if "x" in (minor, patch):
                # 10.x: the whole major version.
                low = (int(major), 0 if minor == "x" else int(minor or 0), 0)
                high = (int(major) + 1, 0, 0) if minor == "x" else (low[0], low[1] + 1, 0)
                conditions += [(">=", low), ("<", high)]
                continue
            conditions.append((op or "=", (int(major), int(minor or 0), int(patch or 0))))
        if not conditions:
            return None
        alternatives.append(tuple(conditions))
    return VersionRange(text, tuple(alternatives))


def server_semver(server_version_num: int) -> tuple[int, int, int]:
    """server_version_num as postgres_exporter's semver: 150007 -> 15.7.0, 90624 -> 9.6.24."""
    if server_version_num >= 100000:
        return (server_version_num // 10000, server_version_num % 10000, 0)
    return (server_version_num // 10000, server_version_num // 100 % 100, server_version_num % 100)


@dataclass(frozen=True)
class CustomQuery:
    namespace: str
    sql: str
    columns: tuple[Column, ...]
    master: bool = False
    cache_seconds: int = 0
    runonserver: VersionRange | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.usage == "LABEL")

    def series_names(self) -> list[str]:
        names: list[str] = []
        for column in self.columns:
            if column.usage in ("LABEL", "DISCARD"):
                continue
            suffix = "_milliseconds" if column.usage == "DURATION" else ""
            names.append(f"{self.namespace}_{column.name}{suffix}")
        return names


@dataclass(frozen=True)
class QueriesFile:
    """One parsed file; ``name`` is as configured, for messages."""

    name: str
    queries: tuple[CustomQuery, ...]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _columns(where: str, value: Any, problems: list[str]) -> list[Column]:
    """``metrics``: a list of one-key mappings {column: {usage, description}}."""
    if not isinstance(value, list) or not value:
        problems.append(
            f"{where}.metrics: expected a list of {{column: {{usage: ..., description: ...}}}}, "
            f"got {_kind(value)}"
        )
        return []
    columns: list[Column] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not item:
            problems.append(
                f"{where}.metrics[{index}]: expected {{column: {{usage: ..., description: ...}}}}, "
                f"got {_kind(item)}"
            )
            continue
        for name, mapping in item.items():
            key = f"{where}.metrics[{index}].{name}"
            if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
                problems.append(f"{key}: a column name must match [a-zA-Z_][a-zA-Z0-9_]*")
                continue
            if not isinstance(mapping, Mapping):
                problems.append(
                    f"{key}: expected {{usage: ..., description: ...}}, got {_kind(mapping)}"
                )
                continue
            for unknown in [k for k in mapping if k not in COLUMN_KEYS]:
                problems.append(f"{key}.{unknown}: unknown key; expected {', '.join(COLUMN_KEYS)}")
            usage = mapping.get("usage")
            if usage in REFUSED_USAGES:
                problems.append(f"{key}.usage: {REFUSED_USAGES[usage]}")
                continue
            if usage not in USAGES:
                problems.append(f"{key}.usage: expected one of {', '.join(USAGES)}, got {usage!r}")
                continue
            description = mapping.get("description")
            if description is not None and not isinstance(description, str):
                problems.append(f"{key}.description: expected a string, got {_kind(description)}")
                continue
            if usage == "LABEL" and name in RESERVED_LABELS:
                problems.append(
                    f"{key}: label {name} is one the product sets itself "
                    f"({', '.join(sorted(RESERVED_LABELS))}); rename the column"
                )
                continue
            if any(column.name == name for column in columns):
                problems.append(f"{key}: column listed twice")
                continue
            columns.append(Column(name, str(usage), description or ""))
    return columns


def _query(where: str, namespace: str, value: Any, problems: list[str]) -> CustomQuery | None:
    before = len(problems)
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected a mapping with query and metrics, got {_kind(value)}")
        return None
    for unknown in [k for k in value if k not in QUERY_KEYS]:
        problems.append(f"{where}.{unknown}: unknown key; expected {', '.join(QUERY_KEYS)}")
    sql = value.get("query")
    if not isinstance(sql, str) or not sql.strip():
        problems.append(f"{where}.query: expected the SQL text, got {_kind(sql)}")
    master = value.get("master", False)
    if not isinstance(master, bool):
        problems.append(f"{where}.master: expected true or false, got {_kind(master)}")
    cache_seconds = value.get("cache_seconds", 0)
    if isinstance(cache_seconds, bool) or not isinstance(cache_seconds, int) or cache_seconds < 0:
        problems.append(
            f"{where}.cache_seconds: expected a whole number of seconds, 0 or more, "
            f"got {cache_seconds!r}"
        )
    runonserver: VersionRange | None = None
    raw_range = value.get("runonserver")
    if raw_range not in (None, ""):
        runonserver = parse_range(str(raw_range)) if isinstance(raw_range, str) else None
        if runonserver is None:
            problems.append(
                f"{where}.runonserver: expected a version range like '>=10.0.0 <16.0.0' or "
                f"'>=12.0.0 || 9.6.x', got {raw_range!r}"
            )
    columns = _columns(where, value.get("metrics"), problems)
    if len(problems) > before:
        return None
    query = CustomQuery(
        namespace, str(sql), tuple(columns), master, int(cache_seconds), runonserver
    )
    for name in query.series_names():
        if not METRIC_NAME.fullmatch(name):
            problems.append(f"{where}: series name {name!r} is not a valid Prometheus name")
    return query


def parse_queries(
    text: str, name: str, builtin: frozenset[str] = BUILTIN_PG_SERIES
) -> tuple[QueriesFile | None, list[str]]:
    """The queries of ``text`` (file ``name``, for messages), or None and the problems, each
    naming the file, the query and the key. ``builtin`` holds the series the product sends
    itself: a custom series of the same name is refused."""
    import yaml  # deferred: only a queries file needs it

    document = f"queries file {name}"
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        return None, [f"{document}: YAML syntax error{at}: {problem}"]
    if not isinstance(loaded, Mapping) or not loaded:
        return None, [
            f"{document}: expected a mapping of namespace: {{query: ..., metrics: [...]}}, "
            f"got {_kind(loaded)}"
        ]
    problems: list[str] = []
    queries: list[CustomQuery] = []
    owners: dict[str, str] = {}
    for namespace, value in loaded.items():
        where = f"{document}: {namespace}"
        if not isinstance(namespace, str) or not METRIC_NAME.fullmatch(namespace):
            problems.append(f"{where}: a namespace must be a valid Prometheus name")
            continue
        query = _query(where, namespace, value, problems)
        if query is None:
            continue
        for series in query.series_names():
            # x and x_total are one family to the product's model (its counters are x_total).
            family = series.removesuffix("_total")
            if (
                series in builtin
                or f"{series}_total" in builtin
                or series.startswith(RESERVED_PREFIX)
            ):
                problems.append(
                    f"{where}.metrics: series {series} clashes with a series the product sends "
                    "itself; rename the namespace or the column"
                )
            elif family in owners:
                problems.append(
                    f"{where}.metrics: series {series} is also made by query {owners[family]} "
                    "(x and x_total count as the same name)"
                )
            else:
                owners[family] = namespace
        queries.append(query)
    if problems:
        return None, problems
    return QueriesFile(name, tuple(queries)), []


def read_queries_file(
    name: str, search_dirs: Sequence[Path], builtin: frozenset[str] = BUILTIN_PG_SERIES
) -> tuple[QueriesFile | None, list[str]]:
    """A relative name is looked up next to the function, then in /opt (a layer)."""
    from ..paths import find_file

    try:
        path = find_file(name, search_dirs, "queries file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        return None, [f"queries file {name}: cannot be read: {detail}"]
    return parse_queries(text, name, builtin)
