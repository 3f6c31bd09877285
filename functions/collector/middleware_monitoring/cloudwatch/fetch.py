"""Planning and running the GetMetricData calls of one pass.

Every declared statistic of every target goes into as few calls as the API allows (500
queries each); pages (NextToken) are followed; every datapoint of the window is kept by its
time, and for each query the newest one is the value, whatever order CloudWatch returns them
in. A query without a datapoint is
*missing* (absent this pass, counted), never 0. A call that fails costs only the queries of
that call that had no value yet. A fleet's calls (a discovered fleet of 1,000 resources
needs about ten) run up to CONCURRENT_CALLS at a time, far below GetMetricData's rate limit
(50 calls per second per account and region by default).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..aws import AwsFailure, classify_failure
from .declarations import OPTIONAL_METRICS, Stat

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef

logger = logging.getLogger(__name__)

MAX_QUERIES_PER_CALL: Final = 500  # the GetMetricData limit
CONCURRENT_CALLS: Final = 4


@dataclass(frozen=True)
class Window:
    """The time range asked for, Unix seconds, end exclusive."""

    start: int
    end: int


def window(now: float, *, lookback: int, end_delay: int, periods: Iterable[int]) -> Window:
    """The end is aligned down to the finest period after the delay, so the newest bucket is
    a whole minute that ended at least ``end_delay`` seconds ago; the start is aligned to the
    coarsest period, so 5-minute buckets match the ones AWS publishes."""
    periods = list(periods) or [60]
    finest, coarsest = min(periods), max(periods)
    end = int(now - end_delay) // finest * finest
    start = (end - lookback) // coarsest * coarsest
    return Window(start, end)


@dataclass
class FetchResult:
    """What one pass got. Filled while the calls run, so a pass cut short by its deadline
    still reports the calls it made."""

    stats: list[Stat]
    # The newest datapoint's value per statistic (SPEC 3.7), and every datapoint by time.
    values: dict[Stat, float] = field(default_factory=dict)
    points: dict[Stat, dict[float, float]] = field(default_factory=dict)
    failures: dict[Stat, AwsFailure] = field(default_factory=dict)
    calls: int = 0
    requested: int = 0
    # Calls run concurrently: the counters are added to under it (each call's queries are
    # its own, so the dicts above are never written for one key by two calls).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_call(self, queries: int) -> None:
        with self.lock:
            self.calls += 1
            self.requested += queries

    def missing(self) -> list[Stat]:
        """Asked, not failed, without a datapoint; optional metrics (DB load without
        Performance Insights) are not missing."""
        return [
            s
            for s in self.stats
            if s not in self.values
            and s not in self.failures
            and (s.namespace, s.metric) not in OPTIONAL_METRICS
        ]

    def fail_unanswered(self, stats: Iterable[Stat], failure: AwsFailure) -> None:
        for stat in stats:
            if stat not in self.values:
                self.failures.setdefault(stat, failure)


def plan(stats: Iterable[Stat]) -> list[list[Stat]]:
    """Distinct statistics, in declaration order, in calls of at most 500 queries."""
    unique = list(dict.fromkeys(stats))
    return [
        unique[i : i + MAX_QUERIES_PER_CALL] for i in range(0, len(unique), MAX_QUERIES_PER_CALL)
    ]


def queries(chunk: Sequence[Stat]) -> list[MetricDataQueryTypeDef]:
    """Ids are positions (q0, q1, ...): CloudWatch wants them to start with a lower-case
    letter and be unique per call, and ids must not carry user text."""
    return [
        {"Id": f"q{i}", "MetricStat": stat.metric_stat, "ReturnData": True}
        for i, stat in enumerate(chunk)
    ]


def classify(exc: BaseException) -> AwsFailure:
    return classify_failure(exc, service_error="cloudwatch_error")


def _utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def fetch(
    client: CloudWatchClient,
    stats: Sequence[Stat],
    span: Window,
    *,
    deadline: float,
    result: FetchResult | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    concurrency: int = 1,
) -> FetchResult:
    """Run every call of the plan, ``concurrency`` at a time (the client is thread-safe);
    never raises for CloudWatch's sake (failures are recorded per query in the result)."""
    result = result if result is not None else FetchResult(list(stats))
    chunks = plan(stats)
    if concurrency <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            _fetch_call(client, chunk, span, deadline, result, monotonic)
        return result
    waiting = list(reversed(chunks))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not waiting:
                    return
                chunk = waiting.pop()
            try:
                _fetch_call(client, chunk, span, deadline, result, monotonic)
            except Exception as exc:  # a bug here must cost this call's queries only
                result.fail_unanswered(chunk, classify(exc))

    # Daemons like the fetch thread itself: a call stuck past its timeouts never holds up
    # the process's exit.
    workers = [
        threading.Thread(target=work, name="cloudwatch-call", daemon=True)
        for _ in range(min(concurrency, len(chunks)))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return result


def _fetch_call(
    client: CloudWatchClient,
    chunk: list[Stat],
    span: Window,
    deadline: float,
    result: FetchResult,
    monotonic: Callable[[], float],
) -> None:
    by_id = {f"q{i}": stat for i, stat in enumerate(chunk)}
    request: dict[str, Any] = {
        "MetricDataQueries": queries(chunk),
        "StartTime": _utc(span.start),
        "EndTime": _utc(span.end),
        # Newest first spreads the newest points over the first page; the code below does
        # not rely on any order, though (the older exporter's Datapoints[0] bug).
        "ScanBy": "TimestampDescending",
    }
    newest: dict[str, dt.datetime] = {}
    while True:
        if monotonic() >= deadline:
            result.fail_unanswered(
                chunk, AwsFailure("deadline", "not fetched before the pass deadline")
            )
            return
        result.count_call(len(chunk))
        try:
            response = client.get_metric_data(**request)
        except Exception as exc:  # every failure of this call costs only this call's queries
            failure = classify(exc)
            logger.warning(
                "GetMetricData call failed",
                extra={"reason": failure.reason, "detail": failure.detail, "queries": len(chunk)},
            )
            result.fail_unanswered(chunk, failure)
            return
        for item in response.get("MetricDataResults", []):
            stat = by_id.get(item.get("Id", ""))
            if stat is None:
                continue
            for timestamp, value in zip(
                item.get("Timestamps", []), item.get("Values", []), strict=False
            ):
                result.points.setdefault(stat, {})[timestamp.timestamp()] = float(value)
                if item["Id"] not in newest or timestamp > newest[item["Id"]]:
                    newest[item["Id"]] = timestamp
                    result.values[stat] = float(value)
                    result.failures.pop(stat, None)
            status = item.get("StatusCode", "Complete")
            if status in ("InternalError", "Forbidden") and stat not in result.values:
                messages = "; ".join(
                    f"{m.get('Code', '')}: {m.get('Value', '')}" for m in item.get("Messages", [])
                )
                reason = "auth_failed" if status == "Forbidden" else "cloudwatch_error"
                result.failures[stat] = AwsFailure(
                    reason, f"{stat.describe()}: {status}" + (f" ({messages})" if messages else "")
                )
        token = response.get("NextToken")
        if not token:
            return
        request["NextToken"] = token
