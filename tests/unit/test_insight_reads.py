"""The per-instance reads of SPEC 17 without a server: the pace kept below GetLogEvents'
quota, a read that does not end before the pass deadline, Logs API errors as reasons (a
stubbed client answering as AWS does), and Performance Insights' MetricList read into
series."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from prometheus_client import Metric

from middleware_monitoring.config import HERE, AwsLocation, InsightsSettings
from middleware_monitoring.insights.enhanced_monitoring import EnhancedMonitoring
from middleware_monitoring.insights.performance_insights import load_families
from middleware_monitoring.insights.reads import InstanceReads, Pacer
from middleware_monitoring.model import SourceFailure, pass_deadline


def test_pacer_hands_out_one_slot_per_interval_and_none_past_the_deadline() -> None:
    now = [100.0]
    slept: list[float] = []
    pacer = Pacer(20.0, monotonic=lambda: now[0], sleep=slept.append)
    for _ in range(3):
        pacer.wait(deadline=200.0)
    # 20 per second: the second call waits 50 ms, the third 100 ms (all asked at once).
    assert slept == [pytest.approx(0.05), pytest.approx(0.1)]
    with pytest.raises(SourceFailure) as raised:
        pacer.wait(deadline=100.1)
    assert (raised.value.reason, raised.value.detail) == (
        "deadline",
        "no request slot left before the pass deadline",
    )


class _Blocked:
    name = "blocked"

    def __init__(self, reads: InstanceReads) -> None:
        self.reads = reads
        self.release = threading.Event()

    def read(self) -> list[Metric]:
        self.release.wait(timeout=30)
        return []


def test_a_read_that_does_not_end_before_the_deadline_is_a_deadline_failure() -> None:
    import time

    reads = InstanceReads("blocked", concurrency=2)
    source = _Blocked(reads)
    reads.plan([source, object()])  # only sources of this prefetch are planned
    assert reads.planned
    deadline = time.monotonic() + 0.2
    reads.start(deadline)
    try:
        with pass_deadline(deadline), pytest.raises(SourceFailure) as raised:
            reads.collect(source)
        assert (raised.value.reason, raised.value.detail) == (
            "deadline",
            "no answer before the pass deadline",
        )
    finally:
        source.release.set()
    unplanned = _Blocked(InstanceReads("other", concurrency=1))
    with pytest.raises(SourceFailure) as raised:
        reads.collect(unplanned)
    assert raised.value.detail == "the blocked read was not started this pass"


class _Sessions:
    """AwsSessions' two methods EnhancedMonitoring uses, handing out one stubbed client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def region(self, location: AwsLocation) -> str:
        return "eu-west-1"

    def client(self, service: str, location: AwsLocation, config: Any = None) -> Any:
        return self._client


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("AccessDeniedException", "auth_failed"),
        ("ThrottlingException", "throttled"),
        ("ServiceUnavailableException", "logs_failed"),
    ],
)
def test_logs_errors_are_reasons_and_a_missing_stream_is_none(code: str, reason: str) -> None:
    client = boto3.client(
        "logs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stub = Stubber(client)
    asked = {
        "logGroupName": "RDSOSMetrics",
        "logStreamName": "db-ABC",
        "startFromHead": False,
        "limit": 1,
    }
    stub.add_client_error("get_log_events", code, "the message", expected_params=asked)
    stub.add_client_error(
        "get_log_events",
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
        expected_params=asked,
    )
    stub.add_response("get_log_events", {"events": []}, expected_params=asked)
    em = EnhancedMonitoring(
        InsightsSettings(enhanced_monitoring=True),
        _Sessions(client),  # type: ignore[arg-type]
        calls_per_second=1e9,
    )
    with stub:
        with pytest.raises(SourceFailure) as raised:
            em.newest_event(HERE, "db-ABC")
        assert (raised.value.reason, raised.value.detail) == (
            reason,
            f"GetLogEvents failed: {code}: the message",
        )
        assert em.newest_event(HERE, "db-ABC") is None
        assert em.newest_event(HERE, "db-ABC") == {}
    assert em.calls == 3


def _point(minute: int, value: float | None) -> dict[str, Any]:
    when = dt.datetime(2026, 5, 28, 20, minute, tzinfo=dt.UTC)
    return {"Timestamp": when} if value is None else {"Timestamp": when, "Value": value}


def test_metric_list_newest_value_per_group_totals_left_out() -> None:
    metric_list = [
        {"Key": {"Metric": "db.load.avg"}, "DataPoints": [_point(1, 3.0)]},
        {
            "Key": {
                "Metric": "db.load.avg",
                "Dimensions": {"db.wait_event.type": "IO", "db.wait_event.name": "WALWrite"},
            },
            # Unordered, the newest without a value: the newest with one counts.
            "DataPoints": [_point(2, 0.5), _point(3, None), _point(1, 0.25)],
        },
        {
            "Key": {
                "Metric": "db.load.avg",
                "Dimensions": {"db.wait_event.type": "CPU", "db.wait_event.name": "CPU"},
            },
            "DataPoints": [_point(1, None)],  # no value at all: left out
        },
        {
            "Key": {
                "Metric": "db.load.avg",
                "Dimensions": {
                    "db.sql_tokenized.id": "AB12",
                    "db.sql_tokenized.statement": "select  1\n from  t",
                },
            },
            "DataPoints": [_point(3, 0.125)],
        },
    ]
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in load_families(metric_list, max_length=12)
        for s in family.samples
    }
    assert got == {
        ("pg_pi_load", (("wait_event", "WALWrite"), ("wait_event_type", "IO"))): 0.5,
        ("pg_pi_sql_load", (("sql_id", "AB12"), ("statement", "select 1 fro"))): 0.125,
    }
