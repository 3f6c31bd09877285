"""Sinks: the Pushgateway sink against a small real HTTP server (status codes on demand),
and the text exposition used by stdout and pull mode."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from middleware_monitoring import sinks
from middleware_monitoring.config import ConfigError, PushgatewaySettings
from middleware_monitoring.model import PassResult, SourceOutcome, TargetResult
from middleware_monitoring.sinks import PushError, PushgatewaySink, StdoutSink, exposition
from tests.standins.http import ThreadedHttpServer


@dataclass
class Received:
    method: str
    path: str
    authorization: str | None
    body: str


@dataclass
class FakeGateway:
    """Answers each request with the next scripted (status, body); 200 once the script ends."""

    url: str
    script: list[tuple[int, str]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    state = FakeGateway(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            with state.lock:
                state.received.append(
                    Received("PUT", self.path, self.headers.get("Authorization"), body)
                )
                status, text = state.script.pop(0) if state.script else (200, "")
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadedHttpServer(Handler) as server:
        state.url = f"http://127.0.0.1:{server.port}"
        yield state


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks, "RETRY_BACKOFF_SECONDS", 0.001)


def settings(url: str | None, **overrides: object) -> PushgatewaySettings:
    values: dict[str, object] = {
        "url": url,
        "job": "mm",
        "username": None,
        "password": None,
        "timeout_seconds": 2.0,
        "retries": 2,
    }
    values.update(overrides)
    return PushgatewaySettings(**values)  # type: ignore[arg-type]


def one_target_pass(target: str = "db1") -> PassResult:
    up = GaugeMetricFamily("pg_up", "1 if the server answered.", value=1)
    sizes = GaugeMetricFamily("pg_database_size_bytes", "Size.", labels=["database_name"])
    sizes.add_metric(["app"], 8192)
    collector = TargetResult(
        "collector",
        [GaugeMetricFamily("middleware_pass_duration_seconds", "Pass.", value=0.25)],
        [],
    )
    return PassResult(
        [TargetResult(target, [up, sizes], [SourceOutcome("postgres", True, 0.1)])],
        0.25,
        collector,
    )


SampleKey = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[SampleKey, float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# What one_target_pass() must put, by path.
BODIES = {
    "/metrics/job/mm/instance/db1": {
        ("pg_up", frozenset()): 1.0,
        ("pg_database_size_bytes", frozenset({("database_name", "app")})): 8192.0,
    },
    "/metrics/job/mm/instance/collector": {("middleware_pass_duration_seconds", frozenset()): 0.25},
}


def test_puts_each_group_under_its_own_grouping_key(gateway: FakeGateway) -> None:
    PushgatewaySink(settings(gateway.url)).send(one_target_pass())
    by_path = {r.path: r for r in gateway.received}
    assert sorted(by_path) == ["/metrics/job/mm/instance/collector", "/metrics/job/mm/instance/db1"]
    assert {r.method for r in gateway.received} == {"PUT"}
    assert {path: parse(r.body) for path, r in by_path.items()} == BODIES
    assert {r.authorization for r in gateway.received} == {None}


def test_retries_5xx_then_succeeds(gateway: FakeGateway) -> None:
    gateway.script = [(503, "busy"), (502, "bad gateway")]
    PushgatewaySink(settings(gateway.url, retries=2)).send(one_target_pass())
    # Two groups; the first two answers were errors, each followed by a retry.
    answers = [503, 502, 200, 200]  # in the order the gateway received the requests
    assert len(gateway.received) == len(answers)
    tries: dict[str, list[tuple[int, dict[SampleKey, float]]]] = {}
    for request, status in zip(gateway.received, answers, strict=True):
        tries.setdefault(request.path, []).append((status, parse(request.body)))
    # Every attempt of a group carried the same body, and its last one was accepted.
    assert {path: [body for _, body in t] for path, t in tries.items()} == {
        path: [BODIES[path]] * len(t) for path, t in tries.items()
    }
    assert sorted(tries) == sorted(BODIES)
    assert {path: t[-1][0] for path, t in tries.items()} == dict.fromkeys(BODIES, 200)


def test_5xx_on_every_attempt_fails_after_the_retries(gateway: FakeGateway) -> None:
    gateway.script = [(503, "down for maintenance")] * 3
    single = PassResult([], 0.0, TargetResult("collector", [], []))
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(gateway.url, retries=2)).send(single)
    assert len(gateway.received) == 3
    assert str(caught.value) == (
        f"Pushgateway {gateway.url} did not accept 1 of 1 groups: "
        "HTTP 503 Service Unavailable: down for maintenance (collector)"
    )


def test_4xx_is_not_retried_and_says_why(gateway: FakeGateway) -> None:
    reason = "pushed metrics are invalid or inconsistent with existing metrics"
    gateway.script = [(400, reason), (400, reason)]
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(gateway.url, retries=2)).send(one_target_pass())
    assert len(gateway.received) == 2  # one attempt per group, no retry
    assert str(caught.value) == (
        f"Pushgateway {gateway.url} did not accept 2 of 2 groups: "
        f"HTTP 400 Bad Request: {reason} (db1, collector)"
    )


def test_unreachable_gateway() -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()
    single = PassResult([], 0.0, TargetResult("collector", [], []))
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(url, retries=1)).send(single)
    assert str(caught.value) == (
        f"Pushgateway {url} did not accept 1 of 1 groups: "
        "cannot reach the Pushgateway: [Errno 111] Connection refused (collector)"
    )


def test_basic_auth_header_sent(gateway: FakeGateway) -> None:
    sink = PushgatewaySink(settings(gateway.url, username="pusher", password="push-pw:x"))
    sink.send(one_target_pass())
    expected = "Basic " + base64.b64encode(b"pusher:push-pw:x").decode()
    assert [r.authorization for r in gateway.received] == [expected, expected]


def test_partial_failure_names_only_the_failed_group(gateway: FakeGateway) -> None:
    gateway.script = [(200, ""), (404, "not found")]
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(gateway.url, retries=0)).send(one_target_pass())
    # Which group got which answer depends on thread timing; exactly one failed.
    assert str(caught.value) in {
        f"Pushgateway {gateway.url} did not accept 1 of 2 groups: HTTP 404 Not Found: "
        f"not found ({group})"
        for group in ("db1", "collector")
    }


def test_push_without_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        PushgatewaySink(settings(None))
    assert caught.value.problems == [
        "PUSHGATEWAY_URL: is required to push (e.g. http://pushgateway:9091)"
    ]


def test_exposition_labels_each_series_with_its_instance() -> None:
    first = one_target_pass("db1")
    second = one_target_pass("db2")
    down = GaugeMetricFamily("pg_up", "1 if the server answered.", value=0)
    merged = PassResult(
        [first.targets[0], TargetResult("db2", [down], [SourceOutcome("postgres", False, 0.2)])],
        0.3,
        second.collector,
    )
    written: list[bytes] = []
    StdoutSink(written.append).send(merged)
    assert written == [exposition(merged)]
    assert parse(written[0].decode()) == {
        ("pg_up", frozenset({("instance", "db1")})): 1.0,
        ("pg_up", frozenset({("instance", "db2")})): 0.0,
        (
            "pg_database_size_bytes",
            frozenset({("instance", "db1"), ("database_name", "app")}),
        ): 8192.0,
        ("middleware_pass_duration_seconds", frozenset({("instance", "collector")})): 0.25,
    }
    # One HELP/TYPE per family even though two targets share it.
    assert written[0].decode().count("# TYPE pg_up gauge") == 1


def test_the_whole_push_shares_one_deadline_against_a_black_hole() -> None:
    """30 groups against a gateway that accepts and never answers, with 30 s timeouts and two
    retries (90 s per group, over 5 minutes with 8 workers): the push ends with the deadline
    and names the cause and the groups it could not finish."""
    from tests.standins.silent import SilentServer

    groups = [TargetResult(f"db{i:02}", [], []) for i in range(29)]
    many = PassResult(groups, 0.0, TargetResult("collector", [], []))
    with SilentServer() as silent:
        url = f"http://{silent.host}:{silent.port}"
        sink = PushgatewaySink(settings(url, timeout_seconds=30.0, retries=2))
        started = time.monotonic()
        with pytest.raises(PushError) as caught:
            sink.send(many, time.monotonic() + 1.0)
        took = time.monotonic() - started
    message = str(caught.value)
    # The first 8 groups waited for an answer until the deadline; the others never started.
    assert message == (
        f"Pushgateway {url} did not accept 30 of 30 groups: TimeoutError: timed out "
        "(db00, db01, db02, db03, db04, db05, db06, db07); "
        "not sent: the push deadline came first "
        "(db08, db09, db10, db11, db12, db13, db14, db15, db16, db17 and 12 more)"
    )
    assert took < 10


def test_pushgateway_gets_each_series_once_without_timestamps(gateway: FakeGateway) -> None:
    """CloudWatch points carry their own time, several per series when a query brought every
    point since the last one: the Pushgateway refuses timestamps and takes one value per
    series, the newest."""
    cpu = GaugeMetricFamily("pg_cpu_utilization", "CPU.", labels=[])
    for at, value in ((1_800_000_060.0, 12.0), (1_800_000_000.0, 11.0)):
        cpu.add_metric([], value, timestamp=at)
    result = PassResult(
        [TargetResult("db1", [cpu], [SourceOutcome("cloudwatch", True, 0.1)])],
        0.1,
        TargetResult("collector", [], []),
    )
    PushgatewaySink(settings(gateway.url)).send(result)
    (db1,) = [r for r in gateway.received if r.path.endswith("/db1")]
    assert [line for line in db1.body.splitlines() if not line.startswith("#")] == [
        "pg_cpu_utilization 12.0"
    ]


def test_the_reserve_grows_to_twice_the_last_push(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fleet's many groups take longer than one group's worst case when the gateway is
    merely slow: after a push that took T the reserve is 2 T when that is more."""
    delay = 0.6  # each PUT, below the 1 s request timeout
    received: list[str] = []

    class Slow(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(self.path)
            time.sleep(delay)  # a slow Pushgateway, not a wait for a condition
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadedHttpServer(Slow) as server:
        sink = PushgatewaySink(
            settings(f"http://127.0.0.1:{server.port}", timeout_seconds=1.0, retries=0)
        )
        assert sink.reserve_seconds() == 1.0  # one attempt of one group, nothing pushed yet
        started = time.monotonic()
        sink.send(one_target_pass())
        took = time.monotonic() - started
    assert sorted(received) == sorted(BODIES)
    # The push took at least one delayed PUT and at most what the test saw around it.
    assert 2 * delay <= sink.reserve_seconds() <= 2 * took


def test_each_sink_says_what_time_it_needs() -> None:
    from middleware_monitoring.emf import EmfSink

    pushgateway = PushgatewaySink(settings("http://gw:9091", timeout_seconds=5.0, retries=2))
    # One group's three attempts timing out plus the backoff between them (0.001 s here).
    assert pushgateway.reserve_seconds() == 3 * 5.0 + 0.001 * 3
    # Printing needs no network time.
    assert EmfSink("NS").reserve_seconds() == 1.0
    assert StdoutSink(lambda _: None).reserve_seconds() == 1.0
