"""Remote-write faults, for real over HTTP in front of a real Prometheus receiver: the receiver
down, a 429 then success, a 400 with a body, a receiver slower than the deadline. The push is
what fails, so the invocation fails within its deadline and names the cause; once the
receiver is healthy the next invocation's values are in Prometheus."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

import pytest

from middleware_monitoring.sinks import PushError
from tests.faults.conftest import DOCDB_HEALTHY, Row, docdb_info
from tests.faults.harness import DOCDB_EXACT, Invocation, LambdaFunction
from tests.faults.injectors import HttpAnswer, HttpFault, TcpFault
from tests.standins.docdb import DocDBServer
from tests.standins.prometheus import Prometheus

Make = Callable[[Mapping[str, str]], LambdaFunction]
UPTIME = DOCDB_EXACT[("mongo_uptime_seconds", frozenset())]
# A pass's samples: the DocumentDB target's serverStatus values and its currentOp's
# mongo_oldest_op_seconds (0: nothing runs on the stand-in), its own health (up, duration,
# last success of the source and of the target) and the pass-wide duration, timestamp,
# targets up/down and middleware_series_sent.
PASS_SAMPLES = len(DOCDB_EXACT) + 1 + 4 + 5


@pytest.fixture
def receiver_fault(remote_write_receiver: Prometheus) -> Iterator[HttpFault]:
    with HttpFault(remote_write_receiver.url) as fault:
        yield fault


def environ(docdb: DocDBServer, url: str, job: str, **extra: str) -> dict[str, str]:
    return {
        "MONGO_INFO": json.dumps([docdb_info(docdb, DOCDB_HEALTHY)]),
        "METRICS_SINK": "remote_write",
        "REMOTE_WRITE_URL": url,
        "PUSHGATEWAY_JOB": job,
        "REMOTE_WRITE_TIMEOUT_SECONDS": "1",
        "REMOTE_WRITE_RETRIES": "1",
        **extra,
    }


def arrived(prom: Prometheus, job: str) -> float:
    """The DocumentDB target's uptime as the receiver has it (waits for it to be queryable)."""
    result = prom.wait_for(f'mongo_uptime_seconds{{job="{job}",instance="{DOCDB_HEALTHY}"}}')
    return float(result[0]["value"][1])


def describe(inv: Invocation, cause: str) -> str:
    error = inv.error
    return (
        f"raised {type(error).__name__ if error else 'nothing'}"
        + (f" ({cause} named)" if error and cause in str(error) else f" ({cause} NOT named)")
        + f"; {inv.seconds:.1f}s of {inv.deadline_seconds:.0f}s"
    )


def check_failed(inv: Invocation, url: str, causes: str) -> None:
    """The push failed with every sample of the pass lost, for ``causes``, in time."""
    assert isinstance(inv.error, PushError), inv.error
    assert str(inv.error) == (
        f"remote write to {url} did not accept {PASS_SAMPLES} of {PASS_SAMPLES} samples: {causes}"
    )
    assert inv.seconds < inv.deadline_seconds


def test_receiver_down(
    row: Row, healthy_docdb, remote_write_receiver: Prometheus, job, function: Make
) -> None:
    row.fault = "remote-write receiver down (connection refused)"
    row.expected = "invocation raises PushError naming the cause; next one delivers"
    prom = remote_write_receiver
    with TcpFault(prom.host, prom.port) as gate:
        url = f"http://127.0.0.1:{gate.port}/api/v1/write"
        fn = function(environ(healthy_docdb, url, job))
        gate.set("refused")
        failed = fn.invoke()
        gate.set("forward")
        recovered = fn.invoke()
    row.observed = describe(failed, "Connection refused") + (
        "; next pass delivered" if recovered.error is None else "; next pass failed"
    )
    # The pass's request and the health request after it, each refused on both attempts.
    check_failed(
        failed, url, "cannot reach the receiver: [Errno 111] Connection refused (2 requests)"
    )
    assert recovered.error is None
    assert arrived(prom, job) == UPTIME


def test_429_then_success(
    row: Row,
    healthy_docdb,
    remote_write_receiver: Prometheus,
    receiver_fault: HttpFault,
    job,
    function: Make,
) -> None:
    row.fault = "remote-write receiver answers 429 once"
    row.expected = "retried after backoff; the pass is delivered; invocation succeeds"
    fn = function(environ(healthy_docdb, receiver_fault.url + "/api/v1/write", job))
    receiver_fault.script = [HttpAnswer(429, message="too many requests, slow down")]
    before = receiver_fault.requests
    inv = fn.invoke()
    requests = receiver_fault.requests - before
    row.observed = (
        f"{'succeeded' if inv.error is None else 'raised ' + type(inv.error).__name__}; "
        f"{requests} requests (pass twice, health once)"
    )
    assert inv.error is None
    assert requests == 3
    assert arrived(remote_write_receiver, job) == UPTIME


def test_400_with_a_body(
    row: Row, healthy_docdb, receiver_fault: HttpFault, job, function: Make
) -> None:
    row.fault = "remote-write receiver answers 400 with a reason"
    row.expected = "not retried; PushError names the 400 and its body"
    reason = 'invalid metric name: "9lives"'
    url = receiver_fault.url + "/api/v1/write"
    fn = function(environ(healthy_docdb, url, job))
    receiver_fault.answer = HttpAnswer(400, message=reason)
    before = receiver_fault.requests
    try:
        inv = fn.invoke()
    finally:
        receiver_fault.heal()
    requests = receiver_fault.requests - before
    row.observed = describe(inv, reason) + f"; {requests} requests (pass, health)"
    # The health request after the pass's gets the same answer.
    check_failed(inv, url, f"HTTP 400 Bad Request: {reason} (2 requests)")
    assert requests == 2


def test_slow_receiver_against_the_deadline(
    row: Row, healthy_docdb, receiver_fault: HttpFault, job, function: Make
) -> None:
    row.fault = "remote-write receiver slower than the time left (8 s invocation)"
    row.expected = "requests cut by the deadline; PushError says timed out; within the deadline"
    # 20 s per request, 3 attempts: a minute without the shared deadline.
    url = receiver_fault.url + "/api/v1/write"
    fn = function(
        environ(
            healthy_docdb,
            url,
            job,
            REMOTE_WRITE_TIMEOUT_SECONDS="20",
            REMOTE_WRITE_RETRIES="2",
        )
    )
    receiver_fault.delay_seconds = 30.0
    try:
        inv = fn.invoke(8000)
    finally:
        receiver_fault.heal()
    row.observed = describe(inv, "timed out")
    # The pass's request is cut by the deadline, which leaves no time for the health request.
    check_failed(
        inv,
        url,
        "cannot reach the receiver: timed out (1 request); "
        "not sent: the push deadline came first (1 request)",
    )
