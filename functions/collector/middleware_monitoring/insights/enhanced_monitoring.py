"""Enhanced Monitoring (SPEC 17): the newest event of each instance's stream in the
``RDSOSMetrics`` log group, as ``rds_os_*`` series.

RDS names an instance's stream after its DbiResourceId. Discovery knows it from its Describe
answers; for a configured instance (a targets file's ``rds_id``, ``AWS_RDS_INSTANCE_ID``) one
DescribeDBInstances per instance finds it, kept while the function instance is warm (the id
never changes in an instance's life).

One GetLogEvents per instance and pass, newest event only (``startFromHead=False``,
``limit=1``). An instance without a stream (Enhanced Monitoring off) is said once in the log
and sends nothing: it is not a failure. An event older than ``MAX_AGE_SECONDS`` sends only
``rds_os_sample_age_seconds``. A message that is no Enhanced Monitoring event is a failure of
this source (``malformed_event``), never of the target's other sources.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import Metric

from ..aws import AwsSessions, aws_error_code, classify_failure
from ..config import AwsLocation, InsightsSettings
from ..model import SourceFailure, seconds_left
from .os_metrics import MalformedEvent, parse_event
from .reads import InstanceReads, Pacer

logger = logging.getLogger(__name__)

SOURCE_NAME: Final = "enhanced_monitoring"
LOG_GROUP: Final = "RDSOSMetrics"
# Enhanced Monitoring's longest interval is 60 s: five missed events mean the stream stopped.
MAX_AGE_SECONDS: Final = 300.0
# GetLogEvents' quota is 25 requests per second per account and region; other readers of
# the account (the RDS console among them) share it.
LOGS_CALLS_PER_SECOND: Final = 20.0
CONCURRENT_READS: Final = 8
NOT_FOUND_CODES: Final = frozenset({"ResourceNotFoundException"})
INSTANCE_NOT_FOUND_CODES: Final = frozenset({"DBInstanceNotFound", "DBInstanceNotFoundFault"})

# The DbiResourceId of a source's instance, or None while it is not known (the source then
# sends nothing). May make an AWS call; raises SourceFailure when that fails.
ResourceId = Callable[[], str | None]


class ResourceIds:
    """DbiResourceId of configured instances: one DescribeDBInstances each, kept."""

    def __init__(self, sessions: AwsSessions) -> None:
        self._sessions = sessions
        self._known: dict[tuple[AwsLocation, str], str] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def of(self, instance: str, location: AwsLocation) -> str:
        with self._lock:
            known = self._known.get((location, instance))
        if known is not None:
            return known
        client = self._sessions.shared_client("rds", location)
        with self._lock:
            self.calls += 1
        try:
            answer = client.describe_db_instances(DBInstanceIdentifier=instance)
        except Exception as exc:
            if aws_error_code(exc) in INSTANCE_NOT_FOUND_CODES:
                raise SourceFailure(
                    "not_found",
                    f"DescribeDBInstances knows no instance {instance!r} "
                    f"(region {self._sessions.region(location)}): check its id",
                ) from None
            failure = classify_failure(exc, service_error="describe_failed")
            raise SourceFailure(failure.reason, failure.detail) from None
        instances = answer.get("DBInstances") or [{}]
        resource_id = instances[0].get("DbiResourceId")
        if not resource_id:
            raise SourceFailure("not_found", f"no DbiResourceId for instance {instance!r}")
        with self._lock:
            self._known[(location, instance)] = str(resource_id)
        return str(resource_id)


class EnhancedMonitoring(InstanceReads):
    """The pass's Enhanced Monitoring reads, and what they share: a CloudWatch Logs client
    and a request pace per location, and what was already said in the log."""

    def __init__(
        self,
        settings: InsightsSettings,
        sessions: AwsSessions,
        *,
        clock: Callable[[], float] = time.time,
        calls_per_second: float = LOGS_CALLS_PER_SECOND,
        concurrency: int = CONCURRENT_READS,
    ) -> None:
        super().__init__(SOURCE_NAME, concurrency=concurrency)
        self.settings = settings
        self._sessions = sessions
        self.clock = clock
        self._calls_per_second = calls_per_second
        self._clients: dict[AwsLocation, tuple[Any, Pacer]] = {}
        self._clients_lock = threading.Lock()
        self._told: set[tuple[str, str]] = set()
        self._told_lock = threading.Lock()
        self.calls = 0

    def source(
        self, target: str, resource_id: ResourceId, location: AwsLocation
    ) -> EnhancedMonitoringSource:
        return EnhancedMonitoringSource(self, target, resource_id, location)

    def _client(self, location: AwsLocation) -> tuple[Any, Pacer]:
        with self._clients_lock:
            entry = self._clients.get(location)
            if entry is None:
                region = self._sessions.region(location)
                config = AwsSessions.client_config(region, max_attempts=2)
                entry = (
                    self._sessions.client("logs", location, config),
                    Pacer(self._calls_per_second),
                )
                self._clients[location] = entry
            return entry

    def tell_once(self, target: str, what: str, detail: str) -> None:
        """One log line per instance and kind of news while the function instance is warm
        (a stream that is missing is missing on every pass)."""
        with self._told_lock:
            if (target, what) in self._told:
                return
            self._told.add((target, what))
        logger.warning(what, extra={"target": target, "source": SOURCE_NAME, "detail": detail})

    def newest_event(self, location: AwsLocation, resource_id: str) -> dict[str, Any] | None:
        """The stream's newest event, or None when the stream (or the group) does not exist."""
        client, pacer = self._client(location)
        left = seconds_left()
        pacer.wait(time.monotonic() + (left if left is not None else 60.0))
        with self._clients_lock:
            self.calls += 1
        try:
            answer = client.get_log_events(
                logGroupName=LOG_GROUP,
                logStreamName=resource_id,
                startFromHead=False,
                limit=1,
            )
        except Exception as exc:
            if aws_error_code(exc) in NOT_FOUND_CODES:
                return None
            failure = classify_failure(exc, service_error="logs_failed")
            raise SourceFailure(failure.reason, failure.detail) from None
        events = answer.get("events") or []
        return dict(events[-1]) if events else {}


class EnhancedMonitoringSource:
    """One instance's OS metrics, read by the pass's prefetch."""

    name = SOURCE_NAME
    passive = True  # it waits for the prefetch's read: no worker of its own

    def __init__(
        self,
        reads: EnhancedMonitoring,
        target: str,
        resource_id: ResourceId,
        location: AwsLocation,
    ) -> None:
        self.reads = reads
        self.target = target
        self._resource_id = resource_id
        self.location = location

    def collect(self) -> Iterator[Metric]:
        yield from self.reads.collect(self)

    def read(self) -> list[Metric]:
        reads = self.reads
        resource_id = self._resource_id()
        if resource_id is None:
            reads.tell_once(
                self.target,
                "Enhanced Monitoring not read",
                "the instance's DbiResourceId is not known (yet): no rds_os_* series",
            )
            return []
        event = reads.newest_event(self.location, resource_id)
        if not event:
            reads.tell_once(
                self.target,
                "Enhanced Monitoring off",
                f"no events in log stream {resource_id} of log group {LOG_GROUP}: turn "
                "Enhanced Monitoring on for the instance (MonitoringInterval) to get rds_os_* "
                "series",
            )
            return []
        try:
            parsed = parse_event(
                str(event.get("message", "")),
                now=reads.clock(),
                processes=reads.settings.processes,
                event_timestamp_ms=event.get("timestamp"),
                max_age_seconds=MAX_AGE_SECONDS,
            )
        except MalformedEvent as exc:
            raise SourceFailure(
                "malformed_event",
                f"the newest event of log stream {resource_id} is not an Enhanced Monitoring "
                f"event: {exc}",
            ) from None
        if parsed.age_seconds > MAX_AGE_SECONDS:
            reads.tell_once(
                self.target,
                "Enhanced Monitoring event too old",
                f"the newest event of log stream {resource_id} is {parsed.age_seconds:.0f} s "
                f"old (over {MAX_AGE_SECONDS:.0f} s): only rds_os_sample_age_seconds is sent",
            )
        if parsed.skipped:
            reads.tell_once(
                self.target,
                "Enhanced Monitoring fields left out",
                "not numbers: " + ", ".join(sorted(set(parsed.skipped))),
            )
        return parsed.families
