"""The remote-write sink (METRICS_SINK=remote_write): each pass as Prometheus remote write 1.0
(a protobuf ``WriteRequest``, snappy-compressed) to Amazon Managed Service for Prometheus
(SigV4), Prometheus, Mimir or VictoriaMetrics (optional basic auth or bearer token).

Every series carries ``job`` (PUSHGATEWAY_JOB), ``collector`` (COLLECTOR_INSTANCE_NAME),
``shard`` (0 when not sharded) and ``instance`` (the target; the collector's name for its own
series): the labels a series has in the Pushgateway, so dashboards and rules work with
either sink, and the shards' own series stay apart. Samples carry their own timestamps: a
CloudWatch datapoint its own time, a target's other values the time that target was
collected, the pass-wide series the time the pass is sent. A CloudWatch point counts as
delivered once the receiver accepted it: one a refused send did not deliver goes out with
the next pass (resend.py). Requests hold whole series (a receiver refuses a sample older
than one it has: a series split over two requests could arrive out of order) and go out one
after another under one deadline shared with their retries: 5xx and 429 are retried with
backoff, other 4xx are not (the receiver's answer is named in the error).

The ``WriteRequest`` is encoded by hand (four small messages, stable since remote write 1.0):
the protobuf runtime would add a dependency and its import time to the function and encode
no faster. Snappy is cramjam's (Rust): a pure-Python compressor is far slower. The figures are
measured by ``python -m bench.remote_write`` (bench/RESULTS.md, section "Remote write and the
CloudWatch interval"; docs/sinks.md says why).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Final
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.samples import Sample

from . import __version__
from .config import ConfigError, RemoteWriteSettings
from .gc_pause import gc_paused
from .health import health_families
from .http_answers import basic_authorization, http_status
from .logs import scrubber
from .model import PassResult, SourceFailure, SourceOutcome, TargetResult
from .resend import ResendBuffer
from .sinks import (
    DEADLINE_CAUSE,
    RETRY_BACKOFF_SECONDS,
    PushError,
    SentTimestamps,
    SeriesKey,
    deadline_or_reserve,
    worst_case_seconds,
)

if TYPE_CHECKING:
    from botocore.credentials import Credentials

    from .credentials import SecretStore

logger = logging.getLogger(__name__)

SOURCE: Final = "remote_write"
SAMPLES_SENT: Final = "middleware_remote_write_samples_sent"
# Prometheus's own remote write sends at most 2,000 samples per request by default.
MAX_SAMPLES_PER_REQUEST: Final = 2000
SIGV4_SERVICE: Final = "aps"
SECRET_VARIABLE: Final = "REMOTE_WRITE_SECRET_ARN"
SECRET_SHAPE: Final = '{"username": "...", "password": "..."} or {"bearer_token": "..."}'
HEADERS: Final = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": f"aws-middleware-monitoring/{__version__}",
}
# What a receiver answers (HTTP 400) for a sample older than one it holds for the series:
# Prometheus rolls back the whole request, Mimir/Cortex keep the rest.
_TOO_OLD: Final = ("out of order", "out of bounds", "duplicate sample", "too old")

Label = tuple[str, str]
# (timestamp ms, value), ascending by time.
Points = list[tuple[int, float]]


# --- the WriteRequest, by hand (prometheus/prompb/remote.proto and types.proto) ------------


_DOUBLE: Final = struct.Struct("<d")


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # int64 as protobuf puts it on the wire (two's complement)
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings and embedded messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# The varints of the lengths of most series' messages (a few hundred bytes); longer ones are
# encoded as they come. Made without _varint: at import, in every cold start.
_LENGTHS: Final = tuple(
    bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(2048)
)


class _LabelFields(dict[Label, bytes]):
    """A label's encoded field (``TimeSeries.labels``, field 1), made on first use: labels
    repeat across series (``job``, ``collector``, a target's ``instance``), so a request's
    series mostly reuse what is encoded."""

    def __missing__(self, label: Label) -> bytes:
        encoded = self[label] = _field(
            1, _field(1, label[0].encode()) + _field(2, label[1].encode())
        )
        return encoded


def encode_write_request(series: Iterable[tuple[Sequence[Label], Points]]) -> bytes:
    """``WriteRequest{timeseries: [TimeSeries{labels: [Label{name, value}], samples:
    [Sample{value: double = 1, timestamp: int64 = 2}]}]}``; labels as given (sorted by name,
    as the protocol asks)."""
    with gc_paused():
        return _encode_write_request(series)


def _encode_write_request(series: Iterable[tuple[Sequence[Label], Points]]) -> bytes:
    label_field = _LabelFields().__getitem__
    # A target's values share one timestamp: each one's pieces are encoded once.
    stamps: dict[int, tuple[bytes, bytes, int]] = {}
    pack = _DOUBLE.pack
    lengths = _LENGTHS
    join = b"".join
    out = bytearray()
    for labels, points in series:
        encoded = join(map(label_field, labels))
        if len(points) == 1:
            # Most series: one sample, written straight into the request.
            millis, value = points[0]
            pieces = stamps.get(millis) or _sample_pieces(stamps, millis)
            size = len(encoded) + pieces[2]
            out += b"\x0a"
            out += lengths[size] if size < len(lengths) else _varint(size)
            out += encoded
            out += pieces[0]
            out += pack(value)
            out += pieces[1]
            continue
        body = bytearray(encoded)
        for millis, value in points:
            pieces = stamps.get(millis) or _sample_pieces(stamps, millis)
            body += pieces[0]
            body += pack(value)
            body += pieces[1]
        out += b"\x0a"
        out += lengths[len(body)] if len(body) < len(lengths) else _varint(len(body))
        out += body
    return bytes(out)


def _sample_pieces(
    stamps: dict[int, tuple[bytes, bytes, int]], millis: int
) -> tuple[bytes, bytes, int]:
    """What goes before and after a sample's value, and the sample's length:
    Sample{value = 1 (fixed64), timestamp = 2 (varint)} as field 2 of its series (its length,
    9 + at most 11 bytes, always fits one varint byte)."""
    stamp = b"\x10" + _varint(millis)
    pieces = stamps[millis] = (bytes((0x12, 9 + len(stamp), 0x09)), stamp, 11 + len(stamp))
    return pieces


def compress(data: bytes) -> bytes:
    """Snappy block format (not framed), as remote write 1.0 specifies."""
    import cramjam  # deferred: only the remote-write sink needs it

    return bytes(cramjam.snappy.compress_raw(data))


# --- from a pass to series ------------------------------------------------------------------


@dataclass(slots=True)
class Series:
    labels: tuple[Label, ...]
    points: Points
    # Whether its points carry their own time (CloudWatch): those are remembered as sent.
    stamped: bool

    def key(self) -> SeriesKey:
        return _series_key(self.labels)


def _series_key(labels: tuple[Label, ...]) -> SeriesKey:
    return dict(labels)["__name__"], frozenset(labels)


def pass_series(
    result: PassResult, job: str, now: float, sent: SentTimestamps | None = None
) -> list[Series]:
    """Every sample of the pass as remote-write series; a timestamped sample already sent on
    an earlier pass (a CloudWatch value offered again until a newer datapoint comes) is
    left out. ``_created`` samples are left out too: they are not values."""
    with gc_paused():
        return _pass_series(result, job, now, sent)


def _pass_series(
    result: PassResult, job: str, now: float, sent: SentTimestamps | None
) -> list[Series]:
    # Each series' points, in the order of its first sample.
    by_labels: dict[tuple[Label, ...], Points] = {}
    # The series whose first sample carried its own time (CloudWatch).
    stamped: set[tuple[Label, ...]] = set()
    grouping = {"job": job, "collector": result.collector.target, "shard": str(result.shard)}
    # The sorted label names of each set of a sample's own names, with the ones added here:
    # a family's samples share them, so the sort is done once, not once per sample.
    orders: dict[tuple[str, ...], tuple[str, ...]] = {}
    added = ("__name__", *grouping, "instance")
    # The added labels are the same pair objects in every series that has them: a pass's
    # series are kept until sent, and a pair made per series was a quarter of their cost.
    names: dict[str, Label] = {}
    for group in result.groups():
        # SQL, serverStatus and INFO values at the time their target was collected.
        collected_ms = int((group.collected_at or now) * 1000)
        # What overrides a sample's own label of the same name.
        fixed: dict[str, Label] = {
            label: (label, value)
            for label, value in (*grouping.items(), ("instance", group.target))
        }
        for family in group.families:
            for sample in family.samples:
                name = sample.name
                if name.endswith("_created"):
                    continue
                own = sample.labels
                own_names = tuple(own)
                order = orders.get(own_names)
                if order is None:
                    order = orders[own_names] = tuple(sorted({*own_names, *added}))
                name_pair = names.get(name)
                if name_pair is None:
                    name_pair = names[name] = ("__name__", name)
                fixed["__name__"] = name_pair
                labels = tuple([fixed[k] if k in fixed else (k, own[k]) for k in order])
                timestamp = sample.timestamp
                if timestamp is None:
                    # One hash of the labels, not two: most series are new.
                    by_labels.setdefault(labels, []).append((collected_ms, float(sample.value)))
                    continue
                millis = int(float(timestamp) * 1000)
                known = len(by_labels)
                points = by_labels.setdefault(labels, [])
                if len(by_labels) > known:
                    stamped.add(labels)
                if sent is not None and not sent.is_new(_series_key(labels), millis / 1000):
                    continue
                points.append((millis, float(sample.value)))
    out: list[Series] = []
    for labels, points in by_labels.items():
        if not points:
            continue
        if len(points) > 1:
            # In time order, one value per timestamp (the last given wins).
            points = sorted(dict(points).items())
        out.append(Series(labels, points, bool(stamped) and labels in stamped))
    return out


def requests_of(series: list[Series], limit: int = MAX_SAMPLES_PER_REQUEST) -> list[list[Series]]:
    """Whole series per request, up to ``limit`` samples (a longer series goes alone)."""
    batches: list[list[Series]] = []
    current: list[Series] = []
    size = 0
    for one in series:
        if current and size + len(one.points) > limit:
            batches.append(current)
            current, size = [], 0
        current.append(one)
        size += len(one.points)
    if current:
        batches.append(current)
    return batches


def newest_points(batch: list[Series]) -> list[Series]:
    return [Series(s.labels, s.points[-1:], s.stamped) for s in batch]


# --- signing in -----------------------------------------------------------------------------


class _Failure(Exception):
    def __init__(self, reason: str, detail: str, *, too_old: bool = False) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.too_old = too_old


class SigV4:
    """Signs each request for Amazon Managed Service for Prometheus (service ``aps``) with the
    function's role, through botocore's own signer; credentials come from botocore's usual
    chain (the execution role's variables in Lambda) and refresh themselves."""

    def __init__(
        self, region: str, credentials: Callable[[], Credentials | None] | None = None
    ) -> None:
        self._region = region
        self._credentials_factory = credentials or _botocore_credentials
        self._credentials: Credentials | None = None

    def headers(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        if self._credentials is None:
            self._credentials = self._credentials_factory()
            if self._credentials is None:
                raise _Failure(
                    "auth_failed",
                    "no AWS credentials to sign with SigV4 (the function's role in Lambda, "
                    "boto3's usual chain elsewhere)",
                )
        request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        SigV4Auth(self._credentials.get_frozen_credentials(), SIGV4_SERVICE, self._region).add_auth(
            request
        )
        return dict(request.headers.items())


def _botocore_credentials() -> Credentials | None:
    import botocore.session  # deferred: ~100 ms, only with SigV4

    return botocore.session.Session().get_credentials()


class SecretLogin:
    """Basic auth or a bearer token from the Secrets Manager secret REMOTE_WRITE_SECRET_ARN,
    cached like every secret (SECRETS_MAX_AGE_SECONDS) and read again at once when the
    receiver refuses it (a rotated token)."""

    def __init__(self, secret_arn: str, store: SecretStore) -> None:
        self._arn = secret_arn
        self._store = store

    def authorization(self, refresh: bool = False) -> str:
        where = f"{SECRET_VARIABLE} ({self._arn})"
        try:
            secret = self._store.read_json(
                self._arn, SECRET_VARIABLE, refresh=refresh, shape=SECRET_SHAPE
            )
        except SourceFailure as failure:
            raise _Failure(failure.reason, failure.detail) from None
        token = secret.get("bearer_token")
        if isinstance(token, str) and token:
            scrubber.add([token])
            return f"Bearer {token}"
        username, password = secret.get("username"), secret.get("password")
        if isinstance(username, str) and username and isinstance(password, str) and password:
            return basic_authorization(username, password)
        raise _Failure(
            "secret_invalid", f"{where} holds neither; expected the shape {SECRET_SHAPE}"
        )


# --- the sink -------------------------------------------------------------------------------


def _retry_after(exc: HTTPError) -> float:
    """Seconds a 429/503 asks to wait (Retry-After: seconds or an HTTP date), else 0."""
    value = exc.headers.get("Retry-After") if exc.headers else None
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return 0.0


class RemoteWriteSink:
    """One per function instance: it remembers which timestamped samples went out, so a
    CloudWatch value offered again on the next pass is not sent twice."""

    def __init__(
        self,
        settings: RemoteWriteSettings,
        job: str,
        *,
        secrets: SecretStore | None = None,
        clock: Callable[[], float] = time.time,
        sigv4: SigV4 | None = None,
    ) -> None:
        if settings.url is None:
            raise ConfigError(
                [
                    "REMOTE_WRITE_URL: is required with METRICS_SINK=remote_write (e.g. "
                    "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-.../api/v1/"
                    "remote_write)"
                ]
            )
        self._settings = settings
        self._url: str = settings.url
        self._job = job
        self._clock = clock
        self._sent = SentTimestamps()
        self._resend = ResendBuffer(self._sent, self._series_key)
        self._sigv4 = sigv4 or (SigV4(settings.sigv4_region) if settings.sigv4_region else None)
        self._login: SecretLogin | None = None
        if settings.secret_arn is not None:
            if secrets is None:
                raise ValueError("REMOTE_WRITE_SECRET_ARN is set: a SecretStore is needed")
            self._login = SecretLogin(settings.secret_arn, secrets)
        self.last_success: dict[str, float] = {}

    def _series_key(self, target: str, sample: Sample) -> SeriesKey:
        """How ``pass_series`` names a sample's series (``Series.key``)."""
        labels = {**sample.labels, "__name__": sample.name, "job": self._job, "instance": target}
        return sample.name, frozenset(labels.items())

    def reserve_seconds(self) -> float:
        """One request's attempts all timing out, and the health request after it."""
        settings = self._settings
        return worst_case_seconds(settings.retries, settings.timeout_seconds) + (
            settings.timeout_seconds
        )

    # -- HTTP ---------------------------------------------------------------------------

    def _headers(self, body: bytes, refresh_login: bool) -> dict[str, str]:
        headers = dict(HEADERS)
        if self._sigv4 is not None:
            # What urllib will send as Host, so the signed value is the sent one.
            headers["Host"] = urlsplit(self._url).netloc
            return self._sigv4.headers(self._url, body, headers)
        if self._login is not None:
            headers["Authorization"] = self._login.authorization(refresh=refresh_login)
        return headers

    def _post(self, payload: bytes, deadline: float) -> None:
        """One request with its retries; raises ``_Failure`` (reason, detail)."""
        body = compress(payload)
        attempt = 0
        refreshed = False
        last: _Failure | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Failure("deadline", DEADLINE_CAUSE + (f" ({last.detail})" if last else ""))
            request = Request(
                self._url, data=body, method="POST", headers=self._headers(body, refreshed)
            )
            pause = RETRY_BACKOFF_SECONDS * 2**attempt
            try:
                with urlopen(request, timeout=min(self._settings.timeout_seconds, left)) as answer:
                    answer.read()
                return
            except HTTPError as exc:
                detail = http_status(exc)
                if exc.code in (401, 403):
                    if self._login is not None and not refreshed:
                        refreshed = True  # perhaps a rotated secret: read it again, once
                        continue
                    raise _Failure("auth_failed", detail) from None
                if exc.code != 429 and exc.code < 500:
                    lowered = detail.lower()
                    raise _Failure(
                        "rejected", detail, too_old=any(s in lowered for s in _TOO_OLD)
                    ) from None
                last = _Failure("throttled" if exc.code == 429 else "server_error", detail)
                pause = max(pause, _retry_after(exc))
            except (URLError, OSError) as exc:
                reason = exc.reason if isinstance(exc, URLError) else exc
                timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
                last = _Failure(
                    "timeout" if timed_out else "unreachable",
                    f"cannot reach the receiver: {reason}",
                )
            if attempt >= self._settings.retries or time.monotonic() + pause >= deadline:
                raise last
            attempt += 1
            time.sleep(pause)

    # -- a pass -------------------------------------------------------------------------

    def send(self, result: PassResult, deadline: float | None = None) -> None:
        deadline = deadline_or_reserve(deadline, self.reserve_seconds())
        started = time.monotonic()
        if result.targets:  # a pass, not the Kafka stream's health group alone
            # CloudWatch points an earlier refused send did not deliver (resend.py).
            result = self._resend.merge(result)
        series = pass_series(result, self._job, self._clock(), self._sent)
        total = sum(len(s.points) for s in series)
        sent = 0
        failures: list[tuple[_Failure, int]] = []
        for batch in requests_of(series):
            count = sum(len(s.points) for s in batch)
            try:
                accepted = self._send_batch(batch, deadline)
            except _Failure as failure:
                failures.append((failure, count))
                continue
            sent += sum(len(s.points) for s in accepted)
            self._sent.mark(
                ((s.key(), s.points[-1][0] / 1000) for s in accepted if s.stamped), self._clock()
            )
        # A pass (not the Kafka stream's health group alone) reports on its own sending.
        if result.targets:
            self._resend.keep(result)
            try:
                self._send_health(result, started, sent, failures, deadline)
            except _Failure as health_failure:
                failures.append((health_failure, 0))
        if failures:
            lost = sum(count for _, count in failures)
            causes: dict[str, int] = {}
            for cause, _ in failures:
                causes[cause.detail] = causes.get(cause.detail, 0) + 1
            raise PushError(
                f"remote write to {self._url} did not accept {lost} of {total} samples: "
                + "; ".join(
                    f"{detail} ({n} request{'s' if n > 1 else ''})" for detail, n in causes.items()
                )
            )

    def _send_batch(self, batch: list[Series], deadline: float) -> list[Series]:
        """The series accepted (all of them, or each one's newest point: see below)."""
        try:
            self._post(encode_write_request((s.labels, s.points) for s in batch), deadline)
            return batch
        except _Failure as failure:
            if not (failure.too_old and any(len(s.points) > 1 for s in batch)):
                raise
        # The receiver holds newer samples of a series than some of ours: another function
        # instance (before a cold start) sent them. Prometheus refuses the whole request for
        # one such sample; each series' newest point is what is missing, if anything.
        newest = newest_points(batch)
        self._post(encode_write_request((s.labels, s.points) for s in newest), deadline)
        logger.info(
            "remote write: older CloudWatch points already at the receiver, sent the newest",
            extra={"series": len(batch)},
        )
        return newest

    def _send_health(
        self,
        result: PassResult,
        started: float,
        sent: int,
        failures: list[tuple[_Failure, int]],
        deadline: float,
    ) -> None:
        """The sink's own health in the collector's group, as a request of its own after the
        pass: middleware_collector_up/duration/failure/last_success{source="remote_write"}
        and how many samples the receiver accepted."""
        duration = time.monotonic() - started
        if failures:
            first = failures[0][0]
            outcome = SourceOutcome(SOURCE, False, duration, first.reason, first.detail)
        else:
            outcome = SourceOutcome(SOURCE, True, duration)
            self.last_success[SOURCE] = self._clock()
        families: list[Metric] = list(health_families([outcome], self.last_success))
        families.append(
            GaugeMetricFamily(
                SAMPLES_SENT, "Samples the remote-write receiver accepted this pass.", value=sent
            )
        )
        families.append(self._resend.dropped_family(SOURCE))
        health = PassResult(
            [], 0.0, TargetResult(result.collector.target, families, []), result.shard
        )
        series = pass_series(health, self._job, self._clock())
        self._post(encode_write_request((s.labels, s.points) for s in series), deadline)
