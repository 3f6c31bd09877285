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
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Protocol
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from prometheus_client import CONTENT_TYPE_LATEST

from .config import ConfigError, PushgatewaySettings
from .gc_pause import gc_paused
from .http_answers import ERROR_BODY_LIMIT, basic_authorization, describe_pushgateway_failure
from .model import PassResult
from .pushgateway_groups import group_path, shard_group
from .text_format import write_groups, write_pieces

logger = logging.getLogger(__name__)

RETRY_BACKOFF_SECONDS = 0.5
# Printing a pass (stdout, EMF) needs no network: a second covers formatting a large fleet.
PRINT_RESERVE_SECONDS: Final = 1.0
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


def exposition(result: PassResult) -> bytes:
    """The pass as Prometheus text, each series labelled with its target's ``instance`` and
    given once with its newest value (no timestamps: text exposition is read as "now")."""
    return write_groups(result.groups())


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
    url: str,
    method: str,
    timeout: float | None,
    headers: list[tuple[str, str]],
    data: bytes | Iterable[bytes],
) -> None:
    """One PUT; a status >= 400 raises HTTPError. prometheus_client's own handler builds a
    new urllib opener per push, and every new opener makes a TLS context that loads the
    system CA store (17 ms, GIL held, so parallel pushes queue behind it): most of a warm
    invocation's time (bench/RESULTS.md). ``urlopen`` reuses one opener per process. A body
    given in pieces goes out as they come (chunked)."""
    request = Request(url, data=data, method=method)
    for name, value in headers:
        request.add_header(name, value)
    with urlopen(request, timeout=timeout) as response:
        response.read()


# A push body larger than this goes out in pieces of this size while the rest is written.
# Small enough that the Pushgateway starts parsing early in the encoding, large enough that
# pieces are few. With the encoding's time stood in for by waits (no CPU taken from the
# Pushgateway), a 30,000-series push in 256 KiB pieces hid about nine tenths of it behind
# the Pushgateway's parsing, in 1 MiB pieces about three quarters (one run, shared machine).
PUSH_PIECE_BYTES: Final = 1 << 18
LENGTH_REQUIRED: Final = 411


class _Body:
    """A push body written as it is sent: pieces of whole family blocks (text_format's
    ``write_pieces``), so the Pushgateway parses one while the next is written, instead of
    waiting for the whole pass to be encoded first. A body of one piece is sent as bytes
    (with its length). The pieces are kept: a retry sends them again, then the rest."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._written: list[bytes] = []
        # False once the receiver asked for the body's length (HTTP 411).
        self.in_pieces = True

    def data(self) -> bytes | Iterator[bytes]:
        """What to send: the whole body when it is one piece, else its pieces (urllib sends
        an iterable body chunked)."""
        if not self.in_pieces:
            return self.whole()
        while len(self._written) < 2:
            piece = next(self._pieces, None)
            if piece is None:
                return b"".join(self._written)  # the whole body, written
            self._written.append(piece)
        return iter(self)

    def __iter__(self) -> Iterator[bytes]:
        yield from list(self._written)
        for piece in self._pieces:
            self._written.append(piece)
            yield piece

    def whole(self) -> bytes:
        self._written.extend(self._pieces)
        return b"".join(self._written)


class PushgatewaySink:
    """PUTs the whole pass as one group, ``/metrics/job/<job>/collector/<name>/shard/<i>``
    (SPEC 15): the PUT replaces the shard's previous pass, so a series or a target that
    disappeared does not linger, and the push costs time in proportion to the pass's series
    (the Pushgateway checks a push against every series it holds: one group per target made
    a fleet's push cost groups x series). The grouping key never holds ``instance``: the
    Pushgateway's grouping labels override a series' own, and every series carries its
    target's. Connection errors and 5xx answers are retried with backoff; a 4xx is the
    caller's mistake and is not. The request and its retries share one deadline: each
    attempt's timeout is the smaller of PUSHGATEWAY_TIMEOUT_SECONDS and the time left, and
    no attempt starts after it."""

    def __init__(self, settings: PushgatewaySettings) -> None:
        if settings.url is None:
            raise ConfigError(
                ["PUSHGATEWAY_URL: is required to push (e.g. http://pushgateway:9091)"]
            )
        self._settings = settings
        self._url: str = settings.url
        # How long the last push that went through took: a fleet's pass in one PUT may need
        # more than one request's worst case when the gateway is merely slow.
        self._last_push_seconds = 0.0

    def reserve_seconds(self) -> float:
        """The request's attempts all timing out, or twice what the last push took when that
        is more."""
        return max(push_worst_case_seconds(self._settings), 2 * self._last_push_seconds)

    def group_url(self, collector: str, shard: int) -> str:
        key = shard_group(collector, shard)
        return f"{self._url.rstrip('/')}/metrics/{group_path(self._settings.job, key)}"

    def _put(self, url: str, body: _Body, deadline: float) -> None:
        settings = self._settings
        headers = [("Content-Type", CONTENT_TYPE_LATEST)]
        if settings.username:
            headers.append(
                ("Authorization", basic_authorization(settings.username, settings.password))
            )
        for attempt in range(settings.retries + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise _DeadlineReached()
            try:
                data = body.data()
                try:
                    _request(url, "PUT", min(settings.timeout_seconds, left), headers, data)
                except HTTPError as exc:
                    if exc.code != LENGTH_REQUIRED or isinstance(data, bytes):
                        raise
                    # A proxy in front of the Pushgateway that takes no chunked body: the
                    # whole body with its length, at once (not a retry: nothing failed).
                    exc.close()
                    body.in_pieces = False
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise _DeadlineReached() from None
                    _request(url, "PUT", min(settings.timeout_seconds, left), headers, body.data())
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

    def send(self, result: PassResult, deadline: float | None = None) -> None:
        deadline = deadline_or_reserve(deadline, self.reserve_seconds())
        started = time.monotonic()
        url = self.group_url(result.collector.target, result.shard)
        # Encoded as it is sent: the encoding's objects all live until the push is done.
        with gc_paused():
            body = _Body(write_pieces(result.groups(), PUSH_PIECE_BYTES))
            try:
                self._put(url, body, deadline)
            except Exception as exc:
                if isinstance(exc, _DeadlineReached):
                    cause = DEADLINE_CAUSE
                elif isinstance(exc, HTTPError) and 400 <= exc.code < 500:
                    cause = describe_rejection(exc, body.whole())
                else:
                    cause = describe_pushgateway_failure(exc)
                raise PushError(
                    f"Pushgateway {url} did not accept the pass ({result.series_count()} "
                    f"series of {len(result.targets)} targets): {cause}"
                ) from None
        self._last_push_seconds = time.monotonic() - started


# The Pushgateway's answer to a push it refuses names the series in its protobuf text form:
# ``collected metric "x" { label:<name:"a" value:"1" > gauge:<value:1 > } is not a COUNTER``.
_COLLECTED = re.compile(
    r'collected metric "(?P<name>[^"]+)" \{ (?P<fields>.*?) \} '
    r"(?P<reason>.*?)(?= \* collected metric |$)"
)
# Several at once: ``... existing metrics: 42 error(s) occurred: * collected metric ...``.
_ERRORS = re.compile(r"(?P<count>[0-9]+) error\(s\) occurred:? ?\*? ?")
_LABEL = re.compile(r'label:<name:"(?P<name>[^"]*)" value:"(?P<value>(?:[^"\\]|\\.)*)" >')
# A body it cannot parse: ``text format parsing error in line 7: ...``.
_LINE = re.compile(r"\bline (?P<line>[0-9]+)\b")
REJECTION_BODY_LIMIT: Final = 4000


def describe_rejection(exc: HTTPError, body: bytes) -> str:
    """``HTTP 400 Bad Request: series x{instance="db1",...} is not a COUNTER (...)``: the
    series the Pushgateway refused and its reason, from its answer; for a body it could not
    parse, the pushed line it names."""
    try:
        answer = " ".join(exc.read(REJECTION_BODY_LIMIT).decode(errors="replace").split())
    except Exception:
        answer = ""
    status = f"HTTP {exc.code} {exc.reason}"
    if not answer:
        return status
    found = _COLLECTED.search(answer)
    if found is not None:
        labels = ",".join(
            f'{label["name"]}="{label["value"]}"' for label in _LABEL.finditer(found["fields"])
        )
        context = answer[: found.start()]
        errors = _ERRORS.search(context)
        more = int(errors["count"]) - 1 if errors is not None else 0
        context = (context[: errors.start()] if errors is not None else context).rstrip(": *")
        return (
            f"{status}: series {found['name']}{{{labels}}} {found['reason'].strip()}"
            + (f" (and {more} more)" if more > 0 else "")
            + (f" ({context})" if context else "")
        )
    line = _LINE.search(answer)
    if line is not None:
        lines = body.split(b"\n")
        number = int(line["line"])
        if 0 < number <= len(lines):
            pushed = lines[number - 1].decode(errors="replace")[:ERROR_BODY_LIMIT]
            return f"{status}: {answer[:ERROR_BODY_LIMIT]} (pushed line {number}: {pushed})"
    return f"{status}: {answer[:ERROR_BODY_LIMIT]}"


class _DeadlineReached(Exception):
    """No attempt left before the push deadline (and none had failed yet)."""
