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
    # Sent in pieces (Transfer-Encoding: chunked) rather than with its length.
    chunked: bool = False


def read_body(handler: BaseHTTPRequestHandler) -> tuple[bytes, bool]:
    """The request's body, with its length or in chunks (as a Go server reads either)."""
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return handler.rfile.read(int(handler.headers.get("Content-Length", "0"))), False
    body = bytearray()
    while True:
        size = int(handler.rfile.readline().split(b";")[0], 16)
        if size == 0:
            handler.rfile.readline()  # the empty line after the last chunk
            return bytes(body), True
        body += handler.rfile.read(size)
        handler.rfile.readline()


@dataclass
class FakeGateway:
    """Answers each request with the next scripted (status, body); 200 once the script ends."""

    url: str
    script: list[tuple[int, str]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Answer a chunked body 411 Length Required, as some proxies do.
    refuse_chunked: bool = False


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    state = FakeGateway(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body, chunked = read_body(self)
            with state.lock:
                state.received.append(
                    Received(
                        "PUT", self.path, self.headers.get("Authorization"), body.decode(), chunked
                    )
                )
                status, text = state.script.pop(0) if state.script else (200, "")
                if chunked and state.refuse_chunked:
                    status, text = 411, "Length Required"
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


GROUP = "/metrics/job/mm/collector/collector/shard/0"
# What one_target_pass() must put: the whole pass, each series with its own instance.
BODY = {
    ("pg_up", frozenset({("instance", "db1")})): 1.0,
    ("pg_database_size_bytes", frozenset({("database_name", "app"), ("instance", "db1")})): 8192.0,
    ("middleware_pass_duration_seconds", frozenset({("instance", "collector")})): 0.25,
}


def test_puts_the_whole_pass_as_one_group_of_collector_and_shard(gateway: FakeGateway) -> None:
    PushgatewaySink(settings(gateway.url)).send(one_target_pass())
    assert [(r.method, r.path) for r in gateway.received] == [("PUT", GROUP)]
    assert parse(gateway.received[0].body) == BODY
    assert gateway.received[0].authorization is None


def test_a_shard_puts_its_own_group(gateway: FakeGateway) -> None:
    result = one_target_pass()
    result.shard = 3
    result.collector.target = "eu/prod"  # a '/' goes base64-encoded, as the API spells it
    PushgatewaySink(settings(gateway.url)).send(result)
    assert [r.path for r in gateway.received] == [
        "/metrics/job/mm/collector@base64/ZXUvcHJvZA==/shard/3"
    ]


def test_retries_5xx_then_succeeds(gateway: FakeGateway) -> None:
    gateway.script = [(503, "busy"), (502, "bad gateway")]
    PushgatewaySink(settings(gateway.url, retries=2)).send(one_target_pass())
    # The first two answers were errors, each followed by a retry with the same body.
    assert [r.path for r in gateway.received] == [GROUP] * 3
    assert [parse(r.body) for r in gateway.received] == [BODY] * 3


def a_larger_pass(targets: int = 6) -> PassResult:
    groups = []
    for t in range(targets):
        sizes = GaugeMetricFamily("pg_database_size_bytes", "Size.", labels=["database_name"])
        for d in range(5):
            sizes.add_metric([f"app{d}"], 1000.0 * t + d)
        up = GaugeMetricFamily("pg_up", "1 if the server answered.", value=1)
        groups.append(TargetResult(f"db{t}", [up, sizes], []))
    return PassResult(groups, 0.1, TargetResult("collector", [], []))


def test_a_pass_larger_than_a_piece_goes_in_pieces_as_it_is_written(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large pass is sent while it is written, in pieces of whole family blocks; the body
    the Pushgateway reads is the exposition's, byte for byte. A small one keeps its length."""
    monkeypatch.setattr(sinks, "PUSH_PIECE_BYTES", 100)
    result = a_larger_pass()
    PushgatewaySink(settings(gateway.url)).send(result)
    (pushed,) = gateway.received
    assert pushed.chunked
    assert pushed.body == exposition(result).decode()
    monkeypatch.setattr(sinks, "PUSH_PIECE_BYTES", 1 << 18)
    PushgatewaySink(settings(gateway.url)).send(result)
    assert not gateway.received[1].chunked
    assert gateway.received[1].body == pushed.body


def test_a_retry_sends_every_piece_again(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sinks, "PUSH_PIECE_BYTES", 100)
    gateway.script = [(503, "busy")]
    result = a_larger_pass()
    PushgatewaySink(settings(gateway.url, retries=1)).send(result)
    assert [(r.chunked, r.body) for r in gateway.received] == [
        (True, exposition(result).decode())
    ] * 2


def test_a_proxy_that_wants_the_length_gets_the_whole_body_at_once(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP 411 to a body in pieces: sent again whole, with its length, without taking one
    of the retries (there are none here)."""
    monkeypatch.setattr(sinks, "PUSH_PIECE_BYTES", 100)
    gateway.refuse_chunked = True
    result = a_larger_pass()
    PushgatewaySink(settings(gateway.url, retries=0)).send(result)
    assert [(r.chunked, r.body) for r in gateway.received] == [
        (True, exposition(result).decode()),
        (False, exposition(result).decode()),
    ]


def test_a_body_sent_in_pieces_is_named_by_its_line_when_refused(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sinks, "PUSH_PIECE_BYTES", 100)
    gateway.script = [(400, "text format parsing error in line 9: expected float as value")]
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(gateway.url, retries=0)).send(a_larger_pass())
    assert gateway.received[0].chunked
    # pg_up of the six targets after its HELP and TYPE, then the sizes' HELP (line 9).
    assert gateway.received[0].body.splitlines()[8] == "# HELP pg_database_size_bytes Size."
    assert str(caught.value).endswith(
        "HTTP 400 Bad Request: text format parsing error in line 9: expected float as value "
        "(pushed line 9: # HELP pg_database_size_bytes Size.)"
    )


def test_5xx_on_every_attempt_fails_after_the_retries(gateway: FakeGateway) -> None:
    gateway.script = [(503, "down for maintenance")] * 3
    single = PassResult([], 0.0, TargetResult("collector", [], []))
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(gateway.url, retries=2)).send(single)
    assert len(gateway.received) == 3
    assert str(caught.value) == (
        f"Pushgateway {gateway.url}{GROUP} did not accept the pass (0 series of 0 targets): "
        "HTTP 503 Service Unavailable: down for maintenance"
    )


# What a Pushgateway 1.5 answers for a series of the pass that clashes with what it holds.
CLASH = (
    "pushed metrics are invalid or inconsistent with existing metrics: collected metric "
    '"pg_up" { label:<name:"collector" value:"collector" > label:<name:"instance" '
    'value:"db1" > label:<name:"job" value:"mm" > label:<name:"shard" value:"0" > '
    "counter:<value:1 > } is not a GAUGE"
)


def test_a_rejected_push_names_the_series_and_the_reason_and_is_not_retried(
    gateway: FakeGateway,
) -> None:
    gateway.script = [(400, CLASH)]
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(gateway.url, retries=2)).send(one_target_pass())
    assert len(gateway.received) == 1
    assert str(caught.value) == (
        f"Pushgateway {gateway.url}{GROUP} did not accept the pass (3 series of 1 targets): "
        'HTTP 400 Bad Request: series pg_up{collector="collector",instance="db1",job="mm",'
        'shard="0"} is not a GAUGE (pushed metrics are invalid or inconsistent with '
        "existing metrics)"
    )


def test_several_refused_series_name_the_first_and_count_the_others(
    gateway: FakeGateway,
) -> None:
    first = (
        'collected metric "pg_query_calls_total" { label:<name:"instance" value:"db1" > '
        'label:<name:"queryid" value:"7" > counter:<value:3 > } was collected before with '
        "the same name and label values"
    )
    second = first.replace('value:"7"', 'value:"8"')
    gateway.script = [
        (
            400,
            "pushed metrics are invalid or inconsistent with existing metrics: 2 error(s) "
            f"occurred:\n* {first}\n* {second}\n",
        )
    ]
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(gateway.url, retries=0)).send(one_target_pass())
    assert str(caught.value).endswith(
        'HTTP 400 Bad Request: series pg_query_calls_total{instance="db1",queryid="7"} was '
        "collected before with the same name and label values (and 1 more) (pushed metrics "
        "are invalid or inconsistent with existing metrics)"
    )


def test_a_body_the_gateway_cannot_parse_is_named_by_its_line(gateway: FakeGateway) -> None:
    gateway.script = [(400, "text format parsing error in line 3: expected float as value")]
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(gateway.url, retries=0)).send(one_target_pass())
    body = gateway.received[0].body.splitlines()
    assert body[2] == 'pg_up{instance="db1"} 1.0'
    assert str(caught.value).endswith(
        "HTTP 400 Bad Request: text format parsing error in line 3: expected float as value "
        '(pushed line 3: pg_up{instance="db1"} 1.0)'
    )


def test_unreachable_gateway() -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()
    single = PassResult([], 0.0, TargetResult("collector", [], []))
    with pytest.raises(PushError) as caught:
        PushgatewaySink(settings(url, retries=1)).send(single)
    assert str(caught.value) == (
        f"Pushgateway {url}{GROUP} did not accept the pass (0 series of 0 targets): "
        "cannot reach the Pushgateway: [Errno 111] Connection refused"
    )


def test_basic_auth_header_sent(gateway: FakeGateway) -> None:
    sink = PushgatewaySink(settings(gateway.url, username="pusher", password="push-pw:x"))
    sink.send(one_target_pass())
    expected = "Basic " + base64.b64encode(b"pusher:push-pw:x").decode()
    assert [r.authorization for r in gateway.received] == [expected]


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


def test_the_push_ends_by_its_deadline_against_a_black_hole() -> None:
    """A gateway that accepts and never answers, with 30 s timeouts and two retries (90 s):
    the push ends with the deadline and names the cause."""
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
    assert str(caught.value) == (
        f"Pushgateway {url}{GROUP} did not accept the pass (0 series of 29 targets): "
        "TimeoutError: timed out"
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
    (pushed,) = gateway.received
    assert [line for line in pushed.body.splitlines() if not line.startswith("#")] == [
        'pg_cpu_utilization{instance="db1"} 12.0'
    ]


def test_the_reserve_grows_to_twice_the_last_push(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fleet's pass in one PUT may take longer than one request's worst case when the
    gateway is merely slow: after a push that took T the reserve is 2 T when that is more."""
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
        assert sink.reserve_seconds() == 1.0  # one attempt of the PUT, nothing pushed yet
        started = time.monotonic()
        sink.send(one_target_pass())
        took = time.monotonic() - started
    assert received == [GROUP]
    # The push took at least one delayed PUT and at most what the test saw around it.
    assert 2 * delay <= sink.reserve_seconds() <= 2 * took


def test_each_sink_says_what_time_it_needs() -> None:
    from middleware_monitoring.emf import EmfSink

    pushgateway = PushgatewaySink(settings("http://gw:9091", timeout_seconds=5.0, retries=2))
    # The PUT's three attempts timing out plus the backoff between them (0.001 s here).
    assert pushgateway.reserve_seconds() == 3 * 5.0 + 0.001 * 3
    # Printing needs no network time.
    assert EmfSink("NS").reserve_seconds() == 1.0
    assert StdoutSink(lambda _: None).reserve_seconds() == 1.0
