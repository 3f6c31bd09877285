"""BASELINE, NOT THE PRODUCT: a re-implementation of the older exporter's approach, kept only
so `make bench` can compare against it in the same run.

What it reproduces (SPEC 3.1, 3.7 describe the older exporter):

- CloudWatch: one ``GetMetricStatistics`` call per metric, with a new boto3 client for every
  metric, taking ``Datapoints[0]`` (whatever order CloudWatch returned), dropping 0 values,
  and asking NetworkBandwidthInAllowanceExceeded for the series named after the Out metric.
- PostgreSQL QPS: sum of calls per kind from ``pg_stat_statements`` (texts read to tell reads
  from writes), ``SELECT pg_sleep(1)``, the same sums again: one second of every pass asleep.
  ``sleep=False`` leaves the sleep out (the benchmark's main comparison: the approach without
  the second it spends asleep).
- PostgreSQL statements: the ``pg_stat_statements`` view (which reads every stored text)
  ordered by calls, top 20.
- Everything sequential: one target after another, one metric after another.

Where the older code is unknown, the choice favours the baseline: one PostgreSQL connection
and one DocumentDB client per target kept across passes (a long-running process), the same
driver as the product (pg8000), only the top 20 statements sent over the wire, the kind sums
computed on the server.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode

import pg8000.native

SLEEP_SQL = "SELECT pg_sleep(1)"
KIND_SUMS_SQL = r"""SELECT
  coalesce(sum(calls), 0)::bigint,
  coalesce(sum(calls) FILTER (WHERE query ~* '^\s*(select|with|show|values|table)'), 0)::bigint,
  coalesce(sum(calls) FILTER (WHERE query ~* '^\s*(insert|update|delete|merge|copy)'), 0)::bigint
FROM pg_stat_statements"""
ACTIVITY_SQL = """SELECT count(*), count(*) FILTER (WHERE state = 'active'),
  count(*) FILTER (WHERE state = 'idle'),
  count(*) FILTER (WHERE wait_event IS NOT NULL AND state NOT LIKE 'idle%'
                   AND now() - state_change >= interval '1 second'),
  count(*) FILTER (WHERE wait_event IS NOT NULL AND state NOT LIKE 'idle%'
                   AND now() - state_change >= interval '5 seconds'),
  extract(epoch FROM now() - pg_postmaster_start_time())::float8
FROM pg_stat_activity WHERE backend_type = 'client backend'"""
USERS_SQL = (
    "SELECT coalesce(usename, ''), count(*) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' GROUP BY 1"
)
SIZES_SQL = "SELECT datname, pg_database_size(datname) FROM pg_database WHERE NOT datistemplate"


def statements_sql(blk_read: str, blk_write: str) -> str:
    return f"""SELECT query, calls, total_exec_time, min_exec_time, max_exec_time,
  mean_exec_time, {blk_read}, {blk_write}, rows,
  100.0 * shared_blks_hit / nullif(shared_blks_hit + shared_blks_read, 0)
FROM pg_stat_statements ORDER BY calls DESC LIMIT 20"""


@dataclass(frozen=True)
class PgTarget:
    name: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str


@dataclass(frozen=True)
class DocTarget:
    name: str
    address: str
    port: int
    user: str
    password: str = field(repr=False)
    parameters: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CwMetric:
    """One GetMetricStatistics call: what the older exporter asked per metric, and the series
    name it exported the answer under."""

    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    period: int
    output: str = ""

    @property
    def key(self) -> str:
        """``series/dimension values``: how the benchmark compares exported values."""
        return f"{self.output or self.metric}/{','.join(v for _, v in self.dimensions)}"


# SPEC 3.7: the older exporter exported NetworkBandwidthInAllowanceExceeded under the Out name.
OLDER_METRIC_FOR_OUTPUT = {
    "redis_network_bandwidthOut_allowance_exceeded": "NetworkBandwidthInAllowanceExceeded",
}


def older_metric(output: str, metric: str) -> str:
    """The CloudWatch metric the older exporter asked for the series ``output``."""
    return OLDER_METRIC_FOR_OUTPUT.get(output, metric)


@dataclass
class ScrapeResult:
    duration_seconds: float
    values: dict[str, float]
    api_calls: Counter[str]
    # Metrics whose answer had more than one datapoint and whose first one (what the older
    # exporter took) was not the newest: how often the stand-in's order made Datapoints[0]
    # differ from the newest point this pass.
    first_not_newest: int = 0
    # Metrics answered with at least one datapoint.
    answered: int = 0


class BaselineExporter:
    """The whole older exporter: ``scrape()`` is one pass over every target, in order."""

    def __init__(
        self,
        postgres: list[PgTarget],
        docdb: list[DocTarget],
        cloudwatch: list[CwMetric],
        *,
        region: str,
        endpoint_url: str | None,
        sleep: bool = True,
    ) -> None:
        self.postgres = postgres
        self.docdb = docdb
        self.cloudwatch = cloudwatch
        self.region = region
        self.endpoint_url = endpoint_url
        self.sleep = sleep
        self._pg: dict[str, Any] = {}
        self._mongo: dict[str, Any] = {}
        self._statements_sql: dict[str, str] = {}

    def close(self) -> None:
        for conn in self._pg.values():
            conn.close()
        for client in self._mongo.values():
            client.close()
        self._pg.clear()
        self._mongo.clear()

    # --- PostgreSQL -------------------------------------------------------------------------

    def _pg_connection(self, target: PgTarget) -> Any:
        conn = self._pg.get(target.name)
        if conn is None:
            conn = pg8000.native.Connection(
                user=target.user,
                password=target.password,
                host=target.host,
                port=target.port,
                database=target.database,
                timeout=30,
            )
            columns = {
                row[0]
                for row in conn.run(
                    "SELECT attname FROM pg_attribute "
                    "WHERE attrelid = 'pg_stat_statements'::regclass AND attnum > 0"
                )
            }
            # PostgreSQL 17 renamed the block-time columns; pick what this server has.
            if "blk_read_time" in columns:
                self._statements_sql[target.name] = statements_sql(
                    "blk_read_time", "blk_write_time"
                )
            else:
                self._statements_sql[target.name] = statements_sql(
                    "shared_blk_read_time", "shared_blk_write_time"
                )
            self._pg[target.name] = conn
        return conn

    def _scrape_postgres(self, target: PgTarget, values: dict[str, float]) -> None:
        conn = self._pg_connection(target)
        prefix = f"{target.name}/"
        total, active, idle, wait1, wait5, uptime = conn.run(ACTIVITY_SQL)[0]
        values.update(
            {
                prefix + "pg_total_connections": total,
                prefix + "pg_active_connections": active,
                prefix + "pg_idle_connections": idle,
                prefix + "pg_wait_session_sec": wait1,
                prefix + "pg_wait_session_five_sec": wait5,
                prefix + "pg_uptime_seconds": uptime,
            }
        )
        for user, count in conn.run(USERS_SQL):
            values[f"{prefix}pg_user_connection_count/{user}"] = count
        for name, size in conn.run(SIZES_SQL):
            values[f"{prefix}pg_database_size_bytes/{name}"] = size
        before = conn.run(KIND_SUMS_SQL)[0]
        if self.sleep:
            conn.run(SLEEP_SQL)
        after = conn.run(KIND_SUMS_SQL)[0]
        for name, b, a in zip(("all", "read", "write"), before, after, strict=True):
            values[f"{prefix}pg_qps_{name}"] = float(a - b)
        for row in conn.run(self._statements_sql[target.name]):
            text = row[0]
            for name, value in zip(
                (
                    "calls",
                    "total_exec_time",
                    "min_exec_time",
                    "max_exec_time",
                    "mean_exec_time",
                    "blk_read_time",
                    "blk_write_time",
                    "rows",
                    "hit_percent",
                ),
                row[1:],
                strict=True,
            ):
                if value is not None:
                    values[f"{prefix}pg_query_{name}/{text[:300]}"] = float(value)

    # --- DocumentDB -------------------------------------------------------------------------

    def _scrape_docdb(self, target: DocTarget, values: dict[str, float]) -> None:
        from pymongo import MongoClient

        client = self._mongo.get(target.name)
        if client is None:
            query = urlencode(target.parameters, quote_via=quote_plus)
            uri = (
                f"mongodb://{quote_plus(target.user)}:{quote_plus(target.password)}@"
                f"{target.address}:{target.port}/?{query}"
            )
            client = MongoClient(uri, serverSelectionTimeoutMS=5000)
            self._mongo[target.name] = client
        status = client.admin.command("serverStatus")
        prefix = f"{target.name}/"
        values[prefix + "mongo_uptime_seconds"] = float(status.get("uptime", 0))
        for key, value in status.get("connections", {}).items():
            values[f"{prefix}mongo_{key}_connections"] = float(value)
        for key, value in status.get("opcounters", {}).items():
            values[f"{prefix}mongo_opcounters_{key}"] = float(value)
        for key, value in status.get("metrics", {}).get("document", {}).items():
            values[f"{prefix}mongo_document_{key}"] = float(value)

    # --- CloudWatch -------------------------------------------------------------------------

    def _scrape_metric(
        self, metric: CwMetric, values: dict[str, float], calls: Counter[str], seen: Counter[str]
    ) -> None:
        import boto3

        # A new client for every metric, as the older exporter did.
        client: Any = boto3.client(
            "cloudwatch", region_name=self.region, endpoint_url=self.endpoint_url
        )
        now = dt.datetime.now(dt.UTC)
        calls["GetMetricStatistics"] += 1
        response = client.get_metric_statistics(
            Namespace=metric.namespace,
            MetricName=metric.metric,
            Dimensions=[{"Name": n, "Value": v} for n, v in metric.dimensions],
            StartTime=now - dt.timedelta(seconds=600),
            EndTime=now,
            Period=metric.period,
            Statistics=[metric.statistic],
        )
        points = response.get("Datapoints", [])
        if points:
            seen["answered"] += 1
            newest = max(point["Timestamp"] for point in points)
            if len(points) > 1 and points[0]["Timestamp"] != newest:
                seen["first_not_newest"] += 1
            value = float(points[0][metric.statistic])  # the unordered first point
            if value:  # the older exporter dropped every 0
                values[metric.key] = value

    def scrape(self) -> ScrapeResult:
        started = time.perf_counter()
        values: dict[str, float] = {}
        calls: Counter[str] = Counter()
        seen: Counter[str] = Counter()
        for pg in self.postgres:
            self._scrape_postgres(pg, values)
        for doc in self.docdb:
            self._scrape_docdb(doc, values)
        for metric in self.cloudwatch:
            self._scrape_metric(metric, values, calls, seen)
        return ScrapeResult(
            time.perf_counter() - started,
            values,
            calls,
            first_not_newest=seen["first_not_newest"],
            answered=seen["answered"],
        )
