"""Pull mode (SPEC 7): ``python -m middleware_monitoring serve`` answers Prometheus scrapes
on SERVER_PORT (default 9010) with a fresh pass, through the same Runtime, sources and
exposition as ``collect`` -- there is no second metrics code path here, only HTTP around it.

- ``/metrics``: one pass per scrape, every series labelled with its target's ``instance``.
  Scrapes that arrive while a pass runs wait for that pass and get its answer (single-flight),
  so a Prometheus HA pair or an impatient curl cannot stampede the databases.
- A pass is bounded by SERVER_SCRAPE_BUDGET_SECONDS, and by Prometheus's own
  ``X-Prometheus-Scrape-Timeout-Seconds`` when it is shorter; targets not finished by then are
  reported down (reason ``deadline``) in the answer instead of the scrape timing out.
- ``/healthz``: liveness of the HTTP server itself (never runs a pass), as JSON.
- SIGTERM / SIGINT: stop accepting, close the sources' connections, exit 0.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Final, Generic, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST

from .config import ServeSettings
from .model import PassResult
from .runtime import Runtime, summary
from .sinks import exposition

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Kept back from Prometheus's scrape timeout for rendering and sending the answer.
SCRAPE_TIMEOUT_MARGIN_SECONDS: Final = 0.5
MIN_BUDGET_SECONDS: Final = 0.1
# How long a waiting scrape may outlive the pass it waits for (rendering, a slow leader thread).
FOLLOWER_GRACE_SECONDS: Final = 5.0


@dataclass
class _Flight(Generic[T]):
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Runs ``work`` for the first caller; callers arriving while it runs wait for and share
    that same result. A caller arriving after it finished starts a new run: results are never
    cached, so every scrape sees values no older than its own arrival."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: _Flight[T] | None = None
        self.runs = 0
        self.waiting = 0

    @property
    def in_flight(self) -> bool:
        return self._current is not None

    def do(self, work: Callable[[], T], *, wait_timeout: float) -> T:
        with self._lock:
            flight = self._current
            leader = flight is None
            if flight is None:
                flight = self._current = _Flight()
                self.runs += 1
            else:
                self.waiting += 1
        if leader:
            try:
                flight.result = work()
            except BaseException as exc:  # handed to the waiting callers too
                flight.error = exc
            finally:
                with self._lock:
                    self._current = None
                flight.done.set()
        else:
            try:
                finished = flight.done.wait(wait_timeout)
            finally:
                with self._lock:
                    self.waiting -= 1
            if not finished:
                raise TimeoutError("the in-flight pass did not finish in time")
        if flight.error is not None:
            raise flight.error
        assert flight.result is not None
        return flight.result


def scrape_budget(configured: float, prometheus_timeout_header: str | None) -> float:
    """The pass budget of one scrape: the configured one, or less when Prometheus says it
    will give up sooner (its ``X-Prometheus-Scrape-Timeout-Seconds`` header)."""
    budget = configured
    if prometheus_timeout_header:
        try:
            announced = float(prometheus_timeout_header)
        except ValueError:
            announced = float("nan")
        if announced > 0:  # NaN fails too
            budget = min(budget, announced - SCRAPE_TIMEOUT_MARGIN_SECONDS)
    return max(budget, MIN_BUDGET_SECONDS)


class PullServer:
    """The HTTP server around a Runtime; ``serve_forever`` until ``stop``."""

    def __init__(
        self,
        runtime: Runtime,
        settings: ServeSettings,
        *,
        after_pass: Callable[[PassResult], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.flight: SingleFlight[bytes] = SingleFlight()
        self._after_pass = after_pass
        self.httpd = ThreadingHTTPServer((settings.address, settings.port), _handler_for(self))
        # A scrape stuck on a slow client must not keep the process alive at shutdown.
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def metrics(self, budget_seconds: float) -> bytes:
        def one_pass() -> bytes:
            result, _ = self.runtime.budget.apply(self.runtime.collect(budget_seconds), "pull")
            logger.info("pass done", extra=summary(result))
            if self._after_pass is not None:
                self._after_pass(result)
            return exposition(result)

        return self.flight.do(one_pass, wait_timeout=budget_seconds + FOLLOWER_GRACE_SECONDS)

    def health(self) -> dict[str, object]:
        return {
            "status": "ok",
            "passes": self.flight.runs,
            "in_flight": self.flight.in_flight,
            "waiting_scrapes": self.flight.waiting,
            "targets": [target.name for target in self.runtime.targets],
        }

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop serving (from another thread than serve_forever's) and release everything."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.runtime.close()


def _handler_for(server: PullServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "middleware-monitoring"
        protocol_version = "HTTP/1.1"
        # Keep-alive connections would otherwise hold a thread each for ever once idle or
        # half-open: every network wait has a bound.
        timeout = 60

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._metrics()
            elif path in ("/healthz", "/-/healthy"):
                body = json.dumps(server.health()).encode()
                self._answer(200, "application/json", body)
            elif path == "/":
                body = b"middleware-monitoring pull mode: /metrics, /healthz\n"
                self._answer(200, "text/plain; charset=utf-8", body)
            else:
                self._answer(404, "text/plain; charset=utf-8", b"not found\n")

        def _metrics(self) -> None:
            budget = scrape_budget(
                server.settings.scrape_budget_seconds,
                self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"),
            )
            try:
                body = server.metrics(budget)
            except Exception as exc:
                logger.exception("scrape failed")
                message = f"scrape failed: {type(exc).__name__}\n".encode()
                self._answer(503, "text/plain; charset=utf-8", message)
                return
            self._answer(200, CONTENT_TYPE_LATEST, body)

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # http.server writes every request to stderr; keep that out of the JSON log.
            logger.debug("http " + format % args)

    return Handler


def serve(runtime: Runtime, *, after_pass: Callable[[PassResult], None] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status."""
    settings = runtime.settings.serve
    try:
        server = PullServer(runtime, settings, after_pass=after_pass)
    except OSError as exc:
        logger.error(
            "cannot listen",
            extra={
                "address": settings.address,
                "port": settings.port,
                "detail": f"{type(exc).__name__}: {exc.strerror or exc}",
            },
        )
        return 1
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    worker.start()
    logger.info(
        "serving",
        extra={
            "address": settings.address,
            "port": server.port,
            "targets": [target.name for target in runtime.targets],
            "scrape_budget_seconds": settings.scrape_budget_seconds,
        },
    )
    try:
        # The main thread only waits, so the signal handler runs promptly.
        while not stopping.wait(1.0):
            if not worker.is_alive():
                logger.error("the HTTP server stopped unexpectedly")
                return 1
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("stopped")
    return 0
