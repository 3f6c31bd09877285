"""Pure parts of pull mode (scrape budget, single-flight) and of the Kafka stream (messages
from a pass, the push never lost to the stream)."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from middleware_monitoring.config import KafkaSettings
from middleware_monitoring.kafka_stream import QUERY_VALUES, push_and_stream, statement_messages
from middleware_monitoring.model import PassResult, SourceOutcome, TargetResult
from middleware_monitoring.serve import SingleFlight, scrape_budget
from middleware_monitoring.sinks import PushError


@pytest.mark.parametrize(
    ("configured", "header", "expected"),
    [
        (8.0, None, 8.0),
        (8.0, "10", 8.0),
        (8.0, "5", 4.5),
        (8.0, "not-a-number", 8.0),
        (8.0, "nan", 8.0),
        (8.0, "-3", 8.0),
        (8.0, "0.3", 0.1),
    ],
)
def test_scrape_budget(configured: float, header: str | None, expected: float) -> None:
    assert scrape_budget(configured, header) == expected


def wait_for_follower(flight: SingleFlight[int]) -> None:
    deadline = time.monotonic() + 30
    while flight.waiting != 1:
        assert time.monotonic() < deadline, "the second caller never waited on the first"
        time.sleep(0.01)


def test_single_flight_shares_one_run_between_concurrent_callers() -> None:
    flight: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []
    answers: list[int] = []

    def work() -> int:
        runs.append(1)
        started.set()
        release.wait(30)
        return 42

    leader = threading.Thread(target=lambda: answers.append(flight.do(work, wait_timeout=30)))
    leader.start()
    assert started.wait(30)
    follower = threading.Thread(target=lambda: answers.append(flight.do(work, wait_timeout=30)))
    follower.start()
    wait_for_follower(flight)
    release.set()
    leader.join(30)
    follower.join(30)
    assert answers == [42, 42]
    assert runs == [1]
    assert flight.runs == 1
    # Not cached: the next caller runs again.
    assert flight.do(lambda: 7, wait_timeout=1) == 7
    assert flight.runs == 2


def test_single_flight_hands_the_error_to_every_caller() -> None:
    flight: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    errors: dict[str, BaseException] = {}

    def boom() -> int:
        started.set()
        release.wait(30)
        raise RuntimeError("pass failed")

    def call(name: str) -> None:
        try:
            flight.do(boom, wait_timeout=30)
        except BaseException as exc:
            errors[name] = exc

    leader = threading.Thread(target=call, args=("leader",))
    leader.start()
    assert started.wait(30)
    follower = threading.Thread(target=call, args=("follower",))
    follower.start()
    wait_for_follower(flight)
    release.set()
    leader.join(30)
    follower.join(30)
    assert {name: (type(e), str(e)) for name, e in errors.items()} == {
        "leader": (RuntimeError, "pass failed"),
        "follower": (RuntimeError, "pass failed"),
    }
    assert flight.runs == 1
    assert flight.in_flight is False


def _statement_family(name: str, rows: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, "doc", labels=["query", "queryid", "database", "user"])
    for labels, value in rows:
        family.add_metric(labels, value)
    return family


def _pass() -> PassResult:
    a = ["SELECT $1", "11", "shop", "app"]
    b = ["UPDATE t SET x = $1", "-22", "shop", "batch"]
    families: list[Metric] = [
        GaugeMetricFamily("pg_up", "doc", value=1),
        _statement_family("pg_query_calls", [(a, 3.0), (b, 0.0)]),
        _statement_family("pg_query_total_exec_time", [(a, 1.5), (b, 0.0)]),
        _statement_family("pg_query_mean_exec_time", [(a, 0.5)]),
        _statement_family("pg_query_rows", [(a, 3.0), (b, 0.0)]),
    ]
    collector = TargetResult("collector", [], [])
    return PassResult([TargetResult("orders-db", families, [])], 0.1, collector)


def test_statement_messages() -> None:
    messages = statement_messages(_pass(), "production", 1795500000.25)
    base = {
        "timestamp": "2026-11-24T06:00:00.250Z",
        "env_name": "production",
        "target": "orders-db",
        "tags": ["pgsql"],
        **dict.fromkeys(QUERY_VALUES),
    }
    assert messages == [
        {
            **base,
            "query": "SELECT $1",
            "queryid": "11",
            "database": "shop",
            "user": "app",
            "pg_query_calls": 3,
            "pg_query_total_exec_time": 1.5,
            "pg_query_mean_exec_time": 0.5,
            "pg_query_rows": 3,
        },
        {
            **base,
            "query": "UPDATE t SET x = $1",
            "queryid": "-22",
            "database": "shop",
            "user": "batch",
            "pg_query_calls": 0,
            "pg_query_total_exec_time": 0.0,
            "pg_query_rows": 0,
        },
    ]
    assert type(messages[0]["pg_query_calls"]) is int


class _Sink:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.sent: list[list[str]] = []
        self.deadlines: list[float | None] = []

    def send(self, result: PassResult, deadline: float | None = None) -> None:
        self.sent.append([group.target for group in result.groups()])
        self.deadlines.append(deadline)
        if self.fail:
            raise PushError("Pushgateway did not accept 2 of 2 groups")

    def reserve_seconds(self) -> float:
        return 3.0


class _Stream:
    def __init__(self) -> None:
        self.settings = KafkaSettings(("k:9092",), "pgsql_query_message", "production", 1.0)
        self.sent: list[PassResult] = []
        self.deadlines: list[float | None] = []

    def send(self, result: PassResult, deadline: float | None = None) -> SourceOutcome:
        self.sent.append(result)
        self.deadlines.append(deadline)
        return SourceOutcome("kafka", False, 0.5, "unreachable", "no broker")

    def reserve_seconds(self) -> float:
        return 2.0

    def health(self, outcome: SourceOutcome) -> list[Metric]:
        return [GaugeMetricFamily("middleware_kafka_messages_sent", "Sent.", value=0)]


def test_stream_failure_does_not_fail_the_push_and_its_health_goes_with_the_pass() -> None:
    sink, stream = _Sink(fail=False), _Stream()
    result = _pass()
    outcome = push_and_stream(sink, stream, result)  # type: ignore[arg-type]
    assert outcome == SourceOutcome("kafka", False, 0.5, "unreachable", "no broker")
    # One send: the Pushgateway's one group per shard has no room for a second.
    assert sink.sent == [["orders-db", "collector"]]
    assert result.collector.families[-1].name == "middleware_kafka_messages_sent"


def test_failed_push_still_streams_and_raises() -> None:
    sink, stream = _Sink(fail=True), _Stream()
    result = _pass()
    with pytest.raises(PushError):
        push_and_stream(sink, stream, result)  # type: ignore[arg-type]
    assert stream.sent == [result]
    assert sink.sent == [["orders-db", "collector"]]


def test_the_stream_keeps_the_push_its_time() -> None:
    sink, stream = _Sink(fail=False), _Stream()
    before = time.monotonic()
    push_and_stream(sink, stream, _pass(), before + 100.0)  # type: ignore[arg-type]
    after = time.monotonic()
    # The push keeps the caller's deadline; the stream gets its own 2 s reserve at most.
    assert sink.deadlines == [before + 100.0]
    (stream_deadline,) = stream.deadlines
    assert stream_deadline is not None and before + 2.0 <= stream_deadline <= after + 2.0
    # Near the deadline the stream ends in time for the push's 3 s reserve.
    sink, stream = _Sink(fail=False), _Stream()
    near = time.monotonic() + 4.0
    push_and_stream(sink, stream, _pass(), near)  # type: ignore[arg-type]
    assert stream.deadlines == [near - 3.0]


def test_without_a_deadline_the_reserves_make_one() -> None:
    sink, stream = _Sink(fail=False), _Stream()
    before = time.monotonic()
    push_and_stream(sink, stream, _pass())  # type: ignore[arg-type]
    after = time.monotonic()
    (deadline,) = sink.deadlines
    # The stream's 2 s, then the push's 3 s.
    assert deadline is not None and before + 5.0 <= deadline <= after + 5.0


def test_without_stream_only_the_push() -> None:
    sink = _Sink(fail=False)
    assert push_and_stream(sink, None, _pass()) is None
    assert sink.sent == [["orders-db", "collector"]]


def test_a_budget_cuts_what_the_sink_sends_never_the_streamed_statements() -> None:
    from middleware_monitoring.bounds import SeriesBudget

    sink, stream = _Sink(fail=False), _Stream()
    result = _pass()
    # Room for the collector's two budget series and pg_up: the statements are left out.
    cut, sent = SeriesBudget(3).apply(result, "pushgateway")
    push_and_stream(sink, stream, result, to_sink=cut)  # type: ignore[arg-type]
    assert sent == 3
    assert [f.name for f in cut.targets[0].families] == ["pg_up"]
    (streamed,) = stream.sent
    assert [m["queryid"] for m in statement_messages(streamed, "production", 0.0)] == ["11", "-22"]
