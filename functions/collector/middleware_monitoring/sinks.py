"""Where a pass goes: a Prometheus Pushgateway, or text exposition for people and pull mode.

Every sink is bounded by a deadline (a ``time.monotonic()`` value) shared by all its requests
and retries, and says how much time it needs kept back from collection (``reserve_seconds``).
Samples may carry their own timestamps (CloudWatch datapoints, several per series when a
query fetched every point since the last one sent): sinks that cannot send timestamps (the
Pushgateway refuses them, text exposition is read as "now") send each series' newest value.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Final, Protocol
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from prometheus_client import CollectorRegistry, Metric, generate_latest, push_to_gateway
from prometheus_client.samples import Sample

from .config import ConfigError, PushgatewaySettings
from .http_answers import basic_authorization, describe_pushgateway_failure
from .model import FrozenFamilies, PassResult, TargetResult, with_instance_label

logger = logging.getLogger(__name__)

PUSH_WORKERS = 8
RETRY_BACKOFF_SECONDS = 0.5
# Printing a pass (stdout, EMF) needs no network: a second covers formatting a large fleet.
PRINT_RESERVE_SECONDS: Final = 1.0
# Groups named per cause in a PushError; the rest are counted.
NAMED_GROUPS: Final = 10
DEADLINE_CAUSE: Final = "not sent: the push deadline came first"


def worst_case_seconds(retries: int, timeout_seconds: float) -> float:
    """How long one request may take with every attempt timing out and the backoff between
    them (RETRY_BACKOFF_SECONDS, doubling)."""
    backoff = RETRY_BACKOFF_SECONDS * ((1 << retries) - 1)
    return (retries + 1) * timeout_seconds + backoff


def push_worst_case_seconds(settings: PushgatewaySettings) -> float:
    """How long a push may take with every attempt timing out: what a pass keeps back."""
    return worst_case_seconds(settings.retries, settings.timeout_seconds)


class PushError(Exception):
    """The sink did not accept (all of) the pass."""


class Sink(Protocol):
    def send(self, result: PassResult, deadline: float | None = None) -> None:
        """Send the pass, returning by ``deadline`` (a ``time.monotonic()`` value; None: the
        sink's own ``reserve_seconds`` from now). Raises ``PushError`` naming what was not
        accepted and why."""
        ...

    def reserve_seconds(self) -> float:
        """Time to keep back from collection for ``send`` in the worst case it plans for."""
        ...


def deadline_or_reserve(deadline: float | None, reserve_seconds: float) -> float:
    return deadline if deadline is not None else time.monotonic() + reserve_seconds


def newest_only(families: Iterable[Metric]) -> list[Metric]:
    """Each series once, with its newest value and no timestamp: what the Pushgateway and the
    text exposition can carry. Series keep the order of their first sample."""
    out: list[Metric] = []
    for family in families:
        newest: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            kept = newest.get(key)
            if kept is None or _time_of(sample) >= _time_of(kept):
                newest[key] = sample
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [
            Sample(s.name, s.labels, s.value, None, s.exemplar) for s in newest.values()
        ]
        out.append(copy)
    return out


def _time_of(sample: Sample) -> float:
    # A sample without a timestamp is "now": newer than any datapoint fetched earlier.
    return math.inf if sample.timestamp is None else float(sample.timestamp)


def exposition(result: PassResult) -> bytes:
    """The pass as Prometheus text, each series labelled with its target's ``instance``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrozenFamilies(newest_only(with_instance_label(result.groups()))))
    return generate_latest(registry)


class StdoutSink:
    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write

    def send(self, result: PassResult, deadline: float | None = None) -> None:
        self._write(exposition(result))

    def reserve_seconds(self) -> float:
        return PRINT_RESERVE_SECONDS


SeriesKey = tuple[str, frozenset[tuple[str, str]]]


class SentTimestamps:
    """The newest timestamp sent per series, for sinks that send samples with their own
    timestamps (remote write, EMF). A CloudWatch value is offered again on every pass until a
    newer datapoint replaces it (the Pushgateway needs it in each group it replaces): sent
    once is enough, and a remote-write receiver refuses a sample older than one it has."""

    # Series not sent for this long are forgotten (their metric or target went away).
    FORGET_AFTER_SECONDS: Final = 6 * 3600

    def __init__(self) -> None:
        self._newest: dict[SeriesKey, float] = {}
        self._lock = threading.Lock()

    def is_new(self, key: SeriesKey, timestamp: float) -> bool:
        with self._lock:
            sent = self._newest.get(key)
        return sent is None or timestamp > sent

    def mark(self, sent: Iterable[tuple[SeriesKey, float]], now: float) -> None:
        with self._lock:
            for key, timestamp in sent:
                if timestamp > self._newest.get(key, -math.inf):
                    self._newest[key] = timestamp
            horizon = now - self.FORGET_AFTER_SECONDS
            for key in [k for k, t in self._newest.items() if t < horizon]:
                del self._newest[key]


def _request(
    url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
) -> None:
    """One PUT; a status >= 400 raises HTTPError. prometheus_client's own handler builds a
    new urllib opener per push, and every new opener makes a TLS context that loads the
    system CA store (17 ms, GIL held, so parallel pushes queue behind it): most of a warm
    invocation's time (bench/RESULTS.md). ``urlopen`` reuses one opener per process."""
    request = Request(url, data=data, method=method)
    for name, value in headers:
        request.add_header(name, value)
    with urlopen(request, timeout=timeout) as response:
        response.read()


class PushgatewaySink:
    """PUTs each target as its own group {job, instance}, so a pass replaces that target's
    previous values and a series that disappeared does not linger. Connection errors and
    5xx answers are retried with backoff; a 4xx is the caller's mistake and is not. Every
    request and retry of every group shares one deadline: each request's timeout is the
    smaller of PUSHGATEWAY_TIMEOUT_SECONDS and the time left, and no attempt starts after it."""

    def __init__(self, settings: PushgatewaySettings) -> None:
        if settings.url is None:
            raise ConfigError(
                ["PUSHGATEWAY_URL: is required to push (e.g. http://pushgateway:9091)"]
            )
        self._settings = settings
        self._url: str = settings.url
        # How long the last push that went through took: a fleet's hundreds of groups need
        # more than one group's worst case when the gateway is merely slow.
        self._last_push_seconds = 0.0

    def reserve_seconds(self) -> float:
        """One group's attempts all timing out, or twice what the last push took when that
        is more. Groups go out PUSH_WORKERS at a time under the shared deadline, so with a
        black-holed gateway and many groups the push ends at the deadline with the groups
        it did not finish named."""
        return max(push_worst_case_seconds(self._settings), 2 * self._last_push_seconds)

    def _handler(self, deadline: float) -> Callable[..., Callable[[], None]]:
        settings = self._settings

        def handler(
            url: str,
            method: str,
            timeout: float | None,
            headers: list[tuple[str, str]],
            data: bytes,
        ) -> Callable[[], None]:
            sent_headers = list(headers)
            if settings.username:
                sent_headers.append(
                    ("Authorization", basic_authorization(settings.username, settings.password))
                )

            def send() -> None:
                for attempt in range(settings.retries + 1):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise _DeadlineReached()
                    try:
                        _request(url, method, min(timeout or left, left), sent_headers, data)
                        return
                    except HTTPError as exc:
                        if exc.code < 500 or attempt == settings.retries:
                            raise
                        last: Exception = exc
                    except (URLError, OSError) as exc:
                        if attempt == settings.retries:
                            raise
                        last = exc
                    pause = RETRY_BACKOFF_SECONDS * 2**attempt
                    if time.monotonic() + pause >= deadline:
                        # No time for another attempt: the last error is the cause.
                        raise last
                    time.sleep(pause)

            return send

        return handler

    def _push(self, result: TargetResult, deadline: float) -> str | None:
        """None when accepted, else the cause (no target name: ``send`` groups by cause)."""
        if time.monotonic() >= deadline:
            return DEADLINE_CAUSE
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FrozenFamilies(newest_only(result.families)))
        try:
            push_to_gateway(
                self._url,
                job=self._settings.job,
                registry=registry,
                grouping_key={"instance": result.target},
                timeout=self._settings.timeout_seconds,
                handler=self._handler(deadline),
            )
        except _DeadlineReached:
            return DEADLINE_CAUSE
        except Exception as exc:
            return describe_pushgateway_failure(exc)
        return None

    def send(self, result: PassResult, deadline: float | None = None) -> None:
        deadline = deadline_or_reserve(deadline, self.reserve_seconds())
        started = time.monotonic()
        groups = result.groups()
        pool = ThreadPoolExecutor(max_workers=PUSH_WORKERS, thread_name_prefix="push")
        futures: dict[Future[str | None], str] = {
            pool.submit(self._push, group, deadline): group.target for group in groups
        }
        # Requests time out by the deadline themselves; the margin covers a thread that is
        # between its last check and its return.
        wait(futures, timeout=max(0.0, deadline - time.monotonic()) + 0.5)
        pool.shutdown(wait=False, cancel_futures=True)
        failed: dict[str, list[str]] = {}
        for future, target in futures.items():
            if not future.done() or future.cancelled():
                cause: str | None = DEADLINE_CAUSE
            else:
                cause = future.result()
            if cause is not None:
                failed.setdefault(cause, []).append(target)
        if failed:
            count = sum(len(targets) for targets in failed.values())
            raise PushError(
                f"Pushgateway {self._url} did not accept {count} of {len(groups)} groups: "
                + "; ".join(f"{cause} ({named(targets)})" for cause, targets in failed.items())
            )
        self._last_push_seconds = time.monotonic() - started


class _DeadlineReached(Exception):
    """No attempt left before the push deadline (and none had failed yet)."""


def named(targets: list[str]) -> str:
    """``a, b, c`` or, past NAMED_GROUPS, ``a, ..., j and 190 more``."""
    shown = ", ".join(targets[:NAMED_GROUPS])
    rest = len(targets) - NAMED_GROUPS
    return shown + (f" and {rest} more" if rest > 0 else "")
