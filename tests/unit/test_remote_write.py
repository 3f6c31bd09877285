"""The remote-write sink on its own: the hand-written WriteRequest decoded by the protobuf
runtime against the official schema (prometheus/prompb), snappy, series from a pass, and the
sending rules against a small local receiver answering what each test scripts (retries on
5xx and 429, none on other 4xx, the body of a 400 named, the shared deadline, the sink's
health request). The real receiver (Prometheus) is in tests/integration/test_remote_write.py.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import cramjam
import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from middleware_monitoring import remote_write, resend, sinks
from middleware_monitoring.config import ConfigError, RemoteWriteSettings
from middleware_monitoring.model import PassResult, SourceOutcome, TargetResult
from middleware_monitoring.remote_write import (
    RemoteWriteSink,
    Series,
    compress,
    encode_write_request,
    pass_series,
    requests_of,
)
from middleware_monitoring.sinks import PushError, SentTimestamps
from tests.standins.http import ThreadedHttpServer
from tests.standins.remote_write import Decoded, WriteRequest, decode
from tests.standins.silent import SilentServer

NOW = 1_800_000_000.0


# --- the encoding -------------------------------------------------------------------------

SERIES: list[tuple[tuple[tuple[str, str], ...], list[tuple[int, float]]]] = [
    (
        (("__name__", "pg_up"), ("instance", "orders-db"), ("job", "mm")),
        [(1_800_000_000_000, 1.0)],
    ),
    (
        (("DocDB", "docdb-1"), ("__name__", "mongo_cpu_utilization"), ("job", "mm")),
        [(1_799_999_820_000, 0.0), (1_799_999_880_000, -2.5), (1_799_999_940_000, 1e300)],
    ),
    ((("__name__", "x"), ("query", "SELECT 'ünï' FROM t WHERE a = $1")), [(1, 123456.789)]),
]


def test_the_hand_written_encoding_is_what_the_protobuf_runtime_reads() -> None:
    body = encode_write_request(SERIES)
    assert decode(body) == [(dict(labels), points) for labels, points in SERIES]


def protobuf_runtime_bytes(series: list[Any]) -> bytes:
    """What the protobuf runtime writes for ``series`` (labels, points) as a WriteRequest."""
    expected = WriteRequest()
    for labels, points in series:
        ts = expected.timeseries.add()
        for name, text in labels:
            ts.labels.add(name=name, value=text)
        for millis, number in points:
            ts.samples.add(value=number, timestamp=millis)
    written: bytes = expected.SerializeToString()
    return written


def test_byte_for_byte_what_the_protobuf_runtime_writes() -> None:
    """Without zero values (proto3 leaves those out, a reader takes them either way) the
    bytes are the library's own."""
    series = [SERIES[0], (SERIES[2][0], [(1_800_000_000_000, 7.25), (1_800_000_060_000, 8.0)])]
    assert encode_write_request(series) == protobuf_runtime_bytes(series)


def test_series_longer_than_the_table_of_lengths_byte_for_byte() -> None:
    """A series' length is looked up for most series (under 2,048 bytes) and encoded for
    longer ones: a long label value (one sample) and many samples (one label) both cross it."""
    series = [
        ((("__name__", "q"), ("query", "SELECT " + "x, " * 900)), [(1_800_000_000_000, 2.5)]),
        ((("__name__", "many"),), [(1_800_000_000_000 + i, float(i + 1)) for i in range(150)]),
        ((("__name__", "short"),), [(1_800_000_000_000, 3.0)]),
    ]
    assert encode_write_request(series) == protobuf_runtime_bytes(series)


def test_nan_and_negative_timestamps_survive() -> None:
    (labels, points) = decode(encode_write_request([((("__name__", "n"),), [(-5, math.nan)])]))[0]
    assert labels == {"__name__": "n"}
    assert points[0][0] == -5 and math.isnan(points[0][1])


def test_snappy_block_format_round_trip() -> None:
    body = encode_write_request(SERIES * 50)
    compressed = compress(body)
    assert len(compressed) < len(body) / 5  # labels repeat: snappy takes most of it away
    assert bytes(cramjam.snappy.decompress_raw(compressed)) == body


# --- series from a pass -------------------------------------------------------------------


def _pass() -> PassResult:
    up = GaugeMetricFamily("pg_up", "Up.", value=1)
    cpu = GaugeMetricFamily("pg_cpu_utilization", "CPU.", labels=[])
    for i, at in enumerate((NOW - 180, NOW - 120, NOW - 60)):
        cpu.add_metric([], 10.0 + i, timestamp=at)
    calls = CounterMetricFamily("pg_database_deadlocks", "Deadlocks.", labels=["database_name"])
    calls.add_metric(["app"], 3, created=NOW - 3600)
    # The target was read 2.5 s before the pass was sent: its own values carry that time.
    orders = TargetResult(
        "orders-db",
        [up, cpu, calls],
        [SourceOutcome("postgres", True, 0.1)],
        collected_at=NOW - 2.5,
    )
    return PassResult(
        [orders],
        0.1,
        TargetResult(
            "collector", [GaugeMetricFamily("middleware_pass_targets", "T.", value=1)], []
        ),
    )


# The labels the Pushgateway's grouping key gives (collector name, shard 0): every series.
GROUPING = (("collector", "collector"), ("job", "mm"), ("shard", "0"))


def labels(name: str, instance: str, *more: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((("__name__", name), ("instance", instance), *GROUPING, *more)))


def test_series_carry_job_collector_shard_instance_and_their_own_time() -> None:
    """CloudWatch points at their own times, a target's values at the time it was read,
    pass-wide values (no collection time of their own) at the time the pass is sent."""
    got = {s.labels: (s.points, s.stamped) for s in pass_series(_pass(), "mm", NOW)}
    now_ms = int(NOW * 1000)
    read_ms = now_ms - 2500
    assert got == {
        labels("pg_up", "orders-db"): ([(read_ms, 1.0)], False),
        labels("pg_cpu_utilization", "orders-db"): (
            [(now_ms - 180_000, 10.0), (now_ms - 120_000, 11.0), (now_ms - 60_000, 12.0)],
            True,
        ),
        # The counter's _created sample is not a value: left out.
        labels("pg_database_deadlocks_total", "orders-db", ("database_name", "app")): (
            [(read_ms, 3.0)],
            False,
        ),
        labels("middleware_pass_targets", "collector"): ([(now_ms, 1.0)], False),
    }


def test_each_shard_sends_its_own_series() -> None:
    result = _pass()
    result.shard = 2
    (collector,) = [
        s for s in pass_series(result, "mm", NOW) if ("instance", "collector") in s.labels
    ]
    assert dict(collector.labels)["shard"] == "2"


def test_a_timestamped_sample_already_sent_is_left_out() -> None:
    sent = SentTimestamps()
    key = ("pg_cpu_utilization", frozenset(labels("pg_cpu_utilization", "orders-db")))
    sent.mark([(key, NOW - 120)], NOW)
    cpu = [s for s in pass_series(_pass(), "mm", NOW, sent) if s.stamped]
    assert [s.points for s in cpu] == [[(int(NOW * 1000) - 60_000, 12.0)]]


def test_requests_hold_whole_series() -> None:
    series = [
        Series((("__name__", f"s{i}"),), [(t, 0.0) for t in range(n)], False)
        for i, n in enumerate([3, 3, 5, 1, 2])
    ]
    batches = requests_of(series, limit=6)
    assert [[s.labels[0][1] for s in batch] for batch in batches] == [
        ["s0", "s1"],
        ["s2", "s3"],
        ["s4"],
    ]
    # A series longer than the limit goes alone, whole.
    assert [len(b[0].points) for b in requests_of(series[2:3], limit=2)] == [5]


# --- sending ------------------------------------------------------------------------------


@dataclass
class Got:
    headers: dict[str, str]
    series: Decoded


@dataclass
class Receiver:
    url: str = ""
    # (status, body, headers) per request in turn; 204 once the script is done.
    script: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    received: list[Got] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            series = decode(bytes(cramjam.snappy.decompress_raw(body)))
            with state.lock:
                state.received.append(Got(dict(self.headers.items()), series))
                status, text, headers = state.script.pop(0) if state.script else (204, "", {})
            payload = text.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadedHttpServer(Handler) as server:
        state.url = f"http://127.0.0.1:{server.port}/api/v1/write"
        yield state


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_write, "RETRY_BACKOFF_SECONDS", 0.001)
    monkeypatch.setattr(sinks, "RETRY_BACKOFF_SECONDS", 0.001)


def settings(url: str | None, **overrides: Any) -> RemoteWriteSettings:
    values: dict[str, Any] = {
        "url": url,
        "sigv4_region": None,
        "secret_arn": None,
        "timeout_seconds": 2.0,
        "retries": 2,
    }
    values.update(overrides)
    return RemoteWriteSettings(**values)


def sink(url: str, **overrides: Any) -> RemoteWriteSink:
    return RemoteWriteSink(settings(url, **overrides), "mm", clock=lambda: NOW)


def names(got: Got) -> list[str]:
    return [labels["__name__"] for labels, _ in got.series]


HEALTH = {
    ("middleware_collector_up", "remote_write"),
    ("middleware_collector_duration_seconds", "remote_write"),
    ("middleware_remote_write_samples_sent", ""),
}


def health(got: Got) -> dict[tuple[str, str], float]:
    return {
        (labels["__name__"], labels.get("reason", labels.get("source", ""))): points[-1][1]
        for labels, points in got.series
        if labels["__name__"] != "middleware_collector_duration_seconds"
    }


def test_headers_of_remote_write_1_0(receiver: Receiver) -> None:
    sink(receiver.url).send(_pass())
    headers = receiver.received[0].headers
    assert (
        headers["Content-Encoding"],
        headers["Content-Type"],
        headers["X-Prometheus-Remote-Write-Version"],
    ) == ("snappy", "application/x-protobuf", "0.1.0")
    assert "Authorization" not in headers
    # The pass, then the sink's own health in the collector's group.
    assert len(receiver.received) == 2
    assert health(receiver.received[1]) == {
        ("middleware_collector_up", "remote_write"): 1.0,
        ("middleware_collector_last_success_timestamp_seconds", "remote_write"): NOW,
        ("middleware_remote_write_samples_sent", ""): 6.0,
        ("middleware_sink_points_dropped", ""): 0.0,
    }
    assert {labels["instance"] for labels, _ in receiver.received[1].series} == {"collector"}


def test_429_then_success_waits_and_sends_the_same_body(receiver: Receiver) -> None:
    receiver.script = [(429, "slow down", {"Retry-After": "0"})]
    sink(receiver.url).send(_pass())
    first, second, _ = receiver.received
    assert first.series == second.series
    assert sorted(names(first)) == [
        "middleware_pass_targets",
        "pg_cpu_utilization",
        "pg_database_deadlocks_total",
        "pg_up",
    ]


def recorded_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sink's pauses between attempts, recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(remote_write.time, "sleep", pauses.append)
    return pauses


def test_a_429_waits_what_retry_after_asks(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without Retry-After the pause would be the backoff (0.001 s here); the receiver asks
    # for 2 s, and then for 1.5 s on a 503.
    pauses = recorded_pauses(monkeypatch)
    receiver.script = [
        (429, "slow down", {"Retry-After": "2"}),
        (503, "ingester unavailable", {"Retry-After": "1.5"}),
    ]
    sink(receiver.url, retries=2).send(_pass())
    assert pauses == [2.0, 1.5]
    first, second, third, _ = receiver.received
    assert first.series == second.series == third.series


def test_a_retry_after_past_the_deadline_ends_the_attempts(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTP date a minute ahead: no attempt may start after the send's deadline (the
    reserve, 8 s here), so the sink gives up at once, throttled, rather than retrying
    early into the same refusal."""
    pauses = recorded_pauses(monkeypatch)
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    receiver.script = [(429, "slow down", {"Retry-After": later})]
    with pytest.raises(PushError) as caught:
        sink(receiver.url, retries=2).send(_pass())
    assert str(caught.value) == (
        f"remote write to {receiver.url} did not accept 6 of 6 samples: "
        "HTTP 429 Too Many Requests: slow down (1 request)"
    )
    assert pauses == []
    # One attempt, then the health request says why.
    assert len(receiver.received) == 2
    assert health(receiver.received[1]) == {
        ("middleware_collector_up", "remote_write"): 0.0,
        ("middleware_collector_failure", "throttled"): 1.0,
        ("middleware_remote_write_samples_sent", ""): 0.0,
        ("middleware_sink_points_dropped", ""): 0.0,
    }


def _newest_offered_again() -> PassResult:
    """A later pass on which CloudWatch was not due: only the newest point is offered."""
    cpu = GaugeMetricFamily("pg_cpu_utilization", "CPU.", labels=[])
    cpu.add_metric([], 12.0, timestamp=NOW - 60)
    up = GaugeMetricFamily("pg_up", "Up.", value=1)
    orders = TargetResult("orders-db", [up, cpu], [SourceOutcome("postgres", True, 0.1)])
    return PassResult([orders], 0.1, TargetResult("collector", [], []))


def cpu_points(got: Got) -> list[tuple[int, float]]:
    return {labels["__name__"]: points for labels, points in got.series}.get(
        "pg_cpu_utilization", []
    )


def test_points_of_a_refused_send_go_out_with_the_next_pass(receiver: Receiver) -> None:
    """CloudWatch hands each point to one pass; a point counts as delivered only once the
    receiver took it. Refused: the three points go out with the next pass, where CloudWatch
    offered only the newest; once accepted, not again."""
    receiver.script = [(503, "ingester unavailable", {})]
    rw = sink(receiver.url, retries=0)
    with pytest.raises(PushError):
        rw.send(_pass())
    rw.send(_newest_offered_again())
    rw.send(_newest_offered_again())
    refused, _, second, second_health, third, _ = receiver.received
    now_ms = int(NOW * 1000)
    assert (
        cpu_points(refused)
        == cpu_points(second)
        == [
            (now_ms - 180_000, 10.0),
            (now_ms - 120_000, 11.0),
            (now_ms - 60_000, 12.0),
        ]
    )
    assert cpu_points(third) == []
    assert health(second_health)[("middleware_sink_points_dropped", "")] == 0.0


def test_what_is_kept_is_bounded_and_the_drop_is_said(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resend, "MAX_KEPT_POINTS", 2)
    receiver.script = [(503, "ingester unavailable", {})]
    rw = sink(receiver.url, retries=0)
    with pytest.raises(PushError):
        rw.send(_pass())
    rw.send(_newest_offered_again())
    _, failed_health, second, second_health = receiver.received
    # Two kept, the oldest dropped and said so in the health request of the refused pass.
    assert health(failed_health)[("middleware_sink_points_dropped", "")] == 1.0
    now_ms = int(NOW * 1000)
    assert cpu_points(second) == [(now_ms - 120_000, 11.0), (now_ms - 60_000, 12.0)]
    assert health(second_health)[("middleware_sink_points_dropped", "")] == 0.0


def test_5xx_on_every_attempt(receiver: Receiver) -> None:
    receiver.script = [(503, "ingester unavailable", {})] * 3
    with pytest.raises(PushError) as caught:
        sink(receiver.url, retries=2).send(_pass())
    assert str(caught.value) == (
        f"remote write to {receiver.url} did not accept 6 of 6 samples: "
        "HTTP 503 Service Unavailable: ingester unavailable (1 request)"
    )
    # Three attempts, then the health request says why.
    assert len(receiver.received) == 4
    assert health(receiver.received[3]) == {
        ("middleware_collector_up", "remote_write"): 0.0,
        ("middleware_collector_failure", "server_error"): 1.0,
        ("middleware_remote_write_samples_sent", ""): 0.0,
        ("middleware_sink_points_dropped", ""): 0.0,
    }


def test_400_is_not_retried_and_its_body_is_named(receiver: Receiver) -> None:
    answer = 'invalid metric name "1bad"'
    receiver.script = [(400, answer, {})]
    with pytest.raises(PushError) as caught:
        sink(receiver.url).send(_pass())
    assert str(caught.value) == (
        f"remote write to {receiver.url} did not accept 6 of 6 samples: "
        f"HTTP 400 Bad Request: {answer} (1 request)"
    )
    assert len(receiver.received) == 2
    assert health(receiver.received[1]) == {
        ("middleware_collector_up", "remote_write"): 0.0,
        ("middleware_collector_failure", "rejected"): 1.0,
        ("middleware_remote_write_samples_sent", ""): 0.0,
        ("middleware_sink_points_dropped", ""): 0.0,
    }


def test_older_points_the_receiver_has_fall_back_to_the_newest(receiver: Receiver) -> None:
    """After a cold start the look-back's points may already be at the receiver (the previous
    instance sent them): Prometheus refuses the whole request for one of them."""
    receiver.script = [(400, "out of order sample", {})]
    sink(receiver.url).send(_pass())
    refused, newest, _ = receiver.received
    cpu = {labels["__name__"]: points for labels, points in newest.series}["pg_cpu_utilization"]
    assert cpu == [(int(NOW * 1000) - 60_000, 12.0)]
    assert len(refused.series) == len(newest.series)


def test_cloudwatch_values_offered_again_are_sent_once(receiver: Receiver) -> None:
    rw = sink(receiver.url)
    rw.send(_pass())
    rw.send(_pass())
    second_pass = receiver.received[2]
    # The CPU points went out with the first pass; the rest has no timestamp of its own and
    # is sent every pass (the counter as _total, its _created left out).
    assert sorted(names(second_pass)) == [
        "middleware_pass_targets",
        "pg_database_deadlocks_total",
        "pg_up",
    ]


def test_the_whole_send_ends_by_the_deadline_with_the_cause() -> None:
    with SilentServer() as silent:
        url = f"http://{silent.host}:{silent.port}/api/v1/write"
        started = time.monotonic()
        with pytest.raises(PushError) as caught:
            # 30 s timeouts, 3 attempts: 90 s without the deadline.
            sink(url, timeout_seconds=30.0, retries=2).send(_pass(), time.monotonic() + 1.0)
        took = time.monotonic() - started
    assert str(caught.value) == (
        f"remote write to {url} did not accept 6 of 6 samples: cannot reach the receiver: "
        "timed out (1 request); not sent: the push deadline came first (1 request)"
    )
    assert took < 10


def test_url_is_required() -> None:
    with pytest.raises(ConfigError) as caught:
        RemoteWriteSink(settings(None), "mm")
    assert caught.value.problems == [
        "REMOTE_WRITE_URL: is required with METRICS_SINK=remote_write (e.g. "
        "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-.../api/v1/remote_write)"
    ]


def test_reserve_is_one_request_with_its_retries_and_the_health_request() -> None:
    assert sink("http://x", timeout_seconds=2.0, retries=2).reserve_seconds() == (
        3 * 2.0 + 0.001 * 3 + 2.0
    )
