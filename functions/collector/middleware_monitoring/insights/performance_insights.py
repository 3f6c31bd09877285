"""Performance Insights (SPEC 17): DB load of each PostgreSQL instance by wait event and by
statement, from ``pi:GetResourceMetrics``.

One call per instance and pass, both groupings in it (MetricQueries takes up to 15 queries):
``db.load.avg`` grouped by ``db.wait_event`` (top 10) and by ``db.sql_tokenized`` (top 10),
one-minute points over the last five minutes; the newest point that has a value is the
series' value (Performance Insights publishes a minute once it is complete, and leaves out
the value of a minute without load). The instance is the PI resource named by its
DbiResourceId, found as for Enhanced Monitoring.

- ``pg_pi_load{wait_event_type, wait_event}``: average active sessions waiting on the event
- ``pg_pi_sql_load{sql_id, statement}``: average active sessions running the statement
  (tokenized text, whitespace collapsed and cut as the ``query`` label of pg_query_*)
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..aws import AwsSessions, aws_error_code, classify_failure
from ..config import AwsLocation
from ..model import SourceFailure
from .enhanced_monitoring import ResourceId
from .reads import InstanceReads

SOURCE_NAME: Final = "performance_insights"
LOAD: Final = "pg_pi_load"
SQL_LOAD: Final = "pg_pi_sql_load"
TOP: Final = 10
PERIOD_SECONDS: Final = 60
WINDOW_SECONDS: Final = 300
CONCURRENT_READS: Final = 8
WAIT_EVENT: Final = "db.wait_event"
SQL: Final = "db.sql_tokenized"
METRIC: Final = "db.load.avg"
QUERIES: Final = (
    {"Metric": METRIC, "GroupBy": {"Group": WAIT_EVENT, "Limit": TOP}},
    {"Metric": METRIC, "GroupBy": {"Group": SQL, "Limit": TOP}},
)


def cut_statement(text: str, max_length: int) -> str:
    """As the ``query`` label of pg_query_*: whitespace collapsed, trimmed, cut."""
    return " ".join(text.split())[:max_length]


def window(now: float) -> tuple[dt.datetime, dt.datetime]:
    """The last five whole minutes before ``now``."""
    end = int(now) // PERIOD_SECONDS * PERIOD_SECONDS
    start = end - WINDOW_SECONDS
    return dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(end, dt.UTC)


def newest_value(points: Any) -> float | None:
    """The value of the newest data point that has one."""
    dated: list[tuple[dt.datetime, float]] = []
    for point in points if isinstance(points, list) else []:
        value, when = point.get("Value"), point.get("Timestamp")
        if isinstance(value, int | float) and isinstance(when, dt.datetime):
            dated.append((when, float(value)))
    return max(dated)[1] if dated else None


def load_families(metric_list: Any, max_length: int) -> list[Metric]:
    """GetResourceMetrics' MetricList as pg_pi_load and pg_pi_sql_load (the totals, items
    without dimensions, are left out: CloudWatch's DBLoad is pg_db_load)."""
    load = GaugeMetricFamily(
        LOAD,
        "DB load (average active sessions) by wait event, Performance Insights' newest minute.",
        labels=["wait_event_type", "wait_event"],
    )
    sql = GaugeMetricFamily(
        SQL_LOAD,
        "DB load (average active sessions) by statement, Performance Insights' newest minute.",
        labels=["sql_id", "statement"],
    )
    seen: set[tuple[str, str, str]] = set()
    for item in metric_list if isinstance(metric_list, list) else []:
        key = item.get("Key") or {}
        dimensions: Mapping[str, str] = key.get("Dimensions") or {}
        value = newest_value(item.get("DataPoints"))
        if value is None or key.get("Metric") != METRIC:
            continue
        if f"{WAIT_EVENT}.name" in dimensions:
            labels = (
                LOAD,
                str(dimensions.get(f"{WAIT_EVENT}.type", "")),
                str(dimensions[f"{WAIT_EVENT}.name"]),
            )
            family = load
        elif f"{SQL}.id" in dimensions:
            labels = (
                SQL_LOAD,
                str(dimensions[f"{SQL}.id"]),
                cut_statement(str(dimensions.get(f"{SQL}.statement", "")), max_length),
            )
            family = sql
        else:
            continue
        if labels in seen:  # two statements that differ only past the cut
            continue
        seen.add(labels)
        family.add_metric(list(labels[1:]), value)
    return [family for family in (load, sql) if family.samples]


class PerformanceInsights(InstanceReads):
    """The pass's Performance Insights reads and a client per location."""

    def __init__(
        self,
        sessions: AwsSessions,
        *,
        clock: Callable[[], float] = time.time,
        concurrency: int = CONCURRENT_READS,
    ) -> None:
        super().__init__(SOURCE_NAME, concurrency=concurrency)
        self._sessions = sessions
        self.clock = clock
        self._clients: dict[AwsLocation, Any] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def source(
        self, target: str, resource_id: ResourceId, location: AwsLocation, max_length: int
    ) -> PerformanceInsightsSource:
        return PerformanceInsightsSource(self, target, resource_id, location, max_length)

    def _client(self, location: AwsLocation) -> Any:
        with self._lock:
            client = self._clients.get(location)
            if client is None:
                region = self._sessions.region(location)
                config = AwsSessions.client_config(region, max_attempts=2)
                client = self._clients[location] = self._sessions.client("pi", location, config)
            return client

    def resource_metrics(self, location: AwsLocation, resource_id: str) -> dict[str, Any]:
        start, end = window(self.clock())
        client = self._client(location)
        with self._lock:
            self.calls += 1
        try:
            answer: dict[str, Any] = client.get_resource_metrics(
                ServiceType="RDS",
                Identifier=resource_id,
                MetricQueries=[dict(query) for query in QUERIES],
                StartTime=start,
                EndTime=end,
                PeriodInSeconds=PERIOD_SECONDS,
            )
        except Exception as exc:
            if aws_error_code(exc) == "NotAuthorizedException":
                failure = classify_failure(exc, service_error="auth_failed")
            else:
                failure = classify_failure(exc, service_error="pi_failed")
            raise SourceFailure(failure.reason, failure.detail) from None
        return answer


class PerformanceInsightsSource:
    """One PostgreSQL instance's DB load, read by the pass's prefetch."""

    name = SOURCE_NAME
    passive = True

    def __init__(
        self,
        reads: PerformanceInsights,
        target: str,
        resource_id: ResourceId,
        location: AwsLocation,
        max_length: int,
    ) -> None:
        self.reads = reads
        self.target = target
        self._resource_id = resource_id
        self.location = location
        self._max_length = max_length

    def collect(self) -> Iterator[Metric]:
        yield from self.reads.collect(self)

    def read(self) -> list[Metric]:
        resource_id = self._resource_id()
        if resource_id is None:
            return []
        answer = self.reads.resource_metrics(self.location, resource_id)
        return load_families(answer.get("MetricList"), self._max_length)
