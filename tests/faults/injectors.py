"""Network faults injected for real, between the collector and a real server.

``TcpFault`` is a TCP port in front of a real server (PostgreSQL, the DocumentDB stand-in):
it forwards bytes, or black-holes them (accepts, never answers, drops what is sent), or is
closed (connection refused). ``HttpFault`` is an HTTP server in front of a real HTTP server
(the Pushgateway, moto): it forwards, or answers an error status, or answers slowly, or
demands basic auth. AWS errors are encoded the way each AWS protocol encodes them (CloudWatch
speaks rpc-v2-cbor, Secrets Manager JSON 1.1), so botocore parses them as it would AWS's.

Both switch faults on and off while the collector keeps its configuration: the target's
address never changes, which is what lets a test watch the next pass recover by itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Literal, Self

from tests.standins._process import StartStop
from tests.standins.http import ThreadedHttpServer

TcpMode = Literal["forward", "blackhole", "refused"]


class TcpFault(StartStop):
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.mode: TcpMode = "forward"
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    # -- control -----------------------------------------------------------------------

    def start(self) -> Self:
        self._listen()
        return self

    def set(self, mode: TcpMode) -> None:
        """Switch the fault. Leaving ``forward`` cuts every open connection the way the new
        fault would (a black hole keeps them open and silent; refused closes them)."""
        with self._lock:
            self.mode = mode
        if mode == "refused":
            self._close_listener()
            self._drop_connections()
        else:
            if mode == "forward":
                # Connections held by a black hole would hang forever; the server "returns".
                self._drop_connections()
            if self._listener is None:
                self._listen()

    def redirect(self, upstream_host: str, upstream_port: int) -> None:
        """The address now reaches another server (a failover, a moved endpoint): open
        connections are cut, new ones go to ``upstream``."""
        with self._lock:
            self.upstream = (upstream_host, upstream_port)
        self._drop_connections()

    def stop(self) -> None:
        self._close_listener()
        self._drop_connections()
        for thread in self._threads:
            thread.join(timeout=2)

    # -- internals ---------------------------------------------------------------------

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        self.port = int(sock.getsockname()[1])
        self._listener = sock
        thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _close_listener(self) -> None:
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(client)
                mode = self.mode
            if mode == "blackhole":
                continue  # held open, never answered
            with self._lock:
                address = self.upstream
            try:
                upstream = socket.create_connection(address, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append(upstream)
            thread = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            thread.start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self.mode == "forward":
                        peers[sock].sendall(data)
                    # Otherwise the bytes vanish: a black hole that swallowed a live link.
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()


# --- HTTP ---------------------------------------------------------------------------------


def _cbor_text(value: str) -> bytes:
    data = value.encode()
    return _cbor_head(3, len(data)) + data


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    if length < 256:
        return bytes([major << 5 | 24, length])
    return bytes([major << 5 | 25]) + length.to_bytes(2, "big")


def cbor_map(fields: dict[str, str]) -> bytes:
    """The few bytes of CBOR an rpc-v2-cbor error body needs (a map of text to text)."""
    out = _cbor_head(5, len(fields))
    for key, value in fields.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


@dataclass(frozen=True)
class HttpAnswer:
    """What ``HttpFault`` answers instead of forwarding."""

    status: int
    # AWS error code (e.g. Throttling); encoded per the request's protocol. None: plain body.
    aws_code: str | None = None
    message: str = ""


class HttpFault(StartStop):
    """``script``: the next requests get these answers, one each, in turn. ``answer`` set:
    every request gets it. ``delay_seconds``: every request waits that long before being
    forwarded (or answered). ``basic_auth`` set: requests without those credentials get 401.
    Otherwise the request goes to ``upstream`` unchanged."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.answer: HttpAnswer | None = None
        self.script: list[HttpAnswer] = []
        self.delay_seconds = 0.0
        self.basic_auth: tuple[str, str] | None = None
        self.requests = 0
        # Requests being answered now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self._count_lock = threading.Lock()  # handler threads count concurrently
        self._released = threading.Event()
        fault = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                fault._serve(self)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        self._http = ThreadedHttpServer(Handler)
        self.port = self._http.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def heal(self) -> None:
        self.answer = None
        self.script = []
        self.delay_seconds = 0.0
        self.basic_auth = None

    def start(self) -> Self:
        self._http.start()
        return self

    def stop(self) -> None:
        self._released.set()  # slow answers still pending end now
        self._http.stop()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._count_lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._answer(handler)
        finally:
            with self._count_lock:
                self.in_flight -= 1

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if self.delay_seconds:
            self._released.wait(self.delay_seconds)
        if self.basic_auth is not None:
            user, password = self.basic_auth
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if handler.headers.get("Authorization") != expected:
                self._reply(
                    handler, 401, b"Unauthorized\n", {"WWW-Authenticate": 'Basic realm="pg"'}
                )
                return
        with self._count_lock:
            answer = self.script.pop(0) if self.script else self.answer
        if answer is not None:
            self._reply_error(handler, answer)
            return
        self._forward(handler, body)

    def _reply(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        with contextlib.suppress(OSError):
            handler.send_response(status)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

    def _reply_error(self, handler: BaseHTTPRequestHandler, answer: HttpAnswer) -> None:
        if answer.aws_code is None:
            self._reply(
                handler, answer.status, answer.message.encode(), {"Content-Type": "text/plain"}
            )
        elif handler.headers.get("smithy-protocol") == "rpc-v2-cbor":
            body = cbor_map({"__type": answer.aws_code, "message": answer.message})
            headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
            self._reply(handler, answer.status, body, headers)
        else:
            body = json.dumps({"__type": answer.aws_code, "message": answer.message}).encode()
            self._reply(
                handler, answer.status, body, {"Content-Type": "application/x-amz-json-1.1"}
            )

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        skip = {"host", "content-length", "connection", "transfer-encoding"}
        request = urllib.request.Request(
            self.upstream + handler.path,
            data=body if handler.command in ("PUT", "POST") else None,
            method=handler.command,
            headers={k: v for k, v in handler.headers.items() if k.lower() not in skip},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, data, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, data, headers = exc.code, exc.read(), exc.headers
        except OSError as exc:
            self._reply(handler, 502, f"upstream unreachable: {exc}".encode())
            return
        passed = {k: v for k, v in headers.items() if k.lower() not in skip}
        self._reply(handler, status, data, passed)
