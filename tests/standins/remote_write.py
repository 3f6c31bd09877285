"""A remote-write front door that checks how a request signs in, then hands it to a real
receiver (Prometheus with --web.enable-remote-write-receiver).

``sigv4``: what Amazon Managed Service for Prometheus checks, done with botocore's own
signer: the request must be signed with SigV4 for service ``aps`` in ``region`` by the known
access key, over exactly the headers it lists as signed and the body it carries; a wrong key
or secret, a changed body or a missing header gets AMP's 403 answer. ``basic`` / ``bearer``:
the Authorization header must match. Every request received is recorded (headers and body)
so tests can look at what the collector sent.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tests.standins._process import StartStop
from tests.standins.http import ThreadedHttpServer


def write_request_class() -> Any:
    """WriteRequest as prometheus/prompb/remote.proto and types.proto declare it (the fields
    remote write 1.0 uses), built as a descriptor: no protoc needed."""
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="prompb.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, int, str | None]) -> None:
        added = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            added.field.add(
                name=field_name, number=number, type=kind, label=label, type_name=type_name
            )

    one, many = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message("Label", ("name", 1, f.TYPE_STRING, one, None), ("value", 2, f.TYPE_STRING, one, None))
    message(
        "Sample", ("value", 1, f.TYPE_DOUBLE, one, None), ("timestamp", 2, f.TYPE_INT64, one, None)
    )
    message(
        "TimeSeries",
        ("labels", 1, f.TYPE_MESSAGE, many, ".prometheus.Label"),
        ("samples", 2, f.TYPE_MESSAGE, many, ".prometheus.Sample"),
    )
    message("WriteRequest", ("timeseries", 1, f.TYPE_MESSAGE, many, ".prometheus.TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = write_request_class()
Decoded = list[tuple[dict[str, str], list[tuple[int, float]]]]


def decode(body: bytes) -> Decoded:
    request = WriteRequest.FromString(body)
    return [
        (
            {label.name: label.value for label in ts.labels},
            [(s.timestamp, s.value) for s in ts.samples],
        )
        for ts in request.timeseries
    ]


# The answer AMP gives to a request whose signature does not verify.
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)


@dataclass(frozen=True)
class KnownKey:
    access_key: str
    secret_key: str
    token: str | None = None


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int = 0


@dataclass
class AuthCheck:
    mode: str  # "sigv4", "basic", "bearer" or "none"
    region: str = "eu-west-1"
    key: KnownKey | None = None
    authorization: str | None = None  # the expected header for basic/bearer


def sigv4_problem(
    check: AuthCheck, method: str, url: str, headers: dict[str, str], body: bytes
) -> str | None:
    """None when the request carries a valid SigV4 signature by the known key, else why not.
    The signature is recomputed with botocore's SigV4Auth over the headers the request says it
    signed, at the time it says it signed (X-Amz-Date)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    assert check.key is not None
    lower = {name.lower(): value for name, value in headers.items()}
    authorization = lower.get("authorization", "")
    prefix = "AWS4-HMAC-SHA256 "
    if not authorization.startswith(prefix):
        return "Missing Authentication Token"
    parts = dict(
        item.strip().split("=", 1)
        for item in authorization[len(prefix) :].split(",")
        if "=" in item
    )
    credential = parts.get("Credential", "").split("/")
    if len(credential) != 5 or credential[0] != check.key.access_key:
        return "The security token included in the request is invalid."
    if credential[2:] != [check.region, "aps", "aws4_request"]:
        return f"Credential should be scoped to a valid region and service aps: {credential[2:]}"
    signed = parts.get("SignedHeaders", "").split(";")
    if "host" not in signed or "x-amz-date" not in lower:
        return "host and x-amz-date must be signed"
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={name: lower[name] for name in signed if name in lower},
    )
    request.context["timestamp"] = lower["x-amz-date"]
    signer = SigV4Auth(
        Credentials(check.key.access_key, check.key.secret_key, check.key.token),
        "aps",
        check.region,
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != parts.get("Signature"):
        return SIGNATURE_MISMATCH
    if check.key.token is not None and lower.get("x-amz-security-token") != check.key.token:
        return "The security token included in the request is invalid."
    return None


@dataclass
class _State:
    upstream: str
    check: AuthCheck
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class RemoteWriteDoor(StartStop):
    def __init__(self, upstream: str, check: AuthCheck) -> None:
        """``upstream`` is the receiver's remote-write URL (Prometheus.remote_write_url)."""
        state = self._state = _State(upstream, check)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = dict(self.headers.items())
                seen = Received(headers, body)
                with state.lock:
                    state.received.append(seen)
                problem = _auth_problem(
                    state.check, f"http://{self.headers.get('Host')}{self.path}", headers, body
                )
                if problem is not None:
                    status = 403 if state.check.mode == "sigv4" else 401
                    self._answer(seen, status, problem.encode())
                    return
                request = urllib.request.Request(
                    state.upstream,
                    data=body,
                    method="POST",
                    headers={
                        name: value
                        for name, value in headers.items()
                        if name.lower().startswith(("content-", "x-prometheus"))
                        and name.lower() != "content-length"
                    },
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        self._answer(seen, answer.status, answer.read())
                except urllib.error.HTTPError as exc:
                    self._answer(seen, exc.code, exc.read())

            def _answer(self, seen: Received, status: int, data: bytes) -> None:
                seen.status = status
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        self._http = ThreadedHttpServer(Handler)
        self.port = self._http.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/workspaces/ws-test/api/v1/remote_write"

    @property
    def received(self) -> list[Received]:
        with self._state.lock:
            return list(self._state.received)

    def start(self) -> Self:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()


def _auth_problem(check: AuthCheck, url: str, headers: dict[str, str], body: bytes) -> str | None:
    if check.mode == "sigv4":
        return sigv4_problem(check, "POST", url, headers, body)
    if check.mode in ("basic", "bearer") and headers.get("Authorization") != check.authorization:
        return "Unauthorized"
    return None
